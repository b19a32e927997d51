//! Running as a systemd unit would: the daemon (or `supervisor run`) started in a
//! cgroup of its own, as `Delegate=yes` gives it, with a `cgroup_parent` relative
//! to that cgroup (`./services`), and its readiness sent to `$NOTIFY_SOCKET`.
//! The tests make the unit's cgroup themselves (`<unique>.slice/supervisor.service`
//! in every hierarchy the supervisor uses) and start the supervisor through a
//! shell that first writes its own pid there, as systemd does before exec.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use integration_tests::{bin, busybox_rootfs, require_root, unique_name};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// Generous: the CI machine is small and busy; tests wait on conditions, never on timings.
const WAIT: Duration = Duration::from_secs(90);

/// The v1 controllers whose hierarchies the supervisor uses (limits, accounting,
/// devices, freezer); the unit's cgroup is made in each that is mounted.
const V1_CONTROLLERS: &[&str] = &[
    "memory", "cpu", "cpuacct", "pids", "blkio", "devices", "freezer",
];

/// The cgroup mounts: the cgroup2 one (if any) and the v1 hierarchies we use.
struct Hierarchies {
    unified: Option<PathBuf>,
    v1: Vec<(PathBuf, Vec<String>)>,
}

impl Hierarchies {
    fn read() -> Hierarchies {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut found = Hierarchies {
            unified: None,
            v1: Vec::new(),
        };
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            let mount = PathBuf::from(fields[4]);
            match fields[dash + 1] {
                "cgroup2" if found.unified.is_none() => found.unified = Some(mount),
                "cgroup" => {
                    let controllers: Vec<String> = fields[dash + 3]
                        .split(',')
                        .filter(|c| V1_CONTROLLERS.contains(c))
                        .map(str::to_string)
                        .collect();
                    if !controllers.is_empty() && !found.v1.iter().any(|(m, _)| *m == mount) {
                        found.v1.push((mount, controllers));
                    }
                }
                _ => {}
            }
        }
        assert!(
            found.unified.is_some() || !found.v1.is_empty(),
            "no cgroup hierarchy is mounted"
        );
        found
    }

    fn pure_v2(&self) -> bool {
        self.unified.is_some() && self.v1.is_empty()
    }

    fn mounts(&self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = self.unified.iter().cloned().collect();
        all.extend(self.v1.iter().map(|(mount, _)| mount.clone()));
        all
    }
}

/// What a systemd unit with `Delegate=yes` gets: `<slice>/supervisor.service` in
/// every hierarchy, with the controllers the services need available in it (v2).
/// Dropping it removes every directory below the slice, deepest first.
struct UnitCgroup {
    /// "systemd-test-123-0.slice/supervisor.service"
    rel: String,
    slice: String,
    hierarchies: Hierarchies,
}

impl UnitCgroup {
    fn new() -> UnitCgroup {
        require_root();
        let slice = format!("{}.slice", unique_name("systemd-test"));
        let unit = UnitCgroup {
            rel: format!("{slice}/supervisor.service"),
            slice,
            hierarchies: Hierarchies::read(),
        };
        for mount in unit.hierarchies.mounts() {
            fs::create_dir_all(mount.join(&unit.rel)).unwrap();
        }
        if unit.hierarchies.pure_v2() {
            // As systemd does for a delegated unit: the controllers available in
            // the unit's group; enabling them below it is the daemon's job.
            let root = unit.hierarchies.unified.clone().unwrap();
            for level in [root.clone(), root.join(&unit.slice)] {
                let control = level.join("cgroup.subtree_control");
                let enabled = fs::read_to_string(&control).unwrap();
                for controller in ["memory", "pids"] {
                    if !enabled.split_whitespace().any(|c| c == controller) {
                        fs::write(&control, format!("+{controller}")).unwrap_or_else(|e| {
                            panic!("{}: +{controller}: {e}", control.display())
                        });
                    }
                }
            }
        }
        unit
    }

    /// The unit's directory in the hierarchy that shows membership: the unified one
    /// where cgroup2 is mounted, else the v1 memory hierarchy.
    fn dir(&self) -> PathBuf {
        let mount = match &self.hierarchies.unified {
            Some(unified) => unified.clone(),
            None => self
                .hierarchies
                .v1
                .iter()
                .find(|(_, controllers)| controllers.iter().any(|c| c == "memory"))
                .map(|(mount, _)| mount.clone())
                .expect("a v1 memory hierarchy"),
        };
        mount.join(&self.rel)
    }

    /// Every `cgroup.procs` of the unit, space-separated, for a shell that moves
    /// itself in (`for f in $UNIT_PROCS; do echo $$ > "$f"; done`).
    fn procs_env(&self) -> String {
        let files: Vec<String> = self
            .hierarchies
            .mounts()
            .iter()
            .map(|mount| {
                mount
                    .join(&self.rel)
                    .join("cgroup.procs")
                    .display()
                    .to_string()
            })
            .collect();
        files.join(" ")
    }

    /// `supervisor ARGS...` started in the unit's cgroup: a shell writes its own pid
    /// into every hierarchy's cgroup.procs, then execs the supervisor.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("for f in $UNIT_PROCS; do echo $$ > \"$f\" || exit 125; done; exec \"$@\"")
            .arg("sh")
            .arg(bin("supervisor"))
            .args(args)
            .env("UNIT_PROCS", self.procs_env())
            .env_remove("SUPERVISOR_STATE_DIR")
            .env_remove("NOTIFY_SOCKET");
        cmd
    }

    /// The directories left below the unit in any hierarchy (the daemon's leaf is
    /// not counted: like the unit's own group, it is the service manager's to remove).
    fn leftovers(&self) -> Vec<PathBuf> {
        let mut left = Vec::new();
        for mount in self.hierarchies.mounts() {
            for entry in fs::read_dir(mount.join(&self.rel)).unwrap().flatten() {
                let leaf = entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("supervisor.");
                if entry.file_type().unwrap().is_dir() && !leaf {
                    left.push(entry.path());
                }
            }
        }
        left
    }
}

impl Drop for UnitCgroup {
    fn drop(&mut self) {
        for mount in self.hierarchies.mounts() {
            remove_tree(&mount.join(&self.slice));
        }
    }
}

/// rmdir of a cgroup directory and every group below it, deepest first.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// The path of `pid`'s cgroup in the hierarchy that shows membership (as
/// `UnitCgroup::dir`), from /proc/PID/cgroup.
fn cgroup_of(pid: i32, unified: bool) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    membership(&text, unified).unwrap_or_else(|| panic!("no cgroup line for pid {pid}: {text}"))
}

/// From /proc/PID/cgroup's text: the unified hierarchy's path, or the memory one's.
fn membership(text: &str, unified: bool) -> Option<String> {
    text.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let wanted = match unified {
            true => id == "0" && controllers.is_empty(),
            false => controllers.split(',').any(|c| c == "memory"),
        };
        wanted.then(|| path.to_string())
    })
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

/// Stops a daemon left running by a failed test.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + WAIT;
            while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                sleep(Duration::from_millis(100));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn cli(state: &Path, args: &[&str]) -> Output {
    Command::new(bin("supervisor"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .env_remove("SUPERVISOR_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// One datagram from the notification socket, within WAIT.
fn notification(socket: &UnixDatagram, daemon_log: &Path) -> String {
    let mut buf = [0u8; 4096];
    match socket.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!(
            "no notification from the daemon ({e}): {}",
            fs::read_to_string(daemon_log).unwrap_or_default()
        ),
    }
}

#[test]
fn daemon_in_a_delegated_cgroup_runs_services_below_it_and_notifies_readiness() {
    let unit = UnitCgroup::new();
    let dir = tempfile::Builder::new()
        .prefix("systemd-test")
        .tempdir_in("/tmp")
        .unwrap();
    let rootfs = dir.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let state = dir.path().join("state");
    let config = dir.path().join("services.yaml");
    let service = |name: &str| {
        format!(
            "  {name}:\n    image: {}\n    command: sleep 1000\n    limits: {{memory: 32M, pids: 16}}\n",
            rootfs.display()
        )
    };
    fs::write(
        &config,
        format!(
            "state_dir: {}\ncgroup_parent: ./services\nservices:\n{}{}",
            state.display(),
            service("web"),
            service("worker")
        ),
    )
    .unwrap();
    // systemd's socket is a datagram socket; the daemon finds it in $NOTIFY_SOCKET.
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let log_path = dir.path().join("daemon.stderr");
    let child = unit
        .command(&["daemon", "-c", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("SUPERVISOR_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    let daemon_pid = daemon.0.id() as i32;

    // READY=1 comes once both autostart services have been started: by then
    // both run, each in its group below the unit's.
    let ready = notification(&socket, &log_path);
    assert!(ready.contains("READY=1"), "{ready}");
    assert!(ready.contains(&format!("MAINPID={daemon_pid}")), "{ready}");
    assert!(
        ready.contains("2 of 2 autostart services started"),
        "{ready}"
    );
    let status = cli(&state, &["status", "--json"]);
    assert!(status.status.success(), "{status:?}");
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let unified = unit.hierarchies.unified.is_some();
    for name in ["web", "worker"] {
        let svc = status
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {status}"));
        assert_eq!(svc["state"], "running", "{svc}");
        let group = format!("{}/services/{name}", unit.rel);
        assert_eq!(svc["cgroup"], group.as_str(), "{svc}");
        let pid = svc["pid"].as_i64().unwrap() as i32;
        assert_eq!(cgroup_of(pid, unified), format!("/{group}"));
    }
    let services_dir = unit.dir().join("services");
    if unit.hierarchies.pure_v2() {
        // No internal processes: the daemon left the unit's group for a leaf, and
        // enabled the controllers the services' limits need below the unit.
        assert_eq!(
            cgroup_of(daemon_pid, true),
            format!("/{}/supervisor.daemon", unit.rel)
        );
        let enabled = fs::read_to_string(unit.dir().join("cgroup.subtree_control")).unwrap();
        for controller in ["memory", "pids"] {
            assert!(enabled.contains(controller), "{enabled}");
        }
        let max = fs::read_to_string(services_dir.join("web/memory.max")).unwrap();
        assert_eq!(max.trim(), "33554432");
    } else {
        // No such rule on v1 and hybrid hosts: the daemon stays where it was put.
        assert_eq!(cgroup_of(daemon_pid, unified), format!("/{}", unit.rel));
    }

    kill(Pid::from_raw(daemon_pid), Signal::SIGTERM).unwrap();
    let stopping = notification(&socket, &log_path);
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
    let status = wait_child(&mut daemon.0);
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        fs::read_to_string(&log_path).unwrap_or_default()
    );
    assert_eq!(
        unit.leftovers(),
        Vec::<PathBuf>::new(),
        "groups left behind"
    );
}

#[test]
fn run_in_a_delegated_cgroup_places_the_service_below_it() {
    let unit = UnitCgroup::new();
    let dir = tempfile::Builder::new()
        .prefix("systemd-test")
        .tempdir_in("/tmp")
        .unwrap();
    let rootfs = dir.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let config = dir.path().join("services.yaml");
    fs::write(
        &config,
        format!(
            "state_dir: {}\ncgroup_parent: ./jobs\nservices:\n  once:\n    image: {}\n    \
             command: cat /proc/self/cgroup\n    \
             limits: {{pids: 8}}\n    \
             namespaces: [pid, mount, uts, ipc, net]\n",
            dir.path().join("state").display(),
            rootfs.display()
        ),
    )
    .unwrap();
    let out = unit
        .command(&["run", "-c", config.to_str().unwrap(), "once"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{out:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The service printed its own /proc/self/cgroup (no cgroup namespace:
    // the host's paths).
    let unified = unit.hierarchies.unified.is_some();
    assert_eq!(
        membership(&stdout, unified).as_deref(),
        Some(format!("/{}/jobs/once", unit.rel).as_str()),
        "{stdout}"
    );
    assert_eq!(
        unit.leftovers(),
        Vec::<PathBuf>::new(),
        "groups left behind"
    );
}

#[test]
fn relative_parent_needs_a_cgroup_of_its_own_on_pure_v2() {
    let unit = UnitCgroup::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("services.yaml");
    fs::write(
        &config,
        format!(
            "state_dir: {}\ncgroup_parent: ./jobs\nservices:\n  once:\n    command: /bin/true\n    \
             namespaces: [mount]\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    // A second process in the unit's group, as a login shell would be.
    let mut companion = Command::new("sh")
        .arg("-c")
        .arg("for f in $UNIT_PROCS; do echo $$ > \"$f\"; done; exec sleep 1000")
        .env("UNIT_PROCS", unit.procs_env())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let procs = unit.dir().join("cgroup.procs");
    while !fs::read_to_string(&procs)
        .unwrap()
        .contains(&companion.id().to_string())
    {
        assert!(Instant::now() < deadline, "the companion never joined");
        sleep(Duration::from_millis(20));
    }
    let out = unit
        .command(&["run", "-c", config.to_str().unwrap(), "once"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = companion.kill();
    let _ = companion.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if unit.hierarchies.pure_v2() {
        assert_eq!(out.status.code(), Some(125), "{out:?}");
        assert!(
            stderr.contains("needs a cgroup of this process's own"),
            "{stderr}"
        );
        assert!(stderr.contains(&companion.id().to_string()), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    } else {
        // v1 and hybrid have no rule against processes beside groups.
        assert!(out.status.success(), "{out:?}");
    }
    assert_eq!(
        unit.leftovers(),
        Vec::<PathBuf>::new(),
        "groups left behind"
    );
}

#[test]
fn daemon_pings_the_watchdog_of_its_unit() {
    let dir = tempfile::Builder::new()
        .prefix("systemd-test")
        .tempdir_in("/tmp")
        .unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("services.yaml");
    fs::write(
        &config,
        format!(
            "state_dir: {}\ncgroup_parent: {}\nservices: {{}}\n",
            state.display(),
            unique_name("systemd-test")
        ),
    )
    .unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let log_path = dir.path().join("daemon.stderr");
    // WatchdogSec=200ms, as systemd passes it: WATCHDOG=1 every 100 ms or so.
    let child = Command::new(bin("supervisor"))
        .args(["daemon", "-c", config.to_str().unwrap()])
        .env_remove("SUPERVISOR_STATE_DIR")
        .env_remove("WATCHDOG_PID")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    let mut pings = 0;
    while pings < 3 {
        let message = notification(&socket, &log_path);
        if message == "WATCHDOG=1" {
            pings += 1;
        }
    }
    kill(Pid::from_raw(daemon.0.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(wait_child(&mut daemon.0).code(), Some(0));
}
