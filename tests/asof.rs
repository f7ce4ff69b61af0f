//! `migrate asof` rebuilds the table of any date from the output alone.

mod common;

use common::*;

fn asof(out: &std::path::Path, date: &str, extra: &[&str]) -> Table {
    let file = out.join(format!("asof-{date}.csv"));
    migrate()
        .args(["asof", "--date", date, "-q", "--out"])
        .arg(out)
        .arg("--to")
        .arg(&file)
        .args(extra)
        .assert()
        .success();
    read_csv(&file)
}

#[test]
fn each_backup_date_gives_that_backups_rows() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &[]);
    // Row counts per backup, counted by SQL when the fixtures were made.
    let counts = read_csv(&expected("backups.csv"));
    for row in &counts.rows {
        let date = row[0].as_deref().unwrap();
        let rows: usize = row[1].as_deref().unwrap().parse().unwrap();
        assert_eq!(asof(out.path(), date, &[]).rows.len(), rows, "as of {date}");
    }
    // The missing day shows the backup before it.
    assert_eq!(
        asof(out.path(), "20200605", &[]),
        asof(out.path(), "20200604", &[])
    );

    // The weekly value revised on two days of one epiweek, as of each day.
    let value = |date: &str| -> String {
        let table = asof(
            out.path(),
            date,
            &["--signal", "smoothed_wili", "--source", "fb-survey"],
        );
        let at = |name: &str| table.header.iter().position(|h| h == name).unwrap();
        let row = table
            .rows
            .iter()
            .find(|r| {
                r[at("time_value")].as_deref() == Some("202022")
                    && r[at("geo_value")].as_deref() == Some("pa")
            })
            .unwrap();
        assert!(table
            .rows
            .iter()
            .all(|r| r[at("signal")].as_deref() == Some("smoothed_wili")));
        row[at("value")].clone().unwrap()
    };
    assert_eq!(value("20200601"), "5.5");
    assert_eq!(value("20200602"), "5.75");
    assert_eq!(value("20200603"), "5.875");
}

#[test]
fn asof_before_the_first_backup_is_an_error() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &[]);
    migrate()
        .args(["asof", "--date", "20200101", "--out"])
        .arg(out.path())
        .assert()
        .code(1);
    migrate()
        .args(["asof", "--date", "2020-01-01", "--out", "x"])
        .assert()
        .code(2);
}

/// What does not fit the memory budget is rebuilt in parts (forced here on the fixtures with
/// the hidden `--max-part-rows`), sorted to disk and merged: the same bytes in every format,
/// for the table of a date and for the series at a lag.
#[test]
fn asof_in_parts_writes_what_a_whole_asof_does() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &[]);
    let write = |args: &[&str], file: &str| -> Vec<u8> {
        let path = out.path().join(file);
        migrate()
            .args(["asof", "-q", "--out"])
            .arg(out.path())
            .arg("--to")
            .arg(&path)
            .args(args)
            .assert()
            .success();
        std::fs::read(&path).unwrap()
    };
    for format in ["csv", "sql", "parquet"] {
        for question in [
            &["--date", "20200603"][..],
            &["--date", "20200608"],
            &["--lag", "2"],
            &[
                "--lag",
                "1",
                "--date",
                "20200606",
                "--signal",
                "smoothed_wili,smoothed_adj_cli",
            ],
        ] {
            let args = [question, &["--format", format]].concat();
            let whole = write(&args, "whole");
            let parts = write(&[&args[..], &["--max-part-rows", "5"]].concat(), "parts");
            assert!(whole == parts, "{args:?}: different output in parts");
            assert!(whole.len() > 100, "{args:?}: nothing written");
        }
    }
}

/// Output Parquet (a run's issues and removals, and `asof --format parquet`) declares plain
/// Arrow types, `large_string` for text, not the `string_view` that readers from before
/// Arrow 16 (pyarrow, pandas 1.x, Spark 3) cannot read: its schema, as pyarrow reads it,
/// holds no view type.
#[test]
fn output_parquet_has_no_view_types() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &["--format", "parquet"]);
    migrate()
        .args([
            "asof", "-q", "--date", "20200603", "--format", "parquet", "--out",
        ])
        .arg(out.path())
        .arg("--to")
        .arg(out.path().join("asof.parquet"))
        .assert()
        .success();
    let script = r#"
import pathlib, sys
import pyarrow.parquet as pq
root = pathlib.Path(sys.argv[1])
for path in sorted(root.rglob("*.parquet")):
    if ".work" in path.parts:
        continue
    schema = pq.read_schema(path)
    print(path.relative_to(root), ";".join(f"{f.name}:{f.type}" for f in schema))
"#;
    let schemas = run_python(script, out.path());
    let files: Vec<&str> = schemas.lines().collect();
    assert!(
        files.iter().any(|f| f.starts_with("asof.parquet ")),
        "{schemas}"
    );
    assert!(files.iter().any(|f| f.contains("removals")), "{schemas}");
    assert!(files.len() > 5, "{schemas}");
    for file in files {
        assert!(!file.contains("view"), "a view type: {file}");
        assert!(file.contains("source:large_string"), "{file}");
    }
}
