//! The supervisor daemon and its CLI, for real: services in their own namespaces,
//! root filesystems and cgroups, driven over the control socket. Each test has
//! its own state_dir and cgroup_parent, and checks that nothing is left behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use integration_tests::{
    bin, busybox_rootfs, require_root, unique_name, BoundedCommand, Lines, BOUND,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// Generous: the CI machine is small and busy; tests wait on conditions, never on timings.
const WAIT: Duration = Duration::from_secs(90);

/// One daemon with its own state_dir, cgroup_parent and busybox rootfs.
struct Fixture {
    dir: tempfile::TempDir,
    state: PathBuf,
    config: PathBuf,
    cgroup_parent: String,
    /// Top-level YAML lines besides state_dir and cgroup_parent.
    settings: String,
    daemon: Option<Child>,
}

impl Fixture {
    /// `services` is the YAML of the `services:` mapping (indented by 2), where
    /// `ROOTFS` stands for the rootfs path.
    fn new(services: &str) -> Fixture {
        Fixture::with_settings("", services)
    }

    fn with_settings(settings: &str, services: &str) -> Fixture {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("supervisor-test")
            .tempdir_in("/tmp")
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        busybox_rootfs(&rootfs);
        let fixture = Fixture {
            state: dir.path().join("state"),
            config: dir.path().join("services.yaml"),
            cgroup_parent: unique_name("supervisor-test"),
            settings: settings.to_string(),
            dir,
            daemon: None,
        };
        fixture.write_config(services);
        fixture
    }

    fn write_config(&self, services: &str) {
        let text = format!(
            "{}state_dir: {}\ncgroup_parent: {}\nservices:\n{}",
            self.settings,
            self.state.display(),
            self.cgroup_parent,
            services.replace(
                "ROOTFS",
                &self.dir.path().join("rootfs").display().to_string()
            )
        );
        fs::write(&self.config, text).unwrap();
    }

    fn start_daemon(&mut self) {
        let log = fs::File::create(self.dir.path().join("daemon.stderr")).unwrap();
        let child = Command::new(bin("supervisor"))
            .args(["daemon", "-c"])
            .arg(&self.config)
            .env("SUPERVISOR_LOG", "debug")
            .env_remove("SUPERVISOR_STATE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let deadline = Instant::now() + WAIT;
        while !self.cli(&["status"]).status.success() {
            if let Some(status) = self.daemon.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited with {status}: {}", self.daemon_stderr());
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not answer: {}",
                self.daemon_stderr()
            );
            sleep(Duration::from_millis(50));
        }
    }

    fn daemon_stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("daemon.stderr")).unwrap_or_default()
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("supervisor"))
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .env_remove("SUPERVISOR_STATE_DIR")
            .stdin(Stdio::null())
            .bounded_output()
            .unwrap()
    }

    /// Runs a verb that must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "supervisor {args:?} failed: {}\ndaemon: {}",
            String::from_utf8_lossy(&out.stderr),
            self.daemon_stderr()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a verb that must fail with exit 1 and one line on stderr; returns the line.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert_eq!(out.status.code(), Some(1), "supervisor {args:?}: {out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
        stderr
    }

    fn status(&self) -> Vec<Value> {
        let text = self.ok(&["status", "--json"]);
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    fn service(&self, name: &str) -> Value {
        self.status()
            .into_iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in status"))
    }

    /// Polls status until `check` holds for service `name`.
    fn wait_for(&self, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let svc = self.service(name);
            if check(&svc) {
                return svc;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never became {what}: {svc}\n{}",
                self.daemon_stderr()
            );
            sleep(Duration::from_millis(100));
        }
    }

    fn wait_state(&self, name: &str, state: &str) -> Value {
        self.wait_for(name, state, |s| s["state"] == state)
    }

    fn pid(&self, name: &str) -> i32 {
        let svc = self.wait_state(name, "running");
        svc["pid"].as_i64().unwrap() as i32
    }

    /// Waits until the service's log has a line containing `needle` (e.g. its
    /// command saying it has set its signal traps).
    fn wait_logged(&self, name: &str, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log(name).contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{name} never logged {needle:?}: {}",
                self.log(name)
            );
            sleep(Duration::from_millis(50));
        }
    }

    fn log(&self, name: &str) -> String {
        fs::read_to_string(self.state.join("logs").join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Stops the daemon with SIGTERM, waits for exit 0, checks nothing is left.
    fn shutdown(&mut self) {
        self.shutdown_with(Stop::Signal(Signal::SIGTERM), &[]);
    }

    /// Stops the daemon as `how` says, waits for exit 0, checks nothing is left but
    /// the writable layers of the `persisted` services.
    fn shutdown_with(&mut self, how: Stop, persisted: &[&str]) {
        let mut child = self.daemon.take().expect("daemon running");
        match how {
            Stop::Signal(signal) => kill(Pid::from_raw(child.id() as i32), signal).unwrap(),
            Stop::Command => {
                self.ok(&["shutdown"]);
            }
        }
        let status = wait_child(&mut child);
        assert_eq!(status.code(), Some(0), "daemon: {}", self.daemon_stderr());
        assert!(
            !self.state.join("control.sock").exists(),
            "socket left behind"
        );
        assert_no_cgroup(&self.cgroup_parent);
        assert_no_mounts(self.dir.path());
        // The writable layers (state_dir/containers/NAME) and their locks are gone.
        let left: Vec<String> = fs::read_dir(self.state.join("containers"))
            .map(|dir| {
                dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|name| !persisted.contains(&name.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "left in state_dir/containers: {left:?}");
    }
}

/// How a test ends the daemon.
enum Stop {
    Signal(Signal),
    /// `supervisor shutdown`.
    Command,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // A failed test: still stop the daemon so its services and cgroups go.
        if let Some(mut child) = self.daemon.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + WAIT;
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_child(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "daemon did not exit");
        sleep(Duration::from_millis(50));
    }
}

/// Every cgroup hierarchy mounted on this host.
fn hierarchies() -> Vec<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .filter(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 "))
        .map(|l| PathBuf::from(l.split(' ').nth(4).unwrap()))
        .collect()
}

fn assert_no_cgroup(parent: &str) {
    for root in hierarchies() {
        let path = root.join(parent);
        assert!(!path.exists(), "{} left behind", path.display());
    }
}

fn assert_no_mounts(dir: &Path) {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.display().to_string();
    assert!(
        !mountinfo.contains(&dir),
        "mounts under {dir} left behind:\n{mountinfo}"
    );
}

/// Whether the kernel reports the service's cgroup frozen: `frozen` in the unified
/// hierarchy's cgroup.events, or FROZEN in the v1 freezer's freezer.state where that
/// freezer is the one in use (`v1_freezer`, or a pure v1 host).
fn kernel_frozen(cgroup: &str, v1_freezer: bool) -> bool {
    let unified = hierarchies()
        .into_iter()
        .map(|root| root.join(cgroup).join("cgroup.events"))
        .find(|events| events.exists());
    match unified {
        Some(events) if !v1_freezer => {
            let text = fs::read_to_string(&events).unwrap();
            match text.lines().find_map(|l| l.strip_prefix("frozen ")) {
                Some(value) => value == "1",
                None => panic!("no frozen line in {}: {text}", events.display()),
            }
        }
        _ => {
            let state = Path::new("/sys/fs/cgroup/freezer")
                .join(cgroup)
                .join("freezer.state");
            let text =
                fs::read_to_string(&state).unwrap_or_else(|e| panic!("{}: {e}", state.display()));
            text.trim() == "FROZEN"
        }
    }
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// `/proc/PID/ns/NAME` as an inode string.
fn ns(pid: &str, name: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{name}"))
        .unwrap()
        .display()
        .to_string()
}

/// The children of a process (the service command under our init).
fn children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// The service's main process (init's child), once init has started it.
fn main_child(init: i32) -> i32 {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(&child) = children(init).first() {
            return child;
        }
        assert!(
            Instant::now() < deadline,
            "init {init} never started the service command"
        );
        sleep(Duration::from_millis(50));
    }
}

/// Waits until a file inside the service's root filesystem exists; returns it.
fn read_inside(pid: i32, path: &str) -> String {
    let file = format!("/proc/{pid}/root{path}");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(text) = fs::read_to_string(&file) {
            if !text.is_empty() {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "{file} never appeared");
        sleep(Duration::from_millis(50));
    }
}

/// The value of a cgroup limit file of the process: the v1 memory/pids
/// controller's file if the controller is mounted as v1, else the unified one.
fn limit_file(pid: i32, controller: &str, v1: &str, v2: &str) -> String {
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        if controllers.split(',').any(|c| c == controller) {
            return fs::read_to_string(format!("/sys/fs/cgroup/{controller}{path}/{v1}")).unwrap();
        }
    }
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    fs::read_to_string(format!("/sys/fs/cgroup{path}/{v2}")).unwrap()
}

const THREE: &str = "  db:
    image: ROOTFS
    command: hostname > /tmp/hostname; exec sleep 1000
  cache:
    image: ROOTFS
    hostname: the-cache
    command: hostname > /tmp/hostname; exec sleep 1000
  web:
    image: ROOTFS
    depends_on: [db, cache]
    command: hostname > /tmp/hostname; sleep 1000 & wait
    limits:
      memory: 64M
      pids: 50
";

#[test]
fn three_services_each_in_their_own_namespaces_and_cgroup() {
    let mut f = Fixture::new(THREE);
    f.start_daemon();
    let pids: Vec<i32> = ["db", "cache", "web"].iter().map(|n| f.pid(n)).collect();
    for name in ["pid", "mnt", "uts", "ipc", "net"] {
        let host = ns("self", name);
        let mine: Vec<String> = pids.iter().map(|p| ns(&p.to_string(), name)).collect();
        for (i, ns) in mine.iter().enumerate() {
            assert_ne!(*ns, host, "{name} namespace shared with the host");
            assert!(
                !mine[i + 1..].contains(ns),
                "{name} namespace shared between services"
            );
        }
    }
    for (pid, hostname) in pids.iter().zip(["db", "the-cache", "web"]) {
        // PID 1 inside is our init; the service command is its child.
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
        assert!(nspid.ends_with("\t1"), "{nspid}");
        // init names itself "init" as it starts (exec'd from a memfd, the
        // kernel names it after the descriptor): wait for that.
        let comm = || fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        let deadline = Instant::now() + WAIT;
        while comm().trim() != "init" && Instant::now() < deadline {
            sleep(Duration::from_millis(10));
        }
        assert_eq!(comm().trim(), "init");
        assert_eq!(read_inside(*pid, "/tmp/hostname").trim(), hostname);
    }
    let web = f.service("web");
    let web_pid = pids[2];
    assert_eq!(web["cgroup"], format!("{}/web", f.cgroup_parent));
    let own = fs::read_to_string(format!("/proc/{web_pid}/cgroup")).unwrap();
    assert!(own.contains(&format!("/{}/web", f.cgroup_parent)), "{own}");
    let kids = children(web_pid);
    assert!(!kids.is_empty(), "web's command is not running");
    for kid in kids {
        assert_eq!(
            fs::read_to_string(format!("/proc/{kid}/cgroup")).unwrap(),
            own,
            "child {kid} elsewhere"
        );
    }
    let memory = limit_file(web_pid, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(memory.trim(), (64u64 << 20).to_string());
    let pids_max = limit_file(web_pid, "pids", "pids.max", "pids.max");
    assert_eq!(pids_max.trim(), "50");
    assert!(web["pids_current"].as_u64().unwrap() >= 2, "{web}");
    assert!(web["memory_bytes"].as_u64().is_some(), "{web}");
    f.shutdown();
    for pid in pids {
        assert!(!alive(pid), "{pid} survived the shutdown");
    }
}

#[test]
fn a_killed_service_restarts_after_a_backoff() {
    let mut f = Fixture::new(
        "  worker:
    image: ROOTFS
    command: exec sleep 1000
    restart: on-failure
    restart_delay: 3s
",
    );
    f.start_daemon();
    let pid = f.pid("worker");
    let main = main_child(pid);
    kill(Pid::from_raw(main), Signal::SIGKILL).unwrap();
    let restarted = f.wait_for("worker", "restarted", |s| {
        s["restarts"] == 1 && s["state"] == "running"
    });
    assert_ne!(restarted["pid"].as_i64().unwrap() as i32, pid);
    assert_eq!(restarted["exit_code"], 128 + 9);
    let log = f.log("worker");
    assert!(log.contains("[supervisor] exited with status 137"), "{log}");
    assert!(log.contains("[supervisor] restarting in 3.0s"), "{log}");
    // A stop cancels a pending restart.
    let main = main_child(restarted["pid"].as_i64().unwrap() as i32);
    kill(Pid::from_raw(main), Signal::SIGKILL).unwrap();
    f.wait_state("worker", "backoff");
    f.ok(&["stop", "worker"]);
    let stopped = f.service("worker");
    assert_eq!(stopped["state"], "stopped");
    sleep(Duration::from_secs(5));
    assert_eq!(
        f.service("worker")["state"],
        "stopped",
        "restarted after stop"
    );
    f.shutdown();
}

/// The service's cgroup directories, in every hierarchy it has one, with their
/// inode numbers (a group created again gets a new one); `pid` must be in each.
fn cgroup_dirs_with(pid: i32, cgroup: &str) -> Vec<(PathBuf, u64)> {
    use std::os::unix::fs::MetadataExt;
    let dirs: Vec<(PathBuf, u64)> = hierarchies()
        .into_iter()
        .map(|root| root.join(cgroup))
        .filter_map(|dir| {
            let ino = fs::metadata(&dir).ok()?.ino();
            Some((dir, ino))
        })
        .collect();
    assert!(!dirs.is_empty(), "no cgroup {cgroup} in any hierarchy");
    for (dir, _) in &dirs {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|p| p == pid.to_string()),
            "{pid} not in {}: {procs:?}",
            dir.display()
        );
    }
    dirs
}

/// Kills the service's command and waits until it is back, restarted by its policy.
fn crash_and_wait_restart(f: &Fixture, name: &str, restarts: u64) -> i32 {
    kill(Pid::from_raw(main_child(f.pid(name))), Signal::SIGKILL).unwrap();
    let svc = f.wait_for(name, "restarted", |s| {
        s["restarts"] == restarts && s["state"] == "running"
    });
    svc["pid"].as_i64().unwrap() as i32
}

#[test]
fn a_restart_starts_in_the_same_cgroup_and_a_stop_in_backoff_removes_it() {
    let service = |pids: u32, delay: &str| {
        format!(
            "  worker:
    image: ROOTFS
    command: exec sleep 1000
    restart: always
    restart_delay: {delay}
    limits: {{memory: 64M, pids: {pids}}}
"
        )
    };
    let mut f = Fixture::new(&service(50, "2s"));
    f.start_daemon();
    let pid = f.pid("worker");
    let cgroup = f.service("worker")["cgroup"].as_str().unwrap().to_string();
    let first = cgroup_dirs_with(pid, &cgroup);

    // An automatic restart: the same directories, not removed and made again.
    let pid = crash_and_wait_restart(&f, "worker", 1);
    assert_eq!(
        cgroup_dirs_with(pid, &cgroup),
        first,
        "the restart made a new cgroup"
    );
    assert_eq!(limit_file(pid, "pids", "pids.max", "pids.max").trim(), "50");
    assert!(f.log("worker").contains("restarting in 2.0s"));

    // A reload that changes the limits during the backoff: a new group.
    kill(Pid::from_raw(main_child(pid)), Signal::SIGKILL).unwrap();
    f.wait_state("worker", "backoff");
    // (A longer delay leaves time to stop it during the next backoff.)
    f.write_config(&service(60, "5s"));
    f.ok(&["reload"]);
    let pid = f.wait_for("worker", "restarted", |s| {
        s["restarts"] == 2 && s["state"] == "running"
    })["pid"]
        .as_i64()
        .unwrap() as i32;
    let second = cgroup_dirs_with(pid, &cgroup);
    for ((dir, old), (_, new)) in first.iter().zip(&second) {
        assert_ne!(old, new, "{} kept across a change of limits", dir.display());
    }
    assert_eq!(limit_file(pid, "pids", "pids.max", "pids.max").trim(), "60");

    // `restart` during the backoff starts from a fresh group, not the kept one.
    kill(Pid::from_raw(main_child(pid)), Signal::SIGKILL).unwrap();
    f.wait_state("worker", "backoff");
    f.ok(&["restart", "worker"]);
    let pid = f.pid("worker");
    let third = cgroup_dirs_with(pid, &cgroup);
    for ((dir, old), (_, new)) in second.iter().zip(&third) {
        assert_ne!(old, new, "{} kept across a restart", dir.display());
    }

    // A stop during the backoff removes the group kept for the restart.
    kill(Pid::from_raw(main_child(pid)), Signal::SIGKILL).unwrap();
    f.wait_state("worker", "backoff");
    f.ok(&["stop", "worker"]);
    assert_eq!(f.service("worker")["state"], "stopped");
    assert!(f.log("worker").contains("pending restart cancelled"));
    for (dir, _) in &third {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    f.shutdown();
}

/// The device policy is set when the cgroup is created; an automatic restart reuses
/// the group, and the policy with it.
#[test]
fn the_device_policy_survives_an_automatic_restart() {
    let mut f = Fixture::new(
        "  prober:
    image: ROOTFS
    command: mknod /dev/kmsg c 1 11; if head -c 1 /dev/kmsg > /dev/null; then echo probe-opened; else echo probe-denied; fi; sleep 0.2; exit 1
    restart: always
    restart_delay: 100ms
",
    );
    f.start_daemon();
    f.wait_for("prober", "restarted twice", |s| {
        s["restarts"].as_u64().is_some_and(|n| n >= 2)
    });
    f.wait_logged("prober", "probe-denied");
    let deadline = Instant::now() + WAIT;
    while f.log("prober").matches("probe-denied").count() < 3 {
        assert!(Instant::now() < deadline, "{}", f.log("prober"));
        sleep(Duration::from_millis(50));
    }
    let log = f.log("prober");
    assert!(!log.contains("probe-opened"), "{log}");
    f.shutdown();
}

#[test]
fn stop_leaves_no_process_cgroup_or_mount() {
    let mut f = Fixture::new(
        "  web:
    image: ROOTFS
    command: sleep 1000 & sleep 1000 & wait
    stop_timeout: 3s
  stubborn:
    image: ROOTFS
    command: trap '' TERM; echo ready; while true; do sleep 1; done
    stop_timeout: 1s
",
    );
    f.start_daemon();
    f.wait_logged("stubborn", "ready");
    for name in ["web", "stubborn"] {
        let pid = f.pid(name);
        let mut all = vec![pid];
        all.extend(children(pid));
        let cgroup = f.service(name)["cgroup"].as_str().unwrap().to_string();
        f.ok(&["stop", name]);
        let svc = f.service(name);
        assert_eq!(svc["state"], "stopped");
        assert_eq!(svc["pid"], Value::Null);
        for p in all {
            assert!(!alive(p), "{name}: pid {p} survived the stop");
        }
        for root in hierarchies() {
            assert!(
                !root.join(&cgroup).exists(),
                "{name}: {} left behind",
                root.join(&cgroup).display()
            );
        }
        let layer = f.state.join("containers").join(name);
        assert!(!layer.exists(), "{} left behind", layer.display());
    }
    assert!(
        f.log("stubborn").contains("stop timeout"),
        "{}",
        f.log("stubborn")
    );
    assert_no_mounts(f.dir.path());
    f.ok(&["start", "web"]);
    f.wait_state("web", "running");
    f.shutdown();
}

#[test]
fn second_daemon_and_bad_requests_are_refused() {
    let mut f = Fixture::new(
        "  web:
    image: ROOTFS
    command: exec sleep 1000
    limits: {cpus: 1000}
  idle:
    image: ROOTFS
    command: exec sleep 1000
    autostart: false
  broken:
    image: ROOTFS
    command: exec sleep 1000
    workdir: /nonexistent
    autostart: false
    restart: never
",
    );
    f.start_daemon();
    let second = Command::new(bin("supervisor"))
        .args(["daemon", "-c"])
        .arg(&f.config)
        .bounded_output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("already running"), "{stderr}");

    assert!(f.fails(&["stop", "nope"]).contains("unknown service: nope"));
    assert!(f
        .fails(&["status", "nope"])
        .contains("unknown service: nope"));
    assert!(f.fails(&["logs", "nope"]).contains("unknown service: nope"));
    assert!(f.fails(&["freeze", "idle"]).contains("idle is not running"));
    assert!(f.fails(&["thaw", "nope"]).contains("unknown service"));
    // A cpus limit beyond the host's is a warning in the log, not an error.
    f.wait_logged(
        "web",
        "[supervisor] warning: limits.cpus 1000 is more than the ",
    );
    // A near miss is named.
    assert!(f
        .fails(&["start", "idel"])
        .contains("unknown service: idel, did you mean idle?"));
    assert_eq!(f.service("idle")["state"], "stopped");

    // A setup failure in the child comes back as a clear message.
    assert!(f.fails(&["start", "broken"]).contains("/nonexistent"));
    let broken = f.service("broken");
    assert_eq!(broken["state"], "failed", "{broken}");
    assert!(
        broken["error"].as_str().unwrap().contains("/nonexistent"),
        "{broken}"
    );
    assert!(f.log("broken").contains("[supervisor] failed to start"));

    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(bin("supervisor"))
        .arg("--state-dir")
        .arg(empty.path())
        .arg("status")
        .bounded_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("supervisor: no daemon running on "),
        "{stderr}"
    );
    // ... and says how to point at another one.
    assert!(
        stderr.contains("-c FILE or --state-dir DIR (or SUPERVISOR_STATE_DIR)"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);

    // Found through -c FILE's state_dir as well.
    let out = Command::new(bin("supervisor"))
        .args(["status", "--json", "-c"])
        .arg(&f.config)
        .env_remove("SUPERVISOR_STATE_DIR")
        .bounded_output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // A plain table with a header and one row per service.
    let table = f.ok(&["status"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");

    // Several names: those, in that order, as a table or JSON.
    let table = f.ok(&["status", "broken", "web"]);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows[1].starts_with("broken ") && rows[2].starts_with("web "),
        "{table}"
    );
    let json: Value = serde_json::from_str(&f.ok(&["status", "--json", "idle", "web"])).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["idle", "web"]);
    assert!(f
        .fails(&["status", "web", "idel"])
        .contains("did you mean idle?"));
    // The failed run's end is an RFC 3339 UTC time to the second, as `image ls` shows.
    let exited = rows[1]
        .split_whitespace()
        .find(|w| w.len() == 20 && w.ends_with('Z'));
    assert!(exited.is_some_and(|w| w.as_bytes()[10] == b'T'), "{table}");
    // A running service shows its uptime in units and no EXIT of an earlier run.
    let web: Vec<&str> = rows[2].split_whitespace().collect();
    assert_eq!(web[1], "running", "{table}");
    assert_eq!(web[4], "-", "{table}");
    assert!(web[7].ends_with('s') || web[7].ends_with('m'), "{table}");
    f.shutdown();
}

#[test]
fn status_reports_a_memory_hog_killed_by_the_oom_killer() {
    let mut f = Fixture::new(
        "  hog:
    image: ROOTFS
    command: tail -c 67108864 /dev/zero; echo hog ended; exec sleep 1000
    restart: never
    limits:
      memory: 16M
",
    );
    f.start_daemon();
    f.wait_logged("hog", "hog ended");
    let hog = f.wait_for("hog", "OOM-killed", |s| s["oom_kills"].as_u64() >= Some(1));
    assert_eq!(hog["state"], "running", "{hog}");
    assert!(hog["memory_bytes"].as_u64().unwrap() <= 16 << 20, "{hog}");
    f.shutdown();
}

/// `supervisor ARGS` as an unprivileged user (nobody:nogroup).
fn as_nobody(f: &Fixture, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    Command::new(bin("supervisor"))
        .arg("--state-dir")
        .arg(&f.state)
        .args(args)
        .uid(65534)
        .gid(65534)
        .bounded_output()
        .unwrap()
}

#[test]
fn control_socket_admits_root_and_the_control_group_only() {
    use std::os::unix::fs::PermissionsExt;
    let mut f = Fixture::new(
        "  web:
    image: ROOTFS
    command: exec sleep 1000
",
    );
    fs::set_permissions(f.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    f.start_daemon();
    // Starts are answered asynchronously: its log exists once it runs.
    f.wait_for("web", "running", |s| s["state"] == "running");
    let socket = fs::metadata(f.state.join("control.sock")).unwrap();
    assert_eq!(socket.permissions().mode() & 0o777, 0o600);
    let out = as_nobody(&f, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("permission denied"), "{stderr}");

    // control_group added by a reload: members reach the socket and the logs.
    use std::os::unix::fs::MetadataExt;
    let text = fs::read_to_string(&f.config).unwrap();
    fs::write(&f.config, format!("control_group: nogroup\n{text}")).unwrap();
    f.ok(&["reload"]);
    let logs = fs::metadata(f.state.join("logs")).unwrap();
    assert_eq!(
        (logs.gid(), logs.permissions().mode() & 0o7777),
        (65534, 0o2750)
    );
    assert_eq!(
        fs::metadata(f.state.join("logs/web.log")).unwrap().gid(),
        65534
    );
    let out = as_nobody(&f, &["status"]);
    assert!(out.status.success(), "{out:?}");
    let out = as_nobody(&f, &["logs", "web"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("[supervisor] started"));
    f.shutdown();

    // With control_group from the start, members may use the socket.
    f.start_daemon();
    let socket = fs::metadata(f.state.join("control.sock")).unwrap();
    assert_eq!(socket.permissions().mode() & 0o777, 0o660);
    let out = as_nobody(&f, &["status"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("web"));
    f.shutdown();
}

/// The counter a service writes to /tmp/count inside its root filesystem.
fn counter(pid: i32) -> u64 {
    read_inside(pid, "/tmp/count").trim().parse().unwrap_or(0)
}

const COUNTER: &str = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done";

/// Waits until the counter moves past `from`.
fn wait_advance(pid: i32, from: u64) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = counter(pid);
        if now > from {
            return now;
        }
        assert!(Instant::now() < deadline, "counter stuck at {now}");
        sleep(Duration::from_millis(100));
    }
}

fn counter_fixture(settings: &str) -> Fixture {
    Fixture::with_settings(
        settings,
        &format!(
            "  counter:
    image: ROOTFS
    command: \"{COUNTER}\"
"
        ),
    )
}

#[test]
fn freeze_stops_a_service_until_thaw_and_a_frozen_service_stops_cleanly() {
    freeze_thaw_and_stop(counter_fixture(""), false);
}

/// On a host with the v1 freezer (hybrid or v1), `cgroup_driver: v1` uses it;
/// on a pure v2 host that driver must be refused with a clear error.
#[test]
fn freeze_with_the_v1_freezer_driver() {
    let mut f = counter_fixture("cgroup_driver: v1\n");
    if Path::new("/sys/fs/cgroup/freezer").exists() {
        return freeze_thaw_and_stop(f, true);
    }
    f.start_daemon();
    let svc = f.wait_for("counter", "refused", |s| !s["error"].is_null());
    assert_ne!(svc["state"], "running");
    f.shutdown();
}

fn freeze_thaw_and_stop(mut f: Fixture, v1_freezer: bool) {
    f.start_daemon();
    let pid = f.pid("counter");
    let cgroup = f.service("counter")["cgroup"].as_str().unwrap().to_string();
    let before = wait_advance(pid, 0);
    assert!(!kernel_frozen(&cgroup, v1_freezer));
    f.ok(&["freeze", "counter"]);
    // `freeze` returns once the kernel has frozen the group, not before.
    assert!(kernel_frozen(&cgroup, v1_freezer), "freeze returned early");
    assert_eq!(f.service("counter")["state"], "frozen");
    let frozen_at = counter(pid);
    sleep(Duration::from_secs(1));
    assert_eq!(counter(pid), frozen_at, "advanced while frozen");
    assert!(frozen_at >= before);
    // Frozen is not a crash: no restart, same process.
    let svc = f.service("counter");
    assert_eq!(svc["pid"], pid);
    assert_eq!(svc["restarts"], 0);
    f.ok(&["thaw", "counter"]);
    assert!(!kernel_frozen(&cgroup, v1_freezer), "thaw returned early");
    assert_eq!(f.service("counter")["state"], "running");
    wait_advance(pid, frozen_at);

    f.ok(&["freeze", "counter"]);
    assert!(kernel_frozen(&cgroup, v1_freezer));
    let kids = children(pid);
    f.ok(&["stop", "counter"]);
    assert_eq!(f.service("counter")["state"], "stopped");
    for p in std::iter::once(pid).chain(kids) {
        assert!(!alive(p), "pid {p} survived stopping a frozen service");
    }
    for root in hierarchies() {
        assert!(!root.join(&cgroup).exists());
    }
    f.shutdown();
}

/// Freeze and thaw reach every process of a big service, and stopping it
/// frozen leaves none behind.
#[test]
fn freeze_and_thaw_a_service_with_1000_processes() {
    let mut f = Fixture::new(
        "  many:
    image: ROOTFS
    command: i=0; while [ $i -lt 1000 ]; do sleep 1000 & i=$((i+1)); done; wait
    limits: {pids: 1100}
",
    );
    f.start_daemon();
    // init, sh and 1,000 sleeps; starting them is slow under emulation.
    let deadline = Instant::now() + Duration::from_secs(600);
    while f.service("many")["pids_current"].as_u64().unwrap_or(0) < 1002 {
        assert!(Instant::now() < deadline, "{}", f.service("many"));
        sleep(Duration::from_millis(200));
    }
    let pid = f.pid("many");
    f.ok(&["freeze", "many"]);
    let svc = f.service("many");
    assert_eq!(svc["state"], "frozen");
    assert_eq!(svc["pids_current"], 1002);
    f.ok(&["thaw", "many"]);
    assert_eq!(f.service("many")["state"], "running");
    f.ok(&["freeze", "many"]);
    let kids = children(main_child(pid));
    assert_eq!(kids.len(), 1000, "sleeps of the service's shell");
    f.ok(&["stop", "many"]);
    assert_eq!(f.service("many")["state"], "stopped");
    for p in std::iter::once(pid).chain(kids) {
        assert!(!alive(p), "pid {p} survived stopping a frozen service");
    }
    f.shutdown();
}

#[test]
fn reload_reconciles_and_keeps_frozen_services_frozen() {
    let keep = format!(
        "  keep:
    image: ROOTFS
    command: \"{COUNTER}\"
"
    );
    let mut f = Fixture::new(&format!(
        "{keep}  change:
    image: ROOTFS
    command: exec sleep 1000
  gone:
    image: ROOTFS
    command: exec sleep 1000
"
    ));
    f.start_daemon();
    let keep_pid = f.pid("keep");
    let change_pid = f.pid("change");
    let gone_pid = f.pid("gone");
    f.ok(&["freeze", "keep"]);

    // An invalid file changes nothing and the caller gets the error.
    let good = fs::read_to_string(&f.config).unwrap();
    fs::write(
        &f.config,
        format!("{good}  broken:\n    restart: sometimes\n"),
    )
    .unwrap();
    let out = f.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("services.yaml:"), "{stderr}");
    assert_eq!(f.status().len(), 3);

    f.write_config(&format!(
        "{keep}  change:
    image: ROOTFS
    command: exec sleep 2000
  added:
    image: ROOTFS
    command: exec sleep 1000
"
    ));
    f.ok(&["reload"]);
    let added = f.pid("added");
    assert!(alive(added));
    let changed = f.wait_for("change", "restarted", |s| {
        s["state"] == "running" && s["pid"] != change_pid
    });
    assert!(!alive(change_pid));
    let keep = f.service("keep");
    assert_eq!(keep["state"], "frozen");
    assert_eq!(keep["pid"], keep_pid);
    let keep_cgroup = keep["cgroup"].as_str().unwrap();
    assert!(
        kernel_frozen(keep_cgroup, false),
        "the kernel thawed keep on reload"
    );
    let deadline = Instant::now() + WAIT;
    while f.status().iter().any(|s| s["name"] == "gone") {
        assert!(Instant::now() < deadline, "gone is still listed");
        sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + WAIT;
    while alive(gone_pid) {
        assert!(Instant::now() < deadline, "gone still runs");
        sleep(Duration::from_millis(100));
    }
    assert_eq!(f.status().len(), 3);
    // The changed service runs its new command.
    let command = main_child(changed["pid"].as_i64().unwrap() as i32);
    let cmdline = fs::read_to_string(format!("/proc/{command}/cmdline")).unwrap();
    assert!(cmdline.contains("sleep\x002000"), "{cmdline:?}");
    f.ok(&["thaw", "keep"]);
    assert!(!kernel_frozen(keep_cgroup, false));
    f.shutdown();
}

#[test]
fn logs_are_timestamped_tailed_and_followed() {
    let mut f = Fixture::new(
        "  talker:
    image: ROOTFS
    command: for i in 1 2 3 4 5; do echo line $i; done; echo oops >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done
",
    );
    f.start_daemon();
    f.pid("talker");
    f.wait_logged("talker", "tick 3");
    let all = f.ok(&["logs", "talker"]);
    for needle in ["line 1", "line 5", "oops", "[supervisor] started, pid"] {
        assert!(all.contains(needle), "{needle} missing from:\n{all}");
    }
    let first = all.lines().find(|l| l.ends_with(" line 1")).unwrap();
    let stamp = first.split(' ').next().unwrap();
    assert_eq!(stamp.len(), "2024-01-01T00:00:00.000Z".len(), "{first}");
    assert!(
        stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{first}"
    );

    let tail = f.ok(&["logs", "talker", "-n", "2"]);
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.lines().all(|l| l.contains("tick")), "{tail}");

    let mut follower = Command::new(bin("supervisor"))
        .arg("--state-dir")
        .arg(&f.state)
        .args(["logs", "-f", "-n", "0", "talker"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::new(follower.stdout.take().unwrap());
    let mut ticks = Vec::new();
    while ticks.len() < 3 {
        ticks.push(lines.next_line().expect("follower ended"));
    }
    follower.kill().unwrap();
    follower.wait().unwrap();
    assert!(ticks.iter().all(|l| l.contains("tick")), "{ticks:?}");
    f.shutdown();
}

#[test]
fn sighup_during_shutdown_is_ignored_and_reload_refused() {
    // Stops only once the test creates /tmp/go: the shutdown lasts as long as needed.
    let slow = "trap 'until [ -e /tmp/go ]; do sleep 0.1; done; exit 0' TERM; echo ready; while true; do sleep 1; done";
    let mut f = Fixture::new(&format!(
        "  slow:
    image: ROOTFS
    command: \"{slow}\"
    stop_timeout: 1h
"
    ));
    f.start_daemon();
    f.wait_logged("slow", "ready");
    let sh = main_child(f.pid("slow"));
    let daemon = Pid::from_raw(f.daemon.as_ref().unwrap().id() as i32);
    kill(daemon, Signal::SIGTERM).unwrap();
    f.wait_state("slow", "stopping");
    assert!(f.fails(&["reload"]).contains("shutting down"));

    // A reload now would start `added`, and `slow` again, and never exit.
    f.write_config(&format!(
        "  slow:
    image: ROOTFS
    command: \"{slow}\"
    stop_timeout: 2h
  added:
    image: ROOTFS
    command: exec sleep 1000
"
    ));
    kill(daemon, Signal::SIGHUP).unwrap();
    let deadline = Instant::now() + WAIT;
    while !f.daemon_stderr().contains("SIGHUP ignored") {
        assert!(Instant::now() < deadline, "{}", f.daemon_stderr());
        sleep(Duration::from_millis(50));
    }
    fs::write(format!("/proc/{sh}/root/tmp/go"), "").unwrap();
    // (Its SIGTERM is a no-op: the shutdown is already under way.)
    f.shutdown();
    let log = f.log("slow");
    assert_eq!(log.matches("started, pid").count(), 1, "{log}");
    assert_eq!(f.log("added"), "");
}

#[test]
fn start_refuses_a_service_whose_dependency_failed_and_a_half_closed_request_is_answered() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let mut f = Fixture::new(
        "  db:
    image: ROOTFS
    command: exec sleep 1000
    workdir: /nonexistent
    autostart: false
    restart: never
  web:
    image: ROOTFS
    depends_on: [db]
    command: exec sleep 1000
    autostart: false
",
    );
    f.start_daemon();
    let error = f.fails(&["start", "web"]);
    assert!(
        error.contains("web")
            && error.contains("dependency db failed")
            && error.contains("/nonexistent"),
        "{error}"
    );
    let web = f.service("web");
    assert_eq!(web["state"], "stopped", "{web}");
    assert!(
        web["error"]
            .as_str()
            .unwrap()
            .contains("dependency db failed"),
        "{web}"
    );
    assert_eq!(f.service("db")["state"], "failed");
    assert!(f
        .log("web")
        .contains("[supervisor] not started: dependency db failed"));

    // A client that half-closes after its request line (socat, nc -N) gets its answer.
    let mut stream = UnixStream::connect(f.state.join("control.sock")).unwrap();
    stream
        .write_all(b"{\"op\":\"status\",\"name\":\"web\"}\n")
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["result"], "status", "{answer}");
    assert_eq!(answer["services"][0]["name"], "web", "{answer}");
    f.shutdown();
}

/// The first field after the command in /proc/PID/stat: R, S, T, Z...
fn proc_state(pid: i32) -> char {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.chars().next().unwrap()
}

fn wait_proc_state(pid: i32, state: char) {
    let deadline = Instant::now() + WAIT;
    while proc_state(pid) != state {
        assert!(
            Instant::now() < deadline,
            "{pid} never reached state {state}"
        );
        sleep(Duration::from_millis(20));
    }
}

/// How many descriptors the process's epoll instance watches.
fn epoll_watches(pid: i32) -> usize {
    let epoll = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|fd| fs::read_link(fd).is_ok_and(|l| l.to_string_lossy() == "anon_inode:[eventpoll]"))
        .expect("no epoll descriptor");
    let fdinfo = epoll.to_string_lossy().replace("/fd/", "/fdinfo/");
    fs::read_to_string(fdinfo)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("tfd:"))
        .count()
}

#[test]
fn a_service_that_exits_before_a_freeze_is_handled_still_restarts() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let mut f = Fixture::new(
        "  web:
    image: ROOTFS
    command: exec sleep 1000
    restart: always
",
    );
    f.start_daemon();
    let init = f.pid("web");
    main_child(init);
    let daemon = f.daemon.as_ref().unwrap().id() as i32;

    // A connection the daemon has accepted and watches, with no request yet.
    let watched = epoll_watches(daemon);
    let mut stream = UnixStream::connect(f.state.join("control.sock")).unwrap();
    let deadline = Instant::now() + WAIT;
    while epoll_watches(daemon) <= watched {
        assert!(
            Instant::now() < deadline,
            "the connection was never accepted"
        );
        sleep(Duration::from_millis(20));
    }
    // With the daemon stopped, the freeze request arrives before the service's
    // exit: the daemon sees both at once, the request first.
    kill(Pid::from_raw(daemon), Signal::SIGSTOP).unwrap();
    wait_proc_state(daemon, 'T');
    stream
        .write_all(b"{\"op\":\"freeze\",\"names\":[\"web\"]}\n")
        .unwrap();
    kill(Pid::from_raw(init), Signal::SIGKILL).unwrap();
    wait_proc_state(init, 'Z');
    kill(Pid::from_raw(daemon), Signal::SIGCONT).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("not running"), "{answer}");
    // A crash, not a kill while frozen: restarted by its policy.
    f.wait_for("web", "restarted", |s| {
        s["restarts"] == 1 && s["state"] == "running"
    });
    f.shutdown();
}

/// The host range a service's user namespace maps its root to (`0 FIRST 65536`).
fn uid_map(pid: i32) -> String {
    let map = fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    map.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn a_user_namespace_keeps_its_range_across_restarts_of_the_service_and_the_daemon() {
    let services = "  alpha:
    image: ROOTFS
    namespaces: [pid, mount, uts, ipc, net, user]
    command: exec sleep 1000
    restart: always
    restart_delay: 10ms
  beta:
    image: ROOTFS
    namespaces: [pid, mount, uts, ipc, net, user]
    command: exec sleep 1000
";
    let settings = "userns_pool: {start: 200000, size: 655360}\n";
    let mut f = Fixture::with_settings(settings, services);
    f.start_daemon();
    let alpha = uid_map(f.pid("alpha"));
    let beta = uid_map(f.pid("beta"));
    for map in [&alpha, &beta] {
        let fields: Vec<u64> = map.split(' ').map(|n| n.parse().unwrap()).collect();
        assert_eq!(fields[0], 0, "{map}");
        assert!(
            fields[1] >= 200_000 && fields[1] + 65536 <= 200_000 + 655_360,
            "{map} outside the pool"
        );
        assert_eq!(
            (fields[1] - 200_000) % 65536,
            0,
            "{map} off the pool's grid"
        );
        assert_eq!(fields[2], 65536, "{map}");
    }
    assert_ne!(alpha, beta, "two services share a range");
    // An automatic restart after a crash, and a restart on request.
    let first = f.pid("alpha");
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    let svc = f.wait_for("alpha", "restarted", |s| {
        s["restarts"] == 1 && s["state"] == "running" && s["pid"] != first
    });
    assert_eq!(uid_map(svc["pid"].as_i64().unwrap() as i32), alpha);
    f.ok(&["restart", "alpha"]);
    assert_eq!(uid_map(f.pid("alpha")), alpha);
    // A new daemon on the same state_dir gives both the same ranges again.
    f.shutdown();
    f.start_daemon();
    assert_eq!(uid_map(f.pid("alpha")), alpha);
    assert_eq!(uid_map(f.pid("beta")), beta);
    let record: Value =
        serde_json::from_str(&fs::read_to_string(f.state.join("userns.json")).unwrap()).unwrap();
    assert_eq!(
        format!("0 {} 65536", record["alpha"]),
        alpha,
        "the record differs: {record}"
    );
    // A reload that moves the pool restarts both in ranges of the new pool.
    let (old_alpha, old_beta) = (f.pid("alpha"), f.pid("beta"));
    f.settings = "userns_pool: {start: 2000000, size: 131072}\n".to_string();
    f.write_config(services);
    f.ok(&["reload"]);
    let moved = f.wait_for("alpha", "restarted", |s| {
        s["state"] == "running" && s["pid"] != old_alpha
    });
    let beta_pid = f.wait_for("beta", "restarted", |s| {
        s["state"] == "running" && s["pid"] != old_beta
    });
    let new_alpha = uid_map(moved["pid"].as_i64().unwrap() as i32);
    let new_beta = uid_map(beta_pid["pid"].as_i64().unwrap() as i32);
    for map in [&new_alpha, &new_beta] {
        assert!(
            ["0 2000000 65536", "0 2065536 65536"].contains(&map.as_str()),
            "{map} is not from the new pool"
        );
    }
    assert_ne!(new_alpha, new_beta);
    f.shutdown();
    // `supervisor run` takes the range the daemon recorded.
    let out = Command::new(bin("supervisor"))
        .args(["run", "-c"])
        .arg(&f.config)
        .args(["alpha", "--", "cat", "/proc/self/uid_map"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.split_whitespace().collect::<Vec<_>>().join(" "),
        new_alpha
    );
}

/// A root service that can reach the control socket (a mount naming the
/// state dir on purpose) still passes the uid check: the daemon refuses it
/// because it runs inside one of the services' cgroups.
#[test]
fn a_request_from_inside_a_service_is_refused() {
    let mut f = Fixture::new("");
    fs::create_dir_all(&f.state).unwrap();
    f.write_config(&format!(
        "  intruder:
    image: ROOTFS
    mounts:
      - {{source: {state}, target: /state}}
      - {{source: {cli}, target: /supervisor, readonly: true}}
    command: /supervisor --state-dir /state status; echo \"status exit $?\"; /supervisor --state-dir /state stop intruder; echo \"stop exit $?\"; exec sleep 1000
",
        state = f.state.display(),
        cli = bin("supervisor").display()
    ));
    f.start_daemon();
    f.wait_logged("intruder", "stop exit");
    let log = f.log("intruder");
    assert!(
        log.contains("status exit 1") && log.contains("stop exit 1"),
        "{log}"
    );
    assert!(
        log.contains("refused: pid") && log.contains("inside service cgroup"),
        "{log}"
    );
    // The host's root is still served, and the service was not stopped.
    assert_eq!(f.service("intruder")["state"], "running");
    f.shutdown();
}

/// state_dir 0711, containers 0700, logs 0750 and log files 0640, also where
/// an older version left other modes.
#[test]
fn the_daemon_sets_the_state_dir_modes() {
    use std::os::unix::fs::PermissionsExt;
    let mut f = Fixture::new(
        "  web:
    image: ROOTFS
    command: echo hello; exec sleep 1000
",
    );
    let (containers, logs) = (f.state.join("containers"), f.state.join("logs"));
    fs::create_dir_all(&containers).unwrap();
    fs::create_dir_all(&logs).unwrap();
    fs::write(logs.join("old.log"), "old\n").unwrap();
    for path in [&f.state, &containers, &logs, &logs.join("old.log")] {
        fs::set_permissions(path, fs::Permissions::from_mode(0o777)).unwrap();
    }
    f.start_daemon();
    f.wait_logged("web", "hello");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&f.state), 0o711);
    assert_eq!(mode(&containers), 0o700);
    assert_eq!(mode(&logs), 0o750);
    assert_eq!(mode(&logs.join("old.log")), 0o640);
    assert_eq!(mode(&logs.join("web.log")), 0o640);
    f.shutdown();
}

/// A service without an image that binds a parent of the state dir sees an
/// empty read-only tmpfs where the state dir is.
#[test]
fn the_state_dir_is_hidden_under_a_bind_of_its_parent() {
    assert!(
        Path::new("/mnt").is_dir(),
        "the host has no /mnt to bind onto"
    );
    let mut f = Fixture::new("");
    f.write_config(&format!(
        "  host:
    mounts:
      - {{source: {dir}, target: /mnt}}
    command: ls -A /mnt/state | sed 's/^/seen=/'; touch /mnt/state/x 2>/dev/null && echo wrote; ls /mnt | grep -qx rootfs && echo fixture visible; exec sleep 1000
",
        dir = f.dir.path().display()
    ));
    f.start_daemon();
    f.wait_logged("host", "fixture visible");
    let log = f.log("host");
    assert!(!log.contains("seen=") && !log.contains("wrote"), "{log}");
    f.shutdown();
}

/// `supervisor logs` escapes a service's control characters, on a terminal
/// and in a pipe; `--raw` prints them as written.
#[test]
fn logs_escape_control_characters_unless_raw() {
    let mut f = Fixture::new(
        "  painter:
    image: ROOTFS
    command: printf 'a\\033[31mred\\033[0m\\tb\\r\\n'; echo end; exec sleep 1000
",
    );
    f.start_daemon();
    f.wait_logged("painter", "end");
    let escaped = "a\\x1b[31mred\\x1b[0m\tb\\x0d";
    let piped = f.ok(&["logs", "painter"]);
    assert!(
        piped.contains(escaped) && !piped.contains('\x1b'),
        "{piped:?}"
    );
    let raw = f.ok(&["logs", "painter", "--raw"]);
    assert!(raw.contains("a\x1b[31mred\x1b[0m\tb\r"), "{raw:?}");
    // On a terminal: `script` gives the command a pty.
    let command = format!(
        "{} --state-dir {} logs painter",
        bin("supervisor").display(),
        f.state.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("SUPERVISOR_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) is needed for a terminal");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        shown.contains(escaped) && !shown.contains('\x1b'),
        "{shown:?}"
    );
    f.shutdown();
}

/// Each layout pass of tests/run.sh (pure v1, pure v2) checks that the daemon saw the
/// layout the pass made, so that a pass cannot silently re-run another layout.
#[test]
fn the_daemon_logs_the_layout_this_pass_expects() {
    let mut f = Fixture::new("  a:\n    image: ROOTFS\n    command: exec sleep 1000\n");
    f.start_daemon();
    let want = integration_tests::expected_layout()
        .unwrap_or_else(|| cgroups::detect_layout().unwrap().to_string());
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
    f.shutdown();
}

/// The kernel's id of the service's cgroup in the first hierarchy: ids only grow, so
/// they give the order in which the groups were made, without clocks.
fn cgroup_id(cgroup: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let root = hierarchies()
        .into_iter()
        .next()
        .expect("a cgroup hierarchy");
    fs::metadata(root.join(cgroup)).unwrap().ino()
}

#[test]
fn start_and_stop_follow_the_dependencies_not_the_file_order() {
    let mut f = Fixture::new("");
    let seq = f.dir.path().join("seq");
    fs::create_dir(&seq).unwrap();
    // Each service writes its name to a shared file when asked to stop: the order of
    // the lines is the order of the stops.
    let service = |name: &str, depends: &str| {
        format!(
            "  {name}:
    image: ROOTFS
{depends}    mounts: [{{source: {}, target: /seq}}]
    command: \"trap 'echo {name} >> /seq/stopped; exit 0' TERM; echo ready; while true; do sleep 1; done\"
",
            seq.display()
        )
    };
    f.write_config(&format!(
        "{}{}{}",
        service("web", "    depends_on: [app]\n"),
        service("app", "    depends_on: [db]\n"),
        service("db", "")
    ));
    f.start_daemon();
    for name in ["db", "app", "web"] {
        f.wait_logged(name, "ready");
    }
    let id = |name: &str| cgroup_id(f.service(name)["cgroup"].as_str().unwrap());
    let (db, app, web) = (id("db"), id("app"), id("web"));
    assert!(
        db < app && app < web,
        "made in another order: db {db}, app {app}, web {web}"
    );
    f.shutdown();
    assert_eq!(
        fs::read_to_string(seq.join("stopped")).unwrap(),
        "web\napp\ndb\n"
    );
}

#[test]
fn restart_backoff_doubles_up_to_its_cap_and_resets_after_a_stable_run() {
    // Runs 1-4 and 6 fail at once, run 5 lasts longer than the 10 s that count as a
    // stable run, run 7 stays up. The run count lives in the persisted layer.
    let mut f = Fixture::new(
        "  flaky:
    image: ROOTFS
    persist: true
    restart: on-failure
    restart_delay: 100ms
    restart_delay_max: 400ms
    command: \"n=$(cat /runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /runs; echo run $n; if [ $n -eq 5 ]; then sleep 11; fi; if [ $n -ge 7 ]; then exec sleep 1000; fi; exit 1\"
",
    );
    f.start_daemon();
    f.wait_logged("flaky", "run 7");
    let svc = f.wait_for("flaky", "restarted 6 times", |s| {
        s["restarts"] == 6 && s["state"] == "running"
    });
    assert_eq!(svc["exit_code"], 1, "{svc}");
    let log = f.log("flaky");
    let delays: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("restarting in ").nth(1))
        .collect();
    assert_eq!(
        delays,
        ["0.1s", "0.2s", "0.4s", "0.4s", "0.1s", "0.2s"],
        "{log}"
    );
    f.shutdown_with(Stop::Signal(Signal::SIGTERM), &["flaky"]);
}

#[test]
fn sighup_reloads_and_the_shutdown_command_and_sigint_stop_everything() {
    let one = "  a:\n    image: ROOTFS\n    command: exec sleep 1000\n";
    let mut f = Fixture::new(one);
    f.start_daemon();
    let a = f.pid("a");
    f.write_config(&format!(
        "{one}  b:\n    image: ROOTFS\n    command: exec sleep 1000\n"
    ));
    let daemon = Pid::from_raw(f.daemon.as_ref().unwrap().id() as i32);
    kill(daemon, Signal::SIGHUP).unwrap();
    let deadline = Instant::now() + WAIT;
    while !f.status().iter().any(|s| s["name"] == "b") {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        sleep(Duration::from_millis(50));
    }
    let b = f.pid("b");
    assert_eq!(
        f.service("a")["pid"],
        a,
        "an unchanged service was restarted"
    );
    f.shutdown_with(Stop::Command, &[]);
    assert!(!alive(a) && !alive(b), "services survived `shutdown`");

    f.start_daemon();
    let (a, b) = (f.pid("a"), f.pid("b"));
    f.shutdown_with(Stop::Signal(Signal::SIGINT), &[]);
    assert!(!alive(a) && !alive(b), "services survived SIGINT");
}

/// Burns CPU until the shell's own CPU time plus its waited-for children's (fields 14
/// to 17 of /proc/self/stat, in 1/100 s) reaches $want ticks.
const BURN: &str = "burn() { while :; do i=0; while [ $i -lt 500 ]; do i=$((i+1)); done; set -- $(cat /proc/$$/stat); [ $((${14} + ${15} + ${16} + ${17})) -ge $want ] && return; done; }";

#[test]
fn stats_are_the_values_the_service_made_and_add_up_across_restarts() {
    // Each run burns 0.5 s of CPU; runs 1 and 2 fail (run 1 after filling 48 MiB of its
    // /tmp: a tmpfs, charged to the group, not reclaimable), run 3 then fills 32 MiB and
    // starts 5 sleeps.
    let mut f = Fixture::new(&format!(
        "  stats:
    image: ROOTFS
    persist: true
    restart: on-failure
    restart_delay: 100ms
    command: \"{BURN}; n=$(cat /runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /runs; want=50; burn; [ $n -eq 1 ] && dd if=/dev/zero of=/tmp/fill bs=1048576 count=48 2>/dev/null; [ $n -ge 3 ] || exit 1; dd if=/dev/zero of=/tmp/fill bs=1048576 count=32 2>/dev/null; for i in 1 2 3 4 5; do sleep 1000 & done; echo done; wait\"
"
    ));
    f.start_daemon();
    f.wait_logged("stats", "done");
    let svc = f.service("stats");
    assert_eq!(svc["restarts"], 2, "{svc}");
    eprintln!("stats: {svc}");
    let cpu = svc["cpu_usage_us"].as_u64().unwrap();
    // Strictly at least what the three runs burned; generously at most (three setups
    // and inits, slow under emulation), still far below a wrong unit (x1000).
    assert!(
        (1_500_000..=60_000_000).contains(&cpu),
        "cpu_usage_us {cpu}: three runs burned 1.5 s: {svc}"
    );
    let memory = svc["memory_bytes"].as_u64().unwrap();
    assert!(
        (32 << 20..=96 << 20).contains(&memory),
        "memory_bytes {memory}: 32 MiB in a tmpfs: {svc}"
    );
    // The peak is run 1's, kept across the restarts.
    let peak = svc["memory_peak_bytes"].as_u64().unwrap();
    assert!(
        (48 << 20..=1 << 30).contains(&peak) && peak >= memory,
        "memory_peak_bytes {peak}: run 1 held 48 MiB: {svc}"
    );
    // init, the shell and its 5 sleeps.
    assert_eq!(svc["pids_current"], 7, "{svc}");
    f.shutdown_with(Stop::Signal(Signal::SIGTERM), &["stats"]);
}

/// The group `parent/name` created ahead of the daemon and frozen, in the
/// freezer the daemon uses on this host (unified if mounted, else v1), so that
/// the service's setup stops in the kernel as soon as it joins the group.
/// Returns the file to write and the value that thaws it.
fn frozen_group(parent: &str, name: &str) -> (PathBuf, &'static str) {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = |fstype: &str, option: Option<&str>| {
        mountinfo.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut fields = right.split(' ');
            let ok = fields.next() == Some(fstype)
                && option
                    .is_none_or(|o| fields.nth(1).is_some_and(|s| s.split(',').any(|x| x == o)));
            ok.then(|| PathBuf::from(left.split(' ').nth(4).unwrap()))
        })
    };
    let (dir, file, frozen, thawed) = match mount("cgroup2", None) {
        Some(root) => (root.join(parent).join(name), "cgroup.freeze", "1", "0"),
        None => {
            let root = mount("cgroup", Some("freezer")).expect("no freezer on this host");
            (
                root.join(parent).join(name),
                "freezer.state",
                "FROZEN",
                "THAWED",
            )
        }
    };
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(file), frozen).unwrap();
    (dir.join(file), thawed)
}

/// Starts `supervisor ARGS` without waiting for it.
fn cli_background(f: &Fixture, args: &[&str]) -> Child {
    Command::new(bin("supervisor"))
        .arg("--state-dir")
        .arg(&f.state)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn status_stop_and_other_services_are_served_while_a_setup_hangs() {
    let mut f = Fixture::new(
        "  stuck:
    image: ROOTFS
    command: exec sleep 1000
    autostart: false
  other:
    image: ROOTFS
    command: exec sleep 1000
",
    );
    let (freeze_file, thawed) = frozen_group(&f.cgroup_parent, "stuck");
    f.start_daemon();
    let other = f.pid("other");
    let mut start = cli_background(&f, &["start", "stuck"]);
    // `starting` is real: the setup runs (here: hangs) while the daemon serves.
    let stuck = f.wait_state("stuck", "starting");
    assert!(stuck["pid"].as_i64().is_some(), "{stuck}");
    f.ok(&["restart", "other"]);
    let restarted = f.pid("other");
    assert_ne!(restarted, other);
    f.ok(&["freeze", "other"]);
    f.ok(&["thaw", "other"]);
    assert!(start.try_wait().unwrap().is_none(), "start answered early");
    assert_eq!(f.service("stuck")["state"], "starting");

    // Released, its setup finishes and the waiting client gets its answer.
    fs::write(&freeze_file, thawed).unwrap();
    let status = wait_child(&mut start);
    assert!(status.success(), "{:?}", start.wait_with_output());
    f.wait_state("stuck", "running");

    // A stop while a setup hangs kills it at once.
    f.ok(&["stop", "stuck"]);
    let (freeze_file, thawed) = frozen_group(&f.cgroup_parent, "stuck");
    let mut start = cli_background(&f, &["start", "stuck"]);
    f.wait_state("stuck", "starting");
    f.ok(&["stop", "stuck"]);
    let out = {
        wait_child(&mut start);
        start.wait_with_output().unwrap()
    };
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stopped while starting"),
        "{out:?}"
    );
    assert_eq!(f.service("stuck")["state"], "stopped");
    // The group is gone with the run; nothing of the frozen one is left to thaw.
    let _ = fs::write(&freeze_file, thawed);
    f.shutdown();
}

#[test]
fn an_oom_killed_service_says_so_and_keeps_its_last_accounting() {
    let services = "  hog:
    image: ROOTFS
    command: exec tail -c 67108864 /dev/zero
    restart: never
    limits:
      memory: 16M
";
    let mut f = Fixture::new(services);
    f.start_daemon();
    let hog = f.wait_state("hog", "failed");
    assert_eq!(hog["exit_code"], 137, "{hog}");
    assert_eq!(hog["exit_reason"], "oom_killed", "{hog}");
    assert!(hog["oom_kills"].as_u64() >= Some(1), "{hog}");
    assert!(hog["memory_peak_bytes"].as_u64() > Some(1 << 20), "{hog}");
    assert!(hog["cpu_usage_us"].as_u64().is_some(), "{hog}");
    assert!(hog["last_exit_at"].as_str().is_some(), "{hog}");
    assert!(hog["pid"].is_null(), "{hog}");
    assert!(f
        .log("hog")
        .contains("[supervisor] oom-killed (status 137)"));
    let table = f.ok(&["status"]);
    assert!(table.contains("137 oom_killed"), "{table}");
    f.shutdown();

    // `supervisor run` says so on stderr.
    let out = Command::new(bin("supervisor"))
        .args(["run", "-c"])
        .arg(&f.config)
        .arg("hog")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the OOM killer killed"), "{stderr}");
    assert_no_cgroup(&f.cgroup_parent);
}

#[test]
fn a_crash_loop_shows_its_times_and_ends_at_its_restart_limit() {
    let mut f = Fixture::new(
        "  crash:
    image: ROOTFS
    command: exit 3
    restart: always
    restart_delay: 300ms
    restart_delay_max: 300ms
    restart_limit: {count: 2, window: 60s}
  waits:
    image: ROOTFS
    command: exit 3
    restart: always
    restart_delay: 1h
    restart_delay_max: 1h
",
    );
    f.start_daemon();
    let backoff = f.wait_state("waits", "backoff");
    assert_eq!(backoff["exit_reason"], "exited", "{backoff}");
    assert_eq!(backoff["exit_code"], 3, "{backoff}");
    let exited = backoff["last_exit_at"].as_str().unwrap().to_string();
    let retry = backoff["next_retry_at"].as_str().unwrap().to_string();
    // RFC 3339 in UTC: the retry comes after the exit.
    assert!(exited.ends_with('Z') && retry > exited, "{backoff}");
    let failed = f.wait_state("crash", "failed");
    assert_eq!(failed["restarts"], 2, "{failed}");
    assert!(failed["next_retry_at"].is_null(), "{failed}");
    assert!(f.log("crash").contains("restart limit reached"));
    // It stays failed: no more restarts.
    sleep(Duration::from_secs(1));
    assert_eq!(f.service("crash")["restarts"], 2);

    // A manual start resets the count: two more automatic restarts.
    let out = f.cli(&["start", "crash"]);
    assert!(out.status.success(), "{out:?}");
    f.wait_for("crash", "failed again", |s| {
        s["state"] == "failed" && s["restarts"] == 4
    });
    f.shutdown();
}

#[test]
fn reload_reports_what_it_did_refuses_another_file_and_restarts_a_failed_service() {
    let mut f = Fixture::new(
        "  keep:
    image: ROOTFS
    command: exec sleep 1000
  broken:
    image: ROOTFS
    command: exec sleep 1000
    workdir: /nonexistent
    restart: never
  gone:
    image: ROOTFS
    command: exec sleep 1000
",
    );
    f.start_daemon();
    f.wait_state("broken", "failed");
    f.pid("gone");

    // Another file than the daemon's is refused, naming the daemon's.
    let other = f.dir.path().join("other.yaml");
    fs::copy(&f.config, &other).unwrap();
    let out = Command::new(bin("supervisor"))
        .args(["reload", "-c"])
        .arg(&other)
        .env_remove("SUPERVISOR_STATE_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&f.config.display().to_string()) && stderr.contains("other.yaml"),
        "{stderr}"
    );
    // Its own file through -c is fine.
    let out = Command::new(bin("supervisor"))
        .args(["reload", "-c"])
        .arg(&f.config)
        .env_remove("SUPERVISOR_STATE_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("unchanged: keep broken gone"), "{stdout}");

    // The failed service, fixed, starts again; an added one that cannot start fails the reload.
    f.write_config(
        "  keep:
    image: ROOTFS
    command: exec sleep 1000
  broken:
    image: ROOTFS
    command: exec sleep 1000
    restart: never
  added:
    image: ROOTFS
    command: exec sleep 1000
    workdir: /missing
    restart: never
",
    );
    let out = f.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("added: added"), "{stdout}");
    assert!(stdout.contains("restarted: broken"), "{stdout}");
    assert!(stdout.contains("removed: gone"), "{stdout}");
    assert!(stdout.contains("unchanged: keep"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("added") && stderr.contains("/missing"),
        "{stderr}"
    );
    assert_eq!(f.service("broken")["state"], "running");
    assert_eq!(f.service("added")["state"], "failed");
    f.shutdown();
}

fn rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn open_fds(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

#[test]
fn many_clients_at_once_good_bad_and_silent_are_all_handled() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let mut f = Fixture::new(
        "  web:
    image: ROOTFS
    command: exec sleep 1000
",
    );
    f.start_daemon();
    f.pid("web");
    let daemon = f.daemon.as_ref().unwrap().id() as i32;
    let fds_before = open_fds(daemon);
    let socket = f.state.join("control.sock");
    let connect = || {
        let stream = UnixStream::connect(&socket).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream
    };
    // Clients that connect and never send, or send half a request.
    let mut idle: Vec<UnixStream> = (0..20).map(|_| connect()).collect();
    for _ in 0..20 {
        let mut stream = connect();
        stream.write_all(b"{\"op\":\"stat").unwrap();
        idle.push(stream);
    }
    let bad: Vec<_> = (0..20)
        .map(|i| {
            let mut stream = connect();
            std::thread::spawn(move || {
                let request: Vec<u8> = if i % 4 == 0 {
                    // 1 MiB without a newline.
                    vec![b'x'; 1 << 20]
                } else {
                    b"{\"op\":\"nonsense\"}\n".to_vec()
                };
                // The daemon may close as soon as it has seen enough.
                let _ = stream.write_all(&request);
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                answer
            })
        })
        .collect();
    let good: Vec<_> = (0..200)
        .map(|_| {
            let mut stream = connect();
            std::thread::spawn(move || {
                stream
                    .write_all(b"{\"op\":\"status\",\"name\":null}\n")
                    .unwrap();
                let mut answer = String::new();
                stream.read_to_string(&mut answer).unwrap();
                answer
            })
        })
        .collect();
    for client in good {
        let answer: Value = serde_json::from_str(&client.join().unwrap()).unwrap();
        assert_eq!(answer["result"], "status", "{answer}");
        assert_eq!(answer["services"][0]["name"], "web");
    }
    for client in bad {
        let answer = client.join().unwrap();
        assert!(
            answer.is_empty() || answer.contains("\"error\""),
            "{answer}"
        );
    }
    // Memory stays bounded: a request is cut at 64 KiB.
    assert!(rss_kib(daemon) < 16 * 1024, "{} KiB", rss_kib(daemon));
    drop(idle);
    let deadline = Instant::now() + WAIT;
    while open_fds(daemon) > fds_before {
        assert!(Instant::now() < deadline, "connections left open");
        sleep(Duration::from_millis(50));
    }
    // Out of descriptors, the daemon makes room by dropping the client that
    // has waited longest without a request, and answers the next one.
    let limit = open_fds(daemon) + 10;
    let soft = fs::read_to_string(format!("/proc/{daemon}/limits"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3).map(String::from))
        .unwrap();
    // The soft limit only: lowering the hard one could not be undone.
    let set_limit = |n: &str| {
        let out = Command::new("prlimit")
            .arg(format!("--pid={daemon}"))
            .arg(format!("--nofile={n}:"))
            .output()
            .expect("prlimit (util-linux) is needed");
        assert!(out.status.success(), "{out:?}");
    };
    set_limit(&limit.to_string());
    let crowd: Vec<UnixStream> = (0..20).map(|_| connect()).collect();
    let deadline = Instant::now() + WAIT;
    // At the limit, less the one descriptor a refused accept or the peer
    // check gives back while making room.
    while open_fds(daemon) < limit - 1 {
        assert!(
            Instant::now() < deadline,
            "the daemon never filled its descriptors"
        );
        sleep(Duration::from_millis(20));
    }
    let status = f.ok(&["status", "web"]);
    assert!(status.contains("web"), "{status}");
    assert!(f.daemon_stderr().contains("out of descriptors"));
    drop(crowd);
    set_limit(&soft);

    // A client that never sends is dropped after a while: it cannot hold a
    // descriptor of the daemon for ever.
    let mut silent = connect();
    let mut buf = [0u8; 1];
    assert_eq!(silent.read(&mut buf).unwrap(), 0);
    assert!(f.daemon_stderr().find("panicked").is_none());
    f.shutdown();
}
