//! Which names are acceptable: services, images, accounts, cgroup paths.

/// `[a-z0-9][a-z0-9_-]{0,62}`
pub fn is_service_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// An image name is a single directory name under `images_dir`: letters,
/// digits, `.`, `_`, `-`, not starting with a dot (so never `.` or `..`).
pub fn is_image_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A user or group name as useradd accepts them.
pub fn is_account_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=32).contains(&bytes.len())
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A relative cgroup path such as `supervisor` or `appliance/services`: the
/// cgroups crate's rule, which applies it.
pub use cgroups::is_cgroup_path;

/// What sethostname(2) accepts, minus what would only confuse: 1 to 64
/// bytes, no whitespace or control characters.
pub fn is_hostname(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        for good in ["web", "db-1", "a", "0x", "a_b", &"a".repeat(63)] {
            assert!(is_service_name(good), "{good}");
        }
        for bad in [
            "",
            "Web",
            "-web",
            "_web",
            "web.1",
            "we b",
            "wéb",
            &"a".repeat(64),
        ] {
            assert!(!is_service_name(bad), "{bad}");
        }
    }

    #[test]
    fn image_names() {
        for good in ["busybox", "alpine-3.19", "my_image"] {
            assert!(is_image_name(good), "{good}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", "a\0"] {
            assert!(!is_image_name(bad), "{bad}");
        }
    }

    #[test]
    fn account_names() {
        assert!(is_account_name("www-data"));
        assert!(is_account_name("_apt"));
        assert!(!is_account_name("1abc"));
        assert!(!is_account_name("a:b"));
        assert!(!is_account_name(""));
    }

    #[test]
    fn hostnames() {
        assert!(is_hostname("web"));
        assert!(is_hostname("web_1.local"));
        assert!(!is_hostname(""));
        assert!(!is_hostname("a b"));
        assert!(!is_hostname(&"a".repeat(65)));
    }
}
