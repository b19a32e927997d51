//! Mount helpers for a root filesystem being set up. Targets are resolved
//! inside the new root (`Root`) and mounted onto by descriptor through
//! `/proc/self/fd`, so a symlink in an image can never redirect a mount.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;

use crate::fsroot::Root;
use crate::{sys, Error};

/// What a mountpoint must be: bind mounts of files need a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
}

/// What to do when a mountpoint is missing from the new root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// Create it: the root is a writable layer or a filesystem we mounted ourselves.
    Create,
    /// Refuse: the root is the host's `/` or a shared image bound as it is,
    /// which must not change. The string names it in the error.
    Refuse(&'static str),
}

/// A mountpoint inside the new root.
pub(crate) struct Target {
    fd: OwnedFd,
    rel: PathBuf,
    /// For messages: the host path it was reached by.
    shown: PathBuf,
}

impl Target {
    pub(crate) fn resolve(
        root: &Root,
        rel: &Path,
        kind: Kind,
        missing: Missing,
    ) -> Result<Target, Error> {
        let shown = root.path().join(rel);
        let fd = match (kind, missing) {
            (Kind::Dir, Missing::Create) => root.mkdir_all(rel, Mode::from_bits_truncate(0o755)),
            (Kind::File, Missing::Create) => create_file(root, rel),
            (Kind::Dir, Missing::Refuse(_)) => {
                root.open_at(rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
            }
            (Kind::File, Missing::Refuse(_)) => {
                root.open_at(rel, OFlag::O_PATH | OFlag::O_NOFOLLOW)
            }
        };
        let fd = match (fd, missing) {
            (Err(nix::errno::Errno::ENOENT), Missing::Refuse(place)) => {
                return Err(Error::MissingMountpoint {
                    target: Path::new("/").join(rel),
                    place,
                })
            }
            (fd, _) => fd.map_err(|e| Error::setup("create mountpoint", &shown, e))?,
        };
        Ok(Target {
            fd,
            rel: rel.to_path_buf(),
            shown,
        })
    }

    /// Mounts a new filesystem of type `fstype` here.
    pub(crate) fn mount_fs(
        &self,
        step: &'static str,
        fstype: &str,
        flags: MsFlags,
        data: &str,
    ) -> Result<(), Error> {
        let data = (!data.is_empty()).then_some(data);
        mount(
            Some(fstype),
            &proc_path(&self.fd),
            Some(fstype),
            flags,
            data,
        )
        .map_err(|e| Error::setup(step, &self.shown, e))
    }

    /// Bind-mounts `source` here, recursively, nosuid and nodev (but a device
    /// node keeps working); read-only if asked. The flags are set on every
    /// mount of the bound tree (`AT_RECURSIVE`): a submount of a read-only
    /// bind is read-only too.
    pub(crate) fn bind(
        &self,
        root: &Root,
        step: &'static str,
        source: &Source,
        readonly: bool,
    ) -> Result<(), Error> {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
        mount(
            Some(&proc_path(&source.fd)),
            &proc_path(&self.fd),
            None::<&str>,
            flags,
            None::<&str>,
        )
        .map_err(|e| {
            Error::setup(
                step,
                format!("{} on {}", source.shown.display(), self.shown.display()),
                e,
            )
        })?;
        // Resolved again: the old descriptor names what lies under the new mount.
        let mounted = root
            .open_at(&self.rel, OFlag::O_PATH | OFlag::O_NOFOLLOW)
            .map_err(|e| Error::setup(step, &self.shown, e))?;
        let mut attrs = sys::MOUNT_ATTR_NOSUID;
        if !source.is_device {
            attrs |= sys::MOUNT_ATTR_NODEV;
        }
        if readonly {
            attrs |= sys::MOUNT_ATTR_RDONLY;
        }
        set_recursive(&mounted, attrs, &self.shown)
    }
}

/// A host path to bind-mount, opened before anything is mounted: mounting
/// over the host's /tmp or /dev (a service without an image) would hide it.
pub(crate) struct Source {
    fd: OwnedFd,
    shown: PathBuf,
    pub is_dir: bool,
    /// A character or block device: its binds keep `dev`.
    is_device: bool,
}

impl Source {
    pub(crate) fn open(step: &'static str, path: &Path) -> Result<Source, Error> {
        let fd = sys::open(path, OFlag::O_PATH).map_err(|e| Error::setup(step, path, e))?;
        Source::new(step, fd, path.to_path_buf())
    }

    /// `rel` inside the new root (resolved there), to bind elsewhere in it.
    pub(crate) fn open_in(root: &Root, rel: &Path) -> Result<Source, Error> {
        let shown = root.path().join(rel);
        let fd = root
            .open_at(rel, OFlag::O_PATH | OFlag::O_NOFOLLOW)
            .map_err(|e| Error::setup("open", &shown, e))?;
        Source::new("open", fd, shown)
    }

    fn new(step: &'static str, fd: OwnedFd, shown: PathBuf) -> Result<Source, Error> {
        let st =
            nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| Error::setup(step, &shown, e))?;
        let kind = st.st_mode & libc::S_IFMT;
        Ok(Source {
            fd,
            shown,
            is_dir: kind == libc::S_IFDIR,
            is_device: kind == libc::S_IFCHR || kind == libc::S_IFBLK,
        })
    }
}

fn proc_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn create_file(root: &Root, rel: &Path) -> nix::Result<OwnedFd> {
    let (parent, name) = root.parent_of(rel)?;
    let open_path = || {
        sys::openat(
            parent.as_fd(),
            Path::new(name),
            OFlag::O_PATH | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
    };
    // An existing file is taken as it is: opening some (e.g. /proc/kcore) for
    // reading needs more privilege than mounting over them.
    match open_path() {
        Err(nix::errno::Errno::ENOENT) => {}
        found => return found,
    }
    let flags = OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_NOFOLLOW;
    match sys::openat(
        parent.as_fd(),
        Path::new(name),
        flags,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) | Err(nix::errno::Errno::EISDIR) => {}
        Err(e) => return Err(e),
    }
    open_path()
}

/// Sets `attrs` (`sys::MOUNT_ATTR_*`) on the mount at `mount` and on every
/// mount below it, keeping its other flags.
pub(crate) fn set_recursive(mount: &OwnedFd, attrs: u64, shown: &Path) -> Result<(), Error> {
    sys::mount_setattr_recursive(mount.as_fd(), attrs).map_err(|e| {
        let error = match e {
            nix::errno::Errno::ENOSYS => {
                std::io::Error::other("mount_setattr is missing: Linux 5.12 or later is needed")
            }
            other => other.into(),
        };
        Error::setup("set mount flags", shown, error)
    })
}

/// Makes the mount at `path` and every mount below it read-only.
pub(crate) fn readonly_recursive(path: &Path) -> Result<(), Error> {
    let fd = sys::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|e| Error::setup("open", path, e))?;
    set_recursive(&fd, sys::MOUNT_ATTR_RDONLY, path)
}
