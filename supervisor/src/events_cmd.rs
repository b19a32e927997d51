//! `supervisor events [--json] [--since DURATION]`: subscribes on the control
//! socket and prints each lifecycle event as it comes, one a line, until
//! Ctrl-C or the daemon's end. Exit status: 0 when the daemon shut down (or
//! stdout was closed), 1 when the daemon went away otherwise or dropped us.

use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::client::connect;
use crate::protocol::{self, EventRecord, Request, Response};

pub fn run(state_dir: &Path, json: bool, since: Option<Duration>) -> anyhow::Result<ExitCode> {
    let mut stream = connect(state_dir)?;
    let since_ms = since.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    // A refused client gets its error line even if this write fails.
    let sent = stream.write_all(&protocol::encode(&Request::Events { since_ms }));
    let mut lines = BufReader::new(stream);
    let mut out = io::stdout().lock();
    let mut line = String::new();
    loop {
        line.clear();
        let read = lines
            .read_line(&mut line)
            .with_context(|| format!("reading events from the daemon on {}", state_dir.display()));
        match read {
            Ok(0) => {
                sent.with_context(|| format!("asking the daemon on {}", state_dir.display()))?;
                bail!(
                    "the daemon on {} went away without shutting down",
                    state_dir.display()
                );
            }
            Ok(_) => {}
            Err(err) => return Err(err),
        }
        let response: Response =
            serde_json::from_str(&line).context("malformed event from the daemon")?;
        let record = match response {
            Response::Event(record) => record,
            Response::Done => {
                eprintln!(
                    "supervisor: the daemon on {} shut down: no more events",
                    state_dir.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            Response::Error { message } => bail!(message),
            other => bail!("unexpected answer from the daemon: {other:?}"),
        };
        let text = if json {
            serde_json::to_string(&record).context("encoding an event")?
        } else {
            plain(&record)
        };
        match writeln!(out, "{text}").and_then(|()| out.flush()) {
            Ok(()) => {}
            // Whoever read our output has gone (`events | head -3`).
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(err) => return Err(err).context("writing events"),
        }
    }
}

/// `2026-12-01T10:00:00.123Z web exited status=137 reason=oom_killed`: the
/// time, service and event, then the details that apply as KEY=VALUE (a
/// message quoted, as JSON quotes it).
pub fn plain(record: &EventRecord) -> String {
    let d = &record.details;
    let mut text = format!(
        "{} {} {}",
        record.time,
        record.service,
        record.event.as_str()
    );
    let mut field = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            text.push_str(&format!(" {key}={value}"));
        }
    };
    field("pid", d.pid.map(|v| v.to_string()));
    field("status", d.status.map(|v| v.to_string()));
    field("reason", d.reason.clone());
    field("delay_ms", d.delay_ms.map(|v| v.to_string()));
    field("change", d.change.clone());
    field(
        "message",
        d.message
            .as_ref()
            .map(|m| serde_json::to_string(m).unwrap_or_default()),
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{EventDetails, EventKind};

    #[test]
    fn plain_lines_read_as_the_logs_do() {
        let record = EventRecord {
            time: "2026-12-01T10:00:00.123Z".into(),
            service: "web".into(),
            event: EventKind::Exited,
            details: EventDetails {
                status: Some(137),
                reason: Some("oom_killed".into()),
                ..EventDetails::default()
            },
        };
        assert_eq!(
            plain(&record),
            "2026-12-01T10:00:00.123Z web exited status=137 reason=oom_killed"
        );
        let failed = EventRecord {
            event: EventKind::SetupFailed,
            details: EventDetails {
                message: Some("no image \"x\"".into()),
                ..EventDetails::default()
            },
            ..record
        };
        assert_eq!(
            plain(&failed),
            "2026-12-01T10:00:00.123Z web setup_failed message=\"no image \\\"x\\\"\""
        );
    }
}
