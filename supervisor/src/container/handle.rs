//! A started container: the host PID of its init, its cgroup, and what is
//! removed once it has exited.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::Pid;

use super::error::{io_error, SpawnError};
use super::lock::ServiceLock;

/// How long killing what is left in a cgroup may take.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// A started service: the host PID of its init, its cgroup, and what must be
/// removed once it has exited.
pub struct Container {
    /// Host PID of the service's PID 1 (our init). The caller reaps it.
    pub pid: Pid,
    pub cgroup: Box<dyn cgroups::Cgroup>,
    pub(super) name: String,
    /// Removed at teardown (None: kept, or none).
    pub(super) layer_to_remove: Option<PathBuf>,
    /// Keeps the image from being removed while the service runs.
    pub(super) _lease: Option<images::ImageLease>,
    /// Its veths (and what it created for them), removed at teardown.
    pub(super) network: Option<crate::net::Attachment>,
    /// Keeps a second container of this service off its writable layer;
    /// released once `teardown` has removed the layer.
    pub(super) _lock: ServiceLock,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("cgroup", &self.cgroup.path())
            .finish_non_exhaustive()
    }
}

impl Container {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// network -> the service's address on it.
    pub fn addresses(&self) -> std::collections::BTreeMap<String, std::net::Ipv4Addr> {
        self.network
            .as_ref()
            .map(|n| n.addresses.clone())
            .unwrap_or_default()
    }

    /// Kills every process in the service's cgroup and waits until it is empty.
    pub fn kill_all(&self) -> Result<(), SpawnError> {
        Ok(self.cgroup.kill_all(KILL_TIMEOUT)?)
    }

    /// After the pid was reaped: kills leftovers in the cgroup, removes it,
    /// removes the writable layer unless the service persists, releases the
    /// image. Every step is tried; the first error is returned.
    pub fn teardown(self) -> Result<(), SpawnError> {
        let (cgroup, released) = self.release();
        let destroyed = cgroup.destroy().map_err(SpawnError::from);
        released.and(destroyed)
    }

    /// `teardown` for a restart: the cgroup is emptied but kept, and returned
    /// for the next run (`SpawnRequest::cgroup`), which then starts in it
    /// without creating it again. On error it is removed as `teardown` would.
    pub fn teardown_keeping_cgroup(self) -> Result<Box<dyn cgroups::Cgroup>, SpawnError> {
        let (cgroup, released) = self.release();
        match released {
            Ok(()) => Ok(cgroup),
            Err(err) => {
                // Best effort: the error that stopped the reuse is the one to report.
                let _ = cgroup.destroy();
                Err(err)
            }
        }
    }

    /// Everything of `teardown` but removing the cgroup, which is returned empty
    /// unless the error says otherwise.
    fn release(mut self) -> (Box<dyn cgroups::Cgroup>, Result<(), SpawnError>) {
        // Usually the group emptied with its PID 1; killing is then not needed.
        let empty = self.cgroup.procs().is_ok_and(|procs| procs.is_empty());
        let killed = if empty { Ok(()) } else { self.kill_all() };
        let detached = match self.network.take() {
            Some(network) => network.detach().map_err(SpawnError::from),
            None => Ok(()),
        };
        let removed = match &self.layer_to_remove {
            Some(layer) => remove_layer(layer),
            None => Ok(()),
        };
        (self.cgroup, killed.and(detached).and(removed))
    }
}

pub(super) fn remove_layer(layer: &Path) -> Result<(), SpawnError> {
    match std::fs::remove_dir_all(layer) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            let what = format!("remove writable layer {}", layer.display());
            return Err(io_error(what)(err));
        }
        _ => {}
    }
    // `state_dir/containers` goes too once no service has a layer in it.
    if let Some(containers) = layer.parent() {
        let _ = std::fs::remove_dir(containers);
    }
    Ok(())
}
