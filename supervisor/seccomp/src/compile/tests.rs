//! The compiled programs run in a small BPF interpreter on made-up calls.

use super::*;
use crate::bpf::{ALU_AND_K, JA, LD_W_ABS, RET_K};
use crate::docker_default;

const ALLOW: u32 = 0x7fff_0000;
const EPERM_RET: u32 = 0x0005_0001;

/// Runs `program` on a call of `nr` with `args`, from `arch`.
fn run(program: &Program, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::new();
    data.extend(nr.to_le_bytes());
    data.extend(arch.to_le_bytes());
    data.extend(0u64.to_le_bytes());
    for arg in args {
        data.extend(arg.to_le_bytes());
    }
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let i = program.0[pc];
        pc += 1;
        match i.code {
            LD_W_ABS => {
                let at = i.k as usize;
                acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
            }
            ALU_AND_K => acc &= i.k,
            JA => pc += i.k as usize,
            JEQ_K | JGT_K | JGE_K => {
                let taken = match i.code {
                    JEQ_K => acc == i.k,
                    JGT_K => acc > i.k,
                    _ => acc >= i.k,
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            RET_K => return i.k,
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

fn nr(name: &str) -> u32 {
    arch::syscall_number(name).unwrap()
}

fn call(program: &Program, name: &str, args: [u64; 6]) -> u32 {
    run(program, arch::AUDIT_ARCH, nr(name), args)
}

fn default_with(caps: &[&str]) -> Program {
    let has = |c: &str| caps.contains(&c);
    let context = Context {
        has_capability: &has,
        kernel: Some((6, 18)),
    };
    compile(&docker_default(), &context).unwrap()
}

#[test]
fn the_default_allows_ordinary_calls_and_refuses_the_dangerous_ones() {
    let program = default_with(&["CAP_CHOWN", "CAP_SYS_CHROOT"]);
    for name in [
        "read", "write", "openat", "execve", "chown", "chroot", "mkdir", "ptrace",
    ] {
        assert_eq!(call(&program, name, [0; 6]), ALLOW, "{name}");
    }
    for name in [
        "mount",
        "umount2",
        "pivot_root",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "open_tree",
        "mount_setattr",
        "unshare",
        "setns",
        "open_by_handle_at",
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "perf_event_open",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "syslog",
        "iopl",
        "ioperm",
        "userfaultfd",
        "acct",
        "swapon",
        "swapoff",
        "reboot",
        "settimeofday",
        "clock_settime",
        "quotactl",
        "lookup_dcookie",
        "io_uring_setup",
    ] {
        assert_eq!(call(&program, name, [0; 6]), EPERM_RET, "{name}");
    }
    // A number no table knows yet.
    assert_eq!(run(&program, arch::AUDIT_ARCH, 1000, [0; 6]), EPERM_RET);
}

#[test]
fn clone_with_namespace_flags_is_refused_and_clone3_looks_missing() {
    let program = default_with(&[]);
    let sigchld = 17;
    assert_eq!(call(&program, "clone", [sigchld, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&program, "clone", [0x0001_0f00, 0, 0, 0, 0, 0]), ALLOW);
    for flag in [
        0x2_0000u64,
        0x0200_0000,
        0x0400_0000,
        0x0800_0000,
        0x1000_0000,
        0x2000_0000,
        0x4000_0000,
    ] {
        assert_eq!(
            call(&program, "clone", [flag | sigchld, 0, 0, 0, 0, 0]),
            EPERM_RET
        );
    }
    assert_eq!(call(&program, "clone3", [0; 6]), 0x0005_0000 | 38);
    let admin = default_with(&["CAP_SYS_ADMIN"]);
    assert_eq!(call(&admin, "clone", [0x4000_0000, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&admin, "clone3", [0; 6]), ALLOW);
    assert_eq!(call(&admin, "mount", [0; 6]), ALLOW);
}

#[test]
fn personality_and_socket_are_checked_by_argument() {
    let program = default_with(&[]);
    for value in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(call(&program, "personality", [value, 0, 0, 0, 0, 0]), ALLOW);
    }
    // READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE
    for value in [0x0400_0000, 0x0004_0000, 0x1_0000_0000] {
        assert_eq!(
            call(&program, "personality", [value, 0, 0, 0, 0, 0]),
            EPERM_RET
        );
    }
    assert_eq!(call(&program, "socket", [2, 1, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&program, "socket", [40, 1, 0, 0, 0, 0]), EPERM_RET);
}

#[test]
fn capabilities_open_what_docker_opens() {
    let time = default_with(&["CAP_SYS_TIME"]);
    assert_eq!(call(&time, "clock_settime", [0; 6]), ALLOW);
    let module = default_with(&["CAP_SYS_MODULE"]);
    assert_eq!(call(&module, "finit_module", [0; 6]), ALLOW);
    assert_eq!(call(&module, "keyctl", [0; 6]), EPERM_RET);
}

#[test]
#[cfg(target_arch = "x86_64")]
fn other_abis_are_refused() {
    let program = default_with(&[]);
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    assert_eq!(run(&program, AUDIT_ARCH_I386, 20, [0; 6]), EPERM_RET);
    let x32_getpid = 0x4000_0000 | nr("getpid");
    assert_eq!(
        run(&program, arch::AUDIT_ARCH, x32_getpid, [0; 6]),
        EPERM_RET
    );
    assert_eq!(call(&program, "arch_prctl", [0; 6]), ALLOW);
}

#[test]
fn every_comparison_of_64_bit_arguments() {
    let value = 0x0000_0001_0000_0005u64;
    let rule = |op, value_two| Rule {
        names: vec!["mkdir".to_owned()],
        action: Action::Errno(13),
        args: vec![ArgCmp {
            index: 1,
            op,
            value,
            value_two,
        }],
        includes: RuleFilter::default(),
        excludes: RuleFilter::default(),
    };
    /// (operator, valueTwo, [(argument, whether the rule matches)])
    type Case<'a> = (CmpOp, u64, &'a [(u64, bool)]);
    let cases: &[Case] = &[
        (
            CmpOp::Eq,
            0,
            &[(value, true), (5, false), (value + 1, false)],
        ),
        (CmpOp::Ne, 0, &[(value, false), (5, true), (1 << 32, true)]),
        (
            CmpOp::Gt,
            0,
            &[
                (value, false),
                (value + 1, true),
                (2 << 32, true),
                (6, false),
            ],
        ),
        (
            CmpOp::Ge,
            0,
            &[(value, true), (value - 1, false), (u64::MAX, true)],
        ),
        (
            CmpOp::Lt,
            0,
            &[
                (value, false),
                (value - 1, true),
                (6, true),
                (2 << 32, false),
            ],
        ),
        (
            CmpOp::Le,
            0,
            &[(value, true), (value + 1, false), (0, true)],
        ),
        (
            CmpOp::MaskedEq,
            4,
            &[
                (4, true),
                (0x1_0000_0004, false),
                (1, false),
                (0xffff_0000_0000_0004, true),
            ],
        ),
    ];
    for (op, value_two, probes) in cases {
        let profile = Profile {
            default_action: Action::Allow,
            rules: vec![rule(*op, *value_two)],
        };
        let no_caps = |_: &str| false;
        let context = Context {
            has_capability: &no_caps,
            kernel: None,
        };
        let program = compile(&profile, &context).unwrap();
        for (arg, matches) in probes.iter() {
            let expected = if *matches { 0x0005_000d } else { ALLOW };
            let got = call(&program, "mkdir", [0, *arg, 0, 0, 0, 0]);
            assert_eq!(got, expected, "{op:?} {arg:#x}");
        }
    }
}

#[test]
fn rules_apply_by_capability_architecture_and_kernel() {
    let json = br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2, "excludes": {"caps": ["CAP_X"]}},
        {"names": ["rmdir"], "action": "SCMP_ACT_KILL_PROCESS", "includes": {"arches": ["s390x"]}},
        {"names": ["chdir"], "action": "SCMP_ACT_TRAP", "includes": {"minKernel": "9.0"}},
        {"names": ["no_such_call"], "action": "SCMP_ACT_KILL"}
    ]}"#;
    let profile = Profile::from_json(json).unwrap();
    let compile_with = |cap: bool| {
        let has = move |c: &str| cap && c == "CAP_X";
        let context = Context {
            has_capability: &has,
            kernel: Some((6, 18)),
        };
        compile(&profile, &context).unwrap()
    };
    let without = compile_with(false);
    assert_eq!(call(&without, "mkdir", [0; 6]), 0x0005_0002);
    assert_eq!(call(&without, "rmdir", [0; 6]), ALLOW);
    assert_eq!(call(&without, "chdir", [0; 6]), ALLOW);
    assert_eq!(call(&compile_with(true), "mkdir", [0; 6]), ALLOW);
}

#[test]
fn the_default_program_is_small() {
    let program = default_with(&["CAP_CHOWN"]);
    assert!(program.0.len() < 600, "{} instructions", program.0.len());
}
