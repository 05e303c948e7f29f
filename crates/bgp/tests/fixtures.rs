//! Decoding tests on real captured bytes.
//!
//! Every `tests/fixtures/*.bin` is one complete BGP message (19-byte header included) exactly
//! as FRR 8.4.4, BIRD 2.0.12 or GoBGP 3.10.0 sent it to a capture listener playing the route
//! server (AS 65515). `tests/fixtures/README.md` says how they were captured (network
//! namespaces, `scripts/capture_fixtures.sh`, pcaps, daemon configs) and decodes every file
//! field by field with byte offsets; the expected values below are that decode (tshark agrees).
//! Each message is also re-encoded and decoded again; byte equality with the capture is
//! asserted where it holds, and the exact legitimate difference where it does not (FRR).
//!
//! Session: every peer negotiated 4-octet AS with the listener and none extended messages (the
//! listener does not offer RFC 8654, although FRR does); all are eBGP.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::wire::attrs::community::NO_EXPORT;
use bgp::wire::attrs::{LargeCommunity, MpNextHop, MpReach};
use bgp::wire::{
    frame, Afi, AsPath, Capability, Ipv4Prefix, Message, MessageType, Open, Origin, PathAttributes,
    Prefix, Safi, SessionContext, Update, UpdateMessage, HEADER_LEN,
};

/// What every captured session negotiated.
const CTX: SessionContext = SessionContext {
    four_octet_as: true,
    extended_message: false,
    ebgp: true,
};

/// Declares one constant per fixture (`include_bytes!`) and `ALL`, every fixture with the size
/// and message type from the README's table.
macro_rules! fixtures {
    ($($konst:ident = $file:literal, $size:literal, $kind:ident;)*) => {
        $(const $konst: &[u8] = include_bytes!(concat!("fixtures/", $file, ".bin"));)*
        const ALL: &[(&str, &[u8], usize, MessageType)] =
            &[$(($file, $konst, $size, MessageType::$kind)),*];
    };
}

fixtures! {
    FRR_OPEN = "frr_open", 115, Open;
    FRR_KEEPALIVE = "frr_keepalive", 19, Keepalive;
    FRR_UPDATE_1 = "frr_update_1", 55, Update;
    FRR_UPDATE_2 = "frr_update_2", 76, Update;
    FRR_UPDATE_3 = "frr_update_3", 63, Update;
    FRR_UPDATE_4 = "frr_update_4", 55, Update;
    FRR_UPDATE_5 = "frr_update_5", 70, Update;
    FRR_UPDATE_6 = "frr_update_6", 70, Update;
    BIRD_OPEN = "bird_open", 53, Open;
    BIRD_KEEPALIVE = "bird_keepalive", 19, Keepalive;
    BIRD_UPDATE_1 = "bird_update_1", 58, Update;
    BIRD_UPDATE_2 = "bird_update_2", 62, Update;
    BIRD_UPDATE_3 = "bird_update_3", 66, Update;
    BIRD_UPDATE_4 = "bird_update_4", 58, Update;
    BIRD_UPDATE_5 = "bird_update_5", 23, Update;
    GOBGP_OPEN = "gobgp_open", 61, Open;
    GOBGP_KEEPALIVE = "gobgp_keepalive", 19, Keepalive;
    GOBGP_UPDATE_1 = "gobgp_update_1", 47, Update;
    GOBGP_UPDATE_2 = "gobgp_update_2", 62, Update;
    GOBGP_UPDATE_3 = "gobgp_update_3", 62, Update;
    GOBGP_UPDATE_4 = "gobgp_update_4", 54, Update;
    GOBGP_UPDATE_5 = "gobgp_update_5", 47, Update;
    BIRD6_OPEN = "bird6_open", 53, Open;
    BIRD6_KEEPALIVE = "bird6_keepalive", 19, Keepalive;
    BIRD6_UPDATE_1 = "bird6_update_1", 99, Update;
    BIRD6_UPDATE_2 = "bird6_update_2", 84, Update;
    BIRD6_UPDATE_3 = "bird6_update_3", 95, Update;
    BIRD6_UPDATE_4 = "bird6_update_4", 29, Update;
    GOBGP6_OPEN = "gobgp6_open", 53, Open;
    GOBGP6_KEEPALIVE = "gobgp6_keepalive", 19, Keepalive;
    GOBGP6_UPDATE_1 = "gobgp6_update_1", 67, Update;
    GOBGP6_UPDATE_2 = "gobgp6_update_2", 78, Update;
    GOBGP6_UPDATE_3 = "gobgp6_update_3", 74, Update;
    GOBGP6_UPDATE_4 = "gobgp6_update_4", 36, Update;
}

/// The UPDATE fixtures of one daemon, in capture order.
fn updates(daemon: &str) -> impl Iterator<Item = &'static [u8]> + '_ {
    let prefix = format!("{daemon}_update_");
    ALL.iter()
        .filter(move |(name, ..)| name.starts_with(&prefix))
        .map(|&(_, bytes, ..)| bytes)
}

// ---------------------------------------------------------------------------------------------
// Helpers: decoding

/// Decodes an OPEN fixture; `Message::decode` and `Open::parse` must agree.
fn decode_open(bytes: &[u8]) -> Open {
    let (m, n) = Message::decode(bytes, &CTX).expect("OPEN decodes");
    assert_eq!(n, bytes.len());
    let Message::Open(open) = m else {
        panic!("not an OPEN: {m:?}")
    };
    assert_eq!(Open::parse(&bytes[HEADER_LEN..]).unwrap(), open);
    assert_eq!(open.version, 4);
    open
}

/// The code and value of an unknown capability.
fn unknown(c: &Capability) -> (u8, &[u8]) {
    match c {
        Capability::Unknown { code, value } => (*code, value),
        other => panic!("expected Capability::Unknown, got {other:?}"),
    }
}

/// FQDN capability value (draft-walton-bgp-hostname-capability): host name and domain name.
fn fqdn(value: &[u8]) -> (&[u8], &[u8]) {
    let h = usize::from(value[0]);
    let d = usize::from(value[1 + h]);
    assert_eq!(value.len(), 2 + h + d, "FQDN value length");
    (&value[1..1 + h], &value[2 + h..])
}

/// Multiprotocol capability for unicast of `afi`.
fn mp(afi: Afi) -> Capability {
    Capability::Multiprotocol {
        afi,
        safi: Safi::UNICAST,
    }
}

/// A capability the codec does not interpret, kept as received.
fn unk(code: u8, value: &[u8]) -> Capability {
    Capability::Unknown {
        code,
        value: value.to_vec(),
    }
}

/// Graceful restart with the R and N flags, a restart time and no AFI entries.
fn gr(restarted: bool, notification: bool, restart_time: u16) -> Capability {
    Capability::GracefulRestart {
        restarted,
        notification,
        restart_time,
        families: vec![],
    }
}

/// Decodes an UPDATE fixture with the zero-copy parser and checks what holds for all of them:
/// the file is exactly one message, no attribute was discarded or left unrecognized, nothing is
/// treat-as-withdraw, no IPv4 withdrawals, and `Message::decode` yields the same message.
fn decode_update(bytes: &[u8]) -> Update<'_> {
    let f = frame(bytes, &CTX).expect("valid header").expect("whole");
    assert_eq!((f.kind, f.wire_len), (MessageType::Update, bytes.len()));
    let u = Update::parse(f.body, &CTX).expect("UPDATE decodes");
    assert!(u.treat_as_withdraw.is_none(), "{:?}", u.treat_as_withdraw);
    assert!(u.discarded.is_empty(), "discarded: {:?}", u.discarded);
    assert!(u.attrs.unknown.is_empty(), "unknown: {:?}", u.attrs.unknown);
    assert_eq!(u.withdrawn().count(), 0, "no fixture withdraws");
    assert_eq!(
        Message::decode(bytes, &CTX).unwrap(),
        (Message::Update(u.to_message()), bytes.len())
    );
    u
}

/// An UPDATE announcing IPv4 `nlri` with exactly the attributes `expected`.
fn check_ipv4_update(bytes: &[u8], nlri: &[&str], expected: PathAttributes) {
    let u = decode_update(bytes);
    let want: Vec<Ipv4Prefix> = nlri.iter().map(|s| s.parse().unwrap()).collect();
    assert_eq!(u.nlri().collect::<Vec<_>>(), want);
    assert_eq!(u.attrs, expected);
    assert!(!u.is_end_of_rib());
}

/// ORIGIN, AS_PATH of one AS_SEQUENCE segment, NEXT_HOP; everything else absent.
fn attrs(origin: Origin, path: &[u32], next_hop: [u8; 4]) -> PathAttributes {
    PathAttributes {
        origin: Some(origin),
        as_path: Some(AsPath::from_sequence(path.to_vec())),
        next_hop: Some(Ipv4Addr::from(next_hop)),
        ..Default::default()
    }
}

/// A standard community `asn:value` as a u32.
fn comm(asn: u16, value: u16) -> u32 {
    (u32::from(asn) << 16) | u32::from(value)
}

fn large(global_admin: u32, local_data1: u32, local_data2: u32) -> LargeCommunity {
    LargeCommunity {
        global_admin,
        local_data1,
        local_data2,
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: re-encoding

/// Re-encodes the decoded message, decodes the result again (must be equal) and returns the
/// re-encoding.
fn round_trip(bytes: &[u8]) -> Vec<u8> {
    let (m, _) = Message::decode(bytes, &CTX).unwrap();
    let again = m.to_bytes(&CTX);
    assert_eq!(Message::decode(&again, &CTX).unwrap(), (m, again.len()));
    again
}

/// Header + body.
fn message(kind: MessageType, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
    m.push(kind as u8);
    m.extend_from_slice(body);
    m
}

/// The UPDATE `orig` as our encoder writes it: the same attributes with the same flags, but in
/// ascending type-code order (RFC 4271 §5 allows any order; we always sort) and each with the
/// shortest length field (the extended-length flag only for values over 255 octets, which
/// RFC 4271 §4.3 permits but does not require for shorter ones).
fn canonical_update(orig: &[u8]) -> Vec<u8> {
    let body = &orig[HEADER_LEN..];
    let wlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let rest = &body[2 + wlen..];
    let alen = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
    // (code, flags, value) of every attribute, sorted by code.
    let (mut list, mut b) = (Vec::new(), &rest[2..2 + alen]);
    while !b.is_empty() {
        let (hdr, len) = match b[0] & 0x10 {
            0 => (3, usize::from(b[2])),
            _ => (4, usize::from(u16::from_be_bytes([b[2], b[3]]))),
        };
        list.push((b[1], b[0], &b[hdr..hdr + len]));
        b = &b[hdr + len..];
    }
    list.sort_by_key(|a| a.0);
    let mut packed = Vec::new();
    for (code, flags, value) in list {
        assert!(value.len() <= 255, "no long attribute in the fixtures");
        packed.extend_from_slice(&[flags & !0x10, code, value.len() as u8]);
        packed.extend_from_slice(value);
    }
    let mut out = body[..2 + wlen].to_vec();
    out.extend_from_slice(&(packed.len() as u16).to_be_bytes());
    out.extend_from_slice(&packed);
    out.extend_from_slice(&rest[2 + alen..]);
    message(MessageType::Update, &out)
}

/// The OPEN `orig` as our encoder writes it: the same capabilities in the same order, all in
/// one Capabilities optional parameter (RFC 5492 allows one or several).
fn canonical_open(orig: &[u8]) -> Vec<u8> {
    let body = &orig[HEADER_LEN..];
    let mut params = &body[10..10 + usize::from(body[9])];
    let mut caps = Vec::new();
    while !params.is_empty() {
        assert_eq!(params[0], 2, "only Capabilities parameters in the fixtures");
        let len = usize::from(params[1]);
        caps.extend_from_slice(&params[2..2 + len]);
        params = &params[2 + len..];
    }
    let mut out = body[..9].to_vec();
    out.extend_from_slice(&[caps.len() as u8 + 2, 2, caps.len() as u8]);
    out.extend_from_slice(&caps);
    message(MessageType::Open, &out)
}

/// Round trip of an UPDATE: the re-encoding is the canonical form of the original, and equal to
/// the original byte for byte iff `identical`.
fn update_round_trip(bytes: &[u8], identical: bool) {
    let again = round_trip(bytes);
    assert_eq!(again, canonical_update(bytes));
    assert_eq!(again == bytes, identical, "byte equality with the capture");
}

// ---------------------------------------------------------------------------------------------
// All fixtures

#[test]
fn every_fixture_is_one_whole_message_of_the_documented_size_and_type() {
    let ext = SessionContext {
        extended_message: true,
        ..CTX
    };
    for &(name, bytes, size, kind) in ALL {
        assert_eq!(bytes.len(), size, "{name}");
        let f = frame(bytes, &CTX).unwrap().unwrap();
        assert_eq!((f.kind, f.wire_len), (kind, size), "{name}");
        let (m, n) = Message::decode(bytes, &CTX).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((m.kind(), n), (kind, size), "{name}");
        // Negotiating RFC 8654 would change nothing for messages this small.
        assert_eq!(Message::decode(bytes, &ext).unwrap(), (m, n), "{name}");
        // Any shorter prefix of the file is an incomplete message, not an error.
        let waits = (0..size).all(|cut| matches!(frame(&bytes[..cut], &CTX), Ok(None)));
        assert!(waits, "{name}: a truncated copy must frame as Ok(None)");
    }
}

#[test]
fn keepalives() {
    for k in [
        FRR_KEEPALIVE,
        BIRD_KEEPALIVE,
        GOBGP_KEEPALIVE,
        BIRD6_KEEPALIVE,
        GOBGP6_KEEPALIVE,
    ] {
        assert_eq!(Message::decode(k, &CTX).unwrap(), (Message::Keepalive, 19));
        assert_eq!(Message::Keepalive.to_bytes(&CTX), k);
    }
}

// ---------------------------------------------------------------------------------------------
// FRR 8.4.4 (AS 65001)

mod frr {
    use super::*;

    /// The seed's SET-NEXTHOP.
    const NH: [u8; 4] = [10, 1, 0, 100];

    /// FRR's locally originated routes: ORIGIN IGP, MED 0 unless set, NEXT_HOP 10.1.0.100.
    fn frr(path: &[u32], med: u32) -> PathAttributes {
        let mut a = attrs(Origin::Igp, path, NH);
        a.med = Some(med);
        a
    }

    #[test]
    fn open() {
        let o = decode_open(FRR_OPEN);
        assert_eq!(o.my_as, 65001);
        assert_eq!(o.asn(), 65001);
        assert_eq!(o.hold_time, 180);
        assert_eq!(o.bgp_id, Ipv4Addr::new(10, 1, 2, 10));
        let want = [
            mp(Afi::IPV4),
            mp(Afi::IPV6),
            unk(128, &[]), // route refresh, pre-standard Cisco code: not interpreted
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::FourOctetAs(65001),
            Capability::ExtendedMessage,
            // ADD-PATH: AFI 1 SAFI 1 receive (1), AFI 2 SAFI 1 receive.
            unk(69, &[0, 1, 1, 1, 0, 2, 1, 1]),
            unk(73, b"\x04nva1\x00"), // FQDN: host name "nva1", empty domain name
            gr(true, true, 120),      // R=1 N=1, 120 s, no AFI entries
            // Long-lived GR: AFI 1 SAFI 1 and AFI 2 SAFI 1, each flags 0x80, stale time 0 s.
            unk(71, &[0, 1, 1, 0x80, 0, 0, 0, 0, 2, 1, 0x80, 0, 0, 0]),
        ];
        assert_eq!(o.capabilities, want);
        assert_eq!(
            fqdn(unknown(&o.capabilities[8]).1),
            (&b"nva1"[..], &b""[..])
        );
    }

    #[test]
    fn open_round_trip() {
        // FRR puts each capability in its own optional parameter; we emit one parameter with
        // all of them, in the same order.
        let again = round_trip(FRR_OPEN);
        assert_eq!(again, canonical_open(FRR_OPEN));
        assert_ne!(again, FRR_OPEN);
        assert_eq!(again.len(), FRR_OPEN.len() - 2 * 10);
    }

    #[test]
    fn update_1_seed_route() {
        check_ipv4_update(FRR_UPDATE_1, &["192.168.10.0/24"], frr(&[65001], 0));
    }

    #[test]
    fn update_2_ipv6_in_mp_reach() {
        let u = decode_update(FRR_UPDATE_2);
        assert_eq!(u.nlri().count(), 0, "no IPv4 NLRI");
        assert!(!u.is_end_of_rib());
        let mp = MpReach {
            afi: Afi::IPV6,
            safi: Safi::UNICAST,
            next_hop: MpNextHop::V6 {
                global: "2001:db8:1::100".parse::<Ipv6Addr>().unwrap(),
                link_local: None,
            },
            nlri: vec!["2001:db8:10::/48".parse::<Prefix>().unwrap()],
        };
        // FRR's usual ORIGIN IGP, AS_PATH 65001 and MED 0, no NEXT_HOP (no IPv4 NLRI).
        let mut want = frr(&[65001], 0);
        want.next_hop = None;
        want.mp_reach = Some(mp);
        assert_eq!(u.attrs, want);
    }

    #[test]
    fn update_3_prepended() {
        let want = frr(&[65001, 65001, 65001], 0);
        assert_eq!(want.as_path.as_ref().unwrap().path_len(), 3);
        check_ipv4_update(FRR_UPDATE_3, &["192.168.50.0/24"], want);
    }

    #[test]
    fn update_4_med() {
        check_ipv4_update(FRR_UPDATE_4, &["192.168.40.0/24"], frr(&[65001], 50));
    }

    #[test]
    fn update_5_large_community() {
        let mut want = frr(&[65001], 0);
        want.large_communities = vec![large(65001, 1, 2)];
        check_ipv4_update(FRR_UPDATE_5, &["192.168.30.0/24"], want);
    }

    #[test]
    fn update_6_communities() {
        let mut want = frr(&[65001], 0);
        want.communities = vec![comm(65001, 100), comm(65001, 200), 0xFFFF_FF01];
        assert_eq!(want.communities[2], NO_EXPORT);
        check_ipv4_update(FRR_UPDATE_6, &["192.168.20.0/24"], want);
    }

    /// Re-encoding an FRR UPDATE is never byte-identical, for two legitimate reasons:
    /// - FRR sets the extended-length flag on AS_PATH (flags 0x50, 2-byte length) even for a
    ///   6-byte value; we use it only past 255 octets (0x40, 1-byte length): one octet less.
    /// - FRR sends MP_REACH_NLRI first, also with the extended-length flag (0x90); we order
    ///   attributes by type code, so it goes after MED, with flags 0x80.
    ///
    /// Everything else (values, other flags, NLRI) is byte-identical: see `canonical_update`.
    #[test]
    fn updates_round_trip() {
        // Octets saved: one per AS_PATH, plus one for MP_REACH_NLRI in frr_update_2.
        let shorter = [1, 2, 1, 1, 1, 1];
        assert_eq!(updates("frr").count(), shorter.len());
        for (u, shorter) in updates("frr").zip(shorter) {
            update_round_trip(u, false);
            assert_eq!(round_trip(u).len(), u.len() - shorter);
        }
        // The one change for frr_update_1 spelled out (README offsets 27..31: 50 02 00 06).
        let again = round_trip(FRR_UPDATE_1);
        assert_eq!(&FRR_UPDATE_1[27..31], &[0x50, 2, 0, 6]);
        assert_eq!(&again[27..30], &[0x40, 2, 6]);
        assert_eq!(&again[30..], &FRR_UPDATE_1[31..]);
        assert_eq!(&again[19..27], &[0, 0, 0, 27, 0x40, 1, 1, 0]);
        // frr_update_2: ORIGIN, AS_PATH, MED, then MP_REACH_NLRI (original offsets 23..55).
        let again = round_trip(FRR_UPDATE_2);
        let mp = &FRR_UPDATE_2[23..55];
        assert_eq!(&mp[..4], &[0x90, 14, 0, 28]);
        assert_eq!(&again[again.len() - 31..][..3], &[0x80, 14, 28]);
        assert_eq!(&again[again.len() - 28..], &mp[4..]);
    }
}

// ---------------------------------------------------------------------------------------------
// BIRD 2.0.12 (AS 65002)

mod bird {
    use super::*;

    /// BIRD puts its own address in NEXT_HOP.
    const NH: [u8; 4] = [10, 1, 2, 11];

    #[test]
    fn open() {
        let o = decode_open(BIRD_OPEN);
        assert_eq!(o.my_as, 65002);
        assert_eq!(o.asn(), 65002);
        assert_eq!(o.hold_time, 240);
        assert_eq!(o.bgp_id, Ipv4Addr::new(10, 1, 2, 11));
        let want = [
            mp(Afi::IPV4),
            Capability::RouteRefresh,
            gr(false, false, 120), // no flags, 120 s, no AFI entries
            Capability::FourOctetAs(65002),
            Capability::EnhancedRouteRefresh,
            unk(71, &[]), // long-lived GR with length 0
        ];
        assert_eq!(o.capabilities, want);
    }

    #[test]
    fn open_round_trip() {
        // One optional parameter holding every capability, as we emit it: byte-identical.
        assert_eq!(round_trip(BIRD_OPEN), BIRD_OPEN);
    }

    #[test]
    fn update_1_communities_no_med() {
        let mut want = attrs(Origin::Igp, &[65002], NH);
        want.communities = vec![comm(65002, 100), NO_EXPORT];
        assert_eq!(want.communities, [0xfdea_0064, 0xFFFF_FF01]);
        assert_eq!(want.med, None);
        check_ipv4_update(BIRD_UPDATE_1, &["192.168.60.0/24"], want);
    }

    #[test]
    fn update_2_large_community() {
        let mut want = attrs(Origin::Igp, &[65002], NH);
        want.large_communities = vec![large(65002, 1, 2)];
        check_ipv4_update(BIRD_UPDATE_2, &["192.168.61.0/24"], want);
    }

    #[test]
    fn update_3_extended_communities() {
        // Two-octet-AS-specific (type 0x00): subtype 0x02 route target 65002:100, subtype 0x03
        // route origin 65002:200.
        let mut want = attrs(Origin::Igp, &[65002], NH);
        want.ext_communities = vec![0x0002_fdea_0000_0064, 0x0003_fdea_0000_00c8];
        check_ipv4_update(BIRD_UPDATE_3, &["192.168.62.0/24"], want);
    }

    #[test]
    fn update_4_prepended_with_med() {
        let mut want = attrs(Origin::Igp, &[65002, 65002], NH);
        want.med = Some(20);
        check_ipv4_update(BIRD_UPDATE_4, &["192.168.63.0/24"], want);
    }

    #[test]
    fn update_5_end_of_rib() {
        let u = decode_update(BIRD_UPDATE_5);
        assert!(u.is_end_of_rib());
        assert_eq!(u.nlri().count(), 0);
        assert_eq!(u.attrs, PathAttributes::default());
        assert_eq!(
            Message::decode(BIRD_UPDATE_5, &CTX).unwrap().0,
            Message::Update(UpdateMessage::end_of_rib())
        );
        assert_eq!(
            Message::Update(UpdateMessage::end_of_rib()).to_bytes(&CTX),
            BIRD_UPDATE_5
        );
    }

    /// BIRD sends attributes in type-code order with minimal length fields, as we do: every
    /// re-encoding is byte-identical to the capture.
    #[test]
    fn updates_round_trip() {
        assert_eq!(updates("bird").count(), 5);
        updates("bird").for_each(|u| update_round_trip(u, true));
    }
}

// ---------------------------------------------------------------------------------------------
// GoBGP 3.10.0 (AS 65003)

mod gobgp {
    use super::*;

    /// Given with `nexthop` on `gobgp global rib add`.
    const NH: [u8; 4] = [10, 1, 0, 100];

    #[test]
    fn open() {
        let o = decode_open(GOBGP_OPEN);
        assert_eq!(o.my_as, 65003);
        assert_eq!(o.asn(), 65003);
        assert_eq!(o.hold_time, 90);
        assert_eq!(o.bgp_id, Ipv4Addr::new(10, 1, 2, 12));
        let want = [
            Capability::RouteRefresh,
            unk(73, &[4, b'n', b'v', b'a', b'3', 0]), // FQDN: OS host name "nva3", no domain
            mp(Afi::IPV4),
            Capability::FourOctetAs(65003),
            // Extended next hop (RFC 8950): NLRI AFI 1, NLRI SAFI 1 (2 octets), next hop AFI 2.
            unk(5, &[0, 1, 0, 1, 0, 2]),
        ];
        assert_eq!(o.capabilities, want);
        assert_eq!(
            fqdn(unknown(&o.capabilities[1]).1),
            (&b"nva3"[..], &b""[..])
        );
    }

    #[test]
    fn open_round_trip() {
        assert_eq!(round_trip(GOBGP_OPEN), GOBGP_OPEN);
    }

    #[test]
    fn update_1_plain() {
        let want = attrs(Origin::Igp, &[65003], NH);
        check_ipv4_update(GOBGP_UPDATE_1, &["192.168.70.0/24"], want);
    }

    #[test]
    fn update_2_communities() {
        let mut want = attrs(Origin::Igp, &[65003], NH);
        want.communities = vec![comm(65003, 100), comm(65003, 200), NO_EXPORT];
        check_ipv4_update(GOBGP_UPDATE_2, &["192.168.71.0/24"], want);
    }

    #[test]
    fn update_3_large_community() {
        let mut want = attrs(Origin::Igp, &[65003], NH);
        want.large_communities = vec![large(65003, 1, 2)];
        check_ipv4_update(GOBGP_UPDATE_3, &["192.168.72.0/24"], want);
    }

    #[test]
    fn update_4_med() {
        let mut want = attrs(Origin::Igp, &[65003], NH);
        want.med = Some(30);
        check_ipv4_update(GOBGP_UPDATE_4, &["192.168.73.0/24"], want);
    }

    #[test]
    fn update_5_origin_incomplete() {
        let want = attrs(Origin::Incomplete, &[65003], NH);
        check_ipv4_update(GOBGP_UPDATE_5, &["192.168.74.0/24"], want);
    }

    /// GoBGP, like BIRD, sends attributes in type-code order with minimal length fields: every
    /// re-encoding is byte-identical to the capture.
    #[test]
    fn updates_round_trip() {
        assert_eq!(updates("gobgp").count(), 5);
        updates("gobgp").for_each(|u| update_round_trip(u, true));
    }
}

// ---------------------------------------------------------------------------------------------
// IPv6 unicast over IPv6 sessions (issue #16): the listener at 2001:db8:1::4 offers IPv4 and
// IPv6 unicast; the daemons are configured for IPv6 unicast only.

/// An UPDATE whose only announcement is IPv6 `nlri` in MP_REACH_NLRI, with exactly the
/// attributes `expected` (its `mp_reach` included).
fn check_ipv6_update(bytes: &[u8], expected: PathAttributes) {
    let u = decode_update(bytes);
    assert_eq!(u.nlri().count(), 0, "no IPv4 NLRI");
    assert_eq!(u.attrs.next_hop, None, "no NEXT_HOP with IPv6 NLRI only");
    assert_eq!(u.attrs, expected);
    assert!(!u.is_end_of_rib());
    assert_eq!(u.to_message().end_of_rib_family(), None);
}

/// MP_REACH_NLRI for IPv6 unicast.
fn reach6(global: &str, link_local: Option<&str>, nlri: &[&str]) -> MpReach {
    MpReach {
        afi: Afi::IPV6,
        safi: Safi::UNICAST,
        next_hop: MpNextHop::V6 {
            global: global.parse().unwrap(),
            link_local: link_local.map(|a| a.parse::<Ipv6Addr>().unwrap()),
        },
        nlri: nlri.iter().map(|p| p.parse::<Prefix>().unwrap()).collect(),
    }
}

fn ipv6_attrs(origin: Origin, path: &[u32], reach: MpReach) -> PathAttributes {
    PathAttributes {
        origin: Some(origin),
        as_path: Some(AsPath::from_sequence(path.to_vec())),
        mp_reach: Some(reach),
        ..Default::default()
    }
}

// BIRD 2.0.12 (AS 65002) on 2001:db8:1::11: its global and link-local addresses as next hop.
mod bird6 {
    use super::*;

    const GLOBAL: &str = "2001:db8:1::11";
    /// BIRD's link-local address on the capture's veth (from its MAC, EUI-64).
    const LINK_LOCAL: &str = "fe80::1836:ebff:fe2b:9e60";

    #[test]
    fn open() {
        let o = decode_open(BIRD6_OPEN);
        assert_eq!(o.my_as, 65002);
        assert_eq!(o.hold_time, 240);
        assert_eq!(o.bgp_id, Ipv4Addr::new(10, 1, 2, 11));
        let want = [
            mp(Afi::IPV6),
            Capability::RouteRefresh,
            gr(false, false, 120),
            Capability::FourOctetAs(65002),
            Capability::EnhancedRouteRefresh,
            unk(71, &[]),
        ];
        assert_eq!(o.capabilities, want);
        assert_eq!(round_trip(BIRD6_OPEN), BIRD6_OPEN);
    }

    #[test]
    fn update_1_large_community_and_a_32_octet_next_hop() {
        let r = reach6(GLOBAL, Some(LINK_LOCAL), &["2001:db8:61::/48"]);
        let mut want = ipv6_attrs(Origin::Igp, &[65002], r);
        want.large_communities = vec![large(65002, 1, 2)];
        check_ipv6_update(BIRD6_UPDATE_1, want);
        // MP_REACH_NLRI first, with the extended-length flag on a 44-octet value.
        assert_eq!(&BIRD6_UPDATE_1[23..27], &[0x90, 14, 0, 44]);
    }

    #[test]
    fn update_2_plain() {
        let r = reach6(GLOBAL, Some(LINK_LOCAL), &["2001:db8:60::/48"]);
        check_ipv6_update(BIRD6_UPDATE_2, ipv6_attrs(Origin::Igp, &[65002], r));
    }

    #[test]
    fn update_3_prepended_with_med() {
        let r = reach6(GLOBAL, Some(LINK_LOCAL), &["2001:db8:62::/48"]);
        let mut want = ipv6_attrs(Origin::Igp, &[65002, 65002], r);
        want.med = Some(20);
        check_ipv6_update(BIRD6_UPDATE_3, want);
    }

    #[test]
    fn update_4_end_of_rib_for_ipv6() {
        let u = decode_update(BIRD6_UPDATE_4);
        assert!(!u.is_end_of_rib(), "not the IPv4 marker");
        let m = u.to_message();
        assert_eq!(m.end_of_rib_family(), Some((Afi::IPV6, Safi::UNICAST)));
        assert_eq!(m, UpdateMessage::end_of_rib_for(Afi::IPV6, Safi::UNICAST));
        assert_eq!(Message::Update(m).to_bytes(&CTX), BIRD6_UPDATE_4);
    }

    /// BIRD puts MP_REACH_NLRI first with an extended length: our re-encoding is the canonical
    /// form (type-code order, shortest length); the End-of-RIB is byte-identical.
    #[test]
    fn updates_round_trip() {
        assert_eq!(updates("bird6").count(), 4);
        for u in [BIRD6_UPDATE_1, BIRD6_UPDATE_2, BIRD6_UPDATE_3] {
            update_round_trip(u, false);
        }
        update_round_trip(BIRD6_UPDATE_4, true);
    }
}

// GoBGP 3.10.0 (AS 65003) on 2001:db8:1::12: the next hop given to `gobgp global rib add`.
mod gobgp6 {
    use super::*;

    const NH: &str = "2001:db8:1::100";

    #[test]
    fn open() {
        let o = decode_open(GOBGP6_OPEN);
        assert_eq!(o.my_as, 65003);
        assert_eq!(o.hold_time, 90);
        assert_eq!(o.bgp_id, Ipv4Addr::new(10, 1, 2, 12));
        let want = [
            Capability::RouteRefresh,
            unk(73, &[4, b'n', b'v', b'a', b'3', 0]),
            mp(Afi::IPV6),
            Capability::FourOctetAs(65003),
        ];
        assert_eq!(o.capabilities, want);
        assert_eq!(round_trip(GOBGP6_OPEN), GOBGP6_OPEN);
    }

    #[test]
    fn update_1_plain() {
        let r = reach6(NH, None, &["2001:db8:70::/48"]);
        check_ipv6_update(GOBGP6_UPDATE_1, ipv6_attrs(Origin::Igp, &[65003], r));
    }

    #[test]
    fn update_2_communities() {
        let r = reach6(NH, None, &["2001:db8:71::/48"]);
        let mut want = ipv6_attrs(Origin::Igp, &[65003], r);
        want.communities = vec![comm(65003, 100), NO_EXPORT];
        check_ipv6_update(GOBGP6_UPDATE_2, want);
    }

    #[test]
    fn update_3_med() {
        let r = reach6(NH, None, &["2001:db8:72::/48"]);
        let mut want = ipv6_attrs(Origin::Igp, &[65003], r);
        want.med = Some(30);
        check_ipv6_update(GOBGP6_UPDATE_3, want);
    }

    #[test]
    fn update_4_withdraw_in_mp_unreach() {
        let u = decode_update(GOBGP6_UPDATE_4);
        let w = u.attrs.mp_unreach.as_ref().expect("MP_UNREACH_NLRI");
        assert_eq!((w.afi, w.safi), (Afi::IPV6, Safi::UNICAST));
        assert_eq!(w.withdrawn, ["2001:db8:70::/48".parse::<Prefix>().unwrap()]);
        assert_eq!(
            u.attrs,
            PathAttributes {
                mp_unreach: u.attrs.mp_unreach.clone(),
                ..Default::default()
            }
        );
        assert_eq!(u.to_message().end_of_rib_family(), None);
    }

    /// GoBGP sends attributes in type-code order with minimal length fields, MP_REACH_NLRI
    /// last: byte-identical re-encodings.
    #[test]
    fn updates_round_trip() {
        assert_eq!(updates("gobgp6").count(), 4);
        updates("gobgp6").for_each(|u| update_round_trip(u, true));
    }
}
