//! The watchdog ioctls (linux/watchdog.h), which nix has no wrapper for.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

nix::ioctl_read!(wdioc_keepalive, b'W', 5, libc::c_int);
nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, libc::c_int);

/// WDIOC_SETTIMEOUT: asks for `seconds`; returns what the driver set.
pub fn set_timeout(fd: BorrowedFd, seconds: i32) -> Result<i32, Errno> {
    let mut value: libc::c_int = seconds;
    // SAFETY: the ioctl reads and writes one c_int, which `value` is.
    unsafe { wdioc_settimeout(fd.as_raw_fd(), &mut value) }?;
    Ok(value)
}

/// WDIOC_KEEPALIVE: pets the watchdog.
pub fn keepalive(fd: BorrowedFd) -> Result<(), Errno> {
    let mut unused: libc::c_int = 0;
    // SAFETY: the ioctl takes a pointer to a c_int (it ignores it), which `unused` is.
    unsafe { wdioc_keepalive(fd.as_raw_fd(), &mut unused) }?;
    Ok(())
}
