//! `--dry-run` predicts the run's time from a bounded sample of the largest pending backup,
//! read in memory: the sample stops at its limits, counts what it read, and nothing is
//! written.

mod common;

use std::io::Read;
use std::path::Path;

use common::*;
use migrate::config::Config;
use migrate::inspect::dry_run::sample::{measure, Limits};
use migrate::stages::discover::discover;

fn decompressed(path: &Path) -> Vec<u8> {
    let mut sql = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut sql)
        .unwrap();
    sql
}

/// Rows of `write_series` that end within `sql`: each ends with its `direction`, NULL.
fn rows_in(sql: &[u8]) -> u64 {
    sql.windows(5).filter(|w| w == b"NULL)").count() as u64
}

#[test]
fn the_sample_stops_at_its_limits_and_writes_nothing() {
    let data = tempfile::tempdir().unwrap();
    // Three days: the last one lacks a source; the middle one has all three.
    write_series(data.path(), 3, 60, &[]);
    let out = tempfile::tempdir().unwrap();
    let config = Config::new(data.path().to_path_buf(), out.path().join("new"));
    let backups = discover(data.path(), &config.pattern).unwrap().backups;
    let backup = &backups[1];
    let sql = decompressed(&backup.path);
    let generous = 600.0;

    let whole = measure(
        backup,
        &config,
        Limits {
            sql_bytes: u64::MAX,
            seconds: generous,
        },
    )
    .unwrap();
    assert!(whole.whole);
    assert_eq!(whole.sql_bytes, sql.len() as u64);
    assert_eq!(whole.rows, rows_in(&sql));
    assert_eq!(
        whole.file_bytes,
        std::fs::metadata(&backup.path).unwrap().len()
    );
    assert_eq!(whole.sources, 3);
    let diff = whole.diff.as_ref().expect("the diff is timed");
    // The largest source of the three has a third of the rows.
    assert_eq!(diff.rows, whole.rows / 3);

    let limit = 100_000;
    let bytes = measure(
        backup,
        &config,
        Limits {
            sql_bytes: limit,
            seconds: generous,
        },
    )
    .unwrap();
    assert!(!bytes.whole);
    // It stops after the row that reaches the limit; rows are about 100 bytes.
    assert!(
        bytes.sql_bytes >= limit && bytes.sql_bytes < limit + 200,
        "{}",
        bytes.sql_bytes
    );
    assert_eq!(bytes.rows, rows_in(&sql[..bytes.sql_bytes as usize]));

    // Out of time at once: the clock is read every 1024 rows.
    let time = measure(
        backup,
        &config,
        Limits {
            sql_bytes: u64::MAX,
            seconds: 0.0,
        },
    )
    .unwrap();
    assert!(!time.whole);
    assert_eq!(time.rows, 1024);

    assert!(!out.path().join("new").exists());
}

#[test]
fn a_dry_run_predicts_the_time_of_each_stage_from_the_largest_backup() {
    let data = tempfile::tempdir().unwrap();
    let files = write_series(data.path(), 3, 20, &[]);
    let largest = files
        .iter()
        .max_by_key(|f| std::fs::metadata(f).unwrap().len())
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let dry_run = |out: &Path| {
        let output = migrate()
            .arg("--backups")
            .arg(data.path())
            .arg("--out")
            .arg(out)
            .arg("--dry-run")
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let before = snapshot(data.path());
    let plan = dry_run(&out.path().join("new"));
    let time = plan
        .lines()
        .find(|l| l.starts_with("time: about "))
        .unwrap_or_else(|| panic!("no time line in:\n{plan}"));
    assert!(
        time.contains(" in all: extract ") && time.contains(", diff "),
        "{time}"
    );
    assert!(time.contains("(likely "), "{time}");
    assert!(plan.contains("\n  CPU: extract "), "{plan}");
    let name = largest.file_name().unwrap().to_string_lossy();
    assert!(
        plan.contains(&format!("on the whole {name}, in memory")),
        "the sample is not the largest backup, {name}:\n{plan}"
    );
    // Every gzip trailer fits: no backup's size is guessed.
    assert!(!plan.contains("sized exactly"), "{plan}");
    // A few KB of SQL is too little to trust.
    assert!(plan.contains("the sample is small"), "{plan}");
    assert!(!out.path().join("new").exists(), "the dry run wrote");
    assert_eq!(snapshot(data.path()), before);

    migrate()
        .arg("--backups")
        .arg(data.path())
        .arg("--out")
        .arg(out.path())
        .arg("-q")
        .assert()
        .success();
    let plan = dry_run(out.path());
    assert!(plan.contains("time: nothing to run"), "{plan}");
}
