//! The memory budget changes how the work runs, never what it writes: units split to fit a
//! tiny `--memory-limit`, or run two at a time, give the same bytes as one at a time.

mod common;

use common::*;

fn run(data: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> String {
    let output = migrate()
        .arg("--backups")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

#[test]
fn split_and_concurrent_units_write_the_same_output() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 4, 60, &[2]);
    let reference = tempfile::tempdir().unwrap();
    run(data.path(), reference.path(), &["--jobs", "1"]);

    // Buckets are read with the filter applied during the scan, from either format.
    for format in ["parquet", "csv"] {
        let split = tempfile::tempdir().unwrap();
        let log = run(
            data.path(),
            split.path(),
            &["--memory-limit", "1", "--partition-format", format],
        );
        assert!(
            log.contains("split into"),
            "{format}: nothing was split: {log}"
        );
        assert_same_output(split.path(), reference.path(), &[]);
    }

    let concurrent = tempfile::tempdir().unwrap();
    run(data.path(), concurrent.path(), &["--jobs", "2"]);
    assert_same_output(concurrent.path(), reference.path(), &[]);
}

#[test]
fn dry_run_shows_the_split_the_budget_forces() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 2, 60, &[]);
    let out = tempfile::tempdir().unwrap();
    migrate()
        .arg("extract")
        .arg("--backups")
        .arg(data.path())
        .arg("--out")
        .arg(out.path())
        .assert()
        .success();
    let output = migrate()
        .arg("--backups")
        .arg(data.path())
        .arg("--out")
        .arg(out.path())
        .args(["--dry-run", "--fresh", "--memory-limit", "1"])
        .output()
        .unwrap();
    let plan = String::from_utf8(output.stdout).unwrap();
    assert!(plan.contains("budget 1 B (--memory-limit)"), "{plan}");
    assert!(plan.contains("split into"), "{plan}");
}
