//! The native architecture: its audit number, the names profiles use for it,
//! and the system call numbers (from the `syscalls` crate's tables).

use std::str::FromStr;

#[cfg(target_arch = "x86_64")]
mod native {
    /// `AUDIT_ARCH_X86_64`: what `seccomp_data.arch` holds for a 64-bit call.
    pub const AUDIT_ARCH: u32 = 0xC000_003E;
    /// x32 system calls come in as x86_64 ones with this bit set in the number.
    pub const SYSCALL_BIT: Option<u32> = Some(0x4000_0000);
    /// How profiles name this architecture (`architectures`, `includes.arches`).
    pub const NAMES: &[&str] = &["SCMP_ARCH_X86_64", "amd64", "x86_64"];
}

#[cfg(target_arch = "aarch64")]
mod native {
    /// `AUDIT_ARCH_AARCH64`.
    pub const AUDIT_ARCH: u32 = 0xC000_00B7;
    pub const SYSCALL_BIT: Option<u32> = None;
    pub const NAMES: &[&str] = &["SCMP_ARCH_AARCH64", "arm64", "aarch64"];
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("seccomp filters are built for x86_64 and aarch64 only");

pub use native::{AUDIT_ARCH, NAMES, SYSCALL_BIT};

/// The native number of system call `name`; None where this architecture has
/// no such call (profiles list calls of every architecture; those are skipped).
pub fn syscall_number(name: &str) -> Option<u32> {
    syscalls::Sysno::from_str(name)
        .ok()
        .map(|sysno| sysno.id() as u32)
}

/// One past the highest system call number the tables know.
pub fn syscall_limit() -> u32 {
    syscalls::Sysno::last().id() as u32 + 1
}

/// Whether `name` (as written in a profile) names the native architecture.
pub fn is_native(name: &str) -> bool {
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}
