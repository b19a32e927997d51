//! A service's life as data: one pure transition function from (state, event)
//! to (state, actions), in the manner of s6-supervise's state table. Nothing
//! here touches the system; `services.rs` feeds events in and carries the
//! actions out (spawn, signals, cgroup writes, log lines, answers).

use std::time::{Duration, Instant};

use config::{RestartPolicy, Service};
use nix::sys::signal::Signal;

/// A run that lasted this long counts as having run well: its next crash
/// restarts after the initial restart_delay again.
pub const RESET_BACKOFF_AFTER: Duration = Duration::from_secs(10);
/// How long a container may take to set itself up.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the kernel reporting a group frozen, thawed or killed.
pub const CGROUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The parts of a service's definition its lifecycle depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub restart: RestartPolicy,
    pub restart_delay: Duration,
    pub restart_delay_max: Duration,
    /// At most `count` automatic restarts within `window`; then `failed`.
    pub restart_limit: Option<config::RestartLimit>,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    pub autostart: bool,
    /// `ready: notify`: ready once READY=1 arrives, within `ready_timeout`.
    pub notify: bool,
    pub ready_timeout: Duration,
    /// With `notify`: WATCHDOG=1 must come at least this often once ready.
    pub watchdog: Option<Duration>,
}

impl Policy {
    pub fn of(service: &Service) -> Policy {
        Policy {
            restart: service.restart,
            restart_delay: service.restart_delay,
            restart_delay_max: service.restart_delay_max,
            restart_limit: service.restart_limit,
            stop_signal: service.stop_signal,
            stop_timeout: service.stop_timeout,
            autostart: service.autostart,
            notify: service.ready == config::Ready::Notify,
            ready_timeout: service.ready_timeout,
            watchdog: service.watchdog,
        }
    }
}

/// What happens once a service that is being stopped is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// It stays stopped.
    Stay,
    /// It starts again (restart, changed definition, start while stopping).
    Start,
    /// It was removed from the file: forgotten.
    Forget,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Never started, or stopped on request.
    Stopped,
    /// Asked to start; waits for its dependencies to be up.
    Pending,
    /// Its container is setting itself up.
    Starting {
        deadline: Instant,
    },
    /// Its setup failed; waiting for the setup process to be reaped.
    SetupFailing {
        error: String,
    },
    Running {
        since: Instant,
    },
    /// The freezer was asked to freeze; waiting for the kernel to report it.
    Freezing {
        since: Instant,
        deadline: Instant,
    },
    Frozen {
        since: Instant,
    },
    /// The freezer was asked to thaw; waiting for the kernel to report it.
    Thawing {
        since: Instant,
        deadline: Instant,
    },
    /// A stop is asked; waits for its stopping dependents to be down first.
    StopQueued {
        then: After,
        frozen: bool,
    },
    /// Sent its stop signal; killed at `deadline`.
    Stopping {
        then: After,
        deadline: Instant,
    },
    /// Every process of its group was killed; waiting for its init's exit,
    /// until `deadline` (None: passed and reported, still waiting).
    Killing {
        then: After,
        deadline: Option<Instant>,
    },
    /// Waiting to restart.
    Backoff {
        until: Instant,
    },
    /// Ended by itself with status 0 and not restarted.
    Exited,
    /// Ended otherwise (or hit its restart limit) and not restarted.
    Failed,
}

impl State {
    /// The word `status` shows.
    pub fn word(&self) -> crate::protocol::State {
        use crate::protocol::State as S;
        match self {
            State::Stopped => S::Stopped,
            State::Pending | State::Starting { .. } | State::SetupFailing { .. } => S::Starting,
            State::Running { .. } | State::Freezing { .. } => S::Running,
            State::Frozen { .. } | State::Thawing { .. } => S::Frozen,
            State::StopQueued { .. } | State::Stopping { .. } | State::Killing { .. } => {
                S::Stopping
            }
            State::Backoff { .. } => S::Backoff,
            State::Exited => S::Exited,
            State::Failed => S::Failed,
        }
    }

    /// A process of its run exists (setting up, running or on its way down).
    pub fn has_run(&self) -> bool {
        !matches!(
            self,
            State::Stopped | State::Pending | State::Backoff { .. } | State::Exited | State::Failed
        )
    }

    /// Its service's init runs (or is frozen): dependents may start.
    pub fn is_up(&self) -> bool {
        matches!(
            self,
            State::Running { .. }
                | State::Freezing { .. }
                | State::Frozen { .. }
                | State::Thawing { .. }
        )
    }

    /// Since when its current run has been up.
    pub fn since(&self) -> Option<Instant> {
        match self {
            State::Running { since }
            | State::Freezing { since, .. }
            | State::Frozen { since }
            | State::Thawing { since, .. } => Some(*since),
            _ => None,
        }
    }

    /// What it does once down, while a stop is in progress.
    pub fn then(&self) -> Option<After> {
        match self {
            State::StopQueued { then, .. }
            | State::Stopping { then, .. }
            | State::Killing { then, .. } => Some(*then),
            _ => None,
        }
    }

    /// The moment it needs attention without any other event, and the event then.
    pub fn timer(&self) -> Option<(Instant, Event)> {
        match self {
            State::Starting { deadline } => Some((*deadline, Event::SetupTimedOut)),
            State::Freezing { deadline, .. } => Some((*deadline, Event::FreezeTimedOut)),
            State::Thawing { deadline, .. } => Some((*deadline, Event::ThawTimedOut)),
            State::Stopping { deadline, .. } => Some((*deadline, Event::StopDeadline)),
            State::Killing {
                deadline: Some(deadline),
                ..
            } => Some((*deadline, Event::KillTimedOut)),
            State::Backoff { until } => Some((*until, Event::BackoffOver)),
            _ => None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    Exited,
    Signaled,
    OomKilled,
    SetupFailed,
    Stopped,
    /// Killed by the daemon: no WATCHDOG=1 within its `watchdog` interval.
    Watchdog,
}

impl ExitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Exited => "exited",
            ExitReason::Signaled => "signaled",
            ExitReason::OomKilled => "oom_killed",
            ExitReason::SetupFailed => "setup_failed",
            ExitReason::Stopped => "stopped",
            ExitReason::Watchdog => "watchdog",
        }
    }
}

/// What the reaper learnt about an init that exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Its status, or 128 + the signal that killed it.
    pub code: i32,
    /// Killed by a signal (rather than exiting with a status).
    pub signaled: bool,
    /// The OOM killer killed a process of its group during the run.
    pub oom_killed: bool,
}

/// The last run's end, for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastExit {
    /// None when the setup failed before the service's command ran.
    pub code: Option<i32>,
    pub reason: ExitReason,
    pub at: Instant,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `start` (also of a dependent).
    Start,
    Stop,
    Restart,
    Freeze,
    Thaw,
    /// No dependent that is stopping is still up: the stop may proceed.
    StopCleared,
    /// Every dependency is up.
    DependenciesUp,
    DependencyFailed(String),
    SetupFinished {
        pid: i32,
    },
    SetupFailed(String),
    SetupTimedOut,
    InitExited(Exit),
    BackoffOver,
    StopDeadline,
    /// Killed, and its init has not exited within CGROUP_TIMEOUT.
    KillTimedOut,
    FreezeConfirmed,
    FreezeTimedOut,
    ThawConfirmed,
    ThawTimedOut,
    /// Reload: the definition changed (the new policy is already in place).
    Changed,
    /// Reload: gone from the file.
    Removed,
    /// A daemon starting (after a crash, or its own reexec) found this
    /// service's init still running and took it over.
    Adopted {
        pid: i32,
        since: Instant,
        frozen: bool,
        restarts: u64,
        /// `ready: notify`: READY=1 had come before the earlier daemon ended.
        ready: bool,
    },
    /// Its health check failed `retries` times in a row and its
    /// `on_unhealthy` is `restart`.
    Unhealthy,
    /// READY=1 from the service (`ready: notify`).
    Ready,
    /// WATCHDOG=1 from the service.
    WatchdogPing,
    /// No WATCHDOG=1 within the `watchdog` interval.
    WatchdogTimedOut,
    /// No READY=1 within `ready_timeout` of its start.
    ReadyTimedOut,
}

/// Which readiness bound a run missed (its kill is under way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    Ready,
    Watchdog,
}

/// Which requests a client may be waiting on for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wait {
    /// start and restart: answered once it runs or failed.
    Start,
    Stop,
    Freeze,
    Thaw,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Launch a run (in the cgroup kept from the last run, if any).
    Spawn,
    /// To the service's init.
    Signal(Signal),
    /// Every process of its cgroup.
    KillGroup,
    BeginFreeze,
    BeginThaw,
    /// After init's exit: remove what the run left; keep its emptied cgroup
    /// for the next run, or remove it.
    Teardown {
        keep_cgroup: bool,
    },
    /// Remove the cgroup kept for a restart that will not use it.
    RemoveCgroup,
    /// A line in the service's log.
    Log(String),
    /// Answer the clients waiting on this.
    Answer(Wait, Result<(), String>),
    /// Removed from the file and down: forget it.
    Forget,
}

/// Everything the lifecycle knows of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Life {
    pub state: State,
    /// Automatic restarts so far.
    pub restarts: u64,
    /// The wait before the next automatic restart.
    pub delay: Duration,
    /// When the automatic restarts within the restart_limit window happened.
    pub recent: Vec<Instant>,
    /// Why the last start failed.
    pub error: Option<String>,
    pub last_exit: Option<LastExit>,
    /// `ready: notify`: READY=1 has come during the current run.
    pub ready: bool,
    /// The last READY=1 or WATCHDOG=1 of the current run (or its thaw): the
    /// readiness bounds count from here.
    pub pinged: Option<Instant>,
    /// The current run missed a readiness bound and is being killed.
    pub missed: Option<Missed>,
    /// The current run was adopted: its sd_notify socket died with the daemon
    /// that started it, so no WATCHDOG=1 can be heard until its next run.
    pub unheard: bool,
}

impl Life {
    pub fn new(policy: &Policy) -> Life {
        Life {
            state: State::Stopped,
            restarts: 0,
            delay: policy.restart_delay,
            recent: Vec::new(),
            error: None,
            last_exit: None,
            ready: false,
            pinged: None,
            missed: None,
            unheard: false,
        }
    }

    /// When a `ready: notify` service that runs misses its next bound
    /// (READY=1 within `ready_timeout`, then WATCHDOG=1 within `watchdog`),
    /// and the event then. Not while frozen: a frozen service cannot ping.
    pub fn readiness_timer(&self, policy: &Policy) -> Option<(Instant, Event)> {
        let State::Running { since } = self.state else {
            return None;
        };
        if !policy.notify || self.missed.is_some() || (self.unheard && self.ready) {
            return None;
        }
        let from = self.pinged.unwrap_or(since);
        if !self.ready {
            return Some((
                deadline_after(from, policy.ready_timeout),
                Event::ReadyTimedOut,
            ));
        }
        let interval = policy.watchdog?;
        Some((deadline_after(from, interval), Event::WatchdogTimedOut))
    }
}

/// The transition of `life` on `event` at `now`. Events a state has no use for
/// change nothing.
pub fn step(policy: &Policy, mut life: Life, event: Event, now: Instant) -> (Life, Vec<Action>) {
    let mut out = Vec::new();
    let state = std::mem::replace(&mut life.state, State::Stopped);
    life.state = transition(policy, &mut life, state, event, now, &mut out);
    (life, out)
}

fn not_running(state: &State) -> String {
    format!("is not running (state {})", state.word().as_str())
}

fn transition(
    policy: &Policy,
    life: &mut Life,
    state: State,
    event: Event,
    now: Instant,
    out: &mut Vec<Action>,
) -> State {
    use Event as E;
    use State as S;
    match (state, event) {
        // Starting.
        (S::Stopped | S::Exited | S::Failed | S::Pending, E::Start | E::Restart) => {
            fresh_start(policy, life);
            S::Pending
        }
        (S::Backoff { .. }, E::Start) => {
            // Now rather than later, in the group the last run kept.
            fresh_start(policy, life);
            S::Pending
        }
        (S::Backoff { .. }, E::Restart) => {
            out.push(Action::RemoveCgroup);
            fresh_start(policy, life);
            S::Pending
        }
        (S::Pending, E::DependenciesUp) => spawn(out, now),
        (S::Pending, E::DependencyFailed(error)) => {
            out.push(Action::Log(error.clone()));
            out.push(Action::Answer(Wait::Start, Err(error.clone())));
            life.error = Some(error);
            S::Stopped
        }
        (S::Starting { .. }, E::SetupFinished { pid }) => {
            life.error = None;
            life.ready = false;
            life.pinged = None;
            life.missed = None;
            life.unheard = false;
            out.push(Action::Log(format!("started, pid {pid}")));
            out.push(Action::Answer(Wait::Start, Ok(())));
            S::Running { since: now }
        }
        (S::Starting { .. }, E::SetupFailed(error)) => {
            // It exits by itself after reporting; its exit ends the run.
            out.push(Action::Signal(Signal::SIGKILL));
            S::SetupFailing { error }
        }
        (S::Starting { .. }, E::SetupTimedOut) => {
            out.push(Action::KillGroup);
            S::SetupFailing {
                error: format!("setup did not finish within {}s", SETUP_TIMEOUT.as_secs()),
            }
        }
        (S::Starting { .. }, E::InitExited(exit)) => setup_failed(
            policy,
            life,
            format!("the setup process exited with status {}", exit.code),
            now,
            out,
        ),
        (S::SetupFailing { error }, E::InitExited(_)) => {
            setup_failed(policy, life, error, now, out)
        }

        // Requests that find the service where it is asked to be.
        (
            s @ (S::Running { .. } | S::Frozen { .. } | S::Freezing { .. } | S::Thawing { .. }),
            E::Start,
        ) => {
            out.push(Action::Answer(Wait::Start, Ok(())));
            s
        }
        (s @ (S::Stopped | S::Exited | S::Failed), E::Stop) => {
            out.push(Action::Answer(Wait::Stop, Ok(())));
            s
        }

        // Stopping.
        (S::Pending, E::Stop) => {
            out.push(Action::Answer(
                Wait::Start,
                Err("stopped before it started".into()),
            ));
            out.push(Action::Answer(Wait::Stop, Ok(())));
            S::Stopped
        }
        (S::Backoff { .. }, E::Stop) => {
            out.push(Action::RemoveCgroup);
            out.push(Action::Log("pending restart cancelled".into()));
            out.push(Action::Answer(Wait::Stop, Ok(())));
            S::Stopped
        }
        (S::Running { .. }, E::Stop) => S::StopQueued {
            then: After::Stay,
            frozen: false,
        },
        (S::Running { .. } | S::Thawing { .. }, E::Restart) => {
            out.push(Action::Answer(Wait::Thaw, Err("restarted".into())));
            S::StopQueued {
                then: After::Start,
                frozen: false,
            }
        }
        (S::Thawing { .. }, E::Stop) => {
            out.push(Action::Answer(Wait::Thaw, Err("stopped".into())));
            S::StopQueued {
                then: After::Stay,
                frozen: false,
            }
        }
        (S::Frozen { .. }, E::Stop) => S::StopQueued {
            then: After::Stay,
            frozen: true,
        },
        (S::Frozen { .. }, E::Restart) => S::StopQueued {
            then: After::Start,
            frozen: true,
        },
        (S::Freezing { .. }, e @ (E::Stop | E::Restart)) => {
            out.push(Action::Answer(
                Wait::Freeze,
                Err("stopped while freezing".into()),
            ));
            S::StopQueued {
                then: if e == E::Stop {
                    After::Stay
                } else {
                    After::Start
                },
                frozen: true,
            }
        }
        (S::Starting { .. } | S::SetupFailing { .. }, e @ (E::Stop | E::Restart)) => {
            // Its setup has no stop signal to honour: killed at once.
            out.push(Action::KillGroup);
            out.push(Action::Answer(
                Wait::Start,
                Err("stopped while starting".into()),
            ));
            S::Killing {
                then: if e == E::Stop {
                    After::Stay
                } else {
                    After::Start
                },
                deadline: Some(deadline_after(now, CGROUP_TIMEOUT)),
            }
        }
        (S::StopQueued { frozen, .. }, E::Stop) => S::StopQueued {
            then: After::Stay,
            frozen,
        },
        (S::StopQueued { frozen, .. }, E::Start | E::Restart) => S::StopQueued {
            then: After::Start,
            frozen,
        },
        (S::Stopping { deadline, .. }, E::Stop) => S::Stopping {
            then: After::Stay,
            deadline,
        },
        (S::Stopping { deadline, .. }, E::Start | E::Restart) => S::Stopping {
            then: After::Start,
            deadline,
        },
        (S::Killing { deadline, .. }, E::Stop) => S::Killing {
            then: After::Stay,
            deadline,
        },
        (S::Killing { deadline, .. }, E::Start | E::Restart) => S::Killing {
            then: After::Start,
            deadline,
        },
        (
            S::Killing {
                then,
                deadline: Some(_),
            },
            E::KillTimedOut,
        ) => {
            // Something holds it (uninterruptible sleep, a v1 freezer): keep
            // waiting for its exit, but tell whoever waits.
            let error = format!(
                "killed, but still there after {}s",
                CGROUP_TIMEOUT.as_secs()
            );
            out.push(Action::Log(error.clone()));
            out.push(Action::Answer(Wait::Stop, Err(error.clone())));
            out.push(Action::Answer(Wait::Start, Err(error)));
            S::Killing {
                then,
                deadline: None,
            }
        }
        (S::StopQueued { then, frozen }, E::StopCleared) => {
            if frozen {
                // A frozen process keeps the signal pending until it is thawed.
                out.push(Action::BeginThaw);
            }
            out.push(Action::Signal(policy.stop_signal));
            out.push(Action::Log(format!(
                "stopping with {:?}, timeout {:?}",
                policy.stop_signal, policy.stop_timeout
            )));
            S::Stopping {
                then,
                deadline: deadline_after(now, policy.stop_timeout),
            }
        }
        (S::Stopping { then, .. }, E::StopDeadline) => {
            out.push(Action::KillGroup);
            out.push(Action::Log(
                "stop timeout: killing every process of its cgroup".into(),
            ));
            S::Killing {
                then,
                deadline: Some(deadline_after(now, CGROUP_TIMEOUT)),
            }
        }
        (
            S::StopQueued { then, .. } | S::Stopping { then, .. } | S::Killing { then, .. },
            E::InitExited(exit),
        ) => down(life, then, exit, now, out),

        // Exits of a run that nobody asked to end.
        (S::Running { since }, E::InitExited(exit)) => crashed(policy, life, since, exit, now, out),
        (S::Freezing { since, .. }, E::InitExited(exit)) => {
            out.push(Action::Answer(Wait::Freeze, Err("it exited".into())));
            crashed(policy, life, since, exit, now, out)
        }
        (S::Thawing { since, .. }, E::InitExited(exit)) => {
            out.push(Action::Answer(Wait::Thaw, Err("it exited".into())));
            crashed(policy, life, since, exit, now, out)
        }
        (S::Frozen { since }, E::InitExited(exit)) => {
            // Killed from outside while frozen: not a crash of the service itself.
            log_exit(since, exit, now, out);
            out.push(Action::Log("it was frozen: not restarted".into()));
            ended(life, exit, exit_reason(exit), now, out)
        }
        (S::Backoff { .. }, E::BackoffOver) => {
            life.restarts += 1;
            spawn(out, now)
        }
        (S::Running { since }, E::Unhealthy) => unhealthy(policy, life, since, now, out),

        // Freezer.
        (S::Running { since }, E::Freeze) => {
            out.push(Action::BeginFreeze);
            S::Freezing {
                since,
                deadline: deadline_after(now, CGROUP_TIMEOUT),
            }
        }
        (S::Thawing { since, .. }, E::Freeze) => {
            out.push(Action::Answer(Wait::Thaw, Err("frozen again".into())));
            out.push(Action::BeginFreeze);
            S::Freezing {
                since,
                deadline: deadline_after(now, CGROUP_TIMEOUT),
            }
        }
        (s @ S::Frozen { .. }, E::Freeze) => {
            out.push(Action::Answer(Wait::Freeze, Ok(())));
            s
        }
        (S::Freezing { since, .. }, E::FreezeConfirmed) => {
            out.push(Action::Log("frozen".into()));
            out.push(Action::Answer(Wait::Freeze, Ok(())));
            S::Frozen { since }
        }
        (S::Freezing { since, .. }, E::FreezeTimedOut) => {
            let error = format!(
                "did not freeze within {}s (thawed again)",
                CGROUP_TIMEOUT.as_secs()
            );
            out.push(Action::BeginThaw);
            out.push(Action::Log(format!("freeze: {error}")));
            out.push(Action::Answer(Wait::Freeze, Err(error)));
            S::Running { since }
        }
        (S::Frozen { since }, E::Thaw) => {
            out.push(Action::BeginThaw);
            S::Thawing {
                since,
                deadline: deadline_after(now, CGROUP_TIMEOUT),
            }
        }
        (S::Freezing { since, .. }, E::Thaw) => {
            out.push(Action::Answer(
                Wait::Freeze,
                Err("thawed before it froze".into()),
            ));
            out.push(Action::BeginThaw);
            S::Thawing {
                since,
                deadline: deadline_after(now, CGROUP_TIMEOUT),
            }
        }
        (s @ S::Running { .. }, E::Thaw) => {
            out.push(Action::Answer(Wait::Thaw, Ok(())));
            s
        }
        (S::Thawing { since, .. }, E::ThawConfirmed) => {
            // The readiness bounds count again from the thaw.
            life.pinged = Some(now);
            out.push(Action::Log("thawed".into()));
            out.push(Action::Answer(Wait::Thaw, Ok(())));
            S::Running { since }
        }
        (S::Thawing { since, .. }, E::ThawTimedOut) => {
            let error = format!("did not thaw within {}s", CGROUP_TIMEOUT.as_secs());
            out.push(Action::Log(format!("thaw: {error}")));
            out.push(Action::Answer(Wait::Thaw, Err(error)));
            S::Frozen { since }
        }
        // Asked again while under way: answered when it is done.
        (s @ S::Freezing { .. }, E::Freeze) | (s @ S::Thawing { .. }, E::Thaw) => s,
        (s, e @ (E::Freeze | E::Thaw)) => {
            let wait = if e == E::Freeze {
                Wait::Freeze
            } else {
                Wait::Thaw
            };
            out.push(Action::Answer(wait, Err(not_running(&s))));
            s
        }

        // Reload.
        (
            s @ (S::Running { .. }
            | S::Frozen { .. }
            | S::Freezing { .. }
            | S::Thawing { .. }
            | S::Starting { .. }
            | S::SetupFailing { .. }),
            E::Changed,
        ) => {
            out.push(Action::Log("definition changed: restarting".into()));
            transition(policy, life, s, E::Restart, now, out)
        }
        (S::Backoff { .. }, E::Changed) => {
            // The next run needs a group with the new limits.
            out.push(Action::RemoveCgroup);
            life.delay = policy.restart_delay;
            S::Backoff {
                until: deadline_after(now, policy.restart_delay),
            }
        }
        (S::Failed, E::Changed) if policy.autostart => {
            out.push(Action::Log("definition changed: starting again".into()));
            fresh_start(policy, life);
            S::Pending
        }
        (S::StopQueued { frozen, .. }, E::Removed) => {
            out.push(removed_note());
            S::StopQueued {
                then: After::Forget,
                frozen,
            }
        }
        (S::Stopping { deadline, .. }, E::Removed) => {
            out.push(removed_note());
            S::Stopping {
                then: After::Forget,
                deadline,
            }
        }
        (S::Killing { deadline, .. }, E::Removed) => {
            out.push(removed_note());
            S::Killing {
                then: After::Forget,
                deadline,
            }
        }
        (
            s @ (S::Running { .. }
            | S::Frozen { .. }
            | S::Freezing { .. }
            | S::Thawing { .. }
            | S::Starting { .. }
            | S::SetupFailing { .. }),
            E::Removed,
        ) => {
            out.push(removed_note());
            match transition(policy, life, s, E::Stop, now, out) {
                S::StopQueued { frozen, .. } => S::StopQueued {
                    then: After::Forget,
                    frozen,
                },
                S::Killing { deadline, .. } => S::Killing {
                    then: After::Forget,
                    deadline,
                },
                other => other,
            }
        }
        (s, E::Removed) => {
            if matches!(s, S::Backoff { .. }) {
                out.push(Action::RemoveCgroup);
            }
            out.push(Action::Answer(
                Wait::Start,
                Err("removed from the service list".into()),
            ));
            out.push(Action::Answer(Wait::Stop, Ok(())));
            out.push(Action::Forget);
            S::Stopped
        }

        // Adoption: only a service this daemon has not run yet.
        (
            S::Stopped,
            E::Adopted {
                pid,
                since,
                frozen,
                restarts,
                ready,
            },
        ) => {
            life.restarts = restarts;
            // A notify service adopted before READY=1 cannot be heard any more:
            // its ready_timeout still ends it (and its next run has a socket).
            life.ready = ready;
            life.unheard = true;
            out.push(Action::Log(format!("adopted, pid {pid}")));
            if frozen {
                S::Frozen { since }
            } else {
                S::Running { since }
            }
        }
        // Readiness (`ready: notify`).
        (s, E::Ready) if s.is_up() => {
            if !life.ready {
                life.ready = true;
                out.push(Action::Log("ready".into()));
            }
            life.pinged = Some(now);
            s
        }
        (s, E::WatchdogPing) if s.is_up() => {
            life.pinged = Some(now);
            s
        }
        (S::Running { since }, E::WatchdogTimedOut) if life.missed.is_none() => {
            let interval = policy.watchdog.unwrap_or_default();
            out.push(Action::Log(format!(
                "watchdog timeout: no WATCHDOG=1 within {interval:?}: killing"
            )));
            out.push(Action::KillGroup);
            life.missed = Some(Missed::Watchdog);
            S::Running { since }
        }
        (S::Running { since }, E::ReadyTimedOut) if life.missed.is_none() && !life.ready => {
            let error = format!("not ready within {:?} (no READY=1)", policy.ready_timeout);
            out.push(Action::Log(format!("{error}: killing")));
            out.push(Action::KillGroup);
            life.error = Some(error);
            life.missed = Some(Missed::Ready);
            S::Running { since }
        }

        // Everything else changes nothing.
        (s, _) => s,
    }
}

/// An automatic restart of an unhealthy run (stopped with its stop signal,
/// then started again), unless the restart limit is reached: then it keeps
/// running, unhealthy.
fn unhealthy(
    policy: &Policy,
    life: &mut Life,
    since: Instant,
    now: Instant,
    out: &mut Vec<Action>,
) -> State {
    if let Some(limit) = policy.restart_limit {
        life.recent
            .retain(|at| now.saturating_duration_since(*at) < limit.window);
        if life.recent.len() as u64 >= u64::from(limit.count) {
            out.push(Action::Log(format!(
                "unhealthy: restart limit reached ({} restarts within {:?}): not restarting",
                limit.count, limit.window
            )));
            return State::Running { since };
        }
        life.recent.push(now);
    }
    life.restarts += 1;
    out.push(Action::Log("unhealthy: restarting".into()));
    State::StopQueued {
        then: After::Start,
        frozen: false,
    }
}

fn removed_note() -> Action {
    Action::Log("removed from the service list: stopping".into())
}

/// A start asked for (not an automatic restart): the backoff and the restart
/// limit start over.
fn fresh_start(policy: &Policy, life: &mut Life) {
    life.delay = policy.restart_delay;
    life.recent.clear();
}

fn spawn(out: &mut Vec<Action>, now: Instant) -> State {
    out.push(Action::Spawn);
    State::Starting {
        deadline: deadline_after(now, SETUP_TIMEOUT),
    }
}

/// The moment `delay` after `now`, clamped so that it never overflows the clock.
pub fn deadline_after(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay.min(config::MAX_DURATION))
        .unwrap_or(now)
}

fn exit_reason(exit: Exit) -> ExitReason {
    if exit.oom_killed {
        ExitReason::OomKilled
    } else if exit.signaled {
        ExitReason::Signaled
    } else {
        ExitReason::Exited
    }
}

fn log_exit(since: Instant, exit: Exit, now: Instant, out: &mut Vec<Action>) {
    let ran = now.saturating_duration_since(since).as_secs_f64();
    out.push(Action::Log(if exit.oom_killed {
        format!("oom-killed (status {}) after {ran:.1}s", exit.code)
    } else {
        format!("exited with status {} after {ran:.1}s", exit.code)
    }));
}

/// A stop (or restart, or removal) has reached its end: the service is down.
fn down(life: &mut Life, then: After, exit: Exit, now: Instant, out: &mut Vec<Action>) -> State {
    out.push(Action::Log(format!(
        "exited with status {}: stopped",
        exit.code
    )));
    out.push(Action::Teardown { keep_cgroup: false });
    life.last_exit = Some(LastExit {
        code: Some(exit.code),
        reason: if exit.oom_killed {
            ExitReason::OomKilled
        } else {
            ExitReason::Stopped
        },
        at: now,
    });
    out.push(Action::Answer(Wait::Stop, Ok(())));
    match then {
        After::Stay => {
            out.push(Action::Answer(Wait::Start, Err("stopped".into())));
            State::Stopped
        }
        After::Start => {
            life.error = None;
            State::Pending
        }
        After::Forget => {
            out.push(Action::Answer(
                Wait::Start,
                Err("removed from the service list".into()),
            ));
            out.push(Action::Forget);
            State::Stopped
        }
    }
}

/// A run ended by itself: restart it (after the backoff) if its policy says so
/// and its restart limit allows, else it has ended.
fn crashed(
    policy: &Policy,
    life: &mut Life,
    since: Instant,
    exit: Exit,
    now: Instant,
    out: &mut Vec<Action>,
) -> State {
    log_exit(since, exit, now, out);
    let reason = match life.missed {
        Some(Missed::Watchdog) => ExitReason::Watchdog,
        _ => exit_reason(exit),
    };
    if !restarts_after(policy, exit.code != 0) {
        return ended(life, exit, reason, now, out);
    }
    life.last_exit = Some(LastExit {
        code: Some(exit.code),
        reason,
        at: now,
    });
    if now.saturating_duration_since(since) >= RESET_BACKOFF_AFTER {
        life.delay = policy.restart_delay;
    }
    back_off(policy, life, now, out, true)
}

/// A run ended and is not restarted.
fn ended(
    life: &mut Life,
    exit: Exit,
    reason: ExitReason,
    now: Instant,
    out: &mut Vec<Action>,
) -> State {
    out.push(Action::Teardown { keep_cgroup: false });
    life.last_exit = Some(LastExit {
        code: Some(exit.code),
        reason,
        at: now,
    });
    if exit.code == 0 {
        State::Exited
    } else {
        State::Failed
    }
}

fn setup_failed(
    policy: &Policy,
    life: &mut Life,
    error: String,
    now: Instant,
    out: &mut Vec<Action>,
) -> State {
    out.push(Action::Log(format!("failed to start: {error}")));
    out.push(Action::Answer(Wait::Start, Err(error.clone())));
    life.error = Some(error);
    life.last_exit = Some(LastExit {
        code: None,
        reason: ExitReason::SetupFailed,
        at: now,
    });
    if restarts_after(policy, true) {
        back_off(policy, life, now, out, false)
    } else {
        out.push(Action::Teardown { keep_cgroup: false });
        State::Failed
    }
}

fn restarts_after(policy: &Policy, failed: bool) -> bool {
    match policy.restart {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => failed,
        RestartPolicy::Never => false,
    }
}

/// Waits the current restart delay before the next run, unless the restart
/// limit is reached. `keep_cgroup`: the run's emptied group is reused.
fn back_off(
    policy: &Policy,
    life: &mut Life,
    now: Instant,
    out: &mut Vec<Action>,
    keep_cgroup: bool,
) -> State {
    if let Some(limit) = policy.restart_limit {
        life.recent
            .retain(|at| now.saturating_duration_since(*at) < limit.window);
        if life.recent.len() as u64 >= u64::from(limit.count) {
            out.push(Action::Teardown { keep_cgroup: false });
            out.push(Action::Log(format!(
                "restart limit reached ({} restarts within {:?}): not restarting",
                limit.count, limit.window
            )));
            return State::Failed;
        }
        life.recent.push(now);
    }
    out.push(Action::Teardown { keep_cgroup });
    let delay = life.delay;
    life.delay = delay
        .saturating_mul(2)
        .min(policy.restart_delay_max)
        .max(policy.restart_delay);
    out.push(Action::Log(format!(
        "restarting in {:.1}s",
        delay.as_secs_f64()
    )));
    State::Backoff {
        until: deadline_after(now, delay),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action as A;
    use Event as E;
    use State as S;

    fn policy() -> Policy {
        Policy {
            restart: RestartPolicy::OnFailure,
            restart_delay: Duration::from_millis(100),
            restart_delay_max: Duration::from_millis(400),
            restart_limit: None,
            stop_signal: Signal::SIGTERM,
            stop_timeout: Duration::from_secs(10),
            autostart: true,
            notify: false,
            ready_timeout: Duration::from_secs(60),
            watchdog: None,
        }
    }

    fn exit(code: i32) -> Exit {
        Exit {
            code,
            signaled: false,
            oom_killed: false,
        }
    }

    fn ok(wait: Wait) -> Action {
        A::Answer(wait, Ok(()))
    }

    fn err(wait: Wait, message: &str) -> Action {
        A::Answer(wait, Err(message.into()))
    }

    fn log(line: &str) -> Action {
        A::Log(line.into())
    }

    /// One row of the table: from `state`, on `event`, to `to` with `actions`.
    fn check(
        policy: &Policy,
        row: usize,
        state: State,
        event: Event,
        to: State,
        actions: &[Action],
        t0: Instant,
    ) {
        let life = Life {
            state: state.clone(),
            ..Life::new(policy)
        };
        let (after, out) = step(policy, life, event.clone(), t0);
        assert_eq!(after.state, to, "row {row}: {state:?} on {event:?}");
        assert_eq!(out, actions, "row {row}: {state:?} on {event:?}");
    }

    #[test]
    fn an_adopted_notify_service_is_not_held_to_pings_it_cannot_send() {
        let p = Policy {
            notify: true,
            watchdog: Some(Duration::from_secs(1)),
            ..policy()
        };
        let t0 = Instant::now();
        let adopted = |ready| E::Adopted {
            pid: 7,
            since: t0,
            frozen: false,
            restarts: 0,
            ready,
        };
        // Ready before the crash: ready now, and no watchdog on a dead socket.
        let (life, _) = step(&p, Life::new(&p), adopted(true), t0);
        assert!(life.ready && life.unheard);
        assert_eq!(life.readiness_timer(&p), None);
        // Not ready yet: its ready_timeout still ends it.
        let (life, _) = step(&p, Life::new(&p), adopted(false), t0);
        assert!(matches!(
            life.readiness_timer(&p),
            Some((_, E::ReadyTimedOut))
        ));
    }

    #[test]
    fn adoption_keeps_the_restart_count() {
        let p = policy();
        let t0 = Instant::now();
        let event = E::Adopted {
            pid: 7,
            since: t0,
            frozen: false,
            restarts: 4,
            ready: true,
        };
        let (life, _) = step(&p, Life::new(&p), event, t0);
        assert_eq!(life.restarts, 4);
        // Its exit goes through the restart policy like any other.
        let (life, out) = step(&p, life, E::InitExited(exit(1)), t0);
        assert!(matches!(life.state, S::Backoff { .. }));
        assert!(out.contains(&A::Teardown { keep_cgroup: true }));
    }

    #[test]
    fn every_transition() {
        let p = policy();
        let t0 = Instant::now();
        let since = t0 - Duration::from_secs(1);
        let later = t0 + Duration::from_secs(5);
        let setup = t0 + SETUP_TIMEOUT;
        let cg = t0 + CGROUP_TIMEOUT;
        let stop_at = t0 + p.stop_timeout;
        let backoff = S::Backoff { until: later };
        let run = S::Running { since };
        let frozen = S::Frozen { since };
        let freezing = S::Freezing {
            since,
            deadline: later,
        };
        let thawing = S::Thawing {
            since,
            deadline: later,
        };
        let starting = S::Starting { deadline: later };
        let failing = S::SetupFailing {
            error: "no /x".into(),
        };
        let queued = |then, frozen| S::StopQueued { then, frozen };
        let stopping = |then| S::Stopping {
            then,
            deadline: later,
        };
        let kill_at = Some(cg);
        let killing = |then| S::Killing {
            then,
            deadline: kill_at,
        };
        let teardown = A::Teardown { keep_cgroup: false };
        let stopped_log = log("exited with status 0: stopped");
        #[rustfmt::skip]
        let table: Vec<(State, Event, State, Vec<Action>)> = vec![
            // Adoption.
            (S::Stopped, E::Adopted { pid: 7, since, frozen: false, restarts: 3, ready: true }, run.clone(),
                vec![log("adopted, pid 7")]),
            (S::Stopped, E::Adopted { pid: 7, since, frozen: true, restarts: 0, ready: true }, frozen.clone(),
                vec![log("adopted, pid 7")]),
            (run.clone(), E::Adopted { pid: 7, since, frozen: false, restarts: 0, ready: true }, run.clone(), vec![]),
            (S::Pending, E::Adopted { pid: 7, since, frozen: true, restarts: 0, ready: true }, S::Pending, vec![]),
            // Starting.
            (S::Stopped, E::Start, S::Pending, vec![]),
            (S::Exited, E::Restart, S::Pending, vec![]),
            (S::Failed, E::Start, S::Pending, vec![]),
            (S::Pending, E::Start, S::Pending, vec![]),
            (backoff.clone(), E::Start, S::Pending, vec![]),
            (backoff.clone(), E::Restart, S::Pending, vec![A::RemoveCgroup]),
            (S::Pending, E::DependenciesUp, S::Starting { deadline: setup }, vec![A::Spawn]),
            (S::Pending, E::DependencyFailed("db failed".into()), S::Stopped,
                vec![log("db failed"), err(Wait::Start, "db failed")]),
            (starting.clone(), E::SetupFinished { pid: 7 }, S::Running { since: t0 },
                vec![log("started, pid 7"), ok(Wait::Start)]),
            (starting.clone(), E::SetupFailed("no /x".into()), failing.clone(), vec![A::Signal(Signal::SIGKILL)]),
            (starting.clone(), E::SetupTimedOut, S::SetupFailing { error: "setup did not finish within 30s".into() },
                vec![A::KillGroup]),
            (failing.clone(), E::InitExited(exit(1)), S::Backoff { until: t0 + p.restart_delay },
                vec![log("failed to start: no /x"), err(Wait::Start, "no /x"), teardown.clone(), log("restarting in 0.1s")]),
            (starting.clone(), E::InitExited(exit(1)), S::Backoff { until: t0 + p.restart_delay },
                vec![log("failed to start: the setup process exited with status 1"),
                     err(Wait::Start, "the setup process exited with status 1"), teardown.clone(), log("restarting in 0.1s")]),
            (backoff.clone(), E::BackoffOver, S::Starting { deadline: setup }, vec![A::Spawn]),
            // Already there.
            (run.clone(), E::Start, run.clone(), vec![ok(Wait::Start)]),
            (frozen.clone(), E::Start, frozen.clone(), vec![ok(Wait::Start)]),
            (S::Stopped, E::Stop, S::Stopped, vec![ok(Wait::Stop)]),
            (S::Failed, E::Stop, S::Failed, vec![ok(Wait::Stop)]),
            (starting.clone(), E::Start, starting.clone(), vec![]),
            // Stopping.
            (S::Pending, E::Stop, S::Stopped, vec![err(Wait::Start, "stopped before it started"), ok(Wait::Stop)]),
            (backoff.clone(), E::Stop, S::Stopped, vec![A::RemoveCgroup, log("pending restart cancelled"), ok(Wait::Stop)]),
            (run.clone(), E::Stop, queued(After::Stay, false), vec![]),
            (run.clone(), E::Restart, queued(After::Start, false), vec![err(Wait::Thaw, "restarted")]),
            (thawing.clone(), E::Stop, queued(After::Stay, false), vec![err(Wait::Thaw, "stopped")]),
            (frozen.clone(), E::Stop, queued(After::Stay, true), vec![]),
            (frozen.clone(), E::Restart, queued(After::Start, true), vec![]),
            (freezing.clone(), E::Stop, queued(After::Stay, true), vec![err(Wait::Freeze, "stopped while freezing")]),
            (starting.clone(), E::Stop, killing(After::Stay), vec![A::KillGroup, err(Wait::Start, "stopped while starting")]),
            (failing.clone(), E::Restart, killing(After::Start), vec![A::KillGroup, err(Wait::Start, "stopped while starting")]),
            (queued(After::Start, true), E::Stop, queued(After::Stay, true), vec![]),
            (queued(After::Stay, false), E::Start, queued(After::Start, false), vec![]),
            (stopping(After::Start), E::Stop, stopping(After::Stay), vec![]),
            (stopping(After::Stay), E::Restart, stopping(After::Start), vec![]),
            (killing(After::Start), E::Stop, killing(After::Stay), vec![]),
            (killing(After::Stay), E::Start, killing(After::Start), vec![]),
            (queued(After::Stay, false), E::StopCleared, S::Stopping { then: After::Stay, deadline: stop_at },
                vec![A::Signal(Signal::SIGTERM), log("stopping with SIGTERM, timeout 10s")]),
            (queued(After::Start, true), E::StopCleared, S::Stopping { then: After::Start, deadline: stop_at },
                vec![A::BeginThaw, A::Signal(Signal::SIGTERM), log("stopping with SIGTERM, timeout 10s")]),
            (killing(After::Start), E::KillTimedOut, S::Killing { then: After::Start, deadline: None },
                vec![log("killed, but still there after 10s"), err(Wait::Stop, "killed, but still there after 10s"),
                     err(Wait::Start, "killed, but still there after 10s")]),
            (S::Killing { then: After::Stay, deadline: None }, E::KillTimedOut,
                S::Killing { then: After::Stay, deadline: None }, vec![]),
            (stopping(After::Stay), E::StopDeadline, killing(After::Stay),
                vec![A::KillGroup, log("stop timeout: killing every process of its cgroup")]),
            (stopping(After::Stay), E::InitExited(exit(0)), S::Stopped,
                vec![stopped_log.clone(), teardown.clone(), ok(Wait::Stop), err(Wait::Start, "stopped")]),
            (killing(After::Start), E::InitExited(exit(0)), S::Pending,
                vec![stopped_log.clone(), teardown.clone(), ok(Wait::Stop)]),
            (queued(After::Forget, false), E::InitExited(exit(0)), S::Stopped,
                vec![stopped_log.clone(), teardown.clone(), ok(Wait::Stop),
                     err(Wait::Start, "removed from the service list"), A::Forget]),
            // Exits nobody asked for.
            (run.clone(), E::InitExited(exit(0)), S::Exited,
                vec![log("exited with status 0 after 1.0s"), teardown.clone()]),
            (run.clone(), E::InitExited(exit(3)), S::Backoff { until: t0 + p.restart_delay },
                vec![log("exited with status 3 after 1.0s"), A::Teardown { keep_cgroup: true }, log("restarting in 0.1s")]),
            (run.clone(), E::InitExited(Exit { code: 137, signaled: false, oom_killed: true }),
                S::Backoff { until: t0 + p.restart_delay },
                vec![log("oom-killed (status 137) after 1.0s"), A::Teardown { keep_cgroup: true }, log("restarting in 0.1s")]),
            (freezing.clone(), E::InitExited(exit(0)), S::Exited,
                vec![err(Wait::Freeze, "it exited"), log("exited with status 0 after 1.0s"), teardown.clone()]),
            (thawing.clone(), E::InitExited(exit(0)), S::Exited,
                vec![err(Wait::Thaw, "it exited"), log("exited with status 0 after 1.0s"), teardown.clone()]),
            (frozen.clone(), E::InitExited(exit(137)), S::Failed,
                vec![log("exited with status 137 after 1.0s"), log("it was frozen: not restarted"), teardown.clone()]),
            // Freezer.
            (run.clone(), E::Freeze, S::Freezing { since, deadline: cg }, vec![A::BeginFreeze]),
            (thawing.clone(), E::Freeze, S::Freezing { since, deadline: cg },
                vec![err(Wait::Thaw, "frozen again"), A::BeginFreeze]),
            (frozen.clone(), E::Freeze, frozen.clone(), vec![ok(Wait::Freeze)]),
            (freezing.clone(), E::Freeze, freezing.clone(), vec![]),
            (freezing.clone(), E::FreezeConfirmed, frozen.clone(), vec![log("frozen"), ok(Wait::Freeze)]),
            (freezing.clone(), E::FreezeTimedOut, run.clone(),
                vec![A::BeginThaw, log("freeze: did not freeze within 10s (thawed again)"),
                     err(Wait::Freeze, "did not freeze within 10s (thawed again)")]),
            (frozen.clone(), E::Thaw, S::Thawing { since, deadline: cg }, vec![A::BeginThaw]),
            (freezing.clone(), E::Thaw, S::Thawing { since, deadline: cg },
                vec![err(Wait::Freeze, "thawed before it froze"), A::BeginThaw]),
            (run.clone(), E::Thaw, run.clone(), vec![ok(Wait::Thaw)]),
            (thawing.clone(), E::Thaw, thawing.clone(), vec![]),
            (thawing.clone(), E::ThawConfirmed, run.clone(), vec![log("thawed"), ok(Wait::Thaw)]),
            (thawing.clone(), E::ThawTimedOut, frozen.clone(),
                vec![log("thaw: did not thaw within 10s"), err(Wait::Thaw, "did not thaw within 10s")]),
            (S::Stopped, E::Freeze, S::Stopped, vec![err(Wait::Freeze, "is not running (state stopped)")]),
            (backoff.clone(), E::Thaw, backoff.clone(), vec![err(Wait::Thaw, "is not running (state backoff)")]),
            (queued(After::Stay, false), E::Freeze, queued(After::Stay, false),
                vec![err(Wait::Freeze, "is not running (state stopping)")]),
            // Reload.
            (run.clone(), E::Changed, queued(After::Start, false),
                vec![log("definition changed: restarting"), err(Wait::Thaw, "restarted")]),
            (frozen.clone(), E::Changed, queued(After::Start, true), vec![log("definition changed: restarting")]),
            (starting.clone(), E::Changed, killing(After::Start),
                vec![log("definition changed: restarting"), A::KillGroup, err(Wait::Start, "stopped while starting")]),
            (backoff.clone(), E::Changed, S::Backoff { until: t0 + p.restart_delay }, vec![A::RemoveCgroup]),
            (S::Failed, E::Changed, S::Pending, vec![log("definition changed: starting again")]),
            (S::Exited, E::Changed, S::Exited, vec![]),
            (S::Stopped, E::Changed, S::Stopped, vec![]),
            (run.clone(), E::Removed, queued(After::Forget, false),
                vec![log("removed from the service list: stopping")]),
            (frozen.clone(), E::Removed, queued(After::Forget, true),
                vec![log("removed from the service list: stopping")]),
            (starting.clone(), E::Removed, killing(After::Forget),
                vec![log("removed from the service list: stopping"), A::KillGroup, err(Wait::Start, "stopped while starting")]),
            (queued(After::Start, true), E::Removed, queued(After::Forget, true),
                vec![log("removed from the service list: stopping")]),
            (stopping(After::Stay), E::Removed, stopping(After::Forget),
                vec![log("removed from the service list: stopping")]),
            (killing(After::Stay), E::Removed, killing(After::Forget),
                vec![log("removed from the service list: stopping")]),
            (S::Stopped, E::Removed, S::Stopped,
                vec![err(Wait::Start, "removed from the service list"), ok(Wait::Stop), A::Forget]),
            (backoff.clone(), E::Removed, S::Stopped,
                vec![A::RemoveCgroup, err(Wait::Start, "removed from the service list"), ok(Wait::Stop), A::Forget]),
            // Health.
            (run.clone(), E::Unhealthy, queued(After::Start, false), vec![log("unhealthy: restarting")]),
            (frozen.clone(), E::Unhealthy, frozen.clone(), vec![]),
            (freezing.clone(), E::Unhealthy, freezing.clone(), vec![]),
            (stopping(After::Stay), E::Unhealthy, stopping(After::Stay), vec![]),
            (starting.clone(), E::Unhealthy, starting.clone(), vec![]),
            (S::Stopped, E::Unhealthy, S::Stopped, vec![]),
            // Events a state has no use for.
            (run.clone(), E::BackoffOver, run.clone(), vec![]),
            (S::Stopped, E::InitExited(exit(0)), S::Stopped, vec![]),
            (S::Exited, E::StopCleared, S::Exited, vec![]),
            (frozen.clone(), E::SetupFinished { pid: 1 }, frozen.clone(), vec![]),
        ];
        for (row, (state, event, to, actions)) in table.into_iter().enumerate() {
            check(&p, row, state, event, to, &actions, t0);
        }
    }

    fn notify_policy() -> Policy {
        Policy {
            notify: true,
            ready_timeout: Duration::from_secs(60),
            watchdog: Some(Duration::from_secs(10)),
            ..policy()
        }
    }

    #[test]
    fn readiness_transitions() {
        let p = notify_policy();
        let t0 = Instant::now();
        let since = t0 - Duration::from_secs(1);
        let run = S::Running { since };
        let frozen = S::Frozen { since };
        let kill = |line: &str| vec![log(line), A::KillGroup];
        // (ready before, state, event) -> (state, actions, ready after, missed)
        type Row = (bool, State, Event, State, Vec<Action>, bool, Option<Missed>);
        #[rustfmt::skip]
        let table: Vec<Row> = vec![
            (false, run.clone(), E::Ready, run.clone(), vec![log("ready")], true, None),
            (true, run.clone(), E::Ready, run.clone(), vec![], true, None),
            (false, frozen.clone(), E::Ready, frozen.clone(), vec![log("ready")], true, None),
            (false, S::Starting { deadline: t0 }, E::Ready, S::Starting { deadline: t0 }, vec![], false, None),
            (false, S::Stopped, E::Ready, S::Stopped, vec![], false, None),
            (true, run.clone(), E::WatchdogPing, run.clone(), vec![], true, None),
            (true, run.clone(), E::WatchdogTimedOut, run.clone(),
                kill("watchdog timeout: no WATCHDOG=1 within 10s: killing"), true, Some(Missed::Watchdog)),
            (false, run.clone(), E::ReadyTimedOut, run.clone(),
                kill("not ready within 60s (no READY=1): killing"), false, Some(Missed::Ready)),
            // Late: READY=1 came first.
            (true, run.clone(), E::ReadyTimedOut, run.clone(), vec![], true, None),
            // Frozen: no bound runs.
            (true, frozen.clone(), E::WatchdogTimedOut, frozen.clone(), vec![], true, None),
            (true, S::Stopped, E::WatchdogTimedOut, S::Stopped, vec![], true, None),
        ];
        for (row, (ready, state, event, to, actions, ready_after, missed)) in
            table.into_iter().enumerate()
        {
            let life = Life {
                state: state.clone(),
                ready,
                ..Life::new(&p)
            };
            let (after, out) = step(&p, life, event.clone(), t0);
            assert_eq!(after.state, to, "row {row}: {state:?} on {event:?}");
            assert_eq!(out, actions, "row {row}: {state:?} on {event:?}");
            assert_eq!(after.ready, ready_after, "row {row}");
            assert_eq!(after.missed, missed, "row {row}");
        }
    }

    #[test]
    fn readiness_bounds_and_the_watchdog_exit_reason() {
        let p = notify_policy();
        let t0 = Instant::now();
        let starting = Life {
            state: S::Starting { deadline: t0 },
            ready: true,
            missed: Some(Missed::Watchdog),
            ..Life::new(&p)
        };
        // A new run starts unready, its bounds counted from its start.
        let (life, _) = step(&p, starting, E::SetupFinished { pid: 3 }, t0);
        assert!(!life.ready && life.missed.is_none());
        assert_eq!(
            life.readiness_timer(&p),
            Some((t0 + p.ready_timeout, E::ReadyTimedOut))
        );
        let at = t0 + Duration::from_secs(2);
        let (life, _) = step(&p, life, E::Ready, at);
        assert_eq!(
            life.readiness_timer(&p),
            Some((at + Duration::from_secs(10), E::WatchdogTimedOut))
        );
        let ping = at + Duration::from_secs(5);
        let (life, _) = step(&p, life, E::WatchdogPing, ping);
        assert_eq!(
            life.readiness_timer(&p),
            Some((ping + Duration::from_secs(10), E::WatchdogTimedOut))
        );
        // Without a watchdog, nothing after READY=1; without notify, nothing at all.
        let quiet = Policy {
            watchdog: None,
            ..notify_policy()
        };
        assert_eq!(life.readiness_timer(&quiet), None);
        assert_eq!(life.readiness_timer(&policy()), None);
        // The watchdog's kill ends the run with exit_reason watchdog, and it restarts.
        let (life, _) = step(&p, life, E::WatchdogTimedOut, ping);
        assert_eq!(life.readiness_timer(&p), None);
        let (life, out) = step(
            &p,
            life,
            E::InitExited(Exit {
                code: 137,
                signaled: true,
                oom_killed: false,
            }),
            ping,
        );
        assert!(matches!(life.state, S::Backoff { .. }), "{:?}", life.state);
        assert_eq!(life.last_exit.unwrap().reason, ExitReason::Watchdog);
        assert!(out.contains(&log("restarting in 0.1s")), "{out:?}");
        // A thaw gives a whole interval again.
        let frozen = Life {
            state: S::Thawing {
                since: t0,
                deadline: t0,
            },
            ready: true,
            pinged: Some(t0),
            ..Life::new(&p)
        };
        let later = t0 + Duration::from_secs(100);
        let (life, _) = step(&p, frozen, E::ThawConfirmed, later);
        assert_eq!(
            life.readiness_timer(&p),
            Some((later + Duration::from_secs(10), E::WatchdogTimedOut))
        );
    }

    #[test]
    fn a_failed_service_is_not_started_again_on_change_unless_autostart() {
        let p = Policy {
            autostart: false,
            ..policy()
        };
        let life = Life {
            state: S::Failed,
            ..Life::new(&p)
        };
        let (life, out) = step(&p, life, E::Changed, Instant::now());
        assert_eq!(life.state, S::Failed);
        assert!(out.is_empty());
    }

    /// Crashes of a service that ran `ran` each, at `t`, `t + 1s`, ...
    fn crash(p: &Policy, life: Life, at: Instant, ran: Duration) -> (Life, Vec<Action>) {
        let life = Life {
            state: S::Running { since: at - ran },
            ..life
        };
        step(p, life, E::InitExited(exit(1)), at)
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum_and_resets_after_a_good_run() {
        let p = policy();
        let t0 = Instant::now();
        let mut life = Life::new(&p);
        let mut waits = Vec::new();
        for n in 0..4 {
            let at = t0 + Duration::from_secs(n);
            (life, _) = crash(&p, life, at, Duration::from_millis(10));
            let S::Backoff { until } = life.state else {
                panic!("{:?}", life.state)
            };
            waits.push((until - at).as_millis());
        }
        assert_eq!(waits, [100, 200, 400, 400]);
        let at = t0 + Duration::from_secs(60);
        (life, _) = crash(&p, life, at, RESET_BACKOFF_AFTER);
        assert_eq!(
            life.state,
            S::Backoff {
                until: at + p.restart_delay
            }
        );
    }

    #[test]
    fn the_restart_limit_ends_in_failed_and_a_manual_start_resets_it() {
        let p = Policy {
            restart_limit: Some(config::RestartLimit {
                count: 2,
                window: Duration::from_secs(60),
            }),
            ..policy()
        };
        let t0 = Instant::now();
        let ran = Duration::from_millis(10);
        let mut life = Life::new(&p);
        (life, _) = crash(&p, life, t0, ran);
        assert!(matches!(life.state, S::Backoff { .. }));
        (life, _) = crash(&p, life, t0 + Duration::from_secs(1), ran);
        assert!(matches!(life.state, S::Backoff { .. }));
        let out;
        (life, out) = crash(&p, life, t0 + Duration::from_secs(2), ran);
        assert_eq!(life.state, S::Failed);
        assert!(out.contains(&log(
            "restart limit reached (2 restarts within 60s): not restarting"
        )));
        assert_eq!(
            life.last_exit.map(|e| (e.code, e.reason)),
            Some((Some(1), ExitReason::Exited))
        );
        // Outside the window, the old restarts no longer count.
        let mut later = life.clone();
        later.state = S::Failed;
        (later, _) = step(&p, later, E::Start, t0);
        assert!(later.recent.is_empty());
        let mut old = life.clone();
        old.recent = vec![t0, t0];
        (old, _) = crash(&p, old, t0 + Duration::from_secs(61), ran);
        assert!(matches!(old.state, S::Backoff { .. }));
    }

    #[test]
    fn exit_reasons_and_errors() {
        let p = policy();
        let t0 = Instant::now();
        let life = Life::new(&p);
        let (life, _) = step(
            &p,
            Life {
                state: S::Running { since: t0 },
                ..life
            },
            E::InitExited(Exit {
                code: 137,
                signaled: true,
                oom_killed: false,
            }),
            t0,
        );
        assert_eq!(life.last_exit.unwrap().reason, ExitReason::Signaled);
        let (life, _) = step(
            &p,
            Life {
                state: S::SetupFailing {
                    error: "bad".into(),
                },
                ..life
            },
            E::InitExited(exit(1)),
            t0,
        );
        let last = life.last_exit.unwrap();
        assert_eq!((last.code, last.reason), (None, ExitReason::SetupFailed));
        assert_eq!(life.error.as_deref(), Some("bad"));
        let (life, _) = step(
            &p,
            Life {
                state: S::Stopping {
                    then: After::Stay,
                    deadline: t0,
                },
                ..life
            },
            E::InitExited(exit(143)),
            t0,
        );
        assert_eq!(life.last_exit.unwrap().reason, ExitReason::Stopped);
        // A start that succeeds clears the last start's error.
        let (life, _) = step(
            &p,
            Life {
                state: S::Starting { deadline: t0 },
                ..life
            },
            E::SetupFinished { pid: 3 },
            t0,
        );
        assert_eq!(life.error, None);
    }

    #[test]
    fn an_unhealthy_restart_is_counted_and_limited() {
        let p = Policy {
            restart_limit: Some(config::RestartLimit {
                count: 1,
                window: Duration::from_secs(60),
            }),
            ..policy()
        };
        let t0 = Instant::now();
        let run = S::Running { since: t0 };
        let life = Life {
            state: run.clone(),
            ..Life::new(&p)
        };
        let (life, _) = step(&p, life, E::Unhealthy, t0);
        assert_eq!(life.restarts, 1);
        assert_eq!(
            life.state,
            S::StopQueued {
                then: After::Start,
                frozen: false
            }
        );
        let (life, out) = step(
            &p,
            Life {
                state: run.clone(),
                ..life
            },
            E::Unhealthy,
            t0,
        );
        assert_eq!(life.state, run);
        assert_eq!(life.restarts, 1);
        assert_eq!(
            out,
            [log(
                "unhealthy: restart limit reached (1 restarts within 60s): not restarting"
            )]
        );
    }

    #[test]
    fn automatic_restarts_are_counted() {
        let p = policy();
        let life = Life {
            state: S::Backoff {
                until: Instant::now(),
            },
            ..Life::new(&p)
        };
        let (life, _) = step(&p, life, E::BackoffOver, Instant::now());
        assert_eq!(life.restarts, 1);
    }

    #[test]
    fn status_words() {
        use crate::protocol::State as W;
        let t = Instant::now();
        assert_eq!(S::Pending.word(), W::Starting);
        assert_eq!(S::Starting { deadline: t }.word(), W::Starting);
        assert_eq!(
            S::Freezing {
                since: t,
                deadline: t
            }
            .word(),
            W::Running
        );
        assert_eq!(
            S::Thawing {
                since: t,
                deadline: t
            }
            .word(),
            W::Frozen
        );
        assert_eq!(
            S::Killing {
                then: After::Stay,
                deadline: None
            }
            .word(),
            W::Stopping
        );
    }
}
