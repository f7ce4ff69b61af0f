//! `migrate history`: how some numbers were revised. Every issue of the chosen points of some
//! sources (of some signals), from the output alone, in order: the point's key, `issue`,
//! `lag`, the compared columns, and what changed since the point's previous issue. Removals
//! are listed too, as they end a point's run of issues.

use std::path::PathBuf;

use anyhow::{bail, Result};
use polars::prelude::*;

use crate::config::layout::{Layout, Time};
use crate::inspect::events::{issue_and_lag, read_events, REMOVED};
use crate::inspect::output::Output;
use crate::inspect::row_filter::RowFilter;
use crate::inspect::sources::{check_signals, check_sources};
use crate::run::memory_limit::budget_of;
use crate::run::schedule::{buckets_for, merge_batch_rows, release_free_memory};
use crate::stages::diff::merge::{write_part, Parts, SortedRows};
use crate::stages::diff::{sort_by_key, table_bucket_column, text_as_strings};
use crate::stages::extract::file_stem;
use crate::values::epiweek::{date_from_yyyymmdd, yyyymmdd, Epiweek};

/// The points to list.
pub struct HistoryRequest {
    pub out: PathBuf,
    /// Values of the partition column (`source` in Epidata's tables); at least one.
    pub sources: Vec<String>,
    /// Only these signals (the key's `signal` column); empty: every row of the sources.
    pub signals: Vec<String>,
    /// Geo values; empty: all.
    pub geo_values: Vec<String>,
    /// An inclusive range of `time_value`, as stored (YYYYMMDD or YYYYWW); None: all.
    pub time_values: Option<(i64, i64)>,
    /// `--memory-limit`; None: the default budget.
    pub memory_limit: Option<u64>,
    /// Read in parts of at most this many rows whatever the budget (tests).
    pub max_part_rows: Option<u64>,
}

/// A history's rows, in memory or (when the source's issues do not fit the memory budget at
/// once) in parts on disk merged as they are read.
pub struct History {
    pub rows: SortedRows,
    /// The columns of the rows.
    pub columns: Vec<String>,
    /// Holds the parts until the history is written.
    _scratch: tempfile::TempDir,
}

impl History {
    /// Every row in one frame (for a table on a terminal).
    pub fn frame(&self) -> Result<DataFrame> {
        let mut all: Option<DataFrame> = None;
        for chunk in self.rows.chunks()? {
            let chunk = chunk?;
            match &mut all {
                None => all = Some(chunk),
                Some(frame) => {
                    frame.vstack_mut_owned(chunk)?;
                }
            }
        }
        Ok(all.expect("at least one chunk"))
    }
}

/// What changed since the previous issue: `new`, `removed`, `re-added`, or the names of the
/// compared columns that differ, separated by `;`.
pub const CHANGED: &str = "changed";
/// `value` minus its value in the previous issue (NULL when either is NULL).
pub const VALUE_CHANGE: &str = "value_change";

/// The history: the key columns but the source (kept when more than one is asked) and the
/// signal (kept unless exactly one is asked), `issue`, `lag` (with a time column), the
/// compared columns, `CHANGED` and (for a table with a compared double `value`)
/// `VALUE_CHANGE`; sorted by source, point, then backup. Text columns are strings. When the
/// sources' issue rows would not fit the memory budget at once, each source's points are
/// read in buckets of `time_value` (or another integer key column; a point's events all
/// fall in one), each bucket's history sorted into a part, and the parts merged.
pub fn history(request: &HistoryRequest) -> Result<History> {
    let output = Output::open(&request.out)?;
    let budget = budget_of(request.memory_limit)?;
    let layout = &output.layout;
    let key = layout.key_names();
    let asked = [
        ("signal", "--signal", !request.signals.is_empty()),
        ("geo_value", "--geo", !request.geo_values.is_empty()),
    ];
    for (needed, option, given) in asked {
        if given && !key.contains(&needed) {
            bail!("{option} needs a `{needed}` column in the key");
        }
    }
    if request.sources.is_empty() {
        bail!("history needs at least one --source");
    }
    let mut filter = RowFilter::default()
        .one_of("signal", &request.signals)
        .one_of("geo_value", &request.geo_values);
    if let Some((low, high)) = request.time_values {
        let Time::Typed { time_value, .. } = layout.time else {
            bail!("--time-value needs an integer time column read with time_type (time_value)");
        };
        filter = filter.between(key_name(layout, time_value), low, high);
    }
    check_sources(&output, &request.sources)?;
    // In order, without repeats: each source's rows follow the previous source's.
    let sources: Vec<&String> = (request.sources.iter())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let scratch = output.scratch()?;
    // At most every issue row of the sources (summary.json counts them), its events and
    // their sorted copy at once.
    let issue_rows: u64 = (sources.iter())
        .map(|s| output.added_and_changed(&file_stem(s)).unwrap_or((0, 0)))
        .map(|(added, changed)| added + changed)
        .sum();
    let buckets = buckets_for(issue_rows, budget.bytes, request.max_part_rows);
    let shown = Shown {
        source: sources.len() > 1,
        signal: request.signals.len() != 1,
    };
    let points = point_columns(layout, shown);
    let source_column = key_name(layout, layout.partition);
    let split_column = table_bucket_column(layout).map(|column| column.name);
    let split_by = split_column.as_deref().unwrap_or_default();
    let buckets = match split_column {
        Some(_) => buckets,
        None => 1,
    };
    let mut parts = Vec::new();
    let mut frames: Vec<DataFrame> = Vec::new();
    let mut rows = 0;
    for source in &sources {
        let stem = file_stem(source);
        let dates = dates_to_read(&output, source, request.time_values)?;
        for bucket in 0..buckets {
            let filter = filter.clone().bucket(split_by, bucket, buckets);
            let events = read_events(&output, &stem, &dates, &filter, scratch.path())?;
            if events.height() == 0 {
                continue;
            }
            // Stable: the events of one point stay in backup order.
            let events = text_as_strings(sort_by_key(events.lazy(), layout).collect()?)?;
            let mut history = with_changes(events, layout, shown)?;
            rows += history.height();
            if buckets == 1 {
                frames.push(history);
                continue;
            }
            let path = (scratch.path()).join(format!("history-{}-{bucket}.parquet", parts.len()));
            write_part(&mut history, &path, 1 << 14)?;
            parts.push(path);
            drop(history);
            release_free_memory();
        }
    }
    if rows == 0 {
        let stems = sources.iter().map(|s| file_stem(s)).collect();
        check_signals(&output, &stems, &request.signals, scratch.path())?;
        let listed = |option: &str, values: &[String]| match values.is_empty() {
            true => String::new(),
            false => format!(", {option} {}", values.join(",")),
        };
        bail!(
            "no issues of {} {}{}{}{} in the output",
            key_name(layout, layout.partition),
            request.sources.join(","),
            listed("signal", &request.signals),
            listed("geo", &request.geo_values),
            match request.time_values {
                Some((low, high)) if low == high => format!(", time_value {low}"),
                Some((low, high)) => format!(", time_value {low}..{high}"),
                None => String::new(),
            }
        );
    }
    let compared = layout.compared_names();
    let mut columns: Vec<String> = (points.iter().copied())
        .chain(issue_and_lag(layout))
        .chain(compared.iter().copied())
        .chain([CHANGED])
        .map(String::from)
        .collect();
    if compared.contains(&"value") {
        columns.push(VALUE_CHANGE.into());
    }
    let rows = match parts.is_empty() {
        // The sources in order, each sorted by point: sorted by source, then point.
        true => {
            let mut frames = frames.into_iter();
            let mut whole = frames.next().expect("some rows");
            for frame in frames {
                whole.vstack_mut_owned(frame)?;
            }
            SortedRows::Frame(whole)
        }
        false => SortedRows::Parts(Parts {
            batch_rows: merge_batch_rows(budget.bytes, parts.len()),
            files: parts,
            // Within a point, backups in order: `issue` grows with them, and two backups
            // of one epiweek (the same `issue`) are in one part, in order. A part holds one
            // source: sorted by point, it is sorted by source first too.
            key: (shown.source.then_some(source_column).into_iter())
                .chain(points.iter().copied().filter(|p| *p != source_column))
                .chain(["issue"])
                .map(String::from)
                .collect(),
            rows,
        }),
    };
    Ok(History {
        rows,
        columns,
        _scratch: scratch,
    })
}

/// `now - before` without binary float noise: rounded to the decimals of the more precise
/// of the two as they are written (0.3 − 0.2 is 0.1, not 0.09999999999999998).
pub fn difference(now: f64, before: f64) -> f64 {
    let decimals = |x: f64| {
        let text = format!("{x}");
        match text.contains(['e', 'E']) {
            true => None,
            false => Some(text.split_once('.').map_or(0, |(_, d)| d.len())),
        }
    };
    let raw = now - before;
    match decimals(now).zip(decimals(before)) {
        Some((a, b)) if a.max(b) <= 15 && raw.is_finite() => {
            let rounded = format!("{:.*}", a.max(b), raw);
            rounded.parse().unwrap_or(raw)
        }
        _ => raw,
    }
}

fn key_name(layout: &Layout, index: usize) -> &str {
    layout.columns[index].name.as_str()
}

/// Which of the key columns a filter may make constant a history shows.
#[derive(Clone, Copy)]
struct Shown {
    /// More than one source is listed.
    source: bool,
    /// Not exactly one signal is listed.
    signal: bool,
}

/// The key columns that tell the listed points apart: all but the source (unless more than
/// one is listed) and the signal (when exactly one is listed).
fn point_columns(layout: &Layout, shown: Shown) -> Vec<&str> {
    let source = key_name(layout, layout.partition);
    (layout.key_names().into_iter())
        .filter(|k| (shown.source || *k != source) && (shown.signal || *k != "signal"))
        .collect()
}

/// Adds `CHANGED` and `VALUE_CHANGE` to events sorted by point and backup, and keeps the
/// columns a history shows.
fn with_changes(events: DataFrame, layout: &Layout, shown: Shown) -> Result<DataFrame> {
    let points = point_columns(layout, shown);
    let compared = layout.compared_names();
    let removed = events.column(REMOVED)?.bool()?;
    let point_of = |row: usize| -> Result<Vec<AnyValue<'_>>> {
        (points.iter())
            .map(|p| Ok(events.column(p)?.get(row)?))
            .collect()
    };
    let compared_columns: Vec<&Column> = (compared.iter())
        .map(|c| events.column(c))
        .collect::<PolarsResult<_>>()?;
    let value = compared
        .contains(&"value")
        .then(|| events.column("value"))
        .transpose()?
        .and_then(|c| c.f64().ok().cloned());
    let mut changed: Vec<String> = Vec::with_capacity(events.height());
    let mut value_change: Vec<Option<f64>> = Vec::with_capacity(events.height());
    let mut previous_point = None;
    for row in 0..events.height() {
        let point = point_of(row)?;
        let is_removal = removed.get(row).unwrap_or(false);
        let same_point = previous_point.as_ref() == Some(&point);
        let after_removal = same_point && removed.get(row - 1).unwrap_or(false);
        let label = if is_removal {
            "removed".to_string()
        } else if !same_point {
            "new".to_string()
        } else if after_removal {
            "re-added".to_string()
        } else {
            let mut differ = Vec::new();
            for (name, column) in compared.iter().zip(&compared_columns) {
                if !same_cell(&column.get(row)?, &column.get(row - 1)?) {
                    differ.push(*name);
                }
            }
            differ.join(";")
        };
        let change = match (&value, same_point && !is_removal && !after_removal) {
            (Some(value), true) => value
                .get(row)
                .zip(value.get(row - 1))
                .map(|(now, before)| difference(now, before)),
            _ => None,
        };
        changed.push(label);
        value_change.push(change);
        previous_point = Some(point);
    }
    let shown = (points.iter().copied())
        .chain(issue_and_lag(layout))
        .chain(compared.iter().copied());
    let mut frame = events.select(shown)?;
    frame.with_column(
        StringChunked::from_iter_values(CHANGED.into(), changed.iter()).into_column(),
    )?;
    if value.is_some() {
        let change =
            Float64Chunked::from_iter_options(VALUE_CHANGE.into(), value_change.into_iter());
        frame.with_column(change.into_column())?;
    }
    Ok(frame)
}

/// Equality of two cells as the diff decides it: NULL = NULL, NaN = NaN.
fn same_cell(a: &AnyValue, b: &AnyValue) -> bool {
    match (a, b) {
        (AnyValue::Null, AnyValue::Null) => true,
        (AnyValue::Float64(x), AnyValue::Float64(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => a == b,
    }
}

/// The backups whose files can hold rows of the asked `time_value`s. A backup holds rows of
/// its date and before, unless some rows came with a negative lag (`time_value` after the
/// backup date); summary.json counts those per source, and only when it says there were
/// none are earlier backups skipped.
fn dates_to_read(
    output: &Output,
    source: &str,
    time_values: Option<(i64, i64)>,
) -> Result<Vec<String>> {
    let all = output.dates.clone();
    let Some(first_day) = time_values.and_then(first_possible_backup) else {
        return Ok(all);
    };
    if output.negative_lag_rows(source)? != Some(0) {
        tracing::debug!("reading every backup: rows with a negative lag may exist");
        return Ok(all);
    }
    let first_day = yyyymmdd(first_day).to_string();
    let dates: Vec<String> = all.into_iter().filter(|d| *d >= first_day).collect();
    tracing::debug!("reading the {} backups from {first_day} on", dates.len());
    Ok(dates)
}

/// The first backup date that can hold, with a lag of at least 0, a row whose `time_value`
/// is in `low..=high`. Daily values (YYYYMMDD, 8 digits) and weekly ones (YYYYWW, 6 digits)
/// never fall in one range unless it spans both: then there is no bound.
fn first_possible_backup((low, high): (i64, i64)) -> Option<chrono::NaiveDate> {
    if let Some(day) = date_from_yyyymmdd(low).filter(|_| low >= 10_000_000) {
        return Some(day);
    }
    if high < 10_000_000 {
        return Epiweek::from_yyyyww(low).map(Epiweek::start);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_carry_no_float_noise() {
        assert_eq!(difference(0.3, 0.2), 0.1);
        assert_eq!(difference(1.1244797, 1.05), 0.0744797);
        assert_eq!(difference(5.0, 2.0), 3.0);
        assert_eq!(difference(1e300, 1.0), 1e300 - 1.0);
    }

    #[test]
    fn earliest_backup_of_a_range() {
        let day = |ymd| date_from_yyyymmdd(ymd);
        assert_eq!(first_possible_backup((20200624, 20200624)), day(20200624));
        assert_eq!(first_possible_backup((20200601, 20200630)), day(20200601));
        // Epiweek 2020-26 starts on Sunday 2020-06-21.
        assert_eq!(first_possible_backup((202026, 202026)), day(20200621));
        assert_eq!(first_possible_backup((202053, 202101)), day(20201227));
        // From a week to a day: every daily value is in range, so no bound.
        assert_eq!(first_possible_backup((202026, 20200630)), None);
        // Neither a date nor an epiweek: no bound.
        assert_eq!(first_possible_backup((12, 13)), None);
    }

    #[test]
    fn cells_compare_like_the_diff() {
        assert!(same_cell(&AnyValue::Null, &AnyValue::Null));
        assert!(same_cell(
            &AnyValue::Float64(f64::NAN),
            &AnyValue::Float64(f64::NAN)
        ));
        assert!(!same_cell(&AnyValue::Float64(1.0), &AnyValue::Null));
        assert!(!same_cell(&AnyValue::Float64(1.0), &AnyValue::Float64(1.5)));
        assert!(same_cell(&AnyValue::Int64(3), &AnyValue::Int64(3)));
    }
}
