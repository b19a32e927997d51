//! The one rule for cgroup paths, shared with the config file's check.

/// A relative cgroup path such as `supervisor` or `appliance/services`: parts
/// of letters, digits, `.`, `_` and `-`, none empty, `.` or `..`.
pub fn is_cgroup_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

#[cfg(test)]
mod tests {
    use super::is_cgroup_path;

    #[test]
    fn cgroup_paths() {
        assert!(is_cgroup_path("supervisor"));
        assert!(is_cgroup_path("appliance/services"));
        for bad in [
            "",
            "/supervisor",
            "a/",
            "a//b",
            "..",
            "a/../b",
            "a b",
            "a\0b",
        ] {
            assert!(!is_cgroup_path(bad), "{bad}");
        }
    }
}
