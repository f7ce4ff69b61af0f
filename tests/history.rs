//! `migrate history`: every issue of some points, with lag and change. Expected rows are
//! read off the hand-made series (tests/handmade) and computed by SQL, with window
//! functions, in MariaDB over the fixtures' output.

mod common;
mod handmade;

use std::path::{Path, PathBuf};

use common::*;

fn migrate_into(backups: &Path, out: &Path) {
    migrate()
        .arg("--backups")
        .arg(backups)
        .arg("--out")
        .arg(out)
        .arg("-q")
        .assert()
        .success();
}

fn migrate_handmade(dir: &Path) -> PathBuf {
    let backups = dir.join("backups");
    handmade::write_series(&backups);
    let out = dir.join("out");
    migrate_into(&backups, &out);
    out
}

/// Runs `migrate history` (CSV: its standard output is not a terminal).
fn history(out: &Path, args: &[&str]) -> Table {
    let output = migrate()
        .arg("history")
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = out.join("history.csv");
    std::fs::write(&file, &output.stdout).unwrap();
    read_csv(&file)
}

/// (time_value, geo_value, issue, lag, value, changed, value_change) of each row.
fn brief(table: &Table) -> Vec<[String; 7]> {
    let at = |name: &str| table.header.iter().position(|h| h == name).unwrap();
    let columns = [
        "time_value",
        "geo_value",
        "issue",
        "lag",
        "value",
        "changed",
        "value_change",
    ];
    table
        .rows
        .iter()
        .map(|row| columns.map(|c| row[at(c)].clone().unwrap_or_default()))
        .collect()
}

fn rows(expected: &[[&str; 7]]) -> Vec<[String; 7]> {
    expected.iter().map(|r| r.map(String::from)).collect()
}

#[test]
fn every_issue_of_a_point_with_lag_and_change() {
    let dir = tempfile::tempdir().unwrap();
    let out = migrate_handmade(dir.path());
    let common = ["--source", "src", "--signal", "sig"];
    // Read off the table in tests/handmade.
    let table = history(
        &out,
        &[&common[..], &["--geo", "aa", "--time-value", "20200601"]].concat(),
    );
    assert_eq!(
        table.header.join(","),
        "time_type,geo_type,time_value,geo_value,issue,lag,value_updated_timestamp,value,\
         stderr,sample_size,direction_updated_timestamp,direction,changed,value_change"
    );
    assert_eq!(
        brief(&table),
        rows(&[
            ["20200601", "aa", "20200602", "1", "1", "new", ""],
            ["20200601", "aa", "20200604", "3", "3", "value", "2"],
            ["20200601", "aa", "20200611", "10", "10", "value", "7"],
        ])
    );
    // A removed key that came back.
    assert_eq!(
        brief(&history(&out, &[&common[..], &["--geo", "rm"]].concat())),
        rows(&[
            ["20200601", "rm", "20200602", "1", "7", "new", ""],
            ["20200601", "rm", "20200604", "3", "", "removed", ""],
            ["20200601", "rm", "20200611", "10", "8", "re-added", ""],
        ])
    );
    // Every point of the signal in a range of days, ordered by point.
    let table = history(
        &out,
        &[&common[..], &["--time-value", "20200601..20200610"]].concat(),
    );
    let points: Vec<(String, String)> = brief(&table)
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("20200601", "aa", 3),
        ("20200601", "bb", 2),
        ("20200601", "gone", 2),
        ("20200601", "rm", 3),
        ("20200610", "aa", 2),
    ]
    .iter()
    .flat_map(|&(t, g, n)| std::iter::repeat_n((t.to_string(), g.to_string()), n))
    .collect();
    assert_eq!(points, expected);
    // Weekly rows: lag in epiweeks; two issues in one epiweek share their issue.
    assert_eq!(
        brief(&history(&out, &["--source", "src", "--signal", "wsig"])),
        rows(&[
            ["202023", "aa", "202023", "0", "1", "new", ""],
            ["202023", "aa", "202023", "0", "1.5", "value", "0.5"],
            ["202023", "aa", "202024", "1", "2", "value", "0.5"],
            ["202023", "aa", "202026", "3", "3", "value", "1"],
        ])
    );
}

#[test]
fn a_terminal_table_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = migrate_handmade(dir.path());
    let output = migrate()
        .args([
            "history", "--source", "src", "--signal", "sig", "--geo", "rm",
        ])
        .args(["--format", "table", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("time_type  geo_type  time_value  geo_value"),
        "{text}"
    );
    assert!(lines[2].contains(" removed"), "{text}");
    // Columns line up: `issue` ends at the same place on every line.
    let end = lines[0].find("issue").unwrap() + "issue".len();
    for line in &lines[1..] {
        assert!(
            line[..end].ends_with(|c: char| c.is_ascii_digit()),
            "{text}"
        );
        assert!(line[end..].starts_with(' '), "{text}");
    }
    // A signal the output does not hold is an input error naming it and those it holds.
    migrate()
        .args(["history", "--source", "src", "--signal", "nope", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("signal nope"))
        .stderr(predicates::str::contains("sig, wsig"));
    migrate()
        .args(["history", "--source", "src", "--signal", "sig", "--out"])
        .arg(&out)
        .args(["--time-value", "20200610..20200601"])
        .assert()
        .code(2);
}

#[test]
fn only_backups_that_can_hold_the_point_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = migrate_handmade(dir.path());
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["sources"]["src"]["negative_lag_rows"], 0);
    // Damage the first backup's issues: a point first issued later never reads them.
    let early = out.join("issues/20200602/src.sql");
    std::fs::write(
        &early,
        "INSERT INTO `covidcast` (`source`) VALUES ('oops);\n",
    )
    .unwrap();
    let args = ["--source", "src", "--signal", "sig", "--time-value"];
    assert_eq!(
        brief(&history(&out, &[&args[..], &["20200610"]].concat())),
        rows(&[
            ["20200610", "aa", "20200611", "1", "2", "new", ""],
            ["20200610", "aa", "20200621", "11", "2.5", "value", "0.5"],
        ])
    );
    // A point that the damaged file holds: the error names it.
    migrate()
        .arg("history")
        .args(args)
        .arg("20200601")
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("issues/20200602/src.sql"));
}

#[test]
fn rows_with_a_negative_lag_keep_every_backup_in_the_search() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    // 2020-06-05 is already in the backup of 06-04 (lag -1), then revised on 06-06.
    handmade::write_backup(&backups, "20200604", &[("sig", "day", 20200605, "aa", 1.0)]);
    handmade::write_backup(&backups, "20200606", &[("sig", "day", 20200605, "aa", 2.0)]);
    let out = dir.path().join("out");
    migrate_into(&backups, &out);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["sources"]["src"]["negative_lag_rows"], 1);
    assert_eq!(
        brief(&history(
            &out,
            &[
                "--source",
                "src",
                "--signal",
                "sig",
                "--time-value",
                "20200605"
            ]
        )),
        rows(&[
            ["20200605", "aa", "20200604", "-1", "1", "new", ""],
            ["20200605", "aa", "20200606", "1", "2", "value", "1"],
        ])
    );
}

const ISSUES_TABLE: &str = "
  id int NOT NULL AUTO_INCREMENT PRIMARY KEY,
  source varchar(32) NOT NULL, `signal` varchar(64) NOT NULL, time_type varchar(12) NOT NULL,
  geo_type varchar(12) NOT NULL, time_value int NOT NULL, geo_value varchar(12) NOT NULL,
  value_updated_timestamp int NOT NULL, value double, stderr double, sample_size double,
  direction_updated_timestamp int NOT NULL, direction int, issue int NOT NULL, `lag` int NOT NULL";

/// The history of @source's @signal in SQL: issue rows (loaded in date order, so `id`
/// orders two issues of one epiweek) and removals (daily in the fixtures: DATEDIFF is their
/// lag), each compared with the point's event before it.
const HISTORY_QUERY: &str = "
WITH events AS (
  SELECT time_type, geo_type, time_value, geo_value, issue, `lag`, value_updated_timestamp,
         value, stderr, sample_size, direction_updated_timestamp, direction, 0 AS gone, id AS ord
  FROM t.covidcast WHERE source = @source AND `signal` = @signal
  UNION ALL
  SELECT time_type, geo_type, time_value, geo_value, removed, DATEDIFF(removed, time_value),
         NULL, NULL, NULL, NULL, NULL, NULL, 1, 0
  FROM t.removals WHERE source = @source AND `signal` = @signal),
paired AS (
  SELECT e.*,
    LAG(1) OVER w AS p_exists, LAG(gone) OVER w AS p_gone,
    LAG(value_updated_timestamp) OVER w AS p_vut, LAG(value) OVER w AS p_value,
    LAG(stderr) OVER w AS p_stderr, LAG(sample_size) OVER w AS p_sample_size,
    LAG(direction_updated_timestamp) OVER w AS p_dut, LAG(direction) OVER w AS p_direction
  FROM events e
  WINDOW w AS (PARTITION BY time_type, geo_type, time_value, geo_value ORDER BY issue, ord))
SELECT time_type, geo_type, time_value, geo_value, issue, `lag`, value_updated_timestamp,
  value, stderr, sample_size, direction_updated_timestamp, direction,
  CASE WHEN gone = 1 THEN 'removed' WHEN p_exists IS NULL THEN 'new'
       WHEN p_gone = 1 THEN 're-added'
       ELSE CONCAT_WS(';',
         IF(value_updated_timestamp <=> p_vut, NULL, 'value_updated_timestamp'),
         IF(value <=> p_value, NULL, 'value'), IF(stderr <=> p_stderr, NULL, 'stderr'),
         IF(sample_size <=> p_sample_size, NULL, 'sample_size'),
         IF(direction_updated_timestamp <=> p_dut, NULL, 'direction_updated_timestamp'),
         IF(direction <=> p_direction, NULL, 'direction')) END,
  IF(gone = 0 AND p_gone = 0, value - p_value, NULL)
FROM paired
ORDER BY time_type, geo_type, time_value, geo_value, issue, ord";

#[test]
fn history_equals_sql_over_the_loaded_output() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &["--format", "sql"]);
    let db = MariaDb::start();
    db.sql("CREATE DATABASE t");
    // No unique key: both issues of a weekly row revised twice in one epiweek stay.
    db.sql(&format!("CREATE TABLE t.covidcast ({ISSUES_TABLE})"));
    db.sql(&format!("CREATE TABLE t.removals ({REMOVALS_TABLE})"));
    db.load_output("t", out.path(), "removals");
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM t.removals WHERE time_type <> 'day'"),
        "0\n"
    );
    let floats = ["value", "stderr", "sample_size", "value_change"];
    for (source, signal) in [
        ("fb-survey", "smoothed_cli"),
        ("fb-survey", "smoothed_wili"),
        ("doctor-visits", "smoothed_cli"),
        ("jhu-csse", "confirmed_incidence_num"),
    ] {
        let ours = history(out.path(), &["--source", source, "--signal", signal]);
        let query = HISTORY_QUERY
            .replace("@source", &format!("'{source}'"))
            .replace("@signal", &format!("'{signal}'"));
        let theirs = Table {
            header: ours.header.clone(),
            rows: db
                .sql(&query)
                .lines()
                .map(|line| {
                    line.split('\t')
                        .map(|f| (f != "NULL").then(|| f.to_string()))
                        .collect()
                })
                .collect(),
        };
        assert!(!theirs.rows.is_empty());
        // The same rows in the same order.
        let float_at: Vec<bool> = ours
            .header
            .iter()
            .map(|h| floats.contains(&h.as_str()))
            .collect();
        let canonical = |table: &Table| -> Vec<Vec<Option<String>>> {
            (table.rows.iter())
                .map(|row| {
                    row.iter()
                        .zip(&float_at)
                        .map(|(cell, is_float)| match (cell, is_float) {
                            (Some(text), true) => {
                                Some(format!("{:?}", text.parse::<f64>().unwrap()))
                            }
                            _ => cell.clone(),
                        })
                        .collect()
                })
                .collect()
        };
        assert_eq!(canonical(&ours), canonical(&theirs), "{source} {signal}");
    }
}

/// A source too large for the memory budget is read in buckets of `time_value` (forced here
/// with the hidden `--max-part-rows`), each bucket's points sorted to disk and merged: the
/// same history, weekly points with two issues in one epiweek and removals included.
#[test]
fn a_history_in_parts_is_the_whole_history() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &[]);
    for (source, signal) in [
        ("fb-survey", "smoothed_wili"),
        ("jhu-csse", "confirmed_incidence_num"),
    ] {
        let args = ["--source", source, "--signal", signal];
        let whole = history(out.path(), &args);
        let parts = history(out.path(), &[&args[..], &["--max-part-rows", "3"]].concat());
        assert!(whole.rows.len() > 3, "{source} {signal}: {whole:?}");
        assert_eq!(parts, whole, "{source} {signal}");
    }
}

/// `--source` and `--signal` take comma-separated lists, as `asof`'s do: the history of
/// several is each one's history in turn (sources in order), with a `source` column when
/// more than one source is asked and a `signal` column unless exactly one signal is; the
/// same whole or in parts.
#[test]
fn lists_of_sources_and_signals() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &[]);
    let sources = ["doctor-visits", "fb-survey"];
    let signals = ["smoothed_cli", "smoothed_wili"];
    let both = ["--source", "fb-survey,doctor-visits", "--signal"];
    let listed = history(
        out.path(),
        &[&both[..], &["smoothed_wili,smoothed_cli"]].concat(),
    );
    assert_eq!(listed.header[..2], ["source", "signal"]);
    let mut expected = Vec::new();
    for source in sources {
        // One source, no signal: every signal of it, with a `signal` column.
        let one = history(out.path(), &["--source", source]);
        assert_eq!(one.header[0], "signal");
        assert_eq!(one.header[1..], listed.header[2..]);
        for row in one.rows {
            if signals.contains(&row[0].as_deref().unwrap()) {
                let source = Some(source.to_string());
                expected.push([&[source][..], &row[..]].concat());
            }
        }
    }
    assert!(expected.len() > 10);
    assert_eq!(listed.rows, expected);
    let parts = history(
        out.path(),
        &[
            &both[..],
            &["smoothed_cli,smoothed_wili", "--max-part-rows", "3"],
        ]
        .concat(),
    );
    assert_eq!(parts, listed);
    // One signal of two sources: a `source` column, no `signal` column.
    let one_signal = history(
        out.path(),
        &[&both[..2], &["--signal", "smoothed_cli"]].concat(),
    );
    assert_eq!(one_signal.header[..2], ["source", "time_type"]);
}
