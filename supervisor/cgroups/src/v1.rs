//! cgroup v1: one directory per controller hierarchy. Limits and accounting (also used
//! on hybrid hosts), the v1 freezer, and the pure-v1 backend.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::killer::{self, Emptied, Freeze};
use crate::mountinfo::Mounts;
use crate::{fsops, limits, Cgroup, DevicePolicy, Error, Resources, Stats};

/// The service's directories in the v1 hierarchies that limits and accounting use;
/// None where the controller is not mounted.
#[derive(Debug)]
pub(crate) struct V1Limits {
    memory: Option<PathBuf>,
    cpu: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    pids: Option<PathBuf>,
    blkio: Option<PathBuf>,
    devices: Option<PathBuf>,
}

/// `rel` below the mount point of `controller`'s hierarchy, if mounted.
pub(crate) fn group_dir(mounts: &Mounts, controller: &str, rel: &str) -> Option<PathBuf> {
    mounts.v1(controller).map(|mount| mount.join(rel))
}

fn file(dir: &Option<PathBuf>, name: &str) -> Option<PathBuf> {
    dir.as_ref().map(|dir| dir.join(name))
}

fn require<'a>(dir: &'a Option<PathBuf>, limit: &str, controller: &str) -> Result<&'a Path, Error> {
    dir.as_deref().ok_or_else(|| {
        Error::Unsupported(format!(
            "{limit} limit: the cgroup v1 {controller} controller is not mounted"
        ))
    })
}

impl V1Limits {
    pub fn new(mounts: &Mounts, rel: &str) -> Self {
        V1Limits {
            memory: group_dir(mounts, "memory", rel),
            cpu: group_dir(mounts, "cpu", rel),
            cpuacct: group_dir(mounts, "cpuacct", rel),
            pids: group_dir(mounts, "pids", rel),
            blkio: group_dir(mounts, "blkio", rel),
            devices: group_dir(mounts, "devices", rel),
        }
    }

    /// Whether the v1 devices controller is mounted.
    pub fn has_devices(&self) -> bool {
        self.devices.is_some()
    }

    /// Every directory, once (co-mounted controllers such as cpu,cpuacct share one).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for dir in [
            &self.memory,
            &self.cpu,
            &self.cpuacct,
            &self.pids,
            &self.blkio,
            &self.devices,
        ]
        .into_iter()
        .flatten()
        {
            if !dirs.contains(dir) {
                dirs.push(dir.clone());
            }
        }
        dirs
    }

    /// Fails, naming the controller, when a requested limit has no hierarchy to go in.
    pub fn check(&self, res: &Resources) -> Result<(), Error> {
        if res.memory.is_some() {
            require(&self.memory, "memory", "memory")?;
        }
        if res.cpus.is_some() {
            require(&self.cpu, "cpus", "cpu")?;
        }
        if res.pids.is_some() {
            require(&self.pids, "pids", "pids")?;
        }
        if res.io_weight.is_some() {
            require(&self.blkio, "io_weight", "blkio")?;
        }
        if res.devices != DevicePolicy::Unrestricted && self.devices.is_none() {
            return Err(Error::Unsupported(
                "device policy: the cgroup v1 devices controller is not mounted".into(),
            ));
        }
        Ok(())
    }

    /// Writes the limits into the (already created) directories.
    pub fn apply(&self, res: &Resources) -> Result<(), Error> {
        if let Some(memory) = res.memory {
            let dir = require(&self.memory, "memory", "memory")?;
            fsops::write(&dir.join("memory.limit_in_bytes"), &memory.to_string())?;
            if let Some(swap) = res.memory_swap {
                fsops::write_or_lacking(
                    &dir.join("memory.memsw.limit_in_bytes"),
                    &swap.to_string(),
                    "memory_swap limit: the kernel does not account swap, boot it with swapaccount=1",
                )?;
            }
        }
        if let Some(cpus) = res.cpus {
            let dir = require(&self.cpu, "cpus", "cpu")?;
            fsops::write(
                &dir.join("cpu.cfs_period_us"),
                &limits::CPU_PERIOD_US.to_string(),
            )?;
            let quota = limits::cpu_quota_us(cpus)?;
            fsops::write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
        }
        if let Some(pids) = res.pids {
            let dir = require(&self.pids, "pids", "pids")?;
            fsops::write(&dir.join("pids.max"), &pids.to_string())?;
        }
        if let Some(weight) = res.io_weight {
            let dir = require(&self.blkio, "io_weight", "blkio")?;
            // blkio.weight comes with CFQ (kernels before 5.0), blkio.bfq.weight with BFQ.
            let plain = dir.join("blkio.weight");
            let path = if plain.exists() {
                plain
            } else {
                dir.join("blkio.bfq.weight")
            };
            fsops::write_or_lacking(
                &path,
                &limits::blkio_weight(weight).to_string(),
                "io_weight limit: neither blkio.weight (CFQ) nor blkio.bfq.weight (BFQ) exists",
            )?;
        }
        if let DevicePolicy::Allow(rules) = &res.devices {
            let dir = require(&self.devices, "device policy", "devices")?;
            // Deny everything, then allow each rule: one rule per write.
            fsops::write(&dir.join("devices.deny"), "a")?;
            for rule in rules {
                fsops::write(&dir.join("devices.allow"), &rule.to_string())?;
            }
        }
        Ok(())
    }

    /// create() of a backend whose limits live here: validates, makes every directory of
    /// `cg` (`dirs`), applies the limits; on failure removes what it made.
    pub fn create(&self, cg: &dyn Cgroup, dirs: &[PathBuf], res: &Resources) -> Result<(), Error> {
        limits::validate(res)?;
        self.check(res)?;
        crate::undo_on_error(cg, || {
            for dir in dirs {
                fsops::mkdir_all(dir)?;
            }
            self.apply(res)
        })
    }

    pub fn stats(&self) -> Result<Stats, Error> {
        let number = |dir: &Option<PathBuf>, name: &str| match file(dir, name) {
            Some(path) => fsops::read_optional_u64(&path),
            None => Ok(None),
        };
        let oom_kills = match file(&self.memory, "memory.oom_control") {
            Some(path) => fsops::read_keyed_u64(&path, "oom_kill")?,
            None => None,
        };
        Ok(Stats {
            memory_bytes: number(&self.memory, "memory.usage_in_bytes")?,
            memory_peak_bytes: number(&self.memory, "memory.max_usage_in_bytes")?,
            cpu_usage_us: number(&self.cpuacct, "cpuacct.usage")?.map(|ns| ns / 1000),
            pids_current: number(&self.pids, "pids.current")?,
            oom_kills,
        })
    }
}

/// Moves `pid` into the group in each of `dirs`, as v1 needs one write per hierarchy.
pub(crate) fn add_to_every(dirs: &[PathBuf], pid: i32) -> Result<(), Error> {
    for dir in dirs {
        fsops::write(&dir.join("cgroup.procs"), &pid.to_string())?;
    }
    Ok(())
}

/// The `tasks` file of each of `dirs`, open for writing (see `SelfPlacement`).
pub(crate) fn open_tasks(dirs: &[PathBuf]) -> Result<Vec<std::fs::File>, Error> {
    dirs.iter()
        .map(|dir| {
            let path = dir.join("tasks");
            // Rust opens files close-on-exec.
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| Error::io("open", path, e))
        })
        .collect()
}

/// The service's directory in the v1 freezer hierarchy.
#[derive(Debug)]
pub(crate) struct V1Freezer {
    state: PathBuf,
}

/// v1's freezer.state has no change notification: look again after a pause that grows to this.
const MAX_PAUSE: Duration = Duration::from_millis(10);

impl V1Freezer {
    pub fn new(dir: &Path) -> Self {
        V1Freezer {
            state: dir.join("freezer.state"),
        }
    }

    fn state(&self) -> Result<String, Error> {
        Ok(fsops::read(&self.state)?.trim().to_string())
    }

    pub fn is_frozen(&self) -> Result<bool, Error> {
        Ok(self.state()? == "FROZEN")
    }

    pub fn begin_set_frozen(&self, frozen: bool) -> Result<(), Error> {
        fsops::write(&self.state, if frozen { "FROZEN" } else { "THAWED" })
    }

    /// Whether freezer.state says `frozen`; a group still FREEZING is asked again.
    pub fn reached_frozen(&self, frozen: bool) -> Result<bool, Error> {
        let want = if frozen { "FROZEN" } else { "THAWED" };
        let state = self.state()?;
        if state == want {
            return Ok(true);
        }
        if frozen && state == "FREEZING" {
            fsops::write(&self.state, want)?;
            return Ok(self.state()? == want);
        }
        Ok(false)
    }

    /// Writes `want` until freezer.state reports it; FREEZING means some task has not
    /// stopped yet, and writing FROZEN again retries those (as runc does).
    fn set_state(&self, want: &str, timeout: Duration) -> Result<bool, Error> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(100);
        loop {
            fsops::write(&self.state, want)?;
            if self.state()? == want {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            sleep(pause.min(left));
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}

impl Freeze for V1Freezer {
    fn freeze(&self, timeout: Duration) -> Result<(), Error> {
        if self.set_state("FROZEN", timeout)? {
            return Ok(());
        }
        fsops::write(&self.state, "THAWED")?;
        Err(Error::Timeout {
            what: "freeze",
            path: self.state.clone(),
            timeout,
            undone: true,
        })
    }

    fn thaw(&self, timeout: Duration) -> Result<(), Error> {
        if self.set_state("THAWED", timeout)? {
            return Ok(());
        }
        Err(Error::Timeout {
            what: "thaw",
            path: self.state.clone(),
            timeout,
            undone: false,
        })
    }
}

/// Pure v1 behaviour (layout v1, or driver v1 on a hybrid host): limits, membership,
/// freezer and kill all in the v1 hierarchies.
#[derive(Debug)]
pub(crate) struct V1Cgroup {
    pub(crate) path: String,
    limits: V1Limits,
    freezer_dir: Option<PathBuf>,
    freezer: Option<V1Freezer>,
}

impl V1Cgroup {
    pub fn new(mounts: &Mounts, rel: String) -> Result<Self, Error> {
        let limits = V1Limits::new(mounts, &rel);
        let freezer_dir = group_dir(mounts, "freezer", &rel);
        if limits.dirs().is_empty() && freezer_dir.is_none() {
            return Err(Error::Unsupported(
                "none of the cgroup v1 controllers memory, cpu, cpuacct, pids, blkio, devices, freezer is mounted"
                    .into(),
            ));
        }
        Ok(V1Cgroup {
            path: rel,
            freezer: freezer_dir.as_deref().map(V1Freezer::new),
            freezer_dir,
            limits,
        })
    }

    /// The freezer's directory first: it is where procs() looks.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.freezer_dir.iter().cloned().collect();
        dirs.extend(self.limits.dirs());
        dirs
    }

    fn freezer(&self) -> Result<&V1Freezer, Error> {
        self.freezer.as_ref().ok_or_else(|| {
            Error::Unsupported("freeze: the cgroup v1 freezer controller is not mounted".into())
        })
    }
}

impl Cgroup for V1Cgroup {
    fn path(&self) -> &str {
        &self.path
    }

    fn create(&self, res: &Resources) -> Result<(), Error> {
        self.limits.create(self, &self.dirs(), res)
    }

    fn add_process(&self, pid: i32) -> Result<(), Error> {
        add_to_every(&self.dirs(), pid)
    }

    fn self_placement(&self) -> Result<Option<crate::SelfPlacement<'_>>, Error> {
        Ok(Some(crate::SelfPlacement {
            clone_into: None,
            tasks: open_tasks(&self.dirs())?,
        }))
    }

    fn procs(&self) -> Result<Vec<i32>, Error> {
        fsops::read_procs(&self.dirs()[0].join("cgroup.procs"))
    }

    fn freeze(&self, timeout: Duration) -> Result<(), Error> {
        self.freezer()?.freeze(timeout)
    }

    fn thaw(&self, timeout: Duration) -> Result<(), Error> {
        self.freezer()?.thaw(timeout)
    }

    fn is_frozen(&self) -> Result<bool, Error> {
        match &self.freezer {
            Some(freezer) => freezer.is_frozen(),
            None => Ok(false),
        }
    }

    fn begin_set_frozen(&self, frozen: bool) -> Result<(), Error> {
        self.freezer()?.begin_set_frozen(frozen)
    }

    fn reached_frozen(&self, frozen: bool) -> Result<bool, Error> {
        self.freezer()?.reached_frozen(frozen)
    }

    fn events_file(&self) -> Option<std::fs::File> {
        None
    }

    /// SIGKILL to each pid; a frozen group is thawed after, since the v1
    /// freezer holds even a killed task until then.
    fn begin_kill(&self) -> Result<(), Error> {
        killer::signal_all(&self.dirs()[0].join("cgroup.procs"))?;
        match &self.freezer {
            Some(freezer) if !freezer.reached_frozen(false)? => freezer.begin_set_frozen(false),
            _ => Ok(()),
        }
    }

    fn kill_all(&self, timeout: Duration) -> Result<(), Error> {
        let procs = self.dirs()[0].join("cgroup.procs");
        let freezer = self.freezer.as_ref().map(|f| f as &dyn Freeze);
        killer::kill_by_signal(&procs, freezer, Emptied::Recheck, timeout)
    }

    fn stats(&self) -> Result<Stats, Error> {
        self.limits.stats()
    }

    fn destroy(&self) -> Result<(), Error> {
        crate::rmdir_all(&self.dirs())
    }
}
