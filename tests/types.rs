//! Every column type exactly (`fixtures/types`, real `mariadb-dump` backups made by
//! `scripts/make-fixtures-types`, with the expected issues computed by `<=>` in MariaDB):
//! integers of every width and sign (`bigint unsigned` up to 2^64−1), decimals digit for
//! digit (a change in the last digit of a `decimal(30,10)` is an issue, `100.1` in a
//! `decimal(20,2)` is `100.10`), float, double, bit, enum, set, year, time, date,
//! datetime(3), timestamp(6), json and emoji text; the SQL output loaded back into MariaDB
//! equals the expected rows under `<=>` on every column. And a table without Epidata's time
//! columns (`prices`: a key of store, sku and a date): issue rows with `issue` and no
//! `lag`, or with `--time-column day` a lag in days; `verify`, `asof` and `history` work.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use polars::prelude::*;

fn types_dir(name: &str) -> PathBuf {
    root().join("fixtures/types").join(name)
}

fn expected_file(name: &str) -> PathBuf {
    types_dir("expected").join(name)
}

/// The flags of a migration of `prices`: no time column.
const PRICES: [&str; 8] = [
    "--table",
    "prices",
    "--pattern",
    r"^prices_(?P<date>\d{8})\.sql\.gz$",
    "--key",
    "store,sku,day",
    "--partition-column",
    "store",
];

const READINGS_COLUMNS: &str = "source,time_type,time_value,item,serial,lot,big,sb,i,ui,ti,\
    uti,umi,exact,money,whole,wide,f,d,flag,level,tags,y,t,day,dt,ts,j,note";
const PRICES_COLUMNS: &str = "store,sku,day,price,units,updated";

/// Runs migrate on a fixture table into `out`; returns what it printed.
fn migrate_table(table: &str, flags: &[&str], out: &Path, extra: &[&str]) -> String {
    let output = migrate()
        .arg("--backups")
        .arg(types_dir(table))
        .arg("--out")
        .arg(out)
        .arg("-q")
        .args(flags)
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// Loads each backup of `table` into a database of its own (`b<date>`), as MariaDB reads it.
fn load_backups(db: &MariaDb, table: &str) -> Vec<String> {
    let mut dates = Vec::new();
    for dump in files_below(&types_dir(table), "gz") {
        let name = dump.file_name().unwrap().to_string_lossy().into_owned();
        let date = name[table.len() + 1..table.len() + 9].to_string();
        let mut text = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(&dump).unwrap()),
            &mut text,
        )
        .unwrap();
        let plain = db.files_dir().join(format!("{table}-{date}.sql"));
        std::fs::write(&plain, text).unwrap();
        db.sql(&format!("CREATE DATABASE IF NOT EXISTS b{date}"));
        db.source(&format!("b{date}"), &plain);
        dates.push(date);
    }
    dates
}

/// `<database>.<table>`: the table as the backups declare it, with `issue` (and `lag`)
/// added and without its unique key, so that every issue row is kept (a weekly row revised
/// twice in one epiweek has two rows with one `issue`): what the SQL output loads into.
fn create_issues_table(db: &MariaDb, database: &str, table: &str, lag: bool) {
    db.sql(&format!("CREATE DATABASE IF NOT EXISTS {database}"));
    db.sql(&format!(
        "CREATE TABLE {database}.{table} LIKE b20210301.{table}"
    ));
    let lag = if lag {
        ", ADD COLUMN `lag` int NOT NULL"
    } else {
        ""
    };
    db.sql(&format!(
        "ALTER TABLE {database}.{table} DROP INDEX k, ADD COLUMN issue int NOT NULL{lag}"
    ));
}

/// Loads an expected CSV of `fixtures/types/expected` (MariaDB's OUTFILE format) into the
/// table `name`; `columns` lists its fields, with `@` variables and `SET` assignments.
fn load_expected(db: &MariaDb, file: &str, name: &str, columns: &str, set: &str) {
    let copy = db.files_dir().join(file);
    std::fs::copy(expected_file(file), &copy).unwrap();
    db.sql(&format!(
        "SET time_zone = '+00:00'; LOAD DATA INFILE '{}' INTO TABLE {name} CHARACTER SET \
         utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' \
         LINES TERMINATED BY '\\n' IGNORE 1 LINES ({columns}) {set}",
        copy.display()
    ));
}

/// Rows of `a` that have no partner in `b` equal under `<=>` in every one of `columns`.
fn unmatched(db: &MariaDb, a: &str, b: &str, columns: &[&str]) -> String {
    let on: Vec<String> = (columns.iter())
        .map(|c| format!("a.`{c}` <=> b.`{c}`"))
        .collect();
    db.sql(&format!(
        "SELECT a.* FROM {a} AS a WHERE NOT EXISTS (SELECT 1 FROM {b} AS b WHERE {})",
        on.join(" AND ")
    ))
}

fn assert_same_rows(db: &MariaDb, loaded: &str, expected: &str, columns: &[&str]) {
    let count = |table: &str| db.sql(&format!("SELECT COUNT(*) FROM {table}"));
    assert_eq!(count(loaded), count(expected), "{loaded} and {expected}");
    assert!(count(expected).trim().parse::<u64>().unwrap() > 0);
    assert_eq!(
        unmatched(db, loaded, expected, columns),
        "",
        "loaded rows not expected"
    );
    assert_eq!(
        unmatched(db, expected, loaded, columns),
        "",
        "expected rows not loaded"
    );
}

#[test]
fn every_type_loads_back_into_mariadb_as_the_expected_issues() {
    let out = tempfile::tempdir().unwrap();
    migrate_table("readings", &READINGS, out.path(), &["--chunk-rows", "2"]);
    let db = MariaDb::start();
    load_backups(&db, "readings");
    create_issues_table(&db, "t", "readings", true);
    create_issues_table(&db, "e", "readings", true);
    // A loading session in another time zone: the files set their own for `timestamp`.
    for file in files_below(&out.path().join("issues"), "sql") {
        let text = std::fs::read_to_string(&file).unwrap();
        let copy = db.files_dir().join("issues.sql");
        std::fs::write(&copy, format!("SET time_zone = '-05:00';\n{text}")).unwrap();
        db.source("t", &copy);
    }
    let fields = READINGS_COLUMNS.replace(",flag,", ",@flag,") + ",issue,lag";
    load_expected(
        &db,
        "readings-issues.csv",
        "e.readings",
        &fields,
        "SET flag = UNHEX(@flag)",
    );
    let columns: Vec<&str> = READINGS_COLUMNS
        .split(',')
        .chain(["issue", "lag"])
        .collect();
    assert_same_rows(&db, "t.readings", "e.readings", &columns);
    // The issue's cases, by name: the last digit of a decimal(30,10) is a revision;
    // 2^64-1 in a bigint unsigned.
    let revised = db.sql(
        "SELECT exact, big FROM t.readings WHERE issue = 20210302 AND item = 'x' \
         AND time_value = 20210227",
    );
    assert_eq!(
        revised.trim(),
        "12345678901234567890.1234567891\t18446744073709551615"
    );
}

#[test]
fn every_type_in_csv_and_parquet_output_is_the_expected_issues() {
    let dir = tempfile::tempdir().unwrap();
    let csv_out = dir.path().join("csv");
    migrate_table(
        "readings",
        &READINGS,
        &csv_out,
        &["--format", "csv", "--partition-format", "csv"],
    );
    let floats = ["f", "d"];
    let actual = read_all_csv(&csv_out.join("issues"));
    let expected = read_outfile_csv(&expected_file("readings-issues.csv"));
    assert_eq!(actual.header, expected.header);
    assert_eq!(actual.normalized(&floats), expected.normalized(&floats));
    // Decimals are their digits, the same in the output as in the backup.
    let decimals = actual.header.iter().position(|h| h == "wide").unwrap();
    let digits: Vec<&str> = (actual.rows.iter())
        .filter_map(|row| row[decimals].as_deref())
        .collect();
    assert!(digits.contains(&"99999999999999999999999999999999999.999999999999999999999999999998"));
    let removals = read_all_csv(&csv_out.join("removals"));
    let expected_removals = read_outfile_csv(&expected_file("readings-removals.csv"));
    assert_eq!(removals.normalized(&[]), expected_removals.normalized(&[]));

    // Parquet partitions and output give the same rows, typed: UInt64 for bigint unsigned,
    // decimals as their canonical text, bit as bytes, year as an integer.
    let parquet_out = dir.path().join("parquet");
    migrate_table(
        "readings",
        &READINGS,
        &parquet_out,
        &["--format", "parquet"],
    );
    let parquet_csv = dir.path().join("parquet-csv");
    migrate_table("readings", &READINGS, &parquet_csv, &["--format", "csv"]);
    assert_same_output(&parquet_csv, &csv_out, &[]);
    let types = |file: &Path| {
        let frame = ParquetReader::new(std::fs::File::open(file).unwrap())
            .finish()
            .unwrap();
        let dtype = |name: &str| frame.column(name).unwrap().dtype().clone();
        [
            dtype("big"),
            dtype("serial"),
            dtype("sb"),
            dtype("exact"),
            dtype("lot"),
            dtype("f"),
            dtype("flag"),
            dtype("y"),
            dtype("ts"),
        ]
    };
    let expected_types = [
        DataType::UInt64,
        DataType::UInt64,
        DataType::Int64,
        DataType::String,
        DataType::String,
        DataType::Float64,
        DataType::Binary,
        DataType::Int64,
        DataType::String,
    ];
    let partition = parquet_out.join(".work/partitions/date=20210302/alpha.parquet");
    assert_eq!(types(&partition), expected_types);
    let issues = parquet_out.join("issues/20210302/alpha.parquet");
    assert_eq!(types(&issues), expected_types);
    let frame = ParquetReader::new(std::fs::File::open(&issues).unwrap())
        .finish()
        .unwrap();
    let big: Vec<Option<u64>> = frame.column("big").unwrap().u64().unwrap().iter().collect();
    assert!(big.contains(&Some(u64::MAX)), "{big:?}");
}

#[test]
fn every_type_is_rebuilt_by_verify_from_either_partition_format() {
    for format in ["parquet", "csv"] {
        let out = tempfile::tempdir().unwrap();
        let flags = [&READINGS[..], &["--partition-format", format]].concat();
        migrate_table("readings", &flags, out.path(), &[]);
        let output = migrate()
            .arg("verify")
            .arg("--backups")
            .arg(types_dir("readings"))
            .arg("--out")
            .arg(out.path())
            .args(&flags)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{text}");
        assert!(
            text.contains("verified 4 backups of 2 sources: identical"),
            "{text}"
        );
    }
}

#[test]
fn a_table_without_time_columns_has_issues_without_lag() {
    let out = tempfile::tempdir().unwrap();
    let printed = migrate_table("prices", &PRICES, out.path(), &[]);
    assert!(
        printed.contains("lag: none: the table has no time column"),
        "{printed}"
    );
    let summary = std::fs::read_to_string(out.path().join("summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert!(
        summary["lag"].as_str().unwrap().starts_with("none"),
        "{summary}"
    );
    let files = files_below(&out.path().join("issues"), "sql");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for insert in text.lines().filter(|l| l.starts_with("INSERT")) {
            assert!(
                insert.contains("`updated`,`issue`) VALUES"),
                "{}: {insert}",
                file.display()
            );
        }
    }

    // Loaded into MariaDB, the issue rows are the expected ones (their `lag` left out).
    let db = MariaDb::start();
    load_backups(&db, "prices");
    create_issues_table(&db, "t", "prices", false);
    create_issues_table(&db, "e", "prices", false);
    for file in &files {
        db.source("t", file);
    }
    let fields = format!("{PRICES_COLUMNS},issue,@lag");
    load_expected(&db, "prices-issues.csv", "e.prices", &fields, "");
    let columns: Vec<&str> = PRICES_COLUMNS.split(',').chain(["issue"]).collect();
    assert_same_rows(&db, "t.prices", "e.prices", &columns);
    let removals = read_all_csv(&out.path().join("removals"));
    let expected_removals = read_outfile_csv(&expected_file("prices-removals.csv"));
    assert_eq!(removals.normalized(&[]), expected_removals.normalized(&[]));

    // verify, asof and history work without a lag.
    let verified = migrate()
        .arg("verify")
        .arg("--backups")
        .arg(types_dir("prices"))
        .arg("--out")
        .arg(out.path())
        .args(PRICES)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&verified.stdout);
    assert!(
        text.contains("verified 4 backups of 2 sources: identical"),
        "{text}"
    );
    let asof = migrate()
        .args(["asof", "--date", "20210304", "--format", "sql", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(asof.status.success(), "{asof:?}");
    let asof_sql = db.files_dir().join("asof.sql");
    std::fs::write(&asof_sql, &asof.stdout).unwrap();
    db.sql("CREATE DATABASE a");
    db.sql("CREATE TABLE a.prices LIKE b20210304.prices");
    db.source("a", &asof_sql);
    let stored: Vec<&str> = PRICES_COLUMNS.split(',').collect();
    assert_same_rows(&db, "a.prices", "b20210304.prices", &stored);
    let history = migrate()
        .args(["history", "--source", "north", "--format", "csv", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(history.status.success(), "{history:?}");
    let history = String::from_utf8(history.stdout).unwrap();
    let mut lines = history.lines();
    assert_eq!(
        lines.next(),
        Some("sku,day,issue,price,units,updated,changed")
    );
    assert!(
        lines.any(|l| l == "apple,2021-03-01,20210302,10.00,12,2021-03-02 09:00:00,price;updated"),
        "{history}"
    );
    let lag = migrate()
        .args(["asof", "--lag", "1", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(lag.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&lag.stderr).contains("no time column"));
}

#[test]
fn a_date_column_as_the_time_column_gives_a_lag_in_days() {
    let out = tempfile::tempdir().unwrap();
    let printed = migrate_table(
        "prices",
        &PRICES,
        out.path(),
        &["--time-column", "day", "--format", "csv"],
    );
    assert!(!printed.contains("lag: none"), "{printed}");
    let actual = read_all_csv(&out.path().join("issues"));
    let expected = read_outfile_csv(&expected_file("prices-issues.csv"));
    assert_eq!(actual.header, expected.header);
    assert_eq!(actual.normalized(&[]), expected.normalized(&[]));
    // The lag that a column of another kind cannot give is refused before any work.
    let refused = migrate()
        .arg("--backups")
        .arg(types_dir("prices"))
        .arg("--out")
        .arg(out.path().join("refused"))
        .args(PRICES)
        .args(["--time-column", "price"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("--time-column price is neither an integer column"),
        "{message}"
    );
}

#[test]
fn epidata_target_still_needs_its_time_columns() {
    let dir = tempfile::tempdir().unwrap();
    let ddl = dir.path().join("target.sql");
    std::fs::write(
        &ddl,
        "CREATE TABLE `prices_history` (`id` int NOT NULL AUTO_INCREMENT, \
         `store` varchar(16) NOT NULL, `sku` varchar(16) NOT NULL, `day` date NOT NULL, \
         `price` decimal(12,2), `units` int unsigned, `updated` datetime, \
         `issue` int NOT NULL, `lag` int NOT NULL, PRIMARY KEY (`id`), \
         UNIQUE KEY `k` (`store`, `sku`, `day`, `issue`))",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        migrate()
            .arg("--backups")
            .arg(types_dir("prices"))
            .arg("--out")
            .arg(dir.path().join("out"))
            .args(PRICES)
            .arg("--target-ddl")
            .arg(&ddl)
            .args(extra)
            .output()
            .unwrap()
    };
    let refused = run(&[]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("has a column `lag`"), "{message}");
    assert!(!dir.path().join("out/issues").exists());
    let loaded = run(&["--time-column", "day", "-q"]);
    assert!(loaded.status.success(), "{loaded:?}");
}

/// Writes two days of a generated `prices` table, large enough that a tiny memory budget
/// splits its units: 4,000 rows a day, of which the second day revises every seventh.
fn write_large_prices(dir: &Path) {
    use std::io::Write;
    for (day, date) in ["20210301", "20210302"].iter().enumerate() {
        let mut sql = String::from(
            "/*M!999999\\- enable the sandbox mode */ \n\
             CREATE TABLE `prices` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  \
             `store` varchar(16) NOT NULL,\n  `sku` varchar(16) NOT NULL,\n  \
             `day` date NOT NULL,\n  `price` decimal(12,2) DEFAULT NULL,\n  \
             PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\
             INSERT INTO `prices` VALUES ",
        );
        for row in 0..4000u32 {
            let cents = 100 + row + if day == 1 && row % 7 == 0 { 1 } else { 0 };
            if row > 0 {
                sql.push_str(",\n");
            }
            sql.push_str(&format!(
                "({},'s{}','sku{}','2021-02-{:02}',{}.{:02})",
                row + 1,
                row % 2,
                row / 20,
                row % 20 + 1,
                cents / 100,
                cents % 100
            ));
        }
        sql.push_str(";\n");
        let path = dir.join(format!("prices_{date}.sql.gz"));
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(sql.as_bytes()).unwrap();
        std::fs::write(path, encoder.finish().unwrap()).unwrap();
    }
}

#[test]
fn a_table_without_time_columns_is_split_by_its_key_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    write_large_prices(&backups);
    let run = |out: &str, extra: &[&str]| {
        let output = migrate()
            .arg("--backups")
            .arg(&backups)
            .arg("--out")
            .arg(dir.path().join(out))
            .args(PRICES)
            .args(extra)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{log}");
        log
    };
    run("whole", &[]);
    let reference = dir.path().join("whole");
    let changed = files_below(&reference.join("issues/20210302"), "sql");
    let text: String = changed
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(text.matches("\n('s").count(), 4000 / 7 + 1, "{text}");
    // Parquet partitions: split by the key fingerprint, the same bytes.
    let log = run("split", &["--max-part-rows", "1000"]);
    assert!(log.contains("split into"), "nothing was split: {log}");
    assert_same_output(&dir.path().join("split"), &reference, &[]);
    // CSV partitions of a key without an integer column: not split, said so.
    let log = run(
        "csv",
        &["--max-part-rows", "1000", "--partition-format", "csv"],
    );
    assert!(log.contains("cannot be split"), "{log}");
    assert_same_output(&dir.path().join("csv"), &reference, &[]);
    // verify reads the output files, which have no fingerprint: with no integer key
    // column to split by, it verifies whole, says so, and finds the output exact.
    let output = migrate()
        .args(["verify", "--backups"])
        .arg(&backups)
        .arg("--out")
        .arg(dir.path().join("split"))
        .args(PRICES)
        .args(["--max-part-rows", "1000"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("verified whole"), "{log}");
}

#[test]
fn decimals_in_other_spellings_are_the_same_values_in_keys_too() {
    // No dump writes `100.1` in a decimal(10,2), but a hand-made one may: the key
    // fingerprint hashes the canonical text, so the rows pair, and nothing changed.
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let create = "CREATE TABLE `t` (`id` int(11) NOT NULL, `s` varchar(8) NOT NULL, \
                  `k` decimal(10,2) NOT NULL, `v` decimal(30,10) DEFAULT NULL);\n";
    for (date, rows) in [
        (
            "20210301",
            "(1,'a',100.1,5.5),(2,'a',2.00,1),(3,'a',-0.5,NULL)",
        ),
        (
            "20210302",
            "(1,'a',100.10,5.50),(2,'a',+2,1.0000000001),(3,'a',-.50,NULL)",
        ),
    ] {
        let sql = format!("{create}INSERT INTO `t` VALUES {rows};\n");
        std::fs::write(backups.join(format!("t_{date}.sql")), sql).unwrap();
    }
    for format in ["parquet", "csv"] {
        let out = dir.path().join(format);
        let output = migrate()
            .arg("--backups")
            .arg(&backups)
            .arg("--out")
            .arg(&out)
            .args(["--table", "t", "--pattern", r"^t_(?P<date>\d{8})\.sql$"])
            .args(["--key", "s,k", "--partition-column", "s", "--format", "csv"])
            .args(["--partition-format", format, "-q"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let issues = std::fs::read_to_string(out.join("issues/20210302/a.csv")).unwrap();
        assert_eq!(
            issues, "s,k,v,issue\na,2.00,1.0000000001,20210302\n",
            "{format}"
        );
        let removals = std::fs::read_to_string(out.join("removals/20210302/a.csv")).unwrap();
        assert_eq!(removals, "s,k,removed\n", "{format}");
        let first = std::fs::read_to_string(out.join("issues/20210301/a.csv")).unwrap();
        assert_eq!(
            first,
            // Sorted by the key's value: -0.50 < 2.00 < 100.10.
            "s,k,v,issue\na,-0.50,,20210301\na,2.00,1.0000000000,20210301\n\
             a,100.10,5.5000000000,20210301\n",
            "{format}"
        );
    }
}
