//! `supervisor exec-setup`: the process `supervisor exec` starts, already in
//! the service's PID namespace. It joins the service's cgroups, then its other
//! namespaces (user first), its root, user, capabilities, no_new_privs and
//! seccomp filter, and execs the command. A failure goes back as one line on
//! the error pipe, led by the exit status `exec` should give (126: cannot be
//! executed, 127: not found).

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::AccessFlags;
use serde::{Deserialize, Serialize};

use super::channel::ChildEnd;
use super::setup::{bound_capabilities, os, reset_signals, set_capabilities, switch_user};
use super::spec::{Credentials, SetupSpec};
use super::{sys, user};

/// Exit status: the command was found but cannot be executed.
pub const CANNOT_EXECUTE: u8 = 126;
/// Exit status: the command is not in the service's filesystem.
pub const NOT_FOUND: u8 = 127;

/// Namespaces joined, in this order: the user namespace first (it owns the
/// others), the mount namespace last (after it the host's /proc is gone).
/// The PID namespace is joined by `exec` before this process is forked.
pub const NAMESPACES: [(&str, CloneFlags); 6] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// What `exec` sends on `SPEC_FD`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecSetupSpec {
    /// Host pid of the service's init.
    pub pid: i32,
    /// `cgroup.procs` directories of the service's groups.
    pub cgroup_dirs: Vec<PathBuf>,
    /// Names of `NAMESPACES` that differ from ours.
    pub namespaces: Vec<String>,
    /// stdin is a pseudo-terminal's slave: make it the controlling terminal.
    pub tty: bool,
    /// A session (and process group) of its own, which a health check's
    /// timeout kills whole.
    #[serde(default)]
    pub new_session: bool,
    /// `-u`: `NAME`, `UID` or `UID:GID`; None: the service's user.
    pub user: Option<String>,
    /// `-e`: `KEY=VALUE`, over the service's environment.
    pub env: Vec<String>,
    /// `-w`; None: the service's workdir.
    pub workdir: Option<PathBuf>,
    pub command: Vec<OsString>,
    /// The spec the service was set up from.
    pub service: SetupSpec,
}

/// A failure and the exit status it means.
struct Failure(u8, anyhow::Error);

fn fail(code: u8) -> impl FnOnce(anyhow::Error) -> Failure {
    move |err| Failure(code, err)
}

/// Entry point of the hidden subcommand; returns only on failure.
pub fn exec_setup_main() -> anyhow::Result<ExitCode> {
    let channel = ChildEnd::inherited();
    let Failure(code, err) = match setup() {
        Ok(never) => match never {},
        Err(failure) => failure,
    };
    if channel.report_error(&format!("{code} {err:#}")) {
        Ok(ExitCode::from(code))
    } else {
        Err(err.context("exec-setup is started by `supervisor exec`, not by hand"))
    }
}

fn setup() -> Result<std::convert::Infallible, Failure> {
    ChildEnd::close_on_exec();
    let spec: ExecSetupSpec = ChildEnd::read_spec("exec spec").map_err(fail(1))?;
    if spec.tty {
        nix::unistd::setsid()
            .map_err(os)
            .context("start a new session")
            .map_err(fail(1))?;
        sys::set_controlling_terminal(std::io::stdin().as_fd())
            .map_err(os)
            .context("take the pseudo-terminal")
            .map_err(fail(1))?;
    }
    if spec.new_session && !spec.tty {
        nix::unistd::setsid()
            .map_err(os)
            .context("start a new session")
            .map_err(fail(1))?;
    }
    reset_signals();
    enter(&spec).map_err(fail(1))?;
    let (credentials, home) = credentials(&spec).map_err(fail(1))?;
    let env = environment(&spec, home.as_deref());
    let kept = bound_capabilities(spec.service.capabilities).map_err(fail(1))?;
    switch_user(&credentials).map_err(fail(1))?;
    set_capabilities(kept, credentials.uid == 0).map_err(fail(1))?;
    let workdir = spec.workdir.as_ref().unwrap_or(&spec.service.workdir);
    nix::unistd::chdir(workdir)
        .map_err(os)
        .with_context(|| format!("workdir {}", workdir.display()))
        .map_err(fail(CANNOT_EXECUTE))?;
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or_default();
    let program = find_program(&spec.command, path)?;
    nix::sys::prctl::set_no_new_privs()
        .map_err(os)
        .context("set no_new_privs")
        .map_err(fail(1))?;
    exec(&spec, &program, &env)
}

/// Joins the service's cgroups (from the host's view, first), namespaces and root.
fn enter(spec: &ExecSetupSpec) -> anyhow::Result<()> {
    for dir in &spec.cgroup_dirs {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, "0").with_context(|| format!("join {}", procs.display()))?;
    }
    // Opened before any setns: the host's /proc shows them.
    let proc_dir = PathBuf::from(format!("/proc/{}", spec.pid));
    let mut namespaces = Vec::new();
    for (name, flag) in NAMESPACES {
        if spec.namespaces.iter().any(|n| n == name) {
            let path = proc_dir.join("ns").join(name);
            let file = File::open(&path).with_context(|| format!("open {}", path.display()))?;
            namespaces.push((name, flag, file));
        }
    }
    let root = File::open(proc_dir.join("root"))
        .with_context(|| format!("open {}/root", proc_dir.display()))?;
    for (name, flag, file) in namespaces {
        nix::sched::setns(file.as_fd(), flag)
            .map_err(os)
            .with_context(|| format!("enter the service's {name} namespace"))?;
    }
    // As nsenter: the root of the service's init, whatever the namespace's is.
    nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&root))
        .and_then(|()| nix::unistd::chroot("."))
        .map_err(os)
        .context("enter the service's root")?;
    Ok(())
}

/// The service's user, or `-u`'s, looked up in the service's /etc/passwd.
fn credentials(spec: &ExecSetupSpec) -> anyhow::Result<(Credentials, Option<PathBuf>)> {
    let Some(wanted) = &spec.user else {
        return Ok((spec.service.credentials.clone(), None));
    };
    let user = parse_user(wanted);
    let resolved = user::resolve(Path::new("/"), Some(&user))?;
    Ok((resolved.credentials, resolved.home))
}

/// `UID`, `UID:GID` or a name.
fn parse_user(text: &str) -> config::User {
    let (uid, gid) = match text.split_once(':') {
        Some((uid, gid)) => (uid, Some(gid)),
        None => (text, None),
    };
    match (uid.parse::<u32>(), gid.map(str::parse::<u32>)) {
        (Ok(uid), None) => config::User::Id { uid, gid: None },
        (Ok(uid), Some(Ok(gid))) => config::User::Id {
            uid,
            gid: Some(gid),
        },
        _ => config::User::Name(text.to_string()),
    }
}

/// The service's environment, `HOME` of `-u`'s user, then `-e` over it.
fn environment(spec: &ExecSetupSpec, home: Option<&Path>) -> Vec<String> {
    let mut env: Vec<String> = spec.service.env.clone();
    let mut set = |kv: String| {
        let key = kv.split('=').next().unwrap_or_default().to_string();
        env.retain(|old| old.split('=').next() != Some(key.as_str()));
        env.push(kv);
    };
    if let Some(home) = home {
        set(format!("HOME={}", home.display()));
    }
    if spec.tty && !spec.env.iter().any(|kv| kv.starts_with("TERM=")) {
        set("TERM=xterm".to_string());
    }
    for kv in &spec.env {
        set(kv.clone());
    }
    env
}

/// The program to execute: a path as given, else the first match in PATH.
fn find_program(command: &[OsString], path: &str) -> Result<PathBuf, Failure> {
    let Some(program) = command.first() else {
        return Err(Failure(1, anyhow::anyhow!("no command")));
    };
    let shown = Path::new(program).display();
    let candidates: Vec<PathBuf> = if program.as_bytes().contains(&b'/') {
        vec![PathBuf::from(program)]
    } else {
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|dir| Path::new(dir).join(program))
            .filter(|candidate| candidate.exists())
            .collect()
    };
    let Some(found) = candidates.into_iter().next() else {
        return Err(Failure(
            NOT_FOUND,
            anyhow::anyhow!("{shown}: not found in the service (PATH {path})"),
        ));
    };
    if found.is_dir() {
        return Err(Failure(
            CANNOT_EXECUTE,
            anyhow::anyhow!("{}: is a directory", found.display()),
        ));
    }
    nix::unistd::access(&found, AccessFlags::X_OK).map_err(|errno| {
        Failure(
            CANNOT_EXECUTE,
            anyhow::anyhow!("{}: {}", found.display(), errno.desc()),
        )
    })?;
    Ok(found)
}

fn exec(
    spec: &ExecSetupSpec,
    program: &Path,
    env: &[String],
) -> Result<std::convert::Infallible, Failure> {
    let cstring = |s: &OsStr| {
        CString::new(s.as_bytes())
            .context("argument contains a NUL byte")
            .map_err(fail(1))
    };
    let path = cstring(program.as_os_str())?;
    let argv = spec
        .command
        .iter()
        .map(|arg| cstring(arg))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = env
        .iter()
        .map(|kv| cstring(OsStr::new(kv)))
        .collect::<Result<Vec<_>, _>>()?;
    // Last: from here on the filter applies to this process too.
    if let Some(filter) = &spec.service.seccomp {
        sys::install_seccomp_filter(filter)
            .map_err(os)
            .context("install the seccomp filter")
            .map_err(fail(1))?;
    }
    let errno = nix::unistd::execve(&path, &argv, &envp).unwrap_err();
    let code = match errno {
        Errno::ENOENT => NOT_FOUND,
        _ => CANNOT_EXECUTE,
    };
    Err(Failure(
        code,
        anyhow::anyhow!("exec {}: {}", program.display(), errno.desc()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_by_id_or_name() {
        assert_eq!(
            parse_user("1000"),
            config::User::Id {
                uid: 1000,
                gid: None
            }
        );
        assert_eq!(
            parse_user("1000:50"),
            config::User::Id {
                uid: 1000,
                gid: Some(50)
            }
        );
        assert_eq!(parse_user("nobody"), config::User::Name("nobody".into()));
    }
}
