//! Running the extract stage's pending units: each backup on a worker of a pool of
//! `--jobs` threads, finished partitions committed by a thread of their own.

use std::time::Instant;

use anyhow::{anyhow, Result};
use rayon::prelude::*;
use tracing::info;

use crate::config::Config;
use crate::run::memory_limit::Budget;
use crate::run::plan::Plan;
use crate::run::progress::{InOrder, ItemLine, Progress};
use crate::run::schedule::{extract_share, release_free_memory_if_large, SMALL_UNIT_ROWS};
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
    let pending: Vec<usize> = (0..plan.extracts.len())
        .filter(|&i| plan.extracts[i].done.is_none())
        .collect();
    if pending.is_empty() {
        return Ok(0);
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
    let progress = std::sync::Arc::new(Progress::bytes("extract", total_bytes));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(share.jobs)
        .thread_name(|i| format!("extract-{i}"))
        .build()?;
    let lines = InOrder::default();
    // Finished extracts are flushed and renamed into place on a thread of their own, so
    // that the workers do not wait on the disk.
    let (finished, to_commit) = std::sync::mpsc::sync_channel::<StagedDir>(COMMIT_QUEUE);
    let committer = std::thread::spawn(move || {
        // Every extract waiting, at once: one flush of the disk for all of them.
        while let Ok(first) = to_commit.recv() {
            StagedDir::commit_all(std::iter::once(first).chain(to_commit.try_iter()).collect())?;
        }
        anyhow::Ok(())
    });
    let results: Vec<(usize, Result<PartitionInfo>)> = pool.install(|| {
        pending
            .par_iter()
            .enumerate()
            .map(|(position, &i)| {
                let unit = &plan.extracts[i];
                let started = Instant::now();
                let result = interrupt::check()
                    .map_err(anyhow::Error::from)
                    .and_then(|()| {
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
                        (finished.send(staged)).map_err(|_| {
                            anyhow!("stopped: finished extracts could not be saved")
                        })?;
                        // As after diff units: a small extract keeps its freed memory.
                        if info.rows >= SMALL_UNIT_ROWS {
                            release_free_memory_if_large(budget.bytes);
                        }
                        Ok(info)
                    });
                let line = result.as_ref().ok().map(|info| {
                    let seconds = started.elapsed().as_secs_f64();
                    ItemLine {
                        message: format!(
                            "extracted {}: {} rows, {} of SQL in {seconds:.1} s ({}/s)",
                            unit.backup.stamp(),
                            info.rows,
                            human(info.sql_bytes),
                            human((info.sql_bytes as f64 / seconds.max(1e-3)) as u64)
                        ),
                        event: "extracted",
                        date: unit.backup.stamp(),
                        rows: info.rows,
                        sql_bytes: Some(info.sql_bytes),
                        seconds: Some(seconds),
                        ..ItemLine::default()
                    }
                });
                lines.finished(position, line, |line| progress.log(line));
                (i, result)
            })
            .collect()
    });
    drop(finished);
    // What the committer met comes first: a worker's error may only be its consequence.
    committer.join().expect("the committer does not panic")?;
    progress.finish();
    let mut first_error = None;
    let count = results.len();
    for (i, result) in results {
        match result {
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
