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
    /// Exec the daemon's binary from disk again, keeping every service.
    Reexec,
    /// Subscribe to lifecycle events: the daemon answers with one `event`
    /// line per event (first those of the last `since_ms`, if given) until
    /// it shuts down (`done`), or drops a client too slow to read (`error`).
    /// The client ends it by closing, or shutting down its writing side.
    Events {
        #[serde(default)]
        since_ms: Option<u64>,
    },
    /// `poweroff`, `reboot`, `halt`: only a daemon that is PID 1 of the machine does them.
    Power {
        action: PowerAction,
    },
}

/// What the machine does once every service has stopped (`supervisor boot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerAction {
    Poweroff,
    Reboot,
    Halt,
}

impl PowerAction {
    pub const ALL: [PowerAction; 3] = [
        PowerAction::Poweroff,
        PowerAction::Reboot,
        PowerAction::Halt,
    ];

    /// The verb, as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::Poweroff => "poweroff",
            PowerAction::Reboot => "reboot",
            PowerAction::Halt => "halt",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Response {
    Done,
    Status {
        services: Vec<ServiceStatus>,
    },
    Log {
        path: PathBuf,
    },
    Reloaded(ReloadReport),
    Error {
        message: String,
    },
    /// One line of an `events` stream.
    Event(EventRecord),
}

/// One lifecycle event, as `events --json` prints it: these field names are
/// a contract (README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// RFC 3339, UTC, with milliseconds.
    pub time: String,
    pub service: String,
    pub event: EventKind,
    #[serde(flatten)]
    pub details: EventDetails,
}

/// The fields of an event that apply to some kinds only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventDetails {
    /// `started`: the host PID of the service's init.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// `exited`: the exit status (128 + N when killed by signal N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    /// `exited`: how the run ended, as status's `exit_reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `restarting`: the wait before the restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// `reloaded`: `added`, `changed` or `removed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// `setup_failed`, `unhealthy`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What happened to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Asked to start, or its restart is due.
    Starting,
    /// Its init runs the service's command.
    Started,
    /// It is ready for its dependents.
    Ready,
    /// Its health check failed `retries` times.
    Unhealthy,
    /// Its setup failed (or a dependency did) before its command ran.
    SetupFailed,
    /// The OOM killer killed a process of its group during the run.
    OomKilled,
    /// Its init exited.
    Exited,
    /// It waits `delay_ms` before restarting.
    Restarting,
    /// Ended and not restarted (its restart policy, or its restart_limit).
    Failed,
    Frozen,
    Thawed,
    /// Down on request (stop, restart, removal, shutdown).
    Stopped,
    /// A reload added, changed or removed it.
    Reloaded,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Starting => "starting",
            EventKind::Started => "started",
            EventKind::Ready => "ready",
            EventKind::Unhealthy => "unhealthy",
            EventKind::SetupFailed => "setup_failed",
            EventKind::OomKilled => "oom_killed",
            EventKind::Exited => "exited",
            EventKind::Restarting => "restarting",
            EventKind::Failed => "failed",
            EventKind::Frozen => "frozen",
            EventKind::Thawed => "thawed",
            EventKind::Stopped => "stopped",
            EventKind::Reloaded => "reloaded",
        }
    }
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
    /// It runs and, with `ready: notify`, has sent READY=1.
    #[serde(default)]
    pub ready: bool,
    /// The last `STATUS=` a `ready: notify` service sent during its run.
    #[serde(default)]
    pub status_text: Option<String>,
    /// Of the current run; None: no healthcheck, or not running.
    #[serde(default)]
    pub health: Option<Health>,
    /// Consecutive failed checks (after start_period).
    #[serde(default)]
    pub health_failing_streak: u32,
    /// The last checks of the current run, oldest first.
    #[serde(default)]
    pub health_log: Vec<HealthCheck>,
}

/// A service's health, as Docker's: `starting` until a check passes (or
/// `retries` fail), `healthy` after a passed check, `unhealthy` after
/// `retries` failed ones in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// One health check, as in Docker's health log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// RFC 3339, UTC.
    pub start: String,
    pub end: String,
    /// The command's status (128 + N when killed by signal N); -1 when it
    /// timed out or could not be started.
    pub exit_code: i32,
    /// Its stdout and stderr, the first 4 KiB.
    pub output: String,
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
    fn events_are_one_flat_line_with_fixed_names() {
        let record = EventRecord {
            time: "2026-12-01T10:00:00.123Z".into(),
            service: "web".into(),
            event: EventKind::Exited,
            details: EventDetails {
                status: Some(137),
                reason: Some("oom_killed".into()),
                ..EventDetails::default()
            },
        };
        let line = String::from_utf8(encode(&Response::Event(record.clone()))).unwrap();
        assert_eq!(
            line,
            "{\"result\":\"event\",\"time\":\"2026-12-01T10:00:00.123Z\",\"service\":\"web\",\"event\":\"exited\",\"status\":137,\"reason\":\"oom_killed\"}\n"
        );
        let back: Response = serde_json::from_str(&line).unwrap();
        assert_eq!(back, Response::Event(record));
        for kind in [
            EventKind::SetupFailed,
            EventKind::OomKilled,
            EventKind::Unhealthy,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
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
