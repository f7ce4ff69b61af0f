//! Files and folders that appear complete or not at all: written under a temporary name in
//! the destination's folder, flushed, renamed into place, and the folder flushed.

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
    temp.as_file()
        .sync_all()
        .with_context(|| format!("cannot flush {}", path.display()))?;
    temp.persist(path)
        .with_context(|| format!("cannot move the finished file to {}", path.display()))?;
    sync_dir(dir)
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
