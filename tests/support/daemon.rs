//! A test's own `supervisor daemon`: a temporary directory (a busybox
//! `rootfs/`, `services.yaml`, `state/`, `daemon.stderr`), a cgroup_parent of
//! its own, the daemon process, and the CLI verbs run against it. The test
//! files' fixtures wrap it (Deref) and add what their tests need.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::{bin, busybox_rootfs, require_root, unique_name, BoundedChild, BoundedCommand};

/// Generous: the machine is small and busy; tests wait on conditions, never on timings.
pub const WAIT: Duration = Duration::from_secs(90);

/// `daemon_fixture!(Fixture)`: declares `struct Fixture(TestDaemon)`, which
/// derefs to its daemon, for a test file to add its own constructor and helpers.
#[macro_export]
macro_rules! daemon_fixture {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        struct $name($crate::TestDaemon);

        impl std::ops::Deref for $name {
            type Target = $crate::TestDaemon;
            fn deref(&self) -> &$crate::TestDaemon {
                &self.0
            }
        }

        impl std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut $crate::TestDaemon {
                &mut self.0
            }
        }
    };
}

pub struct TestDaemon {
    dir: tempfile::TempDir,
    /// `state_dir` of the service file (`DIR/state`).
    pub state: PathBuf,
    /// The service file the daemon runs (`DIR/services.yaml`).
    pub config: PathBuf,
    /// A busybox root filesystem (`DIR/rootfs`) for the services.
    pub rootfs: PathBuf,
    pub cgroup_parent: String,
    /// The daemon's binary (the built supervisor unless a test replaces it).
    pub exe: PathBuf,
    child: Option<Child>,
}

impl TestDaemon {
    /// A new directory `/tmp/PREFIX...` with a busybox rootfs, and a
    /// cgroup_parent named after PREFIX; no service file, no daemon yet.
    pub fn new(prefix: &str) -> TestDaemon {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        busybox_rootfs(&rootfs);
        TestDaemon {
            state: dir.path().join("state"),
            config: dir.path().join("services.yaml"),
            rootfs,
            cgroup_parent: unique_name(prefix),
            exe: bin("supervisor"),
            dir,
            child: None,
        }
    }

    /// Writes the service file: `top` (settings, each line ending in a
    /// newline), then state_dir, cgroup_parent and the `services:` mapping
    /// (indented by 2), where `ROOTFS` stands for the rootfs path.
    pub fn write_services(&self, top: &str, services: &str) {
        let text = format!(
            "{top}state_dir: {}\ncgroup_parent: {}\nservices:\n{}",
            self.state.display(),
            self.cgroup_parent,
            services.replace("ROOTFS", &self.rootfs.display().to_string())
        );
        fs::write(&self.config, text).unwrap();
    }

    /// The test's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Starts `supervisor daemon -c services.yaml` and waits until it answers.
    pub fn start_daemon(&mut self) {
        self.spawn_daemon(|_| {});
        self.wait_answering();
    }

    /// Starts the daemon (`configure` may add to its command: environment,
    /// say) without waiting; its stderr is appended to `daemon.stderr`.
    pub fn spawn_daemon(&mut self, configure: impl FnOnce(&mut Command)) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("daemon.stderr"))
            .unwrap();
        let mut command = Command::new(&self.exe);
        command
            .args(["daemon", "-c"])
            .arg(&self.config)
            .env_remove("SUPERVISOR_STATE_DIR")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        configure(&mut command);
        self.child = Some(command.spawn().unwrap());
    }

    /// Waits until the daemon answers `status`; fails if it exits first.
    pub fn wait_answering(&mut self) {
        let deadline = Instant::now() + WAIT;
        while !self.cli(&["status"]).status.success() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
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

    /// The pid of the daemon started last.
    pub fn daemon_pid(&self) -> u32 {
        self.child.as_ref().expect("daemon started").id()
    }

    /// Whether the daemon started last has not exited.
    pub fn daemon_running(&mut self) -> bool {
        let child = self.child.as_mut().expect("daemon started");
        child.try_wait().unwrap().is_none()
    }

    /// Whether a daemon of this test was started and not yet waited for.
    pub fn has_daemon(&self) -> bool {
        self.child.is_some()
    }

    pub fn daemon_stderr(&self) -> String {
        fs::read_to_string(self.path().join("daemon.stderr")).unwrap_or_default()
    }

    /// `supervisor --state-dir STATE ARGS`, stdin /dev/null.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("supervisor"));
        cmd.arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .env_remove("SUPERVISOR_STATE_DIR")
            .stdin(Stdio::null());
        cmd
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.command(args).bounded_output().unwrap()
    }

    /// Runs a verb that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "supervisor {args:?} failed: {}\ndaemon: {}",
            String::from_utf8_lossy(&out.stderr),
            self.daemon_stderr()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a verb that must fail with exit 1 and one line on stderr; the line.
    pub fn fails(&self, args: &[&str]) -> String {
        self.fails_with(1, args)
    }

    /// Runs a verb that must fail with `code` and one line on stderr; the line.
    pub fn fails_with(&self, code: i32, args: &[&str]) -> String {
        let out = self.cli(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "supervisor {args:?}: {out:?}"
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
        stderr
    }

    /// `name`'s object of `status --json`.
    pub fn service(&self, name: &str) -> Value {
        let text = self.ok(&["status", "--json"]);
        let all: Value = serde_json::from_str(&text).unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in status"))
            .clone()
    }

    /// Polls `name`'s status until `done` holds (`what` says what was awaited); that status.
    pub fn wait_for(&self, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let svc = self.service(name);
            if done(&svc) {
                return svc;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: never {what}: {svc}\nlog: {}\ndaemon: {}",
                self.log(name),
                self.daemon_stderr()
            );
            sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_state(&self, name: &str, state: &str) -> Value {
        self.wait_for(name, &format!("became {state}"), |s| s["state"] == state)
    }

    /// The service's log file as it is now.
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.state.join("logs").join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Waits until the service's log has `needle`.
    pub fn wait_logged(&self, name: &str, needle: &str) {
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

    /// SIGKILL to the daemon; waits until it is gone.
    pub fn kill_daemon(&mut self) {
        let mut child = self.child.take().expect("daemon running");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        child.bounded_wait().unwrap();
    }

    /// Waits (bounded) for the daemon to end by itself (after `supervisor
    /// shutdown`, say); its status.
    pub fn wait_daemon_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        child.bounded_wait().unwrap()
    }

    /// SIGTERM to the daemon; waits for its exit, which must be 0.
    pub fn shutdown(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let status = child.bounded_wait().unwrap();
        assert_eq!(status.code(), Some(0), "daemon: {}", self.daemon_stderr());
        status
    }
}

impl Drop for TestDaemon {
    /// A test that failed with its daemon up: SIGTERM (its services stop and
    /// their cgroups go), SIGKILL if it does not end in time.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
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
