//! The whole run: discover → extract → diff → emit, each stage reading the files the one
//! before it wrote, skipping units that are finished and still valid.

pub mod diffing;
pub mod extracting;
pub mod loading;
pub mod memory_limit;
pub mod plan;
pub mod progress;
pub mod schedule;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::config::{Config, Stages};
use crate::run::diffing::{diff_all, DiffInput};
use crate::run::extracting::{extract_each, extract_pending, extraction_bytes, Extracted};
use crate::run::memory_limit::{budget, Budget};
use crate::run::plan::Plan;
use crate::run::schedule::keep_freed_memory;
use crate::stages::diff::spark::SparkResult;
use crate::stages::discover::discover;
use crate::stages::extract::PartitionInfo;
use crate::values::backfill::{Backfill, Revisions};
use crate::workdir::atomic::write_file;
use crate::workdir::interrupt;
use crate::workdir::lock::{lock_dates, lock_work_folder};
use crate::workdir::state::{
    partition_dir_name, remove, remove_leftovers, remove_leftovers_of, DiffRecord, OutputTable,
    Paths,
};

/// Totals of one source over the whole run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SourceSummary {
    /// Rows of this source summed over every backup.
    pub rows_seen: u64,
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    pub backfill: Backfill,
    /// Issue rows whose `time_value` is after their backup's date (a negative lag); left
    /// out when some records did not count them. `history` reads only the backups that can
    /// hold a point when this is 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negative_lag_rows: Option<u64>,
    /// Seconds its diff units took in this run, and how many ran (a resumed run does not
    /// count earlier timings). Printed, not saved: summary.json is the same for a resumed
    /// and an uninterrupted run.
    #[serde(skip)]
    pub seconds: f64,
    #[serde(skip)]
    pub units_run: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub backups: Vec<String>,
    /// Gaps between backups, as sentences.
    pub gaps: Vec<String>,
    pub sql_bytes: u64,
    pub sources: BTreeMap<String, SourceSummary>,
    /// What `lag` counts (`--time-column`), or that there is none; left out by a run that
    /// only extracts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<String>,
    /// True when the issue rows have no `lag` (no time column): printed, not saved.
    #[serde(skip)]
    pub no_lag: bool,
    /// Units this run did, units it found finished, and its time: printed, not saved.
    #[serde(skip)]
    pub units_run: usize,
    #[serde(skip)]
    pub units_reused: usize,
    #[serde(skip)]
    pub seconds: f64,
}

pub fn run(config: &Config, stages: Stages) -> Result<RunSummary> {
    let started = Instant::now();
    let paths = Paths::new(config);
    // Before anything is created (the work folder, its lock): a missing or empty backups
    // folder is wrong input, and leaves no trace in an OUT that did not exist.
    discover(&config.backups, &config.pattern)?;
    if config.target.is_some() {
        // Before anything is removed or written: a table the output cannot load into is a
        // wrong command line, not a failed run.
        Plan::new(config, &paths)?.check_target(config)?;
    }
    // Before anything is removed or written: a budget below what migrate can hold is a
    // usage error too.
    let budget = budget(config)?;
    debug!("memory: budget {budget}");
    keep_freed_memory(budget.bytes, config.jobs);
    if config.dates.is_some() {
        return extract_dates(config, &paths, &budget, started);
    }
    // Held to the end: a second run in the same folder would remove this one's work.
    let _lock = lock_work_folder(&config.work)?;
    if config.fresh {
        for root in paths.dated_roots() {
            remove(root)?;
        }
        remove(&paths.journal)?;
        remove(&paths.summary)?;
    }
    // Diff records of earlier versions, a file per unit; their units are redone.
    remove(&paths.work.join("state"))?;
    let leftovers = remove_leftovers(&paths)?;
    if leftovers > 0 {
        info!("removed {leftovers} temporary file(s) left by an interrupted run");
    }
    let mut plan = Plan::new(config, &paths)?;
    let backups = &plan.discovery.backups;
    info!(
        "{} backups from {} to {}",
        backups.len(),
        backups[0].stamp(),
        backups[backups.len() - 1].stamp()
    );
    for gap in &plan.discovery.gaps {
        warn!("{gap}; the next backup is compared with the one before the gap");
    }
    let mut units_run = 0;
    let mut units_reused = plan.extracts.len() - plan.pending_extracts();
    // A backup that cannot be extracted (truncated, damaged) does not stop the others, nor
    // the diffs that do not depend on it: they finish and are recorded, and the run then
    // fails naming it. After the file is replaced, the rerun does only what is left.
    let mut broken = None;
    let mut records = Vec::new();
    if stages == Stages::Extract {
        let pending = plan.pending_extracts();
        let extracted = extract_pending(&mut plan, config, &paths, &budget);
        units_run += pending - plan.pending_extracts();
        extracted?;
        remove_stale_dates(&plan, &paths, stages)?;
    } else {
        if stages != Stages::All && plan.pending_extracts() > 0 {
            bail!(
                "{} backup(s) are not extracted (or changed since): run `migrate extract` first",
                plan.pending_extracts()
            );
        }
        remove_stale_dates(&plan, &paths, stages)?;
        let spark = match (stages, &config.diffs_from) {
            (Stages::Emit, Some(from)) => Some(SparkResult::open(from, config)?),
            (Stages::Emit, None) => bail!("emit needs the Spark job's result (--from)"),
            _ => None,
        };
        let pending = plan.pending_extracts();
        let input = DiffInput {
            plan: &plan,
            config,
            paths: &paths,
            spark: spark.as_ref(),
            budget: budget.bytes,
            extracting: None,
        };
        let (extracted, diffed) = if stages == Stages::All {
            extract_and_diff(input, &budget, &mut records)
        } else {
            (None, diff_all(input, &mut records))
        };
        let extracted = extracted.map(|e| e.record(&mut plan)).transpose();
        units_run += pending - plan.pending_extracts();
        let extracted = match extracted {
            Err(e) if interrupt::requested() => return Err(e),
            extracted => extracted,
        };
        let (ran, reused) = diffed?;
        units_run += ran;
        units_reused += reused;
        broken = extracted.err();
    }
    if let Some(error) = broken {
        return Err(after_broken_extracts(error, &plan));
    }
    let mut summary = summarize(&plan, &records, units_run, units_reused, started);
    if stages != Stages::Extract {
        if let Some(info) = plan.extracts.last().and_then(|u| u.done.as_ref()) {
            let layout = info.layout(config)?;
            summary.lag = Some(layout.lag_description());
            summary.no_lag = !layout.has_lag();
        }
        let json = serde_json::to_string_pretty(&summary)? + "\n";
        write_file(&paths.summary, |out| Ok(out.write_all(json.as_bytes())?))?;
        let last = plan.extracts.last().and_then(|u| u.done.as_ref());
        if let Some(info) = last {
            let table = OutputTable {
                table: info.table.clone(),
                key: config.key.clone(),
                id_column: config.id_column.clone(),
                partition_column: config.partition_column.clone(),
                ignore_columns: config.ignore_columns.clone(),
                time_column: config.time_column.clone(),
                target_table: config.target_table.clone(),
                target_definition: config.target.as_ref().map(|t| t.definition.clone()),
            };
            let json = serde_json::to_string_pretty(&table)? + "\n";
            write_file(&paths.table, |out| Ok(out.write_all(json.as_bytes())?))?;
        }
    }
    Ok(summary)
}

/// Extracts the pending backups while their diffs run: each backup's units start once it and
/// the backup before it are saved. Returns what extraction did and what the diffs did.
fn extract_and_diff(
    input: DiffInput,
    budget: &Budget,
    records: &mut Vec<DiffRecord>,
) -> (Option<Extracted>, Result<(usize, usize)>) {
    let (plan, config, paths) = (input.plan, input.config, input.paths);
    std::thread::scope(|scope| {
        let (saved, extracts) = std::sync::mpsc::channel();
        let extraction = scope.spawn(move || {
            let saved = move |index, info: &PartitionInfo| {
                // A closed channel: the diffs stopped; extraction goes on, and is recorded.
                let _ = saved.send((index, info.clone()));
            };
            extract_each(plan, config, paths, budget, &saved)
        });
        let input = DiffInput {
            extracting: Some((extracts, extraction_bytes(budget, config.jobs))),
            ..input
        };
        let diffed = diff_all(input, records);
        let extracted = extraction
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (Some(extracted), diffed)
    })
}

/// The error of a run whose extraction failed for some backups, once everything that does
/// not depend on them is done: the failure, the diffs left waiting, and what to do.
fn after_broken_extracts(error: anyhow::Error, plan: &Plan) -> anyhow::Error {
    let missing: Vec<usize> = (0..plan.extracts.len())
        .filter(|&i| plan.extracts[i].done.is_none())
        .collect();
    // A backup's diffs need it and the backup before it.
    let waiting: Vec<String> = (0..plan.extracts.len())
        .filter(|i| missing.contains(i) || (i > &0 && missing.contains(&(i - 1))))
        .map(|i| plan.extracts[i].backup.stamp())
        .collect();
    let files: Vec<String> = (missing.iter())
        .map(|&i| plan.extracts[i].backup.path.display().to_string())
        .collect();
    anyhow!(
        "{error:#}\n{} backup(s) could not be extracted: {}. Every other extract, and the \
         diffs of every backup but {}, are done and recorded; replace the file(s) and run the \
         same command again: it does only what is left",
        files.len(),
        files.join(", "),
        waiting.join(", ")
    )
}

/// `extract --dates`: one machine's share of the extraction into a work folder that others
/// may be filling at the same time. It holds the folder's lock shared and each selected
/// date's exclusively, and touches nothing outside its dates: no other date's partitions
/// or temporary folders, and no stale dates (the next whole command removes those).
fn extract_dates(
    config: &Config,
    paths: &Paths,
    budget: &Budget,
    started: Instant,
) -> Result<RunSummary> {
    let mut plan = Plan::new(config, paths)?;
    let dates: Vec<String> = plan.extracts.iter().map(|u| u.backup.stamp()).collect();
    let _locks = lock_dates(&config.work, &dates)?;
    // Now that no one else may write them, look again at what is done.
    plan = Plan::new(config, paths)?;
    let leftovers = remove_leftovers_of(paths, &dates)?;
    if leftovers > 0 {
        info!("removed {leftovers} temporary folder(s) left by an interrupted extract");
    }
    info!(
        "{} backups selected by --dates {} ({} to {})",
        dates.len(),
        config.dates.as_ref().expect("--dates"),
        dates[0],
        dates[dates.len() - 1]
    );
    let reused = plan.extracts.len() - plan.pending_extracts();
    let ran = extract_pending(&mut plan, config, paths, budget)?;
    Ok(summarize(&plan, &[], ran, reused, started))
}

/// Removes what earlier runs left for backups that are no longer in the folder, so the
/// output always equals what a fresh run over the current backups would write.
fn remove_stale_dates(plan: &Plan, paths: &Paths, stages: Stages) -> Result<()> {
    let dates: Vec<String> = plan.discovery.backups.iter().map(|b| b.stamp()).collect();
    let roots = if stages == Stages::Extract {
        vec![paths.partitions.as_path()]
    } else {
        paths.dated_roots().to_vec()
    };
    for root in roots {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        let is_partitions = root == paths.partitions.as_path();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let current = dates
                .iter()
                .any(|date| name == *date || (is_partitions && name == partition_dir_name(date)));
            if !current {
                info!("removing {} (its backup is gone)", entry.path().display());
                remove(&entry.path())?;
            }
        }
    }
    Ok(())
}

fn summarize(
    plan: &Plan,
    records: &[DiffRecord],
    units_run: usize,
    units_reused: usize,
    started: Instant,
) -> RunSummary {
    let mut sources: BTreeMap<String, SourceSummary> = BTreeMap::new();
    let mut revisions: BTreeMap<String, Revisions> = BTreeMap::new();
    for record in records {
        let totals = (sources.entry(record.source.clone())).or_insert_with(|| SourceSummary {
            negative_lag_rows: Some(0),
            ..SourceSummary::default()
        });
        totals.negative_lag_rows = (totals.negative_lag_rows)
            .zip(record.negative_lag_rows)
            .map(|(sum, rows)| sum + rows);
        totals.rows_seen += record.rows;
        totals.added += record.added;
        totals.changed += record.changed;
        totals.removed += record.removed;
        if record.made_now {
            totals.seconds += record.seconds;
            totals.units_run += 1;
        }
        revisions
            .entry(record.source.clone())
            .or_default()
            .merge(&record.revisions);
    }
    for (source, totals) in sources.iter_mut() {
        totals.backfill = Backfill::new(&revisions[source], totals.added + totals.changed);
    }
    RunSummary {
        backups: plan.discovery.backups.iter().map(|b| b.stamp()).collect(),
        gaps: plan.discovery.gaps.iter().map(|g| g.to_string()).collect(),
        sql_bytes: plan
            .extracts
            .iter()
            .filter_map(|u| u.done.as_ref())
            .map(|i| i.sql_bytes)
            .sum(),
        sources,
        lag: None,
        no_lag: false,
        units_run,
        units_reused,
        seconds: started.elapsed().as_secs_f64(),
    }
}
