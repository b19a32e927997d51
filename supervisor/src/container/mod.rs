//! Starting one service as a small container: its own namespaces, root
//! filesystem and cgroup, with our init as its PID 1.
//!
//! `spawn` (used by the daemon and by `supervisor run`) clones a child into new
//! namespaces; the child execs `supervisor container-setup` (`setup`), which
//! sets the container up from a spec sent over a pipe and execs init. The
//! parent places the child in its cgroup while it sets up, then releases it.

mod error;
mod handle;
mod lock;
mod resolve;
mod run;
mod setup;
mod spawn;
mod spec;
mod sys;
mod user;

pub use handle::Container;
pub use run::run_foreground;
pub use setup::setup_main;
pub use spawn::{begin, Setup, SpawnRequest, Starting, Stdio};

/// Removes the services' parent cgroup `parent` (and the levels above it that this
/// process created) where nothing uses it any more.
pub fn remove_cgroup_parent(
    driver: config::CgroupDriver,
    parent: &str,
) -> Result<(), cgroups::Error> {
    cgroups::remove_parent_if_empty(resolve::driver(driver), parent)
}
