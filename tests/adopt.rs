//! Services outlive the daemon, for real (as root): a daemon killed with
//! SIGKILL (at rest, or by the test hook SUPERVISOR_TEST_CRASH_AT in the
//! middle of a start, a stop or a freeze) and started again adopts what runs
//! (same pids, no restart, logs without gap or duplicate), restarts by its
//! policy what ended meanwhile, and leaves nothing behind; `reexec` keeps
//! pids and logs. Each test has its own state_dir and cgroup_parent.

use std::fs;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use integration_tests::daemon::WAIT;
use integration_tests::{bin, daemon_fixture, TestDaemon};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// Prints "tick N" for N = 1, 2, ... every 20 ms.
const TICKER: &str = "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.02; done";

daemon_fixture!(
    /// One daemon with its own state_dir, cgroup_parent and busybox rootfs.
    Fixture
);

impl Fixture {
    /// `services`: the YAML of the `services:` mapping (indented by 2), where
    /// `ROOTFS` stands for the rootfs path.
    fn new(services: &str) -> Fixture {
        let daemon = TestDaemon::new("adopt-test");
        daemon.write_services("", services);
        Fixture(daemon)
    }

    /// Starts the daemon (debug log) and waits until it answers.
    fn start_daemon(&mut self) {
        self.start_daemon_with(None);
        self.wait_answering();
    }

    /// Starts the daemon (debug log), with the crash test hook set to
    /// `crash_at` if any.
    fn start_daemon_with(&mut self, crash_at: Option<&str>) {
        self.spawn_daemon(|command| {
            command
                .env("SUPERVISOR_LOG", "debug")
                .env_remove("SUPERVISOR_TEST_CRASH_AT");
            if let Some(step) = crash_at {
                command.env("SUPERVISOR_TEST_CRASH_AT", step);
            }
        });
    }

    /// The highest tick in the log, once it has gone `past` that number.
    fn wait_ticks_past(&self, name: &str, past: u64) -> u64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let last = ticks(&self.log(name)).last().copied().unwrap_or(0);
            if last > past {
                return last;
            }
            assert!(Instant::now() < deadline, "{name} stuck at tick {last}");
            sleep(Duration::from_millis(50));
        }
    }

    /// `supervisor shutdown`, exit 0, and nothing left: no cgroup, no mount,
    /// nothing in state_dir/containers.
    fn shutdown(&mut self) {
        self.ok(&["shutdown"]);
        let status = self.wait_daemon_exit();
        assert_eq!(status.code(), Some(0), "daemon: {}", self.daemon_stderr());
        assert_nothing_left(self);
    }
}

impl Drop for Fixture {
    /// A test that failed with the daemon down: one more, once it answers
    /// (it has adopted what runs), stops it all (TestDaemon's drop).
    fn drop(&mut self) {
        if !self.has_daemon() && self.state.join("daemon.config.json").exists() {
            self.start_daemon_with(None);
            let deadline = Instant::now() + WAIT;
            while !self.cli(&["status"]).status.success() && Instant::now() < deadline {
                sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The daemon runs on the layout this pass of tests/run.sh set up, if it says.
fn assert_layout(f: &Fixture) {
    let Some(want) = integration_tests::expected_layout() else {
        return;
    };
    let log = f.daemon_stderr();
    let line = log
        .lines()
        .find(|l| l.contains("cgroup layout: "))
        .unwrap_or_else(|| panic!("no layout in the daemon's log:\n{log}"));
    assert!(
        line.to_lowercase()
            .contains(&format!("cgroup layout: {want}, ")),
        "expected {want}: {line}"
    );
}

/// The tick numbers of a log, in order.
fn ticks(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|line| line.split("tick ").nth(1))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// 1, 2, 3, ... without gap or duplicate.
fn assert_continuous(log: &str) {
    let ticks = ticks(log);
    assert!(!ticks.is_empty(), "no ticks: {log}");
    for (i, tick) in ticks.iter().enumerate() {
        assert_eq!(
            *tick,
            i as u64 + 1,
            "tick {} where {} was due (gap or duplicate):\n{log}",
            tick,
            i + 1
        );
    }
}

fn hierarchies() -> Vec<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .filter(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 "))
        .map(|l| PathBuf::from(l.split(' ').nth(4).unwrap()))
        .collect()
}

fn assert_nothing_left(f: &Fixture) {
    for root in hierarchies() {
        let path = root.join(&f.cgroup_parent);
        assert!(!path.exists(), "{} left behind", path.display());
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = f.path().display().to_string();
    assert!(!mountinfo.contains(&dir), "mounts under {dir} left behind");
    let left: Vec<String> = fs::read_dir(f.state.join("containers"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left in state_dir/containers: {left:?}");
    assert!(!f.state.join("daemon.config.json").exists());
}

/// Running (a zombie is not: an adopted init is not the daemon's child,
/// whoever it was orphaned to reaps it).
fn alive(pid: i64) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
    !state.starts_with('Z') && !state.starts_with('X')
}

/// How many of our inits run in a service's cgroup (two would be a duplicate).
fn inits_in(cgroup: &str) -> usize {
    let procs = hierarchies()
        .into_iter()
        .map(|root| root.join(cgroup).join("cgroup.procs"))
        .find(|p| p.exists());
    let Some(procs) = procs else { return 0 };
    fs::read_to_string(procs)
        .unwrap_or_default()
        .lines()
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "init")
        })
        .count()
}

const TWO_SERVICES: &str = "  ticker:
    image: ROOTFS
    command: \"i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.02; done\"
  web:
    image: ROOTFS
    command: sleep 1000
    restart: on-failure
";

#[test]
fn a_daemon_killed_at_rest_is_followed_by_one_that_adopts_everything() {
    assert!(TWO_SERVICES.contains(TICKER));
    let mut f = Fixture::new(TWO_SERVICES);
    f.start_daemon();
    assert_layout(&f);
    let before: Vec<Value> = ["ticker", "web"]
        .iter()
        .map(|n| f.wait_state(n, "running"))
        .collect();
    f.wait_ticks_past("ticker", 5);
    f.kill_daemon();
    // The ticker writes while no daemon reads: its pipe keeps the lines.
    sleep(Duration::from_millis(500));
    assert!(alive(before[0]["pid"].as_i64().unwrap()));
    f.start_daemon();
    for old in &before {
        let name = old["name"].as_str().unwrap();
        let now = f.wait_state(name, "running");
        assert_eq!(now["pid"], old["pid"], "{name}: not the same pid");
        assert_eq!(now["restarts"], old["restarts"], "{name}: restarted");
        assert_eq!(inits_in(now["cgroup"].as_str().unwrap()), 1, "{name}");
        assert!(f.log(name).contains("adopted, pid"), "{}", f.log(name));
    }
    let last = f.wait_ticks_past("ticker", 0);
    f.wait_ticks_past("ticker", last + 20);
    assert_continuous(&f.log("ticker"));
    // The adopted services obey: freeze, thaw, stop; the shutdown leaves nothing.
    f.ok(&["freeze", "ticker"]);
    assert_eq!(f.service("ticker")["state"], "frozen");
    f.ok(&["thaw", "ticker"]);
    f.ok(&["stop", "web"]);
    let web = f.service("web");
    assert_eq!(web["state"], "stopped");
    assert!(!alive(before[1]["pid"].as_i64().unwrap()));
    for root in hierarchies() {
        assert!(!root.join(web["cgroup"].as_str().unwrap()).exists());
    }
    // A second crash and adoption of an adopted service.
    f.kill_daemon();
    f.start_daemon();
    assert_eq!(f.wait_state("ticker", "running")["pid"], before[0]["pid"]);
    assert_eq!(f.service("web")["state"], "stopped");
    f.shutdown();
    assert_continuous(&f.log("ticker"));
}

#[test]
fn services_that_ended_while_no_daemon_ran_follow_their_restart_policy() {
    let mut f = Fixture::new(
        "  web:
    image: ROOTFS
    command: sleep 1000
    restart: on-failure
  quitter:
    image: ROOTFS
    command: \"while [ ! -e /tmp/quit ]; do sleep 0.05; done; exit 3\"
    restart: never
",
    );
    f.start_daemon();
    let web = f.wait_state("web", "running");
    let quitter = f.wait_state("quitter", "running");
    f.kill_daemon();
    let web_pid = web["pid"].as_i64().unwrap();
    kill(Pid::from_raw(web_pid as i32), Signal::SIGKILL).unwrap();
    let quitter_pid = quitter["pid"].as_i64().unwrap();
    fs::write(format!("/proc/{quitter_pid}/root/tmp/quit"), "").unwrap();
    let deadline = Instant::now() + WAIT;
    while alive(web_pid) || alive(quitter_pid) {
        assert!(Instant::now() < deadline, "the services did not end");
        sleep(Duration::from_millis(50));
    }
    f.start_daemon();
    // Killed: restarted (on-failure), counted as a restart, in a new run.
    let now = f.wait_for("web", "restarted", |s| {
        s["state"] == "running" && s["pid"] != web["pid"]
    });
    assert_eq!(
        now["restarts"].as_u64(),
        Some(web["restarts"].as_u64().unwrap() + 1)
    );
    assert_eq!(inits_in(now["cgroup"].as_str().unwrap()), 1);
    assert!(
        f.log("web").contains("ended while no daemon ran"),
        "{}",
        f.log("web")
    );
    // Exited with 3 (as its init wrote), not restarted (never).
    let quitter = f.wait_state("quitter", "failed");
    assert_eq!(quitter["exit_code"], 3, "{quitter}");
    assert_eq!(quitter["pid"], Value::Null);
    f.shutdown();
}

/// A lone service's restart: the teardown of its first run removed
/// state_dir/containers (nothing else used it), and its next run must still
/// hold its log pipe and leave an exit status for a next daemon.
#[test]
fn a_lone_service_after_a_restart_keeps_its_logs_and_exit_status_across_crashes() {
    let mut f = Fixture::new(
        "  quitter:
    image: ROOTFS
    command: \"until [ -e /tmp/say ]; do sleep 0.05; done; echo bye; until [ -e /tmp/quit ]; do sleep 0.05; done; exit 3\"
    restart: never
",
    );
    f.start_daemon();
    let first = f.wait_state("quitter", "running");
    f.ok(&["restart", "quitter"]);
    let run = f.wait_for("quitter", "restarted", |s| {
        s["state"] == "running" && s["pid"] != first["pid"]
    });
    let pid = run["pid"].as_i64().unwrap();
    // A line written while no daemon runs reaches the log once one is back.
    f.kill_daemon();
    fs::write(format!("/proc/{pid}/root/tmp/say"), "").unwrap();
    sleep(Duration::from_millis(300));
    f.start_daemon();
    assert_eq!(f.wait_state("quitter", "running")["pid"], pid);
    let deadline = Instant::now() + WAIT;
    while !f.log("quitter").contains("bye") {
        assert!(Instant::now() < deadline, "{}", f.log("quitter"));
        sleep(Duration::from_millis(50));
    }
    // An exit while no daemon runs is known to the next one.
    f.kill_daemon();
    fs::write(format!("/proc/{pid}/root/tmp/quit"), "").unwrap();
    while alive(pid) {
        assert!(Instant::now() < deadline, "quitter did not end");
        sleep(Duration::from_millis(50));
    }
    f.start_daemon();
    let quitter = f.wait_state("quitter", "failed");
    assert_eq!(quitter["exit_code"], 3, "{quitter}\n{}", f.log("quitter"));
    assert_eq!(quitter["exit_reason"], "exited", "{quitter}");
    f.shutdown();
}

#[test]
fn reexec_keeps_the_pids_and_the_logs() {
    let mut f = Fixture::new(TWO_SERVICES);
    f.start_daemon();
    let before: Vec<Value> = ["ticker", "web"]
        .iter()
        .map(|n| f.wait_state(n, "running"))
        .collect();
    let daemon_pid = f.daemon_pid();
    for round in 0..3 {
        let last = f.wait_ticks_past("ticker", 0);
        f.ok(&["reexec"]);
        assert_eq!(f.daemon_pid(), daemon_pid);
        assert!(
            f.daemon_running(),
            "round {round}: the daemon exited: {}",
            f.daemon_stderr()
        );
        for old in &before {
            let name = old["name"].as_str().unwrap();
            let now = f.service(name);
            assert_eq!(now["state"], "running", "round {round}: {now}");
            assert_eq!(now["pid"], old["pid"], "round {round}: {name}");
            assert_eq!(now["restarts"], old["restarts"], "round {round}: {name}");
        }
        f.wait_ticks_past("ticker", last + 10);
    }
    assert_continuous(&f.log("ticker"));
    // The services' exits still reach the daemon (its children again).
    kill(
        Pid::from_raw(before[1]["pid"].as_i64().unwrap() as i32),
        Signal::SIGKILL,
    )
    .unwrap();
    f.wait_for("web", "restarted", |s| {
        s["state"] == "running" && s["pid"] != before[1]["pid"]
    });
    f.shutdown();
    assert_continuous(&f.log("ticker"));
}

#[test]
fn a_daemon_that_crashes_in_a_start_a_stop_or_a_freeze_is_followed_by_one_that_converges() {
    let mut f = Fixture::new(
        "  web:
    image: ROOTFS
    command: sleep 1000
",
    );
    // In the middle of the autostart: the next daemon starts it once.
    f.start_daemon_with(Some("start"));
    assert!(!f.wait_daemon_exit().success());
    f.start_daemon();
    let web = f.wait_state("web", "running");
    assert_eq!(inits_in(web["cgroup"].as_str().unwrap()), 1);
    f.kill_daemon();

    // In the middle of a stop: the next daemon finishes it.
    f.start_daemon_with(Some("stop"));
    f.wait_answering();
    assert_eq!(f.wait_state("web", "running")["pid"], web["pid"]);
    let _ = f.cli(&["stop", "web"]);
    assert!(!f.wait_daemon_exit().success());
    f.start_daemon();
    let stopped = f.wait_state("web", "stopped");
    assert!(!alive(web["pid"].as_i64().unwrap()));
    for root in hierarchies() {
        assert!(!root.join(stopped["cgroup"].as_str().unwrap()).exists());
    }
    f.ok(&["start", "web"]);
    let web = f.wait_state("web", "running");
    f.kill_daemon();

    // In the middle of a restart: the next daemon finishes it, with a start.
    let before = web["pid"].as_i64().unwrap();
    f.start_daemon_with(Some("stop"));
    f.wait_answering();
    assert_eq!(f.wait_state("web", "running")["pid"], web["pid"]);
    let _ = f.cli(&["restart", "web"]);
    assert!(!f.wait_daemon_exit().success());
    f.start_daemon();
    let web = f.wait_state("web", "running");
    assert_ne!(web["pid"].as_i64(), Some(before), "{web}");
    assert!(!alive(before), "the restart did not end the old run");
    assert_eq!(inits_in(web["cgroup"].as_str().unwrap()), 1);
    f.kill_daemon();

    // In the middle of a freeze: the next daemon thaws it (the freeze was
    // never confirmed) and runs it.
    f.start_daemon_with(Some("freeze"));
    f.wait_answering();
    let _ = f.cli(&["freeze", "web"]);
    assert!(!f.wait_daemon_exit().success());
    f.start_daemon();
    let now = f.wait_state("web", "running");
    assert_eq!(now["pid"], web["pid"]);
    f.ok(&["freeze", "web"]);
    f.ok(&["thaw", "web"]);
    f.shutdown();
}

#[test]
fn reexec_runs_the_binary_on_disk_and_a_failed_exec_leaves_the_daemon_running() {
    use std::os::unix::fs::PermissionsExt;
    let mut f = Fixture::new(
        "  web:
    image: ROOTFS
    command: sleep 1000
",
    );
    // A copy of the binaries, to upgrade and to break.
    let bin_dir = f.path().join("bin");
    fs::create_dir(&bin_dir).unwrap();
    for name in ["supervisor", "init"] {
        fs::copy(bin(name), bin_dir.join(name)).unwrap();
    }
    f.exe = bin_dir.join("supervisor");
    f.start_daemon();
    let web = f.wait_state("web", "running");
    let daemon = f.daemon_pid();
    let exe = || fs::read_link(format!("/proc/{daemon}/exe")).unwrap();
    // An upgrade replaces the file: the running image's is deleted.
    fs::copy(bin("supervisor"), bin_dir.join("supervisor.new")).unwrap();
    fs::rename(bin_dir.join("supervisor.new"), &f.exe).unwrap();
    assert!(exe().display().to_string().ends_with(" (deleted)"));
    f.ok(&["reexec"]);
    assert_eq!(exe(), f.exe, "not the binary on disk");
    assert_eq!(f.service("web")["pid"], web["pid"]);
    // A binary that cannot be exec'd: the error, and the daemon carries on.
    fs::set_permissions(&f.exe, fs::Permissions::from_mode(0o644)).unwrap();
    let out = f.cli(&["reexec"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("reexec"), "{stderr}");
    fs::set_permissions(&f.exe, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(f.daemon_running());
    assert_eq!(f.service("web")["pid"], web["pid"]);
    f.ok(&["stop", "web"]);
    f.shutdown();
}

#[test]
fn a_service_list_changed_while_no_daemon_ran_is_applied_as_a_reload_would() {
    let mut f = Fixture::new(
        "  kept:
    image: ROOTFS
    command: sleep 1000
  changed:
    image: ROOTFS
    command: sleep 1000
  removed:
    image: ROOTFS
    command: sleep 1000
",
    );
    f.start_daemon();
    let kept = f.wait_state("kept", "running");
    let changed = f.wait_state("changed", "running");
    let removed = f.wait_state("removed", "running");
    f.kill_daemon();
    f.write_services(
        "",
        "  kept:
    image: ROOTFS
    command: sleep 1000
  changed:
    image: ROOTFS
    command: sleep 2000
  added:
    image: ROOTFS
    command: sleep 1000
",
    );
    f.start_daemon();
    assert_eq!(f.wait_state("kept", "running")["pid"], kept["pid"]);
    let now = f.wait_for("changed", "restarted", |s| {
        s["state"] == "running" && s["pid"] != changed["pid"]
    });
    assert_eq!(inits_in(now["cgroup"].as_str().unwrap()), 1);
    f.wait_state("added", "running");
    let deadline = Instant::now() + WAIT;
    while alive(removed["pid"].as_i64().unwrap()) {
        assert!(Instant::now() < deadline, "the removed service still runs");
        sleep(Duration::from_millis(50));
    }
    for root in hierarchies() {
        assert!(!root.join(removed["cgroup"].as_str().unwrap()).exists());
    }
    let status = f.ok(&["status"]);
    assert!(!status.contains("removed"), "{status}");
    f.shutdown();
}
