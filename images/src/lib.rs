//! Root filesystems: importing them safely into an images directory, and
//! setting one up inside a service's new mount namespace.

pub mod busybox;
mod cgroupfs;
mod compress;
mod copy;
mod dev;
mod error;
mod fsroot;
mod mounts;
mod oci;
mod procfs;
mod progress;
mod rootfs;
mod statedir;
mod store;
mod sys;
mod unpack;
mod writer;

pub use cgroupfs::CgroupView;
pub use error::Error;
pub use progress::{Progress, ProgressFn};
pub use rootfs::{setup_rootfs, BindMount, RootfsSpec};
pub use store::{
    build_busybox, import, lease, list, remove, resolve_image, validate_name, ImageInfo, ImageLease,
};
