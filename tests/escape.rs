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

// ---- devices ----

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
#[ignore = "needs the capability/seccomp part of issue 9 as well (enabled at merge)"]
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
#[ignore = "needs the capability/seccomp part of issue 9 as well (enabled at merge)"]
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
#[ignore = "needs the capability/seccomp part of issue 9 as well (enabled at merge)"]
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
