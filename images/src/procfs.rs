//! A service's /proc: its own pid namespace's, with the host-wide knobs a
//! root service could misuse (sysrq-trigger reboots the host, /proc/sys
//! changes host-wide settings) read-only or hidden, as runc and Docker do.

use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;

use crate::fsroot::Root;
use crate::mounts::{Kind, Missing, Source, Target};
use crate::Error;

/// Made read-only: settings and triggers that are not per namespace.
const READONLY: &[&str] = &[
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

/// Hidden behind /dev/null: kernel memory and timing details of the whole host.
const MASKED_FILES: &[&str] = &[
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/sched_debug",
    "proc/timer_list",
    "proc/timer_stats",
];

/// Hidden behind an empty read-only tmpfs.
const MASKED_DIRS: &[&str] = &["proc/acpi", "proc/scsi"];

/// Applies the above to the proc mounted at `proc` in `root` (after /dev exists there).
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
    for rel in MASKED_FILES {
        if existing(root, rel)?.is_some() {
            Target::resolve(root, Path::new(rel), Kind::File, Missing::Create)?
                .bind(root, "mask", &null, false)?;
        }
    }
    for rel in MASKED_DIRS {
        if existing(root, rel)?.is_some() {
            Target::resolve(root, Path::new(rel), Kind::Dir, Missing::Create)?.mount_fs(
                "mask",
                "tmpfs",
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                "size=0",
            )?;
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
