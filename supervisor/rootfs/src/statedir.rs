//! The supervisor's state directory, hidden from services: it holds the
//! control socket, the logs and every service's writable layer. A service
//! that sees it (one without an image sees the host's `/`; a bind of `/run`
//! shows `/run/supervisor`) gets an empty read-only tmpfs over it.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::fsroot::Root;
use crate::mounts::{Kind, Missing, Target};
use crate::setup::BindMount;
use crate::Error;

/// Where the state directory shows inside a service, worked out on the
/// host's paths before anything is mounted (symlinks resolved).
pub(crate) struct Hidden {
    state_dir: PathBuf,
    /// The image directory, or `/` for the host's root.
    root: PathBuf,
    /// Each bind mount's source.
    sources: Vec<PathBuf>,
}

impl Hidden {
    pub(crate) fn new(state_dir: &Path, image: Option<&Path>, mounts: &[BindMount]) -> Hidden {
        let real = |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Hidden {
            state_dir: real(state_dir),
            root: real(image.unwrap_or(Path::new("/"))),
            sources: mounts.iter().map(|m| real(&m.source)).collect(),
        }
    }

    /// The state directory relative to the new root, if the root shows it.
    /// Covered before the bind mounts, so that one whose target is the state
    /// directory itself (named on purpose) goes on top and shows it.
    pub(crate) fn in_root(&self) -> Option<PathBuf> {
        self.state_dir
            .strip_prefix(&self.root)
            .ok()
            .map(Path::to_path_buf)
    }

    /// Where bind mount number `index` (with its `target`) shows the state
    /// directory: only when its source is a parent of it. A source that is
    /// the state directory or inside it names it on purpose.
    pub(crate) fn in_bind(&self, index: usize, target: &Path) -> Option<PathBuf> {
        let source = self.sources.get(index)?;
        let rest = self.state_dir.strip_prefix(source).ok()?;
        if rest.as_os_str().is_empty() {
            return None;
        }
        Some(target.strip_prefix("/").unwrap_or(target).join(rest))
    }

    /// Mounts the empty read-only tmpfs at `rel` in the new root, unless a
    /// mount of the service's own already hides that path (a state dir in
    /// /tmp is gone under the service's /tmp).
    pub(crate) fn cover(&self, root: &Root, rel: &Path) -> Result<(), Error> {
        let target = match Target::resolve(root, rel, Kind::Dir, Missing::Refuse("the root")) {
            Err(Error::MissingMountpoint { .. }) => return Ok(()),
            other => other?,
        };
        target.mount_fs(
            "hide the state directory",
            "tmpfs",
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            "mode=0755",
        )
    }
}
