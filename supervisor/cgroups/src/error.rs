//! The crate's one error type: every message names the file and the operation.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a cgroup file or directory failed,
    /// e.g. "write /sys/fs/cgroup/pids/supervisor/web/pids.max: Invalid argument".
    #[error("{op} {}: {}", path.display(), describe(err))]
    Io {
        op: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    /// The kernel did not reach the wanted state in time; `undone`: the change was
    /// reverted (a freeze that timed out is thawed again).
    #[error("{what} {}: not done within {timeout:?}{}", path.display(), if *undone { "; thawed again" } else { "" })]
    Timeout {
        what: &'static str,
        path: PathBuf,
        timeout: Duration,
        undone: bool,
    },
    /// A cgroup file's content is not what the kernel documents.
    #[error("parse {}: unexpected content {content:?}", path.display())]
    Parse { path: PathBuf, content: String },
    /// The host lacks what a limit or the chosen driver needs.
    #[error("{0}")]
    Unsupported(String),
    /// A bad group name or limit value from the caller.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            err,
        }
    }

    /// True when the error is the kernel saying the file or directory does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { err, .. } if err.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The errno's text without Rust's " (os error N)" suffix, as the tools print it.
fn describe(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}
