//! Running the extract stage's pending units: each backup on a worker of a pool of
//! `--jobs` threads, finished partitions committed by a thread of their own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Result};
use tracing::info;

use crate::config::Config;
use crate::run::memory_limit::Budget;
use crate::run::plan::Plan;
use crate::run::progress::{InOrder, ItemLine, Progress};
use crate::run::schedule::{
    extract_share, release_free_memory_if_large, ExtractShare, EXTRACT_FIXED_BYTES, SMALL_UNIT_ROWS,
};
use crate::stages::extract::{extract, PartitionInfo};
use crate::values::bytes::human;
use crate::workdir::atomic::{StagedDir, COMMIT_QUEUE};
use crate::workdir::interrupt;
use crate::workdir::state::Paths;

/// Extracts every backup of `plan` that is not done yet and records each in the plan;
/// returns how many ran. The first error is returned after the others have finished. As
/// many run at once as `--jobs` says and the memory `budget` holds (`extract_share`).
pub fn extract_pending(
    plan: &mut Plan,
    config: &Config,
    paths: &Paths,
    budget: &Budget,
) -> Result<usize> {
    let extracted = extract_each(plan, config, paths, budget, &|_, _| {});
    extracted.record(plan)
}

/// What `extract_each` did: each pending backup's outcome, by its index in the plan, and
/// what saving the finished extracts met.
pub struct Extracted {
    outcomes: Vec<(usize, Result<PartitionInfo>)>,
    saved: Result<()>,
}

impl Extracted {
    /// Records the finished extracts in `plan`; returns how many ran, or the first error
    /// (one met saving them first: a worker's error may only be its consequence).
    pub fn record(self, plan: &mut Plan) -> Result<usize> {
        self.saved?;
        let mut first_error = None;
        let count = self.outcomes.len();
        for (i, outcome) in self.outcomes {
            match outcome {
                Ok(info) => plan.extracts[i].done = Some(info),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(count),
        }
    }
}

/// The memory extraction holds while it runs, beside the process's own: what diff units
/// started meanwhile must leave to it.
pub fn extraction_bytes(budget: &Budget, jobs: usize) -> u64 {
    let share = extract_share(budget.bytes, jobs);
    share.jobs as u64 * (EXTRACT_FIXED_BYTES + share.buffer_bytes)
}

/// Extracts every backup of `plan` that is not done yet, in date order, `--jobs` (or as
/// many as the budget holds) at once; `saved(index, info)` is called once backup `index`'s
/// partitions are on disk, so that its diffs may start while later backups are extracted.
pub fn extract_each(
    plan: &Plan,
    config: &Config,
    paths: &Paths,
    budget: &Budget,
    saved: &(dyn Fn(usize, &PartitionInfo) + Sync),
) -> Extracted {
    let pending: Vec<usize> = (0..plan.extracts.len())
        .filter(|&i| plan.extracts[i].done.is_none())
        .collect();
    if pending.is_empty() {
        return Extracted {
            outcomes: Vec::new(),
            saved: Ok(()),
        };
    }
    let share = extract_share(budget.bytes, config.jobs);
    if share.jobs < config.jobs.min(pending.len()) {
        info!(
            "extracting {} backup(s) at once rather than {} (--jobs): the memory budget of {} \
             holds no more",
            share.jobs,
            config.jobs,
            human(budget.bytes)
        );
    }
    let total_bytes = pending.iter().map(|&i| plan.extracts[i].inputs.size).sum();
    let progress = Arc::new(Progress::bytes("extract", total_bytes));
    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(share.jobs)
        .thread_name(|i| format!("extract-{i}"))
        .build()
    {
        Ok(pool) => pool,
        Err(e) => {
            return Extracted {
                outcomes: Vec::new(),
                saved: Err(e.into()),
            }
        }
    };
    let lines = InOrder::default();
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    // Finished extracts are flushed and renamed into place on a thread of their own, so
    // that the workers do not wait on the disk.
    let (finished, to_commit) =
        mpsc::sync_channel::<(usize, StagedDir, PartitionInfo)>(COMMIT_QUEUE);
    let saved = std::thread::scope(|scope| {
        let committer = scope.spawn(move || {
            // Every extract waiting, at once: one flush of the disk for all of them.
            while let Ok(first) = to_commit.recv() {
                let batch: Vec<_> = std::iter::once(first).chain(to_commit.try_iter()).collect();
                let (done, dirs): (Vec<_>, Vec<_>) = batch
                    .into_iter()
                    .map(|(i, dir, info)| ((i, info), dir))
                    .unzip();
                StagedDir::commit_all(dirs)?;
                for (i, info) in done {
                    saved(i, &info);
                }
            }
            anyhow::Ok(())
        });
        // Backups are taken in date order, so that each one's diffs can start soon after.
        pool.scope(|workers| {
            for _ in 0..share.jobs {
                let finished = finished.clone();
                let (next, outcomes, lines, progress) = (&next, &outcomes, &lines, &progress);
                let pending = &pending;
                workers.spawn(move |_| loop {
                    let position = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = pending.get(position) else {
                        return;
                    };
                    let outcome =
                        extract_one(plan, i, config, paths, budget, share, progress, &finished);
                    let line = outcome.as_ref().ok().map(|(info, seconds)| {
                        extracted_line(&plan.extracts[i].backup.stamp(), info, *seconds)
                    });
                    lines.finished(position, line, |line| progress.log(line));
                    let outcome = outcome.map(|(info, _)| info);
                    outcomes.lock().expect("not poisoned").push((i, outcome));
                });
            }
        });
        drop(finished);
        committer.join().expect("the committer does not panic")
    });
    progress.finish();
    Extracted {
        outcomes: outcomes.into_inner().expect("not poisoned"),
        saved,
    }
}

/// Extracts backup `i` and hands its partitions to the committer; returns what it holds and
/// the seconds it took.
#[allow(clippy::too_many_arguments)]
fn extract_one(
    plan: &Plan,
    i: usize,
    config: &Config,
    paths: &Paths,
    budget: &Budget,
    share: ExtractShare,
    progress: &Arc<Progress>,
    finished: &mpsc::SyncSender<(usize, StagedDir, PartitionInfo)>,
) -> Result<(PartitionInfo, f64)> {
    let unit = &plan.extracts[i];
    let started = Instant::now();
    interrupt::check()?;
    let dest = paths.partition_dir(&unit.backup.stamp());
    let progress = progress.clone();
    let on_read = Box::new(move |n| progress.advance(n));
    let (info, staged) = extract(
        &unit.backup,
        &unit.inputs,
        config,
        &dest,
        share.buffer_bytes,
        on_read,
    )?;
    (finished.send((i, staged, info.clone())))
        .map_err(|_| anyhow!("stopped: finished extracts could not be saved"))?;
    // As after diff units: a small extract keeps its freed memory.
    if info.rows >= SMALL_UNIT_ROWS {
        release_free_memory_if_large(budget.bytes);
    }
    Ok((info, started.elapsed().as_secs_f64()))
}

/// The log line of a finished extract.
fn extracted_line(date: &str, info: &PartitionInfo, seconds: f64) -> ItemLine {
    ItemLine {
        message: format!(
            "extracted {date}: {} rows, {} of SQL in {seconds:.1} s ({}/s)",
            info.rows,
            human(info.sql_bytes),
            human((info.sql_bytes as f64 / seconds.max(1e-3)) as u64)
        ),
        event: "extracted",
        date: date.to_string(),
        rows: info.rows,
        sql_bytes: Some(info.sql_bytes),
        seconds: Some(seconds),
        ..ItemLine::default()
    }
}
