//! A plain directory imported by copying it, like `cp -a`, through `Writer`.

use std::collections::HashMap;
use std::fs::{self, Metadata, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::progress::Counter;
use crate::writer::{Meta, Writer};
use crate::Error;

pub(crate) struct Copy<'w, 'c, 'a> {
    writer: &'w mut Writer,
    counter: &'c Counter<'a>,
    /// (dev, ino) of files with several links, to recreate them as hard links.
    links: HashMap<(u64, u64), std::path::PathBuf>,
    /// The images directory, never copied into itself.
    skip: (u64, u64),
}

impl<'w, 'c, 'a> Copy<'w, 'c, 'a> {
    pub(crate) fn new(
        writer: &'w mut Writer,
        counter: &'c Counter<'a>,
        images_dir: &Path,
    ) -> Result<Self, Error> {
        let meta = fs::metadata(images_dir).map_err(|e| Error::io(images_dir, e))?;
        Ok(Copy {
            writer,
            counter,
            links: HashMap::new(),
            skip: (meta.dev(), meta.ino()),
        })
    }

    /// Copies the tree at `source` to the image root.
    pub(crate) fn run(&mut self, source: &Path) -> Result<(), Error> {
        let meta = fs::symlink_metadata(source).map_err(|e| Error::io(source, e))?;
        self.writer.dir(Path::new(""), &entry_meta(source, &meta))?;
        self.dir(source, Path::new(""))
    }

    fn dir(&mut self, source: &Path, rel: &Path) -> Result<(), Error> {
        let mut entries: Vec<_> = fs::read_dir(source)
            .map_err(|e| Error::io(source, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| Error::io(source, e))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let rel = rel.join(entry.file_name());
            let meta = fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            self.entry(&path, &rel, &meta)?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, rel: &Path, meta: &Metadata) -> Result<(), Error> {
        let kind = meta.file_type();
        if kind.is_dir() {
            if (meta.dev(), meta.ino()) == self.skip {
                return Ok(());
            }
            self.writer.dir(rel, &entry_meta(path, meta))?;
            return self.dir(path, rel);
        }
        if meta.nlink() > 1 && !kind.is_dir() {
            if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                return self.writer.hardlink(rel, &first.clone());
            }
            self.links
                .insert((meta.dev(), meta.ino()), rel.to_path_buf());
        }
        if kind.is_file() {
            let mut file = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            let size = meta.len();
            let mut counted = self.counter.wrap(&mut file);
            self.writer
                .file(rel, &entry_meta(path, meta), &mut counted, Some(size))
        } else if kind.is_symlink() {
            let target = fs::read_link(path).map_err(|e| Error::io(path, e))?;
            self.writer.symlink(rel, &target, &entry_meta(path, meta))
        } else if kind.is_fifo() {
            self.writer.fifo(rel, &entry_meta(path, meta))
        } else if kind.is_char_device() || kind.is_block_device() {
            self.writer.device(rel);
            Ok(())
        } else {
            log::warn!("skipped socket {}", path.display());
            Ok(())
        }
    }
}

/// Ownership, mode, mtime and extended attributes of `path` (not following a symlink).
fn entry_meta(path: &Path, meta: &Metadata) -> Meta {
    let mut xattrs = Vec::new();
    if let Ok(names) = xattr::list(path) {
        for name in names {
            if let Ok(Some(value)) = xattr::get(path, &name) {
                xattrs.push((name, value));
            }
        }
    }
    Meta {
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: (meta.mtime(), u32::try_from(meta.mtime_nsec()).unwrap_or(0)),
        xattrs,
    }
}
