//! `supervisor exec [-t] [-u USER] [-e K=V]... [-w DIR] NAME -- CMD...`: runs
//! a command in a running service, as `docker exec`. We join the service's
//! PID namespace (for our children only), fork, and the child execs
//! `supervisor exec-setup`, which enters the rest and execs the command (so
//! that only async-signal-safe calls run between fork and exec). With `-t`
//! the command gets a pseudo-terminal and we relay between it and ours.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{pipe2, Pid};

use super::channel::{ERROR_FD, SPEC_FD};
use super::exec_setup::{ExecSetupSpec, NAMESPACES};
use super::pty::Relay;
use super::run::FORWARDED;
use super::sys::{self, ChildExec};
use crate::protocol::{ServiceStatus, State};

/// What the command line asks for.
pub struct ExecArgs {
    pub name: String,
    pub tty: bool,
    pub user: Option<String>,
    pub env: Vec<String>,
    pub workdir: Option<PathBuf>,
    pub command: Vec<OsString>,
}

/// Runs the command in service `status` (the daemon's view of it) whose
/// state is kept in `state_dir`. The command's exit status, 126/127 when it
/// cannot be executed / is not found.
pub fn exec(state_dir: &Path, status: &ServiceStatus, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let name = &args.name;
    let pid = match (status.state, status.pid) {
        (State::Frozen, _) => bail!("service {name} is frozen: thaw it first"),
        (State::Running | State::Starting, Some(pid)) => pid,
        (state, _) => bail!("service {name} is not running ({})", state.as_str()),
    };
    if args.command.is_empty() {
        bail!("no command: supervisor exec {name} -- COMMAND...");
    }
    let state = super::exec_state(state_dir, name)?;
    if state.pid != pid {
        bail!(
            "service {name} restarted meanwhile (pid {pid}, recorded {})",
            state.pid
        );
    }
    let cgroup_dirs = cgroups::memberships(pid)
        .context("read the service's cgroups")?
        .into_iter()
        .filter_map(|m| m.dir)
        .collect();
    let spec = ExecSetupSpec {
        pid,
        cgroup_dirs,
        namespaces: other_namespaces(pid)?,
        tty: args.tty,
        new_session: false,
        user: args.user,
        env: environment(&args.env, args.tty),
        workdir: args.workdir,
        command: args.command,
        service: state.spec,
    };
    enter_pid_namespace(pid)?;
    let signals = block_signals()?;
    let relay = match args.tty && has_own_devpts(pid) {
        true => Some(Relay::open_in(pid)?),
        false if args.tty => Some(Relay::open()?),
        false => None,
    };
    let (child, error) = start(&spec, relay.as_ref())?;
    if let Some(code) = setup_failure(error, child)? {
        return Ok(ExitCode::from(code));
    }
    let code = match relay {
        Some(relay) => relay.run(child, &signals)?,
        None => wait_forwarding(child, &signals)?,
    };
    Ok(ExitCode::from(code))
}

/// The service has a devpts of its own (a mount namespace and root filesystem).
fn has_own_devpts(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).is_ok_and(|text| {
        text.lines()
            .any(|l| l.contains(" /dev/pts ") && l.contains(" - devpts "))
    }) && namespace_inode(&format!("/proc/{pid}/ns/mnt")).ok()
        != namespace_inode("/proc/self/ns/mnt").ok()
}

/// The names of the namespaces of `pid` that differ from ours (as nsenter -a).
fn other_namespaces(pid: i32) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for (name, _) in NAMESPACES {
        if namespace_inode(&format!("/proc/{pid}/ns/{name}"))?
            != namespace_inode(&format!("/proc/self/ns/{name}"))?
        {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

fn namespace_inode(path: &str) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("stat {path}"))?
        .ino())
}

/// Our children are born in the service's PID namespace; we stay where we are.
fn enter_pid_namespace(pid: i32) -> anyhow::Result<()> {
    let path = format!("/proc/{pid}/ns/pid");
    if namespace_inode(&path)? == namespace_inode("/proc/self/ns/pid_for_children")? {
        return Ok(());
    }
    let file = File::open(&path).with_context(|| format!("open {path}"))?;
    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWPID)
        .with_context(|| format!("enter the PID namespace of {pid}"))
}

/// `-e` resolved; with a terminal, our `TERM` unless `-e` sets one.
fn environment(given: &[String], tty: bool) -> Vec<String> {
    let mut env: Vec<String> = given.iter().filter_map(|kv| resolve_env(kv)).collect();
    if tty && !env.iter().any(|kv| kv.starts_with("TERM=")) {
        env.extend(resolve_env("TERM"));
    }
    env
}

/// `KEY=VALUE` as given; a bare `KEY` takes our own value (as docker), or is
/// left out when we have none.
fn resolve_env(kv: &str) -> Option<String> {
    if kv.contains('=') {
        return Some(kv.to_string());
    }
    std::env::var(kv).ok().map(|value| format!("{kv}={value}"))
}

/// Forks the `exec-setup` process; returns its pid and the read end of its
/// error pipe, once the spec is sent.
fn start(spec: &ExecSetupSpec, relay: Option<&Relay>) -> anyhow::Result<(Pid, File)> {
    let pipe = || pipe2(OFlag::O_CLOEXEC).context("create a pipe");
    let high = |fd: &OwnedFd| sys::high_fd(fd.as_fd()).context("duplicate a pipe fd");
    let (spec_read, spec_write) = pipe()?;
    let (error_read, error_write) = pipe()?;
    let mut child_ends = vec![high(&spec_read)?, high(&error_write)?];
    let mut dups = vec![
        (child_ends[0].as_raw_fd(), SPEC_FD),
        (child_ends[1].as_raw_fd(), ERROR_FD),
    ];
    if let Some(relay) = relay {
        let slave = sys::high_fd(relay.slave()).context("duplicate the pty slave")?;
        for target in 0..3 {
            dups.push((slave.as_raw_fd(), target));
        }
        child_ends.push(slave);
    }
    let exec = ChildExec::new(
        CString::new("/proc/self/exe").expect("no NUL"),
        vec![
            CString::new("supervisor").expect("no NUL"),
            CString::new("exec-setup").expect("no NUL"),
        ],
        dups,
        ERROR_FD,
    );
    let (child, _) = sys::clone_exec(0, None, &exec).context("fork")?;
    drop(child_ends);
    drop((spec_read, error_write));
    let json = serde_json::to_vec(spec).context("encode the exec spec")?;
    // A child that died early closes its end: its error line says why.
    let _ = std::io::Write::write_all(&mut File::from(spec_write), &json);
    Ok((child, File::from(error_read)))
}

/// Reads the error pipe to its end (closed at exec): Some(exit status) after
/// printing the setup's failure, None when the command runs.
fn setup_failure(mut error: File, child: Pid) -> anyhow::Result<Option<u8>> {
    let mut message = String::new();
    error
        .read_to_string(&mut message)
        .context("read the exec-setup's errors")?;
    if message.is_empty() {
        return Ok(None);
    }
    let _ = waitpid(child, None);
    let (code, text) = message.split_once(' ').unwrap_or(("1", &message));
    eprintln!("supervisor: exec: {text}");
    Ok(Some(code.parse().unwrap_or(1)))
}

/// Blocks SIGCHLD and the forwarded signals, to read them from a signalfd.
/// `exec-setup` unblocks them all before exec.
pub(super) fn block_signals() -> anyhow::Result<SignalFd> {
    let mut mask = SigSet::empty();
    for signal in FORWARDED.iter().chain(&[Signal::SIGCHLD]) {
        mask.add(*signal);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .context("block signals")?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).context("create a signalfd")
}

/// The exit status of `pid`, as a shell shows it: its code, or 128 + signal.
pub(super) fn exit_code(status: WaitStatus) -> Option<u8> {
    match status {
        WaitStatus::Exited(_, code) => Some(code as u8),
        WaitStatus::Signaled(_, signal, _) => Some(128 + signal as u8),
        _ => None,
    }
}

/// Waits for `pid`, passing on signals sent to us (not those of the
/// terminal: the command, in our process group, has them already).
fn wait_forwarding(pid: Pid, signals: &SignalFd) -> anyhow::Result<u8> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(status) => {
                if let Some(code) = exit_code(status) {
                    return Ok(code);
                }
            }
            Err(Errno::EINTR) => {}
            Err(err) => return Err(err).context("wait for the command"),
        }
        let info = match signals.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(err) => return Err(err).context("read signals"),
        };
        let from_terminal = info.ssi_code == libc::SI_KERNEL;
        if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
            if signal != Signal::SIGCHLD && signal != Signal::SIGWINCH && !from_terminal {
                let _ = kill(pid, signal);
            }
        }
    }
}
