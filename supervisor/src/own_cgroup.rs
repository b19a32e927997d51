//! A `cgroup_parent` relative to the supervisor's own cgroup (`./services`): the
//! layout of a systemd unit with `Delegate=yes`. Before its first service starts,
//! the daemon (or `supervisor run`) records its own cgroup and, on pure v2, moves
//! into a leaf child of it, so that the services' controllers can be enabled there.

use anyhow::Context;

/// The leaf the daemon moves into: `<unit's cgroup>/supervisor.daemon`.
pub const DAEMON_LEAF: &str = "supervisor.daemon";
/// The leaf `supervisor run` moves into.
pub const RUN_LEAF: &str = "supervisor.run";

/// Does what a relative `cgroup_parent` needs before services start; nothing for
/// an absolute one. Idempotent: a reload that switches to a relative parent calls
/// it again.
pub fn prepare(config: &config::Config, leaf: &str) -> anyhow::Result<()> {
    if !cgroups::is_relative_parent(&config.cgroup_parent) {
        return Ok(());
    }
    let entered = cgroups::enter_leaf(leaf).with_context(|| {
        format!(
            "cgroup_parent {}: move into a leaf of this process's own cgroup",
            config.cgroup_parent
        )
    })?;
    match entered.leaf {
        Some(leaf) => log::info!(
            "cgroup_parent {} is below {}; this process moved to {leaf}",
            config.cgroup_parent,
            entered.anchor
        ),
        None => log::info!(
            "cgroup_parent {} is below {}",
            config.cgroup_parent,
            entered.anchor
        ),
    }
    Ok(())
}
