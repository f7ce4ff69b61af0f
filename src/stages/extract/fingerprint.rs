//! A 64-bit fingerprint of each row's key, computed as extraction parses the row, so the
//! diff joins two partitions on one integer column instead of row-encoding every key column.
//! Equal keys always get equal fingerprints (the bytes hashed are the key's values, not
//! their spelling: numbers parsed, decimals in their canonical text); distinct keys may collide, which the diff detects and then joins on the
//! key columns themselves.

use xxhash_rust::xxh3::xxh3_64;

/// The fingerprint column of a Parquet partition.
pub const COLUMN: &str = "__key_fingerprint";

/// The key of one row, encoded so that two keys give the same bytes only if they are equal:
/// each value is a tag, then its bytes (text with its length first).
#[derive(Default)]
pub struct KeyFingerprint {
    bytes: Vec<u8>,
}

impl KeyFingerprint {
    pub fn null(&mut self) {
        self.bytes.push(0);
    }

    pub fn text(&mut self, value: &[u8]) {
        self.bytes.push(1);
        self.bytes
            .extend_from_slice(&(value.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(value);
    }

    pub fn integer(&mut self, value: i64) {
        self.bytes.push(2);
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub fn unsigned(&mut self, value: u64) {
        self.bytes.push(4);
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    /// Doubles as the diff compares them: 0.0 = -0.0 and NaN = NaN.
    pub fn float(&mut self, value: f64) {
        let canonical = if value == 0.0 {
            0.0
        } else if value.is_nan() {
            f64::NAN
        } else {
            value
        };
        self.bytes.push(3);
        self.bytes
            .extend_from_slice(&canonical.to_bits().to_le_bytes());
    }

    /// The fingerprint of the values added since the last call.
    pub fn finish(&mut self) -> u64 {
        let hash = xxh3_64(&self.bytes);
        self.bytes.clear();
        hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(build: impl Fn(&mut KeyFingerprint)) -> u64 {
        let mut key = KeyFingerprint::default();
        build(&mut key);
        key.finish()
    }

    #[test]
    fn equal_keys_agree_and_boundaries_count() {
        let a = of(|k| {
            k.text(b"ab");
            k.text(b"c");
        });
        let b = of(|k| {
            k.text(b"a");
            k.text(b"bc");
        });
        assert_ne!(a, b, "moving a byte across columns is a different key");
        assert_eq!(
            a,
            of(|k| {
                k.text(b"ab");
                k.text(b"c");
            })
        );
        assert_ne!(of(|k| k.null()), of(|k| k.text(b"")));
        assert_ne!(of(|k| k.integer(1)), of(|k| k.text(&1i64.to_le_bytes())));
        assert_eq!(of(|k| k.float(0.0)), of(|k| k.float(-0.0)));
        assert_eq!(of(|k| k.float(f64::NAN)), of(|k| k.float(-f64::NAN)));
    }

    #[test]
    fn finish_starts_the_next_key_afresh() {
        let mut key = KeyFingerprint::default();
        key.text(b"x");
        let first = key.finish();
        key.text(b"x");
        assert_eq!(first, key.finish());
    }
}
