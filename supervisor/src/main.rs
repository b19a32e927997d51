//! `supervisor`: the daemon that runs an appliance's services, and the CLI that drives it.

mod boot;
mod check;
mod cli;
mod client;
mod container;
mod daemon;
mod docs;
mod events_cmd;
mod export;
mod host_cpus;
mod human;
mod image_cmd;
mod inspect;
mod logs;
mod net;
mod own_cgroup;
mod protocol;
mod sd_notify;
mod stats;
mod usage;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("SUPERVISOR_LOG", "info"))
        .format_timestamp_millis()
        .init();
    if boot::wanted(&std::env::args_os().collect::<Vec<_>>()) {
        boot::main();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage::report(error),
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line: the context chain joined, never a backtrace.
            eprintln!("supervisor: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let state_dir = cli.state_dir;
    match cli.command {
        Command::Check(arg) => check::run(&arg.config),
        Command::Boot => boot::main(),
        Command::Daemon(arg) => daemon::run(
            &arg.config.config,
            arg.state_dir.or(state_dir),
            arg.reexec_fds.as_deref(),
        ),
        Command::Run {
            config,
            tty,
            name,
            command,
        } => container::run_foreground(&config.config, &name, command, tty),
        Command::Export { config, name, dir } => {
            export::run(&config.config, &name, &dir).map(|()| ExitCode::SUCCESS)
        }
        Command::ContainerSetup => container::setup_main(),
        Command::ExecSetup => container::exec_setup_main(),
        Command::Completions { shell } => docs::completions(shell).map(|()| ExitCode::SUCCESS),
        Command::Manpages { dir } => docs::manpages(&dir).map(|()| ExitCode::SUCCESS),
        Command::Image(cmd) => image_cmd::run(cmd),
        other => client::run(other, state_dir),
    }
}
