//! After the main child: SIGTERM to whatever is left, a grace period spent
//! reaping, then SIGKILL. "Left" is everyone else in the PID namespace when we
//! are PID 1, and our descendants when we are a subreaper.

use alloc::ffi::CString;
use alloc::format;
use alloc::vec::Vec;
use core::time::Duration;

use crate::reap::reap;
use crate::sys::{self, SignalWait};

pub fn terminate_rest(signals: &SignalWait, grace: Duration, pid1: bool) {
    if !reap(None, false).children_left {
        return;
    }
    info!("main child gone: sending SIGTERM to the remaining processes");
    // A stopped process would sit on its SIGTERM until the SIGKILL: wake it.
    if signal_rest(pid1, libc::SIGTERM) {
        signal_rest(pid1, libc::SIGCONT);
    }
    let deadline = sys::now() + grace;
    while reap(None, false).children_left {
        if signals.wait_until(deadline).is_none() {
            warn!("processes left after {grace:?}: sending SIGKILL");
            kill_rest(signals, pid1);
            return;
        }
    }
}

/// SIGKILL until nothing is left; signals again after each wake-up in case
/// a process forked before the signal reached it.
fn kill_rest(signals: &SignalWait, pid1: bool) {
    loop {
        if !signal_rest(pid1, libc::SIGKILL) {
            return; // nothing we can do: leave them to the real init
        }
        if !reap(None, false).children_left {
            return;
        }
        signals.wait();
    }
}

/// Sends `signal` to the rest; false if we cannot tell who they are.
fn signal_rest(pid1: bool, signal: i32) -> bool {
    if pid1 {
        let _ = sys::kill(-1, signal);
        return true;
    }
    let Some(pids) = descendants(sys::getpid()) else {
        warn!("cannot list the remaining processes without /proc");
        return false;
    };
    for pid in pids {
        let _ = sys::kill(pid, signal);
    }
    true
}

/// Live processes below `root`, from the parent links in /proc.
fn descendants(root: i32) -> Option<Vec<i32>> {
    let mut links = Vec::new(); // (parent, pid)
    sys::for_each_entry(c"/proc", |name| {
        let pid = core::str::from_utf8(name).ok().and_then(|n| n.parse().ok());
        if let Some(parent) = pid.and_then(live_parent) {
            links.push((parent, pid.unwrap_or_default()));
        }
    })
    .ok()?;
    links.sort_unstable();
    let mut found = Vec::new();
    let mut queue = alloc::vec![root];
    while let Some(parent) = queue.pop() {
        let first = links.partition_point(|&(p, _)| p < parent);
        for &(_, child) in links[first..].iter().take_while(|&&(p, _)| p == parent) {
            found.push(child);
            queue.push(child);
        }
    }
    Some(found)
}

/// The parent pid from /proc/PID/stat, unless the process is a zombie.
fn live_parent(pid: i32) -> Option<i32> {
    let path = CString::new(format!("/proc/{pid}/stat")).ok()?;
    let mut buf = [0u8; 512];
    let n = sys::read_file(&path, &mut buf).ok()?;
    let stat = core::str::from_utf8(&buf[..n]).ok()?;
    // "pid (comm) state ppid ...": comm may contain anything, so cut at the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_ascii_whitespace();
    let state = fields.next()?;
    let parent = fields.next()?.parse().ok()?;
    (state != "Z").then_some(parent)
}
