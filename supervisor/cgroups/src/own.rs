//! A cgroup parent relative to the process's own cgroup (`./services`), as a
//! systemd unit with `Delegate=yes` wants: the unit's cgroup is the subtree the
//! process may manage, wherever systemd put it.
//!
//! [`enter_leaf`] records the process's own cgroup in every hierarchy (the
//! anchor) and, on pure v2, moves the process into a leaf child of it: cgroup v2
//! enables controllers for children only in a group without processes of its
//! own. Relative parents then resolve against the anchor, in each hierarchy
//! separately (v1 hierarchies may place the process differently).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::mountinfo::Mounts;
use crate::{fsops, Error, Layout};

const PROC_SELF_CGROUP: &str = "/proc/self/cgroup";

/// The prefix that makes a cgroup parent relative to the process's own cgroup.
pub const RELATIVE_PREFIX: &str = "./";

/// The process's cgroup in each hierarchy, as /proc/self/cgroup gives it
/// ("/system.slice/supervisor.service"), before it moved into its leaf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Anchor {
    /// In the unified hierarchy (the `0::` line).
    unified: Option<String>,
    /// v1 controller -> path in its hierarchy.
    v1: BTreeMap<String, String>,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

/// Whether `parent` is relative to the process's own cgroup (`./services`, or `./`
/// for the own cgroup itself).
pub fn is_relative(parent: &str) -> bool {
    parent.starts_with(RELATIVE_PREFIX)
}

/// Where [`enter_leaf`] put the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entered {
    /// The process's own cgroup, that relative parents resolve against (in the
    /// unified hierarchy where there is one).
    pub anchor: String,
    /// The leaf the process moved into (pure v2), or None where it stayed.
    pub leaf: Option<String>,
}

/// Records the process's own cgroups as the anchor of relative parents and, on
/// pure v2, moves the process into the child `leaf` of its cgroup (created if
/// missing), leaving the cgroup free for controllers. In the root cgroup, and on
/// v1 and hybrid hosts (no such rule there), the process stays where it is.
/// A second call changes nothing. Fails on pure v2 when other processes share the
/// cgroup: its controllers could not be enabled for the services.
pub fn enter_leaf(leaf: &str) -> Result<Entered, Error> {
    crate::check_component(leaf, "leaf cgroup")?;
    let (mounts, layout) = crate::detect()?;
    if let Some(anchor) = ANCHOR.get() {
        return Ok(entered(anchor, &mounts, layout, leaf));
    }
    let anchor = Anchor::parse(&fsops::read(Path::new(PROC_SELF_CGROUP))?);
    let own = anchor.display(&mounts);
    if layout == Layout::V2 && own != "/" {
        let unified = mounts
            .unified
            .as_ref()
            .ok_or_else(|| Error::Unsupported("cgroup v2 is not mounted".into()))?;
        move_into_leaf(&unified.join(own.trim_start_matches('/')), leaf)?;
    }
    let anchor = ANCHOR.get_or_init(|| anchor);
    Ok(entered(anchor, &mounts, layout, leaf))
}

fn entered(anchor: &Anchor, mounts: &Mounts, layout: Layout, leaf: &str) -> Entered {
    let own = anchor.display(mounts);
    let moved = layout == Layout::V2 && own != "/";
    Entered {
        leaf: moved.then(|| format!("{}/{leaf}", own.trim_end_matches('/'))),
        anchor: own,
    }
}

/// Moves this process from `own` into `own/leaf`; moves it back and fails when
/// `own` still has other processes.
fn move_into_leaf(own: &Path, leaf: &str) -> Result<(), Error> {
    let leaf_dir = own.join(leaf);
    fsops::mkdir_all(&leaf_dir)?;
    let pid = std::process::id().to_string();
    fsops::write(&leaf_dir.join("cgroup.procs"), &pid)?;
    let others = fsops::read(&own.join("cgroup.procs"))?;
    let others: Vec<&str> = others.split_whitespace().collect();
    if others.is_empty() {
        return Ok(());
    }
    // Best effort: the error below is what matters.
    let _ = fsops::write(&own.join("cgroup.procs"), &pid);
    let _ = fsops::rmdir(&leaf_dir);
    Err(Error::Unsupported(format!(
        "a relative cgroup parent needs a cgroup of this process's own, but {} also holds \
         process {}: on cgroup v2 no controller can be enabled below it (run it as a systemd \
         unit with Delegate=yes, or in a cgroup of its own)",
        own.display(),
        others.join(", ")
    )))
}

/// `mounts` with every hierarchy's mount point replaced by the anchor's directory
/// in it, so that relative parents resolve there.
pub(crate) fn anchored(mounts: &Mounts) -> Result<Mounts, Error> {
    let anchor = ANCHOR.get().ok_or_else(|| {
        Error::Invalid(
            "a relative cgroup parent (./...) is resolved against the process's own cgroup, \
             which it has not recorded yet"
                .into(),
        )
    })?;
    let under = |mount: &Path, own: Option<&String>| -> PathBuf {
        mount.join(own.map_or("", |own| own.trim_start_matches('/')))
    };
    Ok(Mounts {
        unified: mounts
            .unified
            .as_ref()
            .map(|mount| under(mount, anchor.unified.as_ref())),
        v1: mounts
            .v1
            .iter()
            .map(|(controller, mount)| {
                (controller.clone(), under(mount, anchor.v1.get(controller)))
            })
            .collect(),
    })
}

/// "system.slice/supervisor.service/services/web" for the relative path
/// "services/web": the group as the host sees it, for status and messages.
pub(crate) fn host_path(mounts: &Mounts, rel: &str) -> String {
    let base = ANCHOR
        .get()
        .map(|anchor| anchor.display(mounts))
        .unwrap_or_default();
    let base = base.trim_matches('/');
    match (base.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (false, true) => base.to_string(),
        (false, false) => format!("{base}/{rel}"),
    }
}

impl Anchor {
    /// /proc/self/cgroup: `ID:CONTROLLERS:PATH` per line; `0::PATH` is the unified
    /// hierarchy; named hierarchies (`name=systemd`) are not ours.
    fn parse(text: &str) -> Self {
        let mut anchor = Anchor::default();
        for line in text.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if id == "0" && controllers.is_empty() {
                anchor.unified = Some(path.to_string());
                continue;
            }
            for controller in controllers.split(',') {
                if !controller.is_empty() && !controller.starts_with("name=") {
                    anchor.v1.insert(controller.to_string(), path.to_string());
                }
            }
        }
        anchor
    }

    /// The path shown for the anchor: the unified hierarchy's where the host has
    /// one, else the memory controller's, else any v1 controller's.
    fn display(&self, mounts: &Mounts) -> String {
        let unified = self.unified.as_ref().filter(|_| mounts.unified.is_some());
        unified
            .or_else(|| self.v1.get("memory"))
            .or_else(|| self.v1.values().next())
            .cloned()
            .unwrap_or_else(|| "/".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_self_cgroup() {
        let anchor = Anchor::parse(
            "12:pids:/system.slice/a.service\n4:cpu,cpuacct:/\n1:name=systemd:/x\n0::/system.slice/a.service\n",
        );
        assert_eq!(anchor.unified.as_deref(), Some("/system.slice/a.service"));
        assert_eq!(anchor.v1["pids"], "/system.slice/a.service");
        assert_eq!(anchor.v1["cpu"], "/");
        assert_eq!(anchor.v1["cpuacct"], "/");
        assert!(!anchor.v1.contains_key("name=systemd"));
    }

    #[test]
    fn relative_prefix() {
        assert!(is_relative("./services"));
        assert!(is_relative("./"));
        assert!(!is_relative("services"));
        assert!(!is_relative(".services"));
    }
}
