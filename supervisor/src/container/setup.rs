//! `supervisor container-setup`: runs as the first process of a new container
//! (PID 1 of its PID namespace), sets it up from the spec that `spawn` sends,
//! and execs our init with the service's command. A failure goes back to
//! `spawn` as one line on the error pipe.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::unistd::{AccessFlags, Gid, Uid};

use super::channel::ChildEnd;
use super::spec::{Credentials, SetupSpec};
use super::{sealed_init, sys};

/// argv[0] of our init, PID 1 of every service (it runs from a memfd: see
/// `sealed_init`).
const INIT_NAME: &str = "init";

/// Entry point of the hidden subcommand. Returns only on failure (after
/// reporting it through the error pipe), else it has become init.
pub fn setup_main() -> anyhow::Result<ExitCode> {
    let channel = ChildEnd::inherited();
    let failure = match setup() {
        Ok(never) => match never {},
        Err(failure) => failure,
    };
    // The one line `spawn` reports; the exit status says a command that is
    // missing (127) or not executable (126).
    if channel.report_error(&format!("{failure:#}")) {
        Ok(ExitCode::from(
            COMMAND_UNUSABLE.load(Ordering::Relaxed).max(1),
        ))
    } else {
        Err(failure.context("container-setup is started by the supervisor, not by hand"))
    }
}

fn setup() -> anyhow::Result<std::convert::Infallible> {
    ChildEnd::close_on_exec();
    let spec: SetupSpec = ChildEnd::read_spec("setup spec")?;
    let release = ChildEnd::release_pipe()?;
    if spec.controlling_terminal {
        nix::unistd::setsid()
            .map_err(os)
            .context("start a new session")?;
        sys::set_controlling_terminal(std::io::stdin().as_fd())
            .map_err(os)
            .context("take the pseudo-terminal")?;
    } else if spec.take_terminal {
        take_terminal().context("take the terminal's foreground")?;
    } else {
        // A session of its own, as runc gives a detached container: a Ctrl-C
        // meant for a foreground daemon must not reach every service at once.
        nix::unistd::setsid()
            .map_err(os)
            .context("start a new session")?;
    }
    reset_signals();
    // Read while the host's filesystem is still there.
    let init = sealed_init::load(&spec.init)?;
    match &spec.rootfs {
        Some(rootfs) if spec.user_namespace => {
            let handed = ChildEnd::receive_handover()?;
            rootfs::setup_rootfs_in_userns(rootfs, handed).context("root filesystem")?;
        }
        Some(rootfs) => rootfs::setup_rootfs(rootfs).context("root filesystem")?,
        None => {}
    }
    if let Some(hostname) = &spec.hostname {
        nix::unistd::sethostname(hostname)
            .map_err(os)
            .with_context(|| format!("hostname {hostname}"))?;
    }
    if spec.loopback {
        sys::loopback_up()
            .map_err(os)
            .context("bring up the loopback interface")?;
    }
    release.wait_for_release()?;
    if spec.cgroup_namespace {
        enter_cgroup_namespace(&spec)?;
    }
    // From here the service's limits apply: capabilities, then seccomp last.
    let kept = bound_capabilities(spec.capabilities)?;
    switch_user(&spec.credentials)?;
    set_capabilities(kept, spec.credentials.uid == 0)?;
    nix::unistd::chdir(&spec.workdir)
        .map_err(os)
        .with_context(|| format!("workdir {}", spec.workdir.display()))?;
    let path = env_value(&spec.env, "PATH").unwrap_or_default();
    check_command(&spec.command, &path)?;
    nix::sys::prctl::set_no_new_privs()
        .map_err(os)
        .context("set no_new_privs")?;
    exec_init(&spec, &init)
}

/// Unshares the cgroup namespace now that we are in the service's group, so
/// that the group is the namespace's root; with a root filesystem of its own,
/// the service's /sys/fs/cgroup then shows that group only, read-only.
fn enter_cgroup_namespace(spec: &SetupSpec) -> anyhow::Result<()> {
    let view = match spec.rootfs {
        Some(_) => Some(rootfs::CgroupView::own(&spec.cgroup_path)?),
        None => None,
    };
    unshare(CloneFlags::CLONE_NEWCGROUP)
        .map_err(os)
        .context("enter a new cgroup namespace")?;
    if let Some(view) = view {
        view.mount().context("/sys/fs/cgroup")?;
    }
    Ok(())
}

/// The supervisor blocks signals for its signalfd and Rust ignores SIGPIPE;
/// both would be inherited through exec by init and the service.
pub(super) fn reset_signals() {
    sys::default_signal_dispositions();
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Makes the container's first process group the terminal's foreground, so
/// that init, finding its group in the foreground, hands it to the service.
/// SIGTTOU is blocked: we are not the foreground yet when we take it.
fn take_terminal() -> anyhow::Result<()> {
    let mut ttou = SigSet::empty();
    ttou.add(nix::sys::signal::Signal::SIGTTOU);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ttou), None).map_err(os)?;
    let me = nix::unistd::Pid::from_raw(0);
    nix::unistd::setpgid(me, me).map_err(os)?;
    nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpgrp()).map_err(os)?;
    Ok(())
}

/// Drops from the bounding set what the service does not keep, and keeps the
/// permitted set across the switch to the service's user (setuid needs
/// CAP_SETUID and CAP_SETGID, which the service may not keep). None
/// (`privileged`): every capability stays. Returns the set kept: a
/// capability the supervisor itself lacks cannot be given.
pub(super) fn bound_capabilities(keep: Option<u64>) -> anyhow::Result<Option<u64>> {
    sys::clear_ambient_capabilities()
        .map_err(os)
        .context("clear the ambient capabilities")?;
    let Some(keep) = keep else { return Ok(None) };
    let kept = sys::drop_bounding_set(keep)
        .map_err(os)
        .context("drop capabilities from the bounding set")?;
    sys::keep_capabilities(true)
        .map_err(os)
        .context("keep capabilities across the user switch")?;
    Ok(Some(kept))
}

/// The permitted and effective sets become the kept set (as Docker does, the
/// inheritable set is empty: CVE-2022-24769). A non-root user loses them all
/// at exec, as in Docker: exec gives a non-root user no capabilities.
/// The service's capability sets. Root keeps `keep` in the inheritable set
/// too (Docker's default sets, as the contract names them); any other user
/// gets an empty one, so that no file's inheritable capabilities can raise a
/// non-root program's rights through exec (CVE-2022-24769, as Docker 20.10.14).
pub(super) fn set_capabilities(keep: Option<u64>, root: bool) -> anyhow::Result<()> {
    let Some(keep) = keep else { return Ok(()) };
    sys::keep_capabilities(false)
        .map_err(os)
        .context("reset keep-capabilities")?;
    let inheritable = if root { keep } else { 0 };
    sys::set_capabilities(keep, keep, inheritable)
        .map_err(os)
        .context("set the capabilities")
}

pub(super) fn switch_user(creds: &Credentials) -> anyhow::Result<()> {
    let groups: Vec<Gid> = creds.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    nix::unistd::setgroups(&groups)
        .map_err(os)
        .context("set supplementary groups")?;
    nix::unistd::setgid(Gid::from_raw(creds.gid))
        .map_err(os)
        .with_context(|| format!("set gid {}", creds.gid))?;
    nix::unistd::setuid(Uid::from_raw(creds.uid))
        .map_err(os)
        .with_context(|| format!("set uid {}", creds.uid))?;
    Ok(())
}

fn env_value(env: &[String], key: &str) -> Option<String> {
    env.iter()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=').map(str::to_string))
}

/// 127 or 126 once `check_command` found the command missing or not
/// executable (this process has one thread).
static COMMAND_UNUSABLE: AtomicU8 = AtomicU8::new(0);

/// Fails clearly where init's exec of the command would fail: a command that
/// is not in the root filesystem, or that this user may not execute.
fn check_command(command: &[OsString], path: &str) -> anyhow::Result<()> {
    let checked = find_command(command, path);
    if checked.is_err() {
        let missing = command.first().is_some_and(|program| {
            let program = Path::new(program);
            match program.as_os_str().as_bytes().contains(&b'/') {
                true => !program.exists(),
                false => !path
                    .split(':')
                    .any(|dir| !dir.is_empty() && Path::new(dir).join(program).is_file()),
            }
        });
        COMMAND_UNUSABLE.store(if missing { 127 } else { 126 }, Ordering::Relaxed);
    }
    checked
}

fn find_command(command: &[OsString], path: &str) -> anyhow::Result<()> {
    let Some(program) = command.first() else {
        bail!("no command")
    };
    let shown = Path::new(program).display();
    if program.as_bytes().contains(&b'/') {
        return executable(Path::new(program)).with_context(|| format!("command {shown}"));
    }
    let mut denied = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = PathBuf::from(dir).join(program);
        if !candidate.is_file() {
            continue;
        }
        match executable(&candidate) {
            Ok(()) => return Ok(()),
            Err(err) => denied = denied.or(Some((candidate, err))),
        }
    }
    match denied {
        Some((candidate, err)) => {
            Err(err).with_context(|| format!("command {}", candidate.display()))
        }
        None => bail!("command {shown}: not found in PATH {path}"),
    }
}

fn executable(path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        bail!("is a directory");
    }
    nix::unistd::access(path, AccessFlags::X_OK).map_err(os)
}

fn exec_init(spec: &SetupSpec, init: &OwnedFd) -> anyhow::Result<std::convert::Infallible> {
    let cstring = |s: &OsStr| CString::new(s.as_bytes()).context("argument contains a NUL byte");
    let mut argv = vec![cstring(OsStr::new(INIT_NAME))?];
    if spec.held {
        use super::channel::{HELD_LOG_FD, STATUS_FD};
        for fd in [HELD_LOG_FD, STATUS_FD] {
            // Marked close-on-exec with the rest; init keeps them (and hides them from the service).
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            )
            .map_err(os)
            .context("keep the descriptors init holds")?;
        }
        for arg in [
            format!("--hold-fd={HELD_LOG_FD}"),
            format!("--status-fd={STATUS_FD}"),
        ] {
            argv.push(cstring(OsStr::new(&arg))?);
        }
    }
    argv.push(cstring(OsStr::new("--"))?);
    for arg in &spec.command {
        argv.push(cstring(arg)?);
    }
    let env = spec
        .env
        .iter()
        .map(|kv| cstring(OsStr::new(kv)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Last: from here on the filter applies to this process too.
    if let Some(program) = &spec.seccomp {
        sys::install_seccomp_filter(program)
            .map_err(os)
            .context("install the seccomp filter")?;
    }
    let err = nix::unistd::fexecve(init.as_raw_fd(), &argv, &env).unwrap_err();
    Err(os(err)).with_context(|| format!("exec init (a sealed copy of {})", spec.init.display()))
}

/// An errno as the C library words it ("No such file or directory").
pub(super) fn os(errno: Errno) -> anyhow::Error {
    anyhow::anyhow!(errno.desc())
}
