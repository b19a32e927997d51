//! Appends timestamped lines to a service's log file and rotates it by size.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{rotated_path, timestamp, KEEP, MAX_BYTES};

#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    /// Opened on the first line, so services that never print cost no descriptor.
    file: Option<File>,
    /// Bytes in the file, not counting `pending`.
    size: u64,
    /// Records not written yet (see `buffer_line` and `flush`).
    pending: Vec<u8>,
}

impl LogFile {
    pub fn new(path: PathBuf) -> Self {
        LogFile {
            path,
            file: None,
            size: 0,
            pending: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `TIMESTAMP LINE\n` (the line without its newline).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let stamp = timestamp::rfc3339(SystemTime::now());
        self.buffer_line(line, &stamp)?;
        self.flush()
    }

    /// Adds `STAMP LINE\n` to what `flush` writes in one go (a pipe's read
    /// holds many lines: one write for all of them), rotating first if the
    /// file would grow past its size.
    pub fn buffer_line(&mut self, line: &[u8], stamp: &str) -> io::Result<()> {
        let record = stamp.len() + line.len() + 2;
        let size = self.size + self.pending.len() as u64;
        if size > 0 && size + record as u64 > MAX_BYTES {
            self.flush()?;
            self.rotate()?;
        }
        self.pending.extend_from_slice(stamp.as_bytes());
        self.pending.push(b' ');
        self.pending.extend_from_slice(line);
        self.pending.push(b'\n');
        Ok(())
    }

    /// Writes the buffered lines. On error they are dropped: a full or
    /// broken disk must not grow the daemon's memory.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o640)
                    .open(&self.path)?;
                self.size = file.metadata()?.len();
                self.file.insert(file)
            }
        };
        let written = file.write_all(&pending);
        self.size += pending.len() as u64;
        // Keep the allocation for the next batch.
        self.pending = pending;
        self.pending.clear();
        written
    }

    /// NAME.log.2 -> .3, .1 -> .2, NAME.log -> .1; the next line opens a fresh file.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        for n in (0..KEEP).rev() {
            match fs::rename(rotated_path(&self.path, n), rotated_path(&self.path, n + 1)) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
        self.size = 0;
        Ok(())
    }

    /// Closes the file (reopened on the next line), e.g. once a service is removed.
    pub fn close(&mut self) {
        self.file = None;
    }
}

/// Splits a stream of bytes into lines; a partial line waits for its end, up to
/// a bound past which it is written as a line of its own.
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

const MAX_LINE: usize = 16 * 1024;

impl LineBuffer {
    /// Feeds bytes; calls `emit` once per complete line (without the newline).
    pub fn feed(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&[u8])) {
        while let Some(pos) = bytes.iter().position(|&b| b == b'\n') {
            if self.pending.is_empty() {
                emit(&bytes[..pos]);
            } else {
                self.pending.extend_from_slice(&bytes[..pos]);
                emit(&self.pending);
                self.pending.clear();
            }
            bytes = &bytes[pos + 1..];
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= MAX_LINE {
            emit(&self.pending);
            self.pending.clear();
        }
    }

    /// The start of a line not ended yet.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// At end of stream: the unterminated last line, if any.
    pub fn finish(&mut self, emit: impl FnOnce(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_reads() {
        let mut buffer = LineBuffer::default();
        let mut lines = Vec::new();
        buffer.feed(b"one\ntw", |l| lines.push(l.to_vec()));
        buffer.feed(b"o\nthree", |l| lines.push(l.to_vec()));
        buffer.finish(|l| lines.push(l.to_vec()));
        assert_eq!(
            lines,
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
    }

    #[test]
    fn rotates_by_size_and_keeps_three() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.log");
        let mut log = LogFile::new(path.clone());
        let line = vec![b'x'; 1000];
        for _ in 0..(5 * MAX_BYTES / 1000) {
            log.write_line(&line).unwrap();
        }
        for n in 0..=KEEP {
            let size = fs::metadata(rotated_path(&path, n)).unwrap().len();
            assert!(size <= MAX_BYTES, "file {n} has {size} bytes");
        }
        assert!(!rotated_path(&path, KEEP + 1).exists());
        let text = fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.ends_with(&"x".repeat(1000)));
        assert!(
            first.starts_with("20") && first.as_bytes()[23] == b'Z',
            "{first}"
        );
    }
}
