//! `supervisor export`: the bundle it writes, run by Debian's runc (and crun
//! on pure cgroup v2), behaves like the service under `supervisor run`; our
//! init is a good PID 1 under runc. For real, as root.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use integration_tests::{bin, busybox_rootfs, require_root, unique_name};

/// Every command of a test ends within this (coreutils' `timeout`).
const BOUND: &str = "60";

/// What a service shows of itself: who it is, its capabilities, seccomp,
/// limits (v2's file, else v1's), a masked path, its root, mounts and devices.
const PROBE: &str = concat!(
    "'id -u; id -G; hostname; pwd; echo \"$HOME $PATH\"; ",
    "grep -E \"^(CapEff|CapBnd|CapPrm|CapInh|Seccomp|NoNewPrivs):\" /proc/self/status; ",
    "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null; ",
    "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; ",
    "echo timer_list $(wc -c < /proc/timer_list); ",
    "touch /probe 2>/dev/null && echo root rw || echo root ro; ",
    "unshare -n true 2>/dev/null && echo unshare allowed || echo unshare refused; ",
    "exit 3'"
);

struct Fixture {
    dir: tempfile::TempDir,
    cgroup_parent: String,
}

impl Fixture {
    fn new() -> Fixture {
        require_root();
        let dir = tempfile::tempdir().expect("temp dir");
        busybox_rootfs(&dir.path().join("image"));
        // A read-only root gets no new mount points: the image has /data.
        std::fs::create_dir(dir.path().join("image/data")).expect("mount point");
        std::fs::create_dir(dir.path().join("data")).expect("data dir");
        std::fs::write(dir.path().join("data/hello"), "hello from the host\n").expect("data");
        // A profile of the user's: everything allowed but mkdir (EACCES).
        let profile = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#;
        std::fs::write(dir.path().join("profile.json"), profile).expect("profile");
        Fixture {
            dir,
            cgroup_parent: unique_name("export-test"),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A config with `services` (YAML indented by 2); `IMAGE` and `DATA`
    /// stand for the fixture's image and data directory.
    fn config(&self, services: &str) -> PathBuf {
        let path = self.path("services.yaml");
        let services = services
            .replace("IMAGE", &self.path("image").display().to_string())
            .replace("DATA", &self.path("data").display().to_string())
            .replace("PROFILE", &self.path("profile.json").display().to_string());
        let text = format!(
            "state_dir: {}\nimages_dir: {}\ncgroup_parent: {}\nservices:\n{services}",
            self.path("state").display(),
            self.path("images").display(),
            self.cgroup_parent,
        );
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// `supervisor export`, which must succeed; the bundle's directory.
    fn export(&self, config: &Path, name: &str) -> PathBuf {
        let bundle = self.path(&format!("bundle-{name}"));
        let output = supervisor(
            &["export", "-c"],
            config,
            &[name, &bundle.display().to_string()],
        );
        assert!(
            output.status.success(),
            "export {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        bundle
    }

    fn run(&self, config: &Path, name: &str) -> Output {
        supervisor(&["run", "-c"], config, &[name])
    }
}

fn supervisor(verb: &[&str], config: &Path, rest: &[&str]) -> Output {
    Command::new("timeout")
        .args(["--kill-after=5", BOUND])
        .arg(bin("supervisor"))
        .args(verb)
        .arg(config)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .expect("run supervisor")
}

/// A container of `runtime`, deleted (forcibly) when dropped, even when a test fails.
struct Container {
    runtime: &'static str,
    id: String,
}

impl Container {
    fn new(runtime: &'static str) -> Container {
        require_runtime(runtime);
        Container {
            runtime,
            id: unique_name("export"),
        }
    }

    fn command(&self, bundle: &Path) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.args(["--kill-after=5", BOUND, self.runtime, "run", "--bundle"])
            .arg(bundle)
            .arg(&self.id)
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, bundle: &Path) -> Output {
        self.command(bundle).output().expect("run the runtime")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(self.runtime)
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
    }
}

fn require_runtime(runtime: &str) {
    let found = Command::new(runtime)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{runtime} is missing: run tests/deps.sh (Debian's runc and crun)"
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The services compared: a default one with limits, and a narrow one (a
/// user, a capability dropped and one added, read-only root, a read-only bind
/// mount, a device, its own seccomp choice).
const SERVICES: &str = "  plain:
    image: IMAGE
    command: PROBE
    limits: {pids: 50, memory: 64m, cpus: 0.5}
  narrow:
    image: IMAGE
    command: PROBE; cat /data/hello; touch /data/x 2>/dev/null || echo data ro; head -c 4 /dev/extra | wc -c
    user: 1000:1000
    workdir: /tmp
    env: {GREETING: hi}
    hostname: narrow-host
    readonly_rootfs: true
    cap_drop: [NET_RAW]
    cap_add: [SYS_PTRACE]
    mounts: [{source: DATA, target: /data, readonly: true}]
    devices: [/dev/full:/dev/extra:r]
    limits: {pids: 20}
  root-caps:
    image: IMAGE
    command: PROBE
    cap_add: [SYS_ADMIN]
    seccomp: unconfined
  custom:
    image: IMAGE
    command: mkdir /tmp/new 2>&1; grep Seccomp /proc/self/status; exit 6
    seccomp: PROFILE
  # Device nodes only: runtimes add a /dev/core link where /proc/kcore exists.
  priv:
    image: IMAGE
    privileged: true
    command: grep -E '^(CapEff|CapBnd|Seccomp)' /proc/self/status; find /dev -type c | sort | xargs; find /dev -type b | sort | xargs; head -c 3 /dev/full | wc -c; exit 2
";

fn services() -> String {
    // The narrow service's command goes on after the probe's `exit`: drop it there.
    let probe_body = PROBE.trim_end_matches("'").replace("exit 3", "");
    SERVICES
        .replace(
            "PROBE; cat /data/hello; touch /data/x 2>/dev/null || echo data ro; head -c 4 /dev/extra | wc -c",
            &format!("{probe_body} cat /data/hello; touch /data/x 2>/dev/null || echo data ro; head -c 4 /dev/extra | wc -c; exit 4'"),
        )
        .replace("PROBE", PROBE)
}

/// Runs each service with the supervisor and its bundle with `runtime`: the
/// same output and exit status.
fn runs_like_the_service(runtime: &'static str) {
    let fixture = Fixture::new();
    let config = fixture.config(&services());
    let shows: [(&str, i32, &[&str]); 5] = [
        (
            "plain",
            3,
            &[
                "plain",
                "Seccomp:\t2",
                "NoNewPrivs:\t1",
                "50",
                "67108864",
                "timer_list 0",
                "root rw",
                "unshare refused",
            ],
        ),
        (
            "narrow",
            4,
            &[
                "1000",
                "narrow-host",
                "/tmp",
                "CapEff:\t0000000000000000",
                "20",
                "root ro",
                "hello from the host",
                "data ro",
                "4",
            ],
        ),
        ("root-caps", 3, &["Seccomp:\t0", "unshare allowed"]),
        ("priv", 2, &["Seccomp:\t0", "3"]),
        (
            "custom",
            6,
            &[
                "mkdir: can't create directory '/tmp/new': Permission denied",
                "Seccomp:\t2",
            ],
        ),
    ];
    for (name, status, lines) in shows {
        let expected = fixture.run(&config, name);
        assert_eq!(
            expected.status.code(),
            Some(status),
            "supervisor run {name}: {}",
            text(&expected.stderr)
        );
        let shown = text(&expected.stdout);
        for line in lines {
            assert!(
                shown.lines().any(|l| l == *line),
                "{name} shows no `{line}`: {shown}"
            );
        }
        let bundle = fixture.export(&config, name);
        let container = Container::new(runtime);
        let output = container.run(&bundle);
        assert_eq!(
            text(&output.stdout),
            text(&expected.stdout),
            "{runtime} run of {name}'s bundle (stderr: {})",
            text(&output.stderr)
        );
        assert_eq!(
            output.status.code(),
            Some(status),
            "{runtime}: {name}'s exit status"
        );
    }
}

#[test]
fn runc_runs_a_bundle_like_the_service() {
    runs_like_the_service("runc");
}

/// crun refuses hybrid cgroups ("cgroups in hybrid mode not supported"):
/// tests/run.sh runs this in the pure cgroup v2 VM.
#[test]
#[ignore = "crun needs pure cgroup v2: tests/run.sh runs it in the VM"]
fn crun_runs_a_bundle_like_the_service() {
    require_pure_v2();
    runs_like_the_service("crun");
}

fn require_pure_v2() {
    let pure_v2 = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .any(|line| {
            line.split(' ').nth(4) == Some("/sys/fs/cgroup") && line.contains(" - cgroup2 ")
        });
    assert!(
        pure_v2,
        "crun needs pure cgroup v2 (cgroup2 on /sys/fs/cgroup): run this in the VM"
    );
}

#[test]
fn the_bundle_says_what_the_service_is() {
    let fixture = Fixture::new();
    let config = fixture.config(&services());
    let bundle = fixture.export(&config, "narrow");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).expect("config.json"))
            .expect("JSON");
    assert_eq!(json["process"]["args"][0], "/.supervisor-init");
    assert_eq!(json["process"]["user"]["uid"], 1000);
    assert_eq!(json["process"]["cwd"], "/tmp");
    assert_eq!(json["process"]["noNewPrivileges"], true);
    assert!(json["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "GREETING=hi"));
    assert_eq!(json["hostname"], "narrow-host");
    assert_eq!(
        json["root"],
        serde_json::json!({"path": "rootfs", "readonly": true})
    );
    let bounding = &json["process"]["capabilities"]["bounding"];
    assert!(bounding
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "CAP_SYS_PTRACE"));
    assert!(!bounding
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "CAP_NET_RAW"));
    assert_eq!(json["linux"]["resources"]["pids"]["limit"], 20);
    assert_eq!(
        json["linux"]["resources"]["devices"][0],
        serde_json::json!({"allow": false, "access": "rwm"})
    );
    assert_eq!(json["linux"]["devices"][0]["path"], "/dev/extra");
    assert_eq!(json["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    assert!(json["linux"]["maskedPaths"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "/proc/kcore"));
    // A copy of the image, with our init.
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    assert!(bundle.join("rootfs/.supervisor-init").is_file());
}

#[test]
fn export_refuses_clearly() {
    let fixture = Fixture::new();
    let config = fixture.config(
        "  web:\n    image: IMAGE\n    command: [/bin/true]\n  gone:\n    image: no-such-image\n    command: [/bin/true]\n  host:\n    command: [/bin/true]\n",
    );
    let full = fixture.path("full");
    std::fs::create_dir(&full).expect("mkdir");
    std::fs::write(full.join("file"), "x").expect("file");
    let fresh = fixture.path("fresh").display().to_string();
    for (name, dir, message) in [
        (
            "wbe",
            fresh.as_str(),
            "no service named wbe, did you mean web?",
        ),
        ("web", &full.display().to_string(), "not empty"),
        ("gone", fresh.as_str(), "no-such-image"),
        ("host", fresh.as_str(), "has no image"),
    ] {
        let output = supervisor(&["export", "-c"], &config, &[name, dir]);
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "export {name} succeeded");
        assert!(stderr.contains(message), "export {name}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "export {name}: one line: {stderr}"
        );
    }
    assert!(
        !fixture.path("fresh").exists(),
        "a refused export wrote nothing"
    );
}

/// Our init as PID 1 of a runc container: `runc kill ID TERM` reaches the
/// command, orphans are reaped, the command's status is runc's.
#[test]
fn init_is_pid_1_under_runc() {
    let fixture = Fixture::new();
    let config = fixture.config(
        "  waiter:
    image: IMAGE
    command: trap 'echo got TERM; exit 7' TERM; sh -c 'sleep 0.2 & sleep 0.3 &'; sleep 1; echo zombies $(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l); echo pid1 $(cat /proc/1/comm); echo ready; while :; do sleep 0.1; done
",
    );
    let bundle = fixture.export(&config, "waiter");
    let container = Container::new("runc");
    let mut child = container
        .command(&bundle)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runc run");
    let lines = line_channel(child.stdout.take().expect("stdout"));
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l == "ready") {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no `ready` from the container; saw {seen:?}"));
        seen.push(line);
    }
    assert!(
        seen.contains(&"zombies 0".to_string()),
        "orphans were not reaped: {seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.starts_with("pid1 .supervisor")),
        "PID 1 is not our init: {seen:?}"
    );
    let kill = Command::new("timeout")
        .args([BOUND, "runc", "kill", &container.id, "TERM"])
        .status()
        .expect("runc kill");
    assert!(kill.success(), "runc kill failed");
    let rest = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the command's answer to TERM");
    assert_eq!(rest, "got TERM");
    let status = child.wait().expect("runc run");
    assert_eq!(status.code(), Some(7), "runc: {}", {
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
        err
    });
}

/// A service with a user namespace: the bundle maps its range, and the copied
/// root filesystem belongs to it.
#[test]
fn a_user_namespace_service_runs_under_runc() {
    user_namespace_service_runs_under("runc");
}

#[test]
#[ignore = "crun needs pure cgroup v2: tests/run.sh runs it in the VM"]
fn a_user_namespace_service_runs_under_crun() {
    require_pure_v2();
    user_namespace_service_runs_under("crun");
}

fn user_namespace_service_runs_under(runtime: &'static str) {
    let fixture = Fixture::new();
    let config = fixture.config(
        "  mapped:
    image: IMAGE
    namespaces: [pid, mount, uts, ipc, net, cgroup, user]
    command: id -u; cat /proc/self/uid_map; touch /probe && echo root rw; exit 5
",
    );
    let expected = fixture.run(&config, "mapped");
    assert_eq!(
        expected.status.code(),
        Some(5),
        "supervisor run: {}",
        text(&expected.stderr)
    );
    let bundle = fixture.export(&config, "mapped");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).expect("config.json"))
            .expect("JSON");
    let first = json["linux"]["uidMappings"][0]["hostID"]
        .as_u64()
        .expect("a uid mapping");
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(bundle.join("rootfs/bin/busybox"))
        .expect("busybox")
        .uid();
    assert_eq!(
        u64::from(owner),
        first,
        "the copy belongs to the service's range"
    );
    let container = Container::new(runtime);
    let output = container.run(&bundle);
    assert_eq!(
        text(&output.stdout),
        text(&expected.stdout),
        "{runtime} (stderr: {})",
        text(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(5));
}

fn line_channel(stdout: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}
