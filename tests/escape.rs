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

impl Fixture {
    /// Like `attack`, for a service without an image (the host's `/` is its
    /// root) whose state directory is `state_dir`.
    fn attack_without_image(&self, state_dir: &Path, extra: &str, script: &str) -> Output {
        let path = self.path().join("services-host.yaml");
        let text = format!(
            "state_dir: {}\nimages_dir: {}\ncgroup_parent: {}\nservices:\n  victim:\n    command: [/bin/sh]\n{extra}",
            state_dir.display(),
            self.path().join("images").display(),
            self.cgroup_parent,
        );
        std::fs::write(&path, text).expect("write config");
        Command::new(bin("supervisor"))
            .arg("run")
            .arg("-c")
            .arg(&path)
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
            ("CapInh", DOCKER_CAPS),
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
            ("CapInh", "0000000000000000"),
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

/// What a service's /dev holds by default, with no terminal (`ls -A`, sorted).
const DEFAULT_DEV: &str =
    "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero";

/// A harmless host character device outside the default list: reading it gives
/// the current PM QoS latency (4 bytes); opening it for writing is what a
/// read-only `devices:` entry must refuse.
const EXTRA_DEVICE: &str = "/dev/cpu_dma_latency";

/// (mount options, fstype, super options) of the mount at `target` in a
/// mountinfo text, the last one mounted there.
fn mount_at(mountinfo: &str, target: &str) -> Option<(String, String, String)> {
    mountinfo.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.get(4) != Some(&target) {
            return None;
        }
        Some((
            left.get(5)?.to_string(),
            right.first()?.to_string(),
            right.get(2)?.to_string(),
        ))
    })
}

fn has_options(options: &str, wanted: &[&str]) -> bool {
    wanted.iter().all(|w| options.split(',').any(|o| o == *w))
}

/// major and minor of the host's root disk: the device of `/`, else (an overlay
/// or network root, as in the v2 VM) the first disk in /sys/block, else sda's.
fn root_disk() -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata("/").expect("stat /").dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    if major != 0 {
        return (major, minor);
    }
    let disks = std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten();
    for disk in disks {
        let name = disk.file_name().to_string_lossy().into_owned();
        if ["loop", "ram", "zram"].iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let text = std::fs::read_to_string(disk.path().join("dev")).unwrap_or_default();
        if let Some((major, minor)) = text.trim().split_once(':') {
            if let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) {
                return (major, minor);
            }
        }
    }
    (8, 0)
}

#[test]
fn mknod_of_the_kernel_log_does_not_open() {
    let fx = Fixture::new();
    let out = fx.attack(
        "",
        "mknod /dev/kmsg c 1 11 && echo made; head -c 300 /dev/kmsg; echo status=$?",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Nothing of the host's kernel log between the two lines.
    assert_eq!(stdout(&out), "made\nstatus=1\n", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn mknod_of_the_host_root_disk_does_not_open() {
    let fx = Fixture::new();
    let (major, minor) = root_disk();
    let out = fx.attack(
        "",
        &format!(
            "mknod /dev/rootdisk b {major} {minor} && echo made; \
             head -c 512 /dev/rootdisk > /tmp/sector; echo status=$?; wc -c < /tmp/sector"
        ),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "made\nstatus=1\n0\n", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dev_is_nosuid_noexec_with_only_the_default_entries() {
    let fx = Fixture::new();
    let out = fx.attack(
        "",
        "ls -A /dev | tr '\\n' ' '; echo; cp /bin/busybox /dev/bb; /dev/bb true 2>/dev/null; \
         echo exec=$?; echo ---; cat /proc/self/mountinfo",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let (head, mountinfo) = text.split_once("---\n").expect("marker");
    let mut lines = head.lines();
    assert_eq!(lines.next().map(str::trim_end), Some(DEFAULT_DEV));
    // 126: found but not executable, as on a noexec mount.
    assert_eq!(lines.next(), Some("exec=126"));
    let (options, fstype, _) = mount_at(mountinfo, "/dev").expect("/dev is a mount");
    assert_eq!(fstype, "tmpfs");
    assert!(has_options(&options, &["nosuid", "noexec"]), "{options}");
    assert!(!has_options(&options, &["nodev"]), "{options}");
}

#[test]
fn devpts_is_a_new_instance_and_ptmx_works() {
    let fx = Fixture::new();
    let out = fx.attack(
        "",
        "exec 3<>/dev/ptmx && ls /dev/pts | tr '\\n' ' '; echo; echo ---; cat /proc/self/mountinfo",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let (head, mountinfo) = text.split_once("---\n").expect("marker");
    // Our own instance: the first pty is 0, and none of the host's shows.
    assert_eq!(head.trim_end(), "0 ptmx", "{}", stderr(&out));
    let (options, fstype, super_options) = mount_at(mountinfo, "/dev/pts").expect("devpts");
    assert_eq!(fstype, "devpts");
    assert!(has_options(&options, &["nosuid", "noexec"]), "{options}");
    assert!(
        has_options(&super_options, &["gid=5", "mode=620", "ptmxmode=666"]),
        "{super_options}"
    );
}

#[test]
fn dev_shm_and_mqueue_have_their_flags() {
    let fx = Fixture::new();
    let out = fx.attack(
        "",
        "echo x > /dev/shm/f && stat -c %a /dev/shm; cat /proc/self/mountinfo",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("1777\n"), "{}", stderr(&out));
    let hardened = ["nosuid", "nodev", "noexec"];
    let (options, fstype, _) = mount_at(&text, "/dev/shm").expect("/dev/shm");
    assert_eq!(fstype, "tmpfs");
    assert!(has_options(&options, &hardened), "{options}");
    let (options, fstype, _) = mount_at(&text, "/dev/mqueue").expect("/dev/mqueue");
    assert_eq!(fstype, "mqueue");
    assert!(has_options(&options, &hardened), "{options}");

    // Without an ipc namespace of its own, the host's queues are not mounted.
    let out = fx.attack(
        "    namespaces: [pid, mount, uts, net]\n",
        "test -e /dev/mqueue && echo has-mqueue; grep -c ' mqueue ' /proc/self/mountinfo",
    );
    assert_eq!(stdout(&out), "0\n", "{}", stderr(&out));
}

#[test]
fn a_devices_entry_is_created_and_allowed_with_its_permissions() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let fx = Fixture::new();
    let host = std::fs::metadata(EXTRA_DEVICE)
        .unwrap_or_else(|e| panic!("this test needs the host's {EXTRA_DEVICE}: {e}"));
    assert!(host.file_type().is_char_device());
    let expected = format!(
        "{:o} {} {} {:x} {:x}",
        host.mode() & 0o7777,
        host.uid(),
        host.gid(),
        nix::sys::stat::major(host.rdev()),
        nix::sys::stat::minor(host.rdev()),
    );
    let script = "stat -c '%a %u %g %t %T' /dev/extra; head -c 4 /dev/extra | wc -c; \
                  printf '\\0\\0\\0\\0' > /dev/extra; echo write=$?";
    let out = fx.attack(
        &format!("    devices: [\"{EXTRA_DEVICE}:/dev/extra:r\"]\n"),
        script,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("{expected}\n4\nwrite=1\n"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );

    // rwm by default: it opens for reading and writing.
    let out = fx.attack(
        &format!("    devices: [\"{EXTRA_DEVICE}:/dev/extra\"]\n"),
        "exec 3<>/dev/extra && echo opened",
    );
    assert_eq!(stdout(&out), "opened\n", "{}", stderr(&out));

    // Without the entry, the same node made by hand does not open.
    let out = fx.attack(
        "",
        &format!(
            "mknod /dev/extra c {} {}; head -c 4 /dev/extra | wc -c",
            nix::sys::stat::major(host.rdev()),
            nix::sys::stat::minor(host.rdev())
        ),
    );
    assert_eq!(stdout(&out), "0\n", "{}", stderr(&out));
}

#[test]
fn a_missing_or_wrong_host_device_fails_the_start_clearly() {
    let fx = Fixture::new();
    for (entry, message) in [
        (
            "/dev/supervisor-test-no-such-device",
            "devices: /dev/supervisor-test-no-such-device: No such file or directory",
        ),
        (
            "/etc/passwd:/dev/passwd",
            "devices: /etc/passwd: not a character or block device",
        ),
    ] {
        let out = fx.attack(&format!("    devices: [\"{entry}\"]\n"), "echo started");
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        assert_eq!(stdout(&out), "");
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
    }
}

#[test]
fn privileged_sees_the_host_devices() {
    use std::os::unix::fs::FileTypeExt;
    let fx = Fixture::new();
    let out = fx.attack(
        "    privileged: true\n",
        &format!("ls -A /dev | tr '\\n' ' '; echo; head -c 4 {EXTRA_DEVICE} | wc -c"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("privileged"),
        "logged at start: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    let mut lines = text.lines();
    let inside: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(lines.next(), Some("4"), "{}", stderr(&out));
    let host = std::fs::read_dir("/dev").expect("list /dev");
    for entry in host.flatten() {
        let kind = entry.file_type().expect("file type");
        let name = entry.file_name().to_string_lossy().into_owned();
        if (kind.is_char_device() || kind.is_block_device()) && name != "console" {
            assert!(
                inside.contains(&name.as_str()),
                "{name} missing: {inside:?}"
            );
        }
    }
}

#[test]
fn in_a_user_namespace_the_devices_are_the_hosts_bound() {
    let fx = Fixture::new();
    let out = fx.attack(
        "    namespaces: [pid, mount, uts, ipc, net, user]\n",
        "ls -A /dev | tr '\\n' ' '; echo; echo x > /dev/null && head -c 3 /dev/zero | wc -c; \
         mknod /dev/kmsg c 1 11 || echo no-mknod",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("{DEFAULT_DEV} \n3\nno-mknod\n"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_terminal_becomes_dev_console() {
    let fx = Fixture::new();
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let config = fx.config("");
    let out = Command::new(bin("supervisor"))
        .args(["run", "-c"])
        .arg(&config)
        .args(["victim", "--", "/bin/sh", "-c"])
        .arg("test -c /dev/console && echo console; echo hello > /dev/console && echo written")
        .stdin(Stdio::from(std::fs::File::from(pty.slave)))
        .output()
        .expect("run supervisor");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "console\nwritten\n", "{}", stderr(&out));
    let mut master = std::fs::File::from(pty.master);
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut master, &mut buf).expect("read the terminal");
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("hello"),
        "the service wrote to the terminal"
    );
}

// ---- mounts, /proc and /sys, cgroup namespace, state dir, control socket ----

/// `stdout` of a script that prints nothing but `done` when all its checks hold.
fn assert_done(out: &Output) {
    assert_eq!(
        stdout(out),
        "done\n",
        "exit {:?}, stderr: {}",
        out.status,
        stderr(out)
    );
}

/// Mode and contents of a host file, to compare before and after an attack.
fn snapshot(path: &Path) -> (u32, Vec<u8>) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).expect("stat").permissions().mode();
    (mode, std::fs::read(path).expect("read"))
}

/// The attack of the issue on the old read-only bind of the host's init at
/// /dev/init; now init runs from a sealed memfd, a per-start copy that no one
/// can write and that no host user can reach.
#[test]
fn the_init_is_a_sealed_private_copy_not_the_hosts_binary() {
    let fx = Fixture::new();
    let host_init = bin("init");
    let _restore = Restore::file(&host_init);
    let before = snapshot(&host_init);
    let out = fx.attack(
        "",
        r#"
        mount -o remount,bind,rw /dev/init 2>/dev/null; chmod 4755 /dev/init 2>/dev/null
        test ! -e /dev/init || echo "/dev/init exists"
        case "$(readlink /proc/1/exe)" in /memfd:init*) ;; *) echo "init runs from $(readlink /proc/1/exe)";; esac
        chmod 4755 /proc/1/exe 2>/dev/null
        if sh -c 'echo x >> /proc/1/exe' 2>/dev/null; then echo "init was written"; fi
        echo done
        "#,
    );
    assert_done(&out);
    assert!(before == snapshot(&host_init), "the host's init changed");
}

/// A `readonly: true` bind is read-only on every mount of the bound tree
/// (the host's /dev has /dev/shm, /dev/pts, ... below it), and every bind
/// is nosuid and nodev.
#[test]
fn readonly_binds_are_readonly_nosuid_nodev_on_every_submount() {
    let fx = Fixture::new();
    let out = fx.attack(
        "    mounts:\n      - {source: /dev, target: /hostdev, readonly: true}\n",
        r#"
        n=0
        while read -r _ _ _ _ mp opts _; do
            case "$mp" in /hostdev|/hostdev/*) ;; *) continue;; esac
            n=$((n+1))
            for flag in ro nosuid nodev; do
                case ",$opts," in *",$flag,"*) ;; *) echo "$mp: $opts lacks $flag";; esac
            done
            if touch "$mp/escape-test" 2>/dev/null; then echo "wrote in $mp"; fi
        done < /proc/self/mountinfo
        test "$n" -ge 2 || echo "no submount under /hostdev"
        echo done
        "#,
    );
    assert_done(&out);
    assert!(!Path::new("/dev/shm/escape-test").exists());
}

/// The full attack on a read-only bind: remounting it read-write. The
/// mount flags of this part hold on their own; undoing them needs
/// CAP_SYS_ADMIN and mount(2), which the capability and seccomp part of
/// issue 9 takes away. Needs both parts: the lead enables it at merge.
#[test]
fn remounting_a_readonly_bind_read_write_fails() {
    let fx = Fixture::new();
    let data = fx.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let out = fx.attack(
        &format!(
            "    mounts:\n      - {{source: {}, target: /data, readonly: true}}\n",
            data.display()
        ),
        r#"
        mount -o remount,bind,rw /data 2>/dev/null
        echo x > /data/written 2>/dev/null
        echo done
        "#,
    );
    assert_done(&out);
    assert!(
        !data.join("written").exists(),
        "the read-only bind was made writable"
    );
}

/// `readonly_rootfs` on a service without an image: the host's `/` and every
/// mount that came with it are read-only; only the service's own /proc, /dev
/// and /tmp are not.
#[test]
fn readonly_rootfs_is_readonly_on_every_submount() {
    let fx = Fixture::new();
    let out = fx.attack_without_image(
        &fx.state_dir(),
        "    readonly_rootfs: true\n",
        r#"
        n=0
        while read -r _ _ _ _ mp opts _; do
            case "$mp" in /proc|/proc/*|/dev|/dev/*|/tmp) continue;; esac
            n=$((n+1))
            case ",$opts," in *,ro,*) ;; *) echo "$mp: $opts";; esac
        done < /proc/self/mountinfo
        test "$n" -ge 2 || echo "no submount of / checked"
        if touch /escape-test 2>/dev/null; then echo "wrote in /"; fi
        echo done
        "#,
    );
    assert_done(&out);
    assert!(!Path::new("/escape-test").exists());
}

/// The full attack on `readonly_rootfs`: remount the image read-write and
/// write into it (it is shared by every service that uses it). Needs both
/// parts of issue 9, as above.
#[test]
fn remounting_a_readonly_rootfs_read_write_fails() {
    let fx = Fixture::new();
    let out = fx.attack(
        "    readonly_rootfs: true\n",
        r#"
        mount -o remount,rw / 2>/dev/null
        mount -o remount,bind,rw / 2>/dev/null
        echo x > /escape-test 2>/dev/null
        echo done
        "#,
    );
    assert_done(&out);
    assert!(
        !fx.rootfs().join("escape-test").exists(),
        "the image was written"
    );
}

/// A host-wide sysctl that is harmless to change.
const SYSCTL: &str = "/proc/sys/kernel/printk_ratelimit_burst";

/// /proc/sys is read-only: a host-wide sysctl cannot be written.
#[test]
fn proc_sys_is_readonly() {
    let fx = Fixture::new();
    let _restore = Restore::file(SYSCTL);
    let before = std::fs::read_to_string(SYSCTL).expect("read sysctl");
    let out = fx.attack(
        "",
        &format!(
            r#"
            grep -q ' /proc/sys ro,' /proc/self/mountinfo || echo "/proc/sys is not read-only"
            if echo 97 > {SYSCTL} 2>/dev/null; then echo "sysctl written"; fi
            echo done
            "#
        ),
    );
    assert_done(&out);
    assert_eq!(
        std::fs::read_to_string(SYSCTL).expect("read sysctl"),
        before
    );
}

/// The full attack of the issue: unmount the read-only /proc/sys, then write
/// a host-wide sysctl. Needs both parts of issue 9 (umount2 and
/// CAP_SYS_ADMIN gone).
#[test]
fn unmounting_proc_sys_fails() {
    let fx = Fixture::new();
    let _restore = Restore::file(SYSCTL);
    let before = std::fs::read_to_string(SYSCTL).expect("read sysctl");
    let out = fx.attack(
        "",
        &format!(
            r#"
            if umount /proc/sys 2>/dev/null || umount -l /proc/sys 2>/dev/null; then echo "unmounted"; fi
            echo 97 > {SYSCTL} 2>/dev/null
            echo done
            "#
        ),
    );
    assert_done(&out);
    assert_eq!(
        std::fs::read_to_string(SYSCTL).expect("read sysctl"),
        before
    );
}

/// Docker's masked paths read empty inside (files) or are empty (dirs), and
/// its read-only paths are read-only.
#[test]
fn masked_paths_are_empty_and_readonly_paths_readonly() {
    let fx = Fixture::new();
    // Not vacuous: this host has some of them, with content.
    let interrupts = std::fs::read_to_string("/proc/interrupts").expect("host /proc/interrupts");
    assert!(!interrupts.is_empty());
    let out = fx.attack(
        "",
        r#"
        for p in /proc/acpi /proc/asound /proc/interrupts /proc/kcore /proc/keys \
                 /proc/latency_stats /proc/timer_list /proc/timer_stats /proc/sched_debug \
                 /proc/scsi /sys/firmware /sys/devices/virtual/powercap; do
            if [ -d "$p" ]; then
                test -z "$(ls -A "$p")" || echo "$p is not empty"
                if touch "$p/x" 2>/dev/null; then echo "$p is writable"; fi
            elif [ -e "$p" ]; then
                test "$(cat "$p" 2>/dev/null | wc -c)" = 0 || echo "$p is readable"
            fi
        done
        for p in /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger; do
            test -e "$p" || continue
            grep -q " $p ro," /proc/self/mountinfo || echo "$p is not read-only"
        done
        test -e /proc/interrupts || echo "/proc/interrupts is gone"
        echo done
        "#,
    );
    assert_done(&out);
}

/// With the default cgroup namespace, /sys/fs/cgroup shows the service's
/// own group (its pids limit, no other group), read-only, on every layout.
#[test]
fn sys_fs_cgroup_shows_only_the_services_group_read_only() {
    let fx = Fixture::new();
    let out = fx.attack(
        "    limits: {pids: 77}\n",
        r#"
        n=0
        while read -r _ _ _ _ mp opts _ sep fstype _; do
            case "$fstype" in cgroup|cgroup2) ;; *) continue;; esac
            n=$((n+1))
            case ",$opts," in *,ro,*) ;; *) echo "$mp: $opts";; esac
            sub=$(find "$mp" -mindepth 1 -type d | head -n 3)
            test -z "$sub" || echo "$mp shows other groups: $sub"
        done < /proc/self/mountinfo
        test "$n" -ge 1 || echo "no cgroup mounted"
        grep -q ' /sys/fs/cgroup ro,' /proc/self/mountinfo || echo "/sys/fs/cgroup is not read-only"
        if [ -f /sys/fs/cgroup/pids.max ]; then max=$(cat /sys/fs/cgroup/pids.max); else max=$(cat /sys/fs/cgroup/pids/pids.max); fi
        test "$max" = 77 || echo "pids.max is $max"
        if mkdir /sys/fs/cgroup/escape-test 2>/dev/null; then echo "mkdir worked"; fi
        grep -v ':/$' /proc/self/cgroup | sed 's/^/not the namespace root: /'
        echo done
        "#,
    );
    assert_done(&out);
}

/// A service without an image sees the host's `/`, but an empty read-only
/// tmpfs over the state directory: no control socket, no logs, no other
/// service's writable layer.
#[test]
fn a_service_without_an_image_cannot_reach_the_state_dir() {
    let fx = Fixture::new();
    // Outside /tmp, which the service's own /tmp hides anyway.
    let state = tempfile::Builder::new()
        .prefix("escape-state")
        .tempdir_in("/var/tmp")
        .expect("state dir in /var/tmp");
    std::fs::create_dir_all(state.path().join("logs")).expect("mkdir logs");
    std::fs::write(state.path().join("logs/other.log"), "secret\n").expect("write log");
    let out = fx.attack_without_image(
        state.path(),
        "",
        &format!(
            r#"
            s={}
            test -d "$s" || echo "no $s"
            test -z "$(ls -A "$s")" || echo "$s shows: $(ls -A "$s")"
            if touch "$s/x" 2>/dev/null; then echo "$s is writable"; fi
            echo done
            "#,
            state.path().display()
        ),
    );
    assert_done(&out);
    // What the service did not see is there on the host.
    assert!(state.path().join("logs/other.log").is_file());
}

/// `supervisor run` sets the state directory's modes, and puts right those of
/// directories made before: 0711 and 0700 for the writable layers.
#[test]
fn run_sets_the_state_dir_modes() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let containers = fx.state_dir().join("containers");
    std::fs::create_dir_all(&containers).expect("mkdir");
    for dir in [&fx.state_dir(), &containers] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    // A persistent layer keeps `containers` after the run, to look at.
    let out = fx.attack("    persist: true\n", "echo done");
    assert_done(&out);
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode(&fx.state_dir()), 0o711);
    assert_eq!(mode(&containers), 0o700);
}

// ---- user namespaces ----

/// The default namespaces plus a user namespace.
const USERNS: &str = "    namespaces: [pid, mount, uts, ipc, net, user]\n";

/// Runs service `name` of `config` with `sh -c SCRIPT` as its command.
fn run_service(config: &Path, name: &str, script: &str) -> Output {
    Command::new(bin("supervisor"))
        .arg("run")
        .arg("-c")
        .arg(config)
        .arg(name)
        .args(["--", "/bin/sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("run supervisor")
}

/// The first host id of a `0 FIRST 65536` id map, checked to be one.
fn first_id(map: &str) -> u64 {
    let fields: Vec<u64> = map
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect();
    assert_eq!(fields.len(), 3, "not one id map line: {map:?}");
    assert_eq!((fields[0], fields[2]), (0, 65536), "{map:?}");
    fields[1]
}

/// The range recorded for `name` in the state dir.
fn recorded_first_id(state_dir: &Path, name: &str) -> u64 {
    let text = std::fs::read_to_string(state_dir.join("userns.json")).expect("userns.json");
    let record: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    record[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} not in {text}"))
}

fn owner(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.uid(), meta.gid())
}

/// Owner, group and mode of everything under `root`, by path.
fn ownership(root: &Path) -> Vec<(PathBuf, u32, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut all = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let meta = entry.metadata().expect("stat");
            if meta.is_dir() {
                dirs.push(entry.path());
            }
            all.push((entry.path(), meta.uid(), meta.gid(), meta.mode()));
        }
    }
    all.sort();
    all
}

#[test]
fn user_namespace_root_is_the_first_id_of_a_private_range_from_the_pool() {
    let fx = Fixture::new();
    let pool = "userns_pool: {start: 300000, size: 131072}\n";
    let other = format!(
        "  other:\n    image: {}\n    command: [/bin/sh]\n{USERNS}",
        fx.rootfs().display()
    );
    let config = fx.config(&format!("{USERNS}{other}{pool}"));
    let mut firsts = Vec::new();
    for name in ["victim", "other"] {
        let out = run_service(&config, name, "cat /proc/self/uid_map /proc/self/gid_map");
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let text = stdout(&out);
        let maps: Vec<&str> = text.lines().collect();
        assert_eq!(maps.len(), 2, "{text}");
        let first = first_id(maps[0]);
        assert_eq!(first_id(maps[1]), first, "uid and gid maps differ: {text}");
        assert!(
            [300_000, 365_536].contains(&first),
            "{name}: {first} is not from the pool"
        );
        assert_eq!(recorded_first_id(&fx.state_dir(), name), first);
        firsts.push(first);
    }
    assert_ne!(firsts[0], firsts[1], "two services share a range");
    // A second run of a service gets its range again.
    let out = run_service(&config, "victim", "cat /proc/self/uid_map");
    assert_eq!(first_id(&stdout(&out)), firsts[0], "{}", stderr(&out));
}

#[test]
fn image_files_look_root_owned_inside_and_the_image_is_not_chowned() {
    let fx = Fixture::new();
    let before = ownership(&fx.rootfs());
    let out = fx.attack(
        USERNS,
        "stat -c '%u:%g' /bin/busybox /etc/passwd /; chown 1000:1000 /etc/passwd && stat -c '%u:%g' /etc/passwd; \
         httpd -p 80 && echo port-80",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Ordinary root work goes on: chown, a privileged port.
    assert_eq!(stdout(&out), "0:0\n0:0\n0:0\n1000:1000\nport-80\n");
    assert_eq!(
        ownership(&fx.rootfs()),
        before,
        "the image changed on the host"
    );
}

#[test]
fn files_the_service_creates_in_its_writable_layer_belong_to_its_range() {
    let fx = Fixture::new();
    let out = fx.attack(
        &format!("{USERNS}    persist: true\n"),
        "touch /made && mkdir /dir && chown 1000:1001 /dir && echo x >> /etc/passwd && cat /proc/self/uid_map",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let first = first_id(&stdout(&out)) as u32;
    let upper = fx.state_dir().join("containers/victim/upper");
    assert_eq!(owner(&upper.join("made")), (first, first));
    assert_eq!(owner(&upper.join("dir")), (first + 1000, first + 1001));
    // Copied up: the image's root-owned file, now the range's root's.
    assert_eq!(owner(&upper.join("etc/passwd")), (first, first));
    assert_eq!(owner(&fx.rootfs().join("etc/passwd")), (0, 0));
    assert!(!fx.rootfs().join("made").exists(), "written into the image");
}

/// A bind mount shows its files with their host ids. What that gives the
/// service's root: read-only, nothing; read-write, the same rights as the
/// host's root on that tree (and on it only).
#[test]
fn bind_mounts_keep_their_ids_inside() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let data = fx.path().join("data");
    std::fs::create_dir(&data).expect("mkdir data");
    std::fs::write(data.join("owned"), "owned\n").expect("write");
    std::os::unix::fs::chown(data.join("owned"), Some(1234), Some(5678)).expect("chown");
    std::fs::write(data.join("rootonly"), "host\n").expect("write");
    std::fs::set_permissions(
        data.join("rootonly"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    let mounts = format!(
        "    mounts:\n      - {{source: {0}, target: /rw}}\n      - {{source: {0}, target: /ro, readonly: true}}\n",
        data.display()
    );
    let script = "stat -c '%u:%g %a' /rw/owned /rw/rootonly /ro/rootonly; cat /ro/rootonly; \
                  echo service >> /ro/rootonly || echo ro-refused; \
                  echo service >> /rw/rootonly && echo rw-written; touch /rw/new";
    let out = fx.attack(&format!("{USERNS}{mounts}"), script);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "1234:5678 644\n0:0 600\n0:0 600\nhost\nro-refused\nrw-written\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("rootonly")).unwrap(),
        "host\nservice\n"
    );
    assert_eq!(owner(&data.join("new")), (0, 0));
}

/// Outside its idmapped mounts the service's root is a user of the host
/// like any other: a service on the host's `/` can neither read a root-only
/// file nor change a root-owned one, and host-wide settings are not its.
#[test]
fn the_services_root_is_not_the_hosts_root() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    // Outside /tmp, which the service sees as a tmpfs of its own.
    let probe = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let dir = probe.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(dir.join("public"), "host\n").expect("write");
    std::fs::write(dir.join("secret"), "secret\n").expect("write");
    std::fs::set_permissions(dir.join("secret"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    let _restore = [
        Restore::file(dir.join("public")),
        Restore::file(dir.join("secret")),
    ];
    let config = fx.path().join("host-root.yaml");
    std::fs::write(
        &config,
        format!(
            "state_dir: {}\ncgroup_parent: {}\nservices:\n  onhost:\n    command: [/bin/sh]\n{USERNS}",
            fx.state_dir().display(),
            fx.cgroup_parent
        ),
    )
    .expect("write config");
    let script = format!(
        "cd {}; stat -c %u public; cat secret || echo read-refused; \
         echo service >> public || echo write-refused; chmod 666 public || echo chmod-refused; \
         touch new || echo create-refused; stat -c %u /proc/sys/kernel/ostype; \
         cat /proc/self/uid_map; cat /etc/shadow > /dev/null || echo shadow-refused",
        dir.display()
    );
    let out = run_service(&config, "onhost", &script);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "65534",
            "read-refused",
            "write-refused",
            "chmod-refused",
            "create-refused",
            "65534"
        ],
        "{text}"
    );
    assert!(first_id(lines[6]) >= 65536, "{text}");
    assert_eq!(lines.get(7), Some(&"shadow-refused"), "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.join("public")).unwrap(),
        "host\n"
    );
    let mode = std::fs::metadata(dir.join("public"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    assert!(!dir.join("new").exists());
}

/// A bind source on a filesystem that cannot be idmapped (sysfs never can)
/// stops the start with a message that names it, rather than showing the
/// service its files with other ids.
#[test]
fn a_bind_source_that_cannot_be_idmapped_is_refused_clearly() {
    let fx = Fixture::new();
    let mounts = "    mounts: [{source: /sys/kernel, target: /k, readonly: true}]\n";
    let out = fx.attack(&format!("{USERNS}{mounts}"), "ls /k");
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains(
            "run victim: idmap bind mount /sys/kernel: this kernel cannot make idmapped mounts of its filesystem (sysfs)"
        ),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
}

/// A layer kept (`persist: true`) from a run without a user namespace holds
/// host root's files: the service's range could not use them, and is told so.
#[test]
fn a_kept_layer_of_another_range_is_refused() {
    let fx = Fixture::new();
    let out = fx.attack("    persist: true\n", "touch /made");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = fx.attack(&format!("{USERNS}    persist: true\n"), "true");
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("its files belong to host id 0, not to this service's range from"),
        "{text}"
    );
}

/// Two supervisors on different state dirs share no record; a new range
/// still stays clear of the ids a running service of the other one maps.
#[test]
fn a_new_range_avoids_the_ids_of_a_service_running_from_another_state_dir() {
    use std::io::{BufRead, BufReader};
    let first = Fixture::new();
    let second = Fixture::new();
    let pool = "userns_pool: {start: 400000, size: 131072}\n";
    let mut running = Command::new(bin("supervisor"))
        .arg("run")
        .arg("-c")
        .arg(first.config(&format!("{USERNS}{pool}")))
        .arg("victim")
        .args([
            "--",
            "/bin/sh",
            "-c",
            "cat /proc/self/uid_map; exec sleep 60",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run supervisor");
    let mut line = String::new();
    BufReader::new(running.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the first service's id map");
    let out = run_service(
        &second.config(&format!("{USERNS}{pool}")),
        "victim",
        "cat /proc/self/uid_map",
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(running.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("stop the first service");
    running.wait().expect("wait for the first service");
    assert!(out.status.success(), "{}", stderr(&out));
    let (taken, given) = (first_id(&line), first_id(&stdout(&out)));
    assert_ne!(taken, given, "both services got the host ids from {taken}");
}
