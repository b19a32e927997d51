//! The minimal /dev of a service: a tmpfs with the usual character devices,
//! its own devpts instance, /dev/shm and the fd symlinks.

use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{fchmodat, makedev, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::symlinkat;

use crate::fsroot::Root;
use crate::mounts::{Kind, Missing, Source, Target};
use crate::Error;

/// Name, major, minor.
pub(crate) const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const SYMLINKS: &[(&str, &str)] = &[
    ("ptmx", "pts/ptmx"),
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// The host's device nodes, opened in case mknod is refused (a user namespace).
pub(crate) fn host_devices() -> Result<Vec<Source>, Error> {
    DEVICES
        .iter()
        .map(|(name, _, _)| Source::open("open host device", &Path::new("/dev").join(name)))
        .collect()
}

/// Mounts and fills `/dev` in `root`; `host_devices` are `DEVICES` on the
/// host. `missing` applies to `/dev` itself; what goes inside is created in
/// our own tmpfs.
pub(crate) fn setup(root: &Root, missing: Missing, host_devices: &[Source]) -> Result<(), Error> {
    Target::resolve(root, Path::new("dev"), Kind::Dir, missing)?.mount_fs(
        "mount /dev tmpfs",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        "mode=755,size=65536k",
    )?;
    let shown = root.path().join("dev");
    let dev = root
        .open_at(Path::new("dev"), OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|e| Error::setup("open /dev", &shown, e))?;
    for (&(name, major, minor), host) in DEVICES.iter().zip(host_devices) {
        let perm = Mode::from_bits_truncate(0o666);
        match mknodat(
            Some(dev.as_raw_fd()),
            name,
            SFlag::S_IFCHR,
            perm,
            makedev(major, minor),
        ) {
            Ok(()) => fchmodat(
                Some(dev.as_raw_fd()),
                name,
                perm,
                FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| Error::setup("create device", shown.join(name), e))?,
            // No mknod here (a user namespace): the host's node, bound.
            Err(Errno::EPERM) => Target::resolve(
                root,
                &Path::new("dev").join(name),
                Kind::File,
                Missing::Create,
            )?
            .bind(root, "bind device", host, false)?,
            Err(e) => return Err(Error::setup("create device", shown.join(name), e)),
        }
    }
    Target::resolve(root, Path::new("dev/pts"), Kind::Dir, Missing::Create)?.mount_fs(
        "mount devpts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
    )?;
    Target::resolve(root, Path::new("dev/shm"), Kind::Dir, Missing::Create)?.mount_fs(
        "mount /dev/shm",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        "mode=1777,size=65536k",
    )?;
    for &(name, target) in SYMLINKS {
        symlinkat(target, Some(dev.as_raw_fd()), name)
            .map_err(|e| Error::setup("create symlink", shown.join(name), e))?;
    }
    Ok(())
}
