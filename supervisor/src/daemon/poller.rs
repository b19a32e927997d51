//! The daemon's one epoll instance and its tokens, shared by the loop (signals,
//! clients, log pipes) and the services (setup pipes, cgroup.events files).

use std::cell::Cell;
use std::os::fd::BorrowedFd;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

/// Token kinds, in the high bits; the low bits count.
pub const CONNECTION: u64 = 1 << 62;
pub const PIPE: u64 = 1 << 61;
pub const SETUP: u64 = 1 << 60;
pub const CGROUP: u64 = 1 << 59;
pub const REPLY: u64 = 1 << 58;
/// A health check's output pipe.
pub const HEALTH: u64 = 1 << 50;
/// sd_notify sockets of `ready: notify` services.
pub const NOTIFY: u64 = 1 << 52;
/// `events` clients.
pub const SUBSCRIBER: u64 = 1 << 54;
/// pidfds of adopted inits (not our children: no SIGCHLD for them).
pub const PIDFD: u64 = 1 << 56;
pub const KINDS: u64 =
    CONNECTION | PIPE | SETUP | CGROUP | REPLY | HEALTH | NOTIFY | SUBSCRIBER | PIDFD;

pub struct Poller {
    pub epoll: Epoll,
    next: Cell<u64>,
}

impl Poller {
    pub fn new() -> nix::Result<Poller> {
        Ok(Poller {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            next: Cell::new(0),
        })
    }

    /// A new token of `kind`.
    pub fn token(&self, kind: u64) -> u64 {
        self.next.set(self.next.get() + 1);
        kind | self.next.get()
    }

    pub fn add(&self, fd: BorrowedFd<'_>, flags: EpollFlags, token: u64) -> nix::Result<()> {
        self.epoll.add(fd, EpollEvent::new(flags, token))
    }

    /// Stops watching `fd` (closing it would too, unless it is shared).
    pub fn delete(&self, fd: BorrowedFd<'_>) {
        let _ = self.epoll.delete(fd);
    }
}
