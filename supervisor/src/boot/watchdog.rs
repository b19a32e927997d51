//! The hardware watchdog (`system.watchdog`): opened and armed at boot, petted
//! from the daemon's event loop every half timeout (a timer, not a thread: a
//! hung loop stops petting and the hardware resets the machine), disarmed with
//! the magic close (`V`) on an orderly shutdown.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::sys;

pub struct Watchdog {
    file: File,
    interval: Duration,
    next: Instant,
    /// The test hook `supervisor.test_stop_petting`: armed, never petted.
    petting: bool,
}

impl Watchdog {
    pub fn open(config: &config::Watchdog, petting: bool) -> anyhow::Result<Watchdog> {
        let path = &config.device;
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        let asked = i32::try_from(config.timeout.as_secs()).unwrap_or(i32::MAX);
        let set = sys::set_timeout(file.as_fd(), asked)
            .with_context(|| format!("{}: set the timeout to {asked}s", path.display()))?;
        let interval = Duration::from_secs(u64::try_from(set.max(2)).unwrap_or(2)) / 2;
        let dog = Watchdog {
            file,
            interval,
            next: Instant::now() + interval,
            petting,
        };
        dog.pet();
        super::console::step(&format!(
            "watchdog {} armed: timeout {set}s, petted every {}s{}",
            path.display(),
            interval.as_secs_f32(),
            if petting {
                ""
            } else {
                " (test hook: it will not be petted)"
            }
        ));
        Ok(dog)
    }

    fn pet(&self) {
        if !self.petting {
            return;
        }
        if let Err(err) = sys::keepalive(self.file.as_fd()) {
            log::warn!("watchdog keepalive: {err}");
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.petting.then_some(self.next)
    }

    /// Pets it when due.
    pub fn tick(&mut self, now: Instant) {
        if self.petting && now >= self.next {
            self.pet();
            self.next = now + self.interval;
        }
    }

    /// The magic close: the driver stops the timer (unless built with nowayout).
    pub fn disarm(mut self) {
        match self.file.write_all(b"V") {
            Ok(()) => super::console::step("watchdog disarmed"),
            Err(err) => log::warn!("watchdog magic close: {err}"),
        }
    }
}
