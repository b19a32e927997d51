//! Root filesystems: importing them safely into an images directory, and
//! setting one up inside a service's new mount namespace.

pub mod busybox;
mod cgroupfs;
mod compress;
mod copy;
mod dev;
mod error;
mod fsroot;
pub mod idmap;
mod mounts;
mod oci;
mod procfs;
mod progress;
mod rootfs;
mod statedir;
mod store;
#[allow(unsafe_code)]
mod sys;
mod unpack;
mod writer;

pub use cgroupfs::CgroupView;
pub use dev::{host_device_nodes, DeviceNode};
pub use error::Error;
pub use procfs::{MASKED as MASKED_PATHS, READONLY as READONLY_PATHS};
pub use progress::{Progress, ProgressFn};
pub use rootfs::{setup_rootfs, setup_rootfs_in_userns, BindMount, RootfsSpec};
pub use store::{
    build_busybox, import, lease, list, remove, resolve_image, validate_name, Existing, ImageInfo,
    ImageLease,
};
pub use sys::openat_in_root;
