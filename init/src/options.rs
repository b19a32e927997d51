//! Command line: `init [OPTIONS] [--] COMMAND [ARGS...]`, parsed by hand to keep
//! the binary small. Parsing stops at the first non-option so that the
//! command's own options are left alone. Arguments are bytes: the command's
//! are passed on verbatim, whatever their encoding.

use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};
use core::fmt;
use core::time::Duration;

use crate::logger::Quoted;

pub const USAGE: &str = "\
Usage: init [OPTIONS] [--] COMMAND [ARGS...]

Runs COMMAND as its child, reaps every zombie, forwards signals to the child
and exits with the child's exit code (128+N if the child was killed by signal N).
When the child exits, the remaining processes get SIGTERM, then SIGKILL after
the grace period.

Options:
  -g, --process-group            forward signals to the child's whole process group
  -e, --expect-exit CODE         treat exit code CODE as 0 (repeatable)
  -p, --parent-death-signal SIG  signal init receives when its parent dies
      --grace DURATION           time the leftovers get between SIGTERM and SIGKILL
                                 (default 5s; units ms, s, m; plain number = seconds)
      --hold-fd FD               keep FD open, unused, for init's lifetime (not
                                 passed to COMMAND; repeatable)
      --status-fd FD             write init's exit code there (decimal) before exiting
  -h, --help                     print this help
  -V, --version                  print the version

Environment:
  INIT_LOG=LEVEL                 log verbosity: off, error, warn (default), info,
                                 debug, trace
";

/// What the user asked for.
#[derive(Debug, PartialEq)]
pub enum Request {
    Run(Options),
    Help,
    Version,
}

#[derive(Debug, PartialEq)]
pub struct Options {
    /// Index in the argument list (argv[0] = init) where the command starts.
    pub command: usize,
    pub process_group: bool,
    pub expected_exits: Vec<i32>,
    pub parent_death_signal: Option<i32>,
    pub grace: Duration,
    /// Held open (close-on-exec) for a supervisor to take back (pidfd_getfd).
    pub held_fds: Vec<i32>,
    /// Where the exit code is written before exiting.
    pub status_fd: Option<i32>,
}

/// A bad command line; init exits with 2 after printing it.
#[derive(Debug, PartialEq)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses `args`, where `args[0]` is init's own name.
pub fn parse(args: &[&[u8]]) -> Result<Request, UsageError> {
    let mut options = Options {
        command: args.len(),
        process_group: false,
        expected_exits: vec![],
        parent_death_signal: None,
        grace: Duration::from_secs(5),
        held_fds: vec![],
        status_fd: None,
    };
    let mut next = 1;
    while let Some(&arg) = args.get(next) {
        next += 1;
        if arg == b"--" {
            options.command = next;
            break;
        }
        if arg.len() < 2 || arg[0] != b'-' {
            options.command = next - 1;
            break;
        }
        let (name, inline) = split_value(arg);
        let mut value = |what: &str| -> Result<&str, UsageError> {
            let value = match inline {
                Some(value) => value,
                None => {
                    next += 1;
                    *args.get(next - 1).ok_or_else(|| {
                        UsageError(format!("option {} needs {what}", Quoted(name)))
                    })?
                }
            };
            core::str::from_utf8(value)
                .map_err(|_| UsageError(format!("invalid {what} {}", Quoted(value))))
        };
        match name {
            b"-h" | b"--help" => return Ok(Request::Help),
            b"-V" | b"--version" => return Ok(Request::Version),
            b"-g" | b"--process-group" if inline.is_none() => options.process_group = true,
            b"-e" | b"--expect-exit" => {
                let text = value("an exit code")?;
                let code: u8 = text
                    .parse()
                    .map_err(|_| UsageError(format!("invalid exit code {text:?} (0-255)")))?;
                options.expected_exits.push(code.into());
            }
            b"-p" | b"--parent-death-signal" => {
                let text = value("a signal")?;
                let signal = crate::signals::parse(text)
                    .ok_or_else(|| UsageError(format!("unknown signal {text:?}")))?;
                options.parent_death_signal = Some(signal);
            }
            b"--grace" => {
                let text = value("a duration")?;
                options.grace = parse_duration(text).ok_or_else(|| {
                    UsageError(format!("invalid duration {text:?} (e.g. 500ms, 2s)"))
                })?;
            }
            b"--hold-fd" | b"--status-fd" => {
                let text = value("a file descriptor")?;
                let fd: u16 = text
                    .parse()
                    .map_err(|_| UsageError(format!("invalid file descriptor {text:?}")))?;
                if name == b"--hold-fd" {
                    options.held_fds.push(fd.into());
                } else {
                    options.status_fd = Some(fd.into());
                }
            }
            _ => return Err(UsageError(format!("unknown option {}", Quoted(arg)))),
        }
    }
    if options.command >= args.len() {
        return Err(UsageError("no command given".into()));
    }
    Ok(Request::Run(options))
}

/// Splits `--name=value` and `-xVALUE` into the option name and its inline value.
fn split_value(arg: &[u8]) -> (&[u8], Option<&[u8]>) {
    if arg.starts_with(b"--") {
        return match arg.iter().position(|&b| b == b'=') {
            Some(eq) => (&arg[..eq], Some(&arg[eq + 1..])),
            None => (arg, None),
        };
    }
    match arg.split_at(2) {
        (name, []) => (name, None),
        (name, value) => (name, Some(value)),
    }
}

/// `500ms`, `2s`, `1m`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    match &text[digits..] {
        "ms" => Some(Duration::from_millis(number)),
        "" | "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number.checked_mul(60)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Request, UsageError> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        parse(&args)
    }

    fn options(args: &[&str]) -> Options {
        match run(args) {
            Ok(Request::Run(options)) => options,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn command_starts_at_first_non_option_or_after_double_dash() {
        assert_eq!(options(&["init", "ls", "-l"]).command, 1);
        assert_eq!(options(&["init", "-g", "--", "-weird"]).command, 3);
        assert_eq!(options(&["init", "-e", "3", "sh"]).command, 3);
        assert_eq!(options(&["init", "-", "x"]).command, 1);
    }

    #[test]
    fn values_inline_or_separate() {
        let o = options(&[
            "init",
            "-e3",
            "--expect-exit=4",
            "-e",
            "5",
            "-pTERM",
            "--grace=500ms",
            "x",
        ]);
        assert_eq!(o.expected_exits, [3, 4, 5]);
        assert_eq!(o.parent_death_signal, Some(libc::SIGTERM));
        assert_eq!(o.grace, Duration::from_millis(500));
        let o = options(&[
            "init",
            "--parent-death-signal",
            "sigkill",
            "--grace",
            "2",
            "x",
        ]);
        assert_eq!(o.parent_death_signal, Some(libc::SIGKILL));
        assert_eq!(o.grace, Duration::from_secs(2));
        assert!(options(&["init", "--process-group", "x"]).process_group);
        let o = options(&[
            "init",
            "--hold-fd",
            "7",
            "--hold-fd=9",
            "--status-fd",
            "8",
            "x",
        ]);
        assert_eq!(o.held_fds, [7, 9]);
        assert_eq!(o.status_fd, Some(8));
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        for args in [
            &["init"][..],
            &["init", "-g"],
            &["init", "--"],
            &["init", "-x", "sh"],
            &["init", "-gx", "sh"],
            &["init", "-e"],
            &["init", "-e", "256", "sh"],
            &["init", "-p", "NOPE", "sh"],
            &["init", "--grace", "5h", "sh"],
            &["init", "--hold-fd", "x", "sh"],
            &["init", "--status-fd", "-1", "sh"],
        ] {
            assert!(run(args).is_err(), "{args:?}");
        }
        assert_eq!(run(&["init", "--help", "x"]), Ok(Request::Help));
        assert_eq!(run(&["init", "-V"]), Ok(Request::Version));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("ms"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}
