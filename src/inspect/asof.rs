//! `migrate asof`: the table as it was on a date, rebuilt from the output alone: for each
//! key the latest issue row up to that date, minus keys removed by then.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};

use anyhow::{anyhow, bail, Result};
use polars::prelude::{DataFrame, DataType, IntoLazy, LazyFrame};

use crate::cli::AsofArgs;
use crate::config::OutputFormat;
use crate::exit_codes::UsageError;
use crate::inspect::events::{events_schema, read_events};
use crate::inspect::lag_view::at_lag;
use crate::inspect::output::Output;
use crate::inspect::replay::apply;
use crate::inspect::row_filter::RowFilter;
use crate::inspect::sources::{check_signals, check_sources};
use crate::stages::diff::{read_partition, sort_by_key, text_as_strings};
use crate::stages::emit::write_rows;

/// Writes the table as of `args.date` (or, with `--lag`, the series at that lag); returns
/// the number of rows.
pub fn asof(args: &AsofArgs) -> Result<usize> {
    if args.format == OutputFormat::Parquet && args.to.is_none() && std::io::stdout().is_terminal()
    {
        return Err(UsageError(
            "--format parquet is binary: write it to a file with --to FILE, or redirect \
             standard output (> FILE)"
                .into(),
        )
        .into());
    }
    let output = Output::open(&args.out)?;
    check_sources(&output, &args.source)?;
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
        Some(_) if !layout.has_lag() => bail!(
            "--lag needs issue rows with a lag, and the output in {} has none: its table \
             has no time column (see --time-column)",
            args.out.display()
        ),
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
    if !args.signal.is_empty() {
        let column = frame.column(signal()?)?.cast(&DataType::String)?;
        let found: BTreeSet<&str> = column.str()?.iter().flatten().collect();
        if args.signal.iter().any(|s| !found.contains(s.as_str())) {
            check_signals(&output, &stems, &args.signal, scratch.path())?;
        }
    }
    let frame = text_as_strings(frame)?;
    let mut out: Box<dyn Write> = match &args.to {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    write_rows(
        &mut out,
        &frame,
        names,
        Some(layout),
        args.format,
        &config.target_table,
    )?;
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
