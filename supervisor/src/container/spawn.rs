//! Starting one service: resolve everything, create its cgroup, clone the
//! child into new namespaces, place it in the cgroup while it sets itself up,
//! and learn (waiting, or later through `Starting`) whether its init has been
//! exec'd or its setup failed.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::channel::{self, ParentEnd, ToChild, ERROR_FD};
use super::error::{sys_error, SpawnError};
use super::handle::{remove_layer, Container};
use super::lock::ServiceLock;
use super::plan::{plan, LaunchPlan};
use super::request::SpawnRequest;
use super::resolve::{gather, make_layer};
use super::spec::{exec_state_path, ExecState, SetupSpec};
use super::sys::{self, ChildExec};
use super::userns;

/// How long a container may take to set itself up before `spawn` gives up on it.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts `req.service` and returns once its init runs (Ok) or its setup
/// failed (Err, with the failed child already reaped and everything removed).
pub fn spawn(req: SpawnRequest) -> Result<Container, SpawnError> {
    let mut starting = begin(req)?;
    let outcome = wait_for_setup(&mut starting);
    let pid = starting.pid();
    let container = starting.into_container();
    match outcome {
        Ok(()) => Ok(container),
        Err(err) => {
            // A child that reported a failure exits by itself; its status
            // tells a command that is missing (127) or not executable (126).
            let status = match exit_within(pid, Duration::from_secs(1)) {
                Some(ended) => ended,
                None => {
                    let _ = kill(pid, Signal::SIGKILL);
                    reap(pid);
                    None
                }
            };
            // Best effort: the error that stopped the start is the one to report.
            let _ = container.teardown();
            Err(match (err, status) {
                (SpawnError::Setup(message), Some(code @ (126 | 127))) => {
                    SpawnError::Command { message, code }
                }
                (err, _) => err,
            })
        }
    }
}

/// Waits up to `bound` for child `pid` to end. None: still running. Some:
/// ended and reaped, with its exit code if it exited (not killed).
fn exit_within(pid: Pid, bound: Duration) -> Option<Option<i32>> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus};
    let deadline = std::time::Instant::now() + bound;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Some(Some(code)),
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            // Killed by a signal, or no longer ours to wait for.
            _ => return Some(None),
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Starts `req.service` without waiting for its setup: the returned handle
/// says when it has finished ([`Starting::read`]). On Err nothing is left.
pub fn begin(mut req: SpawnRequest) -> Result<Starting, SpawnError> {
    let kept = req.cgroup.take();
    // Before the writable layer is touched: it may belong to a running container.
    let claimed = ServiceLock::take(&req.config.state_dir, &req.service.name).and_then(|lock| {
        let (facts, lease) = gather(&req)?;
        let mut plan = plan(req.config, req.service, req.command.as_deref(), facts)?;
        plan.spec.held = req.held.is_some();
        if let Some(layer) = &plan.layer {
            make_layer(layer)?;
        }
        Ok((lock, lease, plan))
    });
    let (lock, lease, plan) = match claimed {
        Ok(claimed) => claimed,
        Err(err) => {
            if let Some(cgroup) = kept {
                // Best effort: the error that stopped the start is the one to report.
                let _ = cgroup.destroy();
            }
            return Err(err);
        }
    };
    let layer_to_remove = plan
        .layer
        .as_ref()
        .filter(|layer| layer.discard)
        .map(|layer| layer.path.clone());
    // A start refused before the container exists leaves no writable layer behind.
    let discard_layer = || {
        if let Some(layer) = &layer_to_remove {
            // Best effort: the error that stopped the start is the one to report.
            let _ = remove_layer(layer);
        }
    };
    let create = kept.is_none();
    let cgroup = match kept {
        Some(cgroup) => cgroup,
        None => match cgroups::open(
            plan.cgroup_driver,
            &req.config.cgroup_parent,
            &req.service.name,
        ) {
            Ok(cgroup) => cgroup,
            Err(err) => {
                discard_layer();
                return Err(err.into());
            }
        },
    };
    if !cgroup.procs().unwrap_or_default().is_empty() {
        discard_layer();
        return Err(SpawnError::Busy(cgroup.path().to_string()));
    }
    let container = Container {
        pid: Pid::from_raw(0),
        cgroup,
        name: req.service.name.clone(),
        layer_to_remove,
        _lease: lease,
        network: None,
        _lock: lock,
    };
    let resources = create.then(|| plan.resources.clone());
    match start(&req, &plan, &container, resources) {
        Ok((pid, error_pipe, released, network)) => {
            record_exec_state(&req, plan.spec, pid);
            Ok(Starting {
                container: Container {
                    pid,
                    network,
                    ..container
                },
                error_pipe,
                message: Vec::new(),
                released,
            })
        }
        Err(err) => {
            // Best effort: the error that stopped the start is the one to report.
            let _ = container.teardown();
            Err(err)
        }
    }
}

/// A container whose child is setting itself up. Its verdict comes over the
/// error pipe: a one-line message, or end of file once init was exec'd.
pub struct Starting {
    container: Container,
    error_pipe: File,
    message: Vec<u8>,
    /// Releasing the child failed because it closed its end: it died, and
    /// this is the error if it said nothing.
    released: Option<SpawnError>,
}

/// What the error pipe has said so far.
#[derive(Debug)]
pub enum Setup {
    /// Nothing final yet.
    Pending,
    /// Init was exec'd.
    Finished,
    /// The child's message (it exits after sending it).
    Failed(String),
}

impl Starting {
    pub fn pid(&self) -> Pid {
        self.container.pid
    }

    pub fn cgroup(&self) -> &dyn cgroups::Cgroup {
        self.container.cgroup.as_ref()
    }

    /// The error pipe (non-blocking), for poll or epoll.
    pub fn pipe(&self) -> std::os::fd::BorrowedFd<'_> {
        self.error_pipe.as_fd()
    }

    /// Reads what the error pipe holds now, without blocking.
    pub fn read(&mut self) -> Setup {
        let mut buf = [0u8; 512];
        loop {
            match self.error_pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.message.extend_from_slice(&buf[..n]),
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return Setup::Pending,
                Err(err) => {
                    return Setup::Failed(format!("read the container's setup result: {err}"))
                }
            }
        }
        let message = String::from_utf8_lossy(&self.message).trim().to_string();
        // The same verdict however often it is asked.
        match (message.is_empty(), &self.released) {
            (false, _) => Setup::Failed(message),
            (true, Some(err)) => Setup::Failed(err.to_string()),
            (true, None) => Setup::Finished,
        }
    }

    /// The container, running once `read` said Finished; else for `teardown`
    /// once its child has been reaped.
    pub fn into_container(self) -> Container {
        self.container
    }
}

/// Waits (bounded) until the setup has finished or failed.
fn wait_for_setup(starting: &mut Starting) -> Result<(), SpawnError> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = std::time::Instant::now() + SETUP_TIMEOUT;
    loop {
        match starting.read() {
            Setup::Finished => return Ok(()),
            Setup::Failed(message) => return Err(SpawnError::Setup(message)),
            Setup::Pending => {}
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(SpawnError::Setup(format!(
                "setup did not finish within {}s (pid {})",
                SETUP_TIMEOUT.as_secs(),
                starting.pid()
            )));
        }
        let mut fds = [PollFd::new(starting.pipe(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(source) => {
                return Err(SpawnError::Sys {
                    what: "wait for the container's setup",
                    source,
                })
            }
        }
    }
}

/// Writes what `supervisor exec` needs (see `ExecState`); a failure only
/// costs `exec`, never the service.
fn record_exec_state(req: &SpawnRequest, spec: SetupSpec, pid: Pid) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = exec_state_path(&req.config.state_dir, &req.service.name);
    let state = ExecState {
        pid: pid.as_raw(),
        spec,
    };
    let written = serde_json::to_vec(&state)
        .map_err(std::io::Error::other)
        .and_then(|json| {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)?
                .write_all(&json)
        });
    if let Err(err) = written {
        log::warn!(
            "service {}: writing {}: {err}",
            req.service.name,
            path.display()
        );
    }
}

/// What `start` leaves running: the child's pid, its error pipe, the error of
/// a release the child cut short, and its network attachment.
type StartedChild = (
    Pid,
    File,
    Option<SpawnError>,
    Option<crate::net::Attachment>,
);

/// Creates the cgroup with `resources` (None: kept from the previous run, with
/// its limits and device policy), clones the child and releases it into its
/// setup: its pid, its error pipe (non-blocking), the error of a release the
/// child cut short, and its network attachment. On error the child (if any)
/// has been killed and reaped; the caller tears down the rest.
fn start(
    req: &SpawnRequest,
    plan: &LaunchPlan,
    container: &Container,
    resources: Option<cgroups::Resources>,
) -> Result<StartedChild, SpawnError> {
    let (spec, cgroup) = (&plan.spec, &container.cgroup);
    if let Some(resources) = resources {
        cgroup.create(&resources)?;
    }
    let spec_json = serde_json::to_vec(spec)
        .map_err(|err| SpawnError::Setup(format!("encode setup spec: {err}")))?;
    let (parent, child_ends) = channel::open(&req.stdio, req.service.namespaces.user, req.held)?;
    let mut exec = ChildExec::new(
        CString::new("/proc/self/exe").expect("no NUL"),
        vec![
            CString::new("supervisor").expect("no NUL"),
            CString::new("container-setup").expect("no NUL"),
        ],
        child_ends.dups(),
        ERROR_FD,
    );
    if let Some(read_end) = child_ends.id_map_wait() {
        exec = exec.user_namespace(read_end);
    }
    // Born in its unified group and joining its v1 groups itself, the child
    // never waits for the kernel's grace period that our writes to its
    // `cgroup.procs` would (see `SelfPlacement`).
    let placement = cgroup.self_placement()?;
    let (clone_into, tasks) = match &placement {
        Some(placement) => (placement.clone_into, placement.tasks.as_slice()),
        None => (None, &[][..]),
    };
    let join_fds = tasks
        .iter()
        .map(|file| sys::high_fd(file.as_fd()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(sys_error("duplicate a cgroup tasks fd"))?;
    exec = exec.join_cgroups(join_fds.iter().map(|fd| fd.as_raw_fd()).collect());
    let (pid, born_in_group) = sys::clone_exec(plan.clone_flags.bits() as u64, clone_into, &exec)
        .map_err(sys_error("clone the container's first process"))?;
    let placed_itself = placement
        .as_ref()
        .is_some_and(|placement| placement.clone_into.is_none() || born_in_group);
    child_ends.close();
    drop(join_fds);
    let ParentEnd {
        error: error_read,
        to_child,
    } = parent;
    let userns = plan.id_range.map(|first| UserNamespace {
        first,
        rootfs: spec.rootfs.as_ref(),
    });
    let mut network = None;
    // The child's network namespace exists: its links are made while it sets
    // up its root filesystem, before it is released.
    let attach_network = || {
        if let Some(prepared) = &plan.network {
            network = Some(crate::net::attach(req.config, req.service, prepared, pid)?);
        }
        Ok(())
    };
    let released = release(
        pid,
        placed_itself,
        &spec_json,
        to_child,
        userns,
        cgroup.as_ref(),
        attach_network,
    );
    match released {
        // Failed on our side (joining the cgroup, mapping users): the child
        // would only report that we went away.
        Err(err) if !closed_by_child(&err) && !network_lost_to_death(&err, &error_read) => {
            let _ = kill(pid, Signal::SIGKILL);
            reap(pid);
            detach(network);
            return Err(err);
        }
        _ => {}
    }
    if let Err(err) = fcntl(error_read.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)) {
        let _ = kill(pid, Signal::SIGKILL);
        reap(pid);
        detach(network);
        return Err(sys_error("make the error pipe non-blocking")(err));
    }
    // The child's message, if any, explains a failure better than ours (a
    // closed pipe on our side is its death).
    Ok((pid, error_read, released.err(), network))
}

/// What the parent does for a child in a user namespace of its own.
struct UserNamespace<'a> {
    /// The first host id of the service's range.
    first: u32,
    rootfs: Option<&'a rootfs::RootfsSpec>,
}

/// Giving a network to a child that dies during its setup fails too: its
/// own message then says why. It is dying if its error pipe has something
/// to say (or closes) soon; a child that waits for its release says nothing.
fn network_lost_to_death(err: &SpawnError, error_pipe: &File) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    if !matches!(err, SpawnError::Network(_)) {
        return false;
    }
    let mut fds = [PollFd::new(error_pipe.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::from(200u16)), Ok(n) if n > 0)
}

/// After a failed start: the error that stopped it is the one to report.
fn detach(network: Option<crate::net::Attachment>) {
    if let Some(network) = network {
        let _ = network.detach();
    }
}

/// Maps ids and hands the mounts over (with a user namespace), sends the
/// spec, joins the child to its cgroup unless it placed itself, gives it its
/// network (both overlapped with its setup), and releases it.
fn release(
    pid: Pid,
    placed_itself: bool,
    spec_json: &[u8],
    mut to_child: ToChild,
    userns: Option<UserNamespace>,
    cgroup: &dyn cgroups::Cgroup,
    attach_network: impl FnOnce() -> Result<(), crate::net::NetError>,
) -> Result<(), SpawnError> {
    if let Some(userns) = userns {
        userns::write_maps(pid, userns.first)?;
        // The child execs (the setup program) while we open its mounts.
        to_child.release_id_maps()?;
        if let (Some(rootfs), Some(socket)) = (userns.rootfs, to_child.handover_socket()) {
            userns::hand_over(pid, rootfs, socket)?;
        }
    }
    // EOF lets the child start its setup while we join it to the cgroup.
    to_child.send_spec(spec_json)?;
    if !placed_itself {
        cgroup.add_process(pid.as_raw())?;
    }
    attach_network()?;
    to_child.release()
}

/// A write to the child failed because it closed its end: it died, and its
/// own message says why.
fn closed_by_child(err: &SpawnError) -> bool {
    matches!(err, SpawnError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

fn reap(pid: Pid) {
    loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => continue,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::error::io_error;

    #[test]
    fn only_a_pipe_the_child_closed_defers_to_its_message() {
        let io = |kind: std::io::ErrorKind| std::io::Error::from(kind);
        let sent = io_error("send the setup spec")(io(std::io::ErrorKind::BrokenPipe));
        assert!(closed_by_child(&sent));
        let ours = io_error("write /proc/1/uid_map")(io(std::io::ErrorKind::PermissionDenied));
        assert!(!closed_by_child(&ours));
        assert!(!closed_by_child(&SpawnError::Busy("supervisor/web".into())));
    }
}
