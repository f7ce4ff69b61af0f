//! `migrate plot` draws the values as of each chosen date and every revision of the series.

mod common;

use common::*;

#[test]
fn plots_lines_per_asof_date_and_every_revision() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &[]);
    let svg = out.path().join("backfill.svg");
    let output = migrate()
        .args([
            "plot",
            "--source",
            "fb-survey",
            "--signal",
            "smoothed_cli",
            "--geo",
            "01001,42003",
        ])
        .args(["--asof", "20200601,20200604,20200608", "--out"])
        .arg(out.path())
        .arg("--to")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Independently: revisions of those series in the expected issues (a key seen before).
    let expected = read_outfile_csv(&expected("issues.csv"));
    let mut seen = std::collections::HashSet::new();
    let mut revisions = 0;
    for row in &expected.rows {
        let key = row[..6].to_vec();
        let chosen = row[1].as_deref() == Some("smoothed_cli")
            && matches!(row[5].as_deref(), Some("01001" | "42003"));
        if !seen.insert(key) && chosen && row[7].is_some() {
            revisions += 1;
        }
    }
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.ends_with(&format!(": 6 lines, {revisions} revisions\n")),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"));
    for label in [
        "as of 20200601",
        "as of 20200604",
        "as of 20200608",
        "fb-survey smoothed_cli",
    ] {
        assert!(text.contains(label), "{label} missing from the plot");
    }
    assert!(!text.contains("as of 20200603"));
}

#[test]
fn an_unknown_series_or_date_is_an_error() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &[]);
    let plot = |extra: &[&str]| {
        migrate()
            .args([
                "plot",
                "--source",
                "fb-survey",
                "--signal",
                "smoothed_cli",
                "--out",
            ])
            .arg(out.path())
            .arg("--to")
            .arg(out.path().join("x.svg"))
            .args(extra)
            .assert()
            .code(1)
    };
    plot(&["--geo", "99999"]);
    plot(&["--geo", "01001", "--asof", "20200605"]);
}

#[test]
fn series_at_lags_are_drawn_against_the_latest_values() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &[]);
    let svg = out.path().join("lags.svg");
    let output = migrate()
        .args(["plot", "--source", "fb-survey", "--signal", "smoothed_cli"])
        .args(["--geo", "01001,42003", "--lag", "1,3", "--out"])
        .arg(out.path())
        .arg("--to")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The latest values (as of the last backup) and two lags, for two geos each.
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains(": 6 lines, "), "{stdout}");
    let text = std::fs::read_to_string(&svg).unwrap();
    for label in ["as of 20200608", "lag 1", "lag 3"] {
        assert!(text.contains(label), "{label} missing from the plot");
    }
    assert!(!text.contains("as of 20200601"));
    // Chosen as-of dates are drawn beside the lags.
    migrate()
        .args(["plot", "--source", "fb-survey", "--signal", "smoothed_cli"])
        .args([
            "--geo",
            "01001",
            "--lag",
            "2",
            "--asof",
            "20200604,20200608",
            "--out",
        ])
        .arg(out.path())
        .arg("--to")
        .arg(&svg)
        .assert()
        .success()
        .stdout(predicates::str::contains(": 3 lines, "));
}
