//! Checking the requested limits and converting them to the kernel's units.

use crate::{Error, Resources};

/// CFS period for the cpus limit, in microseconds (the kernel's default);
/// the config file's check uses it too.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The kernel refuses a CFS quota below 1 ms.
pub const CPU_QUOTA_MIN_US: u64 = 1_000;

pub(crate) fn validate(res: &Resources) -> Result<(), Error> {
    if let Some(swap) = res.memory_swap {
        match res.memory {
            None => {
                return Err(Error::Invalid(
                    "memory_swap limit needs a memory limit as well".into(),
                ))
            }
            Some(memory) if swap < memory => {
                return Err(Error::Invalid(format!(
                    "memory_swap limit ({swap}) is below the memory limit ({memory}): it counts memory plus swap"
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(cpus) = res.cpus {
        cpu_quota_us(cpus)?;
    }
    if let Some(weight) = res.io_weight {
        if !(1..=10_000).contains(&weight) {
            return Err(Error::Invalid(format!(
                "io_weight {weight} is out of range 1..=10000"
            )));
        }
    }
    Ok(())
}

/// CFS quota per CPU_PERIOD_US for `cpus` CPUs.
pub fn cpu_quota_us(cpus: f64) -> Result<u64, Error> {
    if !cpus.is_finite() || cpus <= 0.0 {
        return Err(Error::Invalid(format!(
            "cpus limit {cpus} is not a positive number"
        )));
    }
    // Truncation after rounding is intended: the kernel takes whole microseconds.
    let quota = (cpus * CPU_PERIOD_US as f64).round() as u64;
    Ok(quota.max(CPU_QUOTA_MIN_US))
}

/// v1 blkio weights (and the BFQ ones) run 10..=1000 where v2's io.weight runs
/// 1..=10000: the inverse of runc's v1-to-v2 conversion.
pub fn blkio_weight(io_weight: u16) -> u64 {
    10 + (u64::from(io_weight.max(1)) - 1) * 990 / 9_999
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quota() {
        assert_eq!(cpu_quota_us(0.5).unwrap(), 50_000);
        assert_eq!(cpu_quota_us(2.0).unwrap(), 200_000);
        assert_eq!(cpu_quota_us(0.001).unwrap(), 1_000);
        assert!(cpu_quota_us(0.0).is_err());
        assert!(cpu_quota_us(f64::NAN).is_err());
    }

    #[test]
    fn blkio_weights() {
        assert_eq!(blkio_weight(1), 10);
        assert_eq!(blkio_weight(10_000), 1000);
        assert_eq!(blkio_weight(5_000), 504);
    }

    #[test]
    fn swap_needs_memory() {
        let only_swap = Resources {
            memory_swap: Some(1 << 20),
            ..Resources::default()
        };
        assert!(validate(&only_swap).is_err());
        let below = Resources {
            memory: Some(2 << 20),
            memory_swap: Some(1 << 20),
            ..Resources::default()
        };
        assert!(validate(&below).is_err());
        let fine = Resources {
            memory: Some(1 << 20),
            memory_swap: Some(1 << 20),
            cpus: Some(1.5),
            pids: Some(10),
            io_weight: Some(100),
            ..Resources::default()
        };
        validate(&fine).unwrap();
    }
}
