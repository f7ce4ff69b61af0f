//! Value types below everything else: dates and epiweeks, `issue` and `lag`, binary column
//! values, exact decimals, byte sizes for people, a dated backup, and revision statistics.
//! Nothing here imports another part of the crate.

pub mod backfill;
pub mod backup;
pub mod binary;
pub mod bytes;
pub mod database_url;
pub mod dates;
pub mod decimal;
pub mod epiweek;
pub mod lag;
#[cfg(test)]
pub(crate) mod test_doubles;
