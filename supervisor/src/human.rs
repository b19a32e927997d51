//! Numbers for people: sizes and durations in tables.

/// `512B`, `1.5KiB`, `64.0MiB`: powers of 1024, one decimal.
pub fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// `45s`, `5m12s`, `3d4h`: the two largest units of a duration in seconds.
pub fn duration(secs: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let Some(first) = UNITS.iter().position(|&(size, _)| secs >= size) else {
        return "0s".to_string();
    };
    let (size, unit) = UNITS[first];
    let mut text = format!("{}{unit}", secs / size);
    if let Some(&(next, next_unit)) = UNITS.get(first + 1) {
        let rest = secs % size / next;
        if rest > 0 {
            text.push_str(&format!("{rest}{next_unit}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::bytes(512), "512B");
        assert_eq!(super::bytes(3 * 1024 * 1024 / 2), "1.5MiB");
    }

    #[test]
    fn durations() {
        assert_eq!(super::duration(0), "0s");
        assert_eq!(super::duration(45), "45s");
        assert_eq!(super::duration(5 * 60 + 12), "5m12s");
        assert_eq!(super::duration(3600), "1h");
        assert_eq!(super::duration(3 * 86_400 + 4 * 3600 + 59), "3d4h");
    }
}
