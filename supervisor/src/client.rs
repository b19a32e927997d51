//! Client verbs: one request to the daemon over its control socket, then print
//! the answer. Errors come back as one line and exit status 1.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};

use crate::cli::{Command, OptConfigArg};
use crate::logs;
use crate::protocol::{self, PowerAction, Request, Response, ServiceStatus, State};

pub fn run(cmd: Command, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Start(args) => done(
            &args.config,
            state_dir,
            Request::Start { names: args.names },
        ),
        Command::Stop(args) => done(&args.config, state_dir, Request::Stop { names: args.names }),
        Command::Restart(args) => done(
            &args.config,
            state_dir,
            Request::Restart { names: args.names },
        ),
        Command::Freeze(args) => done(
            &args.config,
            state_dir,
            Request::Freeze { names: args.names },
        ),
        Command::Thaw(args) => done(&args.config, state_dir, Request::Thaw { names: args.names }),
        Command::Reload(config) => reload(config, state_dir),
        Command::Shutdown(config) => done(&config, state_dir, Request::Shutdown),
        Command::Reexec(config) => done(&config, state_dir, Request::Reexec),
        Command::Poweroff(config) => power(&config, state_dir, PowerAction::Poweroff),
        Command::Reboot(config) => power(&config, state_dir, PowerAction::Reboot),
        Command::Halt(config) => power(&config, state_dir, PowerAction::Halt),
        Command::Status {
            names,
            json,
            config,
        } => {
            let dir = resolve_state_dir(state_dir, &config)?;
            // All services at once, or one request per name (each checked by the daemon).
            let asks: Vec<Option<String>> = match names.is_empty() {
                true => vec![None],
                false => names.into_iter().map(Some).collect(),
            };
            let mut services = Vec::new();
            for name in asks {
                match request(&dir, &Request::Status { name })? {
                    Response::Status { services: some } => services.extend(some),
                    other => bail!("unexpected answer from the daemon: {other:?}"),
                }
            }
            print_status(&services, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs {
            name,
            lines,
            follow,
            raw,
            config,
        } => {
            let dir = resolve_state_dir(state_dir, &config)?;
            logs_command(&dir, name, lines, follow, raw)
        }
        Command::Exec {
            tty,
            user,
            env,
            workdir,
            name,
            command,
            config,
        } => {
            let dir = resolve_state_dir(state_dir, &config)?;
            let status = service_status(&dir, &name)?;
            let args = crate::container::ExecArgs {
                name,
                tty,
                user,
                env,
                workdir,
                command,
            };
            crate::container::exec(&dir, &status, args)
        }
        Command::Inspect { name, config } => {
            let dir = resolve_state_dir(state_dir, &config)?;
            let status = service_status(&dir, &name)?;
            let report = crate::inspect::inspect(&dir, &status)?;
            let mut text = serde_json::to_string_pretty(&report)?;
            text.push('\n');
            ignore_broken_pipe(io::stdout().lock().write_all(text.as_bytes()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats {
            names,
            no_stream,
            json,
            config,
        } => {
            let dir = resolve_state_dir(state_dir, &config)?;
            crate::stats::run(&dir, &names, no_stream, json)
        }
        Command::Events {
            json,
            since,
            config,
        } => {
            let dir = resolve_state_dir(state_dir, &config)?;
            crate::events_cmd::run(&dir, json, since)
        }
        other => bail!("{other:?} is not a client command"),
    }
}

/// The daemon's status of one service.
pub(crate) fn service_status(state_dir: &Path, name: &str) -> anyhow::Result<ServiceStatus> {
    match request(
        state_dir,
        &Request::Status {
            name: Some(name.to_string()),
        },
    )? {
        Response::Status { mut services } if services.len() == 1 => Ok(services.remove(0)),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

/// Every service's status, or None when no daemon runs on `state_dir`.
pub(crate) fn all_status(state_dir: &Path) -> anyhow::Result<Option<Vec<ServiceStatus>>> {
    if UnixStream::connect(protocol::socket_path(state_dir)).is_err() {
        return Ok(None);
    }
    match request(state_dir, &Request::Status { name: None })? {
        Response::Status { services } => Ok(Some(services)),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

/// `logs`: read from the files in `state_dir/logs`, daemon or not. With a
/// daemon, an unknown name is its error and `-f` ends when the service
/// stops or the daemon exits; without, `-f` follows until Ctrl-C.
fn logs_command(
    dir: &Path,
    name: Option<String>,
    lines: Option<usize>,
    follow: bool,
    raw: bool,
) -> anyhow::Result<ExitCode> {
    let daemon = all_status(dir)?.is_some();
    let logs_dir = dir.join(protocol::LOGS_DIR);
    let stdout = io::stdout().lock();
    let mut out: Box<dyn Write> = if raw {
        Box::new(stdout)
    } else {
        Box::new(logs::escape::Escaped::new(stdout))
    };
    let Some(name) = name else {
        if !logs_dir.is_dir() {
            bail!("no logs in {}", logs_dir.display());
        }
        let keep_going = || !daemon || all_status(dir).is_ok_and(|s| s.is_some());
        let printed = logs::merged::print_all(&logs_dir, lines, follow, keep_going, &mut out);
        ignore_broken_pipe(printed).with_context(|| format!("reading {}", logs_dir.display()))?;
        return Ok(ExitCode::SUCCESS);
    };
    let path = if daemon {
        match request(dir, &Request::Logs { name: name.clone() })? {
            Response::Log { path } => path,
            other => bail!("unexpected answer from the daemon: {other:?}"),
        }
    } else {
        let path = logs::log_path(&logs_dir, &name);
        if !(0..=logs::KEEP).any(|n| logs::rotated_path(&path, n).exists()) {
            bail!(
                "no log of service {name} in {} (and no daemon running)",
                logs_dir.display()
            );
        }
        path
    };
    let printed = match logs::reader::print(&path, lines, &mut out) {
        Ok(live) => live,
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    if follow {
        let keep_going = || !daemon || service_runs(dir, &name);
        ignore_broken_pipe(logs::reader::follow(&path, printed, &mut out, keep_going))
            .with_context(|| format!("following {}", path.display()))?;
    } else {
        ignore_broken_pipe(out.flush()).context("writing the log")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The daemon runs and the service has not stopped for good.
fn service_runs(dir: &Path, name: &str) -> bool {
    use crate::protocol::State;
    match all_status(dir) {
        Ok(Some(services)) => services.iter().any(|s| {
            s.name == name && !matches!(s.state, State::Stopped | State::Exited | State::Failed)
        }),
        _ => false,
    }
}

/// Verbs whose only answer is done or an error.
fn done(
    config: &OptConfigArg,
    state_dir: Option<PathBuf>,
    req: Request,
) -> anyhow::Result<ExitCode> {
    let dir = resolve_state_dir(state_dir, config)?;
    match request(&dir, &req)? {
        Response::Done => Ok(ExitCode::SUCCESS),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

/// `poweroff`, `reboot`, `halt`: the daemon (PID 1 of the machine only) answers
/// once it has begun stopping the services; the machine goes down after.
fn power(
    config: &OptConfigArg,
    state_dir: Option<PathBuf>,
    action: PowerAction,
) -> anyhow::Result<ExitCode> {
    done(config, state_dir, Request::Power { action })
}

/// `reload`: names the file of `-c` (the daemon refuses another than its
/// own), prints what the daemon did, fails when a service failed to start.
fn reload(config: OptConfigArg, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = resolve_state_dir(state_dir, &config)?;
    let path = match &config.config {
        Some(path) => Some(std::path::absolute(path).with_context(|| path.display().to_string())?),
        None => None,
    };
    let report = match request(&dir, &Request::Reload { path })? {
        Response::Reloaded(report) => report,
        other => bail!("unexpected answer from the daemon: {other:?}"),
    };
    let mut out = io::stdout().lock();
    for (what, names) in [
        ("added", &report.added),
        ("restarted", &report.restarted),
        ("updated", &report.updated),
        ("removed", &report.removed),
        ("unchanged", &report.unchanged),
    ] {
        if !names.is_empty() {
            ignore_broken_pipe(writeln!(out, "{what}: {}", names.join(" ")))?;
        }
    }
    if report.errors.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    bail!("not started: {}", report.errors.join("; "))
}

/// --state-dir (or $SUPERVISOR_STATE_DIR, via clap), else the state_dir of -c FILE,
/// else the default.
pub(crate) fn resolve_state_dir(
    state_dir: Option<PathBuf>,
    config: &OptConfigArg,
) -> anyhow::Result<PathBuf> {
    // After the command, before it (or the environment), then the file's.
    if let Some(dir) = config.state_dir.clone().or(state_dir) {
        return Ok(dir);
    }
    if let Some(path) = &config.config {
        let config =
            config::load(path).map_err(|errors| anyhow!("{}", errors.to_string().trim_end()))?;
        return Ok(config.state_dir);
    }
    Ok(PathBuf::from(config::DEFAULT_STATE_DIR))
}

/// How to reach a daemon elsewhere, said after "no daemon running on DIR".
pub(crate) const NO_DAEMON_HINT: &str =
    "for another daemon, give its -c FILE or --state-dir DIR (or SUPERVISOR_STATE_DIR)";

/// A connection to the daemon's control socket, or why there is none.
pub(crate) fn connect(state_dir: &Path) -> anyhow::Result<UnixStream> {
    let socket = protocol::socket_path(state_dir);
    UnixStream::connect(&socket).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => anyhow!(
            "no daemon running on {} (connect {}: {err}); {NO_DAEMON_HINT}",
            state_dir.display(),
            protocol::SOCKET_FILE
        ),
        io::ErrorKind::PermissionDenied => {
            anyhow!("permission denied on {} (connect: {err})", socket.display())
        }
        _ => anyhow!("connect {}: {err}", socket.display()),
    })
}

/// Sends one request and reads the one answer; an error answer becomes Err.
pub(crate) fn request(state_dir: &Path, req: &Request) -> anyhow::Result<Response> {
    let socket = protocol::socket_path(state_dir);
    let mut stream = connect(state_dir)?;
    // A caller the daemon refuses gets its answer at once, and the connection
    // closed, maybe before the request is sent: the answer is read all the same.
    let sent = stream.write_all(&protocol::encode(req));
    let mut line = String::new();
    let read = BufReader::new(stream).read_line(&mut line);
    match (sent, read) {
        (_, Ok(_)) if !line.is_empty() => {}
        (Err(err), _) => {
            return Err(err).with_context(|| format!("sending to {}", socket.display()))
        }
        (Ok(()), Err(err)) => {
            return Err(err).with_context(|| format!("reading from {}", socket.display()))
        }
        (Ok(()), Ok(_)) => {}
    }
    if line.is_empty() {
        bail!(
            "the daemon on {} closed the connection without answering",
            state_dir.display()
        );
    }
    match serde_json::from_str(&line).context("malformed answer from the daemon")? {
        Response::Error { message } => Err(anyhow!(message)),
        response => Ok(response),
    }
}

fn ignore_broken_pipe(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn print_status(services: &[ServiceStatus], json: bool) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    let text = if json {
        let mut text = serde_json::to_string_pretty(services)?;
        text.push('\n');
        text
    } else {
        status_table(services)
    };
    ignore_broken_pipe(out.write_all(text.as_bytes()))?;
    Ok(())
}

fn status_table(services: &[ServiceStatus]) -> String {
    let dash = || "-".to_string();
    let opt = |v: Option<u64>| v.map_or_else(dash, |v| v.to_string());
    let mut rows = vec![[
        "NAME", "STATE", "PID", "RESTARTS", "EXIT", "EXITED", "RETRY", "UPTIME", "MEMORY", "CPU",
        "PIDS", "CGROUP", "ERROR",
    ]
    .map(String::from)
    .to_vec()];
    // Only services on networks have addresses: the column shows when one has.
    let networked = services.iter().any(|s| !s.addresses.is_empty());
    if networked {
        rows[0].insert(10, "ADDRESSES".to_string());
    }
    // Likewise HEALTH, after STATE, when a listed run has a healthcheck.
    let checked = services.iter().any(|s| s.health.is_some());
    if checked {
        rows[0].insert(2, "HEALTH".to_string());
    }
    for s in services {
        let mut row = vec![
            s.name.clone(),
            state_column(s),
            s.pid.map_or_else(dash, |p| p.to_string()),
            s.restarts.to_string(),
            // The last run's end is history while a run is up.
            if is_up(s.state) {
                dash()
            } else {
                exit_column(s)
            },
            if is_up(s.state) {
                dash()
            } else {
                stamp(s.last_exit_at.as_deref())
            },
            stamp(s.next_retry_at.as_deref()),
            s.uptime_s.map_or_else(dash, crate::human::duration),
            s.memory_bytes.map_or_else(dash, crate::human::bytes),
            s.cpu_usage_us
                .map_or_else(dash, |us| format!("{:.2}s", us as f64 / 1e6)),
            opt(s.pids_current),
            s.cgroup.clone(),
            s.error.clone().unwrap_or_default(),
        ];
        if networked {
            let addresses: Vec<String> = s
                .addresses
                .iter()
                .map(|(network, ip)| format!("{network}={ip}"))
                .collect();
            row.insert(10, addresses.join(",").to_string());
            if row[10].is_empty() {
                row[10] = dash();
            }
        }
        if checked {
            row.insert(2, s.health.map_or_else(dash, |h| h.as_str().to_string()));
        }
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < columns {
                line.extend(std::iter::repeat_n(
                    ' ',
                    widths[c] - cell.chars().count() + 2,
                ));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `running (not ready)` for a service that runs but is not ready yet (a
/// `ready: notify` service before READY=1); else the state.
fn state_column(s: &ServiceStatus) -> String {
    match s.state {
        State::Running if !s.ready => "running (not ready)".to_string(),
        state => state.as_str().to_string(),
    }
}

/// `0`, `137 oom_killed`, `setup_failed`: the status and, unless it is a
/// plain exit, how the run ended.
fn exit_column(s: &ServiceStatus) -> String {
    let reason = s.exit_reason.as_deref().filter(|r| *r != "exited");
    match (s.exit_code, reason) {
        (Some(code), Some(reason)) => format!("{code} {reason}"),
        (Some(code), None) => code.to_string(),
        (None, Some(reason)) => reason.to_string(),
        (None, None) => "-".to_string(),
    }
}

fn is_up(state: State) -> bool {
    matches!(state, State::Running | State::Stopping | State::Frozen)
}

/// An RFC 3339 timestamp to the second, as `image ls` shows them.
fn stamp(at: Option<&str>) -> String {
    at.map_or_else(|| "-".to_string(), crate::logs::timestamp::to_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::State;

    #[test]
    fn table_columns_line_up() {
        let row = |name: &str, pid| ServiceStatus {
            name: name.into(),
            state: State::Running,
            pid,
            restarts: 0,
            exit_code: None,
            exit_reason: None,
            last_exit_at: None,
            next_retry_at: None,
            cgroup: format!("supervisor/{name}"),
            uptime_s: Some(3),
            memory_bytes: Some(3 << 20),
            memory_peak_bytes: None,
            cpu_usage_us: Some(1_500_000),
            pids_current: Some(2),
            oom_kills: Some(0),
            error: None,
            addresses: Default::default(),
            health: None,
            health_failing_streak: 0,
            health_log: Vec::new(),
            ready: true,
            status_text: None,
        };
        let table = status_table(&[row("web", Some(12345)), row("database", None)]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        let state_col = lines[0].find("STATE").unwrap();
        assert_eq!(lines[1].find("running"), Some(state_col));
        assert_eq!(lines[2].find("running"), Some(state_col));
        assert!(lines[1].contains("3.0MiB") && lines[1].contains("1.50s"));
        assert!(lines[1].contains(" 3s "), "{table}");
        assert!(!lines[0].contains("HEALTH"));
        let mut checked = row("web", Some(1));
        checked.health = Some(crate::protocol::Health::Healthy);
        let table = status_table(&[checked, row("db", Some(2))]);
        let lines: Vec<&str> = table.lines().collect();
        let health_col = lines[0].find("HEALTH").unwrap();
        assert!(
            lines[0][..health_col].trim_end().ends_with("STATE"),
            "{table}"
        );
        assert_eq!(lines[1].find("healthy"), Some(health_col), "{table}");
        assert_eq!(lines[2][health_col..].chars().next(), Some('-'), "{table}");
    }

    #[test]
    fn exit_column_names_unusual_ends() {
        let mut s = ServiceStatus {
            name: "web".into(),
            state: State::Failed,
            pid: None,
            restarts: 0,
            exit_code: Some(137),
            exit_reason: Some("oom_killed".into()),
            last_exit_at: Some("2026-11-30T02:15:14.941Z".into()),
            next_retry_at: None,
            cgroup: "supervisor/web".into(),
            uptime_s: None,
            memory_bytes: None,
            memory_peak_bytes: None,
            cpu_usage_us: None,
            pids_current: None,
            oom_kills: Some(1),
            error: None,
            addresses: Default::default(),
            health: None,
            health_failing_streak: 0,
            health_log: Vec::new(),
            ready: true,
            status_text: None,
        };
        assert_eq!(exit_column(&s), "137 oom_killed");
        assert_eq!(stamp(s.last_exit_at.as_deref()), "2026-11-30T02:15:14Z");
        s.exit_reason = Some("exited".into());
        assert_eq!(exit_column(&s), "137");
        s.exit_code = None;
        s.exit_reason = Some("setup_failed".into());
        assert_eq!(exit_column(&s), "setup_failed");
    }
}
