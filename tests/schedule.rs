//! The memory budget changes how the work runs, never what it writes: units split into
//! buckets (merged again as they are written out), or run two at a time, or chains of units
//! cut into pieces, give the same bytes as one at a time. A limit below what migrate can hold is refused.

mod common;

use common::*;
use regex::Regex;

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

    // Buckets are read with the filter applied during the scan, from either format, and
    // merged in key order into every output format. (No real budget is small enough to
    // split units this small: the hidden --max-part-rows forces the split.)
    for (partitions, output) in [("parquet", "sql"), ("csv", "csv"), ("parquet", "parquet")] {
        let whole = tempfile::tempdir().unwrap();
        run(
            data.path(),
            whole.path(),
            &["--jobs", "1", "--format", output],
        );
        let split = tempfile::tempdir().unwrap();
        let log = run(
            data.path(),
            split.path(),
            &[
                "--max-part-rows",
                "120",
                "--partition-format",
                partitions,
                "--format",
                output,
            ],
        );
        assert!(
            log.contains("split into"),
            "{partitions}: nothing was split: {log}"
        );
        assert_same_output(split.path(), whole.path(), &[]);
    }

    let concurrent = tempfile::tempdir().unwrap();
    run(data.path(), concurrent.path(), &["--jobs", "2"]);
    assert_same_output(concurrent.path(), reference.path(), &[]);
}

/// Chains of small units cut into pieces (every unit its own, with the hidden
/// `--chain-piece-rows`) that run side by side, each reading its older partition from disk,
/// write what one whole chain per source does.
#[test]
fn chains_cut_into_pieces_write_the_same_output() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 5, 20, &[2]);
    let whole = tempfile::tempdir().unwrap();
    let chains = |log: &str| -> usize {
        let line = Regex::new(r"12 diff unit\(s\) in (\d+) chain\(s\) of 3 source\(s\)").unwrap();
        line.captures(log).expect("the chains are logged")[1]
            .parse()
            .unwrap()
    };
    let log = run(data.path(), whole.path(), &["--jobs", "2", "-v"]);
    assert_eq!(chains(&log), 3, "cut without the flag: {log}");
    for (piece_rows, at_least) in [("1", 12), ("150", 4)] {
        let cut = tempfile::tempdir().unwrap();
        let log = run(
            data.path(),
            cut.path(),
            &["--jobs", "2", "-v", "--chain-piece-rows", piece_rows],
        );
        let pieces = chains(&log);
        assert!(pieces >= at_least, "{piece_rows}: {pieces} chains: {log}");
        assert_same_output(cut.path(), whole.path(), &[]);
    }
}

/// Diffs handed on while later backups are still extracted (every unit as soon as its two
/// backups are saved, with `--chain-piece-rows 1`) write what diffs after all extraction do.
#[test]
fn diffs_started_during_extraction_write_the_same_output() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 8, 40, &[3]);
    let after = tempfile::tempdir().unwrap();
    let log = run(data.path(), after.path(), &["--jobs", "1", "-v"]);
    assert!(
        log.contains(" 0 of 21 diff unit(s) handed on before extraction was over"),
        "small units wait for a piece's worth of rows: {log}"
    );
    let during = tempfile::tempdir().unwrap();
    let log = run(
        data.path(),
        during.path(),
        &["--jobs", "2", "-v", "--chain-piece-rows", "1"],
    );
    let handed = Regex::new(r" (\d+) of 21 diff unit\(s\) handed on before extraction").unwrap();
    let early: usize = handed.captures(&log).expect("the count is logged")[1]
        .parse()
        .unwrap();
    // The last backup's units (3 sources) may come only at the end; every other backup's
    // come as soon as it and the backup before it are saved.
    assert!(early >= 18, "only {early} units handed on early: {log}");
    assert_same_output(during.path(), after.path(), &[]);
}

/// A backup that cannot be extracted, with diffs running beside extraction: the others'
/// diffs are done and recorded, the run fails naming it, and once it is replaced the rerun
/// does only what depends on it and writes a fresh run's output.
#[test]
fn a_broken_backup_during_overlapped_diffs_leaves_the_rest_done() {
    let data = tempfile::tempdir().unwrap();
    let files = write_series(data.path(), 6, 40, &[]);
    let fresh = tempfile::tempdir().unwrap();
    run(data.path(), fresh.path(), &["--jobs", "1"]);
    let broken = &files[3];
    let whole = std::fs::read(broken).unwrap();
    std::fs::write(broken, &whole[..whole.len() / 2]).unwrap();
    let out = tempfile::tempdir().unwrap();
    let overlapped = || {
        migrate()
            .arg("--backups")
            .arg(data.path())
            .arg("--out")
            .arg(out.path())
            .args(["--jobs", "2", "-v", "--chain-piece-rows", "1"])
            .output()
            .unwrap()
    };
    let output = overlapped();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let name = broken.file_name().unwrap().to_string_lossy();
    assert!(stderr.contains("could not be extracted: "), "{stderr}");
    assert!(stderr.contains(&*name), "{stderr}");
    std::fs::write(broken, &whole).unwrap();
    let rerun = overlapped();
    let summary = String::from_utf8_lossy(&rerun.stdout);
    // The extract of 20200604, and the diffs of it and 20200605 (3 sources each).
    assert!(summary.contains("7 units run, 17 reused"), "{summary}");
    for folder in ["issues", "removals"] {
        assert_eq!(
            snapshot(&out.path().join(folder)),
            snapshot(&fresh.path().join(folder)),
            "{folder} differ from a fresh run's"
        );
    }
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
        .args(["--dry-run", "--fresh", "--memory-limit", "300MiB"])
        .args(["--max-part-rows", "40"])
        .output()
        .unwrap();
    let plan = String::from_utf8(output.stdout).unwrap();
    assert!(plan.contains("budget 300.0 MiB (--memory-limit)"), "{plan}");
    assert!(plan.contains("split into"), "{plan}");
}

#[test]
fn a_limit_below_the_floor_is_refused_with_exit_2() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 2, 10, &[]);
    let out = tempfile::tempdir().unwrap();
    for command in [vec![], vec!["extract"], vec!["verify"]] {
        migrate()
            .args(&command)
            .arg("--backups")
            .arg(data.path())
            .arg("--out")
            .arg(out.path())
            .args(["--memory-limit", "200MiB"])
            .assert()
            .code(2)
            .stderr(predicates::str::contains(
                "--memory-limit 200.0 MiB is below the 256.0 MiB migrate needs at least",
            ));
    }
    assert!(
        std::fs::read_dir(out.path()).unwrap().next().is_none(),
        "something was written"
    );
}
