//! The console: where PID 1 reports each boot and shutdown step (one line
//! each, as finit and systemd do), and where services with `log_console: true`
//! copy their output.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use nix::fcntl::{fcntl, FcntlArg};

/// Opened once, non-blocking: a slow serial line drops lines rather than stall the daemon.
static CONSOLE: Mutex<Option<File>> = Mutex::new(None);

/// A step done: `supervisor: [ OK ] what`.
pub fn step(what: &str) {
    let _ = writeln!(std::io::stderr(), "supervisor: [ OK ] {what}");
}

/// A step that failed (the boot goes on).
pub fn failed(what: &str) {
    let _ = writeln!(std::io::stderr(), "supervisor: [FAIL] {what}");
}

/// Gives PID 1 stdin, stdout and stderr on /dev/console where the kernel
/// could not (an initramfs without /dev/console).
pub fn attach_stdio() {
    let missing: Vec<i32> = (0..3)
        .filter(|fd| fcntl(*fd, FcntlArg::F_GETFD).is_err())
        .collect();
    if missing.is_empty() {
        return;
    }
    let Ok(console) = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/console")
    else {
        return;
    };
    let raw = console.into_raw_fd();
    for fd in missing {
        if fd != raw {
            let _ = nix::unistd::dup2(raw, fd);
        }
    }
    if raw > 2 {
        let _ = nix::unistd::close(raw);
    }
}

/// One line of a service's output on the console: `NAME | line`. Dropped
/// when the console cannot take it now.
pub fn service_line(service: &str, line: &[u8]) {
    let Ok(mut console) = CONSOLE.lock() else {
        return;
    };
    if console.is_none() {
        *console = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open("/dev/console")
            .ok();
    }
    let Some(file) = console.as_mut() else {
        return;
    };
    let mut text = Vec::with_capacity(service.len() + line.len() + 4);
    text.extend_from_slice(service.as_bytes());
    text.extend_from_slice(b" | ");
    text.extend_from_slice(line);
    text.push(b'\n');
    // One write: a line goes whole or not at all (EAGAIN on a full console).
    let _ = nix::unistd::write(&*file, &text);
}
