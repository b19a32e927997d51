//! `system:`: what the supervisor sets up when it boots the machine as PID 1
//! (`supervisor boot`): hostname, kernel modules, extra mounts, sysctls and a
//! hardware watchdog. Ignored by `supervisor daemon`, which runs on a machine
//! someone else brought up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::diagnostic::Report;
use crate::names;
use crate::paths;
use crate::read::{nonempty, scalar, scalar_text, string, Fields};
use crate::tree::{Node, Value};
use crate::units;

/// The keys `system:` may have.
pub const KEYS: &[&str] = &["hostname", "modules", "mounts", "sysctls", "watchdog"];
const MOUNT_KEYS: &[&str] = &["source", "target", "type", "options"];
const WATCHDOG_KEYS: &[&str] = &["device", "timeout"];
/// The watchdog device when `watchdog:` names none.
pub const DEFAULT_WATCHDOG_DEVICE: &str = "/dev/watchdog";
/// The watchdog timeout when `watchdog:` names none.
pub const DEFAULT_WATCHDOG_TIMEOUT: Duration = Duration::from_secs(30);

/// The `system:` section; all empty when the file has none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct System {
    pub hostname: Option<String>,
    /// Kernel module files (`.ko`) loaded in this order at boot.
    pub modules: Vec<PathBuf>,
    /// Mounted in this order after the basic file systems.
    pub mounts: Vec<SystemMount>,
    /// `net.ipv4.ip_forward: 1` → `/proc/sys/net/ipv4/ip_forward`.
    pub sysctls: BTreeMap<String, String>,
    pub watchdog: Option<Watchdog>,
}

/// One entry of `system.mounts`, as a line of fstab: `mount -t TYPE -o OPTIONS SOURCE TARGET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemMount {
    pub source: String,
    pub target: PathBuf,
    pub fstype: String,
    /// Comma-separated, as in fstab (`defaults` when absent: no options).
    pub options: String,
}

/// `watchdog: {device, timeout}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watchdog {
    pub device: PathBuf,
    /// Whole seconds (the kernel's unit), at least 2 so that petting at half of it works.
    pub timeout: Duration,
}

pub fn read(report: &mut Report, node: &Node) -> System {
    let mut system = System::default();
    let Some(fields) = Fields::of(report, node, KEYS, "system") else {
        return system;
    };
    system.hostname = fields.read(report, "hostname", |node| {
        let name = string(node)?;
        match names::is_hostname(&name) {
            true => Ok(name),
            false => Err(format!(
                "invalid hostname `{name}`: use 1 to 64 bytes without spaces, control characters or /"
            )),
        }
    });
    if let Some(node) = fields.node("modules") {
        system.modules = list(report, node, "modules", paths::inside);
    }
    if let Some(node) = fields.node("mounts") {
        system.mounts = mounts(report, node);
    }
    if let Some(node) = fields.node("sysctls") {
        system.sysctls = sysctls(report, node);
    }
    if let Some(node) = fields.node("watchdog") {
        system.watchdog = watchdog(report, node);
    }
    system
}

/// The items of a list read by `parse`; each problem is reported at its item.
fn list<T>(
    report: &mut Report,
    node: &Node,
    key: &str,
    parse: impl Fn(&Node) -> Result<T, String>,
) -> Vec<T> {
    let Value::Seq(items) = &node.value else {
        let message = format!("{key}: expected a list, found {}", node.value.describe());
        report.error(node.mark, message);
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            parse(item)
                .map_err(|why| report.error(item.mark, format!("{key}: {why}")))
                .ok()
        })
        .collect()
}

fn mounts(report: &mut Report, node: &Node) -> Vec<SystemMount> {
    let Value::Seq(items) = &node.value else {
        let message = format!(
            "mounts: expected a list of {{source, target, type, options}} mappings, found {}",
            node.value.describe()
        );
        report.error(node.mark, message);
        return Vec::new();
    };
    let mut mounts: Vec<SystemMount> = Vec::new();
    for item in items {
        let Some(mount) = mount(report, item) else {
            continue;
        };
        if mounts.iter().any(|m| m.target == mount.target) {
            let message = format!("mounts: `{}` is mounted twice", mount.target.display());
            report.error(item.mark, message);
            continue;
        }
        mounts.push(mount);
    }
    mounts
}

/// `{source, target, type, options}`; `options` may be left out.
fn mount(report: &mut Report, item: &Node) -> Option<SystemMount> {
    let fields = Fields::of(report, item, MOUNT_KEYS, "mounts")?;
    for key in ["source", "target", "type"] {
        if fields.get(key).is_none() {
            report.error(item.mark, format!("mounts: missing `{key}`"));
        }
    }
    let source = fields.read(report, "source", nonempty);
    let target = fields.read(report, "target", paths::inside);
    let fstype = fields.read(report, "type", scalar(fstype, "a file system type"));
    let options = fields
        .read(report, "options", scalar(options, "mount options"))
        .unwrap_or_default();
    if let (Some(target), Some(node)) = (&target, fields.node("target")) {
        if target.parent().is_none() {
            report.error(node.mark, "target: the root file system is the kernel's");
            return None;
        }
    }
    Some(SystemMount {
        source: source?,
        target: target?,
        fstype: fstype?,
        options,
    })
}

fn fstype(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    match valid {
        true => Ok(text.to_owned()),
        false => Err(format!("invalid file system type `{text}`")),
    }
}

/// fstab's `defaults` means none.
fn options(text: &str) -> Result<String, String> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "`{text}`: options are separated by commas, without spaces"
        ));
    }
    let kept: Vec<&str> = text
        .split(',')
        .filter(|o| !o.is_empty() && *o != "defaults")
        .collect();
    Ok(kept.join(","))
}

fn sysctls(report: &mut Report, node: &Node) -> BTreeMap<String, String> {
    let mut sysctls = BTreeMap::new();
    let Value::Map(entries) = &node.value else {
        let message = format!(
            "sysctls: expected a mapping such as `net.ipv4.ip_forward: 1`, found {}",
            node.value.describe()
        );
        report.error(node.mark, message);
        return sysctls;
    };
    for entry in entries {
        let key = &entry.key;
        if !is_sysctl_name(key) {
            let message =
                format!("sysctls: invalid name `{key}`: dotted words such as net.ipv4.ip_forward");
            report.error(entry.key_mark, message);
            continue;
        }
        match scalar_text(&entry.value, "a value") {
            Ok(value) if !value.contains('\n') => {
                sysctls.insert(key.clone(), value.to_owned());
            }
            Ok(_) => report.error(entry.value.mark, format!("sysctls {key}: one line only")),
            Err(why) => report.error(entry.value.mark, format!("sysctls {key}: {why}")),
        }
    }
    sysctls
}

/// Words of letters, digits, `_` and `-`, joined by `.` (or `/`, as sysctl(8) allows).
fn is_sysctl_name(name: &str) -> bool {
    !name.is_empty()
        && name.split(['.', '/']).all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        })
}

fn watchdog(report: &mut Report, node: &Node) -> Option<Watchdog> {
    let fields = Fields::of(report, node, WATCHDOG_KEYS, "watchdog")?;
    let device = fields
        .read(report, "device", paths::inside)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_WATCHDOG_DEVICE));
    let timeout = match fields.read(
        report,
        "timeout",
        scalar(units::duration, "a duration such as 30s"),
    ) {
        Some(timeout) => {
            let mark = fields.node("timeout").map_or(node.mark, |n| n.mark);
            if timeout.subsec_nanos() != 0 || timeout.as_secs() < 2 || timeout.as_secs() > 3600 {
                report.error(
                    mark,
                    "timeout: whole seconds from 2s to 1h (the kernel counts in seconds)",
                );
                return None;
            }
            timeout
        }
        None if fields.node("timeout").is_some() => return None,
        None => DEFAULT_WATCHDOG_TIMEOUT,
    };
    Some(Watchdog { device, timeout })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_names() {
        assert!(is_sysctl_name("net.ipv4.ip_forward"));
        assert!(is_sysctl_name("net/ipv4/conf/eth0/rp_filter"));
        assert!(!is_sysctl_name("net..ipv4"));
        assert!(!is_sysctl_name("../../etc"));
        assert!(!is_sysctl_name(""));
    }

    #[test]
    fn defaults_option_means_none() {
        assert_eq!(options("defaults").unwrap(), "");
        assert_eq!(options("defaults,noatime").unwrap(), "noatime");
        assert!(options("ro, noatime").is_err());
    }
}
