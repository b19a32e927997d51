//! Starting one service as a small container: its own namespaces, root
//! filesystem and cgroup, with our init as its PID 1.
//!
//! `spawn` (used by the daemon and by `supervisor run`) clones a child into new
//! namespaces; the child execs `supervisor container-setup` (`setup`), which
//! sets the container up from a spec sent over a pipe and execs init. The
//! parent places the child in its cgroup while it sets up, then releases it.

mod adopt;
mod channel;
mod devices;
mod error;
mod exec;
mod exec_setup;
mod handle;
mod id_range;
mod lock;
mod plan;
mod probe;
mod pty;
mod request;
mod resolve;
mod run;
mod sealed_init;
mod setup;
mod spawn;
mod spec;
mod state_dir;
#[allow(unsafe_code)]
mod sys;
mod user;
mod userns;

pub use adopt::{adopt, cgroup_populated, remove_leftovers, ContainerRecord};
pub use channel::HELD_LOG_FD;
pub(crate) use devices::resolve as resolve_devices;
pub use exec::{exec, ExecArgs};
pub use exec_setup::exec_setup_main;
pub use handle::Container;
pub(crate) use id_range::allocate as allocate_id_range;
pub(crate) use plan::environment;
pub use probe::{Probe, ProbeTarget};
pub use request::{Held, SpawnRequest, Stdio};
pub use run::run_foreground;
pub use setup::setup_main;
pub use spawn::{begin, Setup, Starting};
pub use state_dir::secure_state_dir;
pub(crate) use sys::loopback_up;
pub(crate) use user::resolve as resolve_user;

/// What `supervisor exec` knows of running service `name` (see `ExecState`).
pub fn exec_state(state_dir: &std::path::Path, name: &str) -> anyhow::Result<spec::ExecState> {
    use anyhow::Context;
    let path = spec::exec_state_path(state_dir, name);
    let json = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&json).with_context(|| format!("decode {}", path.display()))
}

/// Removes the services' parent cgroup `parent` (and the levels above it that this
/// process created) where nothing uses it any more.
pub fn remove_cgroup_parent(
    driver: config::CgroupDriver,
    parent: &str,
) -> Result<(), cgroups::Error> {
    cgroups::remove_parent_if_empty(plan::driver(driver), parent)
}
