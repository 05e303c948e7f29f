//! Scenario tests of one instance's RIB, with no sockets: SPEC §3 semantics.

use std::net::Ipv4Addr;

use bgp::wire::attrs::community;
use bgp::wire::{AsPath, Ipv4Prefix, Origin, PathAttributes, UpdateMessage};
use routeserver::{Rib, RibConfig, RouteState};

const RS: u32 = 65515;

fn rib(b2b: bool) -> Rib {
    Rib::new(RibConfig {
        asn: RS,
        local_address: Ipv4Addr::new(10, 1, 1, 4),
        branch_to_branch: b2b,
        originated: vec!["10.1.0.0/16".parse().unwrap()],
    })
}

fn p(s: &str) -> Ipv4Prefix {
    s.parse().unwrap()
}

fn attrs(path: &[u32], nh: [u8; 4]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(path.to_vec())),
        next_hop: Some(Ipv4Addr::from(nh)),
        med: Some(0),
        ..Default::default()
    }
}

fn announce(a: PathAttributes, prefixes: &[&str]) -> UpdateMessage {
    UpdateMessage {
        withdrawn: vec![],
        attrs: a,
        nlri: prefixes.iter().map(|s| p(s)).collect(),
    }
}

fn withdraw(prefixes: &[&str]) -> UpdateMessage {
    UpdateMessage {
        withdrawn: prefixes.iter().map(|s| p(s)).collect(),
        ..Default::default()
    }
}

/// Two NVAs behind the LB, both peers up.
fn two_nvas(b2b: bool) -> (Rib, usize, usize) {
    let mut r = rib(b2b);
    let a = r.add_peer("nva1", Ipv4Addr::new(10, 1, 2, 10), 65001, 4000);
    let b = r.add_peer("nva2", Ipv4Addr::new(10, 1, 2, 11), 65001, 4000);
    r.peer_up(a, Ipv4Addr::new(10, 1, 2, 10));
    r.peer_up(b, Ipv4Addr::new(10, 1, 2, 11));
    (r, a, b)
}

#[test]
fn same_prefix_same_next_hop_is_two_paths_one_next_hop() {
    let (mut r, a, b) = two_nvas(false);
    r.apply_update(
        a,
        &announce(attrs(&[65001], [10, 1, 0, 100]), &["192.168.10.0/24"]),
    )
    .unwrap();
    r.apply_update(
        b,
        &announce(attrs(&[65001], [10, 1, 0, 100]), &["192.168.10.0/24"]),
    )
    .unwrap();
    let mp = r.multipath(&p("192.168.10.0/24"));
    assert_eq!(mp.len(), 2, "both paths in the ECMP set");
    assert_eq!(
        r.forwarding_next_hops(&p("192.168.10.0/24")),
        vec![Ipv4Addr::new(10, 1, 0, 100)]
    );
    assert_eq!(
        r.attribute_sets(),
        1,
        "identical attribute sets are stored once"
    );
    assert_eq!(mp[0].0, a, "lower router id is best");
}

#[test]
fn standby_prepending_loses_and_takes_over_on_withdraw() {
    let (mut r, a, b) = two_nvas(false);
    r.apply_update(
        a,
        &announce(attrs(&[65001], [10, 1, 0, 100]), &["192.168.10.0/24"]),
    )
    .unwrap();
    r.apply_update(
        b,
        &announce(
            attrs(&[65001, 65001, 65001], [10, 1, 0, 100]),
            &["192.168.10.0/24"],
        ),
    )
    .unwrap();
    let mp = r.multipath(&p("192.168.10.0/24"));
    assert_eq!(mp.len(), 1);
    assert_eq!(mp[0].0, a);
    let learned = r.learned_from(b);
    assert_eq!(
        learned[0].state,
        RouteState::Accepted {
            best: false,
            multipath: false
        }
    );
    let ex = r.apply_update(a, &withdraw(&["192.168.10.0/24"])).unwrap();
    assert_eq!(ex.changed, vec![p("192.168.10.0/24")]);
    assert_eq!(r.multipath(&p("192.168.10.0/24"))[0].0, b);
}

#[test]
fn loop_and_wrong_first_as_are_rejected_with_a_reason() {
    let (mut r, a, _) = two_nvas(false);
    r.apply_update(
        a,
        &announce(
            attrs(&[65001, RS, 65010], [10, 1, 0, 100]),
            &["192.168.20.0/24"],
        ),
    )
    .unwrap();
    r.apply_update(
        a,
        &announce(attrs(&[65099], [10, 1, 0, 100]), &["192.168.30.0/24"]),
    )
    .unwrap();
    assert!(r.is_empty());
    let l = r.learned_from(a);
    assert_eq!(l.len(), 2);
    match &l[0].state {
        RouteState::Rejected(why) => {
            assert!(why.contains("65515") && why.contains("loop"), "{why}")
        }
        s => panic!("{s:?}"),
    }
    assert!(matches!(&l[1].state, RouteState::Rejected(w) if w.contains("first AS")));
    assert_eq!(r.peer_counts(a), (2, 0));
    // A later good announcement of the same prefix replaces the rejected one.
    r.apply_update(
        a,
        &announce(attrs(&[65001], [10, 1, 0, 100]), &["192.168.20.0/24"]),
    )
    .unwrap();
    assert_eq!(r.peer_counts(a), (2, 1));
}

#[test]
fn route_limit_counts_held_plus_incoming() {
    let mut r = rib(false);
    let a = r.add_peer("nva1", Ipv4Addr::new(10, 1, 2, 10), 65001, 4000);
    r.peer_up(a, Ipv4Addr::new(10, 1, 2, 10));
    let many = |n: u32, base: u32| UpdateMessage {
        withdrawn: vec![],
        attrs: attrs(&[65001], [10, 1, 0, 100]),
        nlri: (0..n)
            .map(|i| Ipv4Prefix::new(Ipv4Addr::from(base + (i << 8)), 24).unwrap())
            .collect(),
    };
    r.apply_update(a, &many(2001, 0x0a00_0000)).unwrap();
    // Re-sending the same 2001 routes counts 4002 (the reference cloud's rule).
    let e = r.apply_update(a, &many(2001, 0x0a00_0000)).unwrap_err();
    assert_eq!((e.held, e.incoming, e.limit), (2001, 2001, 4000));
    assert_eq!(r.len(), 2001, "nothing of the refused UPDATE was applied");
    r.apply_update(a, &many(1999, 0x0b00_0000)).unwrap();
    assert!(
        r.apply_update(a, &many(1, 0x0c00_0000)).is_err(),
        "4001st route"
    );
    let ex = r.peer_down(a);
    assert_eq!(ex.changed.len(), 4000);
    assert!(r.is_empty());
}

#[test]
fn advertised_without_branch_to_branch_is_the_address_space() {
    let (mut r, a, b) = two_nvas(false);
    let ex = r
        .apply_update(
            a,
            &announce(attrs(&[65001], [10, 1, 0, 100]), &["192.168.10.0/24"]),
        )
        .unwrap();
    assert!(
        ex.peers().is_empty(),
        "nothing to send: branch_to_branch is off"
    );
    let adv = r.advertised_to(b);
    assert_eq!(adv.len(), 1);
    assert_eq!(adv[0].0, p("10.1.0.0/16"));
    assert_eq!(adv[0].1.next_hop, Some(Ipv4Addr::new(10, 1, 1, 4)));
    assert_eq!(adv[0].1.as_path.as_ref().unwrap().to_string(), "65515");
    assert_eq!(adv[0].1.origin, Some(Origin::Igp));
    // peer_up sends exactly that.
    let ex = r.peer_up(b, Ipv4Addr::new(10, 1, 2, 11));
    let msgs = ex.peers()[0].1.to_messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].nlri, vec![p("10.1.0.0/16")]);
}

#[test]
fn branch_to_branch_exports_to_other_peers_only() {
    let mut r = rib(true);
    let a = r.add_peer("nva1", Ipv4Addr::new(10, 1, 2, 10), 65001, 4000);
    let c = r.add_peer("branch", Ipv4Addr::new(10, 1, 2, 20), 65020, 4000);
    r.peer_up(a, Ipv4Addr::new(10, 1, 2, 10));
    r.peer_up(c, Ipv4Addr::new(10, 1, 2, 20));
    let mut at = attrs(&[65001], [10, 1, 0, 100]);
    at.unknown.push(bgp::wire::attrs::RawAttribute {
        flags: 0xc0,
        type_code: 200,
        value: vec![1],
    });
    at.unknown.push(bgp::wire::attrs::RawAttribute {
        flags: 0x80,
        type_code: 201,
        value: vec![2],
    });
    let ex = r
        .apply_update(a, &announce(at, &["192.168.10.0/24"]))
        .unwrap();
    assert_eq!(ex.peers().len(), 1);
    let (to, out) = ex.peers()[0];
    assert_eq!(to, c, "not back to the source");
    let sent = &out.to_messages()[0];
    assert_eq!(
        sent.attrs.as_path.as_ref().unwrap().to_string(),
        "65515 65001"
    );
    assert_eq!(
        sent.attrs.next_hop,
        Some(Ipv4Addr::new(10, 1, 0, 100)),
        "third-party next hop kept"
    );
    assert_eq!(sent.attrs.med, None, "MED is not passed to another AS");
    assert_eq!(
        sent.attrs.unknown.len(),
        1,
        "only the transitive unknown attribute"
    );
    assert_eq!(sent.attrs.unknown[0].flags, 0xe0, "with the Partial bit");
    // Withdraw reaches the other peer.
    let ex = r.apply_update(a, &withdraw(&["192.168.10.0/24"])).unwrap();
    assert_eq!(ex.peers()[0].1.withdraw, vec![p("192.168.10.0/24")]);
    // And a peer going down withdraws its routes from the others.
    r.apply_update(
        a,
        &announce(attrs(&[65001], [10, 1, 0, 100]), &["192.168.11.0/24"]),
    )
    .unwrap();
    let ex = r.peer_down(a);
    assert_eq!(ex.peers()[0].1.withdraw, vec![p("192.168.11.0/24")]);
}

#[test]
fn no_advertise_is_kept_but_not_exported() {
    let mut r = rib(true);
    let a = r.add_peer("nva1", Ipv4Addr::new(10, 1, 2, 10), 65001, 4000);
    let c = r.add_peer("branch", Ipv4Addr::new(10, 1, 2, 20), 65020, 4000);
    r.peer_up(a, Ipv4Addr::new(10, 1, 2, 10));
    r.peer_up(c, Ipv4Addr::new(10, 1, 2, 20));
    let mut at = attrs(&[65001], [10, 1, 0, 100]);
    at.communities.push(community::NO_ADVERTISE);
    let ex = r
        .apply_update(a, &announce(at, &["192.168.10.0/24"]))
        .unwrap();
    assert_eq!(r.len(), 1, "installed");
    assert!(ex.peers().is_empty(), "not re-advertised");
    assert_eq!(r.advertised_to(c).len(), 1, "only the address space");
}

#[test]
fn packed_encoding_round_trips() {
    let mut r = rib(true);
    let a = r.add_peer("t", Ipv4Addr::new(10, 0, 0, 1), 65001, 100_000);
    let m = r.add_peer("mon", Ipv4Addr::new(10, 0, 0, 2), 65002, 100_000);
    r.peer_up(a, Ipv4Addr::new(10, 0, 0, 1));
    r.peer_up(m, Ipv4Addr::new(10, 0, 0, 2));
    let u = UpdateMessage {
        withdrawn: vec![],
        attrs: attrs(&[65001], [10, 0, 0, 1]),
        nlri: (0..5000u32)
            .map(|i| Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap())
            .collect(),
    };
    let ex = r.apply_update(a, &u).unwrap();
    let ctx = bgp::wire::SessionContext::default();
    let mut bytes = Vec::new();
    let n = ex.peers()[0].1.encode(&ctx, &mut bytes).messages;
    assert!(n <= 7, "{n} messages for 5000 /32s");
    let mut got = 0;
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (msg, used) = bgp::wire::Message::decode(rest, &ctx).unwrap();
        if let bgp::wire::Message::Update(u) = msg {
            assert_eq!(u.attrs.as_path.unwrap().to_string(), "65515 65001");
            got += u.nlri.len();
        }
        rest = &rest[used..];
    }
    assert_eq!(got, 5000);
}

/// Peers told the same thing share one output (encoded once); a peer told something else in
/// the middle of a batch gets its own, with what it was told before.
#[test]
fn peers_told_the_same_share_one_output_until_they_differ() {
    let mut r = rib(true);
    let a = r.add_peer("nva1", Ipv4Addr::new(10, 1, 2, 10), 65001, 4000);
    let b = r.add_peer("branch1", Ipv4Addr::new(10, 1, 2, 20), 65020, 4000);
    let c = r.add_peer("branch2", Ipv4Addr::new(10, 1, 2, 30), 65030, 4000);
    for (id, rid) in [(a, 10), (b, 20), (c, 30)] {
        r.peer_up(id, Ipv4Addr::new(10, 1, 2, rid));
    }
    // c has a worse path for 192.168.11.0/24.
    r.apply_update(
        c,
        &announce(attrs(&[65030, 65031], [10, 1, 0, 30]), &["192.168.11.0/24"]),
    )
    .unwrap();
    let ex = r
        .apply_update(
            a,
            &announce(
                attrs(&[65001], [10, 1, 0, 100]),
                &["192.168.10.0/24", "192.168.11.0/24"],
            ),
        )
        .unwrap();
    let mut groups = ex.groups();
    groups.sort_by_key(|(peers, _)| peers.clone());
    assert_eq!(groups.len(), 2, "{groups:?}");
    let (peers, out) = &groups[0];
    assert_eq!(peers, &vec![a], "a had c's path: it is withdrawn");
    assert_eq!(out.withdraw, vec![p("192.168.11.0/24")]);
    let (peers, out) = &groups[1];
    assert_eq!(peers, &vec![b, c], "one output for both branches");
    assert_eq!(out.announce.len(), 1);
    assert_eq!(
        out.announce[0].1,
        vec![p("192.168.10.0/24"), p("192.168.11.0/24")]
    );

    // a goes down: both lose 192.168.10.0/24, but for 192.168.11.0/24 b gets c's path and c a
    // withdrawal (its own path is not sent back to it).
    let ex = r.peer_down(a);
    let by_peer = ex.peers();
    assert_eq!(by_peer.len(), 2);
    let (to_b, to_c) = (by_peer[0].1, by_peer[1].1);
    assert_eq!((by_peer[0].0, by_peer[1].0), (b, c));
    let mut wb = to_b.withdraw.clone();
    wb.sort();
    assert_eq!(wb, vec![p("192.168.10.0/24")]);
    assert_eq!(to_b.announce.len(), 1);
    assert_eq!(to_b.announce[0].1, vec![p("192.168.11.0/24")]);
    assert_eq!(
        to_b.announce[0].0.as_path.as_ref().unwrap().to_string(),
        "65515 65030 65031"
    );
    let mut wc = to_c.withdraw.clone();
    wc.sort();
    assert_eq!(wc, vec![p("192.168.10.0/24"), p("192.168.11.0/24")]);
    assert!(to_c.announce.is_empty());
}

/// A path over the peer's attribute limits is refused with the reason, like a policy refusal:
/// no session reset, the peer's other routes stay, and it is held without the oversized parts.
#[test]
fn a_path_over_the_attribute_limits_is_refused_with_the_reason() {
    let (mut r, a, _b) = two_nvas(true);
    r.set_peer_limits(
        a,
        routeserver::PathLimits {
            max_as_path_length: 10,
            max_communities: 4,
            max_unknown_attribute_octets: 16,
        },
    );
    r.apply_update(
        a,
        &announce(attrs(&[65001], [10, 1, 0, 100]), &["192.168.10.0/24"]),
    )
    .unwrap();
    let long: Vec<u32> = std::iter::once(65001)
        .chain(std::iter::repeat(65009).take(20))
        .collect();
    r.apply_update(
        a,
        &announce(attrs(&long, [10, 1, 0, 100]), &["192.168.20.0/24"]),
    )
    .unwrap();
    let mut many = attrs(&[65001], [10, 1, 0, 100]);
    many.communities = (0..5).map(|i| 65001 << 16 | i).collect();
    r.apply_update(a, &announce(many, &["192.168.30.0/24"]))
        .unwrap();
    let learned = r.learned_from(a);
    let state = |net: &str| {
        learned
            .iter()
            .find(|l| l.prefix == p(net))
            .map(|l| l.state.clone())
            .unwrap()
    };
    assert!(matches!(
        state("192.168.10.0/24"),
        RouteState::Accepted { .. }
    ));
    match state("192.168.20.0/24") {
        RouteState::Rejected(why) => assert!(why.contains("max_as_path_length"), "{why}"),
        s => panic!("{s:?}"),
    }
    match state("192.168.30.0/24") {
        RouteState::Rejected(why) => assert!(why.contains("max_communities"), "{why}"),
        s => panic!("{s:?}"),
    }
    let held = learned
        .iter()
        .find(|l| l.prefix == p("192.168.20.0/24"))
        .unwrap();
    assert!(
        held.attrs.as_path.is_none(),
        "held with its oversized AS_PATH"
    );
    assert!(r.prefixes().all(|x| *x != p("192.168.20.0/24")));
}

/// A path that does not fit one message of a session (no extended messages: 4096 octets) is
/// not announced to it; the peer is told to withdraw that prefix, and it is counted. A session
/// with extended messages (RFC 8654) gets it.
#[test]
fn a_path_too_large_for_a_session_is_withdrawn_and_counted_not_sent() {
    let mut r = rib(true);
    let a = r.add_peer("nva1", Ipv4Addr::new(10, 1, 2, 10), 65001, 4000);
    let b = r.add_peer("branch", Ipv4Addr::new(10, 1, 2, 20), 65002, 4000);
    r.peer_up(a, Ipv4Addr::new(10, 1, 2, 10));
    r.peer_up(b, Ipv4Addr::new(10, 1, 2, 20));
    let mut big = attrs(&[65001], [10, 1, 0, 100]);
    big.communities = (0..1020u32).map(|i| 65001 << 16 | i).collect();
    let ex = r
        .apply_update(a, &announce(big, &["192.168.40.0/24", "192.168.41.0/24"]))
        .unwrap();
    let out = &ex.peers()[0].1;
    let plain = bgp::wire::SessionContext {
        four_octet_as: true,
        extended_message: false,
        ebgp: true,
    };
    let mut bytes = Vec::new();
    let e = out.encode(&plain, &mut bytes);
    assert_eq!(e.too_large, 2);
    let mut rest = &bytes[..];
    let mut withdrawn = Vec::new();
    while !rest.is_empty() {
        let (msg, used) = bgp::wire::Message::decode(rest, &plain).unwrap();
        assert!(used <= 4096);
        if let bgp::wire::Message::Update(u) = msg {
            assert!(u.nlri.is_empty(), "announced a path that does not fit");
            withdrawn.extend(u.withdrawn);
        }
        rest = &rest[used..];
    }
    assert_eq!(withdrawn, [p("192.168.40.0/24"), p("192.168.41.0/24")]);
    let extended = bgp::wire::SessionContext {
        extended_message: true,
        ..plain
    };
    let mut bytes = Vec::new();
    let e = out.encode(&extended, &mut bytes);
    assert_eq!(e.too_large, 0);
    let (msg, _) = bgp::wire::Message::decode(&bytes, &extended).unwrap();
    assert!(matches!(msg, bgp::wire::Message::Update(u) if u.nlri.len() == 2));
}
