//! Tar archives (an exported root filesystem, or one layer of an OCI image)
//! written into the image through `Writer`.

use std::cell::Cell;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tar::EntryType;

use crate::archive_path::normalize;
use crate::writer::{Meta, Writer};
use crate::Error;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// How the entries are applied: a layer honours whiteouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Rootfs,
    Layer,
}

/// Unpacks the tar stream `input` (already decompressed) into `writer`.
/// `source` names the archive in errors.
pub(crate) fn unpack(
    input: impl Read,
    writer: &mut Writer,
    kind: Kind,
    source: &Path,
) -> Result<(), Error> {
    unpack_unless(input, writer, kind, source, &|_| false).map(drop)
}

/// Like `unpack`, but when the first entry's path (after any `./`) satisfies
/// `stop`, writes nothing and returns false (the archive is something else,
/// e.g. an image layout).
pub(crate) fn unpack_unless(
    input: impl Read,
    writer: &mut Writer,
    kind: Kind,
    source: &Path,
    stop: &dyn Fn(&Path) -> bool,
) -> Result<bool, Error> {
    let hit_eof = Rc::new(Cell::new(false));
    let mut archive = tar::Archive::new(EofFlag {
        inner: input,
        hit_eof: hit_eof.clone(),
    });
    let damaged = |e: io::Error| Error::format(source, format!("damaged archive: {e}"));
    let mut decided = false;
    let mut seen_any = false;
    // A `./` entry (the root's metadata) is held back until the decision.
    let mut root_meta = None;
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = match entry {
            Ok(entry) => entry,
            // The tar crate's message would quote the garbage it found.
            Err(e) if !seen_any && e.kind() == io::ErrorKind::Other => {
                return Err(Error::format(
                    source,
                    "not a tar archive (plain, gzip or zstd), image layout or directory",
                ))
            }
            Err(e) => return Err(damaged(e)),
        };
        seen_any = true;
        if !decided {
            let path = entry.path().map_err(damaged)?.into_owned();
            if normalize(&path).is_ok_and(|rel| rel.as_os_str().is_empty()) {
                root_meta = Some(entry_meta(&mut entry).map_err(|e| Error::entry(&path, e))?);
                continue;
            }
            if stop(&path) {
                return Ok(false);
            }
            decided = true;
            if let Some(meta) = root_meta.take() {
                writer.dir(Path::new(""), &meta)?;
            }
        }
        unpack_entry(&mut entry, writer, kind)?;
    }
    if !decided {
        return Err(Error::format(source, "empty archive"));
    }
    // A complete archive ends with zero blocks; running out of input before them means truncation.
    if hit_eof.get() {
        return Err(Error::format(
            source,
            "archive is truncated (no end-of-archive marker)",
        ));
    }
    Ok(true)
}

fn unpack_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    writer: &mut Writer,
    kind: Kind,
) -> Result<(), Error> {
    let raw_path = entry.path().map_err(|e| Error::entry("?", e))?.into_owned();
    let rel = normalize(&raw_path).map_err(|reason| Error::entry(&raw_path, reason))?;
    let entry_type = entry.header().entry_type();
    if kind == Kind::Layer {
        if let Some(name) = rel.file_name().and_then(OsStr::to_str) {
            if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
                let dir = rel.parent().unwrap_or(Path::new(""));
                return if name == OPAQUE_WHITEOUT {
                    writer.opaque(dir)
                } else if hidden.starts_with(WHITEOUT_PREFIX) {
                    // Other `.wh..wh.` names are overlay bookkeeping, not content.
                    Ok(())
                } else {
                    writer.whiteout(&dir.join(hidden))
                };
            }
        }
    }
    let meta = entry_meta(entry).map_err(|e| Error::entry(&rel, e))?;
    match entry_type {
        EntryType::Directory => writer.dir(&rel, &meta),
        EntryType::Regular | EntryType::Continuous => {
            let size = entry.size();
            writer.file(&rel, &meta, entry, Some(size))
        }
        EntryType::GNUSparse => writer.file(&rel, &meta, entry, None),
        EntryType::Symlink => {
            let target = link_name(entry, &rel)?;
            writer.symlink(&rel, &target, &meta)
        }
        EntryType::Link => {
            let target = link_name(entry, &rel)?;
            let target = normalize(&target).map_err(|reason| {
                Error::entry(&rel, format!("hard link to {}: {reason}", target.display()))
            })?;
            writer.hardlink(&rel, &target)
        }
        EntryType::Fifo => writer.fifo(&rel, &meta),
        EntryType::Char | EntryType::Block => {
            writer.device(&rel);
            Ok(())
        }
        EntryType::XGlobalHeader => Ok(()),
        other => {
            log::warn!(
                "skipped /{}: unsupported tar entry type {other:?}",
                rel.display()
            );
            Ok(())
        }
    }
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, rel: &Path) -> Result<PathBuf, Error> {
    match entry.link_name() {
        Ok(Some(target)) => Ok(target.into_owned()),
        Ok(None) => Err(Error::entry(rel, "link without a target")),
        Err(e) => Err(Error::entry(rel, e)),
    }
}

/// The header's metadata, overridden by PAX records (large ids, precise
/// mtime) and with the `SCHILY.xattr.*` extended attributes.
fn entry_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let header = entry.header();
    let mut meta = Meta {
        mode: header.mode()?,
        uid: u32::try_from(header.uid()?).map_err(io::Error::other)?,
        gid: u32::try_from(header.gid()?).map_err(io::Error::other)?,
        mtime: (i64::try_from(header.mtime()?).map_err(io::Error::other)?, 0),
        xattrs: Vec::new(),
    };
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(meta);
    };
    for extension in extensions {
        let extension = extension?;
        let key = extension.key_bytes();
        let value = extension.value_bytes();
        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
            meta.xattrs
                .push((OsStr::from_bytes(name).to_os_string(), value.to_vec()));
            continue;
        }
        let text = std::str::from_utf8(value).map_err(io::Error::other)?;
        match key {
            b"uid" => meta.uid = text.parse().map_err(io::Error::other)?,
            b"gid" => meta.gid = text.parse().map_err(io::Error::other)?,
            b"mtime" => meta.mtime = parse_pax_time(text)?,
            _ => {}
        }
    }
    Ok(meta)
}

/// A PAX time: decimal seconds with an optional fraction, e.g. `1700000000.123456789`.
fn parse_pax_time(text: &str) -> io::Result<(i64, u32)> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().map_err(io::Error::other)?;
    let digits: String = frac.chars().take(9).collect();
    let nanos = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().map_err(io::Error::other)?
    };
    Ok((secs, nanos))
}

/// Records whether the inner reader ran dry: tar stops at the end-of-archive
/// blocks without reaching the end of its input, so this means truncation.
struct EofFlag<R> {
    inner: R,
    hit_eof: Rc<Cell<bool>>,
}

impl<R: Read> Read for EofFlag<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.hit_eof.set(true);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time("1700000000").unwrap(), (1700000000, 0));
        assert_eq!(
            parse_pax_time("1700000000.5").unwrap(),
            (1700000000, 500_000_000)
        );
        assert!(parse_pax_time("x").is_err());
    }
}
