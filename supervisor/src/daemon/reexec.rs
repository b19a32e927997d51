//! `supervisor reexec`: the daemon execs its binary as it is on disk now (an
//! upgrade), with the same pid and arguments plus a hidden `--reexec-fds`
//! naming the descriptors it hands over: the control socket's listener and
//! the connection of the client that asked. The new image adopts every
//! service from the state records (see `adopt`), as after a crash, and
//! answers that client. If the exec fails, this image carries on and the
//! client gets the error.

use std::collections::HashMap;
use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use anyhow::Context;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

use super::event_loop::Daemon;
use super::lifecycle::State;
use super::sys;
use crate::protocol::Response;

/// The hidden argument of an exec'd daemon: `--reexec-fds=LISTENER,CLIENT`.
pub const MARKER: &str = "--reexec-fds";

/// What an exec'd daemon inherits from its previous image.
pub struct Inherited {
    pub listener: UnixListener,
    pub client: UnixStream,
}

/// Takes the descriptors `--reexec-fds` names.
pub fn inherited(value: &str) -> anyhow::Result<Inherited> {
    let fds: Vec<RawFd> = value
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{MARKER}={value}: not two descriptors"))?;
    let [listener, client] = fds[..] else {
        anyhow::bail!("{MARKER}={value}: not two descriptors");
    };
    let take = |fd| {
        let fd = sys::inherited(fd).with_context(|| format!("{MARKER}: fd {fd} is not open"))?;
        // Not for the services this image starts.
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).context("fcntl")?;
        anyhow::Ok(fd)
    };
    Ok(Inherited {
        listener: UnixListener::from(take(listener)?),
        client: UnixStream::from(take(client)?),
    })
}

/// The binary on disk now: what /proc/self/exe names (without the
/// " (deleted)" the kernel appends once an upgrade replaced it).
fn binary() -> anyhow::Result<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").context("readlink /proc/self/exe")?;
    let text = exe.as_os_str().as_bytes();
    let path = match text.strip_suffix(b" (deleted)") {
        Some(path) => PathBuf::from(std::ffi::OsStr::from_bytes(path)),
        None => exe,
    };
    nix::unistd::access(&path, nix::unistd::AccessFlags::X_OK)
        .with_context(|| format!("{} is not executable", path.display()))?;
    Ok(path)
}

impl Daemon {
    /// Execs the binary on disk; returns (after answering `client` with the
    /// error) only if that failed.
    pub fn reexec(&mut self, client: UnixStream) {
        if let Err(err) = self.try_reexec(&client) {
            log::error!("reexec: {err:#}");
            let _ = set_cloexec(client.as_raw_fd(), true);
            let _ = set_cloexec(self.listener_fd(), true);
            // The records hold no line starts any more: this image keeps them.
            self.services.persist_partial_lines(&HashMap::new());
            self.reply(
                client,
                &Response::Error {
                    message: format!("reexec: {err:#}"),
                },
            );
        }
    }

    fn try_reexec(&mut self, client: &UnixStream) -> anyhow::Result<()> {
        // As PID 1 of the machine the new image would boot it again (mounts,
        // watchdog), and a hardware watchdog's descriptor does not survive exec.
        if nix::unistd::getpid().as_raw() == 1 {
            anyhow::bail!(
                "not supported while the supervisor is PID 1 of the machine (supervisor boot)"
            );
        }
        // A setup or a freezer under way has no record the next image could
        // finish from (a stop has: it is finished).
        if let Some(busy) = self.services.list.iter().find(|s| {
            matches!(
                s.life.state,
                State::Starting { .. }
                    | State::SetupFailing { .. }
                    | State::Freezing { .. }
                    | State::Thawing { .. }
            )
        }) {
            anyhow::bail!(
                "{} is {}: try again once it is done",
                busy.name(),
                busy.life.state.word().as_str()
            );
        }
        let binary = binary()?;
        // The new image reads the file again: one it would refuse must not
        // cost the services their daemon.
        let path = self.services.config.path.clone();
        if let Err(errors) = config::load(&path) {
            let first = errors.to_string();
            let first = first.lines().next().unwrap_or_default().to_string();
            anyhow::bail!(
                "{} is not valid now ({first}): fix it or `reload` first",
                path.display()
            );
        }
        // What the pipes hold now goes to the logs; the line starts read
        // but not ended go into the records, for the next image.
        let partial = self.flush_pipes();
        self.services.persist_partial_lines(&partial);
        let listener = self.listener_fd();
        let marker = format!("{MARKER}={listener},{}", client.as_raw_fd());
        let args: Vec<OsString> = std::env::args_os()
            .filter(|arg| !arg.as_bytes().starts_with(MARKER.as_bytes()))
            .chain([OsString::from(marker)])
            .collect();
        let args: Vec<CString> = args
            .iter()
            .map(|arg| CString::new(arg.as_bytes()))
            .collect::<Result<_, _>>()
            .context("an argument holds a NUL byte")?;
        let path = CString::new(binary.as_os_str().as_bytes()).context("binary path")?;
        // Clients waiting for a start or a stop are not carried over.
        for waiter in self.waiters.drain(..) {
            let message = "the daemon re-exec'd itself: ask again".to_string();
            super::control::reply(waiter.stream, &Response::Error { message });
        }
        set_cloexec(listener, false).context("keep the listener")?;
        set_cloexec(client.as_raw_fd(), false).context("keep the client")?;
        self.services.kill_checks();
        log::info!("reexec: {}", binary.display());
        let err = nix::unistd::execv(&path, &args).unwrap_err();
        Err(err).with_context(|| format!("exec {}", binary.display()))
    }
}

fn set_cloexec(fd: RawFd, on: bool) -> nix::Result<()> {
    let flags = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(fd, FcntlArg::F_SETFD(flags)).map(drop)
}
