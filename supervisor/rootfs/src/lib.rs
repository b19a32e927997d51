//! A service's root filesystem, set up inside its new mount namespace: the
//! image as an overlay or read-only, `/proc`, `/dev`, `/sys`, bind mounts,
//! `pivot_root`, and its own view of `/sys/fs/cgroup`. `Root`, the directory
//! every path is resolved inside, is shared with image extraction.

mod cgroupfs;
mod dev;
mod error;
mod fsroot;
pub mod idmap;
mod mounts;
mod procfs;
mod setup;
mod statedir;
#[allow(unsafe_code)]
mod sys;

pub use cgroupfs::CgroupView;
pub use dev::{host_device_nodes, DeviceNode};
pub use error::Error;
pub use fsroot::Root;
pub use procfs::{MASKED as MASKED_PATHS, READONLY as READONLY_PATHS};
pub use setup::{setup_rootfs, setup_rootfs_in_userns, BindMount, RootfsSpec};
pub use sys::openat_in_root;
