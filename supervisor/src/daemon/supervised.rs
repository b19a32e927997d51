//! One service as the daemon holds it: its definition, its lifecycle (pure
//! data, see `lifecycle.rs`) and the system resources of its current run.

use std::fs::File;
use std::time::{Duration, Instant, SystemTime};

use config::Service;

use super::lifecycle::{Life, Policy, State};
use crate::container::{Container, Starting};
use crate::logs::timestamp::rfc3339;
use crate::protocol::ServiceStatus;

/// The resources of a service's run.
pub enum Run {
    None,
    /// The emptied cgroup of the last run, for the next automatic restart.
    Kept(Box<dyn cgroups::Cgroup>),
    /// Its container is setting itself up.
    Starting(Starting),
    /// Its init was exec'd.
    Up(Container),
}

/// How the daemon learns that the freezer is done: cgroup.events in epoll, or
/// (v1 freezer) looking again after a pause.
pub enum FreezerWatch {
    Events { file: File, token: u64 },
    Recheck { at: Instant, pause: Duration },
}

pub struct Supervised {
    /// Unique for the daemon's lifetime (names repeat across reloads).
    pub id: u64,
    /// The definition it runs with (or will start with).
    pub service: Service,
    pub policy: Policy,
    pub life: Life,
    pub run: Run,
    /// The epoll token of its setup's error pipe while starting.
    pub setup_token: Option<u64>,
    pub watch: Option<FreezerWatch>,
    /// The last run's accounting, read before its cgroup went (or was reused).
    pub last_stats: Option<cgroups::Stats>,
    /// OOM kills its kept cgroup had counted before the current run.
    pub oom_baseline: u64,
    /// An adopted init (not our child): its pidfd and epoll token.
    pub pidfd: Option<(std::os::fd::OwnedFd, u64)>,
    /// With a healthcheck: the current run's health (see `health.rs`).
    pub health: Option<super::services::HealthRun>,
    /// `ready: notify`: the current run's sd_notify socket and its epoll token.
    pub notify: Option<(super::notify::NotifySocket, u64)>,
    /// The last `STATUS=` of the current run (None between runs).
    pub status_text: Option<String>,
}

impl Supervised {
    pub fn new(id: u64, service: Service) -> Self {
        let policy = Policy::of(&service);
        Supervised {
            id,
            life: Life::new(&policy),
            policy,
            service,
            run: Run::None,
            setup_token: None,
            watch: None,
            last_stats: None,
            oom_baseline: 0,
            pidfd: None,
            health: None,
            notify: None,
            status_text: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.service.name
    }

    /// Removed from the file and on its way out.
    pub fn removed(&self) -> bool {
        self.life.state.then() == Some(super::lifecycle::After::Forget)
    }

    pub fn cgroup(&self) -> Option<&dyn cgroups::Cgroup> {
        match &self.run {
            Run::Up(container) => Some(container.cgroup.as_ref()),
            Run::Starting(starting) => Some(starting.cgroup()),
            Run::Kept(cgroup) => Some(cgroup.as_ref()),
            Run::None => None,
        }
    }

    pub fn pid(&self) -> Option<i32> {
        match &self.run {
            Run::Up(container) => Some(container.pid().as_raw()),
            Run::Starting(starting) => Some(starting.pid().as_raw()),
            _ => None,
        }
    }

    /// The next moment it needs the daemon without any event.
    pub fn deadline(&self) -> Option<Instant> {
        let timer = self
            .life
            .state
            .timer()
            .into_iter()
            .chain(self.life.readiness_timer(&self.policy))
            .map(|(at, _)| at)
            .min();
        let recheck = match &self.watch {
            Some(FreezerWatch::Recheck { at, .. }) => Some(*at),
            _ => None,
        };
        let running = matches!(self.life.state, State::Running { .. });
        let health = self.health.as_ref().and_then(|h| h.deadline(running));
        timer.into_iter().chain(recheck).chain(health).min()
    }

    pub fn status(&self, cgroup_parent: &str) -> ServiceStatus {
        let live = match &self.run {
            Run::Up(container) => container.cgroup.stats().ok(),
            _ => None,
        };
        // Between runs: the last run's final accounting.
        let stats = live.or(self.last_stats);
        let now = Instant::now();
        let wall = |at: Instant| {
            let at = if at >= now {
                SystemTime::now() + (at - now)
            } else {
                SystemTime::now() - (now - at)
            };
            rfc3339(at)
        };
        let last_exit = self.life.last_exit;
        let next_retry = match self.life.state {
            State::Backoff { until } => Some(wall(until)),
            _ => None,
        };
        ServiceStatus {
            name: self.service.name.clone(),
            state: self.life.state.word(),
            pid: self.pid(),
            restarts: self.life.restarts,
            exit_code: last_exit.and_then(|e| e.code),
            exit_reason: last_exit.map(|e| e.reason.as_str().to_string()),
            last_exit_at: last_exit.map(|e| wall(e.at)),
            next_retry_at: next_retry,
            cgroup: self.cgroup().map_or_else(
                || format!("{}/{}", cgroup_parent.trim_matches('/'), self.service.name),
                |cgroup| cgroup.path().to_string(),
            ),
            uptime_s: self.life.state.since().map(|s| s.elapsed().as_secs()),
            memory_bytes: live.and_then(|s| s.memory_bytes),
            memory_peak_bytes: stats.and_then(|s| s.memory_peak_bytes),
            cpu_usage_us: stats.and_then(|s| s.cpu_usage_us),
            pids_current: live.and_then(|s| s.pids_current),
            oom_kills: stats.and_then(|s| s.oom_kills),
            error: self.life.error.clone(),
            addresses: match &self.run {
                Run::Up(container) => container
                    .addresses()
                    .into_iter()
                    .map(|(network, ip)| (network, ip.to_string()))
                    .collect(),
                _ => Default::default(),
            },
            health: self.health.as_ref().map(|h| h.tracker.state),
            health_failing_streak: self.health.as_ref().map_or(0, |h| h.tracker.failing_streak),
            health_log: self
                .health
                .as_ref()
                .map(|h| h.tracker.log.iter().cloned().collect())
                .unwrap_or_default(),
            ready: self.is_ready(),
            status_text: self.status_text.clone(),
        }
    }
}
