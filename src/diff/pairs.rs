//! Pairing the rows of two partitions by key fingerprint, in place of a join: one hash map
//! of the older partition's fingerprints, probed once per row of the newer one. Only row
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
pub fn pair_by_fingerprint(old: &[u64], new: &[u64]) -> Option<Pairs> {
    let mut row_of_old: HashMap<u64, IdxSize, Prehashed> =
        HashMap::with_capacity_and_hasher(old.len(), Prehashed::default());
    for (row, &fingerprint) in old.iter().enumerate() {
        if row_of_old.insert(fingerprint, row as IdxSize).is_some() {
            return None;
        }
    }
    let mut pairs = Pairs::default();
    let mut found = vec![false; old.len()];
    let mut added: HashSet<u64, Prehashed> = HashSet::default();
    for (row, fingerprint) in new.iter().enumerate() {
        match row_of_old.get(fingerprint) {
            Some(&old_row) => {
                if std::mem::replace(&mut found[old_row as usize], true) {
                    return None;
                }
                pairs.matched_new.push(row as IdxSize);
                pairs.matched_old.push(old_row);
            }
            None => {
                if !added.insert(*fingerprint) {
                    return None;
                }
                pairs.added.push(row as IdxSize);
            }
        }
    }
    pairs.removed = (found.iter().enumerate())
        .filter(|(_, found)| !**found)
        .map(|(row, _)| row as IdxSize)
        .collect();
    Some(pairs)
}

/// Fingerprints are already uniform 64-bit hashes: hashing them again would be wasted.
type Prehashed = BuildHasherDefault<FingerprintHasher>;

#[derive(Default)]
struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
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
    fn a_fingerprint_twice_on_either_side_gives_up() {
        assert_eq!(pair_by_fingerprint(&[1, 1], &[1]), None);
        assert_eq!(pair_by_fingerprint(&[1], &[1, 1]), None);
        assert_eq!(pair_by_fingerprint(&[1], &[2, 2]), None);
        assert!(pair_by_fingerprint(&[], &[]).is_some());
    }
}
