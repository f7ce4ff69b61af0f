//! Sets `MIGRATE_VERSION` for `--version`: the package version, and the commit when built
//! from a git checkout (`git rev-parse --short HEAD`); without git, the version alone.

use std::process::Command;

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_string())
        .filter(|commit| !commit.is_empty());
    let full = match commit {
        Some(commit) => format!("{version} (commit {commit})"),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=MIGRATE_VERSION={full}");
    // Again when HEAD moves (a commit, a checkout); a worktree's HEAD is found by git.
    if let Some(head) = git_path("HEAD") {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(refs) = git_path("refs/heads") {
        println!("cargo:rerun-if-changed={refs}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// A path inside the git folder (which a worktree keeps elsewhere), if there is one.
fn git_path(name: &str) -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--git-path", name])
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let path = String::from_utf8(output.stdout).ok()?.trim().to_string();
    std::path::Path::new(&path).exists().then_some(path)
}
