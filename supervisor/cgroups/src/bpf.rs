//! The cgroup v2 device policy: a BPF_CGROUP_DEVICE program, assembled here
//! from the rules (as runc and crun do), loaded and attached to the group.
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }` with `access_type = access << 16 | type`, and returns 1 to
//! allow, 0 to deny (the syscall then fails with EPERM).

use std::os::fd::BorrowedFd;
use std::path::Path;

use crate::devices::{DeviceKind, DeviceRule};
use crate::sys::{self, Insn};
use crate::Error;

// Registers: r1 holds the context on entry, r0 the result.
const R0: u8 = 0;
const R1: u8 = 1;
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;

// Opcodes (class | operation | source).
const LDX_MEM_W: u8 = 0x61;
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;

// BPF_DEVCG_DEV_*: the device type in the low half of access_type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// The program: unpack the context, then one block per rule that jumps to the
/// next block on the first mismatch and returns 1 at its end; 0 after the last.
pub(crate) fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut code = vec![
        insn(LDX_MEM_W, TYPE, R1, 0, 0),
        insn(ALU64_AND_K, TYPE, 0, 0, 0xffff),
        insn(LDX_MEM_W, ACCESS, R1, 0, 0),
        insn(ALU64_RSH_K, ACCESS, 0, 0, 16),
        insn(LDX_MEM_W, MAJOR, R1, 4, 0),
        insn(LDX_MEM_W, MINOR, R1, 8, 0),
    ];
    for rule in rules {
        code.extend(rule_block(rule));
    }
    code.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    code.push(insn(JMP_EXIT, 0, 0, 0, 0));
    code
}

/// Tests the request against `rule`; each test jumps past the block's end on a mismatch.
fn rule_block(rule: &DeviceRule) -> Vec<Insn> {
    // Each test is a few instructions ending with the jump on a mismatch.
    let mut tests: Vec<Vec<Insn>> = Vec::new();
    match rule.kind {
        DeviceKind::Char => tests.push(vec![insn(JMP_JNE_K, TYPE, 0, 0, DEV_CHAR)]),
        DeviceKind::Block => tests.push(vec![insn(JMP_JNE_K, TYPE, 0, 0, DEV_BLOCK)]),
        DeviceKind::All => {}
    }
    let denied = i32::from(!rule.access.bits() & 0b111);
    if denied != 0 {
        // Every bit asked for must be allowed: (access & denied) == 0.
        tests.push(vec![
            insn(ALU64_MOV_X, R1, ACCESS, 0, 0),
            insn(ALU64_AND_K, R1, 0, 0, denied),
            insn(JMP_JNE_K, R1, 0, 0, 0),
        ]);
    }
    if let Some(major) = rule.major {
        tests.push(vec![insn(JMP_JNE_K, MAJOR, 0, 0, major as i32)]);
    }
    if let Some(minor) = rule.minor {
        tests.push(vec![insn(JMP_JNE_K, MINOR, 0, 0, minor as i32)]);
    }
    let allow = [insn(ALU64_MOV_K, R0, 0, 0, 1), insn(JMP_EXIT, 0, 0, 0, 0)];
    let total: usize = tests.iter().map(Vec::len).sum::<usize>() + allow.len();
    let mut block = Vec::with_capacity(total);
    for test in tests {
        block.extend(test);
        // A jump's offset counts from the next instruction: to the first one after the block.
        let skip = (total - block.len()) as i16;
        let jump = block.last_mut().expect("every test ends with a jump");
        jump.off = skip;
    }
    block.extend(allow);
    block
}

/// Loads the program for `rules` and attaches it to the group whose directory is
/// `dir` (shown as `path`), replacing any device program already there (a group
/// left over from an earlier run), as runc does: the new one is attached first,
/// then the old ones detached, so the group is never without a policy. With
/// BPF_F_ALLOW_MULTI, as runc and systemd attach: the programs of the parent
/// groups still run, and the attachment keeps the program alive after our
/// descriptor is closed, for as long as the group exists.
pub(crate) fn attach_device_filter(
    dir: BorrowedFd<'_>,
    path: &Path,
    rules: &[DeviceRule],
) -> Result<(), Error> {
    let old = sys::device_programs(dir)
        .map_err(|errno| Error::io("query the device programs of", path, errno.into()))?;
    let code = program(rules);
    let prog = sys::load_device_program(&code).map_err(|(errno, log)| {
        let log = log.trim();
        let detail = if log.is_empty() {
            String::new()
        } else {
            format!(" (verifier: {log})")
        };
        Error::Unsupported(format!(
            "device policy: load the BPF_CGROUP_DEVICE program: {}{detail}",
            errno.desc()
        ))
    })?;
    sys::attach_device_program(dir, &prog)
        .map_err(|errno| Error::io("attach the device program to", path, errno.into()))?;
    for old in &old {
        sys::detach_device_program(dir, old)
            .map_err(|errno| Error::io("detach an old device program from", path, errno.into()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::DeviceAccess;

    /// Runs the program the way the kernel would, for a request.
    fn run(code: &[Insn], kind: i32, access: u8, major: u32, minor: u32) -> u64 {
        let ctx = [(u32::from(access) << 16) | kind as u32, major, minor];
        let mut regs = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = code[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1);
                    regs[dst] = u64::from(ctx[i.off as usize / 4]);
                }
                ALU64_AND_K => regs[dst] &= i.imm as i64 as u64,
                ALU64_RSH_K => regs[dst] >>= i.imm,
                ALU64_MOV_K => regs[dst] = i.imm as i64 as u64,
                ALU64_MOV_X => regs[dst] = regs[src],
                JMP_JNE_K => {
                    if regs[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                JMP_EXIT => return regs[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn program_allows_exactly_the_rules() {
        let rules = [
            DeviceRule::char(1, Some(3), DeviceAccess::ALL),
            DeviceRule::char(136, None, DeviceAccess::ALL),
            DeviceRule::char(4, Some(64), DeviceAccess::READ),
            DeviceRule {
                kind: DeviceKind::Block,
                major: None,
                minor: None,
                access: DeviceAccess::MKNOD,
            },
        ];
        let code = program(&rules);
        let (r, w, m) = (2u8, 4u8, 1u8);
        assert_eq!(run(&code, DEV_CHAR, r | w, 1, 3), 1);
        assert_eq!(run(&code, DEV_CHAR, m, 1, 3), 1);
        assert_eq!(run(&code, DEV_CHAR, r, 1, 11), 0, "kmsg");
        assert_eq!(run(&code, DEV_BLOCK, r, 1, 3), 0, "a block device 1:3");
        assert_eq!(run(&code, DEV_CHAR, r, 136, 7), 1, "any pts");
        assert_eq!(run(&code, DEV_CHAR, r, 4, 64), 1);
        assert_eq!(run(&code, DEV_CHAR, w, 4, 64), 0, "read-only rule");
        assert_eq!(run(&code, DEV_CHAR, r | w, 4, 64), 0);
        assert_eq!(
            run(&code, DEV_BLOCK, m, 8, 0),
            1,
            "mknod of any block device"
        );
        assert_eq!(run(&code, DEV_BLOCK, r, 8, 0), 0, "but not reading it");
        assert_eq!(
            run(&program(&[]), DEV_CHAR, r, 1, 3),
            0,
            "no rules: all denied"
        );
    }
}
