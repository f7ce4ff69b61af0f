//! A text column of one row group, dictionary-encoded as its rows arrive: each distinct value
//! is stored once and every row gets its index. Written as a Parquet dictionary page and
//! indices, with no string array built first. Polars' writer, given a string array, estimated
//! its distinct values (a HyperLogLog pass) and then grouped it (a hash per value): a quarter
//! of extraction's time, measured. Here a value equal to the row before's costs a comparison;
//! so does one equal to the value that followed the row before's value last time (a dump
//! lists the geo values of each day in the same order, day after day); any other one a hash
//! lookup, whose table, out of cache, cost half of this column's time.

use polars::prelude::PlHashMap;
use polars_arrow::array::{
    Array, DictionaryArray, MutableBinaryViewArray, PrimitiveArray, Utf8ViewArray,
};
use polars_arrow::bitmap::MutableBitmap;
use polars_arrow::datatypes::{ArrowDataType, IntegerType};

use super::fingerprint;

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
    /// For each value, the index of the value that came after it last time (`NO_VALUE`
    /// before any did): rows often come in the same order as before.
    successor: Vec<u32>,
    /// For each value, its hash for the key fingerprint (`fingerprint::text_hash`):
    /// computed once per distinct value instead of once per row.
    hashes: Vec<u64>,
}

const NO_VALUE: u32 = u32::MAX;

/// Slice equality without a call to `memcmp` for short values (most of a dump's text), where
/// the call cost more than the comparison: up to 16 bytes are compared as two words that
/// may overlap (a byte loop was over a third of this column's instructions).
#[inline]
pub(super) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    let u64_at = |bytes: &[u8], at: usize| {
        u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
    };
    let u32_at = |bytes: &[u8], at: usize| {
        u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
    };
    match len {
        0 => true,
        1..=3 => a[0] == b[0] && a[len / 2] == b[len / 2] && a[len - 1] == b[len - 1],
        4..=7 => u32_at(a, 0) == u32_at(b, 0) && u32_at(a, len - 4) == u32_at(b, len - 4),
        8..=16 => u64_at(a, 0) == u64_at(b, 0) && u64_at(a, len - 8) == u64_at(b, len - 8),
        _ => a == b,
    }
}

/// What a row takes in memory: its key.
const ROW_BYTES: usize = 4;

/// What a distinct value takes beyond its row's key, about: its bytes twice (in `values`
/// and as a key of `index`), a view, a hash table entry, its successor and its hash.
fn distinct_bytes(value: &str) -> usize {
    2 * value.len() + 76
}

impl DictionaryColumn {
    /// Appends a value; returns the bytes of memory it added, about.
    pub(super) fn push(&mut self, value: &str) -> usize {
        let bytes = value.as_bytes();
        let mut added = ROW_BYTES;
        let key = match self.last {
            Some(last) if self.is_value(last, bytes) => last,
            Some(last) => {
                let next = self.successor[last as usize];
                let key = if next != NO_VALUE && self.is_value(next, bytes) {
                    next
                } else {
                    let key = self.find_or_insert(value, &mut added);
                    self.successor[last as usize] = key;
                    key
                };
                self.last = Some(key);
                key
            }
            None => {
                let key = self.find_or_insert(value, &mut added);
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

    /// True when value `key` is `bytes`.
    #[inline]
    fn is_value(&self, key: u32, bytes: &[u8]) -> bool {
        same_bytes(self.values.value(key as usize).as_bytes(), bytes)
    }

    /// The index of `value`, stored first if new (adding what it takes to `added`).
    fn find_or_insert(&mut self, value: &str, added: &mut usize) -> u32 {
        if let Some(&key) = self.index.get(value.as_bytes()) {
            return key;
        }
        *added += distinct_bytes(value);
        let key = self.values.len() as u32;
        self.values.push_value(value);
        self.index.insert(value.as_bytes().into(), key);
        self.successor.push(NO_VALUE);
        self.hashes.push(fingerprint::text_hash(value.as_bytes()));
        key
    }

    /// The fingerprint hash of the value pushed last (not a NULL).
    #[inline]
    pub(super) fn last_hash(&self) -> u64 {
        let last = self.last.expect("a value was pushed");
        self.hashes[last as usize]
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
                // The same length with one byte changed, at every place.
                let mut variants = vec![base.clone()];
                for at in 0..len {
                    let mut changed = base.clone();
                    changed[at] ^= 1;
                    variants.push(changed);
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
        let (distinct, rows) = decode(column.finish());
        assert_eq!(distinct, ["b", "a"]);
        assert_eq!(rows, pushed.map(|v| v.map(String::from)));
        // Emptied for the next row group.
        assert_eq!(column.finish().len(), 0);
    }

    /// The distinct values of a finished column, and its rows.
    fn decode(array: Box<dyn Array>) -> (Vec<String>, Vec<Option<String>>) {
        let array = array
            .as_any()
            .downcast_ref::<DictionaryArray<u32>>()
            .unwrap();
        let values = array
            .values()
            .as_any()
            .downcast_ref::<Utf8ViewArray>()
            .unwrap();
        let distinct = values.values_iter().map(String::from).collect();
        let rows = (0..array.len())
            .map(|i| {
                array
                    .is_valid(i)
                    .then(|| values.value(array.key_value(i)).into())
            })
            .collect();
        (distinct, rows)
    }

    #[test]
    fn rows_that_repeat_an_earlier_order_or_break_it_read_back_as_pushed() {
        // Days of geo values in one order, with some left out, some added and some swapped,
        // as a dump's days differ: the prediction from the earlier order is right, wrong,
        // or has nothing yet.
        let geo: Vec<String> = (0..50).map(|i| format!("{:05}", i * 37)).collect();
        let mut pushed: Vec<Option<String>> = Vec::new();
        let mut state = 7u64;
        for _day in 0..20 {
            for value in &geo {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                match state >> 60 {
                    0 => {}
                    1 => pushed.push(None),
                    2 => pushed.push(Some(geo[(state >> 8) as usize % geo.len()].clone())),
                    3 => pushed.push(Some(format!("new-{}", state >> 58))),
                    _ => pushed.push(Some(value.clone())),
                }
            }
        }
        let mut column = DictionaryColumn::default();
        for value in &pushed {
            match value {
                Some(value) => column.push(value),
                None => column.push_null(),
            };
        }
        let (distinct, rows) = decode(column.finish());
        assert_eq!(rows, pushed);
        let mut first_seen: Vec<String> = Vec::new();
        for value in pushed.into_iter().flatten() {
            if !first_seen.contains(&value) {
                first_seen.push(value);
            }
        }
        assert_eq!(
            distinct, first_seen,
            "each value stored once, in order of arrival"
        );
    }
}
