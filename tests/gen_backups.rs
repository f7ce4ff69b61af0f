//! `scripts/gen-backups` makes the benchmark series: every backup it writes must be a table
//! that could exist, so no key twice in one backup.

mod common;

use common::gen_backups;
use std::collections::HashMap;

/// The key columns of a covidcast row line `(id,'source','signal','day','county',tv,'geo',...`
/// (the generator's keys hold no commas or quotes to escape).
fn key_of(line: &str) -> String {
    let fields: Vec<&str> = line.trim_start_matches('(').splitn(8, ',').collect();
    assert_eq!(fields.len(), 8, "not a covidcast row: {line}");
    fields[1..7].join(",")
}

/// A late row removed while recent and arriving again was once written twice (from day 17 of
/// a 20,000-row series on): this series reaches that case with every seed tried.
#[test]
fn a_long_generated_series_has_no_key_twice_in_a_backup() {
    let backups = tempfile::tempdir().unwrap();
    gen_backups(
        backups.path(),
        &["--rows", "20000", "--days", "25", "--plain", "--jobs", "2"],
    );
    let mut files: Vec<_> = std::fs::read_dir(backups.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 25);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut in_covidcast = false;
        for (number, line) in text.lines().enumerate() {
            if line.starts_with("INSERT INTO `covidcast` VALUES") {
                in_covidcast = true;
                continue;
            }
            if !in_covidcast || !line.starts_with('(') {
                continue;
            }
            if let Some(first) = seen.insert(key_of(line), number + 1) {
                panic!(
                    "{}: the key of line {} is on line {first} too: {line}",
                    file.display(),
                    number + 1
                );
            }
            in_covidcast = !line.ends_with(';');
        }
        assert!(
            seen.len() > 15_000,
            "{}: {} rows",
            file.display(),
            seen.len()
        );
    }
}
