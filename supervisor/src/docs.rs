//! Shell completions and man pages, generated from the CLI definition so that
//! they never drift from it.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut command = visible(Cli::command());
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut command, "supervisor", &mut out);
    out.flush().context("write the completion script")
}

/// Writes `supervisor.1` and one `supervisor-VERB.1` (`supervisor-image-ls.1`
/// for nested verbs) per visible command into `dir`; prints what it wrote.
pub fn manpages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut command = Cli::command();
    command.build();
    write_pages(dir, &command, "supervisor")
}

/// `command` without its hidden subcommands: clap_complete offers them
/// otherwise, and the internal `container-setup` is not for users.
fn visible(command: clap::Command) -> clap::Command {
    let subcommands: Vec<clap::Command> = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .cloned()
        .collect();
    clap::Command::new("supervisor")
        .version(env!("CARGO_PKG_VERSION"))
        .args(command.get_arguments().cloned())
        .subcommands(subcommands)
}

fn write_pages(dir: &Path, command: &clap::Command, name: &str) -> anyhow::Result<()> {
    let page = command
        .clone()
        .display_name(name.to_owned())
        .bin_name(name.replace('-', " "))
        .version(env!("CARGO_PKG_VERSION"));
    let path = dir.join(format!("{name}.1"));
    let mut text = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut text)
        .with_context(|| format!("render {}", path.display()))?;
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    println!("{}", path.display());
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(dir, sub, &format!("{name}-{}", sub.get_name()))?;
    }
    Ok(())
}
