//! The appliance's service list (YAML): typed, validated, with errors that name
//! file, line and column.

pub mod types;

pub use types::*;
