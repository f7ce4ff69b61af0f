//! A run inside a real memory cgroup, without `--memory-limit`: as a systemd service with
//! `MemoryMax=`, a `systemd-run --scope -p MemoryMax=…` or a container would run it. The
//! budget must come from the cgroup the process is in (not from the machine's free memory,
//! nor from the root cgroup), so the run finishes without an OOM kill and writes what an
//! unlimited run writes.
//!
//! The test makes a cgroup of its own with a limit of 400 MiB: a child of the test's own
//! memory cgroup (so that a cgroup nested in others is what is read), else of the
//! controller's root; cgroup v1's memory controller, or v2 with the memory controller. It
//! needs root (as CI has) and fails, saying so, where no memory controller is writable.
//! On the data below, `migrate` before the budget followed the cgroup was OOM-killed in such
//! a cgroup (peak 419 MiB at 5 s; 537 MiB unlimited).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const LIMIT: u64 = 400 << 20;

/// A memory cgroup made for the test, removed when dropped.
struct Cgroup {
    dir: PathBuf,
    version: u8,
}

impl Cgroup {
    /// A new cgroup limited to `limit` bytes (and no swap), where one can be made.
    fn create(limit: u64) -> Result<Cgroup, String> {
        let name = format!("migrate-test-{}", std::process::id());
        let mut tried = Vec::new();
        for (version, parent) in candidates() {
            let dir = parent.join(&name);
            match Cgroup::make(&dir, version, limit) {
                Ok(cgroup) => return Ok(cgroup),
                Err(e) => tried.push(format!("{} (v{version}): {e}", dir.display())),
            }
        }
        Err(format!(
            "no writable memory cgroup controller on this machine (the test needs root and \
             cgroup v1's memory controller or cgroup v2 with memory): {}",
            if tried.is_empty() {
                "none is mounted".to_string()
            } else {
                tried.join("; ")
            }
        ))
    }

    fn make(dir: &Path, version: u8, limit: u64) -> Result<Cgroup, String> {
        let parent = dir.parent().expect("a parent");
        if version == 2 {
            let controllers = std::fs::read_to_string(parent.join("cgroup.controllers"))
                .map_err(|e| format!("cgroup.controllers: {e}"))?;
            if !controllers.split_whitespace().any(|c| c == "memory") {
                return Err("no memory controller".into());
            }
            let enabled =
                std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
            if !enabled.split_whitespace().any(|c| c == "memory") {
                std::fs::write(parent.join("cgroup.subtree_control"), "+memory")
                    .map_err(|e| format!("enabling memory in cgroup.subtree_control: {e}"))?;
            }
        }
        std::fs::create_dir(dir).map_err(|e| e.to_string())?;
        let cgroup = Cgroup {
            dir: dir.to_path_buf(),
            version,
        };
        let files: &[(&str, String)] = match version {
            1 => &[("memory.limit_in_bytes", limit.to_string())],
            _ => &[
                ("memory.max", limit.to_string()),
                ("memory.swap.max", "0".to_string()),
            ],
        };
        for (file, value) in files {
            let path = dir.join(file);
            if let Err(e) = std::fs::write(&path, value) {
                if *file != "memory.swap.max" {
                    return Err(format!("{}: {e}", path.display()));
                }
            }
        }
        Ok(cgroup)
    }

    /// OOM kills in the cgroup so far.
    fn oom_kills(&self) -> u64 {
        let file = match self.version {
            1 => "memory.oom_control",
            _ => "memory.events",
        };
        let text = std::fs::read_to_string(self.dir.join(file)).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .map_or(0, |n| n.trim().parse().unwrap())
    }

    /// `migrate ARGS` as a process that is in the cgroup from its first allocation.
    /// Under GNU time, which writes its peak RSS to `peak_file`.
    fn command(&self, args: &[std::ffi::OsString], peak_file: &Path) -> Command {
        let time = under_gnu_time(peak_file);
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("echo $$ > \"$1\" && shift && exec \"$@\"")
            .arg("sh")
            .arg(self.dir.join("cgroup.procs"))
            .arg(time.get_program())
            .args(time.get_args())
            .arg(assert_cmd::cargo::cargo_bin("migrate"))
            .args(args)
            .env_remove("RUST_LOG");
        command
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Its processes have ended; an empty cgroup is removed with rmdir. Retried briefly:
        // the kernel may still be tearing the last one down.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("could not remove the test's cgroup {}", self.dir.display());
    }
}

/// Where a memory cgroup may be made: (version, parent folder), the test's own cgroup
/// first, then the controller's root.
fn candidates() -> Vec<(u8, PathBuf)> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found = Vec::new();
    for (version, fstype) in [(1u8, "cgroup"), (2, "cgroup2")] {
        let mount = mounts.lines().find_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let tail: Vec<&str> = after.split(' ').collect();
            let memory = version == 2 || tail.get(2)?.split(',').any(|o| o == "memory");
            (tail.first() == Some(&fstype) && memory)
                .then(|| (PathBuf::from(fields[4]), PathBuf::from(fields[3])))
        });
        let Some((point, root)) = mount else {
            continue;
        };
        let own = cgroups.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let wanted = match version {
                1 => controllers.split(',').any(|c| c == "memory"),
                _ => controllers.is_empty(),
            };
            wanted.then(|| PathBuf::from(path))
        });
        // v2 allows no process in a cgroup that has children with controllers: the test's
        // own cgroup holds the test, so there only the root will do.
        if let (1, Some(own)) = (version, own) {
            if let Ok(relative) = own.strip_prefix(&root) {
                found.push((version, point.join(relative)));
            }
        }
        found.push((version, point));
    }
    found
}

#[test]
fn a_run_in_a_memory_cgroup_holds_its_limit_without_the_flag() {
    let cgroup = Cgroup::create(LIMIT).unwrap_or_else(|e| panic!("{e}"));
    let data = tempfile::tempdir().unwrap();
    gen_backups(data.path(), TWO_SOURCES_OF_600K_ROWS);
    let unlimited = tempfile::tempdir().unwrap();
    migrate()
        .arg("--backups")
        .arg(data.path())
        .arg("--out")
        .arg(unlimited.path())
        .arg("-q")
        .assert()
        .success();

    let args = |out: &Path, extra: &[&str]| -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--backups".into(),
            data.path().into(),
            "--out".into(),
            out.into(),
        ];
        args.extend(extra.iter().map(Into::into));
        args
    };
    let limited = tempfile::tempdir().unwrap();

    // The dry run, in the cgroup, finds its limit and says where.
    let scratch = tempfile::tempdir().unwrap();
    let peak_file = scratch.path().join("peak");
    let plan = cgroup
        .command(&args(limited.path(), &["--dry-run"]), &peak_file)
        .output()
        .unwrap();
    let plan_text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan.status.success(), "{plan_text}");
    let memory_line = (plan_text.lines())
        .find(|l| l.starts_with("memory: budget"))
        .unwrap_or_else(|| panic!("no memory line:\n{plan_text}"));
    assert!(
        memory_line.contains(&format!("cgroup v{}", cgroup.version))
            && memory_line.contains(&cgroup.dir.display().to_string())
            && memory_line.contains("400.0 MiB"),
        "{memory_line}"
    );

    let status = cgroup
        .command(&args(limited.path(), &["-q"]), &peak_file)
        .status()
        .unwrap();
    let kills = cgroup.oom_kills();
    assert_eq!(kills, 0, "the run was OOM-killed in a cgroup of 400 MiB");
    assert!(status.success(), "the run failed: {status}");
    let peak = peak_kib(&peak_file) << 10;
    assert!(
        peak <= LIMIT,
        "peak RSS {} MiB in a cgroup of 400 MiB",
        peak >> 20
    );
    assert_same_output(limited.path(), unlimited.path(), &[]);
}
