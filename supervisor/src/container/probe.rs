//! Health checks: a command run inside a running service as `exec` runs one
//! (`supervisor exec-setup`: its cgroups, namespaces, root, user,
//! capabilities and seccomp filter), but started by the daemon without
//! waiting: the caller watches the output pipe and reaps the pid.
//!
//! What every check of a run needs (the encoded spec, the service's PID
//! namespace) is gathered once per run, so a check costs the daemon three
//! pipes, a vfork-like clone (no copy of its memory) and two `setns` calls.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sched::CloneFlags;
use nix::unistd::{pipe2, Pid};

use super::channel::{ERROR_FD, SPEC_FD};
use super::exec_setup::{ExecSetupSpec, NAMESPACES};
use super::sys::{self, ChildExec};

/// A spec that fits in an empty pipe is written before the clone, whole.
const PIPE_CAPACITY: usize = 64 * 1024;

/// What the checks of one run of a service need.
pub struct ProbeTarget {
    /// The service's PID namespace when it is not ours.
    pid_namespace: Option<File>,
    /// The `ExecSetupSpec`, encoded.
    spec: Vec<u8>,
}

/// A check on its way: its host pid (also its process group, once it has
/// started; the caller reaps it), where its stdout and stderr arrive
/// (non-blocking), and the exec-setup's error pipe (a line only if the
/// command could not start).
pub struct Probe {
    pub pid: Pid,
    pub output: OwnedFd,
    pub error: File,
}

impl ProbeTarget {
    /// For the run of service `name` whose init is `pid` (as recorded in
    /// `state_dir` when it started), checks running `command`.
    pub fn new(
        state_dir: &Path,
        name: &str,
        pid: i32,
        command: &[String],
    ) -> anyhow::Result<ProbeTarget> {
        let state = super::exec_state(state_dir, name)?;
        if state.pid != pid {
            bail!("its exec record is of pid {}, not {pid}", state.pid);
        }
        let cgroup_dirs: Vec<PathBuf> = cgroups::memberships(pid)
            .context("read the service's cgroups")?
            .into_iter()
            .filter_map(|m| m.dir)
            .collect();
        let mut namespaces = Vec::new();
        for (ns, _) in NAMESPACES {
            if !same_namespace(pid, ns)? {
                namespaces.push(ns.to_string());
            }
        }
        let pid_namespace = match same_namespace(pid, "pid")? {
            true => None,
            false => {
                Some(File::open(format!("/proc/{pid}/ns/pid")).context("open its PID namespace")?)
            }
        };
        let spec = ExecSetupSpec {
            pid,
            cgroup_dirs,
            namespaces,
            tty: false,
            new_session: true,
            user: None,
            env: Vec::new(),
            workdir: None,
            command: command.iter().map(Into::into).collect(),
            service: state.spec,
        };
        let spec = serde_json::to_vec(&spec).context("encode the check's spec")?;
        if spec.len() > PIPE_CAPACITY {
            bail!("the check's spec is {} bytes, over 64 KiB", spec.len());
        }
        Ok(ProbeTarget {
            pid_namespace,
            spec,
        })
    }

    /// Starts one check; it runs once `exec-setup` has entered the service.
    pub fn spawn(&self) -> anyhow::Result<Probe> {
        let pipe = || pipe2(OFlag::O_CLOEXEC).context("create a pipe");
        let high = |fd: BorrowedFd<'_>| sys::high_fd(fd).context("duplicate a pipe fd");
        let (spec_read, spec_write) = pipe()?;
        File::from(spec_write)
            .write_all(&self.spec)
            .context("write the check's spec")?;
        let (error_read, error_write) = pipe()?;
        fcntl(error_read.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .context("make the error pipe non-blocking")?;
        let (output_read, output_write) = pipe()?;
        fcntl(
            output_read.as_raw_fd(),
            FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
        )
        .context("make the output pipe non-blocking")?;
        let null = File::open("/dev/null").context("open /dev/null")?;
        let child_ends = [
            high(spec_read.as_fd())?,
            high(error_write.as_fd())?,
            high(null.as_fd())?,
            high(output_write.as_fd())?,
        ];
        let [spec_fd, error_fd, null_fd, output_fd] = child_ends.each_ref().map(AsRawFd::as_raw_fd);
        let exec = ChildExec::new(
            CString::new("/proc/self/exe").expect("no NUL"),
            vec![
                CString::new("supervisor").expect("no NUL"),
                CString::new("exec-setup").expect("no NUL"),
            ],
            vec![
                (spec_fd, SPEC_FD),
                (error_fd, ERROR_FD),
                (null_fd, 0),
                (output_fd, 1),
                (output_fd, 2),
            ],
            ERROR_FD,
        );
        let pid = self.clone_in_pid_namespace(&exec)?;
        Ok(Probe {
            pid,
            output: output_read,
            error: File::from(error_read),
        })
    }

    /// Our children are born in the service's PID namespace for the clone
    /// only; the daemon's next children are born in its own again.
    fn clone_in_pid_namespace(&self, exec: &ChildExec) -> anyhow::Result<Pid> {
        let Some(target) = &self.pid_namespace else {
            return sys::vfork_exec(exec).context("fork");
        };
        let own = own_pid_namespace()?;
        nix::sched::setns(target.as_fd(), CloneFlags::CLONE_NEWPID)
            .context("enter the service's PID namespace")?;
        let cloned = sys::vfork_exec(exec).context("fork");
        nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWPID)
            .context("return to the daemon's PID namespace")?;
        cloned
    }
}

/// The daemon's own PID namespace, opened once.
fn own_pid_namespace() -> anyhow::Result<&'static File> {
    static OWN: OnceLock<File> = OnceLock::new();
    if let Some(file) = OWN.get() {
        return Ok(file);
    }
    let file = File::open("/proc/self/ns/pid").context("open /proc/self/ns/pid")?;
    Ok(OWN.get_or_init(|| file))
}

fn same_namespace(pid: i32, name: &str) -> anyhow::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let inode = |path: String| {
        std::fs::metadata(&path)
            .map(|m| m.ino())
            .with_context(|| format!("stat {path}"))
    };
    Ok(inode(format!("/proc/{pid}/ns/{name}"))? == inode(format!("/proc/self/ns/{name}"))?)
}
