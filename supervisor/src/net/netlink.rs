//! The few rtnetlink requests the networks need (links, addresses, a default
//! route), built by hand over a NETLINK_ROUTE socket: no `ip`, no async runtime.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};
use nix::unistd::Pid;

// From linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/veth.h.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_PID: u16 = 19;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_GATEWAY: u16 = 5;
const RTA_OIF: u16 = 4;
const NLA_F_NESTED: u16 = 0x8000;
const IFF_UP: u32 = 0x1;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const HEADER_LEN: usize = 16;
// From linux/netfilter/nfnetlink.h and nf_tables.h.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETTABLE: u16 = 1;
const NFTA_TABLE_NAME: u16 = 1;
const NFPROTO_INET: u8 = 1;

/// A link as a dump lists it.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: i32,
    pub name: String,
    /// The bridge it is a port of.
    pub master: Option<i32>,
}

/// A NETLINK_ROUTE socket of one network namespace.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// A socket in this process's network namespace.
    pub fn open() -> io::Result<Netlink> {
        Netlink::open_protocol(SockProtocol::NetlinkRoute)
    }

    fn open_protocol(protocol: SockProtocol) -> io::Result<Netlink> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            protocol,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        Ok(Netlink { fd, seq: 0 })
    }

    /// A socket in the network namespace of `pid`: a socket stays in the
    /// namespace it was made in, so we step in, make it, and step back.
    /// (The supervisor is single-threaded: nothing else runs meanwhile.)
    pub fn open_in(pid: Pid) -> io::Result<Netlink> {
        let ours = File::open("/proc/self/ns/net")?;
        let theirs = File::open(format!("/proc/{pid}/ns/net"))?;
        setns(&theirs, CloneFlags::CLONE_NEWNET)?;
        let opened = Netlink::open();
        if let Err(err) = setns(&ours, CloneFlags::CLONE_NEWNET) {
            // Staying in the service's namespace would be far worse than dying.
            panic!("cannot return to the supervisor's network namespace: {err}");
        }
        opened
    }

    /// Whether nftables table `name` of family inet exists: asked over
    /// nfnetlink, much cheaper than running `nft` on every start.
    pub fn nft_table_exists(name: &str) -> io::Result<bool> {
        let mut nfnetlink = Netlink::open_protocol(SockProtocol::NetlinkNetFilter)?;
        // struct nfgenmsg: family, version, resource id (big endian).
        let mut msg = Message::new(vec![NFPROTO_INET, 0, 0, 0]);
        msg.attr(NFTA_TABLE_NAME, &c_string(name));
        match nfnetlink.request(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETTABLE, 0, msg) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let mut links = Vec::new();
        for message in self.dump(RTM_GETLINK, &ifinfomsg(AF_UNSPEC, 0, 0))? {
            let Some(body) = message.get(HEADER_LEN..) else {
                continue;
            };
            let index = i32::from_ne_bytes(
                body.get(4..8)
                    .and_then(|b| b.try_into().ok())
                    .unwrap_or_default(),
            );
            let (mut name, mut master) = (None, None);
            for (kind, data) in attributes(body.get(16..).unwrap_or_default()) {
                match kind {
                    IFLA_IFNAME => {
                        name = Some(
                            String::from_utf8_lossy(data)
                                .trim_end_matches('\0')
                                .to_string(),
                        )
                    }
                    IFLA_MASTER => {
                        master = data.try_into().ok().map(i32::from_ne_bytes);
                    }
                    _ => {}
                }
            }
            if let Some(name) = name {
                links.push(Link {
                    index,
                    name,
                    master,
                });
            }
        }
        Ok(links)
    }

    /// The index of link `name`, if there is one (asked by name: no dump).
    pub fn index(&mut self, name: &str) -> io::Result<Option<i32>> {
        let mut msg = Message::new(ifinfomsg(AF_UNSPEC, 0, 0));
        msg.attr(IFLA_IFNAME, &c_string(name));
        match self.transact(RTM_GETLINK, 0, msg) {
            Ok(answers) => Ok(answers.first().and_then(|m| {
                m.get(HEADER_LEN + 4..HEADER_LEN + 8)
                    .and_then(|b| b.try_into().ok())
                    .map(i32::from_ne_bytes)
            })),
            Err(err) if err.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// A bridge named `name`, up.
    pub fn create_bridge(&mut self, name: &str) -> io::Result<()> {
        let mut msg = Message::new(ifinfomsg(AF_UNSPEC, 0, IFF_UP));
        msg.attr(IFLA_IFNAME, &c_string(name));
        let info = msg.begin(IFLA_LINKINFO);
        msg.attr(IFLA_INFO_KIND, b"bridge");
        msg.end(info);
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, msg)
    }

    /// A veth pair: `name` here, up, a port of bridge `master`; its peer
    /// `peer` in the network namespace of `peer_pid`.
    pub fn create_veth(
        &mut self,
        name: &str,
        master: i32,
        peer: &str,
        peer_pid: Pid,
    ) -> io::Result<()> {
        let mut msg = Message::new(ifinfomsg(AF_UNSPEC, 0, IFF_UP));
        msg.attr(IFLA_IFNAME, &c_string(name));
        msg.attr(IFLA_MASTER, &master.to_ne_bytes());
        let info = msg.begin(IFLA_LINKINFO);
        msg.attr(IFLA_INFO_KIND, b"veth");
        let data = msg.begin(IFLA_INFO_DATA);
        let peer_info = msg.begin(VETH_INFO_PEER);
        msg.raw(&ifinfomsg(AF_UNSPEC, 0, 0));
        msg.attr(IFLA_IFNAME, &c_string(peer));
        msg.attr(IFLA_NET_NS_PID, &(peer_pid.as_raw() as u32).to_ne_bytes());
        msg.end(peer_info);
        msg.end(data);
        msg.end(info);
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, msg)
    }

    pub fn set_up(&mut self, index: i32) -> io::Result<()> {
        let msg = Message::new(ifinfomsg(AF_UNSPEC, index, IFF_UP));
        self.request(RTM_NEWLINK, 0, msg)
    }

    pub fn delete_link(&mut self, index: i32) -> io::Result<()> {
        let msg = Message::new(ifinfomsg(AF_UNSPEC, index, 0));
        self.request(RTM_DELLINK, 0, msg)
    }

    pub fn add_address(&mut self, index: i32, address: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut body = vec![AF_INET, prefix, 0, RT_SCOPE_UNIVERSE];
        body.extend_from_slice(&(index as u32).to_ne_bytes());
        let mut msg = Message::new(body);
        msg.attr(IFA_LOCAL, &address.octets());
        msg.attr(IFA_ADDRESS, &address.octets());
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, msg)
    }

    pub fn add_default_route(&mut self, gateway: Ipv4Addr, index: i32) -> io::Result<()> {
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        let mut body = vec![
            AF_INET,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
        ];
        body.extend_from_slice(&0u32.to_ne_bytes());
        let mut msg = Message::new(body);
        msg.attr(RTA_GATEWAY, &gateway.octets());
        msg.attr(RTA_OIF, &(index as u32).to_ne_bytes());
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, msg)
    }

    fn send(&mut self, kind: u16, flags: u16, msg: Message) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = msg.finish(kind, NLM_F_REQUEST | flags, self.seq);
        send(self.fd.as_raw_fd(), &bytes, MsgFlags::empty())?;
        Ok(self.seq)
    }

    /// Sends a request and waits for the kernel's acknowledgement.
    fn request(&mut self, kind: u16, flags: u16, msg: Message) -> io::Result<()> {
        self.transact(kind, flags, msg).map(drop)
    }

    /// Sends a request; the answers that come before the acknowledgement.
    fn transact(&mut self, kind: u16, flags: u16, msg: Message) -> io::Result<Vec<Vec<u8>>> {
        let seq = self.send(kind, flags | NLM_F_ACK, msg)?;
        let mut answers = Vec::new();
        loop {
            for message in self.receive()? {
                if header_seq(&message) != seq {
                    continue;
                }
                if header_kind(&message) == NLMSG_ERROR {
                    return error_of(&message).map(|()| answers);
                }
                answers.push(message);
            }
        }
    }

    /// Sends a dump request and collects every answer up to NLMSG_DONE.
    fn dump(&mut self, kind: u16, body: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        let seq = self.send(kind, NLM_F_DUMP, Message::new(body.to_vec()))?;
        let mut answers = Vec::new();
        loop {
            for message in self.receive()? {
                if header_seq(&message) != seq {
                    continue;
                }
                let last = header_flags(&message) & NLM_F_MULTI == 0;
                match header_kind(&message) {
                    NLMSG_DONE => return Ok(answers),
                    NLMSG_ERROR => error_of(&message)?,
                    _ if last => {
                        answers.push(message);
                        return Ok(answers);
                    }
                    _ => answers.push(message),
                }
            }
        }
    }

    /// One datagram, split into its messages.
    fn receive(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let mut buf = vec![0u8; 64 * 1024];
        let len = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other?,
            }
        };
        let mut messages = Vec::new();
        let mut rest = &buf[..len];
        while rest.len() >= HEADER_LEN {
            let size = u32::from_ne_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
            if size < HEADER_LEN || size > rest.len() {
                break;
            }
            messages.push(rest[..size].to_vec());
            rest = &rest[align(size).min(rest.len())..];
        }
        Ok(messages)
    }
}

fn header_kind(message: &[u8]) -> u16 {
    u16::from_ne_bytes([message[4], message[5]])
}

fn header_flags(message: &[u8]) -> u16 {
    u16::from_ne_bytes([message[6], message[7]])
}

fn header_seq(message: &[u8]) -> u32 {
    u32::from_ne_bytes(message[8..12].try_into().unwrap_or_default())
}

/// An NLMSG_ERROR message: an errno (0 for an acknowledgement).
fn error_of(message: &[u8]) -> io::Result<()> {
    let code = message
        .get(HEADER_LEN..HEADER_LEN + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, i32::from_ne_bytes);
    match code {
        0 => Ok(()),
        code => Err(io::Error::from_raw_os_error(-code)),
    }
}

/// struct ifinfomsg: family, pad, type, index, flags, change.
fn ifinfomsg(family: u8, index: i32, flags: u32) -> Vec<u8> {
    let mut body = vec![family, 0, 0, 0];
    body.extend_from_slice(&index.to_ne_bytes());
    body.extend_from_slice(&flags.to_ne_bytes());
    body.extend_from_slice(&flags.to_ne_bytes());
    body
}

fn c_string(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// The (type, payload) attributes of a message body.
fn attributes(mut bytes: &[u8]) -> Vec<(u16, &[u8])> {
    let mut found = Vec::new();
    while bytes.len() >= 4 {
        let len = u16::from_ne_bytes([bytes[0], bytes[1]]) as usize;
        let kind = u16::from_ne_bytes([bytes[2], bytes[3]]) & !NLA_F_NESTED;
        if len < 4 || len > bytes.len() {
            break;
        }
        found.push((kind, &bytes[4..len]));
        bytes = &bytes[align(len).min(bytes.len())..];
    }
    found
}

/// A request being built: the fixed body, then attributes (some nested).
struct Message {
    buf: Vec<u8>,
}

impl Message {
    fn new(body: Vec<u8>) -> Message {
        let mut buf = vec![0u8; HEADER_LEN];
        buf.extend_from_slice(&body);
        Message { buf }
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align(self.buf.len()), 0);
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        self.buf
            .extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.raw(data);
    }

    /// Opens a nested attribute; `end` closes it.
    fn begin(&mut self, kind: u16) -> usize {
        let start = self.buf.len();
        self.attr(kind, &[]);
        start
    }

    fn end(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self, kind: u16, flags: u16, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        self.buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}
