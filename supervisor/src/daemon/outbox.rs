//! Answers on their way to clients, written without blocking: what the
//! socket does not take at once waits for EPOLLOUT. A client that does not
//! read its answer within CLIENT_TIMEOUT is dropped, as is one that has not
//! sent a whole request by then.

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// How long a client may take to send its request or read its answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Outgoing {
    pub stream: UnixStream,
    bytes: Vec<u8>,
    sent: usize,
    pub deadline: Instant,
}

impl Outgoing {
    /// Encoded lines (`protocol::encode`); `stream` must be non-blocking.
    pub fn bytes(stream: UnixStream, bytes: Vec<u8>) -> Outgoing {
        Outgoing {
            stream,
            bytes,
            sent: 0,
            deadline: Instant::now() + CLIENT_TIMEOUT,
        }
    }

    /// Writes what the socket takes. True when done (sent, or the client gone).
    pub fn flush(&mut self) -> bool {
        while self.sent < self.bytes.len() {
            match self.stream.write(&self.bytes[self.sent..]) {
                Ok(0) => return true,
                Ok(n) => self.sent += n,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => return false,
                Err(err) => {
                    // A client that went away is not an error of ours.
                    log::debug!("answering a client: {err}");
                    return true;
                }
            }
        }
        true
    }
}
