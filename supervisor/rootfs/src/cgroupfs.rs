//! A service's /sys/fs/cgroup in its own cgroup namespace: only the
//! service's own group, read-only, as runc shows it. The hierarchies are
//! mounted afresh from inside the namespace (a cgroup mount made there is
//! rooted at the namespace's root, the service's group), so nothing of the
//! host's tree is bound in.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::symlinkat;

use crate::fsroot::Root;
use crate::mounts::{Kind, Missing, Target};
use crate::Error;

const READONLY: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// The hierarchies the process was placed in for its service, read from
/// /proc/self/cgroup once inside its group and before the cgroup namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupView {
    /// v1 hierarchies by their controllers as /proc/self/cgroup names them
    /// ("memory", "cpu,cpuacct", "name=systemd").
    v1: Vec<String>,
    /// The service has its own group in the unified hierarchy.
    unified: bool,
}

impl CgroupView {
    /// The hierarchies where this process is in `group` ("supervisor/web",
    /// relative to the hierarchies' roots). Hierarchies the service was not
    /// placed in (they would show the supervisor's group) are left out.
    pub fn own(group: &str) -> Result<CgroupView, Error> {
        let path = Path::new("/proc/self/cgroup");
        let text = std::fs::read_to_string(path).map_err(|e| Error::setup("read", path, e))?;
        Ok(CgroupView::parse(&text, group))
    }

    fn parse(text: &str, group: &str) -> CgroupView {
        let wanted = format!("/{}", group.trim_matches('/'));
        let mut view = CgroupView {
            v1: Vec::new(),
            unified: false,
        };
        for line in text.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if path != wanted {
                continue;
            }
            if id == "0" && controllers.is_empty() {
                view.unified = true;
            } else if !controllers.is_empty() {
                view.v1.push(controllers.to_string());
            }
        }
        view
    }

    /// Mounts the view at /sys/fs/cgroup of the current root: call inside the
    /// new cgroup namespace, after `setup_rootfs`. Pure v2: one read-only
    /// cgroup2 mount. v1 and hybrid: a tmpfs with each v1 hierarchy (and
    /// `unified`) read-only in it, then the tmpfs made read-only too.
    pub fn mount(&self) -> Result<(), Error> {
        let root = Root::open(Path::new("/"))?;
        let rel = Path::new("sys/fs/cgroup");
        let target = Target::resolve(&root, rel, Kind::Dir, Missing::Refuse("/sys"))?;
        if self.v1.is_empty() {
            if self.unified {
                target.mount_fs("mount cgroup2", "cgroup2", READONLY, "")?;
            }
            return Ok(());
        }
        target.mount_fs(
            "mount /sys/fs/cgroup tmpfs",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            "mode=0755",
        )?;
        for controllers in &self.v1 {
            let name = controllers.strip_prefix("name=").unwrap_or(controllers);
            mount_hierarchy(&root, &rel.join(name), "cgroup", controllers)?;
            if name.contains(',') {
                link_controllers(&root, rel, name)?;
            }
        }
        if self.unified {
            mount_hierarchy(&root, &rel.join("unified"), "cgroup2", "")?;
        }
        let shown = PathBuf::from("/sys/fs/cgroup");
        mount(
            None::<&str>,
            &shown,
            None::<&str>,
            READONLY | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(|e| Error::setup("remount read-only", &shown, e))
    }
}

fn mount_hierarchy(root: &Root, rel: &Path, fstype: &str, options: &str) -> Result<(), Error> {
    root.mkdir_all(rel, Mode::from_bits_truncate(0o755))
        .map_err(|e| Error::setup("create", Path::new("/").join(rel), e))?;
    Target::resolve(root, rel, Kind::Dir, Missing::Refuse("/sys/fs/cgroup"))?.mount_fs(
        "mount cgroup hierarchy",
        fstype,
        READONLY,
        options,
    )
}

/// `cpu` and `cpuacct` next to `cpu,cpuacct`, as the host has them.
fn link_controllers(root: &Root, dir: &Path, name: &str) -> Result<(), Error> {
    let parent = root
        .mkdir_all(dir, Mode::from_bits_truncate(0o755))
        .map_err(|e| Error::setup("open", Path::new("/").join(dir), e))?;
    for controller in name.split(',') {
        symlinkat(
            name,
            Some(std::os::fd::AsRawFd::as_raw_fd(&parent)),
            controller,
        )
        .map_err(|e| {
            Error::setup(
                "create symlink",
                Path::new("/").join(dir).join(controller),
                e,
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hierarchies_the_service_was_placed_in() {
        let text = "12:memory:/supervisor/web\n11:cpu,cpuacct:/supervisor/web\n\
                    10:net_cls,net_prio:/\n1:name=systemd:/user.slice\n0::/supervisor/web\n";
        let view = CgroupView::parse(text, "supervisor/web");
        assert_eq!(view.v1, vec!["memory", "cpu,cpuacct"]);
        assert!(view.unified);
        let view = CgroupView::parse("0::/supervisor/web\n", "supervisor/web");
        assert!(view.v1.is_empty() && view.unified);
        let view = CgroupView::parse("0::/other\n", "supervisor/web");
        assert!(view.v1.is_empty() && !view.unified);
    }
}
