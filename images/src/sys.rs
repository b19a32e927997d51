//! The few system calls that need `unsafe`: taking ownership of descriptors
//! nix hands back as raw numbers, and renameat2 (not wrapped by nix on musl).

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
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
