//! Service logs: `state_dir/logs/NAME.log`, one timestamped line per line of the
//! service's stdout and stderr, rotated by size into `NAME.log.1` .. `NAME.log.3`.

pub mod escape;
pub mod merged;
pub mod reader;
pub mod timestamp;
pub mod writer;

use std::path::{Path, PathBuf};

/// A log file is rotated once it grows past this size.
pub const MAX_BYTES: u64 = 1024 * 1024;
/// How many rotated files are kept besides the live one.
pub const KEEP: usize = 3;

pub fn log_path(dir: &Path, service: &str) -> PathBuf {
    dir.join(format!("{service}.log"))
}

/// `NAME.log.N`; N = 0 is the live file.
pub fn rotated_path(live: &Path, n: usize) -> PathBuf {
    if n == 0 {
        return live.to_path_buf();
    }
    let mut name = live.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}
