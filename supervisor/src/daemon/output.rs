//! Services' stdout and stderr: the read ends of their log pipes, and the log
//! files the lines go to (together with the daemon's own notes about them).

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;

use std::time::SystemTime;

use crate::logs::log_path;
use crate::logs::timestamp::rfc3339;
use crate::logs::writer::{LineBuffer, LogFile};

/// Lines the daemon itself writes into a service's log start with this.
pub const NOTE_PREFIX: &str = "[supervisor] ";

pub struct LogFiles {
    dir: PathBuf,
    files: HashMap<String, LogFile>,
    /// Services with `log_console: true`: their lines also go to the console.
    console: std::collections::HashSet<String>,
}

impl LogFiles {
    pub fn new(dir: PathBuf) -> Self {
        LogFiles {
            dir,
            files: HashMap::new(),
            console: std::collections::HashSet::new(),
        }
    }

    /// Whether `service`'s lines are copied to the console (`log_console`).
    pub fn set_console(&mut self, service: &str, on: bool) {
        match on {
            true => self.console.insert(service.to_string()),
            false => self.console.remove(service),
        };
    }

    pub fn path(&self, service: &str) -> PathBuf {
        log_path(&self.dir, service)
    }

    fn file(&mut self, service: &str) -> &mut LogFile {
        if !self.files.contains_key(service) {
            let file = LogFile::new(log_path(&self.dir, service));
            self.files.insert(service.to_string(), file);
        }
        self.files.get_mut(service).expect("inserted above")
    }

    pub fn write(&mut self, service: &str, line: &[u8]) {
        let file = self.file(service);
        if let Err(err) = file.write_line(line) {
            log::warn!("{}: {err}", file.path().display());
        }
    }

    /// A line of the service's output, written at the next `flush`.
    pub fn buffer(&mut self, service: &str, line: &[u8], stamp: &str) {
        if self.console.contains(service) {
            crate::boot::console_line(service, line);
        }
        let file = self.file(service);
        if let Err(err) = file.buffer_line(line, stamp) {
            log::warn!("{}: {err}", file.path().display());
        }
    }

    pub fn flush(&mut self, service: &str) {
        if let Some(file) = self.files.get_mut(service) {
            if let Err(err) = file.flush() {
                log::warn!("{}: {err}", file.path().display());
            }
        }
    }

    /// A note from the daemon about a service, in its log and in the daemon's.
    pub fn note(&mut self, service: &str, message: &str) {
        log::info!("{service}: {message}");
        self.write(service, format!("{NOTE_PREFIX}{message}").as_bytes());
    }

    /// Closes a removed service's file.
    pub fn forget(&mut self, service: &str) {
        if let Some(mut file) = self.files.remove(service) {
            file.close();
        }
    }
}

/// The daemon's end of one run's stdout+stderr pipe.
pub struct LogPipe {
    pub service: String,
    pub fd: OwnedFd,
    lines: LineBuffer,
}

impl LogPipe {
    pub fn new(service: String, fd: OwnedFd) -> Self {
        LogPipe {
            service,
            fd,
            lines: LineBuffer::default(),
        }
    }

    /// The start of a line read but not ended yet (kept across a reexec).
    pub fn pending(&self) -> &[u8] {
        self.lines.pending()
    }

    /// Continues a line an earlier daemon had begun to read (reexec).
    pub fn resume(&mut self, start: &[u8]) {
        self.lines.feed(start, |_| {});
    }

    /// Reads what is available (the fd is non-blocking) into the log. Returns
    /// false at end of stream, when every writer has gone.
    pub fn drain(&mut self, logs: &mut LogFiles) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        // A bounded number of reads per wakeup, so one chatty service cannot
        // starve the rest of the loop (epoll is level-triggered: we come back).
        let service = &self.service;
        let mut open = true;
        for _ in 0..8 {
            // Lines read together are stamped alike and written together.
            let stamp = rfc3339(SystemTime::now());
            match nix::unistd::read(self.fd.as_raw_fd(), &mut chunk) {
                Ok(0) => {
                    self.lines.finish(|line| logs.buffer(service, line, &stamp));
                    open = false;
                    break;
                }
                Ok(n) => self
                    .lines
                    .feed(&chunk[..n], |line| logs.buffer(service, line, &stamp)),
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(err) => {
                    log::warn!("{service}: reading its output: {err}");
                    open = false;
                    break;
                }
            }
        }
        logs.flush(service);
        open
    }
}
