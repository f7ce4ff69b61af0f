//! The series at a fixed lag K ("as first reported, K days in"): for every key, the row as it
//! stood K days (K epiweeks for weekly rows) after its `time_value`, i.e. the latest of its
//! issue rows whose lag is at most K. A removal within K takes the key out, as it did from
//! the table then; one after K does not. `asof --lag` and `plot --lag` both use this.

use anyhow::Result;
use polars::prelude::*;

use crate::config::layout::Layout;
use crate::inspect::events::REMOVED;
use crate::stages::diff::{key_exprs, sort_by_key};

/// The series at one lag.
pub struct AtLag {
    /// Every stored column, `issue` and `lag`; sorted by key.
    pub rows: DataFrame,
    /// Keys whose every event came more than K after their `time_value`: not in `rows`.
    pub never_seen: usize,
    /// Keys removed within K (and not back by then): not in `rows`.
    pub removed: usize,
}

/// The series at lag `k` from a source's events (`events::read_events`, in backup order).
pub fn at_lag(events: &DataFrame, layout: &Layout, k: i64) -> Result<AtLag> {
    let keys = key_exprs(layout);
    // Within a key, lag grows with the backup date, so the events within K are the first
    // ones and the last of them is how the key stood at lag K.
    let latest = events
        .clone()
        .lazy()
        .filter(col("lag").lt_eq(lit(k)))
        .unique_stable_generic(Some(keys.clone()), UniqueKeepStrategy::Last)
        .collect()?;
    let removed = latest.column(REMOVED)?.bool()?.sum().unwrap_or(0) as usize;
    let columns: Vec<Expr> = (layout.names().chain(["issue", "lag"])).map(col).collect();
    let rows = latest.lazy().filter(col(REMOVED).not()).select(columns);
    let rows = sort_by_key(rows, layout).collect()?;
    let never_seen = events
        .clone()
        .lazy()
        .group_by(keys)
        .agg([col("lag").min().alias("__first_lag")])
        .filter(col("__first_lag").gt(lit(k)))
        .collect()?
        .height();
    Ok(AtLag {
        rows,
        never_seen,
        removed,
    })
}
