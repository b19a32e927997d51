//! What each control request does. Requests that need a result (start and
//! restart: running or failed; stop: down; freeze and thaw: the kernel's
//! report; reload: its starts) park the connection as a waiter, answered when
//! the services' lifecycles say so; other clients are served meanwhile.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::control;
use super::event_loop::{Daemon, Reply, Waiter};
use super::lifecycle::{Event, Wait};
use crate::protocol::{ReloadReport, Request, Response};

impl Daemon {
    pub fn handle(&mut self, stream: UnixStream, request: Request) {
        log::debug!("request: {request:?}");
        if let Err(message) = self.services.check_names(named(&request)) {
            self.reply(stream, &Response::Error { message });
            return;
        }
        let response = match request {
            Request::Status { name } => Response::Status {
                services: self.services.status(name.as_deref()),
            },
            Request::Logs { name } => Response::Log {
                path: self.services.logs.path(&name),
            },
            // Also while shutting down: the stops are events too.
            Request::Events { since_ms } => {
                self.subscribe(stream, since_ms);
                return;
            }
            Request::Power { action } => {
                let response = self.power(&stream, action);
                self.reply(stream, &response);
                return;
            }
            Request::Shutdown => {
                self.begin_shutdown();
                self.shutdown_waiters.push(stream);
                return;
            }
            Request::Reexec if self.shutting_down => Response::Error {
                message: "the daemon is shutting down".into(),
            },
            Request::Reexec => {
                // Answered by the next image, or here if the exec fails.
                self.reexec(stream);
                return;
            }
            _ if self.shutting_down => Response::Error {
                message: "the daemon is shutting down".into(),
            },
            Request::Start { names } => {
                self.wait(stream, &names, Wait::Start, Reply::Done);
                for name in unique(&names) {
                    self.services.start(name);
                }
                return;
            }
            Request::Stop { names } => return self.each(stream, &names, Wait::Stop, Event::Stop),
            Request::Restart { names } => {
                return self.each(stream, &names, Wait::Start, Event::Restart)
            }
            Request::Freeze { names } => {
                // A service whose exit is not handled yet is not frozen: its
                // exit would count as a kill while frozen, without restart.
                self.reap_children();
                return self.each(stream, &names, Wait::Freeze, Event::Freeze);
            }
            Request::Thaw { names } => return self.each(stream, &names, Wait::Thaw, Event::Thaw),
            Request::Reload { path } => {
                if let Err(message) = self.same_file(path.as_deref()) {
                    self.reply(stream, &Response::Error { message });
                    return;
                }
                match self.reload() {
                    Ok((report, starting)) => {
                        let pending = starting.into_iter().map(|n| (n, Wait::Start)).collect();
                        self.waiters.push(Waiter {
                            stream,
                            pending,
                            errors: Vec::new(),
                            reply: Reply::Reload(report),
                        });
                        return;
                    }
                    Err(message) => Response::Error { message },
                }
            }
        };
        self.reply(stream, &response);
    }

    /// `poweroff`, `reboot`, `halt`: root only, and only when this daemon is
    /// PID 1 of the machine (a daemon under systemd must not take the host down).
    fn power(&mut self, stream: &UnixStream, action: crate::protocol::PowerAction) -> Response {
        let refuse = |message: String| Response::Error { message };
        if !crate::boot::active() {
            return refuse(format!(
                "refused: {} is for a supervisor that booted the machine (PID 1); this daemon is \
                 PID {} (use the host's own {0})",
                action.as_str(),
                std::process::id()
            ));
        }
        match control::peer_uid(stream) {
            Ok(0) => {}
            Ok(uid) => {
                return refuse(format!(
                    "permission denied: {} needs root, not uid {uid}",
                    action.as_str()
                ))
            }
            Err(message) => return refuse(message),
        }
        crate::boot::request(action);
        self.begin_shutdown();
        Response::Done
    }

    /// Parks the client until every named service has answered `wait`.
    fn wait(&mut self, stream: UnixStream, names: &[String], wait: Wait, reply: Reply) {
        self.waiters.push(Waiter {
            stream,
            pending: unique(names).map(|n| (n.clone(), wait)).collect(),
            errors: Vec::new(),
            reply,
        });
    }

    /// Feeds `event` to every named service; answers once each has answered `wait`.
    fn each(&mut self, stream: UnixStream, names: &[String], wait: Wait, event: Event) {
        self.wait(stream, names, wait, Reply::Done);
        for name in unique(names) {
            if let Some(id) = self.services.id(name) {
                self.services.feed(id, event.clone());
            }
        }
    }

    /// A reload names the daemon's own file, or none. Another file is refused:
    /// loading a file a client names would let a member of control_group run
    /// any command as root.
    fn same_file(&self, path: Option<&Path>) -> Result<(), String> {
        let Some(path) = path else { return Ok(()) };
        let ours = &self.services.config.path;
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        if canonical(path) == canonical(ours) {
            return Ok(());
        }
        Err(format!(
            "the daemon runs {}; reload re-reads that file, not {} (edit it, or restart the daemon with the other file)",
            ours.display(),
            path.display()
        ))
    }

    /// Re-reads the file the daemon was started with and reconciles. Returns
    /// what it did and the services it is starting.
    pub fn reload(&mut self) -> Result<(ReloadReport, Vec<String>), String> {
        let path: PathBuf = self.services.config.path.clone();
        let mut new =
            config::load(&path).map_err(|errors| errors.to_string().trim_end().to_string())?;
        if self.state_dir_overridden {
            new.state_dir = self.state_dir.clone();
        } else if new.state_dir != self.state_dir {
            return Err(format!(
                "{}: state_dir cannot change while the daemon runs (it is {})",
                path.display(),
                self.state_dir.display()
            ));
        }
        let gid =
            control::control_gid(new.control_group.as_deref()).map_err(|err| format!("{err:#}"))?;
        if gid != self.gid {
            control::share_state_dir(&self.state_dir, gid).map_err(|err| format!("{err:#}"))?;
            control::set_socket_access(&control::socket_file(&self.state_dir), gid)
                .map_err(|err| format!("{err:#}"))?;
            self.gid = gid;
        }
        crate::own_cgroup::prepare(&new, crate::own_cgroup::DAEMON_LEAF)
            .map_err(|err| format!("{err:#}"))?;
        log::info!("reloading {}", path.display());
        let record = super::state_file::ConfigRecord {
            path: new.path.clone(),
            text: std::fs::read_to_string(&path).unwrap_or_default(),
        };
        if let Err(err) = super::state_file::write_config(&self.state_dir, &record) {
            log::warn!("recording the service list: {err}");
        }
        Ok(self.services.reconcile(new))
    }

    /// Takes the answers the services gave; replies to the waiters that have all theirs.
    pub fn answer_waiters(&mut self) {
        for answer in std::mem::take(&mut self.services.answers) {
            for waiter in &mut self.waiters {
                let Some(at) = waiter
                    .pending
                    .iter()
                    .position(|(n, w)| *n == answer.service && *w == answer.wait)
                else {
                    continue;
                };
                waiter.pending.remove(at);
                if let Err(error) = &answer.result {
                    // "web is not running", "web: did not freeze within 10s".
                    let colon = if error.starts_with("is ") { "" } else { ":" };
                    waiter
                        .errors
                        .push(format!("{}{colon} {error}", answer.service));
                }
            }
        }
        let mut idx = 0;
        while idx < self.waiters.len() {
            if !self.waiters[idx].pending.is_empty() {
                idx += 1;
                continue;
            }
            let waiter = self.waiters.remove(idx);
            let response = match waiter.reply {
                Reply::Reload(mut report) => {
                    report.errors = waiter.errors;
                    Response::Reloaded(report)
                }
                Reply::Done if waiter.errors.is_empty() => Response::Done,
                Reply::Done => Response::Error {
                    message: waiter.errors.join("; "),
                },
            };
            self.reply(waiter.stream, &response);
        }
    }
}

/// Each name once (`stop web web` stops it once).
fn unique(names: &[String]) -> impl Iterator<Item = &String> {
    names
        .iter()
        .enumerate()
        .filter(|(i, n)| !names[..*i].contains(n))
        .map(|(_, n)| n)
}

/// The services a request names (all must exist).
fn named(request: &Request) -> &[String] {
    match request {
        Request::Start { names }
        | Request::Stop { names }
        | Request::Restart { names }
        | Request::Freeze { names }
        | Request::Thaw { names } => names,
        Request::Logs { name } | Request::Status { name: Some(name) } => std::slice::from_ref(name),
        Request::Status { name: None }
        | Request::Reload { .. }
        | Request::Shutdown
        | Request::Reexec
        | Request::Events { .. }
        | Request::Power { .. } => &[],
    }
}
