//! The receiving end of systemd's sd_notify protocol for `ready: notify`
//! services: a unix datagram socket per service at
//! `state_dir/notify/NAME/notify.sock`, bound into the service (see
//! `container::plan`), read from the daemon's epoll without blocking. Each
//! datagram carries its sender's credentials (SO_PASSCRED), host pid
//! included, so that only processes of the service's own cgroup are heard
//! (systemd's `NotifyAccess=all` within the service).

use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};

/// The largest datagram read whole (systemd's own limit is 4 KiB of text
/// plus descriptors); longer ones are cut.
const MAX_DATAGRAM: usize = 4096;
/// Datagrams read per wakeup: a service that floods its socket cannot hold
/// the loop (what is left wakes it again).
const BATCH: usize = 64;

/// A service's notify socket, removed from the file system when dropped.
pub struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

/// One datagram: its sender's host pid (None without credentials) and text.
#[derive(Debug, PartialEq, Eq)]
pub struct Datagram {
    pub pid: Option<i32>,
    pub text: String,
}

impl NotifySocket {
    /// The host path of service `name`'s socket.
    pub fn path(state_dir: &Path, name: &str) -> PathBuf {
        state_dir.join("notify").join(name).join("notify.sock")
    }

    /// Binds a fresh socket for service `name` (replacing any earlier one).
    pub fn bind(state_dir: &Path, name: &str) -> io::Result<NotifySocket> {
        let path = Self::path(state_dir, name);
        let dir = path.parent().expect("the socket path has a parent");
        std::fs::create_dir_all(dir)?;
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        let socket = UnixDatagram::bind(&path)?;
        socket.set_nonblocking(true)?;
        setsockopt(&socket, sockopt::PassCred, &true)?;
        // Sending needs write permission on the socket: every process of the
        // service may send, whatever its user or user namespace. Who is heard
        // is decided by the sender's cgroup, not by the file's mode.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        Ok(NotifySocket { socket, path })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// The datagrams waiting now (at most a batch).
    pub fn receive(&self) -> Vec<Datagram> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
        while out.len() < BATCH {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let received = recvmsg::<()>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
            );
            let (bytes, pid) = match received {
                Ok(msg) => {
                    let pid = msg.cmsgs().ok().and_then(|mut cmsgs| {
                        cmsgs.find_map(|c| match c {
                            ControlMessageOwned::ScmCredentials(creds) => Some(creds.pid()),
                            _ => None,
                        })
                    });
                    (msg.bytes, pid)
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(err) => {
                    log::debug!("{}: {err}", self.path.display());
                    break;
                }
            };
            out.push(Datagram {
                pid,
                text: String::from_utf8_lossy(&buf[..bytes]).into_owned(),
            });
        }
        out
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// What one datagram says (sd_notify(3): newline-separated assignments).
/// Unknown assignments, `MAINPID=`, `WATCHDOG_USEC=` and
/// `EXTEND_TIMEOUT_USEC=` are ignored.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub ready: bool,
    pub watchdog: bool,
    pub stopping: bool,
    /// The last `STATUS=` of the datagram.
    pub status: Option<String>,
}

pub fn parse(text: &str) -> Message {
    let mut message = Message::default();
    for line in text.split('\n') {
        match line.split_once('=') {
            Some(("READY", "1")) => message.ready = true,
            Some(("WATCHDOG", "1")) => message.watchdog = true,
            Some(("STOPPING", "1")) => message.stopping = true,
            Some(("STATUS", status)) => message.status = Some(status.to_string()),
            _ => {}
        }
    }
    message
}

/// Whether host pid `pid` is in the cgroup at `path` (relative to the
/// hierarchy roots, as `Cgroup::path` gives it) in any hierarchy.
pub fn in_cgroup(pid: i32, path: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    let want = format!("/{}", path.trim_matches('/'));
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .any(|group| group == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_assignments_it_knows() {
        assert_eq!(
            parse("READY=1\nSTATUS=serving 3 clients\nMAINPID=7\n"),
            Message {
                ready: true,
                status: Some("serving 3 clients".into()),
                ..Message::default()
            }
        );
        assert_eq!(
            parse("WATCHDOG=1"),
            Message {
                watchdog: true,
                ..Message::default()
            }
        );
        assert_eq!(
            parse("STOPPING=1\nSTATUS=a=b\nSTATUS=last"),
            Message {
                stopping: true,
                status: Some("last".into()),
                ..Message::default()
            }
        );
        // Not "1", unknown, or no assignment at all.
        assert_eq!(
            parse("READY=0\nWATCHDOG=trigger\nEXTEND_TIMEOUT_USEC=5\nnonsense"),
            Message::default()
        );
    }

    #[test]
    fn receives_datagrams_with_the_senders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let socket = NotifySocket::bind(dir.path(), "web").unwrap();
        let path = NotifySocket::path(dir.path(), "web");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
        assert!(socket.receive().is_empty());
        let sender = UnixDatagram::unbound().unwrap();
        sender.send_to(b"READY=1\nSTATUS=up", &path).unwrap();
        sender.send_to(b"WATCHDOG=1", &path).unwrap();
        let got = socket.receive();
        let me = Some(std::process::id() as i32);
        assert_eq!(
            got,
            [
                Datagram {
                    pid: me,
                    text: "READY=1\nSTATUS=up".into()
                },
                Datagram {
                    pid: me,
                    text: "WATCHDOG=1".into()
                }
            ]
        );
        drop(socket);
        assert!(!path.exists());
    }

    #[test]
    fn a_process_is_in_its_own_cgroup_only() {
        let me = std::process::id() as i32;
        let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let own = text.lines().next().unwrap().splitn(3, ':').nth(2).unwrap();
        assert!(in_cgroup(me, own.trim_start_matches('/')));
        assert!(!in_cgroup(me, "no/such/group-of-a-test"));
        assert!(!in_cgroup(i32::MAX, own));
    }
}
