//! End to end: the fixture backups (real mariadb-dump output) in, exactly the issues and
//! removals that SQL in MariaDB computed out (see fixtures/expected/README.md).

mod common;

use common::*;

fn run_into(out: &std::path::Path, extra: &[&str]) {
    migrate()
        .arg("--backups")
        .arg(fixture_backups())
        .arg("--out")
        .arg(out)
        .args(extra)
        .assert()
        .success();
}

#[test]
fn issues_and_removals_match_the_sql_computed_expectation() {
    let out = tempfile::tempdir().unwrap();
    run_into(out.path(), &["--format", "csv"]);

    let wanted = read_outfile_csv(&expected("issues.csv"));
    let actual = read_all_csv(&out.path().join("issues"));
    assert_eq!(actual.header, wanted.header);
    let (actual_rows, expected_rows) = (
        actual.normalized(&FLOAT_COLUMNS),
        wanted.normalized(&FLOAT_COLUMNS),
    );
    for row in &expected_rows {
        assert!(actual_rows.contains(row), "missing issue row {row:?}");
    }
    for row in &actual_rows {
        assert!(expected_rows.contains(row), "unexpected issue row {row:?}");
    }
    assert_eq!(actual_rows, expected_rows);

    let wanted = read_outfile_csv(&expected("removals.csv"));
    let actual = read_all_csv(&out.path().join("removals"));
    assert_eq!(actual.header, wanted.header);
    assert_eq!(actual.normalized(&[]), wanted.normalized(&[]));
}

#[test]
fn one_file_per_source_and_backup_sorted_by_key() {
    let out = tempfile::tempdir().unwrap();
    run_into(out.path(), &["--format", "csv"]);
    let files = files_below(&out.path().join("issues"), "csv");
    let backups = files_below(&fixture_backups(), "gz").len();
    let dates: std::collections::BTreeSet<_> = files
        .iter()
        .map(|f| f.parent().unwrap().file_name().unwrap().to_owned())
        .collect();
    assert_eq!(dates.len(), backups, "one folder per backup");
    for file in files {
        let table = read_csv(&file);
        let key = |row: &Vec<Option<String>>| -> Vec<Option<String>> { row[..6].to_vec() };
        let source = &table.rows.first().map(|r| r[0].clone());
        assert!(
            table.rows.iter().all(|r| &Some(r[0].clone()) == source),
            "{} mixes sources",
            file.display()
        );
        let mut sorted = table.rows.clone();
        // Sorting by the key as text; time_value has the same width in every row here.
        sorted.sort_by_key(key);
        assert_eq!(
            sorted,
            table.rows,
            "{} is not sorted by key",
            file.display()
        );
    }
}

#[test]
fn output_does_not_depend_on_thread_count() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run_into(one.path(), &["--jobs", "1"]);
    run_into(two.path(), &["--jobs", "2"]);
    let files_one = files_below(&one.path().join("issues"), "sql");
    let files_two = files_below(&two.path().join("issues"), "sql");
    assert_eq!(files_one.len(), files_two.len());
    assert!(!files_one.is_empty());
    for (a, b) in files_one.iter().zip(&files_two) {
        assert_eq!(
            a.strip_prefix(one.path()).unwrap(),
            b.strip_prefix(two.path()).unwrap()
        );
        assert_eq!(
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            "{}",
            a.display()
        );
    }
}

#[test]
fn sql_output_is_chunked_by_chunk_rows() {
    let out = tempfile::tempdir().unwrap();
    run_into(out.path(), &["--chunk-rows", "3"]);
    let mut checked = 0;
    for file in files_below(&out.path().join("issues"), "sql") {
        let text = std::fs::read_to_string(&file).unwrap();
        let rows = text.lines().filter(|l| l.starts_with('(')).count();
        let inserts = text.matches("INSERT INTO `covidcast`").count();
        assert_eq!(inserts, rows.div_ceil(3), "{}", file.display());
        checked += rows;
    }
    assert!(checked > 3);
}

#[test]
fn summary_counts_match_the_expectation() {
    let out = tempfile::tempdir().unwrap();
    run_into(out.path(), &[]);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    let issues = read_outfile_csv(&expected("issues.csv")).rows.len() as u64;
    let removals = read_outfile_csv(&expected("removals.csv")).rows.len() as u64;
    let sources = summary["sources"].as_object().unwrap();
    let total = |field: &str| -> u64 { sources.values().map(|s| s[field].as_u64().unwrap()).sum() };
    assert_eq!(total("added") + total("changed"), issues);
    assert_eq!(total("removed"), removals);
    assert_eq!(
        summary["gaps"].as_array().unwrap().len(),
        1,
        "the missing day"
    );
}

#[test]
fn backfill_summary_matches_the_expected_issues() {
    let out = tempfile::tempdir().unwrap();
    run_into(out.path(), &[]);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    // Independently: a revision is an expected issue row whose key had an issue row before.
    let expected = read_outfile_csv(&expected("issues.csv"));
    let lag_at = expected.header.iter().position(|h| h == "lag").unwrap();
    let value_at = expected.header.iter().position(|h| h == "value").unwrap();
    let mut previous: std::collections::HashMap<Vec<Option<String>>, Option<f64>> =
        Default::default();
    let mut sizes: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut seen = std::collections::HashSet::new();
    let mut by_source: std::collections::BTreeMap<
        String,
        (u64, std::collections::BTreeMap<String, u64>),
    > = Default::default();
    for row in &expected.rows {
        let source = row[0].clone().unwrap();
        let entry = by_source.entry(source).or_default();
        entry.0 += 1;
        let value = row[value_at].as_ref().map(|v| v.parse::<f64>().unwrap());
        if !seen.insert(row[..6].to_vec()) {
            *entry.1.entry(row[lag_at].clone().unwrap()).or_default() += 1;
            if let (Some(new), Some(Some(old))) = (value, previous.get(&row[..6])) {
                sizes
                    .entry(row[0].clone().unwrap())
                    .or_default()
                    .push((new - old).abs());
            }
        }
        previous.insert(row[..6].to_vec(), value);
    }
    for (source, (issue_rows, by_lag)) in by_source {
        let backfill = &summary["sources"][&source]["backfill"];
        let revisions: u64 = by_lag.values().sum();
        let lags: std::collections::BTreeMap<String, u64> =
            serde_json::from_value(backfill["revisions_by_lag"].clone()).unwrap();
        assert_eq!(lags, by_lag, "{source}");
        let share = backfill["revised_share"].as_f64().unwrap();
        assert!(
            (share - revisions as f64 / issue_rows as f64).abs() < 1e-12,
            "{source}"
        );
    }
}
