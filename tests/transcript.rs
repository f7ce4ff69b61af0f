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
    let rate = Regex::new(r"\([\d.]+ \w*B/s\)").unwrap();
    let text = rate.replace_all(&text, "(<rate>)");
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

/// Standard error's log lines with their timestamps masked, in order; the "diffed" lines,
/// one per backup as its last unit finishes (sources run side by side), sorted.
fn log_lines(stderr: &[u8], out: &Path) -> String {
    let stamp = Regex::new(r"(?m)^\d{4}-\d\d-\d\dT[\d:.]+Z\s+").unwrap();
    let text = String::from_utf8_lossy(stderr);
    let text = masked(&stamp.replace_all(&text, ""), out);
    let mut lines: Vec<&str> = text.lines().collect();
    let is_diffed = |line: &&str| line.starts_with("INFO diffed ");
    if let Some(first) = lines.iter().position(is_diffed) {
        let count = lines[first..].iter().take_while(|l| is_diffed(l)).count();
        lines[first..first + count].sort();
    }
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// What a terminal shows, as lines: escape sequences removed, each redraw of a progress
/// bar reduced to a first `<extract bar>` or `<diff bar>` (its counts, rates and how often
/// it is drawn vary), later redraws dropped.
fn screen(bytes: &[u8], out: &Path) -> String {
    let escapes = Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]").unwrap();
    let bar = Regex::new(r"^\s*(extract|diff) \[").unwrap();
    let text = String::from_utf8_lossy(bytes);
    let text = escapes.replace_all(&text, "");
    let mut lines: Vec<String> = Vec::new();
    for piece in text.split(['\r', '\n']) {
        let piece = piece.trim_end();
        if piece.trim().is_empty() {
            continue;
        }
        let line = match bar.captures(piece) {
            Some(stage) => format!("<{} bar>", &stage[1]),
            None => piece.to_string(),
        };
        if !(line.ends_with(" bar>") && lines.contains(&line)) {
            lines.push(line);
        }
    }
    log_lines((lines.join("\n") + "\n").as_bytes(), out)
}

/// Runs `migrate ARGS` on a pseudo-terminal (util-linux `script`), as a user at a terminal
/// sees it (standard output and error together); returns the screen and the exit status.
fn on_a_terminal(args: &[&str], out: &Path) -> (String, i32) {
    let binary = assert_cmd::cargo::cargo_bin("migrate");
    let command = std::iter::once(binary.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let output = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .current_dir(root())
        .env("TERM", "xterm")
        .env_remove("RUST_LOG")
        .output()
        .expect("util-linux `script` runs");
    (screen(&output.stdout, out), output.status.code().unwrap())
}

#[test]
fn progress_on_a_terminal_is_the_bar_and_off_it_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let backups = "fixtures/backups";
    let out_arg = out.display().to_string();
    let mut transcript = String::new();
    for flag in ["", "-v", "-q"] {
        let mut args = vec!["--backups", backups, "--out", &out_arg, "--fresh"];
        if !flag.is_empty() {
            args.push(flag);
        }
        let (screen, status) = on_a_terminal(&args, &out);
        // -v adds debug lines, whose order follows the threads: only the info lines.
        let screen: String = (screen.lines())
            .filter(|line| !line.starts_with("DEBUG"))
            .map(|line| line.to_string() + "\n")
            .collect();
        transcript += &format!(
            "$ migrate --backups {backups} --out OUT --fresh {flag}   # on a terminal\n{screen}exit {status}\n"
        );
    }
    let output = migrate()
        .current_dir(root())
        .args(["--backups", backups, "--out", &out_arg, "--fresh"])
        .output()
        .unwrap();
    transcript += &format!(
        "$ migrate --backups {backups} --out OUT --fresh 2>&1 >/dev/null   # off a terminal\n{}exit {}\n",
        log_lines(&output.stderr, &out),
        output.status.code().unwrap()
    );
    let (screen, status) = on_a_terminal(
        &[
            "asof", "--out", &out_arg, "--date", "20200603", "--format", "parquet",
        ],
        &out,
    );
    transcript += &format!(
        "$ migrate asof --out OUT --date 20200603 --format parquet   # on a terminal\n{screen}exit {status}\n"
    );
    check("progress", &transcript);
}

#[test]
fn input_errors_exit_2_name_what_exists_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = dir.path().join("out");
    let mut transcript = String::new();
    let run = |args: Vec<String>, transcript: &mut String| {
        let output = migrate().current_dir(root()).args(&args).output().unwrap();
        let shown: Vec<String> = (args.iter())
            .map(|a| a.replace(&dir.path().display().to_string(), "TMP"))
            .collect();
        *transcript += &format!(
            "$ migrate {}\n{}exit {}\n",
            shown.join(" "),
            String::from_utf8(output.stderr)
                .unwrap()
                .replace(&dir.path().display().to_string(), "TMP"),
            output.status.code().unwrap()
        );
    };
    let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let out_arg = out.display().to_string();
    let missing = dir.path().join("missing").display().to_string();
    run(
        args(&["--backups", &missing, "--out", &out_arg]),
        &mut transcript,
    );
    run(
        args(&["--backups", &empty.display().to_string(), "--out", &out_arg]),
        &mut transcript,
    );
    assert!(!out.exists(), "an input error created {}", out.display());
    let finished = migrate()
        .current_dir(root())
        .args(["--backups", "fixtures/backups", "--out", &out_arg, "-q"])
        .output()
        .unwrap();
    assert!(finished.status.success());
    run(
        args(&[
            "asof", "--out", &out_arg, "--date", "20200603", "--source", "fb-surve",
        ]),
        &mut transcript,
    );
    run(
        args(&[
            "history",
            "--out",
            &out_arg,
            "--source",
            "fb-survey",
            "--signal",
            "smoothed_ili",
        ]),
        &mut transcript,
    );
    // Lists, as `asof` and `history` take them, of one value each.
    run(
        args(&[
            "plot",
            "--out",
            &out_arg,
            "--source",
            "fb-survey,jhu-csse",
            "--signal",
            "smoothed_cli",
            "--geo",
            "42003",
            "--to",
            "plot.svg",
        ]),
        &mut transcript,
    );
    run(
        args(&["sources", "--out", &out_arg, "--format", "csv"]),
        &mut transcript,
    );
    let sources = migrate()
        .args(["sources", "--out", &out_arg, "--format", "table"])
        .output()
        .unwrap();
    transcript += &format!(
        "$ migrate sources --out TMP/out --format table\n{}",
        String::from_utf8(sources.stdout).unwrap()
    );
    check("input-errors", &transcript);
}

#[test]
fn a_broken_backup_stops_only_the_units_that_depend_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    for entry in std::fs::read_dir(fixture_backups()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), backups.join(entry.file_name())).unwrap();
    }
    let broken = backups.join("just_covidcast_20200603_database.sql.gz");
    let whole = std::fs::read(&broken).unwrap();
    std::fs::write(&broken, &whole[..whole.len() / 2]).unwrap();
    let out = dir.path().join("out");
    let run = || {
        migrate()
            .args(["--backups", &backups.display().to_string()])
            .args(["--out", &out.display().to_string()])
            .output()
            .unwrap()
    };
    let shown = |output: &std::process::Output| {
        let text = format!(
            "{}{}exit {}\n",
            String::from_utf8_lossy(&output.stdout),
            log_lines(&output.stderr, &out),
            output.status.code().unwrap()
        );
        masked(&text, &out).replace(&backups.display().to_string(), "BACKUPS")
    };
    let first = run();
    assert_eq!(first.status.code(), Some(1));
    let mut transcript = format!(
        "$ migrate --backups BACKUPS --out OUT   # 20200603 cut short\n{}",
        shown(&first)
    );
    std::fs::write(&broken, &whole).unwrap();
    let second = run();
    assert!(second.status.success());
    transcript += &format!(
        "$ migrate --backups BACKUPS --out OUT   # 20200603 replaced\n{}",
        shown(&second)
    );
    check("broken-backup", &transcript);
    // The rerun's output is a fresh run's.
    let fresh = dir.path().join("fresh");
    migrate()
        .args(["--backups", &backups.display().to_string()])
        .args(["--out", &fresh.display().to_string(), "-q"])
        .assert()
        .success();
    for folder in ["issues", "removals"] {
        assert_eq!(
            common::snapshot(&out.join(folder)),
            common::snapshot(&fresh.join(folder)),
            "{folder} differ from a fresh run's"
        );
    }
}
