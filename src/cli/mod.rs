//! Command-line flags, checked once and turned into a `Config`.

pub mod logging;

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use regex::Regex;

use crate::config::layout::TimeColumn;
use crate::config::target::{parse_target_ddl, TargetTable};
use crate::config::Stages;
use crate::config::{Config, OutputFormat, PartitionFormat, DEFAULT_KEY_LIST, DEFAULT_PATTERN};
use crate::run::memory_limit::{too_small_limit, MIN_MEMORY_LIMIT};
use crate::stages::load::database::{connect, show_create_table};
use crate::values::database_url::DatabaseUrl;
use crate::values::dates::DateSelection;

#[derive(Debug, Parser)]
#[command(
    name = "migrate",
    version = VERSION,
    about = "Rebuild the revision history (issues) of a table from its daily SQL backups",
    override_usage = "migrate [OPTIONS] --backups <DIR> --out <DIR>\n       migrate <COMMAND> [OPTIONS]",
    after_help = MAIN_AFTER_HELP,
    args_conflicts_with_subcommands = true,
    arg_required_else_help = true,
    mut_args(hiding(ONLY_EXTRACT))
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub args: RunArgs,
}

/// `--version`: the package version and, when built from a git checkout, its commit
/// (`build.rs` sets `MIGRATE_VERSION`).
const VERSION: &str = env!("MIGRATE_VERSION");

/// The main help's closing section: examples and exit statuses.
const MAIN_AFTER_HELP: &str = "\
Examples (on the sample backups; `cargo run --` or target/debug/migrate in place of migrate):
  migrate --backups fixtures/backups --out out                 the whole run (resumable)
  migrate --backups fixtures/backups --out out --dry-run       the plan and its time
  migrate verify --backups fixtures/backups --out out          prove the output
  migrate sources --out out                                    what the output holds
  migrate asof --out out --date 20200603 --source fb-survey    the table as of a date
  migrate history --out out --source fb-survey --signal smoothed_cli --geo 42003
  migrate plot --out out --source fb-survey --signal smoothed_cli --geo 42003 --to plot.svg
  migrate completions bash > ~/.local/share/bash-completion/completions/migrate

Exit status: 0 success, 1 failure, 2 usage or input error (nothing was done), 75 the work \
folder is in use by another run, 130 interrupted.";

/// Options of the whole run that `extract` does not use: they shape the diff and the
/// output. Left out of its help and ignored, so that one set of flags serves every stage.
const EXTRACT_IGNORES: &[&str] = &[
    "key",
    "ignore_columns",
    "time_column",
    "format",
    "chunk_rows",
    "target_table",
    "target_ddl",
];
/// Options of the whole run that `verify` does not use (`--dry-run` and `--fresh` are
/// refused: verify writes nothing to preview or redo).
const VERIFY_IGNORES: &[&str] = &["chunk_rows", "target_table", "dry_run", "fresh"];
/// `--dates` is `extract`'s alone (refused elsewhere): every other stage needs every backup.
const ONLY_EXTRACT: &[&str] = &["dates"];
const STAGE_NOTE: &str = "Options of the whole run that this stage does not use are accepted \
                          and ignored, so that one set of flags serves every stage.";
const VERIFY_NOTE: &str = "Options of the whole run that verify does not use are accepted and \
                           ignored, so that one set of flags serves every stage; --dry-run and \
                           --fresh are refused, and --dates needs --database.";

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
    #[command(
        mut_args(hiding(EXTRACT_IGNORES)),
        after_help = STAGE_NOTE,
        override_usage = "migrate extract [OPTIONS] --backups <DIR> --out <DIR>"
    )]
    Extract(RunArgs),
    /// Only diff extracted backups and write the output (run `extract` first)
    #[command(
        mut_args(hiding(ONLY_EXTRACT)),
        override_usage = "migrate diff [OPTIONS] --backups <DIR> --out <DIR>"
    )]
    Diff(RunArgs),
    /// Write the output from the diffs the Spark job computed over the partitions
    /// (scripts/spark/migrate_diff.py), in place of the diff stage
    #[command(
        mut_args(hiding(ONLY_EXTRACT)),
        override_usage = "migrate emit [OPTIONS] --from <DIR> --backups <DIR> --out <DIR>"
    )]
    Emit(EmitArgs),
    /// Rebuild every backup from the output and compare it with the backup; exit 1 on any
    /// difference
    #[command(
        mut_args(hiding(VERIFY_IGNORES)),
        after_help = VERIFY_NOTE,
        override_usage = "migrate verify [OPTIONS] --backups <DIR> --out <DIR>"
    )]
    Verify(RunArgs),
    /// Write the table as it was on a date, or the series at a lag, from the output alone
    Asof(AsofArgs),
    /// List every issue of some points (of some sources and signals), with lag and change,
    /// from the output alone
    History(HistoryArgs),
    /// Draw the back-fill of a series to SVG: values as of several dates, revisions by lag
    Plot(PlotArgs),
    /// List the sources and signals an output holds: issue rows, issues, first and last
    /// issue
    Sources(SourcesArgs),
    /// Load the output into its live table: date by date, each date in one transaction,
    /// recorded in the database so that a rerun loads only the dates not yet in
    Load(LoadArgs),
    /// Print a shell completion script (e.g. `migrate completions bash >
    /// ~/.local/share/bash-completion/completions/migrate`)
    Completions {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `migrate man > migrate.1; man ./migrate.1`
    Man,
}

/// How much is logged, and how: the same flags for every command.
#[derive(Debug, Args, Clone)]
pub struct LogArgs {
    /// Log lines as text or as JSON objects
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// More log output (-v: per-backup lines under the progress bar, and debug; -vv trace);
    /// RUST_LOG overrides
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,

    /// Less log output (-q warnings only, the progress bar kept; -qq errors only)
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
}

impl LogArgs {
    /// The count of `-v` minus the count of `-q`.
    pub fn verbosity(&self) -> i8 {
        self.verbose.min(4) as i8 - self.quiet.min(4) as i8
    }
}

/// Where the target table lives, and its password.
#[derive(Debug, Args, Clone)]
pub struct DatabaseArgs {
    /// The target database: mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE, with
    /// ?socket=PATH for a Unix socket (the password may also come from --password-file or
    /// MYSQL_PWD)
    // The help text is clap's: its brackets are no links.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,

    /// A file holding the database password (its first line), instead of the URL or MYSQL_PWD
    #[arg(long, value_name = "FILE", requires = "database")]
    pub password_file: Option<PathBuf>,
}

impl DatabaseArgs {
    /// The URL with its password, when --database is given.
    pub fn url(&self) -> Result<Option<DatabaseUrl>, String> {
        let Some(url) = &self.database else {
            return Ok(None);
        };
        let url = DatabaseUrl::parse(url)?;
        url.with_password_from(self.password_file.as_deref())
            .map(Some)
    }
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The output folder of a migration made for the table (with --database or --target-ddl)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    #[command(flatten)]
    pub db: DatabaseArgs,

    /// The table to load into [default: the one the output was made for]
    #[arg(long)]
    pub table: Option<String>,

    /// Load into a table that already holds rows this tool did not load (their latest
    /// flags are moved as the loaded issues require)
    #[arg(long)]
    pub allow_existing: bool,

    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The output folder of a migration
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// The source of the series to draw (one: a list, comma-separated as in `asof` and
    /// `history`, is refused, as one axis shows one signal's values)
    #[arg(long, value_delimiter = ',', required = true)]
    pub source: Vec<String>,

    /// The signal of the series to draw (one, as --source)
    #[arg(long, value_delimiter = ',', required = true)]
    pub signal: Vec<String>,

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

    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct SourcesArgs {
    /// The output folder of a migration
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Output format [default: table on a terminal, else csv]
    #[arg(long, value_enum)]
    pub format: Option<HistoryFormat>,

    #[command(flatten)]
    pub log: LogArgs,
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
    Sources(SourcesArgs),
    Load(LoadArgs),
    Completions(clap_complete::Shell),
    Man,
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
            Some(Command::Sources(args)) => Action::Sources(args),
            Some(Command::Load(args)) => Action::Load(args),
            Some(Command::Completions { shell }) => Action::Completions(shell),
            Some(Command::Man) => Action::Man,
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

    #[command(flatten)]
    pub memory: MemoryArgs,

    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The output folder of a migration
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// The sources of the points (values of --partition-column, comma-separated); with
    /// more than one, a `source` column tells them apart
    #[arg(long, value_delimiter = ',', required = true)]
    pub source: Vec<String>,

    /// Only these signals (comma-separated) [default: every row of the sources]; unless
    /// exactly one, a `signal` column tells them apart
    #[arg(long, value_delimiter = ',')]
    pub signal: Vec<String>,

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

    #[command(flatten)]
    pub memory: MemoryArgs,

    #[command(flatten)]
    pub log: LogArgs,
}

/// The memory options of the commands that read an output (`asof`, `history`).
#[derive(Debug, Args)]
pub struct MemoryArgs {
    /// Memory it may use, e.g. 2GiB, at least 256MiB [default: 80% of the available memory,
    /// or of what the process's cgroup allows when that is less]; what does not fit is read
    /// in parts
    #[arg(long, value_parser = parse_size)]
    pub memory_limit: Option<u64>,

    /// Read sources of more rows than this in parts, whatever the memory budget says: for
    /// tests of the parts, on data too small for any real budget to need them
    #[arg(long, hide = true, value_name = "ROWS")]
    pub max_part_rows: Option<u64>,
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

/// The target table's definition, read from the server: what `--target-ddl` reads from a file.
fn target_from_server(url: &DatabaseUrl, table: &str) -> Result<TargetTable, String> {
    let mut conn = connect(url).map_err(|e| e.to_string())?;
    let shown = show_create_table(&mut conn, table)
        .map_err(|e| format!("{url}: cannot read the table `{table}`: {e}"))?
        .ok_or_else(|| {
            format!(
                "{url}: the database has no table `{table}` (the target is --target-table, \
                 else --table): create it first, or name the right one"
            )
        })?;
    parse_target_ddl(&shown).map_err(|e| format!("{url}: the table `{table}`: {e}"))
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
    #[arg(long, value_name = "FILE", conflicts_with = "database")]
    pub target_ddl: Option<PathBuf>,

    #[command(flatten)]
    pub db: DatabaseArgs,

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

    /// Column that `lag` counts from: an integer YYYYMMDD/YYYYWW column read with
    /// time_type ('day'/'week'), or a date, datetime or timestamp column (lag in days);
    /// `none`: issue rows without lag [default: time_value if the table has it, else none]
    #[arg(long, value_name = "COL")]
    pub time_column: Option<String>,

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

    /// Cut chains of small diff units after this many rows (both partitions) instead of
    /// about a million: for tests of the cut, on data too small to be cut
    #[arg(long, hide = true, value_name = "ROWS")]
    pub chain_piece_rows: Option<u64>,

    /// Print the plan (backups, gaps, units done and pending, memory) and write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Ignore and remove the state and output of earlier runs
    #[arg(long)]
    pub fresh: bool,

    #[command(flatten)]
    pub log: LogArgs,
}

impl RunArgs {
    pub fn verbosity(&self) -> i8 {
        self.log.verbosity()
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
        if let Some(url) = self.db.url()? {
            if self.format != OutputFormat::Sql {
                return Err("--database loads SQL output; it needs --format sql".into());
            }
            let name = self
                .target_table
                .clone()
                .unwrap_or_else(|| self.table.clone());
            let target = target_from_server(&url, &name)?;
            config.target_table = target.name.clone();
            config.target = Some(target);
            config.database = Some(url);
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
        if let Some(time) = &self.time_column {
            if time.is_empty() {
                return Err("--time-column needs a column name, or none".into());
            }
            config.time_column = TimeColumn::parse(time);
        }
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
        if self.chain_piece_rows == Some(0) {
            return Err("--chain-piece-rows must be at least 1".into());
        }
        config.chain_piece_rows = self.chain_piece_rows;
        config.dry_run = self.dry_run;
        config.dates = self.dates;
        Ok(config)
    }
}
