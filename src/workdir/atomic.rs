//! Files and folders that appear complete or not at all: written under a temporary name in
//! the destination's folder, flushed, renamed into place, and the folder flushed.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::workdir::direct::DirectWriter;

/// Finished units waiting for the committer; a worker that is this far ahead waits.
pub const COMMIT_QUEUE: usize = 64;

/// Writes a file through `write` and renames it to `path` only once it is on disk.
pub fn write_file<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut DirectWriter<&mut File>) -> Result<()>,
{
    commit(vec![stage_file(path, write)?])
}

/// A file written under a temporary name in its destination's folder and closed, but
/// neither flushed to disk nor in place yet: `commit` does both, for many files at once.
/// Dropped uncommitted, it is removed.
pub struct StagedFile {
    temp: tempfile::TempPath,
    path: PathBuf,
}

/// Writes a file through `write` under a temporary name beside `path`, unflushed (its whole
/// megabytes written past the page cache where the file system allows: `direct.rs`).
pub fn stage_file<F>(path: &Path, write: F) -> Result<StagedFile>
where
    F: FnOnce(&mut DirectWriter<&mut File>) -> Result<()>,
{
    let dir = parent(path);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Readable by others, like any file a tool writes (temporary files default to 0600).
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    {
        let mut out = DirectWriter::new(temp.as_file_mut());
        write(&mut out)?;
        out.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(StagedFile {
        temp: temp.into_temp_path(),
        path: path.to_path_buf(),
    })
}

/// Puts staged files in place durably: flushes them to disk, renames each into place, then
/// flushes the renames. Afterwards every one is on disk under its final name.
pub fn commit(files: Vec<StagedFile>) -> Result<()> {
    flush_to_disk(files.iter().map(|f| &*f.temp))?;
    let mut folders = BTreeSet::new();
    for file in files {
        file.temp
            .persist(&file.path)
            .with_context(|| format!("cannot move the finished file to {}", file.path.display()))?;
        folders.insert(parent(&file.path).to_path_buf());
    }
    flush_to_disk(folders.iter().map(PathBuf::as_path))
}

/// Makes what was written to each path (a file, or a folder and the files in it) durable.
/// On Linux one `syncfs` per file system: each flush of the disk costs milliseconds, so a
/// group of thousands of small files flushed file by file and folder by folder would cost
/// seconds; the whole file system at once costs about one flush.
#[cfg(target_os = "linux")]
fn flush_to_disk<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;
    let mut devices = BTreeSet::new();
    for path in paths {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let device = file.metadata().map(|m| m.dev()).unwrap_or_default();
        if !devices.insert(device) {
            continue;
        }
        // SAFETY: syncfs only reads the open descriptor it is given.
        if unsafe { libc::syncfs(file.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot flush the file system of {}", path.display()));
        }
    }
    Ok(())
}

/// Makes what was written to each path (a file, or a folder and the files in it) durable,
/// file by file and folder by folder.
#[cfg(not(target_os = "linux"))]
fn flush_to_disk<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<()> {
    for path in paths {
        if path.is_dir() {
            for entry in std::fs::read_dir(path)? {
                let inner = entry?.path();
                if inner.is_file() {
                    File::open(&inner)
                        .and_then(|f| f.sync_all())
                        .with_context(|| format!("cannot flush {}", inner.display()))?;
                }
            }
        }
        File::open(path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot flush {}", path.display()))?;
    }
    Ok(())
}

/// The files of one unit, staged as it writes them, committed later with other units'.
#[derive(Default)]
pub struct Staging(RefCell<Vec<StagedFile>>);

impl Staging {
    /// `stage_file`, kept here.
    pub fn write<F>(&self, path: &Path, write: F) -> Result<()>
    where
        F: FnOnce(&mut DirectWriter<&mut File>) -> Result<()>,
    {
        let file = stage_file(path, write)?;
        self.0.borrow_mut().push(file);
        Ok(())
    }

    pub fn into_files(self) -> Vec<StagedFile> {
        self.0.into_inner()
    }
}

/// A folder filled under a temporary name, then renamed to its final name in one step.
#[derive(Debug)]
pub struct StagedDir {
    temp: PathBuf,
    target: PathBuf,
}

impl StagedDir {
    pub fn new(target: &Path) -> Result<StagedDir> {
        let parent = parent(target);
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        // Named after the target, so that an interrupted one is known by what it was for.
        let name = target
            .file_name()
            .map_or("".into(), |n| n.to_string_lossy());
        let temp = tempfile::Builder::new()
            .prefix(&staged_prefix(&name))
            .permissions(std::fs::Permissions::from_mode(0o755))
            .tempdir_in(parent)
            .with_context(|| format!("cannot create a temporary folder in {}", parent.display()))?
            .keep();
        Ok(StagedDir {
            temp,
            target: target.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Flushes the folder's files, renames it over the target, and flushes the rename.
    pub fn commit(self) -> Result<()> {
        StagedDir::commit_all(vec![self])
    }

    /// `commit` for many folders, with one flush for all of them before the renames and
    /// one after.
    pub fn commit_all(dirs: Vec<StagedDir>) -> Result<()> {
        for dir in &dirs {
            if !dir.temp.is_dir() {
                bail!(
                    "the temporary folder {} in the work folder could not be read (was it \
                     removed by another process?)",
                    dir.temp.display()
                );
            }
        }
        flush_to_disk(dirs.iter().map(|d| d.temp.as_path()))?;
        for dir in &dirs {
            if dir.target.exists() {
                std::fs::remove_dir_all(&dir.target)
                    .with_context(|| format!("cannot replace {}", dir.target.display()))?;
            }
            std::fs::rename(&dir.temp, &dir.target).with_context(|| {
                format!("cannot move a finished folder to {}", dir.target.display())
            })?;
        }
        flush_to_disk(dirs.iter().map(|d| parent(&d.target)))
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        // Not committed: leave nothing half-written behind.
        let _ = std::fs::remove_dir_all(&self.temp);
    }
}

/// The start of the name of a temporary folder staged for a folder named `name`.
pub fn staged_prefix(name: &str) -> String {
    format!(".tmp-{name}-")
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let result = write_file(&path, |out| {
            out.write_all(b"half")?;
            anyhow::bail!("disk on fire")
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        write_file(&path, |out| Ok(out.write_all(b"whole")?)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "output must be readable by others");
    }

    #[test]
    fn staged_files_appear_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("20200601/a.sql");
        let b = dir.path().join("20200602/b.sql");
        let staging = Staging::default();
        staging.write(&a, |out| Ok(out.write_all(b"a")?)).unwrap();
        staging.write(&b, |out| Ok(out.write_all(b"b")?)).unwrap();
        assert!(!a.exists() && !b.exists());
        commit(staging.into_files()).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"a");
        assert_eq!(std::fs::read(&b).unwrap(), b"b");
        let names = |d: &str| std::fs::read_dir(dir.path().join(d)).unwrap().count();
        assert_eq!(
            (names("20200601"), names("20200602")),
            (1, 1),
            "no temporary left"
        );

        // Never committed (the unit failed, or the run stopped first): nothing is left.
        let staging = Staging::default();
        staging.write(&a, |out| Ok(out.write_all(b"new")?)).unwrap();
        drop(staging);
        assert_eq!(names("20200601"), 1);
        assert_eq!(std::fs::read(&a).unwrap(), b"a");
    }

    #[test]
    fn a_staged_folder_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("20200601");
        {
            let staged = StagedDir::new(&target).unwrap();
            std::fs::write(staged.path().join("a.csv"), b"x").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let staged = StagedDir::new(&target).unwrap();
        std::fs::write(staged.path().join("a.csv"), b"x").unwrap();
        staged.commit().unwrap();
        assert_eq!(std::fs::read(target.join("a.csv")).unwrap(), b"x");
    }
}
