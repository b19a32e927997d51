//! Networks: the top-level `networks:` mapping, the service keys `networks`,
//! `ports` and `dns`, and the rules between them (known names, subnets that
//! overlap nothing, ports published once).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use crate::diagnostic::{Mark, Report};
use crate::names;
use crate::read::{boolean, items, scalar, scalar_text, Fields};
use crate::service::Read;
use crate::suggest::did_you_mean;
use crate::tree::{Node, Value};
use crate::types::{Network, Port, Protocol, Subnet};

const NETWORK_KEYS: &[&str] = &["subnet", "internal"];

/// Default subnets are /24s of this /16, the third byte picked from the
/// network's name (then the next free one).
pub const DEFAULT_RANGE: Subnet = Subnet {
    address: Ipv4Addr::new(10, 89, 0, 0),
    prefix: 16,
};

/// Ranges that are never a network's: this host, link-local, multicast, reserved.
const RESERVED: [Subnet; 5] = [
    Subnet {
        address: Ipv4Addr::new(0, 0, 0, 0),
        prefix: 8,
    },
    Subnet {
        address: Ipv4Addr::new(127, 0, 0, 0),
        prefix: 8,
    },
    Subnet {
        address: Ipv4Addr::new(169, 254, 0, 0),
        prefix: 16,
    },
    Subnet {
        address: Ipv4Addr::new(224, 0, 0, 0),
        prefix: 4,
    },
    Subnet {
        address: Ipv4Addr::new(240, 0, 0, 0),
        prefix: 4,
    },
];

/// FNV-1a: a hash that stays the same across builds and Rust versions
/// (names of links and tables, default subnets).
pub fn stable_hash(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The first characters of every link the supervisor of `state_dir` creates
/// (`sv` and 6 hex digits): what one daemon finds of its own after a crash.
pub fn link_prefix(state_dir: &Path) -> String {
    let hash = stable_hash(state_dir.as_os_str().as_encoded_bytes()) & 0xff_ffff;
    format!("sv{hash:06x}")
}

/// A network as written, with where its subnet is (if written).
struct Declared {
    name: String,
    mark: Mark,
    subnet: Option<(Subnet, Mark)>,
    internal: bool,
}

/// Whether `link` is named like a supervisor's bridge (`svHHHHHHbNNNNNN`):
/// its route is a network of a service list, checked by that list's daemon
/// when it creates the bridge, and no conflict for `check` (the daemon's
/// state_dir may differ from the file's, with `--state-dir`).
pub fn is_bridge_name(link: &str) -> bool {
    let bytes = link.as_bytes();
    bytes.len() == 15
        && link.starts_with("sv")
        && bytes[8] == b'b'
        && bytes[2..8]
            .iter()
            .chain(&bytes[9..])
            .all(|b| b.is_ascii_hexdigit())
}

/// Reads `networks:`.
pub fn networks(report: &mut Report, node: &Node) -> Vec<Network> {
    let entries = match &node.value {
        Value::Map(entries) => entries.as_slice(),
        Value::Null => &[],
        other => {
            let message = format!(
                "networks: expected a mapping of network names to {{subnet, internal}}, found {}",
                other.describe()
            );
            report.error(node.mark, message);
            return Vec::new();
        }
    };
    let mut declared = Vec::new();
    for entry in entries {
        let name = &entry.key;
        if !names::is_service_name(name) {
            let message = format!(
                "invalid network name `{name}`: use 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit"
            );
            report.error(entry.key_mark, message);
        }
        let mut network = Declared {
            name: name.clone(),
            mark: entry.key_mark,
            subnet: None,
            internal: false,
        };
        if !matches!(entry.value.value, Value::Null) {
            if let Some(fields) = Fields::of(
                report,
                &entry.value,
                NETWORK_KEYS,
                &format!("network {name}"),
            ) {
                network.subnet = fields
                    .read(
                        report,
                        "subnet",
                        scalar(subnet, "a subnet such as 10.89.1.0/24"),
                    )
                    .zip(fields.node("subnet").map(|n| n.mark));
                network.internal = fields.read(report, "internal", boolean).unwrap_or(false);
            }
        }
        declared.push(network);
    }
    let host = host_routes();
    let mut taken: Vec<(Subnet, &str)> = Vec::new();
    for network in &declared {
        let Some((subnet, mark)) = network.subnet else {
            continue;
        };
        if let Some(reserved) = RESERVED.iter().find(|r| r.overlaps(&subnet)) {
            report.error(
                mark,
                format!("subnet: {subnet} overlaps the reserved range {reserved}"),
            );
        } else if let Some((other, name)) = taken.iter().find(|(s, _)| s.overlaps(&subnet)) {
            report.error(
                mark,
                format!("subnet: {subnet} overlaps network {name} ({other})"),
            );
        } else if let Some((route, link)) = host.iter().find(|(s, _)| s.overlaps(&subnet)) {
            report.error(
                mark,
                format!("subnet: {subnet} overlaps the host's route to {route} (on {link})"),
            );
        }
        taken.push((subnet, &network.name));
    }
    let mut chosen: Vec<Subnet> = taken.iter().map(|(s, _)| *s).collect();
    let mut networks = Vec::new();
    for network in &declared {
        let subnet = match network.subnet {
            Some((subnet, _)) => subnet,
            None => match default_subnet(&network.name, &chosen, &host) {
                Some(subnet) => subnet,
                None => {
                    let message = format!(
                        "network {}: no free /24 left in {DEFAULT_RANGE}: set `subnet`",
                        network.name
                    );
                    report.error(network.mark, message);
                    continue;
                }
            },
        };
        chosen.push(subnet);
        networks.push(Network {
            name: network.name.clone(),
            subnet,
            internal: network.internal,
        });
    }
    networks
}

/// A /24 of `DEFAULT_RANGE` that the name points at, or the next free one.
fn default_subnet(name: &str, taken: &[Subnet], host: &[(Subnet, String)]) -> Option<Subnet> {
    let start = stable_hash(name.as_bytes()) % 256;
    (0..256).map(|k| (start + k) % 256).find_map(|third| {
        let [a, b, _, _] = DEFAULT_RANGE.address.octets();
        let subnet = Subnet {
            address: Ipv4Addr::new(a, b, third as u8, 0),
            prefix: 24,
        };
        let free = !taken.iter().any(|s| s.overlaps(&subnet))
            && !host.iter().any(|(s, _)| s.overlaps(&subnet));
        free.then_some(subnet)
    })
}

/// `A.B.C.D/N`, N from 1 to 30 (room for the gateway and one service), no host bits.
pub fn subnet(text: &str) -> Result<Subnet, String> {
    let bad = || format!("`{text}` is not a subnet such as 10.89.1.0/24");
    let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
    let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    if !(1..=30).contains(&prefix) {
        return Err(format!(
            "`{text}`: the prefix length must be 1 to 30 (room for the gateway and a service)"
        ));
    }
    let network = Subnet {
        address: Ipv4Addr::from(u32::from(address) & !(u32::MAX >> prefix)),
        prefix,
    };
    if network.address != address {
        return Err(format!(
            "`{text}` has host bits set: did you mean {network}?"
        ));
    }
    Ok(network)
}

/// The host's routes but those of supervisors' bridges.
fn host_routes() -> Vec<(Subnet, String)> {
    let mut routes = routes();
    routes.retain(|(_, link)| !is_bridge_name(link));
    routes
}

/// The routes of this network namespace (main table, not the default route)
/// and their links, from `/proc/net/route`.
pub fn routes() -> Vec<(Subnet, String)> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (link, destination, mask) = (fields.first()?, fields.get(1)?, fields.get(7)?);
            // Little-endian hex, as the kernel prints them.
            let destination = u32::from_str_radix(destination, 16).ok()?.swap_bytes();
            let mask = u32::from_str_radix(mask, 16).ok()?.swap_bytes();
            let subnet = Subnet {
                address: Ipv4Addr::from(destination),
                prefix: mask.count_ones() as u8,
            };
            (subnet.prefix > 0).then(|| (subnet, link.to_string()))
        })
        .collect()
}

/// Service `networks: [NAME, ...]`: names without repeats, and where each is written.
pub fn service_networks(report: &mut Report, node: &Node) -> (Vec<String>, Vec<Mark>) {
    let (mut names, mut marks) = (Vec::new(), Vec::new());
    let list = items(node).map_err(|why| report.error(node.mark, format!("networks: {why}")));
    for item in list.unwrap_or_default() {
        match scalar_text(item, "a network name") {
            Ok(name) if names.iter().any(|n| n == name) => {}
            Ok(name) => {
                names.push(name.to_owned());
                marks.push(item.mark);
            }
            Err(why) => report.error(item.mark, format!("networks: {why}")),
        }
    }
    (names, marks)
}

/// Service `ports: ["8080:80", "127.0.0.1:8443:443", "5353:53/udp"]`, each
/// with where it is written.
pub fn ports(report: &mut Report, node: &Node) -> Vec<(Port, Mark)> {
    let list = match &node.value {
        Value::Seq(list) => list,
        other => {
            let message = format!(
                "ports: expected a list such as [\"8080:80\"], found {}",
                other.describe()
            );
            report.error(node.mark, message);
            return Vec::new();
        }
    };
    list.iter()
        .filter_map(|item| {
            scalar(port, "a port such as \"8080:80\"")(item)
                .map(|port| (port, item.mark))
                .map_err(|why| report.error(item.mark, format!("ports: {why}")))
                .ok()
        })
        .collect()
}

/// `[HOST_IP:]HOST_PORT:PORT[/tcp|/udp]`.
pub fn port(text: &str) -> Result<Port, String> {
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, Protocol::Tcp),
        Some((spec, "udp")) => (spec, Protocol::Udp),
        Some((_, other)) => {
            return Err(format!("`{text}`: unknown protocol `{other}` (tcp or udp)"))
        }
        None => (text, Protocol::Tcp),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host_ip, host_port, port) = match parts.as_slice() {
        [host_port, port] => (None, *host_port, *port),
        [ip, host_port, port] => {
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| format!("`{text}`: `{ip}` is not an IPv4 address"))?;
            (Some(ip), *host_port, *port)
        }
        [_] => {
            return Err(format!(
                "`{text}`: give the host's port too, as HOST_PORT:PORT (e.g. \"8080:{spec}\")"
            ))
        }
        _ => {
            return Err(format!(
                "`{text}` is not [HOST_IP:]HOST_PORT:PORT[/tcp|/udp]"
            ))
        }
    };
    Ok(Port {
        host_ip: host_ip.filter(|ip| !ip.is_unspecified()),
        host_port: port_number(text, host_port)?,
        port: port_number(text, port)?,
        protocol,
    })
}

fn port_number(text: &str, number: &str) -> Result<u16, String> {
    if number.contains('-') {
        return Err(format!("`{text}`: port ranges are not supported"));
    }
    match number.parse::<u64>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        Ok(n) => Err(format!("`{text}`: port {n} is out of range (1 to 65535)")),
        Err(_) => Err(format!("`{text}`: `{number}` is not a port number")),
    }
}

/// Service `dns: [IP, ...]`.
pub fn dns(node: &Node) -> Result<Vec<IpAddr>, String> {
    items(node)?
        .iter()
        .map(|item| {
            let text = scalar_text(item, "an IP address")?;
            text.parse()
                .map_err(|_| format!("`{text}` is not an IP address"))
        })
        .collect()
}

/// Across services: networks that exist, ports on a network with a way out,
/// each host port published once.
pub fn check(report: &mut Report, networks: &[Network], services: &[Read]) {
    let mut published: Vec<(Port, &str)> = Vec::new();
    for read in services {
        let service = &read.service;
        for (name, &mark) in service.networks.iter().zip(&read.network_marks) {
            if !networks.iter().any(|n| &n.name == name) {
                let hint = did_you_mean(name, networks.iter().map(|n| n.name.as_str()));
                report.error(mark, format!("networks: unknown network `{name}`{hint}"));
            }
        }
        let reachable = service
            .networks
            .iter()
            .any(|name| networks.iter().any(|n| &n.name == name && !n.internal));
        for (port, mark) in service.ports.iter().zip(&read.port_marks) {
            if !reachable && !service.networks.is_empty() {
                report.error(
                    *mark,
                    "ports: the service is only on internal networks, which have no way in or out",
                );
            }
            let clash = published.iter().find(|(other, _)| {
                other.host_port == port.host_port
                    && other.protocol == port.protocol
                    && (other.host_ip.is_none()
                        || port.host_ip.is_none()
                        || other.host_ip == port.host_ip)
            });
            if let Some((_, owner)) = clash {
                let message = format!(
                    "ports: host port {}/{} is already published by service {owner}",
                    port.host_port,
                    port.protocol.name()
                );
                report.error(*mark, message);
            }
            published.push((*port, &service.name));
        }
    }
}
