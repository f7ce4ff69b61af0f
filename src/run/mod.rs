//! The whole run: discover → extract → diff → emit, each stage reading the files the one
//! before it wrote, skipping units that are finished and still valid.

pub mod extracting;
pub mod loading;
pub mod memory_limit;
pub mod plan;
pub mod progress;
pub mod schedule;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::config::target::TargetPlan;
use crate::config::{Config, PartitionFormat, Stages};
use crate::dump::TableDef;
use crate::run::extracting::extract_pending;
use crate::run::memory_limit::{budget, current_rss, Budget};
use crate::run::plan::{DiffUnit, Plan};
use crate::run::progress::{ItemLine, Progress};
use crate::run::schedule::{
    buckets_for, estimate_diff_bytes, keep_freed_memory, merge_batch_rows, release_free_memory,
    release_free_memory_if_large, run_within_budget, SMALL_UNIT_ROWS,
};
use crate::stages::diff::merge::{write_part, Parts, SortedRows};
use crate::stages::diff::spark::SparkResult;
use crate::stages::diff::{
    bucket_column, diff, on_this_thread, read_diff_input, table_bucket_column, DiffResult,
};
use crate::stages::discover::discover;
use crate::stages::emit::{write_issues, write_removals, EmitContext};
use crate::stages::extract::PartitionInfo;
use crate::values::backfill::{Backfill, Revisions};
use crate::workdir::atomic::{commit, write_file, StagedFile, Staging, COMMIT_QUEUE};
use crate::workdir::interrupt;
use crate::workdir::lock::{lock_dates, lock_work_folder};
use crate::workdir::state::{
    partition_dir_name, remove, remove_leftovers, remove_leftovers_of, DiffRecord, Journal,
    OutputTable, Paths, SPLIT_PREFIX,
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
    if matches!(stages, Stages::All | Stages::Extract) {
        let pending = plan.pending_extracts();
        let extracted = extract_pending(&mut plan, config, &paths, &budget);
        units_run += pending - plan.pending_extracts();
        match extracted {
            Ok(_) => {}
            Err(e) if interrupt::requested() || stages == Stages::Extract => return Err(e),
            Err(e) => broken = Some(e),
        }
    } else if plan.pending_extracts() > 0 {
        bail!(
            "{} backup(s) are not extracted (or changed since): run `migrate extract` first",
            plan.pending_extracts()
        );
    }
    remove_stale_dates(&plan, &paths, stages)?;
    let mut records = Vec::new();
    if stages != Stages::Extract {
        let spark = match (stages, &config.diffs_from) {
            (Stages::Emit, Some(from)) => Some(SparkResult::open(from, config)?),
            (Stages::Emit, None) => bail!("emit needs the Spark job's result (--from)"),
            _ => None,
        };
        let (ran, reused) = diff_all(&plan, config, &paths, spark.as_ref(), &budget, &mut records)?;
        units_run += ran;
        units_reused += reused;
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

/// Runs every pending diff unit, backup by backup; returns (units run, units reused).
fn diff_all(
    plan: &Plan,
    config: &Config,
    paths: &Paths,
    spark: Option<&SparkResult>,
    budget: &Budget,
    records: &mut Vec<DiffRecord>,
) -> Result<(usize, usize)> {
    let mut units: Vec<DiffUnit> = Vec::new();
    for index in 0..plan.extracts.len() {
        // None: this backup, or the one before it, could not be extracted; its diffs wait.
        let Some(date_units) = plan.diff_units(index, config, paths) else {
            continue;
        };
        remove_stale_sources(
            &plan.extracts[index].backup.stamp(),
            &date_units,
            config,
            paths,
        )?;
        units.extend(date_units);
    }
    let pending = units.iter().filter(|u| u.done.is_none()).count();
    let reused = units.len() - pending;
    if let Some(spark) = spark {
        // Before anything is written: every pending unit must be in the result.
        let pending = units.iter().filter(|u| u.done.is_none());
        spark.check_covers(pending.map(|u| &u.inputs))?;
    }
    let budget = budget.bytes;
    let stage = DiffStage {
        plan,
        config,
        paths,
        spark,
        budget,
    };
    let mut work = Vec::new();
    for unit in units {
        match unit.done {
            Some(record) => {
                debug!(
                    "{} {}: finished earlier, kept",
                    unit.inputs.date, unit.source
                );
                records.push(record);
            }
            None => {
                let mut buckets = buckets_for(unit.rows, budget, config.max_part_rows);
                if buckets > 1 {
                    let info = stage.plan.extracts[unit.index]
                        .done
                        .as_ref()
                        .expect("extracted");
                    let layout = info.layout(config)?;
                    let parquet = config.partition_format == PartitionFormat::Parquet;
                    // Spark's result has the table's columns only, no key fingerprint.
                    let column = match stage.spark {
                        Some(_) => table_bucket_column(&layout),
                        None => bucket_column(&layout, parquet),
                    };
                    if column.is_none() {
                        warn!(
                            "{} {}: too large for the memory budget, but {} of a table whose \
                             key has no integer column cannot be split; it runs whole{}",
                            unit.inputs.date,
                            unit.source,
                            if stage.spark.is_some() {
                                "the Spark job's result"
                            } else {
                                "CSV partitions"
                            },
                            if stage.spark.is_some() {
                                ""
                            } else {
                                " (extract with --partition-format parquet to split it)"
                            }
                        );
                        buckets = 1;
                    }
                }
                let estimate = estimate_diff_bytes(unit.rows / buckets as u64);
                debug!(
                    "{} {}: {} rows in both partitions, estimated peak {:.0} MB{}",
                    unit.inputs.date,
                    unit.source,
                    unit.rows,
                    estimate as f64 / 1e6,
                    if buckets > 1 {
                        format!(" per part, split into {buckets} parts")
                    } else {
                        String::new()
                    }
                );
                if buckets > 1 {
                    info!(
                        "{} {}: too large for the memory budget of {:.0} MB; split into {buckets} parts",
                        unit.inputs.date,
                        unit.source,
                        budget as f64 / 1e6
                    );
                }
                work.push((estimate, (unit, buckets)));
            }
        }
    }
    let journal = Journal::start(&paths.journal, records.iter())?;
    let progress = Progress::units("diff", pending as u64);
    let per_backup = BackupTally::new(&work);
    let (finished, to_commit) = std::sync::mpsc::sync_channel(COMMIT_QUEUE);
    let committer = std::thread::spawn(move || commit_finished(to_commit, journal));
    let done = run_within_budget(
        chains(work, config.chain_piece_rows.unwrap_or(CHAIN_PIECE_ROWS)),
        budget,
        config.jobs,
        current_rss,
        |chain| {
            let mut carried = None;
            let mut records = Vec::new();
            for (unit, buckets) in chain {
                interrupt::check()?;
                let mut run = || run_diff_unit(&stage, &unit, buckets, &mut carried);
                let (record, files) = if unit.rows < SMALL_UNIT_ROWS {
                    on_this_thread(run)?
                } else {
                    run()?
                };
                finished
                    .send((record.clone(), files))
                    .map_err(|_| anyhow!("stopped: finished units could not be saved"))?;
                // A small unit's memory is kept for the next: returning it and faulting it
                // in again at every unit cost more than its size matters to the budget.
                if unit.rows >= SMALL_UNIT_ROWS {
                    release_free_memory_if_large(stage.budget);
                }
                progress.advance(1);
                if tracing::enabled!(tracing::Level::DEBUG) {
                    ItemLine {
                        message: format!(
                            "{} {}: {} rows, {} added, {} changed, {} removed",
                            unit.inputs.date,
                            unit.source,
                            record.rows,
                            record.added,
                            record.changed,
                            record.removed
                        ),
                        event: "diffed",
                        date: unit.inputs.date.clone(),
                        source: Some(unit.source.clone()),
                        rows: record.rows,
                        added: Some(record.added),
                        changed: Some(record.changed),
                        removed: Some(record.removed),
                        ..ItemLine::default()
                    }
                    .debug();
                }
                if let Some(line) = per_backup.finished(unit.index, &record) {
                    progress.log(line);
                }
                records.push(record);
            }
            Ok(records)
        },
        |records, memory| {
            let units: Vec<String> = records
                .iter()
                .map(|r| format!("{} {}", r.inputs.date, r.source))
                .collect();
            debug!(
                "{}: estimated peak {:.0} MB, observed {:.0} MB (the process, with the units \
                 beside it); estimates are now scaled by {:.2}",
                units.join(", "),
                memory.estimate as f64 / 1e6,
                memory.peak as f64 / 1e6,
                memory.correction
            );
        },
    );
    drop(finished);
    // What the committer met comes first: a worker's error may only be its consequence.
    committer.join().expect("the committer does not panic")?;
    let done: Vec<DiffRecord> = done?.into_iter().flatten().collect();
    records.extend(done);
    // Units finish in any order; sums in the summary must not depend on it.
    records.sort_by(|a, b| (&a.inputs.date, &a.source).cmp(&(&b.inputs.date, &b.source)));
    progress.finish();
    Ok((pending, reused))
}

/// Makes finished units durable, on a thread of its own so that the workers do not wait on
/// the disk: takes every unit waiting, flushes their files and renames them into place
/// (each folder flushed once for all of them), then appends their records to the journal.
/// A unit thus counts as done only once its files are on disk; after a crash the units
/// still queued are redone.
fn commit_finished(
    queue: std::sync::mpsc::Receiver<(DiffRecord, Vec<StagedFile>)>,
    mut journal: Journal,
) -> Result<()> {
    while let Ok(first) = queue.recv() {
        let (records, files): (Vec<DiffRecord>, Vec<Vec<StagedFile>>) =
            std::iter::once(first).chain(queue.try_iter()).unzip();
        commit(files.into_iter().flatten().collect())?;
        journal.append(&records)?;
    }
    Ok(())
}

/// Counts each backup's pending diff units down, so that the log has one line per backup
/// (a history of 150 backups of 30 sources is 4,500 units) when its last unit finishes.
struct BackupTally {
    /// By backup index: units still to run, and the sums of the finished ones.
    pending: std::sync::Mutex<BTreeMap<usize, (usize, DiffRecordSums)>>,
}

#[derive(Default)]
struct DiffRecordSums {
    sources: usize,
    rows: u64,
    added: u64,
    changed: u64,
    removed: u64,
}

impl BackupTally {
    fn new(work: &[(u64, (DiffUnit, usize))]) -> BackupTally {
        let mut pending: BTreeMap<usize, (usize, DiffRecordSums)> = BTreeMap::new();
        for (_, (unit, _)) in work {
            pending.entry(unit.index).or_default().0 += 1;
        }
        BackupTally {
            pending: std::sync::Mutex::new(pending),
        }
    }

    /// Records a finished unit; the backup's line when it was its last.
    fn finished(&self, index: usize, record: &DiffRecord) -> Option<ItemLine> {
        let mut pending = self.pending.lock().expect("not poisoned");
        let (left, sums) = pending.get_mut(&index)?;
        *left -= 1;
        sums.sources += 1;
        sums.rows += record.rows;
        sums.added += record.added;
        sums.changed += record.changed;
        sums.removed += record.removed;
        if *left > 0 {
            return None;
        }
        let (_, sums) = pending.remove(&index)?;
        Some(ItemLine {
            message: format!(
                "diffed {}: {} source(s), {} rows, {} added, {} changed, {} removed",
                record.inputs.date, sums.sources, sums.rows, sums.added, sums.changed, sums.removed
            ),
            event: "diffed",
            date: record.inputs.date.clone(),
            rows: sums.rows,
            sources: Some(sums.sources),
            added: Some(sums.added),
            changed: Some(sums.changed),
            removed: Some(sums.removed),
            ..ItemLine::default()
        })
    }
}

/// Groups the units of each source into one chain, in date order, so that the partition
/// read as the newer side of one pair is the older side of the next without being read
/// again. A chain needs the memory of its largest unit. Units split into buckets stay alone.
/// A chain of small units is cut into pieces of `piece_rows` (`pieces`), which run side
/// by side.
fn chains(work: Vec<Pending>, piece_rows: u64) -> Vec<(u64, Vec<(DiffUnit, usize)>)> {
    let mut alone = Vec::new();
    let mut by_source: BTreeMap<String, Vec<Pending>> = BTreeMap::new();
    for (estimate, (unit, buckets)) in work {
        if buckets > 1 {
            alone.push((estimate, vec![(unit, buckets)]));
        } else {
            (by_source.entry(unit.stem.clone()).or_default()).push((estimate, (unit, buckets)));
        }
    }
    let sources = by_source.len();
    let whole = alone.len();
    for mut units in by_source.into_values() {
        units.sort_by_key(|(_, (unit, _))| unit.index);
        let small = units
            .iter()
            .all(|(_, (unit, _))| unit.rows < SMALL_UNIT_ROWS);
        let piece_rows = if small { piece_rows } else { u64::MAX };
        for piece in pieces(units, |(_, (unit, _))| unit.rows, piece_rows) {
            let estimate = piece.iter().map(|(estimate, _)| *estimate).max();
            let units = piece.into_iter().map(|(_, unit)| unit).collect();
            alone.push((estimate.unwrap_or(0), units));
        }
    }
    if alone.len() - whole > sources {
        debug!(
            "the chains of {sources} source(s) cut into {} pieces",
            alone.len() - whole
        );
    }
    alone
}

/// A unit to run: its memory estimate, and the unit with the buckets it is split into.
type Pending = (u64, (DiffUnit, usize));

/// Rows (of both partitions, over its units) after which a chain of small units is cut.
/// Chains of a long history of small units differ in size with their sources (the small
/// series' two: 2,300 and 5,500 rows a day), and one worker ran the longer alone while the
/// other had finished: the diff stage kept 1.2–1.6 of 2 cores busy. Each cut costs a read
/// of one small partition. Chains of larger units stay whole: there a cut reads and faults
/// a large partition again, and cutting made the large series' diff no faster (measured).
const CHAIN_PIECE_ROWS: u64 = 1 << 20;

/// `units` in order, cut into consecutive pieces of at least `piece_rows` rows each (the
/// last may have fewer); one piece when `piece_rows` is `u64::MAX`.
fn pieces<T>(units: Vec<T>, rows: impl Fn(&T) -> u64, piece_rows: u64) -> Vec<Vec<T>> {
    let mut pieces = Vec::new();
    let mut piece = Vec::new();
    let mut piece_total = 0u64;
    for unit in units {
        piece_total = piece_total.saturating_add(rows(&unit));
        piece.push(unit);
        if piece_total >= piece_rows {
            pieces.push(std::mem::take(&mut piece));
            piece_total = 0;
        }
    }
    if !piece.is_empty() {
        pieces.push(piece);
    }
    pieces
}

/// A partition kept from one unit of a chain for the next: the backup it belongs to (its
/// index in the plan) and its rows.
struct Carried {
    index: usize,
    frame: polars::prelude::DataFrame,
}

/// A unit's output rows: in memory, or (a split unit) in bucket files merged as they are read.
struct UnitRows {
    issues: SortedRows,
    removed: SortedRows,
    added: usize,
    changed: usize,
    /// Rows in the newer partition.
    rows: usize,
}

impl From<DiffResult> for UnitRows {
    fn from(result: DiffResult) -> UnitRows {
        UnitRows {
            issues: SortedRows::Frame(result.issues),
            removed: SortedRows::Frame(result.removed),
            added: result.added,
            changed: result.changed,
            rows: result.rows,
        }
    }
}

/// Removes files of sources a backup pair no longer has, and output in another format.
fn remove_stale_sources(
    date: &str,
    units: &[DiffUnit],
    config: &Config,
    paths: &Paths,
) -> Result<()> {
    let roots = [
        (&paths.issues, config.format.extension()),
        (&paths.removals, config.format.removals_extension()),
    ];
    for (root, extension) in roots {
        let Ok(entries) = std::fs::read_dir(root.join(date)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !units
                .iter()
                .any(|u| name == format!("{}.{extension}", u.stem))
            {
                remove(&entry.path())?;
            }
        }
    }
    Ok(())
}

/// Names the columns added, removed or retyped between two versions of a table.
fn describe_schema_change(before: &TableDef, after: &TableDef) -> String {
    let names = |t: &TableDef| t.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    let (old, new) = (names(before), names(after));
    let mut changes = Vec::new();
    let added: Vec<_> = new.iter().filter(|c| !old.contains(c)).cloned().collect();
    let removed: Vec<_> = old.iter().filter(|c| !new.contains(c)).cloned().collect();
    if !added.is_empty() {
        changes.push(format!("column(s) {} added", added.join(", ")));
    }
    if !removed.is_empty() {
        changes.push(format!("column(s) {} removed", removed.join(", ")));
    }
    for column in &after.columns {
        if let Some(was) = before.columns.iter().find(|c| c.name == column.name) {
            if was.kind != column.kind {
                changes.push(format!(
                    "column {} changed from {:?} to {:?}",
                    column.name, was.kind, column.kind
                ));
            }
        }
    }
    if changes.is_empty() {
        changes.push(format!(
            "columns reordered from ({}) to ({})",
            old.join(", "),
            new.join(", ")
        ));
    }
    changes.join("; ")
}

/// What every diff unit of a run shares.
struct DiffStage<'a> {
    plan: &'a Plan,
    config: &'a Config,
    paths: &'a Paths,
    spark: Option<&'a SparkResult>,
    /// The memory budget, in bytes.
    budget: u64,
}

fn run_diff_unit(
    stage: &DiffStage,
    unit: &DiffUnit,
    buckets: usize,
    carried: &mut Option<Carried>,
) -> Result<(DiffRecord, Vec<StagedFile>)> {
    let DiffStage {
        plan,
        config,
        paths,
        spark,
        budget,
    } = *stage;
    let started = Instant::now();
    let mut read_seconds = 0.0;
    let current = &plan.extracts[unit.index];
    let info = current.done.as_ref().expect("extracted");
    let layout = info.layout(config)?;
    let previous = unit
        .index
        .checked_sub(1)
        .map(|i| &plan.extracts[i])
        .map(|p| (p, p.done.as_ref().expect("extracted")));
    if let Some((before, before_info)) = previous {
        if before_info.layout(config)? != layout {
            bail!(
                "the table `{}` changed between the backups of {} and {} ({}): {}. Backups \
                 with different columns cannot be compared; migrate each stretch of backups \
                 with one schema separately (a folder each)",
                config.table,
                before.backup.stamp(),
                current.backup.stamp(),
                current.backup.path.display(),
                describe_schema_change(&before_info.table, &info.table)
            );
        }
    }
    let partition = |date: &str, info: &PartitionInfo| {
        info.partitions
            .iter()
            .any(|p| p.stem == unit.stem)
            .then(|| paths.partition_file(date, &unit.stem))
    };
    let date = &unit.inputs.date;
    let context = || {
        format!(
            "source {} in the backup {}",
            unit.source,
            current.backup.path.display()
        )
    };
    let new_path = partition(date, info);
    let old_path = previous.map(|(p, i)| partition(&p.backup.stamp(), i));
    // Kept until the unit's files are written: a split unit's buckets, merged as they are read.
    let mut split_parts = None;
    let spark_rows = (info.partitions.iter())
        .find(|p| p.stem == unit.stem)
        .map_or(0, |p| p.rows as usize);
    let first = previous.is_none();
    let result = if let (Some(spark), true) = (spark, buckets <= 1) {
        let result = spark.unit(date, first, &unit.source, spark_rows, &layout, None);
        UnitRows::from(result.with_context(context)?)
    } else if buckets <= 1 {
        let new = read_diff_input(new_path.as_deref(), &layout, None)?;
        let kept = carried
            .take()
            .filter(|c| Some(c.index) == unit.index.checked_sub(1));
        let old = match (kept, old_path) {
            (_, None) => None,
            (Some(kept), Some(_)) => Some(kept.frame),
            (None, Some(path)) => Some(read_diff_input(path.as_deref(), &layout, None)?),
        };
        *carried = Some(Carried {
            index: unit.index,
            frame: new.clone(),
        });
        read_seconds = started.elapsed().as_secs_f64();
        UnitRows::from(diff(old, new, &layout).with_context(context)?)
    } else {
        // Each bucket's rows go to files of their own, merged in key order as they are
        // written out: the unit's rows (for a first backup, every row of the source) are
        // never held together.
        let scratch = tempfile::Builder::new()
            .prefix(SPLIT_PREFIX)
            .tempdir_in(&paths.work)
            .context("cannot create a folder for a split unit's buckets in the work folder")?;
        let batch_rows = merge_batch_rows(budget, buckets);
        let key: Vec<String> = layout.key_names().into_iter().map(String::from).collect();
        let mut rows = UnitRows {
            issues: SortedRows::Parts(Parts {
                files: Vec::new(),
                key: key.clone(),
                rows: 0,
                batch_rows,
            }),
            removed: SortedRows::Parts(Parts {
                files: Vec::new(),
                key,
                rows: 0,
                batch_rows,
            }),
            added: 0,
            changed: 0,
            rows: 0,
        };
        for bucket in 0..buckets {
            interrupt::check()?;
            let read = |path: &Option<PathBuf>| {
                read_diff_input(path.as_deref(), &layout, Some((bucket, buckets)))
            };
            let part = match spark {
                Some(spark) => {
                    let bucket = Some((bucket, buckets));
                    spark.unit(date, first, &unit.source, 0, &layout, bucket)
                }
                None => {
                    let new = read(&new_path)?;
                    let old = old_path.as_ref().map(read).transpose()?;
                    diff(old, new, &layout)
                }
            };
            let mut part = part.with_context(context)?;
            rows.added += part.added;
            rows.changed += part.changed;
            rows.rows += part.rows;
            for (frame, sorted, name) in [
                (&mut part.issues, &mut rows.issues, "issues"),
                (&mut part.removed, &mut rows.removed, "removed"),
            ] {
                let SortedRows::Parts(parts) = sorted else {
                    unreachable!("a split unit's rows are in parts")
                };
                let path = scratch.path().join(format!("{name}-{bucket}.parquet"));
                write_part(frame, &path, batch_rows)?;
                parts.rows += frame.height();
                parts.files.push(path);
            }
            drop(part);
            release_free_memory();
        }
        if spark.is_some() {
            rows.rows = spark_rows;
        }
        split_parts = Some(scratch);
        rows
    };
    let diffed = started.elapsed().as_secs_f64();
    let target = (config.target.as_ref())
        .map(|t| TargetPlan::new(t, &layout))
        .transpose()
        .map_err(|e| anyhow!("{e}"))
        .with_context(context)?;
    let files = Staging::default();
    let ctx = EmitContext {
        layout: &layout,
        source: &unit.source,
        date: current.backup.date,
        previous: previous.map(|(p, _)| p.backup.date),
        target_table: &config.target_table,
        format: config.format,
        chunk_rows: config.chunk_rows,
        target: target.as_ref(),
        files: &files,
    };
    let extension = config.format.extension();
    let stats = write_issues(
        &paths.issues_file(date, &unit.stem, extension),
        &result.issues,
        &result.removed,
        &ctx,
    )
    .with_context(context)?;
    if stats.from_the_future > 0 {
        warn!(
            "{date} {}: {} issue row(s) have a time_value after the backup date; they are \
             kept, with a negative lag",
            unit.source, stats.from_the_future
        );
    }
    write_removals(
        &paths.removals_file(date, &unit.stem, config.format.removals_extension()),
        &result.removed,
        &ctx,
    )?;
    drop(split_parts);
    debug!(
        "{date} {}: read {read_seconds:.2} s, diff {:.2} s, emit {:.2} s",
        unit.source,
        diffed - read_seconds,
        started.elapsed().as_secs_f64() - diffed
    );
    let record = DiffRecord {
        inputs: unit.inputs.clone(),
        source: unit.source.clone(),
        rows: result.rows as u64,
        added: result.added as u64,
        changed: result.changed as u64,
        removed: result.removed.height() as u64,
        seconds: started.elapsed().as_secs_f64(),
        revisions: stats.revisions,
        negative_lag_rows: Some(stats.from_the_future as u64),
        made_now: true,
    };
    Ok((record, files.into_files()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_are_cut_after_enough_rows_in_order() {
        let cut = |rows: &[u64], piece_rows| pieces(rows.to_vec(), |&r| r, piece_rows);
        assert_eq!(
            cut(&[3, 3, 3, 3, 3], 6),
            vec![vec![3, 3], vec![3, 3], vec![3]]
        );
        assert_eq!(cut(&[10, 1, 1, 7], 6), vec![vec![10], vec![1, 1, 7]]);
        assert_eq!(cut(&[1, 2, 3], u64::MAX), vec![vec![1, 2, 3]]);
        assert_eq!(cut(&[], 6), Vec::<Vec<u64>>::new());
        assert_eq!(cut(&[u64::MAX, 1], u64::MAX), vec![vec![u64::MAX], vec![1]]);
    }
}
