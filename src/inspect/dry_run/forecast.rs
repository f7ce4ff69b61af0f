//! The dry run's time prediction: the rates the sample measured on this machine
//! (`sample.rs`), applied to the work the plan has pending. Extraction runs `--jobs`
//! backups at once, each on up to two threads, sharing the cores; the diff runs as many
//! units at once as `--jobs` and the memory budget allow, each on polars' pool of every
//! core. The stages run one after the other.

use crate::inspect::dry_run::sample::{Measurement, Timing};

/// Issue rows of a later backup beyond its new keys, as a share of its rows: revisions,
/// which cannot be counted before the run. Delphi's history revises a few percent of a
/// table a day; `scripts/gen-backups` about 9%.
pub const ASSUMED_REVISED: f64 = 0.05;
/// The share the high end of the range allows for.
pub const HIGH_REVISED: f64 = 0.25;
/// The error the range allows for when the sample is large: the aim `scripts/bench`
/// checks (predicted against measured on its series).
pub const TYPICAL_ERROR: f64 = 0.3;
/// A sample smaller than this is dominated by fixed costs (starting threads, polars'
/// first calls): its rates are rough.
pub const SMALL_SAMPLE_BYTES: u64 = 16 << 20;
/// Time a diff unit costs beyond its rows: creating, flushing to disk and renaming its
/// files (the fixtures' 21 diff units, of a few rows each, took 0.2 s two at a time).
pub const SECONDS_PER_UNIT: f64 = 0.01;

/// The diff work pending for one backup: rows of the newer and the older partitions of
/// its pending units, and how many units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiffWork {
    pub new_rows: f64,
    pub old_rows: f64,
    pub units: usize,
    /// The first backup: every row is an issue row.
    pub first: bool,
}

/// What is pending, and what may run at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    /// SQL bytes of each backup to extract, in the order the run takes them.
    pub extracts: Vec<f64>,
    pub diffs: Vec<DiffWork>,
    /// Backups extracted at once (`--jobs`).
    pub jobs: usize,
    /// Diff units at once: `--jobs`, or fewer when the memory budget says so.
    pub diff_units_at_once: usize,
    pub cores: usize,
}

/// The rates a run goes at, from a measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// SQL bytes per second of one backup's extraction, and the cores it keeps busy.
    pub extract_bytes_per_second: f64,
    pub extract_cores: f64,
    /// CPU seconds per row: reading a partition, diffing a first backup (every row new),
    /// comparing with an older partition, formatting an issue row.
    pub read: f64,
    pub first: f64,
    pub compare: f64,
    pub emit: f64,
    /// Cores one diff unit keeps busy.
    pub diff_cores: f64,
}

impl Rates {
    pub fn of(measurement: &Measurement) -> Option<Rates> {
        let diff = measurement.diff.as_ref()?;
        let rows = diff.rows.max(1) as f64;
        let steps = [diff.read, diff.compare, diff.emit];
        let busy = Timing {
            wall: steps.iter().map(|t| t.wall).sum(),
            cpu: steps.iter().map(|t| t.cpu).sum(),
            thread_cpu: 0.0,
        };
        // CPU times, not the wall clock: they do not depend on what else the machine was
        // doing during the sample.
        let extract = measurement.extract;
        let pace = measurement.extract_seconds();
        Some(Rates {
            extract_bytes_per_second: measurement.sql_bytes as f64 / pace,
            extract_cores: (extract.cpu / pace).max(1.0),
            read: diff.read.cpu / rows,
            first: diff.first.cpu / rows,
            compare: diff.compare.cpu / rows,
            emit: diff.emit.cpu / rows,
            diff_cores: busy.cores(),
        })
    }
}

/// Predicted wall seconds per stage; `diff_high` with `HIGH_REVISED` revisions; and the
/// CPU seconds of each stage, which a busy machine does not change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    pub extract: f64,
    pub diff: f64,
    pub diff_high: f64,
    pub extract_cpu: f64,
    pub diff_cpu: f64,
}

impl Forecast {
    pub fn new(work: &Work, rates: &Rates) -> Forecast {
        let extract = extract_seconds(
            &work.extracts,
            rates.extract_bytes_per_second,
            rates.extract_cores,
            work.jobs,
            work.cores,
        );
        let cpu =
            |revised: f64| -> f64 { work.diffs.iter().map(|d| diff_cpu(d, rates, revised)).sum() };
        let diff_wall = |cpu: f64| {
            let units: usize = work.diffs.iter().map(|d| d.units).sum();
            let at_once = work.diff_units_at_once.max(1) as f64;
            let cores = (at_once * rates.diff_cores).min(work.cores.max(1) as f64);
            cpu / cores + units as f64 * SECONDS_PER_UNIT / at_once
        };
        let sql: f64 = work.extracts.iter().sum();
        Forecast {
            extract,
            diff: diff_wall(cpu(ASSUMED_REVISED)),
            diff_high: diff_wall(cpu(HIGH_REVISED)),
            extract_cpu: sql / rates.extract_bytes_per_second * rates.extract_cores,
            diff_cpu: cpu(ASSUMED_REVISED),
        }
    }

    pub fn total(&self) -> f64 {
        self.extract + self.diff
    }
}

/// CPU seconds of one backup's diff units, `revised` the share of rows revised.
fn diff_cpu(work: &DiffWork, rates: &Rates, revised: f64) -> f64 {
    if work.first {
        return work.new_rows * (rates.read + rates.first + rates.emit);
    }
    let issues = (work.new_rows - work.old_rows).max(0.0) + revised * work.new_rows;
    work.new_rows * rates.read
        + (work.new_rows + work.old_rows) / 2.0 * rates.compare
        + issues * rates.emit
}

/// Wall seconds to extract backups of `sizes` SQL bytes, `jobs` at a time in that order, each
/// going at `rate` bytes a second on `stream_cores` cores when it has them, all sharing
/// `cores` cores equally.
pub fn extract_seconds(
    sizes: &[f64],
    rate: f64,
    stream_cores: f64,
    jobs: usize,
    cores: usize,
) -> f64 {
    let jobs = jobs.max(1);
    let mut queue = sizes.iter().copied();
    let mut running: Vec<f64> = queue.by_ref().take(jobs).collect();
    let mut seconds = 0.0;
    while !running.is_empty() {
        let share = cores.max(1) as f64 / (running.len() as f64 * stream_cores.max(1.0));
        let speed = rate * share.min(1.0);
        let next = running.iter().copied().fold(f64::INFINITY, f64::min);
        seconds += next / speed;
        for left in &mut running {
            *left -= next;
        }
        running.retain(|left| *left > 0.5);
        while running.len() < jobs {
            match queue.next() {
                Some(size) => running.push(size),
                None => break,
            }
        }
    }
    seconds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_shares_the_cores() {
        // Two streams of one core each on two cores: both at full speed.
        assert_eq!(extract_seconds(&[100.0, 100.0], 10.0, 1.0, 2, 2), 10.0);
        // On one core, half speed.
        assert_eq!(extract_seconds(&[100.0, 100.0], 10.0, 1.0, 2, 1), 20.0);
        // The short one finishes at 5 s, the third starts then: 100 and 50 end at 10 s.
        assert_eq!(extract_seconds(&[100.0, 50.0, 50.0], 10.0, 1.0, 2, 2), 10.0);
        // Streams of two cores each: 200 bytes at 10 B/s on 2 cores each is 40 core
        // seconds on two cores.
        assert_eq!(extract_seconds(&[100.0, 50.0, 50.0], 10.0, 2.0, 2, 2), 20.0);
        // One job at a time: one after the other.
        assert_eq!(extract_seconds(&[100.0, 50.0], 10.0, 1.0, 1, 4), 15.0);
        assert_eq!(extract_seconds(&[], 10.0, 1.0, 2, 2), 0.0);
    }

    #[test]
    fn the_diff_counts_reads_comparisons_and_issue_rows() {
        let rates = Rates {
            extract_bytes_per_second: 1.0,
            extract_cores: 1.0,
            read: 1e-6,
            first: 2e-6,
            compare: 3e-6,
            emit: 4e-6,
            diff_cores: 1.5,
        };
        let first = DiffWork {
            new_rows: 1e6,
            old_rows: 0.0,
            units: 2,
            first: true,
        };
        // 1 M rows read (1 s), diffed as new (2 s), all written (4 s).
        assert!((diff_cpu(&first, &rates, 0.05) - 7.0).abs() < 1e-9);
        let later = DiffWork {
            new_rows: 1.1e6,
            old_rows: 1e6,
            units: 2,
            first: false,
        };
        // 1.1 s reading, 1.05 M rows compared (3.15 s), 0.1 M new + 5% of 1.1 M revised
        // = 0.155 M issue rows written (0.62 s).
        assert!((diff_cpu(&later, &rates, 0.05) - 4.87).abs() < 1e-9);
        let work = Work {
            extracts: vec![],
            diffs: vec![first, later],
            jobs: 2,
            diff_units_at_once: 2,
            cores: 2,
        };
        let forecast = Forecast::new(&work, &rates);
        // Two units at once of 1.5 cores each, on 2 cores: 11.87 CPU s / 2, plus 4 units'
        // fixed cost two at a time.
        let expected = 11.87 / 2.0 + 4.0 * SECONDS_PER_UNIT / 2.0;
        assert!((forecast.diff - expected).abs() < 1e-9, "{forecast:?}");
        assert!(forecast.diff_high > forecast.diff);
        assert!((forecast.diff_cpu - 11.87).abs() < 1e-9);
        assert_eq!((forecast.extract, forecast.extract_cpu), (0.0, 0.0));
    }
}
