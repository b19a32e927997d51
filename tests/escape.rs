//! Escape tests: each attack runs as root inside a service (`supervisor run`
//! with the default settings unless a test says otherwise), and the test then
//! checks on the host that nothing changed. The test process itself never
//! mounts over host paths; anything a failing run could have changed on the
//! host is restored before the test fails (see `Restore`).
//!
//! Sections, one per part of the hardening: capabilities and seccomp; devices;
//! mounts, /proc and /sys, cgroup namespace, state dir and control socket;
//! user namespaces. Ordinary root work that must keep working is tested next
//! to the attacks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use integration_tests::{bin, require_root, unique_name};

/// A temp dir with a busybox root filesystem, a state dir and a config whose
/// cgroup parent is unique to the test; removes its cgroups at drop.
struct Fixture {
    dir: tempfile::TempDir,
    cgroup_parent: String,
}

impl Fixture {
    fn new() -> Fixture {
        require_root();
        let dir = tempfile::tempdir().expect("temp dir");
        integration_tests::busybox_rootfs(&dir.path().join("rootfs"));
        Fixture {
            dir,
            cgroup_parent: unique_name("escape-test"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn rootfs(&self) -> PathBuf {
        self.path().join("rootfs")
    }

    fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }

    /// Writes a config with one service `victim` running `sh -c SCRIPT` on the
    /// fixture's root filesystem, with `extra` keys (YAML lines indented by 4),
    /// and returns its path.
    fn config(&self, extra: &str) -> PathBuf {
        let path = self.path().join("services.yaml");
        let text = format!(
            "state_dir: {}\nimages_dir: {}\ncgroup_parent: {}\nservices:\n  victim:\n    image: {}\n    command: [/bin/sh]\n{extra}",
            self.state_dir().display(),
            self.path().join("images").display(),
            self.cgroup_parent,
            self.rootfs().display(),
        );
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// Runs `script` with `sh -c` as the service's command (root inside unless
    /// `extra` says otherwise); stdout and stderr are captured.
    fn attack(&self, extra: &str, script: &str) -> Output {
        let config = self.config(extra);
        Command::new(bin("supervisor"))
            .arg("run")
            .arg("-c")
            .arg(&config)
            .arg("victim")
            .args(["--", "/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("run supervisor")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // A failed test may leave the group: remove it so the host stays clean.
        for root in cgroup_roots() {
            let parent = root.join(&self.cgroup_parent);
            if let Ok(entries) = std::fs::read_dir(&parent) {
                for entry in entries.flatten() {
                    let _ = std::fs::remove_dir(entry.path());
                }
                let _ = std::fs::remove_dir(&parent);
            }
        }
    }
}

/// Puts a host file back as it was when the guard was made, whatever the test
/// did in between (contents and mode), when the guard drops: also when an
/// assertion fails, so a failing run leaves the host as it found it.
#[allow(dead_code)]
struct Restore {
    path: PathBuf,
    contents: Option<Vec<u8>>,
    mode: Option<u32>,
}

#[allow(dead_code)]
impl Restore {
    fn file(path: impl Into<PathBuf>) -> Restore {
        use std::os::unix::fs::PermissionsExt;
        let path = path.into();
        let contents = std::fs::read(&path).ok();
        let mode = std::fs::metadata(&path)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777);
        Restore {
            path,
            contents,
            mode,
        }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if let Some(mode) = self.mode {
            let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(mode));
        }
        if let Some(contents) = &self.contents {
            if std::fs::read(&self.path).ok().as_ref() != Some(contents) {
                let _ = std::fs::write(&self.path, contents);
            }
        }
    }
}

/// Mount points of every cgroup hierarchy (v1 and v2).
fn cgroup_roots() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let mount_point = left.split_whitespace().nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .collect()
}

#[allow(dead_code)]
fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[allow(dead_code)]
fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The harness itself: a root shell runs inside the service and its output
/// comes back.
#[test]
fn a_root_shell_runs_inside_the_service() {
    let fx = Fixture::new();
    let out = fx.attack("", "id -u; echo inside");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0\ninside\n");
}

// ---- capabilities and seccomp ----

// ---- devices ----

// ---- mounts, /proc and /sys, cgroup namespace, state dir, control socket ----

// ---- user namespaces ----
