//! `userns_pool`: the host ids from which services with a user namespace get
//! their private ranges.

use std::path::Path;

use crate::diagnostic::{Mark, Report};
use crate::read::{scalar_text, Fields};
use crate::tree::Node;
use crate::types::{UsernsPool, USERNS_RANGE};

const KEYS: &[&str] = &["start", "size"];

/// The highest id a range may use: (uid_t)-1 means "no id" to the kernel.
const LAST_ID: u64 = u32::MAX as u64 - 1;

/// Reads `{start: N, size: N}`; None (reported) when anything is wrong.
pub fn pool(report: &mut Report, node: &Node) -> Option<UsernsPool> {
    let fields = Fields::of(report, node, KEYS, "userns_pool")?;
    for key in KEYS {
        if fields.get(key).is_none() {
            report.error(node.mark, format!("userns_pool: missing key `{key}`"));
        }
    }
    let mut read = |key: &str, parse: fn(&Node) -> Result<u64, String>| {
        let node = fields.node(key)?;
        parse(node)
            .map_err(|why| report.error(node.mark, format!("userns_pool: {key}: {why}")))
            .ok()
    };
    let (start, size) = (read("start", start), read("size", size));
    let (start, size) = (start?, size?);
    let last = start + size - 1;
    if last > LAST_ID {
        let node = fields.node("size")?;
        report.error(
            node.mark,
            format!(
                "userns_pool: size: the pool would end at host id {last}, past {LAST_ID}, the highest one"
            ),
        );
        return None;
    }
    Some(UsernsPool {
        start: start as u32,
        size: size as u32,
    })
}

fn whole_number(node: &Node) -> Result<u64, String> {
    let text = scalar_text(node, "a whole number")?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` must be a whole number"));
    }
    text.parse::<u64>()
        .ok()
        .filter(|n| *n <= LAST_ID)
        .ok_or_else(|| format!("`{text}` must be at most {LAST_ID}"))
}

fn start(node: &Node) -> Result<u64, String> {
    let start = whole_number(node)?;
    if start < u64::from(USERNS_RANGE) {
        return Err(format!(
            "`{start}` overlaps the host's own ids 0 to 65535 (root and the users): \
             the pool must start at 65536 or above"
        ));
    }
    Ok(start)
}

fn size(node: &Node) -> Result<u64, String> {
    let size = whole_number(node)?;
    if size < u64::from(USERNS_RANGE) {
        return Err(format!(
            "`{size}` is too small for one service, which needs {USERNS_RANGE} ids"
        ));
    }
    if size % u64::from(USERNS_RANGE) != 0 {
        return Err(format!(
            "`{size}` must be a multiple of {USERNS_RANGE}, the ids of one service"
        ));
    }
    Ok(size)
}

/// Where the host hands out subordinate ids to users (rootless containers).
pub const SUBORDINATE_FILES: [&str; 2] = ["/etc/subuid", "/etc/subgid"];

/// Reports a pool that overlaps a user's subordinate ids in `files`: that
/// user's containers would share host ids with services. Unreadable or
/// missing files give nothing to compare with.
pub fn check_subordinate(report: &mut Report, mark: Mark, pool: &UsernsPool, files: &[&str]) {
    for file in files {
        let Ok(text) = std::fs::read_to_string(Path::new(file)) else {
            continue;
        };
        if let Some((user, first, count)) = subordinate_overlap(&text, pool) {
            let last = first + count - 1;
            let (pool_first, pool_last) =
                (pool.start, u64::from(pool.start) + u64::from(pool.size) - 1);
            report.error(
                mark,
                format!(
                    "userns_pool: {pool_first}-{pool_last} overlaps the ids {first}-{last} that {file} gives to {user}"
                ),
            );
        }
    }
}

/// The first `user:first:count` line of a subuid/subgid file whose ids meet the pool's.
fn subordinate_overlap(text: &str, pool: &UsernsPool) -> Option<(String, u64, u64)> {
    let (start, end) = (
        u64::from(pool.start),
        u64::from(pool.start) + u64::from(pool.size),
    );
    text.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let user = fields.next()?;
        let first: u64 = fields.next()?.parse().ok()?;
        let count: u64 = fields.next()?.parse().ok()?;
        (count > 0 && first < end && start < first + count)
            .then(|| (user.to_string(), first, count))
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::types::DEFAULT_USERNS_POOL;

    fn pool(yaml: &str) -> Result<crate::UsernsPool, String> {
        let text = format!("{yaml}services: {{}}\n");
        crate::parse_str(&text, Path::new("/x/s.yaml"))
            .map(|config| config.userns_pool)
            .map_err(|errors| errors.to_string())
    }

    #[test]
    fn a_pool_must_not_share_ids_with_users_subordinate_ranges() {
        let pool = crate::UsernsPool {
            start: 100_000,
            size: 655_360,
        };
        let text = "# comment\nalice:1000000:65536\nbob:700000:65536\nbad line\n";
        assert_eq!(
            super::subordinate_overlap(text, &pool),
            Some(("bob".to_string(), 700_000, 65536))
        );
        assert_eq!(
            super::subordinate_overlap("alice:1000000:65536\n", &pool),
            None
        );
        assert_eq!(
            super::subordinate_overlap("carol:755360:65536\n", &pool),
            None
        );
        assert!(super::subordinate_overlap("carol:755359:1\n", &pool).is_some());
    }

    #[test]
    fn the_default_pool_holds_4096_services_above_2_30() {
        assert_eq!(pool(""), Ok(DEFAULT_USERNS_POOL));
        assert_eq!(DEFAULT_USERNS_POOL.slots(), 4096);
        assert_eq!(DEFAULT_USERNS_POOL.slot_start(1), (1 << 30) + 65536);
    }

    #[test]
    fn a_pool_is_start_and_size() {
        let got = pool("userns_pool: {start: 100000, size: 655360}\n").unwrap();
        assert_eq!((got.start, got.size, got.slots()), (100000, 655360, 10));
        assert!(got.holds(100000) && got.holds(100000 + 9 * 65536));
        assert!(!got.holds(100000 + 9 * 65536 + 1) && !got.holds(99999));
    }

    #[test]
    fn a_pool_must_fit_one_service_and_stay_above_the_hosts_ids() {
        let cases = [
            (
                "userns_pool: {start: 1000, size: 65536}\n",
                "/x/s.yaml:1:22: userns_pool: start: `1000` overlaps the host's own ids 0 to 65535",
            ),
            (
                "userns_pool: {start: 100000, size: 1000}\n",
                "/x/s.yaml:1:36: userns_pool: size: `1000` is too small for one service, which needs 65536 ids",
            ),
            (
                "userns_pool: {start: 100000, size: 100000}\n",
                "/x/s.yaml:1:36: userns_pool: size: `100000` must be a multiple of 65536",
            ),
            (
                "userns_pool: {start: 4294901760, size: 65536}\n",
                "/x/s.yaml:1:40: userns_pool: size: the pool would end at host id 4294967295, past 4294967294",
            ),
            (
                "userns_pool: {start: -5, size: 1e6}\n",
                "/x/s.yaml:1:22: userns_pool: start: `-5` must be a whole number",
            ),
            (
                "userns_pool: \"100000-165535\"\n",
                "/x/s.yaml:1:14: userns_pool: expected a mapping, found `100000-165535`",
            ),
            (
                "userns_pool: {start: 100000}\n",
                "/x/s.yaml:1:14: userns_pool: missing key `size`",
            ),
            (
                "userns_pool: {begin: 100000, size: 65536}\n",
                "/x/s.yaml:1:15: unknown key `begin`",
            ),
        ];
        for (yaml, expected) in cases {
            let err = pool(yaml).unwrap_err();
            assert!(err.contains(expected), "{yaml}: {err}");
        }
    }
}
