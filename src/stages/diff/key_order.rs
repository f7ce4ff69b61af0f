//! The order `sort_by_key` gives, found on integers: each key column's values are ranked
//! (text by its few distinct values, integers by their offset from the smallest), the ranks
//! of a row are packed into one integer with its row number last, and those integers are
//! sorted. Polars' multi-column sort encoded every key value of every row into bytes and
//! compared those: the largest share of the diff stage (measured). Key columns of other
//! kinds, or ranks too wide to pack, leave the sort to polars.

use polars::prelude::{
    ChunkedArray, Column, DataFrame, IdxCa, IdxSize, PlHashMap, PlSmallStr, PolarsNumericType,
};

use crate::config::layout::Layout;
use crate::dump::ColumnKind;

/// The rows of a frame in key order, and whether each key occurs once.
pub(super) struct KeyOrder {
    pub rows: IdxCa,
    /// No two rows have equal keys (NULL equal to NULL), seen for free in the sorted ranks:
    /// the first backup's diff needs no separate pass over its fingerprints.
    pub unique: bool,
}

/// The rows of `frame` in key order (NULL first, then ascending; equal keys in row order),
/// or None when its key cannot be ranked here.
pub(super) fn key_order(frame: &DataFrame, layout: &Layout) -> Option<KeyOrder> {
    let rows = frame.height();
    let row_bits = bits_for(rows as u64);
    let mut ranks: Vec<Ranks> = Vec::new();
    for column in layout.columns.iter().filter(|c| c.is_key) {
        let values = frame.column(&column.name).ok()?;
        ranks.push(match column.kind {
            kind if kind.is_text() => text_ranks(values)?,
            ColumnKind::Integer => integer_ranks(values.i64().ok()?, |v| v as i128)?,
            ColumnKind::Unsigned => integer_ranks(values.u64().ok()?, |v| v as i128)?,
            _ => return None,
        });
    }
    let bits: u32 = ranks.iter().map(|r| r.bits).sum::<u32>() + row_bits;
    if bits > 128 {
        return None;
    }
    // Each row's ranks, most significant first, then its row number: distinct integers
    // whose order is the key order, ties in row order.
    let mut packed: Vec<u128> = (0..rows as u128).collect();
    let mut shift = row_bits;
    for column in ranks.iter().rev().filter(|r| r.bits > 0) {
        for (packed, &rank) in packed.iter_mut().zip(&column.ranks) {
            *packed |= (rank as u128) << shift;
        }
        shift += column.bits;
    }
    let (order, unique) = if bits <= 64 {
        let mut packed: Vec<u64> = packed.into_iter().map(|p| p as u64).collect();
        packed.sort_unstable();
        rows_of(&packed, row_bits)
    } else {
        packed.sort_unstable();
        rows_of(&packed, row_bits)
    };
    Some(KeyOrder {
        rows: IdxCa::from_vec(PlSmallStr::EMPTY, order),
        unique,
    })
}

/// The row numbers in sorted packed ranks (their low `row_bits`), and whether every
/// key (the bits above) differs from the one before it.
fn rows_of<P>(packed: &[P], row_bits: u32) -> (Vec<IdxSize>, bool)
where
    P: Copy + Into<u128>,
{
    let mask = (1u128 << row_bits) - 1;
    let mut unique = true;
    let mut previous_key = None;
    let rows = (packed.iter())
        .map(|&p| {
            let p: u128 = p.into();
            let key = p >> row_bits;
            unique &= previous_key != Some(key);
            previous_key = Some(key);
            (p & mask) as IdxSize
        })
        .collect();
    (rows, unique)
}

/// One key column's rank per row: 0 for NULL, then 1, 2, … in the column's order.
struct Ranks {
    ranks: Vec<u64>,
    /// Bits the largest rank takes.
    bits: u32,
}

fn bits_for(largest: u64) -> u32 {
    u64::BITS - largest.leading_zeros()
}

/// Text ranked by its distinct values sorted as bytes (the order of polars' string sort).
fn text_ranks(values: &Column) -> Option<Ranks> {
    let values = values.str().ok()?;
    let mut ids: PlHashMap<&str, u32> = PlHashMap::default();
    let mut distinct: Vec<&str> = Vec::new();
    let mut last: Option<(&str, u64)> = None;
    let mut row_ids: Vec<u64> = Vec::with_capacity(values.len());
    for value in values.iter() {
        let id = match value {
            None => 0,
            Some(value) => match last {
                Some((text, id)) if text == value => id,
                _ => {
                    let id = *ids.entry(value).or_insert_with(|| {
                        distinct.push(value);
                        distinct.len() as u32
                    }) as u64;
                    last = Some((value, id));
                    id
                }
            },
        };
        row_ids.push(id);
    }
    // Ids are 1 + the order of first appearance; the rank of id i is at rank_of[i].
    let mut by_text: Vec<u32> = (1..=distinct.len() as u32).collect();
    by_text.sort_unstable_by_key(|&id| distinct[id as usize - 1].as_bytes());
    let mut rank_of = vec![0u64; distinct.len() + 1];
    for (rank, &id) in by_text.iter().enumerate() {
        rank_of[id as usize] = rank as u64 + 1;
    }
    for id in &mut row_ids {
        *id = rank_of[*id as usize];
    }
    Some(Ranks {
        ranks: row_ids,
        bits: bits_for(distinct.len() as u64),
    })
}

/// Integers ranked by their offset from the smallest, plus one; None when the values span
/// more than 2^48 (a rank that wide leaves too little room to pack others beside it).
fn integer_ranks<T: PolarsNumericType>(
    values: &ChunkedArray<T>,
    wide: impl Fn(T::Native) -> i128,
) -> Option<Ranks> {
    let (mut min, mut max) = (i128::MAX, i128::MIN);
    for value in values.iter().flatten() {
        let value = wide(value);
        min = min.min(value);
        max = max.max(value);
    }
    if min > max {
        // Every value NULL.
        return Some(Ranks {
            ranks: vec![0; values.len()],
            bits: 0,
        });
    }
    let span = max - min;
    if span >= 1 << 48 {
        return None;
    }
    let ranks = values
        .iter()
        .map(|value| value.map_or(0, |v| (wide(v) - min) as u64 + 1))
        .collect();
    Some(Ranks {
        ranks,
        bits: bits_for(span as u64 + 1),
    })
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::*;
    use crate::config::layout::{test_layout, Time};
    use crate::stages::diff::sort_by_key;

    /// Keys with NULLs, duplicates (ties keep row order), shared prefixes, non-ASCII text,
    /// negative and extreme integers.
    fn rows(n: usize) -> DataFrame {
        let names = ["b", "ab", "a", "", "é", "Z", "a\u{0}", "ba"];
        let text: Vec<Option<&str>> = (0..n)
            .map(|i| (i % 13 != 0).then(|| names[i * 7 % names.len()]))
            .collect();
        let other: Vec<Option<String>> = (0..n)
            .map(|i| (i % 17 != 3).then(|| format!("g{}", i * 31 % 23)))
            .collect();
        let time: Vec<Option<i64>> = (0..n)
            .map(|i| (i % 11 != 0).then_some(i as i64 * 7919 % 97 - 40))
            .collect();
        let big: Vec<u64> = (0..n).map(|i| u64::MAX - (i as u64 * 13 % 5)).collect();
        let value: Vec<i64> = (0..n as i64).collect();
        df!("t" => text, "o" => other, "time" => time, "big" => big, "value" => value).unwrap()
    }

    #[test]
    fn ranks_sort_as_polars_does() {
        let layout = test_layout(
            &[
                ("t", ColumnKind::Text, true),
                ("o", ColumnKind::Text, true),
                ("time", ColumnKind::Integer, true),
                ("big", ColumnKind::Unsigned, true),
                ("value", ColumnKind::Integer, false),
            ],
            Time::None,
        );
        for n in [0, 1, 2, 1000] {
            let frame = rows(n);
            let order = key_order(&frame, &layout).expect("these keys rank");
            let ours = frame.take(&order.rows).unwrap();
            let polars = sort_by_key(frame.lazy(), &layout).collect().unwrap();
            assert!(ours.equals_missing(&polars), "{n} rows:\n{ours}\n{polars}");
        }
    }

    /// `unique` is false exactly when two rows share every key value, NULLs included, in
    /// both packings (up to 64 bits, and wider).
    #[test]
    fn duplicated_keys_are_seen() {
        let narrow = test_layout(
            &[
                ("t", ColumnKind::Text, true),
                ("time", ColumnKind::Integer, true),
                ("value", ColumnKind::Integer, false),
            ],
            Time::None,
        );
        let wide = test_layout(
            &[
                ("a", ColumnKind::Integer, true),
                ("b", ColumnKind::Integer, true),
                ("t", ColumnKind::Text, true),
                ("time", ColumnKind::Integer, true),
                ("value", ColumnKind::Integer, false),
            ],
            Time::None,
        );
        let frame = |t: &[Option<&str>], time: &[Option<i64>]| {
            let n = t.len() as i64;
            df!(
                "a" => (0..n).map(|i| (i % 2) << 47).collect::<Vec<_>>(),
                "b" => (0..n).map(|i| (i % 2 * 3) << 45).collect::<Vec<_>>(),
                "t" => t,
                "time" => time,
                "value" => (0..n).collect::<Vec<_>>()
            )
            .unwrap()
        };
        let unique = |frame: &DataFrame, layout: &Layout| key_order(frame, layout).unwrap().unique;
        // Same text, other times; NULL text once; NULL time once.
        let distinct = frame(
            &[Some("x"), Some("x"), None, Some("y")],
            &[Some(1), Some(2), Some(1), None],
        );
        assert!(unique(&distinct, &narrow));
        assert!(unique(&distinct, &wide));
        // Rows 0 and 2 share ("x", 1); rows 1 and 3 a NULL time beside "y".
        let repeated = frame(
            &[Some("x"), Some("y"), Some("x"), Some("y")],
            &[Some(1), None, Some(1), None],
        );
        assert!(!unique(&repeated, &narrow));
        // `a` and `b` (ranks 48 and 47 bits wide: more than 64 in all) follow the row's
        // parity, so they repeat with the rest.
        assert!(!unique(&repeated, &wide));
        // Only `a` and `b` tell these apart.
        let only_a = frame(&[Some("x"), Some("x")], &[Some(1), Some(1)]);
        assert!(unique(&only_a, &wide));
        assert!(!unique(&only_a, &narrow));
    }

    #[test]
    fn ranks_wider_than_64_bits_sort_as_polars_does() {
        let layout = test_layout(
            &[
                ("a", ColumnKind::Integer, true),
                ("b", ColumnKind::Integer, true),
                ("value", ColumnKind::Integer, false),
            ],
            Time::None,
        );
        let a: Vec<i64> = (0..500).map(|i| (i * 7 % 5) << 45).collect();
        let b: Vec<Option<i64>> = (0..500)
            .map(|i| (i % 7 != 0).then_some(-((i * 13 % 11) << 44)))
            .collect();
        let frame = df!("a" => a, "b" => b, "value" => (0..500i64).collect::<Vec<_>>()).unwrap();
        let order = key_order(&frame, &layout).expect("these keys rank");
        let polars = sort_by_key(frame.clone().lazy(), &layout)
            .collect()
            .unwrap();
        assert!(frame.take(&order.rows).unwrap().equals_missing(&polars));
    }

    #[test]
    fn other_keys_are_left_to_polars() {
        let layout = test_layout(
            &[
                ("x", ColumnKind::Float, true),
                ("value", ColumnKind::Integer, false),
            ],
            Time::None,
        );
        let frame = df!("x" => [1.0, 0.5], "value" => [1i64, 2]).unwrap();
        assert!(key_order(&frame, &layout).is_none());
        // Integers spanning more than 2^48.
        let layout = test_layout(
            &[
                ("x", ColumnKind::Integer, true),
                ("value", ColumnKind::Integer, false),
            ],
            Time::None,
        );
        let frame = df!("x" => [i64::MIN, i64::MAX], "value" => [1i64, 2]).unwrap();
        assert!(key_order(&frame, &layout).is_none());
    }
}
