//! What a daemon keeps on disk so that the next one (after a crash, or its
//! own reexec) finds its services again: one record per running service in
//! `state_dir/containers/NAME.state.json`, and the service list it runs
//! (`state_dir/daemon.config.json`), each written atomically
//! (temporary file, then rename) whenever it changes.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::container::ContainerRecord;

const SUFFIX: &str = ".state.json";

/// One running service, as the next daemon needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub name: String,
    /// Host pid of its init.
    pub pid: i32,
    /// Field 22 of /proc/PID/stat: a recycled pid has another.
    pub start_time: u64,
    pub container: ContainerRecord,
    pub restarts: u64,
    /// Frozen (and not being thawed).
    pub frozen: bool,
    /// A stop was under way: the next daemon finishes it.
    pub stopping: bool,
    /// That stop was the first half of a restart: the next daemon restarts it.
    #[serde(default)]
    pub restarting: bool,
    /// When the run came up, in seconds since the epoch.
    pub up_since: f64,
    /// The descriptor of its log pipe's read end in its init (pidfd_getfd).
    pub log_fd: i32,
    /// `ready: notify`: READY=1 had come during the run.
    #[serde(default)]
    pub ready: bool,
    /// The start of a line read from the pipe but not yet ended (reexec only).
    #[serde(default)]
    pub partial_line: Vec<u8>,
}

/// The service list a daemon runs: its file's path and bytes, parsed again
/// by the next daemon to compare with its own (`reload` semantics).
#[derive(Debug, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub path: PathBuf,
    pub text: String,
}

fn containers(state_dir: &Path) -> PathBuf {
    state_dir.join("containers")
}

pub fn record_path(state_dir: &Path, name: &str) -> PathBuf {
    containers(state_dir).join(format!("{name}{SUFFIX}"))
}

/// Where a service's init writes its exit code (`init --status-fd`).
pub fn status_path(state_dir: &Path, name: &str) -> PathBuf {
    containers(state_dir).join(format!("{name}.exit"))
}

/// Marks service `name` stopped on request (or given up on), so that the
/// next daemon does not autostart it; `false` removes the mark.
pub fn mark_stopped(state_dir: &Path, name: &str, stopped: bool) {
    let path = containers(state_dir).join(format!("{name}.stopped"));
    let done = if stopped {
        write_atomically(&path, &true)
    } else {
        std::fs::remove_file(&path).or_else(|err| match err.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(err),
        })
    };
    if let Err(err) = done {
        log::warn!("{}: {err}", path.display());
    }
}

/// The services marked stopped (see `mark_stopped`).
pub fn stopped(state_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(containers(state_dir)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            file.strip_suffix(".stopped").map(str::to_string)
        })
        .collect()
}

fn config_path(state_dir: &Path) -> PathBuf {
    state_dir.join("daemon.config.json")
}

/// After a shutdown nothing is left to adopt.
pub fn remove_config(state_dir: &Path) {
    let _ = std::fs::remove_file(config_path(state_dir));
}

/// Writes `value` to `path` through a temporary file and a rename (mode 0600).
fn write_atomically(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let json = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let temp = path.with_extension("tmp");
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
    };
    let mut file = match open() {
        // A teardown removed the (then empty) directory.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
            open()?
        }
        other => other?,
    };
    file.write_all(&json)?;
    std::fs::rename(&temp, path)
}

pub fn write(state_dir: &Path, record: &ServiceRecord) -> std::io::Result<()> {
    write_atomically(&record_path(state_dir, &record.name), record)
}

/// Removes service `name`'s record and exit-status file, if any.
pub fn remove(state_dir: &Path, name: &str) {
    for path in [record_path(state_dir, name), status_path(state_dir, name)] {
        if let Err(err) = std::fs::remove_file(&path) {
            if err.kind() != std::io::ErrorKind::NotFound {
                log::warn!("removing {}: {err}", path.display());
            }
        }
    }
}

/// Every record in `state_dir`, by name; records that cannot be read are
/// returned as errors (with the name their file gives).
pub fn read_all(state_dir: &Path) -> Vec<(String, Result<ServiceRecord, String>)> {
    let Ok(entries) = std::fs::read_dir(containers(state_dir)) else {
        return Vec::new();
    };
    let mut records: Vec<_> = entries
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            let name = file.strip_suffix(SUFFIX)?.to_string();
            let record = std::fs::read(entry.path())
                .map_err(|err| err.to_string())
                .and_then(|json| serde_json::from_slice(&json).map_err(|err| err.to_string()));
            Some((name, record))
        })
        .collect();
    records.sort_by(|a, b| a.0.cmp(&b.0));
    records
}

pub fn write_config(state_dir: &Path, record: &ConfigRecord) -> std::io::Result<()> {
    write_atomically(&config_path(state_dir), record)
}

pub fn read_config(state_dir: &Path) -> Option<ConfigRecord> {
    let json = std::fs::read(config_path(state_dir)).ok()?;
    serde_json::from_slice(&json).ok()
}

/// Field 22 of /proc/PID/stat (clock ticks after boot): None if `pid` is gone.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

pub fn wall_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

pub fn from_wall_seconds(seconds: f64) -> SystemTime {
    UNIX_EPOCH + Duration::try_from_secs_f64(seconds).unwrap_or_default()
}

/// The file a run's init writes its exit code to (truncated for this run).
/// `state_dir/containers` is made first: the teardown of the last run that
/// used it removed it (a lone service's restart), and without this file the
/// run would have no exit status, nor a held log pipe, for a next daemon.
pub fn open_status_file(state_dir: &std::path::Path, name: &str) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = status_path(state_dir, name);
    let open = || {
        crate::container::secure_state_dir(state_dir).map_err(|err| err.to_string())?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|err| err.to_string())
    };
    match open() {
        Ok(file) => Some(file),
        Err(err) => {
            log::warn!("{name}: {}: {err}: it cannot be adopted", path.display());
            None
        }
    }
}

/// What init wrote to its exit-status file: None if nothing (it was killed).
pub fn exit_code(state_dir: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(status_path(state_dir, name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_this_process_is_stable() {
        let pid = std::process::id() as i32;
        let first = start_time(pid).expect("our own stat");
        assert_eq!(start_time(pid), Some(first));
        assert_eq!(start_time(i32::MAX), None);
    }

    #[test]
    fn records_round_trip_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let record = ServiceRecord {
            name: "web".into(),
            pid: 42,
            start_time: 7,
            container: ContainerRecord {
                cgroup: "supervisor/web".into(),
                layer_to_remove: None,
                addresses: Default::default(),
            },
            restarts: 2,
            frozen: true,
            stopping: false,
            restarting: false,
            up_since: 1.5,
            log_fd: 7,
            ready: true,
            partial_line: b"half".to_vec(),
        };
        write(dir.path(), &record).unwrap();
        let all = read_all(dir.path());
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1.as_ref().unwrap(), &record);
        remove(dir.path(), "web");
        assert!(read_all(dir.path()).is_empty());
    }
}
