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
    /// Interrupted (Ctrl-C); a rerun resumes.
    Interrupted = 130,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status as u8)
    }
}
