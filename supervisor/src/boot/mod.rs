//! `supervisor boot`: the supervisor as PID 1 of the machine. The kernel starts
//! it (as /sbin/init, `init=` or `rdinit=`; with no subcommand it boots when it
//! is PID 1); it brings the machine up (file systems, modules, hostname,
//! loopback, sysctls, watchdog), runs the daemon's normal work on the service
//! list, reaps every orphan, and takes the machine down on `poweroff`,
//! `reboot` or `halt` (control socket verbs or signals). It never exits: an
//! error is shown on the console and the machine stays up, reaping.

mod console;
mod mounts;
mod shutdown;
#[allow(unsafe_code)]
mod sys;
mod watchdog;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

pub use console::service_line as console_line;

use crate::protocol::PowerAction;
use watchdog::Watchdog;

/// The service list when the kernel command line names none.
pub const DEFAULT_CONFIG: &str = "/etc/supervisor/services.yaml";
/// `supervisor.config=PATH` on the kernel command line overrides it.
const CONFIG_PARAMETER: &str = "supervisor.config=";
/// Test hook: the watchdog is armed but never petted.
const STOP_PETTING_PARAMETER: &str = "supervisor.test_stop_petting";
/// Test hook: the event loop panics at its first wakeup (the panic path of PID 1).
const PANIC_PARAMETER: &str = "supervisor.test_panic";

static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The PowerAction asked for (its index + 1); 0: none yet.
static ACTION: AtomicU8 = AtomicU8::new(0);
static WATCHDOG: Mutex<Option<Watchdog>> = Mutex::new(None);
static TEST_PANIC: AtomicBool = AtomicBool::new(false);

/// Whether this process runs the machine (PID 1 started by `boot`, or without a subcommand).
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Started as the machine's init: PID 1 and no subcommand of ours (the kernel
/// passes on the command line's words it does not know, e.g. `single`).
/// Containers' setups are PID 1 of their namespace too, but name their subcommand.
pub fn wanted(args: &[OsString]) -> bool {
    if nix::unistd::getpid().as_raw() != 1 {
        return false;
    }
    use clap::CommandFactory;
    let cli = crate::cli::Cli::command();
    let known = |arg: &OsString| {
        let arg = arg.to_string_lossy();
        arg.starts_with('-') || cli.get_subcommands().any(|c| c.get_name() == arg)
    };
    match args.get(1) {
        None => true,
        Some(arg) => arg == "boot" || !known(arg),
    }
}

/// The signals PID 1 takes as power requests (busybox init's and finit's
/// meanings, so that busybox's `poweroff`, `reboot` and `halt` work): SIGUSR2
/// and SIGPWR power off, SIGTERM and SIGINT (ctrl-alt-del) reboot, SIGUSR1 halts.
pub fn action_for(signal: Signal) -> Option<PowerAction> {
    match signal {
        Signal::SIGUSR2 | Signal::SIGPWR => Some(PowerAction::Poweroff),
        Signal::SIGTERM | Signal::SIGINT => Some(PowerAction::Reboot),
        Signal::SIGUSR1 => Some(PowerAction::Halt),
        _ => None,
    }
}

/// The signals above, which PID 1 reads from the daemon's signalfd.
pub fn power_signals() -> [Signal; 5] {
    [
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGPWR,
        Signal::SIGTERM,
        Signal::SIGINT,
    ]
}

/// Records the first power request (a later one does not change it).
pub fn request(action: PowerAction) {
    let index = PowerAction::ALL
        .iter()
        .position(|a| *a == action)
        .unwrap_or(0) as u8
        + 1;
    if ACTION
        .compare_exchange(0, index, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        console::step(&format!(
            "{} requested: stopping every service",
            action.as_str()
        ));
    }
}

fn requested() -> Option<PowerAction> {
    let index = ACTION.load(Ordering::Relaxed);
    index
        .checked_sub(1)
        .and_then(|i| PowerAction::ALL.get(usize::from(i)).copied())
}

/// When the event loop must wake next for the watchdog.
pub fn next_deadline() -> Option<Instant> {
    WATCHDOG.lock().ok()?.as_ref()?.deadline()
}

/// Pets the watchdog when due (called after every wakeup of the event loop).
pub fn tick(now: Instant) {
    if TEST_PANIC.load(Ordering::Relaxed) {
        panic!("test hook {PANIC_PARAMETER}");
    }
    if let Ok(mut dog) = WATCHDOG.lock() {
        if let Some(dog) = dog.as_mut() {
            dog.tick(now);
        }
    }
}

fn disarm_watchdog() {
    // try_lock: after a panic the lock may be held or poisoned; then the
    // hardware resets the machine if the shutdown outlasts its timeout.
    if let Ok(mut dog) = WATCHDOG.try_lock() {
        if let Some(dog) = dog.take() {
            dog.disarm();
        }
    }
}

/// PID 1's life: bring-up, the daemon, shutdown. Never returns.
pub fn main() -> ! {
    ACTIVE.store(true, Ordering::Relaxed);
    if nix::unistd::getpid().as_raw() != 1 {
        eprintln!("supervisor: boot: must run as PID 1 (the kernel's init)");
        std::process::exit(1);
    }
    block_signals();
    std::panic::set_hook(Box::new(|info| {
        console::failed(&format!("internal error: {info}"));
        emergency("the daemon panicked");
    }));
    mounts::basic();
    console::attach_stdio();
    check_layout();
    mounts::enable_controllers();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let path = config_path(&cmdline);
    let config = match config::load(&path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{}", errors.to_string().trim_end());
            emergency(&format!("{}: invalid service list", path.display()));
        }
    };
    console::step(&format!(
        "service list {}: {} services",
        path.display(),
        config.services.len()
    ));
    bring_up(&config.system, !has_word(&cmdline, STOP_PETTING_PARAMETER));
    TEST_PANIC.store(has_word(&cmdline, PANIC_PARAMETER), Ordering::Relaxed);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let result = crate::daemon::run_loaded(config, text, None, None);
    match result {
        Ok(code) if code == std::process::ExitCode::SUCCESS => {}
        Ok(_) => emergency("the daemon could not start"),
        Err(err) => emergency(&format!("the daemon failed: {err:#}")),
    }
    // `supervisor shutdown` (no power verb) stops the daemon: the machine powers off.
    shutdown::finish(requested().unwrap_or(PowerAction::Poweroff))
}

/// The services' init is the file `init` next to the supervisor's executable:
/// a supervisor copied to /sbin/init would take itself for it.
fn check_layout() {
    use std::os::unix::fs::MetadataExt;
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let same = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    if same(&exe, &exe.with_file_name("init")) {
        console::failed(&format!(
            "{} is both the supervisor and the services' init: install the supervisor \
             elsewhere (/usr/bin/supervisor, with /sbin/init a symlink to it) and init next to it",
            exe.display()
        ));
    }
}

/// Everything between the basic file systems and the daemon, each step shown.
fn bring_up(system: &config::System, petting: bool) {
    for module in &system.modules {
        match load_module(module) {
            Ok(()) => console::step(&format!("loaded module {}", module.display())),
            Err(err) => console::failed(&format!("module {}: {err:#}", module.display())),
        }
    }
    mounts::system(&system.mounts);
    if let Some(hostname) = &system.hostname {
        match nix::unistd::sethostname(hostname) {
            Ok(()) => console::step(&format!("hostname {hostname}")),
            Err(err) => console::failed(&format!("hostname {hostname}: {err}")),
        }
    }
    match crate::container::loopback_up() {
        Ok(()) => console::step("loopback up"),
        Err(err) => console::failed(&format!("loopback: {err}")),
    }
    for (key, value) in &system.sysctls {
        match write_sysctl(key, value) {
            Ok(()) => console::step(&format!("sysctl {key} = {value}")),
            Err(err) => console::failed(&format!("sysctl {key}: {err}")),
        }
    }
    // ctrl-alt-del sends SIGINT to PID 1 rather than rebooting at once.
    if let Err(err) = nix::sys::reboot::set_cad_enabled(false) {
        console::failed(&format!("reboot(RB_DISABLE_CAD): {err}"));
    }
    if let Some(config) = &system.watchdog {
        match Watchdog::open(config, petting) {
            Ok(dog) => {
                if let Ok(mut slot) = WATCHDOG.lock() {
                    *slot = Some(dog);
                }
            }
            Err(err) => console::failed(&format!("watchdog: {err:#}")),
        }
    }
}

fn load_module(path: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let file = std::fs::File::open(path).context("open")?;
    let params = std::ffi::CString::default();
    match nix::kmod::finit_module(&file, &params, nix::kmod::ModuleInitFlags::empty()) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(err) => Err(err).context("finit_module"),
    }
}

/// `net.ipv4.ip_forward` → /proc/sys/net/ipv4/ip_forward; a name with `/` is a path already.
fn write_sysctl(key: &str, value: &str) -> std::io::Result<()> {
    let relative = match key.contains('/') {
        true => key.to_owned(),
        false => key.replace('.', "/"),
    };
    std::fs::write(Path::new("/proc/sys").join(relative), value)
}

fn config_path(cmdline: &str) -> PathBuf {
    cmdline
        .split_whitespace()
        .find_map(|word| word.strip_prefix(CONFIG_PARAMETER))
        .map_or_else(|| PathBuf::from(DEFAULT_CONFIG), PathBuf::from)
}

fn has_word(cmdline: &str, word: &str) -> bool {
    cmdline.split_whitespace().any(|w| w == word)
}

/// The signals PID 1 handles are blocked from the start: until the daemon's
/// signalfd reads them they stay pending rather than lost.
fn block_signals() {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    set.add(Signal::SIGHUP);
    for signal in power_signals() {
        set.add(signal);
    }
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
}

/// The daemon is gone (or never started): PID 1 keeps reaping and still obeys
/// the power signals (with the plain final sequence). The watchdog is no
/// longer petted: if one is armed, it resets the machine.
fn emergency(why: &str) -> ! {
    console::failed(&format!(
        "{why}: reaping orphans; poweroff/reboot/halt by signal only"
    ));
    block_signals();
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for signal in power_signals() {
        set.add(signal);
    }
    loop {
        reap();
        match set.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(signal) => {
                if let Some(action) = action_for(signal) {
                    request(action);
                    shutdown::finish(requested().unwrap_or(action));
                }
            }
        }
    }
}

fn reap() {
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// After a failed reboot(2): nothing else to do but reap.
fn reap_forever() -> ! {
    loop {
        reap();
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_names_the_service_list() {
        assert_eq!(
            config_path("console=ttyS0 quiet"),
            PathBuf::from(DEFAULT_CONFIG)
        );
        assert_eq!(
            config_path("quiet supervisor.config=/etc/box.yaml panic=1"),
            PathBuf::from("/etc/box.yaml")
        );
        assert!(has_word(
            "a supervisor.test_stop_petting b",
            STOP_PETTING_PARAMETER
        ));
        assert!(!has_word(
            "a supervisor.test_stop_petting=0",
            STOP_PETTING_PARAMETER
        ));
    }

    #[test]
    fn signals_mean_what_busybox_init_says() {
        assert_eq!(action_for(Signal::SIGUSR2), Some(PowerAction::Poweroff));
        assert_eq!(action_for(Signal::SIGPWR), Some(PowerAction::Poweroff));
        assert_eq!(action_for(Signal::SIGTERM), Some(PowerAction::Reboot));
        assert_eq!(action_for(Signal::SIGINT), Some(PowerAction::Reboot));
        assert_eq!(action_for(Signal::SIGUSR1), Some(PowerAction::Halt));
        assert_eq!(action_for(Signal::SIGHUP), None);
    }
}
