//! Root filesystems: importing them, and setting them up inside a new mount namespace.
