//! What a finished unit depended on, so a rerun can tell finished and still valid units from
//! ones to redo. An extract's record is the `_partitions.json` inside its (atomically renamed)
//! folder; a diff unit's record is a line of the journal (`.work/diffs.jsonl`), appended
//! and flushed after its outputs are on disk in place.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::layout::TimeColumn;
use crate::config::{Config, OutputFormat};
use crate::values::backup::Backup;
use crate::workdir::atomic::{staged_prefix, write_file};

/// Bumped whenever the partition format changes, so old partitions are redone.
/// 3: binary columns hold bytes (Parquet binary, hex in CSV), no longer text.
/// 4: Parquet partitions carry the key's fingerprint, LZ4-compressed, no statistics.
/// 5: every column type exactly: `bigint unsigned` as unsigned 64-bit integers, decimals as
///    their canonical text (no longer doubles), `year` as integers.
/// 6: the key's fingerprint folds one word per value (text by its hash), not one hash of
///    all the key's bytes.
const PARTITION_FORMAT: u32 = 6;

/// The inputs of one extract: the backup file as found, and the options that shape the
/// partitions. The file is identified by name, size and modification time, like make and
/// rsync do: hashing tens of GB per run would cost as much as extracting them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractInputs {
    pub file: String,
    pub size: u64,
    pub modified_unix_ns: u64,
    pub table: String,
    pub id_column: String,
    pub partition_column: String,
    /// `parquet` or `csv`.
    pub file_format: String,
    pub format: u32,
}

impl ExtractInputs {
    pub fn of(backup: &Backup, config: &Config) -> Result<ExtractInputs> {
        let meta = std::fs::metadata(&backup.path)
            .with_context(|| format!("cannot read {}", backup.path.display()))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(ExtractInputs {
            file: backup
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size: meta.len(),
            modified_unix_ns: modified,
            table: config.table.clone(),
            id_column: config.id_column.clone(),
            partition_column: config.partition_column.clone(),
            file_format: config.partition_format.extension().to_string(),
            format: PARTITION_FORMAT,
        })
    }
}

/// The inputs of one diff unit (one source, one backup and the one before it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffInputs {
    pub date: String,
    pub previous: Option<(String, ExtractInputs)>,
    pub current: ExtractInputs,
    pub key: Vec<String>,
    pub ignore_columns: Vec<String>,
    /// `--time-column`: what `lag` counts from.
    #[serde(default)]
    pub time_column: TimeColumn,
    pub target_table: String,
    pub format: String,
    pub chunk_rows: usize,
    /// The target table's CREATE TABLE, as sqlparser prints it (`--target-ddl`).
    #[serde(default)]
    pub target: Option<String>,
}

/// A finished diff unit: what it depended on and what it found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffRecord {
    pub inputs: DiffInputs,
    pub source: String,
    pub rows: u64,
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    pub seconds: f64,
    #[serde(default)]
    pub revisions: crate::values::backfill::Revisions,
    /// Whether this run made the record (false for one found finished); not saved.
    #[serde(skip)]
    pub made_now: bool,
    /// Issue rows whose `time_value` is after the backup date; None in records written
    /// before they were counted.
    #[serde(default)]
    pub negative_lag_rows: Option<u64>,
}

/// The records of finished diff units, one JSON line each, in the order they finished: one
/// file for the run instead of a file (and a folder per date) per unit, which on a history
/// of thousands of small units cost more than their diffs. A record is appended only after
/// its unit's files are on disk, and flushed before the unit counts as done.
pub struct Journal {
    file: File,
    path: PathBuf,
}

/// The journal's records by (date, source).
pub type Finished = HashMap<(String, String), DiffRecord>;

impl Journal {
    /// Every readable record of the journal at `path` (none if there is no journal); a line
    /// cut short by a crash is skipped, and of two records of one unit the later one wins.
    pub fn load(path: &Path) -> Finished {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        (text.lines())
            .filter_map(|line| serde_json::from_str::<DiffRecord>(line).ok())
            .map(|record| ((record.inputs.date.clone(), record.source.clone()), record))
            .collect()
    }

    /// Rewrites the journal with `kept` alone (the records still valid, so that it does not
    /// grow from run to run, and a line cut short is gone) and opens it to append.
    pub fn start<'a>(
        path: &Path,
        kept: impl IntoIterator<Item = &'a DiffRecord>,
    ) -> Result<Journal> {
        let mut text = String::new();
        for record in kept {
            text += &serde_json::to_string(record)?;
            text.push('\n');
        }
        write_file(path, |out| Ok(out.write_all(text.as_bytes())?))?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends `records` in one write and flushes them to disk.
    pub fn append(&mut self, records: &[DiffRecord]) -> Result<()> {
        let mut text = String::new();
        for record in records {
            text += &serde_json::to_string(record)?;
            text.push('\n');
        }
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// Where the stages put their files.
pub struct Paths {
    pub partitions: PathBuf,
    /// Extension of the partition files (`parquet` or `csv`).
    pub partition_extension: &'static str,
    /// The records of finished diff units (`Journal`).
    pub journal: PathBuf,
    /// The work folder itself.
    pub work: PathBuf,
    pub issues: PathBuf,
    pub removals: PathBuf,
    pub summary: PathBuf,
    pub table: PathBuf,
}

impl Paths {
    pub fn new(config: &Config) -> Paths {
        Paths {
            partitions: config.work.join("partitions"),
            partition_extension: config.partition_format.extension(),
            journal: config.work.join("diffs.jsonl"),
            work: config.work.clone(),
            issues: config.out.join("issues"),
            removals: config.out.join("removals"),
            summary: config.out.join("summary.json"),
            table: config.out.join("table.json"),
        }
    }

    /// The folder of one backup's partitions, named Hive-style.
    pub fn partition_dir(&self, date: &str) -> PathBuf {
        self.partitions.join(partition_dir_name(date))
    }

    /// The partition file of one source of one backup.
    pub fn partition_file(&self, date: &str, stem: &str) -> PathBuf {
        self.partition_dir(date)
            .join(format!("{stem}.{}", self.partition_extension))
    }

    pub fn issues_file(&self, date: &str, stem: &str, extension: &str) -> PathBuf {
        self.issues.join(date).join(format!("{stem}.{extension}"))
    }

    pub fn removals_file(&self, date: &str, stem: &str, extension: &str) -> PathBuf {
        self.removals.join(date).join(format!("{stem}.{extension}"))
    }

    /// The issues file of a source and date in whichever format the run wrote it.
    pub fn existing_issues_file(&self, date: &str, stem: &str) -> Option<PathBuf> {
        (OutputFormat::EXTENSIONS.iter())
            .map(|ext| self.issues_file(date, stem, ext))
            .find(|p| p.exists())
    }

    /// The removals file of a source and date in whichever format the run wrote it.
    pub fn existing_removals_file(&self, date: &str, stem: &str) -> Option<PathBuf> {
        (OutputFormat::EXTENSIONS.iter())
            .map(|ext| self.removals_file(date, stem, ext))
            .find(|p| p.exists())
    }

    /// The folders that hold one folder per backup date.
    pub fn dated_roots(&self) -> [&Path; 3] {
        [&self.partitions, &self.issues, &self.removals]
    }
}

pub fn partition_dir_name(date: &str) -> String {
    format!("date={date}")
}

/// What the output describes, saved beside it so that `asof` needs the output alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTable {
    pub table: crate::dump::TableDef,
    pub key: Vec<String>,
    pub id_column: String,
    pub partition_column: String,
    pub ignore_columns: Vec<String>,
    /// Missing in outputs made before `--time-column`: the default.
    #[serde(default)]
    pub time_column: TimeColumn,
    pub target_table: String,
    /// The target's definition the SQL was made for (`--target-ddl` or `--database`), as
    /// `TargetTable::definition` prints it: `migrate load` refuses a table that differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_definition: Option<String>,
}

impl OutputTable {
    pub fn load(paths: &Paths) -> Result<OutputTable> {
        let text = std::fs::read_to_string(&paths.table).with_context(|| {
            format!(
                "cannot read {}: run migrate into this folder first",
                paths.table.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", paths.table.display()))
    }

    /// A configuration whose table settings are the ones the output was made with.
    pub fn apply_to(&self, config: &mut Config) {
        config.table = self.table.name.clone();
        config.key = self.key.clone();
        config.id_column = self.id_column.clone();
        config.partition_column = self.partition_column.clone();
        config.ignore_columns = self.ignore_columns.clone();
        config.time_column = self.time_column.clone();
        config.target_table = self.target_table.clone();
    }
}

/// The prefix of the folder, in the work folder, of a split diff unit's buckets.
pub const SPLIT_PREFIX: &str = ".tmp-split-";

/// Removes temporary files and folders (`.tmp-*`) left by a run that was killed.
pub fn remove_leftovers(paths: &Paths) -> Result<usize> {
    let mut removed = 0;
    // The journal's rewrite is staged in the work folder itself, and a split diff unit's
    // buckets; `summary.json` and `table.json` in the output folder (not the scratch folders
    // of `asof`, `history` and `verify`, which run beside a run: only files there).
    let output = parent_of(&paths.summary);
    for (folder, also_split) in [(paths.work.as_path(), true), (output, false)] {
        for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
            let split =
                also_split && (entry.file_name().to_string_lossy()).starts_with(SPLIT_PREFIX);
            if is_temporary(&entry.path()) && (entry.path().is_file() || split) {
                remove(&entry.path())?;
                removed += 1;
            }
        }
    }
    for root in paths.dated_roots() {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if is_temporary(&path) {
                remove(&path)?;
                removed += 1;
            } else if path.is_dir() {
                for inner in std::fs::read_dir(&path)?.flatten() {
                    if is_temporary(&inner.path()) {
                        remove(&inner.path())?;
                        removed += 1;
                    }
                }
            }
        }
    }
    Ok(removed)
}

/// Removes the temporary folders that interrupted extracts of `dates` left (for
/// `extract --dates`, which must not touch what other processes are extracting).
pub fn remove_leftovers_of(paths: &Paths, dates: &[String]) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(&paths.partitions) else {
        return Ok(0);
    };
    let prefixes: Vec<String> = (dates.iter())
        .map(|date| staged_prefix(&partition_dir_name(date)))
        .collect();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if prefixes.iter().any(|p| name.starts_with(p)) {
            remove(&entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn is_temporary(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
}

pub fn remove(path: &Path) -> Result<()> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(date: &str, source: &str, rows: u64) -> DiffRecord {
        let backup = ExtractInputs {
            file: format!("just_covidcast_{date}_database.sql.gz"),
            size: 10,
            modified_unix_ns: 1,
            table: "covidcast".into(),
            id_column: "id".into(),
            partition_column: "source".into(),
            file_format: "parquet".into(),
            format: PARTITION_FORMAT,
        };
        DiffRecord {
            inputs: DiffInputs {
                date: date.into(),
                previous: None,
                current: backup,
                key: vec!["source".into()],
                ignore_columns: vec![],
                time_column: TimeColumn::Auto,
                target_table: "covidcast".into(),
                format: "sql".into(),
                chunk_rows: 1000,
                target: None,
            },
            source: source.into(),
            rows,
            added: rows,
            changed: 0,
            removed: 0,
            seconds: 0.5,
            revisions: Default::default(),
            made_now: false,
            negative_lag_rows: Some(0),
        }
    }

    #[test]
    fn the_journal_keeps_whole_records_and_the_later_of_two() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("diffs.jsonl");
        assert!(Journal::load(&path).is_empty());
        let mut journal = Journal::start(&path, []).unwrap();
        journal
            .append(&[record("20200601", "a", 1), record("20200601", "b", 2)])
            .unwrap();
        journal.append(&[record("20200601", "a", 3)]).unwrap();
        // A crash in the middle of an append leaves a line cut short.
        let whole = serde_json::to_string(&record("20200602", "a", 4)).unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&whole.as_bytes()[..whole.len() / 2])
            .unwrap();
        let loaded = Journal::load(&path);
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[&("20200601".into(), "a".into())].rows, 3);
        assert_eq!(loaded[&("20200601".into(), "b".into())].rows, 2);

        // Started again with the records still wanted: only those, and appends load.
        let kept = [loaded[&("20200601".into(), "b".into())].clone()];
        let mut journal = Journal::start(&path, &kept).unwrap();
        journal.append(&[record("20200602", "a", 5)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        let loaded = Journal::load(&path);
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[&("20200602".into(), "a".into())].rows, 5);
    }
}
