//! Runs that are killed, interrupted, rerun after inputs or options changed, or only
//! planned: the final output always equals an uninterrupted fresh run, byte for byte.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn binary() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("migrate")
}

fn command(backups: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut command = migrate_process(backups, out, extra);
    command.stdout(Stdio::null());
    command
}

/// Runs to completion, logging each unit (`-v`); returns stderr.
fn finish(backups: &Path, out: &Path, extra: &[&str]) -> String {
    let output = command(backups, out, extra).arg("-v").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "migrate failed: {stderr}");
    stderr
}

/// The units a run did, from its `-v` log: `extract DATE` and `diff DATE SOURCE` (from
/// the lines `DATE SOURCE: N rows, …` a finished diff unit logs).
fn units_run(stderr: &str) -> Vec<String> {
    let mut units: Vec<String> = stderr
        .lines()
        .filter_map(|line| {
            let message = (line.split(" INFO ").nth(1)).or_else(|| line.split(" DEBUG ").nth(1))?;
            if let Some(rest) = message.strip_prefix("extracted ") {
                return Some(format!("extract {}", &rest[..8]));
            }
            let (date, rest) = message.split_once(' ')?;
            let (source, counts) = rest.split_once(": ")?;
            let is_unit =
                counts.contains(" rows, ") && counts.starts_with(|c: char| c.is_ascii_digit());
            (is_unit && date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()))
                .then(|| format!("diff {date} {source}"))
        })
        .collect();
    units.sort();
    units
}

fn reference(
    backups: &Path,
    extra: &[&str],
) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let out = tempfile::tempdir().unwrap();
    finish(backups, out.path(), extra);
    snapshot(out.path())
}

fn assert_same_tree(
    actual: &Path,
    expected: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
) {
    let actual = snapshot(actual);
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "different files"
    );
    for (path, bytes) in expected {
        assert!(actual[path] == *bytes, "{} differs", path.display());
    }
}

#[test]
fn killed_at_any_moment_a_rerun_gives_identical_output() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 5, 300, &[]);
    let started = Instant::now();
    let expected = reference(data.path(), &[]);
    let full = started.elapsed();
    eprintln!("an uninterrupted run takes {full:?}");
    // Kill points spread over the whole run, twice per trial (once during the rerun).
    let trials = 12;
    let mut killed_mid_file = 0;
    for trial in 0..trials {
        let out = tempfile::tempdir().unwrap();
        // Every other trial hands each diff unit on as soon as its backups are saved, so
        // that kills land while diffs and extracts run side by side.
        let extra: &[&str] = match trial % 2 {
            0 => &[],
            _ => &["--chain-piece-rows", "1"],
        };
        for kill_at in [(trial * 2 + 1) as f64 / (trials * 2) as f64, 0.3] {
            let mut child = command(data.path(), out.path(), extra).spawn().unwrap();
            std::thread::sleep(full.mul_f64(kill_at));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            if !temporary_files(out.path()).is_empty() {
                killed_mid_file += 1;
            }
        }
        finish(data.path(), out.path(), extra);
        assert_same_tree(out.path(), &expected);
        assert_eq!(
            temporary_files(out.path()),
            Vec::<std::path::PathBuf>::new()
        );
    }
    // The kills must have caught files half-written, or the test proves little.
    assert!(
        killed_mid_file >= 3,
        "only {killed_mid_file} kills left temporary files"
    );
}

#[test]
fn a_rerun_removes_what_a_kill_left_beside_the_summary() {
    // A kill while `summary.json` or `table.json` was being staged leaves a temporary file
    // in the output folder itself (seen once in the test above, at a kill near the end).
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 3, 20, &[]);
    let expected = reference(data.path(), &[]);
    let out = tempfile::tempdir().unwrap();
    finish(data.path(), out.path(), &[]);
    let half_written = out.path().join(".tmp-Ab12Cd");
    std::fs::write(&half_written, b"{\"backups\": [").unwrap();
    // A scratch folder of a `verify` running beside the run is not the run's to remove.
    let beside = out.path().join(".tmp-verify-Xy");
    std::fs::create_dir(&beside).unwrap();
    let log = finish(data.path(), out.path(), &[]);
    assert!(!half_written.exists(), "{log}");
    assert!(beside.is_dir());
    std::fs::remove_dir(&beside).unwrap();
    assert_same_tree(out.path(), &expected);
}

#[test]
fn ctrl_c_exits_130_and_the_run_resumes() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 5, 150, &[]);
    let expected = reference(data.path(), &[]);
    let out = tempfile::tempdir().unwrap();
    let child = command(data.path(), out.path(), &[]).spawn().unwrap();
    // Wait until the first extract is finished, so the interrupt lands mid-run.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !out.path().join(".work/partitions").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("run the same command again"), "{stderr}");
    assert_eq!(
        temporary_files(out.path()),
        Vec::<std::path::PathBuf>::new()
    );
    finish(data.path(), out.path(), &[]);
    assert_same_tree(out.path(), &expected);
}

#[test]
fn changes_redo_exactly_the_units_they_affect() {
    let data = tempfile::tempdir().unwrap();
    let files = write_series(data.path(), 6, 4, &[3]);
    let out = tempfile::tempdir().unwrap();
    let log = finish(data.path(), out.path(), &[]);
    let first = units_run(&log);
    assert_eq!(
        first.iter().filter(|u| u.starts_with("extract")).count(),
        5,
        "{log}"
    );

    // Nothing changed: nothing to do.
    assert_eq!(
        units_run(&finish(data.path(), out.path(), &[])),
        Vec::<String>::new()
    );

    // A replaced backup (same name, new file): its extract, its diffs, the next date's diffs.
    let replaced = std::fs::read(&files[2]).unwrap();
    std::fs::remove_file(&files[2]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&files[2], &replaced).unwrap();
    let redone = units_run(&finish(data.path(), out.path(), &[]));
    let expected: Vec<String> = [
        "diff 20200603 alpha",
        "diff 20200603 beta",
        "diff 20200603 gamma",
        "diff 20200605 alpha",
        "diff 20200605 beta",
        "diff 20200605 gamma",
        "extract 20200603",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(redone, expected);
    assert_same_tree(out.path(), &reference(data.path(), &[]));

    // A backup added in the gap (20200604): its units and the next date's diffs.
    let full = tempfile::tempdir().unwrap();
    let all = write_series(full.path(), 7, 4, &[]);
    std::fs::copy(&all[3], data.path().join(all[3].file_name().unwrap())).unwrap();
    let redone = units_run(&finish(data.path(), out.path(), &[]));
    assert!(
        redone.contains(&"extract 20200604".to_string()),
        "{redone:?}"
    );
    assert!(
        redone
            .iter()
            .all(|u| u.contains("20200604") || u.contains("20200605")),
        "{redone:?}"
    );
    assert_eq!(redone.len(), 1 + 3 + 3);
    assert_same_tree(out.path(), &reference(data.path(), &[]));

    // A backup added at the end: only its own units (gamma is gone from it and the one
    // before it, so two sources).
    std::fs::copy(&all[6], data.path().join(all[6].file_name().unwrap())).unwrap();
    let redone = units_run(&finish(data.path(), out.path(), &[]));
    assert!(redone.iter().all(|u| u.contains("20200607")), "{redone:?}");
    assert_eq!(redone.len(), 1 + 2);
    assert_same_tree(out.path(), &reference(data.path(), &[]));

    // An option that shapes only the diff: every diff unit, no extract.
    let options = ["--ignore-columns", "direction"];
    let redone = units_run(&finish(data.path(), out.path(), &options));
    assert!(redone.iter().all(|u| u.starts_with("diff")), "{redone:?}");
    // Three sources in each of the seven pairs, but gamma is in neither of the last pair.
    assert_eq!(redone.len(), 7 * 3 - 1);
    assert_same_tree(out.path(), &reference(data.path(), &options));

    // --fresh redoes everything.
    let redone = units_run(&finish(data.path(), out.path(), &["--fresh"]));
    assert_eq!(
        redone.iter().filter(|u| u.starts_with("extract")).count(),
        7
    );
}

/// Partitions recorded with another format version (an older `migrate`'s) are extracted
/// again, and every diff with them: their key fingerprints need not match this version's.
#[test]
fn partitions_of_another_format_are_extracted_again() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 4, 4, &[]);
    let out = tempfile::tempdir().unwrap();
    finish(data.path(), out.path(), &[]);
    let partitions = out.path().join(".work/partitions");
    let mut rewritten = 0;
    for entry in std::fs::read_dir(&partitions).unwrap() {
        let record = entry.unwrap().path().join("_partitions.json");
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
        let format = &mut json["inputs"]["format"];
        assert!(format.as_u64().is_some_and(|f| f > 1), "{json}");
        *format = (format.as_u64().unwrap() - 1).into();
        std::fs::write(&record, serde_json::to_vec(&json).unwrap()).unwrap();
        rewritten += 1;
    }
    assert_eq!(rewritten, 4);
    // The diffs' journal names the format of both partitions each diff read.
    let journal = out.path().join(".work/diffs.jsonl");
    let older: Vec<String> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|line| {
            let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
            for path in ["/inputs/current/format", "/inputs/previous/1/format"] {
                if let Some(format) = record.pointer_mut(path) {
                    *format = (format.as_u64().unwrap() - 1).into();
                }
            }
            record.to_string()
        })
        .collect();
    assert_eq!(older.len(), 4 * 3);
    std::fs::write(&journal, older.join("\n") + "\n").unwrap();
    let redone = units_run(&finish(data.path(), out.path(), &[]));
    let extracts = redone.iter().filter(|u| u.starts_with("extract")).count();
    assert_eq!(extracts, 4, "{redone:?}");
    assert_eq!(redone.len(), 4 + 4 * 3, "{redone:?}");
    assert_same_tree(out.path(), &reference(data.path(), &[]));
}

#[test]
fn stages_run_one_at_a_time_resume_like_the_whole_run() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 3, 3, &[]);
    let out = tempfile::tempdir().unwrap();
    let stage = |name: &str| {
        Command::new(binary())
            .arg(name)
            .arg("--backups")
            .arg(data.path())
            .arg("--out")
            .arg(out.path())
            .output()
            .unwrap()
    };
    let diff_first = stage("diff");
    assert_eq!(diff_first.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&diff_first.stderr).contains("run `migrate extract` first"));
    assert!(stage("extract").status.success());
    assert!(
        snapshot(out.path()).is_empty(),
        "extract writes only partitions"
    );
    let diff = stage("diff");
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    assert_same_tree(out.path(), &reference(data.path(), &[]));
}

#[test]
fn dry_run_writes_nothing_and_tells_the_plan() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 4, 3, &[1]);
    let out = tempfile::tempdir().unwrap();
    let before = snapshot(data.path());
    let output = command(data.path(), &out.path().join("new"), &["--dry-run"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(output.status.success());
    let plan = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "20200601",
        "20200603",
        "20200604",
        "no backup for 2020-06-02",
        "3 pending",
        "budget",
        "up to",
    ] {
        assert!(plan.contains(needle), "{needle:?} missing from:\n{plan}");
    }
    assert!(
        !out.path().join("new").exists(),
        "dry-run created the output folder"
    );
    assert_eq!(snapshot(data.path()), before);

    // After a run, a dry run finds everything done and still changes nothing.
    finish(data.path(), out.path(), &[]);
    let mut tree = snapshot(out.path());
    tree.extend(snapshot(&out.path().join(".work")));
    let output = command(data.path(), out.path(), &["--dry-run"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let plan = String::from_utf8(output.stdout).unwrap();
    assert!(plan.contains("extract: 3 done, 0 pending"), "{plan}");
    assert!(plan.contains("9 units done, 0 pending"), "{plan}");
    let mut after = snapshot(out.path());
    after.extend(snapshot(&out.path().join(".work")));
    assert_eq!(after, tree);
}
