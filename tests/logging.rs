//! What a run tells its user: `-q`/`-v`, `RUST_LOG` over both, JSON logs, and the summary.

mod common;

use std::process::Output;

use common::*;

fn run(
    data: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
    rust_log: Option<&str>,
) -> Output {
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("migrate"));
    command
        .arg("--backups")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra);
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn quiet_verbose_and_rust_log() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 3, 2, &[1]);
    let out = tempfile::tempdir().unwrap();
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let normal = run(data.path(), out.path(), &[], None);
    assert!(stderr(&normal).contains(" INFO extracted 20200601"));
    assert!(stderr(&normal).contains("WARN no backup for 2020-06-02"));

    let quiet = run(data.path(), out.path(), &["-qq"], None);
    assert_eq!(stderr(&quiet), "");

    let verbose = run(data.path(), out.path(), &["-v"], None);
    assert!(stderr(&verbose).contains("DEBUG 20200601 alpha: finished earlier, kept"));

    // RUST_LOG wins over -q.
    let overridden = run(data.path(), out.path(), &["-q"], Some("migrate=debug"));
    assert!(stderr(&overridden).contains("finished earlier, kept"));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 2, 2, &[]);
    let out = tempfile::tempdir().unwrap();
    let output = run(data.path(), out.path(), &["--log-format", "json"], None);
    let text = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3);
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(
            value["level"].is_string() && value["fields"]["message"].is_string(),
            "{line}"
        );
    }
}

/// With `--log-format json`, the per-backup and (at `-v`) per-unit lines carry what their
/// message says as fields a log system can filter on: the event, the date, the source of a
/// unit, the rows and counts.
#[test]
fn json_log_lines_carry_their_numbers_as_fields() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 3, 2, &[]);
    let out = tempfile::tempdir().unwrap();
    let output = run(
        data.path(),
        out.path(),
        &["--log-format", "json", "-v"],
        None,
    );
    let fields: Vec<serde_json::Value> = String::from_utf8(output.stderr)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["fields"].clone())
        .collect();
    let of = |event: &str, per_unit: bool| -> Vec<&serde_json::Value> {
        (fields.iter())
            .filter(|f| f["event"] == event && f["source"].is_string() == per_unit)
            .collect()
    };
    let extracted = of("extracted", false);
    assert_eq!(extracted.len(), 3, "{fields:#?}");
    for line in &extracted {
        let date = line["date"].as_str().unwrap();
        assert!(line["message"].as_str().unwrap().contains(date), "{line}");
        assert!(line["rows"].as_u64().unwrap() > 0, "{line}");
        assert!(line["sql_bytes"].as_u64().unwrap() > 0, "{line}");
    }
    // A line per backup diffed, and at -v one per unit (backup and source).
    let diffed = of("diffed", false);
    assert_eq!(diffed.len(), 3, "{fields:#?}");
    let units = of("diffed", true);
    let sources: u64 = diffed.iter().map(|d| d["sources"].as_u64().unwrap()).sum();
    assert_eq!(units.len() as u64, sources, "{fields:#?}");
    for backup in &diffed {
        let date = &backup["date"];
        let of_date: Vec<_> = units.iter().filter(|u| &u["date"] == date).collect();
        assert_eq!(backup["sources"], of_date.len(), "{backup}");
        for count in ["rows", "added", "changed", "removed"] {
            let sum: u64 = of_date.iter().map(|u| u[count].as_u64().unwrap()).sum();
            assert_eq!(backup[count], sum, "{count}: {backup}");
        }
    }
    assert!(units.iter().any(|u| u["added"].as_u64() > Some(0)));
}

#[test]
fn the_summary_is_printed_and_saved() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 3, 2, &[]);
    let out = tempfile::tempdir().unwrap();
    let output = run(data.path(), out.path(), &[], None);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("3 backups, 0 gaps"), "{stdout}");
    // Per source: 4 signals x 2 geos x (20 + day) time values, summed over the days.
    let rows = |day: u64| 4 * 2 * (20 + day);
    let alpha = stdout
        .lines()
        .find(|l| l.starts_with("alpha"))
        .expect("a line for alpha");
    let fields: Vec<&str> = alpha.split_whitespace().collect();
    assert_eq!(
        fields[1],
        (rows(0) + rows(1) + rows(2)).to_string(),
        "{alpha}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["sources"]["alpha"]["rows_seen"],
        rows(0) + rows(1) + rows(2)
    );
    // gamma disappears on the last day: all its rows of the day before are removals.
    assert_eq!(summary["sources"]["gamma"]["removed"], rows(1));
    assert_eq!(summary["backups"].as_array().unwrap().len(), 3);
}
