//! A run whose disk fills up (here: a file size limit, `ulimit -f`) stops with a clear
//! message, keeps every finished unit, and resumes once there is room.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;

use common::*;

fn run(
    data: &std::path::Path,
    out: &std::path::Path,
    max_file_bytes: Option<u64>,
) -> std::process::Output {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("migrate"));
    command
        .arg("--backups")
        .arg(data)
        .arg("--out")
        .arg(out)
        .arg("-q");
    if let Some(limit) = max_file_bytes {
        // SAFETY: only async-signal-safe setrlimit runs between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let rlimit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command.output().unwrap()
}

#[test]
fn a_full_disk_stops_the_run_cleanly_and_a_rerun_finishes() {
    let data = tempfile::tempdir().unwrap();
    let spare = tempfile::tempdir().unwrap();
    let all = write_series(spare.path(), 4, 40, &[]);
    for file in &all[..3] {
        std::fs::copy(file, data.path().join(file.file_name().unwrap())).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    assert!(run(data.path(), out.path(), None).status.success());
    let finished = snapshot(out.path());

    // The next backup's partitions are larger than the files the disk still takes.
    std::fs::copy(&all[3], data.path().join(all[3].file_name().unwrap())).unwrap();
    let failed = run(data.path(), out.path(), Some(64 << 10));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("File too large") && stderr.contains("20200604"),
        "{stderr}"
    );
    // Every file of the finished output is as it was (units of the new backup that
    // finished before the disk filled may have added theirs).
    let after = snapshot(out.path());
    for (path, bytes) in &finished {
        assert!(
            after.get(path) == Some(bytes),
            "finished output {} was changed",
            path.display()
        );
    }
    assert!(
        temporary_files(out.path()).is_empty(),
        "temporary files were left behind"
    );

    assert!(run(data.path(), out.path(), None).status.success());
    let fresh = tempfile::tempdir().unwrap();
    assert!(run(data.path(), fresh.path(), None).status.success());
    assert_same_output(out.path(), fresh.path(), &[]);
}
