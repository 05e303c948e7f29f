//! MRT export (RFC 6396): TABLE_DUMP_V2 snapshots of Adj-RIBs-In and BGP4MP update logs,
//! readable by bgpdump and every other MRT tool.
//!
//! ```text
//!  MRT header: timestamp(4) type(2)=13 subtype(2) length(4)
//!  PEER_INDEX_TABLE (subtype 1): collector id, view name, peers (type, BGP id, address, AS)
//!  RIB_IPV4_UNICAST (subtype 2) / RIB_IPV6_UNICAST (subtype 4), one per prefix: sequence,
//!      prefix, entries (peer index, originated time, path attributes with 4-octet AS numbers;
//!      for IPv6, MP_REACH_NLRI abbreviated to the next hop, §4.3.4)
//! ```

use std::net::{IpAddr, Ipv4Addr};

use crate::wire::attrs::MpNextHop;
use crate::wire::{Ipv4Prefix, Ipv6Prefix, PathAttributes, SessionContext};

/// MRT type BGP4MP (RFC 6396 §4.4) and its subtype BGP4MP_MESSAGE_AS4.
pub const BGP4MP: u16 = 16;
pub const BGP4MP_MESSAGE_AS4: u16 = 4;

/// Appends a BGP4MP_MESSAGE_AS4 record: `message`, a whole BGP message (header included, AS
/// numbers in 4 octets), received from `peer` on the session with `local`.
pub fn bgp4mp_message(
    timestamp: u32,
    (peer_as, peer_ip): (u32, IpAddr),
    (local_as, local_ip): (u32, IpAddr),
    message: &[u8],
    out: &mut Vec<u8>,
) {
    // Both ends of a session are of one family; a mixed pair is written as IPv6 (mapped).
    let (afi, peer_ip, local_ip): (u16, Vec<u8>, Vec<u8>) = match (peer_ip, local_ip) {
        (IpAddr::V4(p), IpAddr::V4(l)) => (1, p.octets().to_vec(), l.octets().to_vec()),
        (p, l) => (2, v6(p).to_vec(), v6(l).to_vec()),
    };
    let len = 4 + 4 + 2 + 2 + peer_ip.len() + local_ip.len() + message.len();
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&BGP4MP.to_be_bytes());
    out.extend_from_slice(&BGP4MP_MESSAGE_AS4.to_be_bytes());
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&peer_as.to_be_bytes());
    out.extend_from_slice(&local_as.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes()); // interface index: not known
    out.extend_from_slice(&afi.to_be_bytes());
    out.extend_from_slice(&peer_ip);
    out.extend_from_slice(&local_ip);
    out.extend_from_slice(message);
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// An UPDATE as a whole BGP message in the encoding BGP4MP_MESSAGE_AS4 records hold (header
/// included, 4-octet AS numbers), appended to `out`.
pub fn emit_update(update: &crate::wire::UpdateMessage, out: &mut Vec<u8>) {
    update.emit(&CONTEXT, out);
}

/// MRT type TABLE_DUMP_V2 (RFC 6396 §4.3).
pub const TABLE_DUMP_V2: u16 = 13;
/// Its subtypes used here.
pub const PEER_INDEX_TABLE: u16 = 1;
pub const RIB_IPV4_UNICAST: u16 = 2;
pub const RIB_IPV6_UNICAST: u16 = 4;

/// Peer type bits of a PEER_INDEX_TABLE entry (RFC 6396 §4.3.1).
const PEER_TYPE_AS4: u8 = 0b10;
const PEER_TYPE_IPV6: u8 = 0b01;

/// One peer of the PEER_INDEX_TABLE; its place in the list is its index in RIB entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MrtPeer {
    pub bgp_id: Ipv4Addr,
    pub address: IpAddr,
    pub asn: u32,
}

/// Path attributes as TABLE_DUMP_V2 holds them: AS numbers always in 4 octets (§4.3.4), every
/// attribute kept as received.
const CONTEXT: SessionContext = SessionContext {
    four_octet_as: true,
    extended_message: true,
    ebgp: false,
};

/// Appends one MRT record: the common header, then `body`.
fn record(timestamp: u32, subtype: u16, body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&TABLE_DUMP_V2.to_be_bytes());
    out.extend_from_slice(&subtype.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// Builds a TABLE_DUMP_V2 file: the peer index first, then one RIB record per prefix.
pub struct TableDump {
    out: Vec<u8>,
    timestamp: u32,
    sequence: u32,
    peers: usize,
    body: Vec<u8>,
    attrs: Vec<u8>,
}

impl TableDump {
    /// A dump taken at `timestamp` (Unix seconds) by `collector` (a BGP identifier), named
    /// `view`, of the routes of `peers`. More than 65535 peers do not fit the format: the rest
    /// are left out of the index and their routes out of the dump.
    pub fn new(timestamp: u32, collector: Ipv4Addr, view: &str, peers: &[MrtPeer]) -> Self {
        let peers = &peers[..peers.len().min(usize::from(u16::MAX))];
        let view = &view.as_bytes()[..view.len().min(usize::from(u16::MAX))];
        let mut body = Vec::new();
        body.extend_from_slice(&collector.octets());
        body.extend_from_slice(&(view.len() as u16).to_be_bytes());
        body.extend_from_slice(view);
        body.extend_from_slice(&(peers.len() as u16).to_be_bytes());
        for p in peers {
            match p.address {
                IpAddr::V4(a) => {
                    body.push(PEER_TYPE_AS4);
                    body.extend_from_slice(&p.bgp_id.octets());
                    body.extend_from_slice(&a.octets());
                }
                IpAddr::V6(a) => {
                    body.push(PEER_TYPE_AS4 | PEER_TYPE_IPV6);
                    body.extend_from_slice(&p.bgp_id.octets());
                    body.extend_from_slice(&a.octets());
                }
            }
            body.extend_from_slice(&p.asn.to_be_bytes());
        }
        let mut out = Vec::new();
        record(timestamp, PEER_INDEX_TABLE, &body, &mut out);
        Self {
            out,
            timestamp,
            sequence: 0,
            peers: peers.len(),
            body,
            attrs: Vec::new(),
        }
    }

    /// Appends the RIB record of `prefix`: each path as (peer index, originated time,
    /// attributes). Paths of a peer beyond the index are left out; a prefix with none is not
    /// written.
    pub fn add<'a>(
        &mut self,
        prefix: Ipv4Prefix,
        paths: impl IntoIterator<Item = (usize, u32, &'a PathAttributes)>,
    ) {
        let octets = prefix.addr().octets();
        self.add_entry(RIB_IPV4_UNICAST, prefix.len(), &octets, paths);
    }

    /// The same for an IPv6 prefix (RIB_IPV6_UNICAST): each path's MP_REACH_NLRI holds only
    /// its next hop (RFC 6396 §4.3.4).
    pub fn add6<'a>(
        &mut self,
        prefix: Ipv6Prefix,
        paths: impl IntoIterator<Item = (usize, u32, &'a PathAttributes)>,
    ) {
        let octets = prefix.addr().octets();
        self.add_entry(RIB_IPV6_UNICAST, prefix.len(), &octets, paths);
    }

    fn add_entry<'a>(
        &mut self,
        subtype: u16,
        len: u8,
        octets: &[u8],
        paths: impl IntoIterator<Item = (usize, u32, &'a PathAttributes)>,
    ) {
        let body = &mut self.body;
        body.clear();
        body.extend_from_slice(&self.sequence.to_be_bytes());
        body.push(len);
        body.extend_from_slice(&octets[..usize::from(len).div_ceil(8)]);
        let count_at = body.len();
        body.extend_from_slice(&[0, 0]);
        let mut count: u16 = 0;
        for (peer, originated, attrs) in paths {
            if peer >= self.peers || count == u16::MAX {
                continue;
            }
            self.attrs.clear();
            match (&attrs.mp_reach, subtype) {
                (Some(r), RIB_IPV6_UNICAST) => {
                    let rest = PathAttributes {
                        mp_reach: None,
                        ..attrs.clone()
                    };
                    rest.emit(&CONTEXT, &mut self.attrs);
                    let nh: Vec<u8> = match r.next_hop {
                        MpNextHop::V4(a) => a.octets().to_vec(),
                        MpNextHop::V6 { global, link_local } => {
                            let mut v = global.octets().to_vec();
                            v.extend(link_local.map(|l| l.octets()).unwrap_or_default());
                            v
                        }
                    };
                    // Optional, type 14, then next hop length and next hop only.
                    self.attrs
                        .extend_from_slice(&[0x80, 14, (nh.len() + 1) as u8, nh.len() as u8]);
                    self.attrs.extend_from_slice(&nh);
                }
                _ => attrs.emit(&CONTEXT, &mut self.attrs),
            }
            let Ok(len) = u16::try_from(self.attrs.len()) else {
                continue;
            };
            body.extend_from_slice(&(peer as u16).to_be_bytes());
            body.extend_from_slice(&originated.to_be_bytes());
            body.extend_from_slice(&len.to_be_bytes());
            body.extend_from_slice(&self.attrs);
            count += 1;
        }
        if count == 0 {
            return;
        }
        body[count_at..count_at + 2].copy_from_slice(&count.to_be_bytes());
        record(self.timestamp, subtype, body, &mut self.out);
        self.sequence = self.sequence.wrapping_add(1);
    }

    /// The file's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AsPath, Origin};

    #[test]
    fn layout_of_a_small_dump() {
        let peers = [MrtPeer {
            bgp_id: Ipv4Addr::new(10, 1, 2, 10),
            address: Ipv4Addr::new(10, 1, 2, 10).into(),
            asn: 65001,
        }];
        let mut d = TableDump::new(1_000, Ipv4Addr::new(10, 1, 1, 4), "IN_0", &peers);
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(vec![65001])),
            next_hop: Some(Ipv4Addr::new(10, 1, 0, 100)),
            ..Default::default()
        };
        d.add("192.168.10.0/24".parse().unwrap(), [(0, 900, &attrs)]);
        // A path of a peer not in the index, and a prefix with no path left: nothing written.
        d.add("192.168.20.0/24".parse().unwrap(), [(1, 900, &attrs)]);
        let b = d.finish();
        // Peer index: header 12 + collector 4 + view len 2 + "IN_0" 4 + count 2 + entry 13.
        assert_eq!(&b[4..8], &[0, 13, 0, 1]);
        assert_eq!(
            u32::from_be_bytes(b[8..12].try_into().unwrap()),
            4 + 2 + 4 + 2 + 13
        );
        let rib = &b[12 + 25..];
        assert_eq!(&rib[4..8], &[0, 13, 0, 2]);
        let body = &rib[12..];
        assert_eq!(&body[..4], &[0, 0, 0, 0], "sequence 0");
        assert_eq!(&body[4..8], &[24, 192, 168, 10], "prefix");
        assert_eq!(&body[8..10], &[0, 1], "one entry");
        assert_eq!(&body[10..12], &[0, 0], "peer index 0");
        assert_eq!(u32::from_be_bytes(body[12..16].try_into().unwrap()), 900);
        let len = usize::from(u16::from_be_bytes(body[16..18].try_into().unwrap()));
        assert_eq!(body.len(), 18 + len);
        // AS_PATH with a 4-octet ASN: flags, type 2, length 6, AS_SEQUENCE of 1, 65001.
        assert!(body[18..]
            .windows(9)
            .any(|w| w == [0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9]));
        assert_eq!(b.len(), 12 + 25 + 12 + body.len());
    }
}
