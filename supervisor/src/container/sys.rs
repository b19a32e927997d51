//! The raw system calls of starting a container: clone into new namespaces
//! (and a cgroup), what the child does before exec, and the few ioctls and fd
//! operations that nix does not wrap. Every unsafe block of the container
//! module lives here.

use std::ffi::{c_char, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use nix::errno::Errno;
use nix::unistd::Pid;

/// `CLONE_INTO_CGROUP` (Linux 5.7); not in every libc crate target.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of clone3(2), the version 2 layout (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Everything the child needs between clone and exec, prepared beforehand so
/// that the child only makes system calls (no allocation, no locks).
pub struct ChildExec {
    path: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    envp_ptrs: Vec<*const c_char>,
    /// (source, target): dup2'ed in this order. Sources are never below
    /// `MIN_SOURCE_FD`, so no dup2 clobbers a later source.
    dups: Vec<(RawFd, RawFd)>,
    /// Where an exec failure is reported (a target of `dups`).
    error_fd: RawFd,
    /// Read one byte from this fd before exec, then become root of the new
    /// user namespace: the parent writes the id maps first, and exec as
    /// anyone but the namespace's root drops every capability.
    wait_fd: Option<RawFd>,
    /// v1 `tasks` files (`>= MIN_SOURCE_FD`) the child writes `0` to, first
    /// thing after the dups: it joins its cgroups itself (`SelfPlacement`).
    join_fds: Vec<RawFd>,
}

/// Child-side fds are moved to at least this number before clone, above every
/// fixed target fd.
pub const MIN_SOURCE_FD: RawFd = 10;

impl ChildExec {
    /// `dups` sources must be `>= MIN_SOURCE_FD` (see `high_fd`).
    pub fn new(
        path: CString,
        argv: Vec<CString>,
        dups: Vec<(RawFd, RawFd)>,
        error_fd: RawFd,
    ) -> ChildExec {
        debug_assert!(dups.iter().all(|&(source, _)| source >= MIN_SOURCE_FD));
        let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|arg| arg.as_ptr()).collect();
        argv_ptrs.push(ptr::null());
        // The setup process starts with an empty environment: all it needs
        // arrives in its spec.
        let envp_ptrs = vec![ptr::null()];
        ChildExec {
            path,
            _argv: argv,
            argv_ptrs,
            envp_ptrs,
            dups,
            error_fd,
            wait_fd: None,
            join_fds: Vec::new(),
        }
    }

    /// The child joins its v1 cgroups itself: it writes `0` to each of `fds`
    /// (`tasks` files, `>= MIN_SOURCE_FD`) before anything else.
    pub fn join_cgroups(mut self, fds: Vec<RawFd>) -> ChildExec {
        debug_assert!(fds.iter().all(|&fd| fd >= MIN_SOURCE_FD));
        self.join_fds = fds;
        self
    }

    /// In a new user namespace: the child waits for a byte on `fd`
    /// (`>= MIN_SOURCE_FD`), the sign that its id maps are written, and
    /// becomes the namespace's root before exec.
    pub fn user_namespace(mut self, fd: RawFd) -> ChildExec {
        debug_assert!(fd >= MIN_SOURCE_FD);
        self.wait_fd = Some(fd);
        self
    }
}

/// A duplicate of `fd` numbered at least `MIN_SOURCE_FD`, close-on-exec.
pub fn high_fd(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let raw = nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(MIN_SOURCE_FD),
    )?;
    // SAFETY: F_DUPFD_CLOEXEC just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Clones a child with `namespaces` (CLONE_NEW* flags) that execs `exec`,
/// and tells whether it was born in `cgroup`. With `cgroup`, clone3
/// CLONE_INTO_CGROUP is tried first; kernels before 5.7 refuse that (ENOSYS
/// before 5.3, E2BIG after), and the child is then cloned without it (the
/// caller places it). Without, clone3 is used where the kernel has it, else
/// clone. The child gets SIGCHLD as exit signal, like a forked one.
pub fn clone_exec(
    namespaces: u64,
    cgroup: Option<BorrowedFd<'_>>,
    exec: &ChildExec,
) -> Result<(Pid, bool), Errno> {
    match clone_once(namespaces, cgroup, exec) {
        Err(Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL) if cgroup.is_some() => {
            clone_once(namespaces, None, exec).map(|pid| (pid, false))
        }
        cloned => cloned.map(|pid| (pid, cgroup.is_some())),
    }
}

fn clone_once(
    namespaces: u64,
    cgroup: Option<BorrowedFd<'_>>,
    exec: &ChildExec,
) -> Result<Pid, Errno> {
    let mut args = CloneArgs {
        flags: namespaces,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: clone3 with no stack behaves like fork: the child continues on a
    // copy of this stack and only runs `child_exec`, which makes async-signal-safe
    // system calls on memory prepared before the call and never returns.
    let mut ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret == -1 && Errno::last() == Errno::ENOSYS && cgroup.is_none() {
        // SAFETY: as above; clone with a null stack is fork with namespace flags.
        ret = unsafe {
            libc::syscall(
                libc::SYS_clone,
                namespaces | libc::SIGCHLD as u64,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
    }
    match ret {
        -1 => Err(Errno::last()),
        0 => child_exec(exec),
        pid => Ok(Pid::from_raw(pid as libc::pid_t)),
    }
}

/// As `clone_exec` without namespaces or cgroup, but the child shares our
/// memory until its exec (CLONE_VM | CLONE_VFORK, as posix_spawn does), on
/// a stack of its own: no copy of our page tables, no copy-on-write faults
/// after. We are suspended until the child has exec'd (or exited).
pub fn vfork_exec(exec: &ChildExec) -> Result<Pid, Errno> {
    const STACK_SIZE: usize = 64 * 1024;
    thread_local! {
        // Kept from one clone to the next: no mapping to make, fault in and unmap each time.
        static STACK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        if stack.is_empty() {
            stack.resize(STACK_SIZE, 0);
        }
        // The stack grows down from its (16-byte aligned) end.
        let top = (stack.as_mut_ptr() as usize + STACK_SIZE) & !15;
        clone_vfork(exec, top)
    })
}

/// `vfork_exec`'s clone, on the stack whose top is `top`.
fn clone_vfork(exec: &ChildExec, top: usize) -> Result<Pid, Errno> {
    extern "C" fn entry(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the `&ChildExec` passed below, alive (and not
        // moved) while the parent is suspended in clone.
        let exec = unsafe { &*(arg as *const ChildExec) };
        child_exec(exec)
    }
    // SAFETY: the child runs `entry` on the stack below `top`, which outlives it (we are
    // suspended until its exec); it only makes async-signal-safe system
    // calls on memory prepared before the call (`child_exec`) and never
    // returns. Our signals are blocked (the daemon reads them from a
    // signalfd), so no handler runs in the child on our memory.
    let ret = unsafe {
        libc::clone(
            entry,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            exec as *const ChildExec as *mut libc::c_void,
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        pid => Ok(Pid::from_raw(pid)),
    }
}

/// The child between clone and exec: move fds in place, exec, or report.
fn child_exec(exec: &ChildExec) -> ! {
    for &(source, target) in &exec.dups {
        // SAFETY: dup2 is async-signal-safe; both fds are plain integers.
        if unsafe { libc::dup2(source, target) } == -1 {
            child_fail(exec.error_fd, b"container child: dup2 failed: errno ");
        }
    }
    for &fd in &exec.join_fds {
        // One thread moving itself: the kernel skips its global threadgroup
        // lock (and its RCU grace period) for that.
        // SAFETY: write is async-signal-safe; the buffer is a static byte.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
            child_fail(
                exec.error_fd,
                b"container child: join its cgroup (write 0 to a v1 tasks file): errno ",
            );
        }
    }
    if let Some(fd) = exec.wait_fd {
        let mut byte = 0u8;
        // SAFETY: read is async-signal-safe; the buffer is a valid local byte.
        if unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) } != 1 {
            child_fail(exec.error_fd, b"container child: no user mapping: errno ");
        }
        // Cloned, we still carry the host's root ids, unmapped in the new
        // namespace. Raw system calls: they change this thread only, the
        // only one here (libc's wrappers would signal the parent's threads).
        // SAFETY: setresgid, setgroups and setresuid are async-signal-safe
        // system calls; setgroups reads no memory with a count of 0.
        let failed = unsafe {
            libc::syscall(libc::SYS_setresgid, 0, 0, 0) == -1
                || libc::syscall(libc::SYS_setgroups, 0, ptr::null::<libc::gid_t>()) == -1
                || libc::syscall(libc::SYS_setresuid, 0, 0, 0) == -1
        };
        if failed {
            child_fail(
                exec.error_fd,
                b"container child: become root of the user namespace: errno ",
            );
        }
    }
    // SAFETY: path, argv and envp are NUL-terminated arrays of pointers to
    // C strings owned by `exec`, alive in this copy of the parent's memory.
    unsafe {
        libc::execve(
            exec.path.as_ptr(),
            exec.argv_ptrs.as_ptr(),
            exec.envp_ptrs.as_ptr(),
        )
    };
    child_fail(
        exec.error_fd,
        b"container child: exec /proc/self/exe failed: errno ",
    );
}

/// Writes `message` and the current errno (in decimal, without allocating)
/// to `fd`, then exits 127.
fn child_fail(fd: RawFd, message: &[u8]) -> ! {
    let errno = Errno::last_raw();
    let mut digits = [0u8; 12];
    let mut at = digits.len();
    let mut n = errno.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // SAFETY: write and _exit are async-signal-safe; the buffers are valid.
    unsafe {
        libc::write(fd, message.as_ptr().cast(), message.len());
        libc::write(fd, digits[at..].as_ptr().cast(), digits.len() - at);
        libc::_exit(127)
    }
}

/// Takes ownership of an fd inherited at a fixed number, if it is open.
pub fn inherited_fd(fd: RawFd) -> Option<OwnedFd> {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).ok()?;
    // SAFETY: the fd is open (F_GETFD succeeded) and, by the contract between
    // spawn and the setup process, owned by nothing else in this process.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Marks every fd from `first` up close-on-exec, so that nothing the
/// supervisor leaked reaches the service. Best effort on kernels before 5.11.
pub fn cloexec_from(first: RawFd) {
    // SAFETY: close_range only changes fd flags; no memory is involved.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
}

/// Brings the loopback interface of the current network namespace up.
pub fn loopback_up() -> Result<(), Errno> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = src as c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the flags into `req`, a valid ifreq naming "lo".
    Errno::result(unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS as libc::Ioctl,
            &mut req,
        )
    })?;
    // SAFETY: the flags member of the union was just filled by the kernel.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads `req`, a valid ifreq naming "lo" with its flags.
    Errno::result(unsafe {
        libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as libc::Ioctl, &req)
    })?;
    Ok(())
}

/// Resets every signal to its default action. Ignored signals survive exec,
/// and the supervisor's ignored SIGPIPE must not reach the service.
pub fn default_signal_dispositions() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        // SAFETY: SIG_DFL installs no handler, so no Rust code can run as one.
        let _ = unsafe { sigaction(signal, &default) };
    }
}

/// Most descriptors one message carries (the kernel's SCM_MAX_FD).
const MAX_RECEIVED_FDS: usize = 253;

/// Receives one message of descriptors (SCM_RIGHTS) from `socket`,
/// close-on-exec; the message may carry none. No message (the peer closed)
/// is an error.
pub fn receive_fds(socket: BorrowedFd<'_>) -> Result<Vec<OwnedFd>, Errno> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; MAX_RECEIVED_FDS]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    if msg.bytes == 0 {
        return Err(Errno::ENODATA);
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(Errno::EMSGSIZE);
    }
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel just installed these descriptors in this
            // process for this message; nothing else owns them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok(fds)
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets, as two 32-bit halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Removes from the bounding set every capability the kernel has that `keep`
/// lacks (bit N: capability N). Needs CAP_SETPCAP, so it comes first. Returns
/// the bounding set left: `keep` less what this process never had.
pub fn drop_bounding_set(keep: u64) -> Result<u64, Errno> {
    let mut left = 0;
    for cap in 0..64 {
        // SAFETY: PR_CAPBSET_READ only reads the calling thread's bounding set.
        let has = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if has == -1 {
            // EINVAL: past the kernel's last capability.
            return match Errno::last() {
                Errno::EINVAL => Ok(left),
                errno => Err(errno),
            };
        }
        if has == 1 && keep & (1 << cap) != 0 {
            left |= 1 << cap;
        } else if has == 1 {
            // SAFETY: PR_CAPBSET_DROP only changes the calling thread's bounding set.
            Errno::result(unsafe {
                libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0)
            })?;
        }
    }
    Ok(left)
}

/// Empties the ambient set.
pub fn clear_ambient_capabilities() -> Result<(), Errno> {
    // SAFETY: this prctl only changes the calling thread's ambient set.
    Errno::result(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })
    .map(drop)
}

/// PR_SET_KEEPCAPS: keep the permitted set across a switch away from uid 0.
pub fn keep_capabilities(keep: bool) -> Result<(), Errno> {
    // SAFETY: this prctl only sets a flag of the calling thread.
    Errno::result(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, keep as libc::c_ulong, 0, 0, 0) })
        .map(drop)
}

/// Sets the effective, permitted and inheritable sets (capset(2)).
pub fn set_capabilities(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let halves = |set: u64| [set as u32, (set >> 32) as u32];
    let (e, p, i) = (halves(effective), halves(permitted), halves(inheritable));
    let data = [0, 1].map(|n| CapData {
        effective: e[n],
        permitted: p[n],
        inheritable: i[n],
    });
    // SAFETY: header and data are the version-3 layouts capset(2) reads: one
    // header and two data structs, valid for the duration of the call.
    Errno::result(unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    })
    .map(drop)
}

/// Installs `program` as this process's seccomp filter (inherited by exec and
/// every child). Without CAP_SYS_ADMIN the kernel wants no_new_privs first.
pub fn install_seccomp_filter(program: &seccomp::Program) -> Result<(), Errno> {
    let mut filters: Vec<libc::sock_filter> = program
        .0
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let len = u16::try_from(filters.len()).map_err(|_| Errno::E2BIG)?;
    let prog = libc::sock_fprog {
        len,
        filter: filters.as_mut_ptr(),
    };
    // SAFETY: `prog` points to `len` valid instructions that outlive the call;
    // the kernel copies them.
    Errno::result(unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &prog as *const libc::sock_fprog,
            0,
            0,
        )
    })
    .map(drop)
}

/// Makes the terminal on `fd` the calling process's controlling terminal
/// (after setsid: the process leads a session without one).
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal); no memory.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY as libc::Ioctl, 0) })
        .map(drop)
}

/// The window size of the terminal on `fd`, if it is one.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<nix::pty::Winsize> {
    // SAFETY: winsize is plain old data; all-zero is a valid value.
    let mut size: nix::pty::Winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into `size`, valid for the call.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCGWINSZ as libc::Ioctl,
            &mut size as *mut nix::pty::Winsize,
        )
    };
    (ret == 0).then_some(size)
}

/// Sets the window size of the terminal on `fd` (its foreground gets SIGWINCH).
pub fn set_window_size(fd: BorrowedFd<'_>, size: &nix::pty::Winsize) -> Result<(), Errno> {
    // SAFETY: TIOCSWINSZ reads one winsize from `size`, valid for the call.
    Errno::result(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSWINSZ as libc::Ioctl,
            size as *const nix::pty::Winsize,
        )
    })
    .map(drop)
}

/// The peer (slave) of pseudo-terminal master `master`, unlocked first: opened
/// through the master (TIOCGPTPEER), not by a path, so that it comes from the
/// master's own devpts instance (a container's).
pub fn pty_peer(master: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from a valid local.
    Errno::result(unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCSPTLCK as libc::Ioctl,
            &unlock as *const libc::c_int,
        )
    })?;
    // SAFETY: TIOCGPTPEER takes open flags as an integer and returns a new fd.
    let fd = Errno::result(unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER as libc::Ioctl,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
