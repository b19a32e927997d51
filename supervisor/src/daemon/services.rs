//! The supervised services and the effects of their lifecycles: events go in
//! through `feed`, `lifecycle::step` decides, and the actions it returns are
//! carried out here (spawn, signals, cgroup writes, teardown, log lines,
//! answers). Nothing here waits on a service or on the kernel: container setup,
//! freeze, thaw and kill report back through epoll or a timer.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use config::{CgroupDriver, Config};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::epoll::EpollFlags;
use nix::sys::signal::kill;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::events::{self, Events};
use super::lifecycle::{self, Action, Event, Exit, State, Wait};
use super::output::LogFiles;
use super::poller::{self, Poller};
use super::state_file::{self, ServiceRecord};
use super::supervised::{FreezerWatch, Run, Supervised};
use crate::container::{self, Held, Setup, SpawnRequest, Stdio};
use crate::protocol::ServiceStatus;

mod health_checks;
pub use health_checks::HealthRun;

/// The v1 freezer has no notification: it is looked at again after a pause
/// growing from the first to the last.
const RECHECK_FIRST: Duration = Duration::from_millis(1);
const RECHECK_MAX: Duration = Duration::from_millis(20);

/// An answer a client may be waiting for.
pub struct Answer {
    pub service: String,
    pub wait: Wait,
    pub result: Result<(), String>,
}

pub struct Services {
    pub config: Config,
    /// In the file's order; services removed by a reload stay until they are down.
    pub list: Vec<Supervised>,
    pub logs: LogFiles,
    /// Log pipes of runs launched since the event loop last collected them.
    pub new_pipes: Vec<(String, OwnedFd)>,
    /// Earlier cgroup parents (changed by a reload), removed at exit with the current one.
    pub old_cgroup_parents: Vec<(CgroupDriver, String)>,
    /// Answers since the event loop last collected them.
    pub answers: Vec<Answer>,
    /// Services taken over from an earlier daemon (or ended while none ran):
    /// autostart leaves them alone.
    pub adopted: BTreeSet<String>,
    /// Line starts an earlier daemon had read from a log pipe (reexec).
    pub partial_lines: HashMap<String, Vec<u8>>,
    /// The state records last written, by service id (see `persist`).
    pub(super) recorded: HashMap<u64, ServiceRecord>,
    /// The services marked stopped on disk (see `state_file::mark_stopped`).
    pub marked_stopped: BTreeSet<String>,
    pub(super) poller: Rc<Poller>,
    /// Lifecycle events, for `supervisor events`.
    pub events: Events,
    /// Events not yet fed to their service's lifecycle (actions may cause more).
    queue: VecDeque<(u64, Event)>,
    /// Health checks under way.
    checks: health_checks::Checks,
    next_id: u64,
}

impl Services {
    pub fn new(config: Config, logs: LogFiles, poller: Rc<Poller>) -> Self {
        let mut services = Services {
            config,
            list: Vec::new(),
            logs,
            new_pipes: Vec::new(),
            old_cgroup_parents: Vec::new(),
            answers: Vec::new(),
            adopted: BTreeSet::new(),
            partial_lines: HashMap::new(),
            recorded: HashMap::new(),
            marked_stopped: BTreeSet::new(),
            events: Events::default(),
            poller,
            queue: VecDeque::new(),
            checks: Default::default(),
            next_id: 0,
        };
        for service in services.config.services.clone() {
            services.add(service);
        }
        services
    }

    /// A new service at the end of the list; its id.
    pub fn add(&mut self, service: config::Service) -> u64 {
        self.next_id += 1;
        self.list.push(Supervised::new(self.next_id, service));
        self.next_id
    }

    /// A service of the current file (not one on its way out after a reload).
    pub fn index(&self, name: &str) -> Option<usize> {
        self.list
            .iter()
            .position(|s| s.name() == name && !s.removed())
    }

    pub(super) fn position(&self, id: u64) -> Option<usize> {
        self.list.iter().position(|s| s.id == id)
    }

    pub fn id(&self, name: &str) -> Option<u64> {
        self.index(name).map(|idx| self.list[idx].id)
    }

    /// Every name must be a service of the current file.
    /// Whether `name` is on its way up (waiting for dependencies or setting up).
    pub fn is_starting(&self, name: &str) -> bool {
        self.index(name)
            .is_some_and(|idx| self.list[idx].life.state.word() == crate::protocol::State::Starting)
    }

    /// Whether `name` runs (frozen or not).
    pub fn is_up(&self, name: &str) -> bool {
        self.index(name)
            .is_some_and(|idx| self.list[idx].life.state.is_up())
    }

    pub fn check_names(&self, names: &[String]) -> Result<(), String> {
        let unknown: Vec<&str> = names
            .iter()
            .filter(|n| self.index(n).is_none())
            .map(String::as_str)
            .collect();
        match unknown.as_slice() {
            [] => Ok(()),
            [one] => {
                let known = self.list.iter().filter(|s| !s.removed()).map(|s| s.name());
                Err(format!(
                    "unknown service: {one}{}",
                    config::did_you_mean(one, known)
                ))
            }
            many => Err(format!("unknown services: {}", many.join(", "))),
        }
    }

    pub fn status(&self, name: Option<&str>) -> Vec<ServiceStatus> {
        self.list
            .iter()
            .filter(|s| !s.removed() && name.is_none_or(|n| n == s.name()))
            .map(|s| s.status(&self.config.cgroup_parent))
            .collect()
    }

    /// Feeds `event` to service `id` and carries out what follows, including
    /// the events those actions cause.
    pub fn feed(&mut self, id: u64, event: Event) {
        self.queue.push_back((id, event));
        if self.queue.len() > 1 {
            // Already draining further up the stack.
            return;
        }
        while let Some((id, event)) = self.queue.front().cloned() {
            self.step(id, event);
            self.queue.pop_front();
        }
    }

    fn step(&mut self, id: u64, event: Event) {
        let Some(idx) = self.position(id) else {
            return;
        };
        let svc = &mut self.list[idx];
        let was_ready = svc.is_ready();
        log::debug!("{}: {:?} on {event:?}", svc.name(), svc.life.state);
        let life = std::mem::replace(&mut svc.life, lifecycle::Life::new(&svc.policy));
        let before = life.state.clone();
        let now = Instant::now();
        let (life, actions) = lifecycle::step(&svc.policy, life, event.clone(), now);
        let occurred = events::derive(&before, &event, &life, now);
        svc.life = life;
        let name = svc.name().to_string();
        // The state a crash in the middle of the actions leaves to the next daemon.
        self.persist(id);
        self.events.emit_all(&name, occurred);
        for action in actions {
            self.apply(id, action);
        }
        self.sync_watch(id);
        self.persist(id);
        self.sync_health(id);
        self.note_ready(id, was_ready);
    }

    /// The `ready` event, when this step made the service ready (READY=1, or
    /// the start of a service without a readiness rule).
    fn note_ready(&mut self, id: u64, was_ready: bool) {
        let Some(idx) = self.position(id) else {
            return;
        };
        let svc = &self.list[idx];
        if !was_ready && svc.is_ready() {
            let name = svc.name().to_string();
            self.events
                .emit(&name, crate::protocol::EventKind::Ready, Default::default());
        }
    }

    /// Asks `name` and, first, whatever it depends on to start.
    pub fn start(&mut self, name: &str) {
        let mut needed = BTreeSet::new();
        self.collect_dependencies(name, &mut needed);
        let needed_list: Vec<String> = needed.iter().cloned().collect();
        let order: Vec<String> = self
            .config
            .start_order()
            .into_iter()
            .map(|s| s.name.clone())
            .filter(|n| needed.contains(n))
            .collect();
        for dep in order {
            if let Some(id) = self.id(&dep) {
                // A dependency that runs is left alone; `name` itself is asked even then,
                // so that its client is answered.
                let up = self.list[self.index(&dep).expect("has an id")]
                    .life
                    .state
                    .is_up();
                // A one-shot that completed is not run again for a dependent
                // waiting for its completion (`restart` runs it again).
                let completed = dep != name && self.completed_for(&dep, &needed_list);
                if dep == name || (!up && !completed) {
                    self.feed(id, Event::Start);
                }
            }
        }
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

    /// Moves on what waits for other services: starts whose dependencies are
    /// up (or failed), stops whose stopping dependents are down.
    pub fn settle(&mut self) {
        loop {
            let mut events = Vec::new();
            for svc in &self.list {
                match svc.life.state {
                    State::Pending => {
                        if let Some(event) = self.dependencies(svc) {
                            events.push((svc.id, event));
                        }
                    }
                    State::StopQueued { .. } if !self.has_stopping_dependent(svc) => {
                        events.push((svc.id, Event::StopCleared));
                    }
                    _ => {}
                }
            }
            if events.is_empty() {
                return;
            }
            for (id, event) in events {
                self.feed(id, event);
            }
        }
    }

    /// Whether a pending start may go on: None while a dependency is on its way up.
    fn dependencies(&self, svc: &Supervised) -> Option<Event> {
        for dep in &svc.service.depends_on {
            let Some(idx) = self.index(dep) else {
                continue;
            };
            let dep_svc = &self.list[idx];
            let condition = svc.service.condition(dep);
            match dep_svc.meets(condition) {
                Some(true) => {}
                Some(false) => return None,
                None => return Some(Event::DependencyFailed(dep_svc.unmet(condition))),
            }
        }
        Some(Event::DependenciesUp)
    }

    fn has_stopping_dependent(&self, svc: &Supervised) -> bool {
        self.list.iter().any(|other| {
            other.life.state.then().is_some()
                && other.service.depends_on.iter().any(|d| d == svc.name())
        })
    }

    fn apply(&mut self, id: u64, action: Action) {
        let Some(idx) = self.position(id) else {
            return;
        };
        let name = self.list[idx].name().to_string();
        match action {
            Action::Spawn => self.spawn(idx),
            Action::Signal(signal) => {
                if matches!(self.list[idx].life.state, State::Stopping { .. }) {
                    super::adopt::crash_hook("stop");
                }
                if let Some(pid) = self.list[idx].pid() {
                    match kill(Pid::from_raw(pid), signal) {
                        // Already gone: its exit is on the way.
                        Ok(()) | Err(Errno::ESRCH) => {}
                        Err(err) => self.logs.note(&name, &format!("sending {signal:?}: {err}")),
                    }
                }
            }
            Action::KillGroup => {
                // A child still setting up joins its v1 groups itself, first
                // thing: one not yet scheduled is in none of them (pure v1).
                if let Run::Starting(starting) = &self.list[idx].run {
                    let _ = kill(starting.pid(), nix::sys::signal::Signal::SIGKILL);
                }
                let killed = match self.list[idx].cgroup() {
                    Some(cgroup) => cgroup.begin_kill(),
                    None => Ok(()),
                };
                if let Err(err) = killed {
                    self.logs.note(&name, &format!("kill: {err}"));
                }
            }
            Action::BeginFreeze | Action::BeginThaw => {
                let freeze = action == Action::BeginFreeze;
                let asked = match self.list[idx].cgroup() {
                    Some(cgroup) => cgroup.begin_set_frozen(freeze),
                    None => Ok(()),
                };
                if freeze {
                    super::adopt::crash_hook("freeze");
                }
                if let Err(err) = asked {
                    let verb = if freeze { "freeze" } else { "thaw" };
                    self.logs.note(&name, &format!("{verb}: {err}"));
                    let wait = if freeze { Wait::Freeze } else { Wait::Thaw };
                    self.answers.push(Answer {
                        service: name,
                        wait,
                        result: Err(format!("{verb}: {err}")),
                    });
                    // Nothing will happen: give up at once rather than at the timeout.
                    let event = if freeze {
                        Event::FreezeTimedOut
                    } else {
                        Event::ThawTimedOut
                    };
                    if matches!(
                        self.list[idx].life.state,
                        State::Freezing { .. } | State::Thawing { .. }
                    ) {
                        self.queue.push_back((id, event));
                    }
                }
            }
            Action::Teardown { keep_cgroup } => {
                // Before the teardown removes `state_dir/containers` if it is empty.
                self.recorded.remove(&id);
                state_file::remove(&self.config.state_dir, &name);
                self.list[idx].pidfd = None;
                self.teardown(idx, keep_cgroup)
            }
            Action::RemoveCgroup => {
                if let Run::Kept(cgroup) = std::mem::replace(&mut self.list[idx].run, Run::None) {
                    if let Err(err) = cgroup.destroy() {
                        self.logs.note(&name, &format!("cleanup: {err}"));
                    }
                }
            }
            Action::Log(line) => self.logs.note(&name, &line),
            Action::Answer(wait, result) => self.answers.push(Answer {
                service: name,
                wait,
                result,
            }),
            Action::Forget => {
                let svc = self.list.remove(idx);
                if self.marked_stopped.remove(svc.name()) {
                    state_file::mark_stopped(&self.config.state_dir, svc.name(), false);
                }
                // Its file stays open if a service of the same name came back.
                if self.index(svc.name()).is_none() {
                    self.logs.forget(svc.name());
                }
            }
        }
    }

    /// Launches one run, in the cgroup the last run kept if there is one.
    fn spawn(&mut self, idx: usize) {
        let id = self.list[idx].id;
        let name = self.list[idx].name().to_string();
        let kept = match std::mem::replace(&mut self.list[idx].run, Run::None) {
            Run::Kept(cgroup) => Some(cgroup),
            _ => None,
        };
        self.list[idx].oom_baseline = match kept {
            Some(_) => self.list[idx]
                .last_stats
                .and_then(|s| s.oom_kills)
                .unwrap_or(0),
            None => 0,
        };
        let (read, write) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
            Ok(pipe) => pipe,
            Err(err) => {
                if let Some(cgroup) = kept {
                    let _ = cgroup.destroy();
                }
                let error = format!("creating its log pipe: {err}");
                self.queue.push_back((id, Event::SetupFailed(error)));
                self.queue.push_back((id, Event::InitExited(no_process())));
                return;
            }
        };
        self.logs
            .set_console(&name, self.list[idx].service.log_console);
        if let Some(warning) = crate::host_cpus::warning(self.list[idx].service.limits.cpus) {
            self.logs.note(&name, &warning);
        }
        // Room for what the service writes while no daemon reads (see `adopt`).
        if let Err(err) = nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&read),
            nix::fcntl::FcntlArg::F_SETPIPE_SZ(LOG_PIPE_SIZE),
        ) {
            log::debug!("{name}: log pipe size: {err}");
        }
        let status_file = state_file::open_status_file(&self.config.state_dir, &name);
        let notify_socket = match self.open_notify(idx) {
            Ok(path) => path,
            Err(error) => {
                if let Some(cgroup) = kept {
                    let _ = cgroup.destroy();
                }
                self.queue.push_back((id, Event::SetupFailed(error)));
                self.queue.push_back((id, Event::InitExited(no_process())));
                return;
            }
        };
        let begun = container::begin(SpawnRequest {
            config: &self.config,
            service: &self.list[idx].service,
            command: None,
            stdio: Stdio::Log(write),
            cgroup: kept,
            held: status_file.as_ref().map(|file| Held {
                log_reader: read.as_fd(),
                status_file: file.as_fd(),
            }),
            notify_socket,
        });
        super::adopt::crash_hook("start");
        self.new_pipes.push((name.clone(), read));
        match begun {
            Ok(starting) => {
                let token = self.poller.token(poller::SETUP);
                if let Err(err) = self.poller.add(starting.pipe(), EpollFlags::EPOLLIN, token) {
                    self.logs.note(&name, &format!("watching its setup: {err}"));
                }
                let svc = &mut self.list[idx];
                svc.setup_token = Some(token);
                svc.run = Run::Starting(starting);
            }
            Err(err) => {
                // Nothing of the run is left: it failed as if its setup had.
                self.queue
                    .push_back((id, Event::SetupFailed(err.to_string())));
                self.queue.push_back((id, Event::InitExited(no_process())));
            }
        }
    }

    /// The setup pipe of `token` is readable: finished, failed, or not yet.
    pub fn setup_readable(&mut self, token: u64) {
        let Some(idx) = self.list.iter().position(|s| s.setup_token == Some(token)) else {
            return;
        };
        self.read_setup(idx);
    }

    /// Learns what a starting service's setup has said, if anything.
    pub(super) fn read_setup(&mut self, idx: usize) {
        let svc = &mut self.list[idx];
        let id = svc.id;
        let Run::Starting(starting) = &mut svc.run else {
            return;
        };
        let event = match starting.read() {
            Setup::Pending => return,
            Setup::Finished => {
                let pid = starting.pid().as_raw();
                let Run::Starting(starting) = std::mem::replace(&mut svc.run, Run::None) else {
                    unreachable!("matched above");
                };
                self.poller.delete(starting.pipe());
                svc.run = Run::Up(starting.into_container());
                Event::SetupFinished { pid }
            }
            Setup::Failed(message) => {
                self.poller.delete(starting.pipe());
                Event::SetupFailed(message)
            }
        };
        svc.setup_token = None;
        self.feed(id, event);
    }

    /// After init's exit: the run's final accounting, then its resources go
    /// (or its emptied cgroup is kept for the next run).
    fn teardown(&mut self, idx: usize, keep_cgroup: bool) {
        self.close_notify(idx);
        let name = self.list[idx].name().to_string();
        let container = match std::mem::replace(&mut self.list[idx].run, Run::None) {
            Run::Up(container) => container,
            Run::Starting(starting) => starting.into_container(),
            other => {
                self.list[idx].run = other;
                return;
            }
        };
        let cleaned = if keep_cgroup {
            container.teardown_keeping_cgroup().map(Some)
        } else {
            container.teardown().map(|()| None)
        };
        match cleaned {
            Ok(Some(cgroup)) => self.list[idx].run = Run::Kept(cgroup),
            Ok(None) => {}
            Err(err) => self.logs.note(&name, &format!("cleanup: {err}")),
        }
    }

    /// Reaps every exited child: a health check's result is recorded; the
    /// exits of the services' inits (pid, status, signaled) are returned.
    pub fn collect_exits(&mut self) -> Vec<(Pid, i32, bool)> {
        let mut exits = Vec::new();
        loop {
            let (pid, code, signaled) = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code, false),
                Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, 128 + signal as i32, true),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return exits,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(err) => {
                    log::error!("waitpid: {err}");
                    return exits;
                }
            };
            if !self.probe_exited(pid, code) {
                exits.push((pid, code, signaled));
            }
        }
    }

    /// Feeds the exits `collect_exits` returned to the services' lifecycles.
    pub fn handle_exits(&mut self, exits: Vec<(Pid, i32, bool)>) {
        for (pid, code, signaled) in exits {
            match self.list.iter().position(|s| s.pid() == Some(pid.as_raw())) {
                Some(idx) => self.on_exit(idx, code, signaled),
                None => log::debug!("reaped pid {pid} (not a service), status {code}"),
            }
        }
    }

    pub(super) fn on_exit(&mut self, idx: usize, code: i32, signaled: bool) {
        // Reaped (after a reexec) or seen through its pidfd: once is enough.
        if let Some((pidfd, _)) = self.list[idx].pidfd.take() {
            self.poller.delete(pidfd.as_fd());
        }
        // What the setup said before it went comes first.
        if matches!(self.list[idx].run, Run::Starting(_)) {
            self.read_setup(idx);
        }
        let svc = &mut self.list[idx];
        let id = svc.id;
        if let Run::Starting(starting) = &svc.run {
            self.poller.delete(starting.pipe());
            svc.setup_token = None;
        }
        // The final accounting, while the cgroup still exists.
        let stats = svc.cgroup().and_then(|cgroup| cgroup.stats().ok());
        let oom_killed = stats
            .and_then(|s| s.oom_kills)
            .is_some_and(|kills| kills > svc.oom_baseline);
        if matches!(svc.run, Run::Up(_)) {
            svc.last_stats = stats;
        }
        self.feed(
            id,
            Event::InitExited(Exit {
                code,
                signaled,
                oom_killed,
            }),
        );
    }

    /// Starts or ends watching a service's freezer, as its state needs.
    fn sync_watch(&mut self, id: u64) {
        let Some(idx) = self.position(id) else {
            return;
        };
        let want = match self.list[idx].life.state {
            State::Freezing { .. } => Some(true),
            State::Thawing { .. } => Some(false),
            _ => None,
        };
        let svc = &mut self.list[idx];
        let Some(frozen) = want else {
            // Closing the file takes it out of epoll.
            svc.watch = None;
            return;
        };
        if svc.watch.is_none() {
            let events = svc.cgroup().and_then(|cgroup| cgroup.events_file());
            svc.watch = Some(match events {
                Some(file) => {
                    let token = self.poller.token(poller::CGROUP);
                    match self.poller.add(file.as_fd(), EpollFlags::EPOLLPRI, token) {
                        Ok(()) => FreezerWatch::Events { file, token },
                        Err(_) => recheck(RECHECK_FIRST),
                    }
                }
                None => recheck(RECHECK_FIRST),
            });
        }
        // It may be done already (a group with few processes freezes at once).
        self.check_freezer(idx, frozen);
    }

    /// cgroup.events of `token` changed.
    pub fn cgroup_event(&mut self, token: u64) {
        let Some(idx) = self.list.iter().position(
            |s| matches!(&s.watch, Some(FreezerWatch::Events { token: t, .. }) if *t == token),
        ) else {
            return;
        };
        if let Some(FreezerWatch::Events { file, .. }) = &mut self.list[idx].watch {
            // Reading re-arms the notification.
            let mut text = String::new();
            let _ = file
                .seek(SeekFrom::Start(0))
                .and_then(|_| file.read_to_string(&mut text));
        }
        let frozen = matches!(self.list[idx].life.state, State::Freezing { .. });
        self.check_freezer(idx, frozen);
    }

    /// Feeds the confirmation once the freezer has reached `frozen`.
    fn check_freezer(&mut self, idx: usize, frozen: bool) {
        let svc = &self.list[idx];
        let Some(cgroup) = svc.cgroup() else {
            return;
        };
        let reached = cgroup.reached_frozen(frozen).unwrap_or(false);
        // An empty group "freezes" too: with its init gone, its exit is on the way.
        let init_there = || {
            svc.pid()
                .is_some_and(|pid| cgroup.procs().is_ok_and(|procs| procs.contains(&pid)))
        };
        if reached && (!frozen || init_there()) {
            let event = if frozen {
                Event::FreezeConfirmed
            } else {
                Event::ThawConfirmed
            };
            let id = svc.id;
            self.feed(id, event);
        }
    }

    /// The earliest moment a service needs the daemon without any event.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.list.iter().filter_map(Supervised::deadline).min()
    }

    /// Feeds the timers that are due; looks at v1 freezers again.
    pub fn run_timers(&mut self, now: Instant) {
        let mut due = Vec::new();
        let mut rechecks = Vec::new();
        for svc in &mut self.list {
            if let Some((at, event)) = svc.life.state.timer() {
                if at <= now {
                    due.push((svc.id, event));
                }
            }
            if let Some((at, event)) = svc.life.readiness_timer(&svc.policy) {
                if at <= now {
                    due.push((svc.id, event));
                }
            }
            if let Some(FreezerWatch::Recheck { at, pause }) = &mut svc.watch {
                if *at <= now {
                    *pause = (*pause * 2).min(RECHECK_MAX);
                    *at = now + *pause;
                    rechecks.push(svc.id);
                }
            }
        }
        for id in rechecks {
            if let Some(idx) = self.position(id) {
                let frozen = matches!(self.list[idx].life.state, State::Freezing { .. });
                self.check_freezer(idx, frozen);
            }
        }
        for (id, event) in due {
            // Only if it is still what the state waits for.
            let still = self.position(id).is_some_and(|idx| {
                let svc = &self.list[idx];
                [
                    svc.life.state.timer(),
                    svc.life.readiness_timer(&svc.policy),
                ]
                .into_iter()
                .flatten()
                .any(|(at, e)| at <= now && e == event)
            });
            if still {
                self.feed(id, event);
            }
        }
        self.run_health(now);
    }

    /// Stops everything (reverse dependency order); nothing restarts after.
    pub fn stop_all(&mut self) {
        let ids: Vec<u64> = self.list.iter().map(|s| s.id).collect();
        for id in ids {
            self.feed(id, Event::Stop);
        }
        self.settle();
    }

    /// No service has a process any more.
    pub fn all_down(&self) -> bool {
        !self.list.iter().any(|s| s.life.state.has_run())
    }

    /// At exit, every service down: removes the kept groups and the (empty)
    /// cgroup parents we used.
    pub fn remove_cgroup_parents(&mut self) {
        for svc in &mut self.list {
            if let Run::Kept(cgroup) = std::mem::replace(&mut svc.run, Run::None) {
                if let Err(err) = cgroup.destroy() {
                    log::warn!("removing cgroup {}: {err}", cgroup.path());
                }
            }
        }
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
}

fn recheck(pause: Duration) -> FreezerWatch {
    FreezerWatch::Recheck {
        at: Instant::now() + pause,
        pause,
    }
}

/// A log pipe's capacity: what a service may write while no daemon reads.
const LOG_PIPE_SIZE: i32 = 1 << 20;

/// The exit of a run whose process never existed (its start failed here).
fn no_process() -> Exit {
    Exit {
        code: 0,
        signaled: false,
        oom_killed: false,
    }
}
