//! Progress of a long import, reported as bytes of the source read.

use std::cell::Cell;
use std::io::{self, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    /// None when the size is not known in advance (a directory being copied).
    pub total: Option<u64>,
}

pub type ProgressFn<'a> = dyn Fn(Progress) + 'a;

/// Reports after every `STEP` bytes, so the callback stays cheap.
const STEP: u64 = 1 << 20;

pub(crate) struct Counter<'a> {
    progress: &'a ProgressFn<'a>,
    total: Option<u64>,
    done: Cell<u64>,
    reported: Cell<u64>,
}

impl<'a> Counter<'a> {
    pub(crate) fn new(progress: &'a ProgressFn<'a>, total: Option<u64>) -> Self {
        Counter {
            progress,
            total,
            done: Cell::new(0),
            reported: Cell::new(0),
        }
    }

    pub(crate) fn add(&self, n: u64) {
        let done = self.done.get() + n;
        self.done.set(done);
        if done - self.reported.get() >= STEP || Some(done) == self.total {
            self.reported.set(done);
            (self.progress)(Progress {
                done,
                total: self.total,
            });
        }
    }

    pub(crate) fn wrap<R: Read>(&self, inner: R) -> Counted<'_, 'a, R> {
        Counted {
            inner,
            counter: self,
        }
    }
}

pub(crate) struct Counted<'c, 'a, R> {
    inner: R,
    counter: &'c Counter<'a>,
}

impl<R: Read> Read for Counted<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.add(n as u64);
        Ok(n)
    }
}
