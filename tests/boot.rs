//! `supervisor boot`: the supervisor as PID 1 of a machine. Each VM test boots
//! Debian's kernel under qemu (tests/boot/boot-vm.sh) with the supervisor as
//! the initramfs's /sbin/init and reads the serial console; the host test
//! checks that the power verbs refuse outside PID 1. Nothing here reboots the
//! host: reboot(2) only ever runs inside the VM.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use integration_tests::{bin, require_root, unique_name, BoundedCommand};

/// The supervisor's lines and the kernel's last words on a clean poweroff.
const CLEAN: &[&str] = &[
    "supervisor: [ OK ] file systems synced",
    "supervisor: [ OK ] unmounted /sys/fs/cgroup",
    "supervisor: [ OK ] unmounted /proc",
];
const NEVER: &[&str] = &[
    "Kernel panic",
    "Attempted to kill init",
    "[FAIL]",
    "panicked",
];

/// Boots a VM on `services` (the YAML of /etc/supervisor/services.yaml) with
/// extra kernel arguments; returns qemu's exit status and the console.
fn boot(services: &str, kernel_args: &str, timeout: Duration) -> (Option<i32>, String) {
    require_root();
    let dir = tempfile::Builder::new()
        .prefix("boot-test")
        .tempdir_in("/tmp")
        .unwrap();
    let config = dir.path().join("services.yaml");
    fs::write(&config, services).unwrap();
    let console = dir.path().join("console.txt");
    let bindir = bin("supervisor").parent().unwrap().to_path_buf();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("boot/boot-vm.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(&bindir)
        .arg(&config)
        .arg(&console)
        .arg(kernel_args)
        .args(["--", "-device", "i6300esb", "-action", "watchdog=poweroff"])
        .env("BOOT_TIMEOUT", timeout.as_secs().to_string())
        .stdin(Stdio::null())
        .status()
        .expect("tests/boot/boot-vm.sh");
    let text = String::from_utf8_lossy(&fs::read(&console).unwrap_or_default()).replace('\r', "");
    (status.code(), text)
}

fn assert_has(console: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            console.contains(line),
            "no `{line}` on the console:\n{console}"
        );
    }
}

fn assert_lacks(console: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            !console.contains(line),
            "`{line}` on the console:\n{console}"
        );
    }
}

/// The line of the console that starts with `prefix`.
fn line<'a>(console: &'a str, prefix: &str) -> &'a str {
    console
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line `{prefix}...` on the console:\n{console}"))
}

const SYSTEM: &str = "system:
  hostname: bootbox
  modules: [/lib/modules/overlay.ko, /lib/modules/watchdog.ko, /lib/modules/i6300esb.ko]
  mounts:
    - {source: tmpfs, target: /data, type: tmpfs, options: \"size=1m,mode=0755\"}
  sysctls:
    vm.swappiness: 13
";

#[test]
fn boots_services_in_containers_reaps_orphans_and_powers_off_cleanly() {
    let services = format!(
        "{SYSTEM}  watchdog: {{device: /dev/watchdog, timeout: 10s}}
services:
  web:
    image: busybox
    hostname: web-host
    limits: {{memory: 32M, pids: 20}}
    log_console: true
    command: 'echo \"web-info hostname=$(hostname) cgroup=$(cat /proc/self/cgroup) memory=$(cat /sys/fs/cgroup/memory.max) pids=$(cat /sys/fs/cgroup/pids.max) swappiness=$(cat /proc/sys/vm/swappiness) pid=$$\"; exec sleep 1000'
  worker:
    image: busybox
    limits: {{memory: 16M}}
    log_console: true
    command: 'echo \"worker-info hostname=$(hostname) memory=$(cat /sys/fs/cgroup/memory.max) pid=$$\"; exec sleep 1000'
  orphans:
    image: busybox
    namespaces: [mount, uts, ipc, net]
    restart: never
    log_console: true
    command: '(sleep 2 &); echo orphans-forked'
  off:
    image: busybox
    namespaces: [mount]
    restart: never
    depends_on: [web, worker, orphans]
    log_console: true
    command: 'sleep 4; echo \"zombies=$(grep -l \"^State:.Z\" /proc/[0-9]*/status 2>/dev/null | wc -l) host-hostname=$(hostname)\"; poweroff'
"
    );
    let (status, console) = boot(&services, "", Duration::from_secs(900));
    assert_eq!(status, Some(0), "qemu:\n{console}");
    assert_has(
        &console,
        &[
            "supervisor: [ OK ] mounted cgroup2 on /sys/fs/cgroup",
            "supervisor: [ OK ] root moved off the initramfs",
            "supervisor: [ OK ] loaded module /lib/modules/i6300esb.ko",
            "supervisor: [ OK ] mounted tmpfs on /data",
            "supervisor: [ OK ] hostname bootbox",
            "supervisor: [ OK ] loopback up",
            "supervisor: [ OK ] sysctl vm.swappiness = 13",
            "supervisor: [ OK ] watchdog /dev/watchdog armed: timeout 10s",
            "orphans | orphans-forked",
            "supervisor: [ OK ] poweroff requested",
            "supervisor: [ OK ] watchdog disarmed",
            "supervisor: [ OK ] poweroff: calling reboot(2)",
            "reboot: Power down",
        ],
    );
    assert_has(&console, CLEAN);
    assert_lacks(&console, NEVER);
    // Each service in its own uts, pid and cgroup namespaces, with its limits.
    assert_eq!(
        line(&console, "web | web-info"),
        "web | web-info hostname=web-host cgroup=0::/ memory=33554432 pids=20 swappiness=13 pid=2"
    );
    assert_eq!(
        line(&console, "worker | worker-info"),
        "worker | worker-info hostname=worker memory=16777216 pid=2"
    );
    // The orphan of a service without a pid namespace was reaped by PID 1.
    assert_eq!(
        line(&console, "off | zombies="),
        "off | zombies=0 host-hostname=bootbox"
    );
    // Stopped in reverse dependency order: `off` before what it depends on.
    let at = |text: &str| console.find(text).unwrap_or_else(|| panic!("no `{text}`"));
    assert!(at("off: stopping") < at("web: stopping"), "{console}");
}

#[test]
fn sigterm_from_busybox_reboot_reboots() {
    let services = format!(
        "{SYSTEM}cgroup_parent: ./services
services:
  rebooter:
    image: busybox
    namespaces: [mount]
    restart: never
    log_console: true
    command: 'sleep 1; echo \"asking-reboot from $(cat /proc/self/cgroup)\"; reboot'
"
    );
    let (status, console) = boot(&services, "", Duration::from_secs(900));
    assert_eq!(status, Some(0), "qemu:\n{console}");
    assert_has(
        &console,
        &[
            // cgroup_parent below PID 1's own cgroup (the root): the daemon
            // moved itself into a leaf, the service is below ./services.
            "rebooter | asking-reboot from 0::/services/rebooter",
            "supervisor: [ OK ] reboot requested",
            "supervisor: [ OK ] reboot: calling reboot(2)",
            "reboot: Restarting system",
        ],
    );
    assert_has(&console, CLEAN);
    assert_lacks(&console, NEVER);
    assert_lacks(&console, &["reboot: Power down"]);
}

#[test]
fn a_daemon_that_stops_petting_the_watchdog_gets_the_machine_reset() {
    let services = format!(
        "{SYSTEM}  watchdog: {{device: /dev/watchdog, timeout: 10s}}
services:
  ticker:
    image: busybox
    log_console: true
    command: 'i=0; while true; do echo tick-$i; i=$((i+1)); sleep 1; done'
"
    );
    let (status, console) = boot(
        &services,
        "supervisor.test_stop_petting",
        Duration::from_secs(600),
    );
    // qemu's watchdog action powers the VM off: qemu exits 0, but neither the
    // supervisor nor the kernel went down on their own.
    assert_eq!(status, Some(0), "qemu:\n{console}");
    assert_has(
        &console,
        &[
            "(test hook: it will not be petted)",
            "ticker | tick-0",
            "ticker | tick-1",
        ],
    );
    assert_lacks(
        &console,
        &[
            "requested: stopping",
            "calling reboot(2)",
            "reboot: Power down",
        ],
    );
    assert_lacks(&console, NEVER);
}

#[test]
fn power_verbs_and_boot_refuse_outside_pid_1() {
    require_root();
    let dir = tempfile::Builder::new()
        .prefix("boot-test")
        .tempdir_in("/tmp")
        .unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("services.yaml");
    fs::write(
        &config,
        format!(
            "state_dir: {}\ncgroup_parent: {}\nservices: {{}}\n",
            state.display(),
            unique_name("boot-test")
        ),
    )
    .unwrap();
    let mut daemon = Command::new(bin("supervisor"))
        .args(["daemon", "-c"])
        .arg(&config)
        .env_remove("SUPERVISOR_STATE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cli = |args: &[&str]| {
        Command::new(bin("supervisor"))
            .arg("--state-dir")
            .arg(&state)
            .args(args)
            .env_remove("SUPERVISOR_STATE_DIR")
            .stdin(Stdio::null())
            .bounded_output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while !cli(&["status"]).status.success() {
        assert!(Instant::now() < deadline, "the daemon did not answer");
        sleep(Duration::from_millis(50));
    }
    for verb in ["poweroff", "reboot", "halt"] {
        let out = cli(&[verb]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{verb}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "supervisor: refused: {verb} is for a supervisor that booted the machine (PID 1)"
            )),
            "{stderr}"
        );
    }
    // The daemon goes on.
    assert!(cli(&["status"]).status.success());
    let out = Command::new(bin("supervisor"))
        .arg("boot")
        .stdin(Stdio::null())
        .bounded_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "supervisor: boot: must run as PID 1 (the kernel's init)\n"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(daemon.wait().unwrap().success());
}

#[test]
fn a_daemon_that_cannot_start_leaves_pid_1_reaping_until_the_watchdog_resets() {
    // The state_dir cannot be made (/proc refuses new directories): the daemon
    // fails; PID 1 stays, reaping, and no longer pets the watchdog.
    let services = format!(
        "{SYSTEM}  watchdog: {{device: /dev/watchdog, timeout: 10s}}
state_dir: /proc/supervisor
services:
  never:
    image: busybox
    command: 'echo never-started'
"
    );
    let (status, console) = boot(&services, "", Duration::from_secs(600));
    assert_eq!(status, Some(0), "qemu:\n{console}");
    assert_has(
        &console,
        &[
            "supervisor: [ OK ] watchdog /dev/watchdog armed",
            "supervisor: [FAIL] the daemon failed:",
            "reaping orphans; poweroff/reboot/halt by signal only",
        ],
    );
    assert_lacks(
        &console,
        &[
            "never-started",
            "Kernel panic",
            "Attempted to kill init",
            "calling reboot(2)",
            "reboot: Power down",
        ],
    );
}

#[test]
fn a_panic_in_the_event_loop_leaves_pid_1_reaping_and_obeying_power_signals() {
    // The test hook panics the loop once the services started; the emergency
    // loop still takes busybox's poweroff (SIGUSR2) from the service.
    let services = format!(
        "{SYSTEM}services:
  off:
    image: busybox
    namespaces: [mount]
    restart: never
    log_console: true
    command: 'sleep 3; echo asking-poweroff; poweroff'
"
    );
    let (status, console) = boot(&services, "supervisor.test_panic", Duration::from_secs(600));
    assert_eq!(status, Some(0), "qemu:\n{console}");
    assert_has(
        &console,
        &[
            "supervisor: [FAIL] internal error: panicked at",
            "test hook supervisor.test_panic",
            "the daemon panicked: reaping orphans",
            "supervisor: [ OK ] poweroff requested",
            "supervisor: [ OK ] unmounted /proc",
            "supervisor: [ OK ] poweroff: calling reboot(2)",
            "reboot: Power down",
        ],
    );
    assert_lacks(&console, &["Kernel panic", "Attempted to kill init"]);
}
