//! The device policy of a group: which device nodes its processes may create
//! (mknod) and open. Written as v1 `devices.allow` lines, or assembled into a
//! BPF_CGROUP_DEVICE program for the unified hierarchy.

use std::fmt;

use crate::Error;

/// Which kind of node a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
    /// Both (`a` in v1).
    All,
}

/// What a rule allows: a subset of read, write, mknod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAccess(u8);

impl DeviceAccess {
    // The kernel's BPF_DEVCG_ACC_* bits, which the BPF program compares directly.
    pub const MKNOD: DeviceAccess = DeviceAccess(1);
    pub const READ: DeviceAccess = DeviceAccess(2);
    pub const WRITE: DeviceAccess = DeviceAccess(4);
    pub const ALL: DeviceAccess = DeviceAccess(7);

    /// `rwm` letters, each at most once, at least one.
    pub fn parse(text: &str) -> Result<DeviceAccess, Error> {
        let mut bits = 0;
        for letter in text.chars() {
            let bit = match letter {
                'r' => Self::READ.0,
                'w' => Self::WRITE.0,
                'm' => Self::MKNOD.0,
                _ => 0,
            };
            if bit == 0 || bits & bit != 0 {
                return Err(Error::Invalid(format!(
                    "device permissions {text:?}: use each of r, w, m at most once"
                )));
            }
            bits |= bit;
        }
        if bits == 0 {
            return Err(Error::Invalid(
                "device permissions are empty: use some of r, w, m".into(),
            ));
        }
        Ok(DeviceAccess(bits))
    }

    pub fn from_flags(read: bool, write: bool, mknod: bool) -> DeviceAccess {
        let bit = |set: bool, access: DeviceAccess| if set { access.0 } else { 0 };
        DeviceAccess(bit(read, Self::READ) | bit(write, Self::WRITE) | bit(mknod, Self::MKNOD))
    }

    pub(crate) fn bits(self) -> u8 {
        self.0
    }
}

impl fmt::Display for DeviceAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, letter) in [(Self::READ, 'r'), (Self::WRITE, 'w'), (Self::MKNOD, 'm')] {
            if self.0 & bit.0 != 0 {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// One allowed device (or range: None is any major or minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: DeviceAccess,
}

impl DeviceRule {
    /// A character device `major:minor` with `access`.
    pub fn char(major: u32, minor: Option<u32>, access: DeviceAccess) -> DeviceRule {
        DeviceRule {
            kind: DeviceKind::Char,
            major: Some(major),
            minor,
            access,
        }
    }
}

/// The v1 `devices.allow` syntax: `c 1:3 rwm`, `b *:* m`, `a *:* rwm`.
impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
            DeviceKind::All => 'a',
        };
        let number = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        write!(
            f,
            "{kind} {}:{} {}",
            number(self.major),
            number(self.minor),
            self.access
        )
    }
}

/// What a group's processes may do with device nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DevicePolicy {
    /// The host's default: no policy of our own (the parent group's applies).
    #[default]
    Unrestricted,
    /// Everything not allowed by one of the rules is denied.
    Allow(Vec<DeviceRule>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_parses_and_prints_in_v1_order() {
        assert_eq!(DeviceAccess::parse("mwr").unwrap(), DeviceAccess::ALL);
        assert_eq!(DeviceAccess::parse("rwm").unwrap().to_string(), "rwm");
        assert_eq!(DeviceAccess::parse("wr").unwrap().to_string(), "rw");
        assert!(DeviceAccess::parse("").is_err());
        assert!(DeviceAccess::parse("rr").is_err());
        assert!(DeviceAccess::parse("rx").is_err());
    }

    #[test]
    fn rules_print_as_v1_lines() {
        let null = DeviceRule::char(1, Some(3), DeviceAccess::ALL);
        assert_eq!(null.to_string(), "c 1:3 rwm");
        let pts = DeviceRule::char(136, None, DeviceAccess::ALL);
        assert_eq!(pts.to_string(), "c 136:* rwm");
        let mknod = DeviceRule {
            kind: DeviceKind::Block,
            major: None,
            minor: None,
            access: DeviceAccess::MKNOD,
        };
        assert_eq!(mknod.to_string(), "b *:* m");
    }
}
