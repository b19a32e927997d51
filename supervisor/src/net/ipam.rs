//! Each service's address on each of its networks, kept in
//! `state_dir/network-addresses.json` so that it stays the same across
//! restarts, reloads, daemon restarts and `supervisor run`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use config::Config;
use nix::fcntl::{Flock, FlockArg};

const FILE: &str = "network-addresses.json";
const LOCK: &str = "network-addresses.lock";

/// network name -> service name -> address.
pub type Addresses = BTreeMap<String, BTreeMap<String, Ipv4Addr>>;

/// The addresses of every service of `config` on its networks: the ones
/// kept, new ones allocated (lowest free, after the gateway). Entries of
/// services or networks gone from the list, or outside a changed subnet, are
/// forgotten.
pub fn allocate(config: &Config) -> io::Result<Addresses> {
    std::fs::create_dir_all(&config.state_dir)?;
    let lock = File::create(config.state_dir.join(LOCK))?;
    // The daemon and `supervisor run` may allocate at once.
    let _lock = Flock::lock(lock, FlockArg::LockExclusive).map_err(|(_, errno)| errno)?;
    let path = config.state_dir.join(FILE);
    let kept: Addresses = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Addresses::new(),
        Err(err) => return Err(err),
    };
    let addresses = assign(config, &kept)?;
    if addresses != kept {
        write_atomically(&path, &serde_json::to_vec_pretty(&addresses)?)?;
    }
    Ok(addresses)
}

/// Whether a service of this state_dir ever had an address (then there may
/// be links and a table to remove).
pub fn ever_used(state_dir: &Path) -> bool {
    state_dir.join(FILE).exists()
}

fn assign(config: &Config, kept: &Addresses) -> io::Result<Addresses> {
    let mut addresses = Addresses::new();
    for network in &config.networks {
        let members: Vec<&str> = config
            .services
            .iter()
            .filter(|s| s.networks.contains(&network.name))
            .map(|s| s.name.as_str())
            .collect();
        let old = kept.get(&network.name);
        let mut given: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
        for name in &members {
            if let Some(&ip) = old.and_then(|o| o.get(*name)) {
                let usable = network.subnet.contains(ip)
                    && ip != network.subnet.gateway()
                    && (2..network.subnet.size() - 1)
                        .contains(&(u32::from(ip) - u32::from(network.subnet.address)));
                if usable && !given.values().any(|&g| g == ip) {
                    given.insert(name.to_string(), ip);
                }
            }
        }
        let mut next = 2;
        for name in members {
            if given.contains_key(name) {
                continue;
            }
            let ip = loop {
                let Some(ip) = network.subnet.host(next) else {
                    return Err(io::Error::other(format!(
                        "network {}: no address left in {}",
                        network.name, network.subnet
                    )));
                };
                next += 1;
                if !given.values().any(|&g| g == ip) {
                    break ip;
                }
            };
            given.insert(name.to_string(), ip);
        }
        if !given.is_empty() {
            addresses.insert(network.name.clone(), given);
        }
    }
    Ok(addresses)
}

/// Writes `bytes` to a temporary file and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        config::parse_str(yaml, Path::new("/tmp/services.yaml")).unwrap()
    }

    #[test]
    fn addresses_are_kept_and_new_ones_fill_the_gaps() {
        let first = config(
            "networks: {front: {subnet: 10.200.0.0/24}}\nservices:\n  a: {command: x, networks: [front]}\n  b: {command: x, networks: [front]}\n",
        );
        let given = assign(&first, &Addresses::new()).unwrap();
        assert_eq!(given["front"]["a"], Ipv4Addr::new(10, 200, 0, 2));
        assert_eq!(given["front"]["b"], Ipv4Addr::new(10, 200, 0, 3));
        // A service inserted before the others: they keep theirs.
        let second = config(
            "networks: {front: {subnet: 10.200.0.0/24}}\nservices:\n  c: {command: x, networks: [front]}\n  b: {command: x, networks: [front]}\n",
        );
        let again = assign(&second, &given).unwrap();
        assert_eq!(again["front"]["b"], Ipv4Addr::new(10, 200, 0, 3));
        assert_eq!(again["front"]["c"], Ipv4Addr::new(10, 200, 0, 2));
        assert!(!again["front"].contains_key("a"));
    }

    #[test]
    fn a_full_subnet_is_an_error() {
        let full = config(
            "networks: {tiny: {subnet: 10.200.0.0/30}}\nservices:\n  a: {command: x, networks: [tiny]}\n  b: {command: x, networks: [tiny]}\n",
        );
        let err = assign(&full, &Addresses::new()).unwrap_err();
        assert!(err.to_string().contains("no address left"), "{err}");
    }
}
