//! `reload`: reconcile the running services with a re-read service list. New
//! services start (if autostart), removed ones stop, changed ones restart with
//! their new definition, untouched ones are left alone (running, frozen or not).

use config::Config;

use super::services::Services;
use super::supervised::Supervised;

impl Services {
    /// `new` is already validated. Returns start failures of new services (they
    /// are also in status and the logs); the reload itself has happened.
    pub fn reconcile(&mut self, new: Config) -> Vec<String> {
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

        for idx in 0..self.list.len() {
            let name = self.list[idx].name().to_string();
            if self.list[idx].removed {
                continue;
            }
            match self.config.service(&name).cloned() {
                None => {
                    self.logs
                        .note(&name, "removed from the service list: stopping");
                    self.list[idx].removed = true;
                    self.request_stop(idx, false);
                }
                Some(service)
                    if shared_changed
                        || (pool_changed && service.namespaces.user)
                        || service != self.list[idx].service
                        || crate::net::networks_changed(&old, &self.config, &service) =>
                {
                    // A pending restart needs a group with the new limits (or parent).
                    self.discard_kept_cgroup(idx);
                    let svc = &mut self.list[idx];
                    svc.service = service;
                    svc.delay = svc.service.restart_delay;
                    if svc.is_up() {
                        self.logs.note(&name, "definition changed: restarting");
                        self.request_stop(idx, true);
                    }
                }
                Some(_) => {}
            }
        }

        let mut added = Vec::new();
        for service in &self.config.services {
            if self.index(&service.name).is_none() {
                added.push(service.name.clone());
                self.list.push(Supervised::new(service.clone()));
            }
        }
        // Keep the file's order for status; services on their way out go last.
        let order: Vec<&str> = self
            .config
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        self.list.sort_by_key(|s| {
            if s.removed {
                usize::MAX
            } else {
                order
                    .iter()
                    .position(|n| *n == s.name())
                    .unwrap_or(usize::MAX)
            }
        });

        self.advance_stops();
        let autostart: Vec<String> = self
            .config
            .start_order()
            .into_iter()
            .filter(|s| s.autostart && added.contains(&s.name))
            .map(|s| s.name.clone())
            .collect();
        autostart
            .into_iter()
            .filter_map(|name| self.start(&name).err())
            .collect()
    }
}
