//! BMP (RFC 7854) messages, as a monitored router sends them to a collector: Initiation, Peer Up,
//! Route Monitoring (pre-policy Adj-RIB-In), Peer Down and Termination.
//!
//! ```text
//!  common header: version 3 (1), length (4), type (1)
//!  per-peer header: type 0 (global), flags (V=0: IPv4, L=0: pre-policy, A=0: 4-octet AS),
//!      distinguisher 0 (8), address (16), AS (4), BGP id (4), time (4 + 4)
//! ```

use std::net::{IpAddr, Ipv4Addr};

use crate::wire::{Message, Notification, Open, SessionContext, UpdateMessage};

pub const VERSION: u8 = 3;
/// Message types (RFC 7854 §4.1).
pub const ROUTE_MONITORING: u8 = 0;
pub const PEER_DOWN: u8 = 2;
pub const PEER_UP: u8 = 3;
pub const INITIATION: u8 = 4;
pub const TERMINATION: u8 = 5;

/// Information TLV types of Initiation (§4.3).
const INFO_SYS_DESCR: u16 = 1;
const INFO_SYS_NAME: u16 = 2;

/// BGP messages inside BMP are encoded with 4-octet AS numbers (the A flag is 0).
const CONTEXT: SessionContext = SessionContext {
    four_octet_as: true,
    extended_message: true,
    ebgp: false,
};

/// Who a per-peer message is about, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerHeader {
    pub address: IpAddr,
    pub asn: u32,
    pub bgp_id: Ipv4Addr,
    /// Unix time of the event, seconds and microseconds.
    pub secs: u32,
    pub micros: u32,
}

/// Why a session went down (§4.9), with what the collector is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// We closed it with this NOTIFICATION (reason 1).
    LocalNotification(Notification),
    /// We closed it without a NOTIFICATION (reason 2, FSM event code 0: not known).
    LocalNoNotification,
    /// The peer closed it with this NOTIFICATION (reason 3).
    RemoteNotification(Notification),
    /// The peer closed it without one (reason 4).
    RemoteNoData,
}

fn common(kind: u8, body_len: usize, out: &mut Vec<u8>) {
    out.push(VERSION);
    out.extend_from_slice(&((6 + body_len) as u32).to_be_bytes());
    out.push(kind);
}

fn per_peer(h: &PeerHeader, out: &mut Vec<u8>) {
    out.push(0); // global instance peer
                 // Flags: V (IPv6 address), pre-policy, 4-octet AS.
    match h.address {
        IpAddr::V4(a) => {
            out.push(0);
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(&[0; 12]);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(0x80);
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(&a.octets());
        }
    }
    out.extend_from_slice(&h.asn.to_be_bytes());
    out.extend_from_slice(&h.bgp_id.octets());
    out.extend_from_slice(&h.secs.to_be_bytes());
    out.extend_from_slice(&h.micros.to_be_bytes());
}

/// The Initiation message: `sys_name` and `sys_descr`.
pub fn initiation(sys_name: &str, sys_descr: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, v) in [(INFO_SYS_DESCR, sys_descr), (INFO_SYS_NAME, sys_name)] {
        let v = &v.as_bytes()[..v.len().min(usize::from(u16::MAX))];
        body.extend_from_slice(&t.to_be_bytes());
        body.extend_from_slice(&(v.len() as u16).to_be_bytes());
        body.extend_from_slice(v);
    }
    let mut out = Vec::with_capacity(6 + body.len());
    common(INITIATION, body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// The Termination message (no information: the session ends administratively).
pub fn termination() -> Vec<u8> {
    let body = [0u8, 1, 0, 2, 0, 0]; // reason TLV: 0 = administratively closed
    let mut out = Vec::new();
    common(TERMINATION, body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Peer Up: the session with `h` is established from `local` (ports not known: 0), with the
/// OPEN we sent and the one we received.
pub fn peer_up(h: &PeerHeader, local: Ipv4Addr, sent: &Open, received: &Open) -> Vec<u8> {
    let mut body = Vec::new();
    per_peer(h, &mut body);
    body.extend_from_slice(&[0; 12]);
    body.extend_from_slice(&local.octets());
    body.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(&Message::Open(sent.clone()).to_bytes(&CONTEXT));
    body.extend_from_slice(&Message::Open(received.clone()).to_bytes(&CONTEXT));
    let mut out = Vec::with_capacity(6 + body.len());
    common(PEER_UP, body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Route Monitoring: `update`, as received from `h` (pre-policy).
pub fn route_monitoring(h: &PeerHeader, update: &UpdateMessage) -> Vec<u8> {
    let mut body = Vec::new();
    per_peer(h, &mut body);
    update.emit(&CONTEXT, &mut body);
    let mut out = Vec::with_capacity(6 + body.len());
    common(ROUTE_MONITORING, body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Peer Down: the session with `h` ended for `reason`.
pub fn peer_down(h: &PeerHeader, reason: &DownReason) -> Vec<u8> {
    let mut body = Vec::new();
    per_peer(h, &mut body);
    match reason {
        DownReason::LocalNotification(n) => {
            body.push(1);
            body.extend_from_slice(&Message::Notification(n.clone()).to_bytes(&CONTEXT));
        }
        DownReason::LocalNoNotification => {
            body.push(2);
            body.extend_from_slice(&0u16.to_be_bytes());
        }
        DownReason::RemoteNotification(n) => {
            body.push(3);
            body.extend_from_slice(&Message::Notification(n.clone()).to_bytes(&CONTEXT));
        }
        DownReason::RemoteNoData => body.push(4),
    }
    let mut out = Vec::with_capacity(6 + body.len());
    common(PEER_DOWN, body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> PeerHeader {
        PeerHeader {
            address: Ipv4Addr::new(10, 1, 2, 10).into(),
            asn: 65001,
            bgp_id: Ipv4Addr::new(10, 1, 2, 10),
            secs: 1,
            micros: 2,
        }
    }

    #[test]
    fn lengths_and_headers() {
        let m = initiation("nexthop", "RouteServiceRole_IN_0");
        assert_eq!(m[0], 3);
        assert_eq!(
            u32::from_be_bytes(m[1..5].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(m[5], INITIATION);

        let d = peer_down(&header(), &DownReason::RemoteNoData);
        assert_eq!(d.len(), 6 + 42 + 1);
        assert_eq!(d[5], PEER_DOWN);
        // Per-peer header: IPv4 address in the last 4 of 16 octets, then AS 65001.
        assert_eq!(&d[6 + 10 + 12..6 + 10 + 16], &[10, 1, 2, 10]);
        assert_eq!(&d[6 + 26..6 + 30], &65001u32.to_be_bytes());

        let u = route_monitoring(&header(), &UpdateMessage::end_of_rib());
        assert_eq!(u.len(), 6 + 42 + 23);
        assert_eq!(
            &u[6 + 42..6 + 42 + 16],
            &[0xff; 16],
            "a whole BGP message follows"
        );
    }
}
