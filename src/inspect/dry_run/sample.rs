//! The dry run's measurement: the start of one backup read through the extraction into
//! memory, then its largest partition read back, diffed and formatted as output, each step
//! timed (wall and CPU) on this machine. Nothing is written; the sample is bounded in SQL
//! bytes and in seconds, so the dry run stays quick whatever the size of the backups.

use std::cmp::Ordering::Equal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::config::layout::Layout;
use crate::config::{Config, PartitionFormat};
use crate::run::plan::ROWS_PER_SQL_BYTE;
use crate::run::schedule::{
    DIFF_BASE_BYTES, DIFF_BYTES_PER_ROW, EXTRACT_BUFFER_BYTES, PROCESS_BYTES,
};
use crate::stages::diff::{diff, read_partition_bytes};
use crate::stages::discover::Backup;
use crate::stages::emit::write_table;
use crate::stages::extract::sample;
use crate::workdir::interrupt;

/// How much of a backup the sample reads at most: whichever limit comes first.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub sql_bytes: u64,
    pub seconds: f64,
}

/// 64 MiB of SQL is ~470,000 rows of `covidcast`: enough for rates steady to a few percent,
/// about 0.5 s in a release build; 5 s bounds it on a slow disk or in a debug build.
pub const LIMITS: Limits = Limits {
    sql_bytes: 64 << 20,
    seconds: 5.0,
};

impl Limits {
    /// `LIMITS`, with less SQL when the memory budget is small: the sample's partitions and
    /// the diff of the largest against itself must fit it (one row per 140 bytes of SQL, at
    /// the diff's bytes per row for both sides).
    pub fn within(budget: u64) -> Limits {
        let room = budget.saturating_sub(PROCESS_BYTES + DIFF_BASE_BYTES);
        let sql = room as f64 * ROWS_PER_SQL_BYTE.recip() / (2.0 * DIFF_BYTES_PER_ROW);
        Limits {
            sql_bytes: LIMITS.sql_bytes.min(sql as u64).max(1 << 20),
            ..LIMITS
        }
    }
}

/// Wall and CPU seconds of one step: CPU of every thread of the process, and of the
/// thread that ran the step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub wall: f64,
    pub cpu: f64,
    pub thread_cpu: f64,
}

impl Timing {
    /// Times `step`.
    pub fn of<T>(step: impl FnOnce() -> T) -> (T, Timing) {
        let wall = Instant::now();
        let (cpu, thread_cpu) = (
            cpu_seconds(libc::CLOCK_PROCESS_CPUTIME_ID),
            cpu_seconds(libc::CLOCK_THREAD_CPUTIME_ID),
        );
        let value = step();
        let timing = Timing {
            wall: wall.elapsed().as_secs_f64().max(1e-6),
            cpu: (cpu_seconds(libc::CLOCK_PROCESS_CPUTIME_ID) - cpu).max(0.0),
            thread_cpu: (cpu_seconds(libc::CLOCK_THREAD_CPUTIME_ID) - thread_cpu).max(0.0),
        };
        (value, timing)
    }

    /// Cores the step kept busy on average (at least one).
    pub fn cores(&self) -> f64 {
        (self.cpu / self.wall).max(1.0)
    }
}

/// CPU seconds used so far by this process or thread (`clock`).
fn cpu_seconds(clock: libc::clockid_t) -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let status = unsafe { libc::clock_gettime(clock, &mut now) };
    if status != 0 {
        return 0.0;
    }
    now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9
}

/// What the sample measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The backup's file name.
    pub file: String,
    /// Uncompressed SQL read, bytes of the file read for it, rows of the table in it.
    pub sql_bytes: u64,
    pub file_bytes: u64,
    pub rows: u64,
    /// Partitions (sources) the sample found.
    pub sources: usize,
    /// True when the sample is the whole backup.
    pub whole: bool,
    /// Samples taken of the backup; the timings are their median's (`median`).
    pub samples: usize,
    /// Decompressing (on a thread of its own), parsing and encoding the partitions (in
    /// memory, on the calling thread).
    pub extract: Timing,
    /// None when the sample holds no row to diff.
    pub diff: Option<DiffTiming>,
}

/// The diff's steps, timed on the sample's largest partition.
#[derive(Debug, Clone)]
pub struct DiffTiming {
    pub rows: u64,
    /// Reading the partition.
    pub read: Timing,
    /// The first backup's diff: every row is new.
    pub first: Timing,
    /// Joining against a partition of the same rows and comparing every column.
    pub compare: Timing,
    /// Formatting every row in the output format (to nowhere).
    pub emit: Timing,
}

impl Measurement {
    /// SQL bytes per byte of the file, as far as the sample shows.
    pub fn compression(&self) -> f64 {
        self.sql_bytes as f64 / self.file_bytes.max(1) as f64
    }

    /// CPU seconds of the busier of the extraction's two threads: decompression and parsing
    /// overlap, so one extraction goes at that thread's pace.
    pub fn extract_seconds(&self) -> f64 {
        let decode = (self.extract.cpu - self.extract.thread_cpu).max(0.0);
        self.extract.thread_cpu.max(decode).max(1e-6)
    }

    /// `extract_seconds` per SQL byte.
    fn extract_pace(&self) -> f64 {
        self.extract_seconds() / self.sql_bytes.max(1) as f64
    }

    /// The middle of several samples of one backup: the extraction of the sample whose
    /// extraction went at the median pace, and the diff of the one whose diff did (each
    /// whole, as a sample cut by the clock holds fewer rows than the others).
    pub fn median(mut samples: Vec<Measurement>) -> Option<Measurement> {
        let taken = samples.len();
        let middle = taken.checked_sub(1)? / 2;
        let diff_pace = |m: &Measurement| {
            m.diff.as_ref().map(|d| {
                let steps = [d.read, d.first, d.compare, d.emit];
                steps.iter().map(|t| t.cpu).sum::<f64>() / d.rows.max(1) as f64
            })
        };
        samples.sort_by(|a, b| diff_pace(a).partial_cmp(&diff_pace(b)).unwrap_or(Equal));
        let diff = samples[middle].diff.clone();
        samples.sort_by(|a, b| a.extract_pace().total_cmp(&b.extract_pace()));
        let mut median = samples.swap_remove(middle);
        median.diff = diff;
        median.samples = taken;
        Some(median)
    }
}

/// Reads the start of `backup` (at most `limits`) and times the steps of a run on it.
pub fn measure(backup: &Backup, config: &Config, limits: Limits) -> Result<Measurement> {
    measure_within(backup, config, limits, EXTRACT_BUFFER_BYTES.0)
}

/// `measure`, with the extraction buffering at most `buffer_bytes` (`extract_share`).
pub fn measure_within(
    backup: &Backup,
    config: &Config,
    limits: Limits,
    buffer_bytes: u64,
) -> Result<Measurement> {
    let file_bytes = Arc::new(AtomicU64::new(0));
    let counter = file_bytes.clone();
    let on_read = Box::new(move |n| {
        counter.fetch_add(n, Ordering::Relaxed);
    });
    let started = Instant::now();
    let mut rows_seen = 0u64;
    // The clock is read every 1024 rows: a call per row would cost more than the row.
    let mut stop = |sql: u64| {
        rows_seen += 1;
        sql >= limits.sql_bytes
            || interrupt::requested()
            || (rows_seen.is_multiple_of(1024) && started.elapsed().as_secs_f64() >= limits.seconds)
    };
    let (sampled, extract) =
        Timing::of(|| sample(backup, config, buffer_bytes, on_read, &mut stop));
    let sampled = sampled?;
    let layout = Layout::new(&sampled.table, config.roles())
        .with_context(|| format!("backup {}", backup.path.display()))?;
    let rows = sampled.partitions.iter().map(|(entry, _)| entry.rows).sum();
    let sources = sampled.partitions.len();
    let largest = (sampled.partitions.into_iter())
        .filter(|(entry, _)| entry.rows > 0)
        .max_by_key(|(entry, _)| entry.rows);
    let diff = match largest {
        Some((entry, bytes)) => Some(
            time_diff(bytes, &layout, config)
                .with_context(|| format!("the sample of source {}", entry.value))?,
        ),
        None => None,
    };
    Ok(Measurement {
        file: backup
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sql_bytes: sampled.sql_bytes,
        file_bytes: file_bytes.load(Ordering::Relaxed),
        rows,
        sources,
        whole: sampled.whole,
        samples: 1,
        extract,
        diff,
    })
}

/// Times the diff's steps on one partition made in memory.
fn time_diff(bytes: Vec<u8>, layout: &Layout, config: &Config) -> Result<DiffTiming> {
    let parquet = config.partition_format == PartitionFormat::Parquet;
    let (frame, read) = Timing::of(|| read_partition_bytes(bytes, parquet, layout));
    let frame = frame?;
    let (first, first_timing) = Timing::of(|| diff(None, frame.clone(), layout));
    let first = first?;
    let (compared, compare) = Timing::of(|| diff(Some(frame.clone()), frame.clone(), layout));
    compared?;
    let (written, emit) = Timing::of(|| {
        let mut nowhere = std::io::sink();
        write_table(
            &mut nowhere,
            &first.issues,
            layout,
            config.format,
            &config.target_table,
        )
    });
    written?;
    Ok(DiffTiming {
        rows: frame.height() as u64,
        read,
        first: first_timing,
        compare,
        emit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(cpu: f64) -> Timing {
        Timing {
            wall: cpu,
            cpu,
            thread_cpu: cpu,
        }
    }

    /// A sample of `sql_bytes` whose extraction took `extract` CPU seconds, and whose diff
    /// of `rows` took `diff` CPU seconds in each step.
    fn sample(sql_bytes: u64, extract: f64, rows: u64, diff: f64) -> Measurement {
        Measurement {
            file: "b.sql.gz".into(),
            sql_bytes,
            file_bytes: sql_bytes / 8,
            rows,
            sources: 1,
            whole: false,
            samples: 1,
            extract: timing(extract),
            diff: Some(DiffTiming {
                rows,
                read: timing(diff),
                first: timing(diff),
                compare: timing(diff),
                emit: timing(diff),
            }),
        }
    }

    /// One busy sample among three does not move the rates; each part comes whole from
    /// one sample, by pace (per byte, per row), not by raw seconds.
    #[test]
    fn the_median_sample_ignores_a_busy_one() {
        let samples = vec![
            sample(1000, 3.0, 100, 0.2), // busy: slow extraction and diff
            sample(1000, 1.0, 100, 0.1),
            sample(500, 0.45, 50, 0.06), // cut short by the clock, about as fast
        ];
        let median = Measurement::median(samples).unwrap();
        assert_eq!((median.sql_bytes, median.extract.cpu), (1000, 1.0));
        assert_eq!(median.samples, 3);
        let diff = median.diff.unwrap();
        assert_eq!((diff.rows, diff.emit.cpu), (50, 0.06));
        // By seconds the middle diff would be the 0.1 s one; per row it is the 0.06 s one.
        let middle = Measurement::median(vec![
            sample(1000, 1.0, 100, 0.1),
            sample(1000, 1.0, 100, 0.2),
            sample(1000, 1.0, 50, 0.06),
        ])
        .unwrap();
        assert_eq!(middle.diff.unwrap().emit.cpu, 0.06);
        assert!(Measurement::median(Vec::new()).is_none());
        let one = Measurement::median(vec![sample(10, 1.0, 1, 1.0)]).unwrap();
        assert_eq!(one.sql_bytes, 10);
    }
}
