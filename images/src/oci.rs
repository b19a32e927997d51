//! OCI image layouts (`skopeo copy oci:`, `docker save` since Docker 25) and
//! the older `docker save` layout (`manifest.json` listing `ID/layer.tar`),
//! as a directory or a tar: the layers of one manifest applied in order.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::archive_path::normalize;
use crate::compress;
use crate::progress::{Counter, ProgressFn};
use crate::unpack::{self, Kind};
use crate::writer::Writer;
use crate::Error;

/// Top-level names that mark an image layout rather than a root filesystem.
pub(crate) fn is_layout_marker(first_component: &str) -> bool {
    matches!(
        first_component,
        "oci-layout" | "index.json" | "blobs" | "manifest.json" | "repositories"
    ) || is_legacy_layer_id(first_component.trim_end_matches(".json"))
}

fn is_legacy_layer_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn is_layout_dir(dir: &Path) -> bool {
    dir.join("index.json").is_file() || dir.join("manifest.json").is_file()
}

/// Where the files of a layout are read from.
pub(crate) enum Layout {
    Dir(PathBuf),
    /// An uncompressed tar: each regular file's data offset and size.
    Tar {
        path: PathBuf,
        file: File,
        files: HashMap<PathBuf, (u64, u64)>,
    },
}

impl Layout {
    pub(crate) fn tar(path: &Path) -> Result<Layout, Error> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut files = HashMap::new();
        let mut archive = tar::Archive::new(&file);
        let damaged = |e: io::Error| Error::format(path, format!("damaged archive: {e}"));
        for entry in archive.entries_with_seek().map_err(damaged)? {
            let entry = entry.map_err(damaged)?;
            if entry.header().entry_type().is_file() {
                let name = entry.path().map_err(damaged)?;
                if let Ok(rel) = normalize(&name) {
                    files.insert(rel, (entry.raw_file_position(), entry.size()));
                }
            }
        }
        Ok(Layout::Tar {
            path: path.to_path_buf(),
            file,
            files,
        })
    }

    fn describe(&self) -> &Path {
        match self {
            Layout::Dir(dir) => dir,
            Layout::Tar { path, .. } => path,
        }
    }

    fn exists(&self, rel: &Path) -> bool {
        match self {
            Layout::Dir(dir) => dir.join(rel).is_file(),
            Layout::Tar { files, .. } => files.contains_key(rel),
        }
    }

    /// A file of the layout and its size.
    fn open(&self, rel: &Path) -> Result<(Box<dyn Read + '_>, u64), Error> {
        match self {
            Layout::Dir(dir) => {
                let path = dir.join(rel);
                let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
                let size = file.metadata().map_err(|e| Error::io(&path, e))?.len();
                Ok((Box::new(file), size))
            }
            Layout::Tar { path, file, files } => {
                let &(offset, size) = files
                    .get(rel)
                    .ok_or_else(|| Error::format(path, format!("{} is missing", rel.display())))?;
                Ok((
                    Box::new(Slice {
                        file,
                        pos: offset,
                        end: offset + size,
                    }),
                    size,
                ))
            }
        }
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, rel: &Path) -> Result<T, Error> {
        let (mut reader, _) = self.open(rel)?;
        let mut text = Vec::new();
        reader
            .read_to_end(&mut text)
            .map_err(|e| Error::io(self.describe().join(rel), e))?;
        serde_json::from_slice(&text).map_err(|e| Error::format(self.describe().join(rel), e))
    }
}

/// Applies the image's layers, bottom first, into `writer`.
pub(crate) fn apply(
    layout: &Layout,
    writer: &mut Writer,
    progress: &ProgressFn<'_>,
) -> Result<(), Error> {
    let layers = if layout.exists(Path::new("index.json")) {
        oci_layers(layout)?
    } else {
        docker_layers(layout)?
    };
    let mut sizes = Vec::new();
    for layer in &layers {
        sizes.push(layout.open(layer)?.1);
    }
    let counter = Counter::new(progress, Some(sizes.iter().sum()));
    for layer in &layers {
        let (reader, _) = layout.open(layer)?;
        let mut input = BufReader::new(counter.wrap(reader));
        let where_ = layout.describe().join(layer);
        let compression = compress::detect(&mut input).map_err(|e| Error::format(&where_, e))?;
        let stream =
            compress::decoder(input, compression).map_err(|e| Error::format(&where_, e))?;
        writer.start_layer();
        unpack::unpack(stream, writer, Kind::Layer, &where_)?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

/// A manifest, or (for a multi-platform image) another index.
#[derive(Deserialize)]
struct ManifestOrIndex {
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

fn oci_layers(layout: &Layout) -> Result<Vec<PathBuf>, Error> {
    let index: Index = layout.read_json(Path::new("index.json"))?;
    let mut manifests = index.manifests;
    // Nested indexes (multi-platform images) are followed a few levels at most.
    for _ in 0..4 {
        let chosen = choose_manifest(&manifests).ok_or_else(|| {
            Error::format(
                layout.describe(),
                "index.json lists no manifest for this platform",
            )
        })?;
        let blob = blob_path(&chosen.digest).ok_or_else(|| {
            Error::format(
                layout.describe(),
                format!("invalid digest {:?}", chosen.digest),
            )
        })?;
        let manifest: ManifestOrIndex = layout.read_json(&blob)?;
        match (manifest.layers, manifest.manifests) {
            (Some(layers), _) => {
                return layers
                    .iter()
                    .map(|layer| {
                        blob_path(&layer.digest).ok_or_else(|| {
                            Error::format(
                                layout.describe(),
                                format!("invalid layer digest {:?}", layer.digest),
                            )
                        })
                    })
                    .collect();
            }
            (None, Some(nested)) => manifests = nested,
            (None, None) => {
                return Err(Error::format(
                    layout.describe().join(blob),
                    "neither layers nor manifests",
                ))
            }
        }
    }
    Err(Error::format(
        layout.describe(),
        "image indexes nested too deeply",
    ))
}

/// The manifest for this machine (linux, our architecture), else the only
/// one; attestation manifests (platform unknown) are never chosen.
fn choose_manifest(manifests: &[Descriptor]) -> Option<&Descriptor> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let usable: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| !d.media_type.contains("index") || d.platform.is_none())
        .filter(|d| d.platform.as_ref().is_none_or(|p| p.os != "unknown"))
        .collect();
    usable
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .or_else(|| usable.first())
        .copied()
}

/// `blobs/ALG/HEX` for a digest `ALG:HEX`; None for anything that is not a
/// plain digest (it names a path, so it must not contain `/` or `..`).
fn blob_path(digest: &str) -> Option<PathBuf> {
    let (alg, hex) = digest.split_once(':')?;
    let alg_ok = !alg.is_empty()
        && alg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+._-".contains(&b));
    let hex_ok = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    (alg_ok && hex_ok && alg != "." && alg != "..").then(|| Path::new("blobs").join(alg).join(hex))
}

#[derive(Deserialize)]
struct DockerManifest {
    #[serde(rename = "Layers")]
    layers: Vec<PathBuf>,
}

fn docker_layers(layout: &Layout) -> Result<Vec<PathBuf>, Error> {
    let manifests: Vec<DockerManifest> = layout.read_json(Path::new("manifest.json"))?;
    let manifest = manifests
        .into_iter()
        .next()
        .ok_or_else(|| Error::format(layout.describe(), "manifest.json lists no image"))?;
    manifest
        .layers
        .iter()
        .map(|layer| {
            normalize(layer).map_err(|reason| {
                Error::format(
                    layout.describe(),
                    format!("layer {}: {reason}", layer.display()),
                )
            })
        })
        .collect()
}

/// A byte range of a file, read with pread so that several can share the file.
struct Slice<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min((self.end - self.pos).try_into().unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive is truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_cannot_name_other_paths() {
        assert_eq!(
            blob_path("sha256:abc123").unwrap(),
            Path::new("blobs/sha256/abc123")
        );
        assert!(blob_path("sha256:../../etc/passwd").is_none());
        assert!(blob_path("..:abc").is_none());
        assert!(blob_path("sha256/x:abc").is_none());
        assert!(blob_path("abc").is_none());
    }
}
