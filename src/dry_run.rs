//! `--dry-run`: prints the plan — backups, gaps, units done and pending, the memory pending
//! diff units are expected to need and what the budget allows — and writes nothing.

use std::fmt::Write as _;

use anyhow::Result;

use crate::config::Config;
use crate::lock::lock_holder;
use crate::pipeline::Stages;
use crate::plan::{partition_bytes_per_sql, Plan, GZIP_RATIO, ROWS_PER_SQL_BYTE};
use crate::schedule::{buckets_for, estimate_diff_bytes, memory_budget};
use crate::state::Paths;

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
    writeln!(
        w,
        "backups in {}: {}",
        config.backups.display(),
        plan.extracts.len()
    )?;
    let mut sql_estimate = Vec::new();
    let mut sql_to_read = 0;
    for unit in &plan.extracts {
        let (state, sql) = match &unit.done {
            Some(info) if !config.fresh => ("done", info.sql_bytes),
            _ => (
                "pending",
                estimated_sql(unit.inputs.size, &unit.inputs.file),
            ),
        };
        sql_estimate.push(sql);
        if state == "pending" {
            sql_to_read += sql;
        }
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
    let pending_extracts = if config.fresh {
        plan.extracts.len()
    } else {
        plan.pending_extracts()
    };
    if stages != Stages::Diff {
        writeln!(
            w,
            "extract: {} done, {pending_extracts} pending, {} at once (--jobs)",
            plan.extracts.len() - pending_extracts,
            config.jobs
        )?;
    }
    let mut done = 0;
    let mut pending = Vec::new();
    let mut unknown = Vec::new();
    for index in 0..plan.extracts.len() {
        match plan
            .diff_units(index, config, &paths)
            .filter(|_| !config.fresh)
        {
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
                let before = index.checked_sub(1).map_or(0, |i| sql_estimate[i]);
                let rows = ((before + sql_estimate[index]) as f64 * ROWS_PER_SQL_BYTE) as u64;
                unknown.push((plan.extracts[index].backup.stamp(), rows));
            }
        }
    }
    if stages != Stages::Extract {
        let budget = memory_budget(config);
        let describe = |rows: u64| {
            let buckets = buckets_for(rows, budget);
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
        let largest = pending
            .iter()
            .chain(&unknown)
            .map(|(_, b)| *b)
            .max()
            .unwrap_or(0);
        let largest_peak = estimate_diff_bytes(largest / buckets_for(largest, budget) as u64);
        let fit = (budget / largest_peak.max(1)).max(1) as usize;
        writeln!(
            w,
            "memory: budget {} ({}); the largest pending unit needs {}; {}",
            human(budget),
            if config.memory_limit.is_some() {
                "--memory-limit"
            } else {
                "80% of available memory"
            },
            human(largest_peak),
            if pending.is_empty() && unknown.is_empty() {
                "nothing to run".to_string()
            } else {
                format!(
                    "up to {} such units at once (--jobs {})",
                    fit.min(config.jobs),
                    config.jobs
                )
            }
        )?;
    }
    let total_sql: u64 = sql_estimate.iter().sum();
    writeln!(
        w,
        "needs: about {} of SQL still to read, {} of disk for all the partitions in {}",
        human(sql_to_read),
        human((total_sql as f64 * per_sql) as u64),
        config.work.display()
    )?;
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

/// Uncompressed SQL expected from a backup of `size` bytes on disk.
fn estimated_sql(size: u64, file: &str) -> u64 {
    if file.ends_with(".gz") {
        (size as f64 * GZIP_RATIO) as u64
    } else {
        size
    }
}

pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
