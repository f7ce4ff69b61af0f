//! The validated settings of a run. The CLI builds one from its flags; library users build
//! one directly.

pub mod layout;
pub mod target;

use std::path::PathBuf;

use regex::Regex;

use crate::config::layout::{ColumnRoles, TimeColumn};
use crate::config::target::TargetTable;
use crate::values::database_url::DatabaseUrl;
use crate::values::dates::DateSelection;

/// Columns of Delphi's `covidcast` table that identify a measurement.
pub const DEFAULT_KEY: [&str; 6] = [
    "source",
    "signal",
    "time_type",
    "geo_type",
    "time_value",
    "geo_value",
];

/// `DEFAULT_KEY` as `--key` takes it.
pub const DEFAULT_KEY_LIST: &str = "source,signal,time_type,geo_type,time_value,geo_value";

/// File names of the daily backups: the date is the `date` group (YYYYMMDD).
pub const DEFAULT_PATTERN: &str = r"^just_covidcast_(?P<date>\d{8})_database\.sql(\.gz)?$";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// INSERT statements that load into the migrated table.
    Sql,
    /// CSV with a header; NULL is an empty field, the empty string is "".
    Csv,
    /// Parquet with typed columns: the CSV's columns, `issue` and `lag` as integers.
    Parquet,
}

impl OutputFormat {
    /// Extensions of the issue files of every format.
    pub const EXTENSIONS: [&'static str; 3] = ["sql", "csv", "parquet"];

    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Sql => "sql",
            OutputFormat::Csv => "csv",
            OutputFormat::Parquet => "parquet",
        }
    }

    /// Removals are CSV but for Parquet output, where they are Parquet too.
    pub fn removals_extension(self) -> &'static str {
        match self {
            OutputFormat::Parquet => "parquet",
            _ => "csv",
        }
    }
}

/// How extraction stores the partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PartitionFormat {
    /// Typed columns, text dictionary-encoded: read without parsing, a fraction of the size.
    Parquet,
    /// Text, one line per row: for reading with text tools.
    Csv,
}

impl PartitionFormat {
    pub fn extension(self) -> &'static str {
        match self {
            PartitionFormat::Parquet => "parquet",
            PartitionFormat::Csv => "csv",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Folder holding the daily backups.
    pub backups: PathBuf,
    /// Folder receiving issues, removals and the summary.
    pub out: PathBuf,
    /// Folder for intermediate partitions.
    pub work: PathBuf,
    /// The table to migrate; other tables in the dumps are skipped.
    pub table: String,
    /// Name of the table the emitted SQL inserts into.
    pub target_table: String,
    pub key: Vec<String>,
    /// The surrogate id column: never compared, never written.
    pub id_column: String,
    /// Columns carried to the output but not compared.
    pub ignore_columns: Vec<String>,
    /// Column whose values split the work (one partition per value).
    pub partition_column: String,
    /// The column `lag` counts from (`--time-column`).
    pub time_column: TimeColumn,
    pub partition_format: PartitionFormat,
    pub pattern: Regex,
    pub format: OutputFormat,
    /// Rows per INSERT statement in SQL output.
    pub chunk_rows: usize,
    /// Backups extracted at once.
    pub jobs: usize,
    /// Ignore and remove the state and output of earlier runs.
    pub fresh: bool,
    /// Print the plan and write nothing.
    pub dry_run: bool,
    /// Memory the run may use; None: 80% of the available memory, or of what the cgroup
    /// allows when that is less (`run::memory_limit`).
    pub memory_limit: Option<u64>,
    /// Diff units of more rows (both partitions) than this are split, whatever the budget
    /// (tests of the split on small data).
    pub max_part_rows: Option<u64>,
    /// Chains of small diff units are cut after this many rows instead of the default
    /// (tests of the cut on small data).
    pub chain_piece_rows: Option<u64>,
    /// The table the SQL output loads into (`--target-ddl`); None: the dump's columns, then
    /// `issue` and `lag`.
    pub target: Option<TargetTable>,
    /// Only the backups of these dates (`extract --dates`); None: every backup.
    pub dates: Option<DateSelection>,
    /// The target database (`--database`): the target's definition came from it, and
    /// `verify` checks the live table there.
    pub database: Option<DatabaseUrl>,
    /// `emit`: the result folder of the Spark job whose diffs replace the local diff.
    pub diffs_from: Option<PathBuf>,
}

impl Config {
    /// The columns this run names by their role.
    pub fn roles(&self) -> ColumnRoles<'_> {
        ColumnRoles {
            id: &self.id_column,
            key: &self.key,
            ignore: &self.ignore_columns,
            partition: &self.partition_column,
            time: &self.time_column,
        }
    }

    /// A configuration with the defaults for Delphi's `covidcast` table.
    pub fn new(backups: PathBuf, out: PathBuf) -> Config {
        let work = out.join(".work");
        Config {
            backups,
            out,
            work,
            table: "covidcast".into(),
            target_table: "covidcast".into(),
            key: DEFAULT_KEY.iter().map(|s| s.to_string()).collect(),
            id_column: "id".into(),
            ignore_columns: Vec::new(),
            partition_column: "source".into(),
            time_column: TimeColumn::Auto,
            partition_format: PartitionFormat::Parquet,
            pattern: Regex::new(DEFAULT_PATTERN).expect("the default pattern is valid"),
            format: OutputFormat::Sql,
            chunk_rows: 1000,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            fresh: false,
            dry_run: false,
            memory_limit: None,
            max_part_rows: None,
            chain_piece_rows: None,
            target: None,
            dates: None,
            database: None,
            diffs_from: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_list_is_the_key() {
        assert_eq!(DEFAULT_KEY_LIST, DEFAULT_KEY.join(","));
    }
}

/// Which stages a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stages {
    All,
    Extract,
    Diff,
    /// The diff stage from the Spark job's result (`config.diffs_from`).
    Emit,
}
