//! Reading a service's log on the client side: the whole log or its last lines
//! across the rotated files, and following it as it grows (inotify, no polling).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::{rotated_path, KEEP};

/// Writes the log (oldest rotated file first), or only its last `lines` lines.
/// Returns the live file (if there is one) positioned where the reading
/// stopped, for `follow` to go on from there without losing a line.
pub fn print(live: &Path, lines: Option<usize>, out: &mut impl Write) -> io::Result<Option<File>> {
    let mut text = Vec::new();
    let mut live_file = None;
    for n in (0..=KEEP).rev() {
        match File::open(rotated_path(live, n)) {
            Ok(mut file) => {
                file.read_to_end(&mut text)?;
                if n == 0 {
                    live_file = Some(file);
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    out.write_all(last_lines(&text, lines))?;
    Ok(live_file)
}

/// The tail of `text` holding its last `lines` lines (all of it for None).
fn last_lines(text: &[u8], lines: Option<usize>) -> &[u8] {
    let Some(wanted) = lines else { return text };
    if wanted == 0 {
        return &[];
    }
    // Skip the final newline, then find the wanted-th newline from the end.
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, &b) in body.iter().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == wanted {
                return &text[i + 1..];
            }
        }
    }
    text
}

/// How often `follow` asks whether to go on while the log is quiet.
pub const CHECK_INTERVAL_MS: u16 = 500;

/// After `print`: writes what is appended to the live file from where `print`
/// stopped (`from`, None: there was no file yet), across rotations, until
/// writing fails (the reader went away), an error, or `keep_going` (asked
/// every `CHECK_INTERVAL_MS` while nothing is written) says no: then what
/// was written last is printed and it returns.
pub fn follow(
    live: &Path,
    from: Option<File>,
    out: &mut impl Write,
    mut keep_going: impl FnMut() -> bool,
) -> io::Result<()> {
    let dir = live.parent().unwrap_or(Path::new("."));
    let name = live.file_name().unwrap_or_default().to_os_string();
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC)?;
    inotify.add_watch(
        dir,
        AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO,
    )?;
    let mut file = from;
    // What was written, or rotated, before the watch existed is caught up first.
    let mut rotated = true;
    loop {
        if let Some(file) = &mut file {
            copy_new(file, out)?;
        }
        if rotated && !is_live(file.as_ref(), live)? {
            // The old file (now NAME.log.1) is drained; read the new one from its start.
            file = File::open(live).ok();
            if let Some(file) = &mut file {
                copy_new(file, out)?;
            }
        }
        rotated = false;
        if !wait_readable(&inotify)? {
            if keep_going() {
                continue;
            }
            if let Some(file) = &mut file {
                copy_new(file, out)?;
            }
            return Ok(());
        }
        for event in inotify.read_events()? {
            if event.name.as_deref() != Some(OsStr::new(&name)) {
                continue;
            }
            if event.mask.intersects(
                AddWatchFlags::IN_CREATE
                    | AddWatchFlags::IN_MOVED_FROM
                    | AddWatchFlags::IN_MOVED_TO,
            ) {
                rotated = true;
            }
        }
        rotated |= file.is_none();
    }
}

/// Waits up to `CHECK_INTERVAL_MS` for an event; false on timeout.
pub(super) fn wait_readable(inotify: &Inotify) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(CHECK_INTERVAL_MS)) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Whether `file` is the one at `live` now (not rotated away); a missing
/// live file is not.
fn is_live(file: Option<&File>, live: &Path) -> io::Result<bool> {
    let Some(file) = file else { return Ok(false) };
    let ours = file.metadata()?;
    match std::fs::metadata(live) {
        Ok(now) => Ok(now.dev() == ours.dev() && now.ino() == ours.ino()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

fn copy_new(file: &mut File, out: &mut impl Write) -> io::Result<()> {
    io::copy(file, out)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_counts_from_the_end() {
        let text = b"a\nb\nc\n";
        assert_eq!(last_lines(text, Some(2)), b"b\nc\n");
        assert_eq!(last_lines(text, Some(5)), text);
        assert_eq!(last_lines(text, Some(0)), b"");
        assert_eq!(last_lines(text, None), text);
        assert_eq!(last_lines(b"a\nb", Some(1)), b"b");
    }

    #[test]
    fn prints_rotated_files_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("web.log");
        std::fs::write(rotated_path(&live, 2), "1\n").unwrap();
        std::fs::write(rotated_path(&live, 1), "2\n").unwrap();
        std::fs::write(&live, "3\n4\n").unwrap();
        let mut out = Vec::new();
        print(&live, None, &mut out).unwrap();
        assert_eq!(out, b"1\n2\n3\n4\n");
        out.clear();
        print(&live, Some(3), &mut out).unwrap();
        assert_eq!(out, b"2\n3\n4\n");
    }

    #[test]
    fn following_goes_on_where_print_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("web.log");
        std::fs::write(&live, "1\n").unwrap();
        let mut file = print(&live, None, &mut Vec::new()).unwrap().unwrap();
        // Written after print, before follow watches: must not be lost.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&live)
            .unwrap()
            .write_all(b"2\n")
            .unwrap();
        let mut out = Vec::new();
        copy_new(&mut file, &mut out).unwrap();
        assert_eq!(out, b"2\n");
        assert!(is_live(Some(&file), &live).unwrap());
        std::fs::rename(&live, rotated_path(&live, 1)).unwrap();
        assert!(!is_live(Some(&file), &live).unwrap());
    }
}
