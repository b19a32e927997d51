//! What a caller asks of `spawn`: a service, its stdio, and what is kept
//! from its previous run.

use std::ffi::OsString;
use std::os::fd::OwnedFd;

use config::{Config, Service};

/// Where the service's stdio goes.
#[derive(Debug)]
pub enum Stdio {
    /// The supervisor's own stdin, stdout and stderr (`supervisor run`).
    Inherit,
    /// stdout and stderr to this pipe's write end, stdin from /dev/null.
    Log(OwnedFd),
    /// stdin, stdout and stderr on this pseudo-terminal slave, which becomes
    /// the container's controlling terminal (`supervisor run -t`).
    Terminal(OwnedFd),
}

pub struct SpawnRequest<'a> {
    pub config: &'a Config,
    pub service: &'a Service,
    /// Replaces the service's command.
    pub command: Option<Vec<OsString>>,
    pub stdio: Stdio,
    /// The service's emptied cgroup, kept from its previous run
    /// (`Container::teardown_keeping_cgroup`): the child starts in it as it is,
    /// without creating it or applying limits again. Removed if the start fails.
    pub cgroup: Option<Box<dyn cgroups::Cgroup>>,
    /// `ready: notify`: the host path of the service's sd_notify socket,
    /// made visible to it as `NOTIFY_SOCKET`.
    pub notify_socket: Option<std::path::PathBuf>,
    /// Descriptors the service's init holds for a daemon that adopts it
    /// after a crash or a reexec (see `daemon/adopt.rs`).
    pub held: Option<Held<'a>>,
}

/// What init keeps open for the next daemon: the read end of the log pipe
/// (taken back with pidfd_getfd) and the file it writes its exit code to.
#[derive(Clone, Copy)]
pub struct Held<'a> {
    pub log_reader: std::os::fd::BorrowedFd<'a>,
    pub status_file: std::os::fd::BorrowedFd<'a>,
}
