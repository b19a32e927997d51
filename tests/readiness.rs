//! Readiness, for real (as root): `ready: notify` services speaking systemd's
//! sd_notify protocol (READY=1, STATUS=, WATCHDOG=1) on their socket, the
//! watchdog, and `depends_on`'s conditions (`service_healthy`,
//! `service_completed_successfully`). Each test has its own daemon, state_dir
//! and cgroup_parent. The services run `notify-probe` (tests/notify_probe),
//! which sends from its own, living process.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use integration_tests::daemon::WAIT;
use integration_tests::{bin, daemon_fixture, TestDaemon};
use serde_json::Value;

daemon_fixture!(
    /// One daemon with its own state_dir, cgroup_parent and busybox rootfs
    /// (with `/bin/notify-probe`), and a host directory `shared/`.
    Fixture
);

impl Fixture {
    /// `services`: the YAML of the `services:` mapping (indented by 2), where
    /// `ROOTFS` stands for the busybox rootfs (with `/bin/notify-probe`) and
    /// `SHARED` for a host directory of the test.
    fn new(services: &str) -> Fixture {
        let daemon = TestDaemon::new("readiness-test");
        fs::copy(bin("notify-probe"), daemon.rootfs.join("bin/notify-probe"))
            .expect("copy notify-probe into the rootfs");
        let shared = daemon.path().join("shared");
        fs::create_dir(&shared).unwrap();
        daemon.write_services(
            "",
            &services.replace("SHARED", &shared.display().to_string()),
        );
        Fixture(daemon)
    }

    fn shared(&self, name: &str) -> PathBuf {
        self.path().join("shared").join(name)
    }

    /// Runs `touch PATH` inside the running service.
    fn touch(&self, name: &str, path: &str) {
        self.ok(&["exec", name, "--", "touch", path]);
    }

    /// Waits until the host file `path` has `lines` lines.
    fn wait_lines(&self, path: &PathBuf, lines: usize) {
        let deadline = Instant::now() + WAIT;
        loop {
            let count = fs::read_to_string(path).unwrap_or_default().lines().count();
            if count == lines {
                return;
            }
            assert!(count < lines, "{}: {count} lines", path.display());
            assert!(
                Instant::now() < deadline,
                "{} never had {lines} lines",
                path.display()
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// `shutdown`, and no notify socket is left behind.
    fn shutdown(&mut self) {
        self.0.shutdown();
        assert!(
            !self.state.join("notify").join("app").exists(),
            "a notify socket was left behind"
        );
    }
}

/// The STATE column of `name`'s row in the `status` table.
fn table_state(table: &str, name: &str) -> String {
    let header = table.lines().next().unwrap();
    let (start, end) = (header.find("STATE").unwrap(), header.find("PID").unwrap());
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{table}"));
    row[start..end].trim().to_string()
}

#[test]
fn a_notify_service_is_ready_at_ready_1_and_hears_only_its_own_processes() {
    let mut f = Fixture::new(concat!(
        "  app:\n    image: ROOTFS\n    ready: notify\n",
        "    command: [notify-probe, send, STATUS=starting, wait, /tmp/one, send, STATUS=checked,\n",
        "              wait, /tmp/two, send, 'READY=1\\nSTATUS=serving']\n",
        "  plain:\n    image: ROOTFS\n    command: [sleep, '1000']\n",
    ));
    f.start_daemon();
    let app = f.wait_for("app", "said it was starting", |s| {
        s["status_text"] == "starting"
    });
    assert_eq!(app["state"], "running");
    assert_eq!(app["ready"], false, "{app}");
    f.wait_for("plain", "became ready by running", |s| s["ready"] == true);
    let table = f.ok(&["status"]);
    assert_eq!(table_state(&table, "app"), "running (not ready)", "{table}");
    assert_eq!(table_state(&table, "plain"), "running", "{table}");
    f.wait_logged("app", "NOTIFY_SOCKET=/run/supervisor/notify.sock\n");
    assert!(
        f.log("app").contains("WATCHDOG_USEC=\n"),
        "{}",
        f.log("app")
    );

    // READY=1 from a process outside the service's cgroup (this test) is
    // ignored; the service's next message comes after it on the socket.
    let socket = f.state.join("notify/app/notify.sock");
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"READY=1\nSTATUS=forged", &socket)
        .expect("send to the service's notify socket");
    f.touch("app", "/tmp/one");
    let app = f.wait_for("app", "said it checked", |s| s["status_text"] == "checked");
    assert_eq!(app["ready"], false, "a message from outside counted: {app}");
    assert!(
        f.daemon_stderr().contains("outside its cgroup: ignored"),
        "{}",
        f.daemon_stderr()
    );

    f.touch("app", "/tmp/two");
    let app = f.wait_for("app", "became ready", |s| s["ready"] == true);
    assert_eq!(app["status_text"], "serving");
    assert_eq!(app["state"], "running");
    f.wait_logged("app", "ready");
    let table = f.ok(&["status"]);
    assert_eq!(table_state(&table, "app"), "running", "{table}");

    // A stopped service is not ready, has no status text, and its socket is gone.
    f.ok(&["stop", "app"]);
    let app = f.service("app");
    assert_eq!(app["ready"], false, "{app}");
    assert_eq!(app["status_text"], Value::Null, "{app}");
    assert!(!socket.exists(), "the socket outlived the run");
    f.shutdown();
}

#[test]
fn the_watchdog_restarts_a_service_whose_pings_stop() {
    let mut f = Fixture::new(concat!(
        "  app:\n    image: ROOTFS\n    ready: notify\n    watchdog: 1s\n",
        "    command: [notify-probe, send, READY=1, ping, '4', '200']\n",
    ));
    f.start_daemon();
    f.wait_logged("app", "WATCHDOG_USEC=1000000\n");
    f.wait_logged("app", "watchdog timeout: no WATCHDOG=1 within 1s: killing");
    let app = f.wait_for("app", "restarted after its watchdog", |s| {
        s["restarts"].as_u64() >= Some(1) && s["state"] == "running"
    });
    assert_eq!(app["exit_reason"], "watchdog", "{app}");
    // Each run must be ready again: this one, before its own watchdog ends it
    // (a READY=1 read before its setup's end was once lost, and the run was
    // only ended by its ready_timeout).
    f.wait_for("app", "became ready again", |s| {
        s["ready"] == true && s["pid"] == app["pid"]
    });
    f.shutdown();
}

#[test]
fn service_healthy_holds_a_dependent_back_until_the_dependency_is_ready() {
    let mut f = Fixture::new(concat!(
        "  db:\n    image: ROOTFS\n    ready: notify\n",
        "    command: [notify-probe, wait, /tmp/go, send, READY=1]\n",
        "  web:\n    image: ROOTFS\n    command: [sleep, '1000']\n",
        "    depends_on:\n      db: {condition: service_healthy}\n",
        // Never ready: its dependent's start fails, naming it.
        "  mute:\n    image: ROOTFS\n    ready: notify\n    ready_timeout: 1s\n    restart: never\n",
        "    autostart: false\n    command: [notify-probe]\n",
        "  client:\n    image: ROOTFS\n    autostart: false\n    command: [sleep, '1000']\n",
        "    depends_on:\n      mute:\n        condition: service_healthy\n",
    ));
    f.start_daemon();
    f.wait_for("db", "ran", |s| s["state"] == "running");
    let web = f.service("web");
    assert_eq!(web["state"], "starting", "{web}");
    assert_eq!(web["pid"], Value::Null, "web started before db was ready");
    assert_eq!(f.service("db")["ready"], false);
    f.touch("db", "/tmp/go");
    f.wait_for("web", "started once db was ready", |s| {
        s["state"] == "running"
    });
    assert_eq!(f.service("db")["ready"], true);

    let line = f.fails(&["start", "client"]);
    assert!(
        line.contains("dependency mute failed: not ready within 1s (no READY=1)"),
        "{line}"
    );
    f.wait_logged("mute", "not ready within 1s (no READY=1): killing");
    assert_eq!(f.service("client")["state"], "stopped");
    f.shutdown();
}

#[test]
fn service_healthy_waits_for_a_passed_health_check_and_fails_on_an_unhealthy_one() {
    let mut f = Fixture::new(concat!(
        "  db:\n    image: ROOTFS\n    command: [sleep, '1000']\n",
        "    healthcheck: {test: [CMD-SHELL, 'test -e /tmp/go'], interval: 200ms, retries: 1000}\n",
        "  web:\n    image: ROOTFS\n    command: [sleep, '1000']\n",
        "    depends_on:\n      db: {condition: service_healthy}\n",
        // Unhealthy before any pass: its dependent's start fails, naming it.
        "  sick:\n    image: ROOTFS\n    autostart: false\n    command: [sleep, '1000']\n",
        "    healthcheck: {test: [CMD, 'false'], interval: 200ms, retries: 2, on_unhealthy: none}\n",
        "  client:\n    image: ROOTFS\n    autostart: false\n    command: [sleep, '1000']\n",
        "    depends_on:\n      sick: {condition: service_healthy}\n",
    ));
    f.start_daemon();
    f.wait_for("db", "ran", |s| s["state"] == "running");
    let web = f.service("web");
    assert_eq!(web["state"], "starting", "{web}");
    assert_eq!(
        web["pid"],
        Value::Null,
        "web started before db passed a check"
    );
    assert_eq!(f.service("db")["ready"], false);
    f.touch("db", "/tmp/go");
    f.wait_for("web", "started once db passed a check", |s| {
        s["state"] == "running"
    });
    assert_eq!(f.service("db")["ready"], true);

    let line = f.fails(&["start", "client"]);
    assert!(
        line.contains("dependency sick is unhealthy: it never passed a health check"),
        "{line}"
    );
    assert_eq!(f.service("client")["state"], "stopped");
    f.shutdown();
}

#[test]
fn service_completed_successfully_runs_a_one_shot_once() {
    let mut f = Fixture::new(concat!(
        "  prep:\n    image: ROOTFS\n    restart: never\n    autostart: false\n",
        "    mounts: [{source: SHARED, target: /shared}]\n",
        "    command: [sh, -c, 'echo ran >> /shared/runs']\n",
        "  app:\n    image: ROOTFS\n    autostart: false\n    command: [sleep, '1000']\n",
        "    depends_on:\n      prep: {condition: service_completed_successfully}\n",
        "  broken:\n    image: ROOTFS\n    restart: never\n    autostart: false\n",
        "    command: [sh, -c, 'exit 3']\n",
        "  needy:\n    image: ROOTFS\n    autostart: false\n    command: [sleep, '1000']\n",
        "    depends_on:\n      broken: {condition: service_completed_successfully}\n",
    ));
    f.start_daemon();
    let runs = f.shared("runs");
    f.ok(&["start", "app"]);
    assert_eq!(f.service("app")["state"], "running");
    let prep = f.service("prep");
    assert_eq!(
        (&prep["state"], &prep["exit_code"]),
        (&"exited".into(), &0.into())
    );
    f.wait_lines(&runs, 1);

    // A second start of the dependent does not run the one-shot again.
    f.ok(&["stop", "app"]);
    f.ok(&["start", "app"]);
    assert_eq!(f.service("app")["state"], "running");
    assert_eq!(fs::read_to_string(&runs).unwrap(), "ran\n");

    // `restart` of the one-shot runs it again.
    f.ok(&["restart", "prep"]);
    f.wait_lines(&runs, 2);
    f.wait_for("prep", "completed again", |s| s["state"] == "exited");

    // A one-shot that fails fails its dependent's start, naming it.
    let line = f.fails(&["start", "needy"]);
    assert!(
        line.contains("dependency broken did not complete successfully: exited with status 3"),
        "{line}"
    );
    assert_eq!(f.service("needy")["state"], "stopped");
    assert_eq!(f.service("broken")["state"], "failed");
    f.shutdown();
}

#[test]
fn a_service_in_a_user_namespace_as_another_user_reaches_its_socket() {
    let mut f = Fixture::new(concat!(
        "  app:\n    image: ROOTFS\n    ready: notify\n    user: '1000:1000'\n",
        "    namespaces: [pid, mount, uts, ipc, net, cgroup, user]\n",
        "    command: [notify-probe, send, 'READY=1\\nSTATUS=from uid 1000']\n",
    ));
    f.start_daemon();
    let app = f.wait_for("app", "became ready", |s| s["ready"] == true);
    assert_eq!(app["status_text"], "from uid 1000");
    let pid = app["pid"].as_i64().unwrap();
    let map = fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert!(!map.contains("4294967295"), "not a user namespace: {map}");
    f.shutdown();
}
