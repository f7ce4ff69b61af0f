//! `migrate asof`: the table as it was on a date, rebuilt from the output alone: for each
//! key the latest issue row up to that date, minus keys removed by then.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use anyhow::{anyhow, bail, Result};
use polars::prelude::{DataFrame, DataType, IntoLazy, LazyFrame, UniqueKeepStrategy};

use crate::cli::AsofArgs;
use crate::config::layout::Layout;
use crate::config::OutputFormat;
use crate::exit_codes::UsageError;
use crate::inspect::events::{events_schema, read_events};
use crate::inspect::lag_view::at_lag;
use crate::inspect::output::Output;
use crate::inspect::replay::apply;
use crate::inspect::row_filter::RowFilter;
use crate::inspect::sources::{check_signals, check_sources};
use crate::run::memory_limit::budget_of;
use crate::run::schedule::{
    buckets_for, estimate_diff_bytes, merge_batch_rows, release_free_memory,
};
use crate::stages::diff::file_read::read_parquet;
use crate::stages::diff::merge::{write_part, Parts as MergedParts, SortedRows};
use crate::stages::diff::{read_partition, sort_by_key, table_bucket_column, text_as_strings};
use crate::stages::emit::write_rows_from;

/// Writes the table as of `args.date` (or, with `--lag`, the series at that lag); returns
/// the number of rows. What does not fit the memory budget at once is rebuilt source by
/// source, and a source in buckets of `time_value`, each sorted into a file of the scratch
/// folder, then merged as it is written: the rows and their order are the same.
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
    let budget = budget_of(args.memory.memory_limit)?;
    let Output { config, layout, .. } = &output;
    let dates = dates_up_to(&output, args.date, &args.out)?;
    let stems = output.stems(&dates, &args.source)?;
    let signal = || -> Result<&str> {
        let signal = layout.key_names().into_iter().find(|k| *k == "signal");
        signal.ok_or_else(|| anyhow!("--signal needs a `signal` column in the key"))
    };
    let signals = match args.signal.is_empty() {
        true => RowFilter::default(),
        false => RowFilter::default().one_of(signal()?, &args.signal),
    };
    let scratch = output.scratch()?;
    // Rows each source's replay holds at once: its table and a backup's issue rows (at most
    // its added rows each); the series at a lag holds every issue row of the source.
    let held = |stem: &str| {
        let (added, changed) = output.added_and_changed(stem).unwrap_or((0, 0));
        match args.lag {
            None => 2 * added,
            Some(_) => added + changed,
        }
    };
    let all: u64 = stems.iter().map(|stem| held(stem)).sum();
    let in_memory = estimate_diff_bytes(all) <= budget.bytes && args.memory.max_part_rows.is_none();
    let split_column = bucket_column(layout);
    if !in_memory && split_column.is_none() {
        tracing::warn!(
            "the table does not fit the memory budget, but it has no integer column to rebuild \
             it in parts by: each source is rebuilt whole"
        );
    }
    let split_by = split_column.as_deref().unwrap_or_default();
    let buckets_of = |rows: u64| match split_column {
        Some(_) => buckets_for(rows, budget.bytes, args.memory.max_part_rows),
        None => 1,
    };
    let parts = Parts {
        scratch: scratch.path(),
        budget: budget.bytes,
        layout,
    };
    let (rows, names): (Vec<SortedRows>, Vec<&str>) = match args.lag {
        None => {
            let names = layout.names().collect();
            let rows = if in_memory {
                let table = replayed(&output, &stems, &dates, &signals, scratch.path())?;
                let table = text_as_strings(sort_by_key(table, layout).collect()?)?;
                vec![SortedRows::Frame(table)]
            } else {
                let mut files = Vec::new();
                for stem in &stems {
                    let buckets = buckets_of(held(stem));
                    for bucket in 0..buckets {
                        let filter = signals.clone().bucket(split_by, bucket, buckets);
                        let table = replayed(&output, [stem], &dates, &filter, scratch.path())?;
                        files.push(parts.write(sort_by_key(table, layout).collect()?)?);
                    }
                }
                vec![parts.merged(files)]
            };
            (rows, names)
        }
        Some(_) if !layout.has_lag() => bail!(
            "--lag needs issue rows with a lag, and the output in {} has none: its table \
             has no time column (see --time-column)",
            args.out.display()
        ),
        Some(lag) => {
            let names = layout.names().chain(["issue", "lag"]).collect();
            let (mut never_seen, mut removed) = (0, 0);
            let mut rows = Vec::new();
            let mut together = Vec::new();
            for stem in &stems {
                let buckets = match in_memory {
                    true => 1,
                    false => buckets_of(held(stem)),
                };
                let mut files = Vec::new();
                for bucket in 0..buckets {
                    let filter = signals.clone().bucket(split_by, bucket, buckets);
                    let events = read_events(&output, stem, &dates, &filter, scratch.path())?;
                    let series = at_lag(&events, layout, lag)?;
                    never_seen += series.never_seen;
                    removed += series.removed;
                    match in_memory {
                        true => together.push(series.rows.lazy()),
                        false => files.push(parts.write(series.rows)?),
                    }
                }
                if !in_memory {
                    rows.push(parts.merged(files));
                }
            }
            if never_seen > 0 {
                tracing::info!("{never_seen} key(s) have no issue within lag {lag}: left out");
            }
            if removed > 0 {
                tracing::info!("{removed} key(s) were removed within lag {lag}: left out");
            }
            if in_memory {
                let frame = match together.len() {
                    0 => {
                        let empty = DataFrame::empty_with_schema(&events_schema(layout));
                        at_lag(&empty, layout, lag)?.rows
                    }
                    _ => polars::prelude::concat(together, Default::default())?.collect()?,
                };
                rows.push(SortedRows::Frame(text_as_strings(frame)?));
            }
            if rows.is_empty() {
                // No source: the columns alone.
                let empty = DataFrame::empty_with_schema(&events_schema(layout));
                rows.push(SortedRows::Frame(text_as_strings(
                    at_lag(&empty, layout, lag)?.rows,
                )?));
            }
            (rows, names)
        }
    };
    if !args.signal.is_empty() {
        let found = values_held(&rows, signal()?)?;
        if args.signal.iter().any(|s| !found.contains(s.as_str())) {
            check_signals(&output, &stems, &args.signal, scratch.path())?;
        }
    }
    let mut out: Box<dyn Write> = match &args.to {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut chunks = Vec::new();
    for rows in &rows {
        chunks.push(rows.chunks()?);
    }
    let written = write_rows_from(
        &mut out,
        chunks.into_iter().flatten(),
        names,
        Some(layout),
        args.format,
        &config.target_table,
    )?;
    out.flush()?;
    Ok(written)
}

/// The column a source too large for the budget is rebuilt in buckets of; None: it is
/// rebuilt whole.
fn bucket_column(layout: &Layout) -> Option<String> {
    table_bucket_column(layout).map(|column| column.name)
}

/// The values of the text column `column` in the rows (read back from their parts on disk
/// when they are there, one column at a time).
fn values_held(rows: &[SortedRows], column: &str) -> Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    let mut add = |frame: &DataFrame| -> Result<()> {
        let values = frame.column(column)?.cast(&DataType::String)?;
        found.extend(values.str()?.iter().flatten().map(str::to_string));
        Ok(())
    };
    for rows in rows {
        match rows {
            SortedRows::Frame(frame) => add(frame)?,
            SortedRows::Parts(parts) => {
                for file in &parts.files {
                    let distinct =
                        |piece: DataFrame| piece.unique_stable(None, UniqueKeepStrategy::Any, None);
                    add(&read_parquet(
                        file,
                        Some(&[column.to_string()]),
                        None,
                        Some(&distinct),
                    )?)?;
                }
            }
        }
    }
    Ok(found)
}

/// Sorted parts in the scratch folder, for rows too many to hold at once.
struct Parts<'a> {
    scratch: &'a std::path::Path,
    budget: u64,
    layout: &'a Layout,
}

impl Parts<'_> {
    /// Writes rows sorted by key (text as strings) as a part; its path and rows.
    fn write(&self, frame: DataFrame) -> Result<(PathBuf, usize)> {
        let mut frame = text_as_strings(frame)?;
        let path = (self.scratch).join(format!("part-{}.parquet", PART.fetch_add(1, Relaxed)));
        write_part(&mut frame, &path, 1 << 14)?;
        let rows = frame.height();
        drop(frame);
        release_free_memory();
        Ok((path, rows))
    }

    /// The parts merged in key order.
    fn merged(&self, parts: Vec<(PathBuf, usize)>) -> SortedRows {
        let (files, rows): (Vec<PathBuf>, Vec<usize>) = parts.into_iter().unzip();
        SortedRows::Parts(MergedParts {
            batch_rows: merge_batch_rows(self.budget, files.len()),
            files,
            key: (self.layout.key_names().into_iter())
                .map(String::from)
                .collect(),
            rows: rows.into_iter().sum(),
        })
    }
}

/// Numbers the scratch folder's parts.
static PART: AtomicUsize = AtomicUsize::new(0);

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

/// The table after replaying every backup of `dates`, source by source, with only the rows
/// `filter` keeps.
fn replayed<S: AsRef<str>>(
    output: &Output,
    stems: impl IntoIterator<Item = S>,
    dates: &[String],
    filter: &RowFilter,
    scratch: &std::path::Path,
) -> Result<LazyFrame> {
    let layout = &output.layout;
    let mut tables = Vec::new();
    for stem in stems {
        let mut state = read_partition(None, layout)?;
        for d in dates {
            let (issues, removals) = output.read_where(d, stem.as_ref(), scratch, filter)?;
            state = apply(state, &issues, &removals, layout)?;
        }
        tables.push(state.lazy());
    }
    Ok(match tables.len() {
        0 => read_partition(None, layout)?.lazy(),
        _ => polars::prelude::concat(tables, Default::default())?,
    })
}
