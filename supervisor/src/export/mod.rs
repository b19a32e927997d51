//! `supervisor export -c FILE NAME DIR`: writes service NAME as an OCI runtime
//! bundle (`DIR/config.json` and `DIR/rootfs`), so that runc, crun, containerd
//! or Kubernetes run it as the supervisor would: under our init, with its
//! user, namespaces, mounts, limits, devices, capabilities and seccomp filter.

mod bundle;
mod copy;

use std::path::Path;

use anyhow::{bail, Context};
use config::{Capabilities, Config, ImageRef, Seccomp, Service, USERNS_RANGE};

use crate::container;

pub fn run(config_path: &Path, name: &str, dir: &Path) -> anyhow::Result<()> {
    let config = config::load(config_path).map_err(|errors| {
        let text = errors.to_string();
        anyhow::anyhow!("{}", text.trim_end().replace('\n', "; "))
    })?;
    let service = config.service(name).with_context(|| {
        let known = config.services.iter().map(|s| s.name.as_str());
        let hint = config::did_you_mean(name, known);
        format!("{}: no service named {name}{hint}", config_path.display())
    })?;
    let Some(image) = &service.image else {
        bail!("service {name} has no image: a bundle needs a root filesystem of its own");
    };
    let image_dir = images::resolve_image(&config.images_dir, image)
        .with_context(|| format!("service {name}: image {}", shown(image)))?;
    check_empty(dir)?;
    // Held while the image is copied: `image rm` and `image import --force` wait.
    let _lease = match image {
        ImageRef::Named(image) => {
            let holder = format!("supervisor export of service {name}");
            Some(images::lease(&config.images_dir, image, &holder)?)
        }
        ImageRef::Path(_) => None,
    };
    let resolved = resolve(&config, service, &image_dir)?;
    let spec = bundle::config(service, &resolved);
    if !service.networks.is_empty() || !service.ports.is_empty() || !service.dns.is_empty() {
        eprintln!(
            "supervisor: warning: service {name}: networks, ports and dns are not exported (the bundle's network namespace has only lo)"
        );
    }
    if service.ready == config::Ready::Notify {
        eprintln!(
            "supervisor: warning: service {name}: ready: notify and watchdog are not exported (an OCI runtime gives it no NOTIFY_SOCKET)"
        );
    }
    let created = !dir.exists();
    let written = write_bundle(dir, &image_dir, &spec, resolved.id_range.unwrap_or(0))
        .with_context(|| format!("export {name} to {}", dir.display()));
    if written.is_err() {
        // Nothing half-written stays: DIR as it was (empty, or absent).
        let _ = std::fs::remove_dir_all(dir.join("rootfs"));
        let _ = std::fs::remove_file(dir.join("config.json"));
        if created {
            let _ = std::fs::remove_dir(dir);
        }
    }
    written
}

/// `rootfs` (the image's copy, owners shifted by `shift`, and our init), then `config.json`.
fn write_bundle(
    dir: &Path,
    image_dir: &Path,
    spec: &serde_json::Value,
    shift: u32,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let rootfs = dir.join("rootfs");
    std::fs::create_dir(&rootfs).with_context(|| format!("create {}", rootfs.display()))?;
    copy::Copier::new(shift)
        .copy_tree(image_dir, &rootfs)
        .context("copy the image")?;
    install_init(&rootfs, shift)?;
    let json = serde_json::to_vec_pretty(spec).context("encode config.json")?;
    let path = dir.join("config.json");
    std::fs::write(&path, json).with_context(|| format!("write {}", path.display()))
}

fn shown(image: &ImageRef) -> String {
    match image {
        ImageRef::Named(name) => name.clone(),
        ImageRef::Path(path) => path.display().to_string(),
    }
}

/// DIR may not exist yet, or be empty: an export never writes over files.
fn check_empty(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{}: not empty (an export writes into a new or empty directory)",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("read {}", dir.display())),
    }
}

/// What the service resolves to, as a start of it would: its user in the
/// image, its environment, devices and policy, id range and seccomp profile.
fn resolve(
    config: &Config,
    service: &Service,
    image_dir: &Path,
) -> anyhow::Result<bundle::Resolved> {
    let user = container::resolve_user(image_dir, service.user.as_ref())
        .with_context(|| format!("service {}", service.name))?;
    let env = container::environment(service, user.home.as_deref(), false);
    let devices = container::resolve_devices(service, false)
        .with_context(|| format!("service {}", service.name))?;
    let mut nodes = devices.nodes;
    if devices.all_host_devices {
        // As the supervisor gives them: the configured ones win a path.
        let host = rootfs::host_device_nodes().context("list the host's devices")?;
        let configured: Vec<_> = nodes.iter().map(|n| n.path.clone()).collect();
        nodes.extend(host.into_iter().filter(|n| !configured.contains(&n.path)));
    }
    let id_range = service
        .namespaces
        .user
        .then(|| {
            container::allocate_id_range(&config.state_dir, &config.userns_pool, &service.name)
        })
        .transpose()
        .with_context(|| format!("service {}: user namespace", service.name))?;
    if id_range.is_some() {
        let ids = &user.credentials;
        let mut all = [ids.uid, ids.gid]
            .into_iter()
            .chain(ids.groups.iter().copied());
        if let Some(id) = all.find(|&id| id >= USERNS_RANGE) {
            bail!(
                "service {}: id {id} is outside its user namespace (ids 0 to {})",
                service.name,
                USERNS_RANGE - 1
            );
        }
    }
    // `privileged` keeps every capability the supervisor has (all the kernel
    // has, unless the supervisor runs with fewer): a runtime can give no more.
    let capabilities = if service.privileged {
        own_bounding_set()?
    } else {
        service.capabilities
    };
    Ok(bundle::Resolved {
        capabilities,
        uid: user.credentials.uid,
        gid: user.credentials.gid,
        groups: user.credentials.groups,
        env,
        nodes,
        policy: devices.policy,
        id_range,
        seccomp: seccomp(service)?,
    })
}

/// This process's bounding set (`CapBnd` of /proc/self/status), of the
/// capabilities this build knows.
fn own_bounding_set() -> anyhow::Result<Capabilities> {
    let status = std::fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    let bits = status
        .lines()
        .find_map(|line| line.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .context("no CapBnd in /proc/self/status")?;
    Ok(Capabilities(bits & Capabilities::ALL.0))
}

/// The service's profile for its capabilities, in OCI's form; None: no filter.
fn seccomp(service: &Service) -> anyhow::Result<Option<serde_json::Value>> {
    if service.privileged {
        return Ok(None);
    }
    let profile = match &service.seccomp {
        Seccomp::Unconfined => return Ok(None),
        Seccomp::Default => seccomp::docker_default(),
        Seccomp::Profile(path) => {
            let text =
                std::fs::read(path).with_context(|| format!("seccomp: read {}", path.display()))?;
            seccomp::Profile::from_json(&text)
                .with_context(|| format!("seccomp: {}", path.display()))?
        }
    };
    let caps = service.capabilities;
    let has_capability = |name: &str| caps.has_named(name);
    let kernel = nix::sys::utsname::uname()
        .ok()
        .and_then(|uts| uts.release().to_str().and_then(seccomp::kernel_version));
    let context = seccomp::Context {
        has_capability: &has_capability,
        kernel,
    };
    Ok(Some(seccomp::to_oci(&profile, &context)))
}

/// Our init, copied into the root filesystem (a bundle must carry all it runs:
/// it moves to other machines, where our binary is not).
fn install_init(rootfs: &Path, shift: u32) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("find the supervisor executable")?;
    let init = exe.with_file_name("init");
    let target = rootfs.join(bundle::INIT_PATH.trim_start_matches('/'));
    std::fs::copy(&init, &target)
        .with_context(|| format!("copy init {} to {}", init.display(), target.display()))?;
    std::os::unix::fs::chown(&target, Some(shift), Some(shift))
        .with_context(|| format!("chown {}", target.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", target.display()))
}
