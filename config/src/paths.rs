//! Paths in the file: host paths (relative ones resolve against the file's
//! directory) and paths inside a service's root filesystem.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::read::string;
use crate::tree::Node;

/// A host path that must exist now, made absolute and free of symlinks.
/// `want_dir`: it must be a directory.
pub fn existing(dir: &Path, text: &str, want_dir: bool) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let path = dir.join(text);
    let metadata =
        std::fs::metadata(&path).map_err(|err| format!("`{text}`: {}", io_message(&err)))?;
    if want_dir && !metadata.is_dir() {
        return Err(format!("`{text}` is not a directory"));
    }
    path.canonicalize()
        .map_err(|err| format!("`{text}`: {}", io_message(&err)))
}

/// A host directory that need not exist yet (the daemon creates it).
pub fn host_dir(dir: &Path) -> impl Fn(&Node) -> Result<PathBuf, String> + '_ {
    move |node| {
        let text = string(node)?;
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        Ok(dir.join(text))
    }
}

/// An absolute path inside the service's root filesystem, with no `..`
/// (which could lead out of it).
pub fn inside(node: &Node) -> Result<PathBuf, String> {
    let text = string(node)?;
    let path = PathBuf::from(&text);
    if !path.is_absolute() {
        return Err(format!("`{text}` must be an absolute path"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("`{text}` must not contain `..`"));
    }
    Ok(path)
}

/// The error without its "(os error N)" suffix.
fn io_message(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Mark;
    use crate::tree::Value;

    fn node(text: &str) -> Node {
        Node {
            mark: Mark::START,
            value: Value::Scalar(text.to_owned()),
        }
    }

    #[test]
    fn existing_paths_resolve_against_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        let root = dir.path().canonicalize().unwrap();
        assert_eq!(
            existing(dir.path(), "./rootfs", true),
            Ok(root.join("rootfs"))
        );
        assert_eq!(existing(dir.path(), "file", false), Ok(root.join("file")));
        assert_eq!(
            existing(dir.path(), "file", true),
            Err("`file` is not a directory".to_owned())
        );
        assert_eq!(
            existing(dir.path(), "nope", false),
            Err("`nope`: No such file or directory".to_owned())
        );
        assert_eq!(existing(dir.path(), "/", true), Ok(PathBuf::from("/")));
    }

    #[test]
    fn inside_paths_are_absolute_without_dotdot() {
        assert_eq!(inside(&node("/www")), Ok(PathBuf::from("/www")));
        assert!(inside(&node("www")).unwrap_err().contains("absolute"));
        assert!(inside(&node("/a/../../etc")).unwrap_err().contains(".."));
    }
}
