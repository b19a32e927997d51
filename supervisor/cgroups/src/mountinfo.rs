//! Finds the cgroup2 mount and the v1 controller mounts in /proc/self/mountinfo,
//! wherever they are mounted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{fsops, Error, Layout};

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// v1 controllers we recognise in a cgroup mount's super options; other options
/// (`rw`, `name=systemd`, `xattr`, ...) are not controllers.
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Mounts {
    /// Mount point of the cgroup2 (unified) hierarchy.
    pub unified: Option<PathBuf>,
    /// v1 controller name -> mount point of its hierarchy (co-mounted controllers share one).
    pub v1: BTreeMap<String, PathBuf>,
}

impl Mounts {
    pub fn read() -> Result<Self, Error> {
        Ok(Self::parse(&fsops::read(Path::new(MOUNTINFO))?))
    }

    /// Parses mountinfo lines: `ID PARENT DEV ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS`.
    /// The first mount of a hierarchy wins; later ones are bind mounts of the same.
    pub fn parse(text: &str) -> Self {
        let mut mounts = Mounts::default();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            let (Some(mount_point), Some(fstype), Some(super_opts)) =
                (fields.get(4), fields.get(dash + 1), fields.get(dash + 3))
            else {
                continue;
            };
            let mount_point = PathBuf::from(unescape(mount_point));
            match *fstype {
                "cgroup2" => {
                    mounts.unified.get_or_insert(mount_point);
                }
                "cgroup" => {
                    for opt in super_opts.split(',') {
                        if V1_CONTROLLERS.contains(&opt) {
                            mounts
                                .v1
                                .entry(opt.to_string())
                                .or_insert_with(|| mount_point.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        mounts
    }

    pub fn layout(&self) -> Result<Layout, Error> {
        match (self.unified.is_some(), !self.v1.is_empty()) {
            (true, false) => Ok(Layout::V2),
            (true, true) => Ok(Layout::Hybrid),
            (false, true) => Ok(Layout::V1),
            (false, false) => Err(Error::Unsupported(format!(
                "no cgroup filesystem is mounted (none in {MOUNTINFO})"
            ))),
        }
    }

    pub fn v1(&self, controller: &str) -> Option<&Path> {
        self.v1.get(controller).map(PathBuf::as_path)
    }

    /// One line for the log: "cgroup2 at /sys/fs/cgroup/unified; v1 cpu,cpuacct at /sys/fs/cgroup/cpu,cpuacct, ...".
    pub fn describe(&self) -> String {
        let mut by_mount: BTreeMap<&Path, Vec<&str>> = BTreeMap::new();
        for (controller, mount) in &self.v1 {
            by_mount.entry(mount).or_default().push(controller);
        }
        let mut parts = Vec::new();
        if let Some(unified) = &self.unified {
            parts.push(format!("cgroup2 at {}", unified.display()));
        }
        let v1: Vec<String> = by_mount
            .iter()
            .map(|(mount, controllers)| format!("{} at {}", controllers.join(","), mount.display()))
            .collect();
        if !v1.is_empty() {
            parts.push(format!("v1 {}", v1.join(", ")));
        }
        parts.join("; ")
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:32 / /mnt/other\\040mem rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn hybrid_layout_and_mount_points() {
        let mounts = Mounts::parse(HYBRID);
        assert_eq!(mounts.layout().unwrap(), Layout::Hybrid);
        assert_eq!(
            mounts.unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            mounts.v1("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(
            mounts.v1("memory"),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        assert_eq!(mounts.v1("systemd"), None);
        assert_eq!(mounts.v1("pids"), None);
        assert_eq!(
            mounts.describe(),
            "cgroup2 at /sys/fs/cgroup/unified; v1 cpu,cpuacct at /sys/fs/cgroup/cpu,cpuacct, \
             freezer at /sys/fs/cgroup/freezer, memory at /sys/fs/cgroup/memory"
        );
    }

    #[test]
    fn pure_layouts() {
        let v2 = Mounts::parse("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        assert_eq!(v2.layout().unwrap(), Layout::V2);
        let v1 = Mounts::parse("35 31 0:32 / /cg/mem rw - cgroup cgroup rw,memory\n");
        assert_eq!(v1.layout().unwrap(), Layout::V1);
        let none = Mounts::parse("22 1 0:21 / /proc rw - proc proc rw\n");
        assert!(none.layout().is_err());
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape("/trailing\\04"), "/trailing\\04");
    }
}
