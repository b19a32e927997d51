//! Operating running services, for real (as root): `exec` into them, `inspect`
//! what the kernel made of them, `stats`, and `logs` with or without a daemon.
//! Each test has its own state_dir and cgroup_parent.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use integration_tests::daemon::WAIT;
use integration_tests::{bin, daemon_fixture, TestDaemon};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
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
        let daemon = TestDaemon::new("operate-test");
        fs::write(
            daemon.rootfs.join(MARKER.trim_start_matches('/')),
            "image\n",
        )
        .unwrap();
        daemon.write_services("", services);
        Fixture(daemon)
    }

    /// `exec NAME -- COMMAND...`: (exit code, stdout, stderr).
    fn exec(&self, options: &[&str], name: &str, command: &[&str]) -> (i32, String, String) {
        let mut args = vec!["exec"];
        args.extend(options);
        args.push(name);
        args.push("--");
        args.extend(command);
        let out = self.cli(&args);
        (
            out.status.code().expect("exec exited"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// stdout of a command in the service that must succeed.
    fn exec_ok(&self, name: &str, command: &[&str]) -> String {
        let (code, stdout, stderr) = self.exec(&[], name, command);
        assert_eq!(code, 0, "exec {name} {command:?}: {stderr}");
        stdout
    }

    fn pid(&self, name: &str) -> i32 {
        self.wait_state(name, "running")["pid"].as_i64().unwrap() as i32
    }
}

fn wait_child(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process {} did not exit",
            child.id()
        );
        sleep(Duration::from_millis(50));
    }
}

/// A `status` line of /proc/PID/status, e.g. "CapEff".
fn proc_status(pid: &str, key: &str) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// `script` gives the command a terminal of 30 rows and 100 columns.
fn in_terminal(command: &str) -> Output {
    assert!(
        Path::new("/usr/bin/script").exists(),
        "the -t tests need script(1) (Debian's bsdutils)"
    );
    Command::new("/usr/bin/script")
        .args([
            "-qec",
            &format!("stty rows 30 cols 100; {command}"),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

const SLEEPER: &str = "  web:\n    image: ROOTFS\n    hostname: webhost\n    env: {GREETING: hello}\n    command: [sh, -c, 'echo up; exec sleep 1000']\n";

#[test]
fn exec_runs_in_the_services_namespaces_root_cgroup_and_security() {
    let mut f = Fixture::new(SLEEPER);
    f.start_daemon();
    let pid = f.pid("web").to_string();
    let cmdline = f.exec_ok("web", &["cat", "/proc/1/cmdline"]);
    // The descriptors it holds for a daemon that adopts the service, then the command.
    assert!(
        cmdline.starts_with("init\0--hold-fd=7\0--status-fd=8\0--\0sh"),
        "pid 1: {cmdline:?}"
    );
    assert_eq!(f.exec_ok("web", &["cat", MARKER]), "image\n");
    assert_eq!(f.exec_ok("web", &["hostname"]), "webhost\n");
    assert_eq!(f.exec_ok("web", &["sh", "-c", "echo $GREETING"]), "hello\n");
    // Capabilities, no_new_privs and seccomp as the service's init has them.
    let inside = f.exec_ok("web", &["cat", "/proc/self/status"]);
    for key in ["CapBnd", "CapEff", "CapPrm", "NoNewPrivs", "Seccomp"] {
        let ours = inside
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .unwrap()
            .trim();
        assert_eq!(ours, proc_status(&pid, key), "{key}");
    }
    assert_eq!(
        proc_status(&pid, "Seccomp"),
        "2",
        "the service has a filter"
    );
    // Its cgroup: as init's inside, and counted in the service's group.
    let cgroups = f.exec_ok(
        "web",
        &[
            "sh",
            "-c",
            "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup",
        ],
    );
    let (own, init) = cgroups.split_once("--\n").unwrap();
    assert_eq!(own, init);
    let before = f.service("web")["pids_current"].as_u64().unwrap();
    let mut child = f
        .command(&["exec", "web", "--", "sleep", "30"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while f.service("web")["pids_current"].as_u64().unwrap() <= before {
        assert!(
            Instant::now() < deadline,
            "exec's process never counted in the group"
        );
        sleep(Duration::from_millis(50));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(wait_child(&mut child).code(), Some(128 + 15));
    f.shutdown();
}

#[test]
fn exec_passes_exit_codes_user_env_and_workdir() {
    let mut f = Fixture::new(SLEEPER);
    f.start_daemon();
    f.pid("web");
    assert_eq!(f.exec(&[], "web", &["true"]).0, 0);
    assert_eq!(f.exec(&[], "web", &["sh", "-c", "exit 3"]).0, 3);
    let (code, _, stderr) = f.exec(&[], "web", &["/etc/passwd"]);
    assert_eq!(code, 126, "{stderr}");
    let (code, _, stderr) = f.exec(&[], "web", &["no-such-command"]);
    assert_eq!(code, 127, "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
    let (code, out, stderr) = f.exec(
        &[
            "-u",
            "nobody",
            "-e",
            "A=1",
            "-e",
            "GREETING=bye",
            "-w",
            "/tmp",
        ],
        "web",
        &[
            "sh",
            "-c",
            "id -u; echo $A $GREETING; pwd; grep CapEff /proc/self/status",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(out, "65534\n1 bye\n/tmp\nCapEff:\t0000000000000000\n");
    f.shutdown();
}

#[test]
fn exec_with_a_terminal_and_run_with_a_terminal() {
    let mut f = Fixture::new(SLEEPER);
    f.start_daemon();
    f.pid("web");
    let command = format!(
        "{} --state-dir {} exec -t web -- sh -c 'tty; stty size; exit 5'",
        bin("supervisor").display(),
        f.state.display()
    );
    let out = in_terminal(&command);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(
        text.contains("/dev/pts/0"),
        "no terminal of the service's: {text:?}"
    );
    assert!(
        text.contains("30 100"),
        "window size not passed on: {text:?}"
    );
    f.shutdown();
    let command = format!(
        "{} run -t -c {} web -- sh -c 'test -t 0 && echo on-a-tty; stty size; exit 6'",
        bin("supervisor").display(),
        f.config.display()
    );
    let out = in_terminal(&command);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{text}");
    assert!(
        text.contains("on-a-tty") && text.contains("30 100"),
        "{text:?}"
    );
}

#[test]
fn exec_refuses_frozen_stopped_and_unknown_services() {
    let mut f = Fixture::new(SLEEPER);
    f.start_daemon();
    f.pid("web");
    assert!(f.fails(&["exec", "nope", "--", "true"]).contains("nope"));
    f.ok(&["freeze", "web"]);
    assert!(f.fails(&["exec", "web", "--", "true"]).contains("frozen"));
    f.ok(&["thaw", "web"]);
    f.ok(&["stop", "web"]);
    assert!(f
        .fails(&["exec", "web", "--", "true"])
        .contains("not running"));
    f.shutdown();
}

#[test]
fn exec_enters_a_user_namespace() {
    let mut f = Fixture::new(
        "  web:\n    image: ROOTFS\n    namespaces: [pid, mount, uts, ipc, net, cgroup, user]\n    command: [sleep, '1000']\n",
    );
    f.start_daemon();
    let pid = f.pid("web");
    let out = f.exec_ok("web", &["sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let host_map = fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(out, format!("0\n{host_map}"));
    assert!(
        !host_map.contains("4294967295"),
        "not a private range: {host_map}"
    );
    f.shutdown();
}

#[test]
fn inspect_shows_the_kernels_view() {
    let mut f = Fixture::new(SLEEPER);
    f.start_daemon();
    let pid = f.pid("web");
    let report: Value = serde_json::from_str(&f.ok(&["inspect", "web"])).unwrap();
    assert_eq!(report["pid"], pid);
    for entry in fs::read_dir(format!("/proc/{pid}/ns")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let host = fs::read_link(entry.path()).unwrap();
        assert_eq!(
            report["namespaces"][&name],
            host.to_string_lossy().as_ref(),
            "{name}"
        );
    }
    let own = fs::read_link("/proc/self/ns/pid").unwrap();
    assert_ne!(report["namespaces"]["pid"], own.to_string_lossy().as_ref());
    let host_cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for (line, entry) in host_cgroups
        .lines()
        .zip(report["cgroups"].as_array().unwrap())
    {
        assert!(
            line.ends_with(entry["path"].as_str().unwrap()),
            "{line} vs {entry}"
        );
    }
    let status = f.service("web");
    let group = format!("/{}", status["cgroup"].as_str().unwrap());
    assert!(
        report["cgroups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == group.as_str()),
        "no {group} in {}",
        report["cgroups"]
    );
    let effective: Vec<&str> = report["capabilities"]["effective"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(effective.contains(&"CAP_CHOWN"), "{effective:?}");
    assert!(!effective.contains(&"CAP_SYS_ADMIN"), "{effective:?}");
    assert_eq!(report["seccomp"], "filter");
    assert_eq!(report["no_new_privs"], true);
    assert!(
        report["rootfs"]["writable_layer"].is_string(),
        "{}",
        report["rootfs"]
    );
    assert!(
        report["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mount_point"] == "/proc"),
        "{}",
        report["mounts"]
    );
    assert!(report["health"].is_null());
    f.shutdown();
}

#[test]
fn stats_shows_cpu_memory_pids_and_io() {
    let mut f = Fixture::new(
        "  busy:\n    image: ROOTFS\n    command: [sh, -c, 'while :; do :; done']\n    limits: {memory: 64M}\n  idle:\n    image: ROOTFS\n    command: [sleep, '1000']\n",
    );
    f.start_daemon();
    f.pid("busy");
    f.pid("idle");
    let samples: Value = serde_json::from_str(&f.ok(&["stats", "--no-stream", "--json"])).unwrap();
    let samples = samples.as_array().unwrap();
    assert_eq!(samples.len(), 2);
    let busy = samples.iter().find(|s| s["name"] == "busy").unwrap();
    // A spinning shell: most of a CPU, less what six test runs sharing two
    // cores leave it (a tolerance, not a timing).
    let cpu = busy["cpu_percent"].as_f64().unwrap();
    assert!(cpu > 25.0 && cpu < 210.0, "busy: {busy}");
    assert!(busy["memory_bytes"].as_u64().unwrap() > 0, "{busy}");
    assert_eq!(busy["memory_limit_bytes"], 64 << 20, "{busy}");
    assert!(busy["pids"].as_u64().unwrap() >= 2, "{busy}");
    assert!(busy["io_read_bytes"].is_u64(), "{busy}");
    let one: Value =
        serde_json::from_str(&f.ok(&["stats", "idle", "--no-stream", "--json"])).unwrap();
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert!(one[0]["cpu_percent"].as_f64().unwrap() < 25.0, "{one}");
    let table = f.ok(&["stats", "--no-stream"]);
    assert!(
        table.starts_with("NAME") && table.contains("busy"),
        "{table}"
    );
    f.fails(&["stats", "nope", "--no-stream"]);
    f.shutdown();
}

#[test]
fn logs_follow_ends_with_the_service_and_logs_work_without_a_daemon() {
    let mut f = Fixture::new(
        "  web:\n    image: ROOTFS\n    command: [sh, -c, 'echo web-one; sleep 1; echo web-two; exec sleep 1000']\n  db:\n    image: ROOTFS\n    command: [sh, -c, 'echo db-one; exec sleep 1000']\n",
    );
    f.start_daemon();
    f.wait_logged("web", "web-two");
    f.wait_logged("db", "db-one");
    let mut follower = f
        .command(&["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    f.ok(&["stop", "web"]);
    assert!(wait_child(&mut follower).success());
    f.shutdown();
    // No daemon: the files are read directly.
    let web = f.ok(&["logs", "web"]);
    assert!(web.contains("web-one") && web.contains("web-two"), "{web}");
    let all = f.ok(&["logs"]);
    let lines: Vec<&str> = all.lines().collect();
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in {all}"))
    };
    assert!(lines[position("web-one")].starts_with("web | "), "{all}");
    assert!(lines[position("db-one")].starts_with("db  | "), "{all}");
    assert!(position("web-one") < position("web-two"));
    let stamps: Vec<&str> = lines
        .iter()
        .map(|l| l.split(" | ").nth(1).unwrap().split(' ').next().unwrap())
        .collect();
    let mut sorted = stamps.clone();
    sorted.sort();
    assert_eq!(stamps, sorted, "not in time order: {all}");
    assert!(f
        .fails(&["logs", "nope"])
        .contains("no log of service nope"));
}
