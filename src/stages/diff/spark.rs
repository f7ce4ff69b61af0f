//! `migrate emit --from RESULT`: the diffs computed by the Spark job
//! (`scripts/spark/migrate_diff.py`) in place of the local diff. The job records what it
//! computed (`RESULT/_job`); every pending unit is checked against that record before
//! anything is written, then each unit's issue rows and removals are read from the result
//! and go through the same emit code as a local diff's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use polars::prelude::*;
use serde::Deserialize;

use crate::config::layout::Layout;
use crate::config::Config;
use crate::stages::diff::file_read::{read_parquet, RowPredicate};
use crate::stages::diff::{
    bucket_of, is_parquet, sort_by_key, table_bucket_column, DiffResult, ADDED, PREVIOUS_VALUE,
    VALUE,
};
use crate::stages::extract::parquet::stored_schema;
use crate::workdir::state::{DiffInputs, ExtractInputs};

/// The layout of the result this version reads (the job's `RESULT_FORMAT`).
const RESULT_FORMAT: u32 = 1;

/// What the Spark job wrote into `RESULT/_job`.
#[derive(Debug, Deserialize)]
struct JobRecord {
    format: u32,
    key: Vec<String>,
    ignore_columns: Vec<String>,
    diffs: Vec<JobDiff>,
}

/// One backup the job diffed, against the one before it, with the records of the
/// partitions it read (as a diff unit's `DiffInputs` holds them).
#[derive(Debug, Deserialize)]
struct JobDiff {
    date: String,
    previous: Option<(String, ExtractInputs)>,
    current: ExtractInputs,
}

/// A finished result of the Spark job.
pub struct SparkResult {
    root: PathBuf,
    diffs: BTreeMap<String, JobDiff>,
}

impl SparkResult {
    /// Opens the result in `root`, checking that it was computed with this run's key and
    /// ignored columns.
    pub fn open(root: &Path, config: &Config) -> Result<SparkResult> {
        let job_dir = root.join("_job");
        let part = parts_in(&job_dir)?.into_iter().next().with_context(|| {
            format!(
                "{} holds no finished result of the Spark job (no _job record): run \
                 scripts/spark/migrate_diff.py with --result {} until it succeeds",
                root.display(),
                root.display()
            )
        })?;
        let text = std::fs::read_to_string(&part)
            .with_context(|| format!("cannot read {}", part.display()))?;
        let job: JobRecord = serde_json::from_str(text.trim())
            .with_context(|| format!("{} is not a record of the Spark job", part.display()))?;
        if job.format != RESULT_FORMAT {
            bail!(
                "{} was written by a Spark job of another version (result format {}, this \
                 migrate reads {RESULT_FORMAT}): rerun scripts/spark/migrate_diff.py of this \
                 version",
                root.display(),
                job.format
            );
        }
        let sorted = |names: &[String]| {
            let mut names = names.to_vec();
            names.sort();
            names
        };
        if job.key != config.key || sorted(&job.ignore_columns) != sorted(&config.ignore_columns) {
            bail!(
                "the Spark result in {} was computed with --key {} and --ignore-columns \
                 '{}', this command has --key {} and --ignore-columns '{}': pass the same, or \
                 rerun the job with these",
                root.display(),
                job.key.join(","),
                job.ignore_columns.join(","),
                config.key.join(","),
                config.ignore_columns.join(",")
            );
        }
        Ok(SparkResult {
            root: root.to_path_buf(),
            diffs: job.diffs.into_iter().map(|d| (d.date.clone(), d)).collect(),
        })
    }

    /// Fails, naming them, unless the result holds the diffs of these units as they stand:
    /// the same backup pairs, extracted from the same files with the same options.
    pub fn check_covers<'a>(&self, units: impl Iterator<Item = &'a DiffInputs>) -> Result<()> {
        let mut missing = Vec::new();
        let mut changed = Vec::new();
        for inputs in units {
            let against = |p: &Option<(String, ExtractInputs)>| {
                p.as_ref()
                    .map_or("nothing (the first backup)".into(), |p| p.0.clone())
            };
            match self.diffs.get(&inputs.date) {
                None => missing.push(inputs.date.clone()),
                Some(diff)
                    if diff.previous.as_ref().map(|p| &p.0)
                        != inputs.previous.as_ref().map(|p| &p.0) =>
                {
                    changed.push(format!(
                        "{} is compared with {} here, with {} in the result",
                        inputs.date,
                        against(&inputs.previous),
                        against(&diff.previous)
                    ))
                }
                Some(diff)
                    if diff.previous != inputs.previous || diff.current != inputs.current =>
                {
                    changed.push(format!(
                        "the partitions of {} or of the backup before it were extracted again \
                         (another file, or other options) since the job read them",
                        inputs.date
                    ))
                }
                Some(_) => {}
            }
        }
        missing.dedup();
        changed.dedup();
        if !missing.is_empty() {
            changed.insert(
                0,
                format!("the result has no diff of {}", missing.join(", ")),
            );
        }
        if !changed.is_empty() {
            bail!(
                "the Spark result in {} does not match the partitions: {}. Run the Spark job \
                 again over the partitions as they are (with --dates for the backups named), \
                 then this command",
                self.root.display(),
                changed.join("; ")
            );
        }
        Ok(())
    }

    /// The diff of one source (its value `source` of the partition column) in the backup
    /// of `date`, as the local diff gives it; `rows` is the size of its newer partition.
    /// With `bucket` (`(bucket, buckets)`), only the rows of that bucket of the table's
    /// bucket column (`table_bucket_column`: `time_value` in Epidata's tables),
    /// as a split unit's buckets are read.
    pub fn unit(
        &self,
        date: &str,
        first: bool,
        source: &str,
        rows: usize,
        layout: &Layout,
        bucket: Option<(usize, usize)>,
    ) -> Result<DiffResult> {
        let mut extra = vec![Field::new(ADDED.into(), DataType::Boolean)];
        if !first && layout.compared_names().contains(&VALUE) {
            let value = stored_schema(layout).get(VALUE).cloned();
            extra.push(Field::new(
                PREVIOUS_VALUE.into(),
                value.unwrap_or(DataType::Float64),
            ));
        }
        let issues = self.read("issues", date, source, layout, &extra, bucket)?;
        let removed = self.read("removals", date, source, layout, &[], bucket)?;
        let added = issues.column(ADDED)?.bool()?.sum().unwrap_or(0) as usize;
        Ok(DiffResult {
            changed: issues.height() - added,
            added,
            issues,
            removed,
            rows,
        })
    }

    /// The rows of one source in `RESULT/output=OUTPUT/date=DATE/`, with the stored columns
    /// typed as the partitions are, then `extra`, sorted by key.
    fn read(
        &self,
        output: &str,
        date: &str,
        source: &str,
        layout: &Layout,
        extra: &[Field],
        bucket: Option<(usize, usize)>,
    ) -> Result<DataFrame> {
        let dir = self
            .root
            .join(format!("output={output}"))
            .join(format!("date={date}"));
        let mut schema = stored_schema(layout);
        for field in extra {
            schema.with_column(field.name.clone(), field.dtype.clone());
        }
        let files = parts_in(&dir)?;
        if files.is_empty() {
            return Ok(DataFrame::empty_with_schema(&schema));
        }
        let partition = layout
            .names()
            .nth(layout.partition)
            .expect("a partition column");
        // The files of a date hold several sources, each in row groups of its own: a row
        // group of another source costs only the read of its partition column.
        let mut keep = RowPredicate {
            expr: col(partition).cast(DataType::String).eq(lit(source)),
            columns: vec![partition.to_string()],
        };
        if let Some((bucket, buckets)) = bucket {
            let Some(column) = table_bucket_column(layout) else {
                bail!(
                    "{} cannot be read in parts: the table has no integer column to split by",
                    dir.display()
                );
            };
            keep.expr = (keep.expr).and(bucket_of(&column, buckets).eq(lit(bucket as i64)));
            keep.columns.push(column.name);
        }
        let names: Vec<String> = schema.iter_names().map(|name| name.to_string()).collect();
        let columns: Vec<Expr> = schema
            .iter()
            .map(|(name, dtype)| col(name.clone()).strict_cast(dtype.clone()))
            .collect();
        let typed = |piece: DataFrame| piece.lazy().select(columns.clone()).collect();
        let frames = files
            .iter()
            .map(|file| {
                read_parquet(file, Some(&names), Some(&keep), Some(&typed))
                    .map(DataFrame::lazy)
                    .map_err(anyhow::Error::from)
                    .with_context(|| format!("cannot read {}", file.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        let frame = sort_by_key(concat(frames, UnionArgs::default())?, layout).collect();
        let mut frame = (frame.map_err(anyhow::Error::from))
            .with_context(|| format!("cannot read the Spark result in {}", dir.display()))?;
        frame.rechunk_mut();
        Ok(frame)
    }
}

/// The data files in a folder written by Spark (`part-*`), sorted; none if it is missing.
fn parts_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        // Spark's markers and checksums (`_SUCCESS`, `.part-….crc`) are not data.
        if name.is_some_and(|n| n.starts_with("part-")) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    // A data folder holds Parquet; `_job` holds the one text record.
    if dir.file_name().is_some_and(|n| n != "_job") {
        files.retain(|f| is_parquet(f));
    }
    Ok(files)
}
