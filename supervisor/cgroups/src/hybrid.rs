//! Hybrid hosts (v1 controllers plus a controller-less cgroup2 mount): limits,
//! accounting and the device policy in the v1 hierarchies; membership, freeze and kill
//! in the unified one, whose freezer reports completion through cgroup.events. Without
//! a v1 devices hierarchy the device policy is a BPF program on the unified group.

use std::path::PathBuf;
use std::time::Duration;

use crate::killer::Freeze;
use crate::mountinfo::Mounts;
use crate::unified::UnifiedGroup;
use crate::v1::{self, V1Limits};
use crate::{fsops, Cgroup, DevicePolicy, Error, Resources, Stats};

#[derive(Debug)]
pub(crate) struct HybridCgroup {
    pub(crate) path: String,
    limits: V1Limits,
    group: UnifiedGroup,
}

impl HybridCgroup {
    pub fn new(mounts: &Mounts, unified: &std::path::Path, rel: String) -> Self {
        HybridCgroup {
            limits: V1Limits::new(mounts, &rel),
            group: UnifiedGroup::new(unified.join(&rel)),
            path: rel,
        }
    }

    /// The unified directory first: it is where procs() looks.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.group.dir().to_path_buf()];
        dirs.extend(self.limits.dirs());
        dirs
    }
}

impl Cgroup for HybridCgroup {
    fn path(&self) -> &str {
        &self.path
    }

    fn create(&self, res: &Resources) -> Result<(), Error> {
        if self.limits.has_devices() {
            return self.limits.create(self, &self.dirs(), res);
        }
        // No v1 devices hierarchy: the device policy goes to the unified group, as on v2.
        let v1_res = Resources {
            devices: DevicePolicy::Unrestricted,
            ..res.clone()
        };
        self.limits.create(self, &self.dirs(), &v1_res)?;
        match &res.devices {
            DevicePolicy::Allow(rules) => {
                crate::undo_on_error(self, || self.group.allow_devices(rules))
            }
            DevicePolicy::Unrestricted => Ok(()),
        }
    }

    fn add_process(&self, pid: i32) -> Result<(), Error> {
        v1::add_to_every(&self.dirs(), pid)
    }

    /// Born in the unified group, the child joins the v1 hierarchies that hold
    /// the limits itself.
    fn self_placement(&self) -> Result<Option<crate::SelfPlacement<'_>>, Error> {
        let Some(fd) = self.group.clone_into_fd() else {
            return Ok(None);
        };
        Ok(Some(crate::SelfPlacement {
            clone_into: Some(fd),
            tasks: v1::open_tasks(&self.limits.dirs())?,
        }))
    }

    fn procs(&self) -> Result<Vec<i32>, Error> {
        self.group.procs()
    }

    fn freeze(&self, timeout: Duration) -> Result<(), Error> {
        self.group.freeze(timeout)
    }

    fn thaw(&self, timeout: Duration) -> Result<(), Error> {
        self.group.thaw(timeout)
    }

    fn is_frozen(&self) -> Result<bool, Error> {
        self.group.is_frozen()
    }

    fn kill_all(&self, timeout: Duration) -> Result<(), Error> {
        self.group.kill_all(timeout)
    }

    fn begin_set_frozen(&self, frozen: bool) -> Result<(), Error> {
        self.group.begin_set_frozen(frozen)
    }

    fn reached_frozen(&self, frozen: bool) -> Result<bool, Error> {
        Ok(self.group.is_frozen()? == frozen)
    }

    fn events_file(&self) -> Option<std::fs::File> {
        self.group.events_file()
    }

    fn begin_kill(&self) -> Result<(), Error> {
        self.group.begin_kill()
    }

    fn stats(&self) -> Result<Stats, Error> {
        let mut stats = self.limits.stats()?;
        if stats.cpu_usage_us.is_none() {
            // Without a cpuacct hierarchy the unified cpu.stat still counts CPU time.
            stats.cpu_usage_us = fsops::read_keyed_u64(&self.group.file("cpu.stat"), "usage_usec")?;
        }
        Ok(stats)
    }

    fn destroy(&self) -> Result<(), Error> {
        crate::rmdir_all(&self.dirs())
    }
}
