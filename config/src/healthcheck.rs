//! A service's `healthcheck:`, with Compose's keys and forms: `test` as
//! `["CMD", ARG...]`, `["CMD-SHELL", LINE]`, a plain list (the argv) or a
//! string (run by `/bin/sh -c`); `disable: true` or `test: ["NONE"]` for none.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::diagnostic::Report;
use crate::read::{boolean, scalar, string, Fields};
use crate::tree::{Node, Value};
use crate::types::RestartPolicy;
use crate::units;

const KEYS: &[&str] = &[
    "test",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "on_unhealthy",
    "disable",
];

/// Compose's (and Docker's) defaults.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_RETRIES: u32 = 3;

/// A health check, run inside the service every `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// argv; a string (or `CMD-SHELL`) becomes `["/bin/sh", "-c", LINE]`.
    pub test: Vec<String>,
    /// From the end of one check to the start of the next (and from the
    /// start of the run to the first check).
    pub interval: Duration,
    /// A check still running after this is killed and counts as failed.
    pub timeout: Duration,
    /// Consecutive failures that make the service unhealthy.
    pub retries: u32,
    /// Failures within this time after the start do not count (a success
    /// ends it early).
    pub start_period: Duration,
    pub on_unhealthy: OnUnhealthy,
}

/// What the daemon does when the service becomes unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnhealthy {
    /// Restart it (counted as an automatic restart).
    Restart,
    /// Only report it.
    None,
}

/// Reads `healthcheck:`; None when absent from the node or disabled. The
/// default of `on_unhealthy` is `restart`, `none` for a `restart: never` service.
pub fn read(report: &mut Report, node: &Node, restart: RestartPolicy) -> Option<Healthcheck> {
    let fields = Fields::of(report, node, KEYS, "healthcheck")?;
    let disabled = fields.read(report, "disable", boolean).unwrap_or(false);
    if disabled {
        if let Some(entry) = fields.get("test") {
            report.error(
                entry.key_mark,
                "healthcheck: `disable: true` and `test` cannot be combined",
            );
        }
        return None;
    }
    // Every key is checked, even when `test` is wrong or missing.
    let test = match fields.node("test") {
        Some(test_node) => test(report, test_node),
        None => {
            report.error(
                node.mark,
                "healthcheck: `test` is missing (or set `disable: true`)",
            );
            None
        }
    };
    let duration = || scalar(units::duration, "a duration such as 200ms, 5s or 1m");
    let positive = |report: &mut Report, key: &str, default: Duration| {
        let value = fields.read(report, key, duration())?;
        if value.is_zero() {
            let mark = fields.node(key).expect("read above").mark;
            report.error(mark, format!("{key}: must be longer than 0"));
            return Some(default);
        }
        Some(value)
    };
    let interval = positive(report, "interval", DEFAULT_INTERVAL).unwrap_or(DEFAULT_INTERVAL);
    let timeout = positive(report, "timeout", DEFAULT_TIMEOUT).unwrap_or(DEFAULT_TIMEOUT);
    let retries = fields
        .read(
            report,
            "retries",
            scalar(
                |t| units::number_in(t, 1, u64::from(u32::MAX)),
                "a number of at least 1",
            ),
        )
        .map_or(DEFAULT_RETRIES, |n| n as u32);
    let start_period = fields
        .read(report, "start_period", duration())
        .unwrap_or_default();
    let default_action = match restart {
        RestartPolicy::Never => OnUnhealthy::None,
        _ => OnUnhealthy::Restart,
    };
    let on_unhealthy = fields
        .read(
            report,
            "on_unhealthy",
            scalar(crate::read::choice, "restart or none"),
        )
        .unwrap_or(default_action);
    Some(Healthcheck {
        test: test?,
        interval,
        timeout,
        retries,
        start_period,
        on_unhealthy,
    })
}

/// The argv of `test`; None when it is `["NONE"]` or wrong (reported).
fn test(report: &mut Report, node: &Node) -> Option<Vec<String>> {
    let shell = |line: String| vec!["/bin/sh".to_owned(), "-c".to_owned(), line];
    let list = match &node.value {
        Value::Scalar(line) if line.trim().is_empty() => {
            report.error(node.mark, "test: must not be empty");
            return None;
        }
        Value::Scalar(_) => {
            return string(node)
                .map_err(|why| report.error(node.mark, format!("test: {why}")))
                .ok()
                .map(shell);
        }
        Value::Seq(list) if list.is_empty() => {
            report.error(node.mark, "test: must not be empty");
            return None;
        }
        Value::Seq(list) => list,
        other => {
            let message = format!(
                "test: expected a list of strings or a string, found {}",
                other.describe()
            );
            report.error(node.mark, message);
            return None;
        }
    };
    let mut argv = Vec::new();
    for item in list {
        match string(item) {
            Ok(arg) => argv.push(arg),
            Err(why) => report.error(item.mark, format!("test: {why}")),
        }
    }
    if argv.len() != list.len() {
        return None;
    }
    let (rest, marks) = match argv[0].as_str() {
        "NONE" if argv.len() == 1 => return None,
        "NONE" => {
            report.error(list[1].mark, "test: [\"NONE\"] takes nothing after it");
            return None;
        }
        "CMD-SHELL" if argv.len() == 2 => return Some(shell(argv.swap_remove(1))),
        "CMD-SHELL" => {
            report.error(
                node.mark,
                "test: [\"CMD-SHELL\", LINE] takes exactly one command line",
            );
            return None;
        }
        "CMD" => (argv.split_off(1), &list[1..]),
        _ => (argv, &list[..]),
    };
    match rest.first() {
        None => report.error(node.mark, "test: [\"CMD\", ...] needs a program"),
        Some(program) if program.is_empty() => {
            report.error(marks[0].mark, "test: the program must not be empty")
        }
        Some(_) => return Some(rest),
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The healthcheck of the one service `s`, or the errors as text.
    fn parse(keys: &str) -> Result<Option<Healthcheck>, String> {
        parse_with(keys, "")
    }

    fn parse_with(keys: &str, service_keys: &str) -> Result<Option<Healthcheck>, String> {
        let text = format!(
            "services:\n  s:\n    command: [sleep, \"1\"]\n{service_keys}    healthcheck: {keys}\n"
        );
        crate::parse_str(&text, Path::new("/x/s.yaml"))
            .map(|config| config.services[0].healthcheck.clone())
            .map_err(|errors| errors.to_string())
    }

    fn argv(check: Result<Option<Healthcheck>, String>) -> Vec<String> {
        check.unwrap().unwrap().test
    }

    #[test]
    fn the_forms_of_test() {
        assert_eq!(
            argv(parse("{test: [CMD, wget, -q, x]}")),
            ["wget", "-q", "x"]
        );
        assert_eq!(
            argv(parse("{test: [CMD-SHELL, \"test -e /a || exit 1\"]}")),
            ["/bin/sh", "-c", "test -e /a || exit 1"]
        );
        assert_eq!(argv(parse("{test: [true, x]}")), ["true", "x"]);
        assert_eq!(
            argv(parse("{test: \"echo ok\"}")),
            ["/bin/sh", "-c", "echo ok"]
        );
        assert_eq!(parse("{test: [NONE]}"), Ok(None));
        assert_eq!(parse("{disable: true}"), Ok(None));
    }

    #[test]
    fn defaults_and_values() {
        let check = parse("{test: [CMD, \"true\"]}").unwrap().unwrap();
        assert_eq!(check.interval, DEFAULT_INTERVAL);
        assert_eq!(check.timeout, DEFAULT_TIMEOUT);
        assert_eq!(check.retries, DEFAULT_RETRIES);
        assert_eq!(check.start_period, Duration::ZERO);
        assert_eq!(check.on_unhealthy, OnUnhealthy::Restart);
        let check = parse(
            "{test: \"true\", interval: 200ms, timeout: 1.5s, retries: 5, start_period: 2s, on_unhealthy: none}",
        )
        .unwrap()
        .unwrap();
        assert_eq!(check.interval, Duration::from_millis(200));
        assert_eq!(check.timeout, Duration::from_millis(1500));
        assert_eq!(check.retries, 5);
        assert_eq!(check.start_period, Duration::from_secs(2));
        assert_eq!(check.on_unhealthy, OnUnhealthy::None);
        let never = parse_with("{test: \"true\"}", "    restart: never\n")
            .unwrap()
            .unwrap();
        assert_eq!(never.on_unhealthy, OnUnhealthy::None);
        let forced = parse_with(
            "{test: \"true\", on_unhealthy: restart}",
            "    restart: never\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(forced.on_unhealthy, OnUnhealthy::Restart);
    }

    #[test]
    fn errors_name_the_place() {
        let cases = [
            ("{interval: 1s}", "4:18: healthcheck: `test` is missing"),
            ("{test: []}", "4:25: test: must not be empty"),
            ("{test: \"\"}", "4:25: test: must not be empty"),
            (
                "{test: [CMD]}",
                "4:25: test: [\"CMD\", ...] needs a program",
            ),
            (
                "{test: [CMD-SHELL, a, b]}",
                "4:25: test: [\"CMD-SHELL\", LINE]",
            ),
            ("{test: [NONE, x]}", "4:32: test: [\"NONE\"] takes nothing"),
            ("{test: {a: b}}", "4:25: test: expected a list of strings"),
            (
                "{test: x, interval: 0s}",
                "4:38: interval: must be longer than 0",
            ),
            (
                "{test: x, timeout: soon}",
                "4:37: timeout: malformed duration",
            ),
            ("{test: x, retries: 0}", "4:37: retries: `0` must be"),
            (
                "{test: x, on_unhealthy: stop}",
                "4:42: on_unhealthy: `stop` is not one of",
            ),
            (
                "{test: x, disable: true}",
                "4:19: healthcheck: `disable: true` and `test`",
            ),
            ("{test: x, intervall: 1s}", "4:28: unknown key `intervall`"),
            ("[true]", "4:18: healthcheck: expected a mapping"),
        ];
        for (keys, expected) in cases {
            let err = parse(keys).unwrap_err();
            assert!(
                err.contains(&format!("/x/s.yaml:{expected}")),
                "{keys}: {err}"
            );
        }
    }
}
