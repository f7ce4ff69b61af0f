//! Binary columns (`binary`, `varbinary`, `bit`): read from MySQL 8 dumps
//! (`fixtures/mysql8`, written by hand in `mysqldump` 8.0's format) and from dumps the real
//! `mariadb-dump` makes here, compared by their bytes whatever literal spelled them, and
//! written out so that the same bytes load back into MariaDB (checked with `HEX()` and
//! null-safe joins against what MariaDB itself computes from the backups).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use polars::prelude::*;

fn mysql8_backups() -> PathBuf {
    root().join("fixtures/mysql8/backups")
}

const DATES: [&str; 3] = ["20200601", "20200602", "20200603"];

/// The fixture table's columns after migration: the dump's columns but `id`, then `issue`
/// and `lag`.
const ISSUES_TABLE: &str = "source varchar(32) NOT NULL, `signal` varchar(64) NOT NULL, \
    time_type varchar(12) NOT NULL, geo_type varchar(12) NOT NULL, time_value int NOT NULL, \
    geo_value varchar(12) NOT NULL, value double, is_latest_issue binary(1) NOT NULL, \
    is_wip binary(1), payload varbinary(16), flags bit(4), issue int NOT NULL, `lag` int NOT NULL";

const KEY: [&str; 6] = [
    "source",
    "`signal`",
    "time_type",
    "geo_type",
    "time_value",
    "geo_value",
];
const COMPARED: [&str; 5] = ["value", "is_latest_issue", "is_wip", "payload", "flags"];

fn migrate_into(backups: &Path, out: &Path, extra: &[&str]) {
    migrate()
        .arg("--backups")
        .arg(backups)
        .arg("--out")
        .arg(out)
        .arg("-q")
        .args(extra)
        .assert()
        .success();
}

/// Loads each MySQL 8 backup into a database of its own (`b<date>`). MariaDB 10.11 does not
/// know MySQL 8's default collation, so it is renamed first; nothing else is changed.
fn load_mysql8_backups(db: &MariaDb, scratch: &Path) {
    for date in DATES {
        let dump = mysql8_backups().join(format!("just_covidcast_{date}_database.sql"));
        let bytes = std::fs::read(&dump).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("utf8mb4_0900_ai_ci"));
        let renamed = replace_bytes(&bytes, b"utf8mb4_0900_ai_ci", b"utf8mb4_general_ci");
        let copy = scratch.join(format!("{date}.sql"));
        std::fs::write(&copy, renamed).unwrap();
        db.sql(&format!("CREATE DATABASE b{date}"));
        db.source(&format!("b{date}"), &copy);
    }
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = haystack;
    while let Some(i) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(to);
        rest = &rest[i + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The issue rows MariaDB computes from the loaded backups into `t.expected`: every row of
/// the first, then the rows of each later backup whose key is new or whose compared columns
/// differ under `<=>` (byte for byte for binary columns).
fn expected_issues(db: &MariaDb) {
    db.sql(&format!("CREATE TABLE t.expected ({ISSUES_TABLE})"));
    let columns = KEY
        .iter()
        .chain(&COMPARED)
        .map(|c| format!("n.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    for (i, date) in DATES.iter().enumerate() {
        let changed = match i {
            0 => String::new(),
            _ => {
                let same: Vec<String> = KEY
                    .iter()
                    .map(|c| format!("o.{c} = n.{c}"))
                    .chain(COMPARED.iter().map(|c| format!("o.{c} <=> n.{c}")))
                    .collect();
                format!(
                    "WHERE NOT EXISTS (SELECT 1 FROM b{}.covidcast o WHERE {})",
                    DATES[i - 1],
                    same.join(" AND ")
                )
            }
        };
        db.sql(&format!(
            "INSERT INTO t.expected SELECT {columns}, {date}, DATEDIFF({date}, n.time_value) \
             FROM b{date}.covidcast n {changed}"
        ));
    }
}

/// Rows of `a` with no identical row in `b` (null-safe on every column).
fn unmatched(db: &MariaDb, a: &str, b: &str) -> String {
    let all: Vec<&str> = KEY.iter().chain(&COMPARED).copied().collect();
    let on: Vec<String> = all
        .iter()
        .chain(&["issue", "`lag`"])
        .map(|c| format!("a.{c} <=> b.{c}"))
        .collect();
    db.sql(&format!(
        "SELECT a.geo_value, a.issue FROM t.{a} a WHERE NOT EXISTS \
         (SELECT 1 FROM t.{b} b WHERE {})",
        on.join(" AND ")
    ))
}

#[test]
fn mysql8_backups_migrate_to_sql_that_loads_back_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    migrate_into(&mysql8_backups(), &out, &["--format", "sql"]);

    let db = MariaDb::start();
    load_mysql8_backups(&db, dir.path());
    db.sql("CREATE DATABASE t");
    expected_issues(&db);
    db.sql(&format!("CREATE TABLE t.covidcast ({ISSUES_TABLE})"));
    for date in DATES {
        for file in files_below(&out.join("issues").join(date), "sql") {
            db.source("t", &file);
        }
    }
    let count = |table: &str| db.sql(&format!("SELECT COUNT(*) FROM t.{table}"));
    assert_eq!(count("expected"), "8\n");
    assert_eq!(count("covidcast"), "8\n");
    assert_eq!(
        unmatched(&db, "covidcast", "expected"),
        "",
        "rows not expected"
    );
    assert_eq!(
        unmatched(&db, "expected", "covidcast"),
        "",
        "rows not loaded"
    );

    // The rows and bytes the fixture's README describes, by hand: the same bytes spelled
    // `_binary '…'`, `0x…` or `X'…'` make no issue row.
    let issues = db.sql(
        "SELECT issue, time_value, geo_value FROM t.covidcast ORDER BY issue, geo_value, \
         time_value",
    );
    assert_eq!(
        issues,
        "20200601\t20200530\t01001\n20200601\t20200531\t01001\n20200601\t20200531\t01003\n\
         20200601\t20200531\t42003\n20200601\t20200531\tpa\n\
         20200602\t20200601\t01001\n20200602\t20200531\t42003\n\
         20200603\t20200601\t01001\n"
    );
    let hex = |column: &str, issue: u32, time_value: u32, geo: &str| {
        db.sql(&format!(
            "SELECT IFNULL(HEX({column}), 'NULL') FROM t.covidcast WHERE issue = {issue} \
             AND time_value = {time_value} AND geo_value = '{geo}'"
        ))
    };
    assert_eq!(hex("payload", 20200601, 20200530, "01001"), "00FF\n");
    assert_eq!(
        hex("payload", 20200601, 20200531, "01001"),
        "000A0D5C27221A80\n"
    );
    assert_eq!(hex("payload", 20200601, 20200531, "01003"), "\n");
    assert_eq!(hex("is_wip", 20200601, 20200531, "01003"), "NULL\n");
    assert_eq!(hex("payload", 20200601, 20200531, "42003"), "FF\n");
    assert_eq!(hex("payload", 20200602, 20200531, "42003"), "FE\n");
    assert_eq!(hex("is_wip", 20200602, 20200601, "01001"), "00\n");
    assert_eq!(hex("is_wip", 20200603, 20200601, "01001"), "30\n");
    assert_eq!(hex("is_latest_issue", 20200603, 20200601, "01001"), "01\n");
    assert_eq!(hex("flags + 0", 20200601, 20200530, "01001"), "A\n");

    let removals = read_all_csv(&out.join("removals"));
    assert_eq!(removals.rows.len(), 1);
    assert_eq!(removals.rows[0][5].as_deref(), Some("pa"));
    assert_eq!(removals.rows[0][6].as_deref(), Some("20200602"));

    // The output proves itself: replaying it rebuilds every backup.
    migrate()
        .args(["verify", "-q", "--backups"])
        .arg(mysql8_backups())
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
}

#[test]
fn binary_values_are_hex_in_csv_and_bytes_in_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let (sql_csv, sql, csv, parquet) = (
        dir.path().join("sql-csv-partitions"),
        dir.path().join("sql"),
        dir.path().join("csv"),
        dir.path().join("parquet"),
    );
    migrate_into(&mysql8_backups(), &sql, &[]);
    migrate_into(&mysql8_backups(), &sql_csv, &["--partition-format", "csv"]);
    assert_same_output(&sql_csv, &sql, &[]);
    migrate()
        .args(["verify", "-q", "--partition-format", "csv", "--backups"])
        .arg(mysql8_backups())
        .arg("--out")
        .arg(&sql_csv)
        .assert()
        .success();

    // Partitions: a binary column in Parquet, hex digits in CSV.
    let partition =
        |out: &Path, ext: &str| out.join(format!(".work/partitions/date=20200601/fb-survey.{ext}"));
    let frame = ParquetReader::new(std::fs::File::open(partition(&sql, "parquet")).unwrap())
        .finish()
        .unwrap();
    assert_eq!(frame.column("payload").unwrap().dtype(), &DataType::Binary);
    let csv_partition = read_csv(&partition(&sql_csv, "csv"));
    let payload = csv_partition.header.iter().position(|h| h == "payload");
    let payloads: Vec<Option<&str>> = csv_partition
        .rows
        .iter()
        .map(|row| row[payload.unwrap()].as_deref())
        .collect();
    assert_eq!(
        payloads,
        [
            Some("00FF"),
            Some("000A0D5C27221A80"),
            Some(""),
            Some("FF"),
            Some("30")
        ]
    );

    // CSV output: hex digits, `""` for no bytes, an empty field for NULL.
    migrate_into(&mysql8_backups(), &csv, &["--format", "csv"]);
    let issues = read_csv(&csv.join("issues/20200601/fb-survey.csv"));
    let column = |name: &str| issues.header.iter().position(|h| h == name).unwrap();
    let row = |geo: &str, time_value: &str| {
        (issues.rows.iter())
            .find(|r| {
                r[column("geo_value")].as_deref() == Some(geo)
                    && r[column("time_value")].as_deref() == Some(time_value)
            })
            .unwrap()
            .clone()
    };
    let r = row("01001", "20200531");
    assert_eq!(r[column("payload")].as_deref(), Some("000A0D5C27221A80"));
    assert_eq!(r[column("is_latest_issue")].as_deref(), Some("01"));
    assert_eq!(r[column("flags")].as_deref(), Some("00"));
    let r = row("01003", "20200531");
    assert_eq!(r[column("payload")].as_deref(), Some(""));
    assert_eq!(r[column("is_wip")], None);
    let text = std::fs::read_to_string(csv.join("issues/20200601/fb-survey.csv")).unwrap();
    assert!(text.contains(",01,,\"\",,20200601,1\n"), "{text}");

    // Parquet output: the bytes in a binary column.
    migrate_into(&mysql8_backups(), &parquet, &["--format", "parquet"]);
    let frame = ParquetReader::new(
        std::fs::File::open(parquet.join("issues/20200602/fb-survey.parquet")).unwrap(),
    )
    .finish()
    .unwrap();
    let payload = frame.column("payload").unwrap().binary().unwrap();
    let geo = frame.column("geo_value").unwrap().str().unwrap();
    let rows: Vec<(Option<&str>, Option<&[u8]>)> = geo.iter().zip(payload.iter()).collect();
    assert_eq!(
        rows,
        [
            (Some("01001"), Some(&b""[..])),
            (Some("42003"), Some(&[0xFE][..]))
        ]
    );
    for out in [&csv, &parquet] {
        let format = if out == &csv { "csv" } else { "parquet" };
        migrate()
            .args(["verify", "-q", "--format", format, "--backups"])
            .arg(mysql8_backups())
            .arg("--out")
            .arg(out)
            .assert()
            .success();
    }
}

/// The table the real `mariadb-dump` dumps below: binary columns holding bytes that are
/// not UTF-8 and bytes it escapes.
const MARIADB_TABLE: &str = "CREATE TABLE src.covidcast (
  id int NOT NULL AUTO_INCREMENT PRIMARY KEY, source varchar(32) NOT NULL,
  `signal` varchar(64) NOT NULL, time_type varchar(12) NOT NULL, geo_type varchar(12) NOT NULL,
  time_value int NOT NULL, geo_value varchar(12) NOT NULL, value double,
  is_latest_issue binary(1) NOT NULL DEFAULT 0x01, is_wip binary(1), payload varbinary(16),
  flags bit(4)) DEFAULT CHARSET=utf8mb4";

#[test]
fn real_mariadb_dumps_plain_and_hex_blob_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let db = MariaDb::start();
    db.sql("CREATE DATABASE src");
    db.sql("CREATE DATABASE t");
    db.sql(MARIADB_TABLE);
    db.sql(
        "INSERT INTO src.covidcast (source, `signal`, time_type, geo_type, time_value, \
         geo_value, value, is_latest_issue, is_wip, payload, flags) VALUES \
         ('s','c','day','county',20200530,'01001',1.5,0x01,0x00,0x00FF80275C220A0D1A,b'1010'),\
         ('s','c','day','county',20200531,'01001',2,0x01,0xFF,'',b'0'),\
         ('s','c','day','county',20200531,'01003',NULL,0x01,NULL,NULL,NULL)",
    );
    let dump = |date: &str, extra: &[&str]| {
        let file = backups.join(format!("just_covidcast_{date}_database.sql"));
        let output = std::process::Command::new("mariadb-dump")
            .arg(format!("--socket={}", db.socket.display()))
            .arg("-uroot")
            .args(extra)
            .args(["src", "covidcast"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(&file, &output.stdout).unwrap();
        output.stdout
    };
    // The same table twice, as mariadb-dump writes it by default (bytes raw in quotes) and
    // with --hex-blob; then once more after one byte changed.
    let plain = dump("20200601", &[]);
    let hex = dump("20200602", &["--hex-blob"]);
    assert!(
        std::str::from_utf8(&plain).is_err(),
        "raw bytes in the plain dump"
    );
    assert!(String::from_utf8_lossy(&hex).contains("0x00FF80275C220A0D1A"));
    db.sql("CREATE TABLE t.day1 AS SELECT * FROM src.covidcast");
    db.sql("UPDATE src.covidcast SET payload = 0x00FF80275C220A0D1B WHERE geo_value = '01001' AND time_value = 20200530");
    dump("20200603", &[]);

    let out = dir.path().join("out");
    migrate_into(&backups, &out, &[]);
    db.sql(&format!("CREATE TABLE t.covidcast ({ISSUES_TABLE})"));
    for date in DATES {
        for file in files_below(&out.join("issues").join(date), "sql") {
            db.source("t", &file);
        }
    }
    assert_eq!(
        db.sql("SELECT issue, COUNT(*) FROM t.covidcast GROUP BY issue ORDER BY issue"),
        "20200601\t3\n20200603\t1\n"
    );
    // The first backup's rows load back with the bytes they had.
    let same: Vec<String> = KEY
        .iter()
        .chain(&COMPARED)
        .map(|c| format!("o.{c} <=> n.{c}"))
        .collect();
    assert_eq!(
        db.sql(&format!(
            "SELECT COUNT(*) FROM t.day1 o JOIN t.covidcast n ON {} WHERE n.issue = 20200601",
            same.join(" AND ")
        )),
        "3\n"
    );
    assert_eq!(
        db.sql("SELECT HEX(payload) FROM t.covidcast WHERE issue = 20200603"),
        "00FF80275C220A0D1B\n"
    );
    migrate()
        .args(["verify", "-q", "--backups"])
        .arg(&backups)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
}

#[test]
fn a_malformed_binary_literal_is_named_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let good =
        std::fs::read(mysql8_backups().join("just_covidcast_20200602_database.sql")).unwrap();
    // An odd number of digits in X'…' is a syntax error in MySQL too.
    let bad = replace_bytes(&good, b",0xFE,", b",X'FEE',");
    assert_ne!(bad, good);
    std::fs::write(backups.join("just_covidcast_20200602_database.sql"), bad).unwrap();
    let output = migrate()
        .arg("--backups")
        .arg(&backups)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("just_covidcast_20200602_database.sql")
            && message.contains("line 49")
            && message.contains("even number of digits"),
        "{message}"
    );
}

#[test]
fn duckdb_and_pyarrow_read_binary_partitions_as_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    migrate_into(&mysql8_backups(), &out, &[]);
    let script = r#"
import sys, duckdb, pyarrow.dataset as ds
root = sys.argv[1]
print(duckdb.sql(f"""
    SELECT typeof(payload), hex(payload) FROM read_parquet('{root}/*/*.parquet',
    hive_partitioning = true) WHERE date = 20200601 AND time_value = 20200531
    AND geo_value = '01001'""").fetchall())
table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
print(table.schema.field("payload").type, table.schema.field("is_wip").type)
"#;
    let printed = run_python(script, &out.join(".work/partitions"));
    assert_eq!(
        printed, "[('BLOB', '000A0D5C27221A80')]\nbinary_view binary_view\n",
        "{printed}"
    );
}
