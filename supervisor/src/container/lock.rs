//! One container per service and state_dir at a time: the daemon and
//! `supervisor run` both take `state_dir/containers/NAME.lock` before they
//! touch the service's writable layer, and hold it for the container's life.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::error::{io_error, SpawnError};

/// How often taking the lock is retried when its file was replaced meanwhile.
const ATTEMPTS: usize = 10;

/// The held lock of one service. Dropping it removes the lock file (while
/// still holding it), then releases it.
#[derive(Debug)]
pub(super) struct ServiceLock {
    path: PathBuf,
    _file: Flock<File>,
}

impl ServiceLock {
    /// Takes the lock of service `name`, or fails with `AlreadyRunning`.
    pub(super) fn take(state_dir: &Path, name: &str) -> Result<ServiceLock, SpawnError> {
        let containers = state_dir.join("containers");
        // Service names have no dot: no layer directory is named like a lock.
        let path = containers.join(format!("{name}.lock"));
        for _ in 0..ATTEMPTS {
            super::secure_state_dir(state_dir)?;
            // Rust opens files close-on-exec: the service never inherits the lock.
            let file = match OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
            {
                // A teardown removed the directory between the two calls.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                other => other.map_err(io_error(format!("open {}", path.display())))?,
            };
            let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(file) => file,
                Err((_, Errno::EWOULDBLOCK)) => {
                    return Err(SpawnError::AlreadyRunning {
                        name: name.to_string(),
                        state_dir: state_dir.to_path_buf(),
                    })
                }
                Err((_, source)) => {
                    return Err(SpawnError::Io {
                        what: format!("lock {}", path.display()),
                        source: source.into(),
                    })
                }
            };
            // The previous holder removes the file before releasing it: a lock
            // on a file no longer at `path` protects nothing, so take it again.
            if same_file(&file, &path) {
                return Ok(ServiceLock { path, _file: file });
            }
        }
        Err(SpawnError::Io {
            what: format!("lock {}", path.display()),
            source: std::io::Error::other("the lock file keeps being replaced"),
        })
    }
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(named)) => held.dev() == named.dev() && held.ino() == named.ino(),
        _ => false,
    }
}

impl Drop for ServiceLock {
    fn drop(&mut self) {
        // Best effort: a leftover file is harmless, the next holder reuses it.
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(super::spec::exec_state_path_of_lock(&self.path));
        // `state_dir/containers` goes too once no service uses it.
        if let Some(containers) = self.path.parent() {
            let _ = std::fs::remove_dir(containers);
        }
    }
}
