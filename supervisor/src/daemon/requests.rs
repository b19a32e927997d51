//! What each control request does. Requests that wait for services to go down
//! (stop, restart, start of a service still stopping) park the connection as a
//! waiter, answered by the loop once those services are settled.

use std::os::unix::net::UnixStream;

use super::control;
use super::event_loop::{Daemon, Waiter};
use crate::protocol::{Request, Response};

impl Daemon {
    pub fn handle(&mut self, stream: UnixStream, request: Request) {
        log::debug!("request: {request:?}");
        if let Err(message) = self.services.check_names(named(&request)) {
            control::reply(stream, &Response::Error { message });
            return;
        }
        let response = match request {
            Request::Status { name } => Response::Status {
                services: self.services.status(name.as_deref()),
            },
            Request::Logs { name } => Response::Log {
                path: self.services.logs.path(&name),
            },
            Request::Shutdown => {
                self.begin_shutdown();
                self.shutdown_waiters.push(stream);
                return;
            }
            _ if self.shutting_down => Response::Error {
                message: "the daemon is shutting down".into(),
            },
            Request::Start { names } => {
                for name in &names {
                    // Errors are collected from the final states by the waiter.
                    let _ = self.services.start(name);
                }
                return self.wait(stream, names, true);
            }
            Request::Stop { names } => {
                for idx in self.indices(&names) {
                    self.services.request_stop(idx, false);
                }
                return self.wait(stream, names, false);
            }
            Request::Restart { names } => {
                for idx in self.indices(&names) {
                    if self.services.list[idx].is_up() {
                        self.services.request_stop(idx, true);
                    } else {
                        // A restart starts from a fresh group, not the one a
                        // pending automatic restart kept.
                        self.services.discard_kept_cgroup(idx);
                        let name = self.services.list[idx].name().to_string();
                        let _ = self.services.start(&name);
                    }
                }
                return self.wait(stream, names, true);
            }
            Request::Freeze { names } => {
                // A service whose exit is not handled yet is not frozen: its
                // exit would count as a kill while frozen, without restart.
                self.reap_children();
                self.each(&names, |services, name| services.set_frozen(name, true))
            }
            Request::Thaw { names } => {
                self.each(&names, |services, name| services.set_frozen(name, false))
            }
            Request::Reload => match self.reload() {
                Ok(()) => Response::Done,
                Err(message) => Response::Error { message },
            },
        };
        control::reply(stream, &response);
    }

    fn indices(&self, names: &[String]) -> Vec<usize> {
        names
            .iter()
            .filter_map(|name| self.services.index(name))
            .collect()
    }

    /// Answers once the named services are settled (see `answer_waiters`).
    fn wait(&mut self, stream: UnixStream, names: Vec<String>, expect_running: bool) {
        self.waiters.push(Waiter {
            stream,
            names,
            expect_running,
        });
    }

    /// Applies `op` to every named service; errors joined.
    fn each(
        &mut self,
        names: &[String],
        mut op: impl FnMut(&mut super::services::Services, &str) -> Result<(), String>,
    ) -> Response {
        let errors: Vec<String> = names
            .iter()
            .filter_map(|name| op(&mut self.services, name).err())
            .collect();
        done_or_errors(errors)
    }

    /// Re-reads the file the daemon was started with and reconciles.
    pub fn reload(&mut self) -> Result<(), String> {
        let path = self.services.config.path.clone();
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
        for error in self.services.reconcile(new) {
            log::warn!("after reload: {error}");
        }
        Ok(())
    }

    /// Answers the waiters whose services have all settled.
    pub fn answer_waiters(&mut self) {
        let mut idx = 0;
        while idx < self.waiters.len() {
            let settled = self.waiters[idx]
                .names
                .iter()
                .all(|name| self.services.settled(name));
            if !settled {
                idx += 1;
                continue;
            }
            let waiter = self.waiters.remove(idx);
            let response = if waiter.expect_running {
                self.start_result(&waiter.names)
            } else {
                Response::Done
            };
            control::reply(waiter.stream, &response);
        }
    }

    fn start_result(&self, names: &[String]) -> Response {
        let errors: Vec<String> = names
            .iter()
            .filter_map(|name| {
                let svc = &self.services.list[self.services.index(name)?];
                if svc.is_up() {
                    return None;
                }
                Some(match &svc.error {
                    Some(error) => format!("{name}: {error}"),
                    None => format!("{name} is not running (state {})", svc.state().as_str()),
                })
            })
            .collect();
        done_or_errors(errors)
    }
}

/// Done, or one error line listing every failure.
fn done_or_errors(errors: Vec<String>) -> Response {
    if errors.is_empty() {
        Response::Done
    } else {
        Response::Error {
            message: errors.join("; "),
        }
    }
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
        Request::Status { name: None } | Request::Reload | Request::Shutdown => &[],
    }
}
