//! Replaying the output: issue rows and removals applied in backup order rebuild the table as
//! it was on any date (for `verify` and `asof`). Like `diff`, this speaks polars.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::*;

use crate::config::layout::{Layout, Time};
use crate::config::target::MISSING_DELETED;
use crate::dump::{ColumnKind, DumpReader, Event};
use crate::inspect::row_filter::{FieldFilter, RowFilter};
use crate::stages::diff::{
    any_differs, is_parquet, key_exprs, read_parquet_table, schema, sort_by_key, suffixed,
};
use crate::stages::extract::write_field;
use crate::values::binary;
use crate::values::epiweek::yyyymmdd;
use crate::values::lag::{day_of, issue_and_lag, issue_and_lag_of_day};

/// Columns of an issues file: the stored columns, then `issue` and (with a time column)
/// `lag`.
fn issues_schema(layout: &Layout) -> Schema {
    let mut schema = schema(layout);
    schema.insert(PlSmallStr::from("issue"), DataType::Int64);
    if layout.has_lag() {
        schema.insert(PlSmallStr::from("lag"), DataType::Int64);
    }
    schema
}

fn read_csv(path: &Path, schema: Schema) -> Result<DataFrame> {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_schema(Some(Arc::new(binary::csv_schema(&schema))))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|reader| reader.finish())
        .map_err(anyhow::Error::from)
        .and_then(|frame| binary::decode_hex_columns(frame, &schema))
        .with_context(|| format!("cannot read {}", path.display()))
}

fn read_parquet(path: &Path, layout: &Layout) -> Result<DataFrame> {
    read_parquet_where(path, layout, &RowFilter::default())
}

/// Reads a Parquet file, keeping the rows `filter` accepts (row group by row group).
fn read_parquet_where(path: &Path, layout: &Layout, filter: &RowFilter) -> Result<DataFrame> {
    read_parquet_table(path, layout, None, filter.predicate().as_ref())
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot read {}", path.display()))
}

/// Reads an issues file written by `migrate` (SQL, CSV or Parquet, by its extension);
/// None: no file.
pub fn read_issues(path: Option<&Path>, layout: &Layout, scratch: &Path) -> Result<DataFrame> {
    read_issues_where(path, layout, scratch, &RowFilter::default())
}

/// `read_issues`, keeping only the rows `filter` accepts: SQL rows are tested on their raw
/// fields, so the rows left out cost no conversion.
pub fn read_issues_where(
    path: Option<&Path>,
    layout: &Layout,
    scratch: &Path,
    filter: &RowFilter,
) -> Result<DataFrame> {
    let schema = issues_schema(layout);
    let Some(path) = path else {
        return Ok(DataFrame::empty_with_schema(&schema));
    };
    if path.extension().is_some_and(|e| e == "sql") {
        let csv = scratch.join("issues-from-sql.csv");
        sql_to_csv(path, layout, &schema, &csv, filter)?;
        return read_csv(&csv, schema);
    }
    let frame = if is_parquet(path) {
        read_parquet_where(path, layout, filter)?
    } else {
        read_csv(path, schema)?
    };
    filtered(frame, filter)
}

fn filtered(frame: DataFrame, filter: &RowFilter) -> Result<DataFrame> {
    match filter.expr() {
        Some(predicate) => Ok(frame.lazy().filter(predicate).collect()?),
        None => Ok(frame),
    }
}

/// Rewrites the INSERT statements of an issues SQL file as CSV in the partition format, so
/// both output formats are read the same way; rows `filter` rejects are skipped.
fn sql_to_csv(
    path: &Path,
    layout: &Layout,
    schema: &Schema,
    csv: &Path,
    filter: &RowFilter,
) -> Result<()> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = DumpReader::new(std::io::BufReader::new(file));
    let mut out = std::io::BufWriter::new(std::fs::File::create(csv)?);
    let names: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
    // The stored columns as the table declares them, then `issue` and `lag`.
    let kinds: Vec<ColumnKind> = (layout.columns.iter().map(|c| c.kind))
        .chain(std::iter::repeat(ColumnKind::Integer))
        .take(names.len())
        .collect();
    writeln!(out, "{}", names.join(","))?;
    let mut map: Vec<usize> = Vec::new();
    let mut wanted = FieldFilter::default();
    // Delphi's missingness codes a target table adds (`--target-ddl`): a row with the code
    // 4 (deleted) records a removal, which the removals file holds too.
    let mut codes: Vec<usize> = Vec::new();
    let deleted = MISSING_DELETED.to_string();
    while let Some(event) = reader
        .next_event()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?
    {
        match event {
            Event::Insert(head) => {
                let columns = head.columns.unwrap_or_default();
                map = names
                    .iter()
                    .map(|name| columns.iter().position(|c| c == name))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| anyhow!("{}: an INSERT lacks some columns", path.display()))?;
                codes = (columns.iter().enumerate())
                    .filter(|(_, c)| c.starts_with("missing_") && !names.contains(&c.as_str()))
                    .map(|(i, _)| i)
                    .collect();
                wanted = filter
                    .on_fields(&columns)
                    .map_err(|e| anyhow!("{}: {e}", path.display()))?;
            }
            Event::Row(row) if !wanted.matches(&row) => {}
            Event::Row(row) if codes.iter().any(|&i| row.get(i).1 == deleted.as_bytes()) => {}
            Event::Row(row) => {
                for (i, (&at, &kind)) in map.iter().zip(&kinds).enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    let (field, bytes) = row.get(at);
                    write_field(&mut out, kind, field, bytes)
                        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
                }
                out.write_all(b"\n")?;
            }
            Event::CreateTable(_) | Event::Statement(_) => {}
        }
    }
    out.flush()?;
    Ok(())
}

/// Reads a removals file (the key columns, then `removed`); None: no file.
pub fn read_removals(path: Option<&Path>, layout: &Layout) -> Result<DataFrame> {
    read_removals_all(path, layout)
}

/// `read_removals`, keeping only the rows `filter` accepts (it may name key columns only).
pub fn read_removals_where(
    path: Option<&Path>,
    layout: &Layout,
    filter: &RowFilter,
) -> Result<DataFrame> {
    filtered(read_removals_all(path, layout)?, filter)
}

fn read_removals_all(path: Option<&Path>, layout: &Layout) -> Result<DataFrame> {
    let mut schema: Schema = schema(layout)
        .iter()
        .filter(|(name, _)| layout.key_names().contains(&name.as_str()))
        .map(|(name, dtype)| Field::new(name.clone(), dtype.clone()))
        .collect();
    schema.insert(PlSmallStr::from("removed"), DataType::Int64);
    match path {
        Some(path) if is_parquet(path) => read_parquet(path, layout),
        Some(path) => read_csv(path, schema),
        None => Ok(DataFrame::empty_with_schema(&schema)),
    }
}

/// The table after one more backup: its issue rows replace or add rows by key, and its
/// removals delete keys.
pub fn apply(
    state: DataFrame,
    issues: &DataFrame,
    removals: &DataFrame,
    layout: &Layout,
) -> Result<DataFrame> {
    let keys = key_exprs(layout);
    let stored: Vec<Expr> = layout.names().map(col).collect();
    let anti = || {
        let mut args = JoinArgs::new(JoinType::Anti);
        args.nulls_equal = true;
        args
    };
    let kept = state
        .lazy()
        .join(
            issues.clone().lazy().select(keys.clone()),
            keys.clone(),
            keys.clone(),
            anti(),
        )
        .join(
            removals.clone().lazy().select(keys.clone()),
            keys.clone(),
            keys.clone(),
            anti(),
        );
    let updated = concat(
        [kept, issues.clone().lazy().select(stored)],
        UnionArgs::default(),
    )?;
    Ok(updated.collect()?)
}

/// How a rebuilt table differs from a backup, as key columns (strings) of the rows.
pub struct Differences {
    /// In the backup, not in the rebuilt table.
    pub missing: DataFrame,
    /// In the rebuilt table, not in the backup.
    pub extra: DataFrame,
    /// In both, with different compared values.
    pub different: DataFrame,
}

impl Differences {
    pub fn count(&self) -> usize {
        self.missing.height() + self.extra.height() + self.different.height()
    }
}

pub fn compare(rebuilt: &DataFrame, backup: &DataFrame, layout: &Layout) -> Result<Differences> {
    let keys = key_exprs(layout);
    let join = |how: JoinType| {
        let mut args = JoinArgs::new(how);
        args.nulls_equal = true;
        args
    };
    let only = |a: &DataFrame, b: &DataFrame| -> Result<DataFrame> {
        let frame = a.clone().lazy().select(keys.clone()).join(
            b.clone().lazy().select(keys.clone()),
            keys.clone(),
            keys.clone(),
            join(JoinType::Anti),
        );
        Ok(sort_by_key(frame, layout).collect()?)
    };
    let compared = layout.compared_names();
    let mut right: Vec<Expr> = keys.clone();
    right.extend(suffixed(&compared, "__backup"));
    let differs = any_differs(&compared, "__backup");
    let different = rebuilt
        .clone()
        .lazy()
        .join(
            backup.clone().lazy().select(right),
            keys.clone(),
            keys.clone(),
            join(JoinType::Inner),
        )
        .filter(differs)
        .select(keys.clone());
    let cast = |frame: DataFrame| crate::stages::diff::text_as_strings(frame);
    Ok(Differences {
        missing: cast(only(backup, rebuilt)?)?,
        extra: cast(only(rebuilt, backup)?)?,
        different: cast(sort_by_key(different, layout).collect()?)?,
    })
}

/// The rows' key values as text, for messages.
pub fn describe_keys(keys: &DataFrame, limit: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for i in 0..keys.height().min(limit) {
        let row = keys.get_row(i)?;
        let values: Vec<String> = row
            .0
            .iter()
            .map(|v| match v {
                AnyValue::String(s) => s.to_string(),
                AnyValue::StringOwned(s) => s.to_string(),
                AnyValue::Null => "NULL".to_string(),
                AnyValue::Binary(b) => format!("0x{}", binary::to_hex(b)),
                AnyValue::BinaryOwned(b) => format!("0x{}", binary::to_hex(b)),
                other => other.to_string(),
            })
            .collect();
        out.push(format!("({})", values.join(", ")));
    }
    Ok(out)
}

/// Checks each row's `issue` and `lag` against the date of the file it is in; returns the
/// rows that disagree, as messages.
pub fn check_issue_and_lag(
    issues: &DataFrame,
    layout: &Layout,
    date: chrono::NaiveDate,
) -> Result<Vec<String>> {
    let names: Vec<&str> = layout.names().collect();
    let issue = issues.column("issue")?.i64()?;
    let lag = match layout.has_lag() {
        true => Some(issues.column("lag")?.i64()?),
        false => None,
    };
    // The time columns as text and integers, as the rows hold them.
    let text = |index: usize| -> Result<StringChunked> {
        let column = issues.column(names[index])?.cast(&DataType::String)?;
        Ok(column.str()?.clone())
    };
    let (kinds, days) = match layout.time {
        Time::Typed { time_type, .. } => (Some(text(time_type)?), None),
        Time::Dated(index) => (None, Some(text(index)?)),
        Time::None => (None, None),
    };
    let values = match layout.time {
        Time::Typed { time_value, .. } => Some(issues.column(names[time_value])?.i64()?),
        _ => None,
    };
    let keys = text_keys(issues, layout)?;
    let mut wrong = Vec::new();
    for i in 0..issues.height() {
        let expected = match layout.time {
            Time::None => (yyyymmdd(date), None),
            Time::Typed { .. } => {
                let kind = kinds.as_ref().and_then(|k| k.get(i));
                let value = values.and_then(|v| v.get(i));
                let (Some(kind), Some(value)) = (kind, value) else {
                    bail!("an issue row has no time_type or time_value");
                };
                let (issue, lag) = issue_and_lag(kind, value, date).map_err(|e| anyhow!(e))?;
                (issue, Some(lag))
            }
            Time::Dated(index) => {
                let text = days.as_ref().and_then(|d| d.get(i));
                let Some(day) = text.and_then(day_of) else {
                    bail!("an issue row has no date in {}", names[index]);
                };
                let (issue, lag) = issue_and_lag_of_day(day, date);
                (issue, Some(lag))
            }
        };
        let found = (
            issue.get(i).unwrap_or(i64::MIN),
            lag.map(|lag| lag.get(i).unwrap_or(i64::MIN)),
        );
        if found != expected {
            let key = describe_keys(&keys.slice(i as i64, 1), 1)?.remove(0);
            let lag_text = |lag: Option<i64>| lag.map_or(String::new(), |l| format!(" lag {l}"));
            wrong.push(format!(
                "{key}: issue {}{} in the file of {}, expected issue {}{}",
                found.0,
                lag_text(found.1),
                date.format("%Y%m%d"),
                expected.0,
                lag_text(expected.1)
            ));
        }
    }
    Ok(wrong)
}

fn text_keys(frame: &DataFrame, layout: &Layout) -> Result<DataFrame> {
    let keys = frame.clone().lazy().select(key_exprs(layout)).collect()?;
    crate::stages::diff::text_as_strings(keys)
}
