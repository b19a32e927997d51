//! Scalar values with units: durations, sizes, CPUs, signals, users.
//! Each parser takes the text as written and explains what it expects.

use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::suggest::did_you_mean;
use crate::types::User;

// The CFS period and minimum quota are the cgroups crate's, which applies them.
use cgroups::{CPU_PERIOD_US, CPU_QUOTA_MIN_US};

/// The longest duration accepted: one year, far beyond any sensible delay or
/// timeout, and small enough that the daemon's clock arithmetic cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(8760 * 3600);

/// `100ms`, `1.5s`, `10s`, `2m`, `1h`; at most MAX_DURATION.
pub fn duration(text: &str) -> Result<Duration, String> {
    let malformed = || {
        format!(
            "malformed duration `{text}`: use a number with ms, s, m or h, e.g. 100ms, 1.5s, 2m"
        )
    };
    if text.starts_with('-') {
        return Err(format!("duration `{text}` is negative"));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(malformed()),
    };
    let number: f64 = number.parse().map_err(|_| malformed())?;
    let too_long = || format!("duration `{text}` is too long (at most 8760h, one year)");
    match Duration::try_from_secs_f64(number * seconds_per_unit) {
        Ok(duration) if duration <= MAX_DURATION => Ok(duration),
        _ => Err(too_long()),
    }
}

/// Bytes, or a number with a unit as Docker and Compose write them: `K`, `M`,
/// `G` (or `KB`, `MB`, `GB`, `KiB`, ...; any case), powers of 1024 as Docker
/// takes them, fractions allowed (`1.5g`); more than 0.
pub fn size(text: &str) -> Result<u64, String> {
    let malformed = || {
        format!("malformed size `{text}`: use bytes or a number with K, M or G, e.g. 64M or 1.5G")
    };
    if text.starts_with('-') {
        return Err(format!("size `{text}` must be greater than 0"));
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B').filter(|u| !u.is_empty()))
        .unwrap_or(&unit);
    let multiplier: u64 = match unit {
        "" | "B" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(malformed()),
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(malformed());
    }
    let too_large = || format!("size `{text}` is too large");
    let bytes = if number.contains('.') {
        let value: f64 = number.parse().map_err(|_| malformed())?;
        let bytes = value * multiplier as f64;
        if bytes >= u64::MAX as f64 {
            return Err(too_large());
        }
        bytes.round() as u64
    } else {
        let whole: u64 = number.parse().map_err(|_| too_large())?;
        whole.checked_mul(multiplier).ok_or_else(too_large)?
    };
    if bytes == 0 {
        return Err(format!("size `{text}` must be greater than 0"));
    }
    Ok(bytes)
}

/// CPUs as a decimal number, e.g. `0.5` or `2`, expressible as a CFS quota.
pub fn cpus(text: &str) -> Result<f64, String> {
    let cpus: f64 = text
        .parse()
        .ok()
        .filter(|c: &f64| c.is_finite())
        .ok_or_else(|| format!("malformed number of CPUs `{text}`: use e.g. 0.5 or 2"))?;
    if cpus <= 0.0 {
        return Err(format!("`{text}` must be greater than 0"));
    }
    let min = CPU_QUOTA_MIN_US as f64 / CPU_PERIOD_US as f64;
    if cpus < min {
        return Err(format!(
            "`{text}` is below the kernel's minimum of {min} CPUs"
        ));
    }
    // cgroup v1 takes the quota as a signed 64-bit number of microseconds.
    if cpus * CPU_PERIOD_US as f64 >= i64::MAX as f64 {
        return Err(format!("`{text}` is too large"));
    }
    Ok(cpus)
}

/// A whole number within `min..=max`.
pub fn number_in(text: &str, min: u64, max: u64) -> Result<u64, String> {
    let out_of_range = || {
        if max == u64::MAX {
            format!("`{text}` must be a whole number of at least {min}")
        } else {
            format!("`{text}` must be a whole number from {min} to {max}")
        }
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(out_of_range());
    }
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(out_of_range()),
    }
}

/// `TERM`, `SIGTERM`, `term` or `15`.
pub fn signal(text: &str) -> Result<Signal, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i32>()
            .ok()
            .and_then(|n| Signal::try_from(n).ok())
            .ok_or_else(|| format!("unknown signal number {text}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    Signal::from_str(&format!("SIG{name}")).map_err(|_| {
        let names: Vec<&str> = Signal::iterator().map(|s| &s.as_str()[3..]).collect();
        format!("unknown signal `{text}`{}", did_you_mean(name, names))
    })
}

/// `1000`, `1000:1000` or a user name.
pub fn user(text: &str) -> Result<User, String> {
    let id = |part: &str| -> Result<u32, String> {
        part.parse::<u32>()
            .ok()
            .filter(|id| part.bytes().all(|b| b.is_ascii_digit()) && *id != u32::MAX)
            .ok_or_else(|| format!("malformed user `{text}`: use uid, uid:gid or a user name"))
    };
    if let Some((uid, gid)) = text.split_once(':') {
        return Ok(User::Id {
            uid: id(uid)?,
            gid: Some(id(gid)?),
        });
    }
    if text.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        return Ok(User::Id {
            uid: id(text)?,
            gid: None,
        });
    }
    if crate::names::is_account_name(text) {
        Ok(User::Name(text.to_owned()))
    } else {
        Err(format!(
            "malformed user `{text}`: use uid, uid:gid or a user name"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in [
            "", "10", "s", "10x", "1.2.3s", "1 s", "10S", "1e3s", "-1s", ".s",
        ] {
            assert!(duration(bad).is_err(), "{bad} accepted");
        }
        assert!(duration("99999999999999999999999h")
            .unwrap_err()
            .contains("too long"));
        assert!(duration("-1s").unwrap_err().contains("negative"));
    }

    #[test]
    fn durations_are_at_most_a_year() {
        assert_eq!(duration("8760h"), Ok(MAX_DURATION));
        assert_eq!(duration("525600m"), Ok(MAX_DURATION));
        for long in ["8760.001h", "31536001s", "10000000000000000000s"] {
            assert!(
                duration(long)
                    .unwrap_err()
                    .contains("too long (at most 8760h"),
                "{long} accepted"
            );
        }
    }

    #[test]
    fn sizes_are_powers_of_1024() {
        assert_eq!(size("1024"), Ok(1024));
        assert_eq!(size("64K"), Ok(64 << 10));
        assert_eq!(size("64M"), Ok(64 << 20));
        assert_eq!(size("64m"), Ok(64 << 20));
        assert_eq!(size("2G"), Ok(2 << 30));
    }

    #[test]
    fn sizes_take_dockers_spellings() {
        assert_eq!(size("64MB"), Ok(64 << 20));
        assert_eq!(size("64mb"), Ok(64 << 20));
        assert_eq!(size("64MiB"), Ok(64 << 20));
        assert_eq!(size("1.5g"), Ok(3 << 29));
        assert_eq!(size("512b"), Ok(512));
        assert_eq!(size("1kB"), Ok(1024));
        assert_eq!(size("1T"), Ok(1 << 40));
    }

    #[test]
    fn zero_negative_and_malformed_sizes_are_refused() {
        assert!(size("0").unwrap_err().contains("greater than 0"));
        assert!(size("0M").unwrap_err().contains("greater than 0"));
        assert!(size("-5M").unwrap_err().contains("greater than 0"));
        assert!(size("64MBB").unwrap_err().contains("malformed"));
        assert!(size("1.5.1G").unwrap_err().contains("malformed"));
        assert!(size(".5G").unwrap_err().contains("malformed"));
        assert!(size("5.G").unwrap_err().contains("malformed"));
        assert!(size("0.0000001K").unwrap_err().contains("greater than 0"));
        assert!(size("64X").unwrap_err().contains("malformed"));
        assert!(size("M").unwrap_err().contains("malformed"));
        assert!(size("").unwrap_err().contains("malformed"));
        assert!(size("99999999999G").unwrap_err().contains("too large"));
    }

    #[test]
    fn cpus_are_positive_and_fit_a_quota() {
        assert_eq!(cpus("0.5"), Ok(0.5));
        assert_eq!(cpus("2"), Ok(2.0));
        assert!(cpus("0").unwrap_err().contains("greater than 0"));
        assert!(cpus("-1").unwrap_err().contains("greater than 0"));
        assert!(cpus("0.001").unwrap_err().contains("minimum"));
        assert!(cpus("1e300").unwrap_err().contains("too large"));
        assert!(cpus("inf").unwrap_err().contains("malformed"));
        assert!(cpus("NaN").unwrap_err().contains("malformed"));
        assert!(cpus("half").unwrap_err().contains("malformed"));
    }

    #[test]
    fn numbers_stay_in_range() {
        assert_eq!(number_in("64", 1, u64::MAX), Ok(64));
        assert!(number_in("0", 1, u64::MAX).is_err());
        assert!(number_in("-1", 1, u64::MAX).is_err());
        assert!(number_in("+5", 1, u64::MAX).is_err());
        assert_eq!(number_in("10000", 1, 10_000), Ok(10_000));
        assert!(number_in("10001", 1, 10_000)
            .unwrap_err()
            .contains("from 1 to 10000"));
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(signal("TERM"), Ok(Signal::SIGTERM));
        assert_eq!(signal("SIGTERM"), Ok(Signal::SIGTERM));
        assert_eq!(signal("sigint"), Ok(Signal::SIGINT));
        assert_eq!(signal("hup"), Ok(Signal::SIGHUP));
        assert_eq!(signal("9"), Ok(Signal::SIGKILL));
        assert!(signal("999").unwrap_err().contains("unknown signal number"));
        assert_eq!(
            signal("TREM").unwrap_err(),
            "unknown signal `TREM`, did you mean TERM?"
        );
        assert!(signal("").is_err());
        assert!(signal("SIG").is_err());
    }

    #[test]
    fn users_by_id_or_name() {
        assert_eq!(
            user("1000"),
            Ok(User::Id {
                uid: 1000,
                gid: None
            })
        );
        assert_eq!(
            user("1000:100"),
            Ok(User::Id {
                uid: 1000,
                gid: Some(100)
            })
        );
        assert_eq!(user("www-data"), Ok(User::Name("www-data".to_owned())));
        for bad in [
            "1000:",
            ":1",
            "1000:x",
            "-1",
            "4294967295",
            "99999999999",
            "a b",
            "",
            "x:1",
        ] {
            assert!(user(bad).is_err(), "{bad} accepted");
        }
    }
}
