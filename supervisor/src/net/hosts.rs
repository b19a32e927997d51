//! A service's `/etc/hosts` (itself and every service it shares a network
//! with) and `/etc/resolv.conf` (the host's, or its `dns` list), written
//! under `state_dir/networks/NAME/` and bind-mounted into the service.

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use config::{Config, Service};

use super::ipam::Addresses;

const DIR: &str = "networks";

/// The directory of service `name`'s files.
pub fn dir(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(DIR).join(name)
}

/// Names and addresses, for `service`: each other service under the first
/// network the two share (in `service`'s order), itself under its first network.
pub fn hosts_file(config: &Config, service: &Service, addresses: &Addresses) -> String {
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    let own = service
        .networks
        .first()
        .and_then(|n| addresses.get(n)?.get(&service.name));
    if let Some(ip) = own {
        let mut names = service.name.clone();
        if service.hostname != service.name {
            names = format!("{} {}", service.hostname, service.name);
        }
        text.push_str(&format!("{ip}\t{names}\n"));
    }
    for other in config.services.iter().filter(|o| o.name != service.name) {
        let shared = service
            .networks
            .iter()
            .filter(|n| other.networks.contains(n))
            .find_map(|n| addresses.get(n)?.get(&other.name));
        if let Some(ip) = shared {
            text.push_str(&format!("{ip}\t{}\n", other.name));
        }
    }
    text
}

/// `nameserver` lines for `dns`, or the host's resolv.conf without its
/// loopback name servers (unreachable from the service's namespace: then
/// systemd-resolved's upstream list, if there is one).
pub fn resolv_conf(dns: &[IpAddr]) -> String {
    if !dns.is_empty() {
        return dns.iter().map(|ip| format!("nameserver {ip}\n")).collect();
    }
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let kept = without_loopback(&host);
    let has_server = kept.lines().any(|l| l.starts_with("nameserver"));
    if !has_server {
        if let Ok(upstream) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            return without_loopback(&upstream);
        }
    }
    kept
}

fn without_loopback(text: &str) -> String {
    text.lines()
        .filter(|line| {
            let mut words = line.split_whitespace();
            let loopback = words.next() == Some("nameserver")
                && words
                    .next()
                    .and_then(|ip| ip.parse::<IpAddr>().ok())
                    .is_some_and(|ip| ip.is_loopback());
            !loopback
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Rewrites `path` in place (same inode), so that a service that has it
/// mounted sees the new text.
pub fn write_in_place(path: &Path, text: &str) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_name_servers_are_left_out() {
        let text = "nameserver 127.0.0.53\noptions edns0\nnameserver 192.0.2.1\n";
        assert_eq!(
            without_loopback(text),
            "options edns0\nnameserver 192.0.2.1\n"
        );
        let dns = ["192.0.2.7".parse().unwrap()];
        assert_eq!(resolv_conf(&dns), "nameserver 192.0.2.7\n");
    }
}
