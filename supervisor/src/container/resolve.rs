//! What a container is made of, resolved before anything is created: its
//! root filesystem, user, environment, command, writable layer and image lease.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use config::{Config, ImageRef, Service, USERNS_RANGE};
use nix::sched::CloneFlags;

use super::devices;
use super::error::{io_error, SpawnError};
use super::handle::remove_layer;
use super::id_range;
use super::spawn::{SpawnRequest, Stdio};
use super::spec::SetupSpec;
use super::user;

/// `PATH` when the service's env has none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `spawn` resolves before anything is created.
pub(super) struct Prepared {
    pub spec: SetupSpec,
    pub layer: Option<PathBuf>,
    pub lease: Option<images::ImageLease>,
    /// For the cgroup, before any of the service's processes runs.
    pub device_policy: cgroups::DevicePolicy,
    /// The first host id of the service's user namespace range.
    pub id_range: Option<u32>,
    /// Addresses and files of a service on networks.
    pub network: Option<crate::net::Prepared>,
}

pub(super) fn prepare(req: &SpawnRequest) -> Result<Prepared, SpawnError> {
    let (config, service) = (req.config, req.service);
    let init_binary = init_binary()?;
    let (image_dir, lease) = match &service.image {
        None => (None, None),
        Some(image) => {
            let dir = images::resolve_image(&config.images_dir, image)?;
            let lease = match image {
                ImageRef::Named(name) => {
                    let holder = format!(
                        "service {} (state_dir {})",
                        service.name,
                        config.state_dir.display()
                    );
                    Some(images::lease(&config.images_dir, name, &holder)?)
                }
                ImageRef::Path(_) => None,
            };
            (Some(dir), lease)
        }
    };
    if image_dir.is_some() && !service.namespaces.mount {
        return Err(SpawnError::ImageWithoutMountNamespace);
    }
    let user = user::resolve(
        image_dir.as_deref().unwrap_or(Path::new("/")),
        service.user.as_ref(),
    )?;
    let id_range = service
        .namespaces
        .user
        .then(|| id_range::allocate(&config.state_dir, &config.userns_pool, &service.name))
        .transpose()?;
    if id_range.is_some() {
        let ids = &user.credentials;
        let mut all = [ids.uid, ids.gid]
            .into_iter()
            .chain(ids.groups.iter().copied());
        if let Some(id) = all.find(|&id| id >= USERNS_RANGE) {
            return Err(SpawnError::IdOutsideRange { id });
        }
    }
    let layer = match &image_dir {
        Some(_) if !service.readonly_rootfs => Some(writable_layer(config, service)?),
        _ => None,
    };
    if let (Some(layer), Some(image), Some(first)) = (&layer, &image_dir, id_range) {
        give_layer(layer, image, first)?;
    }
    let console = matches!(req.stdio, Stdio::Inherit) && devices::stdin_is_terminal();
    let devices = devices::resolve(service, console)?;
    if service.privileged {
        log::warn!(
            "service {} is privileged: every capability, no seccomp filter, all devices",
            service.name
        );
    }
    let network = crate::net::prepare(config, service)?;
    let network_files = network.iter().flat_map(|n| &n.files);
    let rootfs = service.namespaces.mount.then(|| images::RootfsSpec {
        rootfs: image_dir.clone(),
        writable_layer: layer.clone(),
        readonly: service.readonly_rootfs,
        state_dir: config.state_dir.clone(),
        mounts: service
            .mounts
            .iter()
            .map(|m| images::BindMount {
                source: m.source.clone(),
                target: m.target.clone(),
                readonly: m.readonly,
            })
            .chain(network_files.map(|(source, target)| images::BindMount {
                source: source.clone(),
                target: target.clone(),
                readonly: true,
            }))
            .collect(),
        devices: devices.nodes,
        host_devices: devices.all_host_devices,
        console,
        mqueue: service.namespaces.ipc,
    });
    let command = match &req.command {
        Some(command) if !command.is_empty() => command.clone(),
        _ => service.command.iter().map(OsString::from).collect(),
    };
    let spec = SetupSpec {
        rootfs,
        init: init_binary,
        hostname: service.namespaces.uts.then(|| service.hostname.clone()),
        loopback: service.namespaces.net,
        user_namespace: service.namespaces.user,
        cgroup_namespace: service.namespaces.cgroup,
        cgroup_path: format!("{}/{}", config.cgroup_parent, service.name),
        env: environment(service, user.home.as_deref(), on_terminal(&req.stdio)),
        credentials: user.credentials,
        take_terminal: matches!(req.stdio, Stdio::Inherit) && in_terminal_foreground(),
        controlling_terminal: matches!(req.stdio, Stdio::Terminal(_)),
        workdir: service.workdir.clone(),
        command,
        capabilities: (!service.privileged).then_some(service.capabilities.0),
        seccomp: service.seccomp_filter.as_deref().cloned(),
    };
    Ok(Prepared {
        spec,
        layer,
        lease,
        device_policy: devices.policy,
        id_range,
        network,
    })
}

/// The `init` binary installed next to the running supervisor.
fn init_binary() -> Result<PathBuf, SpawnError> {
    let exe = std::env::current_exe().map_err(io_error("find the supervisor executable"))?;
    let init = exe.with_file_name("init");
    if init.is_file() {
        Ok(init)
    } else {
        Err(SpawnError::InitMissing(init))
    }
}

/// `state_dir/containers/NAME`, the overlay's upper and work dirs. Emptied
/// first unless the service persists it.
fn writable_layer(config: &Config, service: &Service) -> Result<PathBuf, SpawnError> {
    let layer = config.state_dir.join("containers").join(&service.name);
    if !service.persist {
        remove_layer(&layer)?;
    }
    std::fs::create_dir_all(&layer).map_err(io_error(format!(
        "create writable layer {}",
        layer.display()
    )))?;
    Ok(layer)
}

/// Gives the writable layer's directory to the service's range root (0700):
/// its setup process creates the overlay's upper and work dirs in it, so
/// what the service writes belongs to its range on the host. An upper dir
/// kept (`persist`) from another range or from a run without a user
/// namespace is refused: the service could not use its files.
fn give_layer(layer: &Path, image: &Path, first: u32) -> Result<(), SpawnError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let upper = layer.join("upper");
    match std::fs::metadata(&upper) {
        Ok(meta) => {
            let image_owner = std::fs::metadata(image)
                .map_err(io_error(format!("read {}", image.display())))?
                .uid();
            let expected = first.checked_add(image_owner);
            if expected != Some(meta.uid()) {
                return Err(SpawnError::LayerOfOtherRange {
                    layer: layer.to_path_buf(),
                    owner: meta.uid(),
                    first,
                });
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_error(format!("read {}", upper.display()))(err)),
    }
    let what = || format!("give writable layer {} to its range", layer.display());
    std::os::unix::fs::chown(layer, Some(first), Some(first)).map_err(io_error(what()))?;
    std::fs::set_permissions(layer, std::fs::Permissions::from_mode(0o700))
        .map_err(io_error(what()))
}

/// Whether the service's stdio is a terminal (TERM is then passed on).
fn on_terminal(stdio: &Stdio) -> bool {
    match stdio {
        Stdio::Inherit => nix::unistd::isatty(0).unwrap_or(false),
        Stdio::Terminal(_) => true,
        Stdio::Log(_) => false,
    }
}

/// Like Docker: PATH, HOSTNAME, HOME (and TERM on a terminal) by default,
/// then the service's env, which wins.
pub(crate) fn environment(
    service: &Service,
    home: Option<&Path>,
    on_terminal: bool,
) -> Vec<String> {
    let mut env = std::collections::BTreeMap::new();
    env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
    if service.namespaces.uts {
        env.insert("HOSTNAME".to_string(), service.hostname.clone());
    }
    env.insert(
        "HOME".to_string(),
        home.unwrap_or(Path::new("/"))
            .to_string_lossy()
            .into_owned(),
    );
    if on_terminal {
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".to_string());
        env.insert("TERM".to_string(), term);
    }
    env.extend(service.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// stdin is a terminal whose foreground process group is ours.
fn in_terminal_foreground() -> bool {
    nix::unistd::tcgetpgrp(std::io::stdin()).is_ok_and(|pgrp| pgrp == nix::unistd::getpgrp())
}

pub(super) fn driver(driver: config::CgroupDriver) -> cgroups::Driver {
    match driver {
        config::CgroupDriver::Auto => cgroups::Driver::Auto,
        config::CgroupDriver::V1 => cgroups::Driver::V1,
        config::CgroupDriver::V2 => cgroups::Driver::V2,
    }
}

pub(super) fn resources(
    limits: &config::Limits,
    devices: cgroups::DevicePolicy,
) -> cgroups::Resources {
    cgroups::Resources {
        devices,
        memory: limits.memory,
        memory_swap: limits.memory_swap,
        cpus: limits.cpus,
        pids: limits.pids,
        io_weight: limits.io_weight,
    }
}

pub(super) fn clone_flags(ns: &config::Namespaces) -> CloneFlags {
    let mut flags = CloneFlags::empty();
    for (wanted, flag) in [
        (ns.pid, CloneFlags::CLONE_NEWPID),
        (ns.mount, CloneFlags::CLONE_NEWNS),
        (ns.uts, CloneFlags::CLONE_NEWUTS),
        (ns.ipc, CloneFlags::CLONE_NEWIPC),
        (ns.net, CloneFlags::CLONE_NEWNET),
        (ns.user, CloneFlags::CLONE_NEWUSER),
    ] {
        if wanted {
            flags |= flag;
        }
    }
    // The cgroup namespace is entered by the child once inside its cgroup
    // (see setup), so that the service's cgroup is its root.
    flags
}
