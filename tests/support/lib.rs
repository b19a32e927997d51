//! Shared helpers for the integration tests.

use std::path::PathBuf;

/// Directory that holds the workspace's built binaries (`init`, `supervisor`):
/// the test executable lives in `<dir>/deps/`. `cargo build --workspace` puts
/// them there; `TEST_BIN_DIR` overrides.
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

/// Path of one of the workspace's binaries; panics with the command that builds it.
pub fn bin(name: &str) -> PathBuf {
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
    let path = bin_dir().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --examples` first",
        path.display()
    );
    path
}
