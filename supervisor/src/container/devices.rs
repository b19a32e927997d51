//! A service's devices: the nodes its /dev gets beyond the defaults, and the
//! device policy the kernel enforces on its cgroup (as Docker's default).

use cgroups::{DeviceAccess, DeviceKind, DevicePolicy, DeviceRule};
use config::Service;
use rootfs::DeviceNode;

use super::error::SpawnError;

/// Character devices every service may use: (major, minor or any, what).
const ALLOWED: &[(u32, Option<u32>, &str)] = &[
    (1, Some(3), "null"),
    (1, Some(5), "zero"),
    (1, Some(7), "full"),
    (1, Some(8), "random"),
    (1, Some(9), "urandom"),
    (5, Some(0), "tty"),
    (5, Some(1), "console"),
    (5, Some(2), "ptmx"),
    // Its own devpts instance; a pts node made elsewhere does not open (the
    // kernel only opens pty slaves through their devpts).
    (136, None, "pts"),
];

/// What `spawn` needs of a service's devices.
pub(crate) struct Devices {
    /// Host devices to create in its /dev.
    pub nodes: Vec<DeviceNode>,
    /// Every host device in its /dev (privileged).
    pub all_host_devices: bool,
    pub policy: DevicePolicy,
}

/// Stats every configured host device (a missing one fails the start, naming it)
/// and builds the policy; `console`: stdin is a terminal that becomes /dev/console.
pub(crate) fn resolve(service: &Service, console: bool) -> Result<Devices, SpawnError> {
    let mut nodes = Vec::new();
    for device in &service.devices {
        let node = DeviceNode::stat(&device.host, &device.container).map_err(|err| {
            SpawnError::Device(format!("{}: {}", device.host.display(), describe(&err)))
        })?;
        nodes.push(node);
    }
    if service.privileged {
        return Ok(Devices {
            nodes,
            all_host_devices: true,
            policy: DevicePolicy::Unrestricted,
        });
    }
    let mut rules = default_rules();
    if console {
        if let Some(rule) = terminal_rule() {
            rules.push(rule);
        }
    }
    for (node, device) in nodes.iter().zip(&service.devices) {
        // Device numbers fit (12 and 20 bits); a rule for "any" would be too wide.
        let number = |n: u64| {
            u32::try_from(n).map_err(|_| {
                SpawnError::Device(format!("{}: device number {n}", device.host.display()))
            })
        };
        rules.push(DeviceRule {
            kind: if node.block {
                DeviceKind::Block
            } else {
                DeviceKind::Char
            },
            major: Some(number(node.major)?),
            minor: Some(number(node.minor)?),
            access: access(device.access),
        });
    }
    Ok(Devices {
        nodes,
        all_host_devices: false,
        policy: DevicePolicy::Allow(rules),
    })
}

/// mknod of any node (it does not open), and the default devices.
fn default_rules() -> Vec<DeviceRule> {
    let mknod_any = |kind| DeviceRule {
        kind,
        major: None,
        minor: None,
        access: DeviceAccess::MKNOD,
    };
    let mut rules = vec![mknod_any(DeviceKind::Char), mknod_any(DeviceKind::Block)];
    rules.extend(
        ALLOWED
            .iter()
            .map(|&(major, minor, _)| DeviceRule::char(major, minor, DeviceAccess::ALL)),
    );
    rules
}

/// The terminal on stdin, which /dev/console is bound to (a pty is already allowed,
/// a real terminal such as a serial console is not).
fn terminal_rule() -> Option<DeviceRule> {
    let stat = nix::sys::stat::fstat(libc::STDIN_FILENO).ok()?;
    let rdev = stat.st_rdev;
    let major = u32::try_from(nix::sys::stat::major(rdev)).ok()?;
    let minor = u32::try_from(nix::sys::stat::minor(rdev)).ok()?;
    Some(DeviceRule::char(
        major,
        Some(minor),
        DeviceAccess::from_flags(true, true, false),
    ))
}

fn access(access: config::DeviceAccess) -> DeviceAccess {
    DeviceAccess::from_flags(access.read, access.write, access.mknod)
}

fn describe(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}

/// Whether stdin is a terminal.
pub(super) fn stdin_is_terminal() -> bool {
    nix::unistd::isatty(libc::STDIN_FILENO).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(keys: &str) -> Service {
        let yaml = format!("services:\n  web:\n    command: [/bin/true]\n{keys}");
        let config = config::parse_str(&yaml, std::path::Path::new("/services.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
        config.services.into_iter().next().expect("one service")
    }

    fn lines(policy: &DevicePolicy) -> Vec<String> {
        match policy {
            DevicePolicy::Allow(rules) => rules.iter().map(|r| r.to_string()).collect(),
            DevicePolicy::Unrestricted => vec!["unrestricted".into()],
        }
    }

    #[test]
    fn the_default_policy_is_dockers() {
        let devices = resolve(&service(""), false).unwrap();
        assert!(devices.nodes.is_empty() && !devices.all_host_devices);
        assert_eq!(
            lines(&devices.policy),
            [
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:1 rwm",
                "c 5:2 rwm",
                "c 136:* rwm"
            ]
        );
    }

    #[test]
    fn a_device_entry_adds_its_node_and_rule() {
        let devices = resolve(&service("    devices: [/dev/full:/dev/extra:r]\n"), false).unwrap();
        assert_eq!(devices.nodes.len(), 1);
        assert_eq!(devices.nodes[0].path, std::path::Path::new("/dev/extra"));
        assert_eq!((devices.nodes[0].major, devices.nodes[0].minor), (1, 7));
        assert_eq!(lines(&devices.policy).last().unwrap(), "c 1:7 r");
    }

    #[test]
    fn privileged_has_no_policy_and_the_host_devices() {
        let devices = resolve(&service("    privileged: true\n"), false).unwrap();
        assert!(devices.all_host_devices);
        assert_eq!(devices.policy, DevicePolicy::Unrestricted);
    }

    #[test]
    fn a_missing_or_wrong_host_node_is_named() {
        let missing = resolve(&service("    devices: [/dev/no-such-device-here]\n"), false);
        let message = missing.err().unwrap().to_string();
        assert_eq!(
            message,
            "devices: /dev/no-such-device-here: No such file or directory"
        );
        let wrong = resolve(&service("    devices: [/etc/hostname:/dev/x]\n"), false);
        let message = wrong.err().unwrap().to_string();
        assert_eq!(
            message,
            "devices: /etc/hostname: not a character or block device"
        );
    }
}
