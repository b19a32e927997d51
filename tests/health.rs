//! Health checks, for real (as root): they run inside the service, make it
//! healthy or unhealthy, restart it (or not), are killed at their timeout
//! without holding the daemon, and honour start_period. Each test has its own
//! state_dir and cgroup_parent.

use std::fs;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use integration_tests::{bin, daemon_fixture, TestDaemon};
use serde_json::Value;

/// A file only the services' image has.
const MARKER: &str = "/only-in-the-image";

daemon_fixture!(
    /// One daemon with its own state_dir, cgroup_parent and busybox rootfs.
    Fixture
);

impl Fixture {
    /// `services`: the YAML of the `services:` mapping (indented by 2), where
    /// `ROOTFS` stands for the rootfs path.
    fn new(services: &str) -> Fixture {
        let daemon = TestDaemon::new("health-test");
        fs::write(
            daemon.rootfs.join(MARKER.trim_start_matches('/')),
            "image\n",
        )
        .unwrap();
        daemon.write_services("", services);
        Fixture(daemon)
    }

    fn wait_health(&self, name: &str, health: &str) -> Value {
        self.wait_for(name, health, |s| s["health"] == health)
    }
}

fn log_entries(svc: &Value) -> &Vec<Value> {
    svc["health_log"].as_array().expect("health_log is a list")
}

#[test]
fn a_passing_check_runs_inside_the_service_and_makes_it_healthy() {
    let mut f = Fixture::new(concat!(
        "  web:\n    image: ROOTFS\n    hostname: webhost\n",
        "    command: [sleep, \"1000\"]\n",
        "    healthcheck:\n",
        "      test: \"cat /only-in-the-image; hostname; tr '\\\\0' ' ' < /proc/1/cmdline; echo; id -u\"\n",
        "      interval: 200ms\n",
        "  plain:\n    image: ROOTFS\n    command: [sleep, \"1000\"]\n",
    ));
    f.start_daemon();
    let web = f.wait_health("web", "healthy");
    let last = log_entries(&web).last().unwrap().clone();
    assert_eq!(last["exit_code"], 0, "{web}");
    let output = last["output"].as_str().unwrap();
    // The image's file, the service's hostname, its pid 1 (our init), its user.
    assert_eq!(
        output, "image\nwebhost\ninit --hold-fd=7 --status-fd=8 -- sleep 1000 \n0\n",
        "{web}"
    );
    for key in ["start", "end"] {
        assert!(last[key].as_str().unwrap().ends_with('Z'), "{last}");
    }
    assert_eq!(web["health_failing_streak"], 0);
    assert!(f
        .log("web")
        .contains("health: healthy (first check passed)"));
    // A service without a healthcheck has none.
    let plain = f.service("plain");
    assert_eq!(plain["health"], Value::Null);
    assert_eq!(log_entries(&plain).len(), 0);
    let table = f.ok(&["status"]);
    let header = table.lines().next().unwrap();
    let words: Vec<&str> = header.split_whitespace().take(3).collect();
    assert_eq!(words, ["NAME", "STATE", "HEALTH"], "{table}");
    let row = table.lines().find(|l| l.starts_with("web ")).unwrap();
    assert!(row.contains(" running  healthy "), "{table}");
    let inspect: Value = serde_json::from_str(&f.ok(&["inspect", "web"])).unwrap();
    assert_eq!(inspect["health"]["status"], "healthy", "{inspect}");
    assert!(!inspect["health"]["log"].as_array().unwrap().is_empty());
    let inspect: Value = serde_json::from_str(&f.ok(&["inspect", "plain"])).unwrap();
    assert_eq!(inspect["health"], Value::Null);

    // No checks while frozen; they go on once thawed.
    f.ok(&["freeze", "web"]);
    let frozen = f.service("web");
    sleep(Duration::from_secs(1));
    let later = f.service("web");
    assert_eq!(
        log_entries(&frozen).last().unwrap()["end"],
        log_entries(&later).last().unwrap()["end"],
        "a check ran while frozen: {later}"
    );
    f.ok(&["thaw", "web"]);
    let end = log_entries(&later).last().unwrap()["end"].clone();
    f.wait_for("web", "checked after thaw", |s| {
        log_entries(s).last().unwrap()["end"] != end
    });
}

#[test]
fn failing_checks_make_it_unhealthy_and_restart_it_unless_none() {
    let mut f = Fixture::new(concat!(
        "  restarted:\n    image: ROOTFS\n    command: [sleep, \"1000\"]\n",
        "    healthcheck: {test: [CMD, \"false\"], interval: 200ms, retries: 3}\n",
        "  reported:\n    image: ROOTFS\n    command: [sleep, \"1000\"]\n",
        "    healthcheck: {test: [\"sh\", \"-c\", \"echo sick; exit 3\"], interval: 200ms, retries: 2, on_unhealthy: none}\n",
        "  never:\n    image: ROOTFS\n    command: [sleep, \"1000\"]\n    restart: never\n",
        "    healthcheck: {test: [CMD-SHELL, \"exit 1\"], interval: 200ms, retries: 1}\n",
    ));
    f.start_daemon();
    let first = f.wait_for("restarted", "running", |s| s["state"] == "running")["pid"].clone();
    let svc = f.wait_for("restarted", "restarted", |s| {
        s["restarts"] == 1 && s["state"] == "running" && s["pid"] != first
    });
    assert!(
        f.log("restarted")
            .contains("health: unhealthy (3 failed checks in a row; the last: status 1"),
        "{}",
        f.log("restarted")
    );
    assert!(f.log("restarted").contains("unhealthy: restarting"));
    // The new run's health starts over.
    assert_ne!(svc["health"], "unhealthy", "{svc}");
    assert!(log_entries(&svc).len() < 3, "{svc}");

    let reported = f.wait_health("reported", "unhealthy");
    let pid = reported["pid"].clone();
    let last = log_entries(&reported).last().unwrap().clone();
    assert_eq!(
        (last["exit_code"].clone(), last["output"].clone()),
        (3.into(), "sick\n".into())
    );
    // It keeps being checked, and keeps running.
    let later = f.wait_for("reported", "checked again", |s| {
        s["health_failing_streak"].as_u64() >= Some(5)
    });
    assert_eq!(
        (later["restarts"].clone(), later["pid"].clone()),
        (0.into(), pid)
    );
    assert_eq!(later["state"], "running");

    // restart: never defaults to on_unhealthy: none.
    let never = f.wait_health("never", "unhealthy");
    let later = f.wait_for("never", "checked again", |s| {
        s["health_failing_streak"].as_u64() >= Some(3)
    });
    assert_eq!(
        (later["restarts"].clone(), later["pid"].clone()),
        (0.into(), never["pid"].clone())
    );
}

#[test]
fn a_hanging_check_is_killed_at_its_timeout_and_the_daemon_goes_on() {
    let mut f = Fixture::new(concat!(
        "  hang:\n    image: ROOTFS\n    command: [sleep, \"1000\"]\n",
        "    healthcheck: {test: \"sleep 1000; true\", interval: 200ms, timeout: 300ms, retries: 2, on_unhealthy: none}\n",
    ));
    f.start_daemon();
    // Answered all along (the status polls themselves) while checks hang.
    let svc = f.wait_for("hang", "timed out twice", |s| {
        log_entries(s)
            .iter()
            .filter(|e| e["exit_code"] == -1)
            .count()
            >= 2
    });
    let last = log_entries(&svc).last().unwrap().clone();
    assert!(
        last["output"]
            .as_str()
            .unwrap()
            .contains("exceeded timeout (300ms)"),
        "{last}"
    );
    f.wait_health("hang", "unhealthy");
    // Each timed-out check was killed with its process group: at most the
    // check under way is left.
    let init = f.service("hang")["pid"].as_i64().unwrap();
    let mut sleeping = 0;
    let ns = fs::read_link(format!("/proc/{init}/ns/pid")).unwrap();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if fs::read_link(format!("/proc/{pid}/ns/pid")).ok().as_ref() != Some(&ns) {
            continue;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with(b"sleep\x001000\x00") && pid as i64 != init {
            sleeping += 1;
        }
    }
    // The service's own sleep, and at most the current check's.
    assert!(sleeping <= 2, "{sleeping} sleeps in the service");
}

#[test]
fn failures_within_start_period_do_not_count() {
    let mut f = Fixture::new(concat!(
        "  slow:\n    image: ROOTFS\n",
        "    command: [sh, -c, \"sleep 2; touch /tmp/up; exec sleep 1000\"]\n",
        "    healthcheck: {test: [test, -e, /tmp/up], interval: 200ms, retries: 1, start_period: 60s}\n",
    ));
    f.start_daemon();
    let svc = f.wait_health("slow", "healthy");
    assert_eq!(svc["restarts"], 0);
    assert!(!f.log("slow").contains("unhealthy"), "{}", f.log("slow"));
}

#[test]
fn bad_healthchecks_are_errors_with_their_place() {
    let f = Fixture::new(concat!(
        "  a:\n    command: [sleep, \"1\"]\n",
        "    healthcheck: {test: [CMD], interval: 0s}\n",
        "  b:\n    command: [sleep, \"1\"]\n",
        "    healthcheck: {retries: 2, on_unhealthy: later}\n",
    ));
    let out = Command::new(bin("supervisor"))
        .args(["check", "-c"])
        .arg(&f.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let file = f.config.display();
    for expected in [
        format!("{file}:6:25: test: [\"CMD\", ...] needs a program"),
        format!("{file}:6:42: interval: must be longer than 0"),
        format!("{file}:9:18: healthcheck: `test` is missing"),
        format!("{file}:9:45: on_unhealthy: `later` is not one of restart, none"),
    ] {
        assert!(stderr.contains(&expected), "{expected}\nin:\n{stderr}");
    }
}
