//! The stages of a run, in the order data flows through them: each reads the files the one
//! before it wrote.
//!
//! 1. [`discover`]: backups in a folder, dated, ordered, with their gaps;
//! 2. [`extract`]: one backup streamed into one partition per source;
//! 3. [`diff`]: two partitions of a source in a row give added, changed and removed rows
//!    (or the Spark job's result, [`diff::spark`]);
//! 4. [`emit`]: issue rows and removals written as SQL, CSV or Parquet;
//! 5. [`load`]: the SQL output into the live table, one transaction per date.

pub mod diff;
pub mod discover;
pub mod emit;
pub mod extract;
pub mod load;
