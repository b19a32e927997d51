//! A directory used as a root: every path is resolved inside it the way
//! `openat2(RESOLVE_IN_ROOT)` does, so no `..` and no symlink (absolute or
//! relative) found inside can lead outside it. Image extraction and the
//! mountpoints of a service's root filesystem both go through this.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{mkdirat, Mode};

use crate::sys;
use crate::Error;

#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    pub fn open(path: &Path) -> Result<Root, Error> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Root {
            fd: file.into(),
            path: path.to_path_buf(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `rel`, resolved inside the root.
    pub fn open_at(&self, rel: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        sys::openat_in_root(self.fd(), rel, flags)
    }

    /// Opens directory `rel` as an `O_PATH` handle, creating missing components
    /// (root-owned, `mode`) on the way. Every component is resolved inside the root.
    pub fn mkdir_all(&self, rel: &Path, mode: Mode) -> nix::Result<OwnedFd> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        match self.open_at(rel, flags) {
            Err(Errno::ENOENT) => {}
            other => return other,
        }
        let mut prefix = PathBuf::new();
        let mut dir = self.open_at(&prefix, flags)?;
        for component in rel.components() {
            prefix.push(component);
            dir = match self.open_at(&prefix, flags) {
                Err(Errno::ENOENT) => {
                    let name = prefix.file_name().unwrap_or(OsStr::new("."));
                    match mkdirat(Some(dir.as_raw_fd()), name, mode) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                    // Still ENOENT here means a dangling symlink: refuse rather than guess.
                    self.open_at(&prefix, flags)?
                }
                other => other?,
            };
        }
        Ok(dir)
    }

    /// The parent directory of `rel` (created if missing) and its last component.
    /// `rel` must be normalized and not empty.
    pub fn parent_of<'a>(&self, rel: &'a Path) -> nix::Result<(OwnedFd, &'a OsStr)> {
        let name = rel.file_name().ok_or(Errno::EINVAL)?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok((
            self.mkdir_all(parent, Mode::from_bits_truncate(0o755))?,
            name,
        ))
    }
}
