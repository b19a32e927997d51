//! A pseudo-terminal for `exec -t` and `run -t`: the command gets the slave
//! as its controlling terminal; we relay between our terminal (in raw mode,
//! so that Ctrl-C and the like travel as bytes to the command's) and the
//! master, and pass our window size on as it changes.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::Context;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use super::sys;

pub struct Relay {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Relay {
    /// A new pseudo-terminal, as large as our terminal (if stdin is one).
    pub fn open() -> anyhow::Result<Relay> {
        let size = sys::window_size(std::io::stdin().as_fd());
        let pty = nix::pty::openpty(size.as_ref(), None).context("open a pseudo-terminal")?;
        for fd in [&pty.master, &pty.slave] {
            nix::fcntl::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(fd),
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .context("pseudo-terminal close-on-exec")?;
        }
        Ok(Relay {
            master: pty.master,
            slave: pty.slave,
        })
    }

    /// A new pseudo-terminal of the devpts instance of process `pid`'s root
    /// (a service's), as large as our terminal: in the service, the command
    /// finds its terminal under /dev/pts. The path is resolved inside that
    /// root (the service owns its /dev).
    pub fn open_in(pid: i32) -> anyhow::Result<Relay> {
        use nix::fcntl::OFlag;
        use nix::sys::stat::{fstat, major, minor, SFlag};
        let root_path = format!("/proc/{pid}/root");
        let root = std::fs::File::open(&root_path).with_context(|| format!("open {root_path}"))?;
        let master = rootfs::openat_in_root(
            root.as_fd(),
            std::path::Path::new("dev/pts/ptmx"),
            OFlag::O_RDWR | OFlag::O_NOCTTY,
        )
        .context("open the service's /dev/pts/ptmx")?;
        let stat = fstat(std::os::fd::AsRawFd::as_raw_fd(&master)).context("stat /dev/pts/ptmx")?;
        let is_ptmx = SFlag::from_bits_truncate(stat.st_mode).contains(SFlag::S_IFCHR)
            && (major(stat.st_rdev), minor(stat.st_rdev)) == (5, 2);
        if !is_ptmx {
            anyhow::bail!("the service's /dev/pts/ptmx is not a pseudo-terminal multiplexer");
        }
        let slave = sys::pty_peer(master.as_fd()).context("open the pseudo-terminal's slave")?;
        if let Some(size) = sys::window_size(std::io::stdin().as_fd()) {
            let _ = sys::set_window_size(master.as_fd(), &size);
        }
        Ok(Relay { master, slave })
    }

    /// The slave, for the child's stdin, stdout and stderr.
    pub fn slave(&self) -> BorrowedFd<'_> {
        self.slave.as_fd()
    }

    /// Relays until `child` exits (and what it wrote is passed on); its
    /// exit status. `signals` has SIGCHLD and SIGWINCH (and the signals to
    /// pass on to `child`) blocked and readable.
    pub fn run(self, child: Pid, signals: &SignalFd) -> anyhow::Result<u8> {
        let Relay { master, slave } = self;
        // Only the child holds the slave now: the master reads EIO once it is gone.
        drop(slave);
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        let _raw = RawMode::enter(stdin.as_fd());
        let mut stdin_open = true;
        let mut buf = [0u8; 8192];
        loop {
            let mut fds = vec![
                PollFd::new(master.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            ];
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                other => other.context("poll")?,
            };
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            let (master_ready, signal_ready) = (ready(&fds[0]), ready(&fds[1]));
            let stdin_ready = stdin_open && ready(&fds[2]);
            drop(fds);
            if master_ready && !copy(master.as_fd(), stdout.as_fd(), &mut buf)? {
                // Every holder of the slave is gone.
                return wait(child);
            }
            if stdin_ready && !copy(stdin.as_fd(), master.as_fd(), &mut buf)? {
                stdin_open = false;
            }
            if signal_ready {
                if let Some(code) = handle_signal(signals, child, &master)? {
                    drain(master.as_fd(), stdout.as_fd(), &mut buf);
                    return Ok(code);
                }
            }
        }
    }
}

/// One read from `from` written whole to `to`; false at end of input (EIO
/// on a master whose slave is closed).
fn copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>, buf: &mut [u8]) -> anyhow::Result<bool> {
    let n = match nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&from), buf) {
        Ok(0) | Err(Errno::EIO) => return Ok(false),
        Ok(n) => n,
        Err(Errno::EINTR | Errno::EAGAIN) => return Ok(true),
        Err(err) => return Err(err).context("read"),
    };
    let mut rest = &buf[..n];
    while !rest.is_empty() {
        match nix::unistd::write(to, rest) {
            Ok(written) => rest = &rest[written..],
            Err(Errno::EINTR) => {}
            // Nobody reads our output any more: drop it, keep relaying input.
            Err(Errno::EPIPE) => return Ok(true),
            Err(err) => return Err(err).context("write"),
        }
    }
    Ok(true)
}

/// What the master still holds once the child is gone (without blocking).
fn drain(master: BorrowedFd<'_>, to: BorrowedFd<'_>, buf: &mut [u8]) {
    loop {
        let mut fds = [PollFd::new(master, PollFlags::POLLIN)];
        let readable = poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
            && fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLIN));
        if !readable || !copy(master, to, buf).unwrap_or(false) {
            return;
        }
    }
}

/// SIGWINCH: the new size goes to the pty; SIGCHLD: Some(status) once the
/// child has exited; others are passed on to the child.
fn handle_signal(signals: &SignalFd, child: Pid, master: &OwnedFd) -> anyhow::Result<Option<u8>> {
    let Some(info) = signals.read_signal().context("read signals")? else {
        return Ok(None);
    };
    match Signal::try_from(info.ssi_signo as i32) {
        Ok(Signal::SIGWINCH) => {
            if let Some(size) = sys::window_size(std::io::stdin().as_fd()) {
                let _ = sys::set_window_size(master.as_fd(), &size);
            }
        }
        Ok(Signal::SIGCHLD) => {
            if let Ok(status) = waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                return Ok(super::exec::exit_code(status));
            }
        }
        Ok(signal) => {
            let _ = kill(child, signal);
        }
        Err(_) => {}
    }
    Ok(None)
}

fn wait(child: Pid) -> anyhow::Result<u8> {
    loop {
        match waitpid(child, None) {
            Ok(status) => {
                if let Some(code) = super::exec::exit_code(status) {
                    return Ok(code);
                }
            }
            Err(Errno::EINTR) => {}
            Err(err) => return Err(err).context("wait for the command"),
        }
    }
}

/// Our terminal in raw mode while it lives; restored on drop. Nothing
/// happens when stdin is not a terminal.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Option<Termios>,
}

impl<'a> RawMode<'a> {
    fn enter(fd: BorrowedFd<'a>) -> RawMode<'a> {
        let saved = termios::tcgetattr(fd).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &raw);
        }
        RawMode { fd, saved }
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(self.fd, SetArg::TCSADRAIN, saved);
        }
    }
}
