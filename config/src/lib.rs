//! The appliance's service list (YAML): typed, validated, with errors that name
//! file, line and column.
//!
//! The text is parsed into a tree that keeps every node's position
//! ([`tree`]), then read key by key into [`types`]; each problem is collected
//! with its position rather than stopping at the first one.

mod capabilities;
mod dependencies;
mod depends;
mod devices;
mod diagnostic;
mod file;
mod healthcheck;
mod names;
mod network;
mod paths;
mod read;
mod security;
mod service;
mod suggest;
mod system;
mod tree;
pub mod types;
mod units;
mod userns;

use std::path::{Path, PathBuf};

pub use capabilities::{Capabilities, CAPABILITY_NAMES};
pub use diagnostic::{Diagnostic, Errors};
pub use healthcheck::{Healthcheck, OnUnhealthy};
pub use names::is_image_name;
pub use network::{link_prefix, routes, stable_hash, DEFAULT_RANGE};
pub use suggest::did_you_mean;
pub use system::{
    System, SystemMount, Watchdog, DEFAULT_WATCHDOG_DEVICE, DEFAULT_WATCHDOG_TIMEOUT,
};
pub use types::*;
/// `100ms`, `1.5s`, `10s`, `2m`, `1h`, as the file's durations (for the CLI's).
pub use units::duration as parse_duration;
pub use units::MAX_DURATION;

use diagnostic::{Mark, Report};

/// Reads, parses and validates the file at `path`. Diagnostics name `path`
/// as given; a file that cannot be read gives one diagnostic with line 0.
pub fn load(path: &Path) -> Result<Config, Errors> {
    match std::fs::read(path) {
        Ok(bytes) => parse_bytes(&bytes, path),
        Err(err) => Err(Errors(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read: {err}"),
        }])),
    }
}

/// Parses and validates `bytes` as the file at `path` (which locates relative
/// paths in it), refusing text that is not UTF-8 with the position where it stops.
pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<Config, Errors> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_str(text, path),
        Err(err) => {
            let valid = std::str::from_utf8(&bytes[..err.valid_up_to()]).unwrap_or_default();
            let line = valid.matches('\n').count() + 1;
            let column = valid
                .rsplit('\n')
                .next()
                .map_or(0, |last| last.chars().count())
                + 1;
            let mut report = Report::new(path);
            report.error(Mark { line, column }, "not UTF-8 text");
            Err(report.into_errors())
        }
    }
}

/// Parses and validates `text` as the file at `path`. Nothing is read but the
/// paths the file names (image directories, mount sources must exist).
pub fn parse_str(text: &str, path: &Path) -> Result<Config, Errors> {
    let mut report = Report::new(path);
    let root = tree::parse(text, &mut report);
    // A syntax error leaves nothing to validate.
    if !report.is_clean() && root.is_none() {
        return Err(report.into_errors());
    }
    let config = file::read(&mut report, root.as_ref(), absolute(path));
    if report.is_clean() {
        Ok(config)
    } else {
        Err(report.into_errors())
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| Path::new("/").join(path))
}
