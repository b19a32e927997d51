//! Reading a service's log on the client side: the whole log or its last lines
//! across the rotated files, and following it as it grows (inotify, no polling).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::{rotated_path, KEEP};

/// Writes the log (oldest rotated file first), or only its last `lines` lines.
pub fn print(live: &Path, lines: Option<usize>, out: &mut impl Write) -> io::Result<()> {
    let mut text = Vec::new();
    for n in (0..=KEEP).rev() {
        match File::open(rotated_path(live, n)) {
            Ok(mut file) => {
                file.read_to_end(&mut text)?;
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    out.write_all(last_lines(&text, lines))
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

/// After `print`: writes what is appended to the live file from now on, across
/// rotations, until writing fails (the reader went away) or an error.
pub fn follow(live: &Path, out: &mut impl Write) -> io::Result<()> {
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
    // Start at the current end: print() already showed what is there.
    let mut file = open_at_end(live)?;
    loop {
        let mut rotated = false;
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
        if let Some(file) = &mut file {
            copy_new(file, out)?;
        }
        if rotated || file.is_none() {
            // The old file (now NAME.log.1) is drained; read the new one from its start.
            file = File::open(live).ok();
            if let Some(file) = &mut file {
                copy_new(file, out)?;
            }
        }
    }
}

fn open_at_end(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(mut file) => {
            file.seek(SeekFrom::End(0))?;
            Ok(Some(file))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
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
}
