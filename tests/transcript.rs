//! Transcripts: whole outputs of commands a newcomer runs first, compared with stored
//! texts (`tests/transcripts/`), with what varies from run to run masked: seconds, the
//! memory budget and where it comes from (the machine, or the cgroup the tests run in), and
//! the temporary output folder. The counts in
//! them are the ones `run.rs` checks against SQL computed in MariaDB; the wording is what
//! these tests keep from drifting. After a deliberate change of wording, rewrite a file
//! with `MIGRATE_BLESS=1 cargo test --test transcript` and review its diff.

mod common;

use std::path::Path;

use common::{fixture_backups, migrate, root};
use regex::Regex;

/// The output with seconds, the memory budget, the cores and `out` masked.
fn masked(text: &str, out: &Path) -> String {
    let text = text.replace(&out.display().to_string(), "OUT");
    let text = text.replace(&fixture_backups().display().to_string(), "BACKUPS");
    let seconds = Regex::new(r"\d+\.\d+ s\b").unwrap();
    let budget = Regex::new(r"budget [\d.]+ [KMGT]iB \([^)]*\)").unwrap();
    // `--jobs` defaults to the number of cores.
    let jobs = Regex::new(r"\d+ at once").unwrap();
    let text = seconds.replace_all(&text, "<t> s");
    let text = budget.replace_all(&text, "budget <memory> (<where it comes from>)");
    let text = jobs.replace_all(&text, "<jobs> at once");
    text.lines()
        .map(|line| {
            // The per-source table's `seconds` column (the sixth).
            let fields: Vec<&str> = line.split_whitespace().collect();
            let is_source_row =
                fields.len() == 9 && fields[1..5].iter().all(|f| f.parse::<u64>().is_ok());
            match is_source_row {
                true => {
                    let mut fields = fields;
                    if fields[5] != "-" {
                        fields[5] = "<t>";
                    }
                    fields.join(" ")
                }
                false => line.trim_end().to_string(),
            }
        })
        .map(|line| line + "\n")
        .collect()
}

fn check(name: &str, actual: &str) {
    let path = root().join("tests/transcripts").join(format!("{name}.txt"));
    if std::env::var_os("MIGRATE_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(
        actual,
        expected,
        "the output of `{name}` changed (left: now, right: {})",
        path.display()
    );
}

#[test]
fn a_first_run_a_resumed_run_and_a_dry_run_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = || {
        let output = migrate()
            .arg("--backups")
            .arg(fixture_backups())
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(output.status.success());
        masked(&String::from_utf8(output.stdout).unwrap(), &out)
    };
    check("run", &run());
    check("run-resumed", &run());
    let dry = migrate()
        .arg("--backups")
        .arg(fixture_backups())
        .arg("--out")
        .arg(&out)
        .arg("--dry-run")
        .output()
        .unwrap();
    assert!(dry.status.success());
    check(
        "dry-run-finished",
        &masked(&String::from_utf8(dry.stdout).unwrap(), &out),
    );
}

#[test]
fn usage_errors_say_what_is_missing_and_exit_2() {
    let mut transcript = String::new();
    for args in [vec![], vec!["--backups", "fixtures/backups"]] {
        let output = migrate().current_dir(root()).args(&args).output().unwrap();
        transcript += &format!(
            "$ migrate {}\n{}exit {}\n",
            args.join(" "),
            String::from_utf8(output.stderr).unwrap(),
            output.status.code().unwrap()
        );
    }
    check("usage-errors", &transcript);
}

#[test]
fn each_stage_lists_only_the_options_it_uses() {
    for stage in ["extract", "diff", "verify"] {
        let output = migrate().args([stage, "--help"]).output().unwrap();
        assert!(output.status.success());
        check(
            &format!("{stage}-help"),
            &String::from_utf8(output.stdout).unwrap(),
        );
    }
}
