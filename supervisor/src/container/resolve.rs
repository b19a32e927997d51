//! What a launch plan needs from the host, gathered before planning: the
//! image (and its lease), the user, the id range and network addresses
//! (allocated here), the devices and the terminal. Also the writable layer,
//! made when the plan is carried out.

use std::path::{Path, PathBuf};

use config::ImageRef;

use super::devices;
use super::error::{io_error, SpawnError};
use super::handle::remove_layer;
use super::id_range;
use super::plan::{Facts, Layer, Terminal};
use super::request::{SpawnRequest, Stdio};
use super::user;

/// Reads what the plan needs; allocates the service's id range and network
/// addresses and leases its image (returned beside the facts).
pub(super) fn gather(
    req: &SpawnRequest,
) -> Result<(Facts, Option<images::ImageLease>), SpawnError> {
    let (config, service) = (req.config, req.service);
    let init = init_binary()?;
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
    let terminal = terminal(&req.stdio);
    let devices = devices::resolve(service, terminal.console)?;
    if service.privileged {
        log::warn!(
            "service {} is privileged: every capability, no seccomp filter, all devices",
            service.name
        );
    }
    let network = crate::net::prepare(config, service)?;
    let facts = Facts {
        init,
        image_dir,
        user,
        id_range,
        devices,
        network,
        terminal,
        notify_socket: req.notify_socket.clone(),
    };
    Ok((facts, lease))
}

fn terminal(stdio: &Stdio) -> Terminal {
    Terminal {
        console: matches!(stdio, Stdio::Inherit) && devices::stdin_is_terminal(),
        on_terminal: on_terminal(stdio),
        take_terminal: matches!(stdio, Stdio::Inherit) && in_terminal_foreground(),
        controlling_terminal: matches!(stdio, Stdio::Terminal(_)),
    }
}

/// Makes the planned writable layer: emptied first unless the service
/// persists it, and given to the service's range with a user namespace.
pub(super) fn make_layer(layer: &Layer) -> Result<(), SpawnError> {
    if layer.discard {
        remove_layer(&layer.path)?;
    }
    std::fs::create_dir_all(&layer.path).map_err(io_error(format!(
        "create writable layer {}",
        layer.path.display()
    )))?;
    if let Some((image, first)) = &layer.give_to {
        give_layer(&layer.path, image, *first)?;
    }
    Ok(())
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

/// stdin is a terminal whose foreground process group is ours.
fn in_terminal_foreground() -> bool {
    nix::unistd::tcgetpgrp(std::io::stdin()).is_ok_and(|pgrp| pgrp == nix::unistd::getpgrp())
}
