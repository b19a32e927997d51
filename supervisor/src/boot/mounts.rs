//! The file systems of a booting machine: the basic ones (whatever is not
//! mounted yet), `system.mounts`, and at shutdown all of them, unmounted in
//! reverse order (or remounted read-only when busy).

use std::path::Path;

use anyhow::Context;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::console;

/// What every machine needs, in this order: (source, target, type, flags, data).
const BASIC: &[(&str, &str, &str, MsFlags, &str)] = &[
    ("proc", "/proc", "proc", NOSUID_NODEV_NOEXEC, ""),
    ("sysfs", "/sys", "sysfs", NOSUID_NODEV_NOEXEC, ""),
    (
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MsFlags::MS_NOSUID,
        "mode=0755",
    ),
    (
        "devpts",
        "/dev/pts",
        "devpts",
        NOSUID_NOEXEC,
        "gid=5,mode=0620,ptmxmode=0666",
    ),
    ("tmpfs", "/dev/shm", "tmpfs", NOSUID_NODEV, "mode=1777"),
    ("tmpfs", "/run", "tmpfs", NOSUID_NODEV, "mode=0755"),
    ("tmpfs", "/tmp", "tmpfs", NOSUID_NODEV, "mode=1777"),
    (
        "cgroup2",
        "/sys/fs/cgroup",
        "cgroup2",
        NOSUID_NODEV_NOEXEC,
        "nsdelegate",
    ),
];
const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);
const NOSUID_NOEXEC: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC);
const NOSUID_NODEV_NOEXEC: MsFlags = NOSUID_NODEV.union(MsFlags::MS_NOEXEC);

/// One line of /proc/self/mountinfo: where, and what type.
pub struct MountPoint {
    pub target: String,
    pub fstype: String,
}

/// The mount table, in mount order; empty without /proc.
pub fn table() -> Vec<MountPoint> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines().filter_map(parse_line).collect()
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`
fn parse_line(line: &str) -> Option<MountPoint> {
    let (left, right) = line.split_once(" - ")?;
    let target = unescape(left.split(' ').nth(4)?);
    let fstype = right.split(' ').next()?.to_owned();
    Some(MountPoint { target, fstype })
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(digits)) => {
                let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                out.push(value as u8);
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

fn is_mounted(target: &str) -> bool {
    if target == "/proc" {
        return Path::new("/proc/self").exists();
    }
    table().iter().any(|m| m.target == target)
}

/// Mounts each basic file system that is not there yet; a failure is shown and skipped.
pub fn basic() {
    for (source, target, fstype, flags, data) in BASIC {
        if is_mounted(target) {
            continue;
        }
        let data = (!data.is_empty()).then_some(*data);
        let done = std::fs::create_dir_all(target)
            .with_context(|| format!("mkdir {target}"))
            .and_then(|()| {
                mount(Some(*source), *target, Some(*fstype), *flags, data)
                    .with_context(|| format!("mount {fstype} on {target}"))
            });
        match done {
            Ok(()) => console::step(&format!("mounted {fstype} on {target}")),
            Err(err) => console::failed(&format!("{err:#}")),
        }
        if *target == "/proc" {
            leave_rootfs();
        }
    }
}

/// The kernel's initramfs (`rootfs`) cannot be pivot_root'ed away from, which
/// every container's setup does: stand on a bind mount of it instead, as
/// switch_root does with a new root.
fn leave_rootfs() {
    let on_rootfs = table()
        .iter()
        .find(|m| m.target == "/")
        .is_some_and(|m| m.fstype == "rootfs");
    if !on_rootfs {
        return;
    }
    let done = (|| -> anyhow::Result<()> {
        let bind = "/.supervisor-root";
        std::fs::create_dir_all(bind).context("mkdir")?;
        mount(
            Some("/"),
            bind,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .context("bind / ")?;
        nix::unistd::chdir(bind).context("chdir")?;
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).context("move")?;
        nix::unistd::chroot(".").context("chroot")?;
        nix::unistd::chdir("/").context("chdir /")?;
        let _ = std::fs::remove_dir(bind);
        Ok(())
    })();
    match done {
        Ok(()) => console::step("root moved off the initramfs (rootfs) onto a bind mount of it"),
        Err(err) => console::failed(&format!("leaving the initramfs: {err:#}")),
    }
}

/// Enables every controller the root cgroup offers for its children.
pub fn enable_controllers() {
    let root = Path::new("/sys/fs/cgroup");
    let Ok(available) = std::fs::read_to_string(root.join("cgroup.controllers")) else {
        return;
    };
    let mut enabled = Vec::new();
    for controller in available.split_whitespace() {
        match std::fs::write(
            root.join("cgroup.subtree_control"),
            format!("+{controller}"),
        ) {
            Ok(()) => enabled.push(controller),
            Err(err) => console::failed(&format!("enabling the {controller} controller: {err}")),
        }
    }
    console::step(&format!(
        "cgroup controllers enabled: {}",
        enabled.join(" ")
    ));
}

/// `system.mounts`, in order.
pub fn system(mounts: &[config::SystemMount]) {
    for m in mounts {
        let target = m.target.display();
        let (flags, data) = flags_and_data(&m.options);
        let done = std::fs::create_dir_all(&m.target)
            .with_context(|| format!("mkdir {target}"))
            .and_then(|()| {
                let data = (!data.is_empty()).then_some(data.as_str());
                mount(
                    Some(m.source.as_str()),
                    &m.target,
                    Some(m.fstype.as_str()),
                    flags,
                    data,
                )
                .with_context(|| format!("mount {} ({}) on {target}", m.source, m.fstype))
            });
        match done {
            Ok(()) => console::step(&format!("mounted {} on {target}", m.source)),
            Err(err) => console::failed(&format!("{err:#}")),
        }
    }
}

/// fstab options: the flags mount(8) knows become MS_* flags, the rest is the
/// file system's data.
fn flags_and_data(options: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "suid" | "dev" | "exec" | "async" | "atime" => {}
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// Every file system but `/`, last mounted first; what cannot be unmounted is
/// remounted read-only, and so is `/`.
pub fn unmount_all() {
    let table = table();
    for m in table.iter().rev() {
        if m.target == "/" {
            continue;
        }
        match umount2(m.target.as_str(), MntFlags::empty()) {
            Ok(()) => console::step(&format!("unmounted {}", m.target)),
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(err) => remount_readonly(&m.target, &err.to_string()),
        }
    }
    remount_readonly("/", "the root");
}

fn remount_readonly(target: &str, why: &str) {
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    match mount(None::<&str>, target, None::<&str>, flags, None::<&str>) {
        Ok(()) => console::step(&format!("remounted {target} read-only ({why})")),
        Err(err) => console::failed(&format!(
            "{target}: not unmounted ({why}), not read-only: {err}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let m = parse_line("36 35 98:0 / /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw")
            .unwrap();
        assert_eq!(m.target, "/mnt two");
        assert_eq!(m.fstype, "ext3");
        let m = parse_line("1 1 0:2 / / rw - rootfs rootfs rw").unwrap();
        assert_eq!((m.target.as_str(), m.fstype.as_str()), ("/", "rootfs"));
    }

    #[test]
    fn fstab_options() {
        let (flags, data) = flags_and_data("ro,nosuid,size=1m,mode=0755");
        assert_eq!(flags, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(data, "size=1m,mode=0755");
    }
}
