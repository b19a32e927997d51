//! "did you mean" hints for misspelt keys, names and values.

/// `", did you mean X?"` when one of `known` is close to `word`, else empty.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, known)
        .map(|k| format!(", did you mean {k}?"))
        .unwrap_or_default()
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
