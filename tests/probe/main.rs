//! `escape-probe`: makes one system call that busybox cannot make, and prints
//! `ok VALUE` or `err ERRNO` (exit 0 or 1). A static binary, copied into the
//! escape tests' root filesystems.
//!
//! Subcommands: `handle PATH` (prints a file handle as hex), `open-by-handle
//! MOUNT HEX` (prints the file's first line), `keyctl`, `clock-settime`,
//! `unshare FLAGS`, `clone FLAGS`, `clone3`, `x32-getpid`, `i386-getpid`,
//! `personality VALUE`, `bpf`, `finit-module`, `reboot`, `setuid UID`.

mod sys;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["handle", path] => sys::file_handle(path).map(|h| hex(&h)),
        ["open-by-handle", mount, handle] => match unhex(handle) {
            Some(handle) => sys::open_by_handle(mount, &handle),
            None => Err(22),
        },
        ["keyctl"] => sys::user_keyring().map(|id| id.to_string()),
        ["clock-settime"] => sys::clock_settime_now().map(|()| String::new()),
        ["unshare", flags] => number(flags).and_then(sys::unshare).map(|()| String::new()),
        ["clone", flags] => number(flags).and_then(sys::clone).map(|()| String::new()),
        ["clone3"] => sys::clone3().map(|()| String::new()),
        ["x32-getpid"] => sys::x32_getpid().map(|pid| pid.to_string()),
        ["i386-getpid"] => sys::i386_getpid().map(|pid| pid.to_string()),
        ["personality", value] => number(value)
            .and_then(sys::personality)
            .map(|old| format!("{old:#x}")),
        ["bpf"] => sys::bpf_map_create().map(|fd| fd.to_string()),
        ["finit-module"] => sys::finit_module_dev_null().map(|()| String::new()),
        ["reboot"] => sys::reboot_bad_magic().map(|()| String::new()),
        ["setuid", uid] => number(uid)
            .and_then(|uid| sys::become_user(uid as u32))
            .map(|uid| uid.to_string()),
        _ => {
            eprintln!("escape-probe: unknown arguments {args:?}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(value) => {
            println!("ok {value}");
            ExitCode::SUCCESS
        }
        Err(errno) => {
            println!("err {errno}");
            ExitCode::FAILURE
        }
    }
}

/// Decimal or 0x-prefixed hex.
fn number(text: &str) -> Result<u64, i32> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| 22)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
