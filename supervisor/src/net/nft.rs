//! The supervisor's nftables table (`inet supervisor-HASH`, one per
//! state_dir): published ports (DNAT), masquerade out of non-internal
//! networks, isolation between networks. Written whole and replaced
//! atomically through Debian's `nft`, deleted at shutdown.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use config::{Config, Network};

use super::ipam::Addresses;

/// The table's name for the supervisor of `state_dir`.
pub fn table(state_dir: &Path) -> String {
    format!("supervisor-{}", &config::link_prefix(state_dir)[2..])
}

/// The whole table for `config`: `bridge` names each network's bridge.
pub fn ruleset(
    table: &str,
    config: &Config,
    used: &[&Network],
    addresses: &Addresses,
    bridge: impl Fn(&Network) -> String,
) -> String {
    let mut dnat = String::new();
    for service in &config.services {
        // Ports lead to the service's first network with a way out.
        let target = service
            .networks
            .iter()
            .filter(|n| used.iter().any(|u| &&u.name == n && !u.internal))
            .find_map(|n| addresses.get(n)?.get(&service.name));
        let Some(target) = target else { continue };
        for port in &service.ports {
            let to = match port.host_ip {
                Some(ip) => format!("ip daddr {ip}"),
                None => "fib daddr type local".to_string(),
            };
            let _ = writeln!(
                dnat,
                "    {to} {proto} dport {} dnat ip to {target}:{}",
                port.host_port,
                port.port,
                proto = port.protocol.name()
            );
        }
    }
    let mut postrouting = String::new();
    let mut forward = String::from("    ct status dnat accept\n");
    for network in used {
        let name = bridge(network);
        // Published ports reached from 127.0.0.1 (routed to the bridge
        // thanks to route_localnet on it): answers must come back to us.
        let _ = writeln!(
            postrouting,
            "    oifname \"{name}\" ip saddr 127.0.0.0/8 masquerade"
        );
        // A service reaching a published port of its own network through the
        // host's address: the answer must come back through the host too.
        let _ = writeln!(
            postrouting,
            "    oifname \"{name}\" ip saddr {} ct status dnat masquerade",
            network.subnet
        );
        if network.internal {
            let _ = writeln!(forward, "    iifname \"{name}\" oifname != \"{name}\" drop");
            let _ = writeln!(forward, "    oifname \"{name}\" iifname != \"{name}\" drop");
        } else {
            let _ = writeln!(
                postrouting,
                "    ip saddr {} oifname != \"{name}\" masquerade",
                network.subnet
            );
            let others: Vec<String> = used
                .iter()
                .filter(|o| o.name != network.name)
                .map(|o| format!("\"{}\"", bridge(o)))
                .collect();
            if !others.is_empty() {
                let _ = writeln!(
                    forward,
                    "    iifname \"{name}\" oifname {{ {} }} drop",
                    others.join(", ")
                );
            }
        }
    }
    format!(
        "table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n\
         \x20 chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n{dnat}  }}\n\
         \x20 chain output {{\n    type nat hook output priority -100; policy accept;\n{dnat}  }}\n\
         \x20 chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n{postrouting}  }}\n\
         \x20 chain forward {{\n    type filter hook forward priority filter; policy accept;\n{forward}  }}\n}}\n"
    )
}

/// Loads `rules` (which replace the table as a whole).
pub fn apply(rules: &str) -> io::Result<()> {
    nft(&["-f", "-"], Some(rules))
}

/// Whether the table exists (false where nf_tables is missing altogether).
pub fn exists(table: &str) -> bool {
    super::netlink::Netlink::nft_table_exists(table).unwrap_or(false)
}

/// Deletes the table if it exists.
pub fn delete(table: &str) -> io::Result<()> {
    if !exists(table) {
        return Ok(());
    }
    nft(&["delete", "table", "inet", table], None)
}

/// Runs `nft ARGS` (with `input` on stdin); its first line of errors.
fn nft(args: &[&str], input: Option<&str>) -> io::Result<()> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => io::Error::other(
                "`nft` is not installed (Debian: apt-get install nftables): it is needed for networks",
            ),
            _ => err,
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().next().unwrap_or("failed").trim();
    Err(io::Error::other(first.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_publishes_ports_masquerades_and_isolates() {
        let config = config::parse_str(
            "networks:\n  front: {subnet: 10.200.1.0/24}\n  sealed: {subnet: 10.200.2.0/24, internal: true}\n\
             services:\n  web: {command: x, networks: [sealed, front], ports: [\"8080:80\", \"127.0.0.1:5353:53/udp\"]}\n",
            Path::new("/tmp/services.yaml"),
        )
        .unwrap();
        let used: Vec<&Network> = config.networks.iter().collect();
        let mut addresses = Addresses::new();
        for (network, ip) in [("front", [10, 200, 1, 2]), ("sealed", [10, 200, 2, 2])] {
            addresses
                .entry(network.to_string())
                .or_default()
                .insert("web".to_string(), ip.into());
        }
        let rules = ruleset("t", &config, &used, &addresses, |n| {
            format!("br-{}", n.name)
        });
        // Ports lead to the first network with a way out.
        assert!(rules.contains("fib daddr type local tcp dport 8080 dnat ip to 10.200.1.2:80"));
        assert!(rules.contains("ip daddr 127.0.0.1 udp dport 5353 dnat ip to 10.200.1.2:53"));
        assert!(rules.contains("ip saddr 10.200.1.0/24 oifname != \"br-front\" masquerade"));
        assert!(!rules.contains("ip saddr 10.200.2.0/24 oifname != \"br-sealed\" masquerade"));
        assert!(rules.contains("iifname \"br-sealed\" oifname != \"br-sealed\" drop"));
        assert!(rules.contains("iifname \"br-front\" oifname { \"br-sealed\" } drop"));
        // The whole table is replaced at once.
        assert!(rules.starts_with("table inet t\ndelete table inet t\n"));
    }
}
