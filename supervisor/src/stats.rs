//! `supervisor stats [NAME...] [--no-stream] [--json]`: CPU %, memory and its
//! limit, pids and block I/O of running services, as `docker stats`: a new
//! sample every second until Ctrl-C (the table redrawn on a terminal, a
//! block per sample on a pipe), or one with `--no-stream`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::client;
use crate::protocol::ServiceStatus;

/// Between two samples (CPU % needs two).
const INTERVAL: Duration = Duration::from_secs(1);
/// Before the one line of `--no-stream`.
const FIRST_INTERVAL: Duration = Duration::from_millis(500);

/// One service's figures over one interval.
#[derive(Debug, Serialize)]
pub struct Sample {
    pub name: String,
    /// Of one CPU (200 is two CPUs busy), as docker stats.
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    /// None: no limit.
    pub memory_limit_bytes: Option<u64>,
    pub memory_percent: Option<f64>,
    pub pids: Option<u64>,
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
}

/// What one reading of a service gives.
struct Reading {
    status: ServiceStatus,
    at: Instant,
    memory_limit: Option<u64>,
    io: Option<(u64, u64)>,
}

pub fn run(
    state_dir: &Path,
    names: &[String],
    no_stream: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let terminal = std::io::stdout().is_terminal();
    let mut before = read(state_dir, names)?;
    std::thread::sleep(if no_stream { FIRST_INTERVAL } else { INTERVAL });
    loop {
        let now = read(state_dir, names)?;
        let samples = compare(&before, &now);
        let text = if json {
            let mut line = serde_json::to_string(&samples)?;
            line.push('\n');
            line
        } else {
            table(&samples)
        };
        let mut out = std::io::stdout().lock();
        let written = if terminal && !no_stream && !json {
            // Home, clear: redraw in place.
            write!(out, "\x1b[H\x1b[2J{text}")
        } else if !no_stream && !json {
            writeln!(out, "{text}")
        } else {
            out.write_all(text.as_bytes())
        };
        match written.and_then(|()| out.flush()) {
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(ExitCode::SUCCESS)
            }
            other => other.context("write the stats")?,
        }
        if no_stream {
            return Ok(ExitCode::SUCCESS);
        }
        before = now;
        std::thread::sleep(INTERVAL);
    }
}

/// The running services among `names` (all when empty).
fn read(state_dir: &Path, names: &[String]) -> anyhow::Result<BTreeMap<String, Reading>> {
    let Some(services) = client::all_status(state_dir)? else {
        bail!(
            "no daemon running on {}; {}",
            state_dir.display(),
            client::NO_DAEMON_HINT
        );
    };
    for name in names {
        if !services.iter().any(|s| &s.name == name) {
            let known = services.iter().map(|s| s.name.as_str());
            bail!(
                "no service named {name}{}",
                config::did_you_mean(name, known)
            );
        }
    }
    let mut readings = BTreeMap::new();
    for status in services {
        if !names.is_empty() && !names.contains(&status.name) {
            continue;
        }
        let Some(pid) = status.pid else { continue };
        // A service that just exited has no groups to read: its figures are None.
        let groups = cgroups::memberships(pid).unwrap_or_default();
        readings.insert(
            status.name.clone(),
            Reading {
                memory_limit: cgroups::memory_limit(&groups),
                io: cgroups::io_bytes(&groups),
                at: Instant::now(),
                status,
            },
        );
    }
    Ok(readings)
}

fn compare(before: &BTreeMap<String, Reading>, now: &BTreeMap<String, Reading>) -> Vec<Sample> {
    now.values()
        .map(|reading| {
            let status = &reading.status;
            let earlier = before
                .get(&status.name)
                .filter(|b| b.status.pid == status.pid);
            let cpu_percent = earlier.and_then(|b| {
                let used = status.cpu_usage_us?.checked_sub(b.status.cpu_usage_us?)?;
                let elapsed = reading.at.duration_since(b.at).as_micros() as f64;
                (elapsed > 0.0).then(|| used as f64 * 100.0 / elapsed)
            });
            let memory_percent = match (status.memory_bytes, reading.memory_limit) {
                (Some(used), Some(limit)) if limit > 0 => Some(used as f64 * 100.0 / limit as f64),
                _ => None,
            };
            Sample {
                name: status.name.clone(),
                cpu_percent,
                memory_bytes: status.memory_bytes,
                memory_limit_bytes: reading.memory_limit,
                memory_percent,
                pids: status.pids_current,
                io_read_bytes: reading.io.map(|io| io.0),
                io_write_bytes: reading.io.map(|io| io.1),
            }
        })
        .collect()
}

fn table(samples: &[Sample]) -> String {
    let dash = || "-".to_string();
    let bytes = |b: Option<u64>| b.map_or_else(dash, crate::human::bytes);
    let percent = |p: Option<f64>| p.map_or_else(dash, |p| format!("{p:.2}%"));
    let mut rows = vec![[
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "PIDS",
        "BLOCK I/O",
    ]
    .map(String::from)];
    for s in samples {
        rows.push([
            s.name.clone(),
            percent(s.cpu_percent),
            format!(
                "{} / {}",
                bytes(s.memory_bytes),
                s.memory_limit_bytes
                    .map_or_else(|| "unlimited".to_string(), crate::human::bytes)
            ),
            percent(s.memory_percent),
            s.pids.map_or_else(dash, |p| p.to_string()),
            format!("{} / {}", bytes(s.io_read_bytes), bytes(s.io_write_bytes)),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}
