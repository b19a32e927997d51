//! Collecting every child that changed state: the main child and any orphan
//! reparented to us.

use crate::sys;

/// What one round of reaping found.
#[derive(Default)]
pub struct Reaped {
    /// The main child's exit code (128+N when killed by signal N), once it is gone.
    pub main_exit: Option<i32>,
    /// The main child was stopped (job control).
    pub main_stopped: bool,
    /// Some child of ours is still alive.
    pub children_left: bool,
}

/// Reaps every child that has exited, without blocking; with `stops`, also
/// notices the main child stopping.
pub fn reap(main: Option<i32>, stops: bool) -> Reaped {
    let mut reaped = Reaped::default();
    loop {
        let (pid, status) = match sys::wait_any(stops) {
            Ok(Some(changed)) => changed,
            Ok(None) => {
                reaped.children_left = true;
                return reaped;
            }
            Err(sys::Errno(libc::EINTR)) => continue,
            Err(_) => return reaped, // ECHILD: nobody left
        };
        if libc::WIFSTOPPED(status) {
            reaped.main_stopped |= Some(pid) == main;
            continue;
        }
        let exit = if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status)
        } else {
            libc::WEXITSTATUS(status)
        };
        trace!("reaped {pid} ({exit})");
        if Some(pid) == main {
            reaped.main_exit = Some(exit);
        }
    }
}
