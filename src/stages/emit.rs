//! Stage 4, emit: issue rows and removals of one source and backup pair to files, as SQL
//! INSERT statements (loadable into the migrated table: the table's columns but the id,
//! then `issue` and `lag`) or CSV. Numbers are written the way mariadb-dump writes them
//! (decimals digit for digit, as their canonical text), binary values as hex
//! (`binary.rs`).

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use chrono::NaiveDate;
use polars::prelude::{
    BinaryType, ChunkFullNull, ChunkedArray, CompatLevel, DataFrame, DataType, Float64Chunked,
    Float64Type, Int64Chunked, Int64Type, IntoColumn, PlSmallStr, PolarsDataType, SchemaExt,
    StaticArray, StringType, UInt64Type,
};
use polars_io::parquet::write::{get_encodings, ParquetCompression, StatisticsOptions};
use polars_parquet::write::{
    row_group_iter, to_parquet_schema, Encoding, FileWriter, ParquetType, Version, WriteOptions,
};

use crate::config::layout::{Layout, Time};
use crate::config::target::{Fill, TargetPlan, MISSING_DELETED, MISSING_OTHER};
use crate::config::OutputFormat;
use crate::dump::ColumnKind;
use crate::stages::diff::{SortedRows, ADDED, PREVIOUS_VALUE, VALUE};
use crate::values::backfill::Revisions;
use crate::values::binary;
use crate::values::epiweek::yyyymmdd;
use crate::values::lag::{day_of, issue_and_lag, issue_and_lag_of_day};
use crate::workdir::atomic::Staging;

/// One column's values, typed, in one array: a cell is read straight from it, where
/// `ChunkedArray::get` looked its chunk up for every cell written (3% of the diff stage's
/// instructions, measured).
enum Cells {
    Text(Array<StringType>),
    Integer(Array<Int64Type>),
    Unsigned(Array<UInt64Type>),
    Float(Array<Float64Type>),
    /// A decimal column's canonical text.
    Decimal(Array<StringType>),
    Binary(Array<BinaryType>),
}

/// The arrow array of a polars type.
type Array<T> = <T as PolarsDataType>::Array;

/// The values of `column` in one array (the column is rechunked only if it is in pieces).
fn one_array<T: PolarsDataType>(column: &ChunkedArray<T>) -> T::Array
where
    ChunkedArray<T>: ChunkFullNull,
    T::Array: Clone,
{
    match column.chunks().len() {
        1 => column.downcast_as_array().clone(),
        0 => ChunkedArray::<T>::full_null(PlSmallStr::EMPTY, 0)
            .rechunk()
            .downcast_as_array()
            .clone(),
        _ => column.rechunk().downcast_as_array().clone(),
    }
}

/// One field of an output row.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell<'a> {
    Null,
    Text(&'a str),
    Integer(i64),
    Unsigned(u64),
    Float(f64),
    /// Written bare, digit for digit.
    Decimal(&'a str),
    Binary(&'a [u8]),
}

impl Cells {
    /// The column `name` of `frame`; `layout` tells which text columns are decimals.
    fn of(frame: &DataFrame, name: &str, layout: Option<&Layout>) -> Result<Cells> {
        let series = frame.column(name)?.as_materialized_series();
        let kind = layout.and_then(|l| l.columns.iter().find(|c| c.name == name));
        let is_decimal = kind.is_some_and(|c| matches!(c.kind, ColumnKind::Decimal { .. }));
        Ok(match series.dtype() {
            DataType::String if is_decimal => Cells::Decimal(one_array(series.str()?)),
            DataType::String => Cells::Text(one_array(series.str()?)),
            DataType::Int64 => Cells::Integer(one_array(series.i64()?)),
            DataType::UInt64 => Cells::Unsigned(one_array(series.u64()?)),
            DataType::Float64 => Cells::Float(one_array(series.f64()?)),
            DataType::Binary => Cells::Binary(one_array(series.binary()?)),
            other => bail!("column {name} has the unexpected type {other}"),
        })
    }

    #[inline]
    fn get(&self, row: usize) -> Cell<'_> {
        let cell = match self {
            Cells::Text(c) => StaticArray::get(c, row).map(Cell::Text),
            Cells::Integer(c) => StaticArray::get(c, row).map(Cell::Integer),
            Cells::Unsigned(c) => StaticArray::get(c, row).map(Cell::Unsigned),
            Cells::Float(c) => StaticArray::get(c, row).map(Cell::Float),
            Cells::Decimal(c) => StaticArray::get(c, row).map(Cell::Decimal),
            Cells::Binary(c) => StaticArray::get(c, row).map(Cell::Binary),
        };
        cell.unwrap_or(Cell::Null)
    }
}

/// What the emitted files describe: a source's changes in one backup.
pub struct EmitContext<'a> {
    pub layout: &'a Layout,
    pub source: &'a str,
    pub date: NaiveDate,
    pub previous: Option<NaiveDate>,
    pub target_table: &'a str,
    pub format: OutputFormat,
    pub chunk_rows: usize,
    /// The table the SQL loads into (`--target-ddl`); None: the dump's columns, then
    /// `issue` and `lag`.
    pub target: Option<&'a TargetPlan>,
    /// Where the files go until the unit is committed with others (`atomic::commit`).
    pub files: &'a Staging,
}

impl EmitContext<'_> {
    /// The columns of an output row and where each comes from: without a time column,
    /// no `lag`.
    fn fills(&self) -> Vec<(&str, Fill)> {
        match self.target {
            Some(plan) => plan
                .columns
                .iter()
                .map(|(name, fill)| (name.as_str(), *fill))
                .collect(),
            None => (self.layout.names().enumerate())
                .map(|(i, name)| (name, Fill::Stored(i)))
                .chain([("issue", Fill::Issue)])
                .chain(self.layout.has_lag().then_some(("lag", Fill::Lag)))
                .collect(),
        }
    }
}

/// The session settings a SQL file starts with, as mariadb-dump's do, so that it loads
/// the same values whatever the client's defaults: the text is UTF-8 (utf8mb4), and a
/// table with `timestamp` columns has them in UTC, as the dump wrote them.
fn write_sql_preamble(out: &mut dyn Write, layout: Option<&Layout>) -> Result<()> {
    writeln!(out, "/*!40101 SET NAMES utf8mb4 */;")?;
    if has_timestamps(layout) {
        writeln!(
            out,
            "/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;\n/*!40103 SET TIME_ZONE='+00:00' */;"
        )?;
    }
    Ok(())
}

/// What `write_sql_preamble` changed, set back.
fn write_sql_epilogue(out: &mut dyn Write, layout: Option<&Layout>) -> Result<()> {
    if has_timestamps(layout) {
        writeln!(out, "/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;")?;
    }
    Ok(())
}

fn has_timestamps(layout: Option<&Layout>) -> bool {
    layout.is_some_and(|l| l.columns.iter().any(|c| c.kind == ColumnKind::Timestamp))
}

/// Writes rows as CSV with a header, or as INSERT statements of at most `chunk_rows` rows.
struct RowWriter<'a> {
    format: OutputFormat,
    table: &'a str,
    header: Vec<&'a str>,
    chunk_rows: usize,
    rows: usize,
    /// SQL only: `ON DUPLICATE KEY UPDATE` of these columns ends each statement.
    on_duplicate: String,
    /// One row's text, written whole: one call into `out` per row instead of per field.
    line: Vec<u8>,
}

impl<'a> RowWriter<'a> {
    fn start(
        out: &mut dyn Write,
        format: OutputFormat,
        table: &'a str,
        header: Vec<&'a str>,
        chunk_rows: usize,
        update: &[&str],
    ) -> Result<RowWriter<'a>> {
        if format == OutputFormat::Csv {
            write_csv_line(out, header.iter().map(|h| Cell::Text(h)))?;
        }
        let on_duplicate = if update.is_empty() {
            String::new()
        } else {
            let sets: Vec<String> = update
                .iter()
                .map(|c| {
                    let c = quote_name(c);
                    format!("{c}=VALUES({c})")
                })
                .collect();
            format!("\nON DUPLICATE KEY UPDATE {}", sets.join(","))
        };
        Ok(RowWriter {
            format,
            table,
            header,
            chunk_rows,
            rows: 0,
            on_duplicate,
            line: Vec::with_capacity(256),
        })
    }

    fn row<'c>(
        &mut self,
        out: &mut dyn Write,
        cells: impl Iterator<Item = Cell<'c>>,
    ) -> Result<()> {
        let line = &mut self.line;
        line.clear();
        match self.format {
            OutputFormat::Csv => write_csv_line(line, cells)?,
            OutputFormat::Parquet => bail!("Parquet files are written whole, not row by row"),
            OutputFormat::Sql => {
                if self.rows.is_multiple_of(self.chunk_rows) {
                    if self.rows > 0 {
                        writeln!(line, "{};", self.on_duplicate)?;
                    }
                    let columns: Vec<String> = self.header.iter().map(|h| quote_name(h)).collect();
                    write!(
                        line,
                        "INSERT INTO {} ({}) VALUES\n(",
                        quote_name(self.table),
                        columns.join(",")
                    )?;
                } else {
                    line.extend_from_slice(b",\n(");
                }
                write_sql_tuple(line, cells)?;
                line.push(b')');
            }
        }
        out.write_all(line)?;
        self.rows += 1;
        Ok(())
    }

    fn finish(self, out: &mut dyn Write) -> Result<()> {
        if self.format == OutputFormat::Sql && self.rows > 0 {
            writeln!(out, "{};", self.on_duplicate)?;
        }
        Ok(())
    }
}

fn quote_name(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn cells_of(frame: &DataFrame, names: &[&str], layout: Option<&Layout>) -> Result<Vec<Cells>> {
    (names.iter())
        .map(|name| Cells::of(frame, name, layout))
        .collect()
}

/// What writing a unit's issue rows found.
#[derive(Debug, Default)]
pub struct IssueStats {
    /// Rows with a `time_value` after the backup date (a negative lag).
    pub from_the_future: usize,
    pub revisions: Revisions,
}

/// Writes the issue rows (sorted already) to `path`, adding `issue` and `lag`. For a
/// target table that tracks `is_latest_issue`, the file also keeps that flag right when
/// the files are loaded in date order; `removed` (the removed keys with their last values)
/// then become rows of their own or lose the flag. The rows are read a batch at a time, so
/// a unit whose rows were merged from buckets on disk is never held whole.
pub fn write_issues(
    path: &Path,
    issues: &SortedRows,
    removed: &SortedRows,
    ctx: &EmitContext,
) -> Result<IssueStats> {
    let names: Vec<&str> = ctx.layout.names().collect();
    let mut stats = IssueStats::default();
    let fills = ctx.fills();
    let header: Vec<&str> = fills.iter().map(|(name, _)| *name).collect();
    // Two backups of one epiweek give a weekly row the same `issue` twice: in a table
    // keyed like Epidata's (the key plus `issue`) the later backup's row replaces it.
    let update: Vec<&str> = fills
        .iter()
        .filter(|(_, fill)| match fill {
            Fill::Stored(i) => !ctx.layout.columns[*i].is_key,
            fill => *fill != Fill::Issue,
        })
        .map(|(name, _)| *name)
        .collect();
    let table = ctx.target.map_or(ctx.target_table, |t| t.table.as_str());
    if ctx.format == OutputFormat::Parquet {
        let mut with_issue_and_lag = |chunk: Result<DataFrame>| -> Result<DataFrame> {
            let chunk = chunk?;
            let issue_lag = issues_and_lags(&chunk, &names, ctx, &mut stats)?;
            let mut frame = chunk.select(names.iter().copied())?;
            let (issue, lag): (Vec<i64>, Vec<Option<i64>>) = issue_lag.into_iter().unzip();
            frame.with_column(Int64Chunked::from_vec("issue".into(), issue).into_column())?;
            if ctx.layout.has_lag() {
                let lag = lag.into_iter().map(|lag| lag.expect("a lag")).collect();
                let lag = Int64Chunked::from_vec("lag".into(), lag);
                frame.with_column(lag.into_column())?;
            }
            Ok(frame)
        };
        ctx.files
            .write(path, |out| {
                write_parquet_chunks(out, issues.chunks()?.map(&mut with_issue_and_lag))
            })
            .with_context(|| format!("cannot write {}", path.display()))?;
        return Ok(stats);
    }
    let mut latest = LatestIssues::new(ctx);
    ctx.files.write(path, |out| {
        if ctx.format == OutputFormat::Sql {
            let previous = ctx
                .previous
                .map_or("none: the first backup".to_string(), |d| {
                    d.format("%Y%m%d").to_string()
                });
            writeln!(
                out,
                "-- migrate: issues of {} = {} in the backup of {} (compared with {previous})",
                names[ctx.layout.partition],
                ctx.source,
                ctx.date.format("%Y%m%d"),
            )?;
            write_sql_preamble(out, Some(ctx.layout))?;
        }
        let mut writer = RowWriter::start(
            out,
            ctx.format,
            table,
            header.clone(),
            ctx.chunk_rows,
            &update,
        )?;
        for chunk in issues.chunks()? {
            let chunk = chunk?;
            let columns = cells_of(&chunk, &names, Some(ctx.layout))?;
            let mut row_cells = Vec::with_capacity(fills.len());
            let issue_lag = issues_and_lags(&chunk, &names, ctx, &mut stats)?;
            for (row, &(issue, lag)) in issue_lag.iter().enumerate() {
                let stored = |i: usize| columns[i].get(row);
                fill_row(&mut row_cells, &fills, &stored, issue, lag, false, ctx)?;
                writer.row(out, row_cells.iter().copied())?;
                latest.inserted(&stored, issue);
            }
        }
        writer.finish(out)?;
        if let Some(plan) = ctx.target.filter(|p| p.maintains_latest || p.removal_rows) {
            if plan.removal_rows {
                writeln!(
                    out,
                    "-- keys missing from this backup: a row each, marked deleted"
                )?;
                let mut writer =
                    RowWriter::start(out, ctx.format, table, header, ctx.chunk_rows, &update)?;
                for chunk in removed.chunks()? {
                    let chunk = chunk?;
                    let removed_columns = cells_of(&chunk, &names, Some(ctx.layout))?;
                    let mut row_cells = Vec::with_capacity(fills.len());
                    for row in 0..chunk.height() {
                        let stored = |i: usize| removed_columns[i].get(row);
                        let (issue, lag) = issue_and_lag_of(&stored, ctx)?;
                        fill_row(&mut row_cells, &fills, &stored, issue, lag, true, ctx)?;
                        writer.row(out, row_cells.iter().copied())?;
                        latest.inserted(&stored, issue);
                    }
                }
                writer.finish(out)?;
            } else {
                latest.write_unflag_removed(out, removed, &names)?;
            }
            latest.write_unflag_older(out)?;
        }
        if ctx.format == OutputFormat::Sql {
            write_sql_epilogue(out, Some(ctx.layout))?;
        }
        Ok(())
    })?;
    Ok(stats)
}

/// Each row's `issue` and `lag`; counts the rows from the future and the revisions.
fn issues_and_lags(
    chunk: &DataFrame,
    names: &[&str],
    ctx: &EmitContext,
    stats: &mut IssueStats,
) -> Result<Vec<(i64, Option<i64>)>> {
    let columns = cells_of(chunk, names, Some(ctx.layout))?;
    let added = chunk.column(ADDED)?.bool()?.clone();
    let float_column = |name: &str| -> Option<Float64Chunked> {
        let column = chunk.column(name).ok()?;
        column.as_materialized_series().f64().ok().cloned()
    };
    let (value, previous) = (float_column(VALUE), float_column(PREVIOUS_VALUE));
    let mut issue_lag = Vec::with_capacity(chunk.height());
    for row in 0..chunk.height() {
        let (issue, lag) = issue_and_lag_of(&|i| columns[i].get(row), ctx)?;
        if let Some(lag) = lag {
            stats.from_the_future += usize::from(lag < 0);
            if added.get(row) == Some(false) {
                let at = |c: &Option<Float64Chunked>| c.as_ref().and_then(|c| c.get(row));
                stats.revisions.record(lag, at(&value), at(&previous));
            }
        }
        issue_lag.push((issue, lag));
    }
    Ok(issue_lag)
}

/// Rows per row group of a Parquet output file: fixed, so that a file is the same bytes
/// however its rows arrived (in one frame, or merged from a split unit's buckets).
pub const OUTPUT_GROUP_ROWS: usize = 1 << 16;

/// Writes frames (at least one) to a Parquet file in row groups of `OUTPUT_GROUP_ROWS` rows.
fn write_parquet_chunks(
    out: &mut dyn Write,
    mut frames: impl Iterator<Item = Result<DataFrame>>,
) -> Result<()> {
    let first = frames.next().expect("at least one frame")?;
    let mut writer = ParquetRowGroups::start(out, &first)?;
    writer.write(first)?;
    for frame in frames {
        writer.write(frame?)?;
    }
    writer.finish()
}

/// Writes frames to a Parquet file in row groups of `OUTPUT_GROUP_ROWS` rows, its columns
/// of the oldest Arrow types polars writes (`large_string`, `large_binary`; not the
/// `string_view`/`binary_view` of its default): readers from before Arrow's view types
/// (pyarrow before 16, pandas 1.x, Spark 3) read them. Otherwise polars' defaults: zstd,
/// statistics, Parquet format version 1.
struct ParquetRowGroups<W: Write> {
    writer: FileWriter<W>,
    fields: Vec<ParquetType>,
    encodings: Vec<Vec<Encoding>>,
    options: WriteOptions,
    pending: Option<DataFrame>,
}

impl<W: Write> ParquetRowGroups<W> {
    /// A writer for frames with the columns of `first`.
    fn start(out: W, first: &DataFrame) -> Result<ParquetRowGroups<W>> {
        let schema = first.schema().to_arrow(CompatLevel::oldest());
        let options = WriteOptions {
            statistics: StatisticsOptions::default(),
            version: Version::V1,
            compression: ParquetCompression::default().into(),
            data_page_size: None,
        };
        let encodings = get_encodings(&schema).to_vec();
        let fields = to_parquet_schema(&schema)?.fields().to_vec();
        Ok(ParquetRowGroups {
            writer: FileWriter::try_new(out, schema, options)?,
            fields,
            encodings,
            options,
            pending: None,
        })
    }

    /// Writes one row group (a frame of one chunk).
    fn write_group(&mut self, group: &DataFrame) -> Result<()> {
        for batch in group.iter_chunks(CompatLevel::oldest(), false) {
            let rows = batch.len() as u64;
            let columns = row_group_iter(
                batch,
                self.encodings.clone().into(),
                self.fields.clone(),
                self.options,
            );
            self.writer.write(rows, columns)?;
        }
        Ok(())
    }

    fn write(&mut self, frame: DataFrame) -> Result<()> {
        let mut pending = match self.pending.take() {
            Some(mut pending) => {
                pending.vstack_mut_owned(frame)?;
                pending
            }
            None => frame,
        };
        while pending.height() >= OUTPUT_GROUP_ROWS {
            let (mut group, rest) = pending.split_at(OUTPUT_GROUP_ROWS as i64);
            group.rechunk_mut();
            self.write_group(&group)?;
            pending = rest;
        }
        self.pending = Some(pending);
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        if let Some(mut rest) = self.pending.take().filter(|p| p.height() > 0) {
            rest.rechunk_mut();
            self.write_group(&rest)?;
        }
        self.writer.end(None)?;
        Ok(())
    }
}

/// Fills `cells` with one output row: the stored columns' values, `issue`, `lag` and the
/// target's own columns. A removal's row (`deleted`) has NULL in every column that has a
/// missingness code, and the code 4.
fn fill_row<'c>(
    cells: &mut Vec<Cell<'c>>,
    fills: &[(&str, Fill)],
    stored: &dyn Fn(usize) -> Cell<'c>,
    issue: i64,
    lag: Option<i64>,
    deleted: bool,
    ctx: &EmitContext,
) -> Result<()> {
    let has_code = |i: usize| ctx.target.is_some_and(|plan| plan.coded[i]);
    cells.clear();
    for (name, fill) in fills {
        let cell = match *fill {
            Fill::Stored(i) if deleted && has_code(i) => Cell::Null,
            Fill::Stored(i) => stored(i),
            Fill::Issue => Cell::Integer(issue),
            // The target plan refuses a `lag` column without a time column.
            Fill::Lag => lag.map_or(Cell::Null, Cell::Integer),
            Fill::LatestIssue => Cell::Integer(1),
            Fill::Wip(signal) => {
                let wip = matches!(stored(signal), Cell::Text(s) if TargetPlan::is_wip(s));
                Cell::Integer(i64::from(wip))
            }
            Fill::Missing(_) if deleted => Cell::Integer(MISSING_DELETED),
            Fill::Missing(i) if stored(i) == Cell::Null => Cell::Integer(MISSING_OTHER),
            Fill::Missing(_) => Cell::Integer(0),
        };
        if let (Fill::Stored(i), Cell::Null, Some(plan)) = (fill, cell, ctx.target) {
            if plan.not_null[*i] {
                let key: Vec<String> = (ctx.layout.columns.iter().enumerate())
                    .filter(|(_, c)| c.is_key)
                    .map(|(k, _)| describe_cell(stored(k)))
                    .collect();
                bail!(
                    "the row with the key ({}) has NULL in `{name}`, which the target table \
                     `{}` declares NOT NULL, so its file would not load; make `{name}` \
                     nullable in the target (as Epidata's 2021 table does), or migrate into \
                     another table",
                    key.join(", "),
                    plan.table
                );
            }
        }
        cells.push(cell);
    }
    Ok(())
}

fn describe_cell(cell: Cell) -> String {
    match cell {
        Cell::Null => "NULL".into(),
        Cell::Text(t) => format!("'{t}'"),
        Cell::Integer(v) => v.to_string(),
        Cell::Unsigned(v) => v.to_string(),
        Cell::Float(v) => format_float(v),
        Cell::Decimal(v) => v.to_string(),
        Cell::Binary(b) => format!("0x{}", binary::to_hex(b)),
    }
}

/// The statements that keep `is_latest_issue` right, set-based: the rows a file inserts
/// are the newest issues of their keys (files load in date order), so older issues of the
/// same keys lose the flag, found through the index that leads with the key's
/// `issue_prefix` columns and `issue`.
struct LatestIssues<'a> {
    ctx: &'a EmitContext<'a>,
    /// `(prefix values..., issue)` tuples as SQL, of every row inserted (not collected for
    /// the first backup, whose file unflags nothing: most of a history's rows are there).
    inserted: std::collections::BTreeSet<Vec<u8>>,
    /// Whether any row was inserted.
    any: bool,
    prefix: Vec<usize>,
}

impl<'a> LatestIssues<'a> {
    fn new(ctx: &'a EmitContext<'a>) -> LatestIssues<'a> {
        let prefix = ctx.target.map_or(Vec::new(), |plan| {
            (plan.issue_prefix.iter())
                .filter_map(|name| ctx.layout.names().position(|n| n == name))
                .collect()
        });
        LatestIssues {
            ctx,
            inserted: Default::default(),
            any: false,
            prefix,
        }
    }

    fn inserted<'c>(&mut self, stored: &dyn Fn(usize) -> Cell<'c>, issue: i64) {
        if self.prefix.is_empty() {
            return;
        }
        self.any = true;
        if self.ctx.previous.is_none() {
            return;
        }
        let mut tuple = Vec::new();
        let cells = self.prefix.iter().map(|&i| stored(i));
        write_sql_tuple(&mut tuple, cells.chain([Cell::Integer(issue)]))
            .expect("key cells are finite");
        self.inserted.insert(tuple);
    }

    fn key_columns(&self, alias: &str) -> Vec<String> {
        self.ctx
            .layout
            .key_names()
            .iter()
            .map(|k| format!("{alias}{}", quote_name(k)))
            .collect()
    }

    /// Older issues of the keys just inserted are no longer the latest.
    fn write_unflag_older(&self, out: &mut dyn Write) -> Result<()> {
        let Some(plan) = self.ctx.target.filter(|p| p.maintains_latest) else {
            return Ok(());
        };
        if !self.any {
            return Ok(());
        }
        if self.ctx.previous.is_none() {
            // The series' first backup: its files are loaded into a table with no earlier
            // issue of these keys, so there is nothing to unflag, and the lookup of every
            // row (most of a history's rows are in its first backup) is spared.
            writeln!(out, "-- the first backup: no older issues to unflag")?;
            return Ok(());
        }
        let table = quote_name(&plan.table);
        let mut newer: Vec<String> = (plan.issue_prefix.iter())
            .map(|c| format!("`newer`.{}", quote_name(c)))
            .collect();
        newer.push("`newer`.`issue`".into());
        writeln!(
            out,
            "-- older issues of the keys above are no longer the latest\n\
             UPDATE {table} AS `older` JOIN {table} AS `newer` USING ({})\n\
             SET `older`.`is_latest_issue` = 0\n\
             WHERE `older`.`is_latest_issue` = 1 AND `older`.`issue` < `newer`.`issue`\n\
             AND ({}) IN (",
            self.key_columns("").join(","),
            newer.join(",")
        )?;
        for (i, tuple) in self.inserted.iter().enumerate() {
            out.write_all(if i == 0 { b"(" } else { b",\n(" })?;
            out.write_all(tuple)?;
            out.write_all(b")")?;
        }
        writeln!(out, ");")?;
        Ok(())
    }

    /// Without rows of their own, removed keys simply lose the flag: no row is the latest.
    fn write_unflag_removed(
        &self,
        out: &mut dyn Write,
        removed: &SortedRows,
        names: &[&str],
    ) -> Result<()> {
        let Some(plan) = self.ctx.target.filter(|p| p.maintains_latest) else {
            return Ok(());
        };
        let key: Vec<usize> = (self.ctx.layout.columns.iter().enumerate())
            .filter(|(_, c)| c.is_key)
            .map(|(i, _)| i)
            .collect();
        let mut written = 0;
        for chunk in removed.chunks()? {
            let chunk = chunk?;
            let columns = cells_of(&chunk, names, Some(self.ctx.layout))?;
            for row in 0..chunk.height() {
                if written % self.ctx.chunk_rows == 0 {
                    if written == 0 {
                        writeln!(out, "-- keys missing from this backup are no longer served")?;
                    } else {
                        writeln!(out, ");")?;
                    }
                    write!(
                        out,
                        "UPDATE {} SET `is_latest_issue` = 0\nWHERE `is_latest_issue` = 1 AND ({}) IN (",
                        quote_name(&plan.table),
                        self.key_columns("").join(",")
                    )?;
                    out.write_all(b"(")?;
                } else {
                    out.write_all(b",\n(")?;
                }
                write_sql_tuple(out, key.iter().map(|&i| columns[i].get(row)))?;
                out.write_all(b")")?;
                written += 1;
            }
        }
        if written > 0 {
            writeln!(out, ");")?;
        }
        Ok(())
    }
}

/// Writes a table's rows (every stored column, no `issue` or `lag`), as `asof` does.
pub fn write_table(
    out: &mut dyn Write,
    frame: &DataFrame,
    layout: &Layout,
    format: OutputFormat,
    table: &str,
) -> Result<()> {
    write_rows(
        out,
        frame,
        layout.names().collect(),
        Some(layout),
        format,
        table,
    )
}

/// Writes the columns `names` of a frame's rows: the table's columns (`layout` says how,
/// decimals bare in SQL) and others such as `issue` and `lag`.
pub fn write_rows(
    out: &mut dyn Write,
    frame: &DataFrame,
    names: Vec<&str>,
    layout: Option<&Layout>,
    format: OutputFormat,
    table: &str,
) -> Result<()> {
    write_rows_from(
        out,
        std::iter::once(Ok(frame.clone())),
        names,
        layout,
        format,
        table,
    )?;
    Ok(())
}

/// `write_rows` for the rows of several frames (at least one), one after the other: rows
/// merged from parts on disk, written a batch at a time. Returns the number of rows.
pub fn write_rows_from(
    out: &mut dyn Write,
    frames: impl Iterator<Item = Result<DataFrame>>,
    names: Vec<&str>,
    layout: Option<&Layout>,
    format: OutputFormat,
    table: &str,
) -> Result<usize> {
    let mut written = 0;
    if format == OutputFormat::Parquet {
        let selected = frames.map(|frame| {
            let frame = frame?.select(names.iter().copied())?;
            written += frame.height();
            Ok(frame)
        });
        write_parquet_chunks(out, selected)?;
        return Ok(written);
    }
    if format == OutputFormat::Sql {
        write_sql_preamble(out, layout)?;
    }
    let mut writer = RowWriter::start(out, format, table, names.clone(), 1000, &[])?;
    for frame in frames {
        let frame = frame?;
        let columns = cells_of(&frame, &names, layout)?;
        for row in 0..frame.height() {
            writer.row(out, columns.iter().map(|c| c.get(row)))?;
        }
        written += frame.height();
    }
    writer.finish(out)?;
    if format == OutputFormat::Sql {
        write_sql_epilogue(out, layout)?;
    }
    Ok(written)
}

/// The `issue` and `lag` of a row of the backup `ctx.date` (no lag without a time column).
fn issue_and_lag_of<'c>(
    stored: &dyn Fn(usize) -> Cell<'c>,
    ctx: &EmitContext,
) -> Result<(i64, Option<i64>)> {
    match ctx.layout.time {
        Time::None => Ok((yyyymmdd(ctx.date), None)),
        Time::Typed {
            time_type,
            time_value,
        } => {
            let (Cell::Text(kind), Cell::Integer(value)) = (stored(time_type), stored(time_value))
            else {
                bail!("a row has no time_type or time_value (NULL), so its lag is undefined");
            };
            let (issue, lag) = issue_and_lag(kind, value, ctx.date).map_err(|e| anyhow!("{e}"))?;
            Ok((issue, Some(lag)))
        }
        Time::Dated(index) => {
            let name = &ctx.layout.columns[index].name;
            let Cell::Text(text) = stored(index) else {
                bail!("a row has no {name} (NULL), so its lag is undefined");
            };
            let day = day_of(text).ok_or_else(|| {
                anyhow!("{name} is {text:?}, which is no date, so the row's lag is undefined")
            })?;
            let (issue, lag) = issue_and_lag_of_day(day, ctx.date);
            Ok((issue, Some(lag)))
        }
    }
}

/// Writes the removed keys with the date of the backup they are missing from.
pub fn write_removals(path: &Path, removed: &SortedRows, ctx: &EmitContext) -> Result<()> {
    let names = ctx.layout.key_names();
    let stamp = yyyymmdd(ctx.date);
    ctx.files
        .write(path, |out| {
            if ctx.format == OutputFormat::Parquet {
                let with_date = |chunk: Result<DataFrame>| -> Result<DataFrame> {
                    let mut frame = chunk?.select(names.iter().copied())?;
                    let removed =
                        Int64Chunked::from_vec("removed".into(), vec![stamp; frame.height()]);
                    frame.with_column(removed.into_column())?;
                    Ok(frame)
                };
                return write_parquet_chunks(out, removed.chunks()?.map(with_date));
            }
            let header = names.iter().copied().chain(["removed"]);
            write_csv_line(out, header.map(Cell::Text))?;
            for chunk in removed.chunks()? {
                let chunk = chunk?;
                let columns = (names.iter())
                    .map(|name| Cells::of(&chunk, name, Some(ctx.layout)))
                    .collect::<Result<Vec<_>>>()?;
                for row in 0..chunk.height() {
                    let cells = columns.iter().map(|c| c.get(row));
                    write_csv_line(out, cells.chain([Cell::Integer(stamp)]))?;
                }
            }
            Ok(())
        })
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write_csv_line<'a>(
    out: &mut (impl Write + ?Sized),
    cells: impl Iterator<Item = Cell<'a>>,
) -> Result<()> {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        match cell {
            Cell::Null => {}
            Cell::Text(text) => {
                let needs_quotes = text.is_empty()
                    || text.contains([',', '"', '\n', '\r'])
                    || text.starts_with(' ')
                    || text.ends_with(' ');
                if needs_quotes {
                    write!(out, "\"{}\"", text.replace('"', "\"\""))?;
                } else {
                    out.write_all(text.as_bytes())?;
                }
            }
            Cell::Integer(v) => out.write_all(itoa::Buffer::new().format(v).as_bytes())?,
            Cell::Unsigned(v) => out.write_all(itoa::Buffer::new().format(v).as_bytes())?,
            Cell::Float(v) => write_float(out, v)?,
            Cell::Decimal(v) => out.write_all(v.as_bytes())?,
            // Hex digits need no quotes, but no digits at all would read as NULL.
            Cell::Binary(b"") => out.write_all(b"\"\"")?,
            Cell::Binary(bytes) => binary::write_hex(out, bytes)?,
        }
    }
    out.write_all(b"\n")?;
    Ok(())
}

fn write_sql_tuple<'a>(
    out: &mut (impl Write + ?Sized),
    cells: impl Iterator<Item = Cell<'a>>,
) -> Result<()> {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        match cell {
            Cell::Null => out.write_all(b"NULL")?,
            Cell::Text(text) => {
                out.write_all(b"'")?;
                out.write_all(sql_escape(text).as_bytes())?;
                out.write_all(b"'")?;
            }
            Cell::Integer(v) => out.write_all(itoa::Buffer::new().format(v).as_bytes())?,
            Cell::Unsigned(v) => out.write_all(itoa::Buffer::new().format(v).as_bytes())?,
            Cell::Decimal(v) => out.write_all(v.as_bytes())?,
            Cell::Float(v) if !v.is_finite() => {
                bail!("the value {v} cannot be stored in a MariaDB DOUBLE column")
            }
            Cell::Float(v) => write_float(out, v)?,
            Cell::Binary(bytes) => binary::write_sql_literal(out, bytes)?,
        }
    }
    Ok(())
}

/// Escapes a string for a single-quoted MariaDB literal, as mariadb-dump does. Most text
/// has nothing to escape and is written as it is.
fn sql_escape(text: &str) -> std::borrow::Cow<'_, str> {
    const SPECIAL: [char; 7] = ['\\', '\'', '"', '\0', '\n', '\r', '\x1a'];
    if !text.contains(SPECIAL) {
        return text.into();
    }
    let mut escaped = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\'' => escaped.push_str("\\'"),
            '"' => escaped.push_str("\\\""),
            '\0' => escaped.push_str("\\0"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\x1a' => escaped.push_str("\\Z"),
            c => escaped.push(c),
        }
    }
    escaped.into()
}

/// Writes a double as MariaDB prints it (my_gcvt): the shortest digits that read back as
/// the same number; with `d` the position of the decimal point after the first digit
/// (the value is 0.DIGITS × 10^d), plain notation when -14 <= d and either d <= 15 or the
/// digits reach past the point, otherwise exponent form without `+` (`1e15`,
/// `1.234567890123456e15`, but `1000000000000000.2`). Whole numbers have no `.0`.
fn write_float(out: &mut (impl Write + ?Sized), v: f64) -> std::io::Result<()> {
    if v == 0.0 || !v.is_finite() {
        let text = if v.is_nan() {
            "NaN"
        } else if v == 0.0 {
            if v.is_sign_negative() {
                "-0"
            } else {
                "0"
            }
        } else if v > 0.0 {
            "inf"
        } else {
            "-inf"
        };
        return out.write_all(text.as_bytes());
    }
    // One shortest-digits conversion (zmij: a fifth of the standard library's time, same
    // digits); the MariaDB form is laid out from its digits into one buffer.
    let mut shortest = zmij::Buffer::new();
    let (negative, digits, d) = decimal_digits(shortest.format_finite(v).as_bytes());
    let count = digits.len() as i32;
    let mut text = [0u8; 48];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        text[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    if negative {
        put(b"-");
    }
    if d < -14 || (d > 15 && count <= d) {
        put(&digits[..1]);
        if count > 1 {
            put(b".");
            put(&digits[1..]);
        }
        put(b"e");
        put(itoa::Buffer::new().format(d - 1).as_bytes());
    } else if d <= 0 {
        put(b"0.");
        put(&b"00000000000000"[..(-d) as usize]);
        put(&digits);
    } else if count <= d {
        put(&digits);
        put(&b"000000000000000"[..(d - count) as usize]);
    } else {
        let (whole, fraction) = digits.split_at(d as usize);
        put(whole);
        put(b".");
        put(fraction);
    }
    out.write_all(&text[..len])
}

/// Up to 17 significant digits of a double, on the stack.
struct Digits {
    bytes: [u8; 24],
    len: usize,
}

impl std::ops::Deref for Digits {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The sign, significant digits (no leading or trailing zeros) and decimal point position
/// `d` (the value is 0.DIGITS × 10^d) of a finite, nonzero number printed in any of the
/// usual forms (`-1.5e-7`, `1e16`, `0.00012`, `123.45`).
fn decimal_digits(text: &[u8]) -> (bool, Digits, i32) {
    let (negative, text) = match text.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e' || b == b'E') {
        Some(e) => {
            let exponent = std::str::from_utf8(&text[e + 1..]).expect("ASCII");
            let exponent = exponent.trim_start_matches('+');
            (&text[..e], exponent.parse::<i32>().expect("an exponent"))
        }
        None => (text, 0),
    };
    let point = mantissa
        .iter()
        .position(|&b| b == b'.')
        .unwrap_or(mantissa.len());
    let mut digits = Digits {
        bytes: [0; 24],
        len: 0,
    };
    let mut leading = 0;
    for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
        if b == b'0' && digits.len == 0 {
            leading += 1;
        } else {
            digits.bytes[digits.len] = b;
            digits.len += 1;
        }
    }
    while digits.len > 0 && digits.bytes[digits.len - 1] == b'0' {
        digits.len -= 1;
    }
    (negative, digits, point as i32 - leading + exponent)
}

/// `write_float` into a string.
pub fn format_float(v: f64) -> String {
    let mut text = Vec::new();
    write_float(&mut text, v).expect("writing to memory");
    String::from_utf8(text).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_mariadb_dump_writes_them() {
        let table = [
            (567.0, "567"),
            (1.5, "1.5"),
            (-0.25, "-0.25"),
            (0.0, "0"),
            (1e-16, "1e-16"),
            (1.5e20, "1.5e20"),
            (123456789012345.0, "123456789012345"),
            (1e15, "1e15"),
            // Checked against mariadb-dump 10.11: past 1e15 the digits decide. Where two
            // shortest spellings are equally near, MariaDB ends in .2, as we do (the
            // standard library's `{}` ends in .3; both read back as the same double).
            (1000000000000000.1, "1000000000000000.1"),
            (1e15 + 0.25, "1000000000000000.2"),
            (1e16, "1e16"),
            (1234567890123456.0, "1.234567890123456e15"),
            (12345678901234567.0, "1.2345678901234568e16"),
            (1.5e15, "1.5e15"),
            (999999999999999.9, "999999999999999.9"),
            (1.5e-15, "0.0000000000000015"),
            (0.000000000000001234, "0.000000000000001234"),
            (1e-14, "0.00000000000001"),
            (123456789012345680000.0, "1.2345678901234568e20"),
            (-1e15, "-1e15"),
            (-0.0, "-0"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e308"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-15, "0.000000000000001"),
        ];
        for (value, text) in table {
            assert_eq!(format_float(value), text);
            assert_eq!(text.parse::<f64>().unwrap(), value);
        }
    }

    /// The former `write_float`, on the standard library's shortest digits: the reference.
    fn reference_format(v: f64) -> String {
        let scientific = format!("{v:e}");
        let (negative, digits, d) = decimal_digits(scientific.as_bytes());
        let digits = String::from_utf8(digits.to_vec()).unwrap();
        let sign = if negative { "-" } else { "" };
        let count = digits.len() as i32;
        if d < -14 || (d > 15 && count <= d) {
            return scientific;
        }
        if d <= 0 {
            format!("{sign}0.{}{digits}", "0".repeat((-d) as usize))
        } else if count <= d {
            format!("{sign}{digits}{}", "0".repeat((d - count) as usize))
        } else {
            let (whole, fraction) = digits.split_at(d as usize);
            format!("{sign}{whole}.{fraction}")
        }
    }

    #[test]
    fn floats_are_spelled_as_with_the_standard_librarys_digits() {
        let mut values: Vec<f64> =
            crate::values::test_doubles::doubles(0x2545_f491_4f6c_dd1d, 1_000_000).collect();
        // Values as data holds them: short decimals, whole numbers, powers of ten.
        let mut ties = 0;
        for i in -2000..2000 {
            values.push(i as f64 / 100.0);
            values.push(i as f64 * 1234.5);
            values.push(10f64.powi(i / 8) * (1.0 + (i % 8) as f64 / 8.0));
        }
        for v in values.into_iter().filter(|v| v.is_finite() && *v != 0.0) {
            let (ours, reference) = (format_float(v), reference_format(v));
            if ours != reference {
                // Only where two shortest spellings are equally near (see above): the
                // same length, and both read back as `v`.
                assert_eq!(ours.len(), reference.len(), "{v:e}");
                assert_eq!(
                    ours.parse::<f64>().unwrap().to_bits(),
                    v.to_bits(),
                    "{ours}"
                );
                assert_eq!(reference.parse::<f64>().unwrap().to_bits(), v.to_bits());
                // Halfway: MariaDB (and Python's repr) round to even, the standard library up.
                let last = |text: &str| {
                    let mantissa = text.split('e').next().unwrap();
                    mantissa.bytes().last().unwrap() - b'0'
                };
                assert_eq!(last(&ours) % 2, 0, "{ours}");
                assert_eq!(last(&reference), last(&ours) + 1, "{reference}");
                ties += 1;
            }
        }
        // Ties are rare: about 2 in 10,000 random doubles.
        assert!(ties < 1000, "{ties} differences");
    }

    #[test]
    fn plain_floats_are_what_the_standard_library_prints() {
        // Doubles of every magnitude from a fixed pseudo-random walk over their bits.
        for v in crate::values::test_doubles::doubles(0x9e37_79b9_7f4a_7c15, 200_000) {
            if !v.is_finite() {
                continue;
            }
            let text = format_float(v);
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                v.to_bits(),
                "{text}"
            );
            if !text.contains('e') && text != format!("{v}") {
                // Two shortest spellings equally near: ours is as long as the standard's.
                assert_eq!(text.len(), format!("{v}").len(), "{text}");
            }
        }
    }

    #[test]
    fn sql_strings_are_escaped() {
        assert_eq!(
            sql_escape("it's a \\ \"q\"\n\0"),
            "it\\'s a \\\\ \\\"q\\\"\\n\\0"
        );
    }

    #[test]
    fn csv_cells() {
        let mut out = Vec::new();
        let cells = [
            Cell::Text("01001"),
            Cell::Text(""),
            Cell::Null,
            Cell::Text("a,\"b\""),
            Cell::Float(2.5),
            Cell::Integer(-3),
            Cell::Binary(b"\0\xff"),
            Cell::Binary(b""),
        ];
        write_csv_line(&mut out, cells.into_iter()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "01001,\"\",,\"a,\"\"b\"\"\",2.5,-3,00FF,\"\"\n"
        );
    }

    #[test]
    fn unsigned_and_decimal_values_are_written_digit_for_digit() {
        let cells = [
            Cell::Unsigned(u64::MAX),
            Cell::Decimal("12345678901234567890.1234567891"),
            Cell::Decimal("-0.50"),
            Cell::Text("2020-06-01"),
        ];
        let mut sql = Vec::new();
        write_sql_tuple(&mut sql, cells.into_iter()).unwrap();
        assert_eq!(
            String::from_utf8(sql).unwrap(),
            "18446744073709551615,12345678901234567890.1234567891,-0.50,'2020-06-01'"
        );
        let mut csv = Vec::new();
        write_csv_line(&mut csv, cells.into_iter()).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "18446744073709551615,12345678901234567890.1234567891,-0.50,2020-06-01\n"
        );
    }

    #[test]
    fn sql_tuples_write_binary_values_as_hex_literals() {
        let mut out = Vec::new();
        let cells = [
            Cell::Binary(b"\0"),
            Cell::Binary(b"\xff'"),
            Cell::Binary(b""),
            Cell::Text("\0"),
            Cell::Null,
        ];
        write_sql_tuple(&mut out, cells.into_iter()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0x00,0xFF27,X'','\\0',NULL"
        );
    }
}
