//! The validated service list. The supervisor consumes only these types:
//! everything here has passed validation (see `validate`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

/// Default location of the control socket, logs and runtime state.
pub const DEFAULT_STATE_DIR: &str = "/run/supervisor";
/// Default directory that holds named images.
pub const DEFAULT_IMAGES_DIR: &str = "/var/lib/supervisor/images";
/// Default cgroup below which every service's cgroup lives.
pub const DEFAULT_CGROUP_PARENT: &str = "supervisor";
/// Default first restart backoff step.
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_millis(100);
/// Default longest restart backoff step.
pub const DEFAULT_RESTART_DELAY_MAX: Duration = Duration::from_secs(30);
/// Default time between stop_signal and SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default signal that asks a service to stop.
pub const DEFAULT_STOP_SIGNAL: Signal = Signal::SIGTERM;

/// The whole file, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this was read from (absolute).
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub images_dir: PathBuf,
    /// Relative to each hierarchy's root, e.g. `supervisor`.
    pub cgroup_parent: String,
    pub cgroup_driver: CgroupDriver,
    /// Besides root, members of this group may use the control socket.
    pub control_group: Option<String>,
    /// In the order the file lists them.
    pub services: Vec<Service>,
}

/// Which cgroup backend to use (`cgroup_driver: auto | v1 | v2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    #[default]
    Auto,
    V1,
    V2,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// `[a-z0-9][a-z0-9_-]{0,62}`
    pub name: String,
    /// argv; a plain string in the file becomes `["/bin/sh", "-c", STRING]`.
    pub command: Vec<String>,
    /// None: the host's `/`.
    pub image: Option<ImageRef>,
    pub env: BTreeMap<String, String>,
    pub workdir: PathBuf,
    pub user: Option<User>,
    /// Defaults to the service name.
    pub hostname: String,
    pub namespaces: Namespaces,
    pub restart: RestartPolicy,
    pub restart_delay: Duration,
    pub restart_delay_max: Duration,
    /// At most this many automatic restarts within a window; then `failed`.
    pub restart_limit: Option<RestartLimit>,
    pub depends_on: Vec<String>,
    pub autostart: bool,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    pub readonly_rootfs: bool,
    /// Keep the service's writable layer across stops.
    pub persist: bool,
    pub mounts: Vec<Mount>,
    pub limits: Limits,
}

/// Where a service's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A name under `images_dir`.
    Named(String),
    /// A root filesystem directory (absolute after validation).
    Path(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    Id {
        uid: u32,
        gid: Option<u32>,
    },
    /// Looked up in the image's /etc/passwd at start.
    Name(String),
}

/// Which namespaces a service gets of its own. Default: pid, mount, uts, ipc, net.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespaces {
    pub pid: bool,
    pub mount: bool,
    pub uts: bool,
    pub ipc: bool,
    pub net: bool,
    pub cgroup: bool,
    pub user: bool,
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces {
            pid: true,
            mount: true,
            uts: true,
            ipc: true,
            net: true,
            cgroup: false,
            user: false,
        }
    }
}

/// `restart_limit: {count: N, window: DURATION}`: more than `count` automatic
/// restarts within `window` end the service as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartLimit {
    pub count: u32,
    pub window: Duration,
}

/// `restart: never | on-failure | always`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Never,
    #[default]
    OnFailure,
    Always,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    /// Absolute, inside the service's root filesystem.
    pub target: PathBuf,
    pub readonly: bool,
}

/// Resource limits; None leaves the host's default.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// Bytes.
    pub memory: Option<u64>,
    /// Bytes of memory plus swap.
    pub memory_swap: Option<u64>,
    /// CPUs, e.g. 0.5.
    pub cpus: Option<f64>,
    pub pids: Option<u64>,
    /// 1..=10000
    pub io_weight: Option<u16>,
}
