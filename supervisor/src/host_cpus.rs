//! A `cpus` limit above what the host has is allowed (the kernel takes any
//! quota), but it limits nothing: the service is told at start.

use std::thread::available_parallelism;

/// The warning for a `limits.cpus` above the CPUs this host lets us use, if it is.
pub fn warning(cpus: Option<f64>) -> Option<String> {
    let cpus = cpus?;
    let host = available_parallelism().ok()?.get();
    above(cpus, host)
}

fn above(cpus: f64, host: usize) -> Option<String> {
    (cpus > host as f64).then(|| {
        format!(
            "warning: limits.cpus {cpus} is more than the {host} CPU{} of this host: it limits nothing",
            if host == 1 { "" } else { "s" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::above;

    #[test]
    fn only_above_the_host_warns() {
        assert_eq!(above(2.0, 2), None);
        assert_eq!(above(0.5, 1), None);
        let warning = above(2.5, 2).unwrap();
        assert!(
            warning.contains("limits.cpus 2.5 is more than the 2 CPUs"),
            "{warning}"
        );
        assert!(above(3.0, 1).unwrap().contains("the 1 CPU of"));
    }
}
