//! Whether paired rows differ, read where the partitions hold their values. Gathering both
//! sides' column for the pairs (polars' `take`), comparing the two and OR-ing the result
//! into a mask, column by column, was 15% of the diff stage (measured); and those gathers
//! needed every column in one piece, which cost a copy of each partition as it was read
//! (another 12%). Here each value is found in its chunk (a partition's row group) by its
//! row number and compared in place.

use polars::prelude::{Column, DataType, IdxSize};
use polars_arrow::array::{Array, BinaryViewArrayGeneric, PrimitiveArray, View, ViewType};
use polars_arrow::types::NativeType;

/// A column's chunks, found by row number.
struct Chunks<'a, A> {
    arrays: Vec<&'a A>,
    /// Where each chunk starts.
    starts: Vec<usize>,
    /// log2 of the length of every chunk but the last, when they all have that length, a
    /// power of two (the partitions' row groups), and the last no more: then a shift finds
    /// a row's chunk, where a division would cost more than the comparison.
    shift: Option<u32>,
}

impl<'a, A: Array> Chunks<'a, A> {
    /// None when a chunk is not an `A`.
    fn of(column: &'a Column) -> Option<Chunks<'a, A>> {
        let series = column.as_materialized_series();
        let arrays: Vec<&A> = (series.chunks().iter())
            .map(|chunk| chunk.as_any().downcast_ref::<A>())
            .collect::<Option<_>>()?;
        let mut starts = Vec::with_capacity(arrays.len());
        let mut start = 0;
        for array in &arrays {
            starts.push(start);
            start += array.len();
        }
        let first = arrays.first().map_or(0, |a| a.len());
        let shift = (first.is_power_of_two()
            && arrays.split_last().is_some_and(|(last, rest)| {
                rest.iter().all(|a| a.len() == first) && last.len() <= first
            }))
        .then(|| first.trailing_zeros());
        Some(Chunks {
            arrays,
            starts,
            shift,
        })
    }

    /// The chunk that holds `row`, and the row's place in it.
    #[inline]
    fn locate(&self, row: IdxSize) -> (&'a A, usize) {
        let row = row as usize;
        let chunk = match self.shift {
            Some(shift) => row >> shift,
            None => self.starts.partition_point(|&start| start <= row) - 1,
        };
        (self.arrays[chunk], row - self.starts[chunk])
    }
}

/// Sets `differs[k]` where the values of `new` at `new_rows[k]` and `old` at `old_rows[k]`
/// differ, with NULL = NULL, NaN = NaN and 0.0 = -0.0, as polars' `equal_missing` compares;
/// pairs already marked are not read. False when the column's type is not one read here
/// (the caller then compares it with polars), or the two sides' types differ.
pub(super) fn mark_differences(
    new: &Column,
    old: &Column,
    new_rows: &[IdxSize],
    old_rows: &[IdxSize],
    differs: &mut [bool],
) -> bool {
    if new.dtype() != old.dtype() {
        return false;
    }
    let pairs = Pairs {
        new_rows,
        old_rows,
        differs,
    };
    match new.dtype() {
        DataType::Int64 => pairs.mark_primitive::<i64>(new, old, |a, b| a == b),
        DataType::UInt64 => pairs.mark_primitive::<u64>(new, old, |a, b| a == b),
        DataType::Float64 => {
            pairs.mark_primitive::<f64>(new, old, |a, b| a == b || (a.is_nan() && b.is_nan()))
        }
        DataType::String => pairs.mark::<BinaryViewArrayGeneric<str>>(new, old, same_view),
        DataType::Binary => pairs.mark::<BinaryViewArrayGeneric<[u8]>>(new, old, same_view),
        _ => false,
    }
}

/// Text or bytes. A view holds its value's length and first four bytes, and a value of at
/// most 12 bytes whole, padded with zeros (polars' own comparison of views relies on that
/// too): only longer values with equal beginnings need their bytes read.
#[inline]
fn same_view<T: ViewType + ?Sized>(
    a: &BinaryViewArrayGeneric<T>,
    i: usize,
    b: &BinaryViewArrayGeneric<T>,
    j: usize,
) -> bool {
    let (a_view, b_view) = (a.views()[i].as_u128(), b.views()[j].as_u128());
    if a_view as u64 != b_view as u64 {
        false
    } else if a_view as u32 <= View::MAX_INLINE_SIZE {
        a_view == b_view
    } else {
        // SAFETY: `i` and `j` were checked against the views just read.
        unsafe { a.value_unchecked(i) == b.value_unchecked(j) }
    }
}

struct Pairs<'a> {
    new_rows: &'a [IdxSize],
    old_rows: &'a [IdxSize],
    differs: &'a mut [bool],
}

impl Pairs<'_> {
    fn mark_primitive<T: NativeType>(
        self,
        new: &Column,
        old: &Column,
        same: impl Fn(T, T) -> bool,
    ) -> bool {
        self.mark::<PrimitiveArray<T>>(new, old, |a, i, b, j| same(a.value(i), b.value(j)))
    }

    /// `same(a, i, b, j)` compares two valid values; NULLs are compared here.
    fn mark<A: Array>(
        self,
        new: &Column,
        old: &Column,
        same: impl Fn(&A, usize, &A, usize) -> bool,
    ) -> bool {
        let (Some(new), Some(old)) = (Chunks::<A>::of(new), Chunks::<A>::of(old)) else {
            return false;
        };
        let pairs = self.new_rows.iter().zip(self.old_rows);
        // Most columns hold no NULL (every key column does not): then no validity is read.
        let no_nulls = (new.arrays.iter().chain(&old.arrays)).all(|a| a.validity().is_none());
        for (differs, (&new_row, &old_row)) in self.differs.iter_mut().zip(pairs) {
            if *differs {
                continue;
            }
            let (a, i) = new.locate(new_row);
            let (b, j) = old.locate(old_row);
            if no_nulls {
                *differs = !same(a, i, b, j);
                continue;
            }
            *differs = match (a.is_valid(i), b.is_valid(j)) {
                (true, true) => !same(a, i, b, j),
                (valid_a, valid_b) => valid_a != valid_b,
            };
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::*;

    /// `values` as a column of `chunk`-row chunks (the last shorter), as a partition read
    /// row group by row group is.
    fn chunked(values: Series, chunk: usize) -> Column {
        let mut pieces = (0..values.len())
            .step_by(chunk)
            .map(|start| values.slice(start as i64, chunk));
        let mut joined = pieces.next().unwrap_or(values.clone());
        for piece in pieces {
            joined.append(&piece).unwrap();
        }
        joined.into_column()
    }

    /// Pairs every row of `new` with rows of `old` in a scrambled order, and checks the marks
    /// against polars' gather and `equal_missing`, with the column in one piece and in
    /// chunks of several sizes (uniform, and not).
    fn agrees_with_polars(new: Series, old: Series) {
        let n = new.len() as IdxSize;
        let new_rows: Vec<IdxSize> = (0..n).collect();
        let old_rows: Vec<IdxSize> = (0..n).map(|i| (i * 7 + 3) % n).collect();
        let take = |s: &Series, rows: &[IdxSize]| {
            s.take(&IdxCa::from_slice(PlSmallStr::EMPTY, rows)).unwrap()
        };
        let expected: Vec<bool> = take(&new, &new_rows)
            .equal_missing(&take(&old, &old_rows))
            .unwrap()
            .iter()
            .map(|same| !same.unwrap())
            .collect();
        assert!(expected.iter().any(|&d| d) && expected.iter().any(|&d| !d));
        let mut uneven = chunked(new.slice(0, 5), 5).as_materialized_series().clone();
        uneven
            .append(
                &chunked(new.slice(5, new.len()), 3)
                    .as_materialized_series()
                    .clone(),
            )
            .unwrap();
        let shapes = [
            (new.clone().into_column(), old.clone().into_column()),
            (chunked(new.clone(), 4), chunked(old.clone(), 3)),
            (uneven.into_column(), chunked(old.clone(), 1)),
        ];
        for (new, old) in shapes {
            let mut differs = vec![false; new_rows.len()];
            assert!(mark_differences(
                &new,
                &old,
                &new_rows,
                &old_rows,
                &mut differs
            ));
            assert_eq!(differs, expected, "{:?} chunks", new.n_chunks());
        }
    }

    #[test]
    fn floats_compare_as_polars_does() {
        let values = [
            Some(1.0),
            None,
            Some(f64::NAN),
            Some(0.0),
            Some(-0.0),
            Some(2.5),
            None,
            Some(f64::NAN),
            Some(1.0),
            Some(-1.0),
            Some(f64::INFINITY),
        ];
        let new = Series::new("v".into(), &values);
        let mut reordered = values;
        reordered.rotate_left(4);
        agrees_with_polars(new, Series::new("v".into(), &reordered));
    }

    /// Columns with no NULL take a path that reads no validity: on both sides, and on one
    /// side only.
    #[test]
    fn columns_without_nulls_compare_as_polars_does() {
        let full: Vec<i64> = (0..23).map(|i| i % 4).collect();
        let mut shifted = full.clone();
        shifted.rotate_left(3);
        agrees_with_polars(
            Series::new("i".into(), &full),
            Series::new("i".into(), &shifted),
        );
        let with_nulls: Vec<Option<i64>> = shifted.iter().map(|&v| (v != 2).then_some(v)).collect();
        agrees_with_polars(
            Series::new("i".into(), &full),
            Series::new("i".into(), &with_nulls),
        );
        let words: Vec<String> = (0..23).map(|i| format!("word-{}", i % 3)).collect();
        let mut reversed = words.clone();
        reversed.reverse();
        agrees_with_polars(
            Series::new("t".into(), &words),
            Series::new("t".into(), &reversed),
        );
    }

    #[test]
    fn integers_text_and_bytes_compare_as_polars_does() {
        let ints: Vec<Option<i64>> = (0..23).map(|i| (i % 5 != 0).then_some(i % 4)).collect();
        let mut shifted = ints.clone();
        shifted.rotate_left(2);
        agrees_with_polars(
            Series::new("i".into(), &ints),
            Series::new("i".into(), &shifted),
        );
        let unsigned: Vec<Option<u64>> = ints.iter().map(|v| v.map(|v| v as u64)).collect();
        agrees_with_polars(
            Series::new("u".into(), &unsigned),
            Series::new(
                "u".into(),
                &unsigned.iter().rev().copied().collect::<Vec<_>>(),
            ),
        );
        // Equal lengths and first bytes that differ later, in the view (up to 12 bytes) and
        // beyond it.
        let words = [
            "a",
            "b",
            "",
            "abcdefghijklmnop",
            "abcdefghijklmnoq",
            "abcd",
            "abce",
            "abcdefghijk",
            "abcdefghijl",
            "é",
        ];
        let text: Vec<Option<&str>> = (0..19)
            .map(|i| (i % 6 != 1).then(|| words[i * 5 % words.len()]))
            .collect();
        let other: Vec<Option<&str>> = (0..19)
            .map(|i| (i % 7 != 2).then(|| words[i * 3 % words.len()]))
            .collect();
        agrees_with_polars(
            Series::new("t".into(), &text),
            Series::new("t".into(), &other),
        );
        let bytes = |t: &[Option<&str>]| {
            let values: Vec<Option<&[u8]>> = t.iter().map(|v| v.map(str::as_bytes)).collect();
            Series::new("b".into(), &values)
        };
        agrees_with_polars(bytes(&text), bytes(&other));
    }

    #[test]
    fn other_types_are_left_to_polars() {
        let new = Series::new("x".into(), &[true, false]).into_column();
        let mut differs = vec![false; 2];
        assert!(!mark_differences(
            &new,
            &new,
            &[0, 1],
            &[0, 1],
            &mut differs
        ));
        let text = Series::new("x".into(), &["a", "b"]).into_column();
        let ints = Series::new("x".into(), &[1i64, 2]).into_column();
        assert!(!mark_differences(&text, &ints, &[0], &[0], &mut differs));
    }
}
