//! Taking over a container started by an earlier daemon (which crashed, or
//! re-exec'd itself): what a daemon records of a running container, and the
//! `Container` rebuilt from that record, or the leftovers of one that is gone.

use std::path::PathBuf;

use config::{Config, Service};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::error::SpawnError;
use super::handle::{remove_layer, Container};
use super::lock::ServiceLock;
use super::plan::driver;

/// What is needed to find a running container again, beyond its init's pid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// Its cgroup ("supervisor/web"), checked against the one opened again.
    pub cgroup: String,
    /// The writable layer removed at teardown (None: kept, or none).
    pub layer_to_remove: Option<PathBuf>,
    /// network -> address (informational: services on networks are not adopted).
    pub addresses: std::collections::BTreeMap<String, std::net::Ipv4Addr>,
}

impl Container {
    pub fn record(&self) -> ContainerRecord {
        ContainerRecord {
            cgroup: self.cgroup.path().to_string(),
            layer_to_remove: self.layer_to_remove.clone(),
            addresses: self.addresses(),
        }
    }
}

/// The container of `service` whose init is `pid` (alive, checked by the
/// caller), with its lock, cgroup and image lease taken again.
pub fn adopt(
    config: &Config,
    service: &Service,
    pid: Pid,
    record: &ContainerRecord,
) -> Result<Container, SpawnError> {
    let lock = ServiceLock::take(&config.state_dir, &service.name)?;
    let cgroup = cgroups::open(
        driver(config.cgroup_driver),
        &config.cgroup_parent,
        &service.name,
    )?;
    if cgroup.path() != record.cgroup {
        return Err(SpawnError::Setup(format!(
            "its cgroup is {}, not {} as recorded",
            cgroup.path(),
            record.cgroup
        )));
    }
    let lease = match &service.image {
        Some(config::ImageRef::Named(name)) => {
            let holder = format!(
                "service {} (state_dir {})",
                service.name,
                config.state_dir.display()
            );
            Some(images::lease(&config.images_dir, name, &holder)?)
        }
        _ => None,
    };
    Ok(Container {
        pid,
        cgroup,
        name: service.name.clone(),
        layer_to_remove: record.layer_to_remove.clone(),
        _lease: lease,
        network: None,
        _lock: lock,
    })
}

/// Kills and removes what is left of service `name`'s container in the
/// cgroup of `config` (a run no daemon can take over): its processes, its
/// cgroup, its discarded layer, its lock and exec state. Every step is
/// tried; the first error is returned.
pub fn remove_leftovers(
    config: &Config,
    name: &str,
    layer_to_remove: Option<&std::path::Path>,
) -> Result<(), SpawnError> {
    let cgroup = cgroups::open(driver(config.cgroup_driver), &config.cgroup_parent, name)?;
    let killed = match cgroup.procs() {
        Ok(procs) if procs.is_empty() => Ok(()),
        Ok(_) => cgroup
            .kill_all(std::time::Duration::from_secs(10))
            .map_err(SpawnError::from),
        // No such group.
        Err(_) => Ok(()),
    };
    let destroyed = cgroup.destroy().map_err(SpawnError::from);
    let removed = match layer_to_remove {
        Some(layer) => remove_layer(layer),
        None => Ok(()),
    };
    // Taking the lock and dropping it removes the lock file and exec state.
    let unlocked = ServiceLock::take(&config.state_dir, name).map(drop);
    killed.and(destroyed).and(removed).and(unlocked)
}

/// Whether service `name`'s cgroup (in `config`) has processes.
pub fn cgroup_populated(config: &Config, name: &str) -> bool {
    cgroups::open(driver(config.cgroup_driver), &config.cgroup_parent, name)
        .and_then(|cgroup| cgroup.procs())
        .is_ok_and(|procs| !procs.is_empty())
}
