//! `migrate verify` proves the output rebuilds every backup, and fails — naming the key and
//! the date — when the output is damaged in any of the ways that matter.

mod common;

use std::path::Path;

use common::*;

fn verify(out: &Path) -> (Option<i32>, String) {
    verify_against(&fixture_backups(), out)
}

fn verify_against(backups: &Path, out: &Path) -> (Option<i32>, String) {
    verify_with(backups, out, &[])
}

fn verify_with(backups: &Path, out: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let output = migrate()
        .arg("verify")
        .arg("--backups")
        .arg(backups)
        .arg("--out")
        .arg(out)
        .arg("-q")
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

/// Edits one line of a file of the output.
fn edit(out: &Path, file: &str, change: impl FnOnce(&mut Vec<String>)) {
    let path = out.join(file);
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    change(&mut lines);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn an_intact_migration_verifies_in_both_formats() {
    for format in ["sql", "csv"] {
        let out = tempfile::tempdir().unwrap();
        migrate_fixtures(out.path(), &["--format", format]);
        let (code, text) = verify(out.path());
        assert_eq!(code, Some(0), "{text}");
        assert!(
            text.contains("verified 7 backups of 3 sources: identical"),
            "{text}"
        );
    }
}

#[test]
fn a_deleted_issue_row_is_found() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &["--format", "csv"]);
    edit(out.path(), "issues/20200603/fb-survey.csv", |lines| {
        let row = lines
            .iter()
            .position(|l| l.contains(",20200530,01003,"))
            .unwrap();
        lines.remove(row);
    });
    let (code, text) = verify(out.path());
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("20200603 fb-survey: (fb-survey, smoothed_cli, day, county, 20200530, 01003) with values that differ"),
        "{text}"
    );
}

#[test]
fn a_changed_value_is_found() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &["--format", "sql"]);
    edit(out.path(), "issues/20200606/jhu-csse.sql", |lines| {
        let row = lines
            .iter()
            .position(|l| l.contains("20200605,'pa'"))
            .unwrap();
        lines[row] = lines[row].replace(",4,NULL", ",4.5,NULL");
    });
    let (code, text) = verify(out.path());
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("20200606 jhu-csse: (jhu-csse, confirmed_incidence_num, day, state, 20200605, pa) with values that differ"), "{text}");
}

#[test]
fn a_dropped_removal_is_found() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &["--format", "csv"]);
    edit(out.path(), "removals/20200604/jhu-csse.csv", |lines| {
        lines.retain(|l| !l.contains(",20200529,ny,"));
    });
    let (code, text) = verify(out.path());
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("20200604 jhu-csse: (jhu-csse, confirmed_incidence_num, day, state, 20200529, ny) in the rebuilt table but not in the backup"),
        "{text}"
    );
}

#[test]
fn a_shifted_issue_date_is_found() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &["--format", "csv"]);
    edit(out.path(), "issues/20200602/doctor-visits.csv", |lines| {
        let row = lines
            .iter()
            .position(|l| l.contains(",20200601,06037,"))
            .unwrap();
        lines[row] = lines[row].replace(",20200602,1", ",20200603,2");
    });
    let (code, text) = verify(out.path());
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("(doctor-visits, smoothed_adj_cli, day, county, 20200601, 06037): issue 20200603 lag 2 in the file of 20200602, expected issue 20200602 lag 1"),
        "{text}"
    );
}

#[test]
fn a_row_moved_to_a_later_backup_is_found() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &["--format", "csv"]);
    let mut moved = String::new();
    edit(out.path(), "issues/20200601/jhu-csse.csv", |lines| {
        let row = lines
            .iter()
            .position(|l| l.contains(",20200531,pa,"))
            .unwrap();
        moved = lines.remove(row).replace(",20200601,1", ",20200602,2");
    });
    edit(out.path(), "issues/20200602/jhu-csse.csv", |lines| {
        lines.push(moved.clone())
    });
    let (code, text) = verify(out.path());
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("20200601 jhu-csse: (jhu-csse, confirmed_incidence_num, day, state, 20200531, pa) missing from the rebuilt table"),
        "{text}"
    );
}

/// A series from `scripts/gen-backups` (every kind of change it makes: back-fill, late rows,
/// removals, a removed signal, renumbered ids, extreme doubles, a second table, a gap)
/// migrates and verifies.
#[test]
fn a_generated_series_verifies() {
    let backups = tempfile::tempdir().unwrap();
    gen_backups(
        backups.path(),
        &[
            "--rows",
            "3000",
            "--days",
            "4",
            "--gap-day",
            "2",
            "--jobs",
            "1",
        ],
    );
    let out = tempfile::tempdir().unwrap();
    migrate()
        .arg("--backups")
        .arg(backups.path())
        .arg("--out")
        .arg(out.path())
        .arg("-q")
        .assert()
        .success();
    let (code, text) = verify_against(backups.path(), out.path());
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("verified 3 backups of 5 sources: identical"),
        "{text}"
    );
}

/// A source too large for the memory budget is verified in buckets of `time_value` (forced
/// here on small data with the hidden `--max-part-rows`): the same problems, in the same
/// order, the first ten of each kind per backup named and the rest counted.
#[test]
fn verify_in_buckets_reports_what_a_whole_verify_does() {
    let backups = tempfile::tempdir().unwrap();
    gen_backups(
        backups.path(),
        &["--rows", "3000", "--days", "3", "--jobs", "1"],
    );
    let out = tempfile::tempdir().unwrap();
    migrate()
        .arg("--backups")
        .arg(backups.path())
        .arg("--out")
        .arg(out.path())
        .args(["-q", "--format", "csv"])
        .assert()
        .success();
    let (code, text) = verify_with(backups.path(), out.path(), &["--max-part-rows", "300"]);
    assert_eq!(code, Some(0), "{text}");
    // Rows dropped from the first backup's issues, values changed in the second's.
    edit(out.path(), "issues/20200601/fb-survey.csv", |lines| {
        let mut i = 0;
        lines.retain(|_| {
            i += 1;
            i == 1 || i % 7 != 3
        });
    });
    edit(out.path(), "issues/20200602/jhu-csse.csv", |lines| {
        for line in lines.iter_mut().skip(1).step_by(5) {
            let mut fields: Vec<String> = line.split(',').map(String::from).collect();
            fields[7] = "12345.5".into();
            *line = fields.join(",");
        }
    });
    let whole = verify_with(backups.path(), out.path(), &[]);
    assert_eq!(whole.0, Some(1), "{}", whole.1);
    assert!(whole.1.contains("more differences"), "{}", whole.1);
    let split = verify_with(backups.path(), out.path(), &["--max-part-rows", "300"]);
    assert_eq!(split, whole);
}
