//! `supervisor logs` without a name: every service's log in `state_dir/logs`,
//! lines interleaved by their timestamps, each led by `NAME | ` (as
//! `docker compose logs`); `-f` goes on with every log, new ones included.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::reader::{self, wait_readable};
use super::{log_path, KEEP};

/// (timestamp, service, the line with its newline).
type Line = (Vec<u8>, String, Vec<u8>);

/// One service's live log while following.
struct Followed {
    live: PathBuf,
    file: Option<File>,
    /// The start of a line not yet complete.
    partial: Vec<u8>,
}

/// Prints the last `lines` lines of every service's log (all without),
/// merged by time; with `follow`, then what they append, until `keep_going`
/// says no (asked while the logs are quiet) or writing fails.
pub fn print_all(
    dir: &Path,
    lines: Option<usize>,
    follow: bool,
    mut keep_going: impl FnMut() -> bool,
    out: &mut impl Write,
) -> io::Result<()> {
    let inotify = if follow {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC)?;
        inotify.add_watch(
            dir,
            AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO,
        )?;
        Some(inotify)
    } else {
        None
    };
    let mut followed: BTreeMap<String, Followed> = BTreeMap::new();
    let mut batch = Vec::new();
    for name in service_names(dir)? {
        let live = log_path(dir, &name);
        let mut text = Vec::new();
        let file = reader::print(&live, lines, &mut text)?;
        batch.extend(split_lines(&name, &text));
        followed.insert(
            name,
            Followed {
                live,
                file,
                partial: Vec::new(),
            },
        );
    }
    let mut width = followed.keys().map(String::len).max().unwrap_or(0);
    write_batch(&mut batch, width, out)?;
    let Some(inotify) = inotify else {
        return Ok(());
    };
    loop {
        for name in service_names(dir)? {
            followed.entry(name.clone()).or_insert_with(|| Followed {
                live: log_path(dir, &name),
                file: None,
                partial: Vec::new(),
            });
        }
        width = width.max(followed.keys().map(String::len).max().unwrap_or(0));
        for (name, log) in &mut followed {
            let mut new = Vec::new();
            read_new(log, &mut new)?;
            log.partial.extend_from_slice(&new);
            if let Some(end) = log.partial.iter().rposition(|&b| b == b'\n') {
                let complete: Vec<u8> = log.partial.drain(..=end).collect();
                batch.extend(split_lines(name, &complete));
            }
        }
        write_batch(&mut batch, width, out)?;
        if wait_readable(&inotify)? {
            let _ = inotify.read_events()?;
        } else if !keep_going() {
            return Ok(());
        }
    }
}

/// What was appended to a live log since the last read, across a rotation.
fn read_new(log: &mut Followed, into: &mut Vec<u8>) -> io::Result<()> {
    if let Some(file) = &mut log.file {
        file.read_to_end(into)?;
    }
    let current = log.file.as_ref().map(|f| f.metadata()).transpose()?;
    let replaced = match (current, std::fs::metadata(&log.live)) {
        (Some(ours), Ok(now)) => {
            use std::os::unix::fs::MetadataExt;
            (ours.dev(), ours.ino()) != (now.dev(), now.ino())
        }
        (None, Ok(_)) => true,
        (_, Err(_)) => false,
    };
    if replaced {
        log.file = File::open(&log.live).ok();
        if let Some(file) = &mut log.file {
            file.read_to_end(into)?;
        }
    }
    Ok(())
}

/// The services with a log in `dir` (`NAME.log` or `NAME.log.N`), sorted.
fn service_names(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut names = Vec::new();
    for entry in entries {
        let file_name = entry?.file_name();
        let file_name = file_name.to_string_lossy();
        let service = (0..=KEEP).find_map(|n| match n {
            0 => file_name.strip_suffix(".log"),
            n => file_name.strip_suffix(&format!(".log.{n}")),
        });
        if let Some(service) = service.filter(|s| !s.is_empty()) {
            names.push(service.to_string());
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Each line of `text`, of service `name`.
fn split_lines(name: &str, text: &[u8]) -> Vec<Line> {
    text.split_inclusive(|&b| b == b'\n')
        .map(|line| {
            let stamp = line.split(|&b| b == b' ').next().unwrap_or_default();
            (stamp.to_vec(), name.to_string(), line.to_vec())
        })
        .collect()
}

/// Writes the lines in time order (RFC 3339 UTC stamps of one width sort
/// as text; a stable sort keeps each log's own order), each after its
/// service's name.
fn write_batch(batch: &mut Vec<Line>, width: usize, out: &mut impl Write) -> io::Result<()> {
    batch.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, name, line) in batch.drain(..) {
        write!(out, "{name:<width$} | ")?;
        out.write_all(&line)?;
        if !line.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_interleave_by_time_with_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("web.log"),
            "2026-01-01T00:00:01.000Z a\n2026-01-01T00:00:03.000Z c\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("db.log.1"),
            "2026-01-01T00:00:00.000Z old\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("db.log"), "2026-01-01T00:00:02.000Z b\n").unwrap();
        let mut out = Vec::new();
        print_all(dir.path(), None, false, || false, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "db  | 2026-01-01T00:00:00.000Z old\n\
             web | 2026-01-01T00:00:01.000Z a\n\
             db  | 2026-01-01T00:00:02.000Z b\n\
             web | 2026-01-01T00:00:03.000Z c\n"
        );
    }
}
