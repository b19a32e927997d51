//! `supervisor inspect NAME`: what the kernel made of a running service, read
//! from /proc/PID of its init and its cgroups, as JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::protocol::{ServiceStatus, State};

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub name: String,
    pub state: State,
    /// Host pid of the service's init.
    pub pid: i32,
    /// As /proc/PID/ns/* shows them: `"pid": "pid:[4026532210]"`.
    pub namespaces: BTreeMap<String, String>,
    /// One per hierarchy of /proc/PID/cgroup.
    pub cgroups: Vec<CgroupEntry>,
    /// Limit files of its groups and their values ("memory.max": "max").
    pub limits: BTreeMap<String, String>,
    pub rootfs: Option<Rootfs>,
    /// /proc/PID/mountinfo of init: what it sees mounted.
    pub mounts: Vec<Mount>,
    /// Capability names of init's sets (/proc/PID/status).
    pub capabilities: BTreeMap<String, Vec<String>>,
    /// `disabled`, `strict` or `filter`.
    pub seccomp: String,
    pub no_new_privs: bool,
    /// Real, effective, saved and filesystem ids, as the host sees them.
    pub uid: Vec<u32>,
    pub gid: Vec<u32>,
    /// Lines of /proc/PID/uid_map and gid_map: [inside, outside, count].
    pub uid_map: Vec<[u64; 3]>,
    pub gid_map: Vec<[u64; 3]>,
    pub addresses: BTreeMap<String, String>,
    /// With a healthcheck: its state, as Docker's `State.Health`; else null.
    pub health: Option<HealthReport>,
}

/// `status --json`'s `health`, `health_failing_streak` and `health_log` together.
#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub status: crate::protocol::Health,
    pub failing_streak: u32,
    pub log: Vec<crate::protocol::HealthCheck>,
}

#[derive(Debug, Serialize)]
pub struct CgroupEntry {
    /// "cpu,cpuacct", or "" for the unified hierarchy.
    pub controllers: String,
    pub path: String,
    /// The group's directory on the host, where its hierarchy is mounted.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Rootfs {
    pub image: Option<PathBuf>,
    pub writable_layer: Option<PathBuf>,
    pub readonly: bool,
}

#[derive(Debug, Serialize)]
pub struct Mount {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    pub options: String,
}

pub fn inspect(state_dir: &Path, status: &ServiceStatus) -> anyhow::Result<Inspection> {
    let name = &status.name;
    let Some(pid) = status.pid else {
        bail!("service {name} is not running ({})", status.state.as_str());
    };
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let read = |file: &str| {
        std::fs::read_to_string(proc_dir.join(file))
            .with_context(|| format!("read {}/{file}", proc_dir.display()))
    };
    let proc_status = read("status")?;
    let field = |key: &str| {
        proc_status.lines().find_map(|line| {
            line.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::trim)
        })
    };
    let ids = |key: &str| {
        field(key)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect()
    };
    let mut capabilities = BTreeMap::new();
    for (key, set) in [
        ("CapBnd", "bounding"),
        ("CapEff", "effective"),
        ("CapPrm", "permitted"),
        ("CapInh", "inheritable"),
        ("CapAmb", "ambient"),
    ] {
        let bits = u64::from_str_radix(field(key).unwrap_or("0"), 16).unwrap_or(0);
        capabilities.insert(set.to_string(), capability_names(bits));
    }
    let seccomp = match field("Seccomp") {
        Some("0") => "disabled",
        Some("1") => "strict",
        Some("2") => "filter",
        _ => "unknown",
    }
    .to_string();
    let groups = cgroups::memberships(pid).context("read the service's cgroups")?;
    let exec_state = crate::container::exec_state(state_dir, name).ok();
    let rootfs = exec_state
        .and_then(|state| state.spec.rootfs)
        .map(|rootfs| Rootfs {
            image: rootfs.rootfs,
            writable_layer: rootfs.writable_layer,
            readonly: rootfs.readonly,
        });
    Ok(Inspection {
        name: name.clone(),
        state: status.state,
        pid,
        namespaces: namespaces(&proc_dir)?,
        limits: cgroups::limits(&groups),
        cgroups: groups
            .into_iter()
            .map(|g| CgroupEntry {
                controllers: g.controllers,
                path: g.path,
                dir: g.dir,
            })
            .collect(),
        rootfs,
        mounts: mounts(&read("mountinfo")?),
        capabilities,
        seccomp,
        no_new_privs: field("NoNewPrivs") == Some("1"),
        uid: ids("Uid"),
        gid: ids("Gid"),
        uid_map: id_map(&read("uid_map")?),
        gid_map: id_map(&read("gid_map")?),
        addresses: status.addresses.clone(),
        health: status.health.map(|health| HealthReport {
            status: health,
            failing_streak: status.health_failing_streak,
            log: status.health_log.clone(),
        }),
    })
}

fn namespaces(proc_dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let dir = proc_dir.join("ns");
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
        let entry = entry?;
        let target = std::fs::read_link(entry.path())
            .with_context(|| format!("readlink {}", entry.path().display()))?;
        found.insert(
            entry.file_name().to_string_lossy().into_owned(),
            target.to_string_lossy().into_owned(),
        );
    }
    Ok(found)
}

fn capability_names(bits: u64) -> Vec<String> {
    (0..64)
        .filter(|bit| bits & (1 << bit) != 0)
        .map(|bit| match config::CAPABILITY_NAMES.get(bit) {
            Some(name) => name.to_string(),
            None => format!("CAP_{bit}"),
        })
        .collect()
}

/// `ID PARENT DEV ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS`.
fn mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            Some(Mount {
                mount_point: fields.get(4)?.to_string(),
                options: fields.get(5)?.to_string(),
                fstype: fields.get(dash + 1)?.to_string(),
                source: fields.get(dash + 2)?.to_string(),
            })
        })
        .collect()
}

fn id_map(text: &str) -> Vec<[u64; 3]> {
    text.lines()
        .filter_map(|line| {
            let n: Vec<u64> = line
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            Some([*n.first()?, *n.get(1)?, *n.get(2)?])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_bits_become_names() {
        assert_eq!(
            capability_names(0b1001),
            vec!["CAP_CHOWN".to_string(), "CAP_FOWNER".to_string()]
        );
    }

    #[test]
    fn mountinfo_lines() {
        let line = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue";
        let found = mounts(line);
        assert_eq!(found[0].mount_point, "/mnt2");
        assert_eq!(found[0].fstype, "ext3");
        assert_eq!(found[0].source, "/dev/root");
        assert_eq!(id_map("0 100000 65536\n"), vec![[0, 100000, 65536]]);
    }
}
