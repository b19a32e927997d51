//! Client verbs: talk to the daemon over its control socket (being written).
use std::path::PathBuf;
use std::process::ExitCode;
use crate::cli::Command;
pub fn run(_cmd: Command, _state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    anyhow::bail!("client: not built yet")
}
