//! The crate's only unsafe code: the bpf(2) calls that load a device program
//! and attach it to a cgroup (no wrapper exists in nix or libc).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// One eBPF instruction, as `struct bpf_insn`: opcode, dst (low 4 bits) and
/// src (high 4 bits) registers, offset, immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The BPF_PROG_LOAD part of `union bpf_attr` (fields up to expected_attach_type).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The BPF_PROG_ATTACH part of `union bpf_attr`.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// Size of the verifier's log asked for when a load fails.
const LOG_SIZE: usize = 16 * 1024;

/// Loads `code` as a BPF_PROG_TYPE_CGROUP_DEVICE program. On failure, the
/// errno and the verifier's log (from a second load that asks for it).
pub(crate) fn load_device_program(code: &[Insn]) -> Result<OwnedFd, (Errno, String)> {
    let insn_cnt = u32::try_from(code.len()).map_err(|_| (Errno::E2BIG, String::new()))?;
    let license = c"GPL";
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"svc_devices");
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..ProgLoadAttr::default()
    };
    let errno = match prog_load(&attr) {
        Ok(fd) => return Ok(fd),
        Err(errno) => errno,
    };
    let mut log = vec![0u8; LOG_SIZE];
    let with_log = ProgLoadAttr {
        log_level: 1,
        log_size: LOG_SIZE as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..attr
    };
    // Only for the message: whatever this second try returns, the first one failed.
    if let Ok(fd) = prog_load(&with_log) {
        drop(fd);
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    Err((errno, String::from_utf8_lossy(&log[..end]).into_owned()))
}

fn prog_load(attr: &ProgLoadAttr) -> Result<OwnedFd, Errno> {
    // SAFETY: `attr` is a valid, fully initialised bpf_attr prefix of the size
    // passed; the instruction, license and log pointers in it point into buffers
    // the caller keeps alive (and, for the log, writable) for the whole call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    let fd = Errno::result(fd)? as libc::c_int;
    // SAFETY: BPF_PROG_LOAD just returned this descriptor (close-on-exec, as
    // every bpf fd) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attaches the device program `prog` to the cgroup directory `group`, next to
/// any program already there (BPF_F_ALLOW_MULTI).
pub(crate) fn attach_device_program(group: BorrowedFd<'_>, prog: &OwnedFd) -> Result<(), Errno> {
    let attr = ProgAttachAttr {
        target_fd: group.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attr` is a valid, fully initialised bpf_attr prefix of the size
    // passed; both descriptors in it are open for the duration of the call.
    let res = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    Errno::result(res).map(drop)
}
