//! A source's history as one frame of events, read from the output in backup order: every
//! issue row, and every removal with the `issue` and `lag` its backup gives it. `history`
//! lists them; the series at a lag is picked from them. Only the files of the one source are
//! read, and a `RowFilter` drops unwanted rows while they are read.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use polars::prelude::*;

use crate::config::layout::{Layout, Time};
use crate::inspect::output::Output;
use crate::inspect::replay::{read_issues_where, read_removals_where};
use crate::inspect::row_filter::RowFilter;
use crate::stages::diff::schema;
use crate::values::epiweek::{date_from_yyyymmdd, yyyymmdd};
use crate::values::lag;

/// The date (YYYYMMDD) of the backup an event comes from.
pub const BACKUP: &str = "__backup";
/// True for a removal (its non-key columns are NULL), false for an issue row.
pub const REMOVED: &str = "__removed";

/// The columns of an events frame: the stored columns, `issue`, `lag` (with a time
/// column), `BACKUP`, `REMOVED`.
pub fn events_schema(layout: &Layout) -> Schema {
    let mut schema = schema(layout);
    for name in issue_and_lag(layout).into_iter().chain([BACKUP]) {
        schema.insert(PlSmallStr::from(name), DataType::Int64);
    }
    schema.insert(PlSmallStr::from(REMOVED), DataType::Boolean);
    schema
}

/// The events of the source whose files are named `stem`, in the backups `dates` (in
/// order), that `filter` keeps; in backup order.
pub fn read_events(
    output: &Output,
    stem: &str,
    dates: &[String],
    filter: &RowFilter,
    scratch: &Path,
) -> Result<DataFrame> {
    let layout = &output.layout;
    let key = layout.key_names();
    if let Some(column) = filter.columns().find(|c| !key.contains(c)) {
        bail!("cannot select rows by {column}: it is not a key column");
    }
    let mut frames = Vec::new();
    for date in dates {
        let backup: i64 = date.parse()?;
        let issues_file = output.paths.existing_issues_file(date, stem);
        let issues = read_issues_where(issues_file.as_deref(), layout, scratch, filter)?;
        if issues.height() > 0 {
            frames.push(issue_events(issues, layout, backup));
        }
        let removals_file = output.paths.existing_removals_file(date, stem);
        let removals = read_removals_where(removals_file.as_deref(), layout, filter)?;
        if removals.height() > 0 {
            frames.push(removal_events(&removals, layout, backup)?);
        }
    }
    if frames.is_empty() {
        return Ok(DataFrame::empty_with_schema(&events_schema(layout)));
    }
    Ok(concat(frames, UnionArgs::default())?.collect()?)
}

/// `issue`, and `lag` when the table has a time column.
pub fn issue_and_lag(layout: &Layout) -> Vec<&'static str> {
    match layout.has_lag() {
        true => vec!["issue", "lag"],
        false => vec!["issue"],
    }
}

fn issue_events(issues: DataFrame, layout: &Layout, backup: i64) -> LazyFrame {
    let columns: Vec<Expr> = (layout.names().chain(issue_and_lag(layout)))
        .map(col)
        .chain([
            lit(backup).cast(DataType::Int64).alias(BACKUP),
            lit(false).alias(REMOVED),
        ])
        .collect();
    issues.lazy().select(columns)
}

/// Removals as events: the key, NULL for the other columns, and the `issue` and `lag` of a
/// row of that key in this backup (days, or epiweeks for weekly rows).
fn removal_events(removals: &DataFrame, layout: &Layout, backup: i64) -> Result<LazyFrame> {
    let names: Vec<&str> = layout.names().collect();
    let date = date_from_yyyymmdd(backup).ok_or_else(|| anyhow!("{backup} is not a date"))?;
    let time_columns = match layout.time {
        Time::None => vec![],
        Time::Typed {
            time_type,
            time_value,
        } => vec![time_type, time_value],
        Time::Dated(index) => vec![index],
    };
    if let Some(&i) = time_columns.iter().find(|&&i| !layout.columns[i].is_key) {
        bail!(
            "removals carry only the key: the time column {} must be a key column",
            names[i]
        );
    }
    let text = |index: usize| -> Result<StringChunked> {
        Ok(removals
            .column(names[index])?
            .cast(&DataType::String)?
            .str()?
            .clone())
    };
    let rows = removals.height();
    let (issue, lag): (Vec<i64>, Vec<i64>) = match layout.time {
        Time::None => (vec![yyyymmdd(date); rows], vec![]),
        Time::Typed {
            time_type,
            time_value,
        } => {
            let kinds = text(time_type)?;
            let times = removals.column(names[time_value])?.i64()?;
            let mut pairs = Vec::with_capacity(rows);
            for row in 0..rows {
                let (Some(kind), Some(time)) = (kinds.get(row), times.get(row)) else {
                    bail!("a removal of the backup of {backup} has no time_type or time_value");
                };
                pairs.push(
                    lag::issue_and_lag(kind, time, date).map_err(|e| anyhow!("{backup}: {e}"))?,
                );
            }
            pairs.into_iter().unzip()
        }
        Time::Dated(index) => {
            let days = text(index)?;
            let mut pairs = Vec::with_capacity(rows);
            for row in 0..rows {
                let Some(day) = days.get(row).and_then(lag::day_of) else {
                    bail!(
                        "a removal of the backup of {backup} has no date in {}",
                        names[index]
                    );
                };
                pairs.push(lag::issue_and_lag_of_day(day, date));
            }
            pairs.into_iter().unzip()
        }
    };
    let mut frame = removals.clone();
    frame.with_column(Int64Chunked::from_vec("issue".into(), issue).into_column())?;
    if layout.has_lag() {
        frame.with_column(Int64Chunked::from_vec("lag".into(), lag).into_column())?;
    }
    let columns: Vec<Expr> = (layout.columns.iter())
        .zip(schema(layout).iter_values())
        .map(|(column, dtype)| match column.is_key {
            true => col(column.name.as_str()),
            false => lit(NULL).cast(dtype.clone()).alias(column.name.as_str()),
        })
        .chain(issue_and_lag(layout).into_iter().map(col))
        .chain([
            lit(backup).cast(DataType::Int64).alias(BACKUP),
            lit(true).alias(REMOVED),
        ])
        .collect();
    Ok(frame.lazy().select(columns))
}
