//! Root filesystems of services with a user namespace of their own.
//!
//! Their setup process is the root of a private range of host ids: it cannot
//! open the image, the writable layer or a bind source by path (they are not
//! its own, and their directories are closed to other users), and it may not
//! make idmapped mounts (that takes root of the host). So the parent, root of
//! the host, hands them over as descriptors (`hand_over`): the image and each
//! bind source as a detached tree idmapped with the service's user
//! namespace, so that their files keep their ids inside, and no image is ever
//! copied or chowned; the image's mountpoint and the writable layer as
//! directories of the child's own mount namespace (reached through
//! /proc/PID/root), where the child mounts its overlay; our init as a
//! detached tree. The child attaches them (`Handed`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::setup::RootfsSpec;
use crate::{sys, Error};

/// Opens what the child `pid` (in its new user and mount namespaces, its id
/// maps written) needs for `spec`, in the order `take` expects.
pub fn hand_over(spec: &RootfsSpec, pid: i32) -> Result<Vec<OwnedFd>, Error> {
    let ns_path = PathBuf::from(format!("/proc/{pid}/ns/user"));
    let userns = sys::open(&ns_path, OFlag::O_RDONLY)
        .map_err(|e| Error::setup("open the user namespace", &ns_path, e))?;
    let in_child = |path: &Path| {
        let seen =
            Path::new(&format!("/proc/{pid}/root")).join(path.strip_prefix("/").unwrap_or(path));
        sys::open(&seen, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(|e| Error::setup("open in the container", path, e))
    };
    let idmapped = |what: &'static str, path: &Path, recursive: bool| {
        let tree = sys::clone_tree(path, recursive).map_err(|e| Error::setup(what, path, e))?;
        sys::idmap_tree(tree.as_fd(), userns.as_fd(), recursive)
            .map_err(|e| idmap_error(what, path, &tree, e))?;
        Ok::<_, Error>(tree)
    };
    let mut fds = Vec::new();
    if let Some(image) = &spec.rootfs {
        fds.push(idmapped("idmap image", image, false)?);
        fds.push(in_child(image)?);
    }
    if let Some(layer) = &spec.writable_layer {
        fds.push(in_child(layer)?);
    }
    for bind in &spec.mounts {
        fds.push(idmapped("idmap bind mount", &bind.source, true)?);
    }
    Ok(fds)
}

/// EINVAL from mount_setattr: the filesystem (or one below a recursive
/// bind) cannot be idmapped by this kernel; say which.
fn idmap_error(what: &'static str, path: &Path, tree: &OwnedFd, errno: Errno) -> Error {
    if errno != Errno::EINVAL {
        return Error::setup(what, path, errno);
    }
    let fs = nix::sys::statfs::fstatfs(tree.as_fd())
        .map(|st| fs_name(st.filesystem_type().0 as i64))
        .unwrap_or("unknown");
    Error::setup(
        what,
        path,
        std::io::Error::other(format!(
            "this kernel cannot make idmapped mounts of its filesystem ({fs}) or of one mounted below it, \
             which a service with a user namespace needs"
        )),
    )
}

/// The names of the filesystems an image or a bind source is likely on.
fn fs_name(magic: i64) -> &'static str {
    match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x0102_1997 => "9p",
        0x794C_7630 => "overlay",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x9FA0 => "proc",
        0x6265_6572 => "sysfs",
        0x2FC1_2FC1 => "zfs",
        0xF2F5_2010 => "f2fs",
        _ => "unknown",
    }
}

/// What the parent handed over that the root filesystem setup attaches itself.
pub(crate) struct Handed {
    /// The idmapped image tree and the directory to attach it on.
    image: Option<(OwnedFd, OwnedFd)>,
    layer: Option<OwnedFd>,
}

/// What the parent handed over that is bound like a host path would be.
pub(crate) struct HandedSources {
    /// The idmapped tree of each bind mount, in the order of `spec.mounts`.
    pub mounts: Vec<OwnedFd>,
}

/// Takes apart the descriptors `hand_over` opened for `spec`.
pub(crate) fn take(spec: &RootfsSpec, fds: Vec<OwnedFd>) -> Result<(Handed, HandedSources), Error> {
    let expected = 2 * usize::from(spec.rootfs.is_some())
        + usize::from(spec.writable_layer.is_some())
        + spec.mounts.len();
    if fds.len() != expected {
        return Err(Error::setup(
            "take the handed-over mounts",
            "/",
            std::io::Error::other(format!("{} descriptors, expected {expected}", fds.len())),
        ));
    }
    let mut fds = fds.into_iter();
    let mut next = || fds.next().expect("counted");
    let image = spec.rootfs.as_ref().map(|_| (next(), next()));
    let layer = spec.writable_layer.as_ref().map(|_| next());
    let mounts = spec.mounts.iter().map(|_| next()).collect();
    Ok((Handed { image, layer }, HandedSources { mounts }))
}

impl Handed {
    /// Attaches the image tree on its mountpoint (the image's own directory,
    /// in this mount namespace) and returns a path to it.
    pub(crate) fn attach_image(&self, shown: &Path) -> Result<Option<PathBuf>, Error> {
        let Some((tree, mountpoint)) = &self.image else {
            return Ok(None);
        };
        sys::attach_tree(tree.as_fd(), mountpoint.as_fd())
            .map_err(|e| Error::setup("attach image", shown, e))?;
        // Once attached, the tree's descriptor names it in this namespace.
        Ok(Some(fd_path(tree)))
    }

    /// A path to the writable layer's directory.
    pub(crate) fn layer(&self) -> Option<PathBuf> {
        self.layer.as_ref().map(fd_path)
    }
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::BindMount;

    fn fds(n: usize) -> Vec<OwnedFd> {
        (0..n)
            .map(|_| OwnedFd::from(std::fs::File::open("/dev/null").unwrap()))
            .collect()
    }

    #[test]
    fn the_descriptors_are_taken_in_the_order_they_were_handed_over() {
        let bind = BindMount {
            source: PathBuf::from("/srv"),
            target: PathBuf::from("/srv"),
            readonly: false,
        };
        let spec = RootfsSpec {
            rootfs: Some(PathBuf::from("/images/busybox")),
            writable_layer: Some(PathBuf::from("/run/supervisor/containers/web")),
            readonly: false,
            state_dir: PathBuf::from("/run/supervisor"),
            mounts: vec![bind.clone(), bind],
            devices: Vec::new(),
            host_devices: false,
            console: false,
            mqueue: false,
        };
        let handed = fds(5);
        let numbers: Vec<i32> = handed.iter().map(AsRawFd::as_raw_fd).collect();
        let (rootfs, sources) = take(&spec, handed).unwrap();
        let (tree, mountpoint) = rootfs.image.as_ref().unwrap();
        assert_eq!(
            (tree.as_raw_fd(), mountpoint.as_raw_fd()),
            (numbers[0], numbers[1])
        );
        assert_eq!(
            rootfs.layer(),
            Some(PathBuf::from(format!("/proc/self/fd/{}", numbers[2])))
        );
        let mounts: Vec<i32> = sources.mounts.iter().map(AsRawFd::as_raw_fd).collect();
        assert_eq!(mounts, numbers[3..]);
        let err = take(&spec, fds(4)).err().unwrap();
        assert!(
            err.to_string().contains("4 descriptors, expected 5"),
            "{err}"
        );
    }
}
