//! `supervisor check -c FILE` (being written).
use std::path::Path;
use std::process::ExitCode;
pub fn run(_path: &Path) -> anyhow::Result<ExitCode> {
    anyhow::bail!("check: not built yet")
}
