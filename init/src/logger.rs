//! Output: one-line errors that are always shown, and log lines whose
//! verbosity the INIT_LOG environment variable sets (off, error, warn
//! (default), info, debug, trace). Hand-written instead of the `log` crate:
//! that crate pulls std in when other workspace members enable its `std`
//! feature, and std alone would push init over its size budget.

use alloc::format;
use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::sys;

pub const WARN: u8 = 2;
pub const INFO: u8 = 3;
pub const DEBUG: u8 = 4;
pub const TRACE: u8 = 5;

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

static LEVEL: AtomicU8 = AtomicU8::new(WARN);

pub fn init() {
    if let Some(value) = sys::getenv(c"INIT_LOG") {
        let level = LEVELS
            .iter()
            .position(|name| value.eq_ignore_ascii_case(name.as_bytes()));
        match level {
            Some(level) => LEVEL.store(level as u8, Ordering::Relaxed),
            None => line(format_args!(
                "init: warn: INIT_LOG={} is not a level, using warn",
                Quoted(value)
            )),
        }
    }
}

pub fn enabled(level: u8) -> bool {
    level <= LEVEL.load(Ordering::Relaxed)
}

/// Writes one line to stderr with a single write, so it does not interleave.
pub fn line(args: fmt::Arguments) {
    sys::write_all(2, format!("{args}\n").as_bytes());
}

pub fn log(level: u8, args: fmt::Arguments) {
    line(format_args!("init: {}: {args}", LEVELS[level as usize]));
}

/// Displays bytes that may not be UTF-8 (a command name) in quotes, with
/// anything unprintable escaped.
pub struct Quoted<'a>(pub &'a [u8]);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// An error for the user: always shown, "init: " in front.
macro_rules! error_line {
    ($($arg:tt)*) => { $crate::logger::line(format_args!("init: {}", format_args!($($arg)*))) };
}

macro_rules! log_at {
    ($level:expr, $($arg:tt)*) => {
        if $crate::logger::enabled($level) {
            $crate::logger::log($level, format_args!($($arg)*))
        }
    };
}

macro_rules! warn { ($($arg:tt)*) => { log_at!($crate::logger::WARN, $($arg)*) }; }
macro_rules! info { ($($arg:tt)*) => { log_at!($crate::logger::INFO, $($arg)*) }; }
macro_rules! debug { ($($arg:tt)*) => { log_at!($crate::logger::DEBUG, $($arg)*) }; }
macro_rules! trace { ($($arg:tt)*) => { log_at!($crate::logger::TRACE, $($arg)*) }; }
