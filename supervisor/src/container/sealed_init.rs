//! Our init, as the service runs it: a private copy in a sealed memfd, exec'd
//! from its descriptor.
//!
//! Why not a bind of the host's init binary (as before) or a copy on disk:
//! a bind is the host's own file, and a root service that can remount it
//! read-write could change it or make it setuid for every host user. A copy
//! in the state directory (root-only, bound read-only, nosuid) is safe from
//! host users, but a root service could still remount and change that copy,
//! which every later start execs. A memfd with F_SEAL_FUTURE_WRITE, SHRINK, GROW
//! and SEAL is immutable even to root in any namespace, lives in no filesystem a
//! host user can reach and is made per start, so whatever a service does to
//! its own (chmod) goes away with it. It costs one copy of a 70 KiB file per
//! start, and the image needs nothing: no /dev/init mountpoint.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::sys::stat::{fchmod, Mode};

/// `MFD_EXEC` (Linux 6.3): asks for an executable memfd explicitly, which
/// `vm.memfd_noexec = 1` requires; older kernels refuse the unknown flag.
const MFD_EXEC: libc::c_uint = 0x10;

/// Copies the init binary at `path` (a host path, read before the root
/// filesystem changes) into a sealed, executable memfd.
pub fn load(path: &Path) -> anyhow::Result<OwnedFd> {
    let mut binary = File::open(path).with_context(|| format!("open init {}", path.display()))?;
    let memfd = create(c"init").context("create a memfd for init")?;
    let mut copy = File::from(memfd);
    std::io::copy(&mut binary, &mut copy)
        .with_context(|| format!("copy init {} into a memfd", path.display()))?;
    // Executable by the service's user (init is exec'd after the switch of
    // user); writable by nobody, and the seals hold even for root.
    fchmod(copy.as_raw_fd(), Mode::from_bits_truncate(0o555)).context("chmod the init memfd")?;
    // FUTURE_WRITE, not WRITE: nothing ever maps this memfd, so both refuse
    // every write from now on, but F_SEAL_WRITE first waits for the file's
    // pages to lose their transient references, and a page still held in the
    // LRU batch of the CPU that wrote it (the process moved to the other
    // CPU) makes it fail with EBUSY after 75 ms.
    let seals = SealFlag::F_SEAL_FUTURE_WRITE
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_SEAL;
    fcntl(copy.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals)).context("seal the init memfd")?;
    Ok(copy.into())
}

fn create(name: &CStr) -> anyhow::Result<OwnedFd> {
    let base = MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING;
    let exec = MemFdCreateFlag::from_bits_retain(MFD_EXEC);
    match memfd_create(name, base | exec) {
        Err(Errno::EINVAL) => Ok(memfd_create(name, base)?),
        Err(Errno::EACCES) => {
            anyhow::bail!("executable memfds are refused (sysctl vm.memfd_noexec = 2)")
        }
        other => Ok(other?),
    }
}
