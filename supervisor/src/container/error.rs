//! Why a container could not be started or removed.

use std::path::PathBuf;

use nix::errno::Errno;

use super::id_range::IdRangeError;
use super::user::UserError;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{}", image_message(.0))]
    Image(#[from] images::Error),
    #[error("{0}")]
    User(#[from] UserError),
    #[error("user namespace: {0}")]
    IdRange(#[from] IdRangeError),
    #[error("user: id {id} is outside the service's user namespace, which has the ids 0 to 65535")]
    IdOutsideRange { id: u32 },
    #[error("writable layer {}: its files belong to host id {owner}, not to this service's range from {first} (written with another range or without a user namespace): remove it", layer.display())]
    LayerOfOtherRange {
        layer: PathBuf,
        owner: u32,
        first: u32,
    },
    #[error("cgroup: {0}")]
    Cgroup(#[from] cgroups::Error),
    #[error("network: {0}")]
    Network(#[from] crate::net::NetError),
    #[error("the init binary is missing: {0} (it is installed next to the supervisor)")]
    InitMissing(PathBuf),
    /// A `devices:` entry that cannot be used: "/dev/ttyUSB0: No such file or directory".
    #[error("devices: {0}")]
    Device(String),
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
    /// The command cannot run: not found (127) or not executable (126), the
    /// exit codes `docker run` gives these.
    #[error("{message}")]
    Command { message: String, code: i32 },
}

/// "image: ..." unless the message already names the image.
fn image_message(err: &images::Error) -> String {
    match err.names_the_image() {
        true => err.to_string(),
        false => format!("image: {err}"),
    }
}

pub(super) fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SpawnError {
    let what = what.into();
    move |source| SpawnError::Io { what, source }
}

pub(super) fn sys_error(what: &'static str) -> impl FnOnce(Errno) -> SpawnError {
    move |source| SpawnError::Sys { what, source }
}
