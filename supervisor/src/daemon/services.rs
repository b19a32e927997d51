//! The supervised services and what happens to them: start (dependencies first),
//! stop (dependents first, stop_signal then kill after stop_timeout), exit and
//! restart with backoff, freeze and thaw. Nothing here blocks on a service except
//! container::spawn and the bounded cgroup operations; the event loop feeds in
//! child exits and deadlines.

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use config::{CgroupDriver, Config};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::output::LogFiles;
use super::supervised::{
    deadline_after, Phase, Running, Stopping, Supervised, RESET_BACKOFF_AFTER,
};
use crate::container::{self, SpawnError, SpawnRequest, Stdio};
use crate::protocol::ServiceStatus;

/// Bound on waiting for the kernel to report a cgroup frozen, thawed or empty.
pub const CGROUP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Services {
    pub config: Config,
    /// In the file's order; services removed by a reload stay until they are down.
    pub list: Vec<Supervised>,
    pub logs: LogFiles,
    /// Log pipes of runs launched since the event loop last collected them.
    pub new_pipes: Vec<(String, OwnedFd)>,
    /// Earlier cgroup parents (changed by a reload), removed at exit with the current one.
    pub old_cgroup_parents: Vec<(CgroupDriver, String)>,
}

impl Services {
    pub fn new(config: Config, logs: LogFiles) -> Self {
        let list = config
            .services
            .iter()
            .cloned()
            .map(Supervised::new)
            .collect();
        Services {
            config,
            list,
            logs,
            new_pipes: Vec::new(),
            old_cgroup_parents: Vec::new(),
        }
    }

    /// A service of the current file (not one on its way out after a reload).
    pub fn index(&self, name: &str) -> Option<usize> {
        self.list
            .iter()
            .position(|s| s.name() == name && !s.removed)
    }

    /// Every name must be a service of the current file.
    pub fn check_names(&self, names: &[String]) -> Result<(), String> {
        let unknown: Vec<&str> = names
            .iter()
            .filter(|n| self.index(n).is_none())
            .map(String::as_str)
            .collect();
        match unknown.as_slice() {
            [] => Ok(()),
            [one] => Err(format!("unknown service: {one}")),
            many => Err(format!("unknown services: {}", many.join(", "))),
        }
    }

    /// No stop or restart of this service is in progress (or it is gone).
    pub fn settled(&self, name: &str) -> bool {
        self.index(name).is_none_or(|idx| self.list[idx].settled())
    }

    pub fn status(&self, name: Option<&str>) -> Vec<ServiceStatus> {
        self.list
            .iter()
            .filter(|s| !s.removed && name.is_none_or(|n| n == s.name()))
            .map(|s| s.status(&self.config.cgroup_parent))
            .collect()
    }

    /// Starts `name` and, first, whatever it depends on that is not up.
    /// A service on its way down is started again once it is down. A service
    /// whose dependency failed to start is not started (its error says why).
    pub fn start(&mut self, name: &str) -> Result<(), String> {
        let mut needed = BTreeSet::new();
        self.collect_dependencies(name, &mut needed);
        let order: Vec<String> = self
            .config
            .start_order()
            .into_iter()
            .map(|s| s.name.clone())
            .filter(|n| needed.contains(n))
            .collect();
        let mut result = Ok(());
        // Services that did not start here, with why, for their dependents.
        let mut failed: Vec<(String, String)> = Vec::new();
        for dep in order {
            let Some(idx) = self.index(&dep) else {
                continue;
            };
            let svc = &mut self.list[idx];
            if svc.stop_wanted {
                svc.start_after_stop = true;
                continue;
            }
            if svc.is_up() {
                continue;
            }
            let blocked = failed
                .iter()
                .find(|(n, _)| svc.service.depends_on.contains(n))
                .map(|(n, err)| format!("not started: dependency {n} failed: {err}"));
            let outcome = if let Some(err) = blocked {
                svc.error = Some(err.clone());
                self.logs.note(&dep, &err);
                Err(err)
            } else {
                svc.delay = svc.service.restart_delay;
                self.launch(idx)
            };
            if let Err(err) = outcome {
                result = Err(if dep == name {
                    err.clone()
                } else {
                    format!("{dep} (needed by {name}): {err}")
                });
                failed.push((dep, err));
            }
        }
        result
    }

    fn collect_dependencies(&self, name: &str, into: &mut BTreeSet<String>) {
        if !into.insert(name.to_string()) {
            return;
        }
        if let Some(idx) = self.index(name) {
            for dep in self.list[idx].service.depends_on.clone() {
                self.collect_dependencies(&dep, into);
            }
        }
    }

    /// Spawns one run of the service, in the cgroup its last run left if it
    /// kept one. A failure to set it up counts as a failed run: backoff if its
    /// policy restarts it, else failed.
    fn launch(&mut self, idx: usize) -> Result<(), String> {
        let name = self.list[idx].name().to_string();
        let spawned = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
            Ok((read, write)) => {
                let cgroup = self.list[idx].take_kept_cgroup();
                let spawned = container::spawn(SpawnRequest {
                    config: &self.config,
                    service: &self.list[idx].service,
                    command: None,
                    stdio: Stdio::Log(write),
                    cgroup,
                });
                self.new_pipes.push((name.clone(), read));
                spawned.map_err(|err| err.to_string())
            }
            Err(err) => {
                self.discard_kept_cgroup(idx);
                Err(format!("creating its log pipe: {err}"))
            }
        };
        let svc = &mut self.list[idx];
        match spawned {
            Ok(container) => {
                let pid = container.pid();
                svc.error = None;
                svc.phase = Phase::Up(Box::new(Running {
                    container,
                    since: Instant::now(),
                    frozen: false,
                    stopping: None,
                }));
                let privileged = if svc.service.privileged {
                    " (privileged: every capability, no seccomp filter, all devices)"
                } else {
                    ""
                };
                self.logs
                    .note(&name, &format!("started, pid {pid}{privileged}"));
                Ok(())
            }
            Err(err) => {
                svc.error = Some(err.clone());
                svc.exit_code = None;
                self.logs.note(&name, &format!("failed to start: {err}"));
                if svc.restarts_after(true) {
                    self.back_off(idx, None);
                } else {
                    svc.phase = Phase::Ended { failed: true };
                }
                Err(err)
            }
        }
    }

    /// Marks services to stop; they are signalled once their dependents that
    /// are stopping too are down (see `advance_stops`).
    pub fn request_stop(&mut self, idx: usize, then_start: bool) {
        let svc = &mut self.list[idx];
        svc.start_after_stop = then_start;
        match &svc.phase {
            Phase::Up(_) => svc.stop_wanted = true,
            Phase::Backoff { .. } => {
                self.discard_kept_cgroup(idx);
                let svc = &mut self.list[idx];
                svc.phase = Phase::Stopped;
                let name = svc.name().to_string();
                self.logs.note(&name, "pending restart cancelled");
                self.finish_stop(idx);
            }
            _ => self.finish_stop(idx),
        }
    }

    /// Signals every service that should stop and no longer has a stopping
    /// dependent still up: reverse dependency order, in parallel where possible.
    pub fn advance_stops(&mut self) {
        for idx in 0..self.list.len() {
            let svc = &self.list[idx];
            let waiting = svc.stop_wanted && svc.running().is_some_and(|r| r.stopping.is_none());
            if waiting && !self.has_stopping_dependent(idx) {
                self.begin_stop(idx);
            }
        }
    }

    fn has_stopping_dependent(&self, idx: usize) -> bool {
        let name = self.list[idx].name();
        self.list.iter().any(|other| {
            other.stop_wanted && other.is_up() && other.service.depends_on.iter().any(|d| d == name)
        })
    }

    fn begin_stop(&mut self, idx: usize) {
        let name = self.list[idx].name().to_string();
        let signal = self.list[idx].service.stop_signal;
        let timeout = self.list[idx].service.stop_timeout;
        let Some(running) = self.list[idx].running_mut() else {
            return;
        };
        let mut thaw_error = None;
        if running.frozen {
            // A frozen process would keep the signal pending: thaw it first so it
            // can stop cleanly; if thawing fails, the kill after the timeout ends it.
            thaw_error = running.container.cgroup.thaw(CGROUP_TIMEOUT).err();
            running.frozen = thaw_error.is_some();
        }
        let sent = running.container.signal(signal);
        running.stopping = Some(Stopping {
            kill_at: deadline_after(timeout),
            killed: false,
        });
        if let Some(err) = thaw_error {
            self.logs
                .note(&name, &format!("thaw before stop failed: {err}"));
        }
        self.logs.note(
            &name,
            &format!("stopping with {signal:?}, timeout {timeout:?}"),
        );
        match sent {
            // Already gone: its exit is on the way.
            Ok(())
            | Err(SpawnError::Sys {
                source: Errno::ESRCH,
                ..
            }) => {}
            Err(err) => self.logs.note(&name, &format!("sending {signal:?}: {err}")),
        }
    }

    /// A stop (or restart) has reached its end: down and nothing pending.
    fn finish_stop(&mut self, idx: usize) {
        let svc = &mut self.list[idx];
        svc.stop_wanted = false;
        if std::mem::take(&mut svc.start_after_stop) && !svc.removed {
            let name = svc.name().to_string();
            // The error, if any, is in the service's status and log.
            let _ = self.start(&name);
        }
    }

    /// Reaps every exited child; the service's exit is handled for our runs.
    pub fn reap(&mut self) {
        loop {
            let (pid, code) = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code),
                Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, 128 + signal as i32),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(err) => {
                    log::error!("waitpid: {err}");
                    return;
                }
            };
            match self
                .list
                .iter()
                .position(|s| s.running().is_some_and(|r| r.container.pid() == pid))
            {
                Some(idx) => self.on_exit(idx, code),
                None => log::debug!("reaped pid {pid} (not a service), status {code}"),
            }
        }
    }

    fn on_exit(&mut self, idx: usize, code: i32) {
        let svc = &mut self.list[idx];
        let Phase::Up(running) = std::mem::replace(&mut svc.phase, Phase::Stopped) else {
            return;
        };
        svc.exit_code = Some(code);
        let name = svc.name().to_string();
        let ran = running.since.elapsed();
        let failed = code != 0;
        // Killed from outside while frozen: not a crash of the service itself.
        let restart = !running.frozen && svc.restarts_after(failed);
        self.logs.note(
            &name,
            &format!("exited with status {code} after {:.1}s", ran.as_secs_f64()),
        );
        // A restart starts in the same cgroup: emptied, but not removed and created again.
        let cleaned = if restart {
            running.container.teardown_keeping_cgroup().map(Some)
        } else {
            running.container.teardown().map(|()| None)
        };
        let kept = cleaned.unwrap_or_else(|err| {
            self.logs.note(&name, &format!("cleanup: {err}"));
            None
        });
        let svc = &mut self.list[idx];
        if svc.stop_wanted {
            self.finish_stop(idx);
        } else if restart {
            if ran >= RESET_BACKOFF_AFTER {
                svc.delay = svc.service.restart_delay;
            }
            self.back_off(idx, kept);
        } else {
            svc.phase = Phase::Ended { failed };
        }
    }

    /// Waits the service's current restart delay before its next run, which
    /// starts in `cgroup` if the last run's group was kept.
    fn back_off(&mut self, idx: usize, cgroup: Option<Box<dyn cgroups::Cgroup>>) {
        let svc = &mut self.list[idx];
        let delay = svc.take_delay();
        svc.phase = Phase::Backoff {
            until: deadline_after(delay),
            cgroup,
        };
        let name = svc.name().to_string();
        self.logs
            .note(&name, &format!("restarting in {:.1}s", delay.as_secs_f64()));
    }

    /// Removes the cgroup a service waiting to restart kept, when that restart
    /// is not going to happen or needs a new group (stop, removal, a changed
    /// definition).
    pub fn discard_kept_cgroup(&mut self, idx: usize) {
        let Some(cgroup) = self.list[idx].take_kept_cgroup() else {
            return;
        };
        if let Err(err) = cgroup.destroy() {
            let name = self.list[idx].name().to_string();
            self.logs.note(&name, &format!("cleanup: {err}"));
        }
    }

    /// The earliest backoff end or stop timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.list.iter().filter_map(Supervised::deadline).min()
    }

    /// Restarts whose backoff is over; kills services whose stop_timeout ran out.
    pub fn run_timers(&mut self, now: Instant) {
        for idx in 0..self.list.len() {
            match self.list[idx].deadline() {
                Some(at) if at <= now => {}
                _ => continue,
            }
            let svc = &mut self.list[idx];
            let name = svc.name().to_string();
            if let Phase::Backoff { .. } = svc.phase {
                svc.restarts += 1;
                // A failure is recorded in status and log, and backs off again.
                let _ = self.launch(idx);
            } else if let Some(running) = svc.running_mut() {
                if let Some(stopping) = &mut running.stopping {
                    stopping.killed = true;
                }
                let killed = running.container.kill_all();
                self.logs
                    .note(&name, "stop timeout: killing every process of its cgroup");
                if let Err(err) = killed {
                    self.logs.note(&name, &format!("kill: {err}"));
                }
            }
        }
    }

    /// Freezes (true) or thaws (false) a running service; returns once the
    /// kernel reports it done (bounded by CGROUP_TIMEOUT; undone on timeout).
    pub fn set_frozen(&mut self, name: &str, freeze: bool) -> Result<(), String> {
        let idx = self
            .index(name)
            .ok_or_else(|| format!("unknown service: {name}"))?;
        let state = self.list[idx].state();
        let running = match self.list[idx].running_mut() {
            Some(running) if running.stopping.is_none() => running,
            _ => return Err(format!("{name} is not running (state {})", state.as_str())),
        };
        if running.frozen == freeze {
            return Ok(());
        }
        let cgroup = &running.container.cgroup;
        let (done, verb) = if freeze {
            (cgroup.freeze(CGROUP_TIMEOUT), "freeze")
        } else {
            (cgroup.thaw(CGROUP_TIMEOUT), "thaw")
        };
        done.map_err(|err| format!("{name}: {verb}: {err}"))?;
        let pid = running.container.pid().as_raw();
        let exited = || cgroup.procs().is_ok_and(|procs| !procs.contains(&pid));
        if freeze && exited() {
            // Its init exited after the reap above: an empty group "froze".
            // Undo, so its exit is handled as what it is.
            let _ = running.container.cgroup.thaw(CGROUP_TIMEOUT);
            return Err(format!("{name} is not running (it exited)"));
        }
        running.frozen = freeze;
        self.logs
            .note(name, if freeze { "frozen" } else { "thawed" });
        Ok(())
    }

    /// Stops everything (reverse dependency order); nothing restarts after.
    pub fn stop_all(&mut self) {
        for idx in 0..self.list.len() {
            self.request_stop(idx, false);
        }
        self.advance_stops();
    }

    pub fn all_down(&self) -> bool {
        !self.list.iter().any(Supervised::is_up)
    }

    /// At exit, every service down: removes the (empty) cgroup parents we used.
    pub fn remove_cgroup_parents(&mut self) {
        let current = (self.config.cgroup_driver, self.config.cgroup_parent.clone());
        for (driver, parent) in self
            .old_cgroup_parents
            .drain(..)
            .chain(std::iter::once(current))
        {
            if let Err(err) = crate::container::remove_cgroup_parent(driver, &parent) {
                log::warn!("removing cgroup {parent}: {err}");
            }
        }
    }

    /// Forgets removed services once they are down.
    pub fn drop_removed(&mut self) {
        let mut idx = 0;
        while idx < self.list.len() {
            if self.list[idx].removed && !self.list[idx].is_up() {
                let svc = self.list.remove(idx);
                self.logs.forget(svc.name());
            } else {
                idx += 1;
            }
        }
    }
}
