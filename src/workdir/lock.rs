//! One writer per work folder: an exclusive `flock` on `WORK/lock`, held for as long as a
//! command that writes runs. The kernel drops the lock with its process (Ctrl-C, `kill -9`,
//! the OOM killer, a reboot), so nothing stale is ever left to clean up. The file's text
//! names the holder, for the message a second writer gets.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

const LOCK_FILE: &str = "lock";
/// Folder of the per-date locks of `extract --dates`.
const DATE_LOCKS: &str = "locks";

/// Another process holds the folder (exit status 75: try again later).
#[derive(Debug, thiserror::Error)]
#[error(
    "{folder} is in use by another migrate run ({holder}); wait for it to finish, or stop it \
     (it resumes where it stopped), then run this again",
    folder = .folder.display()
)]
pub struct Busy {
    pub folder: PathBuf,
    pub holder: String,
}

/// The lock, held until dropped.
#[derive(Debug)]
pub struct WorkLock {
    _file: File,
}

/// Takes the work folder's lock, or fails at once with `Busy` when another process has it.
pub fn lock_work_folder(work: &Path) -> Result<WorkLock> {
    take(work, &work.join(LOCK_FILE), libc::LOCK_EX, "")
}

/// The locks of `extract --dates`: the work folder's shared (so that extracts of other
/// dates, on this machine or others sharing the folder, run beside it, while a command that
/// takes the whole folder waits for them all) and each selected date's own.
pub fn lock_dates(work: &Path, dates: &[String]) -> Result<Vec<WorkLock>> {
    let mut held = vec![take(work, &work.join(LOCK_FILE), libc::LOCK_SH, "")?];
    let folder = work.join(DATE_LOCKS);
    for date in dates {
        let note = format!(", extracting the backup of {date}");
        held.push(take(work, &folder.join(date), libc::LOCK_EX, &note)?);
    }
    Ok(held)
}

fn take(work: &Path, path: &Path, operation: libc::c_int, note: &str) -> Result<WorkLock> {
    let folder = path.parent().unwrap_or(work);
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if !try_flock(&file, operation)? {
        return Err(Busy {
            folder: work.to_path_buf(),
            holder: holder_text(&mut file),
        }
        .into());
    }
    let since = chrono::Local::now().format("%Y-%m-%d %H:%M:%S %z");
    let text = format!("process {} since {since}{note}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(WorkLock { _file: file })
}

/// Who holds the work folder's lock now, if anyone; creates and changes nothing (for
/// `--dry-run`).
pub fn lock_holder(work: &Path) -> Option<String> {
    let mut file = File::open(work.join(LOCK_FILE)).ok()?;
    // A shared lock is refused only while a writer holds its exclusive one.
    match try_flock(&file, libc::LOCK_SH) {
        Ok(true) => None,
        Ok(false) => Some(holder_text(&mut file)),
        Err(_) => None,
    }
}

fn holder_text(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    match text.trim() {
        "" => "a process that has just started".into(),
        text => text.to_string(),
    }
}

/// `flock` without waiting: false when another open file holds a conflicting lock.
fn try_flock(file: &File, operation: libc::c_int) -> Result<bool> {
    // SAFETY: flock on a file descriptor this File owns; it only changes lock state.
    let status = unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) };
    if status == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    if error.kind() == std::io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(error).context("cannot lock the work folder")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(lock_holder(dir.path()), None);
        let first = lock_work_folder(dir.path()).unwrap();
        let holder = lock_holder(dir.path()).expect("held");
        assert!(holder.contains(&std::process::id().to_string()), "{holder}");
        let refused = lock_work_folder(dir.path()).unwrap_err();
        let busy = refused.downcast_ref::<Busy>().expect("Busy");
        assert!(busy.to_string().contains("in use by another migrate run"));
        drop(first);
        assert_eq!(lock_holder(dir.path()), None);
        lock_work_folder(dir.path()).unwrap();
    }

    #[test]
    fn extracts_of_other_dates_share_the_folder_but_not_a_date() {
        let dir = tempfile::tempdir().unwrap();
        let june = lock_dates(dir.path(), &["20200601".into(), "20200602".into()]).unwrap();
        let july = lock_dates(dir.path(), &["20200701".into()]).unwrap();
        let overlap = lock_dates(dir.path(), &["20200602".into()]).unwrap_err();
        let busy = overlap.downcast_ref::<Busy>().expect("Busy");
        assert!(
            busy.holder.contains("extracting the backup of 20200602"),
            "{busy}"
        );
        // The whole folder waits for every extract.
        assert!(lock_work_folder(dir.path()).is_err());
        drop(june);
        assert!(lock_work_folder(dir.path()).is_err());
        drop(july);
        let whole = lock_work_folder(dir.path()).unwrap();
        assert!(lock_dates(dir.path(), &["20200801".into()]).is_err());
        drop(whole);
    }
}
