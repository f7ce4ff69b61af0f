//! `extract --dates`: one machine's share of the backups, written into a work folder that
//! other machines fill at the same time; refused where a command needs every backup.

mod common;

use std::path::Path;

use common::*;
use migrate::workdir::lock::lock_dates;

fn migrate_in(work: &Path, args: &[&str]) -> std::process::Output {
    migrate()
        .args(args)
        .arg("--backups")
        .arg(fixture_backups())
        .arg("--out")
        .arg(work.join("out"))
        .arg("--work")
        .arg(work)
        .arg("-q")
        .output()
        .unwrap()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn extracted_dates(work: &Path) -> Vec<String> {
    let mut dates: Vec<String> = std::fs::read_dir(work.join("partitions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dates.sort();
    dates
}

#[test]
fn dates_select_the_backups_to_extract() {
    let work = tempfile::tempdir().unwrap();
    let output = migrate_in(work.path(), &["extract", "--dates", "20200602..20200604"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        extracted_dates(work.path()),
        ["date=20200602", "date=20200603", "date=20200604"]
    );
    // The rest, later or elsewhere, leaves those alone (a rerun would redo nothing).
    let output = migrate_in(
        work.path(),
        &["extract", "--dates", "..20200601,20200606.."],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(extracted_dates(work.path()).len(), 7);
    let plan = migrate_in(
        work.path(),
        &["extract", "--dates", "20200603", "--dry-run"],
    );
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        plan.contains("backups in") && plan.contains(": 1\n"),
        "{plan}"
    );
    assert!(
        plan.contains("20200603") && !plan.contains("20200604"),
        "{plan}"
    );
    assert!(plan.contains("extract: 1 done, 0 pending"), "{plan}");
}

#[test]
fn dates_are_refused_where_every_backup_is_needed() {
    let work = tempfile::tempdir().unwrap();
    for args in [
        &["--dates", "20200601"][..],
        &["diff", "--dates", "20200601"],
        &["verify", "--dates", "20200601"],
        &["emit", "--from", "x", "--dates", "20200601"],
        &["extract", "--dates", "20200601", "--fresh"],
        &["extract", "--dates", "2020-06-01"],
        &["extract", "--dates", "20200605..20200601"],
    ] {
        let output = migrate_in(work.path(), args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // A selection of no backup is wrong input, found before any work: exit 2.
    let none = migrate_in(work.path(), &["extract", "--dates", "20300101.."]);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        stderr(&none).contains("has a date in --dates 20300101.."),
        "{}",
        stderr(&none)
    );
    assert!(!work.path().join("partitions").exists());
}

#[test]
fn extracts_of_other_dates_run_beside_one_another_but_not_of_one_date() {
    let work = tempfile::tempdir().unwrap();
    // Another machine is extracting 20200601 and was interrupted once before on 20200602;
    // it left a temporary folder of each date.
    let held = lock_dates(work.path(), &["20200601".to_string()]).unwrap();
    let partitions = work.path().join("partitions");
    for leftover in [".tmp-date=20200601-other", ".tmp-date=20200602-killed"] {
        std::fs::create_dir_all(partitions.join(leftover)).unwrap();
    }
    let same_date = migrate_in(work.path(), &["extract", "--dates", "..20200602"]);
    assert_eq!(same_date.status.code(), Some(75), "{}", stderr(&same_date));
    assert!(
        stderr(&same_date).contains("extracting the backup of 20200601"),
        "{}",
        stderr(&same_date)
    );
    let whole = migrate_in(work.path(), &["extract"]);
    assert_eq!(whole.status.code(), Some(75), "{}", stderr(&whole));
    let other = migrate_in(work.path(), &["extract", "--dates", "20200602.."]);
    assert!(other.status.success(), "{}", stderr(&other));
    assert!(
        partitions.join(".tmp-date=20200601-other").exists(),
        "another process's temporary folder must stay"
    );
    assert!(!partitions.join(".tmp-date=20200602-killed").exists());
    drop(held);
    let rest = migrate_in(work.path(), &["extract"]);
    assert!(rest.status.success(), "{}", stderr(&rest));
    assert!(temporary_files(work.path()).is_empty());
    assert_eq!(extracted_dates(work.path()).len(), 7);
}
