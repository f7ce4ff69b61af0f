//! `migrate verify`: rebuilds every backup's table from the issue rows and removals alone
//! (the latest issue of each key up to that backup, minus keys removed by then) and compares
//! it with the backup itself. Source by source, so memory stays that of one diff unit.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use tracing::info;

use crate::config::Config;
use crate::inspect::replay::{
    apply, check_issue_and_lag, compare, describe_keys, read_issues, read_removals,
};
use crate::run::extracting::extract_pending;
use crate::run::plan::Plan;
use crate::stages::diff::read_partition;
use crate::workdir::lock::lock_work_folder;
use crate::workdir::state::Paths;

/// Rows named per kind of difference and backup before the rest are only counted.
const SHOWN: usize = 10;

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub backups: usize,
    pub sources: usize,
    /// Every problem found, one line each (key and date included).
    pub problems: Vec<String>,
    /// Problems counted but not listed.
    pub not_listed: usize,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.not_listed == 0
    }
}

pub fn verify(config: &Config) -> Result<VerifyReport> {
    let paths = Paths::new(config);
    // Verify may extract: it writes to the work folder like a run.
    // Wrong input (no backups folder, no backups) before the work folder is created.
    crate::stages::discover::discover(&config.backups, &config.pattern)?;
    let _lock = lock_work_folder(&config.work)?;
    let mut plan = Plan::new(config, &paths)?;
    // The backups are read through their partitions: extract those missing or outdated.
    extract_pending(&mut plan, config, &paths)?;
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
        let mut state = None;
        for unit in &plan.extracts {
            let info = unit.done.as_ref().expect("extracted");
            let layout = info.layout(config)?;
            let date = unit.backup.stamp();
            let issues_file = paths.existing_issues_file(&date, stem);
            let removals_file = paths.existing_removals_file(&date, stem);
            let issues = read_issues(issues_file.as_deref(), &layout, scratch.path())?;
            for wrong in check_issue_and_lag(&issues, &layout, unit.backup.date)? {
                report
                    .problems
                    .push(format!("{date} {source}: wrong issue/lag {wrong}"));
            }
            let removals = read_removals(removals_file.as_deref(), &layout)?;
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
            let backup = read_partition(partition.as_deref(), &layout)?;
            let differences = compare(&rebuilt, &backup, &layout)?;
            for (what, keys) in [
                ("missing from the rebuilt table", &differences.missing),
                (
                    "in the rebuilt table but not in the backup",
                    &differences.extra,
                ),
                (
                    "with values that differ from the backup",
                    &differences.different,
                ),
            ] {
                for key in describe_keys(keys, SHOWN)? {
                    report
                        .problems
                        .push(format!("{date} {source}: {key} {what}"));
                }
                report.not_listed += keys.height().saturating_sub(SHOWN);
            }
            info!(
                "verified {date} {source}: {} rows, {} differences",
                backup.height(),
                differences.count()
            );
            state = Some(rebuilt);
        }
    }
    Ok(report)
}
