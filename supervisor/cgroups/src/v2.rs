//! Pure cgroup v2: everything in the unified hierarchy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::killer::Freeze;
use crate::unified::UnifiedGroup;
use crate::{fsops, limits, Cgroup, DevicePolicy, Error, Resources, Stats};

#[derive(Debug)]
pub(crate) struct V2Cgroup {
    pub(crate) path: String,
    root: PathBuf,
    group: UnifiedGroup,
}

/// Controllers a group may need: the accounting ones always (when the host has them),
/// the others only for their limit. (controller, limit that requires it)
fn wanted(res: &Resources) -> Vec<(&'static str, Option<&'static str>)> {
    let mut wanted = vec![
        ("memory", res.memory.map(|_| "memory")),
        ("pids", res.pids.map(|_| "pids")),
        // io.stat, for `supervisor stats`, exists only where io is enabled.
        ("io", res.io_weight.map(|_| "io_weight")),
    ];
    if res.cpus.is_some() {
        wanted.push(("cpu", Some("cpus")));
    }
    wanted
}

impl V2Cgroup {
    pub fn new(root: &Path, rel: String) -> Self {
        V2Cgroup {
            group: UnifiedGroup::new(root.join(&rel)),
            root: root.to_path_buf(),
            path: rel,
        }
    }

    pub fn dirs(&self) -> Vec<PathBuf> {
        vec![self.group.dir().to_path_buf()]
    }

    /// Enables the controllers the group needs in cgroup.subtree_control of the root and of
    /// every level down to the group's parent; a limit whose controller the host lacks fails.
    fn enable_controllers(&self, res: &Resources) -> Result<(), Error> {
        let available_file = self.root.join("cgroup.controllers");
        let available = fsops::read(&available_file)?;
        let available: Vec<&str> = available.split_whitespace().collect();
        let mut enable = Vec::new();
        for (controller, limit) in wanted(res) {
            match (available.contains(&controller), limit) {
                (true, _) => enable.push(controller),
                (false, Some(limit)) => {
                    return Err(Error::Unsupported(format!(
                        "{limit} limit: the cgroup v2 {controller} controller is not available (not in {})",
                        available_file.display()
                    )))
                }
                (false, None) => {}
            }
        }
        let parent = self.group.dir().parent().unwrap_or(&self.root);
        fsops::mkdir_all(parent)?;
        let mut level = self.root.clone();
        let below_root = parent.strip_prefix(&self.root).unwrap_or(Path::new(""));
        for component in std::iter::once(None).chain(below_root.components().map(Some)) {
            if let Some(component) = component {
                level.push(component);
            }
            let control = level.join("cgroup.subtree_control");
            let enabled = fsops::read(&control)?;
            let enabled: Vec<&str> = enabled.split_whitespace().collect();
            let missing: Vec<String> = enable
                .iter()
                .filter(|c| !enabled.contains(c))
                .map(|c| format!("+{c}"))
                .collect();
            if !missing.is_empty() {
                fsops::write(&control, &missing.join(" "))?;
            }
        }
        Ok(())
    }

    fn apply(&self, res: &Resources) -> Result<(), Error> {
        let file = |name| self.group.file(name);
        if let Some(memory) = res.memory {
            fsops::write(&file("memory.max"), &memory.to_string())?;
            if let Some(swap) = res.memory_swap {
                // v2 limits swap alone; the config's value counts memory plus swap.
                fsops::write_or_lacking(
                    &file("memory.swap.max"),
                    &(swap - memory).to_string(),
                    "memory_swap limit: the kernel does not account swap, boot it with swapaccount=1",
                )?;
            }
        }
        if let Some(cpus) = res.cpus {
            let quota = limits::cpu_quota_us(cpus)?;
            fsops::write(
                &file("cpu.max"),
                &format!("{quota} {}", limits::CPU_PERIOD_US),
            )?;
        }
        if let Some(pids) = res.pids {
            fsops::write(&file("pids.max"), &pids.to_string())?;
        }
        if let Some(weight) = res.io_weight {
            // io.weight comes with the io.cost controller, io.bfq.weight with the BFQ scheduler.
            let plain = file("io.weight");
            let (path, value) = if plain.exists() {
                (plain, format!("default {weight}"))
            } else {
                (
                    file("io.bfq.weight"),
                    limits::blkio_weight(weight).to_string(),
                )
            };
            fsops::write_or_lacking(
                &path,
                &value,
                "io_weight limit: neither io.weight (io.cost) nor io.bfq.weight (BFQ) exists",
            )?;
        }
        if let DevicePolicy::Allow(rules) = &res.devices {
            self.group.allow_devices(rules)?;
        }
        Ok(())
    }
}

fn unified_stats(group: &UnifiedGroup) -> Result<Stats, Error> {
    let number = |name| fsops::read_optional_u64(&group.file(name));
    Ok(Stats {
        memory_bytes: number("memory.current")?,
        memory_peak_bytes: number("memory.peak")?,
        cpu_usage_us: fsops::read_keyed_u64(&group.file("cpu.stat"), "usage_usec")?,
        pids_current: number("pids.current")?,
        oom_kills: fsops::read_keyed_u64(&group.file("memory.events"), "oom_kill")?,
    })
}

impl Cgroup for V2Cgroup {
    fn path(&self) -> &str {
        &self.path
    }

    fn create(&self, res: &Resources) -> Result<(), Error> {
        limits::validate(res)?;
        self.enable_controllers(res)?;
        crate::undo_on_error(self, || {
            self.group.mkdir()?;
            self.apply(res)
        })
    }

    fn add_process(&self, pid: i32) -> Result<(), Error> {
        self.group.add_process(pid)
    }

    fn self_placement(&self) -> Result<Option<crate::SelfPlacement<'_>>, Error> {
        Ok(self.group.clone_into_fd().map(|fd| crate::SelfPlacement {
            clone_into: Some(fd),
            tasks: Vec::new(),
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
        unified_stats(&self.group)
    }

    fn destroy(&self) -> Result<(), Error> {
        self.group.rmdir()
    }
}
