//! `--dry-run`: prints the plan — backups, gaps, units done and pending, the memory pending
//! diff units are expected to need and what the budget allows, and the time the run should
//! take on this machine — and writes nothing.

pub mod forecast;
pub mod sample;

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Result;

use crate::config::Config;
use crate::config::Stages;
use crate::inspect::dry_run::forecast::{
    DiffWork, Forecast, Rates, Work, ASSUMED_REVISED, HIGH_REVISED, SMALL_SAMPLE_BYTES,
    TYPICAL_ERROR,
};
use crate::inspect::dry_run::sample::{measure_within, Limits, Measurement};
use crate::run::memory_limit::{budget, Budget};
use crate::run::plan::{partition_bytes_per_sql, DiffUnit, Plan, GZIP_RATIO, ROWS_PER_SQL_BYTE};
use crate::run::schedule::{
    buckets_for, estimate_diff_bytes, extract_share, keep_freed_memory, release_free_memory,
};
use crate::stages::extract::sql_size::{sql_size, SqlSize};
use crate::stages::extract::PartitionInfo;
use crate::values::bytes::human;
use crate::workdir::lock::lock_holder;
use crate::workdir::state::Paths;

pub fn describe(config: &Config, stages: Stages) -> Result<String> {
    let paths = Paths::new(config);
    let plan = Plan::new(config, &paths)?;
    plan.check_target(config)?;
    let format = config.partition_format;
    let per_sql = partition_bytes_per_sql(format);
    let mut text = String::new();
    let w = &mut text;
    writeln!(w, "dry run: nothing is written")?;
    if let Some(holder) = lock_holder(&config.work) {
        writeln!(
            w,
            "a run is in progress in {} ({holder}): this plan shows its progress so far",
            config.work.display()
        )?;
    }
    let extracted = |index: usize| {
        let unit = &plan.extracts[index];
        unit.done.as_ref().filter(|_| !config.fresh)
    };
    let pending_extracts: Vec<usize> = (0..plan.extracts.len())
        .filter(|&i| extracted(i).is_none())
        .collect();
    let diff_units: Vec<_> = (0..plan.extracts.len())
        .map(|index| {
            plan.diff_units(index, config, &paths)
                .filter(|_| !config.fresh)
        })
        .collect();
    let diffs_pending = diff_units.iter().any(|units| {
        units
            .as_ref()
            .is_none_or(|u| u.iter().any(|u| u.done.is_none()))
    });
    let work_to_time = match stages {
        Stages::Extract => !pending_extracts.is_empty(),
        Stages::Diff | Stages::Emit => diffs_pending,
        Stages::All => !pending_extracts.is_empty() || diffs_pending,
    };
    let budget = budget(config)?;
    // The allocator as the run sets it, so that the sample costs what the run's work does.
    keep_freed_memory(budget.bytes, config.jobs);
    let share = extract_share(budget.bytes, config.jobs);
    let sample = work_to_time.then(|| sample_largest(&plan, &pending_extracts, config, &budget));
    // Ctrl-C stops the sample early; the dry run then stops too, rather than print a
    // prediction from a cut sample.
    crate::workdir::interrupt::check()?;
    let measurement = sample.as_ref().and_then(|s| s.as_ref().ok());
    let ratio = measurement
        .filter(|m| m.file.ends_with(".gz"))
        .map_or(GZIP_RATIO, Measurement::compression);

    writeln!(
        w,
        "backups in {}: {}",
        config.backups.display(),
        plan.extracts.len()
    )?;
    // SQL bytes of each backup: read by its extract, or expected.
    let mut sizes = Vec::new();
    let mut exact_sizes = 0;
    for (index, unit) in plan.extracts.iter().enumerate() {
        let (state, sql) = match extracted(index) {
            Some(info) => ("done", info.sql_bytes),
            None => {
                let size = match measurement {
                    Some(m) if m.whole && m.file == unit.inputs.file => SqlSize::Plain(m.sql_bytes),
                    _ => sql_size(&unit.backup.path, unit.inputs.size, ratio),
                };
                exact_sizes += usize::from(!matches!(size, SqlSize::Estimated(_)));
                ("pending", size.bytes())
            }
        };
        sizes.push(sql);
        writeln!(
            w,
            "  {}  {:<48} {:>10}  extract {state}",
            unit.backup.stamp(),
            unit.inputs.file,
            human(unit.inputs.size)
        )?;
    }
    for gap in &plan.discovery.gaps {
        writeln!(
            w,
            "gap: {gap}; the next backup is compared with the one before it"
        )?;
    }
    if stages != Stages::Diff {
        let at_once = match share.jobs < config.jobs {
            true => format!(
                "{} at once (--jobs {}, fewer for the memory budget)",
                share.jobs, config.jobs
            ),
            false => format!("{} at once (--jobs)", config.jobs),
        };
        writeln!(
            w,
            "extract: {} done, {} pending, {at_once}",
            plan.extracts.len() - pending_extracts.len(),
            pending_extracts.len(),
        )?;
    }
    let mut done = 0;
    let mut pending = Vec::new();
    let mut unknown = Vec::new();
    for (index, units) in diff_units.iter().enumerate() {
        match units {
            Some(units) => {
                for unit in units {
                    match unit.done {
                        Some(_) => done += 1,
                        None => pending
                            .push((format!("{} {}", unit.inputs.date, unit.source), unit.rows)),
                    }
                }
            }
            None => {
                // Sources are unknown until extraction: bound the pair by whole backups.
                let before = index.checked_sub(1).map_or(0, |i| sizes[i]);
                let rows = ((before + sizes[index]) as f64 * ROWS_PER_SQL_BYTE) as u64;
                unknown.push((plan.extracts[index].backup.stamp(), rows));
            }
        }
    }
    let largest = pending
        .iter()
        .chain(&unknown)
        .map(|(_, b)| *b)
        .max()
        .unwrap_or(0);
    let budget_text = budget.to_string();
    let budget = budget.bytes;
    let largest_peak =
        estimate_diff_bytes(largest / buckets_for(largest, budget, config.max_part_rows) as u64);
    let fit = (budget / largest_peak.max(1)).max(1) as usize;
    if stages != Stages::Extract {
        let describe = |rows: u64| {
            let buckets = buckets_for(rows, budget, config.max_part_rows);
            let peak = human(estimate_diff_bytes(rows / buckets as u64));
            match buckets {
                1 => format!("estimated peak {peak}"),
                n => format!("split into {n} parts of estimated peak {peak}"),
            }
        };
        // A unit is a source of a backup; the sources of a backup are known once it is
        // extracted, so those backups are counted apart.
        let unknown_text = match unknown.len() {
            0 => String::new(),
            n => {
                format!(", and the units of {n} backup(s) whose sources are known after extraction")
            }
        };
        writeln!(
            w,
            "diff: {done} units done, {} pending{unknown_text}",
            pending.len()
        )?;
        for (name, bytes) in &pending {
            writeln!(w, "  pending {name}: {}", describe(*bytes))?;
        }
        for (date, bytes) in &unknown {
            writeln!(
                w,
                "  pending {date}: sources known after extraction; at most {} per source",
                describe(*bytes)
            )?;
        }
        let need = match pending.is_empty() && unknown.is_empty() {
            true => "no unit to run".to_string(),
            false => format!(
                "the largest pending unit needs {}; up to {} such units at once (--jobs {})",
                human(largest_peak),
                fit.min(config.jobs),
                config.jobs
            ),
        };
        writeln!(w, "memory: budget {budget_text}; {need}")?;
    }
    let total_sql: u64 = sizes.iter().sum();
    let sql_to_read: u64 = pending_extracts.iter().map(|&i| sizes[i]).sum();
    let to_read = match sql_to_read {
        0 => "no SQL left to read".to_string(),
        bytes => format!("about {} of SQL still to read", human(bytes)),
    };
    writeln!(
        w,
        "needs: {to_read}, {} of disk for all the partitions in {}",
        human((total_sql as f64 * per_sql) as u64),
        config.work.display()
    )?;
    match sample {
        None => writeln!(w, "time: nothing to run")?,
        Some(Err(error)) => writeln!(
            w,
            "time: cannot predict: the sample failed: {error:#}; the run will fail the same way"
        )?,
        Some(Ok(measurement)) => {
            let rows_per_byte = match measurement.rows {
                0 => ROWS_PER_SQL_BYTE,
                rows => rows as f64 / measurement.sql_bytes.max(1) as f64,
            };
            let rows = |index: usize| match extracted(index) {
                Some(info) => info.rows as f64,
                None => sizes[index] as f64 * rows_per_byte,
            };
            let work = Work {
                extracts: match stages {
                    Stages::Diff | Stages::Emit => Vec::new(),
                    _ => pending_extracts.iter().map(|&i| sizes[i] as f64).collect(),
                },
                diffs: match stages {
                    Stages::Extract => Vec::new(),
                    _ => (0..plan.extracts.len())
                        .filter_map(|index| {
                            diff_work(&plan, index, &diff_units, &rows, measurement.sources)
                        })
                        .collect(),
                },
                jobs: share.jobs,
                diff_units_at_once: fit.min(config.jobs),
                cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            };
            let sizes = Sizes {
                exact: exact_sizes,
                to_extract: pending_extracts.len(),
                ratio,
            };
            describe_time(w, &measurement, &work, &sizes)?;
        }
    }
    writeln!(
        w,
        "output: {}/<YYYYMMDD>/<source>.{}, removals in {}, summary in {}",
        paths.issues.display(),
        config.format.extension(),
        paths.removals.display(),
        paths.summary.display()
    )?;
    Ok(text)
}

/// Samples the largest backup still to extract, else the largest backup, within `budget`.
fn sample_largest(
    plan: &Plan,
    pending: &[usize],
    config: &Config,
    budget: &Budget,
) -> Result<Measurement> {
    let candidates: Vec<usize> = if pending.is_empty() {
        (0..plan.extracts.len()).collect()
    } else {
        pending.to_vec()
    };
    let largest = candidates
        .into_iter()
        .max_by_key(|&i| plan.extracts[i].inputs.size)
        .expect("a plan has backups");
    let buffer_bytes = extract_share(budget.bytes, 1).buffer_bytes;
    let limits = Limits::within(budget.bytes);
    let started = Instant::now();
    let mut samples = Vec::new();
    // The median of three samples: on a shared machine one sample of half a second can
    // catch a busy moment (it once predicted 1.47x the run). A slow sample (a debug build,
    // a slow disk) is not repeated.
    while samples.len() < SAMPLES
        && (samples.is_empty() || started.elapsed().as_secs_f64() < REPEAT_WITHIN_SECONDS)
    {
        // Each sample starts with the memory given back, as the run's first units do: one
        // that reused the last sample's memory measured the diff at half its cost.
        release_free_memory();
        let backup = &plan.extracts[largest].backup;
        samples.push(measure_within(backup, config, limits, buffer_bytes)?);
        crate::workdir::interrupt::check()?;
    }
    Ok(Measurement::median(samples).expect("one sample at least"))
}

/// Samples the dry run takes of the largest backup, while they take at most
/// `REPEAT_WITHIN_SECONDS` together.
const SAMPLES: usize = 3;
const REPEAT_WITHIN_SECONDS: f64 = 3.0;

/// The diff work pending for backup `index`; None when its units are all done.
fn diff_work(
    plan: &Plan,
    index: usize,
    diff_units: &[Option<Vec<DiffUnit>>],
    rows: &dyn Fn(usize) -> f64,
    sampled_sources: usize,
) -> Option<DiffWork> {
    let first = index == 0;
    let Some(units) = &diff_units[index] else {
        // Not extracted yet: the whole backup against the one before it.
        return Some(DiffWork {
            new_rows: rows(index),
            old_rows: index.checked_sub(1).map_or(0.0, rows),
            units: sampled_sources.max(1),
            first,
        });
    };
    let pending: Vec<_> = units.iter().filter(|u| u.done.is_none()).collect();
    if pending.is_empty() {
        return None;
    }
    let rows_of = |info: Option<&PartitionInfo>, stem: &str| {
        info.and_then(|info| info.partitions.iter().find(|p| p.stem == stem))
            .map_or(0.0, |p| p.rows as f64)
    };
    let info = plan.extracts[index].done.as_ref();
    let previous = index
        .checked_sub(1)
        .and_then(|i| plan.extracts[i].done.as_ref());
    Some(DiffWork {
        new_rows: pending.iter().map(|u| rows_of(info, &u.stem)).sum(),
        old_rows: pending.iter().map(|u| rows_of(previous, &u.stem)).sum(),
        units: pending.len(),
        first,
    })
}

/// How the SQL of the backups to extract was sized.
struct Sizes {
    /// Backups whose size is known (plain SQL, the gzip trailer, or the sample read whole).
    exact: usize,
    to_extract: usize,
    /// SQL bytes per byte of gzip for the others.
    ratio: f64,
}

/// The `time:` lines: the prediction, what it rests on, and how far off it can be.
fn describe_time(
    w: &mut String,
    measurement: &Measurement,
    work: &Work,
    sizes: &Sizes,
) -> Result<()> {
    let Some(rates) = Rates::of(measurement) else {
        writeln!(
            w,
            "time: cannot predict: the sample of {} holds no row of the table",
            measurement.file
        )?;
        return Ok(());
    };
    let forecast = Forecast::new(work, &rates);
    let small = measurement.sql_bytes < SMALL_SAMPLE_BYTES;
    let total = forecast.total();
    let high_total = forecast.extract + forecast.diff_high;
    let (low, high) = if small {
        (total / 2.0, high_total * 2.0)
    } else {
        (
            total * (1.0 - TYPICAL_ERROR),
            high_total * (1.0 + TYPICAL_ERROR),
        )
    };
    writeln!(
        w,
        "time: about {} in all: extract {}, diff {} (likely {} to {})",
        duration(total),
        duration(forecast.extract),
        duration(forecast.diff),
        duration(low),
        duration(high)
    )?;
    writeln!(
        w,
        "  CPU: extract {}, diff {}",
        duration(forecast.extract_cpu),
        duration(forecast.diff_cpu)
    )?;
    let samples = match measurement.samples {
        1 => String::new(),
        n => format!(" (the median of {n} samples)"),
    };
    let part = if measurement.whole {
        "the whole".to_string()
    } else {
        format!("the first {} of SQL of", human(measurement.sql_bytes))
    };
    writeln!(
        w,
        "  measured here in {:.1} s{samples} on {part} {}, in memory: extraction {:.0} MB/s of SQL per \
         backup on {:.1} cores ({} at once on {} cores); diff {:.2} µs, {:.2} µs and {:.2} µs \
         of CPU per row to read, compare and write, on {:.1} cores per unit ({} at once)",
        measurement.extract.wall
            + measurement.diff.as_ref().map_or(0.0, |d| {
                d.read.wall + d.first.wall + d.compare.wall + d.emit.wall
            }),
        measurement.file,
        rates.extract_bytes_per_second / 1e6,
        rates.extract_cores,
        work.jobs,
        work.cores,
        rates.read * 1e6,
        rates.compare * 1e6,
        rates.emit * 1e6,
        rates.diff_cores,
        work.diff_units_at_once
    )?;
    if sizes.to_extract > sizes.exact {
        writeln!(
            w,
            "  SQL to read: {} of {} backup(s) sized exactly (gzip trailer or plain SQL), the \
             others at {:.1} bytes of SQL per byte of gzip",
            sizes.exact, sizes.to_extract, sizes.ratio
        )?;
    }
    writeln!(
        w,
        "  assumes {:.0}% of a later backup's rows are revised, which cannot be known before \
         the run (at {:.0}% the diff takes {}); the range allows ±{:.0}% beyond that, the aim \
         scripts/bench checks; a disk slower than the sample's read slows the run",
        ASSUMED_REVISED * 100.0,
        HIGH_REVISED * 100.0,
        duration(forecast.diff_high),
        TYPICAL_ERROR * 100.0
    )?;
    // The rates are CPU times, which hold whatever else runs; the sample's wall clock says
    // how much CPU this process actually got.
    let slowdown = measurement.extract.wall * rates.extract_bytes_per_second
        / measurement.sql_bytes.max(1) as f64;
    // (In a small sample, starting threads weighs more than any load.)
    if slowdown > 1.25 && !small {
        writeln!(
            w,
            "  the machine is busy: the sample took {slowdown:.1}× the time its CPU work needs; \
             the figures above are for a machine whose cores the run has to itself, at the \
             sample's load expect about {}",
            duration(total * slowdown)
        )?;
    }
    if small {
        writeln!(
            w,
            "  the sample is small ({} of SQL): start-up costs weigh on its rates, so the \
             figure is rough (the range is a factor of 2 either way)",
            human(measurement.sql_bytes)
        )?;
    }
    Ok(())
}

/// Seconds as a person reads them: `4.2 s`, `38 s`, `12 min 5 s`, `3 h 04 min`.
fn duration(seconds: f64) -> String {
    let whole = seconds.round() as u64;
    if seconds < 10.0 {
        format!("{seconds:.1} s")
    } else if whole < 120 {
        format!("{whole} s")
    } else if whole < 7200 {
        format!("{} min {} s", whole / 60, whole % 60)
    } else {
        format!("{} h {:02} min", whole / 3600, whole % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(duration(4.24), "4.2 s");
        assert_eq!(duration(38.4), "38 s");
        assert_eq!(duration(725.0), "12 min 5 s");
        assert_eq!(duration(3.0 * 3600.0 + 4.0 * 60.0 + 20.0), "3 h 04 min");
    }
}
