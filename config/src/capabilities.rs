//! Linux capabilities by name, and the set a service keeps: Docker's default
//! 14, changed by `cap_add` and `cap_drop` as Docker changes them.

use crate::suggest::did_you_mean;

/// Every capability this build knows, by number (`CAP_LAST_CAP` of Linux 5.9+).
pub const CAPABILITY_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default set.
const DOCKER_DEFAULT: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A set of capabilities: bit N is capability N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities(pub u64);

impl Capabilities {
    pub const NONE: Capabilities = Capabilities(0);
    /// Every capability of `CAPABILITY_NAMES`.
    pub const ALL: Capabilities = Capabilities((1 << CAPABILITY_NAMES.len()) - 1);

    /// CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID, SETUID,
    /// SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE.
    pub fn docker_default() -> Capabilities {
        DOCKER_DEFAULT
            .iter()
            .filter_map(|name| number(name))
            .fold(Capabilities::NONE, Capabilities::with)
    }

    pub fn with(self, cap: u8) -> Capabilities {
        Capabilities(self.0 | 1 << cap)
    }

    pub fn without(self, cap: u8) -> Capabilities {
        Capabilities(self.0 & !(1 << cap))
    }

    pub fn contains(self, cap: u8) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    /// Whether the set has the capability named (`CAP_SYS_ADMIN`); unknown
    /// names are not in any set.
    pub fn has_named(self, name: &str) -> bool {
        number(name).is_some_and(|cap| self.contains(cap))
    }

    /// The names in the set, by number.
    pub fn names(self) -> Vec<&'static str> {
        (0..CAPABILITY_NAMES.len() as u8)
            .filter(|&cap| self.contains(cap))
            .map(|cap| CAPABILITY_NAMES[cap as usize])
            .collect()
    }
}

/// The number of a capability named exactly (`CAP_NET_ADMIN`).
fn number(name: &str) -> Option<u8> {
    CAPABILITY_NAMES
        .iter()
        .position(|n| *n == name)
        .map(|cap| cap as u8)
}

/// One item of `cap_add` or `cap_drop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapabilityItem {
    All,
    One(u8),
}

/// Reads a name as Docker does: any case, with or without `CAP_`; `ALL`.
pub fn parse_item(text: &str) -> Result<CapabilityItem, String> {
    let upper = text.to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(CapabilityItem::All);
    }
    let name = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    match number(&name) {
        Some(cap) => Ok(CapabilityItem::One(cap)),
        None => {
            let short = CAPABILITY_NAMES.iter().map(|n| &n[4..]);
            let bare = name.trim_start_matches("CAP_");
            Err(format!(
                "unknown capability `{text}`{}",
                did_you_mean(bare, short)
            ))
        }
    }
}

/// The set Docker gives: `ALL` in `cap_add` is every capability but those
/// dropped; `ALL` in `cap_drop` is only those added; else the default less
/// the dropped plus the added.
pub fn resolve(add: &[CapabilityItem], drop: &[CapabilityItem]) -> Capabilities {
    let ones = |items: &[CapabilityItem]| {
        items
            .iter()
            .fold(Capabilities::NONE, |set, item| match item {
                CapabilityItem::One(cap) => set.with(*cap),
                CapabilityItem::All => set,
            })
    };
    let (added, dropped) = (ones(add), ones(drop));
    if add.contains(&CapabilityItem::All) {
        Capabilities(Capabilities::ALL.0 & !dropped.0)
    } else if drop.contains(&CapabilityItem::All) {
        added
    } else {
        Capabilities((Capabilities::docker_default().0 & !dropped.0) | added.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_default_is_its_well_known_mask() {
        assert_eq!(Capabilities::docker_default().0, 0xa80425fb);
        assert_eq!(Capabilities::ALL.0, 0x1ff_ffff_ffff);
    }

    #[test]
    fn names_are_read_as_docker_reads_them() {
        assert_eq!(parse_item("NET_ADMIN"), Ok(CapabilityItem::One(12)));
        assert_eq!(parse_item("cap_net_admin"), Ok(CapabilityItem::One(12)));
        assert_eq!(parse_item("all"), Ok(CapabilityItem::All));
        assert_eq!(
            parse_item("NET_ADMN"),
            Err("unknown capability `NET_ADMN`, did you mean NET_ADMIN?".to_owned())
        );
    }

    #[test]
    fn add_and_drop_combine_as_in_docker() {
        use CapabilityItem::*;
        let default = Capabilities::docker_default();
        assert_eq!(resolve(&[], &[]), default);
        assert_eq!(resolve(&[One(12)], &[One(0)]), default.with(12).without(0));
        assert_eq!(resolve(&[One(12)], &[All]), Capabilities::NONE.with(12));
        assert_eq!(resolve(&[All], &[One(21)]), Capabilities::ALL.without(21));
    }
}
