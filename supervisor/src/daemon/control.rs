//! The daemon's side of the control socket: the state directory lock, the
//! listening socket with its permissions, who may talk to us, and reading one
//! request line per connection.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{chown, Gid, Group};

use crate::protocol::{self, Request, Response};

/// Held for the daemon's lifetime: a second daemon on the same state_dir fails
/// to take it. The directory exists already (`container::secure_state_dir`).
pub fn lock_state_dir(state_dir: &Path) -> anyhow::Result<Flock<File>> {
    let path = state_dir.join(protocol::LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        Errno::EWOULDBLOCK => anyhow!(
            "another daemon is already running on {}",
            state_dir.display()
        ),
        other => anyhow!("locking {}: {other}", path.display()),
    })
}

/// The group allowed on the control socket besides root.
pub fn control_gid(group: Option<&str>) -> anyhow::Result<Option<Gid>> {
    let Some(name) = group else { return Ok(None) };
    match Group::from_name(name) {
        Ok(Some(group)) => Ok(Some(group.gid)),
        Ok(None) => bail!("control_group {name}: no such group"),
        Err(err) => bail!("control_group {name}: {err}"),
    }
}

/// The logs directory and the log files in it, at startup and when
/// control_group changes on reload: 0750 and 0640, root's, or the control
/// group's (the directory setgid, so that new log files belong to the group
/// too). Modes left by an older version are put right.
pub fn share_state_dir(state_dir: &Path, gid: Option<Gid>) -> anyhow::Result<()> {
    let logs_dir = state_dir.join(protocol::LOGS_DIR);
    fs::DirBuilder::new()
        .mode(0o750)
        .create(&logs_dir)
        .or_else(|err| match err.kind() {
            io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(err),
        })
        .with_context(|| format!("creating {}", logs_dir.display()))?;
    let group = gid.unwrap_or(Gid::from_raw(0));
    let dir_mode = if gid.is_some() { 0o2750 } else { 0o750 };
    chown(&logs_dir, None, Some(group)).with_context(|| format!("chown {}", logs_dir.display()))?;
    fs::set_permissions(&logs_dir, fs::Permissions::from_mode(dir_mode))
        .with_context(|| format!("chmod {}", logs_dir.display()))?;
    let entries =
        fs::read_dir(&logs_dir).with_context(|| format!("reading {}", logs_dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", logs_dir.display()))?
            .path();
        let changed = chown(&path, None, Some(group))
            .map_err(io::Error::from)
            .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o640)));
        match changed {
            // Rotated away or removed meanwhile.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            other => other.with_context(|| format!("chown and chmod {}", path.display()))?,
        }
    }
    Ok(())
}

/// Binds state_dir/control.sock: mode 0600, or 0660 owned by the control group.
/// Call only with the state_dir lock held (a leftover socket is replaced).
pub fn bind(state_dir: &Path, gid: Option<Gid>) -> anyhow::Result<UnixListener> {
    let path = protocol::socket_path(state_dir);
    match fs::remove_file(&path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("removing stale {}", path.display()))
        }
        _ => {}
    }
    // The socket is born 0600: nobody else can connect before the chmod below.
    let old = umask(Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(&path);
    umask(old);
    let listener = listener.with_context(|| format!("binding {}", path.display()))?;
    set_socket_access(&path, gid)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

pub fn set_socket_access(path: &Path, gid: Option<Gid>) -> anyhow::Result<()> {
    let mode = match gid {
        Some(gid) => {
            chown(path, None, Some(gid)).with_context(|| format!("chown {}", path.display()))?;
            0o660
        }
        None => 0o600,
    };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Root, or a process whose primary or supplementary groups include the control group.
/// The uid of the client at the other end.
pub fn peer_uid(stream: &UnixStream) -> Result<u32, String> {
    getsockopt(stream, PeerCredentials)
        .map(|creds| creds.uid())
        .map_err(|err| format!("reading peer credentials: {err}"))
}

pub fn peer_allowed(stream: &UnixStream, gid: Option<Gid>) -> Result<(), String> {
    let creds = getsockopt(stream, PeerCredentials)
        .map_err(|err| format!("reading peer credentials: {err}"))?;
    if creds.uid() == 0 {
        return Ok(());
    }
    if let Some(gid) = gid {
        if creds.gid() == gid.as_raw() || supplementary_groups(creds.pid()).contains(&gid.as_raw())
        {
            return Ok(());
        }
    }
    Err(format!(
        "permission denied: uid {} is not root{}",
        creds.uid(),
        match gid {
            Some(gid) => format!(" nor in the control group (gid {gid})"),
            None => String::new(),
        }
    ))
}

/// Refuses a peer that runs inside a service: one of the cgroups below any of
/// `parents` (the cgroup parents the daemon has used) in any hierarchy, as
/// /proc/PID/cgroup shows it to the daemon. A root service that can reach
/// the socket (a mount naming the state dir) passes the uid check, but must
/// not ask for more than it has (a `privileged` service, a new mount).
/// Why `peer_outside_services` did not let a peer in.
pub enum PeerCheck {
    /// Inside a service, or not to be checked: the one-line answer.
    Refused(String),
    /// The daemon is out of descriptors (its /proc file could not be
    /// opened): making room and asking again may let the check run.
    NoDescriptor,
}

pub fn peer_outside_services<'a>(
    stream: &UnixStream,
    parents: impl IntoIterator<Item = &'a str>,
) -> Result<(), PeerCheck> {
    let creds = getsockopt(stream, PeerCredentials)
        .map_err(|err| PeerCheck::Refused(format!("reading peer credentials: {err}")))?;
    let pid = creds.pid();
    let refused = |why: String| {
        PeerCheck::Refused(format!(
            "refused: {why}; the control socket is not for services"
        ))
    };
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|err| {
        match err.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE) => PeerCheck::NoDescriptor,
            _ => refused(format!("cannot check the cgroup of pid {pid}: {err}")),
        }
    })?;
    match service_cgroup(&text, parents) {
        Some(path) => Err(refused(format!(
            "pid {pid} is inside service cgroup {path}"
        ))),
        None => Ok(()),
    }
}

/// The first path of a /proc/PID/cgroup text that is below one of `parents`.
fn service_cgroup<'a>(text: &str, parents: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let parents: Vec<String> = parents
        .into_iter()
        .map(|p| format!("/{}/", p.trim_matches('/')))
        .collect();
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .find(|path| {
            let path = format!("{}/", path.trim_end_matches('/'));
            parents
                .iter()
                .any(|parent| path.starts_with(parent.as_str()))
        })
        .map(str::to_string)
}

/// The `Groups:` line of /proc/PID/status.
fn supplementary_groups(pid: i32) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Groups:"))
        .map(|groups| {
            groups
                .split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Requests longer than this are refused (they are a few hundred bytes).
const MAX_REQUEST: usize = 64 * 1024;

/// A client connection until its request line is complete.
pub struct Connection {
    pub stream: UnixStream,
    buffer: Vec<u8>,
}

pub enum Received {
    /// Not a whole line yet.
    Partial,
    Request(Request),
    /// Closed, too long, or not a request: answered (if it can be) and dropped.
    Invalid(String),
}

impl Connection {
    pub fn new(stream: UnixStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Connection {
            stream,
            buffer: Vec::new(),
        })
    }

    /// Reads what is available (non-blocking).
    pub fn read(&mut self) -> Received {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                // A client may half-close after its request (socat, nc -N):
                // the line it sent is still answered.
                Ok(0) if self.buffer.contains(&b'\n') => break,
                Ok(0) => {
                    return Received::Invalid("connection closed before a whole request".into())
                }
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Received::Invalid(format!("reading the request: {err}")),
            }
            if self.buffer.len() > MAX_REQUEST {
                return Received::Invalid("request too long".into());
            }
        }
        let Some(end) = self.buffer.iter().position(|&b| b == b'\n') else {
            return Received::Partial;
        };
        match serde_json::from_slice(&self.buffer[..end]) {
            Ok(request) => Received::Request(request),
            Err(err) => Received::Invalid(format!("malformed request: {err}")),
        }
    }
}

/// Writes the one response line; a client that went away is not an error of ours.
pub fn reply(stream: UnixStream, response: &Response) {
    let mut stream = stream;
    let sent = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(2))))
        .and_then(|()| stream.write_all(&protocol::encode(response)));
    if let Err(err) = sent {
        log::debug!("answering a client: {err}");
    }
}

/// The socket path, for removal at exit.
pub fn socket_file(state_dir: &Path) -> PathBuf {
    protocol::socket_path(state_dir)
}

#[cfg(test)]
mod tests {
    use super::service_cgroup;

    #[test]
    fn a_peer_below_a_cgroup_parent_is_inside_a_service() {
        let hybrid = "4:memory:/supervisor/web\n1:name=systemd:/user.slice\n0::/supervisor/web\n";
        assert_eq!(
            service_cgroup(hybrid, ["supervisor"]).as_deref(),
            Some("/supervisor/web")
        );
        // A process the service started in a child group of its own.
        let nested = "0::/apps/web/sub\n";
        assert!(service_cgroup(nested, ["other", "apps"]).is_some());
        assert!(service_cgroup("0::/user.slice/session-1.scope\n", ["supervisor"]).is_none());
        // The parent itself (the daemon never runs there), and not a prefix of a name.
        assert!(service_cgroup("0::/supervisor\n", ["supervisor"]).is_some());
        assert!(service_cgroup("0::/supervisor2/x\n", ["supervisor"]).is_none());
    }
}
