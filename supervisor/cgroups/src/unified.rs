//! A group in the cgroup2 (unified) hierarchy: membership, freeze, kill. Used alone
//! on pure v2 (with the limits in v2.rs) and for membership on hybrid hosts.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::killer::{self, Emptied, Freeze};
use crate::{bpf, fsops, notify, DeviceRule, Error};

#[derive(Debug)]
pub(crate) struct UnifiedGroup {
    dir: PathBuf,
    /// The group directory, opened once, for clone3(CLONE_INTO_CGROUP).
    dir_fd: OnceLock<OwnedFd>,
    /// cgroup.kill was written: no child is to be born in it any more (see
    /// `clone_into_fd`).
    killed: AtomicBool,
}

impl UnifiedGroup {
    pub fn new(dir: PathBuf) -> Self {
        UnifiedGroup {
            dir,
            dir_fd: OnceLock::new(),
            killed: AtomicBool::new(false),
        }
    }

    /// The directory for clone3(CLONE_INTO_CGROUP); None once cgroup.kill was
    /// written to it. Linux 6.18 (seen here) kills, at birth, every child
    /// cloned into a group after a cgroup.kill of that group (it compares the
    /// group's kill count with the one read from the parent's group), while a
    /// process moved in through cgroup.procs lives: the group of a service
    /// killed on a timeout, kept for its restart, must be joined that way.
    pub fn clone_into_fd(&self) -> Option<BorrowedFd<'_>> {
        if self.killed.load(Ordering::Relaxed) {
            return None;
        }
        self.dir_fd()
    }

    fn write_kill(&self) -> Result<(), Error> {
        fsops::write(&self.file("cgroup.kill"), "1")?;
        self.killed.store(true, Ordering::Relaxed);
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn mkdir(&self) -> Result<(), Error> {
        fsops::mkdir_all(&self.dir)
    }

    pub fn add_process(&self, pid: i32) -> Result<(), Error> {
        fsops::write(&self.file("cgroup.procs"), &pid.to_string())
    }

    pub fn procs(&self) -> Result<Vec<i32>, Error> {
        fsops::read_procs(&self.file("cgroup.procs"))
    }

    /// The group directory opened O_RDONLY|O_DIRECTORY, as CLONE_INTO_CGROUP wants;
    /// None while the group does not exist.
    pub fn dir_fd(&self) -> Option<BorrowedFd<'_>> {
        if self.dir_fd.get().is_none() {
            let file = File::options()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(&self.dir)
                .ok()?;
            // Another thread may have won the race; either fd names the same group.
            let _ = self.dir_fd.set(file.into());
        }
        self.dir_fd.get().map(|fd| fd.as_fd())
    }

    /// Sets the group's device policy: a BPF_CGROUP_DEVICE program (see bpf.rs).
    pub fn allow_devices(&self, rules: &[DeviceRule]) -> Result<(), Error> {
        let fd = self.dir_fd().ok_or_else(|| {
            Error::io(
                "open",
                &self.dir,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })?;
        bpf::attach_device_filter(fd, &self.dir, rules)
    }

    pub fn is_frozen(&self) -> Result<bool, Error> {
        let path = self.file("cgroup.events");
        let text = fsops::read(&path)?;
        Ok(fsops::keyed(&text, "frozen") == Some("1"))
    }

    pub fn begin_set_frozen(&self, frozen: bool) -> Result<(), Error> {
        fsops::write(&self.file("cgroup.freeze"), if frozen { "1" } else { "0" })
    }

    pub fn events_file(&self) -> Option<File> {
        File::open(self.file("cgroup.events")).ok()
    }

    /// cgroup.kill, or SIGKILL to each pid where the kernel lacks it (before 5.14).
    pub fn begin_kill(&self) -> Result<(), Error> {
        match self.write_kill() {
            Err(e) if e.is_not_found() && self.dir.is_dir() => {
                killer::signal_all(&self.file("cgroup.procs"))
            }
            other => other,
        }
    }

    /// Writes cgroup.freeze and waits for cgroup.events to report it; a freeze that
    /// does not complete in time is undone.
    fn set_frozen(&self, frozen: bool, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let want = if frozen { "1" } else { "0" };
        let freeze_file = self.file("cgroup.freeze");
        fsops::write(&freeze_file, want)?;
        let events = self.file("cgroup.events");
        if notify::wait_for(&events, "frozen", want, deadline)? {
            return Ok(());
        }
        if frozen {
            fsops::write(&freeze_file, "0")?;
        }
        Err(Error::Timeout {
            what: if frozen { "freeze" } else { "thaw" },
            path: self.dir.clone(),
            timeout,
            undone: frozen,
        })
    }

    /// cgroup.kill, then wait for `populated 0`; kernels before 5.14 lack cgroup.kill
    /// and get the freeze-and-signal loop instead.
    pub fn kill_all(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        match self.write_kill() {
            Ok(()) => {}
            Err(e) if e.is_not_found() && self.dir.is_dir() => {
                return killer::kill_by_signal(
                    &self.file("cgroup.procs"),
                    Some(self),
                    Emptied::Events(&self.file("cgroup.events")),
                    timeout,
                )
            }
            Err(e) => return Err(e),
        }
        // A process that forks while cgroup.kill runs can leave a child the
        // kill missed (the kernel closed that race only in later versions,
        // with its kill sequence count): kill again until the group is empty.
        let events = self.file("cgroup.events");
        loop {
            let step = deadline.min(Instant::now() + Duration::from_millis(100));
            if notify::wait_for(&events, "populated", "0", step)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                break;
            }
            self.write_kill()?;
        }
        Err(Error::Timeout {
            what: "kill all processes in",
            path: self.dir.clone(),
            timeout,
            undone: false,
        })
    }

    pub fn rmdir(&self) -> Result<(), Error> {
        fsops::rmdir(&self.dir)
    }
}

impl Freeze for UnifiedGroup {
    fn freeze(&self, timeout: Duration) -> Result<(), Error> {
        self.set_frozen(true, timeout)
    }

    fn thaw(&self, timeout: Duration) -> Result<(), Error> {
        self.set_frozen(false, timeout)
    }
}
