//! `supervisor daemon -c FILE`: runs the appliance's services and answers the
//! CLI on state_dir/control.sock until SIGTERM, SIGINT or `supervisor shutdown`.

mod adopt;
mod control;
mod event_loop;
mod events;
mod health;
mod lifecycle;
mod notify;
mod outbox;
mod output;
mod persist;
mod poller;
mod readiness;
mod reexec;
mod reload;
mod requests;
mod services;
mod state_file;
mod subscribers;
mod supervised;
#[allow(unsafe_code)]
mod sys;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use anyhow::Context;
use nix::sys::signal::{sigprocmask, SigmaskHow};

use crate::protocol;
use event_loop::Daemon;
use output::LogFiles;
use services::Services;

pub fn run(
    config_path: &Path,
    state_dir: Option<PathBuf>,
    reexec_fds: Option<&str>,
) -> anyhow::Result<ExitCode> {
    // First: whatever else fails, these descriptors are not left open.
    let inherited = reexec_fds.map(reexec::inherited).transpose()?;
    let config_text = std::fs::read_to_string(config_path).unwrap_or_default();
    let config = match config::load(config_path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{}", errors.to_string().trim_end());
            return Ok(ExitCode::FAILURE);
        }
    };
    run_loaded(config, config_text, state_dir, inherited)
}

/// The daemon on a service list already loaded (`supervisor boot` reads it first
/// for its `system:` section).
/// `config_text` is the file's text, recorded for a daemon that adopts the
/// services after a crash; `inherited`, what a reexec handed over.
pub fn run_loaded(
    mut config: config::Config,
    config_text: String,
    state_dir: Option<PathBuf>,
    inherited: Option<reexec::Inherited>,
) -> anyhow::Result<ExitCode> {
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
    let (listener, reexec_client) = match inherited {
        Some(inherited) => (inherited.listener, Some(inherited.client)),
        None => (control::bind(&state_dir, gid)?, None),
    };
    log::info!(
        "listening on {}",
        protocol::socket_path(&state_dir).display()
    );
    let poller = Rc::new(poller::Poller::new().context("epoll_create")?);
    let services = adopt_services(config, config_text, LogFiles::new(logs_dir), poller.clone());
    let result = Daemon::new(
        listener,
        state_dir.clone(),
        overridden,
        gid,
        poller,
        services,
    )
    .and_then(|mut daemon| {
        daemon.reexec_client = reexec_client;
        daemon.run()
    });
    if let Err(err) = crate::net::Host::stop(&state_dir) {
        log::warn!("removing the networks: {err}");
    }
    if result.is_err() {
        let _ = std::fs::remove_file(protocol::socket_path(&state_dir));
    }
    result.map(|()| ExitCode::SUCCESS)
}

/// The services, with those an earlier daemon left running adopted (see
/// `adopt`): under the service list that daemon ran, then reconciled with
/// `config` as `reload` would if the file changed meanwhile.
fn adopt_services(
    config: config::Config,
    text: String,
    logs: LogFiles,
    poller: Rc<poller::Poller>,
) -> Services {
    let state_dir = config.state_dir.clone();
    let earlier = state_file::read_config(&state_dir)
        .filter(|earlier| earlier.text != text || earlier.path != config.path)
        .and_then(
            |earlier| match config::parse_bytes(earlier.text.as_bytes(), &earlier.path) {
                Ok(mut earlier) => {
                    earlier.state_dir = state_dir.clone();
                    Some(earlier)
                }
                Err(errors) => {
                    log::warn!("the earlier daemon's service list: {errors}");
                    None
                }
            },
        );
    let record = state_file::ConfigRecord {
        path: config.path.clone(),
        text,
    };
    let mut services = match earlier {
        Some(earlier) => {
            let mut services = Services::new(earlier, logs, poller);
            services.adopt_all();
            let (report, _) = services.reconcile(config);
            log::info!("the service list changed while no daemon ran: {report:?}");
            services
        }
        None => {
            let mut services = Services::new(config, logs, poller);
            services.adopt_all();
            services
        }
    };
    if let Err(err) = state_file::write_config(&state_dir, &record) {
        log::warn!("recording the service list: {err}");
    }
    services.settle();
    services
}
