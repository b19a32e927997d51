//! Lifecycle events for `supervisor events`: which events a transition of a
//! service's lifecycle means (`derive`, a pure function with table tests), and
//! the ring of the last events that `events --since` replays. Everything that
//! reports an event calls `Events::emit`; the event loop takes the new ones
//! (`take_fresh`) and pushes them to the subscribed clients.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use super::lifecycle::{Event, Life, State};
use crate::logs::timestamp::rfc3339;
use crate::protocol::{EventDetails, EventKind, EventRecord};

/// How many events the ring keeps for `--since`.
pub const RING_SIZE: usize = 1000;

/// The events of the daemon's lifetime: the last RING_SIZE, and those not
/// yet pushed to subscribers.
pub struct Events {
    ring: VecDeque<(SystemTime, EventRecord)>,
    fresh: Vec<EventRecord>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            ring: VecDeque::with_capacity(RING_SIZE),
            fresh: Vec::new(),
        }
    }
}

impl Events {
    /// Records that `kind` happened to `service` now.
    pub fn emit(&mut self, service: &str, kind: EventKind, details: EventDetails) {
        let now = SystemTime::now();
        let record = EventRecord {
            time: rfc3339(now),
            service: service.to_string(),
            event: kind,
            details,
        };
        log::debug!("event: {record:?}");
        if self.ring.len() == RING_SIZE {
            self.ring.pop_front();
        }
        self.ring.push_back((now, record.clone()));
        self.fresh.push(record);
    }

    /// The events of one transition, in order.
    pub fn emit_all(&mut self, service: &str, occurred: Vec<(EventKind, EventDetails)>) {
        for (kind, details) in occurred {
            self.emit(service, kind, details);
        }
    }

    /// The events of the ring that happened within `window` before now, oldest first.
    pub fn within(&self, window: Duration) -> impl Iterator<Item = &EventRecord> {
        let from = SystemTime::now()
            .checked_sub(window)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.ring
            .iter()
            .filter(move |(at, _)| *at >= from)
            .map(|(_, record)| record)
    }

    /// The events emitted since the last call.
    pub fn take_fresh(&mut self) -> Vec<EventRecord> {
        std::mem::take(&mut self.fresh)
    }
}

/// The events a transition of one service means: from `before`, on `event`,
/// to `after` (at `now`). Most transitions mean none.
pub fn derive(
    before: &State,
    event: &Event,
    after: &Life,
    now: Instant,
) -> Vec<(EventKind, EventDetails)> {
    use Event as E;
    use EventKind as K;
    use State as S;
    let mut out = Vec::new();
    let plain = EventDetails::default;
    // What ended, if something did.
    let mut stopped = false;
    match (before, event) {
        (S::Starting { .. }, E::SetupFinished { pid }) if after.state.is_up() => {
            out.push((
                K::Started,
                EventDetails {
                    pid: Some(*pid),
                    ..plain()
                },
            ));
        }
        (S::Starting { .. } | S::SetupFailing { .. }, E::InitExited(_))
        | (S::Pending, E::DependencyFailed(_)) => out.push((
            K::SetupFailed,
            EventDetails {
                message: after.error.clone(),
                ..plain()
            },
        )),
        (
            S::Running { .. }
            | S::Freezing { .. }
            | S::Frozen { .. }
            | S::Thawing { .. }
            | S::StopQueued { .. }
            | S::Stopping { .. }
            | S::Killing { .. },
            E::InitExited(exit),
        ) => {
            if exit.oom_killed {
                out.push((K::OomKilled, plain()));
            }
            out.push((
                K::Exited,
                EventDetails {
                    status: Some(exit.code),
                    reason: after.last_exit.map(|e| e.reason.as_str().to_string()),
                    ..plain()
                },
            ));
            if before.then().is_some() {
                out.push((K::Stopped, plain()));
                stopped = true;
            }
        }
        (S::Freezing { .. }, E::FreezeConfirmed) => out.push((K::Frozen, plain())),
        (S::Thawing { .. }, E::ThawConfirmed) => out.push((K::Thawed, plain())),
        _ => {}
    }
    if std::mem::discriminant(before) == std::mem::discriminant(&after.state) {
        return out;
    }
    // Where it went.
    match &after.state {
        S::Pending | S::Starting { .. } if !matches!(before, S::Pending) => {
            out.push((K::Starting, plain()));
        }
        S::Backoff { until } => out.push((
            K::Restarting,
            EventDetails {
                delay_ms: Some(until.saturating_duration_since(now).as_millis() as u64),
                ..plain()
            },
        )),
        S::Failed => out.push((K::Failed, plain())),
        // Asked to stop before it ran (waiting for dependencies or a restart).
        S::Stopped
            if !stopped
                && matches!(before, S::Pending | S::Backoff { .. })
                && !matches!(event, E::DependencyFailed(_)) =>
        {
            out.push((K::Stopped, plain()));
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::lifecycle::{self, After, Exit, Policy};
    use config::RestartPolicy;
    use nix::sys::signal::Signal;
    use EventKind as K;

    fn policy(restart: RestartPolicy, limit: Option<config::RestartLimit>) -> Policy {
        Policy {
            restart,
            restart_delay: Duration::from_millis(100),
            restart_delay_max: Duration::from_millis(400),
            restart_limit: limit,
            stop_signal: Signal::SIGTERM,
            stop_timeout: Duration::from_secs(10),
            autostart: true,
            notify: false,
            ready_timeout: Duration::from_secs(60),
            watchdog: None,
        }
    }

    fn exit(code: i32, oom_killed: bool) -> Exit {
        Exit {
            code,
            signaled: false,
            oom_killed,
        }
    }

    /// The events of the lifecycle's own transition of `state` on `event`.
    fn events(p: &Policy, state: State, event: Event) -> Vec<(EventKind, EventDetails)> {
        let now = Instant::now();
        let life = Life {
            state: state.clone(),
            ..Life::new(p)
        };
        let (after, _) = lifecycle::step(p, life, event.clone(), now);
        derive(&state, &event, &after, now)
    }

    fn kinds(occurred: &[(EventKind, EventDetails)]) -> Vec<EventKind> {
        occurred.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn every_transition_that_means_an_event() {
        let t0 = Instant::now();
        let on_failure = policy(RestartPolicy::OnFailure, None);
        let never = policy(RestartPolicy::Never, None);
        let running = || State::Running { since: t0 };
        let stopping = |then| State::Stopping {
            then,
            deadline: t0 + Duration::from_secs(10),
        };
        let rows: Vec<(&Policy, State, Event, Vec<EventKind>)> = vec![
            (&on_failure, State::Stopped, Event::Start, vec![K::Starting]),
            (
                &on_failure,
                State::Failed,
                Event::Restart,
                vec![K::Starting],
            ),
            (&on_failure, State::Pending, Event::DependenciesUp, vec![]),
            (
                &on_failure,
                State::Pending,
                Event::DependencyFailed("not started: dependency db failed".into()),
                vec![K::SetupFailed],
            ),
            (&on_failure, State::Pending, Event::Stop, vec![K::Stopped]),
            (
                &on_failure,
                State::Starting { deadline: t0 },
                Event::SetupFinished { pid: 42 },
                vec![K::Started],
            ),
            (
                &on_failure,
                State::SetupFailing {
                    error: "no image".into(),
                },
                Event::InitExited(exit(1, false)),
                vec![K::SetupFailed, K::Restarting],
            ),
            (
                &never,
                State::SetupFailing {
                    error: "no image".into(),
                },
                Event::InitExited(exit(1, false)),
                vec![K::SetupFailed, K::Failed],
            ),
            (
                &on_failure,
                running(),
                Event::InitExited(exit(3, false)),
                vec![K::Exited, K::Restarting],
            ),
            (
                &on_failure,
                running(),
                Event::InitExited(exit(137, true)),
                vec![K::OomKilled, K::Exited, K::Restarting],
            ),
            (
                &on_failure,
                running(),
                Event::InitExited(exit(0, false)),
                vec![K::Exited],
            ),
            (
                &never,
                running(),
                Event::InitExited(exit(2, false)),
                vec![K::Exited, K::Failed],
            ),
            (
                &on_failure,
                State::Frozen { since: t0 },
                Event::InitExited(exit(137, false)),
                vec![K::Exited, K::Failed],
            ),
            (
                &on_failure,
                State::Backoff { until: t0 },
                Event::BackoffOver,
                vec![K::Starting],
            ),
            (
                &on_failure,
                State::Backoff { until: t0 },
                Event::Stop,
                vec![K::Stopped],
            ),
            (&on_failure, running(), Event::Stop, vec![]),
            (
                &on_failure,
                stopping(After::Stay),
                Event::InitExited(exit(143, false)),
                vec![K::Exited, K::Stopped],
            ),
            (
                &on_failure,
                stopping(After::Start),
                Event::InitExited(exit(143, false)),
                vec![K::Exited, K::Stopped, K::Starting],
            ),
            (
                &on_failure,
                stopping(After::Forget),
                Event::InitExited(exit(0, false)),
                vec![K::Exited, K::Stopped],
            ),
            (&on_failure, running(), Event::Freeze, vec![]),
            (
                &on_failure,
                State::Freezing {
                    since: t0,
                    deadline: t0,
                },
                Event::FreezeConfirmed,
                vec![K::Frozen],
            ),
            (
                &on_failure,
                State::Thawing {
                    since: t0,
                    deadline: t0,
                },
                Event::ThawConfirmed,
                vec![K::Thawed],
            ),
            (&on_failure, State::Exited, Event::Stop, vec![]),
            (&on_failure, State::Stopped, Event::Removed, vec![]),
        ];
        for (row, (p, state, event, want)) in rows.into_iter().enumerate() {
            let got = events(p, state.clone(), event.clone());
            assert_eq!(kinds(&got), want, "row {row}: {state:?} on {event:?}");
        }
    }

    #[test]
    fn details_carry_status_reason_delay_pid_and_message() {
        let t0 = Instant::now();
        let p = policy(RestartPolicy::OnFailure, None);
        let crash = events(
            &p,
            State::Running { since: t0 },
            Event::InitExited(exit(137, true)),
        );
        assert_eq!(crash[1].1.status, Some(137));
        assert_eq!(crash[1].1.reason.as_deref(), Some("oom_killed"));
        assert_eq!(crash[2].1.delay_ms, Some(100));
        let stop = events(
            &p,
            State::Stopping {
                then: After::Stay,
                deadline: t0,
            },
            Event::InitExited(exit(143, false)),
        );
        assert_eq!(stop[0].1.reason.as_deref(), Some("stopped"));
        let started = events(
            &p,
            State::Starting { deadline: t0 },
            Event::SetupFinished { pid: 7 },
        );
        assert_eq!(started[0].1.pid, Some(7));
        let failed = events(
            &p,
            State::SetupFailing {
                error: "no image x".into(),
            },
            Event::InitExited(exit(1, false)),
        );
        assert_eq!(failed[0].1.message.as_deref(), Some("no image x"));
    }

    #[test]
    fn the_restart_limit_ends_in_failed() {
        let t0 = Instant::now();
        let limit = config::RestartLimit {
            count: 1,
            window: Duration::from_secs(60),
        };
        let p = policy(RestartPolicy::Always, Some(limit));
        let life = Life {
            state: State::Running { since: t0 },
            recent: vec![t0],
            ..Life::new(&p)
        };
        let event = Event::InitExited(exit(1, false));
        let (after, _) = lifecycle::step(&p, life, event.clone(), t0);
        let got = derive(&State::Running { since: t0 }, &event, &after, t0);
        assert_eq!(kinds(&got), vec![K::Exited, K::Failed]);
    }

    #[test]
    fn the_ring_keeps_the_last_events_and_hands_out_new_ones_once() {
        let mut events = Events::default();
        for n in 0..RING_SIZE + 5 {
            events.emit(&format!("s{n}"), K::Started, EventDetails::default());
        }
        let kept: Vec<&EventRecord> = events.within(Duration::from_secs(3600)).collect();
        assert_eq!(kept.len(), RING_SIZE);
        assert_eq!(kept[0].service, "s5");
        assert_eq!(events.take_fresh().len(), RING_SIZE + 5);
        assert!(events.take_fresh().is_empty());
    }
}
