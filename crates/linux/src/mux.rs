//! The load balancer's data plane: an AF_PACKET forwarder on the host that owns the frontend.
//!
//! Hosts route traffic for a prefix *via* the frontend address, so the frames arrive with the
//! frontend host's MAC as destination and the real destination IP (the branch host) inside.
//! For each such IPv4 or IPv6 frame (of the family the balancer serves) the mux takes the
//! 5-tuple, asks [`lb::Balancer::select`] for the
//! backend NVA, and sends the frame back out of the same interface with only the Ethernet
//! addresses rewritten (destination = the NVA's MAC, source = the interface's). The IP packet
//! is untouched: no NAT, TTL and hop limit as received — as the reference cloud's LB does (checksums: see
//! below).
//!
//! The kernel sees the same frames; with `net.ipv4.ip_forward=0` and
//! `net.ipv6.conf.all.forwarding=0` on this host it drops the ones not addressed to it, so each
//! packet is forwarded once, by the mux. Frames addressed to one of the host's own IPs (and,
//! for IPv6, to link-local or multicast addresses: neighbour discovery), and anything not IP,
//! are left to the kernel alone.
//!
//! NVA MACs come from the kernel neighbour table (RTM_GETNEIGH, both families). A backend with
//! no usable entry costs its packet (counted as `no_neighbour`) and triggers resolution: one
//! empty UDP datagram to the backend's discard port (9) from a normal socket makes the kernel
//! ARP it (IPv4) or send a neighbour solicitation (IPv6).
//!
//! Receiving uses a TPACKET_V3 memory-mapped ring (blocks of frames the kernel fills and hands
//! over, no copy and no system call per frame); the frames of a block that are forwarded are
//! rewritten in place in the ring and sent with one `sendmmsg` per 64 frames, straight from
//! the ring, before the block goes back to the kernel.
//!
//! A packet generated on a machine and crossing a veth carries no finished TCP/UDP checksum
//! (CHECKSUM_PARTIAL, flagged `TP_STATUS_CSUMNOTREADY` in the ring): the mux completes it, as
//! the kernel does when it forwards such a packet. Real NICs deliver finished checksums.
//!
//! ```text
//!  RX ring block ─> each frame (PACKET_HOST) ─> classify
//!    ├─ not IP / other family / dst is ours ──> left to the kernel
//!    └─ FlowKey ─> Balancer::select ─┬─ None ──> dropped (no_backend)
//!                                    └─ NVA ─> neighbour MAC? ─┬─ no ──> dropped, ARP triggered
//!                                                              └─ yes ─> rewrite MACs in the ring
//!  block done ─> sendmmsg(rewritten frames) ─> block back to the kernel
//!  between blocks (≥ every 10 ms): hook(&mut Balancer), neighbour table refresh
//! ```

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lb::{Balancer, FlowKey, FlowKey6};

use crate::netlink::{self, Netlink};
use crate::sys::{RingSpec, RxFrame, RxRing};

/// How long one wait for a block lasts before the loop looks at its stop flag and its hook.
const RX_TIMEOUT: Duration = Duration::from_millis(10);
/// The neighbour table is read again at least this often (a MAC may change).
const NEIGH_REFRESH: Duration = Duration::from_secs(1);
/// While a backend has no MAC (or after a miss), the table is read again this often.
const NEIGH_MISS_REFRESH: Duration = Duration::from_millis(20);
/// How long [`Mux::open`] waits for the backends' MACs.
const OPEN_RESOLVE_WAIT: Duration = Duration::from_millis(500);
/// One resolution trigger per backend per this interval.
const RESOLVE_INTERVAL: Duration = Duration::from_millis(500);
/// The default receive ring: 16 blocks of 256 KiB (4 MiB, ~2700 full-size or ~40000
/// minimum-size frames), a block handed over after at most 1 ms.
pub const RING: RingSpec = RingSpec {
    block_size: 1 << 18,
    block_nr: 16,
    retire_ms: 1,
    fanout: None,
};

const ETH_HDR: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PACKET_HOST: u8 = 0;
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;

/// Errors of the mux.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no interface {0} in this network namespace")]
    NoInterface(String),
    #[error("interface {0} has no MAC address")]
    NoMac(String),
    #[error("packet socket on {interface}: {source}")]
    Socket {
        interface: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Netlink(#[from] netlink::Error),
}

/// Counters of the forwarding path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MuxStats {
    /// Frames received addressed to this host's MAC.
    pub rx: u64,
    pub forwarded: u64,
    /// Not IP, not the balancer's family, or addressed to one of the host's own IPs (or an
    /// IPv6 link-local or multicast address): left to the kernel.
    pub local: u64,
    /// Malformed IP (too short, bad header length, an IPv6 extension header chain running
    /// past the packet) or truncated frames.
    pub malformed: u64,
    /// The balancer had no backend for a new flow.
    pub no_backend: u64,
    /// The backend's MAC was not (yet) known.
    pub no_neighbour: u64,
    pub tx_errors: u64,
    /// Frames the kernel could not put in the receive ring (it was full): lost before the mux
    /// saw them. Updated between blocks, about every 10 ms, and when [`Mux::run`] returns.
    pub ring_drops: u64,
}

/// What a received frame is, for the forwarding decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Neither IPv4 nor IPv6, or too short to tell.
    NotIp,
    Malformed,
    /// An IPv4 packet: its flow (ports 0 for non-TCP/UDP/SCTP and for every fragment, so all
    /// fragments of a datagram go to one backend) and destination.
    Ipv4 {
        flow: FlowKey,
        dst: Ipv4Addr,
    },
    /// An IPv6 packet: its flow (the protocol is the upper layer's, after the extension
    /// headers; ports 0 as for IPv4, and for every packet with a fragment header) and
    /// destination.
    Ipv6 {
        flow: FlowKey6,
        dst: Ipv6Addr,
    },
}

/// Where the upper layer of an IPv6 packet is, after its extension headers.
struct UpperLayer {
    proto: u8,
    /// Offset in the packet (from the fixed header on).
    at: usize,
    /// A fragment (not an atomic one): no ports to hash.
    fragment: bool,
    /// A routing header with segments left: the destination in the fixed header is not the
    /// final one (the checksum's pseudo-header would need the last segment).
    rerouted: bool,
}

/// The IPv6 packet in `frame` (after the Ethernet header), cut to what its Payload Length
/// says (Ethernet pads short frames), or None when shorter than the fixed header.
fn ipv6_packet(ip: &[u8]) -> Option<&[u8]> {
    if ip.len() < 40 {
        return None;
    }
    let len = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    Some(&ip[..len.min(ip.len())])
}

/// Walks the extension headers a router may meet (hop-by-hop, routing, destination options,
/// fragment, AH) to the upper layer; None when the chain runs past the packet. An atomic
/// fragment (offset 0, no more fragments: RFC 8200 §4.5) is walked through like any header,
/// so a flow whose packets carry one hashes as those that do not.
fn ipv6_upper_layer(ip: &[u8]) -> Option<UpperLayer> {
    let (mut next, mut at, mut rerouted) = (ip[6], 40usize, false);
    // A chain longer than this is not a packet anyone sends; stop and hash what was reached.
    for _ in 0..8 {
        let len = match next {
            0 | 60 => (usize::from(*ip.get(at + 1)?) + 1) * 8,
            43 => {
                rerouted |= *ip.get(at + 3)? > 0; // segments left
                (usize::from(*ip.get(at + 1)?) + 1) * 8
            }
            51 => (usize::from(*ip.get(at + 1)?) + 2) * 4,
            44 => {
                let frag = u16::from_be_bytes([*ip.get(at + 2)?, *ip.get(at + 3)?]);
                if frag & 0xfff9 != 0 {
                    // An offset or more fragments: a real fragment.
                    return Some(UpperLayer {
                        proto: *ip.get(at)?,
                        at: at + 8,
                        fragment: true,
                        rerouted,
                    })
                    .filter(|u| u.at <= ip.len());
                }
                8
            }
            _ => break,
        };
        next = *ip.get(at)?;
        at += len;
    }
    Some(UpperLayer {
        proto: next,
        at,
        fragment: false,
        rerouted,
    })
    .filter(|u| u.at <= ip.len())
}

/// The source and destination ports of a TCP, UDP or SCTP segment at `l4`; 0, 0 otherwise.
fn ports(proto: u8, l4: Option<&[u8]>) -> (u16, u16) {
    match (proto, l4) {
        (6 | 17 | 132, Some(p)) if p.len() >= 4 => (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ),
        _ => (0, 0),
    }
}

/// Classifies an Ethernet frame (no VLAN tags). Never panics, whatever the bytes.
pub fn classify(frame: &[u8]) -> Frame {
    if frame.len() < ETH_HDR {
        return Frame::NotIp;
    }
    let ip = &frame[ETH_HDR..];
    match u16::from_be_bytes([frame[12], frame[13]]) {
        ETHERTYPE_IPV4 => classify4(ip),
        ETHERTYPE_IPV6 => classify6(ip),
        _ => Frame::NotIp,
    }
}

fn classify4(ip: &[u8]) -> Frame {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return Frame::Malformed;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ihl < 20 || ip.len() < ihl {
        return Frame::Malformed;
    }
    let proto = ip[9];
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let fragmented = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0; // MF or offset
    let (sport, dport) = if fragmented {
        (0, 0)
    } else {
        ports(proto, ip.get(ihl..))
    };
    Frame::Ipv4 {
        flow: FlowKey::new(src, dst, proto, sport, dport),
        dst,
    }
}

fn classify6(ip: &[u8]) -> Frame {
    let Some(ip) = ipv6_packet(ip).filter(|ip| ip[0] >> 4 == 6) else {
        return Frame::Malformed;
    };
    let Some(UpperLayer {
        proto,
        at: l4,
        fragment: fragmented,
        ..
    }) = ipv6_upper_layer(ip)
    else {
        return Frame::Malformed;
    };
    let octets = |at: usize| -> [u8; 16] {
        let mut o = [0u8; 16];
        o.copy_from_slice(&ip[at..at + 16]);
        o
    };
    let (src, dst) = (Ipv6Addr::from(octets(8)), Ipv6Addr::from(octets(24)));
    let (sport, dport) = if fragmented {
        (0, 0)
    } else {
        ports(proto, ip.get(l4..))
    };
    Frame::Ipv6 {
        flow: FlowKey6::new(src, dst, proto, sport, dport),
        dst,
    }
}

/// Rewrites the Ethernet addresses in place; nothing else changes.
pub fn rewrite(frame: &mut [u8], dst_mac: [u8; 6], src_mac: [u8; 6]) {
    if frame.len() >= 12 {
        frame[0..6].copy_from_slice(&dst_mac);
        frame[6..12].copy_from_slice(&src_mac);
    }
}

/// Computes the TCP or UDP checksum of an IPv4 or IPv6 frame whose sender left it to "the
/// device" (CHECKSUM_PARTIAL: a packet generated on this machine crossing a veth carries only
/// the pseudo-header sum). The kernel completes it when it forwards such a packet; the mux
/// must do the same, or the NVA drops the packet. Fragments and other protocols are left
/// alone, and so is anything too short to hold what its headers announce.
pub fn complete_l4_checksum(frame: &mut [u8]) {
    if frame.len() < ETH_HDR {
        return;
    }
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let ip = &frame[ETH_HDR..];
    // (pseudo-header addresses, protocol, upper layer's start and end in `frame`)
    let (addrs, proto, start, end) = match ethertype {
        ETHERTYPE_IPV4 if ip.len() >= 20 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 || ihl < 20 || total < ihl {
                return;
            }
            (&ip[12..20], ip[9], ihl, total)
        }
        ETHERTYPE_IPV6 if ip.len() >= 40 => {
            let total = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            match ipv6_packet(ip).and_then(ipv6_upper_layer) {
                Some(u) if !u.fragment && !u.rerouted && u.at <= total => {
                    (&ip[8..40], u.proto, u.at, total)
                }
                _ => return,
            }
        }
        _ => return,
    };
    let off = match proto {
        6 => 16,
        17 => 6,
        _ => return,
    };
    if end < start + off + 2 || end > ip.len() {
        return;
    }
    let mut pseudo = [0u8; 32];
    let pseudo = {
        pseudo[..addrs.len()].copy_from_slice(addrs);
        &pseudo[..addrs.len()]
    };
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(pseudo);
    let len = end - start;
    // IPv4: zero, protocol, 16-bit length; IPv6: 32-bit length, three zeros, next header.
    // Summed as 16-bit words both come to the same: protocol + length.
    add(&[0, proto]);
    add(&(len as u32).to_be_bytes());
    let seg = &mut frame[ETH_HDR + start..ETH_HDR + end];
    seg[off] = 0;
    seg[off + 1] = 0;
    add(seg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let mut c = !(sum as u16);
    if c == 0 && proto == 17 {
        c = 0xffff; // UDP: 0 means "no checksum"
    }
    seg[off..off + 2].copy_from_slice(&c.to_be_bytes());
}

/// One mux on one interface: the receive ring and the forwarding state.
pub struct Mux {
    ring: RxRing,
    fw: Forwarder,
}

/// Everything the per-frame decision needs, apart from the ring it reads from (so a block of
/// the ring and the forwarder can be borrowed at once).
struct Forwarder {
    interface: String,
    ifindex: u32,
    mac: [u8; 6],
    nl: Netlink,
    /// The host's own addresses: traffic to them is the kernel's.
    local: HashSet<IpAddr>,
    /// Backend IP → MAC, on this interface (ARP and NDP entries).
    neighbours: HashMap<IpAddr, [u8; 6]>,
    neigh_read: Instant,
    /// Last resolution trigger per backend.
    resolving: HashMap<IpAddr, Instant>,
    /// Send the datagrams that make the kernel resolve a backend's MAC (ARP, or neighbour
    /// discovery for IPv6); the IPv6 one is absent on a host without IPv6.
    resolver: UdpSocket,
    resolver6: Option<UdpSocket>,
    balancer: Balancer,
    /// Origin of the seconds passed to the balancer.
    epoch: Instant,
    stats: MuxStats,
    /// A netlink failure met inside a block walk, returned once the block is sent.
    error: Option<netlink::Error>,
}

impl Mux {
    /// Opens the mux on `interface` of the calling thread's network namespace, with the
    /// default ring ([`RING`]).
    pub fn open(interface: &str, balancer: Balancer) -> Result<Mux, Error> {
        Mux::open_with(interface, balancer, RING)
    }

    pub fn open_with(interface: &str, balancer: Balancer, ring: RingSpec) -> Result<Mux, Error> {
        let mut nl = Netlink::open()?;
        let link = nl
            .link(interface)?
            .ok_or_else(|| Error::NoInterface(interface.to_string()))?;
        let mac = link
            .mac
            .ok_or_else(|| Error::NoMac(interface.to_string()))?;
        let sock_err = |source| Error::Socket {
            interface: interface.to_string(),
            source,
        };
        // Only the frames of the family the balancer serves reach the ring.
        let ethertype = match balancer.config().frontend {
            IpAddr::V4(_) => ETHERTYPE_IPV4,
            IpAddr::V6(_) => ETHERTYPE_IPV6,
        };
        let ring = RxRing::open(link.index, ethertype, ring).map_err(sock_err)?;
        let resolver = UdpSocket::bind("0.0.0.0:0").map_err(sock_err)?;
        let resolver6 = UdpSocket::bind("[::]:0").ok();
        let local = nl.addresses()?.into_iter().collect();
        let mut fw = Forwarder {
            interface: interface.to_string(),
            ifindex: link.index,
            mac,
            nl,
            local,
            neighbours: HashMap::new(),
            neigh_read: Instant::now(),
            resolving: HashMap::new(),
            resolver,
            resolver6,
            balancer,
            epoch: Instant::now(),
            stats: MuxStats::default(),
            error: None,
        };
        // Resolve every backend now rather than drop the first packets of the first flows.
        let deadline = Instant::now() + OPEN_RESOLVE_WAIT;
        loop {
            fw.read_neighbours()?;
            let missing = fw.unresolved();
            if missing.is_empty() || Instant::now() >= deadline {
                break;
            }
            for b in missing {
                fw.resolve(b);
            }
            std::thread::sleep(NEIGH_MISS_REFRESH);
        }
        Ok(Mux { ring, fw })
    }

    pub fn interface(&self) -> &str {
        &self.fw.interface
    }

    pub fn stats(&self) -> MuxStats {
        self.fw.stats
    }

    pub fn balancer(&self) -> &Balancer {
        &self.fw.balancer
    }

    /// Backends whose MAC is not known.
    pub fn unresolved(&self) -> Vec<IpAddr> {
        self.fw.unresolved()
    }

    /// Forwards frames until `stop` is set. `hook` runs between blocks at least every 10 ms,
    /// with the balancer: it is where the caller applies probe results and admin changes
    /// (e.g. draining a channel), so the balancer keeps a single owner.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        mut hook: impl FnMut(&mut Balancer),
    ) -> Result<(), Error> {
        let mut last_hook = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if last_hook.elapsed() >= RX_TIMEOUT {
                hook(&mut self.fw.balancer);
                self.fw.stats.ring_drops += self.ring.take_drops().unwrap_or(0);
                last_hook = Instant::now();
            }
            self.fw.refresh_neighbours()?;
            let block = match self.ring.next_block(RX_TIMEOUT) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(source) => {
                    return Err(Error::Socket {
                        interface: self.fw.interface.clone(),
                        source,
                    })
                }
            };
            let fw = &mut self.fw;
            let sent = block.forward(|f| fw.decide(f));
            fw.stats.forwarded += sent.ok;
            fw.stats.tx_errors += sent.failed;
            if let Some(e) = fw.error.take() {
                return Err(e.into());
            }
        }
        self.fw.stats.ring_drops += self.ring.take_drops().unwrap_or(0);
        Ok(())
    }
}

impl Forwarder {
    /// The forwarding decision for one received frame; true: send it (already rewritten).
    fn decide(&mut self, f: RxFrame<'_>) -> bool {
        if f.pkttype != PACKET_HOST {
            return false;
        }
        self.stats.rx += 1;
        let serves_v4 = self.balancer.config().frontend.is_ipv4();
        let now = self.epoch.elapsed().as_secs() as u32;
        let selected = match classify(f.data) {
            Frame::Ipv4 { flow, dst } if serves_v4 && !self.local.contains(&dst.into()) => {
                self.balancer.select(&flow, now)
            }
            // Link-local and multicast destinations (neighbour discovery, router
            // advertisements) are never forwarded.
            Frame::Ipv6 { flow, dst }
                if !serves_v4
                    && !self.local.contains(&dst.into())
                    && !dst.is_multicast()
                    && !dst.is_unicast_link_local() =>
            {
                self.balancer.select::<lb::flow::V6>(&flow, now)
            }
            Frame::Malformed => {
                self.stats.malformed += 1;
                return false;
            }
            // Not IP, ours, or of the family this balancer does not serve.
            _ => {
                self.stats.local += 1;
                return false;
            }
        };
        let Some(backend) = selected else {
            self.stats.no_backend += 1;
            return false;
        };
        let Some(mac) = self.mac_of(backend) else {
            self.stats.no_neighbour += 1;
            self.resolve(backend);
            return false;
        };
        rewrite(f.data, mac, self.mac);
        if f.status & TP_STATUS_CSUMNOTREADY != 0 {
            complete_l4_checksum(f.data);
        }
        true
    }

    /// Backends that may take flows but whose MAC is not known.
    fn unresolved(&self) -> Vec<IpAddr> {
        self.balancer
            .backends()
            .iter()
            .map(|b| b.address)
            .filter(|a| !self.neighbours.contains_key(a))
            .collect()
    }

    /// Re-reads the neighbour table every second, or every 20 ms while a backend is
    /// unresolved (and asks the kernel to resolve it).
    fn refresh_neighbours(&mut self) -> Result<(), netlink::Error> {
        let since = self.neigh_read.elapsed();
        if since >= NEIGH_REFRESH {
            // The host's own addresses too, once a second: IPv6 ones come and go after start
            // (autoconfiguration, an address added later).
            self.local = self.nl.addresses()?.into_iter().collect();
            self.read_neighbours()?;
        } else if since >= NEIGH_MISS_REFRESH {
            let missing = self.unresolved();
            if !missing.is_empty() {
                self.read_neighbours()?;
                for b in missing {
                    self.resolve(b);
                }
            }
        }
        Ok(())
    }

    fn mac_of(&mut self, backend: IpAddr) -> Option<[u8; 6]> {
        if let Some(m) = self.neighbours.get(&backend) {
            return Some(*m);
        }
        if self.neigh_read.elapsed() >= NEIGH_MISS_REFRESH {
            if let Err(e) = self.read_neighbours() {
                self.error.get_or_insert(e);
            }
        }
        self.neighbours.get(&backend).copied()
    }

    fn read_neighbours(&mut self) -> Result<(), netlink::Error> {
        self.neighbours = self
            .nl
            .neighbours()?
            .into_iter()
            .filter(|n| n.ifindex == self.ifindex)
            .map(|n| (n.addr, n.mac))
            .collect();
        self.neigh_read = Instant::now();
        Ok(())
    }

    /// Makes the kernel resolve `backend`'s MAC (ARP, or a neighbour solicitation for IPv6)
    /// by sending an empty datagram to its discard port, at most once per
    /// [`RESOLVE_INTERVAL`].
    fn resolve(&mut self, backend: IpAddr) {
        let due = match self.resolving.get(&backend) {
            Some(t) => t.elapsed() >= RESOLVE_INTERVAL,
            None => true,
        };
        if due {
            // Best effort: an unreachable backend simply stays unresolved.
            let to = SocketAddr::new(backend, 9);
            let _ = match backend {
                IpAddr::V4(_) => self.resolver.send_to(&[], to),
                IpAddr::V6(_) => match &self.resolver6 {
                    Some(s) => s.send_to(&[], to),
                    None => Ok(0),
                },
            };
            self.resolving.insert(backend, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 (TTL 64) + UDP 40000 → 7000, from 10.1.3.10 to 192.168.10.1.
    const UDP_FRAME: [u8; 46] = [
        0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00, // ethernet
        0x45, 0, 0, 32, 0x12, 0x34, 0x40, 0, 64, 17, 0xab, 0xcd, // ip: DF, ttl 64, udp
        10, 1, 3, 10, 192, 168, 10, 1, // src, dst
        0x9c, 0x40, 0x1b, 0x58, 0, 12, 0, 0, b'h', b'i', b'!', b'!', // udp + payload
    ];

    #[test]
    fn classify_udp_frame() {
        let f = classify(&UDP_FRAME);
        let want = FlowKey::new(
            Ipv4Addr::new(10, 1, 3, 10),
            Ipv4Addr::new(192, 168, 10, 1),
            17,
            40000,
            7000,
        );
        assert_eq!(
            f,
            Frame::Ipv4 {
                flow: want,
                dst: Ipv4Addr::new(192, 168, 10, 1)
            }
        );
    }

    #[test]
    fn fragments_and_other_protocols_have_no_ports() {
        let mut frag = UDP_FRAME;
        frag[20] = 0x20; // MF
        let Frame::Ipv4 { flow, .. } = classify(&frag) else {
            panic!()
        };
        assert_eq!((flow.sport, flow.dport), (0, 0));
        let mut icmp = UDP_FRAME;
        icmp[23] = 1;
        let Frame::Ipv4 { flow, .. } = classify(&icmp) else {
            panic!()
        };
        assert_eq!((flow.proto, flow.sport, flow.dport), (1, 0, 0));
    }

    #[test]
    fn short_or_foreign_frames_never_panic() {
        for n in 0..UDP_FRAME.len() {
            let _ = classify(&UDP_FRAME[..n]);
        }
        assert_eq!(classify(&UDP_FRAME[..20]), Frame::Malformed);
        let mut arp = UDP_FRAME;
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(classify(&arp), Frame::NotIp);
        let mut bad_ihl = UDP_FRAME;
        bad_ihl[14] = 0x44;
        assert_eq!(classify(&bad_ihl), Frame::Malformed);
    }

    #[test]
    fn completes_a_udp_checksum() {
        // The UDP_FRAME segment: checksum over pseudo-header + 8 + 4 bytes, computed by hand:
        // 0x0a01+0x030a+0xc0a8+0x0a01+0x0011+0x000c + 0x9c40+0x1b58+0x000c+0x0000+0x6869+0x2121
        let mut f = UDP_FRAME;
        f[40..42].copy_from_slice(&[0x12, 0x34]); // a partial sum, as veth leaves it
        complete_l4_checksum(&mut f);
        let words: [u32; 12] = [
            0x0a01, 0x030a, 0xc0a8, 0x0a01, 0x0011, 0x000c, 0x9c40, 0x1b58, 0x000c, 0, 0x6869,
            0x2121,
        ];
        let mut sum: u32 = words.iter().sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(u16::from_be_bytes([f[40], f[41]]), !(sum as u16));
        assert_eq!(&f[..40], &UDP_FRAME[..40]);
        // Every short prefix is left alone without panicking.
        for n in 0..UDP_FRAME.len() {
            complete_l4_checksum(&mut UDP_FRAME[..n].to_vec());
        }
    }

    /// Ethernet + IPv6 (hop limit 64) + UDP 40000 → 7000, from fd00:1:3::10 to fd00:10::1.
    fn udp6_frame() -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 12, 17, 64]); // version, length 12, UDP, hop 64
        f.extend_from_slice(&"fd00:1:3::10".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&"fd00:10::1".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&[
            0x9c, 0x40, 0x1b, 0x58, 0, 12, 0x12, 0x34, b'h', b'i', b'!', b'!',
        ]);
        f
    }

    #[test]
    fn classify_ipv6_frames() {
        let src: Ipv6Addr = "fd00:1:3::10".parse().unwrap();
        let dst: Ipv6Addr = "fd00:10::1".parse().unwrap();
        let f = udp6_frame();
        assert_eq!(
            classify(&f),
            Frame::Ipv6 {
                flow: FlowKey6::new(src, dst, 17, 40000, 7000),
                dst
            }
        );
        // A hop-by-hop options header (8 octets) before UDP: the ports are found after it.
        let mut hbh = f.clone();
        hbh[20] = 0; // next header: hop-by-hop
        hbh[18..20].copy_from_slice(&20u16.to_be_bytes());
        hbh.splice(54..54, [17, 0, 1, 4, 0, 0, 0, 0]);
        assert_eq!(classify(&hbh), classify(&f));
        // A fragment header: the upper layer's protocol, no ports.
        let mut frag = f.clone();
        frag[20] = 44;
        frag.splice(54..54, [17, 0, 0, 1, 0, 0, 0, 7]);
        let Frame::Ipv6 { flow, .. } = classify(&frag) else {
            panic!()
        };
        assert_eq!((flow.proto, flow.sport, flow.dport), (17, 0, 0));
        // An atomic fragment (offset 0, M 0) hashes like the same packet without it.
        let mut atomic = f.clone();
        atomic[20] = 44;
        atomic[18..20].copy_from_slice(&20u16.to_be_bytes());
        atomic.splice(54..54, [17, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(classify(&atomic), classify(&f));
        // Ethernet padding after the packet is not read as part of it.
        let mut padded = f.clone();
        padded[18..20].copy_from_slice(&2u16.to_be_bytes()); // only 2 octets of UDP
        padded[20] = 6; // TCP, whose ports would be in the padding
        let Frame::Ipv6 { flow, .. } = classify(&padded) else {
            panic!()
        };
        assert_eq!((flow.sport, flow.dport), (0, 0));
        // An extension header chain running past the packet, and every truncation: no panic.
        let mut past = f.clone();
        past[20] = 60;
        past[55] = 200;
        assert_eq!(classify(&past), Frame::Malformed);
        for n in 0..hbh.len() {
            let _ = classify(&hbh[..n]);
        }
        assert_eq!(classify(&f[..50]), Frame::Malformed);
    }

    #[test]
    fn completes_an_ipv6_udp_checksum() {
        let mut f = udp6_frame();
        complete_l4_checksum(&mut f);
        // RFC 8200 §8.1 pseudo-header: both addresses, length (32 bits), next header; then
        // the segment with the checksum field zero.
        let mut words: Vec<u32> = Vec::new();
        for c in f[22..54].chunks(2) {
            words.push(u32::from(u16::from_be_bytes([c[0], c[1]])));
        }
        words.extend([0, 12, 17]);
        words.extend([0x9c40, 0x1b58, 0x000c, 0, 0x6869, 0x2121]);
        let mut sum: u32 = words.iter().sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(u16::from_be_bytes([f[60], f[61]]), !(sum as u16));
        assert_eq!(&f[..60], &udp6_frame()[..60], "nothing else changed");
        for n in 0..f.len() {
            complete_l4_checksum(&mut udp6_frame()[..n].to_vec());
        }
    }

    #[test]
    fn rewrite_changes_only_the_macs() {
        let mut f = UDP_FRAME;
        rewrite(&mut f, [0xaa; 6], [0xbb; 6]);
        assert_eq!(
            &f[..12],
            &[0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb]
        );
        assert_eq!(&f[12..], &UDP_FRAME[12..]);
    }
}
