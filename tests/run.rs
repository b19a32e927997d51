//! `supervisor run`: one service in the foreground, in its own namespaces,
//! root filesystem and cgroup, for real (as root).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use integration_tests::{bin, require_root, unique_name, BoundedChild, BoundedCommand, Lines};

/// A temp dir with a busybox root filesystem, a state dir and a config whose
/// cgroup parent is unique to the test; checks at drop that nothing is left.
struct Fixture {
    dir: tempfile::TempDir,
    cgroup_parent: String,
}

impl Fixture {
    fn new() -> Fixture {
        require_root();
        let dir = tempfile::tempdir().expect("temp dir");
        busybox_rootfs(&dir.path().join("rootfs"));
        Fixture {
            dir,
            cgroup_parent: unique_name("run-test"),
        }
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes a config with `services` (YAML, indented by 2) and returns its path.
    fn config(&self, services: &str) -> PathBuf {
        let path = self.dir.path().join("services.yaml");
        let text = format!(
            "state_dir: {}\nimages_dir: {}\ncgroup_parent: {}\nservices:\n{services}",
            self.state_dir().display(),
            self.dir.path().join("images").display(),
            self.cgroup_parent,
        );
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// A service `name` with the fixture's root filesystem plus `extra` keys
    /// (YAML lines indented by 4).
    fn service(&self, name: &str, command: &str, extra: &str) -> String {
        format!(
            "  {name}:\n    image: {}\n    command: {command}\n{extra}",
            self.rootfs().display()
        )
    }

    /// `supervisor run`, then checks that nothing was left behind.
    fn run(&self, config: &Path, name: &str, command: &[&str]) -> Output {
        let output = self.run_keeping_layer(config, name, command);
        self.assert_no_layer(name);
        output
    }

    /// `supervisor run` of a service that persists its writable layer.
    fn run_keeping_layer(&self, config: &Path, name: &str, command: &[&str]) -> Output {
        let mut cmd = Command::new(bin("supervisor"));
        cmd.arg("run").arg("-c").arg(config).arg(name);
        if !command.is_empty() {
            cmd.arg("--").args(command);
        }
        let output = cmd
            .stdin(Stdio::null())
            .bounded_output()
            .expect("run supervisor");
        self.assert_no_cgroup_or_mount();
        output
    }

    fn spawn(&self, config: &Path, name: &str) -> Child {
        Command::new(bin("supervisor"))
            .arg("run")
            .arg("-c")
            .arg(config)
            .arg(name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start supervisor run")
    }

    /// SIGTERM to a `spawn`ed supervisor, which passes it on; its exit status
    /// once nothing of service `name` is left.
    fn stop(&self, mut child: Child, name: &str) -> std::process::ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("signal supervisor");
        let status = child.bounded_wait().expect("wait supervisor");
        self.assert_nothing_left(name);
        status
    }

    /// No cgroup (in any hierarchy), no mount, no writable layer remains.
    fn assert_nothing_left(&self, name: &str) {
        self.assert_no_cgroup_or_mount();
        self.assert_no_layer(name);
    }

    fn assert_no_cgroup_or_mount(&self) {
        for root in cgroup_roots() {
            let dir = root.join(&self.cgroup_parent);
            assert!(!dir.exists(), "cgroup {} was left behind", dir.display());
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
        let ours = self.dir.path().to_string_lossy().into_owned();
        assert!(
            !mountinfo.contains(&ours),
            "a mount below {ours} was left behind:\n{mountinfo}"
        );
    }

    fn assert_no_layer(&self, name: &str) {
        let layer = self.state_dir().join("containers").join(name);
        assert!(
            !layer.exists(),
            "writable layer {} was left behind",
            layer.display()
        );
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

/// The shared busybox root filesystem plus a user `web` (uid 1000, also in
/// group `wheel`) with a home directory, for the user tests.
fn busybox_rootfs(root: &Path) {
    integration_tests::busybox_rootfs(root);
    let append = |file: &str, text: &str| {
        use std::io::Write;
        let path = root.join(file);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open for append");
        file.write_all(text.as_bytes()).expect("append");
    };
    append("etc/passwd", "web:x:1000:1000:web:/home/web:/bin/sh\n");
    append("etc/group", "web:x:1000:\nwheel:x:10:web\n");
    std::fs::create_dir_all(root.join("home/web")).expect("create home");
    std::os::unix::fs::chown(root.join("home/web"), Some(1000), Some(1000)).expect("chown home");
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

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `supervisor run` of `name` could not start it (125) and said `message`.
fn assert_start_failed(name: &str, output: &Output, message: &str) {
    assert_eq!(
        output.status.code(),
        Some(125),
        "{name}: {}",
        stderr(output)
    );
    assert!(
        stderr(output).contains(message),
        "{name}: expected `{message}` in: {}",
        stderr(output)
    );
}

#[test]
fn exit_status_is_passed_on() {
    let fx = Fixture::new();
    let config = fx.config(
        &[
            fx.service("ok", "exit 0", ""),
            fx.service("three", "exit 3", ""),
            fx.service("killed", "kill -9 $$", ""),
        ]
        .concat(),
    );
    for (name, code) in [("ok", 0), ("three", 3), ("killed", 128 + 9)] {
        let output = fx.run(&config, name, &[]);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{name}: stderr: {}",
            stderr(&output)
        );
    }
}

#[test]
fn cpus_beyond_the_host_is_a_warning_not_an_error() {
    let fx = Fixture::new();
    let config = fx.config(&fx.service("wide", "exit 0", "    limits: {cpus: 1000}\n"));
    let output = fx.run(&config, "wide", &[]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(
        stderr.contains("supervisor: run wide: warning: limits.cpus 1000 is more than the "),
        "{stderr}"
    );
}

#[test]
fn pid_1_is_our_init_in_new_namespaces() {
    let fx = Fixture::new();
    let script = "md5sum /proc/1/exe; hostname; for ns in pid mnt uts ipc net; do readlink /proc/self/ns/$ns; done";
    let config = fx.config(&fx.service("isolated", &format!("'{script}'"), "    hostname: box\n"));
    let output = fx.run(&config, "isolated", &[]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let text = stdout(&output);
    let mut lines = text.lines();
    let init_sum = Command::new("/bin/busybox")
        .arg("md5sum")
        .arg(bin("init"))
        .bounded_output()
        .expect("md5sum init");
    let init_sum = stdout(&init_sum);
    assert_eq!(
        lines.next().and_then(|l| l.split_whitespace().next()),
        init_sum.split_whitespace().next(),
        "PID 1 is not our init: {text}"
    );
    assert_eq!(lines.next(), Some("box"));
    for (ns, inside) in ["pid", "mnt", "uts", "ipc", "net"].iter().zip(lines) {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).expect("read host ns");
        assert_ne!(Path::new(inside), host, "{ns} namespace is the host's");
    }
}

#[test]
fn service_runs_in_its_cgroup_with_its_limits() {
    let fx = Fixture::new();
    let script = "cat /proc/self/cgroup; echo READY; exec sleep 100";
    // Without its cgroup namespace, the service's /proc/self/cgroup shows
    // the host's paths (with it, its group is `/`: tests/escape.rs).
    let limits = "    namespaces: [pid, mount, uts, ipc, net]\n    limits:\n      memory: 64M\n      pids: 50\n";
    let config = fx.config(&fx.service("limited", &format!("'{script}'"), limits));
    let mut child = fx.spawn(&config, "limited");
    let mut inside = Vec::new();
    let reader = Lines::new(child.stdout.take().expect("stdout"));
    while let Some(line) = reader.next_line() {
        if line == "READY" {
            break;
        }
        inside.push(line);
    }
    let group = format!("/{}/limited", fx.cgroup_parent);
    let v1 = Path::new("/sys/fs/cgroup/memory").exists();
    let (memory_file, pids_file) = if v1 {
        (
            format!("/sys/fs/cgroup/memory{group}/memory.limit_in_bytes"),
            format!("/sys/fs/cgroup/pids{group}/pids.max"),
        )
    } else {
        (
            format!("/sys/fs/cgroup{group}/memory.max"),
            format!("/sys/fs/cgroup{group}/pids.max"),
        )
    };
    let read = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .trim()
            .to_string()
    };
    let (memory, pids) = (read(&memory_file), read(&pids_file));
    let status = fx.stop(child, "limited");

    assert_eq!(memory, (64u64 << 20).to_string());
    assert_eq!(pids, "50");
    let member_of = |controller: &str| {
        inside.iter().any(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next(), fields.next(), fields.next());
            path == Some(group.as_str())
                && controllers.is_some_and(|c| c.split(',').any(|c| c == controller))
        })
    };
    if v1 {
        assert!(
            member_of("memory") && member_of("pids"),
            "not in its v1 groups: {inside:?}"
        );
    }
    let cgroup2_mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .contains(" - cgroup2 ");
    if cgroup2_mounted {
        assert!(member_of(""), "not in its unified group: {inside:?}");
    }
    // SIGTERM went to init, which passed it to sleep.
    assert_eq!(status.code(), Some(128 + 15));
}

#[test]
fn loopback_env_workdir_and_user_are_applied() {
    let fx = Fixture::new();
    let script = "ip link show lo; echo FOO=$FOO; echo HOSTNAME=$HOSTNAME; echo HOME=$HOME; echo PATH=$PATH; pwd; id -u; id -g; id -G";
    let extra = "    env:\n      FOO: bar baz\n    workdir: /home/web\n    user: web\n";
    let config = fx.config(&fx.service("env", &format!("'{script}'"), extra));
    let output = fx.run(&config, "env", &[]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("LOOPBACK") && lines[0].contains(",UP"),
        "lo is down: {text}"
    );
    let rest: Vec<&str> = lines
        .iter()
        .skip_while(|l| !l.starts_with("FOO="))
        .copied()
        .collect();
    assert_eq!(
        rest,
        [
            "FOO=bar baz",
            "HOSTNAME=env",
            "HOME=/home/web",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "/home/web",
            "1000",
            "1000",
            "1000 10"
        ],
        "{text}"
    );
}

#[test]
fn command_override_replaces_the_services_command() {
    let fx = Fixture::new();
    let config = fx.config(&fx.service("over", "exit 7", ""));
    let output = fx.run(&config, "over", &["/bin/echo", "overridden", "args"]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert_eq!(stdout(&output), "overridden args\n");
}

#[test]
fn setup_failures_are_clear_errors() {
    let fx = Fixture::new();
    // A file that is there but not executable, for 126.
    std::fs::write(fx.rootfs().join("etc/notexec"), "#!/bin/sh\n").expect("write notexec");
    let config = fx.config(
        &[
            fx.service("badwd", "exit 0", "    workdir: /nonexistent\n"),
            fx.service("nocmd", "[nosuchcommand, arg]", ""),
            fx.service("badabs", "[/bin/nosuch]", ""),
            fx.service("noexec", "[/etc/notexec]", ""),
        ]
        .concat(),
    );
    // As `docker run`: 125 when the container cannot be set up, 127 when the
    // command is not found, 126 when it cannot be executed.
    for (name, code, message) in [
        (
            "badwd",
            125,
            "run badwd: workdir /nonexistent: No such file or directory",
        ),
        (
            "nocmd",
            127,
            "run nocmd: command nosuchcommand: not found in PATH",
        ),
        (
            "badabs",
            127,
            "run badabs: command /bin/nosuch: No such file or directory",
        ),
        (
            "noexec",
            126,
            "run noexec: command /etc/notexec: Permission denied",
        ),
    ] {
        let output = fx.run(&config, name, &[]);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{name}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(message),
            "{name}: expected `{message}` in: {}",
            stderr(&output)
        );
    }
}

#[test]
fn bad_config_or_unknown_service_exits_125_with_one_message() {
    let fx = Fixture::new();
    let config = fx.config(&fx.service("fine", "exit 0", ""));
    let output = fx.run(&config, "fien", &[]);
    assert_eq!(output.status.code(), Some(125));
    assert!(
        stderr(&output).contains("no service named fien, did you mean fine?"),
        "{}",
        stderr(&output)
    );
    let output = fx.run(&config, "nosuch", &[]);
    assert_eq!(output.status.code(), Some(125));
    assert!(
        stderr(&output).contains("no service named nosuch"),
        "{}",
        stderr(&output)
    );

    let broken = fx.config(&fx.service("broken", "exit 0", "    limits:\n      memory: lots\n"));
    let output = fx.run(&broken, "broken", &[]);
    assert_eq!(output.status.code(), Some(125));
    let expected = format!("{}:", broken.display());
    assert!(
        stderr(&output).starts_with(&expected),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("malformed size"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn writable_layer_is_fresh_unless_persisted_and_rootfs_can_be_readonly() {
    let fx = Fixture::new();
    let config = fx.config(
        &[
            fx.service("fresh", "'test ! -e /mark && touch /mark'", ""),
            fx.service(
                "kept",
                "'test -e /mark; r=$?; touch /mark; exit $r'",
                "    persist: true\n",
            ),
            fx.service(
                "ro",
                "'touch /tmp/ok && ! touch /mark 2>/dev/null'",
                "    readonly_rootfs: true\n",
            ),
        ]
        .concat(),
    );
    for _ in 0..2 {
        let output = fx.run(&config, "fresh", &[]);
        assert!(output.status.success(), "fresh: {}", stderr(&output));
    }
    let first = fx.run_keeping_layer(&config, "kept", &[]);
    assert_eq!(
        first.status.code(),
        Some(1),
        "kept, first run: {}",
        stderr(&first)
    );
    let second = fx.run_keeping_layer(&config, "kept", &[]);
    assert!(
        second.status.success(),
        "kept, second run: {}",
        stderr(&second)
    );
    let output = fx.run(&config, "ro", &[]);
    assert!(output.status.success(), "ro: {}", stderr(&output));
    assert!(
        !fx.rootfs().join("mark").exists(),
        "the image itself was written"
    );
}

#[test]
fn cgroup_and_user_namespaces_when_configured() {
    let fx = Fixture::new();
    let namespaces = "    namespaces: [pid, mount, uts, ipc, net, cgroup, user]\n";
    let script = "cat /proc/self/cgroup; cat /proc/self/uid_map; readlink /proc/self/ns/user; readlink /proc/self/ns/cgroup";
    let config = fx.config(&fx.service("nsall", &format!("'{script}'"), namespaces));
    let output = fx.run(&config, "nsall", &[]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    let cgroup_lines: Vec<&&str> = lines
        .iter()
        .filter(|l| l.matches(':').count() == 2)
        .collect();
    assert!(!cgroup_lines.is_empty(), "{text}");
    for line in cgroup_lines {
        assert!(
            line.ends_with(":/"),
            "the service's cgroup is not its cgroup namespace root: {text}"
        );
    }
    let uid_map: Vec<&str> = lines
        .iter()
        .find(|l| !l.contains(':'))
        .expect("uid_map")
        .split_whitespace()
        .collect();
    // Root inside is the first id of a private range from the default pool.
    assert_eq!(uid_map[0], "0", "{text}");
    let first: u64 = uid_map[1].parse().expect("a host id");
    assert!(
        first >= 1 << 30 && first + 65536 <= (1 << 30) + (1 << 28),
        "{text}"
    );
    assert_eq!(uid_map[2], "65536", "{text}");
    for ns in ["user", "cgroup"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).expect("read host ns");
        let inside = lines
            .iter()
            .find(|l| l.starts_with(&format!("{ns}:[")))
            .expect("ns line");
        assert_ne!(Path::new(inside), host, "{ns} namespace is the host's");
    }
}

/// Images need neither a shell nor an init of their own: an argv command runs
/// in a root filesystem that holds one static binary, under our init.
#[test]
fn an_image_without_a_shell_runs_an_argv_command() {
    let fx = Fixture::new();
    let bare = fx.dir.path().join("bare");
    std::fs::create_dir_all(bare.join("bin")).expect("mkdir bare/bin");
    std::fs::copy(fx.rootfs().join("bin/busybox"), bare.join("bin/busybox")).expect("copy busybox");
    let config = fx.config(&format!(
        "  bare:\n    image: {}\n    command: [\"/bin/busybox\", \"cat\", \"/proc/1/cmdline\"]\n",
        bare.display()
    ));
    let output = fx.run(&config, "bare", &[]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert!(!bare.join("bin/sh").exists());
    let cmdline = stdout(&output).replace('\0', " ");
    assert!(
        cmdline.starts_with("init -- /bin/busybox cat"),
        "PID 1 is not our init: {cmdline:?}"
    );
}

/// Host PIDs in the cgroup of service `name` (of any hierarchy that has it).
fn service_pids(fx: &Fixture, name: &str) -> Vec<i32> {
    cgroup_roots()
        .iter()
        .filter_map(|root| {
            let procs = root.join(&fx.cgroup_parent).join(name).join("cgroup.procs");
            std::fs::read_to_string(procs).ok()
        })
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// A second container of a running service is refused before it touches the
/// first one's writable layer.
#[test]
fn a_running_service_is_not_started_twice() {
    let fx = Fixture::new();
    let script = "echo precious > /mark; echo READY; exec sleep 100";
    let config = fx.config(&fx.service("held", &format!("'{script}'"), ""));
    let mut first = fx.spawn(&config, "held");
    let reader = Lines::new(first.stdout.take().expect("stdout"));
    assert_eq!(reader.next_line().as_deref(), Some("READY"));
    let pid = *service_pids(&fx, "held")
        .first()
        .expect("a process in held's cgroup");

    let second = Command::new(bin("supervisor"))
        .args(["run", "-c"])
        .arg(&config)
        .args(["held", "--", "true"])
        .stdin(Stdio::null())
        .bounded_output()
        .expect("run supervisor");
    let mark = std::fs::read_to_string(format!("/proc/{pid}/root/mark"));
    let layer = fx.state_dir().join("containers/held");
    let mark_in_layer = contains_file(&layer, "mark");

    let status = fx.stop(first, "held");
    assert!(
        !fx.state_dir().join("containers").exists(),
        "state_dir/containers (the lock file) was left behind"
    );

    let expected = format!(
        "run held: held is already running (state_dir {})",
        fx.state_dir().display()
    );
    assert_start_failed("held, second run", &second, &expected);
    assert_eq!(
        mark.expect("read the first container's file"),
        "precious\n",
        "the running container's writable layer was touched"
    );
    assert!(
        mark_in_layer,
        "the running container's writable layer {} lost its file",
        layer.display()
    );
    assert_eq!(status.code(), Some(128 + 15));
}

/// A file named `name` somewhere below `dir`.
fn contains_file(dir: &Path, name: &str) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            entry.file_name() == name
                || entry.file_type().is_ok_and(|t| t.is_dir()) && contains_file(&entry.path(), name)
        })
}

/// The image's /etc/passwd is read inside the image: a symlink out of it
/// cannot reach a host file, and a FIFO is refused instead of blocking.
#[test]
fn etc_passwd_is_read_inside_the_image_and_must_be_a_file() {
    let fx = Fixture::new();
    let image = |name: &str| {
        let root = fx.dir.path().join(name);
        integration_tests::busybox_rootfs(&root);
        let passwd = root.join("etc/passwd");
        std::fs::remove_file(&passwd).expect("remove etc/passwd");
        (root, passwd)
    };
    // A host file that would resolve the user if the symlink were followed on the host.
    let host_passwd = fx.dir.path().join("host-passwd");
    std::fs::write(&host_passwd, "hostonly:x:4321:4321::/:/bin/sh\n").expect("write host file");
    let (linked, passwd) = image("linked");
    std::os::unix::fs::symlink(&host_passwd, &passwd).expect("symlink etc/passwd");
    let (fifo, passwd) = image("fifo");
    nix::unistd::mkfifo(&passwd, nix::sys::stat::Mode::from_bits_truncate(0o644))
        .expect("mkfifo etc/passwd");
    let service = |name: &str, root: &Path| {
        format!(
            "  {name}:\n    image: {}\n    command: 'id -u'\n    user: hostonly\n",
            root.display()
        )
    };
    let config = fx.config(&[service("linked", &linked), service("fifo", &fifo)].concat());
    for (name, message) in [
        (
            "linked",
            format!(
                "run linked: user hostonly: not found in {}/etc/passwd",
                linked.display()
            ),
        ),
        (
            "fifo",
            format!(
                "run fifo: user hostonly: reading {}/etc/passwd: not a regular file",
                fifo.display()
            ),
        ),
    ] {
        // Bounded: a supervisor blocked on the FIFO must fail the test, not hang it.
        let output = Command::new("timeout")
            .arg("60")
            .arg(bin("supervisor"))
            .args(["run", "-c"])
            .arg(&config)
            .arg(name)
            .stdin(Stdio::null())
            .bounded_output()
            .expect("run supervisor");
        fx.assert_nothing_left(name);
        assert_start_failed(name, &output, &message);
    }
}
