//! Seccomp filters for services, in pure Rust: a profile (Docker's default,
//! or one read from Docker's/OCI's JSON format) is compiled, for the native
//! architecture and a service's capabilities, into a classic BPF program that
//! the kernel runs on every system call.
//!
//! Nothing here installs a filter: the program travels to the container's setup
//! process, which hands it to the kernel right before it execs init.

mod arch;
mod bpf;
mod compile;
mod docker_default;
mod oci;
mod profile;

pub use bpf::{Instruction, Program, MAX_INSTRUCTIONS};
pub use compile::{compile, CompileError, Context};
pub use docker_default::docker_default;
pub use oci::to_oci;
pub use profile::{kernel_version, Action, ArgCmp, CmpOp, Profile, ProfileError, Rule, RuleFilter};
