//! Dates: weekly rows across a 53-week year, a time_value later than its backup, and backup
//! names in any order.

mod common;

use common::*;

const CREATE: &str = "CREATE TABLE `covidcast` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  \
    `source` varchar(32) NOT NULL,\n  `signal` varchar(64) NOT NULL,\n  \
    `time_type` varchar(12) NOT NULL,\n  `geo_type` varchar(12) NOT NULL,\n  \
    `time_value` int(11) NOT NULL,\n  `geo_value` varchar(12) NOT NULL,\n  \
    `value` double DEFAULT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n";

fn backup(dir: &std::path::Path, date: &str, rows: &[(&str, i64, f64)]) {
    let values: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, (time_type, time_value, value))| {
            format!("({i},'src','sig','{time_type}','state',{time_value},'pa',{value})")
        })
        .collect();
    let sql = format!(
        "{CREATE}INSERT INTO `covidcast` VALUES {};\n",
        values.join(",\n")
    );
    std::fs::write(dir.join(format!("just_covidcast_{date}_database.sql")), sql).unwrap();
}

fn issues(dir: &std::path::Path) -> (Vec<Vec<Option<String>>>, String) {
    let out = tempfile::tempdir().unwrap();
    let output = migrate()
        .arg("--backups")
        .arg(dir)
        .arg("--out")
        .arg(out.path())
        .args(["--format", "csv"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    let table = read_all_csv(&out.path().join("issues"));
    let columns = ["time_type", "time_value", "value", "issue", "lag"];
    let index: Vec<usize> = columns
        .iter()
        .map(|c| table.header.iter().position(|h| h == c).unwrap())
        .collect();
    let rows = table
        .rows
        .iter()
        .map(|r| index.iter().map(|&i| r[i].clone()).collect())
        .collect();
    (rows, stderr)
}

fn row(cells: [&str; 5]) -> Vec<Option<String>> {
    cells.iter().map(|c| Some(c.to_string())).collect()
}

#[test]
fn weekly_issues_and_lags_around_week_53() {
    let dir = tempfile::tempdir().unwrap();
    // 2020-12-31 is in epiweek 2020-53; 2021-01-03 starts 2021-01.
    backup(
        dir.path(),
        "20201231",
        &[("week", 202052, 1.0), ("week", 202053, 2.0)],
    );
    backup(
        dir.path(),
        "20210103",
        &[
            ("week", 202052, 1.0),
            ("week", 202053, 2.5),
            ("week", 202101, 3.0),
        ],
    );
    let (mut rows, _) = issues(dir.path());
    rows.sort();
    assert_eq!(
        rows,
        vec![
            row(["week", "202052", "1", "202053", "1"]),
            row(["week", "202053", "2", "202053", "0"]),
            row(["week", "202053", "2.5", "202101", "1"]),
            row(["week", "202101", "3", "202101", "0"]),
        ]
    );
}

#[test]
fn a_time_value_after_its_backup_is_kept_with_a_negative_lag_and_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    backup(
        dir.path(),
        "20200601",
        &[("day", 20200601, 1.0), ("day", 20200603, 2.0)],
    );
    let (mut rows, stderr) = issues(dir.path());
    rows.sort();
    assert_eq!(
        rows,
        vec![
            row(["day", "20200601", "1", "20200601", "0"]),
            row(["day", "20200603", "2", "20200601", "-2"]),
        ]
    );
    assert!(
        stderr.contains("1 issue row(s) have a time_value after the backup date"),
        "{stderr}"
    );
}

#[test]
fn backups_are_ordered_by_the_date_in_their_names() {
    let dir = tempfile::tempdir().unwrap();
    // Written newest first, so the folder's own order is not the dates' order.
    backup(dir.path(), "20200610", &[("day", 20200601, 3.0)]);
    backup(dir.path(), "20200602", &[("day", 20200601, 2.0)]);
    backup(dir.path(), "20200601", &[("day", 20200601, 1.0)]);
    let (mut rows, stderr) = issues(dir.path());
    rows.sort();
    assert_eq!(
        rows,
        vec![
            row(["day", "20200601", "1", "20200601", "0"]),
            row(["day", "20200601", "2", "20200602", "1"]),
            row(["day", "20200601", "3", "20200610", "9"]),
        ]
    );
    assert!(
        stderr.contains("no backups for 2020-06-03 to 2020-06-09 (7 days)"),
        "{stderr}"
    );
}
