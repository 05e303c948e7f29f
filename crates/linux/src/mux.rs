//! The load balancer's data plane: an AF_PACKET forwarder on the host that owns the frontend.
//!
//! Hosts route traffic for a prefix *via* the frontend address, so the frames arrive with the
//! frontend host's MAC as destination and the real destination IP (the branch host) inside.
//! For each such IPv4 frame the mux takes the 5-tuple, asks [`lb::Balancer::select`] for the
//! backend NVA, and sends the frame back out of the same interface with only the Ethernet
//! addresses rewritten (destination = the NVA's MAC, source = the interface's). The IP packet
//! is untouched: no NAT, TTL as received — as the reference cloud's LB does (checksums: see
//! below).
//!
//! The kernel sees the same frames; with `net.ipv4.ip_forward=0` on this host it drops the
//! ones not addressed to it, so each packet is forwarded once, by the mux. Frames addressed to
//! one of the host's own IPs, and anything not IPv4, are left to the kernel alone.
//!
//! NVA MACs come from the kernel neighbour table (RTM_GETNEIGH). A backend with no usable
//! entry costs its packet (counted as `no_neighbour`) and triggers resolution: one empty UDP
//! datagram to the backend's discard port (9) from a normal socket makes the kernel ARP it.
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
//!    ├─ not IPv4 / dst is one of ours ──> left to the kernel
//!    └─ FlowKey ─> Balancer::select ─┬─ None ──> dropped (no_backend)
//!                                    └─ NVA ─> neighbour MAC? ─┬─ no ──> dropped, ARP triggered
//!                                                              └─ yes ─> rewrite MACs in the ring
//!  block done ─> sendmmsg(rewritten frames) ─> block back to the kernel
//!  between blocks (≥ every 10 ms): hook(&mut Balancer), neighbour table refresh
//! ```

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lb::{Balancer, FlowKey};

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
    /// Not IPv4, or addressed to one of the host's own IPs: left to the kernel.
    pub local: u64,
    /// Malformed IPv4 (too short, bad header length) or truncated frames.
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
    /// Not an IPv4 frame, or too short to tell.
    NotIpv4,
    Malformed,
    /// An IPv4 packet: its flow (ports 0 for non-TCP/UDP/SCTP and for every fragment, so all
    /// fragments of a datagram go to one backend) and destination.
    Ipv4 {
        flow: FlowKey,
        dst: Ipv4Addr,
    },
}

/// Classifies an Ethernet frame (no VLAN tags). Never panics, whatever the bytes.
pub fn classify(frame: &[u8]) -> Frame {
    if frame.len() < ETH_HDR || u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_IPV4 {
        return Frame::NotIpv4;
    }
    let ip = &frame[ETH_HDR..];
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
    let (sport, dport) = match (proto, ip.get(ihl..ihl + 4)) {
        (6 | 17 | 132, Some(p)) if !fragmented => (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ),
        _ => (0, 0),
    };
    Frame::Ipv4 {
        flow: FlowKey::new(src, dst, proto, sport, dport),
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

/// Computes the TCP or UDP checksum of an IPv4 frame whose sender left it to "the device"
/// (CHECKSUM_PARTIAL: a packet generated on this machine crossing a veth carries only the
/// pseudo-header sum). The kernel completes it when it forwards such a packet; the mux must do
/// the same, or the NVA drops the packet. Fragments and other protocols are left alone.
pub fn complete_l4_checksum(frame: &mut [u8]) {
    let Some(ip) = frame.get(ETH_HDR..) else {
        return;
    };
    if ip.len() < 20 {
        return;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let fragmented = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    let off = match ip[9] {
        6 => 16,
        17 => 6,
        _ => return,
    };
    if fragmented || ihl < 20 || total < ihl + off + 2 || total > ip.len() {
        return;
    }
    let proto = ip[9];
    let (src, dst) = (
        [ip[12], ip[13], ip[14], ip[15]],
        [ip[16], ip[17], ip[18], ip[19]],
    );
    let seg = &mut frame[ETH_HDR + ihl..ETH_HDR + total];
    seg[off] = 0;
    seg[off + 1] = 0;
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&src);
    add(&dst);
    add(&[0, proto]);
    add(&(seg.len() as u16).to_be_bytes());
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
    /// The host's own IPv4 addresses: traffic to them is the kernel's.
    local: HashSet<Ipv4Addr>,
    /// Backend IP → MAC, on this interface.
    neighbours: HashMap<Ipv4Addr, [u8; 6]>,
    neigh_read: Instant,
    /// Last resolution trigger per backend.
    resolving: HashMap<Ipv4Addr, Instant>,
    /// Sends the datagrams that make the kernel resolve a backend's MAC.
    resolver: UdpSocket,
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
        let ring = RxRing::open(link.index, ring).map_err(sock_err)?;
        let resolver = UdpSocket::bind("0.0.0.0:0").map_err(sock_err)?;
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
    pub fn unresolved(&self) -> Vec<Ipv4Addr> {
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
        let (flow, dst) = match classify(f.data) {
            Frame::Ipv4 { flow, dst } => (flow, dst),
            Frame::NotIpv4 => {
                self.stats.local += 1;
                return false;
            }
            Frame::Malformed => {
                self.stats.malformed += 1;
                return false;
            }
        };
        if self.local.contains(&dst) {
            self.stats.local += 1;
            return false;
        }
        let now = self.epoch.elapsed().as_secs() as u32;
        let Some(backend) = self.balancer.select(&flow, now) else {
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
    fn unresolved(&self) -> Vec<Ipv4Addr> {
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

    fn mac_of(&mut self, backend: Ipv4Addr) -> Option<[u8; 6]> {
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

    /// Makes the kernel ARP for `backend` (an empty datagram to its discard port), at most
    /// once per [`RESOLVE_INTERVAL`].
    fn resolve(&mut self, backend: Ipv4Addr) {
        let due = match self.resolving.get(&backend) {
            Some(t) => t.elapsed() >= RESOLVE_INTERVAL,
            None => true,
        };
        if due {
            // Best effort: an unreachable backend simply stays unresolved.
            let _ = self.resolver.send_to(&[], SocketAddrV4::new(backend, 9));
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
        assert_eq!(classify(&arp), Frame::NotIpv4);
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
