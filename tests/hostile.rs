//! Hostile input and faults: each ends in a clear message naming the file and the place,
//! leaves the output of earlier good backups untouched, and a rerun after the cause is fixed
//! finishes the job.

mod common;

use std::io::{Read, Write};
use std::path::Path;

use common::*;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn run(data: &Path, out: &Path) -> std::process::Output {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("migrate"))
        .arg("--backups")
        .arg(data)
        .arg("--out")
        .arg(out)
        .arg("-q")
        .output()
        .unwrap()
}

/// Three good backups and, as the backup of 2020-06-04, the real fourth one.
struct Series {
    data: tempfile::TempDir,
    fourth: Vec<u8>,
    fourth_name: String,
}

fn series() -> Series {
    let data = tempfile::tempdir().unwrap();
    let spare = tempfile::tempdir().unwrap();
    let all = write_series(spare.path(), 4, 3, &[]);
    for file in &all[..3] {
        std::fs::copy(file, data.path().join(file.file_name().unwrap())).unwrap();
    }
    Series {
        data,
        fourth: std::fs::read(&all[3]).unwrap(),
        fourth_name: all[3].file_name().unwrap().to_string_lossy().into_owned(),
    }
}

/// Runs the good series, adds `bad` under `name`, and checks the failure names the file and
/// says each of `said`; then that the good output is untouched, and that a rerun with the
/// real backup in place gives what a fresh run gives.
fn fails_cleanly(name: &str, bad: &[u8], said: &[&str]) {
    let series = series();
    let out = tempfile::tempdir().unwrap();
    assert!(run(series.data.path(), out.path()).status.success());
    let good = snapshot(out.path());

    let bad_path = series.data.path().join(name);
    std::fs::write(&bad_path, bad).unwrap();
    let failed = run(series.data.path(), out.path());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(name),
        "the message does not name {name}: {stderr}"
    );
    for words in said {
        assert!(
            stderr.contains(words),
            "the message does not say {words:?}: {stderr}"
        );
    }
    assert!(snapshot(out.path()) == good, "good output was changed");
    assert!(temporary_files(out.path()).is_empty());

    std::fs::remove_file(&bad_path).unwrap();
    std::fs::write(series.data.path().join(&series.fourth_name), &series.fourth).unwrap();
    assert!(run(series.data.path(), out.path()).status.success());
    let fresh = tempfile::tempdir().unwrap();
    assert!(run(series.data.path(), fresh.path()).status.success());
    assert_same_output(out.path(), fresh.path(), &[]);
}

fn fourth_sql() -> Vec<u8> {
    gunzip(&series().fourth)
}

const GZ: &str = "just_covidcast_20200604_database.sql.gz";
const SQL: &str = "just_covidcast_20200604_database.sql";

#[test]
fn gzip_truncated_inside_the_deflate_stream() {
    let whole = series().fourth;
    fails_cleanly(
        GZ,
        &whole[..whole.len() / 2],
        &["deflate", "copy the backup again"],
    );
}

#[test]
fn gzip_truncated_inside_the_trailer() {
    let whole = series().fourth;
    fails_cleanly(GZ, &whole[..whole.len() - 3], &["backup"]);
}

#[test]
fn gzip_with_a_flipped_crc_byte() {
    let mut damaged = series().fourth;
    let crc = damaged.len() - 8;
    damaged[crc] ^= 0xff;
    fails_cleanly(GZ, &damaged, &["corrupt"]);
}

#[test]
fn a_gz_file_that_is_not_gzip() {
    fails_cleanly(GZ, &fourth_sql(), &["invalid gzip header"]);
}

#[test]
fn empty_files() {
    fails_cleanly(SQL, b"", &["empty dump"]);
    fails_cleanly(GZ, &gzip(b""), &["empty dump"]);
}

#[test]
fn an_unterminated_string() {
    let sql = String::from_utf8(fourth_sql()).unwrap();
    let cut = sql.rfind("'county'").unwrap() + 3;
    fails_cleanly(SQL, &sql.as_bytes()[..cut], &["truncated", "line"]);
}

#[test]
fn bytes_that_are_not_utf8() {
    let mut sql = fourth_sql();
    let at = sql.windows(7).position(|w| w == b"'alpha'").unwrap() + 2;
    sql[at] = 0xff;
    let line = sql[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    fails_cleanly(SQL, &sql, &["not UTF-8", &format!("line {line}")]);
}

#[test]
fn a_column_added_between_backups_is_refused_and_named() {
    let sql = String::from_utf8(fourth_sql()).unwrap();
    let drifted = sql
        .replace(
            "  `direction` int(11) DEFAULT NULL,\n",
            "  `direction` int(11) DEFAULT NULL,\n  `extra` int(11) DEFAULT NULL,\n",
        )
        .replace(",NULL)", ",NULL,7)");
    fails_cleanly(
        SQL,
        drifted.as_bytes(),
        &["column(s) extra added", "20200603 and 20200604"],
    );
}

/// A backup that differs from the real one only in form must give the same output.
fn same_output_as_the_real_backup(name: &str, variant: &[u8]) {
    let series = series();
    std::fs::write(series.data.path().join(&series.fourth_name), &series.fourth).unwrap();
    let expected = tempfile::tempdir().unwrap();
    assert!(run(series.data.path(), expected.path()).status.success());
    std::fs::remove_file(series.data.path().join(&series.fourth_name)).unwrap();
    std::fs::write(series.data.path().join(name), variant).unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = run(series.data.path(), out.path());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // summary.json counts the bytes of SQL read, which differ; the rows must not.
    assert_same_output(out.path(), expected.path(), &["summary.json"]);
}

#[test]
fn crlf_line_ends_read_like_lf() {
    let sql = String::from_utf8(fourth_sql()).unwrap();
    same_output_as_the_real_backup(SQL, sql.replace('\n', "\r\n").as_bytes());
}

#[test]
fn a_multi_member_gzip_file_reads_whole() {
    let sql = fourth_sql();
    let half = sql.len() / 2;
    let mut members = gzip(&sql[..half]);
    members.extend(gzip(&sql[half..]));
    same_output_as_the_real_backup(GZ, &members);
}

#[test]
fn one_line_inserts_read_like_multi_line_ones() {
    let sql = String::from_utf8(fourth_sql()).unwrap();
    same_output_as_the_real_backup(SQL, sql.replace(",\n(", ",(").as_bytes());
}

#[test]
fn the_string_null_is_not_null() {
    let dir = tempfile::tempdir().unwrap();
    let sql = String::from_utf8(fourth_sql())
        .unwrap()
        .replacen("'01001'", "'NULL'", 1);
    std::fs::write(dir.path().join(SQL), &sql).unwrap();
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(assert_cmd::cargo::cargo_bin("migrate"))
        .args(["--format", "csv", "-q", "--backups"])
        .arg(dir.path())
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    let issues = read_all_csv(&out.path().join("issues"));
    let geo = issues.header.iter().position(|h| h == "geo_value").unwrap();
    let texts = issues
        .rows
        .iter()
        .filter(|r| r[geo].as_deref() == Some("NULL"))
        .count();
    assert_eq!(texts, 1, "the string 'NULL' must stay a string");
    assert!(issues.rows.iter().all(|r| r[geo].is_some()));
}
