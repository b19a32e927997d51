//! Shared helpers for the integration tests.

use std::path::PathBuf;

pub mod daemon;
pub use daemon::TestDaemon;

/// Directory that holds the workspace's built binaries (`init`, `supervisor`):
/// the test executable lives in `<dir>/deps/`. `TEST_BIN_DIR` overrides (e.g. the
/// release binaries).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TEST_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binary is in <target>/<profile>/deps")
        .to_path_buf()
}

/// Under `cargo test` (which builds the tests but not the binaries they run), builds
/// the workspace's binaries once per test process, so that a plain `cargo test` on a
/// fresh clone works and never runs stale binaries. A test binary run directly (as
/// tests/run.sh does on the other cgroup layouts) or with `TEST_BIN_DIR` uses what is
/// there.
///
/// `cargo build --workspace` exactly as the README says (any other flags unify features
/// differently and make the next plain build start over); `--examples` only for the
/// examples.
fn build_binaries_once(examples: bool) {
    static BINS: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    static EXAMPLES: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let once = if examples { &EXAMPLES } else { &BINS };
    let result = once.get_or_init(|| {
        let cargo = match std::env::var_os("CARGO") {
            Some(cargo) if std::env::var_os("TEST_BIN_DIR").is_none() => cargo,
            _ => return Ok(()),
        };
        let dir = bin_dir();
        let mut command = std::process::Command::new(cargo);
        command
            .args(["build", "--workspace"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if examples {
            command.arg("--examples");
        }
        if dir.file_name().is_some_and(|p| p == "release") {
            command.arg("--release");
        }
        // <target dir>/<triple>/<profile> when a target is given, else <target dir>/<profile>.
        let parent = dir.parent().expect("profile dir has a parent");
        let triple = parent.file_name().and_then(|t| t.to_str()).unwrap_or("");
        let target_dir = if triple.matches('-').count() >= 2 {
            command.args(["--target", triple]);
            parent.parent().expect("triple dir has a parent")
        } else {
            parent
        };
        command.arg("--target-dir").arg(target_dir);
        match command.status() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("`{command:?}` failed: {status}")),
            Err(e) => Err(format!("`{command:?}`: {e}")),
        }
    });
    if let Err(e) = result {
        panic!(
            "building the binaries the tests run: {e}; run `cargo build --workspace --examples`"
        );
    }
}

/// Path of one of the workspace's binaries; panics with the command that builds it.
pub fn bin(name: &str) -> PathBuf {
    build_binaries_once(false);
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// A name unique to this test run and call, for cgroups, state dirs and the like,
/// so that nothing a test creates can collide with the host's own.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Fails the test with a message naming the missing feature unless we are root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root (namespaces, cgroups, mounts): run them as root"
    );
}

/// A busybox root filesystem in `dir` (created if missing), built from the
/// host's static busybox (Debian's busybox-static) by `images::busybox::build`.
pub fn busybox_rootfs(dir: &std::path::Path) {
    if let Err(e) = images::busybox::build(dir) {
        panic!("busybox root filesystem in {}: {e}", dir.display());
    }
}

/// Path of an example program of the workspace (e.g. `setup_rootfs`, which
/// runs `rootfs::setup_rootfs`); panics with the command that builds it.
pub fn example(name: &str) -> PathBuf {
    build_binaries_once(true);
    let path = bin_dir().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --examples` first",
        path.display()
    );
    path
}

/// The cgroup layout the test command's pass set up (`EXPECT_CGROUP_LAYOUT`: v1,
/// hybrid or v2), if it says.
pub fn expected_layout() -> Option<String> {
    let want = std::env::var("EXPECT_CGROUP_LAYOUT").ok()?;
    assert!(
        ["v1", "hybrid", "v2"].contains(&want.as_str()),
        "EXPECT_CGROUP_LAYOUT={want}: not v1, hybrid or v2"
    );
    Some(want)
}

/// The longest any one command, wait or read of a test may take before the test fails
/// saying what hung: generous, since the pure-v2 VM is emulated (15-40x slower).
pub const BOUND: std::time::Duration = std::time::Duration::from_secs(600);

/// `Command::output`/`status` and `Child::wait`, bounded by `BOUND`: a hang fails the
/// test with the command's name instead of running into CI's time limit.
pub trait BoundedCommand {
    /// Like `output()` (stdin is /dev/null, stdout and stderr captured).
    fn bounded_output(&mut self) -> std::io::Result<std::process::Output>;
    /// Like `status()`.
    fn bounded_status(&mut self) -> std::io::Result<std::process::ExitStatus>;
}

impl BoundedCommand for std::process::Command {
    fn bounded_output(&mut self) -> std::io::Result<std::process::Output> {
        use std::process::Stdio;
        let mut child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let deadline = std::time::Instant::now() + BOUND;
        let stdout = read_to_end(child.stdout.take().expect("piped"));
        let stderr = read_to_end(child.stderr.take().expect("piped"));
        let status = wait_until(&mut child, deadline, &format!("{self:?}"))?;
        let collect = |r: std::sync::mpsc::Receiver<Vec<u8>>| {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            r.recv_timeout(left).unwrap_or_else(|_| {
                panic!("{self:?}: its output stayed open (a process left behind?)")
            })
        };
        Ok(std::process::Output {
            status,
            stdout: collect(stdout),
            stderr: collect(stderr),
        })
    }

    fn bounded_status(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let mut child = self.spawn()?;
        wait_until(
            &mut child,
            std::time::Instant::now() + BOUND,
            &format!("{self:?}"),
        )
    }
}

/// `Child::wait` and `wait_with_output`, bounded by `BOUND`.
pub trait BoundedChild {
    fn bounded_wait(&mut self) -> std::io::Result<std::process::ExitStatus>;
    fn bounded_wait_with_output(self) -> std::io::Result<std::process::Output>;
}

impl BoundedChild for std::process::Child {
    fn bounded_wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let what = format!("child {}", self.id());
        wait_until(self, std::time::Instant::now() + BOUND, &what)
    }

    fn bounded_wait_with_output(mut self) -> std::io::Result<std::process::Output> {
        let deadline = std::time::Instant::now() + BOUND;
        let stdout = self.stdout.take().map(read_to_end);
        let stderr = self.stderr.take().map(read_to_end);
        drop(self.stdin.take());
        let what = format!("child {}", self.id());
        let status = wait_until(&mut self, deadline, &what)?;
        let collect = |r: Option<std::sync::mpsc::Receiver<Vec<u8>>>| {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            r.map(|r| {
                r.recv_timeout(left)
                    .unwrap_or_else(|_| panic!("{what}: its output stayed open"))
            })
            .unwrap_or_default()
        };
        Ok(std::process::Output {
            status,
            stdout: collect(stdout),
            stderr: collect(stderr),
        })
    }
}

/// Reads a pipe to its end on a thread; the bytes arrive on the channel (wait for them
/// with `recv_timeout`).
pub fn read_to_end(
    mut pipe: impl std::io::Read + Send + 'static,
) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = send.send(bytes);
    });
    receive
}

/// Polls the child until it exits; kills it and fails the test at the deadline.
fn wait_until(
    child: &mut std::process::Child,
    deadline: std::time::Instant,
    what: &str,
) -> std::io::Result<std::process::ExitStatus> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {BOUND:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The lines of a child's pipe, read on a thread, each wait bounded by `BOUND`.
pub struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    pub fn new(pipe: impl std::io::Read + Send + 'static) -> Lines {
        use std::io::BufRead;
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(receive)
    }

    /// A line if one comes soon (within 200 ms).
    pub fn try_next(&self) -> Option<String> {
        self.0
            .recv_timeout(std::time::Duration::from_millis(200))
            .ok()
    }

    /// The next line; `None` at the end of the output; fails the test after `BOUND`.
    pub fn next_line(&self) -> Option<String> {
        match self.0.recv_timeout(BOUND) {
            Ok(line) => Some(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("no output line within {BOUND:?}")
            }
        }
    }
}
