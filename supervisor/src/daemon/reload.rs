//! `reload`: reconcile the running services with a re-read service list. New
//! services start (if autostart), removed ones stop, changed ones restart with
//! their new definition (a failed one starts again if autostart), untouched
//! ones are left alone (running, frozen or not).

use config::Config;

use super::lifecycle::{Event, Policy};
use super::services::Services;
use crate::protocol::{EventDetails, EventKind, ReloadReport};

/// The `reloaded` event of a service a reload `added`, `changed` or `removed`.
fn reloaded(change: &str) -> EventDetails {
    EventDetails {
        change: Some(change.to_string()),
        ..EventDetails::default()
    }
}

impl Services {
    /// `new` is already validated. Returns what was done and the services
    /// being started, whose results complete the report.
    pub fn reconcile(&mut self, new: Config) -> (ReloadReport, Vec<String>) {
        let old = std::mem::replace(&mut self.config, new);
        // Settings every service's container depends on.
        let shared_changed = old.cgroup_parent != self.config.cgroup_parent
            || old.cgroup_driver != self.config.cgroup_driver
            || old.images_dir != self.config.images_dir;
        // Services with a user namespace may have a range outside a new pool.
        let pool_changed = old.userns_pool != self.config.userns_pool;
        if let Err(err) = crate::net::Host::reload(&old, &self.config) {
            log::warn!("networks: {err}");
        }
        if old.cgroup_parent != self.config.cgroup_parent
            || old.cgroup_driver != self.config.cgroup_driver
        {
            self.old_cgroup_parents
                .push((old.cgroup_driver, old.cgroup_parent.clone()));
        }

        let mut report = ReloadReport::default();
        let mut starting = Vec::new();
        let ids: Vec<u64> = self
            .list
            .iter()
            .filter(|s| !s.removed())
            .map(|s| s.id)
            .collect();
        for id in ids {
            let Some(idx) = self.list.iter().position(|s| s.id == id) else {
                continue;
            };
            let name = self.list[idx].name().to_string();
            match self.config.service(&name).cloned() {
                None => {
                    self.events
                        .emit(&name, EventKind::Reloaded, reloaded("removed"));
                    report.removed.push(name);
                    self.feed(id, Event::Removed);
                }
                Some(service)
                    if shared_changed
                        || (pool_changed && service.namespaces.user)
                        || service != self.list[idx].service
                        || crate::net::networks_changed(&old, &self.config, &service) =>
                {
                    let svc = &mut self.list[idx];
                    svc.policy = Policy::of(&service);
                    svc.service = service;
                    let had_run = svc.life.state.has_run();
                    self.events
                        .emit(&name, EventKind::Reloaded, reloaded("changed"));
                    self.feed(id, Event::Changed);
                    let Some(idx) = self.list.iter().position(|s| s.id == id) else {
                        continue;
                    };
                    let state = &self.list[idx].life.state;
                    if had_run || state.then().is_some() {
                        report.restarted.push(name.clone());
                        starting.push(name);
                    } else if matches!(state, super::lifecycle::State::Pending) {
                        // A failed autostart service, started again.
                        report.restarted.push(name.clone());
                        starting.push(name);
                    } else {
                        report.updated.push(name);
                    }
                }
                Some(_) => report.unchanged.push(name),
            }
        }

        let mut added = Vec::new();
        for service in self.config.services.clone() {
            if self.index(&service.name).is_none() {
                added.push(service.name.clone());
                self.events
                    .emit(&service.name, EventKind::Reloaded, reloaded("added"));
                self.add(service);
            }
        }
        // Keep the file's order for status; services on their way out go last.
        let order: Vec<String> = self
            .config
            .services
            .iter()
            .map(|s| s.name.clone())
            .collect();
        self.list.sort_by_key(|s| {
            if s.removed() {
                usize::MAX
            } else {
                order
                    .iter()
                    .position(|n| n == s.name())
                    .unwrap_or(usize::MAX)
            }
        });
        let autostart: Vec<String> = self
            .config
            .start_order()
            .into_iter()
            .filter(|s| s.autostart && added.contains(&s.name))
            .map(|s| s.name.clone())
            .collect();
        for name in &autostart {
            self.start(name);
        }
        starting.extend(autostart);
        report.added = added;
        (report, starting)
    }
}
