//! Starting the main child: the PATH search is done here, before the fork,
//! so that the forked child only has to exec.

use alloc::ffi::CString;
use alloc::vec::Vec;
use core::ffi::c_char;
use core::fmt;

use crate::logger::Quoted;
use crate::sys::{self, Errno};

/// Why the command did not start; `exit_code` follows tini's conventions.
pub struct SpawnError<'a> {
    command: &'a [u8],
    error: Errno,
}

impl SpawnError<'_> {
    pub fn exit_code(&self) -> i32 {
        match self.error.0 {
            libc::ENOENT | libc::ENOTDIR => 127,
            libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::EPERM => 126,
            _ => 1,
        }
    }
}

impl fmt::Display for SpawnError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot run {}: {}", Quoted(self.command), self.error)
    }
}

/// Starts the command whose arguments are `command` (`argv` is the same,
/// as the NULL-terminated vector exec takes) and returns the child's pid
/// once it has exec'd.
pub fn spawn<'a>(
    command: &[&'a [u8]],
    argv: *const *const c_char,
    take_terminal: bool,
) -> Result<i32, SpawnError<'a>> {
    let program = command[0];
    let fail = |error| SpawnError {
        command: program,
        error,
    };
    let candidates = candidates(program, sys::getenv(c"PATH")).map_err(fail)?;
    let spec = sys::ExecSpec {
        candidates: &candidates,
        argv,
        take_terminal,
    };
    match sys::fork_exec(&spec).map_err(fail)? {
        sys::Spawned::Running(pid) => Ok(pid),
        sys::Spawned::ExecFailed(errno) => Err(fail(errno)),
    }
}

/// The paths execvp would try for `program`, in order.
fn candidates(program: &[u8], path: Option<&[u8]>) -> Result<Vec<CString>, Errno> {
    let c_string = |bytes: &[u8]| CString::new(bytes).map_err(|_| Errno(libc::EINVAL));
    if program.is_empty() {
        return Err(Errno(libc::ENOENT));
    }
    if program.contains(&b'/') {
        return Ok(alloc::vec![c_string(program)?]);
    }
    path.unwrap_or(b"/usr/local/bin:/bin:/usr/bin")
        .split(|&b| b == b':')
        .map(|dir| match dir {
            [] => c_string(program),
            _ => c_string(&[dir, b"/", program].concat()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_search_order() {
        let found = candidates(b"sh", Some(b"/a::/b")).unwrap();
        let found: Vec<&[u8]> = found.iter().map(|c| c.as_bytes()).collect();
        assert_eq!(found, [&b"/a/sh"[..], b"sh", b"/b/sh"]);
        assert_eq!(candidates(b"./x", Some(b"/a")).unwrap().len(), 1);
        assert_eq!(candidates(b"", None).unwrap_err(), Errno(libc::ENOENT));
    }
}
