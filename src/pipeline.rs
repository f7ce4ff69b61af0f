//! The whole run: discover → extract → diff → emit, each stage reading the files the one
//! before it wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::Serialize;
use tracing::{info, warn};

use crate::config::Config;
use crate::diff::{diff, read_partition};
use crate::discover::{discover, Backup, Discovery};
use crate::emit::{write_issues, write_removals, EmitContext};
use crate::partition::{extract, PartitionInfo};

/// Totals of one source over the whole run.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SourceSummary {
    /// Rows of this source summed over every backup.
    pub rows_seen: u64,
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub backups: Vec<String>,
    /// Gaps between backups, as sentences.
    pub gaps: Vec<String>,
    pub sql_bytes: u64,
    pub sources: BTreeMap<String, SourceSummary>,
    pub seconds: f64,
}

/// Where the stages put their files.
pub struct Paths {
    pub partitions: PathBuf,
    pub issues: PathBuf,
    pub removals: PathBuf,
}

impl Paths {
    pub fn new(config: &Config) -> Paths {
        Paths {
            partitions: config.work.join("partitions"),
            issues: config.out.join("issues"),
            removals: config.out.join("removals"),
        }
    }
}

pub fn run(config: &Config) -> Result<RunSummary> {
    let started = Instant::now();
    let discovery = discover(&config.backups, &config.pattern)?;
    info!(
        "{} backups from {} to {}",
        discovery.backups.len(),
        discovery.backups[0].stamp(),
        discovery.backups[discovery.backups.len() - 1].stamp()
    );
    for gap in &discovery.gaps {
        warn!("{gap}; the next backup is compared with the one before the gap");
    }
    let paths = Paths::new(config);
    let infos = extract_all(&discovery, config, &paths)?;
    let mut sources = BTreeMap::new();
    for (i, backup) in discovery.backups.iter().enumerate() {
        let previous = i.checked_sub(1).map(|j| (&discovery.backups[j], &infos[j]));
        diff_backup(config, &paths, previous, (backup, &infos[i]), &mut sources)?;
    }
    let summary = RunSummary {
        backups: discovery.backups.iter().map(Backup::stamp).collect(),
        gaps: discovery.gaps.iter().map(|g| g.to_string()).collect(),
        sql_bytes: infos.iter().map(|i| i.sql_bytes).sum(),
        sources,
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&summary)?;
    crate::atomic::write_file(&config.out.join("summary.json"), |out| {
        use std::io::Write;
        Ok(out.write_all(json.as_bytes())?)
    })?;
    Ok(summary)
}

fn extract_all(
    discovery: &Discovery,
    config: &Config,
    paths: &Paths,
) -> Result<Vec<PartitionInfo>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.jobs)
        .thread_name(|i| format!("extract-{i}"))
        .build()?;
    pool.install(|| {
        discovery
            .backups
            .par_iter()
            .map(|backup| {
                let started = Instant::now();
                let info = extract(backup, config, &paths.partitions.join(backup.stamp()))?;
                let seconds = started.elapsed().as_secs_f64();
                info!(
                    "extracted {}: {} rows, {:.1} MB of SQL in {seconds:.1} s ({:.0} MB/s)",
                    backup.stamp(),
                    info.rows,
                    info.sql_bytes as f64 / 1e6,
                    info.sql_bytes as f64 / 1e6 / seconds.max(1e-9)
                );
                Ok(info)
            })
            .collect()
    })
}

/// Diffs every source of one backup against the backup before it and writes the output.
fn diff_backup(
    config: &Config,
    paths: &Paths,
    previous: Option<(&Backup, &PartitionInfo)>,
    (backup, info): (&Backup, &PartitionInfo),
    sources: &mut BTreeMap<String, SourceSummary>,
) -> Result<()> {
    let layout = &info.layout;
    if let Some((before, before_info)) = previous {
        if before_info.layout != info.layout {
            bail!(
                "the columns of `{}` differ between the backups of {} and {} ({} and {}); \
                 a change of schema between backups is not supported yet",
                config.table,
                before.stamp(),
                backup.stamp(),
                before_info.layout.names().collect::<Vec<_>>().join(","),
                info.layout.names().collect::<Vec<_>>().join(",")
            );
        }
    }
    // Every source in either backup: a source only in the older one is removed whole.
    let mut stems: BTreeMap<&str, &str> = BTreeMap::new();
    for entry in previous
        .iter()
        .flat_map(|(_, i)| &i.partitions)
        .chain(&info.partitions)
    {
        stems.insert(&entry.stem, &entry.value);
    }
    for (stem, value) in stems {
        let path_in = |b: &Backup, i: &PartitionInfo| -> Option<PathBuf> {
            i.partitions
                .iter()
                .any(|p| p.stem == stem)
                .then(|| paths.partitions.join(b.stamp()).join(format!("{stem}.csv")))
        };
        let new = read_partition(path_in(backup, info).as_deref(), layout)?;
        let old = previous
            .map(|(b, i)| read_partition(path_in(b, i).as_deref(), layout))
            .transpose()?;
        let result = diff(old, new, layout)
            .with_context(|| format!("source {value} in the backup {}", backup.path.display()))?;
        let ctx = EmitContext {
            layout,
            source: value,
            date: backup.date,
            previous: previous.map(|(b, _)| b.date),
            target_table: &config.target_table,
            format: config.format,
            chunk_rows: config.chunk_rows,
        };
        let file = |root: &Path, ext: &str| root.join(backup.stamp()).join(format!("{stem}.{ext}"));
        write_issues(
            &file(&paths.issues, config.format.extension()),
            &result.issues,
            &ctx,
        )
        .with_context(|| format!("source {value} in the backup of {}", backup.stamp()))?;
        write_removals(&file(&paths.removals, "csv"), &result.removed, &ctx)?;
        info!(
            "{} {value}: {} rows, {} added, {} changed, {} removed",
            backup.stamp(),
            result.rows,
            result.added,
            result.changed,
            result.removed.height()
        );
        let totals = sources.entry(value.to_string()).or_default();
        totals.rows_seen += result.rows as u64;
        totals.added += result.added as u64;
        totals.changed += result.changed as u64;
        totals.removed += result.removed.height() as u64;
    }
    Ok(())
}
