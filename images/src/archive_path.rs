//! Paths found in archives, made relative to the image root.

use std::path::{Component, Path, PathBuf};

/// Turns an archive path into one relative to the image root: `/` and `.`
/// components are dropped (an absolute path is confined to the image, as
/// GNU tar does), and `..` is refused.
pub(crate) fn normalize(path: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err("refused: path contains '..'"),
            Component::Normal(name) => out.push(name),
            Component::Prefix(_) => return Err("refused: path has a prefix"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_confines_and_refuses() {
        assert_eq!(
            normalize(Path::new("./etc/passwd")).unwrap(),
            Path::new("etc/passwd")
        );
        assert_eq!(
            normalize(Path::new("/etc//passwd")).unwrap(),
            Path::new("etc/passwd")
        );
        assert_eq!(normalize(Path::new("./")).unwrap(), Path::new(""));
        assert!(normalize(Path::new("a/../../etc")).is_err());
        assert!(normalize(Path::new("..")).is_err());
    }
}
