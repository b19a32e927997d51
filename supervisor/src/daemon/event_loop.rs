//! The daemon's single loop: one epoll wait over the signalfd (SIGCHLD, SIGTERM,
//! SIGINT, SIGHUP), the control socket, client connections and the services'
//! log pipes, with the nearest restart or stop deadline as its timeout. When
//! nothing is due it sleeps until something happens.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::epoll::{EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Gid;

use super::control::{self, Connection, Received};
use super::lifecycle::Wait;
use super::outbox::{Outgoing, CLIENT_TIMEOUT};
use super::output::LogPipe;
use super::poller::{
    Poller, CGROUP, CONNECTION, HEALTH, KINDS, NOTIFY, PIDFD, PIPE, REPLY, SETUP, SUBSCRIBER,
};
use super::services::Services;
use super::subscribers::Subscribers;
use crate::protocol::{self, ReloadReport, Response};

const SIGNALS: u64 = 0;
const LISTENER: u64 = 1;

/// The signals the loop reads from its signalfd (blocked for normal delivery).
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        set.add(signal);
    }
    // PID 1 of the machine: the power signals too (busybox's poweroff and friends).
    if crate::boot::active() {
        for signal in crate::boot::power_signals() {
            set.add(signal);
        }
    }
    set
}

/// A client waiting for services to get where it asked them to be.
pub struct Waiter {
    pub stream: UnixStream,
    /// (service, what) still to come.
    pub pending: Vec<(String, Wait)>,
    /// One line per service that did not get there.
    pub errors: Vec<String>,
    /// What the answer is once everything has come.
    pub reply: Reply,
}

pub enum Reply {
    Done,
    Reload(ReloadReport),
}

pub struct Daemon {
    pub poller: Rc<Poller>,
    signals: SignalFd,
    listener: UnixListener,
    pub state_dir: PathBuf,
    /// The state_dir came from the command line, not the file.
    pub state_dir_overridden: bool,
    pub gid: Option<Gid>,
    pub services: Services,
    /// Clients until their request is complete, with when they connected.
    connections: HashMap<u64, (Connection, Instant)>,
    /// Answers the clients' sockets have not taken yet.
    outgoing: HashMap<u64, Outgoing>,
    pipes: HashMap<u64, LogPipe>,
    pub waiters: Vec<Waiter>,
    pub shutdown_waiters: Vec<UnixStream>,
    pub shutting_down: bool,
    /// The autostart services until each has come up or failed: then the
    /// service manager (systemd's `Type=notify`) is told the daemon is ready.
    unready: Option<Vec<String>>,
    /// After a reexec: the client that asked, answered once this image runs.
    pub reexec_client: Option<UnixStream>,
    /// systemd's watchdog on the daemon: the period of WATCHDOG=1 and the next one.
    watchdog: Option<(std::time::Duration, Instant)>,
    /// `events` clients.
    pub subscribers: Subscribers,
}

impl Daemon {
    /// `signals` must already be blocked in this thread.
    pub fn new(
        listener: UnixListener,
        state_dir: PathBuf,
        state_dir_overridden: bool,
        gid: Option<Gid>,
        poller: Rc<Poller>,
        services: Services,
    ) -> anyhow::Result<Self> {
        let signals = SignalFd::with_flags(
            &handled_signals(),
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        )
        .context("signalfd")?;
        poller
            .add(signals.as_fd(), EpollFlags::EPOLLIN, SIGNALS)
            .context("epoll_ctl")?;
        poller
            .add(listener.as_fd(), EpollFlags::EPOLLIN, LISTENER)
            .context("epoll_ctl")?;
        Ok(Daemon {
            poller,
            signals,
            listener,
            state_dir,
            state_dir_overridden,
            gid,
            services,
            connections: HashMap::new(),
            outgoing: HashMap::new(),
            pipes: HashMap::new(),
            waiters: Vec::new(),
            shutdown_waiters: Vec::new(),
            shutting_down: false,
            unready: None,
            reexec_client: None,
            watchdog: crate::sd_notify::watchdog_period().map(|period| (period, Instant::now())),
            subscribers: Subscribers::default(),
        })
    }

    /// Starts the autostart services, then supervises until shutdown.
    pub fn run(mut self) -> anyhow::Result<()> {
        let autostart: Vec<String> = self
            .services
            .config
            .start_order()
            .into_iter()
            .filter(|s| s.autostart)
            .map(|s| s.name.clone())
            .collect();
        if let Some(client) = self.reexec_client.take() {
            // The client that asked for the reexec: this image is up.
            self.reply(client, &Response::Done);
        }
        let fresh: Vec<&String> = autostart
            .iter()
            .filter(|name| !self.services.adopted.contains(*name))
            .collect();
        for name in fresh {
            // Failures are in status and the service's log; the others still start.
            self.services.start(name);
        }
        self.unready = Some(autostart);
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            self.settle();
            self.notify_ready();
            if self.shutting_down && self.services.all_down() {
                break;
            }
            let timeout = self.timeout();
            let count = match self.poller.epoll.wait(&mut events, timeout) {
                Ok(count) => count,
                Err(Errno::EINTR) => continue,
                Err(err) => return Err(err).context("epoll_wait"),
            };
            for event in &events[..count] {
                self.dispatch(event.data());
                // The next client of this batch sees what this event started
                // (a start's spawn, not only its request).
                self.settle();
            }
            self.services.run_timers(Instant::now());
            self.expire_clients(Instant::now());
            self.ping_watchdog(Instant::now());
            crate::boot::tick(Instant::now());
        }
        self.finish();
        Ok(())
    }

    /// After any event: starts and stops that may now proceed, new log pipes
    /// to watch, answers that are ready.
    /// READY=1 once no autostart service is still starting (each runs, or
    /// failed, or waits for a retry).
    fn notify_ready(&mut self) {
        let Some(names) = &self.unready else { return };
        if names.iter().any(|name| self.services.is_starting(name)) {
            return;
        }
        let up = names.iter().filter(|n| self.services.is_up(n)).count();
        crate::sd_notify::ready(&format!(
            "{up} of {} autostart services started",
            names.len()
        ));
        self.unready = None;
    }

    /// WATCHDOG=1 to systemd when due: the loop turns.
    fn ping_watchdog(&mut self, now: Instant) {
        if let Some((period, next)) = &mut self.watchdog {
            if *next <= now {
                crate::sd_notify::watchdog();
                *next = now + *period;
            }
        }
    }

    fn settle(&mut self) {
        self.services.settle();
        for (service, fd) in std::mem::take(&mut self.services.new_pipes) {
            self.watch_pipe(service, fd);
        }
        self.answer_waiters();
        self.publish_events();
    }

    /// Until the nearest deadline, rounded up to whole milliseconds; none: forever.
    fn timeout(&self) -> EpollTimeout {
        let clients = self
            .connections
            .values()
            .map(|(_, since)| *since + CLIENT_TIMEOUT)
            .chain(self.outgoing.values().map(|o| o.deadline))
            .chain(self.watchdog.map(|(_, next)| next));
        let Some(deadline) = self
            .services
            .next_deadline()
            .into_iter()
            .chain(clients)
            .chain(crate::boot::next_deadline())
            .min()
        else {
            return EpollTimeout::NONE;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let millis = left.as_micros().div_ceil(1000);
        EpollTimeout::try_from(millis).unwrap_or(EpollTimeout::MAX)
    }

    fn dispatch(&mut self, token: u64) {
        match token {
            SIGNALS => self.read_signals(),
            LISTENER => self.accept(),
            t => match t & KINDS {
                CONNECTION => self.read_connection(t),
                PIPE => self.read_pipe(t),
                SETUP => self.services.setup_readable(t),
                REPLY => self.write_reply(t),
                CGROUP => self.services.cgroup_event(t),
                HEALTH => self.services.probe_output(t),
                NOTIFY => self.services.notify_readable(t),
                SUBSCRIBER => self.subscriber_ready(t),
                PIDFD => self.services.pidfd_ready(t),
                _ => {}
            },
        }
    }

    fn read_signals(&mut self) {
        loop {
            match self.signals.read_signal() {
                Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => self.reap_children(),
                    // A reload would start services again and the shutdown never end.
                    Ok(Signal::SIGHUP) if self.shutting_down => {
                        log::info!("SIGHUP ignored: the daemon is shutting down");
                    }
                    Ok(Signal::SIGHUP) => match self.reload() {
                        Ok((report, _)) => log::info!("reload on SIGHUP: {report:?}"),
                        Err(err) => log::error!("reload on SIGHUP: {err}"),
                    },
                    Ok(signal)
                        if crate::boot::action_for(signal).is_some() && crate::boot::active() =>
                    {
                        if let Some(action) = crate::boot::action_for(signal) {
                            crate::boot::request(action);
                        }
                        self.begin_shutdown();
                    }
                    Ok(signal) => {
                        log::info!("{signal}: stopping every service");
                        self.begin_shutdown();
                    }
                    Err(_) => {}
                },
                Ok(None) => return,
                Err(Errno::EINTR) => continue,
                Err(err) => {
                    log::error!("reading signals: {err}");
                    return;
                }
            }
        }
    }

    /// Handles every child exit that has happened, SIGCHLD read or not.
    pub fn reap_children(&mut self) {
        let exits = self.services.collect_exits();
        if exits.is_empty() {
            // Only health checks exited: the log pipes have nothing to do with it.
            return;
        }
        // What a service printed before it exited goes into its log ahead of
        // the exit line.
        self.drain_pipes();
        self.services.handle_exits(exits);
    }

    pub fn begin_shutdown(&mut self) {
        if !self.shutting_down {
            self.shutting_down = true;
            crate::sd_notify::stopping();
            self.services.stop_all();
        }
    }

    fn accept(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                // Out of descriptors: the client that has waited longest without
                // sending a whole request makes room (else the listener, still
                // readable, would wake the loop at once, again and again).
                Err(err)
                    if matches!(
                        Errno::from_raw(err.raw_os_error().unwrap_or(0)),
                        Errno::EMFILE | Errno::ENFILE
                    ) && self.drop_oldest_connection() =>
                {
                    continue
                }
                Err(err) => {
                    log::warn!("accept: {err}");
                    return;
                }
            };
            if let Err(message) = self.admit(&stream) {
                self.reply(stream, &Response::Error { message });
                continue;
            }
            let token = self.poller.token(CONNECTION);
            let connection = match Connection::new(stream) {
                Ok(connection) => connection,
                Err(err) => {
                    log::warn!("client connection: {err}");
                    continue;
                }
            };
            if let Err(err) = self
                .poller
                .add(connection.stream.as_fd(), EpollFlags::EPOLLIN, token)
            {
                log::warn!("epoll_ctl: {err}");
                continue;
            }
            self.connections.insert(token, (connection, Instant::now()));
        }
    }

    /// The uid/group check, then the check that the peer is in none of the
    /// services' cgroups (making room once when out of descriptors for it).
    fn admit(&mut self, stream: &UnixStream) -> Result<(), String> {
        control::peer_allowed(stream, self.gid)?;
        let services = &self.services;
        let parents: Vec<String> = std::iter::once(services.config.cgroup_parent.clone())
            .chain(services.old_cgroup_parents.iter().map(|(_, p)| p.clone()))
            .collect();
        let check = || control::peer_outside_services(stream, parents.iter().map(String::as_str));
        let mut outcome = check();
        if matches!(outcome, Err(control::PeerCheck::NoDescriptor)) && self.drop_oldest_connection()
        {
            outcome = check();
        }
        outcome.map_err(|check| match check {
            control::PeerCheck::Refused(message) => message,
            control::PeerCheck::NoDescriptor => {
                "refused: the daemon is out of file descriptors; try again".to_string()
            }
        })
    }

    fn read_connection(&mut self, token: u64) {
        let Some((connection, _)) = self.connections.get_mut(&token) else {
            return;
        };
        let received = connection.read();
        if let Received::Partial = received {
            return;
        }
        let (connection, _) = self.connections.remove(&token).expect("looked up above");
        self.poller.delete(connection.stream.as_fd());
        match received {
            Received::Request(request) => self.handle(connection.stream, request),
            Received::Invalid(message) => {
                self.reply(connection.stream, &Response::Error { message })
            }
            Received::Partial => {}
        }
    }

    fn watch_pipe(&mut self, service: String, fd: OwnedFd) {
        if let Err(err) = fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
        ) {
            log::warn!("{service}: log pipe: {err}");
        }
        let token = self.poller.token(PIPE);
        if let Err(err) = self.poller.add(fd.as_fd(), EpollFlags::EPOLLIN, token) {
            log::warn!("{service}: watching its log pipe: {err}");
            return;
        }
        let mut pipe = LogPipe::new(service, fd);
        if let Some(start) = self.services.partial_lines.remove(&pipe.service) {
            pipe.resume(&start);
        }
        self.pipes.insert(token, pipe);
    }

    fn read_pipe(&mut self, token: u64) {
        let Some(pipe) = self.pipes.get_mut(&token) else {
            return;
        };
        if !pipe.drain(&mut self.services.logs) {
            let pipe = self.pipes.remove(&token).expect("looked up above");
            self.poller.delete(pipe.fd.as_fd());
        }
    }

    /// Sends `response` and closes: at once if the socket takes it, else as
    /// the client reads (EPOLLOUT).
    pub fn reply(&mut self, stream: UnixStream, response: &Response) {
        self.send(stream, protocol::encode(response));
    }

    /// Sends lines already encoded and closes, as `reply`.
    pub fn send(&mut self, stream: UnixStream, bytes: Vec<u8>) {
        if let Err(err) = stream.set_nonblocking(true) {
            log::debug!("answering a client: {err}");
            return;
        }
        let mut outgoing = Outgoing::bytes(stream, bytes);
        if outgoing.flush() {
            return;
        }
        let token = self.poller.token(REPLY);
        match self
            .poller
            .add(outgoing.stream.as_fd(), EpollFlags::EPOLLOUT, token)
        {
            Ok(()) => {
                self.outgoing.insert(token, outgoing);
            }
            Err(err) => log::warn!("epoll_ctl: {err}"),
        }
    }

    fn write_reply(&mut self, token: u64) {
        let Some(outgoing) = self.outgoing.get_mut(&token) else {
            return;
        };
        if outgoing.flush() {
            let outgoing = self.outgoing.remove(&token).expect("looked up above");
            self.poller.delete(outgoing.stream.as_fd());
        }
    }

    /// Closes the connection that has waited longest for its request; false
    /// if there is none.
    fn drop_oldest_connection(&mut self) -> bool {
        let Some(token) = self
            .connections
            .iter()
            .min_by_key(|(_, (_, since))| *since)
            .map(|(token, _)| *token)
        else {
            return false;
        };
        if let Some((connection, _)) = self.connections.remove(&token) {
            self.poller.delete(connection.stream.as_fd());
        }
        log::warn!("out of descriptors: dropped the oldest client without a request");
        true
    }

    /// Drops clients that have not sent their request, or read their answer,
    /// within CLIENT_TIMEOUT: they cannot hold the daemon's descriptors.
    fn expire_clients(&mut self, now: Instant) {
        let late: Vec<u64> = self
            .connections
            .iter()
            .filter(|(_, (_, since))| now >= *since + CLIENT_TIMEOUT)
            .map(|(token, _)| *token)
            .collect();
        for token in late {
            if let Some((connection, _)) = self.connections.remove(&token) {
                self.poller.delete(connection.stream.as_fd());
                log::debug!("dropping a client that sent no whole request");
            }
        }
        let late: Vec<u64> = self
            .outgoing
            .iter()
            .filter(|(_, o)| now >= o.deadline)
            .map(|(token, _)| *token)
            .collect();
        for token in late {
            if let Some(outgoing) = self.outgoing.remove(&token) {
                self.poller.delete(outgoing.stream.as_fd());
                log::debug!("dropping a client that did not read its answer");
            }
        }
    }

    /// The control socket's listener (kept through a reexec).
    pub fn listener_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.listener)
    }

    /// Before a reexec: what every pipe holds goes to the logs; returns the
    /// line starts read but not yet ended, by service.
    pub fn flush_pipes(&mut self) -> HashMap<String, Vec<u8>> {
        self.drain_pipes();
        self.pipes
            .values()
            .filter(|pipe| !pipe.pending().is_empty())
            .map(|pipe| (pipe.service.clone(), pipe.pending().to_vec()))
            .collect()
    }

    /// Reads what every log pipe holds now; forgets the pipes at end of stream.
    fn drain_pipes(&mut self) {
        let tokens: Vec<u64> = self.pipes.keys().copied().collect();
        for token in tokens {
            self.read_pipe(token);
        }
    }

    /// Every service is down: keep what they last printed, remove the socket,
    /// tell the clients that asked for the shutdown.
    fn finish(&mut self) {
        self.drain_pipes();
        // Nothing runs: nothing for a next daemon to adopt or leave stopped.
        super::state_file::remove_config(&self.state_dir);
        for name in std::mem::take(&mut self.services.marked_stopped) {
            super::state_file::mark_stopped(&self.state_dir, &name, false);
        }
        // Gone once empty, as the teardowns would have removed it.
        let _ = std::fs::remove_dir(self.state_dir.join("containers"));
        self.services.remove_cgroup_parents();
        self.close_subscribers();
        let socket = control::socket_file(&self.state_dir);
        if let Err(err) = std::fs::remove_file(&socket) {
            log::warn!("removing {}: {err}", socket.display());
        }
        // The last answers may wait for nobody: written blocking, bounded.
        for waiter in self.waiters.drain(..) {
            let message = "the daemon shut down".to_string();
            control::reply(waiter.stream, &Response::Error { message });
        }
        for (_, outgoing) in self.outgoing.drain() {
            let mut outgoing = outgoing;
            let _ = outgoing.stream.set_nonblocking(false);
            let _ = outgoing.stream.set_write_timeout(Some(CLIENT_TIMEOUT));
            outgoing.flush();
        }
        for stream in self.shutdown_waiters.drain(..) {
            control::reply(stream, &Response::Done);
        }
        log::info!("every service stopped; exiting");
    }
}
