//! Property tests: decode(encode(x)) == x for every message and attribute, on 4-octet and
//! 2-octet sessions; and no input makes the decoder panic.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::wire::attrs::{Aggregator, LargeCommunity, MpNextHop, MpReach, MpUnreach, RawAttribute};
use bgp::wire::open::GracefulRestartFamily;
use bgp::wire::{
    frame, Afi, AsPath, AsSegment, Capability, Ipv4Prefix, Ipv6Prefix, Message, Notification, Open,
    Origin, PathAttributes, Prefix, RouteRefresh, Safi, SessionContext, Update, UpdateMessage,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn v4prefix() -> impl Strategy<Value = Ipv4Prefix> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Ipv4Prefix::truncating(Ipv4Addr::from(a), l))
}
fn v6prefix() -> impl Strategy<Value = Ipv6Prefix> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, l)| Ipv6Prefix::truncating(Ipv6Addr::from(a), l))
}
/// Next hops the decoder accepts (not 0.0.0.0, multicast or broadcast).
fn unicast_v4() -> impl Strategy<Value = Ipv4Addr> {
    (1u32..0xe000_0000).prop_map(Ipv4Addr::from)
}

fn segment(allow_confed: bool) -> impl Strategy<Value = AsSegment> {
    let asns = vec(any::<u32>(), 1..20);
    let kinds = if allow_confed { 0..4u8 } else { 0..2u8 };
    (kinds, asns).prop_map(|(k, v)| match k {
        0 => AsSegment::Sequence(v),
        1 => AsSegment::Set(v),
        2 => AsSegment::ConfedSequence(v),
        _ => AsSegment::ConfedSet(v),
    })
}

fn as_path(allow_confed: bool) -> impl Strategy<Value = AsPath> {
    vec(segment(allow_confed), 0..5).prop_map(|segments| AsPath { segments })
}

fn unknown_attr() -> impl Strategy<Value = RawAttribute> {
    // Codes no implementation here interprets; optional (else it is an error by definition).
    (
        prop_oneof![Just(0x80u8), Just(0xc0), Just(0xe0)],
        40u8..=255,
        vec(any::<u8>(), 0..300),
    )
        .prop_map(|(flags, type_code, value)| RawAttribute {
            flags,
            type_code,
            value,
        })
}

fn mp_reach() -> impl Strategy<Value = MpReach> {
    prop_oneof![
        (unicast_v4(), vec(v4prefix(), 1..20)).prop_map(|(nh, n)| MpReach {
            afi: Afi::IPV4,
            safi: Safi::UNICAST,
            next_hop: MpNextHop::V4(nh),
            nlri: n.into_iter().map(Prefix::V4).collect(),
        }),
        (
            any::<u128>(),
            option::of(any::<u128>()),
            vec(v6prefix(), 1..20)
        )
            .prop_map(|(g, ll, n)| MpReach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                next_hop: MpNextHop::V6 {
                    global: Ipv6Addr::from(g),
                    link_local: ll.map(Ipv6Addr::from)
                },
                nlri: n.into_iter().map(Prefix::V6).collect(),
            }),
    ]
}

fn mp_unreach() -> impl Strategy<Value = MpUnreach> {
    vec(v6prefix(), 0..20).prop_map(|n| MpUnreach {
        afi: Afi::IPV6,
        safi: Safi::UNICAST,
        withdrawn: n.into_iter().map(Prefix::V6).collect(),
    })
}

/// Attributes as a decoder sees them from a peer: `ibgp` allows LOCAL_PREF, ORIGINATOR_ID,
/// CLUSTER_LIST and confederation segments.
fn attributes(ibgp: bool, two_octet: bool) -> impl Strategy<Value = PathAttributes> {
    let ibgp_only = (
        option::of(any::<u32>()),
        option::of(any::<u32>().prop_map(Ipv4Addr::from)),
        vec(any::<u32>().prop_map(Ipv4Addr::from), 0..4),
    );
    (
        (
            option::of(prop_oneof![
                Just(Origin::Igp),
                Just(Origin::Egp),
                Just(Origin::Incomplete)
            ]),
            option::of(as_path(ibgp && !two_octet)),
            option::of(unicast_v4()),
            option::of(any::<u32>()),
        ),
        (
            any::<bool>(),
            option::of(
                (any::<u32>(), any::<u32>()).prop_map(|(asn, a)| Aggregator {
                    asn,
                    address: Ipv4Addr::from(a),
                }),
            ),
        ),
        (
            vec(any::<u32>(), 0..10),
            vec(any::<u64>(), 0..5),
            vec(
                (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c)| LargeCommunity {
                    global_admin: a,
                    local_data1: b,
                    local_data2: c,
                }),
                0..5,
            ),
        ),
        ibgp_only,
        (option::of(mp_reach()), option::of(mp_unreach())),
        vec(unknown_attr(), 0..3),
    )
        .prop_map(
            move |(
                (origin, as_path, next_hop, med),
                (atomic_aggregate, aggregator),
                (communities, ext_communities, large_communities),
                (lp, oid, cl),
                (mp_reach, mp_unreach),
                mut unknown,
            )| {
                // A decoder keeps the first of repeated attributes; generate distinct codes.
                unknown.sort_by_key(|r| r.type_code);
                unknown.dedup_by_key(|r| r.type_code);
                let mut a = PathAttributes {
                    origin,
                    as_path,
                    next_hop,
                    med,
                    atomic_aggregate,
                    aggregator,
                    communities,
                    ext_communities,
                    large_communities,
                    mp_reach,
                    mp_unreach,
                    unknown,
                    ..Default::default()
                };
                if ibgp {
                    a.local_pref = lp;
                    a.originator_id = oid;
                    a.cluster_list = cl;
                }
                a
            },
        )
}

fn ctx(ibgp: bool, two_octet: bool) -> SessionContext {
    SessionContext {
        four_octet_as: !two_octet,
        extended_message: true,
        ebgp: !ibgp,
    }
}

fn decode_all(bytes: &[u8], ctx: &SessionContext) -> Vec<Message> {
    let mut out = vec![];
    let mut buf = bytes;
    while !buf.is_empty() {
        let (m, n) = Message::decode(buf, ctx).expect("decodes");
        out.push(m);
        buf = &buf[n..];
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn update_round_trip(ibgp in any::<bool>(), two in any::<bool>(),
                         attrs in attributes(true, false), wd in vec(v4prefix(), 0..50), nlri in vec(v4prefix(), 0..50)) {
        let mut attrs = attrs;
        let c = ctx(ibgp, two);
        if !ibgp {
            attrs.local_pref = None;
            attrs.originator_id = None;
            attrs.cluster_list.clear();
        }
        if !ibgp || two {
            // Confederation segments are an eBGP error and cannot travel in AS4_PATH.
            if let Some(p) = attrs.as_path.as_mut() {
                p.segments.retain(|s| matches!(s, AsSegment::Sequence(_) | AsSegment::Set(_)));
            }
        }
        // Mandatory attributes when announcing, so the UPDATE is not treat-as-withdraw.
        let announces = !nlri.is_empty() || attrs.mp_reach.is_some();
        if announces {
            attrs.origin.get_or_insert(Origin::Igp);
            attrs.as_path.get_or_insert_with(AsPath::default);
        }
        if !nlri.is_empty() {
            attrs.next_hop.get_or_insert(Ipv4Addr::new(10, 1, 0, 100));
        }
        let m = Message::Update(UpdateMessage { withdrawn: wd, attrs, nlri });
        let bytes = m.to_bytes(&c);
        let back = decode_all(&bytes, &c);
        prop_assert_eq!(back, vec![m]);
    }

    #[test]
    fn attributes_round_trip_alone(attrs in attributes(true, false)) {
        let c = ctx(true, false);
        let mut bytes = vec![];
        attrs.emit(&c, &mut bytes);
        let p = bgp::wire::attrs::parse_attributes(&bytes, &c, false).unwrap();
        prop_assert!(p.discarded.is_empty());
        // Missing mandatory attributes only matter with NLRI; here nothing announces v4 NLRI,
        // but an MP_REACH without ORIGIN/AS_PATH is treat-as-withdraw by design.
        if attrs.mp_reach.is_none() || (attrs.origin.is_some() && attrs.as_path.is_some()) {
            prop_assert!(p.withdraw.is_none());
        }
        prop_assert_eq!(p.attrs, attrs);
    }

    #[test]
    fn open_round_trip(my_as in any::<u16>(), hold in any::<u16>(), id in any::<u32>(), caps in vec(capability(), 0..12)) {
        let m = Message::Open(Open { version: 4, my_as, hold_time: hold, bgp_id: Ipv4Addr::from(id), capabilities: caps });
        let c = SessionContext::default();
        prop_assert_eq!(decode_all(&m.to_bytes(&c), &c), vec![m]);
    }

    #[test]
    fn notification_round_trip(code in any::<u8>(), sub in any::<u8>(), data in vec(any::<u8>(), 0..200)) {
        let m = Message::Notification(Notification::with_data(code, sub, data));
        let c = SessionContext::default();
        prop_assert_eq!(decode_all(&m.to_bytes(&c), &c), vec![m]);
    }

    #[test]
    fn route_refresh_round_trip(afi in any::<u16>(), safi in any::<u8>(), subtype in 0u8..3) {
        let m = Message::RouteRefresh(RouteRefresh { afi: Afi(afi), safi: Safi(safi), subtype });
        let c = SessionContext::default();
        prop_assert_eq!(decode_all(&m.to_bytes(&c), &c), vec![m]);
    }

    #[test]
    fn large_updates_split_without_loss(n in 1usize..5000, ext in any::<bool>()) {
        let c = SessionContext { extended_message: ext, ..SessionContext::default() };
        let nlri: Vec<Ipv4Prefix> = (0..n as u32).map(|i| Ipv4Prefix::new(Ipv4Addr::from(i << 8), 24).unwrap()).collect();
        let attrs = PathAttributes { origin: Some(Origin::Igp), as_path: Some(AsPath::from_sequence(vec![65001])), next_hop: Some(Ipv4Addr::new(10,1,0,100)), ..Default::default() };
        let m = UpdateMessage { withdrawn: nlri.clone(), attrs: attrs.clone(), nlri: nlri.clone() };
        let bytes = Message::Update(m).to_bytes(&c);
        let mut wd = vec![]; let mut ann = vec![];
        for msg in decode_all(&bytes, &c) {
            let Message::Update(u) = msg else { panic!("not an update") };
            if !u.nlri.is_empty() { prop_assert_eq!(&u.attrs, &attrs); }
            wd.extend(u.withdrawn); ann.extend(u.nlri);
        }
        prop_assert_eq!(wd, nlri.clone());
        prop_assert_eq!(ann, nlri);
    }

    /// IPv6 prefixes packed into MP_REACH_NLRI / MP_UNREACH_NLRI (what the route server sends)
    /// decode back to the same prefixes, in order, with the same path and next hop, in
    /// messages no longer than the session allows.
    #[test]
    fn ipv6_packing_splits_without_loss(prefixes in vec(v6prefix(), 1..3000), ext in any::<bool>(),
                                       global in any::<u128>(), ll in option::of(any::<u64>())) {
        let c = SessionContext { extended_message: ext, ..SessionContext::default() };
        let next_hop = MpNextHop::V6 {
            global: Ipv6Addr::from(global),
            link_local: ll.map(|x| Ipv6Addr::from((0xfe80u128 << 112) | u128::from(x))),
        };
        let base = PathAttributes { origin: Some(Origin::Igp), as_path: Some(AsPath::from_sequence(vec![65515, 65001])), ..Default::default() };
        let mut encoded = Vec::new();
        base.emit(&c, &mut encoded);
        let mut bytes = Vec::new();
        let n = bgp::wire::update::pack_ipv6(&encoded, &next_hop, prefixes.iter().copied(), c.max_message_len(), &mut bytes);
        let m = bgp::wire::update::pack_ipv6_withdrawals(prefixes.iter().copied(), c.max_message_len(), &mut bytes);
        let (mut ann, mut wd) = (vec![], vec![]);
        let msgs = decode_all(&bytes, &c);
        prop_assert_eq!(msgs.len(), n + m);
        for msg in msgs {
            let Message::Update(u) = msg else { panic!("not an update") };
            prop_assert!(u.nlri.is_empty() && u.withdrawn.is_empty());
            if let Some(r) = u.attrs.mp_reach {
                prop_assert_eq!((r.afi, r.safi, r.next_hop), (Afi::IPV6, Safi::UNICAST, next_hop));
                prop_assert_eq!(u.attrs.origin, base.origin);
                prop_assert_eq!(&u.attrs.as_path, &base.as_path);
                ann.extend(r.nlri);
            }
            if let Some(w) = u.attrs.mp_unreach {
                prop_assert_eq!(w.afi, Afi::IPV6);
                wd.extend(w.withdrawn);
            }
        }
        let want: Vec<Prefix> = prefixes.into_iter().map(Prefix::V6).collect();
        prop_assert_eq!(ann, want.clone());
        prop_assert_eq!(wd, want);
    }

    /// Arbitrary bytes behind a valid header: the decoder returns, whatever it returns.
    #[test]
    fn arbitrary_bodies_never_panic(kind in 1u8..=5, body in vec(any::<u8>(), 0..600), two in any::<bool>()) {
        let mut msg = vec![0xff; 16];
        msg.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        msg.push(kind);
        msg.extend_from_slice(&body);
        let c = ctx(false, two);
        let _ = Message::decode(&msg, &c);
        if let Ok(Some(f)) = frame(&msg, &c) {
            if let Ok(u) = Update::parse(f.body, &c) {
                let _ = u.nlri().count() + u.withdrawn().count();
            }
        }
    }

    /// A valid UPDATE with one byte flipped or cut short: no panic.
    #[test]
    fn mutated_updates_never_panic(attrs in attributes(false, false), nlri in vec(v4prefix(), 0..20), pos in any::<usize>(), val in any::<u8>(), cut in any::<usize>()) {
        let c = ctx(false, false);
        let mut bytes = Message::Update(UpdateMessage { withdrawn: vec![], attrs, nlri }).to_bytes(&c);
        let i = pos % bytes.len();
        bytes[i] = val;
        let _ = Message::decode(&bytes, &c);
        let cut = cut % bytes.len();
        let _ = Message::decode(&bytes[..cut], &c);
    }
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        (any::<u16>(), any::<u8>()).prop_map(|(a, s)| Capability::Multiprotocol {
            afi: Afi(a),
            safi: Safi(s)
        }),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        Just(Capability::ExtendedMessage),
        any::<u32>().prop_map(Capability::FourOctetAs),
        (
            any::<bool>(),
            any::<bool>(),
            0u16..4096,
            vec((any::<u16>(), any::<u8>(), any::<bool>()), 0..4)
        )
            .prop_map(|(r, n, t, f)| Capability::GracefulRestart {
                restarted: r,
                notification: n,
                restart_time: t,
                families: f
                    .into_iter()
                    .map(|(a, s, fp)| GracefulRestartFamily {
                        afi: Afi(a),
                        safi: Safi(s),
                        forwarding_preserved: fp
                    })
                    .collect(),
            }),
        // Codes not interpreted by the codec.
        (
            prop_oneof![Just(5u8), Just(69), Just(71), Just(73), Just(128)],
            vec(any::<u8>(), 0..20)
        )
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

/// Found by the fuzzer: unknown attributes received out of type-code order must still compare
/// equal after a re-encode (fuzz/regressions/unknown_attr_order.bin, first byte = context).
#[test]
fn fuzz_regression_unknown_attribute_order() {
    let data = include_bytes!("../../../fuzz/regressions/unknown_attr_order.bin");
    let sel = data[0];
    let ctx = SessionContext {
        four_octet_as: sel & 1 != 0,
        extended_message: sel & 2 != 0,
        ebgp: sel & 4 != 0,
    };
    let mut buf = &data[1..];
    while let Ok((m, n)) = Message::decode(buf, &ctx) {
        let again = m.to_bytes(&ctx);
        let (m2, _) = Message::decode(&again, &ctx).expect("re-encoded message decodes");
        assert_eq!(m2, m);
        buf = &buf[n..];
    }
}

#[test]
fn end_of_rib_markers_per_family() {
    let c = SessionContext::default();
    for (afi, safi) in [(Afi::IPV4, Safi::UNICAST), (Afi::IPV6, Safi::UNICAST)] {
        let m = UpdateMessage::end_of_rib_for(afi, safi);
        let back = decode_all(&Message::Update(m.clone()).to_bytes(&c), &c);
        let [Message::Update(u)] = back.as_slice() else {
            panic!("{back:?}")
        };
        assert_eq!(u, &m);
        assert_eq!(u.end_of_rib_family(), Some((afi, safi)));
    }
    // An MP_UNREACH that withdraws something is not a marker.
    let mut m = UpdateMessage::end_of_rib_for(Afi::IPV6, Safi::UNICAST);
    if let Some(u) = m.attrs.mp_unreach.as_mut() {
        u.withdrawn
            .push(Prefix::V6("fd00:10::/48".parse().unwrap()));
    }
    assert_eq!(m.end_of_rib_family(), None);
}
