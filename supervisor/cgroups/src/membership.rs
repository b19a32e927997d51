//! Where a running process is, hierarchy by hierarchy (/proc/PID/cgroup), and
//! what its groups show: the limits in force and the I/O done. For `exec`
//! (which joins a service's groups), `inspect` and `stats`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::mountinfo::Mounts;
use crate::{fsops, Error};

/// One line of /proc/PID/cgroup with the host directory it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// "cpu,cpuacct", "name=systemd", or "" for the unified hierarchy.
    pub controllers: String,
    /// "/supervisor/web", relative to the hierarchy's root.
    pub path: String,
    /// The group's directory on this host, where its hierarchy is mounted.
    pub dir: Option<PathBuf>,
}

/// The groups of `pid` in every hierarchy, as seen from this process's
/// cgroup namespace and mounts.
pub fn memberships(pid: i32) -> Result<Vec<Membership>, Error> {
    let file = PathBuf::from(format!("/proc/{pid}/cgroup"));
    let text = fsops::read(&file)?;
    let mounts = Mounts::read()?;
    Ok(parse(&text, &mounts))
}

fn parse(text: &str, mounts: &Mounts) -> Vec<Membership> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let root = match controllers {
                "" => mounts.unified.as_deref(),
                list => list.split(',').find_map(|c| mounts.v1(c)),
            };
            let dir = root.map(|root| root.join(path.trim_start_matches('/')));
            Some(Membership {
                controllers: controllers.to_string(),
                path: path.to_string(),
                dir,
            })
        })
        .collect()
}

/// The limits in force in a process's groups, by file name ("memory.max",
/// "memory.limit_in_bytes", "cpu.max", "pids.max", ...): as the kernel shows them.
pub fn limits(groups: &[Membership]) -> BTreeMap<String, String> {
    const FILES: &[&str] = &[
        "memory.max",
        "memory.swap.max",
        "memory.limit_in_bytes",
        "memory.memsw.limit_in_bytes",
        "cpu.max",
        "cpu.cfs_quota_us",
        "cpu.cfs_period_us",
        "pids.max",
        "io.weight",
        "io.bfq.weight",
        "blkio.weight",
        "blkio.bfq.weight",
    ];
    let mut found = BTreeMap::new();
    for dir in groups.iter().filter_map(|g| g.dir.as_deref()) {
        for name in FILES {
            if let Ok(Some(value)) = fsops::read_optional(&dir.join(name)) {
                found
                    .entry(name.to_string())
                    .or_insert_with(|| value.trim().to_string());
            }
        }
    }
    found
}

/// The memory limit in bytes (None: unlimited or unknown).
pub fn memory_limit(groups: &[Membership]) -> Option<u64> {
    let limits = limits(groups);
    let value = limits
        .get("memory.max")
        .or_else(|| limits.get("memory.limit_in_bytes"))?;
    // v1 shows "unlimited" as a huge page-rounded number.
    value.parse::<u64>().ok().filter(|&v| v < 1 << 62)
}

/// Bytes read and written by a process's groups (all devices): io.stat on
/// v2, blkio's throttle counters on v1. None where neither is there.
pub fn io_bytes(groups: &[Membership]) -> Option<(u64, u64)> {
    for dir in groups.iter().filter_map(|g| g.dir.as_deref()) {
        if let Some(bytes) = read_io_stat(&dir.join("io.stat")) {
            return Some(bytes);
        }
        if let Some(bytes) = read_blkio(&dir.join("blkio.throttle.io_service_bytes_recursive"))
            .or_else(|| read_blkio(&dir.join("blkio.throttle.io_service_bytes")))
        {
            return Some(bytes);
        }
    }
    None
}

/// `MAJ:MIN rbytes=N wbytes=N rios=N ...` per device.
fn read_io_stat(path: &Path) -> Option<(u64, u64)> {
    let text = fsops::read_optional(path).ok()??;
    Some(sum_io_stat(&text))
}

fn sum_io_stat(text: &str) -> (u64, u64) {
    let (mut read, mut written) = (0, 0);
    for field in text.split_whitespace() {
        let value = |key: &str| field.strip_prefix(key)?.parse::<u64>().ok();
        read += value("rbytes=").unwrap_or(0);
        written += value("wbytes=").unwrap_or(0);
    }
    (read, written)
}

/// `MAJ:MIN Read N` / `MAJ:MIN Write N` ... `Total N`.
fn read_blkio(path: &Path) -> Option<(u64, u64)> {
    let text = fsops::read_optional(path).ok()??;
    Some(sum_blkio(&text))
}

fn sum_blkio(text: &str) -> (u64, u64) {
    let (mut read, mut written) = (0, 0);
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_, op, n] = fields[..] {
            let n: u64 = n.parse().unwrap_or(0);
            match op {
                "Read" => read += n,
                "Write" => written += n,
                _ => {}
            }
        }
    }
    (read, written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_map_to_mounted_hierarchies() {
        let mut mounts = Mounts {
            unified: Some(PathBuf::from("/sys/fs/cgroup/unified")),
            ..Mounts::default()
        };
        mounts
            .v1
            .insert("cpu".into(), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        mounts.v1.insert(
            "cpuacct".into(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
        );
        let text = "4:cpu,cpuacct:/supervisor/web\n1:name=systemd:/x\n0::/supervisor/web\n";
        let groups = parse(text, &mounts);
        assert_eq!(groups.len(), 3);
        assert_eq!(
            groups[0].dir.as_deref(),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/supervisor/web"))
        );
        assert_eq!(groups[1].dir, None);
        assert_eq!(
            groups[2].dir.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified/supervisor/web"))
        );
    }

    #[test]
    fn io_counters_add_up_over_devices() {
        let v2 = "8:0 rbytes=100 wbytes=20 rios=1 wios=1\n8:16 rbytes=5 wbytes=0\n";
        assert_eq!(sum_io_stat(v2), (105, 20));
        let v1 = "8:0 Read 100\n8:0 Write 20\n8:0 Total 120\n8:16 Read 5\nTotal 125\n";
        assert_eq!(sum_blkio(v1), (105, 20));
    }
}
