//! `supervisor run -c FILE NAME [-- COMMAND...]`: one service in the
//! foreground, without a daemon, like `docker run --rm`. Signals sent to the
//! supervisor go to the service's init; its exit status is passed on; all is
//! removed at exit.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::error::SpawnError;
use super::pty::Relay;
use super::request::{SpawnRequest, Stdio};
use super::spawn::spawn;

/// Exit status when the container could not be started (as `docker run`).
const START_FAILED: u8 = 125;

/// Signals passed on to the service's init (and, by `exec`, to its command).
pub(super) const FORWARDED: [Signal; 7] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Runs service `name` of the file in the foreground. Exit status as
/// `docker run`: the service's own, or 125 for any error of the supervisor
/// itself (a bad file, an unknown service, a container that cannot start).
pub fn run_foreground(
    config_path: &Path,
    name: &str,
    command: Vec<OsString>,
    tty: bool,
) -> anyhow::Result<ExitCode> {
    // The service's own output shares stderr: keep ours to warnings unless asked.
    if std::env::var_os("SUPERVISOR_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let config = match config::load(config_path) {
        Ok(config) => config,
        Err(errors) => {
            eprint!("{errors}");
            if !errors.to_string().ends_with('\n') {
                eprintln!();
            }
            return Ok(ExitCode::from(START_FAILED));
        }
    };
    match run_service(&config, config_path, name, command, tty) {
        Ok(code) => Ok(code),
        Err(err) => {
            eprintln!("supervisor: {err:#}");
            Ok(ExitCode::from(START_FAILED))
        }
    }
}

fn run_service(
    config: &config::Config,
    config_path: &Path,
    name: &str,
    command: Vec<OsString>,
    tty: bool,
) -> anyhow::Result<ExitCode> {
    let service = config.service(name).with_context(|| {
        let known = config.services.iter().map(|s| s.name.as_str());
        let hint = config::did_you_mean(name, known);
        format!("{}: no service named {name}{hint}", config_path.display())
    })?;
    crate::own_cgroup::prepare(config, crate::own_cgroup::RUN_LEAF)?;
    if let Some(warning) = crate::host_cpus::warning(service.limits.cpus) {
        eprintln!("supervisor: run {name}: {warning}");
    }
    let signals = block_signals()?;
    let terminal = Terminal::save();
    let relay = match tty {
        true => Some(Relay::open().map_err(|err| err.context(format!("run {name}")))?),
        false => None,
    };
    let stdio = match &relay {
        Some(relay) => Stdio::Terminal(
            relay
                .slave()
                .try_clone_to_owned()
                .with_context(|| format!("run {name}: duplicate the pty slave"))?,
        ),
        None => Stdio::Inherit,
    };
    let request = SpawnRequest {
        config,
        service,
        command: (!command.is_empty()).then_some(command),
        stdio,
        cgroup: None,
        held: None,
        // No daemon listens: a `ready: notify` service runs without the socket.
        notify_socket: None,
    };
    let outcome = run_container(request, relay, &signals);
    terminal.restore();
    // No daemon keeps the parent group: remove it unless others use it.
    let parent_removed = super::remove_cgroup_parent(config.cgroup_driver, &config.cgroup_parent);
    match outcome {
        // As `docker run`: the command itself cannot run (127 missing, 126
        // not executable), which is no error of the supervisor's.
        Err(RunError::Start(SpawnError::Command { message, code })) => {
            eprintln!("supervisor: run {name}: {message}");
            Ok(ExitCode::from(code as u8))
        }
        Err(RunError::Start(err)) => Err(anyhow::Error::from(err).context(format!("run {name}"))),
        Err(RunError::Run(err)) => Err(err.context(format!("run {name}"))),
        Ok((code, oom_kills)) => {
            if oom_kills > 0 {
                // 137 alone does not tell an OOM kill from a `kill -9`.
                eprintln!(
                    "supervisor: run {name}: the OOM killer killed {oom_kills} process{} of the service (limits.memory)",
                    if oom_kills == 1 { "" } else { "es" }
                );
            }
            parent_removed
                .with_context(|| format!("run {name}: remove cgroup {}", config.cgroup_parent))?;
            Ok(ExitCode::from(code))
        }
    }
}

enum RunError {
    /// The container could not be started.
    Start(SpawnError),
    /// Waiting for it or removing it failed.
    Run(anyhow::Error),
}

/// Spawns, waits (forwarding signals, relaying a pseudo-terminal) and tears
/// down; the service's exit code and how many of its processes the OOM killer
/// killed.
fn run_container(
    request: SpawnRequest,
    relay: Option<Relay>,
    signals: &SignalFd,
) -> Result<(u8, u64), RunError> {
    let container = spawn(request).map_err(RunError::Start)?;
    let status = match relay {
        Some(relay) => relay.run(container.pid, signals),
        None => wait_forwarding(container.pid, signals),
    };
    // Read before the cgroup goes.
    let oom_kills = container
        .cgroup
        .stats()
        .ok()
        .and_then(|stats| stats.oom_kills)
        .unwrap_or(0);
    if status.is_err() {
        // Never leave the service behind, whatever went wrong here.
        let _ = container.kill_all();
        let _ = waitpid(container.pid, None);
    }
    let removed = container.teardown();
    let code = status.map_err(RunError::Run)?;
    removed
        .map_err(|err| RunError::Run(anyhow::Error::from(err).context("remove the container")))?;
    Ok((code, oom_kills))
}

/// Blocks SIGCHLD, the forwarded signals and the terminal-stop signals (so
/// that taking the terminal back does not stop us), and reads them from a
/// signalfd. The setup process unblocks all before exec.
fn block_signals() -> anyhow::Result<SignalFd> {
    let mut mask = SigSet::empty();
    for signal in FORWARDED
        .iter()
        .chain(&[Signal::SIGCHLD, Signal::SIGTTOU, Signal::SIGTTIN])
    {
        mask.add(*signal);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .context("block signals")?;
    let mut waited = mask;
    waited.remove(Signal::SIGTTOU);
    waited.remove(Signal::SIGTTIN);
    SignalFd::with_flags(&waited, SfdFlags::SFD_CLOEXEC).context("create a signalfd")
}

/// Waits for `pid` to exit, forwarding signals to it. Returns its exit code,
/// or 128 + the signal that killed it.
fn wait_forwarding(pid: Pid, signals: &SignalFd) -> anyhow::Result<u8> {
    loop {
        // A SIGCHLD may have merged with an earlier one: always check.
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code as u8),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as u8),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(err) => return Err(err).context("wait for the service"),
        }
        let info = match signals.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(err) => return Err(err).context("read signals"),
        };
        if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
            if signal != Signal::SIGCHLD {
                // The service may be exiting already; a failed send is harmless.
                let _ = kill(pid, signal);
            }
        }
    }
}

/// The terminal's foreground process group before the run: init hands the
/// terminal to the service; at the end we take it back.
struct Terminal(Option<Pid>);

impl Terminal {
    fn save() -> Terminal {
        Terminal(nix::unistd::tcgetpgrp(std::io::stdin()).ok())
    }

    fn restore(self) {
        if let Some(pgrp) = self.0 {
            let _ = nix::unistd::tcsetpgrp(std::io::stdin(), pgrp);
        }
    }
}
