//! Running the services' health checks without waiting on them: a check is
//! started when due (`run_health`, from the loop's timers); its output comes
//! in through epoll (`probe_output`), its exit through the reaper
//! (`probe_exited`); it is killed at its timeout. Only a `running` service is
//! checked; a check under way when it freezes or stops is killed and its
//! result ignored. `health_changed` is where every change of health goes.

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Instant, SystemTime};

use config::OnUnhealthy;
use nix::errno::Errno;
use nix::sys::epoll::EpollFlags;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::Services;
use crate::container::{Probe, ProbeTarget};
use crate::daemon::health::{output_text, Tracker, OUTPUT_LIMIT};
use crate::daemon::lifecycle::{Event, State};
use crate::daemon::poller::{self, Poller};
use crate::logs::timestamp::rfc3339;
use crate::protocol::EventKind;
use crate::protocol::{Health, HealthCheck};

/// The health of one run of a service.
pub struct HealthRun {
    /// Host pid of the run's init.
    pub pid: i32,
    pub tracker: Tracker,
    /// Gathered at the first check.
    target: Option<ProbeTarget>,
    /// The timeout of its check under way.
    deadline: Option<Instant>,
}

/// Every check under way (and killed ones not yet reaped).
#[derive(Default)]
pub struct Checks(Vec<InFlight>);

struct InFlight {
    /// The service's id and the run (its init's pid) it checks.
    service: u64,
    run: i32,
    probe: Probe,
    token: u64,
    /// Its output so far (what is past OUTPUT_LIMIT is read and dropped).
    output: Vec<u8>,
    started: SystemTime,
    /// Killed (timed out, or its service left `running`): its result is not
    /// recorded, it is only reaped.
    killed: bool,
}

impl HealthRun {
    fn new(pid: i32, tracker: Tracker) -> HealthRun {
        HealthRun {
            pid,
            tracker,
            target: None,
            deadline: None,
        }
    }

    /// When it needs the daemon without an event: the timeout of its check
    /// under way, else its next check (only while the service runs).
    pub fn deadline(&self, running: bool) -> Option<Instant> {
        match self.deadline {
            Some(deadline) => Some(deadline),
            None if running => Some(self.tracker.next_check()),
            None => None,
        }
    }
}

/// A run's health is tracked from its start until its init is gone.
fn tracked(state: &State) -> bool {
    state.is_up() || state.then().is_some()
}

impl Services {
    /// After each step of service `id`: a new run gets a fresh health, a
    /// run that ended loses it, and a check under way stops with `running`.
    pub(super) fn sync_health(&mut self, id: u64) {
        let Some(idx) = self.position(id) else {
            return;
        };
        let svc = &mut self.list[idx];
        let Some(check) = &svc.service.healthcheck else {
            return;
        };
        let pid = svc.pid().filter(|_| tracked(&svc.life.state));
        if svc.health.as_ref().map(|h| h.pid) != pid {
            svc.health = None;
            if let (Some(pid), Some(since)) = (pid, svc.life.state.since()) {
                svc.health = Some(HealthRun::new(pid, Tracker::new(check, since)));
            }
        }
        let running = matches!(svc.life.state, State::Running { .. });
        if !running {
            if let Some(health) = &mut svc.health {
                health.deadline = None;
            }
            self.checks.kill_service(id);
        }
    }

    /// Starts the checks that are due and kills those past their timeout.
    pub(super) fn run_health(&mut self, now: Instant) {
        for idx in 0..self.list.len() {
            if !matches!(self.list[idx].life.state, State::Running { .. }) {
                continue;
            }
            let id = self.list[idx].id;
            let Some(health) = self.list[idx].health.as_mut() else {
                continue;
            };
            match health.deadline {
                Some(deadline) if deadline <= now => {
                    health.deadline = None;
                    let timeout = health.tracker.timeout();
                    if let Some(started) = self.checks.kill_service(id) {
                        let output = format!("health check exceeded timeout ({timeout:?})");
                        self.finish_check(idx, started, -1, output);
                    }
                }
                None if health.tracker.next_check() <= now => self.start_check(idx),
                _ => {}
            }
        }
    }

    fn start_check(&mut self, idx: usize) {
        let started = SystemTime::now();
        let svc = &mut self.list[idx];
        let health = svc.health.as_mut().expect("checked by the caller");
        if health.target.is_none() {
            let check = &health.tracker.check;
            let target = ProbeTarget::new(
                &self.config.state_dir,
                &svc.service.name,
                health.pid,
                &check.test,
            );
            match target {
                Ok(target) => health.target = Some(target),
                Err(err) => {
                    return self.finish_check(idx, started, -1, format!("{err:#}"));
                }
            }
        }
        let target = health.target.as_ref().expect("set above");
        let probe = match target.spawn() {
            Ok(probe) => probe,
            Err(err) => return self.finish_check(idx, started, -1, format!("{err:#}")),
        };
        let token = self.poller.token(poller::HEALTH);
        if let Err(err) = self
            .poller
            .add(probe.output.as_fd(), EpollFlags::EPOLLIN, token)
        {
            // Its exit is still reaped; its output is read then.
            log::warn!("{}: watching its health check: {err}", svc.service.name);
        }
        health.deadline = Some(Instant::now() + health.tracker.timeout());
        self.checks.0.push(InFlight {
            service: svc.id,
            run: health.pid,
            probe,
            token,
            output: Vec::new(),
            started,
            killed: false,
        });
    }

    /// A check's output pipe is readable.
    pub fn probe_output(&mut self, token: u64) {
        if let Some(check) = self.checks.0.iter_mut().find(|c| c.token == token) {
            read_output(&self.poller, check);
        }
    }

    /// Host pid `pid` exited with `code` (128 + N for signal N): if it was a
    /// health check, its result counts (unless it was killed). False when it
    /// was none.
    pub(super) fn probe_exited(&mut self, pid: Pid, code: i32) -> bool {
        let Some(at) = self.checks.0.iter().position(|c| c.probe.pid == pid) else {
            return false;
        };
        let mut check = self.checks.0.swap_remove(at);
        read_output(&self.poller, &mut check);
        self.poller.delete(check.probe.output.as_fd());
        if check.killed {
            return true;
        }
        let Some(idx) = self.position(check.service) else {
            return true;
        };
        let Some(health) = self.list[idx]
            .health
            .as_mut()
            .filter(|h| h.pid == check.run)
        else {
            return true;
        };
        health.deadline = None;
        // exec-setup's line, "STATUS why", when the command never ran.
        let mut error = String::new();
        let _ = std::io::Read::read_to_string(&mut check.probe.error, &mut error);
        let (code, output) = match error.split_once(' ') {
            Some((status, why)) => (status.parse().unwrap_or(-1), why.to_string()),
            None => (code, output_text(&check.output)),
        };
        self.finish_check(idx, check.started, code, output);
        true
    }

    /// Records a check of service `idx`'s current run.
    fn finish_check(&mut self, idx: usize, started: SystemTime, exit_code: i32, output: String) {
        let Some(health) = self.list[idx].health.as_mut() else {
            return;
        };
        let entry = HealthCheck {
            start: rfc3339(started),
            end: rfc3339(SystemTime::now()),
            exit_code,
            output,
        };
        let was_ready = health.tracker.passed_first_check();
        if let Some(state) = health.tracker.record(entry, Instant::now()) {
            let first_pass = !was_ready && health.tracker.passed_first_check();
            self.health_changed(idx, state, first_pass);
        }
    }
    /// Every change of a service's health comes through here: its log line
    /// and, for `unhealthy` with `on_unhealthy: restart`, the restart.
    /// `first_pass`: the run's first passed check (it is ready).
    fn health_changed(&mut self, idx: usize, state: Health, first_pass: bool) {
        let svc = &self.list[idx];
        let (id, name) = (svc.id, svc.service.name.clone());
        let Some(health) = &svc.health else {
            return;
        };
        let tracker = &health.tracker;
        let line = match (state, tracker.log.back()) {
            (Health::Unhealthy, Some(last)) => format!(
                "health: unhealthy ({} failed checks in a row; the last: status {}, {:?})",
                tracker.failing_streak,
                last.exit_code,
                last.output.trim_end()
            ),
            (Health::Healthy, _) if first_pass => "health: healthy (first check passed)".into(),
            _ => format!("health: {}", state.as_str()),
        };
        let restart =
            state == Health::Unhealthy && tracker.check.on_unhealthy == OnUnhealthy::Restart;
        // A first pass makes it ready unless it still waits for READY=1.
        let ready = first_pass && svc.is_ready();
        self.logs.note(&name, &line);
        if state == Health::Unhealthy {
            self.events
                .emit(&name, EventKind::Unhealthy, Default::default());
        }
        if ready {
            self.events
                .emit(&name, EventKind::Ready, Default::default());
        }
        if restart {
            self.feed(id, Event::Unhealthy);
        }
    }
}

impl Services {
    /// Kills every health check under way (see `Checks::kill_all`).
    pub(in crate::daemon) fn kill_checks(&mut self) {
        self.checks.kill_all();
    }
}

impl Checks {
    /// Kills every check under way (before a reexec: the next image could
    /// neither time them out nor read them).
    pub(in crate::daemon) fn kill_all(&mut self) {
        for check in self.0.iter_mut().filter(|c| !c.killed) {
            kill_probe(&check.probe);
            check.killed = true;
        }
    }

    /// Kills the check of service `id` under way, if any; when it started.
    fn kill_service(&mut self, id: u64) -> Option<SystemTime> {
        let check = self.0.iter_mut().find(|c| c.service == id && !c.killed)?;
        kill_probe(&check.probe);
        check.killed = true;
        Some(check.started)
    }
}

/// SIGKILL to its process group (once exec-setup made it), then to itself.
fn kill_probe(probe: &Probe) {
    let _ = kill(Pid::from_raw(-probe.pid.as_raw()), Signal::SIGKILL);
    let _ = kill(probe.pid, Signal::SIGKILL);
}

/// Reads what the check wrote, keeping the first OUTPUT_LIMIT bytes; at end
/// of stream the pipe leaves epoll.
fn read_output(poller: &Poller, check: &mut InFlight) {
    let mut buffer = [0u8; 4096];
    loop {
        match nix::unistd::read(check.probe.output.as_raw_fd(), &mut buffer) {
            Ok(0) => {
                poller.delete(check.probe.output.as_fd());
                return;
            }
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(check.output.len());
                check.output.extend_from_slice(&buffer[..n.min(room)]);
            }
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}
