//! `setup_rootfs`: builds a service's root filesystem inside its new mount
//! namespace and switches to it. Runs in the container's setup process, as
//! root, after `exec` (ordinary code is fine here), before our init is exec'd.

use std::fs::{self, DirBuilder};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};
use serde::{Deserialize, Serialize};

use crate::dev::{self, DeviceNode};
use crate::fsroot::Root;
use crate::idmap::{self, Handed, HandedSources};
use crate::mounts::{self, Kind, Missing, Source, Target};
use crate::{procfs, statedir, Error};

/// What `setup_rootfs` builds.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RootfsSpec {
    /// The image's root filesystem directory (see `resolve_image`); None: the host's `/`.
    pub rootfs: Option<PathBuf>,
    /// Directory for the overlay's `upper` and `work` (and `merged`, where it is
    /// mounted); None: the image itself is the root (bind-mounted). Needs an image.
    pub writable_layer: Option<PathBuf>,
    /// Make the root, and every mount below it that came with it, read-only
    /// (the mounts made for the service itself keep their own flags).
    pub readonly: bool,
    /// The supervisor's state directory on the host: wherever it is visible
    /// inside (the host's `/` as root, or a bind of one of its parents), an
    /// empty read-only tmpfs covers it, so that no service reaches the control
    /// socket, the logs or another service's writable layer. A bind mount
    /// whose target is this very path (or whose source is it, or is in it)
    /// names it on purpose and is left visible.
    pub state_dir: PathBuf,
    pub mounts: Vec<BindMount>,
    /// Host devices to create in /dev (`devices:`).
    pub devices: Vec<DeviceNode>,
    /// Every device node of the host's /dev as well (`privileged: true`).
    pub host_devices: bool,
    /// Stdin is a terminal: bind it at /dev/console.
    pub console: bool,
    /// The service has its own ipc namespace: mount its /dev/mqueue.
    pub mqueue: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Host path.
    pub source: PathBuf,
    /// Absolute path inside the service's root filesystem; created if missing
    /// where there is a writable layer, else it must exist.
    pub target: PathBuf,
    pub readonly: bool,
}

/// Sets up the root filesystem described by `spec` and makes it the process's
/// root, with cwd `/`. The process must already be in its own mount namespace
/// (and pid namespace, for /proc to show the service's processes).
///
/// With an image: the root (overlay or bind of the image) is prepared in place,
/// then `pivot_root` into it and the old root detached. Without one (the
/// host's `/`), the same mounts go over the host's own /proc, /dev, /sys and
/// /tmp in this namespace, and there is no pivot.
pub fn setup_rootfs(spec: &RootfsSpec) -> Result<(), Error> {
    setup(spec, None)
}

/// `setup_rootfs` in a user namespace of the process's own: `handed` are the
/// descriptors that `idmap::hand_over` opened for `spec` in the parent.
pub fn setup_rootfs_in_userns(spec: &RootfsSpec, handed: Vec<OwnedFd>) -> Result<(), Error> {
    setup(spec, Some(idmap::take(spec, handed)?))
}

fn setup(spec: &RootfsSpec, handed: Option<(Handed, HandedSources)>) -> Result<(), Error> {
    let (handed, sources) = match handed {
        Some((handed, sources)) => (Some(handed), HostSources::handed(spec, sources)?),
        None => (None, HostSources::open(spec)?),
    };
    // Nothing mounted from here on may propagate to the host (or back).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| Error::setup("make mounts private", "/", e))?;
    // In a user namespace the image and the layer are reached through the
    // descriptors handed over, not by their host paths.
    let (image, layer) = match &handed {
        Some(handed) => (
            handed.attach_image(spec.rootfs.as_deref().unwrap_or(Path::new("/")))?,
            handed.layer(),
        ),
        None => (spec.rootfs.clone(), spec.writable_layer.clone()),
    };
    let new_root = match (&image, &layer) {
        (None, None) => PathBuf::from("/"),
        (None, Some(layer)) => {
            return Err(Error::setup(
                "writable layer",
                layer,
                std::io::Error::other("needs an image"),
            ));
        }
        (Some(image), Some(layer)) => mount_overlay(image, layer, handed.is_some())?,
        // Attached above: already a mount of its own.
        (Some(image), None) if handed.is_some() => image.clone(),
        (Some(image), None) => {
            mount(
                Some(image),
                image,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| Error::setup("bind image", image, e))?;
            image.clone()
        }
    };
    // Mountpoints are only created in a writable layer: the host's / and a
    // shared image must not change.
    let missing = match (&spec.rootfs, &spec.writable_layer) {
        (_, Some(_)) => Missing::Create,
        (Some(_), None) => Missing::Refuse("the image"),
        (None, None) => Missing::Refuse("the host's /"),
    };
    if spec.readonly {
        // Before our own mounts go on it: /dev, /tmp, /proc and the rw binds
        // keep their flags; whatever came with the root (the host's /home,
        // /var, ... for a service without an image) is read-only too.
        mounts::readonly_recursive(&new_root)?;
    }
    let root = Root::open(&new_root)?;
    mount_filesystems(&root, spec, &sources, missing)?;
    drop(root);
    if spec.rootfs.is_some() {
        switch_root(&new_root)?;
    }
    chdir("/").map_err(|e| Error::setup("chdir", "/", e))
}

/// overlayfs with the image as lower dir; returns where it is mounted.
/// `userxattr`: mounted in a user namespace, where overlayfs must keep its
/// own attributes (opaque directories) in `user.` rather than `trusted.` xattrs.
fn mount_overlay(image: &Path, layer: &Path, userxattr: bool) -> Result<PathBuf, Error> {
    let (upper, work, merged) = (
        layer.join("upper"),
        layer.join("work"),
        layer.join("merged"),
    );
    for path in [image, &upper, &work] {
        // overlayfs splits its options on these; there is no escaping them.
        if path.to_str().is_none_or(|p| p.contains([',', ':', '\\'])) {
            return Err(Error::setup(
                "mount overlay",
                path,
                std::io::Error::other("path contains ',', ':' or '\\'"),
            ));
        }
    }
    // The upper dir's root is the container's `/`: same owner and mode as the image's.
    let image_meta = fs::metadata(image).map_err(|e| Error::setup("mount overlay", image, e))?;
    if !upper.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&upper)
            .map_err(|e| Error::setup("create", &upper, e))?;
        std::os::unix::fs::chown(&upper, Some(image_meta.uid()), Some(image_meta.gid()))
            .map_err(|e| Error::setup("create", &upper, e))?;
        fs::set_permissions(
            &upper,
            fs::Permissions::from_mode(image_meta.mode() & 0o7777),
        )
        .map_err(|e| Error::setup("create", &upper, e))?;
    }
    for dir in [&work, &merged] {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::setup("create", dir, e))?;
    }
    let mut data = format!(
        "lowerdir={},upperdir={},workdir={}",
        image.display(),
        upper.display(),
        work.display()
    );
    if userxattr {
        data.push_str(",userxattr");
    }
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| Error::setup("mount overlay", &merged, e))?;
    Ok(merged)
}

/// Everything bound from the host, opened before anything is mounted.
struct HostSources {
    devices: dev::HostDevices,
    hidden: statedir::Hidden,
    sys: Source,
    mounts: Vec<Source>,
}

impl HostSources {
    fn open(spec: &RootfsSpec) -> Result<HostSources, Error> {
        Ok(HostSources {
            devices: dev::HostDevices::open(spec)?,
            hidden: statedir::Hidden::new(&spec.state_dir, spec.rootfs.as_deref(), &spec.mounts),
            sys: Source::open("open host /sys", Path::new("/sys"))?,
            mounts: spec
                .mounts
                .iter()
                .map(|m| Source::open("bind mount source", &m.source))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The sources of a setup in a user namespace: the bind mounts are the
    /// trees the parent handed over.
    fn handed(spec: &RootfsSpec, handed: HandedSources) -> Result<HostSources, Error> {
        let mounts = handed
            .mounts
            .into_iter()
            .zip(&spec.mounts)
            .map(|(tree, bind)| Source::detached("bind mount source", tree, &bind.source))
            .collect::<Result<_, _>>()?;
        Ok(HostSources {
            devices: dev::HostDevices::open(spec)?,
            hidden: statedir::Hidden::new(&spec.state_dir, spec.rootfs.as_deref(), &spec.mounts),
            sys: Source::open("open host /sys", Path::new("/sys"))?,
            mounts,
        })
    }
}

/// /proc, /dev, /sys, /tmp and the configured bind mounts.
fn mount_filesystems(
    root: &Root,
    spec: &RootfsSpec,
    sources: &HostSources,
    missing: Missing,
) -> Result<(), Error> {
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    match Target::resolve(root, Path::new("proc"), Kind::Dir, missing)?.mount_fs(
        "mount proc",
        "proc",
        hardened,
        "",
    ) {
        // The host's own /proc, in the same pid namespace: already the right one.
        Err(e) if spec.rootfs.is_none() && errno(&e) == Some(libc::EBUSY) => {}
        other => other?,
    }
    dev::setup(root, missing, spec, &sources.devices)?;
    let sys = Target::resolve(root, Path::new("sys"), Kind::Dir, missing)?;
    match sys.mount_fs("mount sysfs", "sysfs", hardened | MsFlags::MS_RDONLY, "") {
        Ok(()) => {}
        // Without a network namespace of our own, sysfs is refused (EPERM in a
        // user namespace, EBUSY over the host's /sys): the host's, read-only.
        Err(e) if matches!(errno(&e), Some(libc::EPERM | libc::EBUSY)) => {
            sys.bind(root, "bind /sys", &sources.sys, true)?
        }
        Err(e) => return Err(e),
    }
    procfs::harden(root)?;
    Target::resolve(root, Path::new("tmp"), Kind::Dir, missing)?.mount_fs(
        "mount /tmp",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        "mode=1777",
    )?;
    if let Some(rel) = sources.hidden.in_root() {
        sources.hidden.cover(root, &rel)?;
    }
    for (index, (bind, source)) in spec.mounts.iter().zip(&sources.mounts).enumerate() {
        let kind = if source.is_dir { Kind::Dir } else { Kind::File };
        let rel = bind.target.strip_prefix("/").unwrap_or(&bind.target);
        Target::resolve(root, rel, kind, missing)?.bind(
            root,
            "bind mount",
            source,
            bind.readonly,
        )?;
        if let Some(rel) = sources.hidden.in_bind(index, &bind.target) {
            sources.hidden.cover(root, &rel)?;
        }
    }
    Ok(())
}

fn errno(error: &Error) -> Option<i32> {
    match error {
        Error::Setup { error, .. } => error.raw_os_error(),
        _ => None,
    }
}

/// pivot_root into `new_root` without a put-old directory: the old root ends up
/// stacked on the new one and is detached right away.
fn switch_root(new_root: &Path) -> Result<(), Error> {
    chdir(new_root).map_err(|e| Error::setup("chdir", new_root, e))?;
    pivot_root(".", ".").map_err(|e| Error::setup("pivot_root", new_root, e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| Error::setup("detach old root", new_root, e))
}
