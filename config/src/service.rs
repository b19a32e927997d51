//! One entry of `services:`: its keys, their defaults and their rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::capabilities::Capabilities;
use crate::depends;
use crate::devices;
use crate::diagnostic::{Mark, Report};
use crate::names;
use crate::network;
use crate::paths;
use crate::read::{boolean, items, nonempty, scalar, scalar_text, string, Fields};
use crate::security;
use crate::suggest::did_you_mean;
use crate::tree::{Node, Value};
use crate::types::*;
use crate::units;

/// The keys a service may have.
pub const KEYS: &[&str] = &[
    "command",
    "image",
    "env",
    "workdir",
    "user",
    "hostname",
    "namespaces",
    "restart",
    "restart_delay",
    "restart_delay_max",
    "restart_limit",
    "depends_on",
    "autostart",
    "stop_signal",
    "stop_timeout",
    "readonly_rootfs",
    "persist",
    "mounts",
    "limits",
    "devices",
    "cap_add",
    "cap_drop",
    "privileged",
    "seccomp",
    "networks",
    "ports",
    "dns",
    "healthcheck",
    "ready",
    "watchdog",
    "ready_timeout",
    "log_console",
];
const RESTART_LIMIT_KEYS: &[&str] = &["count", "window"];
const MOUNT_KEYS: &[&str] = &["source", "target", "readonly"];
const LIMIT_KEYS: &[&str] = &["memory", "memory_swap", "cpus", "pids", "io_weight"];
const NAMESPACE_NAMES: &[&str] = &["pid", "mount", "uts", "ipc", "net", "cgroup", "user"];

/// A service as read, with where it names its dependencies (checked once
/// every service is known).
pub struct Read {
    pub service: Service,
    pub dependency_marks: Vec<Mark>,
    /// Where each of `service.networks` is written.
    pub network_marks: Vec<Mark>,
    /// Where each of `service.ports` is written.
    pub port_marks: Vec<Mark>,
}

impl Read {
    /// A service with every default, of which nothing more is reported.
    pub fn empty(name: &str) -> Read {
        Read {
            service: defaults(name),
            dependency_marks: Vec::new(),
            network_marks: Vec::new(),
            port_marks: Vec::new(),
        }
    }
}

/// Reads service `name` (key at `name_mark`) from `node`. Every problem is
/// reported; wrong values fall back to their defaults so checking goes on.
pub fn read(report: &mut Report, dir: &Path, name: &str, name_mark: Mark, node: &Node) -> Read {
    if !names::is_service_name(name) {
        let message = format!(
            "invalid service name `{name}`: use 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit"
        );
        report.error(name_mark, message);
    }
    let mut read = Read::empty(name);
    let Some(fields) = Fields::of(report, node, KEYS, &format!("service {name}")) else {
        return read;
    };
    let service = &mut read.service;
    match fields.node("command") {
        Some(node) => service.command = command(report, node),
        None => report.error(name_mark, format!("service {name} has no command")),
    }
    service.image = fields.read(report, "image", |node| image(dir, node));
    if let Some(node) = fields.node("env") {
        service.env = env(report, node);
    }
    if let Some(workdir) = fields.read(report, "workdir", paths::inside) {
        service.workdir = workdir;
    }
    service.user = fields.read(
        report,
        "user",
        scalar(units::user, "uid, uid:gid or a user name"),
    );
    if let Some(hostname) = fields.read(report, "hostname", hostname) {
        service.hostname = hostname;
    }
    if let Some(node) = fields.node("namespaces") {
        service.namespaces = namespaces(report, node);
    }
    if let Some(policy) = fields.read(
        report,
        "restart",
        scalar(restart_policy, "never, on-failure or always"),
    ) {
        service.restart = policy;
    }
    let duration = || scalar(units::duration, "a duration such as 100ms, 1.5s or 2m");
    if let Some(delay) = fields.read(report, "restart_delay", duration()) {
        service.restart_delay = delay;
    }
    if let Some(delay) = fields.read(report, "restart_delay_max", duration()) {
        service.restart_delay_max = delay;
    }
    if let Some(node) = fields.node("restart_limit") {
        service.restart_limit = restart_limit(report, node);
    }
    if let Some(node) = fields.node("depends_on") {
        (service.depends_on, read.dependency_marks) = match depends::long_form(report, node) {
            Some((names, marks, conditions)) => {
                service.dependency_conditions = conditions;
                (names, marks)
            }
            None => depends_on(report, node),
        };
    }
    if let Some(autostart) = fields.read(report, "autostart", boolean) {
        service.autostart = autostart;
    }
    if let Some(signal) = fields.read(
        report,
        "stop_signal",
        scalar(units::signal, "a signal name or number"),
    ) {
        service.stop_signal = signal;
    }
    if let Some(timeout) = fields.read(report, "stop_timeout", duration()) {
        service.stop_timeout = timeout;
    }
    if let Some(readonly) = fields.read(report, "readonly_rootfs", boolean) {
        service.readonly_rootfs = readonly;
    }
    if let Some(persist) = fields.read(report, "persist", boolean) {
        service.persist = persist;
    }
    if let Some(node) = fields.node("mounts") {
        service.mounts = mounts(report, dir, node);
    }
    if let Some(node) = fields.node("limits") {
        service.limits = limits(report, node);
    }
    if let Some(node) = fields.node("devices") {
        service.devices = devices::devices(report, node);
    }
    security::read(report, dir, &fields, service);
    if let Some(node) = fields.node("networks") {
        (service.networks, read.network_marks) = network::service_networks(report, node);
    }
    if let Some(node) = fields.node("ports") {
        (service.ports, read.port_marks) = network::ports(report, node).into_iter().unzip();
    }
    if let Some(dns) = fields.read(report, "dns", network::dns) {
        service.dns = dns;
    }
    if let Some(node) = fields.node("healthcheck") {
        service.healthcheck = crate::healthcheck::read(report, node, service.restart);
    }
    depends::readiness(report, &fields, service);
    if let Some(log_console) = fields.read(report, "log_console", boolean) {
        service.log_console = log_console;
    }
    check_restart_delays(report, &fields, service);
    check_networking(report, &fields, service);
    check_namespaces(report, &fields, service);
    read
}

fn defaults(name: &str) -> Service {
    Service {
        name: name.to_owned(),
        command: Vec::new(),
        image: None,
        env: BTreeMap::new(),
        workdir: PathBuf::from("/"),
        user: None,
        hostname: name.to_owned(),
        namespaces: Namespaces::default(),
        restart: RestartPolicy::default(),
        restart_delay: DEFAULT_RESTART_DELAY,
        restart_delay_max: DEFAULT_RESTART_DELAY_MAX,
        restart_limit: None,
        depends_on: Vec::new(),
        autostart: true,
        stop_signal: DEFAULT_STOP_SIGNAL,
        stop_timeout: DEFAULT_STOP_TIMEOUT,
        readonly_rootfs: false,
        persist: false,
        mounts: Vec::new(),
        limits: Limits::default(),
        devices: Vec::new(),
        capabilities: Capabilities::docker_default(),
        privileged: false,
        seccomp: Seccomp::Default,
        seccomp_filter: None,
        networks: Vec::new(),
        ports: Vec::new(),
        dns: Vec::new(),
        healthcheck: None,
        ready: Ready::default(),
        watchdog: None,
        ready_timeout: DEFAULT_READY_TIMEOUT,
        dependency_conditions: BTreeMap::new(),
        log_console: false,
    }
}

/// A list of strings is the argv; a string runs through `/bin/sh -c`.
fn command(report: &mut Report, node: &Node) -> Vec<String> {
    match &node.value {
        Value::Scalar(line) if line.trim().is_empty() => {
            report.error(node.mark, "command: must not be empty")
        }
        Value::Scalar(line) if line.contains('\0') => {
            report.error(node.mark, "command: contains a NUL character")
        }
        Value::Scalar(line) => return vec!["/bin/sh".to_owned(), "-c".to_owned(), line.clone()],
        Value::Seq(args) if args.is_empty() => {
            report.error(node.mark, "command: must not be empty")
        }
        Value::Seq(args) => {
            let argv: Vec<String> = args
                .iter()
                .filter_map(|arg| {
                    string(arg)
                        .map_err(|why| report.error(arg.mark, format!("command: {why}")))
                        .ok()
                })
                .collect();
            if argv.len() == args.len() {
                if argv[0].is_empty() {
                    report.error(args[0].mark, "command: the program must not be empty");
                }
                return argv;
            }
        }
        other => {
            let message = format!(
                "command: expected a list of strings or a string, found {}",
                other.describe()
            );
            report.error(node.mark, message);
        }
    }
    Vec::new()
}

/// A name under images_dir, or (containing `/`) a root filesystem directory.
fn image(dir: &Path, node: &Node) -> Result<ImageRef, String> {
    let text = scalar_text(node, "an image name or path")?;
    if text.contains('/') {
        return paths::existing(dir, text, true).map(ImageRef::Path);
    }
    if names::is_image_name(text) {
        Ok(ImageRef::Named(text.to_owned()))
    } else {
        Err(format!(
            "invalid image name `{text}`: use letters, digits, ., _ and - (not first .), or a path containing /"
        ))
    }
}

fn env(report: &mut Report, node: &Node) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let Value::Map(entries) = &node.value else {
        report.error(
            node.mark,
            format!("env: expected a mapping, found {}", node.value.describe()),
        );
        return env;
    };
    for entry in entries {
        let name = &entry.key;
        if name.is_empty() || name.contains(['=', '\0']) {
            report.error(
                entry.key_mark,
                format!("env: invalid variable name `{name}`"),
            );
            continue;
        }
        match string(&entry.value) {
            Ok(value) => {
                env.insert(name.clone(), value);
            }
            Err(why) => report.error(entry.value.mark, format!("env {name}: {why}")),
        }
    }
    env
}

fn hostname(node: &Node) -> Result<String, String> {
    let name = string(node)?;
    if names::is_hostname(&name) {
        Ok(name)
    } else {
        Err(format!(
            "invalid hostname `{name}`: use 1 to 64 bytes without spaces, control characters or /"
        ))
    }
}

/// The listed namespaces replace the default set.
fn namespaces(report: &mut Report, node: &Node) -> Namespaces {
    let mut set = Namespaces {
        pid: false,
        mount: false,
        uts: false,
        ipc: false,
        net: false,
        cgroup: false,
        user: false,
    };
    let list = match &node.value {
        Value::Seq(list) => list,
        other => {
            let message = format!("namespaces: expected a list, found {}", other.describe());
            report.error(node.mark, message);
            return Namespaces::default();
        }
    };
    for item in list {
        let flag = match scalar_text(item, "a namespace name") {
            Ok("pid") => &mut set.pid,
            Ok("mount") => &mut set.mount,
            Ok("uts") => &mut set.uts,
            Ok("ipc") => &mut set.ipc,
            Ok("net") => &mut set.net,
            Ok("cgroup") => &mut set.cgroup,
            Ok("user") => &mut set.user,
            Ok(other) => {
                let hint = did_you_mean(other, NAMESPACE_NAMES.iter().copied());
                let message = format!(
                    "namespaces: unknown namespace `{other}`{hint} (known: {})",
                    NAMESPACE_NAMES.join(", ")
                );
                report.error(item.mark, message);
                continue;
            }
            Err(why) => {
                report.error(item.mark, format!("namespaces: {why}"));
                continue;
            }
        };
        *flag = true;
    }
    set
}

fn restart_policy(text: &str) -> Result<RestartPolicy, String> {
    crate::read::choice(text)
}

/// The names listed, without repeats, and where each is written.
fn depends_on(report: &mut Report, node: &Node) -> (Vec<String>, Vec<Mark>) {
    let (mut names, mut marks) = (Vec::new(), Vec::new());
    let list = items(node).map_err(|why| report.error(node.mark, format!("depends_on: {why}")));
    for item in list.unwrap_or_default() {
        match nonempty(item) {
            Ok(name) if names.contains(&name) => {}
            Ok(name) => {
                names.push(name);
                marks.push(item.mark);
            }
            Err(why) => report.error(item.mark, format!("depends_on: {why}")),
        }
    }
    (names, marks)
}

fn mounts(report: &mut Report, dir: &Path, node: &Node) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = Vec::new();
    let Value::Seq(list) = &node.value else {
        let message = format!(
            "mounts: expected a list of {{source, target}} mappings, found {}",
            node.value.describe()
        );
        report.error(node.mark, message);
        return mounts;
    };
    for item in list {
        let Some(fields) = Fields::of(report, item, MOUNT_KEYS, "mounts") else {
            continue;
        };
        for key in ["source", "target"] {
            if fields.get(key).is_none() {
                report.error(item.mark, format!("mounts: missing `{key}`"));
            }
        }
        let source = fields.read(
            report,
            "source",
            scalar(|text| paths::existing(dir, text, false), "a host path"),
        );
        let target = fields.read(report, "target", paths::inside);
        let readonly = fields.read(report, "readonly", boolean).unwrap_or(false);
        if let Some(target) = &target {
            let mark = fields.node("target").map_or(item.mark, |n| n.mark);
            if target.parent().is_none() {
                report.error(
                    mark,
                    "target: cannot mount over the root directory (use image)",
                );
                continue;
            }
            if mounts.iter().any(|m| &m.target == target) {
                report.error(
                    mark,
                    format!("target: `{}` is mounted twice", target.display()),
                );
                continue;
            }
        }
        if let (Some(source), Some(target)) = (source, target) {
            mounts.push(Mount {
                source,
                target,
                readonly,
            });
        }
    }
    mounts
}

fn limits(report: &mut Report, node: &Node) -> Limits {
    let Some(fields) = Fields::of(report, node, LIMIT_KEYS, "limits") else {
        return Limits::default();
    };
    let size = || scalar(units::size, "a size such as 64M");
    let limits = Limits {
        memory: fields.read(report, "memory", size()),
        memory_swap: fields.read(report, "memory_swap", size()),
        cpus: fields.read(
            report,
            "cpus",
            scalar(units::cpus, "a number of CPUs such as 0.5"),
        ),
        pids: fields.read(
            report,
            "pids",
            scalar(|t| units::number_in(t, 1, u64::MAX), "a number"),
        ),
        io_weight: fields
            .read(
                report,
                "io_weight",
                scalar(|t| units::number_in(t, 1, 10_000), "a number"),
            )
            .map(|w| w as u16),
    };
    if let (Some(memory), Some(swap), Some(node)) = (
        limits.memory,
        limits.memory_swap,
        fields.node("memory_swap"),
    ) {
        if swap < memory {
            report.error(
                node.mark,
                "memory_swap: must be at least memory (it counts memory plus swap)",
            );
        }
    }
    limits
}

/// `restart_limit: {count: N, window: DURATION}`, both required.
fn restart_limit(report: &mut Report, node: &Node) -> Option<RestartLimit> {
    let fields = Fields::of(report, node, RESTART_LIMIT_KEYS, "restart_limit")?;
    let count = fields.read(
        report,
        "count",
        scalar(|t| units::number_in(t, 1, u64::from(u32::MAX)), "a number"),
    );
    let window = fields.read(
        report,
        "window",
        scalar(units::duration, "a duration such as 60s or 5m"),
    );
    for key in RESTART_LIMIT_KEYS {
        if fields.node(key).is_none() {
            report.error(node.mark, format!("restart_limit: `{key}` is missing"));
        }
    }
    if let (Some(window), Some(node)) = (window, fields.node("window")) {
        if window.is_zero() {
            report.error(node.mark, "window: must be longer than 0");
            return None;
        }
    }
    Some(RestartLimit {
        count: count? as u32,
        window: window?,
    })
}

fn check_restart_delays(report: &mut Report, fields: &Fields, service: &Service) {
    if let Some(node) = fields.node("restart_delay") {
        if service.restart_delay.is_zero() {
            report.error(node.mark, "restart_delay: must be longer than 0");
        }
    }
    if service.restart_delay > service.restart_delay_max {
        let message = format!(
            "restart_delay ({:?}) is longer than restart_delay_max ({:?})",
            service.restart_delay, service.restart_delay_max
        );
        let at = fields
            .get("restart_delay_max")
            .or(fields.get("restart_delay"));
        report.error(at.map_or(Mark::START, |e| e.key_mark), message);
    }
}

/// Keys that would act on the host unless the service has its own namespace.
fn check_namespaces(report: &mut Report, fields: &Fields, service: &Service) {
    let Some(entry) = fields.get("namespaces") else {
        return;
    };
    let ns = &service.namespaces;
    if !ns.mount
        && (service.image.is_some() || !service.mounts.is_empty() || service.readonly_rootfs)
    {
        report.error(
            entry.key_mark,
            "namespaces: image, mounts and readonly_rootfs need the mount namespace",
        );
    }
    if !ns.uts && fields.get("hostname").is_some() {
        report.error(
            entry.key_mark,
            "namespaces: hostname needs the uts namespace",
        );
    }
}

/// `networks`, `ports` and `dns` act in the service's own network namespace,
/// and its `/etc/hosts` and `/etc/resolv.conf` are mounted in its own mount
/// namespace; ports and name servers need a network.
fn check_networking(report: &mut Report, fields: &Fields, service: &Service) {
    let ns = &service.namespaces;
    for key in ["networks", "ports", "dns"] {
        let Some(entry) = fields.get(key) else {
            continue;
        };
        let empty = matches!(&entry.value.value, Value::Seq(list) if list.is_empty());
        if empty {
            continue;
        }
        if !ns.net {
            let message = format!(
                "{key}: the service shares the host's network (its namespaces leave out net)"
            );
            report.error(entry.key_mark, message);
        } else if !ns.mount {
            let message =
                format!("{key}: needs the mount namespace (for /etc/hosts and /etc/resolv.conf)");
            report.error(entry.key_mark, message);
        } else if key != "networks" && service.networks.is_empty() {
            let message = format!("{key}: the service joins no network (add `networks`)");
            report.error(entry.key_mark, message);
        }
    }
}
