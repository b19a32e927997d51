//! A service's /proc and /sys: its own pid namespace's /proc, with the
//! host-wide knobs a root service could misuse (sysrq-trigger reboots the
//! host, /proc/sys changes host-wide settings) read-only, and kernel details
//! of the whole host hidden: exactly Docker's default lists.

use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;

use crate::fsroot::Root;
use crate::mounts::{Kind, Missing, Source, Target};
use crate::Error;

/// Made read-only (Docker's `ReadonlyPaths`): settings and triggers that are
/// not per namespace.
pub const READONLY: &[&str] = &[
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

/// Hidden (Docker's `MaskedPaths`): a file behind a bind of /dev/null, a
/// directory behind an empty read-only tmpfs.
pub const MASKED: &[&str] = &[
    "proc/acpi",
    "proc/asound",
    "proc/interrupts",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Applies the above to the /proc and /sys mounted in `root` (after /dev
/// exists there). A path this kernel lacks is skipped.
pub(crate) fn harden(root: &Root) -> Result<(), Error> {
    for rel in READONLY {
        if let Some(path) = existing(root, rel)? {
            let kind = if path.is_dir { Kind::Dir } else { Kind::File };
            Target::resolve(root, Path::new(rel), kind, Missing::Create)?.bind(
                root,
                "make read-only",
                &path,
                true,
            )?;
        }
    }
    let null = Source::open_in(root, Path::new("dev/null"))?;
    for rel in MASKED {
        let Some(path) = existing(root, rel)? else {
            continue;
        };
        if path.is_dir {
            Target::resolve(root, Path::new(rel), Kind::Dir, Missing::Create)?.mount_fs(
                "mask",
                "tmpfs",
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                "mode=0555",
            )?;
        } else {
            Target::resolve(root, Path::new(rel), Kind::File, Missing::Create)?
                .bind(root, "mask", &null, false)?;
        }
    }
    Ok(())
}

/// `rel` inside the root, if this kernel has it.
fn existing(root: &Root, rel: &str) -> Result<Option<Source>, Error> {
    match root.open_at(Path::new(rel), OFlag::O_PATH | OFlag::O_NOFOLLOW) {
        Ok(_) => Source::open_in(root, Path::new(rel)).map(Some),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(Error::setup("open", root.path().join(rel), e)),
    }
}
