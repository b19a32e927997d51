//! Adoption at daemon start: the services an earlier daemon left running
//! (it crashed, or re-exec'd itself) are taken over rather than started
//! again. Each record in state_dir (see `state_file`) whose init still runs
//! (same pid, same start time, in its cgroup) becomes a running (or frozen)
//! service with its pid and restart count, watched through a pidfd; its log
//! pipe is taken back from its init (pidfd_getfd). A record whose init is
//! gone is a run that ended while no daemon ran: its leftovers go and its
//! exit goes through the lifecycle (restart policy). Whatever cannot be
//! matched is removed and logged.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Instant, SystemTime};

use nix::sys::epoll::EpollFlags;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::lifecycle::Event;
use super::services::Services;
use super::state_file::{self, ServiceRecord};
use super::supervised::Run;
use super::sys;
use crate::container;

use super::poller::PIDFD;

/// Test hook, honoured only when set: `SUPERVISOR_TEST_CRASH_AT=start|stop|freeze`
/// makes the daemon SIGKILL itself right after it began that step (spawned a
/// container, sent the stop signal, asked the freezer), so that tests can
/// check what the next daemon makes of it.
pub fn crash_hook(step: &str) {
    if std::env::var_os("SUPERVISOR_TEST_CRASH_AT").is_some_and(|at| at == step) {
        log::error!("SUPERVISOR_TEST_CRASH_AT={step}: killing myself (test hook)");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

impl Services {
    /// Takes over what the records in state_dir describe; the names handled
    /// (adopted, or ended while no daemon ran) go to `adopted`, which
    /// autostart skips.
    pub fn adopt_all(&mut self) {
        let began = Instant::now();
        let state_dir = self.config.state_dir.clone();
        let mut handled = BTreeSet::new();
        for (name, record) in state_file::read_all(&state_dir) {
            let record = match record {
                Ok(record) => record,
                Err(err) => {
                    log::warn!(
                        "{name}: unreadable state record ({err}): its leftovers are removed"
                    );
                    self.remove_leftovers(&name, None);
                    continue;
                }
            };
            let Some(idx) = self.index(&name) else {
                log::warn!(
                    "{name}: recorded but not in the service list: its leftovers are removed"
                );
                self.remove_leftovers(&name, record.container.layer_to_remove.as_deref());
                continue;
            };
            if self.adopt(idx, &record) {
                handled.insert(name);
            }
        }
        // Stopped on request (or given up on) under the earlier daemon: left so.
        for name in state_file::stopped(&state_dir) {
            if self.index(&name).is_some() && !handled.contains(&name) {
                self.marked_stopped.insert(name.clone());
                handled.insert(name);
            } else {
                state_file::mark_stopped(&state_dir, &name, false);
            }
        }
        if !handled.is_empty() {
            log::info!(
                "{} services taken over in {:?}",
                handled.len(),
                began.elapsed()
            );
        }
        self.adopted.extend(handled.iter().cloned());
        // A group with processes but no record: a start cut short (or a run
        // of a daemon that kept no records).
        let names: Vec<String> = self.list.iter().map(|s| s.name().to_string()).collect();
        for name in names {
            if !handled.contains(&name) && container::cgroup_populated(&self.config, &name) {
                log::warn!("{name}: its cgroup has processes but no state record: they are killed and removed");
                self.remove_leftovers(&name, None);
            }
        }
    }

    /// Adopts the run of `record`, or handles its end; false if the service
    /// is to be started as if nothing had run.
    fn adopt(&mut self, idx: usize, record: &ServiceRecord) -> bool {
        let name = record.name.clone();
        let id = self.list[idx].id;
        let alive = state_file::start_time(record.pid) == Some(record.start_time);
        if alive && !self.list[idx].service.networks.is_empty() {
            // Its bridges were rebuilt at this daemon's start: it starts afresh.
            self.logs.note(
                &name,
                &format!(
                    "pid {} is on networks, which are rebuilt at start: killed, started again",
                    record.pid
                ),
            );
            self.remove_leftovers(&name, record.container.layer_to_remove.as_deref());
            return false;
        }
        let pid = Pid::from_raw(record.pid);
        let adopted = if alive {
            sys::pidfd_open(record.pid)
                .map_err(|err| format!("pidfd_open: {err}"))
                .and_then(|pidfd| {
                    container::adopt(
                        &self.config,
                        &self.list[idx].service,
                        pid,
                        &record.container,
                    )
                    .map_err(|err| err.to_string())
                    .map(|container| (pidfd, container))
                })
                .and_then(|(pidfd, container)| {
                    let in_group = container
                        .cgroup
                        .procs()
                        .is_ok_and(|procs| procs.contains(&record.pid));
                    if in_group {
                        Ok((pidfd, container))
                    } else {
                        Err(format!(
                            "pid {} is not in {}",
                            record.pid,
                            container.cgroup.path()
                        ))
                    }
                })
        } else {
            Err("gone".to_string())
        };
        let since = Instant::now()
            .checked_sub(
                SystemTime::now()
                    .duration_since(state_file::from_wall_seconds(record.up_since))
                    .unwrap_or_default(),
            )
            .unwrap_or_else(Instant::now);
        let adopted_event = Event::Adopted {
            pid: record.pid,
            since,
            frozen: record.frozen,
            restarts: record.restarts,
            ready: record.ready,
        };
        match adopted {
            Ok((pidfd, container)) => {
                if !record.frozen {
                    // A freeze cut short by a crash: undone.
                    let _ = container.cgroup.begin_set_frozen(false);
                }
                self.take_log_pipe(&name, &pidfd, record);
                let token = self.poller.token(PIDFD);
                if let Err(err) = self.poller.add(pidfd.as_fd(), EpollFlags::EPOLLIN, token) {
                    log::warn!("{name}: watching pid {}: {err}", record.pid);
                }
                let svc = &mut self.list[idx];
                svc.run = Run::Up(container);
                svc.pidfd = Some((pidfd, token));
                self.recorded_as(id, record.clone());
                self.feed(id, adopted_event);
                if record.restarting {
                    self.logs.note(&name, "a restart was under way: restarting");
                    self.feed(id, Event::Restart);
                } else if record.stopping {
                    self.logs.note(&name, "a stop was under way: stopping");
                    self.feed(id, Event::Stop);
                }
                true
            }
            Err(why) => {
                // Ended while no daemon ran: what init wrote, else it was
                // SIGKILLed (it blocks every other signal).
                let code = state_file::exit_code(&self.config.state_dir, &name);
                self.logs.note(
                    &name,
                    &format!(
                        "pid {} ended while no daemon ran ({why}), {}: its leftovers are removed",
                        record.pid,
                        match code {
                            Some(code) => format!("exit status {code}"),
                            None => "killed (no exit status)".to_string(),
                        }
                    ),
                );
                self.remove_leftovers(&name, record.container.layer_to_remove.as_deref());
                self.feed(id, adopted_event);
                let (code, signaled) = code.map_or((128 + libc::SIGKILL, true), |c| (c, false));
                self.feed(
                    id,
                    Event::InitExited(super::lifecycle::Exit {
                        code,
                        signaled,
                        oom_killed: false,
                    }),
                );
                if record.restarting {
                    // Its restart's stop ended it: the start is still owed.
                    self.feed(id, Event::Restart);
                } else if record.stopping {
                    // Its stop was what ended it.
                    self.feed(id, Event::Stop);
                }
                true
            }
        }
    }

    /// Takes the read end of the run's log pipe back from its init.
    fn take_log_pipe(&mut self, name: &str, pidfd: &OwnedFd, record: &ServiceRecord) {
        match sys::pidfd_getfd(pidfd.as_fd(), record.log_fd) {
            Ok(fd) => {
                if !record.partial_line.is_empty() {
                    self.partial_lines
                        .insert(name.to_string(), record.partial_line.clone());
                }
                self.new_pipes.push((name.to_string(), fd));
            }
            Err(err) => self.logs.note(
                name,
                &format!(
                    "taking its log pipe back from pid {}: {err}: its output is lost",
                    record.pid
                ),
            ),
        }
    }

    fn remove_leftovers(&mut self, name: &str, layer: Option<&std::path::Path>) {
        if let Err(err) = container::remove_leftovers(&self.config, name, layer) {
            log::warn!("{name}: removing leftovers: {err}");
        }
        state_file::remove(&self.config.state_dir, name);
    }

    /// An adopted init's pidfd is readable: it exited. Its status comes from
    /// waitpid if it is our child (after a reexec), else from the file init
    /// wrote it to, else it was SIGKILLed.
    pub fn pidfd_ready(&mut self, token: u64) {
        let Some(idx) = self
            .list
            .iter()
            .position(|s| s.pidfd.as_ref().is_some_and(|(_, t)| *t == token))
        else {
            return;
        };
        let Some(pid) = self.list[idx].pid() else {
            return;
        };
        let (code, signaled) = match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => (code, false),
            Ok(WaitStatus::Signaled(_, signal, _)) => (128 + signal as i32, true),
            Ok(WaitStatus::StillAlive) => return,
            _ => match state_file::exit_code(&self.config.state_dir, self.list[idx].name()) {
                Some(code) => (code, false),
                None => (128 + libc::SIGKILL, true),
            },
        };
        self.on_exit(idx, code, signaled);
    }
}
