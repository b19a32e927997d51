//! Freeze and thaw latency of one group holding N processes, through the library and
//! through raw cgroup file writes on the same group (bench/freeze.sh drives it).
//!
//! freeze_bench DRIVER PROCS ROUNDS    (DRIVER: auto | v1 | v2)
//!
//! Prints one tab-separated line per method and operation:
//! `method  procs  op  median_us  min_us  max_us`.
//! "lib" times Cgroup::freeze/thaw (write, then wait for the kernel's report);
//! "raw" times the bare write plus re-reading the state file (yielding the CPU in
//! between) until it reports the change: about the least any tool can do.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use cgroups::{Cgroup, Driver, Layout, Resources};

const BOUND: Duration = Duration::from_secs(60);
/// Starting 1,000 processes takes over a minute in the emulated pure-v2 VM.
const START_BOUND: Duration = Duration::from_secs(600);
/// Quiet time between operations, the same for every method.
const SETTLE: Duration = Duration::from_millis(20);

fn main() {
    if let Err(e) = run() {
        eprintln!("freeze_bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [driver, procs, rounds] = args.as_slice() else {
        return Err("usage: freeze_bench auto|v1|v2 PROCS ROUNDS".into());
    };
    let driver = match driver.as_str() {
        "auto" => Driver::Auto,
        "v1" => Driver::V1,
        "v2" => Driver::V2,
        other => return Err(format!("unknown driver {other:?}")),
    };
    let procs: usize = procs.parse().map_err(|_| format!("bad PROCS {procs:?}"))?;
    let rounds: usize = rounds
        .parse()
        .map_err(|_| format!("bad ROUNDS {rounds:?}"))?;
    if procs == 0 || rounds == 0 {
        return Err("PROCS and ROUNDS must be at least 1".into());
    }

    let parent = format!("freeze-bench-{}", std::process::id());
    let cg = cgroups::open(driver, &parent, "svc").map_err(|e| e.to_string())?;
    let mut bench = Bench {
        driver,
        parent,
        cg,
        child: None,
    };
    bench
        .cg
        .create(&Resources::default())
        .map_err(|e| e.to_string())?;
    bench.start_workload(procs)?;
    let state = RawState::find(driver, bench.cg.path())?;

    let mut lib = (Vec::new(), Vec::new());
    let mut raw = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        lib.0
            .push(time(|| bench.cg.freeze(BOUND).map_err(|e| e.to_string()))?);
        lib.1
            .push(time(|| bench.cg.thaw(BOUND).map_err(|e| e.to_string()))?);
        raw.0.push(time(|| state.set(true))?);
        raw.1.push(time(|| state.set(false))?);
    }
    for (method, (freeze, thaw)) in [("lib", lib), ("raw", raw)] {
        report(method, procs, "freeze", freeze);
        report(method, procs, "thaw", thaw);
    }
    Ok(())
}

/// Runs `op` after the settle pause and returns how long it took.
fn time(op: impl FnOnce() -> Result<(), String>) -> Result<Duration, String> {
    sleep(SETTLE);
    let start = Instant::now();
    op()?;
    Ok(start.elapsed())
}

fn report(method: &str, procs: usize, op: &str, mut times: Vec<Duration>) {
    times.sort();
    let us = |d: Duration| d.as_micros();
    println!(
        "{method}\t{procs}\t{op}\t{}\t{}\t{}",
        us(times[times.len() / 2]),
        us(times[0]),
        us(times[times.len() - 1])
    );
}

/// The group under test; its processes are killed and its directories removed on drop.
struct Bench {
    driver: Driver,
    parent: String,
    cg: Box<dyn Cgroup>,
    child: Option<Child>,
}

impl Bench {
    /// `procs` processes in the group: a shell starts procs-1 sleeps, then becomes one.
    /// It waits on stdin until it is in the group, so all of them start inside.
    fn start_workload(&mut self, procs: usize) -> Result<(), String> {
        let script = format!(
            "read _go; i=1; while [ $i -lt {procs} ]; do sleep 100000 & i=$((i+1)); done; exec sleep 100000"
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn sh: {e}"))?;
        let stdin = child.stdin.take();
        let pid = child.id() as i32;
        self.child = Some(child);
        self.cg.add_process(pid).map_err(|e| e.to_string())?;
        stdin
            .expect("piped stdin")
            .write_all(b"go\n")
            .map_err(|e| format!("release the workload: {e}"))?;
        let deadline = Instant::now() + START_BOUND;
        while self.cg.procs().map_err(|e| e.to_string())?.len() < procs {
            if Instant::now() > deadline {
                return Err(format!("{procs} processes not started in {START_BOUND:?}"));
            }
            sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Err(e) = self.cg.kill_all(BOUND) {
            eprintln!("freeze_bench: cleanup: {e}");
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        if let Err(e) = self.cg.destroy() {
            eprintln!("freeze_bench: cleanup: {e}");
        }
        if let Err(e) = cgroups::remove_parent_if_empty(self.driver, &self.parent) {
            eprintln!("freeze_bench: cleanup: {e}");
        }
    }
}

/// The freezer's control and state files of the group, found independently of the
/// library: cgroup.freeze/cgroup.events, or the v1 freezer.state.
struct RawState {
    control: PathBuf,
    state: PathBuf,
    values: [(&'static str, &'static str); 2], // (write, expected in state) for thawed, frozen
}

impl RawState {
    fn find(driver: Driver, rel: &str) -> Result<Self, String> {
        let layout = cgroups::detect_layout().map_err(|e| e.to_string())?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("read /proc/self/mountinfo: {e}"))?;
        let mount = |fstype: &str, option: &str| {
            mountinfo.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let dash = fields.iter().position(|f| *f == "-")?;
                let opts = fields.get(dash + 3)?;
                (fields.get(dash + 1) == Some(&fstype)
                    && (option.is_empty() || opts.split(',').any(|o| o == option)))
                .then(|| Path::new(fields[4]).join(rel))
            })
        };
        let v1 = layout == Layout::V1 || (layout == Layout::Hybrid && driver == Driver::V1);
        if v1 {
            let dir = mount("cgroup", "freezer").ok_or("the v1 freezer is not mounted")?;
            Ok(RawState {
                control: dir.join("freezer.state"),
                state: dir.join("freezer.state"),
                values: [("THAWED", "THAWED"), ("FROZEN", "FROZEN")],
            })
        } else {
            let dir = mount("cgroup2", "").ok_or("cgroup2 is not mounted")?;
            Ok(RawState {
                control: dir.join("cgroup.freeze"),
                state: dir.join("cgroup.events"),
                values: [("0", "frozen 0"), ("1", "frozen 1")],
            })
        }
    }

    /// Writes the state and spins re-reading until the kernel reports it.
    fn set(&self, frozen: bool) -> Result<(), String> {
        let (value, expect) = self.values[usize::from(frozen)];
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.control)
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .map_err(|e| format!("write {}: {e}", self.control.display()))?;
        let deadline = Instant::now() + BOUND;
        loop {
            let text = std::fs::read_to_string(&self.state)
                .map_err(|e| format!("read {}: {e}", self.state.display()))?;
            if text.lines().any(|l| l.trim() == expect) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not report {expect:?}",
                    self.state.display()
                ));
            }
            // Leave the CPU to the tasks that must run to freeze themselves.
            std::thread::yield_now();
        }
    }
}
