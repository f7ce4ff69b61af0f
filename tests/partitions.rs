//! Partitions in Parquet (the default) or CSV, and Parquet output: the same migration
//! whatever the formats, Parquet files that read back as the CSV output, and a partitions
//! tree that other engines read as one dataset.

mod common;

use std::path::Path;

use common::*;
use polars::prelude::*;

fn partition_files(out: &Path, extension: &str) -> Vec<std::path::PathBuf> {
    files_below(&out.join(".work/partitions"), extension)
}

#[test]
fn csv_and_parquet_partitions_give_the_same_output_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (parquet, csv) = (dir.path().join("parquet"), dir.path().join("csv"));
    migrate_fixtures(&parquet, &[]);
    migrate_fixtures(&csv, &["--partition-format", "csv"]);
    assert_same_output(&parquet, &csv, &[]);
    // Hive-style folders, one file per source, and no stray files of the other format.
    let files = partition_files(&parquet, "parquet");
    assert!(files
        .iter()
        .any(|f| f.ends_with("date=20200601/fb-survey.parquet")));
    assert!(partition_files(&parquet, "csv").is_empty());
    assert!(partition_files(&csv, "parquet").is_empty());
    for (out, format) in [(&parquet, "parquet"), (&csv, "csv")] {
        migrate()
            .args(["verify", "-q", "--partition-format", format, "--backups"])
            .arg(fixture_backups())
            .arg("--out")
            .arg(out)
            .assert()
            .success();
    }
}

#[test]
fn a_changed_partition_format_redoes_the_extracts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    migrate_fixtures(&out, &["--partition-format", "csv"]);
    let before = snapshot(&out);
    let output = migrate()
        .arg("--backups")
        .arg(fixture_backups())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(log.matches(" INFO extracted ").count(), 7, "{log}");
    assert!(partition_files(&out, "csv").is_empty());
    assert_eq!(partition_files(&out, "parquet").len(), 21);
    assert_eq!(
        snapshot(&out),
        before,
        "the output changed with the partitions' format"
    );
}

/// A Parquet file read with polars, as the CSV output spells its cells: numbers as
/// `migrate` writes them, NULL as None.
fn parquet_as_table(path: &Path) -> Table {
    let frame = ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap();
    let header: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let rows = (0..frame.height())
        .map(|row| {
            frame
                .columns()
                .iter()
                .map(|column| match column.get(row).unwrap() {
                    AnyValue::Null => None,
                    AnyValue::String(s) => Some(s.to_string()),
                    AnyValue::StringOwned(s) => Some(s.to_string()),
                    AnyValue::Int64(v) => Some(v.to_string()),
                    AnyValue::Float64(v) => Some(migrate::stages::emit::format_float(v)),
                    other => panic!("{}: unexpected {other:?}", path.display()),
                })
                .collect()
        })
        .collect();
    Table { header, rows }
}

#[test]
fn parquet_output_reads_back_as_the_csv_output() {
    let dir = tempfile::tempdir().unwrap();
    let (parquet, csv) = (dir.path().join("parquet"), dir.path().join("csv"));
    migrate_fixtures(&parquet, &["--format", "parquet"]);
    migrate_fixtures(&csv, &["--format", "csv"]);
    let mut compared = 0;
    for kind in ["issues", "removals"] {
        let csv_files = files_below(&csv.join(kind), "csv");
        assert_eq!(csv_files.len(), 21);
        for csv_file in csv_files {
            let relative = csv_file
                .strip_prefix(&csv)
                .unwrap()
                .with_extension("parquet");
            let parquet_file = parquet.join(&relative);
            assert_eq!(
                parquet_as_table(&parquet_file),
                read_csv(&csv_file),
                "{}",
                relative.display()
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 42);
    // Typed columns: issue and lag are integers, values doubles, keys text.
    let issues = parquet.join("issues/20200601/fb-survey.parquet");
    let schema = ParquetReader::new(std::fs::File::open(issues).unwrap())
        .schema()
        .unwrap();
    for (name, dtype) in [
        ("geo_value", ArrowDataType::Utf8View),
        ("time_value", ArrowDataType::Int64),
        ("value", ArrowDataType::Float64),
        ("issue", ArrowDataType::Int64),
        ("lag", ArrowDataType::Int64),
    ] {
        assert_eq!(schema.get(name).map(|f| f.dtype()), Some(&dtype), "{name}");
    }
    // asof and verify read Parquet output as they read the others.
    let asof = |out: &Path| {
        migrate()
            .args(["asof", "--date", "20200606", "--out"])
            .arg(out)
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(asof(&parquet), asof(&csv));
    migrate()
        .args(["verify", "-q", "--format", "parquet", "--backups"])
        .arg(fixture_backups())
        .arg("--out")
        .arg(&parquet)
        .assert()
        .success();
}

#[test]
fn duckdb_and_pyarrow_read_the_partitions_as_one_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    migrate_fixtures(&out, &[]);
    let script = r#"
import sys, duckdb, pyarrow.dataset as ds
root = sys.argv[1]
rows = duckdb.sql(f"""
    SELECT date, count(*), count(DISTINCT source)
    FROM read_parquet('{root}/*/*.parquet', hive_partitioning = true)
    GROUP BY date ORDER BY date""").fetchall()
for date, n, sources in rows:
    print(f"duckdb {date} {n} {sources}")
table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
print("pyarrow", table.num_rows, sorted(set(table.column("date").to_pylist()))[0],
      table.schema.field("geo_value").type)
"#;
    let printed = run_python(script, &out.join(".work/partitions"));
    // Rows per backup, counted by SQL in MariaDB when the fixtures were made.
    let backups = read_outfile_csv(&expected("backups.csv"));
    let mut total = 0;
    for row in &backups.rows {
        let (date, rows) = (row[0].as_deref().unwrap(), row[1].as_deref().unwrap());
        total += rows.parse::<u64>().unwrap();
        assert!(
            printed.contains(&format!("duckdb {date} {rows} 3\n")),
            "{date}: {printed}"
        );
    }
    assert!(
        printed.contains(&format!("pyarrow {total} 20200601 string")),
        "{printed}"
    );
}
