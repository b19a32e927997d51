//! The top level of the file: global settings and the `services` mapping.

use std::path::{Path, PathBuf};

use crate::dependencies;
use crate::depends;
use crate::diagnostic::{Mark, Report};
use crate::names;
use crate::network;
use crate::paths;
use crate::read::{scalar, Fields};
use crate::service;
use crate::tree::{Node, Value};
use crate::types::*;
use crate::userns;

/// The keys the top level may have.
pub const KEYS: &[&str] = &[
    "state_dir",
    "images_dir",
    "cgroup_parent",
    "cgroup_driver",
    "control_group",
    "userns_pool",
    "networks",
    "system",
    "services",
];

/// Reads the whole file (`path` absolute); every problem is reported.
pub fn read(report: &mut Report, root: Option<&Node>, path: PathBuf) -> Config {
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut config = Config {
        path,
        state_dir: PathBuf::from(DEFAULT_STATE_DIR),
        images_dir: PathBuf::from(DEFAULT_IMAGES_DIR),
        cgroup_parent: DEFAULT_CGROUP_PARENT.to_owned(),
        cgroup_driver: CgroupDriver::default(),
        control_group: None,
        userns_pool: DEFAULT_USERNS_POOL,
        services: Vec::new(),
        networks: Vec::new(),
        system: crate::System::default(),
    };
    let empty = "the file is empty: expected a mapping with a `services` key";
    let Some(root) = root else {
        report.error(Mark::START, empty);
        return config;
    };
    match &root.value {
        Value::Map(_) => {}
        Value::Null => {
            report.error(root.mark, empty);
            return config;
        }
        other => {
            let message = format!(
                "expected a mapping with a `services` key, found {}",
                other.describe()
            );
            report.error(root.mark, message);
            return config;
        }
    }
    let Some(fields) = Fields::of(report, root, KEYS, "the file") else {
        return config;
    };
    if let Some(dir) = fields.read(report, "state_dir", paths::host_dir(&dir)) {
        config.state_dir = dir;
    }
    if let Some(dir) = fields.read(report, "images_dir", paths::host_dir(&dir)) {
        config.images_dir = dir;
    }
    if let Some(parent) = fields.read(
        report,
        "cgroup_parent",
        scalar(cgroup_parent, "a cgroup path"),
    ) {
        config.cgroup_parent = parent;
    }
    if let Some(driver) = fields.read(
        report,
        "cgroup_driver",
        scalar(cgroup_driver, "auto, v1 or v2"),
    ) {
        config.cgroup_driver = driver;
    }
    config.control_group = fields.read(report, "control_group", scalar(group, "a group name"));
    let pool_node = fields.node("userns_pool");
    let pool_valid = match pool_node {
        Some(node) => userns::pool(report, node).map(|pool| config.userns_pool = pool),
        None => Some(()),
    }
    .is_some();
    if let Some(node) = fields.node("networks") {
        config.networks = network::networks(report, node);
    }
    if let Some(node) = fields.node("system") {
        config.system = crate::system::read(report, node);
    }
    let Some(entry) = fields.get("services") else {
        report.error(root.mark, "missing key `services`");
        return config;
    };
    let Value::Map(entries) = &entry.value.value else {
        let message = format!(
            "services: expected a mapping of service names to services, found {}",
            entry.value.value.describe()
        );
        report.error(entry.value.mark, message);
        return config;
    };
    let dedented = dedented_keys(report, entries);
    let services: Vec<service::Read> = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| !dedented.contains(i))
        .map(|(i, entry)| match dedented.contains(&(i + 1)) {
            // Already reported as dedented: the service exists, for
            // depends_on, with nothing more said of it.
            true => service::Read::empty(&entry.key),
            false => service::read(report, &dir, &entry.key, entry.key_mark, &entry.value),
        })
        .collect();
    dependencies::check(report, &services);
    depends::check_conditions(report, &services);
    network::check(report, &config.networks, &services);
    config.services = services.into_iter().map(|read| read.service).collect();
    let pool_used = pool_node.is_some() || config.services.iter().any(|s| s.namespaces.user);
    if pool_valid && pool_used {
        let mark = pool_node.map_or(root.mark, |node| node.mark);
        userns::check_subordinate(
            report,
            mark,
            &config.userns_pool,
            &userns::SUBORDINATE_FILES,
        );
    }
    config
}

/// A service written with nothing under it, followed by service keys at its
/// own indentation (`web:` then `command: x` in the same column): its keys
/// were dedented. Reported once, at the service; returns the positions of
/// those entries, which are not services.
fn dedented_keys(report: &mut Report, entries: &[crate::tree::Entry]) -> Vec<usize> {
    let mut dedented = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let keys = entries[i + 1..]
            .iter()
            .take_while(|e| service::KEYS.contains(&e.key.as_str()))
            .count();
        if matches!(entries[i].value.value, Value::Null) && keys > 0 {
            let (service, first) = (&entries[i], &entries[i + 1]);
            report.error(
                service.key_mark,
                format!(
                    "service {} has no keys: `{}` (line {}) and the keys after it are at the \
                     indentation of the service names; indent them under `{}:`",
                    service.key, first.key, first.key_mark.line, service.key
                ),
            );
            dedented.extend(i + 1..=i + keys);
            i += keys;
        }
        i += 1;
    }
    dedented
}

/// `supervisor` (below the hierarchies' roots) or `./services` (below the
/// daemon's own cgroup; `./` alone is that cgroup itself).
fn cgroup_parent(text: &str) -> Result<String, String> {
    let relative = text.strip_prefix("./");
    if relative.is_some_and(|rest| rest.is_empty() || names::is_cgroup_path(rest))
        || names::is_cgroup_path(text)
    {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` must be a relative cgroup path such as `supervisor` or `appliance/services`, \
             or one below the daemon's own cgroup such as `./services` \
             (letters, digits, ., _ and -, no `..`)"
        ))
    }
}

fn cgroup_driver(text: &str) -> Result<CgroupDriver, String> {
    crate::read::choice(text)
}

fn group(text: &str) -> Result<String, String> {
    if names::is_account_name(text) {
        Ok(text.to_owned())
    } else {
        Err(format!("invalid group name `{text}`"))
    }
}
