//! Reading and writing cgroup files, with errors that name the file and the operation.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::Error;

pub(crate) fn read(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|e| Error::io("read", path, e))
}

/// Reads a file that may be absent on this kernel or host: None then.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// One write(2) to an existing file: cgroup files take each write as one command,
/// and must never be created (kernfs refuses O_CREAT with a misleading error).
pub(crate) fn write(path: &Path, value: &str) -> Result<(), Error> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("write", path, e))?;
    file.write_all(value.as_bytes())
        .map_err(|e| Error::io("write", path, e))
}

/// Writes a limit file whose absence means the host lacks a feature: the error then
/// says which (`lacking`) instead of "No such file or directory".
pub(crate) fn write_or_lacking(path: &Path, value: &str, lacking: &str) -> Result<(), Error> {
    write(path, value).map_err(|e| {
        if e.is_not_found() && path.parent().is_some_and(Path::is_dir) {
            Error::Unsupported(format!("{}: no such file ({lacking})", path.display()))
        } else {
            e
        }
    })
}

/// Creates `path` and any missing level above it, remembering which levels this
/// process created: only those may be removed again as "ours".
pub(crate) fn mkdir_all(path: &Path) -> Result<(), Error> {
    let missing: Vec<&Path> = path.ancestors().take_while(|dir| !dir.exists()).collect();
    for dir in missing.into_iter().rev() {
        match fs::create_dir(dir) {
            Ok(()) => {
                created()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(dir.to_path_buf());
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("mkdir", dir, e)),
        }
    }
    Ok(())
}

/// Whether this process created `dir` (see `mkdir_all`).
pub(crate) fn created_here(dir: &Path) -> bool {
    created()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(dir)
}

fn created() -> &'static Mutex<HashSet<PathBuf>> {
    static CREATED: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    CREATED.get_or_init(Default::default)
}

/// Removes a cgroup directory; one that is already gone is fine.
pub(crate) fn rmdir(path: &Path) -> Result<(), Error> {
    match fs::remove_dir(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::io("rmdir", path, e)),
        _ => Ok(()),
    }
}

/// The pids in a cgroup.procs file.
pub(crate) fn read_procs(path: &Path) -> Result<Vec<i32>, Error> {
    read(path)?
        .lines()
        .map(|line| parse_num(path, line))
        .collect()
}

/// A single-number file ("max" where a limit is unset is not expected here).
pub(crate) fn parse_num<T: std::str::FromStr>(path: &Path, text: &str) -> Result<T, Error> {
    text.trim().parse().map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        content: text.to_string(),
    })
}

/// A number file that may be absent (controller or kernel feature missing): None then.
pub(crate) fn read_optional_u64(path: &Path) -> Result<Option<u64>, Error> {
    read_optional(path)?
        .map(|text| parse_num(path, &text))
        .transpose()
}

/// The value of `key` in a flat-keyed file ("key value" per line, as cgroup.events, cpu.stat).
pub(crate) fn keyed<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then_some(v.trim())
    })
}

/// A number under `key` in a flat-keyed file that may be absent: None when the file or key is.
pub(crate) fn read_keyed_u64(path: &Path, key: &str) -> Result<Option<u64>, Error> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    keyed(&text, key)
        .map(|value| parse_num(path, value))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_values() {
        let text = "populated 1\nfrozen 0\n";
        assert_eq!(keyed(text, "frozen"), Some("0"));
        assert_eq!(keyed(text, "populated"), Some("1"));
        assert_eq!(keyed(text, "pop"), None);
    }

    #[test]
    fn errors_name_operation_and_file() {
        let err = write(Path::new("/nonexistent-dir/pids.max"), "5").unwrap_err();
        assert_eq!(
            err.to_string(),
            "write /nonexistent-dir/pids.max: No such file or directory"
        );
        assert!(err.is_not_found());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("n");
        fs::write(&file, "x\n").unwrap();
        assert!(matches!(read_optional_u64(&file), Err(Error::Parse { .. })));
        assert_eq!(read_optional_u64(&dir.path().join("absent")).unwrap(), None);
    }
}
