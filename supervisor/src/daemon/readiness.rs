//! Readiness of the supervised services: `is_ready`, the sd_notify sockets of
//! `ready: notify` services (opened at each spawn, read from epoll, closed at
//! teardown) and the conditions of `depends_on`.

use std::path::PathBuf;

use config::{Condition, Ready};
use nix::sys::epoll::EpollFlags;

use super::lifecycle::{Event, State};
use super::notify::{self, NotifySocket};
use super::poller;
use super::services::Services;
use super::supervised::{Run, Supervised};

impl Supervised {
    /// Ready: it runs (or is frozen) and, with `ready: notify`, has sent
    /// READY=1 during this run and, with a `healthcheck`, has passed a check
    /// during this run (with both, both).
    pub fn is_ready(&self) -> bool {
        let notified = self.service.ready != Ready::Notify || self.life.ready;
        let healthy = self.service.healthcheck.is_none()
            || self
                .health
                .as_ref()
                .is_some_and(|h| h.tracker.passed_first_check());
        self.life.state.is_up() && notified && healthy
    }

    /// Its health checks failed `retries` times before any passed: it will
    /// not become ready in this run (Compose fails the dependent too).
    fn unhealthy_before_ready(&self) -> bool {
        self.health.as_ref().is_some_and(|h| {
            h.tracker.state == crate::protocol::Health::Unhealthy && !h.tracker.passed_first_check()
        })
    }

    /// Whether `condition` of a dependent on this service holds: Some(true)
    /// met, Some(false) not yet, None never (it failed, or stopped).
    pub fn meets(&self, condition: Condition) -> Option<bool> {
        let state = &self.life.state;
        let on_its_way = matches!(
            state,
            State::Pending | State::Starting { .. } | State::SetupFailing { .. }
        ) || state.then() == Some(super::lifecycle::After::Start);
        match condition {
            Condition::ServiceStarted => match state {
                s if s.is_up() => Some(true),
                State::Exited => Some(true),
                _ if on_its_way => Some(false),
                _ => None,
            },
            Condition::ServiceHealthy => match state {
                _ if self.unhealthy_before_ready() => None,
                s if s.is_up() => Some(self.is_ready()),
                _ if on_its_way => Some(false),
                _ => None,
            },
            Condition::ServiceCompletedSuccessfully => match state {
                State::Exited => Some(true),
                s if s.is_up() => Some(false),
                _ if on_its_way => Some(false),
                _ => None,
            },
        }
    }

    /// Why a dependent's `condition` on this service will not be met.
    pub fn unmet(&self, condition: Condition) -> String {
        let name = self.name();
        let why = self
            .life
            .error
            .clone()
            .or_else(|| {
                let exit = self.life.last_exit?;
                let code = exit.code?;
                Some(format!("exited with status {code}"))
            })
            .unwrap_or_else(|| format!("it is {}", self.life.state.word().as_str()));
        match condition {
            Condition::ServiceHealthy if self.unhealthy_before_ready() => {
                format!(
                    "not started: dependency {name} is unhealthy: it never passed a health check"
                )
            }
            Condition::ServiceHealthy if self.life.state == State::Exited => {
                format!("not started: dependency {name} exited before it was ready")
            }
            Condition::ServiceCompletedSuccessfully => {
                format!("not started: dependency {name} did not complete successfully: {why}")
            }
            _ => format!("not started: dependency {name} failed: {why}"),
        }
    }
}

impl Services {
    /// Opens the sd_notify socket of the service at `idx` for a new run, if
    /// it has `ready: notify`: its host path, for the spawn.
    pub(super) fn open_notify(&mut self, idx: usize) -> Result<Option<PathBuf>, String> {
        let svc = &mut self.list[idx];
        svc.notify = None;
        svc.status_text = None;
        if svc.service.ready != Ready::Notify {
            return Ok(None);
        }
        let name = svc.service.name.clone();
        let socket = NotifySocket::bind(&self.config.state_dir, &name)
            .map_err(|err| format!("creating its notify socket: {err}"))?;
        let token = self.poller.token(poller::NOTIFY);
        self.poller
            .add(socket.fd(), EpollFlags::EPOLLIN, token)
            .map_err(|err| format!("watching its notify socket: {err}"))?;
        let svc = &mut self.list[idx];
        svc.notify = Some((socket, token));
        Ok(Some(NotifySocket::path(&self.config.state_dir, &name)))
    }

    /// The run is over: its socket goes (closing it takes it out of epoll),
    /// and with it the run's status text.
    pub(super) fn close_notify(&mut self, idx: usize) {
        self.list[idx].notify = None;
        self.list[idx].status_text = None;
    }

    /// The notify socket of `token` is readable.
    pub fn notify_readable(&mut self, token: u64) {
        let Some(idx) = self
            .list
            .iter()
            .position(|s| matches!(&s.notify, Some((_, t)) if *t == token))
        else {
            return;
        };
        let svc = &self.list[idx];
        let Some((socket, _)) = &svc.notify else {
            return;
        };
        let datagrams = socket.receive();
        let id = svc.id;
        let name = svc.name().to_string();
        // A message of its command means that its setup has ended: what the
        // setup pipe says goes first. Both can come in one epoll batch, in
        // either order, and a READY=1 taken while still `starting` is lost.
        if matches!(svc.run, Run::Starting(_)) {
            self.read_setup(idx);
        }
        for datagram in datagrams {
            let Some(idx) = self.list.iter().position(|s| s.id == id) else {
                return;
            };
            if !self.list[idx].sent_from_inside(datagram.pid) {
                let from = datagram
                    .pid
                    .map_or_else(|| "an unknown process".into(), |p| format!("pid {p}"));
                log::warn!("{name}: notify message from {from}, outside its cgroup: ignored");
                continue;
            }
            let message = notify::parse(&datagram.text);
            if let Some(status) = message.status {
                self.list[idx].status_text = Some(status);
            }
            if message.stopping {
                self.logs.note(&name, "STOPPING=1: it is stopping");
            }
            if message.ready {
                self.feed(id, Event::Ready);
            }
            if message.watchdog {
                self.feed(id, Event::WatchdogPing);
            }
        }
    }

    /// A start of `name` need not run dependency `dep` again: it completed
    /// successfully and some service of the start waits for exactly that.
    pub(super) fn completed_for(&self, dep: &str, needed: &[String]) -> bool {
        let Some(idx) = self.index(dep) else {
            return false;
        };
        matches!(self.list[idx].life.state, State::Exited)
            && needed.iter().any(|n| {
                self.index(n).is_some_and(|i| {
                    let service = &self.list[i].service;
                    service.depends_on.iter().any(|d| d == dep)
                        && service.condition(dep) == Condition::ServiceCompletedSuccessfully
                })
            })
    }
}

impl Supervised {
    /// A datagram's sender is a process of this service's cgroup.
    fn sent_from_inside(&self, pid: Option<i32>) -> bool {
        let (Some(pid), Some(cgroup)) = (pid, self.cgroup()) else {
            return false;
        };
        notify::in_cgroup(pid, cgroup.path())
            || cgroup.procs().is_ok_and(|procs| procs.contains(&pid))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use super::*;
    use crate::daemon::lifecycle::{After, ExitReason, LastExit};

    fn service(keys: &str) -> Supervised {
        let yaml = format!("services:\n  db:\n    command: [/bin/db]\n{keys}");
        let config =
            config::parse_str(&yaml, Path::new("/services.yaml")).unwrap_or_else(|e| panic!("{e}"));
        Supervised::new(1, config.services[0].clone())
    }

    #[test]
    fn dependency_conditions() {
        use Condition::*;
        let t = Instant::now();
        let run = State::Running { since: t };
        let frozen = State::Frozen { since: t };
        let starting = State::Starting { deadline: t };
        let restarting = State::Stopping {
            then: After::Start,
            deadline: t,
        };
        let backoff = State::Backoff { until: t };
        // (ready: notify, READY=1 came, state, condition) -> met
        #[rustfmt::skip]
        let table = [
            (false, false, run.clone(), ServiceStarted, Some(true)),
            (false, false, run.clone(), ServiceHealthy, Some(true)),
            (true, false, run.clone(), ServiceStarted, Some(true)),
            (true, false, run.clone(), ServiceHealthy, Some(false)),
            (true, true, run.clone(), ServiceHealthy, Some(true)),
            (true, true, frozen.clone(), ServiceHealthy, Some(true)),
            (false, false, run.clone(), ServiceCompletedSuccessfully, Some(false)),
            (false, false, State::Exited, ServiceCompletedSuccessfully, Some(true)),
            (false, false, State::Exited, ServiceStarted, Some(true)),
            (false, false, State::Exited, ServiceHealthy, None),
            (false, false, State::Failed, ServiceCompletedSuccessfully, None),
            (false, false, backoff.clone(), ServiceCompletedSuccessfully, None),
            (false, false, backoff.clone(), ServiceHealthy, None),
            (false, false, State::Stopped, ServiceStarted, None),
            (false, false, State::Pending, ServiceCompletedSuccessfully, Some(false)),
            (false, false, starting.clone(), ServiceHealthy, Some(false)),
            (true, true, restarting.clone(), ServiceHealthy, Some(false)),
        ];
        for (row, (notify, ready, state, condition, met)) in table.into_iter().enumerate() {
            let mut svc = service(if notify { "    ready: notify\n" } else { "" });
            svc.life.state = state.clone();
            svc.life.ready = ready;
            assert_eq!(
                svc.meets(condition),
                met,
                "row {row}: {state:?} {condition:?}"
            );
        }
    }

    #[test]
    fn unmet_conditions_name_the_dependency_and_why() {
        let mut svc = service("");
        svc.life.state = State::Failed;
        svc.life.last_exit = Some(LastExit {
            code: Some(3),
            reason: ExitReason::Exited,
            at: Instant::now(),
        });
        assert_eq!(
            svc.unmet(Condition::ServiceCompletedSuccessfully),
            "not started: dependency db did not complete successfully: exited with status 3"
        );
        svc.life.error = Some("not ready within 60s (no READY=1)".into());
        assert_eq!(
            svc.unmet(Condition::ServiceHealthy),
            "not started: dependency db failed: not ready within 60s (no READY=1)"
        );
        svc.life.state = State::Exited;
        assert_eq!(
            svc.unmet(Condition::ServiceHealthy),
            "not started: dependency db exited before it was ready"
        );
    }
}
