//! The parent's side of a service's user namespace: its id maps, and the
//! descriptors its setup process cannot open itself (see `rootfs::idmap`),
//! sent over a socket.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use config::USERNS_RANGE;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::unistd::Pid;

use super::error::{io_error, SpawnError};

/// Maps the service's ids 0 to 65535 onto its host range from `first`.
/// Written by us, root of the host: no newuidmap, no setgroups restriction.
pub fn write_maps(pid: Pid, first: u32) -> Result<(), SpawnError> {
    let map = format!("0 {first} {USERNS_RANGE}\n");
    for file in ["uid_map", "gid_map"] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, &map).map_err(io_error(format!("write {path}")))?;
    }
    Ok(())
}

/// Opens what the child needs for its root filesystem and sends it in one
/// message (the child reads it with `sys::receive_fds`).
pub fn hand_over(
    pid: Pid,
    rootfs: &rootfs::RootfsSpec,
    socket: &OwnedFd,
) -> Result<(), SpawnError> {
    // Its own words: "idmap bind mount /srv: ...", not an image error.
    let fds = rootfs::idmap::hand_over(rootfs, pid.as_raw())
        .map_err(|err| SpawnError::Setup(err.to_string()))?;
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let payload = [IoSlice::new(b"m")];
    // Nothing to hand over (no image, no bind mounts): the byte alone.
    let rights = [ControlMessage::ScmRights(&raw)];
    let rights: &[ControlMessage] = if raw.is_empty() { &[] } else { &rights };
    sendmsg::<()>(
        socket.as_raw_fd(),
        &payload,
        rights,
        MsgFlags::empty(),
        None,
    )
    // An io::Error: a closed socket (EPIPE) is the child's death, and its
    // own message says why (see `spawn::closed_by_child`).
    .map_err(|errno| io_error("send the mounts to the container")(errno.into()))?;
    Ok(())
}
