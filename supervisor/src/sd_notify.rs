//! systemd's readiness protocol for `Type=notify` units (sd_notify(3)): one
//! datagram per state change to the unix socket named by `$NOTIFY_SOCKET`
//! (a path, or an abstract name when it starts with `@`). Without the variable,
//! as outside systemd, nothing is sent. The services never see the variable:
//! their environment is built from the service list alone.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

const VARIABLE: &str = "NOTIFY_SOCKET";

/// The service manager's notification socket, if the daemon has one.
pub struct Notifier {
    address: SocketAddr,
    socket: UnixDatagram,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; None when it is unset or empty. A value that is not
    /// a unix socket (systemd also knows `vsock:`) is logged and ignored.
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os(VARIABLE)?;
        let value = value.to_string_lossy();
        if value.is_empty() {
            return None;
        }
        match Self::connect(&value) {
            Ok(notifier) => Some(notifier),
            Err(err) => {
                log::warn!("{VARIABLE}={value}: {err}: systemd will not hear of readiness");
                None
            }
        }
    }

    fn connect(value: &str) -> io::Result<Notifier> {
        let address = match value.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
            None if value.starts_with('/') => SocketAddr::from_pathname(value)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a unix socket path or @abstract name",
                ))
            }
        };
        Ok(Notifier {
            address,
            socket: UnixDatagram::unbound()?,
        })
    }

    /// Every autostart service has been started.
    pub fn ready(&self, status: &str) {
        self.send(&format!(
            "READY=1\nSTATUS={status}\nMAINPID={}",
            std::process::id()
        ));
    }

    /// The daemon is stopping its services and will exit.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping every service");
    }

    /// The daemon's loop still turns (systemd's `WatchdogSec=`).
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    fn send(&self, message: &str) {
        // A failed notification must not stop the daemon: systemd times the unit
        // out by itself if READY=1 never arrives.
        if let Err(err) = self.socket.send_to_addr(message.as_bytes(), &self.address) {
            log::warn!("{VARIABLE}: {err}");
        }
    }
}

/// Tells systemd the daemon is ready: every autostart service has been started.
pub fn ready(status: &str) {
    if let Some(notifier) = Notifier::from_env() {
        notifier.ready(status);
    }
}

/// How often to send WATCHDOG=1 when systemd watches the daemon
/// (`WatchdogSec=` sets `$WATCHDOG_USEC`, and `$WATCHDOG_PID` when it is meant
/// for one process): half the interval, as sd_watchdog_enabled(3) advises.
pub fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec) / 2)
}

/// Tells systemd the daemon's loop still turns.
pub fn watchdog() {
    if let Some(notifier) = Notifier::from_env() {
        notifier.watchdog();
    }
}

/// Tells systemd the daemon is stopping its services and will exit.
pub fn stopping() {
    if let Some(notifier) = Notifier::from_env() {
        notifier.stopping();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::connect(path.to_str().unwrap()).unwrap();
        notifier.stopping();
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"STOPPING=1\n"));
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!("supervisor-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&address).unwrap();
        let notifier = Notifier::connect(&format!("@{name}")).unwrap();
        notifier.ready("2 services");
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            text.starts_with("READY=1\nSTATUS=2 services\nMAINPID="),
            "{text}"
        );
    }

    #[test]
    fn refuses_what_is_not_a_unix_socket() {
        assert!(Notifier::connect("vsock:2:1234").is_err());
    }
}
