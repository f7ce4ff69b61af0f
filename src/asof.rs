//! `migrate asof`: the table as it was on a date, rebuilt from the output alone: for each
//! key the latest issue row up to that date, minus keys removed by then.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::{anyhow, bail, Result};
use polars::prelude::{DataFrame, IntoLazy, LazyFrame};

use crate::cli::AsofArgs;
use crate::config::Config;
use crate::diff::{read_partition, sort_by_key, text_as_strings};
use crate::emit::write_rows;
use crate::events::{events_schema, read_events};
use crate::lag_view::at_lag;
use crate::layout::Layout;
use crate::partition::file_stem;
use crate::replay::{apply, read_issues, read_removals};
use crate::row_filter::RowFilter;
use crate::state::{OutputTable, Paths};

/// A migration's output folder, opened for replaying.
pub struct Output {
    pub config: Config,
    pub paths: Paths,
    pub layout: Layout,
    /// Backup dates that have output, in order.
    pub dates: Vec<String>,
}

impl Output {
    pub fn open(out: &std::path::Path) -> Result<Output> {
        let mut config = Config::new(out.to_path_buf(), out.to_path_buf());
        let paths = Paths::new(&config);
        let saved = OutputTable::load(&paths)?;
        saved.apply_to(&mut config);
        let layout = Layout::new(&saved.table, &config)?;
        // Output folders are named by backup date.
        let dates = std::fs::read_dir(&paths.issues)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Ok(Output {
            config,
            paths,
            layout,
            dates,
        })
    }

    /// The issue rows and removals of one source in the backup of `date`.
    pub fn read(
        &self,
        date: &str,
        stem: &str,
        scratch: &std::path::Path,
    ) -> Result<(DataFrame, DataFrame)> {
        let issues_file = self.paths.existing_issues_file(date, stem);
        let removals_file = self.paths.existing_removals_file(date, stem);
        Ok((
            read_issues(issues_file.as_deref(), &self.layout, scratch)?,
            read_removals(removals_file.as_deref(), &self.layout)?,
        ))
    }

    /// How many issue rows of `source` have a negative lag, as summary.json counts them;
    /// None when it does not say (no summary, or one written before it counted them).
    pub fn negative_lag_rows(&self, source: &str) -> Result<Option<u64>> {
        let Ok(text) = std::fs::read_to_string(&self.paths.summary) else {
            return Ok(None);
        };
        let summary: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{} is damaged: {e}", self.paths.summary.display()))?;
        Ok(summary["sources"][source]["negative_lag_rows"].as_u64())
    }

    /// File stems of the sources with output in `dates`: those of `sources` (all when
    /// empty).
    pub fn stems(&self, dates: &[String], sources: &[String]) -> Result<BTreeSet<String>> {
        let wanted: Vec<String> = sources.iter().map(|s| file_stem(s)).collect();
        let mut stems = BTreeSet::new();
        for d in dates {
            for entry in std::fs::read_dir(self.paths.issues.join(d))?.flatten() {
                let path = entry.path();
                let stem = path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                if wanted.is_empty() || wanted.contains(&stem) {
                    stems.insert(stem);
                }
            }
        }
        Ok(stems)
    }

    pub fn scratch(&self) -> Result<tempfile::TempDir> {
        std::fs::create_dir_all(&self.config.work)?;
        Ok(tempfile::Builder::new()
            .prefix(".tmp-replay-")
            .tempdir_in(&self.config.work)?)
    }
}

/// Writes the table as of `args.date` (or, with `--lag`, the series at that lag); returns
/// the number of rows.
pub fn asof(args: &AsofArgs) -> Result<usize> {
    let output = Output::open(&args.out)?;
    let Output { config, layout, .. } = &output;
    let dates = dates_up_to(&output, args.date, &args.out)?;
    let stems = output.stems(&dates, &args.source)?;
    let signal = || -> Result<&str> {
        let signal = layout.key_names().into_iter().find(|k| *k == "signal");
        signal.ok_or_else(|| anyhow!("--signal needs a `signal` column in the key"))
    };
    let scratch = output.scratch()?;
    let (frame, names) = match args.lag {
        None => {
            let mut table = replayed(&output, &stems, &dates, scratch.path())?;
            if !args.signal.is_empty() {
                table = table.filter(
                    RowFilter::default()
                        .one_of(signal()?, &args.signal)
                        .expr()
                        .expect("a signal"),
                );
            }
            (
                sort_by_key(table, layout).collect()?,
                layout.names().collect::<Vec<_>>(),
            )
        }
        Some(lag) => {
            let filter = match args.signal.is_empty() {
                true => RowFilter::default(),
                false => RowFilter::default().one_of(signal()?, &args.signal),
            };
            let frame = at_lag_of_sources(&output, &stems, &dates, &filter, lag, scratch.path())?;
            let names = layout.names().chain(["issue", "lag"]).collect();
            (frame, names)
        }
    };
    let frame = text_as_strings(frame)?;
    let mut out: Box<dyn Write> = match &args.to {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    write_rows(&mut out, &frame, names, args.format, &config.target_table)?;
    out.flush()?;
    Ok(frame.height())
}

/// The backup dates of the output up to `date` (all without one); an error when none is.
fn dates_up_to(
    output: &Output,
    date: Option<chrono::NaiveDate>,
    out: &std::path::Path,
) -> Result<Vec<String>> {
    let Some(date) = date else {
        if output.dates.is_empty() {
            bail!("the output in {} has no backups", out.display());
        }
        return Ok(output.dates.clone());
    };
    let date = date.format("%Y%m%d").to_string();
    let dates: Vec<String> = (output.dates.iter())
        .filter(|d| **d <= date)
        .cloned()
        .collect();
    if dates.is_empty() {
        bail!(
            "the output in {} has no backup on or before {date}",
            out.display()
        );
    }
    if let Some(last) = dates.last().filter(|last| **last != date) {
        tracing::info!("no backup of {date}: the table as of {date} is the backup of {last}");
    }
    Ok(dates)
}

/// The table after replaying every backup of `dates`, source by source.
fn replayed(
    output: &Output,
    stems: &BTreeSet<String>,
    dates: &[String],
    scratch: &std::path::Path,
) -> Result<LazyFrame> {
    let layout = &output.layout;
    let mut tables = Vec::new();
    for stem in stems {
        let mut state = read_partition(None, layout)?;
        for d in dates {
            let (issues, removals) = output.read(d, stem, scratch)?;
            state = apply(state, &issues, &removals, layout)?;
        }
        tables.push(state.lazy());
    }
    Ok(match tables.len() {
        0 => read_partition(None, layout)?.lazy(),
        _ => polars::prelude::concat(tables, Default::default())?,
    })
}

/// The series at `lag` of each source, from the backups of `dates`; logs the keys left out.
fn at_lag_of_sources(
    output: &Output,
    stems: &BTreeSet<String>,
    dates: &[String],
    filter: &RowFilter,
    lag: i64,
    scratch: &std::path::Path,
) -> Result<DataFrame> {
    let layout = &output.layout;
    let (mut parts, mut never_seen, mut removed) = (Vec::new(), 0, 0);
    for stem in stems {
        let events = read_events(output, stem, dates, filter, scratch)?;
        let series = at_lag(&events, layout, lag)?;
        never_seen += series.never_seen;
        removed += series.removed;
        parts.push(series.rows.lazy());
    }
    if never_seen > 0 {
        tracing::info!("{never_seen} key(s) have no issue within lag {lag}: left out");
    }
    if removed > 0 {
        tracing::info!("{removed} key(s) were removed within lag {lag}: left out");
    }
    match parts.len() {
        0 => {
            let empty = DataFrame::empty_with_schema(&events_schema(layout));
            at_lag(&empty, layout, lag).map(|series| series.rows)
        }
        _ => Ok(polars::prelude::concat(parts, Default::default())?.collect()?),
    }
}
