//! One service as the daemon sees it: its definition, where it is in its life,
//! and the counters that `status` shows.

use std::time::{Duration, Instant};

use config::{RestartPolicy, Service};

use crate::container::Container;
use crate::protocol::{ServiceStatus, State};

/// How long after its start a service counts as having run well: its next crash
/// restarts after the initial restart_delay again.
pub const RESET_BACKOFF_AFTER: Duration = Duration::from_secs(10);

pub struct Supervised {
    /// The definition it runs with (or will start with).
    pub service: Service,
    pub phase: Phase,
    /// Automatic restarts so far.
    pub restarts: u64,
    pub exit_code: Option<i32>,
    /// Why the last start failed.
    pub error: Option<String>,
    /// The wait before the next automatic restart.
    pub delay: Duration,
    /// A stop was asked for and is not finished yet.
    pub stop_wanted: bool,
    /// Start again once stopped (restart, or a changed definition on reload).
    pub start_after_stop: bool,
    /// Gone from the file on reload: forgotten once it is down.
    pub removed: bool,
}

pub enum Phase {
    /// Never started, or stopped on request.
    Stopped,
    /// Ended by itself and not restarted: `exited` with status 0, else `failed`.
    Ended {
        failed: bool,
    },
    /// Waiting to restart.
    Backoff {
        until: Instant,
        /// The last run's emptied cgroup, for the next run to start in (see
        /// `Services::discard_kept_cgroup` for when it is removed instead).
        cgroup: Option<Box<dyn cgroups::Cgroup>>,
    },
    Up(Box<Running>),
}

pub struct Running {
    pub container: Container,
    pub since: Instant,
    pub frozen: bool,
    pub stopping: Option<Stopping>,
}

pub struct Stopping {
    /// When the stop_timeout runs out and every process of the cgroup is killed.
    pub kill_at: Instant,
    pub killed: bool,
}

/// The moment `delay` from now. The config caps durations at a year, but a
/// deadline must never overflow the clock whatever the value: it is clamped.
pub fn deadline_after(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay.min(config::MAX_DURATION))
        .unwrap_or(now)
}

impl Supervised {
    pub fn new(service: Service) -> Self {
        let delay = service.restart_delay;
        Supervised {
            service,
            phase: Phase::Stopped,
            restarts: 0,
            exit_code: None,
            error: None,
            delay,
            stop_wanted: false,
            start_after_stop: false,
            removed: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.service.name
    }

    pub fn running(&self) -> Option<&Running> {
        match &self.phase {
            Phase::Up(running) => Some(running),
            _ => None,
        }
    }

    pub fn running_mut(&mut self) -> Option<&mut Running> {
        match &mut self.phase {
            Phase::Up(running) => Some(running),
            _ => None,
        }
    }

    pub fn is_up(&self) -> bool {
        matches!(self.phase, Phase::Up(_))
    }

    /// No stop or restart of this service is in progress.
    pub fn settled(&self) -> bool {
        !self.stop_wanted && !self.start_after_stop
    }

    pub fn state(&self) -> State {
        match &self.phase {
            Phase::Stopped => State::Stopped,
            Phase::Ended { failed: false } => State::Exited,
            Phase::Ended { failed: true } => State::Failed,
            Phase::Backoff { .. } => State::Backoff,
            Phase::Up(running) if running.stopping.is_some() => State::Stopping,
            Phase::Up(running) if running.frozen => State::Frozen,
            Phase::Up(_) => State::Running,
        }
    }

    /// The next moment this service needs the daemon's attention without any event.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Backoff { until, .. } => Some(*until),
            Phase::Up(running) => running
                .stopping
                .as_ref()
                .filter(|s| !s.killed)
                .map(|s| s.kill_at),
            _ => None,
        }
    }

    /// Whether its policy restarts it after a run that ended by itself (or
    /// failed to start), unless it is being stopped or removed.
    pub fn restarts_after(&self, failed: bool) -> bool {
        let policy = match self.service.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failed,
            RestartPolicy::Never => false,
        };
        policy && !self.stop_wanted && !self.removed
    }

    /// The cgroup kept for the next run, if it is waiting to restart with one.
    pub fn take_kept_cgroup(&mut self) -> Option<Box<dyn cgroups::Cgroup>> {
        match &mut self.phase {
            Phase::Backoff { cgroup, .. } => cgroup.take(),
            _ => None,
        }
    }

    /// The next restart delay after this one: doubled, up to restart_delay_max.
    pub fn take_delay(&mut self) -> Duration {
        let delay = self.delay;
        self.delay = delay
            .saturating_mul(2)
            .min(self.service.restart_delay_max)
            .max(self.service.restart_delay);
        delay
    }

    pub fn status(&self, cgroup_parent: &str) -> ServiceStatus {
        let running = self.running();
        let stats = running.and_then(|r| r.container.cgroup.stats().ok());
        ServiceStatus {
            name: self.service.name.clone(),
            state: self.state(),
            pid: running.map(|r| r.container.pid().as_raw()),
            restarts: self.restarts,
            exit_code: self.exit_code,
            cgroup: running.map_or_else(
                || format!("{}/{}", cgroup_parent.trim_matches('/'), self.service.name),
                |r| r.container.cgroup_path().to_string(),
            ),
            uptime_s: running.map(|r| r.since.elapsed().as_secs()),
            memory_bytes: stats.as_ref().and_then(|s| s.memory_bytes),
            memory_peak_bytes: stats.as_ref().and_then(|s| s.memory_peak_bytes),
            cpu_usage_us: stats.as_ref().and_then(|s| s.cpu_usage_us),
            pids_current: stats.as_ref().and_then(|s| s.pids_current),
            oom_kills: stats.as_ref().and_then(|s| s.oom_kills),
            error: self.error.clone(),
            addresses: running
                .map(|r| r.container.addresses())
                .unwrap_or_default()
                .into_iter()
                .map(|(network, ip)| (network, ip.to_string()))
                .collect(),
        }
    }
}
