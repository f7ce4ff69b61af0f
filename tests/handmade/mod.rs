//! Small backup series written by hand, whose issues at each lag are known without running
//! `migrate`: the expected values in the tests are read off the tables below.
#![allow(dead_code)]

use std::path::Path;

/// One row of a backup: (signal, time_type, time_value, geo_value, value); the source is
/// `src`, the geo_type `state`, and the other columns constant.
pub type Row = (&'static str, &'static str, i64, &'static str, f64);

/// Backups of 2020-06-02, 06-04, 06-11 and 06-21. Daily rows (signal `sig`), with their lag
/// (days after time_value 2020-06-01, or 06-10 for `aa` 20200610) in each backup:
///
/// | key            | 06-02 (lag 1) | 06-04 (lag 3) | 06-11 (lag 10) | 06-21 (lag 20) |
/// |----------------|---------------|---------------|----------------|----------------|
/// | 20200601 aa    | 1             | 3             | 10             | 10             |
/// | 20200601 bb    | 5             | 5             | 5              | 20             |
/// | 20200601 rm    | 7             | removed       | 8 (back)       | 8              |
/// | 20200601 gone  | 4             | 4             | removed        | -              |
/// | 20200610 aa    | -             | -             | 2 (lag 1)      | 2.5 (lag 11)   |
///
/// A weekly row (signal `wsig`, time_value epiweek 2020-23, May 31 to June 6): 1 and 1.5 in
/// the two backups of its own week (lag 0, both issue 202023), 2 on 06-11 (epiweek 24,
/// lag 1), 3 on 06-21 (a Sunday: epiweek 26, lag 3).
pub const SERIES: [(&str, &[Row]); 4] = [
    (
        "20200602",
        &[
            ("sig", "day", 20200601, "aa", 1.0),
            ("sig", "day", 20200601, "bb", 5.0),
            ("sig", "day", 20200601, "rm", 7.0),
            ("sig", "day", 20200601, "gone", 4.0),
            ("wsig", "week", 202023, "aa", 1.0),
        ],
    ),
    (
        "20200604",
        &[
            ("sig", "day", 20200601, "aa", 3.0),
            ("sig", "day", 20200601, "bb", 5.0),
            ("sig", "day", 20200601, "gone", 4.0),
            ("wsig", "week", 202023, "aa", 1.5),
        ],
    ),
    (
        "20200611",
        &[
            ("sig", "day", 20200601, "aa", 10.0),
            ("sig", "day", 20200601, "bb", 5.0),
            ("sig", "day", 20200601, "rm", 8.0),
            ("sig", "day", 20200610, "aa", 2.0),
            ("wsig", "week", 202023, "aa", 2.0),
        ],
    ),
    (
        "20200621",
        &[
            ("sig", "day", 20200601, "aa", 10.0),
            ("sig", "day", 20200601, "bb", 20.0),
            ("sig", "day", 20200601, "rm", 8.0),
            ("sig", "day", 20200610, "aa", 2.5),
            ("wsig", "week", 202023, "aa", 3.0),
        ],
    ),
];

/// Writes one backup as a plain mariadb-dump-like SQL file into `dir`.
pub fn write_backup(dir: &Path, date: &str, rows: &[Row]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut sql = String::from(
        "CREATE TABLE `covidcast` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  \
         `source` varchar(32) NOT NULL,\n  `signal` varchar(64) NOT NULL,\n  \
         `time_type` varchar(12) NOT NULL,\n  `geo_type` varchar(12) NOT NULL,\n  \
         `time_value` int(11) NOT NULL,\n  `geo_value` varchar(12) NOT NULL,\n  \
         `value_updated_timestamp` int(11) NOT NULL,\n  `value` double DEFAULT NULL,\n  \
         `stderr` double DEFAULT NULL,\n  `sample_size` double DEFAULT NULL,\n  \
         `direction_updated_timestamp` int(11) NOT NULL,\n  `direction` int(11) DEFAULT NULL,\n  \
         PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\
         INSERT INTO `covidcast` VALUES ",
    );
    for (i, (signal, time_type, time_value, geo, value)) in rows.iter().enumerate() {
        if i > 0 {
            sql.push_str(",\n");
        }
        sql.push_str(&format!(
            "({},'src','{signal}','{time_type}','state',{time_value},'{geo}',100,{value},NULL,NULL,100,NULL)",
            i + 1
        ));
    }
    sql.push_str(";\n");
    let name = format!("just_covidcast_{date}_database.sql");
    std::fs::write(dir.join(name), sql).unwrap();
}

/// Writes `SERIES` into `dir`.
pub fn write_series(dir: &Path) {
    for (date, rows) in SERIES {
        write_backup(dir, date, rows);
    }
}
