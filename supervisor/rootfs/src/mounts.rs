//! Mount helpers for a root filesystem being set up. Targets are resolved
//! inside the new root (`Root`) and mounted onto by descriptor through
//! `/proc/self/fd`, so a symlink in an image can never redirect a mount.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use nix::sys::statvfs::{statvfs, FsFlags};

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
        let attached = if source.detached {
            sys::attach_tree(source.fd.as_fd(), self.fd.as_fd())
        } else {
            mount(
                Some(&proc_path(&source.fd)),
                &proc_path(&self.fd),
                None::<&str>,
                flags,
                None::<&str>,
            )
        };
        attached.map_err(|e| {
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
    /// A detached mount tree (see `idmap`), attached rather than bound.
    detached: bool,
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

    /// A detached mount tree handed over by the parent (see `idmap`); `path`
    /// is where it comes from on the host, for messages.
    pub(crate) fn detached(
        step: &'static str,
        tree: OwnedFd,
        path: &Path,
    ) -> Result<Source, Error> {
        Ok(Source {
            detached: true,
            ..Source::new(step, tree, path.to_path_buf())?
        })
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
            detached: false,
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
    match sys::mount_setattr_recursive(mount.as_fd(), attrs) {
        Ok(()) => Ok(()),
        // Before Linux 5.12: each mount of the tree, one by one.
        Err(nix::errno::Errno::ENOSYS) => remount_tree(mount, attrs, shown),
        Err(e) => Err(Error::setup("set mount flags", shown, e)),
    }
}

/// `set_recursive` without `mount_setattr`: the mounts at and below the
/// mount's path in /proc/self/mountinfo, each remounted with its flags kept
/// (a bind remount replaces them all) and `attrs` added.
fn remount_tree(mount: &OwnedFd, attrs: u64, shown: &Path) -> Result<(), Error> {
    let step = "set mount flags";
    let top = std::fs::read_link(proc_path(mount)).map_err(|e| Error::setup(step, shown, e))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::setup(step, "/proc/self/mountinfo", e))?;
    for point in mount_points(&mountinfo) {
        if point.starts_with(&top) {
            remount_adding(&point, attrs).map_err(|e| Error::setup(step, &point, e))?;
        }
    }
    Ok(())
}

/// The mount points of a mountinfo text, in its order (parents first),
/// each once, with its octal escapes (`\040` for a space) decoded.
fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    let mut points: Vec<PathBuf> = Vec::new();
    for field in mountinfo.lines().filter_map(|l| l.split(' ').nth(4)) {
        let point = PathBuf::from(std::ffi::OsString::from_vec(unescape(field)));
        if !points.contains(&point) {
            points.push(point);
        }
    }
    points
}

fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn remount_adding(path: &Path, attrs: u64) -> nix::Result<()> {
    let current = statvfs(path)?.flags();
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    for (have, keep) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
    ] {
        if current.contains(have) {
            flags |= keep;
        }
    }
    for (attr, add) in [
        (sys::MOUNT_ATTR_RDONLY, MsFlags::MS_RDONLY),
        (sys::MOUNT_ATTR_NOSUID, MsFlags::MS_NOSUID),
        (sys::MOUNT_ATTR_NODEV, MsFlags::MS_NODEV),
    ] {
        if attrs & attr != 0 {
            flags |= add;
        }
    }
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

/// Makes the mount at `path` and every mount below it read-only.
pub(crate) fn readonly_recursive(path: &Path) -> Result<(), Error> {
    let fd = sys::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|e| Error::setup("open", path, e))?;
    set_recursive(&fd, sys::MOUNT_ATTR_RDONLY, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_decoded_and_listed_once() {
        let text = "22 1 0:21 / / rw - ext4 /dev/vda rw\n\
                    30 22 0:5 / /srv/my\\040data rw - tmpfs tmpfs rw\n\
                    31 30 0:6 / /srv/my\\040data rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mount_points(text),
            vec![PathBuf::from("/"), PathBuf::from("/srv/my data")]
        );
        assert_eq!(unescape("a\\134b\\12"), b"a\\b\\12");
    }
}
