//! `migrate load`: a finished output into its live table, date by date in date order, each
//! date in one transaction with its record (`stages::load`). Everything that can be checked
//! is checked before the first row is sent: the server's table against the one the output
//! was made for, the record against the output's dates, and the server-side lock.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Result};
use mysql::prelude::Queryable;
use tracing::{info, warn};

use crate::config::target::parse_target_ddl;
use crate::exit_codes::UsageError;
use crate::run::progress::{ItemLine, Progress};
use crate::stages::load::database::{
    connect as open, lock_table, quote, show_create_table, ConnectError, DatabaseUrl,
};
use crate::stages::load::record::{self, LoadedDate, RECORD_TABLE};
use crate::stages::load::{DateFiles, Loader};
use crate::values::bytes::human;
use crate::workdir::interrupt;
use crate::workdir::state::{OutputTable, Paths};

/// What to load where.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    pub out: PathBuf,
    pub url: DatabaseUrl,
    /// The table to load into; None: the one the output was made for.
    pub table: Option<String>,
    /// Load into a table that holds rows this tool did not load.
    pub allow_existing: bool,
}

/// What a load did.
#[derive(Debug, Clone, Default)]
pub struct LoadSummary {
    pub table: String,
    /// Dates loaded by this command, with their rows.
    pub loaded: Vec<(String, u64)>,
    /// Dates already in the table, skipped.
    pub skipped: usize,
    pub seconds: f64,
}

impl LoadSummary {
    pub fn rows(&self) -> u64 {
        self.loaded.iter().map(|(_, rows)| rows).sum()
    }
}

/// Connects, refusing a wrong user, password or database with exit 2.
pub fn connect(url: &DatabaseUrl) -> Result<mysql::Conn> {
    open(url).map_err(|e| match e {
        ConnectError::Refused(message) => UsageError(message).into(),
        ConnectError::Unreachable(message) => anyhow!(message),
    })
}

pub fn load(request: &LoadRequest) -> Result<LoadSummary> {
    let started = Instant::now();
    let mut config = crate::config::Config::new(request.out.clone(), request.out.clone());
    let paths = Paths::new(&config);
    let saved = OutputTable::load(&paths)?;
    saved.apply_to(&mut config);
    let Some(made_for) = saved.target_definition.clone() else {
        return Err(UsageError(format!(
            "{} was made without a target table: run the migration again with --database URL \
             (or --target-ddl FILE), so that its SQL fills the live table's columns",
            request.out.display()
        ))
        .into());
    };
    let table = request.table.clone().unwrap_or(saved.target_table.clone());
    let mut loader = Loader::new(connect(&request.url)?)?;
    let shown = show_create_table(loader.conn(), &table)?.ok_or_else(|| {
        UsageError(format!(
            "{}: the database has no table `{table}`: create it first (for Epidata, from its \
             definition in ddl/), or name another with --table",
            request.url
        ))
    })?;
    let live = parse_target_ddl(&shown)
        .map_err(|e| anyhow!("cannot read the definition of `{table}`: {e}"))?;
    if live.definition != made_for {
        return Err(UsageError(format!(
            "the table `{table}` in {} is not the table {} was made for (its definition \
             changed since the run): run the migration again with --database",
            request.url,
            request.out.display()
        ))
        .into());
    }
    lock_table(loader.conn(), &request.url.database, &table)?;
    record::create_if_missing(loader.conn())?;
    let done = record::loaded(loader.conn(), &table)?;
    if done.is_empty() && !request.allow_existing {
        let any: Option<u8> = loader
            .conn()
            .query_first(format!("SELECT 1 FROM {} LIMIT 1", quote(&table)))?;
        if any.is_some() {
            return Err(UsageError(format!(
                "the table `{table}` already holds rows that migrate load did not load (none \
                 are recorded in `{RECORD_TABLE}`): load into an empty table, or pass \
                 --allow-existing if these rows belong there (then the latest flags of their \
                 keys are moved as the loaded issues require)"
            ))
            .into());
        }
    }

    let dates = output_dates(&paths)?;
    let mut pending = Vec::new();
    let mut skipped = 0;
    for date in &dates {
        let files = DateFiles::list(&paths.issues.join(date), date)?;
        match done.get(date) {
            Some(loaded) => {
                check_unchanged(&files, loaded)?;
                skipped += 1;
            }
            None => pending.push(files),
        }
    }
    for date in done.keys().filter(|d| !dates.contains(d)) {
        warn!("the date {date} is loaded into `{table}` but no longer in the output");
    }
    if let (Some(newest), Some(older)) = (
        done.keys().next_back(),
        pending
            .iter()
            .find(|p| Some(&p.date) < done.keys().next_back()),
    ) {
        return Err(UsageError(format!(
            "the date {} is older than {newest}, the newest date already loaded into \
             `{table}`: loaded now, its rows would take the latest-issue flag from newer \
             issues. Load the history into a new table in date order (or delete the dates \
             from {} on, from the table and from `{RECORD_TABLE}`, and load again)",
            older.date, older.date
        ))
        .into());
    }
    if skipped > 0 {
        info!("{skipped} date(s) already loaded into `{table}`: skipped");
    }
    let total: u64 = (pending.iter())
        .flat_map(|p| &p.files)
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let progress = Progress::bytes("load", total);
    let mut summary = LoadSummary {
        table: table.clone(),
        skipped,
        ..Default::default()
    };
    for date in &pending {
        interrupt::check()?;
        let began = Instant::now();
        let fingerprint = date.fingerprint()?;
        let bytes = fingerprint.bytes;
        let rows = loader.load_date(&table, date, fingerprint, &mut |n| progress.advance(n))?;
        let seconds = began.elapsed().as_secs_f64();
        progress.log(ItemLine {
            message: format!(
                "loaded {}: {rows} rows, {} of SQL in {seconds:.1} s ({:.0} rows/s)",
                date.date,
                human(bytes),
                rows as f64 / seconds.max(1e-3)
            ),
            event: "loaded",
            date: date.date.clone(),
            rows,
            sql_bytes: Some(bytes),
            seconds: Some(seconds),
            ..ItemLine::default()
        });
        summary.loaded.push((date.date.clone(), rows));
    }
    progress.finish();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The output's dates, in order: its issues folders named by backup date.
fn output_dates(paths: &Paths) -> Result<Vec<String>> {
    let mut dates: Vec<String> = match std::fs::read_dir(&paths.issues) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    dates.sort();
    Ok(dates)
}

/// A date already loaded must still have the files it was loaded from: a rerun of the
/// migration that changed them (backups replaced) cannot be loaded on top.
fn check_unchanged(files: &DateFiles, loaded: &LoadedDate) -> Result<()> {
    let bytes: u64 = (files.files.iter())
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    if files.files.len() as u64 != loaded.files || bytes != loaded.bytes {
        return Err(UsageError(format!(
            "the date {} was loaded from {} file(s) of {} bytes, but the output now holds {} \
             file(s) of {bytes} bytes: its backups changed since. The table holds the old \
             issues: load the history again into a new table",
            files.date,
            loaded.files,
            loaded.bytes,
            files.files.len()
        ))
        .into());
    }
    Ok(())
}
