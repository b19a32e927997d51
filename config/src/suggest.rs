//! "did you mean" hints for misspelt keys, names and values.

/// `", did you mean X?"` when one of `known` is close to `word`, else empty.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, known)
        .map(|k| format!(", did you mean {k}?"))
        .unwrap_or_default()
}

/// Compose's names for what this file spells differently: (Compose's, ours).
const COMPOSE_NAMES: &[(&str, &str)] = &[
    ("volumes", "mounts"),
    ("environment", "env"),
    ("stop_grace_period", "stop_timeout"),
    ("working_dir", "workdir"),
    ("read_only", "readonly_rootfs"),
    ("deploy", "limits"),
    ("mem_limit", "limits: {memory}"),
    ("memswap_limit", "limits: {memory_swap}"),
    ("pids_limit", "limits: {pids}"),
    ("blkio_config", "limits: {io_weight}"),
    ("entrypoint", "command"),
];

/// The hint for an unknown key: a pointer to our name when `word` is
/// Compose's name for one of `known`, else a "did you mean" as above.
pub fn unknown_key_hint<'a>(
    word: &str,
    known: impl IntoIterator<Item = &'a str> + Clone,
) -> String {
    let ours = COMPOSE_NAMES
        .iter()
        .find(|(compose, _)| *compose == word)
        .map(|(_, ours)| *ours)
        .filter(|ours| {
            let key = ours.split(':').next().unwrap_or(ours);
            known.clone().into_iter().any(|k| k == key)
        });
    match ours {
        Some(ours) => format!(": Compose's `{word}` is `{ours}` here"),
        None => did_you_mean(word, known),
    }
}

/// The known word closest to `word`, if it is close enough to be a likely typo:
/// at most a third of its letters (at least one) edited.
pub fn closest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    known
        .into_iter()
        .map(|k| {
            (
                strsim::damerau_levenshtein(&word, &k.to_ascii_lowercase()),
                k,
            )
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composes_names_point_to_ours() {
        let keys = ["mounts", "env", "stop_timeout", "limits"];
        assert_eq!(
            unknown_key_hint("volumes", keys),
            ": Compose's `volumes` is `mounts` here"
        );
        assert_eq!(
            unknown_key_hint("mem_limit", keys),
            ": Compose's `mem_limit` is `limits: {memory}` here"
        );
        assert_eq!(unknown_key_hint("envv", keys), ", did you mean env?");
        // Only where the key is one of this mapping's.
        assert_eq!(unknown_key_hint("volumes", ["source", "target"]), "");
    }

    #[test]
    fn suggests_the_closest_known_word() {
        let keys = ["command", "image", "env", "restart", "restart_delay"];
        assert_eq!(closest("comand", keys), Some("command"));
        assert_eq!(closest("imgae", keys), Some("image"));
        assert_eq!(closest("restart_dealy", keys), Some("restart_delay"));
        assert_eq!(did_you_mean("comand", keys), ", did you mean command?");
    }

    #[test]
    fn stays_quiet_when_nothing_is_close() {
        let keys = ["command", "image", "env"];
        assert_eq!(closest("volumes", keys), None);
        assert_eq!(did_you_mean("x", keys), "");
        assert_eq!(closest("", keys), None);
    }
}
