//! Starting one service as a small container: its own namespaces, root
//! filesystem and cgroup, with our init as its PID 1.
//!
//! `spawn` (used by the daemon and by `supervisor run`) clones a child into new
//! namespaces; the child execs `supervisor container-setup` (`setup`), which
//! sets the container up from a spec sent over a pipe and execs init. The
//! parent places the child in its cgroup while it sets up, then releases it.

mod devices;
mod error;
mod handle;
mod id_range;
mod lock;
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

pub(crate) use devices::resolve as resolve_devices;
pub use handle::Container;
pub(crate) use id_range::allocate as allocate_id_range;
pub(crate) use resolve::environment;
pub use run::run_foreground;
pub use setup::setup_main;
pub use spawn::{begin, Setup, SpawnRequest, Starting, Stdio};
pub use state_dir::secure_state_dir;
pub(crate) use user::resolve as resolve_user;

/// Removes the services' parent cgroup `parent` (and the levels above it that this
/// process created) where nothing uses it any more.
pub fn remove_cgroup_parent(
    driver: config::CgroupDriver,
    parent: &str,
) -> Result<(), cgroups::Error> {
    cgroups::remove_parent_if_empty(resolve::driver(driver), parent)
}
