//! How much a source is revised after it first appears ("back-fill"): revisions by lag and
//! their typical size, gathered while issue rows are written and summed per source.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Revisions seen in some diff units.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Revisions {
    /// Revisions (issue rows of keys seen before) by lag, in days or epiweeks.
    pub by_lag: BTreeMap<i64, u64>,
    /// Revisions whose `value` was a number before and after: the sum of |new - old| and of
    /// |new - old| / |old| (the latter over those with old ≠ 0).
    pub sized: u64,
    #[serde(with = "exact")]
    pub abs_sum: f64,
    pub relative: u64,
    #[serde(with = "exact")]
    pub relative_sum: f64,
}

/// Doubles saved as their shortest text and read back exactly: serde_json, without its
/// `float_roundtrip` feature (which would rebuild polars), may read a long number back one
/// unit in the last place off, and the summary of a resumed run, summed from saved unit
/// records, must equal an uninterrupted run's. Records that hold plain numbers still read.
mod exact {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, out: S) -> Result<S::Ok, S::Error> {
        out.serialize_str(&format!("{value:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Saved {
            Text(String),
            Number(f64),
        }
        match Saved::deserialize(input)? {
            Saved::Text(text) => text.parse().map_err(D::Error::custom),
            Saved::Number(value) => Ok(value),
        }
    }
}

impl Revisions {
    pub fn record(&mut self, lag: i64, value: Option<f64>, previous: Option<f64>) {
        *self.by_lag.entry(lag).or_default() += 1;
        if let (Some(new), Some(old)) = (value, previous) {
            // Only finite sums: JSON has no infinity, and a unit record that does not read
            // back would make every rerun redo its unit. (|1e308 - -1e308| and 1 / 5e-324
            // overflow; such revisions count in `by_lag` but not in the sizes.)
            let change = (new - old).abs();
            if (self.abs_sum + change).is_finite() {
                self.sized += 1;
                self.abs_sum += change;
                let relative = change / old.abs();
                if old != 0.0 && (self.relative_sum + relative).is_finite() {
                    self.relative += 1;
                    self.relative_sum += relative;
                }
            }
        }
    }

    pub fn merge(&mut self, other: &Revisions) {
        for (lag, count) in &other.by_lag {
            *self.by_lag.entry(*lag).or_default() += count;
        }
        // As in `record`: sizes whose sum would overflow are left out (here a unit's at
        // once), or the summary's mean |Δ| would read `inf` (and `null` in summary.json).
        if (self.abs_sum + other.abs_sum).is_finite() {
            self.sized += other.sized;
            self.abs_sum += other.abs_sum;
        }
        if (self.relative_sum + other.relative_sum).is_finite() {
            self.relative += other.relative;
            self.relative_sum += other.relative_sum;
        }
    }

    pub fn count(&self) -> u64 {
        self.by_lag.values().sum()
    }
}

/// The back-fill of one source, as summary.json and the printed summary show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Backfill {
    /// Share of issue rows that are revisions of a row seen before (0 to 1).
    pub revised_share: f64,
    /// Revisions by lag (days for daily rows, epiweeks for weekly rows).
    pub revisions_by_lag: BTreeMap<i64, u64>,
    /// Lag by which half of the revisions have happened.
    pub median_revision_lag: Option<i64>,
    /// Mean |new - old| of `value` over revisions where both are numbers.
    pub mean_abs_revision: Option<f64>,
    /// Mean |new - old| / |old| of `value`.
    pub mean_relative_revision: Option<f64>,
}

impl Backfill {
    pub fn new(revisions: &Revisions, issue_rows: u64) -> Backfill {
        let count = revisions.count();
        let mut seen = 0;
        let median_revision_lag = revisions.by_lag.iter().find_map(|(lag, n)| {
            seen += n;
            (2 * seen >= count && count > 0).then_some(*lag)
        });
        let mean = |sum: f64, n: u64| (n > 0).then(|| sum / n as f64);
        Backfill {
            revised_share: if issue_rows == 0 {
                0.0
            } else {
                count as f64 / issue_rows as f64
            },
            revisions_by_lag: revisions.by_lag.clone(),
            median_revision_lag,
            mean_abs_revision: mean(revisions.abs_sum, revisions.sized),
            mean_relative_revision: mean(revisions.relative_sum, revisions.relative),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_lags_and_median() {
        let mut revisions = Revisions::default();
        revisions.record(1, Some(3.0), Some(2.0));
        revisions.record(1, Some(1.0), None);
        revisions.record(3, Some(0.5), Some(0.0));
        let mut more = Revisions::default();
        more.record(7, Some(-2.0), Some(-1.0));
        revisions.merge(&more);
        let backfill = Backfill::new(&revisions, 8);
        assert_eq!(backfill.revised_share, 0.5);
        assert_eq!(
            backfill.revisions_by_lag,
            BTreeMap::from([(1, 2), (3, 1), (7, 1)])
        );
        assert_eq!(backfill.median_revision_lag, Some(1));
        assert_eq!(backfill.mean_abs_revision, Some((1.0 + 0.5 + 1.0) / 3.0));
        assert_eq!(backfill.mean_relative_revision, Some((0.5 + 1.0) / 2.0));
    }

    #[test]
    fn overflowing_sizes_are_left_out_so_the_record_reads_back() {
        let mut revisions = Revisions::default();
        revisions.record(1, Some(1.0), Some(5e-324)); // |1 / 5e-324| is infinite
        revisions.record(2, Some(f64::MAX), Some(-f64::MAX)); // so is the change
        revisions.record(3, Some(2.0), Some(1.0));
        assert_eq!((revisions.sized, revisions.relative), (2, 1));
        assert_eq!(revisions.relative_sum, 1.0);
        assert_eq!(revisions.count(), 3);
        let json = serde_json::to_string(&revisions).unwrap();
        let back: Revisions = serde_json::from_str(&json).unwrap();
        assert_eq!(back, revisions);
    }

    /// Units whose sums are each finite but overflow together (the bench's series holds
    /// ±1.8e308): the summary's means stay numbers, over the units that fit.
    #[test]
    fn merged_sums_that_overflow_are_left_out() {
        let unit = |new: f64, old: f64| {
            let mut revisions = Revisions::default();
            revisions.record(1, Some(new), Some(old));
            revisions
        };
        let mut total = unit(1e308, 0.0);
        total.merge(&unit(1e308, 0.0)); // 2e308 overflows: left out
        total.merge(&unit(3.0, 1.0));
        total.merge(&unit(-1e308, 0.0)); // so does this one
        assert_eq!(total.count(), 4);
        assert_eq!((total.sized, total.abs_sum), (2, 1e308 + 2.0));
        assert_eq!((total.relative, total.relative_sum), (1, 2.0));
        let backfill = Backfill::new(&total, 4);
        assert_eq!(backfill.mean_abs_revision, Some((1e308 + 2.0) / 2.0));
        assert_eq!(backfill.mean_relative_revision, Some(2.0));
    }

    #[test]
    fn sums_read_back_to_the_last_bit() {
        let mut revisions = Revisions::default();
        // Sums whose shortest spellings serde_json alone reads back one bit off.
        for (new, old) in [(2.0, 1.0), (1.0, 3.0), (5.0, 7e-7), (0.1, 0.7)] {
            revisions.record(1, Some(new), Some(old));
        }
        revisions.abs_sum = 1.8923085630129638e306;
        revisions.relative_sum = 9.257869682059511e302;
        let json = serde_json::to_string(&revisions).unwrap();
        let back: Revisions = serde_json::from_str(&json).unwrap();
        assert_eq!(back.abs_sum.to_bits(), revisions.abs_sum.to_bits());
        assert_eq!(
            back.relative_sum.to_bits(),
            revisions.relative_sum.to_bits()
        );
        // Records saved before, with plain numbers, still read.
        let old = r#"{"by_lag":{"1":2},"sized":2,"abs_sum":1.5,"relative":1,"relative_sum":0.25}"#;
        let old: Revisions = serde_json::from_str(old).unwrap();
        assert_eq!((old.abs_sum, old.relative_sum), (1.5, 0.25));
    }

    #[test]
    fn no_revisions() {
        let backfill = Backfill::new(&Revisions::default(), 0);
        assert_eq!(backfill.revised_share, 0.0);
        assert_eq!(backfill.median_revision_lag, None);
        assert_eq!(backfill.mean_abs_revision, None);
    }
}
