//! What a run has to do: the backups, which extracts and diff units are finished and still
//! valid, and what the pending ones are expected to need. Reading the plan writes nothing, so
//! `--dry-run` is this module and a printout.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use crate::config::layout::Layout;
use crate::config::target::TargetPlan;
use crate::config::{Config, PartitionFormat};
use crate::exit_codes::UsageError;
use crate::stages::discover::{discover, Backup, Discovery};
use crate::stages::extract::{read_table, PartitionInfo};
use crate::workdir::state::{DiffInputs, DiffRecord, ExtractInputs, Finished, Journal, Paths};

/// Uncompressed SQL per byte of gzip, rows per byte of SQL, and partition bytes per byte of
/// SQL, for estimates made before a backup is extracted (measured on generated backups
/// with `scripts/bench`).
pub const GZIP_RATIO: f64 = 6.0;
pub const ROWS_PER_SQL_BYTE: f64 = 1.0 / 140.0;

pub fn partition_bytes_per_sql(format: PartitionFormat) -> f64 {
    match format {
        PartitionFormat::Csv => 0.8,
        PartitionFormat::Parquet => 0.22,
    }
}

pub struct ExtractUnit {
    pub backup: Backup,
    pub inputs: ExtractInputs,
    /// The finished extract, if valid for `inputs`.
    pub done: Option<PartitionInfo>,
}

/// One diff unit: a source of one backup compared with the backup before it.
pub struct DiffUnit {
    /// Index of the backup in the plan.
    pub index: usize,
    pub stem: String,
    pub source: String,
    pub inputs: DiffInputs,
    pub done: Option<DiffRecord>,
    /// Rows of the two partitions: what its memory is estimated from.
    pub rows: u64,
}

pub struct Plan {
    pub discovery: Discovery,
    pub extracts: Vec<ExtractUnit>,
    /// The records of the diff units finished earlier (the journal), valid or not.
    finished: Finished,
}

impl Plan {
    pub fn new(config: &Config, paths: &Paths) -> Result<Plan> {
        let mut discovery = discover(&config.backups, &config.pattern)?;
        if let Some(dates) = &config.dates {
            discovery = discovery.select(dates, &config.backups)?;
        }
        let extracts = discovery
            .backups
            .iter()
            .map(|backup| {
                let inputs = ExtractInputs::of(backup, config)?;
                let done =
                    PartitionInfo::load_valid(&paths.partition_dir(&backup.stamp()), &inputs);
                Ok(ExtractUnit {
                    backup: backup.clone(),
                    inputs,
                    done,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Plan {
            discovery,
            extracts,
            finished: Journal::load(&paths.journal),
        })
    }

    /// Checks that the output fits the target table (`--target-ddl`), against the table of
    /// the first backup (every backup has the same columns, or the diff refuses them).
    pub fn check_target(&self, config: &Config) -> Result<()> {
        let (Some(target), Some(first)) = (&config.target, self.extracts.first()) else {
            return Ok(());
        };
        let table = match &first.done {
            Some(info) => info.table.clone(),
            None => read_table(&first.backup, config)?,
        };
        let layout = Layout::new(&table, config.roles())
            .with_context(|| format!("backup {}", first.backup.path.display()))?;
        TargetPlan::new(target, &layout).map_err(|problems| {
            UsageError(format!(
                "the output would not load into the table of --target-ddl:\n{problems}"
            ))
        })?;
        Ok(())
    }

    pub fn pending_extracts(&self) -> usize {
        self.extracts.iter().filter(|u| u.done.is_none()).count()
    }

    /// The diff units of backup `index`; None while it or the backup before it is not
    /// extracted (its sources are not known yet).
    pub fn diff_units(
        &self,
        index: usize,
        config: &Config,
        paths: &Paths,
    ) -> Option<Vec<DiffUnit>> {
        let info = self.extracts[index].done.as_ref()?;
        let previous = match index.checked_sub(1) {
            Some(i) => Some(self.extracts[i].done.as_ref()?),
            None => None,
        };
        Some(self.diff_units_of(index, info, previous, config, paths))
    }

    /// The diff units of backup `index`, given its extract (`info`) and the extract of the
    /// backup before it (None for the first backup).
    pub fn diff_units_of(
        &self,
        index: usize,
        info: &PartitionInfo,
        previous_info: Option<&PartitionInfo>,
        config: &Config,
        paths: &Paths,
    ) -> Vec<DiffUnit> {
        let current = &self.extracts[index];
        let previous = previous_info.map(|i| (&self.extracts[index - 1], i));
        let date = current.backup.stamp();
        let inputs = DiffInputs {
            date: date.clone(),
            previous: previous.map(|(unit, _)| (unit.backup.stamp(), unit.inputs.clone())),
            current: current.inputs.clone(),
            key: config.key.clone(),
            ignore_columns: config.ignore_columns.clone(),
            time_column: config.time_column.clone(),
            target_table: config.target_table.clone(),
            format: config.format.extension().to_string(),
            chunk_rows: config.chunk_rows,
            target: config.target.as_ref().map(|t| t.canonical.clone()),
        };
        // Every source in either backup: one only in the older backup is removed whole.
        let mut sources: BTreeMap<&str, &str> = BTreeMap::new();
        for entry in previous
            .iter()
            .flat_map(|(_, i)| &i.partitions)
            .chain(&info.partitions)
        {
            sources.insert(&entry.stem, &entry.value);
        }
        let rows_of = |info: &PartitionInfo, stem: &str| {
            (info.partitions.iter())
                .find(|p| p.stem == stem)
                .map_or(0, |p| p.rows)
        };
        sources
            .into_iter()
            .map(|(stem, source)| {
                let outputs_exist = paths
                    .issues_file(&date, stem, config.format.extension())
                    .exists()
                    && (paths.removals_file(&date, stem, config.format.removals_extension()))
                        .exists();
                let done = (self.finished.get(&(date.clone(), source.to_string())))
                    .filter(|record| record.inputs == inputs && outputs_exist)
                    .cloned();
                DiffUnit {
                    index,
                    stem: stem.to_string(),
                    source: source.to_string(),
                    inputs: inputs.clone(),
                    done,
                    rows: rows_of(info, stem) + previous.map_or(0, |(_, i)| rows_of(i, stem)),
                }
            })
            .collect()
    }
}
