//! The crate's one error type. Every variant names what it was doing and where.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A step of setting up a service's root filesystem failed.
    #[error("{step} {path}: {error}")]
    Setup {
        step: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    /// A mountpoint missing from a root filesystem that must not change.
    #[error(
        "mount target {} does not exist in {place} (a read-only or host root filesystem gets no new directories)",
        target.display()
    )]
    MissingMountpoint {
        target: PathBuf,
        place: &'static str,
    },
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
}

impl Error {
    pub(crate) fn io(path: impl AsRef<Path>, error: impl Into<io::Error>) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            error: error.into(),
        }
    }

    pub(crate) fn setup(
        step: &'static str,
        path: impl AsRef<Path>,
        error: impl Into<io::Error>,
    ) -> Error {
        Error::Setup {
            step,
            path: path.as_ref().to_path_buf(),
            error: error.into(),
        }
    }
}
