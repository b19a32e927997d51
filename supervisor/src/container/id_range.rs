//! Each service with a user namespace gets a private range of 65536 host ids
//! from `userns_pool`, the same at every start: its writable layer (and what
//! it wrote through its bind mounts) stays its own across restarts of the
//! service and of the daemon.
//!
//! The ranges are recorded in `state_dir/userns.json` (`{"NAME": FIRST_ID}`),
//! read and rewritten (atomically, by rename) under an flock of
//! `state_dir/userns.lock`, so that the daemon and `supervisor run` share
//! them. A recorded range is kept as long as it lies in the pool; a service
//! without one takes the first free range from a slot chosen by a hash of its
//! name, so that a lost state dir (a tmpfs after a reboot) mostly gives every
//! service its old range back, and clear of the ids that running user
//! namespaces map (another supervisor on another state_dir, other container
//! tools). Ranges are never given to two services: the record, not the hash,
//! decides.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use config::{UsernsPool, USERNS_RANGE};
use nix::fcntl::{Flock, FlockArg};

/// The record of which service has which range.
const RECORD: &str = "userns.json";
const LOCK: &str = "userns.lock";

#[derive(Debug, thiserror::Error)]
pub enum IdRangeError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a record of id ranges ({reason}); fix or remove it (every service then gets a range anew)", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("userns_pool is full: its {slots} ranges of {USERNS_RANGE} ids all belong to other services (see {}); make the pool larger", path.display())]
    PoolFull { slots: u32, path: PathBuf },
}

/// The first host id of service `name`'s range, recorded now if it had none.
pub fn allocate(state_dir: &Path, pool: &UsernsPool, name: &str) -> Result<u32, IdRangeError> {
    allocate_avoiding(state_dir, pool, name, ranges_in_use)
}

/// `allocate`, with the ranges in use on the host from `in_use`.
fn allocate_avoiding(
    state_dir: &Path,
    pool: &UsernsPool,
    name: &str,
    in_use: impl FnOnce() -> Vec<(u64, u64)>,
) -> Result<u32, IdRangeError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IdRangeError::Io { path, source }
    };
    std::fs::create_dir_all(state_dir).map_err(io(state_dir))?;
    let lock_path = state_dir.join(LOCK);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    let _lock =
        Flock::lock(lock, FlockArg::LockExclusive).map_err(|(_, errno)| IdRangeError::Io {
            path: lock_path.clone(),
            source: errno.into(),
        })?;
    let path = state_dir.join(RECORD);
    let mut ranges = read(&path)?;
    if let Some(start) = choose(&ranges, pool, name, in_use) {
        if ranges.get(name) != Some(&start) {
            ranges.insert(name.to_string(), start);
            write(&path, &ranges).map_err(io(&path))?;
        }
        return Ok(start);
    }
    Err(IdRangeError::PoolFull {
        slots: pool.slots(),
        path,
    })
}

/// `name`'s recorded range if it is still in the pool and its own, else the
/// first free one from its preferred slot on (free: recorded for no other
/// service, and mapped by no user namespace `in_use` lists); None when the
/// pool is full.
fn choose(
    ranges: &BTreeMap<String, u32>,
    pool: &UsernsPool,
    name: &str,
    in_use: impl FnOnce() -> Vec<(u64, u64)>,
) -> Option<u32> {
    let recorded_free = |start: u32| {
        ranges
            .iter()
            .all(|(other, &taken)| other == name || !overlap(start, taken))
    };
    if let Some(&start) = ranges.get(name) {
        if pool.holds(start) && recorded_free(start) {
            return Some(start);
        }
    }
    let in_use = in_use();
    let free = |start: u32| {
        let range = (u64::from(start), u64::from(USERNS_RANGE));
        recorded_free(start) && !in_use.iter().any(|&used| meet(range, used))
    };
    let slots = pool.slots();
    let preferred = (fnv1a(name.as_bytes()) % u64::from(slots)) as u32;
    (0..slots)
        .map(|i| pool.slot_start((preferred + i) % slots))
        .find(|&start| free(start))
}

fn overlap(a: u32, b: u32) -> bool {
    let n = u64::from(USERNS_RANGE);
    meet((u64::from(a), n), (u64::from(b), n))
}

/// Whether two ranges `(first, count)` share an id.
fn meet((a, a_count): (u64, u64), (b, b_count): (u64, u64)) -> bool {
    a < b + b_count && b < a + a_count
}

/// The host ids that the user namespaces of running processes map to other
/// ids (another supervisor's services on another state_dir, other container
/// tools): a new range stays clear of them. Read only when a service needs a
/// new range.
fn ranges_in_use() -> Vec<(u64, u64)> {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut ranges: Vec<(u64, u64)> = proc
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .flat_map(|entry| {
            ["uid_map", "gid_map"]
                .map(|map| std::fs::read_to_string(entry.path().join(map)).unwrap_or_default())
        })
        .flat_map(|text| mapped_ranges(&text))
        .collect();
    ranges.sort_unstable();
    ranges.dedup();
    ranges
}

/// `(first host id, count)` of each line of an id map that maps ids to others
/// (the initial namespace's `0 0 4294967295` maps every id to itself).
fn mapped_ranges(map: &str) -> Vec<(u64, u64)> {
    map.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().map(|f| f.parse::<u64>().ok());
            let (inside, outside, count) = (fields.next()??, fields.next()??, fields.next()??);
            (inside != outside).then_some((outside, count))
        })
        .collect()
}

/// FNV-1a: a hash that stays the same across builds and Rust versions.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn read(path: &Path) -> Result<BTreeMap<String, u32>, IdRangeError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(IdRangeError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let corrupt = |reason: String| IdRangeError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let ranges: BTreeMap<String, u32> =
        serde_json::from_slice(&text).map_err(|err| corrupt(err.to_string()))?;
    let mut seen: Vec<(&String, u32)> = Vec::new();
    for (name, &start) in &ranges {
        if u64::from(start) + u64::from(USERNS_RANGE) > u64::from(u32::MAX) {
            return Err(corrupt(format!(
                "{name}: range from {start} ends past the last id"
            )));
        }
        if let Some((other, _)) = seen.iter().find(|(_, taken)| overlap(start, *taken)) {
            return Err(corrupt(format!("{name} and {other} overlap")));
        }
        seen.push((name, start));
    }
    Ok(ranges)
}

/// Replaces the record atomically: a crash leaves the old one or the new one.
fn write(path: &Path, ranges: &BTreeMap<String, u32>) -> std::io::Result<()> {
    let temporary = path.with_extension("json.new");
    let mut file = File::create(&temporary)?;
    let mut text = serde_json::to_vec_pretty(ranges).map_err(std::io::Error::other)?;
    text.push(b'\n');
    file.write_all(&text)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `allocate` on a host where no user namespace maps anything.
    fn allocate(state_dir: &Path, pool: &UsernsPool, name: &str) -> Result<u32, IdRangeError> {
        allocate_avoiding(state_dir, pool, name, Vec::new)
    }

    const POOL: UsernsPool = UsernsPool {
        start: 100_000,
        size: 3 * USERNS_RANGE,
    };

    #[test]
    fn a_service_keeps_its_range_and_others_get_distinct_ones() {
        let dir = tempfile::tempdir().unwrap();
        let web = allocate(dir.path(), &POOL, "web").unwrap();
        let db = allocate(dir.path(), &POOL, "db").unwrap();
        let cache = allocate(dir.path(), &POOL, "cache").unwrap();
        let mut all = vec![web, db, cache];
        all.sort();
        assert_eq!(all, [100_000, 165_536, 231_072]);
        assert_eq!(allocate(dir.path(), &POOL, "web").unwrap(), web);
        let err = allocate(dir.path(), &POOL, "extra").unwrap_err();
        assert!(err.to_string().starts_with("userns_pool is full"), "{err}");
        let text = std::fs::read_to_string(dir.path().join(RECORD)).unwrap();
        assert!(text.contains(&format!("\"web\": {web}")), "{text}");
    }

    #[test]
    fn a_range_outside_a_changed_pool_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let old = allocate(dir.path(), &POOL, "web").unwrap();
        let moved = UsernsPool {
            start: 1 << 30,
            size: USERNS_RANGE,
        };
        let new = allocate(dir.path(), &moved, "web").unwrap();
        assert_eq!(new, 1 << 30);
        assert_ne!(new, old);
        assert_eq!(allocate(dir.path(), &moved, "web").unwrap(), new);
    }

    #[test]
    fn the_hash_picks_the_same_slot_without_a_record() {
        let pool = UsernsPool {
            start: 1 << 30,
            size: 1 << 28,
        };
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        assert_eq!(
            allocate(first.path(), &pool, "web").unwrap(),
            allocate(second.path(), &pool, "web").unwrap()
        );
    }

    #[test]
    fn a_new_range_avoids_ids_that_running_user_namespaces_map() {
        let none = BTreeMap::new();
        let used = mapped_ranges("0 0 4294967295\n         0     100000      65536\n");
        assert_eq!(used, [(100_000, 65536)]);
        let start = choose(&none, &POOL, "web", || used.clone()).unwrap();
        assert_ne!(start, 100_000);
        // A range of its own on record is kept, whoever else maps it now.
        let mut mine = BTreeMap::new();
        mine.insert("web".to_string(), 100_000);
        assert_eq!(choose(&mine, &POOL, "web", || used.clone()), Some(100_000));
        let everything = vec![(100_000, 3 * 65536)];
        assert_eq!(choose(&none, &POOL, "web", || everything), None);
    }

    #[test]
    fn a_corrupt_or_overlapping_record_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RECORD), "{\"web\": 100000, \"db\": 100001}").unwrap();
        let err = allocate(dir.path(), &POOL, "web").unwrap_err();
        assert!(err.to_string().contains("web and db overlap"), "{err}");
        std::fs::write(dir.path().join(RECORD), "[1]").unwrap();
        let err = allocate(dir.path(), &POOL, "web").unwrap_err();
        assert!(
            err.to_string().contains("not a record of id ranges"),
            "{err}"
        );
    }
}
