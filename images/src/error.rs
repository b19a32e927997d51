//! The crate's one error type. Every variant names what it was doing and where.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    /// An archive entry that is refused (unsafe) or cannot be written.
    #[error("entry {entry}: {reason}")]
    Entry { entry: PathBuf, reason: String },
    /// The source is not something we can import, or is damaged.
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error(
        "invalid image name {0:?}: use letters, digits, '.', '_' and '-', not starting with '.'"
    )]
    InvalidName(String),
    #[error("image {name:?} not found in {dir}")]
    NotFound { name: String, dir: PathBuf },
    #[error("image {name:?} already exists in {dir}")]
    Exists { name: String, dir: PathBuf },
    #[error("image {name:?} is in use by {}", in_use_by(users))]
    InUse {
        name: String,
        /// Who holds a lease, as each holder described itself.
        users: Vec<String>,
    },
    #[error("image {name:?} is being removed")]
    BeingRemoved { name: String },
    #[error("busybox: {0}")]
    Busybox(String),
    /// The directory an image is written into could not be opened as a root.
    #[error(transparent)]
    Root(#[from] rootfs::Error),
}

fn in_use_by(users: &[String]) -> String {
    match users {
        [] => "a running service".to_string(),
        users => users.join(", "),
    }
}

impl Error {
    /// Whether the message already names the image ("image \"web\" not
    /// found ..."), so that a caller adds no "image: " of its own.
    pub fn names_the_image(&self) -> bool {
        matches!(
            self,
            Error::InvalidName(_)
                | Error::NotFound { .. }
                | Error::Exists { .. }
                | Error::InUse { .. }
                | Error::BeingRemoved { .. }
        )
    }

    pub(crate) fn io(path: impl AsRef<Path>, error: impl Into<io::Error>) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            error: error.into(),
        }
    }

    pub(crate) fn entry(entry: impl AsRef<Path>, reason: impl std::fmt::Display) -> Error {
        Error::Entry {
            entry: entry.as_ref().to_path_buf(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn format(path: impl AsRef<Path>, reason: impl std::fmt::Display) -> Error {
        Error::Format {
            path: path.as_ref().to_path_buf(),
            reason: reason.to_string(),
        }
    }
}
