//! The revision panel's data: revisions counted on a grid of lag × size, so that thousands
//! of them show as density (a translucent mark per cell, darker where more) rather than as
//! a block of dots, and the 10th, 50th and 90th percentiles of their size at each lag.

/// One revision of a row: its geo (index in the request), lag, and new − old value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Revision {
    pub geo: usize,
    pub lag: i64,
    pub delta: f64,
}

/// The values drawn on an axis: all, unless a few extremes would squeeze the rest into a
/// line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeRange {
    pub lo: f64,
    pub hi: f64,
    /// Revisions beyond it (drawn at its edge).
    pub outside: usize,
}

/// Percentiles outside which revisions may be left beyond the axis.
const KEPT: (f64, f64) = (0.01, 0.99);

/// The range of `values` to draw: the whole range, unless it is more than 3× the range of
/// the middle 98%, which is then taken; with `zero`, widened to include zero (for
/// revisions, the "no change" line).
pub fn size_range(values: &[f64], zero: bool) -> SizeRange {
    let mut finite: Vec<f64> = values.iter().copied().filter(|d| d.is_finite()).collect();
    finite.sort_by(f64::total_cmp);
    let infinite = values.iter().filter(|d| d.is_infinite()).count();
    let zero = |(lo, hi): (f64, f64)| {
        if zero {
            (lo.min(0.0), hi.max(0.0))
        } else {
            (lo, hi)
        }
    };
    let (Some(&min), Some(&max)) = (finite.first(), finite.last()) else {
        return SizeRange {
            lo: -1.0,
            hi: 1.0,
            outside: infinite,
        };
    };
    let (lo, hi) = zero((percentile(&finite, KEPT.0), percentile(&finite, KEPT.1)));
    if max - min <= 3.0 * (hi - lo) {
        let (lo, hi) = zero((min, max));
        return SizeRange {
            lo,
            hi,
            outside: infinite,
        };
    }
    let outside = finite.iter().filter(|&&d| d < lo || d > hi).count();
    SizeRange {
        lo,
        hi,
        outside: outside + infinite,
    }
}

/// The `p` quantile of sorted `values`, linear between the nearest two.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let position = p * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let weight = position - below as f64;
    sorted[below] * (1.0 - weight) + sorted[above] * weight
}

/// A cell of the grid: the revisions of one geo in a span of lags and of sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    pub geo: usize,
    /// First and last lag of the span.
    pub lags: (i64, i64),
    pub sizes: (f64, f64),
    pub count: usize,
}

/// Lags per column, so that there are at most `max_columns` columns.
pub fn lags_per_column(first: i64, last: i64, max_columns: usize) -> i64 {
    let span = (last - first + 1).max(1);
    (span + max_columns as i64 - 1) / max_columns as i64
}

/// The revisions counted in cells of `lags` lags by `range` cut in `rows` rows; sizes
/// outside the range count in its edge rows.
pub fn cells(revisions: &[Revision], range: SizeRange, lags: i64, rows: usize) -> Vec<Cell> {
    let Some(first) = revisions.iter().map(|r| r.lag).min() else {
        return Vec::new();
    };
    let height = (range.hi - range.lo) / rows as f64;
    let mut counts = std::collections::BTreeMap::new();
    for r in revisions.iter().filter(|r| !r.delta.is_nan()) {
        let column = (r.lag - first).div_euclid(lags);
        let row = ((r.delta - range.lo) / height).floor();
        let row = row.clamp(0.0, (rows - 1) as f64) as usize;
        *counts.entry((r.geo, column, row)).or_insert(0) += 1;
    }
    counts
        .into_iter()
        .map(|((geo, column, row), count)| Cell {
            geo,
            lags: (first + column * lags, first + column * lags + lags - 1),
            sizes: (
                range.lo + row as f64 * height,
                range.lo + (row + 1) as f64 * height,
            ),
            count,
        })
        .collect()
}

/// Percentiles of the revision sizes of one column of lags (all geos).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantiles {
    pub lags: (i64, i64),
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

/// Columns with fewer revisions than this get no percentiles: they would say little.
pub const MIN_FOR_QUANTILES: usize = 10;

/// The 10th, 50th and 90th percentiles per column of `lags` lags.
pub fn quantiles(revisions: &[Revision], lags: i64) -> Vec<Quantiles> {
    let Some(first) = revisions.iter().map(|r| r.lag).min() else {
        return Vec::new();
    };
    let mut columns: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for r in revisions.iter().filter(|r| r.delta.is_finite()) {
        columns
            .entry((r.lag - first).div_euclid(lags))
            .or_default()
            .push(r.delta);
    }
    columns
        .into_iter()
        .filter(|(_, sizes)| sizes.len() >= MIN_FOR_QUANTILES)
        .map(|(column, mut sizes)| {
            sizes.sort_by(f64::total_cmp);
            Quantiles {
                lags: (first + column * lags, first + column * lags + lags - 1),
                p10: percentile(&sizes, 0.1),
                p50: percentile(&sizes, 0.5),
                p90: percentile(&sizes, 0.9),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(geo: usize, lag: i64, delta: f64) -> Revision {
        Revision { geo, lag, delta }
    }

    #[test]
    fn percentiles_interpolate() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&sorted, 0.5), 3.0);
        assert!((percentile(&sorted, 0.1) - 1.4).abs() < 1e-12);
        assert_eq!(percentile(&sorted, 1.0), 5.0);
        assert_eq!(percentile(&[7.0], 0.9), 7.0);
    }

    #[test]
    fn a_few_extremes_do_not_squeeze_the_rest() {
        // 1..=100 and one revision of a billion: the middle 98% is kept.
        let mut deltas: Vec<f64> = (1..=100).map(f64::from).collect();
        deltas.push(1e9);
        deltas.push(f64::INFINITY);
        let range = size_range(&deltas, true);
        assert_eq!(range.lo, 0.0);
        // 99th percentile of 102 values, of which one is left out as infinite: position
        // 0.99 × 100 = 99 of the 101 finite ones, between 100 and 1e9.
        assert_eq!(range.hi, 100.0);
        assert_eq!(range.outside, 2);
        // Without extremes the whole range, zero included.
        let range = size_range(&[2.0, 3.0, 5.0], true);
        assert_eq!((range.lo, range.hi, range.outside), (0.0, 5.0, 0));
        let range = size_range(&[2.0, 3.0, 5.0], false);
        assert_eq!((range.lo, range.hi, range.outside), (2.0, 5.0, 0));
        let range = size_range(&[], true);
        assert_eq!(range.outside, 0);
    }

    #[test]
    fn revisions_are_counted_per_geo_lag_and_size() {
        let range = SizeRange {
            lo: -1.0,
            hi: 1.0,
            outside: 0,
        };
        let revisions = [
            revision(0, 1, 0.1),
            revision(0, 1, 0.2),
            revision(1, 1, 0.2),
            revision(0, 2, -0.9),
            revision(0, 3, 5.0), // beyond the range: the top row
        ];
        let cells = cells(&revisions, range, 1, 4);
        let expected = vec![
            Cell {
                geo: 0,
                lags: (1, 1),
                sizes: (0.0, 0.5),
                count: 2,
            },
            Cell {
                geo: 0,
                lags: (2, 2),
                sizes: (-1.0, -0.5),
                count: 1,
            },
            Cell {
                geo: 0,
                lags: (3, 3),
                sizes: (0.5, 1.0),
                count: 1,
            },
            Cell {
                geo: 1,
                lags: (1, 1),
                sizes: (0.0, 0.5),
                count: 1,
            },
        ];
        assert_eq!(cells, expected);
        // Lags 0..=299 in at most 120 columns: 3 lags each.
        assert_eq!(lags_per_column(0, 299, 120), 3);
        assert_eq!(lags_per_column(1, 4, 120), 1);
    }

    #[test]
    fn percentiles_per_column_of_lags() {
        let mut revisions: Vec<Revision> = (0..10).map(|i| revision(0, 0, i as f64)).collect();
        revisions.extend((0..10).map(|i| revision(1, 1, 10.0 * i as f64)));
        revisions.push(revision(0, 5, 1.0)); // alone in its column: no percentiles
        let q = quantiles(&revisions, 2);
        // Lags 0 and 1 share a column: 0..9 and 0, 10, .., 90, sorted 0, 0, 1, .., 9, 10,
        // 20, .., 90. The 10th percentile is at position 1.9 (between 0 and 1: 0.9), the
        // median at 9.5 (between 8 and 9: 8.5), the 90th at 17.1 (between 70 and 80: 71).
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].lags, (0, 1));
        assert!((q[0].p10 - 0.9).abs() < 1e-9, "{q:?}");
        assert!((q[0].p90 - 71.0).abs() < 1e-9, "{q:?}");
        assert!((q[0].p50 - 8.5).abs() < 1e-9, "{q:?}");
    }
}
