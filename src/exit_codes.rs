//! The process exit statuses `migrate` promises (documented in the README).

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything finished.
    Success = 0,
    /// The run failed; finished output is kept and a rerun resumes.
    Failure = 1,
    /// The command line was wrong; nothing was done.
    Usage = 2,
    /// Another migrate command is writing to the same work folder; nothing was done. The
    /// value of sysexits' EX_TEMPFAIL: try again later.
    Busy = 75,
    /// Interrupted (Ctrl-C); a rerun resumes.
    Interrupted = 130,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status as u8)
    }
}

/// A command line that cannot be run as given: exit status 2, before any work is done.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
