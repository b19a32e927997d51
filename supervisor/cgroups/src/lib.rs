//! Cgroups on pure v1, hybrid and pure v2 hosts, behind one trait.
//!
//! [`open`] detects the layout from /proc/self/mountinfo and picks the backend:
//! - pure v2: everything in the unified hierarchy;
//! - hybrid with [`Driver::Auto`] or [`Driver::V2`]: limits and accounting in the v1
//!   controllers, membership, freeze and kill in the unified hierarchy (Auto on kernels
//!   before 5.2, which have no cgroup2 freezer: everything in v1);
//! - pure v1, or [`Driver::V1`] on a hybrid host: everything in v1, including the freezer.

mod bpf;
mod devices;
mod error;
mod fsops;
mod hybrid;
mod killer;
mod limits;
mod membership;
mod mountinfo;
mod notify;
mod own;
mod paths;
#[allow(unsafe_code)]
mod sys;
mod unified;
mod v1;
mod v2;

use std::fmt;
use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

pub use devices::{DeviceAccess, DeviceKind, DevicePolicy, DeviceRule};
pub use error::Error;
pub use limits::{blkio_weight, cpu_quota_us, CPU_PERIOD_US, CPU_QUOTA_MIN_US};
pub use membership::{io_bytes, limits, memberships, memory_limit, Membership};
pub use own::{enter_leaf, is_relative as is_relative_parent, Entered};
pub use paths::is_cgroup_path;

use hybrid::HybridCgroup;
use mountinfo::Mounts;
use v1::V1Cgroup;
use v2::V2Cgroup;

/// What places a new child in a group by itself, without the parent's
/// `cgroup.procs` writes: each of those waits for an RCU grace period of the
/// kernel's global threadgroup lock (6 to 16 ms on a 6.18 kernel), which a
/// child born in the group, or a single thread moving itself, never takes.
#[derive(Debug)]
pub struct SelfPlacement<'a> {
    /// The cgroup2 directory for clone3(CLONE_INTO_CGROUP), if the group has one.
    pub clone_into: Option<std::os::fd::BorrowedFd<'a>>,
    /// The group's `tasks` file in each v1 hierarchy, open for writing: the
    /// child, single-threaded between clone and exec, writes `0` (itself) to
    /// each. Close-on-exec.
    pub tasks: Vec<std::fs::File>,
}

/// How the host mounts its cgroup hierarchies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only v1 controller hierarchies.
    V1,
    /// v1 controllers plus a cgroup2 mount (usually /sys/fs/cgroup/unified).
    Hybrid,
    /// Only cgroup2.
    V2,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::V1 => "v1",
            Layout::Hybrid => "hybrid",
            Layout::V2 => "v2",
        })
    }
}

/// Which backend to use (`cgroup_driver` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Driver {
    /// The best the layout offers: the unified hierarchy wherever there is one.
    #[default]
    Auto,
    /// v1 only, including the v1 freezer (on v1 and hybrid hosts).
    V1,
    /// The unified hierarchy (on v2 and hybrid hosts).
    V2,
}

/// Limits for a group; None leaves the host's default.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resources {
    /// Bytes.
    pub memory: Option<u64>,
    /// Bytes of memory plus swap; needs `memory`.
    pub memory_swap: Option<u64>,
    /// CPUs, e.g. 0.5 (a CFS quota per 100 ms period).
    pub cpus: Option<f64>,
    pub pids: Option<u64>,
    /// 1..=10000 as v2's io.weight; scaled to 10..=1000 for v1 and BFQ.
    pub io_weight: Option<u16>,
    /// Which device nodes the group's processes may create and open: the v1
    /// `devices` controller on v1 and hybrid hosts, a BPF_CGROUP_DEVICE program on
    /// pure v2. Set before any process joins, it stays for the group's lifetime.
    pub devices: DevicePolicy,
}

/// Accounting; None where the host does not provide the figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub memory_bytes: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub cpu_usage_us: Option<u64>,
    pub pids_current: Option<u64>,
    pub oom_kills: Option<u64>,
}

/// A service's cgroup, in every hierarchy its backend uses.
pub trait Cgroup: Send + fmt::Debug {
    /// "supervisor/web": the group's path relative to the hierarchy roots.
    fn path(&self) -> &str;
    /// Creates the group (and its parent) everywhere needed and applies the limits; a limit
    /// the host cannot apply is an error naming the controller or file. Nothing is left
    /// behind on error.
    fn create(&self, res: &Resources) -> Result<(), Error>;
    /// Moves `pid` into the group in every hierarchy.
    fn add_process(&self, pid: i32) -> Result<(), Error>;
    /// How a new child gets into the group with no `cgroup.procs` write of its
    /// parent (see [`SelfPlacement`]); after create(). None where it cannot: the
    /// parent then calls add_process(). Drop the handle after destroy().
    fn self_placement(&self) -> Result<Option<SelfPlacement<'_>>, Error>;
    /// The processes in the group.
    fn procs(&self) -> Result<Vec<i32>, Error>;
    /// Returns once the kernel reports the group frozen; on timeout thaws it again and fails.
    fn freeze(&self, timeout: Duration) -> Result<(), Error>;
    /// Returns once the kernel reports the group thawed.
    fn thaw(&self, timeout: Duration) -> Result<(), Error>;
    fn is_frozen(&self) -> Result<bool, Error>;
    /// Asks the freezer to freeze (true) or thaw (false) and returns at once; see
    /// [`Cgroup::reached_frozen`] and [`Cgroup::events_file`] for learning when it is done.
    fn begin_set_frozen(&self, frozen: bool) -> Result<(), Error>;
    /// Whether the group has reached the freezer state asked for. On the v1 freezer a
    /// group still FREEZING is asked again (some task had not stopped yet).
    fn reached_frozen(&self, frozen: bool) -> Result<bool, Error>;
    /// The group's cgroup.events, opened for poll or epoll: POLLPRI when it changes
    /// (frozen, populated); reading it re-arms. None on the v1 freezer, which has no
    /// notification: look again after a pause.
    fn events_file(&self) -> Option<std::fs::File>;
    /// Kills every process in the group without waiting: cgroup.kill where the kernel
    /// has it, else SIGKILL to each pid (enough when the group's init is PID 1 of its
    /// namespace, whose death ends the rest).
    fn begin_kill(&self) -> Result<(), Error>;
    /// Kills every process in the group and waits until it is empty (cgroup.kill where the
    /// kernel has it, else freeze, SIGKILL each pid, thaw).
    fn kill_all(&self, timeout: Duration) -> Result<(), Error>;
    fn stats(&self) -> Result<Stats, Error>;
    /// Removes the group's directories; fails, naming the directory, if one is not empty.
    /// A group that is already gone is fine.
    fn destroy(&self) -> Result<(), Error>;
}

/// The host's cgroup layout, from /proc/self/mountinfo.
pub fn detect_layout() -> Result<Layout, Error> {
    Ok(detect()?.1)
}

/// The group `parent/name` with the backend for `driver` on this host's layout.
/// A parent that starts with `./` is relative to the process's own cgroup in each
/// hierarchy (see [`enter_leaf`]). Nothing is created until [`Cgroup::create`].
pub fn open(driver: Driver, parent: &str, name: &str) -> Result<Box<dyn Cgroup>, Error> {
    let (parent, relative) = split_parent(parent)?;
    check_component(name, "cgroup name")?;
    let rel = match parent.is_empty() {
        true => name.to_string(),
        false => format!("{parent}/{name}"),
    };
    Ok(match backend(driver, rel, relative)? {
        Backend::V1(cg) => Box::new(cg),
        Backend::Hybrid(cg) => Box::new(cg),
        Backend::V2(cg) => Box::new(cg),
    })
}

/// Removes `parent` in every hierarchy `driver` uses, where it is empty (no groups left
/// in it), then each of its upper levels ("a" of "a/b") left empty that this process
/// created (a pre-existing level such as a systemd slice is never ours to remove);
/// for the daemon at shutdown. A level still in use stays, without error.
pub fn remove_parent_if_empty(driver: Driver, parent: &str) -> Result<(), Error> {
    let (parent, relative) = split_parent(parent)?;
    if parent.is_empty() {
        // `./`: the services sit in the process's own cgroup, which is not ours.
        return Ok(());
    }
    let levels = parent.split('/').count();
    let dirs = match backend(driver, parent, relative)? {
        Backend::V1(cg) => cg.dirs(),
        Backend::Hybrid(cg) => cg.dirs(),
        Backend::V2(cg) => cg.dirs(),
    };
    for dir in dirs {
        // Never above the parent's first component: the hierarchy's own directories.
        for (depth, level) in dir.ancestors().take(levels).enumerate() {
            if depth > 0 && !fsops::created_here(level) {
                break;
            }
            match std::fs::remove_dir(level) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBUSY | libc::ENOTEMPTY | libc::ENOENT)
                    ) =>
                {
                    break
                }
                Err(e) => return Err(Error::io("rmdir", level, e)),
            }
        }
    }
    Ok(())
}

enum Backend {
    V1(V1Cgroup),
    Hybrid(HybridCgroup),
    V2(V2Cgroup),
}

fn detect() -> Result<(Mounts, Layout), Error> {
    let mounts = Mounts::read()?;
    let layout = mounts.layout()?;
    static LOGGED: Once = Once::new();
    LOGGED.call_once(|| log::info!("cgroup layout {layout}: {}", mounts.describe()));
    Ok((mounts, layout))
}

/// `rel` below the hierarchies' roots, or below the process's own cgroups when
/// `relative`.
fn backend(driver: Driver, rel: String, relative: bool) -> Result<Backend, Error> {
    let (mounts, layout) = detect()?;
    if !relative {
        return backend_in(&mounts, layout, driver, rel);
    }
    let shown = own::host_path(&mounts, &rel);
    let mut backend = backend_in(&own::anchored(&mounts)?, layout, driver, rel)?;
    match &mut backend {
        Backend::V1(cg) => cg.path = shown,
        Backend::Hybrid(cg) => cg.path = shown,
        Backend::V2(cg) => cg.path = shown,
    }
    Ok(backend)
}

fn backend_in(
    mounts: &Mounts,
    layout: Layout,
    driver: Driver,
    rel: String,
) -> Result<Backend, Error> {
    let no_v2 = || Error::Unsupported("cgroup v2 is not mounted".into());
    let unified = || mounts.unified.clone().ok_or_else(no_v2);
    Ok(match (layout, driver) {
        (Layout::V1, Driver::V2) => return Err(no_v2()),
        (Layout::V2, Driver::V1) => {
            return Err(Error::Unsupported(
                "cgroup driver v1: no cgroup v1 controller is mounted".into(),
            ))
        }
        (Layout::V1, _) | (Layout::Hybrid, Driver::V1) => Backend::V1(V1Cgroup::new(mounts, rel)?),
        // cgroup.freeze arrived in 5.2: older hybrid hosts freeze with the v1 freezer.
        (Layout::Hybrid, Driver::Auto) if !kernel_at_least(5, 2) => {
            Backend::V1(V1Cgroup::new(mounts, rel)?)
        }
        (Layout::Hybrid, _) => Backend::Hybrid(HybridCgroup::new(mounts, &unified()?, rel)),
        (Layout::V2, _) => Backend::V2(V2Cgroup::new(&unified()?, rel)),
    })
}

/// Whether the running kernel's release is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let Ok(uts) = nix::sys::utsname::uname() else {
        return true;
    };
    let release = uts.release().to_string_lossy();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    version >= (major, minor)
}

/// The parent without its `./` (possibly empty: the own cgroup itself), and whether
/// it had one; otherwise as [`check_parent`].
fn split_parent(parent: &str) -> Result<(String, bool), Error> {
    let Some(rest) = parent.strip_prefix(own::RELATIVE_PREFIX) else {
        return Ok((check_parent(parent)?, false));
    };
    if rest.trim_matches('/').is_empty() {
        return Ok((String::new(), true));
    }
    Ok((check_parent(rest)?, true))
}

/// "supervisor" or "a/b", as [`is_cgroup_path`] (the config file's rule). Slashes at
/// either end are dropped ("/supervisor" is a natural way to write it).
fn check_parent(parent: &str) -> Result<String, Error> {
    let trimmed = parent.trim_matches('/');
    if trimmed.is_empty() {
        return Err(Error::Invalid(format!(
            "cgroup parent {parent:?} is empty: services need a group of their own"
        )));
    }
    if !is_cgroup_path(trimmed) {
        return Err(Error::Invalid(format!(
            "cgroup parent {parent:?} is not a plain relative path"
        )));
    }
    Ok(trimmed.to_string())
}

fn check_component(name: &str, what: &str) -> Result<(), Error> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::Invalid(format!(
            "{what} {name:?} is not a valid directory name"
        )));
    }
    Ok(())
}

/// Runs the part of create() after the first mkdir; on failure removes what it made.
fn undo_on_error(cg: &dyn Cgroup, setup: impl FnOnce() -> Result<(), Error>) -> Result<(), Error> {
    let result = setup();
    if result.is_err() {
        if let Err(e) = cg.destroy() {
            log::warn!("removing the half-created cgroup {}: {e}", cg.path());
        }
    }
    result
}

/// rmdir every directory, trying all; the first failure is returned.
fn rmdir_all(dirs: &[PathBuf]) -> Result<(), Error> {
    let mut first = None;
    for dir in dirs {
        if let Err(e) = fsops::rmdir(dir) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        assert_eq!(check_parent("/supervisor/").unwrap(), "supervisor");
        assert_eq!(check_parent("a/b").unwrap(), "a/b");
        assert!(check_parent("").is_err());
        assert!(check_parent("a/../b").is_err());
        assert!(check_parent("a//b").is_err());
        assert!(check_component("web", "name").is_ok());
        assert!(check_component("..", "name").is_err());
        assert!(check_component("a/b", "name").is_err());
    }

    #[test]
    fn relative_parents() {
        assert_eq!(split_parent("./").unwrap(), (String::new(), true));
        assert_eq!(split_parent("./a/b").unwrap(), ("a/b".to_string(), true));
        assert_eq!(split_parent("a/b").unwrap(), ("a/b".to_string(), false));
        assert!(split_parent("./../a").is_err());
        assert!(split_parent("././a").is_err());
    }

    #[test]
    fn kernel_version() {
        assert!(kernel_at_least(3, 0));
        assert!(!kernel_at_least(999, 0));
    }
}
