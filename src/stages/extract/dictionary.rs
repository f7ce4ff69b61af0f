//! A text column of one row group, dictionary-encoded as its rows arrive: each distinct value
//! is stored once and every row gets its index. Written as a Parquet dictionary page and
//! indices, with no string array built first. Polars' writer, given a string array, estimated
//! its distinct values (a HyperLogLog pass) and then grouped it (a hash per value): a quarter
//! of extraction's time, measured. Here a value equal to the row before's costs a comparison,
//! any other one a hash lookup.

use polars::prelude::PlHashMap;
use polars_arrow::array::{
    Array, DictionaryArray, MutableBinaryViewArray, PrimitiveArray, Utf8ViewArray,
};
use polars_arrow::bitmap::MutableBitmap;
use polars_arrow::datatypes::{ArrowDataType, IntegerType};

#[derive(Default)]
pub(super) struct DictionaryColumn {
    /// The distinct values, in the order they came.
    values: MutableBinaryViewArray<str>,
    index: PlHashMap<Box<[u8]>, u32>,
    /// Every row's value index; a null row's is 0, and `validity` says it is null.
    keys: Vec<u32>,
    /// Made at the first null.
    validity: Option<MutableBitmap>,
    /// The index of the last value pushed: consecutive rows often repeat a value.
    last: Option<u32>,
}

/// Slice equality without a call to `memcmp` for short values (most of a dump's text), where
/// the call cost more than the comparison.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        false
    } else if a.len() > 16 {
        a == b
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

/// What a row takes in memory: its key.
const ROW_BYTES: usize = 4;

/// What a distinct value takes beyond its row's key, about: its bytes twice (in `values`
/// and as a key of `index`), a view and a hash table entry.
fn distinct_bytes(value: &str) -> usize {
    2 * value.len() + 64
}

impl DictionaryColumn {
    /// Appends a value; returns the bytes of memory it added, about.
    pub(super) fn push(&mut self, value: &str) -> usize {
        let bytes = value.as_bytes();
        let mut added = ROW_BYTES;
        let key = match self.last {
            Some(key) if same_bytes(self.values.value(key as usize).as_bytes(), bytes) => key,
            _ => {
                let key = match self.index.get(bytes) {
                    Some(&key) => key,
                    None => {
                        added += distinct_bytes(value);
                        self.insert(value)
                    }
                };
                self.last = Some(key);
                key
            }
        };
        self.keys.push(key);
        if let Some(validity) = &mut self.validity {
            validity.push(true);
        }
        added
    }

    fn insert(&mut self, value: &str) -> u32 {
        let key = self.values.len() as u32;
        self.values.push_value(value);
        self.index.insert(value.as_bytes().into(), key);
        key
    }

    /// Appends a NULL; returns the bytes of memory it added.
    pub(super) fn push_null(&mut self) -> usize {
        let rows = self.keys.len();
        self.validity
            .get_or_insert_with(|| MutableBitmap::from_len_set(rows))
            .push(false);
        self.keys.push(0);
        ROW_BYTES
    }

    /// The rows so far as one array, the column emptied for the next row group.
    pub(super) fn finish(&mut self) -> Box<dyn Array> {
        let column = std::mem::take(self);
        let values: Utf8ViewArray = column.values.freeze();
        let keys = PrimitiveArray::new(
            ArrowDataType::UInt32,
            column.keys.into(),
            column.validity.map(Into::into),
        );
        let dtype = ArrowDataType::Dictionary(
            IntegerType::UInt32,
            Box::new(ArrowDataType::Utf8View),
            false,
        );
        let array = DictionaryArray::try_new(dtype, keys, values.boxed())
            .expect("every key indexes a value pushed");
        array.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_values_compare_as_slices_do() {
        let values: Vec<Vec<u8>> = (0..=40usize)
            .flat_map(|len| {
                let base: Vec<u8> = (0..len as u8).map(|i| b'a' + i % 26).collect();
                // The same length with one byte changed at each end and in the middle.
                let mut variants = vec![base.clone()];
                for at in [0, len / 2, len.saturating_sub(1)] {
                    if len > 0 {
                        let mut changed = base.clone();
                        changed[at] ^= 1;
                        variants.push(changed);
                    }
                }
                variants
            })
            .collect();
        for a in &values {
            for b in &values {
                assert_eq!(same_bytes(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn values_are_stored_once_and_rows_keep_their_order_and_nulls() {
        let pushed = [
            Some("b"),
            Some("b"),
            None,
            Some("a"),
            Some("b"),
            None,
            Some("a"),
        ];
        let mut column = DictionaryColumn::default();
        let mut seen = Vec::new();
        for value in pushed {
            let added = match value {
                Some(value) => column.push(value),
                None => column.push_null(),
            };
            // A value seen before, or NULL, costs its row's key only.
            let new = value.is_some_and(|v| !seen.contains(&v));
            assert_eq!(added > ROW_BYTES, new);
            seen.extend(value);
        }
        let array = column.finish();
        let array = array
            .as_any()
            .downcast_ref::<DictionaryArray<u32>>()
            .unwrap();
        let values = array
            .values()
            .as_any()
            .downcast_ref::<Utf8ViewArray>()
            .unwrap();
        assert_eq!(values.values_iter().collect::<Vec<_>>(), ["b", "a"]);
        let rows: Vec<Option<&str>> = (0..array.len())
            .map(|i| array.is_valid(i).then(|| values.value(array.key_value(i))))
            .collect();
        assert_eq!(rows, pushed);
        // Emptied for the next row group.
        assert_eq!(column.finish().len(), 0);
    }
}
