//! Waiting for a state in cgroup.events: the kernel wakes poll() with POLLPRI
//! whenever the file changes, so there is no spinning.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::{fsops, Error};

/// Waits until `path` (a flat-keyed events file) says `key want`, or `deadline` passes.
/// Returns whether the state was reached.
pub(crate) fn wait_for(
    path: &Path,
    key: &str,
    want: &str,
    deadline: Instant,
) -> Result<bool, Error> {
    let mut file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut text = String::new();
    loop {
        // Reading re-arms the notification: a change after this read wakes the poll below.
        text.clear();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text))
            .map_err(|e| Error::io("read", path, e))?;
        if fsops::keyed(&text, key) == Some(want) {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        // Round up so that a sub-millisecond remainder still sleeps.
        let millis = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLPRI)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::io("poll", path, e.into())),
        }
    }
}
