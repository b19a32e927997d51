//! The validated service list. The supervisor consumes only these types:
//! everything here has passed validation (see `validate`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::capabilities::Capabilities;

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
/// Host ids each service with a user namespace gets: its ids 0 to 65535.
pub const USERNS_RANGE: u32 = 65536;
/// Default pool of host ids for user namespaces: 4096 services from 2^30 up.
/// Above the ids useradd gives to users and to subordinate ranges
/// (/etc/subuid, 100000 to 600100000 by default), below 2^31 (which some
/// tools read as negative).
pub const DEFAULT_USERNS_POOL: UsernsPool = UsernsPool {
    start: 1 << 30,
    size: 1 << 28,
};

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
    /// Host ids from which each service with a user namespace gets its range.
    pub userns_pool: UsernsPool,
    /// In the order the file lists them.
    pub services: Vec<Service>,
    /// `networks:`, in the order of the file.
    pub networks: Vec<Network>,
    /// `system:`: what `supervisor boot` sets up (PID 1 of the machine).
    pub system: crate::System,
}

/// `userns_pool: {start, size}`: host ids `start..start + size`, a whole
/// number of `USERNS_RANGE`s, all above the host's own ids 0 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsernsPool {
    pub start: u32,
    pub size: u32,
}

impl UsernsPool {
    /// How many services' ranges the pool holds.
    pub fn slots(&self) -> u32 {
        self.size / USERNS_RANGE
    }

    /// The first host id of range number `slot` (below `slots()`).
    pub fn slot_start(&self, slot: u32) -> u32 {
        self.start + slot * USERNS_RANGE
    }

    /// Whether the range of `USERNS_RANGE` ids from `start` lies in the pool.
    pub fn holds(&self, start: u32) -> bool {
        let (start, pool_start) = (u64::from(start), u64::from(self.start));
        start >= pool_start && start + u64::from(USERNS_RANGE) <= pool_start + u64::from(self.size)
    }
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
    /// Host device nodes made available inside (`devices:`).
    pub devices: Vec<Device>,
    /// The capabilities it keeps (bounding, permitted, effective): Docker's
    /// default 14 changed by `cap_add` and `cap_drop`; all with `privileged`.
    pub capabilities: Capabilities,
    /// `privileged: true`: every capability, no seccomp filter, all devices.
    pub privileged: bool,
    pub seccomp: Seccomp,
    /// The seccomp filter compiled for this service's capabilities when the
    /// file was loaded; None: `unconfined` or `privileged`.
    pub seccomp_filter: Option<Arc<seccomp::Program>>,
    /// Names of the networks it joins, the first one giving its default route.
    pub networks: Vec<String>,
    /// Published ports (Compose's short syntax).
    pub ports: Vec<Port>,
    /// Name servers for its `/etc/resolv.conf`; empty: the host's.
    pub dns: Vec<IpAddr>,
    /// Its output also goes to the console (`/dev/console`), as well as to its log.
    pub log_console: bool,
    /// `healthcheck:`; None: none (or disabled).
    pub healthcheck: Option<crate::Healthcheck>,
    /// `ready: notify`: ready once it sends READY=1 on its `NOTIFY_SOCKET`.
    pub ready: Ready,
    /// `watchdog`: with `ready: notify`, restarted when no WATCHDOG=1 comes
    /// within this interval.
    pub watchdog: Option<Duration>,
    /// `ready_timeout`: with `ready: notify`, killed (a failed start) when no
    /// READY=1 comes within this time of its start.
    pub ready_timeout: Duration,
    /// The conditions of `depends_on`'s long form; a dependency not in here
    /// (the list form) is `service_started`.
    pub dependency_conditions: BTreeMap<String, Condition>,
}

impl Service {
    /// What `depends_on` waits for of dependency `name`.
    pub fn condition(&self, name: &str) -> Condition {
        self.dependency_conditions
            .get(name)
            .copied()
            .unwrap_or_default()
    }
}

/// Default bound on a `ready: notify` service sending READY=1.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// When a service counts as ready (`ready:`; absent: once it runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ready {
    /// Ready once its init runs.
    #[default]
    Started,
    /// Ready once it sends READY=1 (systemd's sd_notify protocol).
    Notify,
}

/// `depends_on: {NAME: {condition: ...}}` (Compose's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The dependency runs.
    #[default]
    ServiceStarted,
    /// The dependency is ready.
    ServiceHealthy,
    /// The dependency ran to completion with status 0.
    ServiceCompletedSuccessfully,
}

impl Condition {
    pub fn name(self) -> &'static str {
        match self {
            Condition::ServiceStarted => "service_started",
            Condition::ServiceHealthy => "service_healthy",
            Condition::ServiceCompletedSuccessfully => "service_completed_successfully",
        }
    }
}

/// `seccomp: default | unconfined | PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Seccomp {
    /// The effect of Docker's default profile.
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile in Docker's/OCI's JSON format (absolute path).
    Profile(PathBuf),
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

/// Which namespaces a service gets of its own. Default: pid, mount, uts, ipc, net, cgroup.
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
            cgroup: true,
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

/// `devices:` entry `HOST[:CONTAINER[:PERMS]]`: a host device node, created
/// inside at `container` and allowed in the service's device policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Absolute host path of a character or block device (checked at start).
    pub host: PathBuf,
    /// Absolute path under /dev inside the service; defaults to `host`.
    pub container: PathBuf,
    pub access: DeviceAccess,
}

/// What a service may do with a device node: a subset of `rwm`, at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAccess {
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl DeviceAccess {
    pub const ALL: DeviceAccess = DeviceAccess {
        read: true,
        write: true,
        mknod: true,
    };
}

impl std::fmt::Display for DeviceAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (set, letter) in [(self.read, "r"), (self.write, "w"), (self.mknod, "m")] {
            if set {
                f.write_str(letter)?;
            }
        }
        Ok(())
    }
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

/// One entry of the top-level `networks:`: a bridge the services on it share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub subnet: Subnet,
    /// No way out of the network: no masquerade, no forwarding to other interfaces.
    pub internal: bool,
}

/// An IPv4 network, `address/prefix`, with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    pub address: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    fn mask(prefix: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.address)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        let shorter = self.prefix.min(other.prefix);
        let mask = Self::mask(shorter);
        u32::from(self.address) & mask == u32::from(other.address) & mask
    }

    /// The `n`th address of the subnet (`n` = 1: the gateway, the bridge's own).
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        (n > 0 && n < self.size() - 1).then(|| Ipv4Addr::from(u32::from(self.address) + n))
    }

    /// How many addresses the subnet spans, network and broadcast included.
    pub fn size(&self) -> u32 {
        (!Self::mask(self.prefix)).saturating_add(1)
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.host(1).unwrap_or(self.address)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// One published port: `[HOST_IP:]HOST_PORT:PORT[/PROTOCOL]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    /// None: every address of the host.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    /// The port inside the service.
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}
