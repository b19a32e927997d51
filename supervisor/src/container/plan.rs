//! The launch plan: everything `spawn` does for a service, decided without
//! touching anything. `resolve::gather` reads (and allocates) what the plan
//! needs from the host beforehand; `spawn` carries the plan out.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use config::{Config, Service, USERNS_RANGE};
use nix::sched::CloneFlags;

use super::devices::Devices;
use super::error::SpawnError;
use super::spec::SetupSpec;
use super::user::ResolvedUser;

/// `PATH` when the service's env has none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the plan needs from the host, gathered before planning.
pub(super) struct Facts {
    /// The host path of our init binary.
    pub init: PathBuf,
    /// The image's root filesystem; None: the host's.
    pub image_dir: Option<PathBuf>,
    pub user: ResolvedUser,
    /// The first host id of the service's user namespace range.
    pub id_range: Option<u32>,
    pub devices: Devices,
    /// Addresses and files of a service on networks.
    pub network: Option<crate::net::Prepared>,
    pub terminal: Terminal,
    /// The host path of its sd_notify socket (`ready: notify` under the daemon).
    pub notify_socket: Option<PathBuf>,
}

/// What the service's stdio is, seen from the supervisor.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Terminal {
    /// stdin is a terminal the container inherits (its /dev/console).
    pub console: bool,
    /// The service's stdio is a terminal (TERM is passed on).
    pub on_terminal: bool,
    /// The container takes the terminal's foreground.
    pub take_terminal: bool,
    /// A pseudo-terminal of our own becomes its controlling terminal.
    pub controlling_terminal: bool,
}

/// The service's writable layer: `state_dir/containers/NAME`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Layer {
    pub path: PathBuf,
    /// Emptied before the start and removed after the run (no `persist`).
    pub discard: bool,
    /// With a user namespace: the image it overlays and the first id of the
    /// range the layer is given to.
    pub give_to: Option<(PathBuf, u32)>,
}

/// Everything `spawn` does, in the order it does it.
pub(super) struct LaunchPlan {
    pub layer: Option<Layer>,
    pub cgroup_driver: cgroups::Driver,
    /// Applied when the cgroup is created (not to one kept from the last run).
    pub resources: cgroups::Resources,
    pub clone_flags: CloneFlags,
    /// The first host id of the service's user namespace range.
    pub id_range: Option<u32>,
    pub network: Option<crate::net::Prepared>,
    /// What the child's setup process does.
    pub spec: SetupSpec,
}

/// Turns a service and the facts gathered for it into its launch plan.
/// No side effects.
pub(super) fn plan(
    config: &Config,
    service: &Service,
    command: Option<&[OsString]>,
    facts: Facts,
) -> Result<LaunchPlan, SpawnError> {
    let Facts {
        init,
        image_dir,
        user,
        id_range,
        devices,
        network,
        terminal,
        notify_socket,
    } = facts;
    let notify = notify_socket.map(|host| Notify::of(service, host));
    if id_range.is_some() {
        let ids = &user.credentials;
        let mut all = [ids.uid, ids.gid]
            .into_iter()
            .chain(ids.groups.iter().copied());
        if let Some(id) = all.find(|&id| id >= USERNS_RANGE) {
            return Err(SpawnError::IdOutsideRange { id });
        }
    }
    let layer = match &image_dir {
        Some(image) if !service.readonly_rootfs => Some(Layer {
            path: config.state_dir.join("containers").join(&service.name),
            discard: !service.persist,
            give_to: id_range.map(|first| (image.clone(), first)),
        }),
        _ => None,
    };
    let network_files = network.iter().flat_map(|n| &n.files);
    let rootfs = service.namespaces.mount.then(|| rootfs::RootfsSpec {
        rootfs: image_dir.clone(),
        writable_layer: layer.as_ref().map(|layer| layer.path.clone()),
        readonly: service.readonly_rootfs,
        state_dir: config.state_dir.clone(),
        mounts: service
            .mounts
            .iter()
            .map(|m| rootfs::BindMount {
                source: m.source.clone(),
                target: m.target.clone(),
                readonly: m.readonly,
            })
            .chain(network_files.map(|(source, target)| rootfs::BindMount {
                source: source.clone(),
                target: target.clone(),
                readonly: true,
            }))
            .chain(notify.as_ref().and_then(Notify::bind))
            .collect(),
        devices: devices.nodes,
        host_devices: devices.all_host_devices,
        console: terminal.console,
        mqueue: service.namespaces.ipc,
    });
    let command = match command {
        Some(command) if !command.is_empty() => command.to_vec(),
        _ => service.command.iter().map(OsString::from).collect(),
    };
    let spec = SetupSpec {
        rootfs,
        init,
        hostname: service.namespaces.uts.then(|| service.hostname.clone()),
        loopback: service.namespaces.net,
        user_namespace: service.namespaces.user,
        cgroup_namespace: service.namespaces.cgroup,
        cgroup_path: format!("{}/{}", config.cgroup_parent, service.name),
        env: notify.as_ref().map_or_else(
            || environment(service, user.home.as_deref(), terminal.on_terminal),
            |notify| {
                notify.environment(environment(
                    service,
                    user.home.as_deref(),
                    terminal.on_terminal,
                ))
            },
        ),
        credentials: user.credentials,
        take_terminal: terminal.take_terminal,
        controlling_terminal: terminal.controlling_terminal,
        workdir: service.workdir.clone(),
        command,
        capabilities: (!service.privileged).then_some(service.capabilities.0),
        seccomp: service.seccomp_filter.as_deref().cloned(),
        held: false,
    };
    Ok(LaunchPlan {
        layer,
        cgroup_driver: driver(config.cgroup_driver),
        resources: resources(&service.limits, devices.policy),
        clone_flags: clone_flags(&service.namespaces),
        id_range,
        network,
        spec,
    })
}

/// Where a `ready: notify` service finds its sd_notify socket inside.
pub(crate) const NOTIFY_SOCKET_INSIDE: &str = "/run/supervisor/notify.sock";

/// A `ready: notify` service's socket: bound at `NOTIFY_SOCKET_INSIDE` in its
/// own mount namespace (a path, not an abstract name: those do not cross
/// network namespaces), or reached at its host path without one.
struct Notify {
    host: PathBuf,
    own_mounts: bool,
    watchdog: Option<std::time::Duration>,
}

impl Notify {
    fn of(service: &Service, host: PathBuf) -> Notify {
        Notify {
            host,
            own_mounts: service.namespaces.mount,
            watchdog: service.watchdog,
        }
    }

    fn bind(&self) -> Option<rootfs::BindMount> {
        self.own_mounts.then(|| rootfs::BindMount {
            source: self.host.clone(),
            target: PathBuf::from(NOTIFY_SOCKET_INSIDE),
            readonly: false,
        })
    }

    /// `NOTIFY_SOCKET` and, with a watchdog, `WATCHDOG_USEC` (as systemd
    /// sets them), in place of any the service's env has.
    fn environment(&self, mut env: Vec<String>) -> Vec<String> {
        env.retain(|kv| !kv.starts_with("NOTIFY_SOCKET=") && !kv.starts_with("WATCHDOG_USEC="));
        let socket = if self.own_mounts {
            Path::new(NOTIFY_SOCKET_INSIDE)
        } else {
            self.host.as_path()
        };
        env.push(format!("NOTIFY_SOCKET={}", socket.display()));
        if let Some(interval) = self.watchdog {
            env.push(format!("WATCHDOG_USEC={}", interval.as_micros()));
        }
        env
    }
}

/// Like Docker: PATH, HOSTNAME, HOME (and TERM on a terminal) by default,
/// then the service's env, which wins.
pub(crate) fn environment(
    service: &Service,
    home: Option<&Path>,
    on_terminal: bool,
) -> Vec<String> {
    let mut env = std::collections::BTreeMap::new();
    env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
    if service.namespaces.uts {
        env.insert("HOSTNAME".to_string(), service.hostname.clone());
    }
    env.insert(
        "HOME".to_string(),
        home.unwrap_or(Path::new("/"))
            .to_string_lossy()
            .into_owned(),
    );
    if on_terminal {
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".to_string());
        env.insert("TERM".to_string(), term);
    }
    env.extend(service.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

pub(super) fn driver(driver: config::CgroupDriver) -> cgroups::Driver {
    match driver {
        config::CgroupDriver::Auto => cgroups::Driver::Auto,
        config::CgroupDriver::V1 => cgroups::Driver::V1,
        config::CgroupDriver::V2 => cgroups::Driver::V2,
    }
}

fn resources(limits: &config::Limits, devices: cgroups::DevicePolicy) -> cgroups::Resources {
    cgroups::Resources {
        devices,
        memory: limits.memory,
        memory_swap: limits.memory_swap,
        cpus: limits.cpus,
        pids: limits.pids,
        io_weight: limits.io_weight,
    }
}

fn clone_flags(ns: &config::Namespaces) -> CloneFlags {
    let mut flags = CloneFlags::empty();
    for (wanted, flag) in [
        (ns.pid, CloneFlags::CLONE_NEWPID),
        (ns.mount, CloneFlags::CLONE_NEWNS),
        (ns.uts, CloneFlags::CLONE_NEWUTS),
        (ns.ipc, CloneFlags::CLONE_NEWIPC),
        (ns.net, CloneFlags::CLONE_NEWNET),
        (ns.user, CloneFlags::CLONE_NEWUSER),
    ] {
        if wanted {
            flags |= flag;
        }
    }
    // The cgroup namespace is entered by the child once inside its cgroup
    // (see setup), so that the service's cgroup is its root.
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::spec::Credentials;

    fn config(keys: &str) -> Config {
        let yaml = format!(
            "state_dir: /run/test-plan\ncgroup_parent: tests\nservices:\n  web:\n    command: [/bin/httpd, -f]\n{keys}"
        );
        config::parse_str(&yaml, Path::new("/services.yaml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn facts(image_dir: Option<&str>, id_range: Option<u32>) -> Facts {
        Facts {
            init: PathBuf::from("/usr/lib/supervisor/init"),
            image_dir: image_dir.map(PathBuf::from),
            user: ResolvedUser {
                credentials: Credentials {
                    uid: 1000,
                    gid: 1000,
                    groups: vec![1000],
                },
                home: Some(PathBuf::from("/home/web")),
            },
            id_range,
            devices: Devices {
                nodes: Vec::new(),
                all_host_devices: false,
                policy: cgroups::DevicePolicy::Unrestricted,
            },
            network: None,
            terminal: Terminal::default(),
            notify_socket: None,
        }
    }

    fn plan_of(config: &Config, facts: Facts) -> LaunchPlan {
        plan(config, &config.services[0], None, facts).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn default_namespaces_give_their_clone_flags_without_user_or_cgroup() {
        let config = config("");
        let plan = plan_of(&config, facts(None, None));
        let expected = CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWNET;
        assert_eq!(plan.clone_flags, expected);
        assert!(plan.spec.cgroup_namespace);
        assert!(!plan.spec.user_namespace);
        assert_eq!(plan.spec.cgroup_path, "tests/web");
        assert_eq!(plan.spec.hostname.as_deref(), Some("web"));
        assert!(plan.spec.loopback);
    }

    #[test]
    fn a_user_namespace_adds_its_flag_and_gives_the_layer_to_the_range() {
        let config = config("    image: /\n    namespaces: [pid, mount, user]\n");
        let plan = plan_of(&config, facts(Some("/images/busybox"), Some(1 << 20)));
        assert!(plan.clone_flags.contains(CloneFlags::CLONE_NEWUSER));
        assert!(!plan.clone_flags.contains(CloneFlags::CLONE_NEWNET));
        assert_eq!(plan.id_range, Some(1 << 20));
        assert_eq!(
            plan.layer,
            Some(Layer {
                path: PathBuf::from("/run/test-plan/containers/web"),
                discard: true,
                give_to: Some((PathBuf::from("/images/busybox"), 1 << 20)),
            })
        );
    }

    #[test]
    fn mounts_env_and_command_come_from_the_service() {
        let config = config(concat!(
            "    image: /\n",
            "    persist: true\n",
            "    env: {PATH: /bin, GREETING: hello}\n",
            "    mounts:\n",
            "      - {source: /etc, target: /www, readonly: true}\n",
        ));
        let plan = plan_of(&config, facts(Some("/images/busybox"), None));
        let rootfs = plan.spec.rootfs.expect("a mount namespace");
        assert_eq!(rootfs.rootfs, Some(PathBuf::from("/images/busybox")));
        assert_eq!(
            rootfs.writable_layer,
            Some(PathBuf::from("/run/test-plan/containers/web"))
        );
        assert_eq!(
            rootfs.mounts,
            vec![rootfs::BindMount {
                source: PathBuf::from("/etc"),
                target: PathBuf::from("/www"),
                readonly: true,
            }]
        );
        assert!(!plan.layer.expect("a writable layer").discard);
        assert_eq!(
            plan.spec.env,
            [
                "GREETING=hello",
                "HOME=/home/web",
                "HOSTNAME=web",
                "PATH=/bin"
            ]
        );
        assert_eq!(plan.spec.command, ["/bin/httpd", "-f"]);
        assert_eq!(plan.spec.credentials.uid, 1000);
    }

    #[test]
    fn a_command_given_replaces_the_services() {
        let config = config("");
        let command = [OsString::from("/bin/sh")];
        let plan = plan(
            &config,
            &config.services[0],
            Some(&command),
            facts(None, None),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.spec.command, ["/bin/sh"]);
    }

    #[test]
    fn capabilities_are_the_services_unless_privileged() {
        let config = config("    cap_add: [NET_ADMIN]\n");
        let plan = plan_of(&config, facts(None, None));
        let kept = config::Capabilities(plan.spec.capabilities.expect("a bounded set"));
        assert!(kept.has_named("CAP_NET_ADMIN"));
        assert!(!kept.has_named("CAP_SYS_ADMIN"));
        let config = self::config("    privileged: true\n");
        assert_eq!(plan_of(&config, facts(None, None)).spec.capabilities, None);
    }

    #[test]
    fn limits_go_to_the_cgroup_resources() {
        let config = config("    limits: {memory: 64M, pids: 64}\n");
        let plan = plan_of(&config, facts(None, None));
        assert_eq!(plan.resources.memory, Some(64 << 20));
        assert_eq!(plan.resources.pids, Some(64));
    }

    #[test]
    fn an_id_beyond_the_range_is_refused() {
        let config = config("    namespaces: [pid, mount, user]\n");
        let mut facts = facts(None, Some(1 << 20));
        facts.user.credentials.uid = USERNS_RANGE;
        let refused = plan(&config, &config.services[0], None, facts);
        assert!(matches!(
            refused,
            Err(SpawnError::IdOutsideRange { id }) if id == USERNS_RANGE
        ));
    }

    #[test]
    fn a_notify_service_gets_its_socket_bound_and_named_in_its_environment() {
        let config = config("    image: /\n    ready: notify\n    watchdog: 10s\n    env: {NOTIFY_SOCKET: /elsewhere}\n");
        let mut facts = facts(Some("/images/busybox"), None);
        facts.notify_socket = Some(PathBuf::from("/run/test-plan/notify/web/notify.sock"));
        let plan = plan_of(&config, facts);
        let rootfs = plan.spec.rootfs.expect("a mount namespace");
        assert_eq!(
            rootfs.mounts,
            vec![rootfs::BindMount {
                source: PathBuf::from("/run/test-plan/notify/web/notify.sock"),
                target: PathBuf::from(NOTIFY_SOCKET_INSIDE),
                readonly: false,
            }]
        );
        let env = &plan.spec.env;
        assert!(
            env.contains(&"NOTIFY_SOCKET=/run/supervisor/notify.sock".to_string()),
            "{env:?}"
        );
        assert!(
            env.contains(&"WATCHDOG_USEC=10000000".to_string()),
            "{env:?}"
        );
        assert!(
            !env.contains(&"NOTIFY_SOCKET=/elsewhere".to_string()),
            "{env:?}"
        );
        // Without a mount namespace of its own, the host path itself.
        let config = self::config("    ready: notify\n    namespaces: [pid]\n");
        let mut facts = self::facts(None, None);
        facts.notify_socket = Some(PathBuf::from("/run/test-plan/notify/web/notify.sock"));
        let plan = plan_of(&config, facts);
        assert!(plan.spec.rootfs.is_none());
        assert!(plan
            .spec
            .env
            .contains(&"NOTIFY_SOCKET=/run/test-plan/notify/web/notify.sock".to_string()));
    }
}
