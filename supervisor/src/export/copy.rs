//! The bundle's root filesystem: a plain copy of the service's image (files,
//! directories, symbolic links, device nodes, fifos; owners, modes and
//! modification times kept; hard links inside the image kept as hard links).
//! A copy rather than hard links to the image's files: a container whose root
//! is writable would otherwise change the image itself. With a user namespace
//! every owner is moved into the service's range of host ids, as the runtime
//! maps them (runc 1.1 has no idmapped root).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::sys::stat::{mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

pub struct Copier {
    /// Added to every owner's uid and gid.
    shift: u32,
    /// (dev, ino) of files with several links: where the first was copied to.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Copier {
    pub fn new(shift: u32) -> Copier {
        Copier {
            shift,
            links: HashMap::new(),
        }
    }

    /// Copies the tree at `source` into the existing directory `target`.
    pub fn copy_tree(&mut self, source: &Path, target: &Path) -> anyhow::Result<()> {
        let meta =
            fs::symlink_metadata(source).with_context(|| format!("read {}", source.display()))?;
        self.copy_dir(source, target)?;
        self.finish(target, &meta)
    }

    fn copy_dir(&mut self, source: &Path, target: &Path) -> anyhow::Result<()> {
        let entries = fs::read_dir(source).with_context(|| format!("read {}", source.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("read {}", source.display()))?;
            let from = entry.path();
            let to = target.join(entry.file_name());
            self.copy_entry(&from, &to)
                .with_context(|| format!("copy {}", from.display()))?;
        }
        Ok(())
    }

    fn copy_entry(&mut self, from: &Path, to: &Path) -> anyhow::Result<()> {
        let meta = fs::symlink_metadata(from)?;
        let kind = meta.file_type();
        if !kind.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                fs::hard_link(first, to)?;
                return Ok(());
            }
            self.links.insert(key, to.to_path_buf());
        }
        if kind.is_dir() {
            fs::create_dir(to)?;
            self.copy_dir(from, to)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
        } else if kind.is_file() {
            fs::copy(from, to)?;
        } else {
            let node = if kind.is_char_device() {
                SFlag::S_IFCHR
            } else if kind.is_block_device() {
                SFlag::S_IFBLK
            } else if kind.is_fifo() {
                SFlag::S_IFIFO
            } else {
                // A socket is made by whoever listens on it: nothing to copy.
                return Ok(());
            };
            mknod(to, node, Mode::from_bits_truncate(0o600), meta.rdev())?;
        }
        self.finish(to, &meta)
    }

    /// Owner (shifted), then mode (a change of owner clears set-id bits), then times.
    fn finish(&self, path: &Path, meta: &fs::Metadata) -> anyhow::Result<()> {
        let shifted = |id: u32| {
            id.checked_add(self.shift)
                .with_context(|| format!("{}: owner {id} beyond the id range", path.display()))
        };
        std::os::unix::fs::lchown(path, Some(shifted(meta.uid())?), Some(shifted(meta.gid())?))
            .with_context(|| format!("chown {}", path.display()))?;
        if !meta.file_type().is_symlink() {
            fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .with_context(|| format!("chmod {}", path.display()))?;
        }
        let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
        let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
        utimensat(None, path, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
            .with_context(|| format!("set the times of {}", path.display()))?;
        Ok(())
    }
}
