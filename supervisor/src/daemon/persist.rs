//! Keeping each service's state on disk as it changes (see `state_file`):
//! after every step of its lifecycle, its record is written if it changed
//! (or removed once it has no running init), and its stopped mark follows
//! its state.

use std::collections::HashMap;

use super::lifecycle::{After, State};
use super::services::Services;
use super::state_file::{self, ServiceRecord};
use super::supervised::Run;
use crate::container;

impl Services {
    /// Writes service `id`'s state record if it changed; removes it once
    /// the service has no running init.
    pub(super) fn persist(&mut self, id: u64) {
        if let Some(idx) = self.position(id) {
            let name = self.list[idx].name();
            let stopped = matches!(
                self.list[idx].life.state,
                State::Stopped | State::Exited | State::Failed
            );
            if stopped != self.marked_stopped.contains(name) {
                state_file::mark_stopped(&self.config.state_dir, name, stopped);
                if stopped {
                    self.marked_stopped.insert(name.to_string());
                } else {
                    self.marked_stopped.remove(name);
                }
            }
        }
        let record = self.position(id).and_then(|idx| {
            let svc = &self.list[idx];
            let state = &svc.life.state;
            let Run::Up(container) = &svc.run else {
                return None;
            };
            if !state.is_up() && state.then().is_none() {
                return None;
            }
            let pid = container.pid().as_raw();
            let previous = self.recorded.get(&id).filter(|r| r.pid == pid);
            let start_time = match previous {
                Some(previous) => previous.start_time,
                None => state_file::start_time(pid)?,
            };
            // Kept from the run's first record: the same moment however often it is written.
            let up_since = match (previous, state.since()) {
                (Some(previous), _) if previous.up_since > 0.0 => previous.up_since,
                (_, Some(since)) => {
                    state_file::wall_seconds(std::time::SystemTime::now() - since.elapsed())
                }
                _ => 0.0,
            };
            Some(ServiceRecord {
                name: svc.name().to_string(),
                pid,
                start_time,
                container: container.record(),
                restarts: svc.life.restarts,
                frozen: matches!(state, State::Frozen { .. } | State::Thawing { .. }),
                stopping: state.then().is_some(),
                restarting: state.then() == Some(After::Start),
                up_since,
                log_fd: container::HELD_LOG_FD,
                ready: svc.life.ready,
                partial_line: Vec::new(),
            })
        });
        let state_dir = &self.config.state_dir;
        match record {
            Some(record) if self.recorded.get(&id) != Some(&record) => {
                if let Err(err) = state_file::write(state_dir, &record) {
                    log::warn!("{}: writing its state record: {err}", record.name);
                }
                self.recorded.insert(id, record);
            }
            Some(_) => {}
            None => {
                if let Some(record) = self.recorded.remove(&id) {
                    state_file::remove(state_dir, &record.name);
                }
            }
        }
    }

    /// Writes the records whose line start changed: the start of a line
    /// the log pipes hold (`reexec`: the next image continues it).
    pub fn persist_partial_lines(&mut self, partial: &HashMap<String, Vec<u8>>) {
        for record in self.recorded.values_mut() {
            let start = partial.get(&record.name).cloned().unwrap_or_default();
            if record.partial_line == start {
                continue;
            }
            record.partial_line = start;
            if let Err(err) = state_file::write(&self.config.state_dir, record) {
                log::warn!("{}: writing its state record: {err}", record.name);
            }
        }
    }

    /// An adopted service's record, as on disk (not written again).
    pub(super) fn recorded_as(&mut self, id: u64, record: ServiceRecord) {
        self.recorded.insert(id, record);
    }
}
