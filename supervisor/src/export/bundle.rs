//! The bundle's `config.json` (OCI runtime-spec 1.0): the service as the
//! supervisor would start it, written for runc, crun or any OCI runtime.

use std::path::Path;

use cgroups::{DeviceKind, DevicePolicy};
use config::{Capabilities, Service, CAPABILITY_NAMES, USERNS_RANGE};
use rootfs::DeviceNode;
use serde_json::{json, Value};

/// The runtime-spec version written.
const OCI_VERSION: &str = "1.0.2";
/// Where our init lies in the exported root filesystem: at its top, where no
/// image has a file of that name, outside any directory the service mounts over.
pub const INIT_PATH: &str = "/.supervisor-init";

/// What the service resolves to on this host, beyond its config.
pub struct Resolved {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the primary one included, as the supervisor sets them).
    pub groups: Vec<u32>,
    /// The capabilities it keeps.
    pub capabilities: Capabilities,
    /// `KEY=VALUE`, the whole environment.
    pub env: Vec<String>,
    /// Device nodes created in its /dev.
    pub nodes: Vec<DeviceNode>,
    pub policy: DevicePolicy,
    /// The first host id of its user namespace's range.
    pub id_range: Option<u32>,
    /// `linux.seccomp`; None: no filter.
    pub seccomp: Option<Value>,
}

/// The whole `config.json`.
pub fn config(service: &Service, resolved: &Resolved) -> Value {
    let mut args = vec![INIT_PATH.to_owned(), "--".to_owned()];
    args.extend(service.command.iter().cloned());
    let mut linux = json!({
        "namespaces": namespaces(service),
        "resources": resources(service, &resolved.policy),
        "maskedPaths": absolute(rootfs::MASKED_PATHS),
        "readonlyPaths": absolute(rootfs::READONLY_PATHS),
    });
    if !resolved.nodes.is_empty() {
        linux["devices"] = json!(resolved.nodes.iter().map(device).collect::<Vec<_>>());
    }
    if let Some(first) = resolved.id_range {
        let mapping = json!([{"containerID": 0, "hostID": first, "size": USERNS_RANGE}]);
        linux["uidMappings"] = mapping.clone();
        linux["gidMappings"] = mapping;
    }
    if let Some(seccomp) = &resolved.seccomp {
        linux["seccomp"] = seccomp.clone();
    }
    let mut spec = json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": false,
            "user": {
                "uid": resolved.uid,
                "gid": resolved.gid,
                "additionalGids": resolved.groups,
            },
            "args": args,
            "env": resolved.env,
            "cwd": service.workdir,
            "capabilities": capabilities(resolved.capabilities, resolved.uid == 0),
            "noNewPrivileges": true,
        },
        "root": {"path": "rootfs", "readonly": service.readonly_rootfs},
        "mounts": mounts(service),
        "linux": linux,
    });
    if service.namespaces.uts {
        spec["hostname"] = json!(service.hostname);
    }
    spec
}

/// As the supervisor sets them before it execs init: bounding, permitted and
/// effective hold the service's set; inheritable too for root only (a non-root
/// user loses all of them at exec, CVE-2022-24769); ambient is empty.
fn capabilities(set: Capabilities, root: bool) -> Value {
    let names: Vec<&str> = CAPABILITY_NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| set.0 & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect();
    let inheritable = if root { names.clone() } else { Vec::new() };
    json!({
        "bounding": names,
        "effective": names,
        "permitted": names,
        "inheritable": inheritable,
        "ambient": [],
    })
}

/// The service's namespaces; a mount namespace always (a bundle has a root of its own).
fn namespaces(service: &Service) -> Value {
    let ns = &service.namespaces;
    let wanted = [
        (ns.pid, "pid"),
        (true, "mount"),
        (ns.uts, "uts"),
        (ns.ipc, "ipc"),
        (ns.net, "network"),
        (ns.cgroup, "cgroup"),
        (ns.user, "user"),
    ];
    let list: Vec<Value> = wanted
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, kind)| json!({"type": kind}))
        .collect();
    json!(list)
}

/// The service's file systems, as the supervisor mounts them: /proc, a small
/// /dev (Docker's tmpfs, devpts, shm, mqueue with an ipc namespace), /sys and
/// the cgroup file system read-only, /tmp, then the `mounts:` binds.
fn mounts(service: &Service) -> Value {
    let mount = |destination: &str, kind: &str, source: &str, options: &[&str]| json!({"destination": destination, "type": kind, "source": source, "options": options});
    let mut list = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
    ];
    if service.namespaces.ipc {
        list.push(mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ));
    }
    // In a user namespace without a network namespace of its own the kernel
    // refuses sysfs: the host's, bound read-only (as the supervisor does).
    if service.namespaces.user && !service.namespaces.net {
        list.push(mount(
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        ));
    } else {
        list.push(mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ));
    }
    list.push(mount(
        "/sys/fs/cgroup",
        "cgroup",
        "cgroup",
        &["nosuid", "noexec", "nodev", "relatime", "ro"],
    ));
    list.push(mount(
        "/tmp",
        "tmpfs",
        "tmpfs",
        &["nosuid", "nodev", "mode=1777"],
    ));
    for bind in &service.mounts {
        let mut options = vec!["rbind", "nosuid", "nodev"];
        if bind.readonly {
            options.push("ro");
        }
        list.push(json!({
            "destination": bind.target,
            "type": "bind",
            "source": bind.source,
            "options": options,
        }));
    }
    json!(list)
}

/// `linux.resources`: the `limits:` and the device policy.
fn resources(service: &Service, policy: &DevicePolicy) -> Value {
    let limits = &service.limits;
    let mut resources = json!({"devices": device_rules(policy)});
    if limits.memory.is_some() || limits.memory_swap.is_some() {
        let mut memory = json!({});
        if let Some(bytes) = limits.memory {
            memory["limit"] = json!(bytes);
        }
        // Both runtime-spec and `memory_swap` count memory plus swap.
        if let Some(bytes) = limits.memory_swap {
            memory["swap"] = json!(bytes);
        }
        resources["memory"] = memory;
    }
    if let Some(quota) = limits
        .cpus
        .and_then(|cpus| cgroups::cpu_quota_us(cpus).ok())
    {
        resources["cpu"] = json!({"quota": quota, "period": cgroups::CPU_PERIOD_US});
    }
    if let Some(pids) = limits.pids {
        resources["pids"] = json!({"limit": pids});
    }
    // runtime-spec 1.0 has v1's blkio weight (10 to 1000); runc and crun
    // scale it back to v2's io.weight.
    if let Some(weight) = limits.io_weight {
        resources["blockIO"] = json!({"weight": cgroups::blkio_weight(weight)});
    }
    resources
}

/// Deny everything, then allow the policy's rules; unrestricted: allow all.
fn device_rules(policy: &DevicePolicy) -> Value {
    match policy {
        DevicePolicy::Unrestricted => json!([{"allow": true, "access": "rwm"}]),
        DevicePolicy::Allow(rules) => {
            let mut list = vec![json!({"allow": false, "access": "rwm"})];
            for rule in rules {
                let kind = match rule.kind {
                    DeviceKind::Char => "c",
                    DeviceKind::Block => "b",
                    DeviceKind::All => "a",
                };
                let mut entry =
                    json!({"allow": true, "type": kind, "access": rule.access.to_string()});
                if let Some(major) = rule.major {
                    entry["major"] = json!(major);
                }
                if let Some(minor) = rule.minor {
                    entry["minor"] = json!(minor);
                }
                list.push(entry);
            }
            json!(list)
        }
    }
}

/// A `devices:` node, as `linux.devices` creates it.
fn device(node: &DeviceNode) -> Value {
    json!({
        "path": node.path,
        "type": if node.block { "b" } else { "c" },
        "major": node.major,
        "minor": node.minor,
        "fileMode": node.mode,
        "uid": node.uid,
        "gid": node.gid,
    })
}

fn absolute(paths: &[&str]) -> Vec<String> {
    paths
        .iter()
        .map(|rel| Path::new("/").join(rel).to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(keys: &str) -> Service {
        let yaml = format!("services:\n  web:\n    command: [/bin/true]\n{keys}");
        let config =
            config::parse_str(&yaml, Path::new("/services.yaml")).unwrap_or_else(|e| panic!("{e}"));
        config.services.into_iter().next().expect("one service")
    }

    fn resolved(service: &Service, policy: DevicePolicy) -> Resolved {
        Resolved {
            capabilities: service.capabilities,
            uid: 0,
            gid: 0,
            groups: vec![0],
            env: vec!["PATH=/bin".into()],
            nodes: Vec::new(),
            policy,
            id_range: None,
            seccomp: None,
        }
    }

    #[test]
    fn limits_become_resources() {
        let web = service(
            "    limits: {memory: 64m, memory_swap: 128m, cpus: 0.5, pids: 9, io_weight: 10000}\n",
        );
        let spec = config(&web, &resolved(&web, DevicePolicy::Unrestricted));
        let res = &spec["linux"]["resources"];
        assert_eq!(
            res["memory"],
            json!({"limit": 67108864u64, "swap": 134217728u64})
        );
        assert_eq!(res["cpu"], json!({"quota": 50000, "period": 100000}));
        assert_eq!(res["pids"], json!({"limit": 9}));
        assert_eq!(res["blockIO"], json!({"weight": 1000}));
        assert_eq!(res["devices"], json!([{"allow": true, "access": "rwm"}]));
    }

    #[test]
    fn the_namespaces_and_mounts_follow_the_service() {
        let web = service("    namespaces: [pid, mount, user]\n    mounts: [{source: /tmp, target: /data, readonly: true}]\n");
        let spec = config(&web, &resolved(&web, DevicePolicy::Unrestricted));
        assert_eq!(
            spec["linux"]["namespaces"],
            json!([{"type": "pid"}, {"type": "mount"}, {"type": "user"}])
        );
        assert!(spec.get("hostname").is_none());
        let mounts = spec["mounts"].as_array().unwrap();
        let at = |dest: &str| mounts.iter().find(|m| m["destination"] == dest).cloned();
        assert!(at("/dev/mqueue").is_none(), "no ipc namespace, no mqueue");
        assert_eq!(
            at("/sys").unwrap()["options"],
            json!(["rbind", "nosuid", "noexec", "nodev", "ro"])
        );
        assert_eq!(
            at("/data").unwrap(),
            json!({"destination": "/data", "type": "bind", "source": "/tmp",
                   "options": ["rbind", "nosuid", "nodev", "ro"]})
        );
    }

    #[test]
    fn a_non_root_user_inherits_no_capabilities() {
        let web = service("");
        let mut user = resolved(&web, DevicePolicy::Unrestricted);
        user.uid = 1000;
        let caps = &config(&web, &user)["process"]["capabilities"];
        assert_eq!(caps["bounding"].as_array().unwrap().len(), 14);
        assert_eq!(caps["inheritable"], json!([]));
        assert_eq!(caps["ambient"], json!([]));
    }
}
