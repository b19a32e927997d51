//! Networks between services, for real: bridges, veths, addresses, names,
//! published ports, isolation, cleanup. Every daemon (and `supervisor run`)
//! of these tests runs inside a network namespace the test creates, with
//! loopback and one veth (192.0.2.10, "the host's own address") whose peer
//! (192.0.2.20) is in a second namespace, "another machine"; traffic goes
//! only to addresses inside them: the machine's own interfaces, routes and
//! firewall are never touched. The namespaces go with their holder processes.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use integration_tests::{bin, busybox_rootfs, require_root, unique_name};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// Generous: the CI machine is small and busy; tests wait on conditions, never on timings.
const WAIT: Duration = Duration::from_secs(90);
/// The test namespace's own address (on its veth `h0`).
const HOST_ADDRESS: &str = "192.0.2.10";
/// The address of "another machine" (the peer `h1`, in a namespace of its own).
const REMOTE_ADDRESS: &str = "192.0.2.20";
const PAGE: &str = "hello from web";

/// A network namespace kept alive by a holder process (the test's "host"),
/// and a second one linked to it ("another machine").
struct Netns {
    holder: Child,
    remote: Child,
}

/// Runs `script` in a new network namespace; returns once it printed `ready`.
fn holder(script: &str) -> Child {
    let mut holder = Command::new("unshare")
        .args(["--net", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("unshare (util-linux)");
    let mut line = String::new();
    let stdout = holder.stdout.take().unwrap();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        "ready",
        "could not set up the test's network namespaces (needs the veth driver)"
    );
    holder
}

impl Netns {
    fn new() -> Netns {
        require_root();
        let remote = holder("ip link set lo up; echo ready; exec sleep 100000");
        let script = format!(
            "set -e; ip link set lo up; ip link add h0 type veth peer name h1 netns {}; \
             ip addr add {HOST_ADDRESS}/24 dev h0; ip link set h0 up; echo ready; exec sleep 100000",
            remote.id()
        );
        let netns = Netns {
            holder: holder(&script),
            remote,
        };
        let out = netns
            .remote_command("sh")
            .args([
                "-c",
                &format!("set -e; ip addr add {REMOTE_ADDRESS}/24 dev h1; ip link set h1 up"),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        netns
    }

    /// `program` run inside the namespace.
    fn command(&self, program: impl Into<PathBuf>) -> Command {
        Netns::enter(&self.holder, program)
    }

    /// `program` run on "another machine".
    fn remote_command(&self, program: impl Into<PathBuf>) -> Command {
        Netns::enter(&self.remote, program)
    }

    fn enter(holder: &Child, program: impl Into<PathBuf>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/proc/{}/ns/net", holder.id()))
            .arg("--")
            .arg(program.into());
        command
    }

    fn sh(&self, script: &str) -> Output {
        self.command("sh").args(["-c", script]).output().unwrap()
    }

    /// `ip -o link`, `ip -o -4 addr` and `nft list ruleset` of the namespace.
    fn inventory(&self) -> String {
        let out = self.sh("ip -o link; ip -o -4 addr; nft list ruleset");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Only what the test made: lo and h0/h1, no table. (The kernel removes
    /// a stopped service's veth with its namespace, in the background: wait.)
    fn assert_clean(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let inventory = self.inventory();
            let links: Vec<&str> = inventory
                .lines()
                .filter(|l| l.contains("mtu"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or_default())
                .collect();
            let clean = links.len() == 2
                && links[0] == "lo:"
                && links[1].starts_with("h0@")
                && !inventory.contains("table")
                && !inventory.contains("10.89.");
            if clean {
                return;
            }
            assert!(Instant::now() < deadline, "left behind:\n{inventory}");
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for holder in [&mut self.holder, &mut self.remote] {
            let _ = holder.kill();
            let _ = holder.wait();
        }
    }
}

/// A daemon inside its own network namespace, with its own state_dir,
/// cgroup_parent and busybox rootfs (serving `PAGE` at /www/index.html).
struct Fixture {
    netns: Netns,
    dir: tempfile::TempDir,
    state: PathBuf,
    config: PathBuf,
    cgroup_parent: String,
    daemon: Option<Child>,
}

impl Fixture {
    /// `yaml` holds the `networks:` and `services:` keys; `ROOTFS` stands for the rootfs.
    fn new(yaml: &str) -> Fixture {
        let netns = Netns::new();
        let dir = tempfile::Builder::new()
            .prefix("supervisor-net")
            .tempdir_in("/tmp")
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        busybox_rootfs(&rootfs);
        fs::create_dir_all(rootfs.join("www")).unwrap();
        fs::write(rootfs.join("www/index.html"), PAGE).unwrap();
        let fixture = Fixture {
            netns,
            state: dir.path().join("state"),
            config: dir.path().join("services.yaml"),
            cgroup_parent: unique_name("supervisor-net"),
            dir,
            daemon: None,
        };
        fixture.write_config(yaml);
        fixture
    }

    fn write_config(&self, yaml: &str) {
        let text = format!(
            "state_dir: {}\ncgroup_parent: {}\n{}",
            self.state.display(),
            self.cgroup_parent,
            yaml.replace(
                "ROOTFS",
                &self.dir.path().join("rootfs").display().to_string()
            )
        );
        fs::write(&self.config, text).unwrap();
    }

    fn start_daemon(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.stderr"))
            .unwrap();
        let child = self
            .netns
            .command(bin("supervisor"))
            .args(["daemon", "-c"])
            .arg(&self.config)
            .env("SUPERVISOR_LOG", "debug")
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
            assert!(Instant::now() < deadline, "{}", self.daemon_stderr());
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
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "supervisor {args:?}: {}\ndaemon: {}",
            String::from_utf8_lossy(&out.stderr),
            self.daemon_stderr()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn service(&self, name: &str) -> Value {
        let text = self.ok(&["status", "--json"]);
        let all: Value = serde_json::from_str(&text).unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in status"))
    }

    /// Waits until `name` runs; its status.
    fn running(&self, name: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let svc = self.service(name);
            if svc["state"] == "running" {
                return svc;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never ran: {svc}\n{}",
                self.daemon_stderr()
            );
            sleep(Duration::from_millis(100));
        }
    }

    fn address(&self, name: &str, network: &str) -> String {
        let svc = self.running(name);
        svc["addresses"][network]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no address on {network}: {svc}"))
            .to_string()
    }

    /// Runs `args` inside service `name` (all its namespaces, its root).
    fn exec(&self, name: &str, args: &[&str]) -> Output {
        let pid = self.running(name)["pid"].as_i64().unwrap();
        Command::new("nsenter")
            .args([
                "-t",
                &pid.to_string(),
                "-n",
                "-m",
                "-u",
                "-i",
                "-p",
                "-r",
                "-w",
            ])
            .args(args)
            .output()
            .unwrap()
    }

    /// Fetches `url` from inside service `name` (busybox wget, bounded).
    fn fetch_in(&self, name: &str, url: &str) -> Result<String, String> {
        let out = self.exec(
            name,
            &["/usr/bin/timeout", "10", "/usr/bin/wget", "-q", "-O-", url],
        );
        outcome(out)
    }

    /// Fetches `url` from the test's namespace itself (the "host").
    fn fetch_from_host(&self, url: &str) -> Result<String, String> {
        let out = self
            .netns
            .command("timeout")
            .args(["10", "busybox", "wget", "-q", "-O-", url])
            .output()
            .unwrap();
        outcome(out)
    }

    /// Fetches `url` from "another machine".
    fn fetch_from_remote(&self, url: &str) -> Result<String, String> {
        let out = self
            .netns
            .remote_command("timeout")
            .args(["10", "busybox", "wget", "-q", "-O-", url])
            .output()
            .unwrap();
        outcome(out)
    }

    /// Stops the daemon with SIGTERM, waits for exit 0, checks nothing is left.
    fn shutdown(&mut self) {
        let mut child = self.daemon.take().expect("daemon running");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let status = wait_child(&mut child);
        assert_eq!(status.code(), Some(0), "daemon: {}", self.daemon_stderr());
        self.netns.assert_clean();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
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

/// Retries `fetch` until it succeeds (a server may not listen yet); its text.
fn eventually(fetch: impl Fn() -> Result<String, String>) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        match fetch() {
            Ok(text) => return text,
            Err(err) => assert!(Instant::now() < deadline, "never answered: {err}"),
        }
        sleep(Duration::from_millis(100));
    }
}

fn outcome(out: Output) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
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

const HTTPD: &str = r#"["/usr/sbin/httpd", "-f", "-p", "80", "-h", "/www"]"#;

fn two_networks() -> String {
    format!(
        "networks:\n  front: {{}}\n  back: {{subnet: 10.90.7.0/24}}\n  sealed: {{internal: true}}\n\
         services:\n\
         \x20 web: {{image: ROOTFS, command: {HTTPD}, networks: [front], ports: [\"8080:80\", \"127.0.0.1:8443:80\"]}}\n\
         \x20 client: {{image: ROOTFS, command: sleep 100000, networks: [front]}}\n\
         \x20 other: {{image: ROOTFS, command: sleep 100000, networks: [back], namespaces: [pid, mount, uts, ipc, net, user]}}\n\
         \x20 inside: {{image: ROOTFS, command: sleep 100000, networks: [sealed]}}\n"
    )
}

#[test]
fn services_on_one_network_reach_each_other_by_name_and_no_other() {
    let mut f = Fixture::new(&two_networks());
    f.start_daemon();
    let web = f.address("web", "front");
    assert!(web.starts_with("10.89."), "{web}");
    assert_eq!(f.address("other", "back"), "10.90.7.2");

    assert_eq!(eventually(|| f.fetch_in("client", "http://web:80/")), PAGE);
    let hosts = String::from_utf8(f.exec("client", &["/bin/cat", "/etc/hosts"]).stdout).unwrap();
    assert!(hosts.contains(&format!("{web}\tweb\n")), "{hosts}");
    assert!(hosts.contains("\tclient\n"), "{hosts}");
    assert!(!hosts.contains("other"), "{hosts}");

    // Another network: neither the name nor the address.
    let err = f.fetch_in("other", "http://web:80/").unwrap_err();
    assert!(!err.is_empty());
    f.fetch_in("other", &format!("http://{web}:80/"))
        .unwrap_err();
    let table = f.ok(&["status"]);
    assert!(
        table.contains("ADDRESSES") && table.contains(&format!("front={web}")),
        "{table}"
    );
    f.shutdown();
}

#[test]
fn published_ports_answer_on_localhost_and_the_hosts_address() {
    let mut f = Fixture::new(&two_networks());
    f.start_daemon();
    f.running("web");
    assert_eq!(
        eventually(|| f.fetch_from_host("http://127.0.0.1:8080/")),
        PAGE
    );
    let own = format!("http://{HOST_ADDRESS}:8080/");
    assert_eq!(eventually(|| f.fetch_from_host(&own)), PAGE);
    assert_eq!(eventually(|| f.fetch_from_remote(&own)), PAGE);
    assert_eq!(
        eventually(|| f.fetch_from_host("http://127.0.0.1:8443/")),
        PAGE
    );
    // Bound to 127.0.0.1 only.
    f.fetch_from_host(&format!("http://{HOST_ADDRESS}:8443/"))
        .unwrap_err();
    f.fetch_from_remote(&format!("http://{HOST_ADDRESS}:8443/"))
        .unwrap_err();
    // From a service of another network, through the host's address; and
    // from web's own network (back through the host).
    assert_eq!(eventually(|| f.fetch_in("other", &own)), PAGE);
    assert_eq!(eventually(|| f.fetch_in("client", &own)), PAGE);
    f.shutdown();
}

#[test]
fn outbound_traffic_is_masqueraded_and_an_internal_network_has_no_way_out() {
    let mut f = Fixture::new(&two_networks());
    // A server on "another machine", which has no route to the services'
    // subnets: only masqueraded traffic gets an answer.
    let site = f.dir.path().join("remote-site");
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("index.html"), "remote").unwrap();
    let mut server = f
        .netns
        .remote_command("busybox")
        .args(["httpd", "-f", "-p", "8000", "-h"])
        .arg(&site)
        .spawn()
        .unwrap();
    f.start_daemon();
    let remote = format!("http://{REMOTE_ADDRESS}:8000/");
    assert_eq!(eventually(|| f.fetch_in("client", &remote)), "remote");
    f.fetch_in("inside", &remote).unwrap_err();
    let routes = f.exec("inside", &["/sbin/ip", "route"]);
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    assert!(!routes.contains("default"), "{routes}");
    let routes = f.exec("client", &["/sbin/ip", "route"]);
    assert!(String::from_utf8_lossy(&routes.stdout).contains("default via 10.89."));
    // Web answers others (through the host's address too)...
    let own = format!("http://{HOST_ADDRESS}:8080/");
    assert_eq!(eventually(|| f.fetch_in("other", &own)), PAGE);
    // ...but not a service of the internal network.
    f.fetch_in("inside", &format!("http://{HOST_ADDRESS}:8080/"))
        .unwrap_err();
    f.fetch_in(
        "inside",
        &format!("http://{}:80/", f.address("web", "front")),
    )
    .unwrap_err();
    let _ = server.kill();
    let _ = server.wait();
    f.shutdown();
}

#[test]
fn a_port_taken_on_the_host_is_an_error_at_start() {
    let mut f = Fixture::new(&format!(
        "networks: {{front: {{}}}}\nservices:\n  web: {{image: ROOTFS, command: {HTTPD}, networks: [front], ports: [\"9090:80\"], autostart: false}}\n"
    ));
    let mut listener = f
        .netns
        .command("busybox")
        .args(["nc", "-l", "-p", "9090"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    f.start_daemon();
    // The listener binds soon after it starts: retry until the start fails.
    let deadline = Instant::now() + WAIT;
    let message = loop {
        let out = f.cli(&["start", "web"]);
        if !out.status.success() {
            break String::from_utf8_lossy(&out.stderr).into_owned();
        }
        f.ok(&["stop", "web"]);
        assert!(Instant::now() < deadline, "web started on a taken port");
        sleep(Duration::from_millis(100));
    };
    assert!(
        message.contains("port 9090/tcp") && message.contains("already in use"),
        "{message}"
    );
    let _ = listener.kill();
    let _ = listener.wait();
    f.shutdown();
}

#[test]
fn a_service_keeps_its_address_across_restarts_reloads_and_daemons() {
    let mut f = Fixture::new(&two_networks());
    f.start_daemon();
    let before = f.address("client", "front");
    let pid = f.running("client")["pid"].clone();
    f.ok(&["restart", "client"]);
    let deadline = Instant::now() + WAIT;
    while f.running("client")["pid"] == pid {
        assert!(Instant::now() < deadline, "client was not restarted");
        sleep(Duration::from_millis(100));
    }
    assert_eq!(f.address("client", "front"), before);
    // A reload that adds a service: the others keep their addresses and
    // running ones see the newcomer in their /etc/hosts.
    let pid = f.running("client")["pid"].clone();
    f.write_config(&two_networks().replace(
        "  other:",
        "  late: {image: ROOTFS, command: sleep 100000, networks: [front]}\n  other:",
    ));
    f.ok(&["reload"]);
    let late = f.address("late", "front");
    assert_eq!(f.running("client")["pid"], pid, "client was restarted");
    let hosts = String::from_utf8(f.exec("client", &["/bin/cat", "/etc/hosts"]).stdout).unwrap();
    assert!(hosts.contains(&format!("{late}\tlate\n")), "{hosts}");
    assert_eq!(eventually(|| f.fetch_in("late", "http://web:80/")), PAGE);
    // A network's subnet changes: its services restart with new addresses,
    // the others stay as they are.
    let other = f.running("other")["pid"].clone();
    f.write_config(
        &two_networks()
            .replace("10.90.7.0/24", "10.90.8.0/24")
            .replace(
                "  other:",
                "  late: {image: ROOTFS, command: sleep 100000, networks: [front]}\n  other:",
            ),
    );
    f.ok(&["reload"]);
    let deadline = Instant::now() + WAIT;
    while f.running("other")["pid"] == other {
        assert!(Instant::now() < deadline, "other was not restarted");
        sleep(Duration::from_millis(100));
    }
    assert_eq!(f.address("other", "back"), "10.90.8.2");
    assert_eq!(f.running("client")["pid"], pid, "client was restarted");
    assert_eq!(
        eventually(|| f.fetch_in("other", &format!("http://{HOST_ADDRESS}:8080/"))),
        PAGE
    );
    f.shutdown();
    f.start_daemon();
    assert_eq!(f.address("client", "front"), before);
    assert_eq!(eventually(|| f.fetch_in("client", "http://web:80/")), PAGE);
    f.shutdown();
}

#[test]
fn a_new_daemon_cleans_up_after_a_crashed_one() {
    let mut f = Fixture::new(&two_networks());
    f.start_daemon();
    let inits: Vec<i64> = ["web", "client", "other", "inside"]
        .iter()
        .map(|name| f.running(name)["pid"].as_i64().unwrap())
        .collect();
    let mut daemon = f.daemon.take().unwrap();
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    for &pid in &inits {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    // Orphans now: the host's init reaps them.
    let deadline = Instant::now() + WAIT;
    while inits
        .iter()
        .any(|pid| PathBuf::from(format!("/proc/{pid}")).exists())
    {
        assert!(Instant::now() < deadline, "the services did not die");
        sleep(Duration::from_millis(50));
    }
    // Bridges and the table outlive the crash.
    let left = f.netns.inventory();
    assert!(left.contains("table inet supervisor-"), "{left}");
    fs::remove_file(f.state.join("control.sock")).ok();
    f.start_daemon();
    // The services that died while no daemon ran are restarted by their
    // policy (after its delay): three bridges again and one veth per
    // service, nothing more.
    let links = || {
        let inventory = f.netns.inventory();
        let count = inventory
            .lines()
            .filter(|l| l.contains(": sv") && l.contains("mtu"))
            .count();
        (count, inventory)
    };
    let deadline = Instant::now() + WAIT;
    let (mut bridges, mut inventory) = links();
    while bridges < 3 + 4 && Instant::now() < deadline {
        sleep(Duration::from_millis(100));
        (bridges, inventory) = links();
    }
    assert_eq!(bridges, 3 + 4, "{inventory}");
    assert_eq!(eventually(|| f.fetch_in("client", "http://web:80/")), PAGE);
    f.shutdown();
}

#[test]
fn run_joins_the_networks_of_the_service() {
    let mut f = Fixture::new(&two_networks());
    let run = |f: &Fixture| {
        f.netns
            .command(bin("supervisor"))
            .args(["run", "-c"])
            .arg(&f.config)
            .args(["client", "--", "/bin/sh", "-c"])
            .arg("cat /etc/hosts; ip -o -f inet addr show eth0")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Without a daemon: the bridge and table are made, and removed after.
    let out = run(&f);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("\tweb\n"), "{text}");
    f.netns.assert_clean();
    let alone = text
        .lines()
        .find(|l| l.contains("eth0"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_default()
        .to_string();

    f.start_daemon();
    f.ok(&["stop", "client"]);
    let out = f
        .netns
        .command(bin("supervisor"))
        .args(["run", "-c"])
        .arg(&f.config)
        .args([
            "client",
            "--",
            "/usr/bin/wget",
            "-q",
            "-O-",
            "http://web:80/",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), PAGE);
    f.ok(&["start", "client"]);
    // The same address as under the daemon.
    assert_eq!(format!("{}/24", f.address("client", "front")), alone);
    f.shutdown();
}

#[test]
fn a_second_daemon_on_the_same_subnet_is_refused() {
    let mut f = Fixture::new(&two_networks());
    f.start_daemon();
    f.running("web");
    let second = f.dir.path().join("second.yaml");
    let text = fs::read_to_string(&f.config)
        .unwrap()
        .replace(
            &format!("state_dir: {}", f.state.display()),
            &format!("state_dir: {}", f.dir.path().join("state2").display()),
        )
        .replace(&f.cgroup_parent, &format!("{}-2", f.cgroup_parent));
    fs::write(&second, text).unwrap();
    let out = f
        .netns
        .command(bin("supervisor"))
        .args(["daemon", "-c"])
        .arg(&second)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("overlaps the route to"), "{stderr}");
    // The first one is unharmed.
    assert_eq!(eventually(|| f.fetch_in("client", "http://web:80/")), PAGE);
    f.shutdown();
}

#[test]
fn a_setup_failure_on_a_network_is_reported_as_such() {
    let mut f = Fixture::new(&format!(
        "networks: {{front: {{}}}}\nservices:\n  bad: {{image: ROOTFS, command: {HTTPD}, networks: [front], readonly_rootfs: true, autostart: false, mounts: [{{source: /tmp, target: /nowhere}}]}}\n"
    ));
    f.start_daemon();
    for _ in 0..5 {
        let out = f.cli(&["start", "bad"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("/nowhere"), "{stderr}");
        assert!(!stderr.contains("network:"), "{stderr}");
    }
    f.shutdown();
}
