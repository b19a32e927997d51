//! The clients of `supervisor events`: each gets the ring's recent events it
//! asked for, then every new event, written without blocking. What its socket
//! does not take waits in its buffer until EPOLLOUT; a client that lets more
//! than MAX_PENDING wait is dropped, with a last error line sent through the
//! outbox (which gives up after CLIENT_TIMEOUT). The loop never waits for one.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::epoll::{EpollEvent, EpollFlags};

use super::event_loop::Daemon;
use super::poller::SUBSCRIBER;
use crate::protocol::{self, Response};

/// Unread bytes a subscriber may have before it is dropped (some thousands of
/// events, beyond what its socket buffer holds).
pub const MAX_PENDING: usize = 256 * 1024;

/// How long the daemon's exit waits, at most, for its subscribers to take
/// their last events.
const LAST_WRITE: Duration = Duration::from_secs(2);

/// One `events` client.
pub struct Subscriber {
    stream: UnixStream,
    pending: Vec<u8>,
    sent: usize,
    /// EPOLLOUT is asked for (something waits).
    waiting: bool,
}

/// What writing to a subscriber came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// All written, or the rest waits for EPOLLOUT.
    Fine,
    /// The client is gone.
    Gone,
    /// More than MAX_PENDING waits: drop it.
    TooSlow,
}

impl Subscriber {
    /// `stream` must be non-blocking.
    pub fn new(stream: UnixStream) -> Subscriber {
        Subscriber {
            stream,
            pending: Vec::new(),
            sent: 0,
            waiting: false,
        }
    }

    pub fn queue(&mut self, line: &[u8]) {
        self.pending.extend_from_slice(line);
    }

    fn unsent(&self) -> usize {
        self.pending.len() - self.sent
    }

    /// Writes what the socket takes now.
    pub fn flush(&mut self) -> Flushed {
        while self.sent < self.pending.len() {
            match self.stream.write(&self.pending[self.sent..]) {
                Ok(0) => return Flushed::Gone,
                Ok(n) => self.sent += n,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return Flushed::Gone,
            }
        }
        if self.sent == self.pending.len() {
            self.pending.clear();
            self.sent = 0;
        } else if self.sent > MAX_PENDING {
            // Keep the buffer from growing with what was sent long ago.
            self.pending.drain(..self.sent);
            self.sent = 0;
        }
        if self.unsent() > MAX_PENDING {
            return Flushed::TooSlow;
        }
        Flushed::Fine
    }

    /// The client closed its end (or the connection broke). What it sends
    /// besides its request is read and ignored.
    fn hung_up(&mut self) -> bool {
        let mut scratch = [0u8; 512];
        for _ in 0..16 {
            match self.stream.read(&mut scratch) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return err.kind() != ErrorKind::WouldBlock,
            }
        }
        false
    }

    /// The stream and its last bytes: the rest of the line being written
    /// (a line is never cut), then `last`.
    pub fn closing(self, last: &[u8]) -> (UnixStream, Vec<u8>) {
        let mut bytes = Vec::new();
        let at_line_start = self.sent == 0 || self.pending[self.sent - 1] == b'\n';
        if !at_line_start {
            let rest = &self.pending[self.sent..];
            let end = rest.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
            bytes.extend_from_slice(&rest[..end]);
        }
        bytes.extend_from_slice(last);
        (self.stream, bytes)
    }
}

/// The subscribers by epoll token.
#[derive(Default)]
pub struct Subscribers {
    list: HashMap<u64, Subscriber>,
}

impl Daemon {
    /// `events`: sends the ring's events of the last `since_ms` (none without
    /// it), then keeps the client for every new event.
    pub fn subscribe(&mut self, stream: UnixStream, since_ms: Option<u64>) {
        if let Err(err) = stream.set_nonblocking(true) {
            log::debug!("events client: {err}");
            return;
        }
        // Events not yet pushed are new to the others, and old news to this one.
        self.publish_events();
        let mut subscriber = Subscriber::new(stream);
        if let Some(ms) = since_ms {
            let window = Duration::from_millis(ms);
            for record in self.services.events.within(window) {
                subscriber.queue(&protocol::encode(&Response::Event(record.clone())));
            }
        }
        let token = self.poller.token(SUBSCRIBER);
        if let Err(err) = self
            .poller
            .add(subscriber.stream.as_fd(), EpollFlags::EPOLLRDHUP, token)
        {
            log::warn!("epoll_ctl: {err}");
            return;
        }
        self.subscribers.list.insert(token, subscriber);
        self.flush_subscriber(token);
    }

    /// Pushes the events emitted since the last call to every subscriber.
    pub fn publish_events(&mut self) {
        let fresh = self.services.events.take_fresh();
        if fresh.is_empty() || self.subscribers.list.is_empty() {
            return;
        }
        let lines: Vec<u8> = fresh
            .into_iter()
            .flat_map(|record| protocol::encode(&Response::Event(record)))
            .collect();
        let tokens: Vec<u64> = self.subscribers.list.keys().copied().collect();
        for token in tokens {
            if let Some(subscriber) = self.subscribers.list.get_mut(&token) {
                subscriber.queue(&lines);
            }
            self.flush_subscriber(token);
        }
    }

    /// A subscriber's socket is writable, or its client hung up.
    pub fn subscriber_ready(&mut self, token: u64) {
        let Some(subscriber) = self.subscribers.list.get_mut(&token) else {
            return;
        };
        if subscriber.hung_up() {
            self.drop_subscriber(token);
            return;
        }
        self.flush_subscriber(token);
    }

    /// Writes what the subscriber's socket takes; asks for EPOLLOUT while
    /// something waits; drops a client that has gone or reads too slowly.
    fn flush_subscriber(&mut self, token: u64) {
        let Some(subscriber) = self.subscribers.list.get_mut(&token) else {
            return;
        };
        match subscriber.flush() {
            Flushed::Fine => {
                let waiting = subscriber.unsent() > 0;
                if waiting != subscriber.waiting {
                    let mut flags = EpollFlags::EPOLLRDHUP;
                    if waiting {
                        flags |= EpollFlags::EPOLLOUT;
                    }
                    let mut event = EpollEvent::new(flags, token);
                    if let Err(err) = self
                        .poller
                        .epoll
                        .modify(subscriber.stream.as_fd(), &mut event)
                    {
                        log::warn!("epoll_ctl: {err}");
                    }
                    subscriber.waiting = waiting;
                }
            }
            Flushed::Gone => self.drop_subscriber(token),
            Flushed::TooSlow => {
                let subscriber = self
                    .subscribers
                    .list
                    .remove(&token)
                    .expect("looked up above");
                self.poller.delete(subscriber.stream.as_fd());
                log::warn!(
                    "dropping an events client that left more than {} KiB unread",
                    MAX_PENDING / 1024
                );
                let message = format!(
                    "dropped: more than {} KiB of events left unread (read faster, or filter less)",
                    MAX_PENDING / 1024
                );
                let (stream, bytes) =
                    subscriber.closing(&protocol::encode(&Response::Error { message }));
                self.send(stream, bytes);
            }
        }
    }

    fn drop_subscriber(&mut self, token: u64) {
        if let Some(subscriber) = self.subscribers.list.remove(&token) {
            self.poller.delete(subscriber.stream.as_fd());
            log::debug!("an events client went away");
        }
    }

    /// At exit: every subscriber gets the last events and `done`, within a
    /// shared bound of LAST_WRITE.
    pub fn close_subscribers(&mut self) {
        self.publish_events();
        let deadline = Instant::now() + LAST_WRITE;
        let done = protocol::encode(&Response::Done);
        for (_, mut subscriber) in self.subscribers.list.drain() {
            subscriber.queue(&done);
            let left = deadline.saturating_duration_since(Instant::now());
            let blocking = subscriber.stream.set_nonblocking(false).and_then(|()| {
                subscriber
                    .stream
                    .set_write_timeout(Some(left.max(Duration::from_millis(1))))
            });
            if blocking.is_ok() {
                let _ = subscriber.flush();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    #[test]
    fn a_client_that_does_not_read_is_dropped_with_a_whole_last_line() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut subscriber = Subscriber::new(ours);
        let line = format!("{{\"n\":\"{}\"}}\n", "x".repeat(100));
        let mut outcome = Flushed::Fine;
        for _ in 0..1_000_000 {
            subscriber.queue(line.as_bytes());
            outcome = subscriber.flush();
            if outcome != Flushed::Fine {
                break;
            }
        }
        assert_eq!(outcome, Flushed::TooSlow);
        let (stream, bytes) = subscriber.closing(b"{\"last\":true}\n");
        // What follows completes the line the socket holds a part of.
        std::thread::spawn(move || {
            let mut stream = stream;
            stream.set_nonblocking(false).unwrap();
            stream.write_all(&bytes).unwrap();
        });
        let mut lines = BufReader::new(theirs).lines();
        let mut count = 0;
        let last = loop {
            let next = lines.next().unwrap().unwrap();
            count += 1;
            if next.contains("last") {
                break next;
            }
            assert_eq!(next.len(), line.len() - 1, "line {count} was cut: {next}");
        };
        assert_eq!(last, "{\"last\":true}");
        assert!(count > 1, "nothing before the last line");
    }

    #[test]
    fn a_client_that_hangs_up_is_noticed() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut subscriber = Subscriber::new(ours);
        assert!(!subscriber.hung_up());
        drop(theirs);
        assert!(subscriber.hung_up());
        subscriber.queue(b"x\n");
        assert_eq!(subscriber.flush(), Flushed::Gone);
    }
}
