//! The modes of the state directory, set (and put right on a directory made
//! by an older version) by the daemon and by `supervisor run` before they
//! use it: no other user may reach a service's writable layer.

use std::fs::{self, DirBuilder, Permissions};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::error::{io_error, SpawnError};

/// `state_dir`: anyone may pass through (to the control socket, which has
/// its own mode, and to the logs of the control group) but not list it.
const STATE_DIR_MODE: u32 = 0o711;
/// `state_dir/containers`: the writable layers and locks, root only.
const CONTAINERS_MODE: u32 = 0o700;

/// Creates `state_dir` (0711) and `state_dir/containers` (0700) where
/// missing, and sets those modes where they exist.
pub fn secure_state_dir(state_dir: &Path) -> Result<(), SpawnError> {
    let containers = state_dir.join("containers");
    for (dir, mode) in [(state_dir, STATE_DIR_MODE), (&containers, CONTAINERS_MODE)] {
        DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(io_error(format!("create {}", dir.display())))?;
        fs::set_permissions(dir, Permissions::from_mode(mode))
            .map_err(io_error(format!("chmod {}", dir.display())))?;
    }
    Ok(())
}
