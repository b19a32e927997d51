//! The cgroup layer (`cgroups` crate) against the real kernel, as root, on whatever layout
//! the host has: on a hybrid host both the v1 driver and the auto driver (v1 limits,
//! unified freezer), on pure v2 and pure v1 the one that fits. Every group lives below a
//! unique parent and is killed and removed by a drop guard, even when a test fails.

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use cgroups::{
    Cgroup, DeviceAccess, DeviceKind, DevicePolicy, DeviceRule, Driver, Layout, Resources,
};
use integration_tests::{require_root, unique_name};

/// Generous bounds for anything that waits: the pure-v2 VM is emulated and 15-40x slower.
const BOUND: Duration = Duration::from_secs(120);
/// Starting 1,000 processes takes about a minute in that VM.
const START_BOUND: Duration = Duration::from_secs(600);
const MIB: u64 = 1024 * 1024;

fn layout() -> Layout {
    cgroups::detect_layout().expect("detect the cgroup layout")
}

/// The drivers worth testing on this host's layout.
fn drivers() -> Vec<Driver> {
    require_root();
    match layout() {
        Layout::Hybrid => vec![Driver::V1, Driver::Auto],
        Layout::V1 => vec![Driver::V1],
        Layout::V2 => vec![Driver::Auto],
    }
}

/// Whether `driver` keeps membership (procs, freezer) in the unified hierarchy here.
fn uses_unified(driver: Driver) -> bool {
    match layout() {
        Layout::V2 => true,
        Layout::Hybrid => driver != Driver::V1,
        Layout::V1 => false,
    }
}

/// cgroup mounts from /proc/self/mountinfo, read independently of the library:
/// (fstype, super options, mount point).
fn cgroup_mounts() -> Vec<(String, String, PathBuf)> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(dash + 1)?;
            fstype.starts_with("cgroup").then(|| {
                (
                    fstype.to_string(),
                    fields.get(dash + 3).unwrap_or(&"").to_string(),
                    PathBuf::from(fields[4]),
                )
            })
        })
        .collect()
}

fn unified_mount() -> Option<PathBuf> {
    cgroup_mounts()
        .into_iter()
        .find(|(fstype, _, _)| fstype == "cgroup2")
        .map(|(_, _, mount)| mount)
}

fn v1_mount(controller: &str) -> Option<PathBuf> {
    cgroup_mounts()
        .into_iter()
        .find(|(fstype, opts, _)| fstype == "cgroup" && opts.split(',').any(|o| o == controller))
        .map(|(_, _, mount)| mount)
}

fn read_trim(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// A test group `<unique parent>/svc`: on drop its processes are killed and reaped and
/// its directories and parent removed.
struct TestGroup {
    driver: Driver,
    parent: String,
    cg: Box<dyn Cgroup>,
    children: Vec<Child>,
}

impl TestGroup {
    fn open(driver: Driver) -> Self {
        Self::open_in(driver, unique_name("cgtest"))
    }

    /// `parent` may be nested ("a/b"); it should be unique to the test.
    fn open_in(driver: Driver, parent: String) -> Self {
        let cg = cgroups::open(driver, &parent, "svc")
            .unwrap_or_else(|e| panic!("open with {driver:?}: {e}"));
        TestGroup {
            driver,
            parent,
            cg,
            children: Vec::new(),
        }
    }

    fn create(driver: Driver, res: &Resources) -> Self {
        Self::create_in(driver, unique_name("cgtest"), res)
    }

    fn create_in(driver: Driver, parent: String, res: &Resources) -> Self {
        let group = Self::open_in(driver, parent);
        group
            .cg
            .create(res)
            .unwrap_or_else(|e| panic!("create with {driver:?}: {e}"));
        group
    }

    /// The group's directory in the v1 hierarchy of `controller`.
    fn v1_dir(&self, controller: &str) -> PathBuf {
        v1_mount(controller)
            .unwrap_or_else(|| panic!("the cgroup v1 {controller} controller is not mounted"))
            .join(self.cg.path())
    }

    fn unified_dir(&self) -> PathBuf {
        unified_mount()
            .expect("cgroup2 is not mounted")
            .join(self.cg.path())
    }

    /// The directories the group must have on this layout with this driver.
    fn expected_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if layout() != Layout::V2 {
            dirs.extend(["memory", "cpuacct", "pids"].map(|c| self.v1_dir(c)));
            dirs.extend(v1_mount("devices").map(|m| m.join(self.cg.path())));
        }
        if uses_unified(self.driver) {
            dirs.push(self.unified_dir());
        } else {
            dirs.push(self.v1_dir("freezer"));
        }
        dirs
    }

    /// Runs `sh -c script` in the group. The shell first waits for a line on stdin, sent
    /// once it has been moved into the group, so that nothing it starts runs outside.
    fn spawn(&mut self, script: &str) -> i32 {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("read _go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sh");
        let pid = child.id() as i32;
        let added = self.cg.add_process(pid);
        let mut stdin = child.stdin.take().expect("stdin");
        self.children.push(child);
        added.unwrap_or_else(|e| panic!("add_process with {:?}: {e}", self.driver));
        stdin.write_all(b"go\n").expect("release the child");
        pid
    }

    /// Waits (bounded) for a spawned shell to exit.
    fn wait(&mut self, pid: i32) -> ExitStatus {
        let child = self
            .children
            .iter_mut()
            .find(|c| c.id() as i32 == pid)
            .expect("a child spawned by this group");
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "pid {pid} still running after {BOUND:?}"
            );
            sleep(Duration::from_millis(20));
        }
    }

    fn procs(&self) -> Vec<i32> {
        self.cg.procs().expect("procs")
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        // No panics here: this also runs while a failed test unwinds.
        if let Err(e) = self.cg.kill_all(BOUND).or_else(ignore_missing) {
            eprintln!("cleanup: kill_all {}: {e}", self.cg.path());
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Err(e) = self.cg.destroy() {
            eprintln!("cleanup: destroy {}: {e}", self.cg.path());
        }
        if let Err(e) = cgroups::remove_parent_if_empty(self.driver, &self.parent) {
            eprintln!("cleanup: remove parent {}: {e}", self.parent);
        }
    }
}

/// A group that was never created (or is gone already) needs no cleanup.
fn ignore_missing(e: cgroups::Error) -> Result<(), cgroups::Error> {
    if e.is_not_found() {
        Ok(())
    } else {
        Err(e)
    }
}

/// Waits (bounded) until `what` holds, polling: these are tests, not the library.
fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    wait_until_within(BOUND, what, cond)
}

fn wait_until_within(bound: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !cond() {
        assert!(Instant::now() < deadline, "not after {bound:?}: {what}");
        sleep(Duration::from_millis(20));
    }
}

#[test]
fn detects_the_layout_from_mountinfo() {
    let mounts = cgroup_mounts();
    let unified = mounts.iter().any(|(fstype, _, _)| fstype == "cgroup2");
    let v1 = ["memory", "cpu", "cpuacct", "pids", "blkio", "freezer"]
        .iter()
        .any(|c| v1_mount(c).is_some());
    let expected = match (unified, v1) {
        (true, false) => Layout::V2,
        (true, true) => Layout::Hybrid,
        (false, true) => Layout::V1,
        (false, false) => panic!("no cgroup filesystem is mounted"),
    };
    assert_eq!(layout(), expected);
    eprintln!("layout: {expected}");
    // tests/run.sh says which layout each of its passes made (pure v1, pure v2): a pass
    // that silently ran on another layout fails here.
    if let Some(want) = integration_tests::expected_layout() {
        assert_eq!(expected.to_string(), want, "EXPECT_CGROUP_LAYOUT");
    }
}

#[test]
fn limits_are_written_to_the_cgroup_files() {
    for driver in drivers() {
        let res = Resources {
            memory: Some(64 * MIB),
            cpus: Some(0.5),
            pids: Some(50),
            ..Resources::default()
        };
        let group = TestGroup::create(driver, &res);
        assert!(group.cg.path().ends_with("/svc"), "{}", group.cg.path());
        for dir in group.expected_dirs() {
            assert!(dir.is_dir(), "{driver:?}: {} missing", dir.display());
        }
        if layout() == Layout::V2 {
            let dir = group.unified_dir();
            assert_eq!(read_trim(&dir.join("memory.max")), (64 * MIB).to_string());
            assert_eq!(read_trim(&dir.join("cpu.max")), "50000 100000");
            assert_eq!(read_trim(&dir.join("pids.max")), "50");
        } else {
            let memory = group.v1_dir("memory");
            let cpu = group.v1_dir("cpu");
            assert_eq!(
                read_trim(&memory.join("memory.limit_in_bytes")),
                (64 * MIB).to_string()
            );
            assert_eq!(read_trim(&cpu.join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read_trim(&cpu.join("cpu.cfs_period_us")), "100000");
            assert_eq!(read_trim(&group.v1_dir("pids").join("pids.max")), "50");
        }
    }
}

/// memory_swap and io_weight depend on host features: either the file has the value,
/// or create fails naming what is missing, and leaves nothing behind.
#[test]
fn swap_and_io_limits_apply_or_fail_naming_the_file() {
    for driver in drivers() {
        let swap = Resources {
            memory: Some(64 * MIB),
            memory_swap: Some(96 * MIB),
            ..Resources::default()
        };
        let group = TestGroup::open(driver);
        match group.cg.create(&swap) {
            Ok(()) if layout() == Layout::V2 => assert_eq!(
                read_trim(&group.unified_dir().join("memory.swap.max")),
                (32 * MIB).to_string()
            ),
            Ok(()) => assert_eq!(
                read_trim(&group.v1_dir("memory").join("memory.memsw.limit_in_bytes")),
                (96 * MIB).to_string()
            ),
            Err(e) => {
                // Only the one refusal that names the missing swap accounting.
                let file = if layout() == Layout::V2 {
                    group.unified_dir().join("memory.swap.max")
                } else {
                    group.v1_dir("memory").join("memory.memsw.limit_in_bytes")
                };
                let lacking = format!(
                    "{}: no such file (memory_swap limit: the kernel does not account swap, boot it with swapaccount=1)",
                    file.display()
                );
                let msg = e.to_string();
                assert!(
                    matches!(e, cgroups::Error::Unsupported(_)) && msg == lacking,
                    "{driver:?}: {msg}"
                );
                eprintln!("{driver:?}: swap limit unsupported here: {msg}");
                for dir in group.expected_dirs() {
                    assert!(!dir.exists(), "{} left behind", dir.display());
                }
            }
        }
        drop(group);

        let io = Resources {
            io_weight: Some(500),
            ..Resources::default()
        };
        let group = TestGroup::open(driver);
        match group.cg.create(&io) {
            Ok(()) => {
                let (dir, plain, bfq) = if layout() == Layout::V2 {
                    (group.unified_dir(), "io.weight", "io.bfq.weight")
                } else {
                    (group.v1_dir("blkio"), "blkio.weight", "blkio.bfq.weight")
                };
                let value = if dir.join(plain).exists() {
                    read_trim(&dir.join(plain))
                } else {
                    read_trim(&dir.join(bfq))
                };
                // 500 on the v2 scale (1..10000) is 59 on the v1/BFQ one (10..1000).
                let first = value.lines().next().unwrap_or("");
                let wanted: &[&str] = if dir.join(plain).exists() && layout() == Layout::V2 {
                    &["default 500"]
                } else {
                    &["59", "default 59"]
                };
                assert!(wanted.contains(&first), "{driver:?}: io weight {value:?}");
            }
            Err(e) => {
                // Only the refusals that name what the host lacks for io_weight.
                let (dir, controller, lacking) = if layout() == Layout::V2 {
                    (
                        group.unified_dir().join("io.bfq.weight"),
                        "io_weight limit: the cgroup v2 io controller is not available (not in ",
                        "io_weight limit: neither io.weight (io.cost) nor io.bfq.weight (BFQ) exists",
                    )
                } else {
                    (
                        v1_mount("blkio")
                            .unwrap_or_default()
                            .join(group.cg.path())
                            .join("blkio.bfq.weight"),
                        "io_weight limit: the cgroup v1 blkio controller is not mounted",
                        "io_weight limit: neither blkio.weight (CFQ) nor blkio.bfq.weight (BFQ) exists",
                    )
                };
                let msg = e.to_string();
                assert!(
                    matches!(e, cgroups::Error::Unsupported(_))
                        && (msg == format!("{}: no such file ({lacking})", dir.display())
                            || msg.starts_with(controller)),
                    "{driver:?}: {msg}"
                );
                eprintln!("{driver:?}: io_weight unsupported here: {msg}");
            }
        }
    }
}

#[test]
fn processes_join_every_hierarchy_and_are_counted() {
    for driver in drivers() {
        let mut group = TestGroup::create(driver, &Resources::default());
        let pid = group.spawn("exec sleep 1000");
        assert_eq!(group.procs(), vec![pid], "{driver:?}");
        for dir in group.expected_dirs() {
            let procs = read_trim(&dir.join("cgroup.procs"));
            assert_eq!(procs, pid.to_string(), "{driver:?}: {}", dir.display());
        }
        let stats = group.cg.stats().expect("stats");
        assert_eq!(stats.pids_current, Some(1), "{driver:?}: {stats:?}");
        assert!(stats.memory_bytes.is_some(), "{driver:?}: {stats:?}");
        assert!(stats.memory_peak_bytes.is_some(), "{driver:?}: {stats:?}");
        assert!(stats.cpu_usage_us.is_some(), "{driver:?}: {stats:?}");
        assert_eq!(stats.oom_kills, Some(0), "{driver:?}: {stats:?}");
    }
}

/// What lets a start skip its parent's `cgroup.procs` writes: the cgroup2
/// directory to be born in (where membership lives there), and the v1
/// `tasks` files into which a child that writes `0` moves itself.
#[test]
fn a_child_writing_0_to_the_tasks_files_joins_the_v1_groups() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    for driver in drivers() {
        let mut group = TestGroup::create(driver, &Resources::default());
        let placement = group
            .cg
            .self_placement()
            .expect("self_placement")
            .unwrap_or_else(|| panic!("{driver:?}: no self placement"));
        assert_eq!(
            placement.clone_into.is_some(),
            uses_unified(driver),
            "{driver:?}"
        );
        let unified = unified_mount();
        let v1_dirs: Vec<PathBuf> = group
            .expected_dirs()
            .into_iter()
            .filter(|dir| unified.as_ref().is_none_or(|u| !dir.starts_with(u)))
            .collect();
        assert!(placement.tasks.len() >= v1_dirs.len(), "{driver:?}");
        // (>=: the limits also use the cpu and blkio hierarchies where mounted.)
        let fds: Vec<i32> = placement.tasks.iter().map(|f| f.as_raw_fd()).collect();
        let mut command = Command::new("sleep");
        command.arg("1000");
        // SAFETY: write(2) is async-signal-safe; the fds are the open tasks files.
        unsafe {
            command.pre_exec(move || {
                for &fd in &fds {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn sleep");
        let pid = child.id().to_string();
        group.children.push(child);
        for dir in v1_dirs {
            let procs = read_trim(&dir.join("cgroup.procs"));
            assert_eq!(procs, pid, "{driver:?}: {}", dir.display());
        }
    }
}

/// After cgroup.kill the kernel (6.18 here) kills at birth every child cloned
/// into the group: a killed group kept for a restart offers no clone target,
/// and a process moved in by the parent lives there.
#[test]
fn a_group_killed_offers_no_clone_target_and_takes_a_process_moved_in() {
    for driver in drivers().into_iter().filter(|d| uses_unified(*d)) {
        let mut group = TestGroup::create(driver, &Resources::default());
        group.spawn("exec sleep 1000");
        group
            .cg
            .kill_all(BOUND)
            .unwrap_or_else(|e| panic!("{driver:?}: kill_all: {e}"));
        let placement = group.cg.self_placement().expect("self_placement");
        assert!(placement.is_none(), "{driver:?}: {placement:?}");
        let pid = group.spawn("sleep 0.2; exit 7");
        assert_eq!(group.wait(pid).code(), Some(7), "{driver:?}");
    }
}

/// Burns CPU until the shell's own CPU time plus its waited-for children's (fields 14
/// to 17 of /proc/PID/stat, in 1/100 s) reaches $want ticks.
const BURN: &str = "burn() { while :; do i=0; while [ $i -lt 500 ]; do i=$((i+1)); done; set -- $(cat /proc/$$/stat); [ $((${14} + ${15} + ${16} + ${17})) -ge $want ] && return; done; }";

/// The stats are the values of what ran in the group: CPU time burned (at least, with a
/// generous upper bound for a busy machine), memory held in a tmpfs, processes started.
#[test]
fn stats_are_the_values_the_group_made() {
    for driver in drivers() {
        let mut group = TestGroup::create(driver, &Resources::default());
        let dir = tempfile::tempdir().expect("tempdir");
        let done = dir.path().join("done");
        // tmpfs pages are charged to the group of the writer and stay while the file does.
        let fill = PathBuf::from(format!("/dev/shm/{}", unique_name("stats-test")));
        let _remove = RemoveOnDrop(fill.clone());
        group.spawn(&format!(
            "{BURN}; want=30; burn; dd if=/dev/zero of={} bs=1048576 count=16 2>/dev/null; sleep 1000 & sleep 1000 & echo > {}; wait",
            fill.display(),
            done.display()
        ));
        wait_until("the group's shell has done its work", || done.exists());
        let stats = group.cg.stats().expect("stats");
        let cpu = stats.cpu_usage_us.expect("cpu_usage_us");
        assert!(
            (300_000..=30_000_000).contains(&cpu),
            "{driver:?}: 0.3 s burned: {stats:?}"
        );
        let memory = stats.memory_bytes.expect("memory_bytes");
        assert!(
            (16 * MIB..=64 * MIB).contains(&memory),
            "{driver:?}: 16 MiB in a tmpfs: {stats:?}"
        );
        let peak = stats.memory_peak_bytes.expect("memory_peak_bytes");
        assert!(peak >= memory, "{driver:?}: {stats:?}");
        // The shell and its two sleeps.
        assert_eq!(stats.pids_current, Some(3), "{driver:?}: {stats:?}");
    }
}

/// Removes a file when the test ends, failed or not.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn memory_hog_is_oom_killed_and_counted() {
    for driver in drivers() {
        let res = Resources {
            memory: Some(32 * MIB),
            ..Resources::default()
        };
        let mut group = TestGroup::create(driver, &res);
        let pid = group.spawn("exec dd if=/dev/zero of=/dev/null bs=256M count=1");
        let status = group.wait(pid);
        assert_eq!(
            status.signal(),
            Some(9),
            "{driver:?}: dd ended with {status}"
        );
        let stats = group.cg.stats().expect("stats");
        assert!(
            stats.oom_kills.is_some_and(|n| n >= 1),
            "{driver:?}: {stats:?}"
        );
        assert!(
            stats.memory_peak_bytes.is_some_and(|peak| peak <= 32 * MIB),
            "{driver:?}: {stats:?}"
        );
    }
}

#[test]
fn fork_loop_stops_at_pids_max() {
    for driver in drivers() {
        let res = Resources {
            pids: Some(10),
            ..Resources::default()
        };
        let mut group = TestGroup::create(driver, &res);
        let pid = group.spawn("i=0; while [ $i -lt 50 ]; do sleep 1000 & i=$((i+1)); done; wait");
        // The shell cannot fork its 10th sleep: it fails and exits, leaving 9 sleeps.
        let status = group.wait(pid);
        assert!(
            !status.success(),
            "{driver:?}: the fork loop was not stopped"
        );
        let procs = group.procs();
        assert_eq!(procs.len(), 9, "{driver:?}: {procs:?}");
        let stats = group.cg.stats().expect("stats");
        assert_eq!(stats.pids_current, Some(9), "{driver:?}: {stats:?}");
    }
}

#[test]
fn frozen_counter_stops_and_resumes_after_thaw() {
    for driver in drivers() {
        let mut group = TestGroup::create(driver, &Resources::default());
        let dir = tempfile::tempdir().expect("tempdir");
        let counter = dir.path().join("counter");
        // One line per step; appends, so a frozen writer can never leave a torn count.
        group.spawn(&format!(
            "while :; do echo x >> '{}'; sleep 0.05; done",
            counter.display()
        ));
        let count = || fs::read_to_string(&counter).map_or(0, |t| t.lines().count());
        wait_until("the counter advances", || count() >= 2);

        group.cg.freeze(BOUND).expect("freeze");
        assert!(group.cg.is_frozen().expect("is_frozen"), "{driver:?}");
        let frozen_at = count();
        sleep(Duration::from_millis(500));
        assert_eq!(
            count(),
            frozen_at,
            "{driver:?}: the counter advanced while frozen"
        );
        assert!(group.cg.is_frozen().expect("is_frozen"), "{driver:?}");

        group.cg.thaw(BOUND).expect("thaw");
        assert!(!group.cg.is_frozen().expect("is_frozen"), "{driver:?}");
        wait_until("the counter advances after thaw", || count() > frozen_at);
    }
}

#[test]
fn freeze_and_thaw_a_thousand_processes() {
    for driver in drivers() {
        let mut group = TestGroup::create(driver, &Resources::default());
        group.spawn("for i in $(seq 1000); do sleep 1000 & done; wait");
        wait_until_within(
            START_BOUND,
            "1,000 sleeps plus their shell are in the group",
            || group.procs().len() >= 1001,
        );
        group.cg.freeze(BOUND).expect("freeze 1,000 processes");
        assert!(group.cg.is_frozen().expect("is_frozen"), "{driver:?}");
        group.cg.thaw(BOUND).expect("thaw 1,000 processes");
        assert!(!group.cg.is_frozen().expect("is_frozen"), "{driver:?}");
        group.cg.kill_all(BOUND).expect("kill_all");
        assert_eq!(group.procs(), Vec::<i32>::new(), "{driver:?}");
    }
}

#[test]
fn kill_all_empties_the_group_even_when_frozen() {
    for driver in drivers() {
        let mut group = TestGroup::create(driver, &Resources::default());
        let pid = group.spawn("sleep 1000 & sleep 1000 & while :; do sleep 1; done");
        wait_until("the shell has started its sleeps", || {
            group.procs().len() >= 3
        });
        group.cg.kill_all(BOUND).expect("kill_all");
        assert_eq!(group.procs(), Vec::<i32>::new(), "{driver:?}");
        assert_eq!(group.wait(pid).signal(), Some(9), "{driver:?}");

        // Stopping a frozen service: kill_all must work on a frozen group.
        let pid = group.spawn("sleep 1000 & exec sleep 1000");
        wait_until("two sleeps in the group", || group.procs().len() >= 2);
        group.cg.freeze(BOUND).expect("freeze");
        group
            .cg
            .kill_all(BOUND)
            .expect("kill_all of a frozen group");
        assert_eq!(group.procs(), Vec::<i32>::new(), "{driver:?}");
        assert_eq!(group.wait(pid).signal(), Some(9), "{driver:?}");
    }
}

#[test]
fn destroy_removes_the_directories_and_refuses_a_busy_group() {
    for driver in drivers() {
        let mut group = TestGroup::create(driver, &Resources::default());
        let dirs = group.expected_dirs();
        group.spawn("exec sleep 1000");
        let busy = group
            .cg
            .destroy()
            .expect_err("destroy of a group with a process");
        assert!(
            busy.to_string().starts_with("rmdir /"),
            "{driver:?}: {busy}"
        );

        group.cg.kill_all(BOUND).expect("kill_all");
        group.cg.destroy().expect("destroy");
        for dir in &dirs {
            assert!(!dir.exists(), "{driver:?}: {} still exists", dir.display());
        }
        group
            .cg
            .destroy()
            .expect("destroy of a removed group is fine");

        cgroups::remove_parent_if_empty(driver, &group.parent).expect("remove parent");
        for dir in &dirs {
            let parent = dir.parent().expect("parent");
            assert!(
                !parent.exists(),
                "{driver:?}: {} still exists",
                parent.display()
            );
        }
    }
}

#[test]
fn a_nested_parent_is_removed_level_by_level_up_to_a_level_in_use() {
    for driver in drivers() {
        let top = unique_name("cgtest");
        let group = TestGroup::create_in(driver, format!("{top}/inner"), &Resources::default());
        let sibling = TestGroup::create_in(driver, format!("{top}/other"), &Resources::default());
        group.cg.destroy().expect("destroy");
        cgroups::remove_parent_if_empty(driver, &group.parent).expect("remove parent");
        for dir in group.expected_dirs() {
            let inner = dir.parent().expect("parent");
            assert!(
                !inner.exists(),
                "{driver:?}: {} still exists",
                inner.display()
            );
            let top_dir = inner.parent().expect("top");
            assert!(
                top_dir.is_dir(),
                "{driver:?}: {} in use, yet removed",
                top_dir.display()
            );
        }

        sibling.cg.destroy().expect("destroy the sibling");
        cgroups::remove_parent_if_empty(driver, &sibling.parent).expect("remove sibling parent");
        for (_, _, mount) in cgroup_mounts() {
            let left = mount.join(&top);
            assert!(
                !left.exists(),
                "{driver:?}: {} still exists",
                left.display()
            );
        }
    }
}

#[test]
fn bad_input_gives_clear_errors() {
    for driver in drivers() {
        // "a b": the config file's cgroup path rule, which the crate owns.
        let bad = [
            ("x", ".."),
            ("x", "a/b"),
            ("", "svc"),
            ("a/../b", "svc"),
            ("a b", "svc"),
        ];
        for (parent, name) in bad {
            let err = cgroups::open(driver, parent, name).expect_err("bad name");
            assert!(matches!(err, cgroups::Error::Invalid(_)), "{err}");
        }
        let group = TestGroup::open(driver);
        let err = group
            .cg
            .create(&Resources {
                memory: Some(64 * MIB),
                memory_swap: Some(32 * MIB),
                ..Resources::default()
            })
            .expect_err("swap below memory");
        assert!(err.to_string().contains("memory_swap"), "{err}");
        let err = group
            .cg
            .create(&Resources {
                cpus: Some(0.0),
                ..Resources::default()
            })
            .expect_err("zero cpus");
        assert!(err.to_string().contains("cpus"), "{err}");
        let err = group
            .cg
            .freeze(BOUND)
            .expect_err("freeze of a missing group");
        assert!(err.to_string().contains(group.cg.path()), "{err}");
    }
    let wrong = match layout() {
        Layout::V1 => Some((Driver::V2, "cgroup v2 is not mounted")),
        Layout::V2 => Some((Driver::V1, "no cgroup v1 controller is mounted")),
        Layout::Hybrid => None,
    };
    if let Some((driver, message)) = wrong {
        let err = cgroups::open(driver, "x", "svc").expect_err("driver the host lacks");
        assert!(err.to_string().contains(message), "{err}");
    }
}

/// A device policy: the kernel lets the group's processes open exactly what is allowed,
/// with the access allowed, and create (mknod) any node without opening it. On v1 and
/// hybrid hosts the rules are in the v1 devices controller; on v2 a BPF program does it.
#[test]
fn device_policy_allows_only_the_listed_devices() {
    for driver in drivers() {
        let rules = vec![
            DeviceRule::char(1, Some(3), DeviceAccess::ALL),
            DeviceRule::char(1, Some(5), DeviceAccess::READ),
            DeviceRule {
                kind: DeviceKind::Char,
                major: None,
                minor: None,
                access: DeviceAccess::MKNOD,
            },
        ];
        let res = Resources {
            devices: DevicePolicy::Allow(rules),
            ..Resources::default()
        };
        let v1_only = layout() == Layout::V1 || driver == Driver::V1;
        if v1_only && v1_mount("devices").is_none() {
            let group = TestGroup::open(driver);
            let err = group.cg.create(&res).expect_err("no devices controller");
            assert!(err.to_string().contains("devices controller"), "{err}");
            continue;
        }
        let mut group = TestGroup::create(driver, &res);
        // Without a v1 devices hierarchy (pure v2, or a hybrid host lacking it) the
        // policy is a BPF program on the unified group: only its effect shows.
        if v1_mount("devices").is_some() {
            let list = read_trim(&group.v1_dir("devices").join("devices.list"));
            let mut lines: Vec<&str> = list.lines().collect();
            lines.sort();
            assert_eq!(lines, ["c *:* m", "c 1:3 rwm", "c 1:5 r"], "{driver:?}");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let kmsg = dir.path().join("kmsg");
        // Each check that goes wrong sets its own bit of the exit status.
        let script = format!(
            "r=0; cat /dev/null || r=$((r|1)); echo x > /dev/null || r=$((r|2)); \
             head -c 1 /dev/zero > /dev/null || r=$((r|4)); \
             ! (echo x > /dev/zero) 2>/dev/null || r=$((r|8)); \
             ! head -c 1 /dev/full 2>/dev/null || r=$((r|16)); \
             mknod {kmsg} c 1 11 || r=$((r|32)); \
             ! head -c 1 {kmsg} 2>/dev/null || r=$((r|64)); exit $r",
            kmsg = kmsg.display()
        );
        let pid = group.spawn(&script);
        let status = group.wait(pid);
        assert_eq!(
            status.code(),
            Some(0),
            "{driver:?}: failed checks (bits: 1 read null, 2 write null, 4 read zero, \
             8 write zero denied, 16 full denied, 32 mknod, 64 mknod'ed kmsg denied)"
        );
        // Creating the group again (a group left over) replaces its policy.
        let full = DeviceRule::char(1, Some(7), DeviceAccess::READ);
        let again = Resources {
            devices: DevicePolicy::Allow(vec![full]),
            ..Resources::default()
        };
        group.cg.create(&again).expect("create again");
        let pid = group.spawn("test $(head -c 1 /dev/full | wc -c) -eq 1 && ! cat /dev/null");
        assert_eq!(group.wait(pid).code(), Some(0), "{driver:?}: replaced");

        // A group without a policy leaves devices alone.
        let mut open = TestGroup::create(driver, &Resources::default());
        let pid = open.spawn("head -c 1 /dev/full > /dev/null");
        assert_eq!(open.wait(pid).code(), Some(0), "{driver:?}");
    }
}

/// Waits (bounded) until the freezer has reached `frozen`: woken by
/// cgroup.events (POLLPRI) where the backend offers it, else looking again.
fn wait_reached(group: &TestGroup, frozen: bool) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::io::{Read, Seek, SeekFrom};
    let mut events = group.cg.events_file();
    let deadline = Instant::now() + BOUND;
    while !group.cg.reached_frozen(frozen).expect("reached_frozen") {
        assert!(Instant::now() < deadline, "freezer never reached {frozen}");
        match &mut events {
            Some(file) => {
                let mut fds = [PollFd::new(
                    std::os::fd::AsFd::as_fd(&*file),
                    PollFlags::POLLPRI,
                )];
                let _ = poll(&mut fds, PollTimeout::from(100u8));
                // Reading re-arms the notification.
                let mut text = String::new();
                let _ = file
                    .seek(SeekFrom::Start(0))
                    .and_then(|_| file.read_to_string(&mut text));
            }
            None => sleep(Duration::from_millis(1)),
        }
    }
}

#[test]
fn freeze_thaw_and_kill_without_waiting() {
    for driver in drivers() {
        let mut group = TestGroup::create(driver, &Resources::default());
        assert_eq!(
            group.cg.events_file().is_some(),
            uses_unified(driver),
            "{driver:?}"
        );
        let pid = group.spawn("sleep 1000 & exec sleep 1000");
        wait_until("two sleeps in the group", || group.procs().len() >= 2);
        group.cg.begin_set_frozen(true).expect("begin freeze");
        wait_reached(&group, true);
        assert!(group.cg.is_frozen().expect("is_frozen"), "{driver:?}");
        group.cg.begin_set_frozen(false).expect("begin thaw");
        wait_reached(&group, false);
        assert!(!group.cg.is_frozen().expect("is_frozen"), "{driver:?}");

        // A kill takes effect on a frozen group too (v1: thawed after the signals).
        group.cg.begin_set_frozen(true).expect("begin freeze");
        wait_reached(&group, true);
        group.cg.begin_kill().expect("begin_kill");
        wait_until("the group is empty", || group.procs().is_empty());
        assert_eq!(group.wait(pid).signal(), Some(9), "{driver:?}");
    }
}
