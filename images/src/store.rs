//! The images directory: `NAME/rootfs` (the root filesystem) and
//! `NAME/image.json` (where it came from) per image. An image appears under
//! its name only complete: it is built in `.tmp-NAME-XXXXXX` and renamed.
//! Leftovers of a killed import are removed by the next import, which can
//! tell them from a running one's by the shared lock on `.lock` every import holds.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use rootfs::Root;
use serde::{Deserialize, Serialize};

use crate::copy::Copy;
use crate::progress::{Counter, ProgressFn};
use crate::unpack::{self, Kind};
use crate::writer::Writer;
use crate::{busybox, compress, oci, sys, Error};

const ROOTFS: &str = "rootfs";
const METADATA: &str = "image.json";
const LOCK: &str = ".lock";
const TMP_PREFIX: &str = ".tmp-";
/// One file per lease, `IMAGE.PID.N`, saying who holds it, locked while held.
const LEASES: &str = ".leases";

/// What `image ls` shows; stored as `NAME/image.json`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub name: String,
    /// The file or directory it was imported from.
    pub source: String,
    /// `docker-export`, `oci-layout`, `directory` or `busybox`.
    pub format: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// Disk usage of the root filesystem, bytes.
    pub size: u64,
}

/// Image names follow the config file's rule ([`config::is_image_name`]):
/// never hidden, never a path.
pub fn validate_name(name: &str) -> Result<(), Error> {
    if config::is_image_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_string()))
    }
}

/// The root filesystem directory of a service's image.
pub fn resolve_image(images_dir: &Path, image: &config::ImageRef) -> Result<PathBuf, Error> {
    match image {
        config::ImageRef::Named(name) => {
            validate_name(name)?;
            let rootfs = images_dir.join(name).join(ROOTFS);
            if rootfs.is_dir() {
                Ok(rootfs)
            } else {
                Err(Error::NotFound {
                    name: name.clone(),
                    dir: images_dir.to_path_buf(),
                })
            }
        }
        config::ImageRef::Path(path) if path.is_dir() => Ok(path.clone()),
        config::ImageRef::Path(path) => {
            Err(Error::io(path, io::Error::from(io::ErrorKind::NotFound)))
        }
    }
}

/// Imports `source` (a tarball, plain, gzip or zstd; an OCI or docker-save
/// layout, as a directory or tarball; or a plain directory) as image `name`.
/// A tarball may also be a pipe (`/dev/stdin`), read once. An image of the
/// same name is an error, unless `existing` says to replace it.
pub fn import(
    images_dir: &Path,
    name: &str,
    source: &Path,
    existing: Existing,
    progress: &ProgressFn<'_>,
) -> Result<ImageInfo, Error> {
    let meta = fs::metadata(source).map_err(|e| Error::io(source, e))?;
    let source_text = fs::canonicalize(source)
        .unwrap_or_else(|_| source.to_path_buf())
        .display()
        .to_string();
    if meta.is_dir() && oci::is_layout_dir(source) {
        return create(images_dir, name, &source_text, existing, |_, writer| {
            oci::apply(&oci::Layout::Dir(source.to_path_buf()), writer, progress)
                .map(|()| "oci-layout")
        });
    }
    if meta.is_dir() {
        return create(images_dir, name, &source_text, existing, |_, writer| {
            let counter = Counter::new(progress, None);
            Copy::new(writer, &counter, images_dir)?
                .run(source)
                .map(|()| "directory")
        });
    }
    create(images_dir, name, &source_text, existing, |tmp, writer| {
        let file = File::open(source).map_err(|e| Error::io(source, e))?;
        let counter = Counter::new(progress, meta.is_file().then_some(meta.len()));
        let mut input = BufReader::new(counter.wrap(file));
        let compression = compress::detect(&mut input).map_err(|e| Error::format(source, e))?;
        let stream = compress::decoder(input, compression).map_err(|e| Error::format(source, e))?;
        // An export is unpacked as it streams by; the first entry tells a layout apart.
        let is_layout = |path: &Path| {
            let first = path.components().find_map(|c| match c {
                std::path::Component::Normal(name) => name.to_str(),
                _ => None,
            });
            oci::is_layout_marker(first.unwrap_or(""))
        };
        if unpack::unpack_unless(stream, writer, Kind::Rootfs, source, &is_layout)? {
            return Ok("docker-export");
        }
        if !meta.is_file() {
            return Err(Error::format(
                source,
                "an image layout must be a file or directory, not a stream",
            ));
        }
        let layout = if compression == compress::Compression::None {
            oci::Layout::tar(source)?
        } else {
            // Layers are read in manifest order, not archive order: decompress to seek.
            let spool = tmp.join("layout.tar");
            let mut out = File::create(&spool).map_err(|e| Error::io(&spool, e))?;
            let file = File::open(source).map_err(|e| Error::io(source, e))?;
            let mut stream = compress::decoder(BufReader::new(file), compression)
                .map_err(|e| Error::format(source, e))?;
            io::copy(&mut stream, &mut out).map_err(|e| Error::format(source, e))?;
            oci::Layout::tar(&spool)?
        };
        oci::apply(&layout, writer, progress).map(|()| "oci-layout")
    })
}

/// Builds image `name` from the host's static busybox (see `busybox::build`).
pub fn build_busybox(images_dir: &Path, name: &str) -> Result<ImageInfo, Error> {
    let source = busybox::find()?.display().to_string();
    create(images_dir, name, &source, Existing::Refuse, |_, writer| {
        busybox::build(writer.root_path()).map(|()| "busybox")
    })
}

/// What an import does when an image of the same name exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Fail with `Error::Exists`.
    Refuse,
    /// Swap the new image in, atomically, and remove the old one; refused
    /// while a service uses it.
    Replace,
}

/// Creates image `name`: `fill` writes the root filesystem (it may keep
/// scratch files in the temporary directory it is given) and returns the
/// source's format, then the complete image is renamed into place.
fn create(
    images_dir: &Path,
    name: &str,
    source: &str,
    existing: Existing,
    fill: impl FnOnce(&Path, &mut Writer) -> Result<&'static str, Error>,
) -> Result<ImageInfo, Error> {
    validate_name(name)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(images_dir)
        .map_err(|e| Error::io(images_dir, e))?;
    let _running = start_import(images_dir)?;
    let target = images_dir.join(name);
    // The old image, locked against new leases from here to the swap.
    let replaced = match (fs::symlink_metadata(&target).is_ok(), existing) {
        (false, _) => None,
        (true, Existing::Refuse) => {
            return Err(Error::Exists {
                name: name.to_string(),
                dir: images_dir.to_path_buf(),
            })
        }
        (true, Existing::Replace) => Some(lock_unused(images_dir, name)?),
    };
    // Mode 0700: host users cannot reach the image's set-id programs.
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{TMP_PREFIX}{name}-"))
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir_in(images_dir)
        .map_err(|e| Error::io(images_dir, e))?;
    let rootfs = tmp.path().join(ROOTFS);
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&rootfs)
        .map_err(|e| Error::io(&rootfs, e))?;
    let mut writer = Writer::new(Root::open(&rootfs)?);
    let format = fill(tmp.path(), &mut writer)?;
    let root = writer.finish()?;
    let _ = fs::remove_file(tmp.path().join("layout.tar"));
    let info = ImageInfo {
        name: name.to_string(),
        source: source.to_string(),
        format: format.to_string(),
        created: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        size: disk_usage(&rootfs)?,
    };
    let meta_path = tmp.path().join(METADATA);
    let json = serde_json::to_vec_pretty(&info).expect("ImageInfo serializes");
    fs::write(&meta_path, json).map_err(|e| Error::io(&meta_path, e))?;
    // Durable before it becomes visible: a crash never leaves a named image with missing data.
    nix::unistd::syncfs(root.fd().as_raw_fd()).map_err(|e| Error::io(&rootfs, e))?;
    if replaced.is_some() {
        // One rename swaps them: the name never lacks an image. The old one,
        // now at the temporary path, goes with `tmp`.
        sys::rename_exchange(tmp.path(), &target).map_err(|e| Error::io(&target, e))?;
        return Ok(info);
    }
    match sys::rename_noreplace(tmp.path(), &target) {
        Ok(()) => {
            let _ = tmp.keep();
            Ok(info)
        }
        Err(Errno::EEXIST | Errno::ENOTEMPTY) => Err(Error::Exists {
            name: name.to_string(),
            dir: images_dir.to_path_buf(),
        }),
        Err(e) => Err(Error::io(&target, e)),
    }
}

/// Takes the images directory's lock shared for the duration of an import;
/// when no other import runs (the lock is free), first removes what killed
/// imports and removals left behind.
fn start_import(images_dir: &Path) -> Result<Flock<File>, Error> {
    let path = images_dir.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(exclusive) => {
            remove_leftovers(images_dir);
            exclusive.unlock().map_err(|(_, e)| Error::io(&path, e))?
        }
        Err((file, Errno::EWOULDBLOCK)) => file,
        Err((_, e)) => return Err(Error::io(&path, e)),
    };
    Flock::lock(file, FlockArg::LockShared).map_err(|(_, e)| Error::io(&path, e))
}

fn remove_leftovers(images_dir: &Path) {
    let Ok(entries) = fs::read_dir(images_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            log::info!("removing leftover {}", entry.path().display());
            if let Err(e) = fs::remove_dir_all(entry.path()) {
                log::warn!("{}: {e}", entry.path().display());
            }
        }
    }
}

/// Bytes the tree uses on disk, each hard-linked file counted once.
fn disk_usage(root: &Path) -> Result<u64, Error> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let meta = entry.metadata().map_err(|e| Error::io(entry.path(), e))?;
            if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            total += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(total)
}

/// The images in `images_dir`, by name; a missing directory has none.
pub fn list(images_dir: &Path) -> Result<Vec<ImageInfo>, Error> {
    let entries = match fs::read_dir(images_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(images_dir, e)),
    };
    let mut images = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(images_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if validate_name(&name).is_err() {
            continue;
        }
        let meta_path = entry.path().join(METADATA);
        match fs::read(&meta_path) {
            Ok(text) => images
                .push(serde_json::from_slice(&text).map_err(|e| Error::format(&meta_path, e))?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&meta_path, e)),
        }
    }
    images.sort_by(|a: &ImageInfo, b| a.name.cmp(&b.name));
    Ok(images)
}

/// Removes image `name`; refused while a service holds a lease on it.
pub fn remove(images_dir: &Path, name: &str) -> Result<(), Error> {
    validate_name(name)?;
    let _running = start_import(images_dir)?;
    let path = images_dir.join(name);
    let locked = lock_unused(images_dir, name)?;
    // Renamed first, so an interrupted removal leaves a leftover, never half an image.
    let doomed = images_dir.join(format!("{TMP_PREFIX}rm-{name}-{}", std::process::id()));
    sys::rename_noreplace(&path, &doomed).map_err(|e| Error::io(&path, e))?;
    fs::remove_dir_all(&doomed).map_err(|e| Error::io(&doomed, e))?;
    // No lease was live (we hold the lock): whatever records remain are dead
    // holders', removed by the look.
    lease_holders(images_dir, name);
    drop(locked);
    Ok(())
}

/// Image `name`'s directory locked exclusively: no service holds a lease on
/// it, and none can take one while the lock is held.
fn lock_unused(images_dir: &Path, name: &str) -> Result<Flock<File>, Error> {
    let dir = open_image_dir(images_dir, name)?;
    match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => Ok(locked),
        Err((_, Errno::EWOULDBLOCK)) => Err(Error::InUse {
            name: name.to_string(),
            users: lease_holders(images_dir, name),
        }),
        Err((_, e)) => Err(Error::io(images_dir.join(name), e)),
    }
}

fn open_image_dir(images_dir: &Path, name: &str) -> Result<File, Error> {
    let path = images_dir.join(name);
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(dir) => Ok(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound {
            name: name.to_string(),
            dir: images_dir.to_path_buf(),
        }),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// A running service's hold on its image: `remove` is refused while any lease
/// exists. Released on drop (or when the holding process dies).
#[derive(Debug)]
pub struct ImageLease {
    _lock: Flock<File>,
    rootfs: PathBuf,
    _record: Option<LeaseRecord>,
}

/// The file that names a lease's holder, locked as long as the lease lives:
/// a file whose lock is free is a dead holder's, and is removed when found.
#[derive(Debug)]
struct LeaseRecord {
    path: PathBuf,
    _lock: Flock<File>,
}

impl Drop for LeaseRecord {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes the record of a lease on `name` held by `holder`. Best effort: a
/// lease without a record still protects the image, only unnamed.
fn record_lease(images_dir: &Path, name: &str, holder: &str) -> Option<LeaseRecord> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let dir = images_dir.join(LEASES);
    fs::DirBuilder::new().mode(0o700).create(&dir).ok();
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{name}.{}.{n}", std::process::id()));
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .ok()?;
    let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()?;
    io::Write::write_all(&mut *lock, holder.as_bytes()).ok()?;
    Some(LeaseRecord { path, _lock: lock })
}

/// Who holds leases on `name`, from their records; dead holders' records
/// are removed on the way.
fn lease_holders(images_dir: &Path, name: &str) -> Vec<String> {
    let dir = images_dir.join(LEASES);
    let prefix = format!("{name}.");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut holders = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        // `IMAGE.PID.N`: an image name may hold dots, the rest may not.
        if rest.split('.').count() != 2 {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Err((_, Errno::EWOULDBLOCK)) => {
                if let Ok(holder) = fs::read_to_string(entry.path()) {
                    holders.push(holder);
                }
            }
            _ => {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    holders.sort();
    holders.dedup();
    holders
}

impl ImageLease {
    /// The image's root filesystem directory.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }
}

/// Takes a lease on image `name` (a shared lock on its directory) for
/// `holder` ("service web (state_dir /run/supervisor)"), whom a refused
/// `remove` names.
pub fn lease(images_dir: &Path, name: &str, holder: &str) -> Result<ImageLease, Error> {
    validate_name(name)?;
    let path = images_dir.join(name);
    let dir = open_image_dir(images_dir, name)?;
    let lock = match Flock::lock(dir, FlockArg::LockSharedNonblock) {
        Ok(lock) => lock,
        Err((_, Errno::EWOULDBLOCK)) => {
            return Err(Error::BeingRemoved {
                name: name.to_string(),
            })
        }
        Err((_, e)) => return Err(Error::io(&path, e)),
    };
    // The directory may have been renamed away by a removal that held the lock just before us.
    let held = lock.metadata().map_err(|e| Error::io(&path, e))?;
    match fs::metadata(&path) {
        Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {}
        _ => {
            return Err(Error::NotFound {
                name: name.to_string(),
                dir: images_dir.to_path_buf(),
            })
        }
    }
    Ok(ImageLease {
        _lock: lock,
        rootfs: path.join(ROOTFS),
        _record: record_lease(images_dir, name, holder),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["busybox", "debian-12", "a", "x.y_z"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".tmp-x", "a/b", "..", "a b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
