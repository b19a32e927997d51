//! The crate's only unsafe code: the bpf(2) calls that load a device program
//! and attach it to a cgroup (no wrapper exists in nix or libc).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

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
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
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

/// The BPF_PROG_QUERY part of `union bpf_attr` (up to prog_cnt, padded).
#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// The BPF_PROG_GET_FD_BY_ID part of `union bpf_attr`.
#[repr(C)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
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
    attach_or_detach(BPF_PROG_ATTACH, group, prog.as_fd(), BPF_F_ALLOW_MULTI)
}

/// Detaches the device program `prog` from the cgroup directory `group`.
pub(crate) fn detach_device_program(group: BorrowedFd<'_>, prog: &OwnedFd) -> Result<(), Errno> {
    attach_or_detach(BPF_PROG_DETACH, group, prog.as_fd(), 0)
}

fn attach_or_detach(
    cmd: libc::c_int,
    group: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    flags: u32,
) -> Result<(), Errno> {
    let attr = ProgAttachAttr {
        target_fd: group.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attr` is a valid, fully initialised bpf_attr prefix of the size
    // passed; both descriptors in it are open for the duration of the call.
    let res = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    Errno::result(res).map(drop)
}

/// Most device programs looked for on one group.
const MAX_PROGRAMS: usize = 64;

/// The device programs attached to the cgroup directory `group` itself (not its
/// parents'), opened.
pub(crate) fn device_programs(group: BorrowedFd<'_>) -> Result<Vec<OwnedFd>, Errno> {
    let mut ids = [0u32; MAX_PROGRAMS];
    let mut attr = ProgQueryAttr {
        target_fd: group.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: MAX_PROGRAMS as u32,
        ..ProgQueryAttr::default()
    };
    // SAFETY: `attr` is a valid, fully initialised bpf_attr prefix of the size
    // passed; the kernel writes at most prog_cnt ids into `ids`, which outlives
    // the call, and writes prog_cnt (and attach_flags) back into `attr`.
    let res = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &mut attr as *mut ProgQueryAttr,
            std::mem::size_of::<ProgQueryAttr>(),
        )
    };
    Errno::result(res)?;
    let count = (attr.prog_cnt as usize).min(MAX_PROGRAMS);
    ids[..count].iter().map(|&id| program_by_id(id)).collect()
}

fn program_by_id(id: u32) -> Result<OwnedFd, Errno> {
    let attr = GetFdByIdAttr {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
    };
    // SAFETY: `attr` is a valid, fully initialised bpf_attr prefix of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_GET_FD_BY_ID,
            &attr as *const GetFdByIdAttr,
            std::mem::size_of::<GetFdByIdAttr>(),
        )
    };
    let fd = Errno::result(fd)? as libc::c_int;
    // SAFETY: BPF_PROG_GET_FD_BY_ID just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
