//! Files and folders that appear complete or not at all: written under a temporary name in
//! the destination's folder, flushed, renamed into place, and the folder flushed.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Writes a file through `write` and renames it to `path` only once it is on disk.
pub fn write_file<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<&mut File>) -> Result<()>,
{
    commit(vec![stage_file(path, write)?])
}

/// A file written under a temporary name in its destination's folder and handed to the
/// kernel, but neither flushed to disk nor in place yet: `commit` does both, for many files
/// at once. Dropped uncommitted, it is removed.
pub struct StagedFile {
    temp: tempfile::NamedTempFile,
    path: PathBuf,
}

/// Writes a file through `write` under a temporary name beside `path`, unflushed.
pub fn stage_file<F>(path: &Path, write: F) -> Result<StagedFile>
where
    F: FnOnce(&mut BufWriter<&mut File>) -> Result<()>,
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
        let mut out = BufWriter::with_capacity(1 << 20, temp.as_file_mut());
        write(&mut out)?;
        out.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(StagedFile {
        temp,
        path: path.to_path_buf(),
    })
}

/// Flushes every staged file to disk, renames each into place, then flushes each of their
/// folders once: afterwards all of them are on disk under their final names. Many files
/// committed together cost one folder flush per folder, not one per file.
pub fn commit(files: Vec<StagedFile>) -> Result<()> {
    for file in &files {
        file.temp
            .as_file()
            .sync_all()
            .with_context(|| format!("cannot flush {}", file.path.display()))?;
    }
    let mut folders = BTreeSet::new();
    for file in files {
        file.temp
            .persist(&file.path)
            .with_context(|| format!("cannot move the finished file to {}", file.path.display()))?;
        folders.insert(parent(&file.path).to_path_buf());
    }
    folders.iter().try_for_each(|folder| sync_dir(folder))
}

/// The files of one unit, staged as it writes them, committed later with other units'.
#[derive(Default)]
pub struct Staging(RefCell<Vec<StagedFile>>);

impl Staging {
    /// `stage_file`, kept here.
    pub fn write<F>(&self, path: &Path, write: F) -> Result<()>
    where
        F: FnOnce(&mut BufWriter<&mut File>) -> Result<()>,
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

    /// Flushes every file in the folder and renames it over the target.
    pub fn commit(self) -> Result<()> {
        let gone = || {
            format!(
                "the temporary folder {} in the work folder could not be read (was it \
                 removed by another process?)",
                self.temp.display()
            )
        };
        for entry in std::fs::read_dir(&self.temp).with_context(gone)? {
            let path = entry.with_context(gone)?.path();
            File::open(&path)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot flush {}", path.display()))?;
        }
        sync_dir(&self.temp)?;
        if self.target.exists() {
            std::fs::remove_dir_all(&self.target)
                .with_context(|| format!("cannot replace {}", self.target.display()))?;
        }
        std::fs::rename(&self.temp, &self.target).with_context(|| {
            format!("cannot move a finished folder to {}", self.target.display())
        })?;
        sync_dir(parent(&self.target))
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

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot flush the folder {}", dir.display()))
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
