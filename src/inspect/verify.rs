//! `migrate verify`: rebuilds every backup's table from the issue rows and removals alone
//! (the latest issue of each key up to that backup, minus keys removed by then) and compares
//! it with the backup itself. Source by source, so memory stays that of one diff unit; a
//! source too large for the memory budget is replayed in buckets of `time_value`, as a
//! split diff unit is diffed, with the same report.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use polars::prelude::{DataFrame, IntoLazy};
use tracing::{info, warn};

use crate::config::Config;
use crate::inspect::replay::{
    apply, check_issue_and_lag, compare, describe_keys, read_issues_where, read_removals_where,
};
use crate::inspect::row_filter::RowFilter;
use crate::run::extracting::extract_pending;
use crate::run::memory_limit::budget;
use crate::run::plan::Plan;
use crate::run::schedule::{buckets_for, release_free_memory};
use crate::stages::diff::{read_partition, read_partition_in, sort_by_key, table_bucket_column};
use crate::workdir::interrupt;
use crate::workdir::lock::lock_work_folder;
use crate::workdir::state::Paths;

/// Rows named per kind of difference and backup before the rest are only counted.
const SHOWN: usize = 10;

/// What the checks of one backup of a source found, summed over its buckets.
#[derive(Default)]
struct DateCheck {
    rows: usize,
    /// Rows whose `issue` or `lag` is wrong, as messages.
    wrong: Vec<String>,
    /// Keys missing, extra and different: how many, and the first `SHOWN` of each bucket.
    counts: [usize; 3],
    keys: [Option<DataFrame>; 3],
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub backups: usize,
    pub sources: usize,
    /// Every problem found, one line each (key and date included).
    pub problems: Vec<String>,
    /// Problems counted but not listed.
    pub not_listed: usize,
    /// `verify --database` on a table without `missing_value` (Epidata's October 2020
    /// one): keys the as-of query still serves after their removal, which such a table has
    /// no row to record. Not a problem.
    pub served_after_removal: usize,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.not_listed == 0
    }
}

pub fn verify(config: &Config) -> Result<VerifyReport> {
    let paths = Paths::new(config);
    let budget = budget(config)?;
    // Verify may extract: it writes to the work folder like a run.
    // Wrong input (no backups folder, no backups) before the work folder is created.
    crate::stages::discover::discover(&config.backups, &config.pattern)?;
    let _lock = lock_work_folder(&config.work)?;
    let mut plan = Plan::new(config, &paths)?;
    // The backups are read through their partitions: extract those missing or outdated.
    extract_pending(&mut plan, config, &paths, &budget)?;
    let scratch = tempfile::Builder::new()
        .prefix(".tmp-verify-")
        .tempdir_in(&config.work)?;
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for unit in &plan.extracts {
        for entry in &unit.done.as_ref().expect("extracted").partitions {
            sources.insert(entry.stem.clone(), entry.value.clone());
        }
    }
    let mut report = VerifyReport {
        backups: plan.extracts.len(),
        sources: sources.len(),
        ..VerifyReport::default()
    };
    for (stem, source) in &sources {
        // A source's table, its issue rows and its backup in memory at once, as a diff unit
        // holds two partitions: more than the budget holds is replayed bucket by bucket.
        let rows = (plan.extracts.iter())
            .flat_map(|u| &u.done.as_ref().expect("extracted").partitions)
            .filter(|p| &p.stem == stem)
            .map(|p| p.rows)
            .max()
            .unwrap_or(0);
        let mut buckets = buckets_for(2 * rows, budget.bytes, config.max_part_rows);
        let split_column = match plan.extracts.last().and_then(|u| u.done.as_ref()) {
            Some(info) => table_bucket_column(&info.layout(config)?).map(|column| column.name),
            None => None,
        };
        if buckets > 1 && split_column.is_none() {
            warn!(
                "{source}: does not fit the memory budget, but the table has no integer column \
                 to verify it in parts by: verified whole"
            );
            buckets = 1;
        }
        let split_by = split_column.as_deref().unwrap_or_default();
        if buckets > 1 {
            info!("{source}: verified in {buckets} parts, to fit the memory budget");
        }
        let mut dates: Vec<DateCheck> = Vec::new();
        for bucket in 0..buckets {
            let mut state = None;
            for (index, unit) in plan.extracts.iter().enumerate() {
                interrupt::check()?;
                let info = unit.done.as_ref().expect("extracted");
                let layout = info.layout(config)?;
                let date = unit.backup.stamp();
                let filter = RowFilter::default().bucket(split_by, bucket, buckets);
                let part = (buckets > 1).then_some((bucket, buckets));
                let issues_file = paths.existing_issues_file(&date, stem);
                let removals_file = paths.existing_removals_file(&date, stem);
                let issues =
                    read_issues_where(issues_file.as_deref(), &layout, scratch.path(), &filter)?;
                if index == dates.len() {
                    dates.push(DateCheck::default());
                }
                let check = &mut dates[index];
                check
                    .wrong
                    .extend(check_issue_and_lag(&issues, &layout, unit.backup.date)?);
                let removals = read_removals_where(removals_file.as_deref(), &layout, &filter)?;
                let before = match state.take() {
                    Some(frame) => frame,
                    None => read_partition(None, &layout)?,
                };
                let rebuilt = apply(before, &issues, &removals, &layout)?;
                let partition: Option<PathBuf> = info
                    .partitions
                    .iter()
                    .any(|p| &p.stem == stem)
                    .then(|| paths.partition_file(&date, stem));
                let backup = read_partition_in(partition.as_deref(), &layout, part)?;
                let differences = compare(&rebuilt, &backup, &layout)?;
                check.rows += backup.height();
                for (kind, keys) in [
                    &differences.missing,
                    &differences.extra,
                    &differences.different,
                ]
                .into_iter()
                .enumerate()
                {
                    // The first keys of each bucket hold the first of them all.
                    check.counts[kind] += keys.height();
                    let shown = keys.head(Some(SHOWN));
                    check.keys[kind] = Some(match check.keys[kind].take() {
                        None => shown,
                        Some(mut earlier) => {
                            earlier.vstack_mut_owned(shown)?;
                            earlier
                        }
                    });
                }
                state = Some(rebuilt);
            }
            release_free_memory();
        }
        for (unit, check) in plan.extracts.iter().zip(dates) {
            let layout = unit.done.as_ref().expect("extracted").layout(config)?;
            let date = unit.backup.stamp();
            for wrong in check.wrong {
                report
                    .problems
                    .push(format!("{date} {source}: wrong issue/lag {wrong}"));
            }
            let what = [
                "missing from the rebuilt table",
                "in the rebuilt table but not in the backup",
                "with values that differ from the backup",
            ];
            for ((what, keys), count) in what.iter().zip(check.keys).zip(check.counts) {
                let keys = match keys {
                    Some(keys) if buckets > 1 => sort_by_key(keys.lazy(), &layout).collect()?,
                    Some(keys) => keys,
                    None => continue,
                };
                for key in describe_keys(&keys, SHOWN)? {
                    report
                        .problems
                        .push(format!("{date} {source}: {key} {what}"));
                }
                report.not_listed += count.saturating_sub(SHOWN);
            }
            info!(
                "verified {date} {source}: {} rows, {} differences",
                check.rows,
                check.counts.iter().sum::<usize>()
            );
        }
    }
    Ok(report)
}
