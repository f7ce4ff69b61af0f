//! Command-line flags, checked once and turned into a `Config`.

pub mod logging;

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use regex::Regex;

use crate::config::target::parse_target_ddl;
use crate::config::Stages;
use crate::config::{Config, OutputFormat, PartitionFormat, DEFAULT_KEY_LIST, DEFAULT_PATTERN};
use crate::run::memory_limit::{too_small_limit, MIN_MEMORY_LIMIT};
use crate::values::dates::DateSelection;

#[derive(Debug, Parser)]
#[command(
    name = "migrate",
    version,
    about = "Rebuild the revision history (issues) of a table from its daily SQL backups",
    override_usage = "migrate [OPTIONS] --backups <DIR> --out <DIR>\n       migrate <COMMAND> [OPTIONS]",
    after_help = "Exit status: 0 success, 1 failure, 2 usage error, 75 the work folder is in \
                  use by another run, 130 interrupted.",
    args_conflicts_with_subcommands = true,
    mut_args(hiding(ONLY_EXTRACT))
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub args: RunArgs,
}

/// Options of the whole run that `extract` does not use: they shape the diff and the
/// output. Left out of its help and ignored, so that one set of flags serves every stage.
const EXTRACT_IGNORES: &[&str] = &[
    "key",
    "ignore_columns",
    "format",
    "chunk_rows",
    "target_table",
    "target_ddl",
];
/// Options of the whole run that `verify` does not use (`--dry-run` and `--fresh` are
/// refused: verify writes nothing to preview or redo).
const VERIFY_IGNORES: &[&str] = &["chunk_rows", "target_table", "dry_run", "fresh", "dates"];
/// `--dates` is `extract`'s alone (refused elsewhere): every other stage needs every backup.
const ONLY_EXTRACT: &[&str] = &["dates"];
const STAGE_NOTE: &str = "Options of the whole run that this stage does not use are accepted \
                          and ignored, so that one set of flags serves every stage.";
const VERIFY_NOTE: &str = "Options of the whole run that verify does not use are accepted and \
                           ignored, so that one set of flags serves every stage; --dry-run, \
                           --fresh and --dates are refused.";

/// Hides the options named in `ignored` from a stage's help.
fn hiding(ignored: &'static [&'static str]) -> impl FnMut(clap::Arg) -> clap::Arg {
    move |arg| match ignored.contains(&arg.get_id().as_str()) {
        true => arg.hide(true),
        false => arg,
    }
}

/// A stage on its own; each resumes like the whole run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Only extract the backups into partitions
    #[command(mut_args(hiding(EXTRACT_IGNORES)), after_help = STAGE_NOTE)]
    Extract(RunArgs),
    /// Only diff extracted backups and write the output (run `extract` first)
    #[command(mut_args(hiding(ONLY_EXTRACT)))]
    Diff(RunArgs),
    /// Write the output from the diffs the Spark job computed over the partitions
    /// (scripts/spark/migrate_diff.py), in place of the diff stage
    #[command(mut_args(hiding(ONLY_EXTRACT)))]
    Emit(EmitArgs),
    /// Rebuild every backup from the output and compare it with the backup; exit 1 on any
    /// difference
    #[command(mut_args(hiding(VERIFY_IGNORES)), after_help = VERIFY_NOTE)]
    Verify(RunArgs),
    /// Write the table as it was on a date, or the series at a lag, from the output alone
    Asof(AsofArgs),
    /// List every issue of some points of one signal, with lag and change, from the output
    /// alone
    History(HistoryArgs),
    /// Draw the back-fill of a series to SVG: values as of several dates, revisions by lag
    Plot(PlotArgs),
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The output folder of a migration
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// The source of the series to draw
    #[arg(long)]
    pub source: String,

    /// The signal of the series to draw
    #[arg(long)]
    pub signal: String,

    /// Geo values to draw (comma-separated)
    #[arg(long, value_delimiter = ',', required = true)]
    pub geo: Vec<String>,

    /// As-of dates to draw (YYYYMMDD, comma-separated) [default: up to 8 backups; with
    /// --lag, the last]
    #[arg(long, value_delimiter = ',')]
    pub asof: Vec<String>,

    /// Also draw the series at these lags (days, epiweeks for weekly rows; comma-separated)
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(i64).range(0..))]
    pub lag: Vec<i64>,

    /// The SVG file to write
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
}

#[derive(Debug, Args)]
pub struct EmitArgs {
    /// The result folder of the Spark job (its --result), on a local or mounted file system
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,

    #[command(flatten)]
    pub run: RunArgs,
}

/// What the command line asks for.
pub enum Action {
    Run(Stages, RunArgs),
    /// The diff stage from a Spark result (`--from`).
    Emit(PathBuf, RunArgs),
    Verify(RunArgs),
    Asof(AsofArgs),
    History(HistoryArgs),
    Plot(PlotArgs),
}

impl Cli {
    pub fn into_action(self) -> Action {
        match self.command {
            None => Action::Run(Stages::All, self.args),
            Some(Command::Extract(args)) => Action::Run(Stages::Extract, args),
            Some(Command::Diff(args)) => Action::Run(Stages::Diff, args),
            Some(Command::Emit(args)) => Action::Emit(args.from, args.run),
            Some(Command::Verify(args)) => Action::Verify(args),
            Some(Command::Asof(args)) => Action::Asof(args),
            Some(Command::History(args)) => Action::History(args),
            Some(Command::Plot(args)) => Action::Plot(args),
        }
    }
}

#[derive(Debug, Args)]
pub struct AsofArgs {
    /// The output folder of a migration
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// The date (YYYYMMDD): the table as of the last backup on or before it; with --lag,
    /// only backups up to it count
    #[arg(long, value_parser = parse_date, required_unless_present = "lag")]
    pub date: Option<chrono::NaiveDate>,

    /// The series at this lag instead: for every key its latest issue with lag <= K (days,
    /// epiweeks for weekly rows), with `issue` and `lag` columns
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(i64).range(0..))]
    pub lag: Option<i64>,

    /// Only rows of these sources (comma-separated)
    #[arg(long, value_delimiter = ',')]
    pub source: Vec<String>,

    /// Only rows of these signals (comma-separated)
    #[arg(long, value_delimiter = ',')]
    pub signal: Vec<String>,

    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Csv)]
    pub format: OutputFormat,

    /// File to write [default: standard output]
    #[arg(long, value_name = "FILE")]
    pub to: Option<PathBuf>,

    /// Memory it may use, e.g. 2GiB, at least 256MiB [default: 80% of the available memory,
    /// or of what the process's cgroup allows when that is less]; a source whose table does
    /// not fit is rebuilt in parts
    #[arg(long, value_parser = parse_size)]
    pub memory_limit: Option<u64>,

    /// Rebuild sources of more rows than this in parts, whatever the memory budget says:
    /// for tests of the parts, on data too small for any real budget to need them
    #[arg(long, hide = true, value_name = "ROWS")]
    pub max_part_rows: Option<u64>,

    /// Less log output
    #[arg(short, long, action = ArgAction::Count)]
    pub quiet: u8,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The output folder of a migration
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// The source of the points
    #[arg(long)]
    pub source: String,

    /// The signal of the points
    #[arg(long)]
    pub signal: String,

    /// Only these geo values (comma-separated) [default: all]
    #[arg(long, value_delimiter = ',')]
    pub geo: Vec<String>,

    /// Only this time_value, or those in D1..D2 (inclusive), as stored: YYYYMMDD for daily
    /// rows, YYYYWW for weekly rows [default: all]
    #[arg(long, value_name = "D|D1..D2", value_parser = parse_time_range)]
    pub time_value: Option<(i64, i64)>,

    /// Output format [default: table on a terminal, else csv]
    #[arg(long, value_enum)]
    pub format: Option<HistoryFormat>,

    /// Memory it may use, e.g. 2GiB, at least 256MiB [default: 80% of the available memory,
    /// or of what the process's cgroup allows when that is less]
    #[arg(long, value_parser = parse_size)]
    pub memory_limit: Option<u64>,

    /// Rebuild sources of more rows than this in parts, whatever the memory budget says:
    /// for tests of the parts, on data too small for any real budget to need them
    #[arg(long, hide = true, value_name = "ROWS")]
    pub max_part_rows: Option<u64>,

    /// Less log output
    #[arg(short, long, action = ArgAction::Count)]
    pub quiet: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    /// CSV with a header; NULL is an empty field
    Csv,
    /// Aligned columns for reading
    Table,
}

/// Parses `D` or `D1..D2` into an inclusive range.
fn parse_time_range(text: &str) -> Result<(i64, i64), String> {
    let number = |part: &str| {
        part.trim()
            .parse::<i64>()
            .map_err(|_| format!("{part:?} is not a time_value such as 20200624 or 202026"))
    };
    let (low, high) = match text.split_once("..") {
        Some((low, high)) => (number(low)?, number(high)?),
        None => (number(text)?, number(text)?),
    };
    if low > high {
        return Err(format!("{text:?}: the range ends before it starts"));
    }
    Ok((low, high))
}

/// Parses a size such as `1073741824`, `500MB`, `1.5GiB` or `2G` (G and GiB are 2^30).
fn parse_size(text: &str) -> Result<u64, String> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1e3,
        "m" | "mib" => 1024.0 * 1024.0,
        "mb" => 1e6,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "gb" => 1e9,
        "t" | "tib" => 1024f64.powi(4),
        "tb" => 1e12,
        _ => {
            return Err(format!(
                "unknown unit {unit:?}: use B, MB, MiB, GB, GiB, ..."
            ))
        }
    };
    let number: f64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 8GiB"))?;
    Ok((number * scale) as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn time_ranges() {
        use super::parse_time_range;
        assert_eq!(parse_time_range("20200624"), Ok((20200624, 20200624)));
        assert_eq!(
            parse_time_range("20200601..20200630"),
            Ok((20200601, 20200630))
        );
        assert!(parse_time_range("20200630..20200601").is_err());
        assert!(parse_time_range("2020-06-01").is_err());
        assert!(parse_time_range("20200601..").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("GiB").is_err());
    }
}

fn parse_date(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text, "%Y%m%d")
        .map_err(|_| format!("{text:?} is not a YYYYMMDD date"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Folder holding the daily backups (`.sql.gz` or `.sql`, dated in their names)
    #[arg(long, value_name = "DIR")]
    pub backups: Option<PathBuf>,

    /// Folder for the issues, removals and summary.json
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Folder for intermediate partitions [default: OUT/.work]
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,

    /// Table to migrate; other tables in the dumps are skipped
    #[arg(long, default_value = "covidcast")]
    pub table: String,

    /// Table name in the emitted INSERT statements [default: --table]
    #[arg(long)]
    pub target_table: Option<String>,

    /// CREATE TABLE of the table the SQL output loads into (as SHOW CREATE TABLE prints it,
    /// e.g. Epidata's covidcast): the INSERTs fill its columns (is_latest_issue, is_wip,
    /// missing_* too) and keep is_latest_issue right when files load in date order
    #[arg(long, value_name = "FILE")]
    pub target_ddl: Option<PathBuf>,

    /// Columns that identify a row, comma-separated
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_KEY_LIST)]
    pub key: Vec<String>,

    /// Surrogate id column: never compared, not written
    #[arg(long, default_value = "id")]
    pub id_column: String,

    /// Columns carried to the output but not compared, comma-separated
    #[arg(long, value_delimiter = ',')]
    pub ignore_columns: Vec<String>,

    /// Column whose values split the work and the output files
    #[arg(long, default_value = "source")]
    pub partition_column: String,

    /// How extraction stores the partitions (see the README for why Parquet is the default)
    #[arg(long, value_enum, default_value_t = PartitionFormat::Parquet)]
    pub partition_format: PartitionFormat,

    /// Regular expression for backup file names; its `date` group holds YYYYMMDD
    #[arg(long, default_value = DEFAULT_PATTERN)]
    pub pattern: String,

    /// Output format of the issue files
    #[arg(long, value_enum, default_value_t = OutputFormat::Sql)]
    pub format: OutputFormat,

    /// Rows per INSERT statement in SQL output
    #[arg(long, default_value_t = 1000)]
    pub chunk_rows: usize,

    /// Backups extracted at once, and at most as many diff units run at once [default:
    /// number of cores]
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,

    /// Memory the run may use, e.g. 8GiB or 500MB, at least 256MiB [default: 80% of the
    /// available memory, or of what the process's cgroup allows when that is less]; fewer
    /// backups are extracted at once and larger diff units split to fit
    #[arg(long, value_parser = parse_size)]
    pub memory_limit: Option<u64>,

    /// Only the backups of these dates (`migrate extract` on one of several machines sharing
    /// --work): YYYYMMDD dates and inclusive ranges A..B, A.. or ..B, comma-separated
    #[arg(long, value_name = "DATES", value_parser = DateSelection::parse)]
    pub dates: Option<DateSelection>,

    /// Split diff units of more rows (both partitions) than this, whatever the memory budget
    /// says: for tests of the split, on data too small for any real budget to split
    #[arg(long, hide = true, value_name = "ROWS")]
    pub max_part_rows: Option<u64>,

    /// Print the plan (backups, gaps, units done and pending, memory) and write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Ignore and remove the state and output of earlier runs
    #[arg(long)]
    pub fresh: bool,

    /// Log lines as text or as JSON objects
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// More log output (-v debug, -vv trace); RUST_LOG overrides
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,

    /// Less log output (-q warnings only, -qq errors only)
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
}

impl RunArgs {
    pub fn verbosity(&self) -> i8 {
        self.verbose.min(4) as i8 - self.quiet.min(4) as i8
    }

    /// Checks the flags against each other; the message says what to change.
    pub fn into_config(self) -> Result<Config, String> {
        // Checked here rather than by clap, which cannot require them both at the top level
        // and in each stage's subcommand.
        let backups = self
            .backups
            .ok_or("--backups DIR is required (try `migrate --help`)")?;
        let out = self
            .out
            .ok_or("--out DIR is required (try `migrate --help`)")?;
        let mut config = Config::new(backups, out);
        if let Some(work) = self.work {
            config.work = work;
        }
        if self.key.iter().any(String::is_empty) || self.key.is_empty() {
            return Err("--key needs at least one column name".into());
        }
        if self.key.contains(&self.id_column) {
            return Err(format!(
                "--id-column {} is also in --key; the id is never compared",
                self.id_column
            ));
        }
        if let Some(both) = self.ignore_columns.iter().find(|c| self.key.contains(c)) {
            return Err(format!("--ignore-columns {both} is part of --key"));
        }
        let pattern = Regex::new(&self.pattern)
            .map_err(|e| format!("--pattern is not a regular expression: {e}"))?;
        if pattern.captures_len() < 2 {
            return Err("--pattern needs a group for the date, e.g. (?P<date>\\d{8})".into());
        }
        if self.chunk_rows == 0 {
            return Err("--chunk-rows must be at least 1".into());
        }
        if self.jobs == Some(0) {
            return Err("--jobs must be at least 1".into());
        }
        if let Some(limit) = self.memory_limit.filter(|&l| l < MIN_MEMORY_LIMIT) {
            return Err(too_small_limit(limit));
        }
        if let Some(path) = &self.target_ddl {
            if self.format != OutputFormat::Sql {
                return Err(
                    "--target-ddl describes the table SQL output loads into; it needs \
                            --format sql"
                        .into(),
                );
            }
            if self.target_table.is_some() {
                return Err(
                    "--target-table and --target-ddl both name the target table; the \
                            name comes from the CREATE TABLE of --target-ddl"
                        .into(),
                );
            }
            let sql = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --target-ddl {}: {e}", path.display()))?;
            let target = parse_target_ddl(&sql)
                .map_err(|e| format!("--target-ddl {}: {e}", path.display()))?;
            config.target_table = target.name.clone();
            config.target = Some(target);
        }
        let target_table = self.target_table.unwrap_or_else(|| self.table.clone());
        if config.target.is_none() {
            config.target_table = target_table;
        }
        config.table = self.table;
        config.key = self.key;
        config.id_column = self.id_column;
        config.ignore_columns = self.ignore_columns;
        config.partition_column = self.partition_column;
        config.partition_format = self.partition_format;
        config.pattern = pattern;
        config.format = self.format;
        config.chunk_rows = self.chunk_rows;
        if let Some(jobs) = self.jobs {
            config.jobs = jobs;
        }
        config.fresh = self.fresh;
        config.memory_limit = self.memory_limit;
        if self.max_part_rows == Some(0) {
            return Err("--max-part-rows must be at least 1".into());
        }
        config.max_part_rows = self.max_part_rows;
        config.dry_run = self.dry_run;
        config.dates = self.dates;
        Ok(config)
    }
}
