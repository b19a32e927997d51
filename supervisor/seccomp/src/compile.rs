//! Compiles a profile into a BPF program for the native architecture and a
//! service's capabilities:
//!
//! 1. a call of another ABI (i386 or arm32 compat, x32) fails with EPERM,
//!    whatever the profile says: the rules name native system calls only;
//! 2. a balanced binary search on the system call number (ranges of numbers
//!    with the same outcome merged) reaches either a return of the action, or
//!    3. the call's argument checks, rule by rule, then its fallback.
//!
//! A call's rules with argument checks are tried first, in the profile's
//! order; its first rule without checks (else the default action) decides when
//! none matches.

use crate::arch;
use crate::bpf::{Assembler, Program, Target, JEQ_K, JGE_K, JGT_K, MAX_INSTRUCTIONS};
use crate::profile::{Action, ArgCmp, CmpOp, Profile, Rule, RuleFilter, EPERM};

/// What a rule's `includes` and `excludes` are checked against.
pub struct Context<'a> {
    /// Whether the service has the capability named (as `CAP_SYS_ADMIN`).
    pub has_capability: &'a dyn Fn(&str) -> bool,
    /// `(major, minor)` of the running kernel; None: every `minKernel` holds.
    pub kernel: Option<(u32, u32)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompileError {
    #[error("the filter would have {0} instructions, more than the kernel's {MAX_INSTRUCTIONS}")]
    TooLong(usize),
}

/// Offset of `seccomp_data.nr`, `.arch` and `.args[0]`.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARGS: u32 = 16;

/// How the binary search ends for one range of numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Leaf {
    Return(Action),
    /// Argument checks: block number in `Compiler::blocks`.
    Checks(usize),
}

/// The argument checks of one system call.
struct Block {
    conditional: Vec<(Vec<ArgCmp>, Action)>,
    fallback: Action,
}

pub fn compile(profile: &Profile, context: &Context) -> Result<Program, CompileError> {
    let rules: Vec<&Rule> = profile
        .rules
        .iter()
        .filter(|rule| applies(rule, context))
        .collect();
    let limit = arch::syscall_limit();
    let mut per_call: Vec<Vec<&Rule>> = vec![Vec::new(); limit as usize];
    for rule in &rules {
        for name in &rule.names {
            if let Some(nr) = arch::syscall_number(name) {
                per_call[nr as usize].push(rule);
            }
        }
    }
    let mut blocks = Vec::new();
    let mut ranges: Vec<(u32, Leaf)> = Vec::new();
    for (nr, rules) in per_call.iter().enumerate() {
        let fallback = rules
            .iter()
            .find(|r| r.args.is_empty())
            .map_or(profile.default_action, |r| r.action);
        let conditional: Vec<(Vec<ArgCmp>, Action)> = rules
            .iter()
            .filter(|r| !r.args.is_empty())
            .map(|r| (r.args.clone(), r.action))
            .collect();
        let leaf = if conditional.is_empty() {
            Leaf::Return(fallback)
        } else {
            blocks.push(Block {
                conditional,
                fallback,
            });
            Leaf::Checks(blocks.len() - 1)
        };
        if ranges.last().map(|(_, l)| l) != Some(&leaf) {
            ranges.push((nr as u32, leaf));
        }
    }
    let beyond = Leaf::Return(profile.default_action);
    if ranges.last().map(|(_, l)| l) != Some(&beyond) {
        ranges.push((limit, beyond));
    }

    let mut asm = Assembler::default();
    let foreign = asm.label();
    let block_labels: Vec<usize> = blocks.iter().map(|_| asm.label()).collect();
    asm.load(ARCH);
    asm.jump(
        JEQ_K,
        arch::AUDIT_ARCH,
        Target::Next,
        Target::Label(foreign),
    );
    asm.load(NR);
    if let Some(bit) = arch::SYSCALL_BIT {
        asm.jump(JGE_K, bit, Target::Label(foreign), Target::Next);
    }
    search(&mut asm, &ranges, &block_labels);
    for (block, label) in blocks.iter().zip(&block_labels) {
        asm.place(*label);
        checks(&mut asm, block);
    }
    asm.place(foreign);
    asm.ret(return_value(Action::Errno(EPERM)));
    let program = asm.finish();
    if program.0.len() > MAX_INSTRUCTIONS {
        return Err(CompileError::TooLong(program.0.len()));
    }
    Ok(program)
}

/// Docker's semantics: every capability of `includes` held, none of
/// `excludes`; the native architecture among `includes.arches` (if any) and not
/// among `excludes.arches`; the kernel at least `includes.minKernel`.
pub(crate) fn applies(rule: &Rule, context: &Context) -> bool {
    let RuleFilter {
        caps,
        arches,
        min_kernel,
    } = &rule.includes;
    let included = caps.iter().all(|c| (context.has_capability)(c))
        && (arches.is_empty() || arches.iter().any(|a| arch::is_native(a)))
        && match (min_kernel, context.kernel) {
            (Some(min), Some(kernel)) => kernel >= *min,
            _ => true,
        };
    let excluded = rule
        .excludes
        .caps
        .iter()
        .any(|c| (context.has_capability)(c))
        || rule.excludes.arches.iter().any(|a| arch::is_native(a))
        || match (rule.excludes.min_kernel, context.kernel) {
            (Some(min), Some(kernel)) => kernel >= min,
            _ => false,
        };
    included && !excluded
}

/// Binary search over `ranges` (sorted starts; the accumulator holds the number).
fn search(asm: &mut Assembler, ranges: &[(u32, Leaf)], block_labels: &[usize]) {
    if let [(_, leaf)] = ranges {
        match leaf {
            Leaf::Return(action) => asm.ret(return_value(*action)),
            Leaf::Checks(block) => asm.goto(Target::Label(block_labels[*block])),
        }
        return;
    }
    let mid = ranges.len() / 2;
    let upper = asm.label();
    asm.jump(JGE_K, ranges[mid].0, Target::Label(upper), Target::Next);
    search(asm, &ranges[..mid], block_labels);
    asm.place(upper);
    search(asm, &ranges[mid..], block_labels);
}

fn checks(asm: &mut Assembler, block: &Block) {
    for (args, action) in &block.conditional {
        let next = asm.label();
        for cmp in args {
            compare(asm, cmp, Target::Label(next));
        }
        asm.ret(return_value(*action));
        asm.place(next);
    }
    asm.ret(return_value(block.fallback));
}

/// Falls through when the 64-bit argument satisfies `cmp`, else jumps to
/// `fail`. Arguments are little-endian: the low word first.
fn compare(asm: &mut Assembler, cmp: &ArgCmp, fail: Target) {
    let low = ARGS + 8 * cmp.index as u32;
    let high = low + 4;
    let split = |v: u64| ((v >> 32) as u32, v as u32);
    let (v_high, v_low) = split(cmp.value);
    let pass = asm.label();
    match cmp.op {
        CmpOp::Eq => {
            asm.load(high);
            asm.jump(JEQ_K, v_high, Target::Next, fail);
            asm.load(low);
            asm.jump(JEQ_K, v_low, Target::Next, fail);
        }
        CmpOp::Ne => {
            asm.load(high);
            asm.jump(JEQ_K, v_high, Target::Next, Target::Label(pass));
            asm.load(low);
            asm.jump(JEQ_K, v_low, fail, Target::Next);
        }
        CmpOp::MaskedEq => {
            let (d_high, d_low) = split(cmp.value_two);
            asm.load(high);
            asm.and(v_high);
            asm.jump(JEQ_K, d_high, Target::Next, fail);
            asm.load(low);
            asm.and(v_low);
            asm.jump(JEQ_K, d_low, Target::Next, fail);
        }
        CmpOp::Gt | CmpOp::Ge => {
            asm.load(high);
            asm.jump(JGT_K, v_high, Target::Label(pass), Target::Next);
            asm.jump(JEQ_K, v_high, Target::Next, fail);
            asm.load(low);
            let code = if cmp.op == CmpOp::Gt { JGT_K } else { JGE_K };
            asm.jump(code, v_low, Target::Next, fail);
        }
        CmpOp::Lt | CmpOp::Le => {
            asm.load(high);
            asm.jump(JGE_K, v_high, Target::Next, Target::Label(pass));
            asm.jump(JEQ_K, v_high, Target::Next, fail);
            asm.load(low);
            let code = if cmp.op == CmpOp::Lt { JGE_K } else { JGT_K };
            asm.jump(code, v_low, fail, Target::Next);
        }
    }
    asm.place(pass);
}

/// The filter's return value for `action` (`SECCOMP_RET_*`).
fn return_value(action: Action) -> u32 {
    match action {
        Action::KillThread => 0,
        Action::KillProcess => 0x8000_0000,
        Action::Trap => 0x0003_0000,
        Action::Errno(errno) => 0x0005_0000 | (errno & 0xffff),
        Action::Trace(data) => 0x7ff0_0000 | (data & 0xffff),
        Action::Log => 0x7ffc_0000,
        Action::Allow => 0x7fff_0000,
    }
}

#[cfg(test)]
mod tests;
