//! `supervisor image ...` (being written).
use std::process::ExitCode;
use crate::cli::ImageCommand;
pub fn run(_cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("image: not built yet")
}
