//! Memory stays flat whatever the size of a dump, even when one INSERT is a single line of
//! hundreds of MB. Its own test binary, so that the peak RSS of children is this test's alone.

mod common;

use std::io::Write;
use std::process::Command;

/// Writes a dump whose rows all sit in one INSERT on one line.
fn one_line_dump(path: &std::path::Path, rows: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    write!(
        out,
        "CREATE TABLE `covidcast` (`id` int, `source` varchar(32), `signal` varchar(64), \
         `time_type` varchar(12), `geo_type` varchar(12), `time_value` int, \
         `geo_value` varchar(12), `value` double);\nINSERT INTO `covidcast` VALUES "
    )
    .unwrap();
    for i in 0..rows {
        let sep = if i == 0 { "" } else { "," };
        write!(
            out,
            "{sep}({i},'src','a_signal_with_a_long_name_{}','day','county',{},'{:05}',{}.25)",
            i % 7,
            20200101 + i % 28,
            i / 28,
            i % 1000
        )
        .unwrap();
    }
    writeln!(out, ";").unwrap();
}

/// Extracts the backups in `dir` in a child process; returns the child's own peak RSS in
/// KiB (from `wait4`, so that children run before it do not count).
#[allow(clippy::zombie_processes)] // reaped by wait4, which std's Child cannot see
fn extract(dir: &std::path::Path, format: &str) -> i64 {
    let out = tempfile::tempdir().unwrap();
    let child = Command::new(assert_cmd::cargo::cargo_bin("migrate"))
        .arg("extract")
        .arg("--backups")
        .arg(dir)
        .arg("--out")
        .arg(out.path())
        .args(["-q", "--partition-format", format])
        .spawn()
        .unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child and fills the status and usage it is given.
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(waited, child.id() as libc::pid_t);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    usage.ru_maxrss
}

#[test]
fn a_300_mb_single_line_insert_extracts_in_flat_memory() {
    let small = tempfile::tempdir().unwrap();
    one_line_dump(
        &small.path().join("just_covidcast_20200601_database.sql"),
        30_000,
    );
    let large = tempfile::tempdir().unwrap();
    let path = large.path().join("just_covidcast_20200601_database.sql");
    one_line_dump(&path, 3_000_000);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 250_000_000, "the dump is only {size} bytes");
    for format in ["parquet", "csv"] {
        let small_peak = extract(small.path(), format);
        let large_peak = extract(large.path(), format);
        // 100 times the data; the peak may grow by the read-ahead buffers and, for Parquet,
        // one row group's buffers, not with the dump.
        assert!(
            large_peak < small_peak + 48 * 1024,
            "{format}: peak RSS {large_peak} KiB for {size} bytes against {small_peak} KiB \
             for 1%"
        );
    }
}
