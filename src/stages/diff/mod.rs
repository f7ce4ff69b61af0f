//! Stage 3, diff: for one source and two backups in a row, the rows of the two partitions
//! are paired by key (by key fingerprint, `pairs.rs`; a polars join on the key columns when
//! fingerprints cannot settle it), and the rows of the newer one that are new or whose
//! compared columns differ are kept, with NULL = NULL and NaN = NaN (`eq_missing`); keys
//! only in the older one are removals.

pub mod file_read;
pub mod merge;
pub mod spark;

pub use self::merge::SortedRows;

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use polars::prelude::*;

use crate::config::layout::{Layout, Time};
use crate::dump::ColumnKind;
use crate::stages::diff::file_read::RowPredicate;
use crate::stages::extract::fingerprint;
use crate::values::binary;

mod key_order;
mod paired_values;
mod pairs;
use self::key_order::key_order;
use self::pairs::{pair_by_fingerprint, Pairs};

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
                (ColumnKind::Unsigned, _) => DataType::UInt64,
                (ColumnKind::Float, _) => DataType::Float64,
                (ColumnKind::Binary, _) => DataType::Binary,
                // Canonical text: equal text is equal value.
                (ColumnKind::Decimal { .. }, _) => DataType::String,
                (_, true) => DataType::from_categories(Categories::global()),
                (_, false) => DataType::String,
            };
            Field::new(column.name.as_str().into(), dtype)
        })
        .collect()
}

/// Reads one partition (Parquet or CSV, by its extension); a missing file is an empty
/// partition.
pub fn read_partition(path: Option<&Path>, layout: &Layout) -> Result<DataFrame> {
    read_partition_where(path, layout, None, Reading::Table)
}

/// Reads one partition for the diff: a Parquet partition's key text stays as strings and
/// its key fingerprint comes along, the column the diff joins on; a CSV partition is read
/// as `read_partition` reads it. With `bucket` (`(bucket, buckets)`), only the rows whose
/// bucket column (`bucket_column`) is `bucket` modulo `buckets`: a key always falls in the
/// same bucket of both backups, so bucket by bucket diffs add up to the whole diff; the
/// filter is applied while the file is read, so only one bucket is held in memory.
pub fn read_diff_input(
    path: Option<&Path>,
    layout: &Layout,
    bucket: Option<(usize, usize)>,
) -> Result<DataFrame> {
    let keep = bucket_predicate(path, layout, bucket, bucket_column)?;
    read_partition_where(path, layout, keep, Reading::DiffInput)
}

/// `read_partition`, keeping only the rows of `bucket` (`(bucket, buckets)`, split by
/// `table_bucket_column`, as `verify`, `asof` and `history` split what they read) when one
/// is given.
pub fn read_partition_in(
    path: Option<&Path>,
    layout: &Layout,
    bucket: Option<(usize, usize)>,
) -> Result<DataFrame> {
    let keep = bucket_predicate(path, layout, bucket, |layout, _| {
        table_bucket_column(layout)
    })?;
    read_partition_where(path, layout, keep, Reading::Table)
}

/// The rows of a partition in bucket `bucket` of `buckets` of the column `choose` picks;
/// None (every row) without a bucket.
fn bucket_predicate(
    path: Option<&Path>,
    layout: &Layout,
    bucket: Option<(usize, usize)>,
    choose: fn(&Layout, bool) -> Option<BucketColumn>,
) -> Result<Option<RowPredicate>> {
    let Some((bucket, buckets)) = bucket else {
        return Ok(None);
    };
    let parquet = path.is_some_and(is_parquet);
    let Some(column) = choose(layout, parquet) else {
        bail!(
            "{} cannot be read in parts: it has no integer column to split by",
            path.map_or_else(|| "a partition".to_string(), |p| p.display().to_string())
        );
    };
    Ok(Some(RowPredicate {
        expr: bucket_of(&column, buckets).eq(lit(bucket as i64)),
        columns: vec![column.name],
    }))
}

/// The integer column a unit too large for memory is split by (`read_diff_input`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketColumn {
    pub name: String,
    /// UInt64 rather than Int64.
    pub unsigned: bool,
}

/// The column a diff unit is split by: `time_value` (Epidata's tables, as before), else the
/// key fingerprint of a Parquet partition, else an integer key column of a CSV one; None when
/// there is none (a CSV partition whose key has no integer column cannot be split).
pub fn bucket_column(layout: &Layout, parquet: bool) -> Option<BucketColumn> {
    if parquet && !matches!(layout.time, Time::Typed { .. }) {
        return Some(BucketColumn {
            name: fingerprint::COLUMN.to_string(),
            unsigned: true,
        });
    }
    table_bucket_column(layout).or_else(|| {
        (layout.columns.iter())
            .find(|c| c.is_key && c.kind == ColumnKind::Unsigned)
            .map(|c| BucketColumn {
                name: c.name.clone(),
                unsigned: true,
            })
    })
}

/// The column of the table itself that `verify`, `asof` and `history` split what they read
/// by (the output files have no fingerprint): `time_value`, else a signed integer key column
/// (the SQL output's fields are bucketed as signed numbers); None when there is none, and
/// they read a source whole.
pub fn table_bucket_column(layout: &Layout) -> Option<BucketColumn> {
    if let Time::Typed { time_value, .. } = layout.time {
        let name = layout.columns[time_value].name.clone();
        return Some(BucketColumn {
            name,
            unsigned: false,
        });
    }
    (layout.columns.iter())
        .filter(|c| c.is_key && c.kind == ColumnKind::Integer)
        .map(|c| BucketColumn {
            name: c.name.clone(),
            unsigned: false,
        })
        .next()
}

/// The bucket of each row, of `buckets` split by the integer `column`: its remainder, the
/// remainders of negative numbers shifted into 0..buckets, NULL in bucket 0, as an Int64. A
/// key always falls in the same bucket of both backups, so bucket by bucket diffs (and
/// replays) add up to the whole.
pub fn bucket_of(column: &BucketColumn, buckets: usize) -> Expr {
    let name = column.name.as_str();
    let bucket = if column.unsigned {
        (col(name) % lit(buckets as u64)).cast(DataType::Int64)
    } else {
        let k = lit(buckets as i64);
        (col(name) % k.clone() + k.clone()) % k
    };
    bucket.fill_null(lit(0i64))
}

/// What a partition is read for.
#[derive(Clone, Copy, PartialEq)]
enum Reading {
    /// The stored columns, text keys as categoricals (`schema`).
    Table,
    /// As the diff wants it (`read_diff_input`).
    DiffInput,
}

fn read_partition_where(
    path: Option<&Path>,
    layout: &Layout,
    keep: Option<RowPredicate>,
    reading: Reading,
) -> Result<DataFrame> {
    let schema = Arc::new(schema(layout));
    let Some(path) = path else {
        return Ok(DataFrame::empty_with_schema(&schema));
    };
    let csv_schema = Arc::new(binary::csv_schema(&schema));
    let mut columns: Vec<String> = layout.names().map(String::from).collect();
    let frame = if is_parquet(path) && reading == Reading::DiffInput {
        columns.push(fingerprint::COLUMN.to_string());
        file_read::read_parquet(path, Some(&columns), keep.as_ref(), None)
    } else if is_parquet(path) {
        read_parquet_table(path, layout, Some(&columns), keep.as_ref())
    } else if let Some(keep) = keep {
        file_read::read_csv_where(path, csv_schema, &keep)
    } else {
        // The eager reader: for a whole CSV file it is faster than a scan.
        CsvReadOptions::default()
            .with_has_header(true)
            .with_schema(Some(csv_schema))
            .with_rechunk(true)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|reader| reader.finish())
    };
    frame
        .map(|mut frame| {
            // The diff reads its input in place, chunk by chunk (`paired_values.rs`):
            // joining a partition's row groups into one piece would copy it whole.
            if reading == Reading::Table {
                frame.rechunk_mut();
            }
            frame
        })
        .map_err(anyhow::Error::from)
        .and_then(|frame| binary::decode_hex_columns(frame, &schema))
        .with_context(|| format!("cannot read the partition {}", path.display()))
}

/// Reads a partition held in memory (the dry run's sample) into the frame `read_partition`
/// gives for the same bytes in a file.
pub fn read_partition_bytes(bytes: Vec<u8>, parquet: bool, layout: &Layout) -> Result<DataFrame> {
    let schema = Arc::new(schema(layout));
    let bytes = std::io::Cursor::new(bytes);
    // As `read_diff_input` reads a file, so that the sample's diff costs what the run's does.
    let frame = if parquet {
        ParquetReader::new(bytes).finish()
    } else {
        CsvReadOptions::default()
            .with_has_header(true)
            .with_schema(Some(Arc::new(binary::csv_schema(&schema))))
            .with_rechunk(true)
            .into_reader_with_file_handle(bytes)
            .finish()
    };
    let mut frame = anyhow::Context::context(frame, "cannot read a partition made in memory")?;
    frame.rechunk_mut();
    binary::decode_hex_columns(frame, &schema)
}

pub fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "parquet")
}

/// Reads `columns` (None: all) of a Parquet file of `migrate`'s (a partition, issues or
/// removals), the rows of `keep`, with its text key columns as categoricals of the one global mapping, as
/// the diff joins them (cast row group by row group, so the file's text is never held whole).
pub fn read_parquet_table(
    path: &Path,
    layout: &Layout,
    columns: Option<&[String]>,
    keep: Option<&RowPredicate>,
) -> PolarsResult<DataFrame> {
    let keys = keys_as_categorical(layout);
    let as_table = |piece: DataFrame| piece.lazy().with_columns(keys.clone()).collect();
    file_read::read_parquet(path, columns, keep, Some(&as_table))
}

/// The text key columns cast to categoricals of the one global mapping.
fn keys_as_categorical(layout: &Layout) -> Vec<Expr> {
    (layout.columns.iter())
        .filter(|c| c.is_key && c.kind.is_text())
        .map(|c| col(c.name.as_str()).cast(DataType::from_categories(Categories::global())))
        .collect()
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
            (layout.columns.iter())
                .filter(|c| c.is_key)
                .map(|c| match c.kind {
                    // Binary keys stay bytes: they need not be UTF-8.
                    ColumnKind::Binary => col(c.name.as_str()),
                    _ => col(c.name.as_str()).cast(DataType::String),
                })
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
                AnyValue::Binary(b) => format!("0x{}", binary::to_hex(b)),
                AnyValue::BinaryOwned(b) => format!("0x{}", binary::to_hex(b)),
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

/// Runs `work` with every polars operation it makes on the calling thread, none handed to
/// polars' thread pool. For small frames the hand-offs to the pool and back cost more than
/// the work (on a busy machine, milliseconds of waiting per operation), and the units that
/// run side by side keep the cores busy anyway.
pub fn on_this_thread<R>(work: impl FnOnce() -> R) -> R {
    use polars_async::executor::ALLOW_RAYON_THREADS;
    let before = ALLOW_RAYON_THREADS.replace(false);
    let restore = RestorePool(before);
    let result = work();
    drop(restore);
    result
}

/// Gives the thread its polars pool back, also when the work panics.
struct RestorePool(bool);

impl Drop for RestorePool {
    fn drop(&mut self) {
        polars_async::executor::ALLOW_RAYON_THREADS.set(self.0);
    }
}

/// Diffs the partition `new` against `old` (None: the first backup, every row is new).
///
/// Rows only in `new` are added, rows on both sides whose compared columns differ are
/// changed, rows only in `old` are removals. Partitions with key fingerprints are paired on
/// them; otherwise (CSV partitions, or fingerprints that cannot settle it) one full outer
/// join on the key columns does the whole diff, validating that the key is unique on both
/// sides as it builds its hash table, which costs far less than a separate group-by; only
/// when that fails is the slow check run, to name the duplicated key.
pub fn diff(old: Option<DataFrame>, new: DataFrame, layout: &Layout) -> Result<DiffResult> {
    let fingerprinted = |f: &DataFrame| f.schema().contains(fingerprint::COLUMN);
    if fingerprinted(&new) && old.as_ref().is_none_or(fingerprinted) {
        if let Some(result) = diff_on_fingerprints(old.as_ref(), &new, layout)? {
            return Ok(result);
        }
    }
    // No fingerprints (CSV partitions), or two keys share one: join on the key columns.
    let on_keys = |frame: DataFrame| -> Result<DataFrame> {
        let frame = match fingerprinted(&frame) {
            true => frame.drop(fingerprint::COLUMN)?,
            false => frame,
        };
        Ok(frame
            .lazy()
            .with_columns(keys_as_categorical(layout))
            .collect()?)
    };
    diff_on_keys(old.map(on_keys).transpose()?, on_keys(new)?, layout)
}

/// The diff on the key fingerprints: rows are paired by one integer instead of joined on
/// the key's columns (`pairs.rs`). None when two distinct keys share a fingerprint (it
/// occurs twice on one side, or it pairs rows whose keys differ), or when a key is
/// duplicated: the join on the key columns then gives the answer, or names the duplicate.
fn diff_on_fingerprints(
    old: Option<&DataFrame>,
    new: &DataFrame,
    layout: &Layout,
) -> Result<Option<DiffResult>> {
    let rows = new.height();
    let names: Vec<&str> = layout.names().collect();
    let Some(old) = old else {
        let stored = new.select(names)?;
        let mut issues = match key_order(&stored, layout) {
            Some(order) if order.unique => stored.take(&order.rows)?,
            // A duplicated key: the join names it.
            Some(_) => return Ok(None),
            None => {
                let distinct = new.column(fingerprint::COLUMN)?.n_unique()?;
                if distinct != rows {
                    return Ok(None);
                }
                sort_by_key(stored.lazy(), layout).collect()?
            }
        };
        issues.with_column(Column::new_scalar(ADDED.into(), true.into(), rows))?;
        return Ok(Some(DiffResult {
            added: issues.height(),
            changed: 0,
            issues: text_as_strings(issues)?,
            removed: DataFrame::empty_with_schema(&removed_schema(layout)),
            rows,
        }));
    };
    let Some(pairs) = pair_by_fingerprint(&fingerprints(old)?, &fingerprints(new)?) else {
        return Ok(None);
    };
    let keys = layout.key_names();
    let compared = layout.compared_names();
    if differs(new, old, &keys, &pairs)?.contains(&true) {
        return Ok(None);
    }
    let changed = differs(new, old, &compared, &pairs)?;
    let (changed_new, changed_old): (Vec<IdxSize>, Vec<IdxSize>) = (changed.iter())
        .zip(pairs.matched_new.iter().zip(&pairs.matched_old))
        .filter(|(&changed, _)| changed)
        .map(|(_, (&new_row, &old_row))| (new_row, old_row))
        .unzip();
    // Issue rows: the added ones, then the changed ones (sorted by key below).
    let added = pairs.added.len();
    let issue_rows = [pairs.added.as_slice(), &changed_new].concat();
    let mut issues = gather(new, &names, &issue_rows)?;
    let is_added = BooleanChunked::from_iter_values(
        ADDED.into(),
        (0..issue_rows.len()).map(|row| row < added),
    );
    issues.with_column(is_added.into_column())?;
    if compared.contains(&VALUE) {
        let earlier_rows = IdxCa::from_iter_options(
            PREVIOUS_VALUE.into(),
            std::iter::repeat_n(None, added).chain(changed_old.iter().map(|&row| Some(row))),
        );
        let previous = old.column(VALUE)?.take(&earlier_rows)?;
        issues.with_column(previous.with_name(PREVIOUS_VALUE.into()))?;
    }
    let issues = sorted_by_key(issues, layout)?;
    let removed = sorted_by_key(gather(old, &names, &pairs.removed)?, layout)?;
    Ok(Some(DiffResult {
        changed: changed_new.len(),
        added,
        issues: text_as_strings(issues)?,
        removed: text_as_strings(removed)?,
        rows,
    }))
}

/// A partition's key fingerprints: the column's own values when they are in one piece
/// (partitions are rechunked as they are read), a copy otherwise.
fn fingerprints(frame: &DataFrame) -> Result<Cow<'_, [u64]>> {
    let column = frame.column(fingerprint::COLUMN)?.u64()?;
    if column.null_count() > 0 {
        bail!("a partition has a row without its key fingerprint: extract it again");
    }
    Ok(match column.cont_slice() {
        Ok(values) => Cow::Borrowed(values),
        Err(_) => Cow::Owned(column.into_no_null_iter().collect()),
    })
}

/// For each pair of rows, whether they differ in any of `columns`, with NULL = NULL and
/// NaN = NaN as in `any_differs`: read in place (`paired_values.rs`), or for a column of
/// another type gathered and compared by polars.
fn differs(new: &DataFrame, old: &DataFrame, columns: &[&str], pairs: &Pairs) -> Result<Vec<bool>> {
    let mut differs = vec![false; pairs.matched_new.len()];
    for name in columns {
        let (newer, older) = (new.column(name)?, old.column(name)?);
        let (new_rows, old_rows) = (&pairs.matched_new, &pairs.matched_old);
        if paired_values::mark_differences(newer, older, new_rows, old_rows, &mut differs) {
            continue;
        }
        let newer = newer.take(&IdxCa::from_slice(PlSmallStr::EMPTY, new_rows))?;
        let older = older.take(&IdxCa::from_slice(PlSmallStr::EMPTY, old_rows))?;
        let same =
            (newer.as_materialized_series()).equal_missing(older.as_materialized_series())?;
        for (differs, same) in differs.iter_mut().zip(same.iter()) {
            *differs |= same != Some(true);
        }
    }
    Ok(differs)
}

/// `columns` of `frame` at `rows`; column by column on this thread, as the units running
/// side by side keep the cores busy.
fn gather(frame: &DataFrame, columns: &[&str], rows: &[IdxSize]) -> Result<DataFrame> {
    let rows = IdxCa::from_slice(PlSmallStr::EMPTY, rows);
    let gathered = (columns.iter())
        .map(|name| Ok(frame.column(name)?.take(&rows)?))
        .collect::<Result<Vec<Column>>>()?;
    Ok(DataFrame::new(rows.len(), gathered)?)
}

/// The diff joined on the key columns (text keys as categoricals).
fn diff_on_keys(old: Option<DataFrame>, new: DataFrame, layout: &Layout) -> Result<DiffResult> {
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

/// Sorts by the key's values (categoricals by their text, not their codes; decimals by
/// their value as a double, then by their text, which decides between values a double
/// cannot tell apart), so output is the same whatever order rows or categories arrived in.
pub fn sort_by_key(frame: LazyFrame, layout: &Layout) -> LazyFrame {
    let by: Vec<Expr> = (layout.columns.iter())
        .filter(|c| c.is_key)
        .flat_map(|c| {
            let column = col(c.name.as_str());
            match c.kind {
                kind if kind.is_text() => vec![column.cast(DataType::String)],
                ColumnKind::Decimal { .. } => vec![column.clone().cast(DataType::Float64), column],
                _ => vec![column],
            }
        })
        .collect();
    frame.sort_by_exprs(by, SortMultipleOptions::default().with_maintain_order(true))
}

/// `frame` in the order `sort_by_key` gives: ranked on integers where the key allows
/// (`key_order.rs`), else by polars.
fn sorted_by_key(frame: DataFrame, layout: &Layout) -> Result<DataFrame> {
    match key_order(&frame, layout) {
        Some(order) => Ok(frame.take(&order.rows)?),
        None => Ok(sort_by_key(frame.lazy(), layout).collect()?),
    }
}

/// Casts categorical columns to strings, for the writers downstream.
pub fn text_as_strings(mut frame: DataFrame) -> Result<DataFrame> {
    if !frame.columns().iter().any(|c| c.dtype().is_categorical()) {
        // Nothing to cast (a Parquet partition's text is read as strings): no query to plan.
        frame.rechunk_mut();
        return Ok(frame);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::layout::test_layout;

    fn layout() -> Layout {
        test_layout(
            &[
                ("source", ColumnKind::Text, true),
                ("time_type", ColumnKind::Text, true),
                ("time_value", ColumnKind::Integer, true),
                ("geo_value", ColumnKind::Text, true),
                ("value", ColumnKind::Float, false),
            ],
            Time::Typed {
                time_type: 1,
                time_value: 2,
            },
        )
    }

    /// A partition as extraction writes it, with fingerprints chosen by the test
    /// (`geo`, `value`, `fingerprint`), so that distinct keys can be made to collide.
    fn partition(rows: &[(&str, Option<f64>, u64)]) -> DataFrame {
        let n = rows.len();
        df!(
            "source" => vec!["s"; n],
            "time_type" => vec!["day"; n],
            "time_value" => vec![20200601i64; n],
            "geo_value" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "value" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            fingerprint::COLUMN => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    fn without_fingerprints(frame: &DataFrame) -> DataFrame {
        frame.drop(fingerprint::COLUMN).unwrap()
    }

    fn geos(frame: &DataFrame) -> Vec<String> {
        let column = frame.column("geo_value").unwrap().str().unwrap().clone();
        column.iter().map(|g| g.unwrap().to_string()).collect()
    }

    fn assert_same(a: &DiffResult, b: &DiffResult) {
        assert!(
            a.issues.equals_missing(&b.issues),
            "{}\n{}",
            a.issues,
            b.issues
        );
        assert!(a.removed.equals_missing(&b.removed));
        assert_eq!((a.added, a.changed, a.rows), (b.added, b.changed, b.rows));
    }

    #[test]
    fn fingerprint_join_matches_the_key_join() {
        let old = partition(&[
            ("a", Some(1.0), 1),
            ("b", None, 2),
            ("c", Some(3.0), 3),
            ("e", Some(f64::NAN), 5),
            ("f", Some(2.0), 6),
            ("g", Some(0.0), 7),
        ]);
        let new = partition(&[
            ("g", Some(-0.0), 7),
            ("f", None, 6),
            ("e", Some(f64::NAN), 5),
            ("a", Some(1.5), 1),
            ("b", None, 2),
            ("d", Some(f64::NAN), 4),
        ]);
        let fast = diff_on_fingerprints(Some(&old), &new, &layout()).unwrap();
        let fast = fast.expect("no collision: the fingerprints answer");
        let slow = diff(
            Some(without_fingerprints(&old)),
            without_fingerprints(&new),
            &layout(),
        )
        .unwrap();
        assert_same(&fast, &slow);
        // NULL = NULL, NaN = NaN and 0.0 = -0.0; a value that became NULL is a revision.
        assert_eq!(geos(&fast.issues), ["a", "d", "f"]);
        assert_eq!((fast.added, fast.changed), (1, 2));
        assert_eq!(geos(&fast.removed), ["c"]);
    }

    #[test]
    fn a_new_key_and_a_removed_key_sharing_a_fingerprint_are_not_paired() {
        // `b` is new and `c` removed; both have fingerprint 2.
        let old = partition(&[("a", Some(1.0), 1), ("c", Some(3.0), 2)]);
        let new = partition(&[("a", Some(1.5), 1), ("b", Some(3.0), 2)]);
        assert!(diff_on_fingerprints(Some(&old), &new, &layout())
            .unwrap()
            .is_none());
        let result = diff(Some(old), new, &layout()).unwrap();
        assert_eq!(geos(&result.issues), ["a", "b"]);
        assert_eq!((result.added, result.changed), (1, 1));
        assert_eq!(geos(&result.removed), ["c"]);
    }

    #[test]
    fn two_keys_of_one_backup_sharing_a_fingerprint_are_both_kept() {
        let old = partition(&[("a", Some(1.0), 1)]);
        let new = partition(&[("a", Some(1.0), 1), ("b", Some(2.0), 1)]);
        let first = diff(None, new.clone(), &layout()).unwrap();
        assert_eq!(geos(&first.issues), ["a", "b"]);
        let result = diff(Some(old), new, &layout()).unwrap();
        assert_eq!(geos(&result.issues), ["b"]);
        assert_eq!((result.added, result.changed), (1, 0));
    }

    #[test]
    fn a_duplicated_key_is_still_named() {
        let old = partition(&[("a", Some(1.0), 1)]);
        let new = partition(&[("a", Some(1.0), 1), ("a", Some(2.0), 1)]);
        for old in [None, Some(old)] {
            let error = diff(old, new.clone(), &layout()).err().expect("an error");
            assert!(
                format!("{error:#}").contains("occurs more than once"),
                "{error:#}"
            );
        }
    }
}
