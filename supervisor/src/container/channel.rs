//! The handshake between `spawn` (or `exec`) and the setup process it starts,
//! on fixed fds: the spec (3), the one-line error (4), the release (5) and,
//! with a user namespace, the handover socket (6) and the id-map release.
//! `ParentEnd` is what the supervisor keeps, `ChildEnd` what the child inherits.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context};
use nix::fcntl::OFlag;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::pipe2;
use serde::de::DeserializeOwned;

use super::error::{io_error, sys_error, SpawnError};
use super::request::Stdio;
use super::setup::os;
use super::sys;

/// The spec arrives here as JSON; the parent closes its end when done.
pub const SPEC_FD: RawFd = 3;
/// A setup failure goes back here as one line. Close-on-exec: when init has
/// been exec'd the parent reads EOF, which means success.
pub const ERROR_FD: RawFd = 4;
/// The parent writes one byte here once the child is in its cgroup.
const SYNC_FD: RawFd = 5;
/// With a user namespace: the mounts and sources of the root filesystem
/// arrive here as descriptors (see `userns::hand_over`).
const HANDOVER_FD: RawFd = 6;
/// Held by init for the next daemon (see `request::Held`): the log pipe's
/// read end, and the file init writes its exit code to.
pub const HELD_LOG_FD: RawFd = 7;
pub(super) const STATUS_FD: RawFd = 8;
/// The byte that releases the child (on `SYNC_FD`, and on the id-map pipe).
const RELEASE: u8 = b'1';

/// The supervisor's ends, once the child is cloned.
pub(super) struct ParentEnd {
    /// The child's verdict: a message, or EOF once init was exec'd.
    pub error: File,
    pub to_child: ToChild,
}

/// What the supervisor sends to the child, in order: the id-map release and
/// the handover (with a user namespace), the spec, the release.
pub(super) struct ToChild {
    spec: Option<File>,
    sync: File,
    /// With a user namespace: the child waits on the pipe's read end (see
    /// `ChildEnds::id_map_wait`) until its id maps are written; the socket
    /// carries the root filesystem's mounts to it (`HANDOVER_FD`).
    userns: Option<(File, OwnedFd)>,
}

/// The child's ends, numbered high (see `sys::high_fd`) so that the clone
/// can dup2 them to the fixed fds; closed by the parent after the clone.
pub(super) struct ChildEnds {
    fds: Vec<OwnedFd>,
    /// (our fd, the child's fixed fd)
    dups: Vec<(RawFd, RawFd)>,
    id_map_wait: Option<RawFd>,
}

impl ChildEnds {
    pub fn dups(&self) -> Vec<(RawFd, RawFd)> {
        self.dups.clone()
    }

    /// Once the child has its copies: ours would hide its death (no EOF).
    pub fn close(self) {
        drop(self.fds);
    }

    /// The read end the child blocks on until its id maps are written.
    pub fn id_map_wait(&self) -> Option<RawFd> {
        self.id_map_wait
    }
}

/// Opens the channel to a setup process, and its stdio.
pub(super) fn open(
    stdio: &Stdio,
    user_namespace: bool,
    held: Option<super::request::Held>,
) -> Result<(ParentEnd, ChildEnds), SpawnError> {
    let pipe = || pipe2(OFlag::O_CLOEXEC).map_err(sys_error("create a pipe"));
    let high = |fd: &OwnedFd| sys::high_fd(fd.as_fd()).map_err(sys_error("duplicate a pipe fd"));
    let (spec_read, spec_write) = pipe()?;
    let (error_read, error_write) = pipe()?;
    let (sync_read, sync_write) = pipe()?;
    let mut fds = vec![high(&spec_read)?, high(&error_write)?, high(&sync_read)?];
    let mut targets = vec![SPEC_FD, ERROR_FD, SYNC_FD];
    let handover = if user_namespace {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(sys_error("create a socket"))?;
        fds.push(high(&theirs)?);
        targets.push(HANDOVER_FD);
        Some(ours)
    } else {
        None
    };
    if let Stdio::Log(log) = stdio {
        let null = File::open("/dev/null").map_err(io_error("open /dev/null"))?;
        fds.push(high(&OwnedFd::from(null))?);
        fds.push(high(log)?);
        fds.push(high(log)?);
        targets.extend([0, 1, 2]);
    }
    if let Some(held) = held {
        fds.push(high(
            &held
                .log_reader
                .try_clone_to_owned()
                .map_err(io_error("dup a pipe fd"))?,
        )?);
        fds.push(high(
            &held
                .status_file
                .try_clone_to_owned()
                .map_err(io_error("dup a file fd"))?,
        )?);
        targets.extend([HELD_LOG_FD, STATUS_FD]);
    }
    if let Stdio::Terminal(slave) = stdio {
        for target in [0, 1, 2] {
            fds.push(high(slave)?);
            targets.push(target);
        }
    }
    let dups = fds.iter().map(|fd| fd.as_raw_fd()).zip(targets).collect();
    let (userns, id_map_wait) = match handover {
        Some(socket) => {
            let (read, write) = pipe()?;
            let read = high(&read)?;
            let wait = read.as_raw_fd();
            fds.push(read);
            (Some((File::from(write), socket)), Some(wait))
        }
        None => (None, None),
    };
    let parent = ParentEnd {
        error: File::from(error_read),
        to_child: ToChild {
            spec: Some(File::from(spec_write)),
            sync: File::from(sync_write),
            userns,
        },
    };
    let child = ChildEnds {
        fds,
        dups,
        id_map_wait,
    };
    Ok((parent, child))
}

impl ToChild {
    /// Lets the child (waiting in its user namespace) exec the setup program.
    pub fn release_id_maps(&mut self) -> Result<(), SpawnError> {
        match &mut self.userns {
            Some((maps_written, _)) => maps_written
                .write_all(&[RELEASE])
                .map_err(io_error("release the container to exec")),
            None => Ok(()),
        }
    }

    /// The socket the root filesystem's mounts go over (user namespace only).
    pub fn handover_socket(&self) -> Option<&OwnedFd> {
        self.userns.as_ref().map(|(_, socket)| socket)
    }

    /// Sends the spec and closes its pipe: EOF lets the child start its setup.
    pub fn send_spec(&mut self, json: &[u8]) -> Result<(), SpawnError> {
        if let Some(mut spec) = self.spec.take() {
            spec.write_all(json)
                .map_err(io_error("send the setup spec"))?;
        }
        Ok(())
    }

    /// Releases the child from its setup into its service's limits.
    pub fn release(mut self) -> Result<(), SpawnError> {
        self.sync
            .write_all(&[RELEASE])
            .map_err(io_error("release the container"))
    }
}

/// The child's error pipe, its one way to tell why it failed.
pub(super) struct ChildEnd {
    error: Option<File>,
}

impl ChildEnd {
    /// Takes the error pipe; absent when not started by the supervisor.
    pub fn inherited() -> ChildEnd {
        ChildEnd {
            error: sys::inherited_fd(ERROR_FD).map(File::from),
        }
    }

    /// Sends the one line the parent reports; false when there is no parent
    /// to tell. If even this write fails, the parent sees a closed pipe and an
    /// exit status.
    pub fn report_error(self, message: &str) -> bool {
        match self.error {
            Some(mut pipe) => {
                let _ = pipe.write_all(message.as_bytes());
                true
            }
            None => false,
        }
    }

    /// Nothing the supervisor had open reaches the service; the error pipe
    /// closes when init is exec'd, which tells the parent that all went well.
    pub fn close_on_exec() {
        sys::cloexec_from(ERROR_FD);
    }

    /// Reads the spec the parent sent (`what`: "setup spec", "exec spec").
    pub fn read_spec<T: DeserializeOwned>(what: &str) -> anyhow::Result<T> {
        let mut pipe = sys::inherited_fd(SPEC_FD)
            .map(File::from)
            .with_context(|| format!("no {what} (fd {SPEC_FD})"))?;
        let mut json = Vec::new();
        pipe.read_to_end(&mut json)
            .with_context(|| format!("read the {what}"))?;
        serde_json::from_slice(&json).with_context(|| format!("decode the {what}"))
    }

    /// The pipe the parent's release arrives on.
    pub fn release_pipe() -> anyhow::Result<ReleasePipe> {
        sys::inherited_fd(SYNC_FD)
            .map(|fd| ReleasePipe(File::from(fd)))
            .with_context(|| format!("no release pipe (fd {SYNC_FD})"))
    }

    /// The root filesystem's mounts and sources, opened by the parent.
    pub fn receive_handover() -> anyhow::Result<Vec<OwnedFd>> {
        let socket = sys::inherited_fd(HANDOVER_FD)
            .with_context(|| format!("no handover socket (fd {HANDOVER_FD})"))?;
        sys::receive_fds(socket.as_fd())
            .map_err(os)
            .context("receive the root filesystem's mounts")
    }
}

/// Where the child waits for its release.
pub(super) struct ReleasePipe(File);

impl ReleasePipe {
    /// Blocks until the parent has placed us in the service's cgroup.
    pub fn wait_for_release(mut self) -> anyhow::Result<()> {
        let mut byte = [0u8; 1];
        match self.0.read(&mut byte) {
            Ok(1) if byte[0] == RELEASE => Ok(()),
            Ok(_) => bail!("the supervisor went away during setup"),
            Err(err) => Err(err).context("wait for the supervisor"),
        }
    }
}
