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
    migrate_fixtures(out.path(), &["--format", "sql", "--chunk-rows", "7"]);

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

/// The as-of query of the guide (docs/inspecting.md), for the backup date `@d`. Daily rows are exact at every
/// backup date; weekly rows at the last backup of each epiweek (their `issue` is an epiweek,
/// so backups within one epiweek cannot be told apart in SQL).
const ASOF_QUERY: &str = "
SELECT c.source, c.`signal`, c.time_type, c.geo_type, c.time_value, c.geo_value,
       c.value_updated_timestamp, c.value, c.stderr, c.sample_size,
       c.direction_updated_timestamp, c.direction
FROM covidcast c
JOIN (SELECT source, `signal`, time_type, geo_type, time_value, geo_value, MAX(issue) AS issue
      FROM covidcast
      WHERE issue <= IF(time_type = 'week', YEARWEEK(@d, 6), @d)
      GROUP BY source, `signal`, time_type, geo_type, time_value, geo_value) latest
  USING (source, `signal`, time_type, geo_type, time_value, geo_value, issue)
WHERE NOT EXISTS (
  SELECT 1 FROM covidcast_removals r
  WHERE (r.source, r.`signal`, r.time_type, r.geo_type, r.time_value, r.geo_value)
      = (c.source, c.`signal`, c.time_type, c.geo_type, c.time_value, c.geo_value)
    AND r.removed <= @d
    AND IF(c.time_type = 'week', YEARWEEK(r.removed, 6) >= c.issue, r.removed > c.issue))";

#[test]
fn the_readme_asof_query_returns_each_backup() {
    let guide = std::fs::read_to_string(root().join("docs/inspecting.md")).unwrap();
    let normalize = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        normalize(&guide).contains(&normalize(ASOF_QUERY)),
        "the guide must document the as-of query this test runs"
    );
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &["--format", "sql"]);
    let db = MariaDb::start();
    db.sql("CREATE DATABASE t");
    // Keyed like Epidata's table: one row per key and issue.
    db.sql(&format!(
        "CREATE TABLE t.covidcast ({ISSUES_TABLE}, UNIQUE KEY (source, `signal`, time_type, \
         geo_type, time_value, geo_value, issue))"
    ));
    db.sql(
        "CREATE TABLE t.covidcast_removals (source varchar(32), `signal` varchar(64), \
         time_type varchar(12), geo_type varchar(12), time_value int, geo_value varchar(12), \
         removed int)",
    );
    db.load_output("t", out.path(), "covidcast_removals");
    let backups = files_below(&fixture_backups(), "gz");
    let dates: Vec<String> = backups
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy()[15..23].to_string())
        .collect();
    let epiweek = |date: &str| {
        let d = chrono::NaiveDate::parse_from_str(date, "%Y%m%d").unwrap();
        migrate::values::epiweek::Epiweek::containing(d)
    };
    let columns = COLUMNS.replace(", `issue`, `lag`", "");
    let on: Vec<String> = columns
        .split(", ")
        .map(|c| format!("a.{c} <=> b.{c}"))
        .collect();
    let mut compared = 0;
    for (i, (date, dump)) in dates.iter().zip(&backups).enumerate() {
        // The backup itself, loaded by MariaDB from the dump.
        let sql = dump.with_extension("");
        let mut text = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(dump).unwrap()),
            &mut text,
        )
        .unwrap();
        let plain = db.files_dir().join(sql.file_name().unwrap());
        std::fs::write(&plain, text).unwrap();
        db.sql(&format!("CREATE DATABASE b{date}"));
        db.source(&format!("b{date}"), &plain);
        db.sql(&format!(
            "CREATE TABLE t.asof{date} AS {}",
            ASOF_QUERY
                .replace("@d", date)
                .replace("FROM covidcast", "FROM t.covidcast")
        ));
        let epiweek_ends = dates
            .get(i + 1)
            .is_none_or(|next| epiweek(next) != epiweek(date));
        let kept = if epiweek_ends {
            "TRUE"
        } else {
            "a.time_type = 'day'"
        };
        let unmatched = |a: &str, b: &str| {
            db.sql(&format!(
                "SELECT {columns} FROM {a} AS a WHERE {kept} AND NOT EXISTS \
                 (SELECT 1 FROM {b} AS b WHERE {})",
                on.join(" AND ")
            ))
        };
        let backup = format!("b{date}.covidcast");
        let asof = format!("t.asof{date}");
        assert_eq!(
            unmatched(&backup, &asof),
            "",
            "rows of {date} missing from the as-of query"
        );
        assert_eq!(
            unmatched(&asof, &backup),
            "",
            "rows the as-of query of {date} has in excess"
        );
        compared += 1;
    }
    assert_eq!(compared, 7);
}
