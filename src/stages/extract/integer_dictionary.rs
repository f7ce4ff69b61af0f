//! Integer columns of a row group, dictionary-encoded here when their values span more than
//! polars' writer encodes from a bitmap (timestamps, say). Given such a plain array, the
//! writer estimated its distinct values with a HyperLogLog (a hash per value, then a pass
//! over 16,384 registers per column and row group: most of the cost in small row groups)
//! and then grouped it (a second hash per value). Here one pass: a value equal to the row
//! before's costs a comparison, any other a hash lookup. Integers in a narrow range are
//! left to the writer's bitmap, which is cheaper still.

use std::hash::Hash;

use polars::prelude::PlHashMap;
use polars_arrow::array::{Array, DictionaryArray, PrimitiveArray};
use polars_arrow::datatypes::{ArrowDataType, IntegerType};
use polars_arrow::types::NativeType;
use polars_parquet::write::Encoding;

/// The widest span of values polars' writer dictionary-encodes from a bitmap of offsets
/// (its `BITMASK_THRESHOLD` for 64-bit integers).
const BITMAP_SPAN: i128 = 2048;

/// A dictionary does not pay when more than this share of the rows are distinct values
/// (the writer's own rule, for arrays of over 128 rows).
const MOST_DISTINCT: f64 = 0.75;
const FEW_ROWS: usize = 128;

/// The array to write for a column of integers, and its encoding: a dictionary made here,
/// the array as it is for the writer's bitmap (`RleDictionary`), or plain when its values
/// hardly repeat.
pub(super) fn encode<T>(array: PrimitiveArray<T>) -> (Box<dyn Array>, Encoding)
where
    T: NativeType + Hash + Eq + Into<i128>,
{
    let span = array.non_null_values_iter().fold(None, |span, v| {
        let v: i128 = v.into();
        Some(span.map_or((v, v), |(low, high): (i128, i128)| {
            (low.min(v), high.max(v))
        }))
    });
    match span {
        Some((low, high)) if high - low > BITMAP_SPAN => match dictionary(&array) {
            Some(dictionary) => (dictionary.boxed(), Encoding::RleDictionary),
            None => (array.boxed(), Encoding::Plain),
        },
        // A narrow range, or every value NULL (or none): the writer's bitmap.
        _ => (array.boxed(), Encoding::RleDictionary),
    }
}

/// The array as indices into its distinct values (in the order they first came); None when
/// too many are distinct for a dictionary to pay.
fn dictionary<T>(array: &PrimitiveArray<T>) -> Option<DictionaryArray<u32>>
where
    T: NativeType + Hash + Eq,
{
    let most = match array.len() > FEW_ROWS {
        true => (array.len() as f64 * MOST_DISTINCT) as usize,
        false => usize::MAX,
    };
    let mut index: PlHashMap<T, u32> = PlHashMap::default();
    let mut values: Vec<T> = Vec::new();
    let mut keys: Vec<u32> = Vec::with_capacity(array.len());
    let mut last: Option<(T, u32)> = None;
    let validity = array.validity();
    for (row, &value) in array.values().iter().enumerate() {
        // A NULL row's value is undefined: it gets key 0, which the validity hides.
        if validity.is_some_and(|v| !v.get_bit(row)) {
            keys.push(0);
            continue;
        }
        let key = match last {
            Some((before, key)) if before == value => key,
            _ => {
                let key = *index.entry(value).or_insert_with(|| {
                    values.push(value);
                    values.len() as u32 - 1
                });
                if values.len() > most {
                    return None;
                }
                last = Some((value, key));
                key
            }
        };
        keys.push(key);
    }
    let dtype = ArrowDataType::from(T::PRIMITIVE);
    let values = PrimitiveArray::new(dtype.clone(), values.into(), None);
    let keys = PrimitiveArray::new(ArrowDataType::UInt32, keys.into(), validity.cloned());
    let dtype = ArrowDataType::Dictionary(IntegerType::UInt32, Box::new(dtype), false);
    Some(DictionaryArray::try_new(dtype, keys, values.boxed()).expect("every key indexes a value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values the written array stands for, row by row.
    fn decoded(array: &dyn Array) -> Vec<Option<i64>> {
        match array.as_any().downcast_ref::<DictionaryArray<u32>>() {
            Some(dictionary) => {
                let values = (dictionary.values().as_any())
                    .downcast_ref::<PrimitiveArray<i64>>()
                    .unwrap();
                (dictionary.keys().iter())
                    .map(|key| key.map(|&k| values.value(k as usize)))
                    .collect()
            }
            None => (array.as_any().downcast_ref::<PrimitiveArray<i64>>())
                .unwrap()
                .iter()
                .map(|v| v.copied())
                .collect(),
        }
    }

    fn check(rows: Vec<Option<i64>>, encoding: Encoding, as_dictionary: bool) {
        let (array, chosen) = encode(PrimitiveArray::from(rows.clone()));
        assert_eq!(chosen, encoding, "{rows:?}");
        let is_dictionary = array.as_any().is::<DictionaryArray<u32>>();
        assert_eq!(is_dictionary, as_dictionary);
        assert_eq!(decoded(array.as_ref()), rows);
    }

    #[test]
    fn wide_repeating_values_become_a_dictionary_here() {
        // Timestamps: few distinct values, far apart, runs and returns, NULLs between.
        let stamps = [1_588_467_617, 1_588_122_017, i64::MIN, i64::MAX, -5];
        let rows: Vec<Option<i64>> = (0..1000)
            .map(|i| (i % 7 != 3).then_some(stamps[i / 3 % stamps.len()]))
            .collect();
        check(rows, Encoding::RleDictionary, true);
        // NULLs first: key 0 comes before any value does.
        check(
            vec![None, None, Some(0), Some(1 << 40), Some(0)],
            Encoding::RleDictionary,
            true,
        );
    }

    #[test]
    fn distinct_or_narrow_values_are_left_to_the_writer() {
        // Mostly distinct and wide: plain.
        let distinct: Vec<Option<i64>> = (0..1000).map(|i| Some(i * 1_000_003)).collect();
        check(distinct, Encoding::Plain, false);
        // Few rows are a dictionary however distinct (the writer's rule).
        let few: Vec<Option<i64>> = (0..100).map(|i| Some(i * 1_000_003)).collect();
        check(few, Encoding::RleDictionary, true);
        // A narrow range (direction, time_value within a few years): the writer's bitmap.
        let narrow: Vec<Option<i64>> = (0..1000).map(|i| Some(20_200_601 + i % 2048)).collect();
        check(narrow, Encoding::RleDictionary, false);
        check(vec![None, None], Encoding::RleDictionary, false);
        check(Vec::new(), Encoding::RleDictionary, false);
    }

    #[test]
    fn unsigned_values_past_the_signed_range() {
        let rows: Vec<Option<u64>> = (0..300)
            .map(|i| Some([u64::MAX, 0, 1 << 63][i % 3]))
            .collect();
        let (array, encoding) = encode(PrimitiveArray::from(rows.clone()));
        assert_eq!(encoding, Encoding::RleDictionary);
        let dictionary = array
            .as_any()
            .downcast_ref::<DictionaryArray<u32>>()
            .unwrap();
        let values = (dictionary.values().as_any())
            .downcast_ref::<PrimitiveArray<u64>>()
            .unwrap();
        let back: Vec<Option<u64>> = (dictionary.keys().iter())
            .map(|key| key.map(|&k| values.value(k as usize)))
            .collect();
        assert_eq!(back, rows);
    }
}
