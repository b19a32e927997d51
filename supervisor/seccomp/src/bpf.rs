//! Classic BPF as seccomp runs it: the instructions, and a small assembler
//! with labels that turns far conditional jumps (over 255 instructions, the
//! limit of their 8-bit offsets) into a short jump over two long ones.

use serde::{Deserialize, Serialize};

/// The kernel refuses longer programs (`BPF_MAXINSNS`).
pub const MAX_INSTRUCTIONS: usize = 4096;

pub const LD_W_ABS: u16 = 0x20;
pub const ALU_AND_K: u16 = 0x54;
pub const JA: u16 = 0x05;
pub const JEQ_K: u16 = 0x15;
pub const JGT_K: u16 = 0x25;
pub const JGE_K: u16 = 0x35;
pub const RET_K: u16 = 0x06;

/// One `struct sock_filter`. Serialized as `[code, jt, jf, k]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(u16, u8, u8, u32)", into = "(u16, u8, u8, u32)")]
pub struct Instruction {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl From<(u16, u8, u8, u32)> for Instruction {
    fn from((code, jt, jf, k): (u16, u8, u8, u32)) -> Self {
        Instruction { code, jt, jf, k }
    }
}

impl From<Instruction> for (u16, u8, u8, u32) {
    fn from(i: Instruction) -> Self {
        (i.code, i.jt, i.jf, i.k)
    }
}

/// A compiled filter, ready for `SECCOMP_SET_MODE_FILTER`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Program(pub Vec<Instruction>);

/// Where a jump goes: the next instruction, or a label placed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Next,
    Label(usize),
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Plain(Instruction),
    /// A conditional jump: `code` compares the accumulator with `k`.
    Jump {
        code: u16,
        k: u32,
        yes: Target,
        no: Target,
    },
    Always(Target),
    Label(usize),
}

/// Instructions with symbolic forward jumps, resolved by `finish`.
#[derive(Debug, Default)]
pub struct Assembler {
    items: Vec<Item>,
    labels: usize,
}

impl Assembler {
    pub fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }

    pub fn place(&mut self, label: usize) {
        self.items.push(Item::Label(label));
    }

    pub fn load(&mut self, offset: u32) {
        self.plain(LD_W_ABS, offset);
    }

    pub fn and(&mut self, mask: u32) {
        self.plain(ALU_AND_K, mask);
    }

    pub fn ret(&mut self, value: u32) {
        self.plain(RET_K, value);
    }

    pub fn jump(&mut self, code: u16, k: u32, yes: Target, no: Target) {
        self.items.push(Item::Jump { code, k, yes, no });
    }

    pub fn goto(&mut self, target: Target) {
        if target != Target::Next {
            self.items.push(Item::Always(target));
        }
    }

    fn plain(&mut self, code: u16, k: u32) {
        self.items.push(Item::Plain(Instruction {
            code,
            jt: 0,
            jf: 0,
            k,
        }));
    }

    /// Resolves every label. Jumps only go forward; a conditional jump whose
    /// target is too far becomes `jxx k, 0, 1; ja yes; ja no`.
    pub fn finish(self) -> Program {
        let mut long = vec![false; self.items.len()];
        loop {
            let (positions, labels) = self.layout(&long);
            let mut changed = false;
            for (i, item) in self.items.iter().enumerate() {
                if let Item::Jump { yes, no, .. } = item {
                    let from = positions[i] + 1;
                    let far = [yes, no].iter().any(|t| distance(from, **t, &labels) > 255);
                    if far && !long[i] {
                        long[i] = true;
                        changed = true;
                    }
                }
            }
            if !changed {
                return self.emit(&long, &positions, &labels);
            }
        }
    }

    /// The position of each item and of each label.
    fn layout(&self, long: &[bool]) -> (Vec<usize>, Vec<usize>) {
        let mut positions = Vec::with_capacity(self.items.len());
        let mut labels = vec![usize::MAX; self.labels];
        let mut at = 0;
        for (i, item) in self.items.iter().enumerate() {
            positions.push(at);
            at += match item {
                Item::Label(label) => {
                    labels[*label] = at;
                    0
                }
                Item::Jump { .. } if long[i] => 3,
                _ => 1,
            };
        }
        (positions, labels)
    }

    fn emit(&self, long: &[bool], positions: &[usize], labels: &[usize]) -> Program {
        let mut out = Vec::new();
        for (i, item) in self.items.iter().enumerate() {
            let from = positions[i] + 1;
            match *item {
                Item::Plain(instruction) => out.push(instruction),
                Item::Label(_) => {}
                Item::Always(target) => out.push(Instruction {
                    code: JA,
                    jt: 0,
                    jf: 0,
                    k: distance(from, target, labels) as u32,
                }),
                Item::Jump { code, k, yes, no } if long[i] => {
                    out.push(Instruction {
                        code,
                        jt: 0,
                        jf: 1,
                        k,
                    });
                    for (n, target) in [yes, no].into_iter().enumerate() {
                        out.push(Instruction {
                            code: JA,
                            jt: 0,
                            jf: 0,
                            k: distance(from + n + 1, target, labels) as u32,
                        });
                    }
                }
                Item::Jump { code, k, yes, no } => out.push(Instruction {
                    code,
                    jt: distance(from, yes, labels) as u8,
                    jf: distance(from, no, labels) as u8,
                    k,
                }),
            }
        }
        Program(out)
    }
}

/// How many instructions a jump from before `from` skips to reach `target`.
fn distance(from: usize, target: Target, labels: &[usize]) -> usize {
    match target {
        Target::Next => 0,
        Target::Label(label) => {
            let to = labels[label];
            assert!(to >= from, "seccomp BPF jumps only go forward");
            to - from
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_jumps_use_the_offsets_of_the_instruction() {
        let mut asm = Assembler::default();
        let end = asm.label();
        asm.jump(JEQ_K, 7, Target::Label(end), Target::Next);
        asm.ret(1);
        asm.place(end);
        asm.ret(2);
        let program = asm.finish();
        assert_eq!(
            program.0[0],
            Instruction {
                code: JEQ_K,
                jt: 1,
                jf: 0,
                k: 7
            }
        );
    }

    #[test]
    fn far_jumps_go_through_long_jumps() {
        let mut asm = Assembler::default();
        let end = asm.label();
        asm.jump(JEQ_K, 7, Target::Label(end), Target::Next);
        for _ in 0..300 {
            asm.ret(1);
        }
        asm.place(end);
        asm.ret(2);
        let program = asm.finish().0;
        assert_eq!(
            program[0],
            Instruction {
                code: JEQ_K,
                jt: 0,
                jf: 1,
                k: 7
            }
        );
        // ja end (from index 2 to 303), then ja next (index 3)
        assert_eq!((program[1].code, program[1].k), (JA, 301));
        assert_eq!((program[2].code, program[2].k), (JA, 0));
        assert_eq!(program[303].k, 2);
    }
}
