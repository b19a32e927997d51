//! The control protocol between the CLI and the daemon, over `state_dir/control.sock`:
//! per connection, the client writes one JSON request line and the daemon answers
//! with one JSON response line (after the work is done: `stop` answers once the
//! services are down, `freeze` once the kernel reports them frozen).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File names inside the state directory.
pub const SOCKET_FILE: &str = "control.sock";
pub const LOCK_FILE: &str = "daemon.lock";
pub const LOGS_DIR: &str = "logs";

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_FILE)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Start {
        names: Vec<String>,
    },
    Stop {
        names: Vec<String>,
    },
    Restart {
        names: Vec<String>,
    },
    Status {
        name: Option<String>,
    },
    /// Asks where a service's log is; the client reads the files itself.
    Logs {
        name: String,
    },
    Freeze {
        names: Vec<String>,
    },
    Thaw {
        names: Vec<String>,
    },
    /// Re-read the daemon's file; `path` (the client's `-c FILE`, absolute)
    /// must be that file.
    Reload {
        #[serde(default)]
        path: Option<PathBuf>,
    },
    Shutdown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Response {
    Done,
    Status { services: Vec<ServiceStatus> },
    Log { path: PathBuf },
    Reloaded(ReloadReport),
    Error { message: String },
}

/// What a reload did, service by service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadReport {
    pub added: Vec<String>,
    /// Changed while running: restarted with the new definition.
    pub restarted: Vec<String>,
    /// Changed while not running: the new definition is used at its next start.
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Added or changed services that failed to start, one line each.
    pub errors: Vec<String>,
}

/// One row of `status` (and one object of `status --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub state: State,
    /// Host PID of the service's PID 1 (our init).
    pub pid: Option<i32>,
    pub restarts: u64,
    pub exit_code: Option<i32>,
    /// How the last run ended: `exited`, `signaled`, `oom_killed`,
    /// `setup_failed` or `stopped`.
    #[serde(default)]
    pub exit_reason: Option<String>,
    /// When the last run ended (RFC 3339, UTC).
    #[serde(default)]
    pub last_exit_at: Option<String>,
    /// In backoff: when it restarts (RFC 3339, UTC).
    #[serde(default)]
    pub next_retry_at: Option<String>,
    /// Relative to the hierarchy roots, e.g. `supervisor/web`.
    pub cgroup: String,
    pub uptime_s: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub cpu_usage_us: Option<u64>,
    pub pids_current: Option<u64>,
    pub oom_kills: Option<u64>,
    /// The last start failure, if the last start failed.
    pub error: Option<String>,
    /// network -> the running service's IPv4 address on it.
    #[serde(default)]
    pub addresses: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Starting,
    Running,
    Stopping,
    Stopped,
    Exited,
    Failed,
    Backoff,
    Frozen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Exited => "exited",
            State::Failed => "failed",
            State::Backoff => "backoff",
            State::Frozen => "frozen",
        }
    }
}

/// One message as one line (JSON never contains a raw newline).
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).expect("protocol types always serialize");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_one_line() {
        let requests = [
            Request::Start {
                names: vec!["web".into(), "db".into()],
            },
            Request::Status { name: None },
            Request::Logs { name: "web".into() },
            Request::Reload { path: None },
        ];
        for request in requests {
            let line = encode(&request);
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            let back: Request = serde_json::from_slice(&line).unwrap();
            assert_eq!(back, request);
        }
    }

    #[test]
    fn a_reload_without_a_path_is_still_understood() {
        let old: Request = serde_json::from_str(r#"{"op":"reload"}"#).unwrap();
        assert_eq!(old, Request::Reload { path: None });
    }

    #[test]
    fn states_are_lowercase_words() {
        assert_eq!(
            serde_json::to_string(&State::Backoff).unwrap(),
            "\"backoff\""
        );
        assert_eq!(State::Frozen.as_str(), "frozen");
    }
}
