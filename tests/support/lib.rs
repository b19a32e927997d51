//! Shared helpers for the integration tests.

use std::path::PathBuf;

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
        panic!("building the binaries the tests run: {e}; run `cargo build --workspace --examples`");
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
/// runs `images::setup_rootfs`); panics with the command that builds it.
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
