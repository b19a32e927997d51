//! Networks between services: a bridge per network, a veth pair per service
//! and network, persisted addresses, `/etc/hosts` and `/etc/resolv.conf`, and
//! the nftables table for published ports, masquerade and isolation.
//!
//! Hook points: `Host::start`/`reload`/`stop` (the daemon), `prepare` (before
//! a service's child is cloned: addresses, files, free ports), `attach` (the
//! child exists, before it is released: its veths), `Attachment::detach`
//! (teardown). Everything created has the state_dir's link prefix, so the
//! next daemon finds it after a crash.

mod hosts;
mod ipam;
mod netlink;
mod nft;

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use config::{Config, Network, Service};
use nix::unistd::Pid;

use netlink::Netlink;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("port {port}/{protocol} on {ip} is already in use on the host ({source})")]
    PortTaken {
        ip: String,
        port: u16,
        protocol: &'static str,
        source: io::Error,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Io { what, source }
}

/// What `prepare` found for a service on networks.
pub struct Prepared {
    /// Host files to bind-mount, (host path, path in the service).
    pub files: Vec<(PathBuf, PathBuf)>,
    /// network -> the service's address on it, in the service's order.
    pub addresses: Vec<(String, Ipv4Addr)>,
}

/// Before a service on networks starts: its addresses (allocated if new),
/// its hosts and resolv.conf files, and its published ports free on the host.
/// None for a service on no network.
pub fn prepare(config: &Config, service: &Service) -> Result<Option<Prepared>, NetError> {
    if service.networks.is_empty() || !service.namespaces.net {
        return Ok(None);
    }
    let all = ipam::allocate(config).map_err(io_error("allocate addresses"))?;
    let addresses = service
        .networks
        .iter()
        .filter_map(|n| Some((n.clone(), *all.get(n)?.get(&service.name)?)))
        .collect();
    for port in &service.ports {
        let udp = port.protocol == config::Protocol::Udp;
        check_port_free(port.host_ip, port.host_port, udp).map_err(|source| {
            NetError::PortTaken {
                ip: port.host_ip.map_or("*".to_string(), |ip| ip.to_string()),
                port: port.host_port,
                protocol: port.protocol.name(),
                source,
            }
        })?;
    }
    let files = write_files(config, service, &all)?;
    Ok(Some(Prepared { files, addresses }))
}

/// Writes (in place) `service`'s hosts and resolv.conf; their mounts.
fn write_files(
    config: &Config,
    service: &Service,
    all: &ipam::Addresses,
) -> Result<Vec<(PathBuf, PathBuf)>, NetError> {
    let dir = hosts::dir(&config.state_dir, &service.name);
    std::fs::create_dir_all(&dir).map_err(io_error(format!("create {}", dir.display())))?;
    let mut files = Vec::new();
    for (file, text) in [
        ("hosts", hosts::hosts_file(config, service, all)),
        ("resolv.conf", hosts::resolv_conf(&service.dns)),
    ] {
        let path = dir.join(file);
        hosts::write_in_place(&path, &text)
            .map_err(io_error(format!("write {}", path.display())))?;
        files.push((path, Path::new("/etc").join(file)));
    }
    Ok(files)
}

/// A bind of `port` here fails when something on the host has it.
fn check_port_free(ip: Option<Ipv4Addr>, port: u16, udp: bool) -> io::Result<()> {
    let addr = std::net::SocketAddr::from((ip.unwrap_or(Ipv4Addr::UNSPECIFIED), port));
    if udp {
        std::net::UdpSocket::bind(addr).map(drop)
    } else {
        std::net::TcpListener::bind(addr).map(drop)
    }
}

/// Names of what the supervisor of one state_dir creates.
struct Names {
    prefix: String,
}

impl Names {
    fn new(state_dir: &Path) -> Names {
        Names {
            prefix: config::link_prefix(state_dir),
        }
    }

    fn bridge(&self, network: &Network) -> String {
        let hash = config::stable_hash(network.name.as_bytes()) & 0xff_ffff;
        format!("{}b{hash:06x}", self.prefix)
    }

    /// Named after the container's first process too: a restarted service
    /// never meets the veth of its previous run, which the kernel removes
    /// with that run's network namespace, in the background.
    fn veth(&self, service: &str, network: &str, pid: Pid) -> String {
        let key = format!("{service}\0{network}\0{pid}");
        let hash = config::stable_hash(key.as_bytes()) & 0xff_ffff;
        format!("{}v{hash:06x}", self.prefix)
    }
}

/// A running service's links, removed at teardown.
#[derive(Debug, Default)]
pub struct Attachment {
    /// The host ends of its veths (each deletes its peer with it).
    veths: Vec<String>,
    /// Bridges this attachment created (no daemon had them up): removed
    /// with it once no other service is on them.
    bridges: Vec<String>,
    /// The nftables table, when this attachment loaded it.
    table: Option<String>,
    pub addresses: BTreeMap<String, Ipv4Addr>,
}

/// Gives the service whose first process is `pid` a veth on each of its
/// networks (`ethN` inside, in its order), its address, and a default route
/// via the first network with a way out.
pub fn attach(
    config: &Config,
    service: &Service,
    prepared: &Prepared,
    pid: Pid,
) -> Result<Attachment, NetError> {
    let mut attachment = Attachment::default();
    let started = std::time::Instant::now();
    match connect(config, service, prepared, pid, &mut attachment) {
        Ok(()) => {
            log::debug!(
                "{}: network attached in {:?}",
                service.name,
                started.elapsed()
            );
            Ok(attachment)
        }
        Err(err) => {
            // Best effort: the error that stopped the start is the one to report.
            let _ = attachment.detach();
            Err(err)
        }
    }
}

fn connect(
    config: &Config,
    service: &Service,
    prepared: &Prepared,
    pid: Pid,
    attachment: &mut Attachment,
) -> Result<(), NetError> {
    let names = Names::new(&config.state_dir);
    let mut host = Netlink::open().map_err(io_error("open a netlink socket"))?;
    let mut inside = Netlink::open_in(pid).map_err(io_error(format!(
        "open a netlink socket in the service's network namespace (pid {pid})"
    )))?;
    let table = nft::table(&config.state_dir);
    if !nft::exists(&table) {
        let used = used_networks(config);
        let all = ipam::allocate(config).map_err(io_error("allocate addresses"))?;
        let rules = nft::ruleset(&table, config, &used, &all, |n| names.bridge(n));
        nft::apply(&rules).map_err(io_error("load the nftables table"))?;
        attachment.table = Some(table);
    }
    let mut default_route = None;
    for (i, (network_name, address)) in prepared.addresses.iter().enumerate() {
        let Some(network) = config.networks.iter().find(|n| &n.name == network_name) else {
            continue;
        };
        let bridge = names.bridge(network);
        let (index, created) = ensure_bridge(&mut host, &bridge, network)?;
        if created {
            attachment.bridges.push(bridge.clone());
        }
        let veth = names.veth(&service.name, &network.name, pid);
        let peer = format!("eth{i}");
        let mut created = host.create_veth(&veth, index, &peer, pid);
        if matches!(&created, Err(err) if err.kind() == io::ErrorKind::AlreadyExists) {
            // Left by a crashed supervisor, whose service had our pid.
            if let Some(stale) = host.index(&veth).map_err(io_error("find links"))? {
                let _ = host.delete_link(stale);
            }
            created = host.create_veth(&veth, index, &peer, pid);
        }
        created.map_err(io_error(format!("create veth {veth} on {bridge}")))?;
        attachment.veths.push(veth);
        let inner = inside
            .index(&peer)
            .map_err(io_error("find the service's links"))?
            .ok_or_else(|| io_error(format!("find {peer}"))(io::ErrorKind::NotFound.into()))?;
        inside
            .add_address(inner, *address, network.subnet.prefix)
            .map_err(io_error(format!("give {peer} the address {address}")))?;
        inside
            .set_up(inner)
            .map_err(io_error(format!("bring {peer} up")))?;
        if !network.internal {
            enable_forwarding().map_err(io_error("enable IPv4 forwarding"))?;
            default_route.get_or_insert((network.subnet.gateway(), inner));
        }
        attachment.addresses.insert(network.name.clone(), *address);
    }
    if let Some((gateway, index)) = default_route {
        inside
            .add_default_route(gateway, index)
            .map_err(io_error(format!("add a default route via {gateway}")))?;
    }
    Ok(())
}

/// The bridge's index, and whether we created it (with the gateway address,
/// up, and route_localnet so that 127.0.0.1 reaches published ports).
fn ensure_bridge(
    host: &mut Netlink,
    name: &str,
    network: &Network,
) -> Result<(i32, bool), NetError> {
    if let Some(index) = host.index(name).map_err(io_error("find links"))? {
        return Ok((index, false));
    }
    // Another daemon's bridge, or a route the host got since `check`.
    let routes = config::routes();
    if let Some((route, link)) = routes
        .iter()
        .find(|(r, link)| link != name && r.overlaps(&network.subnet))
    {
        return Err(NetError::Io {
            what: format!("network {}: subnet {}", network.name, network.subnet),
            source: io::Error::other(format!("overlaps the route to {route} on {link}")),
        });
    }
    let created = match host.create_bridge(name) {
        Ok(()) => true,
        // Someone else (a `run`, the daemon) made it just now.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => false,
        Err(err) => return Err(io_error(format!("create bridge {name}"))(err)),
    };
    let index = host
        .index(name)
        .map_err(io_error("find links"))?
        .ok_or_else(|| io_error(format!("find bridge {name}"))(io::ErrorKind::NotFound.into()))?;
    if created {
        let gateway = network.subnet.gateway();
        host.add_address(index, gateway, network.subnet.prefix)
            .map_err(io_error(format!(
                "give bridge {name} the address {gateway}"
            )))?;
        std::fs::write(
            format!("/proc/sys/net/ipv4/conf/{name}/route_localnet"),
            "1",
        )
        .map_err(io_error(format!("set route_localnet on {name}")))?;
    }
    Ok((index, created))
}

impl Attachment {
    /// After the service's processes are gone: removes the bridges and the
    /// table this attachment created, unless other services use them. Its
    /// veths go with the service's network namespace (deleting them here
    /// would wait on the kernel for tens of milliseconds).
    pub fn detach(self) -> Result<(), NetError> {
        if self.bridges.is_empty() && self.table.is_none() {
            return Ok(());
        }
        let mut host = Netlink::open().map_err(io_error("open a netlink socket"))?;
        let links = host.links().map_err(io_error("list links"))?;
        let mut result = Ok(());
        let mut removed_all = true;
        for bridge in &self.bridges {
            let Some(link) = links.iter().find(|l| &l.name == bridge) else {
                continue;
            };
            let in_use = links
                .iter()
                .any(|l| l.master == Some(link.index) && !self.veths.contains(&l.name));
            if in_use {
                removed_all = false;
                continue;
            }
            if let Err(err) = host.delete_link(link.index).filter_gone() {
                result = result.and(Err(io_error(format!("delete bridge {bridge}"))(err)));
            }
        }
        if let Some(table) = self.table.filter(|_| removed_all) {
            result = result.and(nft::delete(&table).map_err(io_error("delete the nftables table")));
        }
        result
    }
}

trait FilterGone {
    /// A link already gone (ENODEV) is no error when removing it.
    fn filter_gone(self) -> io::Result<()>;
}

impl FilterGone for io::Result<()> {
    fn filter_gone(self) -> io::Result<()> {
        match self {
            Err(err) if err.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            other => other,
        }
    }
}

/// Whether a network `service` joins is defined differently in `new` than
/// in `old` (a reload): the service must restart on the new bridge.
pub fn networks_changed(old: &Config, new: &Config, service: &Service) -> bool {
    let find =
        |config: &Config, name: &String| config.networks.iter().find(|n| &n.name == name).cloned();
    service
        .networks
        .iter()
        .any(|name| find(old, name) != find(new, name))
}

/// Networks that at least one service joins.
fn used_networks(config: &Config) -> Vec<&Network> {
    config
        .networks
        .iter()
        .filter(|n| config.services.iter().any(|s| s.networks.contains(&n.name)))
        .collect()
}

/// Turns IPv4 forwarding on in this network namespace where it is off
/// (logged: it is a setting of the whole host, or the namespace).
fn enable_forwarding() -> io::Result<()> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(PATH)?.trim() == "1" {
        return Ok(());
    }
    std::fs::write(PATH, "1")?;
    log::info!("enabled IPv4 forwarding (net.ipv4.ip_forward=1): a network has a way out");
    Ok(())
}

/// The daemon's side: what it finds at start, changes at reload and removes at shutdown.
pub struct Host;

impl Host {
    /// Removes what a previous daemon of this state_dir left (a crash), then
    /// creates the bridges of the networks in use and loads the table. A
    /// service list without networks changes nothing.
    pub fn start(config: &Config) -> Result<(), NetError> {
        Host::stop(&config.state_dir)?;
        Host::apply(config).inspect_err(|_| {
            // Best effort: the error that stopped the start is the one to report.
            let _ = Host::stop(&config.state_dir);
        })
    }

    /// Brings bridges and table in line with `config` (after a reload):
    /// bridges of networks no longer in use, or whose subnet changed, go.
    pub fn reload(old: &Config, new: &Config) -> Result<(), NetError> {
        if old.networks.is_empty() && new.networks.is_empty() {
            return Ok(());
        }
        let names = Names::new(&new.state_dir);
        let kept: Vec<String> = used_networks(new)
            .into_iter()
            .filter(|n| old.networks.contains(n))
            .map(|n| names.bridge(n))
            .collect();
        let mut host = Netlink::open().map_err(io_error("open a netlink socket"))?;
        for network in &old.networks {
            let bridge = names.bridge(network);
            if kept.contains(&bridge) {
                continue;
            }
            if let Some(index) = host.index(&bridge).map_err(io_error("find links"))? {
                host.delete_link(index)
                    .filter_gone()
                    .map_err(io_error(format!("delete bridge {bridge}")))?;
            }
        }
        Host::apply(new)
    }

    fn apply(config: &Config) -> Result<(), NetError> {
        let used = used_networks(config);
        let table = nft::table(&config.state_dir);
        if used.is_empty() {
            if !ipam::ever_used(&config.state_dir) {
                return Ok(());
            }
            return nft::delete(&table).map_err(io_error("delete the nftables table"));
        }
        let names = Names::new(&config.state_dir);
        let all = ipam::allocate(config).map_err(io_error("allocate addresses"))?;
        let mut host = Netlink::open().map_err(io_error("open a netlink socket"))?;
        for network in &used {
            let bridge = names.bridge(network);
            ensure_bridge(&mut host, &bridge, network)?;
            log::info!(
                "network {}: bridge {bridge}, {}",
                network.name,
                network.subnet
            );
        }
        let rules = nft::ruleset(&table, config, &used, &all, |n| names.bridge(n));
        nft::apply(&rules).map_err(io_error("load the nftables table"))?;
        // Running services see who joined or left in their /etc/hosts.
        for service in &config.services {
            if hosts::dir(&config.state_dir, &service.name).exists() {
                write_files(config, service, &all)?;
            }
        }
        Ok(())
    }

    /// Removes every link with this state_dir's prefix and the table.
    pub fn stop(state_dir: &Path) -> Result<(), NetError> {
        if !ipam::ever_used(state_dir) {
            // No network was ever given an address here: nothing to remove
            // (and nf_tables is not even asked, which could load its module).
            return Ok(());
        }
        let prefix = config::link_prefix(state_dir);
        let mut host = Netlink::open().map_err(io_error("open a netlink socket"))?;
        let ours: Vec<_> = host
            .links()
            .map_err(io_error("list links"))?
            .into_iter()
            .filter(|l| l.name.starts_with(&prefix))
            .collect();
        // Veths first: deleting one also deletes its peer, which may be listed.
        let (bridges, veths): (Vec<_>, Vec<_>) = ours
            .into_iter()
            .partition(|l| l.name[prefix.len()..].starts_with('b'));
        for link in veths.iter().chain(&bridges) {
            host.delete_link(link.index)
                .filter_gone()
                .map_err(io_error(format!("delete {}", link.name)))?;
            log::debug!("deleted link {}", link.name);
        }
        nft::delete(&nft::table(state_dir)).map_err(io_error("delete the nftables table"))?;
        let _ = std::fs::remove_dir_all(state_dir.join("networks"));
        Ok(())
    }
}
