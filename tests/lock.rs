//! One writer per work folder: a second run is refused at once and harms nothing, the lock
//! dies with its holder, read-only commands run beside a writer, a backup that changes
//! while it is read fails its extract, and the log stays a line per backup.

mod common;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn command(backups: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut command = migrate_process(backups, out, extra);
    command.stdout(Stdio::piped());
    command
}

/// Starts a run and waits until it holds the work folder (its pid is in the lock file).
fn start_holding(backups: &Path, out: &Path) -> Child {
    let child = command(backups, out, &["-q"]).spawn().unwrap();
    let lock = out.join(".work/lock");
    let started = Instant::now();
    let pid = child.id().to_string();
    while !std::fs::read_to_string(&lock).is_ok_and(|text| text.contains(&pid)) {
        assert!(started.elapsed() < Duration::from_secs(60), "no lock taken");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn series(dir: &Path) {
    write_series(dir, 5, 30, &[2]);
}

fn clean_run(backups: &Path) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let output = command(backups, out.path(), &["-q"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    out
}

#[test]
fn a_second_run_is_refused_at_once_and_the_first_is_unharmed() {
    let data = tempfile::tempdir().unwrap();
    series(data.path());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut first = start_holding(data.path(), &out);
    // Frozen while it holds the lock, so the second surely runs beside it.
    signal(&first, libc::SIGSTOP);
    let started = Instant::now();
    let second = command(data.path(), &out, &[]).output().unwrap();
    let waited = started.elapsed();
    signal(&first, libc::SIGCONT);
    let stderr = stderr_of(&second);
    assert_eq!(second.status.code(), Some(75), "{stderr}");
    assert!(waited < Duration::from_secs(10), "refused after {waited:?}");
    assert!(
        stderr.contains(&out.join(".work").display().to_string())
            && stderr.contains(&format!("process {} since ", first.id())),
        "{stderr}"
    );
    // --fresh and verify are writers too.
    signal(&first, libc::SIGSTOP);
    for extra in ["--fresh", "extract", "verify"] {
        let output = Command::new(assert_cmd::cargo::cargo_bin("migrate"))
            .arg(extra)
            .arg("--backups")
            .arg(data.path())
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(75),
            "{extra}: {}",
            stderr_of(&output)
        );
    }
    signal(&first, libc::SIGCONT);
    let status = first.wait().unwrap();
    assert!(status.success());
    assert_same_output(&out, clean_run(data.path()).path(), &[]);
}

#[test]
fn after_kill_9_of_the_holder_a_rerun_is_not_blocked() {
    let data = tempfile::tempdir().unwrap();
    series(data.path());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut first = start_holding(data.path(), &out);
    signal(&first, libc::SIGKILL);
    first.wait().unwrap();
    let rerun = command(data.path(), &out, &["-q"]).output().unwrap();
    assert!(rerun.status.success(), "{}", stderr_of(&rerun));
    assert_same_output(&out, clean_run(data.path()).path(), &[]);
}

#[test]
fn read_only_commands_run_while_a_writer_holds_the_folder() {
    let data = tempfile::tempdir().unwrap();
    series(data.path());
    let out = clean_run(data.path());
    // Another process's lock, taken the way migrate takes it.
    let lock = std::fs::File::open(out.path().join(".work/lock")).unwrap();
    std::fs::write(
        out.path().join(".work/lock"),
        "process 4242 since yesterday\n",
    )
    .unwrap();
    // SAFETY: flock on a file this test owns.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);

    let refused = command(data.path(), out.path(), &[]).output().unwrap();
    assert_eq!(refused.status.code(), Some(75));
    assert!(stderr_of(&refused).contains("process 4242 since yesterday"));

    let dry = command(data.path(), out.path(), &["--dry-run"])
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", stderr_of(&dry));
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(plan.contains("a run is in progress"), "{plan}");
    assert!(plan.contains("process 4242 since yesterday"), "{plan}");

    let asof = Command::new(assert_cmd::cargo::cargo_bin("migrate"))
        .args(["asof", "--date", "20200603", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(asof.status.success(), "{}", stderr_of(&asof));
    assert!(asof.stdout.len() > 100);
    let svg = out.path().join("plot.svg");
    let plot = Command::new(assert_cmd::cargo::cargo_bin("migrate"))
        .args([
            "plot", "--source", "alpha", "--signal", "cli", "--geo", "01001", "--out",
        ])
        .arg(out.path())
        .arg("--to")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(plot.status.success(), "{}", stderr_of(&plot));
    assert!(svg.exists());
    // Released: writers run again.
    drop(lock);
    let rerun = command(data.path(), out.path(), &["-q"]).output().unwrap();
    assert!(rerun.status.success(), "{}", stderr_of(&rerun));
}

#[test]
fn a_backup_that_grows_while_it_is_extracted_fails_its_unit() {
    let data = tempfile::tempdir().unwrap();
    let gzipped = write_series(data.path(), 1, 30, &[]).remove(0);
    // Plain SQL, so that what is appended reads as SQL (a comment) rather than breaking
    // the gzip stream first.
    let backup = gzipped.with_extension("");
    let mut sql = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&gzipped).unwrap()),
        &mut sql,
    )
    .unwrap();
    std::fs::write(&backup, sql).unwrap();
    std::fs::remove_file(&gzipped).unwrap();
    let config = migrate::config::Config::new(data.path().to_path_buf(), data.path().join("out"));
    let discovery = migrate::stages::discover::discover(&config.backups, &config.pattern).unwrap();
    let found = &discovery.backups[0];
    let inputs = migrate::workdir::state::ExtractInputs::of(found, &config).unwrap();
    let dest = data.path().join("partitions");
    // As the copy of a backup still being written: it grows while it is read.
    let grown = std::sync::atomic::AtomicBool::new(false);
    let on_read = Box::new(move |_| {
        if !grown.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&backup)
                .unwrap();
            std::io::Write::write_all(&mut file, b"\n-- more rows to come\n").unwrap();
        }
    });
    let buffer = 64 << 20;
    let error = migrate::stages::extract::extract(found, &inputs, &config, &dest, buffer, on_read)
        .unwrap_err()
        .to_string();
    assert!(error.contains("changed while it was read"), "{error}");
    assert!(!dest.exists(), "an extract of a changing backup was kept");
}

#[test]
fn the_default_log_has_a_line_per_backup_not_per_unit() {
    let data = tempfile::tempdir().unwrap();
    write_series(data.path(), 6, 3, &[]);
    let out = tempfile::tempdir().unwrap();
    let output = command(data.path(), out.path(), &[]).output().unwrap();
    let log = stderr_of(&output);
    assert!(output.status.success(), "{log}");
    let lines: Vec<&str> = log.lines().collect();
    let count = |prefix: &str| lines.iter().filter(|l| l.contains(prefix)).count();
    assert_eq!(count(" INFO extracted "), 6, "{log}");
    assert_eq!(count(" INFO diffed "), 6, "{log}");
    // 6 backups of 3 sources are 18 units: none has a line of its own.
    assert_eq!(lines.len(), 6 + 6 + 1, "{log}");
    let verbose = command(data.path(), out.path(), &["-v", "--fresh"])
        .output()
        .unwrap();
    let log = stderr_of(&verbose);
    let unit_lines = log
        .lines()
        .filter(|l| l.contains(" DEBUG ") && l.contains(" rows, ") && l.contains(" added"))
        .count();
    assert_eq!(unit_lines, 18, "{log}");
}
