//! The minimal /dev of a service: a tmpfs (nosuid, noexec) with the usual
//! character devices, its own devpts instance, /dev/shm, /dev/mqueue, the fd
//! symlinks, the terminal as /dev/console, the configured host devices (or,
//! privileged, every host device).

use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{fchmodat, major, makedev, minor, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, Gid, Uid};
use serde::{Deserialize, Serialize};

use crate::fsroot::Root;
use crate::mounts::{Kind, Missing, Source, Target};
use crate::{Error, RootfsSpec};

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

/// A host device node to create inside the service, as on the host.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// The host node, bound instead where mknod is refused (a user namespace).
    pub host: PathBuf,
    /// Absolute path under /dev inside the service.
    pub path: PathBuf,
    pub block: bool,
    pub major: u64,
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl DeviceNode {
    /// The character or block device at `host` (symlinks followed), to appear at `path`.
    pub fn stat(host: &Path, path: &Path) -> std::io::Result<DeviceNode> {
        let meta = std::fs::metadata(host)?;
        let kind = meta.file_type();
        if !kind.is_char_device() && !kind.is_block_device() {
            return Err(std::io::Error::other("not a character or block device"));
        }
        Ok(DeviceNode {
            host: host.to_path_buf(),
            path: path.to_path_buf(),
            block: kind.is_block_device(),
            major: major(meta.rdev()),
            minor: minor(meta.rdev()),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        })
    }
}

/// Directories of the host's /dev that are filesystems of their own (or ours),
/// skipped when a privileged service gets the host's devices.
const NOT_COPIED_DIRS: &[&str] = &["pts", "shm", "mqueue", "fd"];
/// Nodes of the host's /dev a privileged service gets its own of instead.
const NOT_COPIED_NODES: &[&str] = &["console", "ptmx", "tty"];
/// How deep a privileged service's copy of the host's /dev goes.
const MAX_DEPTH: usize = 4;

/// Everything `setup` takes from the host, opened before anything is mounted
/// (a service without an image mounts its /dev over the host's).
pub(crate) struct HostDevices {
    /// `DEVICES` on the host, bound where mknod is refused.
    defaults: Vec<Source>,
    /// The configured devices, or every host device (privileged), with their nodes.
    nodes: Vec<(DeviceNode, Source)>,
    /// The terminal on stdin, for /dev/console.
    console: Option<Source>,
}

impl HostDevices {
    pub(crate) fn open(spec: &RootfsSpec) -> Result<HostDevices, Error> {
        let defaults = DEVICES
            .iter()
            .map(|(name, _, _)| Source::open("open host device", &Path::new("/dev").join(name)))
            .collect::<Result<_, _>>()?;
        // The configured ones first: a host node at the same path is then skipped.
        let mut nodes = spec.devices.clone();
        if spec.host_devices {
            host_nodes(Path::new("/dev"), 0, &mut nodes)?;
        }
        let nodes = nodes
            .into_iter()
            .map(|node| {
                let source = Source::open("open host device", &node.host)?;
                Ok((node, source))
            })
            .collect::<Result<_, Error>>()?;
        let console = match spec.console {
            true => Some(terminal()?),
            false => None,
        };
        Ok(HostDevices {
            defaults,
            nodes,
            console,
        })
    }
}

/// The terminal on stdin, opened by its path in this mount namespace (the file
/// behind fd 0 belongs to the parent's, which a bind mount cannot take from).
fn terminal() -> Result<Source, Error> {
    let step = "find the terminal";
    let fd0 = Path::new("/proc/self/fd/0");
    let path = std::fs::read_link(fd0).map_err(|e| Error::setup(step, fd0, e))?;
    let same = |meta: std::io::Result<std::fs::Metadata>| meta.map(|m| (m.dev(), m.ino()));
    let (named, open) = (same(std::fs::metadata(&path)), same(std::fs::metadata(fd0)));
    match (named, open) {
        (Ok(named), Ok(open)) if named == open => Source::open("open the terminal", &path),
        _ => Err(Error::setup(
            step,
            &path,
            std::io::Error::other("stdin's terminal is not reachable by its path"),
        )),
    }
}

/// Every device node of the host's /dev that a privileged service gets, at
/// the same path inside (what a privileged service's OCI bundle lists).
pub fn host_device_nodes() -> Result<Vec<DeviceNode>, Error> {
    let mut nodes = Vec::new();
    host_nodes(Path::new("/dev"), 0, &mut nodes)?;
    Ok(nodes)
}

/// Every character and block device below `dir` of the host's /dev, at the same path inside.
fn host_nodes(dir: &Path, depth: usize, nodes: &mut Vec<DeviceNode>) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::setup("list host devices", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::setup("list host devices", dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir()
            && !name.starts_with('.')
            && depth < MAX_DEPTH
            && !NOT_COPIED_DIRS.contains(&name.as_str())
        {
            host_nodes(&path, depth + 1, nodes)?;
        } else if (kind.is_char_device() || kind.is_block_device())
            && !(depth == 0 && NOT_COPIED_NODES.contains(&name.as_str()))
        {
            // A node that went away meanwhile is not worth failing the start for.
            if let Ok(node) = DeviceNode::stat(&path, &path) {
                nodes.push(node);
            }
        }
    }
    Ok(())
}

/// Mounts and fills `/dev` in `root` from what `host` opened.
/// `missing` applies to `/dev` itself; what goes inside is created in our own tmpfs.
pub(crate) fn setup(
    root: &Root,
    missing: Missing,
    spec: &RootfsSpec,
    host: &HostDevices,
) -> Result<(), Error> {
    Target::resolve(root, Path::new("dev"), Kind::Dir, missing)?.mount_fs(
        "mount /dev tmpfs",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_STRICTATIME,
        "mode=755,size=65536k",
    )?;
    for (&(name, major, minor), host) in DEVICES.iter().zip(&host.defaults) {
        let node = DeviceNode {
            host: Path::new("/dev").join(name),
            path: Path::new("/dev").join(name),
            block: false,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        create_node(root, &node, host)?;
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
    if spec.mqueue {
        // The message queues of the service's own ipc namespace.
        Target::resolve(root, Path::new("dev/mqueue"), Kind::Dir, Missing::Create)?.mount_fs(
            "mount /dev/mqueue",
            "mqueue",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            "",
        )?;
    }
    let shown = root.path().join("dev");
    let dev = root
        .open_at(Path::new("dev"), OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|e| Error::setup("open /dev", &shown, e))?;
    for &(name, target) in SYMLINKS {
        symlinkat(target, Some(dev.as_raw_fd()), name)
            .map_err(|e| Error::setup("create symlink", shown.join(name), e))?;
    }
    if let Some(console) = &host.console {
        Target::resolve(root, Path::new("dev/console"), Kind::File, Missing::Create)?.bind(
            root,
            "bind the terminal as",
            console,
            false,
        )?;
    }
    for (node, source) in &host.nodes {
        create_node(root, node, source)?;
    }
    Ok(())
}

/// Creates `node` in the /dev tmpfs (its directories too), owned and with the mode
/// as asked; where mknod is refused (a user namespace), binds the host's node.
/// An existing node (a privileged service's copy of one of ours) is left as it is.
fn create_node(root: &Root, node: &DeviceNode, host: &Source) -> Result<(), Error> {
    let rel = node.path.strip_prefix("/").unwrap_or(&node.path);
    let shown = root.path().join(rel);
    let (parent, name) = root
        .parent_of(rel)
        .map_err(|e| Error::setup("create device", &shown, e))?;
    let (kind, perm) = match node.block {
        true => (SFlag::S_IFBLK, Mode::from_bits_truncate(node.mode)),
        false => (SFlag::S_IFCHR, Mode::from_bits_truncate(node.mode)),
    };
    let dev = makedev(node.major, node.minor);
    match mknodat(Some(parent.as_raw_fd()), name, kind, perm, dev) {
        Ok(()) => {}
        Err(Errno::EEXIST) => return Ok(()),
        // No mknod here (a user namespace): the host's node, bound.
        Err(Errno::EPERM) => {
            return Target::resolve(root, rel, Kind::File, Missing::Create)?.bind(
                root,
                "bind device",
                host,
                false,
            )
        }
        Err(e) => return Err(Error::setup("create device", &shown, e)),
    }
    let fd = Some(parent.as_raw_fd());
    let (uid, gid) = (Uid::from_raw(node.uid), Gid::from_raw(node.gid));
    fchownat(fd, name, Some(uid), Some(gid), AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| Error::setup("chown device", &shown, e))?;
    // After the chown (which clears setuid bits) and past the umask.
    fchmodat(fd, name, perm, FchmodatFlags::FollowSymlink)
        .map_err(|e| Error::setup("create device", &shown, e))
}
