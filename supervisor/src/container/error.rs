//! Why a container could not be started or removed.

use std::path::PathBuf;

use nix::errno::Errno;

use super::user::UserError;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("image: {0}")]
    Image(#[from] images::Error),
    #[error("{0}")]
    User(#[from] UserError),
    #[error("cgroup: {0}")]
    Cgroup(#[from] cgroups::Error),
    #[error("network: {0}")]
    Network(#[from] crate::net::NetError),
    #[error("the init binary is missing: {0} (it is installed next to the supervisor)")]
    InitMissing(PathBuf),
    #[error("an image needs the mount namespace (namespaces: mount)")]
    ImageWithoutMountNamespace,
    #[error("already running: cgroup {0} has processes")]
    Busy(String),
    #[error("{name} is already running (state_dir {})", state_dir.display())]
    AlreadyRunning { name: String, state_dir: PathBuf },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys { what: &'static str, source: Errno },
    /// The child's own message: "workdir /x: No such file or directory" etc.
    #[error("{0}")]
    Setup(String),
}

pub(super) fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SpawnError {
    let what = what.into();
    move |source| SpawnError::Io { what, source }
}

pub(super) fn sys_error(what: &'static str) -> impl FnOnce(Errno) -> SpawnError {
    move |source| SpawnError::Sys { what, source }
}
