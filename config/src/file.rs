//! The top level of the file: global settings and the `services` mapping.

use std::path::{Path, PathBuf};

use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::Deserialize;

use crate::dependencies;
use crate::diagnostic::{Mark, Report};
use crate::names;
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
    let services: Vec<service::Read> = entries
        .iter()
        .map(|entry| service::read(report, &dir, &entry.key, entry.key_mark, &entry.value))
        .collect();
    dependencies::check(report, &services);
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

fn cgroup_parent(text: &str) -> Result<String, String> {
    if names::is_cgroup_path(text) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` must be a relative cgroup path such as `supervisor` or `appliance/services` \
             (letters, digits, ., _ and -, no `..`)"
        ))
    }
}

fn cgroup_driver(text: &str) -> Result<CgroupDriver, String> {
    CgroupDriver::deserialize(StrDeserializer::<ValueError>::new(text))
        .map_err(|err| err.to_string())
}

fn group(text: &str) -> Result<String, String> {
    if names::is_account_name(text) {
        Ok(text.to_owned())
    } else {
        Err(format!("invalid group name `{text}`"))
    }
}
