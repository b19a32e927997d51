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

/// Docker's default capability set (CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD,
/// NET_RAW, SETGID, SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT,
/// KILL, AUDIT_WRITE).
const DOCKER_CAPS: &str = "00000000a80425fb";

/// A fixture whose root filesystem has `/bin/escape-probe`.
fn probe_fixture() -> Fixture {
    let fx = Fixture::new();
    let probe = fx.rootfs().join("bin/escape-probe");
    std::fs::copy(bin("escape-probe"), &probe).expect("copy escape-probe into the rootfs");
    fx
}

/// The value of `key:` in a /proc/PID/status text.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// The capability and seccomp lines of the service's shell.
fn sets_inside(fx: &Fixture, extra: &str) -> String {
    let out = fx.attack(extra, "cat /proc/self/status");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

fn assert_sets(status: &str, expected: &[(&str, &str)]) {
    for (key, value) in expected {
        assert_eq!(
            status_field(status, key),
            Some(*value),
            "{key} in\n{status}"
        );
    }
}

#[test]
fn a_root_service_has_dockers_capabilities_and_a_seccomp_filter() {
    let fx = Fixture::new();
    let status = sets_inside(&fx, "");
    assert_sets(
        &status,
        &[
            ("CapBnd", DOCKER_CAPS),
            ("CapPrm", DOCKER_CAPS),
            ("CapEff", DOCKER_CAPS),
            ("CapInh", "0000000000000000"),
            ("CapAmb", "0000000000000000"),
            ("NoNewPrivs", "1"),
            ("Seccomp", "2"),
        ],
    );
}

#[test]
fn a_non_root_user_has_no_effective_capabilities() {
    let fx = Fixture::new();
    let status = sets_inside(&fx, "    user: nobody\n");
    assert_sets(
        &status,
        &[
            ("Uid", "65534\t65534\t65534\t65534"),
            ("CapBnd", DOCKER_CAPS),
            ("CapPrm", "0000000000000000"),
            ("CapEff", "0000000000000000"),
            ("CapAmb", "0000000000000000"),
            ("Seccomp", "2"),
        ],
    );
    // The switch to the user happens with the capabilities it needs, whatever
    // the service keeps.
    let status = sets_inside(&fx, "    user: nobody\n    cap_drop: [ALL]\n");
    assert_sets(
        &status,
        &[
            ("Uid", "65534\t65534\t65534\t65534"),
            ("CapBnd", "0000000000000000"),
        ],
    );
}

#[test]
fn cap_add_and_cap_drop_change_the_sets() {
    let fx = Fixture::new();
    // + NET_ADMIN (12), - CHOWN (0)
    let extra = "    cap_add: [NET_ADMIN]\n    cap_drop: [chown]\n";
    let status = sets_inside(&fx, extra);
    assert_sets(
        &status,
        &[
            ("CapBnd", "00000000a80435fa"),
            ("CapEff", "00000000a80435fa"),
        ],
    );
    let out = fx.attack(extra, "touch /tmp/f && chown 65534 /tmp/f");
    assert!(!out.status.success(), "chown worked without CAP_CHOWN");
    let out = fx.attack("    cap_drop: [ALL]\n", "grep CapEff /proc/self/status");
    assert_eq!(stdout(&out), "CapEff:\t0000000000000000\n");
}

#[test]
fn privileged_keeps_every_capability_and_has_no_seccomp_filter() {
    let fx = Fixture::new();
    let ours = std::fs::read_to_string("/proc/self/status").expect("read our status");
    let ours = status_field(&ours, "CapBnd").expect("CapBnd").to_owned();
    let out = fx.attack("    privileged: true\n", "cat /proc/self/status");
    assert!(out.status.success(), "{}", stderr(&out));
    let status = stdout(&out);
    assert_sets(
        &status,
        &[("CapBnd", &ours), ("CapEff", &ours), ("Seccomp", "0")],
    );
    assert!(
        stderr(&out).contains("service victim is privileged"),
        "no warning: {}",
        stderr(&out)
    );
}

#[test]
fn seccomp_unconfined_has_no_filter_but_keeps_the_capability_limits() {
    let fx = Fixture::new();
    let status = sets_inside(&fx, "    seccomp: unconfined\n");
    assert_sets(&status, &[("Seccomp", "0"), ("CapBnd", DOCKER_CAPS)]);
}

#[test]
fn a_seccomp_profile_file_applies_its_own_errno() {
    let fx = Fixture::new();
    let profile = fx.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .expect("write profile");
    let extra = format!("    seccomp: {}\n", profile.display());
    let out = fx.attack(&extra, "mkdir /tmp/x");
    assert!(!out.status.success(), "mkdir worked");
    assert!(
        stderr(&out).contains("Permission denied"),
        "not EACCES: {}",
        stderr(&out)
    );
    let out = fx.attack(&extra, "touch /tmp/y && grep Seccomp: /proc/self/status");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Seccomp:\t2\n");
}

#[test]
fn a_v1_cgroup_hierarchy_cannot_be_mounted_for_its_release_agent() {
    let fx = Fixture::new();
    let _restore: Vec<Restore> = cgroup_roots()
        .into_iter()
        .map(|root| root.join("release_agent"))
        .filter(|agent| agent.exists())
        .map(Restore::file)
        .collect();
    let script = "mkdir -p /tmp/cg; \
        for opts in memory rdma none,name=escape; do \
          mount -t cgroup -o $opts cgroup /tmp/cg && echo MOUNTED $opts && \
          echo /tmp/evil > /tmp/cg/release_agent && echo WROTE $opts; \
        done; true";
    let out = fx.attack("", script);
    assert!(
        !stdout(&out).contains("MOUNTED"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    for root in cgroup_roots() {
        let agent = std::fs::read_to_string(root.join("release_agent")).unwrap_or_default();
        assert!(!agent.contains("/tmp/evil"), "{} changed", root.display());
    }
}

#[test]
fn binfmt_misc_cannot_be_mounted_to_register_an_interpreter() {
    let fx = Fixture::new();
    let script = "mkdir -p /tmp/b; \
        mount -t binfmt_misc binfmt_misc /tmp/b && echo MOUNTED && \
        echo ':escapetest:M::ESCAPEMAGIC::/bin/sh:' > /tmp/b/register && echo REGISTERED; true";
    let out = fx.attack("", script);
    let registered = Path::new("/proc/sys/fs/binfmt_misc/escapetest");
    if registered.exists() {
        let _ = std::fs::write(registered, "-1");
    }
    assert!(
        !stdout(&out).contains("MOUNTED"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn open_by_handle_at_cannot_read_a_host_file() {
    let fx = probe_fixture();
    let shared = fx.path().join("shared");
    std::fs::create_dir(&shared).expect("create shared dir");
    let secret = fx.path().join("secret");
    std::fs::write(&secret, "host secret\n").expect("write secret");
    let handle = Command::new(bin("escape-probe"))
        .arg("handle")
        .arg(&secret)
        .output()
        .expect("run escape-probe on the host");
    let handle = stdout(&handle);
    let handle = handle.trim().strip_prefix("ok ").expect("a file handle");
    let mount = format!(
        "    mounts:\n      - {{source: {}, target: /shared}}\n",
        shared.display()
    );
    let script = format!("escape-probe open-by-handle /shared {handle}");
    let out = fx.attack(&mount, &script);
    assert_eq!(stdout(&out), "err 1\n", "{}", stderr(&out));
    // The same attack with every capability and no filter reads the file:
    // the probe works, the defaults stop it.
    let out = fx.attack(&format!("{mount}    privileged: true\n"), &script);
    assert_eq!(stdout(&out), "ok host secret\n", "{}", stderr(&out));
}

/// Runs probe commands (one per line) inside a default service; the output
/// lines, one per command.
fn probe_lines(fx: &Fixture, extra: &str, commands: &[&str]) -> Vec<String> {
    let script: String = commands
        .iter()
        .map(|c| format!("escape-probe {c}; "))
        .collect();
    let out = fx.attack(extra, &script);
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), commands.len(), "{lines:?} {}", stderr(&out));
    lines
}

fn assert_probes(fx: &Fixture, expected: &[(&str, &str)]) {
    let commands: Vec<&str> = expected.iter().map(|(c, _)| *c).collect();
    let lines = probe_lines(fx, "", &commands);
    for ((command, want), got) in expected.iter().zip(&lines) {
        assert_eq!(got, want, "escape-probe {command}");
    }
}

#[test]
fn the_host_keyring_is_out_of_reach() {
    let fx = probe_fixture();
    assert_probes(&fx, &[("keyctl", "err 1")]);
}

#[test]
fn the_clock_cannot_be_set() {
    let fx = probe_fixture();
    assert_probes(&fx, &[("clock-settime", "err 1")]);
    // Set to the current second: a success would change next to nothing.
    // (busybox date reports the failure but exits 0.)
    let out = fx.attack("", "date -s @$(date +%s)");
    assert!(
        stderr(&out).contains("can't set date: Operation not permitted"),
        "date -s worked: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn no_namespace_can_be_created_or_joined() {
    let fx = probe_fixture();
    assert_probes(
        &fx,
        &[
            ("unshare 0x20000", "err 1"),
            ("unshare 0x40000000", "err 1"),
            ("unshare 0x10000000", "err 1"),
            ("clone 0x20000", "err 1"),
            ("clone 0x20000000", "err 1"),
            ("clone 0", "ok "),
            ("clone3", "err 38"),
        ],
    );
    let out = fx.attack("", "unshare -m true || nsenter -t 1 -m true");
    assert!(!out.status.success(), "unshare or nsenter worked");
}

#[test]
fn modules_bpf_and_reboot_are_refused() {
    let fx = probe_fixture();
    assert_probes(
        &fx,
        &[
            ("finit-module", "err 1"),
            ("bpf", "err 1"),
            ("reboot", "err 1"),
        ],
    );
}

#[test]
#[cfg(target_arch = "x86_64")]
fn other_abis_and_personalities_are_refused() {
    let fx = probe_fixture();
    assert_probes(
        &fx,
        &[
            ("x32-getpid", "err 1"),
            ("i386-getpid", "err 1"),
            // ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC
            ("personality 0x40000", "err 1"),
            ("personality 0x400000", "err 1"),
            ("personality 0xffffffff", "ok 0x0"),
        ],
    );
}

#[test]
fn ordinary_root_work_still_works() {
    let fx = probe_fixture();
    let script = "set -e; \
        touch /tmp/f; chown 65534:65534 /tmp/f; stat -c 'chown %u:%g' /tmp/f; \
        mkdir /tmp/www; echo served > /tmp/www/index.html; \
        httpd -p 127.0.0.1:80 -h /tmp/www; wget -q -O - http://127.0.0.1:80/; \
        escape-probe setuid 65534; \
        ping -c 1 -W 2 127.0.0.1 >/dev/null && echo ping";
    let out = fx.attack("", script);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        stdout(&out),
        "chown 65534:65534\nserved\nok 65534\nping\n",
        "{}",
        stderr(&out)
    );
}

// ---- devices ----

// ---- mounts, /proc and /sys, cgroup namespace, state dir, control socket ----

// ---- user namespaces ----
