//! Running the diff stage's pending units, on up to `--jobs` workers within the memory
//! budget. A backup's units start as soon as it and the backup before it are extracted, so
//! that diffs fill the cores while later backups are still extracted; finished units are
//! made durable by a thread of their own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use tracing::{debug, info, warn};

use crate::config::target::TargetPlan;
use crate::config::{Config, PartitionFormat};
use crate::dump::TableDef;
use crate::run::memory_limit::current_rss;
use crate::run::plan::{DiffUnit, Plan};
use crate::run::progress::{log_item, ItemLine, Progress};
use crate::run::schedule::{
    buckets_for, estimate_diff_bytes, merge_batch_rows, release_free_memory,
    release_free_memory_if_large, run_fed_within_budget, WorkQueue, SMALL_UNIT_ROWS,
};
use crate::stages::diff::merge::{write_part, Parts, SortedRows};
use crate::stages::diff::spark::SparkResult;
use crate::stages::diff::{
    bucket_column, diff, on_this_thread, read_diff_input, table_bucket_column, DiffResult,
};
use crate::stages::emit::{write_issues, write_removals, EmitContext};
use crate::stages::extract::PartitionInfo;
use crate::workdir::atomic::{commit, StagedFile, Staging, COMMIT_QUEUE};
use crate::workdir::interrupt;
use crate::workdir::state::{remove, DiffRecord, Journal, Paths, SPLIT_PREFIX};

/// Extracts finished while the diff stage runs: each backup's index in the plan and its
/// partitions, as they are saved; the sender is dropped when extraction is over.
pub type Extracts = mpsc::Receiver<(usize, PartitionInfo)>;

/// What the diff stage is given.
pub struct DiffInput<'a> {
    pub plan: &'a Plan,
    pub config: &'a Config,
    pub paths: &'a Paths,
    pub spark: Option<&'a SparkResult>,
    /// The memory budget, in bytes.
    pub budget: u64,
    /// Extracts still to come, and the memory extraction holds until they are all in.
    pub extracting: Option<(Extracts, u64)>,
}

/// Runs every pending diff unit, each once it and the backup before it are extracted;
/// returns (units run, units reused) and adds every unit's record to `records`.
pub fn diff_all(input: DiffInput, records: &mut Vec<DiffRecord>) -> Result<(usize, usize)> {
    let DiffInput {
        plan,
        config,
        paths,
        spark,
        budget,
        extracting,
    } = input;
    let (extracts, reserved) = match extracting {
        Some((extracts, reserved)) => (Some(extracts), reserved),
        None => (None, 0),
    };
    let stage = DiffStage {
        plan,
        config,
        paths,
        spark,
        budget,
        tally: BackupTally::default(),
    };
    let mut feeder = Feeder::new(&stage, config.chain_piece_rows.unwrap_or(CHAIN_PIECE_ROWS));
    // The units whose backups are extracted already, before anything is written.
    let mut kept = Vec::new();
    feeder.plan_ready(0..plan.extracts.len(), &mut kept)?;
    if let Some(spark) = spark {
        // Before anything is written: every pending unit must be in the result.
        let mut pending: Vec<&Ready> = feeder.waiting.values().flatten().collect();
        pending.sort_by_key(|r| r.unit.index);
        spark.check_covers(pending.into_iter().map(|r| &r.unit.inputs))?;
    }
    let journal = Journal::start(&paths.journal, kept.iter())?;
    records.extend(kept);
    let queue = WorkQueue::new(reserved);
    let (finished, to_commit) = mpsc::sync_channel(COMMIT_QUEUE);
    let committer = std::thread::spawn(move || commit_finished(to_commit, journal));
    let progress = DiffProgress::default();
    let done = std::thread::scope(|scope| {
        let feeding = scope.spawn(|| {
            let fed = feeder.feed(extracts, &queue, &finished, records);
            match &fed {
                Ok(()) => {
                    progress.start(feeder.pending as u64);
                    queue.close();
                }
                Err(_) => queue.fail(),
            }
            fed.map(|()| (feeder.pending, feeder.reused))
        });
        let done = run_fed_within_budget(
            &queue,
            budget,
            config.jobs,
            current_rss,
            |chain| run_chain(&stage, chain, &finished, &progress),
            |records, memory| {
                let units: Vec<String> = records
                    .iter()
                    .map(|r| format!("{} {}", r.inputs.date, r.source))
                    .collect();
                debug!(
                    "{}: estimated peak {:.0} MB, observed {:.0} MB (the process, with the \
                     units beside it); estimates are now scaled by {:.2}",
                    units.join(", "),
                    memory.estimate as f64 / 1e6,
                    memory.peak as f64 / 1e6,
                    memory.correction
                );
            },
        );
        let fed = feeding.join().expect("the feeder does not panic");
        (fed, done)
    });
    drop(finished);
    // What the committer met comes first: a worker's error may only be its consequence.
    committer.join().expect("the committer does not panic")?;
    let (fed, done) = done;
    let (pending, reused) = fed?;
    let done: Vec<DiffRecord> = done?.into_iter().flatten().collect();
    records.extend(done);
    // Units finish in any order; sums in the summary must not depend on it.
    records.sort_by(|a, b| (&a.inputs.date, &a.source).cmp(&(&b.inputs.date, &b.source)));
    progress.finish();
    Ok((pending, reused))
}

/// A pending unit whose backups are extracted: the unit, the buckets it is split into, its
/// memory estimate (of one bucket), and the extracts it compares.
struct Ready {
    unit: DiffUnit,
    buckets: usize,
    estimate: u64,
    current: Arc<PartitionInfo>,
    previous: Option<Arc<PartitionInfo>>,
}

/// Turns extracts, as they are saved, into diff units, and hands them to the workers in
/// pieces of chains (`chains`).
struct Feeder<'a> {
    stage: &'a DiffStage<'a>,
    piece_rows: u64,
    /// Each backup's extract, once saved.
    extracts: Vec<Option<Arc<PartitionInfo>>>,
    /// Backups whose units are planned.
    planned: Vec<bool>,
    /// Ready units not handed on yet, by source (file stem).
    waiting: BTreeMap<String, Vec<Ready>>,
    pending: usize,
    reused: usize,
    /// Units handed on before extraction was over.
    early: usize,
    /// Chains handed on, and the sources they are of.
    chains: usize,
    sources: BTreeSet<String>,
}

impl<'a> Feeder<'a> {
    fn new(stage: &'a DiffStage<'a>, piece_rows: u64) -> Feeder<'a> {
        let extracts = (stage.plan.extracts.iter())
            .map(|u| u.done.clone().map(Arc::new))
            .collect::<Vec<_>>();
        Feeder {
            stage,
            piece_rows,
            planned: vec![false; extracts.len()],
            extracts,
            waiting: BTreeMap::new(),
            pending: 0,
            reused: 0,
            early: 0,
            chains: 0,
            sources: BTreeSet::new(),
        }
    }

    /// Plans the units of each backup of `indices` that is extracted, as is the backup before
    /// it (a backup that could not be extracted leaves its diffs and the next backup's
    /// waiting); units finished earlier go to `kept`, the others wait to be handed on.
    fn plan_ready(
        &mut self,
        indices: impl IntoIterator<Item = usize>,
        kept: &mut Vec<DiffRecord>,
    ) -> Result<()> {
        let DiffStage {
            plan,
            config,
            paths,
            ..
        } = *self.stage;
        for index in indices {
            let previous = match index.checked_sub(1) {
                Some(i) => match &self.extracts[i] {
                    Some(info) => Some(info.clone()),
                    None => continue,
                },
                None => None,
            };
            let (Some(current), false) = (self.extracts[index].clone(), self.planned[index]) else {
                continue;
            };
            self.planned[index] = true;
            let units = plan.diff_units_of(index, &current, previous.as_deref(), config, paths);
            remove_stale_sources(&plan.extracts[index].backup.stamp(), &units, config, paths)?;
            for unit in units {
                if let Some(record) = unit.done {
                    debug!(
                        "{} {}: finished earlier, kept",
                        unit.inputs.date, unit.source
                    );
                    self.reused += 1;
                    kept.push(record);
                    continue;
                }
                let (buckets, estimate) = self.stage.buckets(&unit, &current)?;
                self.pending += 1;
                self.stage.tally.add(index);
                let ready = Ready {
                    estimate,
                    unit,
                    buckets,
                    current: current.clone(),
                    previous: previous.clone(),
                };
                (self.waiting.entry(ready.unit.stem.clone()).or_default()).push(ready);
            }
        }
        Ok(())
    }

    /// Hands on the units planned so far, then those of each extract as it is saved, until
    /// extraction is over; then whatever still waits. Units found finished earlier in
    /// backups extracted now are recorded again in the journal (`finished`).
    fn feed(
        &mut self,
        extracts: Option<Extracts>,
        queue: &WorkQueue<Vec<Ready>>,
        finished: &Finished,
        records: &mut Vec<DiffRecord>,
    ) -> Result<()> {
        let Some(extracts) = extracts else {
            self.hand_on(queue, true);
            self.log_chains();
            return Ok(());
        };
        self.hand_on(queue, false);
        while let Ok(first) = extracts.recv() {
            // Every extract saved by now: a source's units of several backups go as one
            // piece, its partitions read once.
            let mut kept = Vec::new();
            for (index, info) in std::iter::once(first).chain(extracts.try_iter()) {
                self.extracts[index] = Some(Arc::new(info));
                let next = (index + 1 < self.planned.len()).then_some(index + 1);
                self.plan_ready(std::iter::once(index).chain(next), &mut kept)?;
            }
            for record in kept {
                finished
                    .send((record.clone(), Vec::new()))
                    .map_err(|_| anyhow!("stopped: finished units could not be saved"))?;
                records.push(record);
            }
            self.hand_on(queue, false);
        }
        queue.unreserve();
        debug!(
            "{} of {} diff unit(s) handed on before extraction was over",
            self.early, self.pending
        );
        self.hand_on(queue, true);
        self.log_chains();
        Ok(())
    }

    /// Says how the units went to the workers: one chain per source, or more when chains
    /// were cut into pieces (`chains`) or handed on as backups were extracted.
    fn log_chains(&self) {
        debug!(
            "{} diff unit(s) in {} chain(s) of {} source(s)",
            self.pending,
            self.chains,
            self.sources.len()
        );
    }

    /// Hands the waiting units to `queue` as chains: every one at the `end` of extraction;
    /// before it, a source of small units only once it has a piece's worth of rows (its
    /// chain is cut there anyway, and a shorter piece would read a partition again for
    /// little), any other source at once.
    fn hand_on(&mut self, queue: &WorkQueue<Vec<Ready>>, end: bool) {
        for (stem, units) in std::mem::take(&mut self.waiting) {
            self.sources.insert(stem.clone());
            let small = units.iter().all(|r| r.unit.rows < SMALL_UNIT_ROWS);
            let rows: u64 = units.iter().map(|r| r.unit.rows).sum();
            if !end && small && rows < self.piece_rows {
                self.waiting.insert(stem, units);
                continue;
            }
            let mut chains = chains(units, self.piece_rows);
            if !end && small {
                // The last piece may be short: it waits for more.
                if let Some(last) = chains.pop() {
                    let last_rows: u64 = last.1.iter().map(|r| r.unit.rows).sum();
                    if last_rows >= self.piece_rows {
                        chains.push(last);
                    } else {
                        self.waiting.insert(stem, last.1);
                    }
                }
            }
            self.chains += chains.len();
            for (estimate, chain) in chains {
                if !end {
                    self.early += chain.len();
                }
                queue.push(estimate, chain);
            }
        }
    }
}

/// The queue of finished units to make durable: each unit's record and files (none for a
/// unit found finished earlier, whose record goes to the journal again).
type Finished = mpsc::SyncSender<(DiffRecord, Vec<StagedFile>)>;

/// The diff stage's bar: started once every unit is known (when extraction is over); units
/// finished before are counted until then.
#[derive(Default)]
struct DiffProgress {
    state: Mutex<(u64, Option<Progress>)>,
}

impl DiffProgress {
    fn start(&self, total: u64) {
        let mut state = self.state.lock().expect("not poisoned");
        let progress = Progress::units("diff", total);
        progress.advance(state.0);
        state.1 = Some(progress);
    }

    fn advance(&self) {
        let mut state = self.state.lock().expect("not poisoned");
        match &state.1 {
            Some(progress) => progress.advance(1),
            None => state.0 += 1,
        }
    }

    fn finish(&self) {
        if let Some(progress) = &self.state.lock().expect("not poisoned").1 {
            progress.finish();
        }
    }
}

/// Runs the units of one chain in date order, each partition read once for the unit that
/// has it as the newer side and kept for the next.
fn run_chain(
    stage: &DiffStage,
    chain: Vec<Ready>,
    finished: &Finished,
    progress: &DiffProgress,
) -> Result<Vec<DiffRecord>> {
    let mut carried = None;
    let mut records = Vec::new();
    for ready in chain {
        interrupt::check()?;
        let unit = &ready.unit;
        let mut run = || run_diff_unit(stage, &ready, &mut carried);
        let (record, files) = if unit.rows < SMALL_UNIT_ROWS {
            on_this_thread(run)?
        } else {
            run()?
        };
        finished
            .send((record.clone(), files))
            .map_err(|_| anyhow!("stopped: finished units could not be saved"))?;
        // A small unit's memory is kept for the next: returning it and faulting it in again
        // at every unit cost more than its size matters to the budget.
        if unit.rows >= SMALL_UNIT_ROWS {
            release_free_memory_if_large(stage.budget);
        }
        progress.advance();
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
        if let Some(line) = stage.tally.finished(unit.index, &record) {
            log_item(line);
        }
        records.push(record);
    }
    Ok(records)
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
#[derive(Default)]
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
    /// Counts one more unit of backup `index` to run.
    fn add(&self, index: usize) {
        let mut pending = self.pending.lock().expect("not poisoned");
        pending.entry(index).or_default().0 += 1;
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
fn chains(work: Vec<Ready>, piece_rows: u64) -> Vec<(u64, Vec<Ready>)> {
    let mut alone = Vec::new();
    let mut by_source: BTreeMap<String, Vec<Ready>> = BTreeMap::new();
    for ready in work {
        if ready.buckets > 1 {
            alone.push((ready.estimate, vec![ready]));
        } else {
            (by_source.entry(ready.unit.stem.clone()).or_default()).push(ready);
        }
    }
    for mut units in by_source.into_values() {
        units.sort_by_key(|r| r.unit.index);
        let small = units.iter().all(|r| r.unit.rows < SMALL_UNIT_ROWS);
        let piece_rows = if small { piece_rows } else { u64::MAX };
        for piece in pieces(units, |r| r.unit.rows, piece_rows) {
            let estimate = piece.iter().map(|r| r.estimate).max();
            alone.push((estimate.unwrap_or(0), piece));
        }
    }
    alone
}

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
    tally: BackupTally,
}

impl DiffStage<'_> {
    /// Into how many buckets `unit` is split to fit the budget (its backup's extract is
    /// `info`), and the memory estimate of one.
    fn buckets(&self, unit: &DiffUnit, info: &PartitionInfo) -> Result<(usize, u64)> {
        let (config, budget) = (self.config, self.budget);
        let mut buckets = buckets_for(unit.rows, budget, config.max_part_rows);
        if buckets > 1 {
            let layout = info.layout(config)?;
            let parquet = config.partition_format == PartitionFormat::Parquet;
            // Spark's result has the table's columns only, no key fingerprint.
            let column = match self.spark {
                Some(_) => table_bucket_column(&layout),
                None => bucket_column(&layout, parquet),
            };
            if column.is_none() {
                warn!(
                    "{} {}: too large for the memory budget, but {} of a table whose key has \
                     no integer column cannot be split; it runs whole{}",
                    unit.inputs.date,
                    unit.source,
                    if self.spark.is_some() {
                        "the Spark job's result"
                    } else {
                        "CSV partitions"
                    },
                    if self.spark.is_some() {
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
        Ok((buckets, estimate))
    }
}

fn run_diff_unit(
    stage: &DiffStage,
    ready: &Ready,
    carried: &mut Option<Carried>,
) -> Result<(DiffRecord, Vec<StagedFile>)> {
    let DiffStage {
        plan,
        config,
        paths,
        spark,
        budget,
        ..
    } = *stage;
    let (unit, buckets) = (&ready.unit, ready.buckets);
    let started = Instant::now();
    let mut read_seconds = 0.0;
    let current = &plan.extracts[unit.index];
    let info = &*ready.current;
    let layout = info.layout(config)?;
    let previous = (ready.previous.as_deref()).map(|i| (&plan.extracts[unit.index - 1], i));
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
