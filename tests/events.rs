//! `supervisor events`, for real (as root): the lifecycle events of crashes,
//! restarts, freezes and stops in order, `--since` replaying the past,
//! `--json`'s fields, a client that never reads, bad command lines, and the
//! end of the stream (and of `logs -f`) when the daemon exits. Each test has
//! its own state_dir and cgroup_parent.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use integration_tests::daemon::WAIT;
use integration_tests::{daemon_fixture, BoundedChild, Lines, TestDaemon};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const SLEEPER: &str = "  web:\n    image: ROOTFS\n    command: exec sleep 1000\n";

daemon_fixture!(
    /// One daemon with its own state_dir, cgroup_parent and busybox rootfs.
    Fixture
);

impl Fixture {
    /// `services`: the YAML of the `services:` mapping (indented by 2), where
    /// `ROOTFS` stands for the rootfs path; `top`: settings before it.
    fn new(top: &str, services: &str) -> Fixture {
        let daemon = TestDaemon::new("events-test");
        daemon.write_services(top, services);
        Fixture(daemon)
    }

    /// `supervisor events ARGS`, its stdout read line by line.
    fn events(&self, args: &[&str]) -> Stream {
        Stream::spawn(self.command(&[&["events"], args].concat()))
    }
}

/// A running `supervisor events`.
struct Stream {
    child: Child,
    lines: Lines,
}

impl Stream {
    /// Runs `command` (a `supervisor events`), its stdout read line by line.
    fn spawn(mut command: Command) -> Stream {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        // SIGINT at its default action, which `interrupt` relies on: a test run
        // started in the background by a shell without job control (`cmd &`
        // in a script) ignores SIGINT, and an ignored signal stays ignored
        // across exec.
        // SAFETY: signal(2) is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap();
        let lines = Lines::new(child.stdout.take().unwrap());
        Stream { child, lines }
    }

    /// The next line, which must exist.
    fn next(&self) -> String {
        self.lines
            .next_line()
            .expect("events ended before the line expected")
    }

    /// The lines up to the first that contains `needle` (included).
    fn until(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self.next();
            let done = line.contains(needle);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }

    /// The lines up to the point where each of `needles` was in one, in any
    /// order (events of two services have no order between them).
    fn until_each(&self, needles: &[&str]) -> Vec<String> {
        let mut missing = needles.to_vec();
        let mut seen = Vec::new();
        while !missing.is_empty() {
            let line = self.next();
            missing.retain(|needle| !line.contains(needle));
            seen.push(line);
        }
        seen
    }

    /// Ends it (as Ctrl-C does).
    fn interrupt(mut self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT).unwrap();
        let _ = self.child.bounded_wait();
    }
}

/// `TIME SERVICE EVENT DETAILS...` without the time (checked to be RFC 3339
/// UTC with milliseconds).
fn strip_time(line: &str) -> String {
    let (time, rest) = line.split_once(' ').unwrap();
    assert_rfc3339_millis(time);
    rest.to_string()
}

fn assert_rfc3339_millis(time: &str) {
    // 2026-12-01T10:00:00.123Z
    let bytes = time.as_bytes();
    assert_eq!(bytes.len(), 24, "{time}");
    assert!(
        bytes[4] == b'-'
            && bytes[10] == b'T'
            && bytes[19] == b'.'
            && bytes[23] == b'Z'
            && time[20..23].bytes().all(|b| b.is_ascii_digit()),
        "not RFC 3339 UTC with milliseconds: {time}"
    );
}

/// The event words of `lines` (plain output) for service `name`, details kept.
fn of(name: &str, lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| strip_time(l))
        .filter_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string))
        .collect()
}

#[test]
fn events_show_a_crash_then_its_restart_in_order() {
    let mut f = Fixture::new(
        "",
        "  crash:\n    image: ROOTFS\n    command: sh -c 'sleep 1; exit 3'\n    restart: on-failure\n    restart_delay: 300ms\n",
    );
    f.start_daemon();
    let events = f.events(&[]);
    // Wherever the crash loop is when the client comes, a crash is next.
    let lines = events.until("crash exited");
    let lines = [lines, events.until("crash ready")].concat();
    let seen = of("crash", &lines);
    let at = seen.iter().position(|e| e.starts_with("exited")).unwrap();
    assert_eq!(seen[at], "exited status=3 reason=exited", "{seen:?}");
    assert!(seen[at + 1].starts_with("restarting delay_ms="), "{seen:?}");
    assert_eq!(seen[at + 2], "starting", "{seen:?}");
    assert!(seen[at + 3].starts_with("started pid="), "{seen:?}");
    assert_eq!(seen[at + 4], "ready", "{seen:?}");
    events.interrupt();
    f.shutdown();
}

#[test]
fn freeze_thaw_stop_and_start_are_events_with_fixed_json_fields() {
    let mut f = Fixture::new("", SLEEPER);
    f.start_daemon();
    f.wait_state("web", "running");
    // The past first: once it has come, the client is subscribed.
    let events = f.events(&["--json", "--since", "1h"]);
    events.until("\"ready\"");
    f.ok(&["freeze", "web"]);
    f.ok(&["thaw", "web"]);
    f.ok(&["stop", "web"]);
    f.ok(&["start", "web"]);
    let lines = events.until("\"ready\"");
    let objects: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["frozen", "thawed", "exited", "stopped", "starting", "started", "ready"],
        "{lines:?}"
    );
    for object in &objects {
        assert_rfc3339_millis(object["time"].as_str().unwrap());
        assert_eq!(object["service"], "web", "{object}");
        assert!(object.get("result").is_none(), "{object}");
    }
    let exited = &objects[2];
    assert_eq!(exited["reason"], "stopped", "{exited}");
    // sleep ends on SIGTERM: 128 + 15.
    assert_eq!(exited["status"], 143, "{exited}");
    assert!(objects[5]["pid"].as_i64().unwrap() > 1, "{}", objects[5]);
    // The fields in a fixed order, as written.
    let at = |key: &str| lines[2].find(&format!("\"{key}\":")).unwrap();
    let order = ["time", "service", "event", "status", "reason"].map(at);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", lines[2]);
    assert_eq!(objects[2].as_object().unwrap().len(), 5, "{}", lines[2]);
    events.interrupt();
    f.shutdown();
}

#[test]
fn since_replays_past_events_then_streams_and_reload_is_an_event() {
    use std::os::unix::fs::PermissionsExt;
    let mut f = Fixture::new("control_group: nogroup\n", SLEEPER);
    // nobody reaches the state_dir (0711) through ours.
    fs::set_permissions(f.path(), fs::Permissions::from_mode(0o755)).unwrap();
    f.start_daemon();
    f.wait_state("web", "running");
    // Without --since only new events: the first is a freeze or a thaw of
    // those made until it has subscribed, not the start before.
    let fresh = f.events(&[]);
    let mut cycles = 0;
    let first = loop {
        f.ok(&["freeze", "web"]);
        f.ok(&["thaw", "web"]);
        cycles += 1;
        if let Some(line) = fresh.lines.try_next() {
            break line;
        }
    };
    let first = strip_time(&first);
    assert!(first == "web frozen" || first == "web thawed", "{first}");
    fresh.interrupt();

    // A member of control_group may follow them too (as nobody:nogroup).
    let mut as_nobody = f.command(&["events", "--since", "1h"]);
    as_nobody.uid(65534).gid(65534);
    let replay = Stream::spawn(as_nobody);
    let past = of("web", &replay.until("web ready"));
    assert_eq!(past.len(), 3, "{past:?}");
    assert_eq!(past[0], "starting", "{past:?}");
    assert!(past[1].starts_with("started pid="), "{past:?}");
    // Then every freeze and thaw of above, in turn.
    for _ in 0..cycles {
        assert_eq!(strip_time(&replay.next()), "web frozen");
        assert_eq!(strip_time(&replay.next()), "web thawed");
    }

    // A reload that changes web, adds db and removes nothing.
    f.write_services(
        "control_group: nogroup\n",
        "  web:\n    image: ROOTFS\n    command: exec sleep 1001\n  db:\n    image: ROOTFS\n    command: exec sleep 1000\n",
    );
    f.ok(&["reload"]);
    // db's start and web's restart run side by side: their readies come in
    // either order.
    let lines = replay.until_each(&["db ready", "web ready"]);
    let web = of("web", &lines);
    let db = of("db", &lines);
    assert_eq!(web[0], "reloaded change=changed", "{lines:?}");
    assert_eq!(web[1], "exited status=143 reason=stopped", "{lines:?}");
    assert_eq!(web[2], "stopped", "{lines:?}");
    assert_eq!(db[0], "reloaded change=added", "{lines:?}");
    assert_eq!(db[1], "starting", "{lines:?}");
    // Removed: db goes.
    f.write_services(
        "control_group: nogroup\n",
        "  web:\n    image: ROOTFS\n    command: exec sleep 1001\n",
    );
    f.ok(&["reload"]);
    let lines = replay.until("db stopped");
    assert_eq!(
        of("db", &lines),
        [
            "reloaded change=removed",
            "exited status=143 reason=stopped",
            "stopped"
        ],
        "{lines:?}"
    );
    replay.interrupt();
    f.shutdown();
}

#[test]
fn a_client_that_never_reads_does_not_stall_the_daemon() {
    let mut f = Fixture::new("", SLEEPER);
    f.start_daemon();
    f.wait_state("web", "running");
    // Subscribed with the whole ring replayed, and never read.
    let mut idle = UnixStream::connect(f.state.join("control.sock")).unwrap();
    idle.write_all(b"{\"op\":\"events\",\"since_ms\":3600000}\n")
        .unwrap();
    for _ in 0..20 {
        f.ok(&["freeze", "web"]);
        f.ok(&["thaw", "web"]);
        f.ok(&["status"]);
    }
    // Another client is served meanwhile, in full.
    let events = f.events(&["--since", "1h"]);
    let replayed = events.until("web thawed");
    assert!(replayed.len() >= 3, "{replayed:?}");
    events.interrupt();
    // What the idle one got is whole lines of events.
    idle.set_read_timeout(Some(WAIT)).unwrap();
    let mut first = [0u8; 64];
    let n = idle.read(&mut first).unwrap();
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("{\"result\":\"event\""),
        "{:?}",
        String::from_utf8_lossy(&first[..n])
    );
    drop(idle);
    f.ok(&["stop", "web"]);
    f.shutdown();
}

#[test]
fn bad_command_lines_and_no_daemon_give_one_line_errors() {
    let mut f = Fixture::new("", SLEEPER);
    // No daemon: exit 1, one line.
    let none = f.fails_with(1, &["events"]);
    assert!(none.contains("no daemon running on"), "{none}");
    let unknown = f.fails_with(2, &["events", "--jsn"]);
    assert!(
        unknown.starts_with("supervisor: unexpected argument '--jsn'")
            && unknown.contains("--json"),
        "{unknown}"
    );
    let since = f.fails_with(2, &["events", "--since", "10x"]);
    assert!(since.contains("malformed duration `10x`"), "{since}");
    let negative = f.fails_with(2, &["events", "--since=-5m"]);
    assert!(negative.contains("negative"), "{negative}");
    f.fails_with(2, &["events", "--since"]);
    f.fails_with(2, &["events", "web"]);
    // A malformed subscription on the socket: one error line, then closed.
    f.start_daemon();
    let mut raw = UnixStream::connect(f.state.join("control.sock")).unwrap();
    raw.write_all(b"{\"op\":\"events\",\"since_ms\":\"soon\"}\n")
        .unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("{\"result\":\"error\"") && answer.lines().count() == 1,
        "{answer}"
    );
    f.shutdown();
}

#[test]
fn events_and_logs_follow_end_when_the_daemon_shuts_down() {
    let mut f = Fixture::new(
        "",
        "  web:\n    image: ROOTFS\n    command: echo up; exec sleep 1000\n",
    );
    f.start_daemon();
    f.wait_state("web", "running");
    let mut stream = f.events(&["--since", "1h"]);
    stream.until("web ready");
    let mut stderr = stream.child.stderr.take().unwrap();
    // Each follower shows web's line before the shutdown: it follows by then
    // (a request sent while the daemon exits would be refused instead).
    let mut followers = Vec::new();
    for args in [&["logs", "-f", "web"][..], &["logs", "-f"][..]] {
        let mut child = f.command(args).stdout(Stdio::piped()).spawn().unwrap();
        let lines = Lines::new(child.stdout.take().unwrap());
        // (The supervisor's own lines come first: "[supervisor] started".)
        while !lines
            .next_line()
            .unwrap_or_else(|| panic!("{args:?} ended before web's line"))
            .ends_with(" up")
        {}
        followers.push((child, lines));
    }
    f.ok(&["shutdown"]);
    // The stops come first, then the end.
    let lines = stream.until("web stopped");
    assert_eq!(
        of("web", &lines),
        ["exited status=143 reason=stopped", "stopped"]
    );
    assert_eq!(stream.lines.next_line(), None);
    let status = stream.child.bounded_wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut message = String::new();
    stderr.read_to_string(&mut message).unwrap();
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("shut down"), "{message}");
    for (mut child, lines) in followers {
        while lines.next_line().is_some() {}
        assert!(child.bounded_wait().unwrap().success());
    }
    let status = f.wait_daemon_exit();
    assert_eq!(status.code(), Some(0), "daemon: {}", f.daemon_stderr());
}
