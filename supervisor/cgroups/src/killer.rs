//! Killing every process of a group with signals, where there is no cgroup.kill
//! (v1, and v2 kernels before 5.14): freeze, SIGKILL each pid, thaw, until empty.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{fsops, notify, Error};

/// Freezing, so that no process forks or escapes between reading the pids and killing them.
pub(crate) trait Freeze {
    fn freeze(&self, timeout: Duration) -> Result<(), Error>;
    fn thaw(&self, timeout: Duration) -> Result<(), Error>;
}

/// How long a thaw may take even when the kill's own deadline has passed: a group must
/// never be left frozen.
const THAW_BOUND: Duration = Duration::from_secs(5);
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// How to learn that the group has emptied after a round of kills.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Emptied<'a> {
    /// v1: no notification exists, so look again after brief pauses.
    Recheck,
    /// cgroup2: `populated 0` in this cgroup.events file, which wakes poll() (POLLPRI).
    Events(&'a Path),
}

pub(crate) fn kill_by_signal(
    procs: &Path,
    freezer: Option<&dyn Freeze>,
    emptied: Emptied,
    timeout: Duration,
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if fsops::read_procs(procs)?.is_empty() {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout {
                what: "kill all processes in",
                path: procs.to_path_buf(),
                timeout,
                undone: false,
            });
        }
        let frozen = match freezer {
            // A freeze that times out has undone itself; killing unfrozen is still worth a round.
            Some(f) => match f.freeze(left) {
                Ok(()) => true,
                Err(e) => {
                    log::warn!("killing without freezing first: {e}");
                    false
                }
            },
            None => false,
        };
        let killed = signal_all(procs);
        if let Some(f) = freezer {
            f.thaw(left.max(THAW_BOUND))?;
        }
        killed?;
        match emptied {
            Emptied::Events(events) => {
                // Killed while frozen, nothing can have escaped: wait for the kernel to
                // report the group empty. Unfrozen, a child forked meanwhile may have
                // survived: the wait also ends after a pause for another round.
                let until = if frozen {
                    deadline
                } else {
                    (Instant::now() + pause).min(deadline)
                };
                if notify::wait_for(events, "populated", "0", until)? {
                    return Ok(());
                }
            }
            // v1 has no notification for an emptied group: wait briefly and look again.
            Emptied::Recheck => {
                sleep(pause.min(deadline.saturating_duration_since(Instant::now())))
            }
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

pub(crate) fn signal_all(procs: &Path) -> Result<(), Error> {
    for pid in fsops::read_procs(procs)? {
        match kill(Pid::from_raw(pid), Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => {
                return Err(Error::io(
                    "kill",
                    format!("pid {pid} of {}", procs.display()),
                    e.into(),
                ))
            }
        }
    }
    Ok(())
}
