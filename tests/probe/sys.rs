//! The raw system calls of the probe; every unsafe block of it is here. Each
//! returns the errno on failure.

use std::ffi::CString;

type Result<T> = std::result::Result<T, i32>;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn check(ret: libc::c_long) -> Result<libc::c_long> {
    if ret == -1 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

fn cstring(path: &str) -> Result<CString> {
    CString::new(path).map_err(|_| libc::EINVAL)
}

/// `struct file_handle` with room for the handle (MAX_HANDLE_SZ is 128).
#[repr(C)]
struct FileHandle {
    bytes: u32,
    kind: i32,
    data: [u8; 128],
}

/// name_to_handle_at: the handle's type (4 bytes, little-endian) then its bytes.
pub fn file_handle(path: &str) -> Result<Vec<u8>> {
    let path = cstring(path)?;
    let mut handle = FileHandle {
        bytes: 128,
        kind: 0,
        data: [0; 128],
    };
    let mut mount_id = 0;
    // SAFETY: `path` is NUL-terminated; `handle` has room for `bytes` bytes of
    // data; `mount_id` is a valid int.
    check(unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            path.as_ptr(),
            &mut handle as *mut FileHandle,
            &mut mount_id as *mut libc::c_int,
            0,
        )
    })?;
    let mut out = handle.kind.to_le_bytes().to_vec();
    out.extend_from_slice(&handle.data[..handle.bytes as usize]);
    Ok(out)
}

/// open_by_handle_at on the filesystem of `mount`; the first line of the file.
pub fn open_by_handle(mount: &str, handle: &[u8]) -> Result<String> {
    if handle.len() < 4 || handle.len() > 4 + 128 {
        return Err(libc::EINVAL);
    }
    let mut fh = FileHandle {
        bytes: (handle.len() - 4) as u32,
        kind: i32::from_le_bytes([handle[0], handle[1], handle[2], handle[3]]),
        data: [0; 128],
    };
    fh.data[..handle.len() - 4].copy_from_slice(&handle[4..]);
    let mount = std::fs::File::open(mount).map_err(|e| e.raw_os_error().unwrap_or(0))?;
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: `fh` is a valid file_handle of `bytes` bytes; the mount fd is open.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount.as_raw_fd(),
            &mut fh as *mut FileHandle,
            libc::O_RDONLY,
        )
    })?;
    // SAFETY: open_by_handle_at just returned this fd; nothing else owns it.
    let file = unsafe { std::fs::File::from_raw_fd(fd as libc::c_int) };
    let text = std::io::read_to_string(file).map_err(|e| e.raw_os_error().unwrap_or(0))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING): the caller's user keyring.
pub fn user_keyring() -> Result<libc::c_long> {
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEY_SPEC_USER_KEYRING: libc::c_long = -4;
    // SAFETY: this keyctl takes two integers and no pointers.
    check(unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_USER_KEYRING,
            0,
        )
    })
}

/// Sets CLOCK_REALTIME to what it reads now (so a success changes nothing).
pub fn clock_settime_now() -> Result<()> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the kernel to fill, then to read.
    unsafe {
        check(libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) as libc::c_long)?;
        check(libc::syscall(
            libc::SYS_clock_settime,
            libc::CLOCK_REALTIME,
            &now as *const libc::timespec,
        ))?;
    }
    Ok(())
}

pub fn unshare(flags: u64) -> Result<()> {
    // SAFETY: unshare takes an integer.
    check(unsafe { libc::syscall(libc::SYS_unshare, flags) }).map(drop)
}

/// clone(FLAGS | SIGCHLD) like fork; the child exits at once and is reaped.
pub fn clone(flags: u64) -> Result<()> {
    // SAFETY: with a null stack clone behaves like fork; the child only calls _exit.
    let pid = check(unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::SIGCHLD as u64,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    })?;
    if pid == 0 {
        // SAFETY: _exit ends the child without running anything of the parent's.
        unsafe { libc::_exit(0) };
    }
    reap(pid as libc::pid_t);
    Ok(())
}

/// clone3 with no flags, like fork.
pub fn clone3() -> Result<()> {
    let mut args = [0u64; 11];
    args[4] = libc::SIGCHLD as u64; // exit_signal
                                    // SAFETY: `args` is a valid version-2 clone_args; the child only calls _exit.
    let pid = check(unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args.as_mut_ptr(),
            std::mem::size_of_val(&args),
        )
    })?;
    if pid == 0 {
        // SAFETY: as above.
        unsafe { libc::_exit(0) };
    }
    reap(pid as libc::pid_t);
    Ok(())
}

fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waitpid writes the status into a valid int.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

/// getpid through the x32 ABI (the x32 bit set in the number).
#[cfg(target_arch = "x86_64")]
pub fn x32_getpid() -> Result<libc::c_long> {
    const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
    // SAFETY: getpid takes no arguments.
    check(unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) })
}

#[cfg(not(target_arch = "x86_64"))]
pub fn x32_getpid() -> Result<libc::c_long> {
    Err(libc::ENOSYS)
}

/// getpid (20) through the i386 ABI, `int 0x80`.
#[cfg(target_arch = "x86_64")]
pub fn i386_getpid() -> Result<libc::c_long> {
    let mut ret: i64 = 20;
    // SAFETY: int 0x80 with eax = 20 is the i386 getpid: it touches no memory
    // and returns in eax; r8 to r11 are declared clobbered in case a kernel
    // does not preserve them.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inout("rax") ret,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            options(nostack),
        );
    }
    let ret = ret as i32 as libc::c_long;
    if ret < 0 {
        Err(-ret as i32)
    } else {
        Ok(ret)
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub fn i386_getpid() -> Result<libc::c_long> {
    Err(libc::ENOSYS)
}

pub fn personality(value: u64) -> Result<libc::c_long> {
    // SAFETY: personality takes an integer.
    check(unsafe { libc::syscall(libc::SYS_personality, value) })
}

/// bpf(BPF_MAP_CREATE) of a small array map.
pub fn bpf_map_create() -> Result<libc::c_long> {
    // map_type BPF_MAP_TYPE_ARRAY (2), key_size 4, value_size 4, max_entries 1.
    let mut attr = [0u32; 32];
    attr[..4].copy_from_slice(&[2, 4, 4, 1]);
    // SAFETY: `attr` is a zero-padded bpf_attr for BPF_MAP_CREATE (0).
    check(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            0,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    })
}

/// finit_module of /dev/null: fails anyway, but EPERM only without the right.
pub fn finit_module_dev_null() -> Result<()> {
    let null = std::fs::File::open("/dev/null").map_err(|e| e.raw_os_error().unwrap_or(0))?;
    use std::os::fd::AsRawFd;
    let params = c"";
    // SAFETY: the fd is open and `params` is NUL-terminated.
    check(unsafe { libc::syscall(libc::SYS_finit_module, null.as_raw_fd(), params.as_ptr(), 0) })
        .map(drop)
}

/// reboot with a wrong magic number: EPERM without CAP_SYS_BOOT, EINVAL with
/// it (the kernel checks the capability first); never reboots.
pub fn reboot_bad_magic() -> Result<()> {
    // SAFETY: reboot with a bad magic takes integers and does nothing.
    check(unsafe { libc::syscall(libc::SYS_reboot, 0x1234, 0x5678, 0, 0usize) }).map(drop)
}

/// setgroups([]), setgid and setuid to `uid`; the uid afterwards.
pub fn become_user(uid: u32) -> Result<u32> {
    // SAFETY: these take integers (and a null list of zero groups).
    unsafe {
        check(libc::setgroups(0, std::ptr::null()) as libc::c_long)?;
        check(libc::setgid(uid) as libc::c_long)?;
        check(libc::setuid(uid) as libc::c_long)?;
        Ok(libc::getuid())
    }
}
