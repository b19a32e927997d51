//! `supervisor daemon -c FILE`: runs the appliance's services and answers the
//! CLI on state_dir/control.sock until SIGTERM, SIGINT or `supervisor shutdown`.

mod control;
mod event_loop;
mod lifecycle;
mod outbox;
mod output;
mod poller;
mod reload;
mod requests;
mod services;
mod supervised;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use anyhow::Context;
use nix::sys::signal::{sigprocmask, SigmaskHow};

use crate::protocol;
use event_loop::Daemon;
use output::LogFiles;
use services::Services;

pub fn run(config_path: &Path, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut config = match config::load(config_path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{}", errors.to_string().trim_end());
            return Ok(ExitCode::FAILURE);
        }
    };
    let overridden = state_dir.is_some();
    if let Some(dir) = state_dir {
        config.state_dir = dir;
    }
    let state_dir = config.state_dir.clone();
    crate::container::secure_state_dir(&state_dir)?;
    let _lock = control::lock_state_dir(&state_dir)?;
    let gid = control::control_gid(config.control_group.as_deref())?;
    // Group members reach the socket and the logs through the (0711) state_dir.
    control::share_state_dir(&state_dir, gid)?;
    let logs_dir = state_dir.join(protocol::LOGS_DIR);
    match cgroups::detect_layout() {
        Ok(layout) => log::info!(
            "cgroup layout: {layout:?}, driver {:?}",
            config.cgroup_driver
        ),
        Err(err) => log::warn!("cgroup layout: {err}"),
    }
    crate::own_cgroup::prepare(&config, crate::own_cgroup::DAEMON_LEAF)?;

    // Block the signals the loop reads from its signalfd before anything can
    // deliver them (services are started from this thread only).
    sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&event_loop::handled_signals()),
        None,
    )
    .context("sigprocmask")?;
    // What a crashed daemon left goes; the networks in use come up.
    crate::net::Host::start(&config).context("networks")?;
    let listener = control::bind(&state_dir, gid)?;
    log::info!(
        "listening on {}",
        protocol::socket_path(&state_dir).display()
    );
    let poller = Rc::new(poller::Poller::new().context("epoll_create")?);
    let services = Services::new(config, LogFiles::new(logs_dir), poller.clone());
    let result = Daemon::new(
        listener,
        state_dir.clone(),
        overridden,
        gid,
        poller,
        services,
    )
    .and_then(Daemon::run);
    if let Err(err) = crate::net::Host::stop(&state_dir) {
        log::warn!("removing the networks: {err}");
    }
    if result.is_err() {
        let _ = std::fs::remove_file(protocol::socket_path(&state_dir));
    }
    result.map(|()| ExitCode::SUCCESS)
}
