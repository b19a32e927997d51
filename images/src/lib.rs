//! Images: importing root filesystems safely into an images directory, and
//! the store that holds them.

mod archive_path;
pub mod busybox;
mod compress;
mod copy;
mod error;
mod oci;
mod progress;
mod store;
#[allow(unsafe_code)]
mod sys;
mod unpack;
mod writer;

pub use error::Error;
pub use progress::{Progress, ProgressFn};
pub use store::{
    build_busybox, import, lease, list, remove, resolve_image, validate_name, Existing, ImageInfo,
    ImageLease,
};
