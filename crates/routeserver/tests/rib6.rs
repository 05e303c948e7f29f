//! The IPv6 unicast RIB (`Rib<V6>`): the same SPEC §3 semantics as IPv4, with the prefixes and
//! the next hop in MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760, RFC 2545). The UPDATEs are
//! encoded, decoded back, and checked field by field.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::wire::attrs::{MpNextHop, MpReach, MpUnreach};
use bgp::wire::{
    Afi, AsPath, Ipv4Prefix, Ipv6Prefix, Origin, PathAttributes, Prefix, Safi, SessionContext,
    UpdateMessage,
};
use routeserver::{Rib, RibConfig, RouteState, V6};

const RS: u32 = 65515;

fn p6(s: &str) -> Ipv6Prefix {
    s.parse().unwrap()
}

fn a6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn rib6(b2b: bool) -> Rib<V6> {
    Rib::new(RibConfig {
        asn: RS,
        local_address: a6("fd00:1:1::4"),
        branch_to_branch: b2b,
        originated: vec![p6("fd00:1::/48")],
    })
}

/// An UPDATE announcing `prefixes` over MP_REACH_NLRI with next hop `global` (and `link_local`
/// as FRR adds on a shared link).
fn announce6(
    path: &[u32],
    global: &str,
    link_local: Option<&str>,
    prefixes: &[&str],
) -> UpdateMessage {
    UpdateMessage {
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(path.to_vec())),
            mp_reach: Some(MpReach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                next_hop: MpNextHop::V6 {
                    global: a6(global),
                    link_local: link_local.map(a6),
                },
                nlri: prefixes.iter().map(|s| Prefix::V6(p6(s))).collect(),
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn withdraw6(prefixes: &[&str]) -> UpdateMessage {
    UpdateMessage {
        attrs: PathAttributes {
            mp_unreach: Some(MpUnreach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                withdrawn: prefixes.iter().map(|s| Prefix::V6(p6(s))).collect(),
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// An IPv4 RIB with one peer up (what an IPv6 UPDATE must leave alone).
fn rib4_with_a_peer() -> (Rib, usize) {
    let mut r4: Rib = Rib::new(RibConfig {
        asn: RS,
        local_address: Ipv4Addr::new(10, 1, 1, 4),
        branch_to_branch: false,
        originated: vec![],
    });
    let b = r4.add_peer("nva1", Ipv4Addr::new(10, 1, 2, 10), 65001, 4000);
    r4.peer_up(b, Ipv4Addr::new(10, 1, 2, 10));
    (r4, b)
}

fn two_nvas(b2b: bool) -> (Rib<V6>, usize, usize) {
    let mut r = rib6(b2b);
    let a = r.add_peer("nva1", a6("fd00:1:2::10"), 65001, 4000);
    let b = r.add_peer("nva2", a6("fd00:1:2::11"), 65002, 4000);
    r.peer_up(a, Ipv4Addr::new(10, 1, 2, 10));
    r.peer_up(b, Ipv4Addr::new(10, 1, 2, 11));
    (r, a, b)
}

fn mp_reach(u: &UpdateMessage) -> &MpReach {
    u.attrs.mp_reach.as_ref().expect("an MP_REACH_NLRI")
}

#[test]
fn originated_ipv6_space_goes_in_mp_reach_with_the_instance_as_next_hop() {
    let mut r = rib6(false);
    let a = r.add_peer("nva1", a6("fd00:1:2::10"), 65001, 4000);
    let msgs = r.peer_up(a, Ipv4Addr::new(10, 1, 2, 10)).peers()[0]
        .1
        .to_messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert!(
        m.nlri.is_empty() && m.withdrawn.is_empty(),
        "nothing in the IPv4 fields"
    );
    assert_eq!(m.attrs.next_hop, None, "no IPv4 NEXT_HOP for IPv6 NLRI");
    let reach = mp_reach(m);
    assert_eq!((reach.afi, reach.safi), (Afi::IPV6, Safi::UNICAST));
    assert_eq!(
        reach.next_hop,
        MpNextHop::V6 {
            global: a6("fd00:1:1::4"),
            link_local: None
        }
    );
    assert_eq!(reach.nlri, vec![Prefix::V6(p6("fd00:1::/48"))]);
    assert_eq!(m.attrs.origin, Some(Origin::Igp));
    assert_eq!(m.attrs.as_path.as_ref().unwrap().to_string(), "65515");
}

#[test]
fn learned_ipv6_route_has_the_global_next_hop_and_goes_to_the_other_peer_without_link_local() {
    let (mut r, a, b) = two_nvas(true);
    let ex = r
        .apply_update(
            a,
            &announce6(&[65001], "fd00:1::100", Some("fe80::1"), &["fd00:10::/48"]),
        )
        .unwrap();
    assert_eq!(ex.changed, vec![p6("fd00:10::/48")]);
    assert_eq!(
        r.forwarding_next_hops(&p6("fd00:10::/48")),
        vec![a6("fd00:1::100")],
        "the global next hop forwards"
    );
    let peers = ex.peers();
    assert_eq!(peers.len(), 1, "not back to the source");
    assert_eq!(peers[0].0, b);
    let sent = &peers[0].1.to_messages()[0];
    assert_eq!(
        sent.attrs.as_path.as_ref().unwrap().to_string(),
        "65515 65001"
    );
    assert_eq!(
        mp_reach(sent).next_hop,
        MpNextHop::V6 {
            global: a6("fd00:1::100"),
            link_local: None
        },
        "third-party next hop kept, link-local dropped"
    );
    assert_eq!(mp_reach(sent).nlri, vec![Prefix::V6(p6("fd00:10::/48"))]);

    // The withdrawal goes out in MP_UNREACH_NLRI.
    let ex = r.apply_update(a, &withdraw6(&["fd00:10::/48"])).unwrap();
    let sent = &ex.peers()[0].1.to_messages()[0];
    let unreach = sent.attrs.mp_unreach.as_ref().expect("an MP_UNREACH_NLRI");
    assert_eq!(unreach.afi, Afi::IPV6);
    assert_eq!(unreach.withdrawn, vec![Prefix::V6(p6("fd00:10::/48"))]);
    assert!(r.is_empty());
}

#[test]
fn ecmp_over_two_nvas_is_one_next_hop_when_both_advertise_the_frontend() {
    let (mut r, a, b) = two_nvas(false);
    for id in [a, b] {
        r.apply_update(
            id,
            &announce6(&[65001 + id as u32], "fd00:1::100", None, &["fd00:10::/48"]),
        )
        .unwrap();
    }
    assert_eq!(r.multipath(&p6("fd00:10::/48")).len(), 2);
    assert_eq!(
        r.forwarding_next_hops(&p6("fd00:10::/48")),
        vec![a6("fd00:1::100")]
    );
}

#[test]
fn unusable_next_hops_and_policy_refuse_with_a_reason() {
    let (mut r, a, _) = two_nvas(false);
    // Link-local only: FRR sends that when the interface has no global address.
    r.apply_update(a, &announce6(&[65001], "fe80::1", None, &["fd00:10::/48"]))
        .unwrap();
    // Our own AS in the path.
    r.apply_update(
        a,
        &announce6(&[65001, RS], "fd00:1::100", None, &["fd00:11::/48"]),
    )
    .unwrap();
    // IPv4-mapped: FRR's next hop for IPv6 over an IPv4 session without a global address.
    r.apply_update(
        a,
        &announce6(&[65001], "::ffff:10.1.2.10", None, &["fd00:12::/48"]),
    )
    .unwrap();
    assert!(r.is_empty());
    let learned = r.learned_from(a);
    assert_eq!(learned.len(), 3);
    let why: Vec<String> = learned
        .iter()
        .map(|l| match &l.state {
            RouteState::Rejected(w) => w.clone(),
            s => panic!("{s:?}"),
        })
        .collect();
    assert!(why[0].contains("link-local"), "{why:?}");
    assert!(why[1].contains("loop"), "{why:?}");
    assert!(why[2].contains("IPv4-mapped (10.1.2.10)"), "{why:?}");
}

#[test]
fn route_limit_counts_the_other_family() {
    let (mut r, a, _) = two_nvas(false);
    let mut r_small = rib6(false);
    let s = r_small.add_peer("nva1", a6("fd00:1:2::10"), 65001, 3);
    r_small.peer_up(s, Ipv4Addr::new(10, 1, 2, 10));
    let u = announce6(
        &[65001],
        "fd00:1::100",
        None,
        &["fd00:10::/48", "fd00:11::/48"],
    );
    // 2 IPv6 + 2 held in IPv4 > 3.
    let e = r_small.apply_update_counted(s, &u, 2).unwrap_err();
    assert_eq!((e.held, e.incoming, e.limit), (2, 2, 3));
    assert!(r_small.apply_update_counted(s, &u, 1).is_ok());
    assert!(r.apply_update(a, &u).is_ok());
}

#[test]
fn the_ipv6_rib_ignores_ipv4_and_the_ipv4_rib_ignores_ipv6() {
    let (mut r6, a, _) = two_nvas(false);
    let v4 = UpdateMessage {
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(vec![65001])),
            next_hop: Some(Ipv4Addr::new(10, 1, 0, 100)),
            ..Default::default()
        },
        nlri: vec!["10.10.0.0/16".parse::<Ipv4Prefix>().unwrap()],
        ..Default::default()
    };
    assert!(r6.apply_update(a, &v4).unwrap().changed.is_empty());
    assert!(r6.is_empty());

    let (mut r4, b) = rib4_with_a_peer();
    let u = announce6(&[65001], "fd00:1::100", None, &["fd00:10::/48"]);
    assert!(r4.apply_update(b, &u).unwrap().changed.is_empty());
    assert!(r4.is_empty());
}

#[test]
fn ipv4_nlri_with_an_ipv6_next_hop_is_refused_with_a_reason() {
    // RFC 8950: IPv4 NLRI in MP_REACH_NLRI (AFI 1) with an IPv6 next hop.
    let (mut r4, b) = rib4_with_a_peer();
    let u = UpdateMessage {
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(vec![65001])),
            mp_reach: Some(MpReach {
                afi: Afi::IPV4,
                safi: Safi::UNICAST,
                next_hop: MpNextHop::V6 {
                    global: a6("fd00:1::100"),
                    link_local: None,
                },
                nlri: vec![Prefix::V4("10.10.0.0/16".parse().unwrap())],
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    // Through the codec: the next hop of 16 octets for AFI 1 decodes.
    let ctx = SessionContext::default();
    let mut buf = Vec::new();
    u.emit(&ctx, &mut buf);
    let (m, _) = bgp::wire::Message::decode(&buf, &ctx).unwrap();
    let bgp::wire::Message::Update(decoded) = m else {
        panic!("{m:?}")
    };
    r4.apply_update(b, &decoded).unwrap();
    assert!(r4.is_empty());
    let l = r4.learned_from(b);
    assert_eq!(l.len(), 1);
    assert!(
        matches!(&l[0].state, RouteState::Rejected(w) if w.contains("RFC 8950")),
        "{:?}",
        l[0].state
    );
}

#[test]
fn a_full_table_packs_into_few_messages_that_decode_back() {
    let (mut r, a, b) = two_nvas(true);
    let prefixes: Vec<String> = (0..2000u32)
        .map(|i| format!("2001:db8:{:x}:{:x}::/64", i >> 8, i & 0xff))
        .collect();
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    r.apply_update(a, &announce6(&[65001], "fd00:1::100", None, &refs))
        .unwrap();
    assert_eq!(r.len(), 2000);
    let out = r.full_export(b);
    let msgs = out.peers()[0].1.to_messages();
    let mut got: Vec<Ipv6Prefix> = Vec::new();
    for m in &msgs {
        if let Some(reach) = &m.attrs.mp_reach {
            got.extend(reach.nlri.iter().map(|p| match p {
                Prefix::V6(p) => *p,
                Prefix::V4(p) => panic!("{p}"),
            }));
        }
    }
    got.sort();
    let mut want: Vec<Ipv6Prefix> = refs.iter().map(|s| p6(s)).collect();
    want.push(p6("fd00:1::/48"));
    want.sort();
    assert_eq!(got, want);
    // Packed: the 2001 prefixes share one attribute set, so a handful of messages at most.
    assert!(msgs.len() <= 7, "{} messages", msgs.len());
}
