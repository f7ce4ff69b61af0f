//! The record of loaded dates, kept in the target database itself (as Flyway and
//! `sqlx migrate` keep the migrations they applied): one row per target table and date,
//! written in the same transaction as the date's rows, so the table and its record never
//! disagree, whatever stops the load.

use std::collections::BTreeMap;

use mysql::prelude::Queryable;
use mysql::Conn;

/// The record's table, created on first use beside the target.
pub const RECORD_TABLE: &str = "migrate_loaded_dates";

/// One date as the record holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedDate {
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
    pub checksum: String,
}

pub fn create_if_missing(conn: &mut Conn) -> mysql::Result<()> {
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS `{RECORD_TABLE}` (
  `target_table` varchar(64) NOT NULL,
  `date` char(8) NOT NULL,
  `rows` bigint unsigned NOT NULL,
  `files` int unsigned NOT NULL,
  `bytes` bigint unsigned NOT NULL,
  `checksum` char(32) NOT NULL,
  `loaded_at` datetime(6) NOT NULL,
  `tool_version` varchar(32) NOT NULL,
  PRIMARY KEY (`target_table`, `date`)
) ENGINE=InnoDB COMMENT='dates loaded by migrate load: one transaction each'"
    ))
}

/// The dates already loaded into `table`.
pub fn loaded(conn: &mut Conn, table: &str) -> mysql::Result<BTreeMap<String, LoadedDate>> {
    let rows: Vec<(String, u64, u64, u64, String)> = conn.exec(
        format!(
            "SELECT `date`, `rows`, `files`, `bytes`, `checksum` FROM `{RECORD_TABLE}` \
             WHERE `target_table` = ? ORDER BY `date`"
        ),
        (table,),
    )?;
    Ok(rows
        .into_iter()
        .map(|(date, rows, files, bytes, checksum)| {
            (
                date,
                LoadedDate {
                    rows,
                    files,
                    bytes,
                    checksum,
                },
            )
        })
        .collect())
}

/// Records `date` as loaded; run inside the date's transaction.
pub fn record(conn: &mut Conn, table: &str, date: &str, loaded: &LoadedDate) -> mysql::Result<()> {
    conn.exec_drop(
        format!(
            "INSERT INTO `{RECORD_TABLE}` (`target_table`, `date`, `rows`, `files`, `bytes`, \
             `checksum`, `loaded_at`, `tool_version`) VALUES (?, ?, ?, ?, ?, ?, NOW(6), ?)"
        ),
        (
            table,
            date,
            loaded.rows,
            loaded.files,
            loaded.bytes,
            &loaded.checksum,
            env!("CARGO_PKG_VERSION"),
        ),
    )
}
