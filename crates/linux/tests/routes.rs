//! nexthop's kernel routes, for real, in a namespace the test creates: the rtnetlink client
//! adds, replaces, dumps and deletes `proto 200` routes, `reconcile` converges and is
//! idempotent, and a route of another protocol is never touched.

use std::net::IpAddr;

use labtest::Netns;
use linux::netlink::{Error, Netlink, Prefix, Route};
use linux::{netns, reconcile};

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A namespace with 10.1.0.1/16 on a veth `v0` (its peer `v1` in the same namespace), so
/// gateways in 10.1.0.0/16 are reachable, plus a foreign static route.
fn host() -> Netns {
    let ns = Netns::new("routes").unwrap();
    ns.exec(
        "ip",
        &["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
    )
    .unwrap();
    ns.exec("ip", &["addr", "add", "10.1.0.1/16", "dev", "v0"])
        .unwrap();
    ns.exec("ip", &["link", "set", "v0", "up"]).unwrap();
    ns.exec("ip", &["link", "set", "v1", "up"]).unwrap();
    ns.exec(
        "ip",
        &[
            "route",
            "add",
            "192.168.30.0/24",
            "via",
            "10.1.0.7",
            "proto",
            "static",
        ],
    )
    .unwrap();
    ns
}

/// [`host`] with fd00:1::1/48 on `v0` too (gateways in fd00:1::/48 reachable).
fn host6() -> Netns {
    let ns = host();
    ns.exec(
        "ip",
        &["-6", "addr", "add", "fd00:1::1/48", "dev", "v0", "nodad"],
    )
    .unwrap();
    ns
}

fn show(ns: &Netns, args: &[&str]) -> String {
    let mut a = vec!["-4", "route", "show"];
    a.extend_from_slice(args);
    let out = ns.exec("ip", &a).unwrap();
    eprintln!("ip {}:\n{out}", a.join(" "));
    out
}

#[test]
fn netlink_adds_replaces_deletes_only_its_own_routes() {
    if !labtest::require_netns(&["ip"]) {
        return;
    }
    let ns = host();
    netns::run_in(ns.name(), || {
        let mut nl = Netlink::open().unwrap();
        let r = Route::new(p("192.168.10.0/24"), vec![ip("10.1.0.100")], 0);
        nl.add_route(&r).unwrap();
        assert!(show(&ns, &["proto", "200"]).contains("192.168.10.0/24 via 10.1.0.100 dev v0"));
        assert_eq!(nl.routes().unwrap(), vec![r.clone()]);
        // Adding twice is an error (EEXIST), not a duplicate.
        assert!(matches!(nl.add_route(&r), Err(Error::Kernel { .. })));

        let r2 = Route::new(r.prefix, vec![ip("10.1.0.101")], r.metric);
        nl.replace_route(&r2).unwrap();
        let out = show(&ns, &["proto", "200"]);
        assert!(
            out.contains("192.168.10.0/24 via 10.1.0.101 dev v0"),
            "{out}"
        );
        assert_eq!(out.lines().count(), 1);

        // The foreign route: not listed, not replaceable, not deletable.
        assert!(nl
            .routes()
            .unwrap()
            .iter()
            .all(|x| x.prefix != p("192.168.30.0/24")));
        let foreign = Route::new(p("192.168.30.0/24"), vec![ip("10.1.0.100")], 0);
        let e = nl.replace_route(&foreign).unwrap_err();
        assert!(matches!(e, Error::Foreign { protocol: 4, .. }), "{e}");
        let e = nl.delete_route(p("192.168.30.0/24"), 0).unwrap_err();
        assert!(matches!(e, Error::Kernel { .. }), "{e}");
        assert!(show(&ns, &["proto", "static"]).contains("192.168.30.0/24 via 10.1.0.7"));

        nl.delete_route(r.prefix, 0).unwrap();
        assert_eq!(show(&ns, &["proto", "200"]), "");
        assert!(nl.routes().unwrap().is_empty());
        assert!(show(&ns, &[]).contains("192.168.30.0/24 via 10.1.0.7 dev v0 proto static"));
    })
    .unwrap();
}

#[test]
fn reconcile_converges_is_idempotent_and_leaves_foreign_routes() {
    if !labtest::require_netns(&["ip"]) {
        return;
    }
    let ns = host();
    // A stale route of ours (e.g. from before a restart) and one at a metric the agent never
    // uses.
    ns.exec(
        "ip",
        &[
            "route",
            "add",
            "172.16.0.0/12",
            "via",
            "10.1.0.9",
            "proto",
            "200",
        ],
    )
    .unwrap();
    ns.exec(
        "ip",
        &[
            "route",
            "add",
            "192.168.10.0/24",
            "via",
            "10.1.0.9",
            "proto",
            "200",
            "metric",
            "7",
        ],
    )
    .unwrap();
    netns::run_in(ns.name(), || {
        let mut nl = Netlink::open().unwrap();
        let desired = [
            (p("192.168.10.0/24"), vec![ip("10.1.0.100")]),
            (p("10.50.0.0/16"), vec![ip("10.1.0.100")]),
        ];
        // The static route's prefix is wanted too: reported, never overwritten.
        let mut with_foreign = desired.to_vec();
        with_foreign.push((p("192.168.30.0/24"), vec![ip("10.1.0.100")]));
        let ch = reconcile(&mut nl, &with_foreign).unwrap();
        assert_eq!(ch.foreign, vec![(p("192.168.30.0/24"), 4)], "{ch:?}");
        assert_eq!(ch.added.len(), 2, "{ch:?}");
        assert_eq!(ch.removed.len(), 2, "{ch:?}");
        assert!(ch.replaced.is_empty());
        let out = show(&ns, &["proto", "200"]);
        assert_eq!(
            out,
            "10.50.0.0/16 via 10.1.0.100 dev v0 \n192.168.10.0/24 via 10.1.0.100 dev v0 \n"
        );

        assert!(show(&ns, &[]).contains("192.168.30.0/24 via 10.1.0.7 dev v0 proto static"));
        let again = reconcile(&mut nl, &desired).unwrap();
        assert!(again.is_empty(), "{again:?}");

        // The branch moves to another frontend; the /16 is withdrawn.
        let ch = reconcile(&mut nl, &[(p("192.168.10.0/24"), vec![ip("10.1.0.101")])]).unwrap();
        assert_eq!(ch.replaced.len(), 1, "{ch:?}");
        assert_eq!(ch.removed.len(), 1, "{ch:?}");
        assert!(ch.added.is_empty());
        assert_eq!(
            show(&ns, &["proto", "200"]),
            "192.168.10.0/24 via 10.1.0.101 dev v0 \n"
        );

        let ch = reconcile(&mut nl, &[]).unwrap();
        assert_eq!(ch.removed.len(), 1);
        assert_eq!(show(&ns, &["proto", "200"]), "");
        assert!(show(&ns, &[]).contains("192.168.30.0/24 via 10.1.0.7 dev v0 proto static"));
    })
    .unwrap();
}

/// The agent protects its host: a route that would become the longest match for the
/// controller's address is refused (and one of ours already there is removed), a default route
/// is fine while the controller is reached through a more specific route, `--allow` limits the
/// rest, and one route the kernel refuses (gateway not on-link) does not keep the others out.
#[test]
fn the_guard_keeps_the_path_to_the_controller_and_one_bad_route_blocks_nothing() {
    if !labtest::require_netns(&["ip"]) {
        return;
    }
    let ns = host();
    // The controller 10.1.1.4 is reached through the connected 10.1.0.0/16 (v0). An earlier
    // agent (or a hostile controller) already put 10.1.1.0/24 there.
    ns.exec(
        "ip",
        &[
            "route",
            "add",
            "10.1.1.0/24",
            "via",
            "10.1.0.9",
            "proto",
            "200",
        ],
    )
    .unwrap();
    netns::run_in(ns.name(), || {
        let mut nl = Netlink::open().unwrap();
        let guard = linux::Guard {
            protect: vec![ip("10.1.1.4")],
            allow: Vec::new(),
        };
        let desired = [
            // Forced tunneling: the default route through the firewall LB.
            (p("0.0.0.0/0"), vec![ip("10.1.0.100")]),
            // More specific than the /16 the controller is reached by: refused.
            (p("10.1.1.0/24"), vec![ip("10.1.0.100")]),
            (p("10.1.0.0/16"), vec![ip("10.1.0.100")]),
            // The gateway is on no link: the kernel says no.
            (p("192.168.40.0/24"), vec![ip("172.31.9.9")]),
            (p("192.168.10.0/24"), vec![ip("10.1.0.100")]),
        ];
        let ch = linux::reconcile_guarded(&mut nl, &desired, &guard).unwrap();
        let refused: Vec<String> = ch
            .refused
            .iter()
            .map(|(r, _)| r.prefix.to_string())
            .collect();
        assert_eq!(refused, ["10.1.0.0/16", "10.1.1.0/24"], "{ch:?}");
        assert!(ch.refused[1].1.contains("controller 10.1.1.4"), "{ch:?}");
        let failed: Vec<String> = ch
            .failed
            .iter()
            .map(|(r, _)| r.prefix.to_string())
            .collect();
        assert_eq!(failed, ["192.168.40.0/24"], "{ch:?}");
        assert_eq!(
            show(&ns, &["proto", "200"]),
            "default via 10.1.0.100 dev v0 \n192.168.10.0/24 via 10.1.0.100 dev v0 \n"
        );
        // The controller is still reached the way it was.
        assert!(ns
            .exec("ip", &["-4", "route", "get", "10.1.1.4"])
            .unwrap()
            .starts_with("10.1.1.4 dev v0"));

        // --allow: only the branch range.
        let only_branches = linux::Guard {
            protect: vec![ip("10.1.1.4")],
            allow: vec![p("192.168.0.0/16")],
        };
        let ch = linux::reconcile_guarded(&mut nl, &desired, &only_branches).unwrap();
        assert!(
            ch.refused
                .iter()
                .any(|(r, why)| r.prefix == p("0.0.0.0/0") && why.contains("--allow")),
            "{ch:?}"
        );
        assert_eq!(
            show(&ns, &["proto", "200"]),
            "192.168.10.0/24 via 10.1.0.100 dev v0 \n"
        );
    })
    .unwrap();
}

/// IPv6 (issue #16): the agent's IPv6 routes go in as `proto 200` (metric 1024: what the
/// kernel makes of 0), are found again (a second reconcile does nothing), are replaced and
/// removed like IPv4 ones, an IPv6 route of another protocol is left alone, and the IPv6 path
/// to a controller is guarded too.
#[test]
fn ipv6_routes_reconcile_like_ipv4_ones() {
    if !labtest::require_netns(&["ip"]) {
        return;
    }
    let ns = host6();
    ns.exec(
        "ip",
        &[
            "-6",
            "route",
            "add",
            "fd00:30::/48",
            "via",
            "fd00:1::7",
            "proto",
            "static",
            "metric",
            "1024",
        ],
    )
    .unwrap();
    let show6 = |args: &[&str]| {
        let mut a = vec!["-6", "route", "show"];
        a.extend_from_slice(args);
        let out = ns.exec("ip", &a).unwrap();
        eprintln!("ip {}:\n{out}", a.join(" "));
        out
    };
    netns::run_in(ns.name(), || {
        let mut nl = Netlink::open().unwrap();
        let desired = [
            (p("fd00:10::/48"), vec![ip("fd00:1::100")]),
            (p("192.168.10.0/24"), vec![ip("10.1.0.100")]),
            // Another protocol's prefix at the same metric: reported, never overwritten.
            (p("fd00:30::/48"), vec![ip("fd00:1::100")]),
        ];
        let ch = reconcile(&mut nl, &desired).unwrap();
        assert_eq!(ch.added.len(), 2, "{ch:?}");
        assert_eq!(ch.foreign, vec![(p("fd00:30::/48"), 4)], "{ch:?}");
        let out = show6(&["proto", "200"]);
        assert!(
            out.contains("fd00:10::/48 via fd00:1::100 dev v0 metric 1024"),
            "{out}"
        );
        assert!(show(&ns, &["proto", "200"]).contains("192.168.10.0/24 via 10.1.0.100"));
        // Found again at metric 1024: nothing to do (the foreign prefix is still reported).
        let again = reconcile(&mut nl, &desired).unwrap();
        assert!(
            again.added.is_empty() && again.replaced.is_empty() && again.removed.is_empty(),
            "{again:?}"
        );
        assert_eq!(again.foreign, ch.foreign);
        // Another gateway, then nothing.
        let ch = reconcile(&mut nl, &[(p("fd00:10::/48"), vec![ip("fd00:1::101")])]).unwrap();
        assert_eq!((ch.replaced.len(), ch.removed.len()), (1, 1), "{ch:?}");
        assert!(show6(&["proto", "200"]).contains("fd00:10::/48 via fd00:1::101"));
        let ch = reconcile(&mut nl, &[]).unwrap();
        assert_eq!(ch.removed.len(), 1, "{ch:?}");
        assert_eq!(show6(&["proto", "200"]), "");
        assert!(show6(&[]).contains("fd00:30::/48 via fd00:1::7 dev v0 proto static"));

        // The guard: a controller at fd00:1::4 (reached through the connected /48).
        let guard = linux::Guard {
            protect: vec![ip("fd00:1::4")],
            allow: Vec::new(),
        };
        let ch = linux::reconcile_guarded(
            &mut nl,
            &[
                (p("fd00:1::/64"), vec![ip("fd00:1::100")]),
                (p("::/0"), vec![ip("fd00:1::100")]),
            ],
            &guard,
        )
        .unwrap();
        let refused: Vec<String> = ch
            .refused
            .iter()
            .map(|(r, _)| r.prefix.to_string())
            .collect();
        assert_eq!(refused, ["fd00:1::/64"], "{ch:?}");
        assert_eq!(ch.added.len(), 1, "{ch:?}");
        // A prefix and a gateway of different families: refused by the client, not sent.
        let bad = Route::new(p("fd00:40::/48"), vec![ip("10.1.0.100")], 1024);
        assert!(matches!(nl.add_route(&bad), Err(Error::Malformed(_))));
        reconcile(&mut nl, &[]).unwrap();
    })
    .unwrap();
}

/// An ECMP set (issue #15 item 3): a prefix with several gateways is one multipath route in
/// the kernel, of either family; dumped back with every gateway (so a second reconcile changes
/// nothing), replaced when the set changes or shrinks to one gateway, deleted whole.
#[test]
fn several_gateways_make_one_multipath_route() {
    if !labtest::require_netns(&["ip"]) {
        return;
    }
    let ns = host6();
    let show_all = || {
        let four = ns
            .exec("ip", &["-4", "route", "show", "proto", "200"])
            .unwrap();
        let six = ns
            .exec("ip", &["-6", "route", "show", "proto", "200"])
            .unwrap();
        let out = four + &six;
        eprintln!("proto 200:\n{out}");
        out
    };
    netns::run_in(ns.name(), || {
        let mut nl = Netlink::open().unwrap();
        let two = vec![ip("10.1.0.11"), ip("10.1.0.10")];
        let two6 = vec![ip("fd00:1::11"), ip("fd00:1::10")];
        let desired = [
            (p("192.168.20.0/24"), two.clone()),
            (p("fd00:20::/48"), two6.clone()),
        ];
        let ch = reconcile(&mut nl, &desired).unwrap();
        assert_eq!(ch.added.len(), 2, "{ch:?}");
        assert!(ch.failed.is_empty(), "{ch:?}");
        let out = show_all();
        for want in [
            "192.168.20.0/24 \n\tnexthop via 10.1.0.10 dev v0 weight 1 \n\tnexthop via 10.1.0.11 dev v0 weight 1",
            "nexthop via fd00:1::10 dev v0 weight 1",
            "nexthop via fd00:1::11 dev v0 weight 1",
        ] {
            assert!(out.contains(want), "{want:?} not in:\n{out}");
        }
        let routes = nl.routes().unwrap();
        assert_eq!(
            routes,
            vec![
                Route::new(p("192.168.20.0/24"), two.clone(), 0),
                Route::new(p("fd00:20::/48"), two6.clone(), 1024),
            ],
            "dumped back with every gateway, sorted"
        );
        let again = reconcile(&mut nl, &desired).unwrap();
        assert!(again.is_empty(), "{again:?}");

        // One NVA replaced by another, then a single one left: replaced in place each time.
        let other = vec![ip("10.1.0.10"), ip("10.1.0.12")];
        let other6 = vec![ip("fd00:1::10"), ip("fd00:1::12")];
        let ch = reconcile(
            &mut nl,
            &[
                (p("192.168.20.0/24"), other.clone()),
                (p("fd00:20::/48"), other6.clone()),
            ],
        )
        .unwrap();
        assert_eq!(ch.replaced.len(), 2, "{ch:?}");
        assert!(ch.failed.is_empty() && ch.removed.is_empty(), "{ch:?}");
        let out = show_all();
        assert!(out.contains("nexthop via 10.1.0.12") && !out.contains("10.1.0.11"), "{out}");
        assert!(out.contains("nexthop via fd00:1::12") && !out.contains("fd00:1::11"), "{out}");
        let ch = reconcile(
            &mut nl,
            &[
                (p("192.168.20.0/24"), vec![ip("10.1.0.12")]),
                (p("fd00:20::/48"), vec![ip("fd00:1::12")]),
            ],
        )
        .unwrap();
        assert_eq!(ch.replaced.len(), 2, "{ch:?}");
        let out = show_all();
        assert!(out.contains("192.168.20.0/24 via 10.1.0.12 dev v0"), "{out}");
        assert!(out.contains("fd00:20::/48 via fd00:1::12 dev v0"), "{out}");
        assert!(!out.contains("nexthop"), "{out}");

        // Back to two, then gone: a multipath route is deleted whole.
        reconcile(&mut nl, &desired).unwrap();
        let ch = reconcile(&mut nl, &[]).unwrap();
        assert_eq!(ch.removed.len(), 2, "{ch:?}");
        assert!(ch.failed.is_empty(), "{ch:?}");
        assert_eq!(show_all(), "");
    })
    .unwrap();
}
