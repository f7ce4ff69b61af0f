//! Stage 3, diff: for one source and two backups in a row, polars joins the two partitions
//! on the key and keeps the rows of the newer one that are new or whose compared columns
//! differ, with NULL = NULL and NaN = NaN (`eq_missing`); keys only in the older one are
//! removals. This is the only module that speaks polars.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use polars::prelude::*;

use crate::dump::ColumnKind;
use crate::layout::Layout;

const OLD_SUFFIX: &str = "__old";
pub const ADDED: &str = "__added";
/// The column whose revisions the back-fill summary measures.
pub const VALUE: &str = "value";
pub const PREVIOUS_VALUE: &str = "value__old";
const IN_OLD: &str = "__in_old";
const IN_NEW: &str = "__in_new";

/// The outcome of one diff unit.
pub struct DiffResult {
    /// Issue rows: every stored column, sorted by key; text columns as strings. Also
    /// `ADDED` (bool: new key, not a revision) and, for a compared `value` column, the
    /// revised row's earlier value as `PREVIOUS_VALUE`.
    pub issues: DataFrame,
    /// Rows that disappeared (every stored column, as in the older backup), sorted by key.
    pub removed: DataFrame,
    pub added: usize,
    pub changed: usize,
    /// Rows in the newer partition.
    pub rows: usize,
}

/// The polars type of each stored column; key text columns are categorical in the one
/// global mapping, so that partitions read separately join directly.
pub fn schema(layout: &Layout) -> Schema {
    layout
        .columns
        .iter()
        .map(|column| {
            let dtype = match (column.kind, column.is_key) {
                (ColumnKind::Integer, _) => DataType::Int64,
                (ColumnKind::Float, _) => DataType::Float64,
                (ColumnKind::Text, true) => DataType::from_categories(Categories::global()),
                (ColumnKind::Text, false) => DataType::String,
            };
            Field::new(column.name.as_str().into(), dtype)
        })
        .collect()
}

/// Reads one partition (Parquet or CSV, by its extension); a missing file is an empty
/// partition.
pub fn read_partition(path: Option<&Path>, layout: &Layout) -> Result<DataFrame> {
    read_partition_where(path, layout, None)
}

/// One bucket of a partition too large to diff whole: the rows whose `time_value` is `bucket`
/// modulo `buckets`. A key always falls in the same bucket of both backups, so bucket by
/// bucket diffs add up to the whole diff; the filter is applied while the file is read, so
/// only one bucket is held in memory.
pub fn read_partition_bucket(
    path: Option<&Path>,
    layout: &Layout,
    bucket: usize,
    buckets: usize,
) -> Result<DataFrame> {
    let time_value = layout
        .names()
        .nth(layout.time_value)
        .expect("a time_value column");
    let k = lit(buckets as i64);
    // Remainders of negative numbers are negative: shift them into 0..k.
    let in_bucket = ((col(time_value) % k.clone() + k.clone()) % k).eq(lit(bucket as i64));
    read_partition_where(path, layout, Some(in_bucket))
}

fn read_partition_where(
    path: Option<&Path>,
    layout: &Layout,
    filter: Option<Expr>,
) -> Result<DataFrame> {
    let schema = Arc::new(schema(layout));
    let Some(path) = path else {
        return Ok(DataFrame::empty_with_schema(&schema));
    };
    let frame = if is_parquet(path) {
        scan_parquet(path, layout)
    } else if filter.is_none() {
        // The eager reader: for a whole CSV file it is faster than a scan.
        let frame = CsvReadOptions::default()
            .with_has_header(true)
            .with_schema(Some(schema))
            .with_rechunk(true)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|reader| reader.finish());
        frame.map(|frame| frame.lazy())
    } else {
        LazyCsvReader::new(PlRefPath::new(path.to_string_lossy().as_ref()))
            .with_has_header(true)
            .with_schema(Some(schema))
            .finish()
    };
    let frame = match filter {
        Some(filter) => frame.map(|f| f.filter(filter)),
        None => frame,
    };
    frame
        .and_then(|f| f.collect())
        .map(|mut frame| {
            frame.rechunk_mut();
            frame
        })
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot read the partition {}", path.display()))
}

/// Reads a partition held in memory (the dry run's sample) into the frame `read_partition`
/// gives for the same bytes in a file.
pub fn read_partition_bytes(bytes: Vec<u8>, parquet: bool, layout: &Layout) -> Result<DataFrame> {
    let schema = Arc::new(schema(layout));
    let bytes = std::io::Cursor::new(bytes);
    let frame = if parquet {
        let as_categorical: Vec<Expr> = (layout.columns.iter())
            .filter(|c| c.is_key && c.kind == ColumnKind::Text)
            .map(|c| col(c.name.as_str()).cast(DataType::from_categories(Categories::global())))
            .collect();
        ParquetReader::new(bytes)
            .finish()
            .and_then(|frame| frame.lazy().with_columns(as_categorical).collect())
    } else {
        CsvReadOptions::default()
            .with_has_header(true)
            .with_schema(Some(schema))
            .with_rechunk(true)
            .into_reader_with_file_handle(bytes)
            .finish()
    };
    let mut frame = anyhow::Context::context(frame, "cannot read a partition made in memory")?;
    frame.rechunk_mut();
    Ok(frame)
}

pub fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "parquet")
}

/// Scans a Parquet file of `migrate`'s (a partition, issues or removals) with its text key
/// columns as categoricals of the one global mapping, as the diff joins them.
pub fn scan_parquet(path: &Path, layout: &Layout) -> PolarsResult<LazyFrame> {
    let mut args = ScanArgsParquet::default();
    // A `date=` folder in the path is not a column: the file alone is complete.
    args.hive_options.enabled = Some(false);
    let as_categorical: Vec<Expr> = (layout.columns.iter())
        .filter(|c| c.is_key && c.kind == ColumnKind::Text)
        .map(|c| col(c.name.as_str()).cast(DataType::from_categories(Categories::global())))
        .collect();
    let source = PlRefPath::new(path.to_string_lossy().as_ref());
    LazyFrame::scan_parquet(source, args).map(|f| f.with_columns(as_categorical))
}

pub fn key_exprs(layout: &Layout) -> Vec<Expr> {
    layout.key_names().into_iter().map(col).collect()
}

/// The columns again, renamed with `suffix`, for the other side of a join.
pub fn suffixed(columns: &[&str], suffix: &str) -> Vec<Expr> {
    columns
        .iter()
        .map(|c| col(*c).alias(format!("{c}{suffix}")))
        .collect()
}

/// True where any column differs from its `suffix`ed twin, with NULL = NULL and NaN = NaN.
pub fn any_differs(columns: &[&str], suffix: &str) -> Expr {
    columns
        .iter()
        .map(|c| col(*c).eq_missing(col(format!("{c}{suffix}"))).not())
        .fold(lit(false), |any, differs| any.or(differs))
}

/// Fails if a key occurs twice in `frame`, naming the first such key.
pub fn check_unique_keys(frame: &DataFrame, layout: &Layout) -> Result<()> {
    let keys = key_exprs(layout);
    let duplicates = frame
        .clone()
        .lazy()
        .group_by(keys.clone())
        .agg([len().alias("__count")])
        .filter(col("__count").gt(lit(1)))
        .select(
            keys.iter()
                .map(|k| k.clone().cast(DataType::String))
                .collect::<Vec<_>>(),
        )
        .sort(layout.key_names(), SortMultipleOptions::default())
        .limit(1)
        .collect()?;
    if duplicates.height() > 0 {
        let row = duplicates.get_row(0)?;
        let values: Vec<String> = row
            .0
            .iter()
            .map(|v| match v {
                AnyValue::String(s) => s.to_string(),
                AnyValue::StringOwned(s) => s.to_string(),
                other => other.to_string(),
            })
            .collect();
        bail!(
            "the key ({}) = ({}) occurs more than once; the key must identify one row \
             (pass --key with the table's unique key)",
            layout.key_names().join(", "),
            values.join(", ")
        );
    }
    Ok(())
}

/// Diffs the partition `new` against `old` (None: the first backup, every row is new).
///
/// One full outer join does the whole diff: rows only in `new` are added, rows on both sides
/// whose compared columns differ are changed, rows only in `old` are removals. The join
/// validates that the key is unique on both sides as it builds its hash table, which costs
/// far less than a separate group-by; only when it fails is the slow check run, to name
/// the duplicated key.
pub fn diff(old: Option<DataFrame>, new: DataFrame, layout: &Layout) -> Result<DiffResult> {
    let rows = new.height();
    let keys = key_exprs(layout);
    let stored: Vec<Expr> = layout.names().map(col).collect();
    let Some(old) = old else {
        check_unique_keys(&new, layout)?;
        let mut selected = stored;
        selected.push(lit(true).alias(ADDED));
        let issues = sort_by_key(new.lazy(), layout).select(selected).collect()?;
        let removed = DataFrame::empty_with_schema(&removed_schema(layout));
        return Ok(DiffResult {
            added: issues.height(),
            changed: 0,
            issues: text_as_strings(issues)?,
            removed,
            rows,
        });
    };
    let compared = layout.compared_names();
    // Every non-key column of the older side: compared ones decide what changed, and a
    // removed row keeps all of its last values.
    let carried: Vec<&str> = (layout.columns.iter())
        .filter(|c| !c.is_key)
        .map(|c| c.name.as_str())
        .collect();
    let mut old_side: Vec<Expr> = keys.clone();
    old_side.extend(suffixed(&carried, OLD_SUFFIX));
    old_side.push(lit(true).alias(IN_OLD));
    let mut new_side = stored.clone();
    new_side.push(lit(true).alias(IN_NEW));
    let mut args = JoinArgs::new(JoinType::Full).with_coalesce(JoinCoalesce::CoalesceColumns);
    args.nulls_equal = true;
    args.validation = JoinValidation::OneToOne;
    let joined = new
        .clone()
        .lazy()
        .select(new_side)
        .join(
            old.clone().lazy().select(old_side),
            keys.clone(),
            keys.clone(),
            args,
        )
        .collect();
    let joined = match joined {
        Ok(joined) => joined,
        Err(error) => {
            check_unique_keys(&new, layout)?;
            check_unique_keys(&old, layout)?;
            return Err(error.into());
        }
    };
    let in_new = col(IN_NEW).is_not_null();
    let is_added = col(IN_OLD).is_null();
    let differs = any_differs(&compared, OLD_SUFFIX);
    let mut selected = stored;
    selected.push(is_added.clone().alias(ADDED));
    if compared.contains(&VALUE) {
        selected.push(col(PREVIOUS_VALUE));
    }
    let issues = sort_by_key(
        joined
            .clone()
            .lazy()
            .filter(in_new.clone().and(is_added.or(differs))),
        layout,
    )
    .select(selected)
    .collect()?;
    let added = issues.column(ADDED)?.bool()?.sum().unwrap_or(0) as usize;
    let mut last_values = keys;
    last_values.extend((carried.iter()).map(|c| col(format!("{c}{OLD_SUFFIX}")).alias(*c)));
    let removed = joined.lazy().filter(in_new.not()).select(last_values);
    // Back in table order, the order every other frame of a unit has.
    let removed = sort_by_key(removed, layout)
        .select(layout.names().map(col).collect::<Vec<_>>())
        .collect()?;
    Ok(DiffResult {
        changed: issues.height() - added,
        added,
        issues: text_as_strings(issues)?,
        removed: text_as_strings(removed)?,
        rows,
    })
}

/// Joins the results of a unit's buckets into the result of the whole unit.
pub fn combine(parts: Vec<DiffResult>, layout: &Layout) -> Result<DiffResult> {
    let stack = |frames: Vec<LazyFrame>| -> Result<DataFrame> {
        let all = concat(frames, UnionArgs::default())?;
        let mut frame = sort_by_key(all, layout).collect()?;
        frame.rechunk_mut();
        Ok(frame)
    };
    let sum = |f: fn(&DiffResult) -> usize| parts.iter().map(f).sum::<usize>();
    let (added, changed, rows) = (sum(|p| p.added), sum(|p| p.changed), sum(|p| p.rows));
    let (issues, removed): (Vec<_>, Vec<_>) = parts
        .into_iter()
        .map(|p| (p.issues.lazy(), p.removed.lazy()))
        .unzip();
    Ok(DiffResult {
        issues: stack(issues)?,
        removed: stack(removed)?,
        added,
        changed,
        rows,
    })
}

/// The columns of removed rows: every stored column, text as strings.
fn removed_schema(layout: &Layout) -> Schema {
    schema(layout)
        .iter()
        .map(|(name, dtype)| {
            let dtype = if dtype.is_categorical() {
                DataType::String
            } else {
                dtype.clone()
            };
            Field::new(name.clone(), dtype)
        })
        .collect()
}

/// Sorts by the key's values (categoricals by their text, not their codes), so output is
/// the same whatever order rows or categories arrived in.
pub fn sort_by_key(frame: LazyFrame, layout: &Layout) -> LazyFrame {
    let by: Vec<Expr> = layout
        .columns
        .iter()
        .filter(|c| c.is_key)
        .map(|c| match c.kind {
            ColumnKind::Text => col(c.name.as_str()).cast(DataType::String),
            _ => col(c.name.as_str()),
        })
        .collect();
    frame.sort_by_exprs(by, SortMultipleOptions::default().with_maintain_order(true))
}

/// Casts categorical columns to strings, for the writers downstream.
pub fn text_as_strings(frame: DataFrame) -> Result<DataFrame> {
    let casts: Vec<Expr> = frame
        .columns()
        .iter()
        .map(|c| {
            let name = c.name().as_str();
            if c.dtype().is_categorical() {
                col(name).cast(DataType::String)
            } else {
                col(name)
            }
        })
        .collect();
    let mut frame = frame.lazy().select(casts).collect()?;
    frame.rechunk_mut();
    Ok(frame)
}
