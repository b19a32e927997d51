//! The end of the machine, once the daemon has stopped every service: what is
//! left gets SIGTERM, then SIGKILL; sync; every file system unmounted (or
//! read-only); the watchdog disarmed; then reboot(2).

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::reboot::{reboot, RebootMode};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::console;
use crate::protocol::PowerAction;

/// How long the processes outside services get between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

pub fn finish(action: PowerAction) -> ! {
    console::step(&format!("every service stopped; {}", action.as_str()));
    signal_everything(Signal::SIGTERM, GRACE);
    signal_everything(Signal::SIGKILL, GRACE);
    nix::unistd::sync();
    console::step("file systems synced");
    super::mounts::unmount_all();
    nix::unistd::sync();
    super::disarm_watchdog();
    let mode = match action {
        PowerAction::Poweroff => RebootMode::RB_POWER_OFF,
        PowerAction::Reboot => RebootMode::RB_AUTOBOOT,
        PowerAction::Halt => RebootMode::RB_HALT_SYSTEM,
    };
    console::step(&format!("{}: calling reboot(2)", action.as_str()));
    let Err(err) = reboot(mode);
    console::failed(&format!("reboot(2): {err}; reaping until the power goes"));
    super::reap_forever()
}

/// kill(-1, signal): every process but PID 1 (and kernel threads); then reaps
/// until none is left or `grace` runs out.
fn signal_everything(signal: Signal, grace: Duration) {
    match kill(Pid::from_raw(-1), signal) {
        Ok(()) => console::step(&format!("sent {signal} to every remaining process")),
        // Nobody left.
        Err(Errno::ESRCH) => return,
        Err(err) => console::failed(&format!("kill(-1, {signal}): {err}")),
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::ECHILD) => return,
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(20)),
            _ => {}
        }
    }
}
