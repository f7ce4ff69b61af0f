//! The SQL that `migrate` emits, loaded into a real MariaDB table shaped like the migrated
//! table (the dump's columns plus `issue` and `lag`), holds exactly the expected issues.

mod common;

use common::*;

/// The fixtures' table as the migration leaves it: the dump's columns, then issue and lag.
const ISSUES_TABLE: &str = "
  id int NOT NULL AUTO_INCREMENT PRIMARY KEY,
  source varchar(32) NOT NULL, `signal` varchar(64) NOT NULL, time_type varchar(12) NOT NULL,
  geo_type varchar(12) NOT NULL, time_value int NOT NULL, geo_value varchar(12) NOT NULL,
  value_updated_timestamp int NOT NULL, value double, stderr double, sample_size double,
  direction_updated_timestamp int NOT NULL, direction int, issue int NOT NULL, `lag` int NOT NULL";

const COLUMNS: &str = "`source`, `signal`, `time_type`, `geo_type`, `time_value`, \
    `geo_value`, `value_updated_timestamp`, `value`, `stderr`, `sample_size`, \
    `direction_updated_timestamp`, `direction`, `issue`, `lag`";

#[test]
fn emitted_sql_loads_into_mariadb_and_equals_the_expected_issues() {
    let out = tempfile::tempdir().unwrap();
    migrate()
        .arg("--backups")
        .arg(fixture_backups())
        .arg("--out")
        .arg(out.path())
        .args(["--format", "sql", "--chunk-rows", "7"])
        .assert()
        .success();

    let db = MariaDb::start();
    db.sql("CREATE DATABASE t");
    db.sql(&format!("CREATE TABLE t.covidcast ({ISSUES_TABLE})"));
    db.sql(&format!("CREATE TABLE t.expected ({ISSUES_TABLE})"));
    let files = files_below(&out.path().join("issues"), "sql");
    assert!(!files.is_empty());
    for file in &files {
        db.source("t", file);
    }

    let expected_file = db.files_dir().join("issues.csv");
    std::fs::copy(expected("issues.csv"), &expected_file).unwrap();
    db.sql(&format!(
        "LOAD DATA INFILE '{}' INTO TABLE t.expected FIELDS TERMINATED BY ',' \
         OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' \
         IGNORE 1 LINES ({COLUMNS})",
        expected_file.display()
    ));

    let count = |table: &str| db.sql(&format!("SELECT COUNT(*) FROM t.{table}"));
    let expected_rows = count("expected");
    assert!(expected_rows.trim().parse::<u64>().unwrap() > 0);
    assert_eq!(count("covidcast"), expected_rows);
    // Null-safe anti-joins both ways: every row has an identical partner.
    let on: Vec<String> = COLUMNS
        .split(", ")
        .map(|c| format!("a.{c} <=> b.{c}"))
        .collect();
    let unmatched = |a: &str, b: &str| {
        db.sql(&format!(
            "SELECT {COLUMNS} FROM t.{a} AS a WHERE NOT EXISTS \
             (SELECT 1 FROM t.{b} AS b WHERE {})",
            on.join(" AND ")
        ))
    };
    assert_eq!(
        unmatched("covidcast", "expected"),
        "",
        "loaded rows not expected"
    );
    assert_eq!(
        unmatched("expected", "covidcast"),
        "",
        "expected rows not loaded"
    );
}
