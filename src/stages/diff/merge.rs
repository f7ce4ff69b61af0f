//! A unit's output rows in key order without holding them all: a unit split into buckets
//! writes each bucket's sorted rows to a file of its own (`write_part`), and `SortedRows`
//! reads them back merged, a batch at a time, for the writers of the emit stage. The rows
//! come out in the order one sort of the whole unit gives (`sort_by_key`), so a split unit's
//! files are the same bytes as an unsplit one's.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use polars::prelude::*;

use crate::stages::diff::file_read::RowGroups;

/// Rows sorted by key: a frame in memory, or sorted parts in files merged as they are read.
pub enum SortedRows {
    Frame(DataFrame),
    Parts(Parts),
}

/// Files of rows, each sorted by `key`, with no key in two of them.
pub struct Parts {
    pub files: Vec<PathBuf>,
    /// The key columns, in the order the rows are sorted by.
    pub key: Vec<String>,
    pub rows: usize,
    /// Rows per batch handed on.
    pub batch_rows: usize,
}

impl SortedRows {
    pub fn height(&self) -> usize {
        match self {
            SortedRows::Frame(frame) => frame.height(),
            SortedRows::Parts(parts) => parts.rows,
        }
    }

    /// The rows in key order, a frame at a time (one frame for rows in memory).
    pub fn chunks(&self) -> Result<Box<dyn Iterator<Item = Result<DataFrame>> + '_>> {
        Ok(match self {
            SortedRows::Frame(frame) => Box::new(std::iter::once(Ok(frame.clone()))),
            SortedRows::Parts(parts) => Box::new(Merge::open(parts)?),
        })
    }
}

/// Writes a part: `frame` (sorted by key) in row groups of about `group_rows` rows, so that
/// reading it back holds one group at a time.
pub fn write_part(frame: &mut DataFrame, path: &Path, group_rows: usize) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    ParquetWriter::new(std::io::BufWriter::new(file))
        .with_compression(ParquetCompression::Lz4Raw)
        .with_statistics(StatisticsOptions::empty())
        .with_row_group_size(Some(group_rows.max(1)))
        .set_parallel(false)
        .finish(frame)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// One column of the key, typed, for comparing rows.
enum KeyColumn {
    Integer(Int64Chunked),
    Float(Float64Chunked),
    Text(StringChunked),
    Binary(BinaryChunked),
    Boolean(BooleanChunked),
}

impl KeyColumn {
    fn of(frame: &DataFrame, name: &str) -> Result<KeyColumn> {
        let series = frame.column(name)?.as_materialized_series();
        Ok(match series.dtype() {
            DataType::Int64 => KeyColumn::Integer(series.i64()?.clone()),
            DataType::Float64 => KeyColumn::Float(series.f64()?.clone()),
            DataType::String => KeyColumn::Text(series.str()?.clone()),
            DataType::Binary => KeyColumn::Binary(series.binary()?.clone()),
            DataType::Boolean => KeyColumn::Boolean(series.bool()?.clone()),
            other => anyhow::bail!("cannot merge on the key column {name} of type {other}"),
        })
    }

    /// The order `sort_by_key` gives: NULL first, then ascending; NaN after every number,
    /// and -0.0 equal to 0.0, as polars' total order of floats has them.
    fn compare(&self, a: usize, other: &KeyColumn, b: usize) -> Ordering {
        fn by<T>(a: Option<T>, b: Option<T>, order: impl Fn(T, T) -> Ordering) -> Ordering {
            match (a, b) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(a), Some(b)) => order(a, b),
            }
        }
        match (self, other) {
            (KeyColumn::Integer(x), KeyColumn::Integer(y)) => {
                by(x.get(a), y.get(b), |a, b| a.cmp(&b))
            }
            (KeyColumn::Float(x), KeyColumn::Float(y)) => {
                by(x.get(a), y.get(b), |a: f64, b: f64| {
                    a.partial_cmp(&b)
                        .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
                })
            }
            (KeyColumn::Text(x), KeyColumn::Text(y)) => by(x.get(a), y.get(b), |a, b| a.cmp(b)),
            (KeyColumn::Binary(x), KeyColumn::Binary(y)) => by(x.get(a), y.get(b), |a, b| a.cmp(b)),
            (KeyColumn::Boolean(x), KeyColumn::Boolean(y)) => {
                by(x.get(a), y.get(b), |a, b| a.cmp(&b))
            }
            _ => unreachable!("parts of one unit have the same columns"),
        }
    }
}

/// One part being read: its current row group and the next row to hand on.
struct Cursor {
    groups: RowGroups,
    frame: DataFrame,
    key: Vec<KeyColumn>,
    /// The next row of `frame`, and the first not yet handed on in a batch.
    row: usize,
    start: usize,
}

impl Cursor {
    /// The next non-empty row group; false at the end of the part.
    fn advance(&mut self, key: &[String]) -> Result<bool> {
        for group in self.groups.by_ref() {
            let frame = group?;
            if frame.height() == 0 {
                continue;
            }
            self.key = (key.iter())
                .map(|name| KeyColumn::of(&frame, name))
                .collect::<Result<_>>()?;
            self.frame = frame;
            self.row = 0;
            self.start = 0;
            return Ok(true);
        }
        Ok(false)
    }

    fn compare(&self, other: &Cursor) -> Ordering {
        for (mine, theirs) in self.key.iter().zip(&other.key) {
            match mine.compare(self.row, theirs, other.row) {
                Ordering::Equal => {}
                order => return order,
            }
        }
        Ordering::Equal
    }
}

/// The k-way merge of the parts: a heap of cursors, smallest current row first (ties go to
/// the earlier part), handing on a batch whenever it is full or a cursor's row group ends.
struct Merge<'a> {
    parts: &'a Parts,
    cursors: Vec<Cursor>,
    /// Indices into `cursors`, a binary min-heap.
    heap: Vec<usize>,
    /// The rows of the batch being gathered: (cursor, row).
    picked: Vec<(u32, u32)>,
    empty: Option<DataFrame>,
}

impl<'a> Merge<'a> {
    fn open(parts: &'a Parts) -> Result<Merge<'a>> {
        let mut cursors = Vec::new();
        let mut empty = None;
        for path in &parts.files {
            let groups = RowGroups::open(path)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut cursor = Cursor {
                groups,
                frame: DataFrame::empty(),
                key: Vec::new(),
                row: 0,
                start: 0,
            };
            if cursor.advance(&parts.key)? {
                cursors.push(cursor);
            } else if empty.is_none() {
                // The columns, for a unit without a row.
                let frame = crate::stages::diff::file_read::read_parquet(path, None, None, None)?;
                empty = Some(frame.clear());
            }
        }
        if !cursors.is_empty() {
            empty = None;
        }
        let mut merge = Merge {
            parts,
            heap: Vec::with_capacity(cursors.len()),
            cursors,
            picked: Vec::new(),
            empty,
        };
        for i in 0..merge.cursors.len() {
            merge.push(i);
        }
        Ok(merge)
    }

    fn less(&self, a: usize, b: usize) -> bool {
        match self.cursors[a].compare(&self.cursors[b]) {
            Ordering::Less => true,
            Ordering::Equal => a < b,
            Ordering::Greater => false,
        }
    }

    fn push(&mut self, cursor: usize) {
        self.heap.push(cursor);
        let mut at = self.heap.len() - 1;
        while at > 0 {
            let parent = (at - 1) / 2;
            if !self.less(self.heap[at], self.heap[parent]) {
                break;
            }
            self.heap.swap(at, parent);
            at = parent;
        }
    }

    fn sift_down(&mut self) {
        let mut at = 0;
        loop {
            let (left, right) = (2 * at + 1, 2 * at + 2);
            let mut smallest = at;
            if left < self.heap.len() && self.less(self.heap[left], self.heap[smallest]) {
                smallest = left;
            }
            if right < self.heap.len() && self.less(self.heap[right], self.heap[smallest]) {
                smallest = right;
            }
            if smallest == at {
                return;
            }
            self.heap.swap(at, smallest);
            at = smallest;
        }
    }

    /// Gathers the next batch; None at the end.
    fn batch(&mut self) -> Result<Option<DataFrame>> {
        self.picked.clear();
        let mut ended = None;
        while let Some(&top) = self.heap.first() {
            let cursor = &mut self.cursors[top];
            self.picked.push((top as u32, cursor.row as u32));
            cursor.row += 1;
            if cursor.row == cursor.frame.height() {
                // Its rows are still referenced by the batch: hand the batch on first.
                let last = self.heap.pop().expect("not empty");
                if !self.heap.is_empty() {
                    self.heap[0] = last;
                    self.sift_down();
                }
                ended = Some(top);
                break;
            }
            self.sift_down();
            if self.picked.len() >= self.parts.batch_rows {
                break;
            }
        }
        if self.picked.is_empty() {
            return Ok(None);
        }
        let batch = self.gather()?;
        if let Some(cursor) = ended {
            if self.cursors[cursor].advance(&self.parts.key)? {
                self.push(cursor);
            } else {
                // Its last group is no longer needed.
                self.cursors[cursor].frame = DataFrame::empty();
                self.cursors[cursor].key.clear();
            }
        }
        Ok(Some(batch))
    }

    /// The picked rows as one frame, in the order they were picked.
    fn gather(&mut self) -> Result<DataFrame> {
        // Each cursor's picked rows are consecutive: stack the slices, then reorder.
        let mut offsets = vec![0usize; self.cursors.len()];
        let mut stacked: Option<DataFrame> = None;
        for (i, cursor) in self.cursors.iter_mut().enumerate() {
            if cursor.row == cursor.start {
                continue;
            }
            let slice = cursor
                .frame
                .slice(cursor.start as i64, cursor.row - cursor.start);
            offsets[i] = stacked.as_ref().map_or(0, DataFrame::height);
            match &mut stacked {
                None => stacked = Some(slice),
                Some(frame) => {
                    frame.vstack_mut_owned(slice)?;
                }
            }
            cursor.start = cursor.row;
        }
        let stacked = stacked.expect("rows were picked");
        let mut next = offsets.clone();
        let order: Vec<IdxSize> = (self.picked.iter())
            .map(|&(cursor, _)| {
                let at = next[cursor as usize];
                next[cursor as usize] += 1;
                at as IdxSize
            })
            .collect();
        let order = IdxCa::from_vec(PlSmallStr::EMPTY, order);
        let mut batch = stacked.take(&order)?;
        batch.rechunk_mut();
        Ok(batch)
    }
}

impl Iterator for Merge<'_> {
    type Item = Result<DataFrame>;

    fn next(&mut self) -> Option<Result<DataFrame>> {
        match self.batch() {
            Ok(Some(batch)) => Some(Ok(batch)),
            Ok(None) => self.empty.take().map(Ok),
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::layout::{Layout, StoredColumn};
    use crate::dump::ColumnKind;
    use crate::stages::diff::sort_by_key;

    fn layout() -> Layout {
        let column = |name: &str, kind, is_key| StoredColumn {
            name: name.into(),
            kind,
            is_key,
            is_compared: !is_key,
        };
        Layout {
            columns: vec![
                column("geo", ColumnKind::Text, true),
                column("time_value", ColumnKind::Integer, true),
                column("weight", ColumnKind::Float, true),
                column("n", ColumnKind::Integer, true),
                column("value", ColumnKind::Float, false),
            ],
            table_index: vec![1, 2, 3, 4, 5],
            table_width: 6,
            partition: 0,
            time: crate::config::layout::Time::Typed {
                time_type: 0,
                time_value: 1,
            },
        }
    }

    /// Rows with every kind of key value: NULLs, NaN, shared prefixes, negative numbers;
    /// `n` makes each key unique.
    fn rows(n: usize) -> DataFrame {
        let geo: Vec<Option<String>> = (0..n)
            .map(|i| (i % 13 != 0).then(|| format!("g{}", i % 7)))
            .collect();
        let time: Vec<Option<i64>> = (0..n)
            .map(|i| (i % 11 != 0).then_some(i as i64 * 7919 % 97 - 40))
            .collect();
        let weight: Vec<Option<f64>> = (0..n)
            .map(|i| match i % 5 {
                0 => None,
                1 => Some(f64::NAN),
                _ => Some(i as f64 / 3.0 - 50.0),
            })
            .collect();
        let value: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let unique: Vec<i64> = (0..n as i64).rev().collect();
        df!("geo" => geo, "time_value" => time, "weight" => weight, "n" => unique, "value" => value)
            .unwrap()
    }

    #[test]
    fn merged_parts_come_out_as_one_sort_of_all_rows() {
        let layout = layout();
        let all = rows(5000);
        let sorted = |frame: DataFrame| sort_by_key(frame.lazy(), &layout).collect().unwrap();
        let expected = sorted(all.clone());
        let dir = tempfile::tempdir().unwrap();
        // Split by row number into parts of different sizes, each sorted.
        let buckets = 7;
        let mut files = Vec::new();
        for bucket in 0..buckets {
            let rows: Vec<IdxSize> = (0..all.height() as IdxSize)
                .filter(|i| (*i as usize * 31 / 5) % buckets == bucket)
                .collect();
            let mut part = sorted(all.take(&IdxCa::from_vec("".into(), rows)).unwrap());
            let path = dir.path().join(format!("{bucket}.parquet"));
            write_part(&mut part, &path, 50 + bucket * 13).unwrap();
            files.push(path);
        }
        // And one empty part.
        let empty_path = dir.path().join("empty.parquet");
        write_part(&mut all.clear(), &empty_path, 10).unwrap();
        files.push(empty_path);
        for batch_rows in [1, 64, 100_000] {
            let parts = SortedRows::Parts(Parts {
                files: files.clone(),
                key: ["geo", "time_value", "weight", "n"]
                    .map(String::from)
                    .to_vec(),
                rows: all.height(),
                batch_rows,
            });
            let mut merged: Option<DataFrame> = None;
            for chunk in parts.chunks().unwrap() {
                let chunk = chunk.unwrap();
                assert!(chunk.height() <= batch_rows);
                match &mut merged {
                    None => merged = Some(chunk),
                    Some(frame) => {
                        frame.vstack_mut_owned(chunk).unwrap();
                    }
                }
            }
            let merged = merged.unwrap();
            assert!(merged.equals_missing(&expected), "batches of {batch_rows}");
        }
    }

    #[test]
    fn parts_without_rows_give_one_empty_frame_with_the_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.parquet");
        write_part(&mut rows(10).clear(), &path, 10).unwrap();
        let parts = SortedRows::Parts(Parts {
            files: vec![path],
            key: vec!["geo".into()],
            rows: 0,
            batch_rows: 10,
        });
        let chunks: Vec<DataFrame> = parts.chunks().unwrap().map(Result::unwrap).collect();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].height(), 0);
        assert_eq!(chunks[0].width(), 5);
    }
}
