//! What travels from `spawn` to the setup process (`supervisor container-setup`)
//! (over the channel: see `channel`).

use std::ffi::OsString;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything the setup process does, resolved by the parent beforehand.
#[derive(Debug, Serialize, Deserialize)]
pub struct SetupSpec {
    /// None: no mount namespace, the host's root stays.
    pub rootfs: Option<rootfs::RootfsSpec>,
    /// The host path of our init binary; a sealed copy of it is exec'd.
    pub init: PathBuf,
    /// Set in the new UTS namespace.
    pub hostname: Option<String>,
    /// The network namespace is new: bring `lo` up.
    pub loopback: bool,
    /// The child is in a user namespace of its own, mapped to a private range
    /// of host ids (and already its root): it receives the root filesystem's
    /// sources over the handover socket.
    pub user_namespace: bool,
    /// Enter a new cgroup namespace once inside the service's cgroup.
    pub cgroup_namespace: bool,
    /// The service's group ("supervisor/web"), relative to every hierarchy's
    /// root: what the service's /sys/fs/cgroup shows.
    pub cgroup_path: String,
    pub credentials: Credentials,
    pub workdir: PathBuf,
    /// `KEY=VALUE`, the service's whole environment.
    pub env: Vec<String>,
    /// stdin is the terminal and `supervisor run` is its foreground: the
    /// container takes the foreground (and init hands it to the service).
    pub take_terminal: bool,
    /// stdin is a pseudo-terminal of our own (`run -t`): a new session
    /// whose controlling terminal it is.
    #[serde(default)]
    pub controlling_terminal: bool,
    /// argv of the service; init runs it.
    pub command: Vec<OsString>,
    /// The capabilities kept (bit N: capability N) in the bounding, permitted
    /// and effective sets; None (`privileged`): all the kernel has.
    pub capabilities: Option<u64>,
    /// The seccomp filter installed right before exec; None: no filter.
    pub seccomp: Option<seccomp::Program>,
    /// Init holds the log pipe's read end and its exit-status file (see
    /// `request::Held`) on `channel::HELD_LOG_FD` and `channel::STATUS_FD`.
    #[serde(default)]
    pub held: bool,
}

/// Who the service runs as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// What `supervisor exec` needs of a running service, kept by whoever started
/// it in `state_dir/containers/NAME.exec.json` (mode 0600, removed with the
/// service's lock): the host pid of its init and the spec it was set up from
/// (user, env, workdir, capabilities, compiled seccomp filter).
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecState {
    pub pid: i32,
    pub spec: SetupSpec,
}

pub fn exec_state_path(state_dir: &std::path::Path, name: &str) -> PathBuf {
    state_dir
        .join("containers")
        .join(format!("{name}.exec.json"))
}

/// `NAME.exec.json` beside the lock file `NAME.lock`.
pub fn exec_state_path_of_lock(lock: &std::path::Path) -> PathBuf {
    lock.with_extension("exec.json")
}
