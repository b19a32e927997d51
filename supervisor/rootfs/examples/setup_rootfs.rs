//! Sets up a root filesystem with `rootfs::setup_rootfs`, then execs a command
//! in it. A debugging aid, and what tests/images.rs runs in new namespaces:
//!
//!     unshare --mount --pid --fork setup_rootfs SPEC.json COMMAND [ARG...]
//!
//! SPEC.json is an `rootfs::RootfsSpec` in JSON.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [spec_path, command, rest @ ..] = args.as_slice() else {
        eprintln!("usage: setup_rootfs SPEC.json COMMAND [ARG...]");
        return ExitCode::from(2);
    };
    let spec: rootfs::RootfsSpec = match std::fs::read(spec_path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_slice(&text).map_err(|e| e.to_string()))
    {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("setup_rootfs: {spec_path}: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = rootfs::setup_rootfs(&spec) {
        eprintln!("setup_rootfs: {e}");
        return ExitCode::FAILURE;
    }
    let err = Command::new(command).args(rest).exec();
    eprintln!("setup_rootfs: exec {command}: {err}");
    ExitCode::from(127)
}
