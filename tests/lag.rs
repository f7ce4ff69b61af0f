//! `migrate asof --lag K`: for every key, its latest issue with lag <= K. Expected values are
//! read off a hand-made series (tests/handmade) and computed by SQL in MariaDB over the
//! fixtures' output loaded into a table.

mod common;
mod handmade;

use std::path::Path;

use common::*;

/// Runs `migrate asof` with `args`; returns the table and what it logged.
fn asof(out: &Path, args: &[&str]) -> (Table, String) {
    let file = out.join("asof-lag.csv");
    let output = migrate()
        .arg("asof")
        .arg("--out")
        .arg(out)
        .arg("--to")
        .arg(&file)
        .args(args)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}");
    (read_csv(&file), log)
}

/// (signal, time_value, geo_value, value, issue, lag) of each row, in output order.
fn brief(table: &Table) -> Vec<(String, i64, String, f64, i64, i64)> {
    let at = |name: &str| table.header.iter().position(|h| h == name).unwrap();
    let text = |row: &Vec<Option<String>>, name: &str| row[at(name)].clone().unwrap();
    let number = |row: &Vec<Option<String>>, name: &str| text(row, name).parse::<i64>().unwrap();
    table
        .rows
        .iter()
        .map(|row| {
            (
                text(row, "signal"),
                number(row, "time_value"),
                text(row, "geo_value"),
                text(row, "value").parse::<f64>().unwrap(),
                number(row, "issue"),
                number(row, "lag"),
            )
        })
        .collect()
}

type Brief = (&'static str, i64, &'static str, f64, i64, i64);

fn owned(rows: &[Brief]) -> Vec<(String, i64, String, f64, i64, i64)> {
    rows.iter()
        .map(|&(s, t, g, v, i, l)| (s.to_string(), t, g.to_string(), v, i, l))
        .collect()
}

fn migrate_handmade(dir: &Path) -> std::path::PathBuf {
    let backups = dir.join("backups");
    handmade::write_series(&backups);
    let out = dir.join("out");
    migrate()
        .arg("--backups")
        .arg(&backups)
        .arg("--out")
        .arg(&out)
        .arg("-q")
        .assert()
        .success();
    out
}

#[test]
fn a_key_revised_at_lags_1_3_and_10_asked_at_several_lags() {
    let dir = tempfile::tempdir().unwrap();
    let out = migrate_handmade(dir.path());
    // Read off the table in tests/handmade: per K, the value each key had K days (weeks
    // for `wsig`) after its time_value, with the issue and lag it came from.
    let cases: [(&str, &[Brief], Option<&str>); 5] = [
        (
            "0",
            &[("wsig", 202023, "aa", 1.5, 202023, 0)],
            Some("5 key(s) have no issue within lag 0"),
        ),
        (
            "2",
            &[
                ("sig", 20200601, "aa", 1.0, 20200602, 1),
                ("sig", 20200601, "bb", 5.0, 20200602, 1),
                ("sig", 20200601, "gone", 4.0, 20200602, 1),
                ("sig", 20200601, "rm", 7.0, 20200602, 1),
                ("sig", 20200610, "aa", 2.0, 20200611, 1),
                ("wsig", 202023, "aa", 2.0, 202024, 1),
            ],
            None,
        ),
        (
            "5",
            &[
                ("sig", 20200601, "aa", 3.0, 20200604, 3),
                ("sig", 20200601, "bb", 5.0, 20200602, 1),
                ("sig", 20200601, "gone", 4.0, 20200602, 1),
                ("sig", 20200610, "aa", 2.0, 20200611, 1),
                ("wsig", 202023, "aa", 3.0, 202026, 3),
            ],
            Some("1 key(s) were removed within lag 5"),
        ),
        (
            "10",
            &[
                ("sig", 20200601, "aa", 10.0, 20200611, 10),
                ("sig", 20200601, "bb", 5.0, 20200602, 1),
                ("sig", 20200601, "rm", 8.0, 20200611, 10),
                ("sig", 20200610, "aa", 2.0, 20200611, 1),
                ("wsig", 202023, "aa", 3.0, 202026, 3),
            ],
            Some("1 key(s) were removed within lag 10"),
        ),
        (
            "20",
            &[
                ("sig", 20200601, "aa", 10.0, 20200611, 10),
                ("sig", 20200601, "bb", 20.0, 20200621, 20),
                ("sig", 20200601, "rm", 8.0, 20200611, 10),
                ("sig", 20200610, "aa", 2.5, 20200621, 11),
                ("wsig", 202023, "aa", 3.0, 202026, 3),
            ],
            Some("1 key(s) were removed within lag 20"),
        ),
    ];
    for (lag, expected, logged) in cases {
        let (table, log) = asof(&out, &["--lag", lag]);
        assert_eq!(brief(&table), owned(expected), "at lag {lag}");
        if let Some(line) = logged {
            assert!(
                log.contains(line),
                "at lag {lag}, the log lacks {line:?}: {log}"
            );
        }
        assert!(
            !log.contains("left out") || logged.is_some(),
            "at lag {lag}: {log}"
        );
    }
    let (header, _) = asof(&out, &["--lag", "2"]);
    assert_eq!(
        header.header.join(","),
        "source,signal,time_type,geo_type,time_value,geo_value,value_updated_timestamp,value,\
         stderr,sample_size,direction_updated_timestamp,direction,issue,lag"
    );
}

#[test]
fn lag_with_a_date_uses_only_backups_up_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = migrate_handmade(dir.path());
    // Only the backup of 06-02: the removal of `rm` on 06-04 is not known yet.
    let (table, _) = asof(&out, &["--lag", "5", "--date", "20200603"]);
    assert_eq!(
        brief(&table),
        owned(&[
            ("sig", 20200601, "aa", 1.0, 20200602, 1),
            ("sig", 20200601, "bb", 5.0, 20200602, 1),
            ("sig", 20200601, "gone", 4.0, 20200602, 1),
            ("sig", 20200601, "rm", 7.0, 20200602, 1),
            ("wsig", 202023, "aa", 1.0, 202023, 0),
        ])
    );
    // Up to 06-11: `gone` was removed at lag 10, `rm` came back at lag 10.
    let (table, _) = asof(
        &out,
        &["--lag", "20", "--date", "20200612", "--signal", "sig"],
    );
    assert_eq!(
        brief(&table),
        owned(&[
            ("sig", 20200601, "aa", 10.0, 20200611, 10),
            ("sig", 20200601, "bb", 5.0, 20200602, 1),
            ("sig", 20200601, "rm", 8.0, 20200611, 10),
            ("sig", 20200610, "aa", 2.0, 20200611, 1),
        ])
    );
}

#[test]
fn lag_needs_no_date_but_plain_asof_does() {
    migrate().args(["asof", "--out", "x"]).assert().code(2);
    migrate()
        .args(["asof", "--out", "x", "--lag", "-1"])
        .assert()
        .code(2);
}

/// Splits the `mariadb --batch` output into rows; NULL is None.
fn batch_rows(text: &str) -> Vec<Vec<Option<String>>> {
    text.lines()
        .map(|line| {
            line.split('\t')
                .map(|field| match field {
                    "NULL" => None,
                    _ => Some(
                        field
                            .replace("\\t", "\t")
                            .replace("\\n", "\n")
                            .replace("\\\\", "\\"),
                    ),
                })
                .collect()
        })
        .collect()
}

const ISSUES_TABLE: &str = "
  id int NOT NULL AUTO_INCREMENT PRIMARY KEY,
  source varchar(32) NOT NULL, `signal` varchar(64) NOT NULL, time_type varchar(12) NOT NULL,
  geo_type varchar(12) NOT NULL, time_value int NOT NULL, geo_value varchar(12) NOT NULL,
  value_updated_timestamp int NOT NULL, value double, stderr double, sample_size double,
  direction_updated_timestamp int NOT NULL, direction int, issue int NOT NULL, `lag` int NOT NULL,
  UNIQUE KEY (source, `signal`, time_type, geo_type, time_value, geo_value, issue)";

const KEY: &str = "source, `signal`, time_type, geo_type, time_value, geo_value";

/// The series at lag @k from backups up to @d, in SQL over the loaded issues and removals:
/// each key's row of greatest issue among those with lag <= @k, unless a removal came after
/// it, at most @k days after its time_value. (The fixtures remove daily rows only, which is
/// what the DATEDIFF counts; the test checks that.)
const LAG_QUERY: &str = "
SELECT c.source, c.`signal`, c.time_type, c.geo_type, c.time_value, c.geo_value,
       c.value_updated_timestamp, c.value, c.stderr, c.sample_size,
       c.direction_updated_timestamp, c.direction, c.issue, c.`lag`
FROM t.covidcast c
JOIN (SELECT source, `signal`, time_type, geo_type, time_value, geo_value, MAX(issue) AS issue
      FROM t.covidcast
      WHERE `lag` <= @k AND issue <= IF(time_type = 'week', YEARWEEK(@d, 6), @d)
      GROUP BY source, `signal`, time_type, geo_type, time_value, geo_value) latest
  USING (source, `signal`, time_type, geo_type, time_value, geo_value, issue)
WHERE NOT EXISTS (
  SELECT 1 FROM t.removals r
  WHERE (r.source, r.`signal`, r.time_type, r.geo_type, r.time_value, r.geo_value)
      = (c.source, c.`signal`, c.time_type, c.geo_type, c.time_value, c.geo_value)
    AND r.removed > c.issue AND r.removed <= @d
    AND DATEDIFF(r.removed, c.time_value) <= @k)";

#[test]
fn asof_lag_equals_sql_over_the_loaded_output() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &["--format", "sql"]);
    let db = MariaDb::start();
    db.sql("CREATE DATABASE t");
    db.sql(&format!("CREATE TABLE t.covidcast ({ISSUES_TABLE})"));
    db.sql(&format!("CREATE TABLE t.removals ({REMOVALS_TABLE})"));
    // In date order, as Epidata loads them: within an epiweek the later row replaces.
    db.load_output("t", out.path(), "removals");
    assert_eq!(
        db.sql("SELECT COUNT(*), SUM(time_type = 'day') FROM t.removals"),
        "5\t5\n"
    );
    let keys: usize = db
        .sql(&format!(
            "SELECT COUNT(*) FROM (SELECT DISTINCT {KEY} FROM t.covidcast) k"
        ))
        .trim()
        .parse()
        .unwrap();
    // Lags 0 to 7 cover every issue's lag (1 to 4) and every removal's (2 to 6).
    for k in 0..=7 {
        let sql = |date: &str| {
            let query = LAG_QUERY.replace("@k", &k.to_string()).replace("@d", date);
            let mut rows = batch_rows(&db.sql(&query));
            rows.sort();
            rows
        };
        let (ours, log) = asof(out.path(), &["--lag", &k.to_string()]);
        let theirs = Table {
            header: ours.header.clone(),
            rows: sql("20200608"),
        };
        assert_eq!(
            ours.normalized(&FLOAT_COLUMNS),
            theirs.normalized(&FLOAT_COLUMNS),
            "lag {k}"
        );
        if k == 0 {
            // No fixture row is issued on its own day.
            assert!(theirs.rows.is_empty());
            assert!(
                log.contains(&format!("{keys} key(s) have no issue within lag 0")),
                "{log}"
            );
        }
        // With a date: weekly rows only where it ends an epiweek (see the README).
        for (date, weekly_too) in [("20200602", false), ("20200606", true)] {
            let (table, _) = asof(out.path(), &["--lag", &k.to_string(), "--date", date, "-q"]);
            let time_type = table.header.iter().position(|h| h == "time_type").unwrap();
            let kept = |rows: Vec<Vec<Option<String>>>| Table {
                header: table.header.clone(),
                rows: rows
                    .into_iter()
                    .filter(|r| weekly_too || r[time_type].as_deref() == Some("day"))
                    .collect(),
            };
            assert_eq!(
                kept(table.rows.clone()).normalized(&FLOAT_COLUMNS),
                kept(sql(date)).normalized(&FLOAT_COLUMNS),
                "lag {k} up to {date}"
            );
        }
    }
}
