//! Writes the entries of an image (from a tarball, OCI layers or a directory)
//! into a `Root`. Every path is resolved inside the root; an existing entry is
//! unlinked and recreated, never opened for writing, so nothing reachable
//! through a symlink or hard link placed by an earlier entry is ever written.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{File, FileTimes, Permissions};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, mknodat, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use rootfs::Root;
use xattr::FileExt;

use crate::sys;
use crate::Error;

/// Ownership, permissions, times and extended attributes of one entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    pub xattrs: Vec<(OsString, Vec<u8>)>,
}

pub(crate) struct Writer {
    root: Root,
    /// Directory mtimes, set last: writing entries into a directory changes it.
    dir_times: HashMap<PathBuf, (i64, u32)>,
    /// Paths written by the current layer, which an opaque whiteout keeps.
    layer_paths: HashSet<PathBuf>,
    pub skipped_devices: u64,
}

impl Writer {
    pub(crate) fn new(root: Root) -> Writer {
        Writer {
            root,
            dir_times: HashMap::new(),
            layer_paths: HashSet::new(),
            skipped_devices: 0,
        }
    }

    pub(crate) fn root_path(&self) -> &Path {
        self.root.path()
    }

    pub(crate) fn start_layer(&mut self) {
        self.layer_paths.clear();
    }

    pub(crate) fn dir(&mut self, rel: &Path, meta: &Meta) -> Result<(), Error> {
        let fd = if rel.as_os_str().is_empty() {
            self.root.open_at(rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
        } else {
            let (parent, name) = self.parent(rel)?;
            if !clear(&parent, name, true).map_err(|e| Error::entry(rel, e))? {
                nix::sys::stat::mkdirat(
                    Some(parent.as_raw_fd()),
                    name,
                    Mode::from_bits_truncate(0o700),
                )
                .map_err(|e| Error::entry(rel, e))?;
            }
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
            sys::openat(parent_fd(&parent), Path::new(name), flags, Mode::empty())
        }
        .map_err(|e| Error::entry(rel, e))?;
        apply_meta(&File::from(fd), meta, false).map_err(|e| Error::entry(rel, e))?;
        self.dir_times.insert(rel.to_path_buf(), meta.mtime);
        self.layer_paths.insert(rel.to_path_buf());
        Ok(())
    }

    /// A regular file with `data`; `size`, when known, must be read in full
    /// (a shorter read means a truncated archive).
    pub(crate) fn file(
        &mut self,
        rel: &Path,
        meta: &Meta,
        data: &mut dyn Read,
        size: Option<u64>,
    ) -> Result<(), Error> {
        let (parent, name) = self.parent(rel)?;
        clear(&parent, name, false).map_err(|e| Error::entry(rel, e))?;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
        let fd = sys::openat(
            parent_fd(&parent),
            Path::new(name),
            flags,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| Error::entry(rel, e))?;
        let mut file = File::from(fd);
        let written = io::copy(data, &mut file).map_err(|e| Error::entry(rel, e))?;
        if let Some(size) = size {
            if written != size {
                return Err(Error::entry(
                    rel,
                    format!("truncated: {written} of {size} bytes"),
                ));
            }
        }
        apply_meta(&file, meta, true).map_err(|e| Error::entry(rel, e))?;
        self.layer_paths.insert(rel.to_path_buf());
        Ok(())
    }

    /// A symlink is stored as it is: its target is only ever resolved inside the
    /// root (here, and in the container after pivot_root).
    pub(crate) fn symlink(&mut self, rel: &Path, target: &Path, meta: &Meta) -> Result<(), Error> {
        let (parent, name) = self.parent(rel)?;
        clear(&parent, name, false).map_err(|e| Error::entry(rel, e))?;
        let dir = Some(parent.as_raw_fd());
        symlinkat(target, dir, name).map_err(|e| Error::entry(rel, e))?;
        fchownat(
            dir,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| Error::entry(rel, e))?;
        let mtime = TimeSpec::new(meta.mtime.0, meta.mtime.1.into());
        utimensat(dir, name, &mtime, &mtime, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| Error::entry(rel, e))?;
        for (key, value) in &meta.xattrs {
            // lsetxattr through the parent's descriptor: the link itself, never its target.
            let path = Path::new("/proc/self/fd")
                .join(parent.as_raw_fd().to_string())
                .join(name);
            if let Err(e) = xattr::set(&path, key, value) {
                log::warn!("{}: xattr {}: {e}", rel.display(), key.to_string_lossy());
            }
        }
        self.layer_paths.insert(rel.to_path_buf());
        Ok(())
    }

    /// A hard link to `target`, an entry already written; both resolve inside the root.
    pub(crate) fn hardlink(&mut self, rel: &Path, target: &Path) -> Result<(), Error> {
        if target.as_os_str().is_empty() {
            return Err(Error::entry(rel, "refused: hard link to the image root"));
        }
        let (target_parent, target_name) = self.parent(target)?;
        let (parent, name) = self.parent(rel)?;
        clear(&parent, name, false).map_err(|e| Error::entry(rel, e))?;
        linkat(
            Some(target_parent.as_raw_fd()),
            target_name,
            Some(parent.as_raw_fd()),
            name,
            AtFlags::empty(),
        )
        .map_err(|e| Error::entry(rel, format!("hard link to {}: {e}", target.display())))?;
        self.layer_paths.insert(rel.to_path_buf());
        Ok(())
    }

    pub(crate) fn fifo(&mut self, rel: &Path, meta: &Meta) -> Result<(), Error> {
        let (parent, name) = self.parent(rel)?;
        clear(&parent, name, false).map_err(|e| Error::entry(rel, e))?;
        mknodat(
            Some(parent.as_raw_fd()),
            name,
            SFlag::S_IFIFO,
            Mode::from_bits_truncate(0o600),
            0,
        )
        .map_err(|e| Error::entry(rel, e))?;
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW;
        let fd = sys::openat(parent_fd(&parent), Path::new(name), flags, Mode::empty())
            .map_err(|e| Error::entry(rel, e))?;
        apply_meta(&File::from(fd), meta, true).map_err(|e| Error::entry(rel, e))?;
        self.layer_paths.insert(rel.to_path_buf());
        Ok(())
    }

    /// Device nodes are not created: an image could otherwise hand a service raw disks.
    pub(crate) fn device(&mut self, rel: &Path) {
        log::warn!("skipped device node /{}", rel.display());
        self.skipped_devices += 1;
    }

    /// `.wh.NAME`: NAME of a lower layer is deleted.
    pub(crate) fn whiteout(&mut self, rel: &Path) -> Result<(), Error> {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Ok(());
        };
        let parent = match self
            .root
            .open_at(parent, OFlag::O_PATH | OFlag::O_DIRECTORY)
        {
            Ok(parent) => parent,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
            Err(e) => return Err(Error::entry(rel, e)),
        };
        match remove_tree(&parent, name) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(Error::entry(rel, e)),
        }
    }

    /// `.wh..wh..opq` in `dir`: everything in `dir` from lower layers is deleted,
    /// what this layer wrote there is kept.
    pub(crate) fn opaque(&mut self, dir: &Path) -> Result<(), Error> {
        let fd = self
            .root
            .mkdir_all(dir, Mode::from_bits_truncate(0o755))
            .map_err(|e| Error::entry(dir, e))?;
        self.clear_lower(&fd, dir).map_err(|e| Error::entry(dir, e))
    }

    fn clear_lower(&self, dir_fd: &OwnedFd, dir: &Path) -> nix::Result<()> {
        for name in list_dir(dir_fd)? {
            let rel = dir.join(&name);
            if !self.layer_paths.contains(&rel) {
                remove_tree(dir_fd, &name)?;
            } else if is_dir(dir_fd, &name)? {
                let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
                let child = sys::openat(parent_fd(dir_fd), Path::new(&name), flags, Mode::empty())?;
                self.clear_lower(&child, &rel)?;
            }
        }
        Ok(())
    }

    /// Sets the directory mtimes recorded along the way; returns the root.
    pub(crate) fn finish(self) -> Result<Root, Error> {
        for (rel, mtime) in &self.dir_times {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
            // A directory replaced or deleted by a later entry has nothing to set.
            if let Ok(fd) = self.root.open_at(rel, flags) {
                File::from(fd)
                    .set_times(file_times(*mtime))
                    .map_err(|e| Error::entry(rel, e))?;
            }
        }
        Ok(self.root)
    }

    fn parent<'a>(&self, rel: &'a Path) -> Result<(OwnedFd, &'a OsStr), Error> {
        self.root
            .parent_of(rel)
            .map_err(|e| Error::entry(rel, format!("parent directory: {e}")))
    }
}

fn parent_fd(fd: &OwnedFd) -> std::os::fd::BorrowedFd<'_> {
    std::os::fd::AsFd::as_fd(fd)
}

/// Makes room for a new entry `name` in `dir`: a directory is kept when
/// `keep_dir` (returns true), anything else is removed.
fn clear(dir: &OwnedFd, name: &OsStr, keep_dir: bool) -> nix::Result<bool> {
    match is_dir(dir, name) {
        Err(Errno::ENOENT) => Ok(false),
        Ok(true) if keep_dir => Ok(true),
        Ok(_) => remove_tree(dir, name).map(|()| false),
        Err(e) => Err(e),
    }
}

fn is_dir(dir: &OwnedFd, name: &OsStr) -> nix::Result<bool> {
    let st = fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    Ok(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
}

/// Deletes `name` in `dir` and, for a directory, everything below, never following a symlink.
pub(crate) fn remove_tree(dir: &OwnedFd, name: &OsStr) -> nix::Result<()> {
    if is_dir(dir, name)? {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
        let child = sys::openat(parent_fd(dir), Path::new(name), flags, Mode::empty())?;
        for entry in list_dir(&child)? {
            remove_tree(&child, &entry)?;
        }
        unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::RemoveDir)
    } else {
        unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir)
    }
}

/// The names in a directory, without `.` and `..`.
fn list_dir(dir: &OwnedFd) -> nix::Result<Vec<OsString>> {
    let fd = sys::openat(
        parent_fd(dir),
        Path::new("."),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )?;
    let mut handle = nix::dir::Dir::from(fd)?;
    let mut names = Vec::new();
    for entry in handle.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(&name).to_os_string());
        }
    }
    Ok(names)
}

/// Owner first: chown clears set-id bits and file capabilities, so mode and
/// xattrs come after it.
fn apply_meta(file: &File, meta: &Meta, with_times: bool) -> io::Result<()> {
    std::os::unix::fs::fchown(file, Some(meta.uid), Some(meta.gid))?;
    file.set_permissions(Permissions::from_mode(meta.mode & 0o7777))?;
    for (key, value) in &meta.xattrs {
        if let Err(e) = file.set_xattr(key, value) {
            log::warn!("xattr {}: {e}", key.to_string_lossy());
        }
    }
    if with_times {
        file.set_times(file_times(meta.mtime))?;
    }
    Ok(())
}

fn file_times((secs, nanos): (i64, u32)) -> FileTimes {
    let time = if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    FileTimes::new().set_accessed(time).set_modified(time)
}
