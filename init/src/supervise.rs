//! The main loop while the main child runs: one blocking wait for any signal;
//! SIGCHLD means reap, everything else is forwarded.

use crate::reap::reap;
use crate::sys::{self, SignalWait};
use crate::terminal;

pub struct Child {
    pub pid: i32,
    /// Where signals go: the child, or its process group (-pid).
    pub target: i32,
    /// We made the child's group the terminal's foreground group.
    pub owns_terminal: bool,
}

/// Runs until the main child is gone; returns its exit code (128+N for signal N).
pub fn supervise(signals: &SignalWait, child: &Child, pid1: bool) -> i32 {
    // Set when we forwarded a job-control stop, so that the child stopping
    // because of it does not make us stop a second time.
    let mut stop_forwarded = false;
    loop {
        let signal = signals.wait();
        if signal == libc::SIGCHLD {
            // Stops matter only when we handed the child the terminal.
            let reaped = reap(Some(child.pid), child.owns_terminal);
            if let Some(code) = reaped.main_exit {
                return code;
            }
            if reaped.main_stopped && !core::mem::take(&mut stop_forwarded) {
                // Stopped from the terminal (^Z): stop too, so that the shell
                // that started us sees the job stop.
                if !pid1 {
                    stop_self();
                }
            }
            continue;
        }
        if signal == libc::SIGCONT {
            stop_forwarded = false;
            if child.owns_terminal {
                terminal::hand_over_if_ours(child.pid);
            }
        }
        forward(child.target, signal);
        // As dumb-init does: pass the stop on, then stop ourselves, so that
        // job control sees init and its child stop together.
        if [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&signal) {
            stop_forwarded = true;
            if !pid1 {
                stop_self();
            }
        }
    }
}

fn forward(target: i32, signal: i32) {
    match sys::kill(target, signal) {
        Ok(()) => debug!(
            "forwarded SIG{} ({signal}) to {target}",
            crate::signals::name(signal)
        ),
        Err(e) => debug!("forwarding signal {signal} to {target}: {e}"),
    }
}

fn stop_self() {
    debug!("stopping, as the child did");
    let _ = sys::kill(sys::getpid(), libc::SIGSTOP);
}
