//! The few system calls that need `unsafe`: taking ownership of descriptors
//! nix hands back as raw numbers, and renameat2 (not wrapped by nix on musl).

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// `openat(2)`, close-on-exec, returning an owned descriptor.
pub(crate) fn openat(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    mode: Mode,
) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::openat(Some(dir.as_raw_fd()), path, flags | OFlag::O_CLOEXEC, mode)?;
    // SAFETY: openat just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2(2)` with `RESOLVE_IN_ROOT`: `path` is resolved as if `root` were `/`,
/// so neither `..` nor any symlink (absolute or relative) can lead outside it.
pub(crate) fn openat_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
) -> nix::Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = nix::fcntl::openat2(root.as_raw_fd(), path, how)?;
    // SAFETY: openat2 just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Renames `from` to `to`, failing with EEXIST instead of replacing an existing `to`.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> nix::Result<()> {
    renameat2(from, to, libc::RENAME_NOREPLACE)
}

/// Swaps `from` and `to`, both of which must exist, in one atomic rename.
pub(crate) fn rename_exchange(from: &Path, to: &Path) -> nix::Result<()> {
    renameat2(from, to, libc::RENAME_EXCHANGE)
}

fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> nix::Result<()> {
    let from = CString::new(from.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let to = CString::new(to.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call.
    let res = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            flags,
        )
    };
    Errno::result(res).map(drop)
}

/// `open(2)`, close-on-exec, returning an owned descriptor.
pub(crate) fn open(path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: open just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
