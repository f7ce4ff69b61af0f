//! One dated backup file, as discovery finds it and as the records of finished units name it.

use std::path::PathBuf;

use chrono::NaiveDate;

/// One daily backup file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub date: NaiveDate,
    pub path: PathBuf,
}

impl Backup {
    /// The date as `YYYYMMDD`, the form used in file names and in `issue`.
    pub fn stamp(&self) -> String {
        self.date.format("%Y%m%d").to_string()
    }
}
