//! Pairing the rows of two partitions by key fingerprint, in place of a join: a hash map of
//! the older partition's fingerprints, probed once per row of the newer one. Only row
//! numbers come out; the diff then gathers just the columns it compares, and whole rows only
//! for what it outputs, where a join would gather every column of every row of both sides.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use polars::prelude::IdxSize;

/// The rows of a newer and an older partition, by row number, paired by fingerprint.
#[derive(Debug, Default, PartialEq)]
pub struct Pairs {
    /// Rows of the newer partition whose fingerprint the older one has: theirs, in order...
    pub matched_new: Vec<IdxSize>,
    /// ...and the older partition's row with the same fingerprint, for each.
    pub matched_old: Vec<IdxSize>,
    /// Rows of the newer partition only, in order.
    pub added: Vec<IdxSize>,
    /// Rows of the older partition only, in order.
    pub removed: Vec<IdxSize>,
}

/// Pairs rows with equal fingerprints; None when a fingerprint occurs twice on one side
/// (a duplicated key, or two keys that share a fingerprint), which the caller settles by
/// joining on the key columns.
///
/// Both sides are first split by the fingerprints' top bits into parts of a few thousand
/// rows, so that each part's hash map stays in the CPU's cache: one map over a million rows
/// made every lookup a miss to memory.
pub fn pair_by_fingerprint(old: &[u64], new: &[u64]) -> Option<Pairs> {
    let bits = part_bits(old.len().max(new.len()));
    let old_parts = split(old, bits);
    let new_parts = split(new, bits);
    // For each row of the newer side, its row in the older one (NONE: added).
    let mut old_row_of = vec![NONE; new.len()];
    let mut found = vec![false; old.len()];
    let mut row_of_old: HashMap<u64, IdxSize, Prehashed> = HashMap::default();
    let mut added: HashSet<u64, Prehashed> = HashSet::default();
    for part in 0..1 << bits {
        row_of_old.clear();
        added.clear();
        for &(fingerprint, row) in old_parts.part(part) {
            if row_of_old.insert(fingerprint, row).is_some() {
                return None;
            }
        }
        for &(fingerprint, row) in new_parts.part(part) {
            match row_of_old.get(&fingerprint) {
                Some(&old_row) => {
                    if std::mem::replace(&mut found[old_row as usize], true) {
                        return None;
                    }
                    old_row_of[row as usize] = old_row;
                }
                None if !added.insert(fingerprint) => return None,
                None => {}
            }
        }
    }
    let mut pairs = Pairs::default();
    for (row, &old_row) in old_row_of.iter().enumerate() {
        if old_row == NONE {
            pairs.added.push(row as IdxSize);
        } else {
            pairs.matched_new.push(row as IdxSize);
            pairs.matched_old.push(old_row);
        }
    }
    pairs.removed = (found.iter().enumerate())
        .filter(|(_, found)| !**found)
        .map(|(row, _)| row as IdxSize)
        .collect();
    Some(pairs)
}

const NONE: IdxSize = IdxSize::MAX;

/// How many top bits of the fingerprint pick a row's part: enough for parts of about
/// `PART_ROWS` rows.
fn part_bits(rows: usize) -> u32 {
    const PART_ROWS: usize = 2048;
    (rows / PART_ROWS)
        .next_power_of_two()
        .trailing_zeros()
        .min(16)
}

/// (fingerprint, row) of every row, grouped by part.
struct Parts {
    entries: Vec<(u64, IdxSize)>,
    /// Where each part starts in `entries`, and last the end.
    starts: Vec<usize>,
}

impl Parts {
    fn part(&self, part: usize) -> &[(u64, IdxSize)] {
        &self.entries[self.starts[part]..self.starts[part + 1]]
    }
}

/// A counting sort of the rows by part, each part in row order.
fn split(fingerprints: &[u64], bits: u32) -> Parts {
    let part_of = |fingerprint: u64| match bits {
        0 => 0,
        _ => (fingerprint >> (64 - bits)) as usize,
    };
    let mut starts = vec![0; (1 << bits) + 1];
    for &fingerprint in fingerprints {
        starts[part_of(fingerprint) + 1] += 1;
    }
    for part in 1..starts.len() {
        starts[part] += starts[part - 1];
    }
    let mut next = starts.clone();
    let mut entries = vec![(0, 0); fingerprints.len()];
    for (row, &fingerprint) in fingerprints.iter().enumerate() {
        let slot = &mut next[part_of(fingerprint)];
        entries[*slot] = (fingerprint, row as IdxSize);
        *slot += 1;
    }
    Parts { entries, starts }
}

/// Fingerprints are already uniform 64-bit hashes: hashing them again would be wasted.
type Prehashed = BuildHasherDefault<FingerprintHasher>;

#[derive(Default)]
struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    /// The fingerprint turned by half its width. The map tags each slot with the hash's top
    /// seven bits, and every fingerprint of one part shares its top bits (they chose the
    /// part): unturned, each lookup matched every slot's tag and compared their keys.
    fn finish(&self) -> u64 {
        self.0.rotate_left(32)
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for the u64 keys; any other input is still mixed in.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_pair_by_fingerprint_whatever_their_order() {
        let pairs = pair_by_fingerprint(&[10, 20, 30, 40], &[30, 50, 10, 60]).unwrap();
        assert_eq!(
            pairs,
            Pairs {
                matched_new: vec![0, 2],
                matched_old: vec![2, 0],
                added: vec![1, 3],
                removed: vec![1, 3],
            }
        );
    }

    #[test]
    fn many_parts_pair_as_one_map_would() {
        // Fingerprints spread over the top bits, as real ones are, in several parts.
        let spread = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let old: Vec<u64> = (0..20_000).map(spread).collect();
        let new: Vec<u64> = (10_000..30_000).rev().map(spread).collect();
        assert!(part_bits(new.len()) > 2);
        let pairs = pair_by_fingerprint(&old, &new).unwrap();
        assert_eq!(pairs.matched_new.len(), 10_000);
        for (&n, &o) in pairs.matched_new.iter().zip(&pairs.matched_old) {
            assert_eq!(new[n as usize], old[o as usize]);
        }
        assert!(
            pairs.matched_new.windows(2).all(|w| w[0] < w[1]),
            "in row order"
        );
        // New rows 0..10 000 hold 29 999 down to 20 000, none of them old.
        assert!(pairs.added == (0..10_000).collect::<Vec<IdxSize>>());
        assert!(pairs.removed == (0..10_000).collect::<Vec<IdxSize>>());
        let mut twice = new.clone();
        twice.push(new[123]);
        assert_eq!(pair_by_fingerprint(&old, &twice), None);
    }

    #[test]
    fn a_fingerprint_twice_on_either_side_gives_up() {
        assert_eq!(pair_by_fingerprint(&[1, 1], &[1]), None);
        assert_eq!(pair_by_fingerprint(&[1], &[1, 1]), None);
        assert_eq!(pair_by_fingerprint(&[1], &[2, 2]), None);
        assert!(pair_by_fingerprint(&[], &[]).is_some());
    }
}
