//! `supervisor check -c FILE`: validate a service list without running anything.

use std::path::Path;
use std::process::ExitCode;

/// Prints `FILE: N services OK` and succeeds, or prints every problem, one
/// `FILE:LINE:COLUMN: message` per line on stderr, and fails.
pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    match config::load(path) {
        Ok(config) => {
            println!("{}: {} services OK", path.display(), config.services.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}
