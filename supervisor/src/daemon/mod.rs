//! The daemon (being written).
use std::path::{Path, PathBuf};
use std::process::ExitCode;
pub fn run(_config: &Path, _state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    anyhow::bail!("daemon: not built yet")
}
