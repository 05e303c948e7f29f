//! Effective routes of the seed's topology and its variations (SPEC §3, §5, issue #5).

use std::net::{IpAddr, Ipv4Addr};

use fabric::{
    Fabric, LbInfo, NextHopType, NicInfo, Prefix, RouteSource, RouteState, Topology, VnetInfo,
};

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// hub (westeurope, 10.1.0.0/16, route server, vm1-nic) peered with spoke (10.2.0.0/16);
/// isolated (10.9.0.0/16) is not peered. The LB sits in `lb_vnet`.
fn seed(lb_vnet: &str, lb_region: &str, tracking: bool) -> Fabric {
    let vnets = vec![
        VnetInfo {
            name: "hub".into(),
            region: "westeurope".into(),
            address_space: vec![p("10.1.0.0/16")],
            peerings: vec!["spoke".into()],
        },
        VnetInfo {
            name: "spoke".into(),
            region: lb_region.into(),
            address_space: vec![p("10.2.0.0/16")],
            peerings: vec![],
        },
        VnetInfo {
            name: "isolated".into(),
            region: "westeurope".into(),
            address_space: vec![p("10.9.0.0/16")],
            peerings: vec![],
        },
    ];
    let nics = vec![
        NicInfo {
            name: "vm1-nic".into(),
            vnet: "hub".into(),
            address: ip4("10.1.3.10"),
            address6: None,
        },
        NicInfo {
            name: "spoke-nic".into(),
            vnet: "spoke".into(),
            address: ip4("10.2.0.4"),
            address6: None,
        },
        NicInfo {
            name: "iso-nic".into(),
            vnet: "isolated".into(),
            address: ip4("10.9.0.4"),
            address6: None,
        },
    ];
    let frontend = if lb_vnet == "hub" {
        ip("10.1.0.100")
    } else {
        ip("10.2.0.100")
    };
    let region = if lb_vnet == "hub" {
        "westeurope"
    } else {
        lb_region
    };
    let lbs = vec![LbInfo {
        name: "nva-ilb".into(),
        frontend,
        region: Some(region.into()),
    }];
    Fabric::new(
        Topology::new(vnets, nics, lbs, Some("hub".into())),
        tracking,
    )
}

#[test]
fn branch_route_resolves_through_the_lb_once() {
    let mut f = seed("hub", "westeurope", false);
    // Both NVAs and both instances learned it: one forwarding next hop.
    f.set_bgp_route(p("192.168.10.0/24"), Some(vec![ip("10.1.0.100")]));
    let t = f.nic_table("vm1-nic").unwrap();
    let rs: Vec<_> = t
        .routes()
        .into_iter()
        .filter(|r| r.prefix == p("192.168.10.0/24"))
        .collect();
    assert_eq!(rs.len(), 1);
    let r = &rs[0];
    assert_eq!(
        (r.source, r.state, r.next_hop_type),
        (
            RouteSource::VirtualNetworkGateway,
            RouteState::Active,
            NextHopType::VirtualNetworkGateway
        )
    );
    assert_eq!(r.next_hop_ips, vec![ip("10.1.0.100")]);
    assert_eq!(r.load_balancer.as_deref(), Some("nva-ilb"));
    assert_eq!(
        t.lookup(ip("192.168.10.7")).unwrap().prefix,
        p("192.168.10.0/24")
    );
    // System routes are there too.
    let sys: Vec<_> = t
        .routes()
        .into_iter()
        .filter(|r| r.source == RouteSource::Default)
        .map(|r| (r.prefix, r.next_hop_type))
        .collect();
    assert_eq!(
        sys,
        vec![
            (p("0.0.0.0/0"), NextHopType::Internet),
            (p("10.1.0.0/16"), NextHopType::VnetLocal),
            (p("10.2.0.0/16"), NextHopType::VNetPeering)
        ]
    );
    // The peered spoke gets it too; the isolated network does not.
    assert!(f
        .nic_table("spoke-nic")
        .unwrap()
        .lookup(ip("192.168.10.7"))
        .is_some_and(|r| r.source == RouteSource::VirtualNetworkGateway));
    assert_eq!(
        f.nic_table("iso-nic")
            .unwrap()
            .lookup(ip("192.168.10.7"))
            .unwrap()
            .next_hop_type,
        NextHopType::Internet
    );
}

#[test]
fn cross_region_lb_makes_the_route_invalid_and_moving_it_back_fixes_it() {
    let mut f = seed("spoke", "northeurope", false);
    f.set_bgp_route(p("192.168.10.0/24"), Some(vec![ip("10.2.0.100")]));
    let t = f.nic_table("vm1-nic").unwrap();
    let r = t.get(&p("192.168.10.0/24")).pop().unwrap();
    assert_eq!(r.state, RouteState::Invalid);
    assert_eq!(
        r.reason.as_deref(),
        Some("load balancer nva-ilb is in region northeurope, route server in westeurope: cross-region next hop IP is not supported")
    );
    // Not programmed: traffic follows the default route instead of a black hole.
    assert_eq!(
        t.lookup(ip("192.168.10.7")).unwrap().next_hop_type,
        NextHopType::Internet
    );
    // The same LB in the route server's region is fine.
    let mut f = seed("spoke", "westeurope", false);
    f.set_bgp_route(p("192.168.10.0/24"), Some(vec![ip("10.2.0.100")]));
    assert_eq!(
        f.nic_table("vm1-nic").unwrap().get(&p("192.168.10.0/24"))[0].state,
        RouteState::Active
    );
}

#[test]
fn own_space_and_more_specific_are_not_injected_a_supernet_is() {
    let mut f = seed("hub", "westeurope", false);
    for pfx in ["10.1.0.0/16", "10.1.5.0/24", "10.0.0.0/8"] {
        f.set_bgp_route(p(pfx), Some(vec![ip("10.1.0.100")]));
    }
    let t = f.nic_table("vm1-nic").unwrap();
    let bgp: Vec<Prefix> = t
        .routes()
        .into_iter()
        .filter(|r| r.source == RouteSource::VirtualNetworkGateway)
        .map(|r| r.prefix)
        .collect();
    assert_eq!(bgp, vec![p("10.0.0.0/8")]);
    // In the spoke, 10.1.5.0/24 is not its own space: injected there.
    let spoke = f.nic_table("spoke-nic").unwrap();
    assert_eq!(
        spoke
            .get(&p("10.1.5.0/24"))
            .iter()
            .filter(|r| r.source == RouteSource::VirtualNetworkGateway)
            .count(),
        1
    );
}

#[test]
fn unresolvable_and_direct_next_hops() {
    let mut f = seed("hub", "westeurope", false);
    f.set_bgp_route(p("192.168.20.0/24"), Some(vec![ip("10.1.2.10")]));
    f.set_bgp_route(p("192.168.30.0/24"), Some(vec![ip("172.16.0.1")]));
    let t = f.nic_table("vm1-nic").unwrap();
    let direct = t.get(&p("192.168.20.0/24")).pop().unwrap();
    assert_eq!(
        (direct.state, direct.load_balancer),
        (RouteState::Active, None)
    );
    let bad = t.get(&p("192.168.30.0/24")).pop().unwrap();
    assert_eq!(bad.state, RouteState::Invalid);
    assert!(bad
        .reason
        .unwrap()
        .contains("172.16.0.1 is in no network connected"));
}

#[test]
fn next_hop_tracking_marks_inactive_and_a_less_specific_route_takes_over() {
    let mut f = seed("hub", "westeurope", true);
    f.set_bgp_route(p("192.168.10.0/24"), Some(vec![ip("10.1.0.100")]));
    f.set_bgp_route(p("192.168.0.0/16"), Some(vec![ip("10.1.2.10")]));
    f.set_lb_healthy("nva-ilb", false);
    let t = f.nic_table("vm1-nic").unwrap();
    assert_eq!(t.get(&p("192.168.10.0/24"))[0].state, RouteState::Inactive);
    assert_eq!(
        t.lookup(ip("192.168.10.7")).unwrap().prefix,
        p("192.168.0.0/16")
    );
    f.set_lb_healthy("nva-ilb", true);
    assert_eq!(
        f.nic_table("vm1-nic")
            .unwrap()
            .lookup(ip("192.168.10.7"))
            .unwrap()
            .prefix,
        p("192.168.10.0/24")
    );
    // Without tracking, LB health does not change routes.
    let mut f = seed("hub", "westeurope", false);
    f.set_bgp_route(p("192.168.10.0/24"), Some(vec![ip("10.1.0.100")]));
    f.set_lb_healthy("nva-ilb", false);
    assert_eq!(
        f.nic_table("vm1-nic").unwrap().get(&p("192.168.10.0/24"))[0].state,
        RouteState::Active
    );
}

#[test]
fn one_change_touches_only_the_receiving_tables_and_versions_tell_what_changed() {
    let mut f = seed("hub", "westeurope", false);
    let v0 = f.nic_table("vm1-nic").unwrap().version();
    let iso0 = f.nic_table("iso-nic").unwrap().version();
    f.set_bgp_route(p("192.168.10.0/24"), Some(vec![ip("10.1.0.100")]));
    assert_eq!(f.last_touched, 2, "hub and spoke, not the isolated network");
    assert_eq!(f.nic_table("iso-nic").unwrap().version(), iso0);
    let t = f.nic_table("vm1-nic").unwrap();
    assert_eq!(t.version(), v0 + 1);
    assert_eq!(t.changes_since(v0), Some(vec![p("192.168.10.0/24")]));
    assert_eq!(t.changes_since(t.version()), Some(vec![]));
    // The same route again changes nothing.
    f.set_bgp_route(p("192.168.10.0/24"), Some(vec![ip("10.1.0.100")]));
    assert_eq!(f.nic_table("vm1-nic").unwrap().version(), v0 + 1);
    // A withdrawal is a change.
    f.set_bgp_route(p("192.168.10.0/24"), None);
    let t = f.nic_table("vm1-nic").unwrap();
    assert_eq!(t.changes_since(v0 + 1), Some(vec![p("192.168.10.0/24")]));
    assert!(t.get(&p("192.168.10.0/24")).is_empty());
}

#[test]
fn a_bgp_route_for_a_system_prefix_overrides_it() {
    let mut f = seed("hub", "westeurope", false);
    f.set_bgp_route(p("0.0.0.0/0"), Some(vec![ip("10.1.0.100")]));
    let t = f.nic_table("vm1-nic").unwrap();
    let both = t
        .routes()
        .into_iter()
        .filter(|r| r.prefix == Prefix::V4(fabric::Ipv4Prefix::DEFAULT))
        .collect::<Vec<_>>();
    assert_eq!(both.len(), 2);
    assert_eq!(
        both[0].state,
        RouteState::Invalid,
        "the Internet route is overridden"
    );
    assert_eq!(
        t.lookup(ip("8.8.8.8")).unwrap().source,
        RouteSource::VirtualNetworkGateway
    );
}

#[test]
fn a_rebuilt_fabric_never_reuses_versions() {
    let mut f = seed("hub", "westeurope", false);
    f.set_bgp_route(p("192.168.10.0/24"), Some(vec![ip("10.1.0.100")]));
    let v = f.nic_table("vm1-nic").unwrap().version();
    let topo = f.topology().clone();
    let g = Fabric::starting_at(topo, false, f.max_version() + 1);
    let t = g.nic_table("vm1-nic").unwrap();
    assert!(t.version() > v);
    assert_eq!(
        t.changes_since(v),
        None,
        "older than the rebuild: the whole table"
    );
}

#[test]
fn a_config_change_touches_only_what_it_changes() {
    let mut f = seed("spoke", "westeurope", false);
    f.set_bgp_route(p("192.168.10.0/24"), Some(vec![ip("10.2.0.100")]));
    f.set_bgp_route(p("192.168.20.0/24"), Some(vec![ip("10.1.2.10")]));
    let v0 = f.nic_table("vm1-nic").unwrap().version();
    // The spoke (and the LB in it) moves to another region.
    let mut topo = f.topology().clone();
    topo.vnets
        .iter_mut()
        .find(|v| v.name == "spoke")
        .unwrap()
        .region = "northeurope".into();
    topo.lbs[0].region = Some("northeurope".into());
    f.reconfigure(topo, false);
    let t = f.nic_table("vm1-nic").unwrap();
    assert_eq!(
        t.changes_since(v0),
        Some(vec![p("192.168.10.0/24")]),
        "only the route via the moved LB changed"
    );
    assert_eq!(t.get(&p("192.168.10.0/24"))[0].state, RouteState::Invalid);
    assert_eq!(t.get(&p("192.168.20.0/24"))[0].state, RouteState::Active);
    // The isolated network's table did not change at all.
    let iso = f.nic_table("iso-nic").unwrap().version();
    let topo = f.topology().clone();
    f.reconfigure(topo, false);
    assert_eq!(
        f.nic_table("iso-nic").unwrap().version(),
        iso,
        "an identical config changes nothing"
    );
    assert_eq!(f.last_touched, 0);
}

#[test]
fn instances_are_unioned_and_an_instance_reset_drops_only_its_own() {
    let mut f = seed("hub", "westeurope", false);
    let pfx = p("192.168.10.0/24");
    f.set_instance_route("IN_0", pfx, &[ip("10.1.2.10")]);
    f.set_instance_route("IN_1", pfx, &[ip("10.1.2.11")]);
    let nhs = |f: &Fabric| {
        f.nic_table("vm1-nic")
            .unwrap()
            .get(&pfx)
            .pop()
            .map(|r| r.next_hop_ips)
            .unwrap_or_default()
    };
    assert_eq!(nhs(&f), [ip("10.1.2.10"), ip("10.1.2.11")]);
    f.set_instance_route("IN_0", pfx, &[]);
    assert_eq!(nhs(&f), [ip("10.1.2.11")]);
    // IN_1 sends its whole Loc-RIB again without the prefix: it goes; IN_0's other route stays.
    f.set_instance_route("IN_0", p("192.168.20.0/24"), &[ip("10.1.2.10")]);
    f.reset_instance("IN_1", &std::collections::HashSet::new());
    assert!(nhs(&f).is_empty());
    assert_eq!(f.bgp_len(), 1);
}

#[test]
fn prefixes_with_the_same_next_hops_share_one_class() {
    let mut f = seed("hub", "westeurope", false);
    for i in 0..10_000u32 {
        let a = Ipv4Addr::from(0x0b00_0000 + (i << 8));
        f.set_instance_route(
            "IN_0",
            Prefix::V4(fabric::Ipv4Prefix::new(a, 24).unwrap()),
            &[ip("10.1.0.100")],
        );
        f.set_instance_route(
            "IN_1",
            Prefix::V4(fabric::Ipv4Prefix::new(a, 24).unwrap()),
            &[ip("10.1.0.100")],
        );
    }
    assert_eq!(f.bgp_len(), 10_000);
    assert_eq!(
        f.class_count(),
        1,
        "one class: both instances, one next hop"
    );
    f.set_instance_route("IN_1", p("11.0.0.0/24"), &[]);
    assert_eq!(f.class_count(), 2);
    f.set_instance_route("IN_0", p("11.0.0.0/24"), &[]);
    assert_eq!(f.class_count(), 1, "a class no prefix uses is freed");
    let t = f.nic_table("vm1-nic").unwrap();
    assert_eq!(
        t.lookup(ip("11.0.1.7")).unwrap().load_balancer.as_deref(),
        Some("nva-ilb")
    );
}

// ---------------------------------------------------------------------------------------------
// Dual stack (issue #16): IPv6 address spaces, IPv6 BGP routes, an IPv6 LB frontend
// ---------------------------------------------------------------------------------------------

/// hub (10.1.0.0/16 + fd00:1::/48) peered with spoke (10.2.0.0/16 + fd00:2::/48); the LB has
/// the IPv6 frontend fd00:1::100 in the hub.
fn dual_stack() -> Fabric {
    let vnets = vec![
        VnetInfo {
            name: "hub".into(),
            region: "westeurope".into(),
            address_space: vec![p("10.1.0.0/16"), p("fd00:1::/48")],
            peerings: vec!["spoke".into()],
        },
        VnetInfo {
            name: "spoke".into(),
            region: "westeurope".into(),
            address_space: vec![p("10.2.0.0/16"), p("fd00:2::/48")],
            peerings: vec![],
        },
    ];
    let nics = vec![NicInfo {
        name: "vm1-nic".into(),
        vnet: "hub".into(),
        address: ip4("10.1.3.10"),
        address6: None,
    }];
    let lbs = vec![LbInfo {
        name: "nva-ilb6".into(),
        frontend: ip("fd00:1::100"),
        region: Some("westeurope".into()),
    }];
    Fabric::new(Topology::new(vnets, nics, lbs, Some("hub".into())), true)
}

#[test]
fn ipv6_system_routes_and_a_bgp_route_through_an_ipv6_frontend() {
    let mut f = dual_stack();
    let v0 = f.nic_table("vm1-nic").unwrap().version();
    f.set_instance_route("IN_0", p("fd00:10::/48"), &[ip("fd00:1::100")]);
    f.set_instance_route("IN_1", p("fd00:10::/48"), &[ip("fd00:1::100")]);
    f.set_instance_route("IN_0", p("192.168.10.0/24"), &[ip("10.1.0.100")]);
    let t = f.nic_table("vm1-nic").unwrap();
    assert!(t.version() > v0);
    let sys: Vec<_> = t
        .routes()
        .into_iter()
        .filter(|r| r.source == RouteSource::Default)
        .map(|r| (r.prefix.to_string(), r.next_hop_type))
        .collect();
    assert_eq!(
        sys,
        vec![
            ("0.0.0.0/0".into(), NextHopType::Internet),
            ("10.1.0.0/16".into(), NextHopType::VnetLocal),
            ("10.2.0.0/16".into(), NextHopType::VNetPeering),
            ("::/0".into(), NextHopType::Internet),
            ("fd00:1::/48".into(), NextHopType::VnetLocal),
            ("fd00:2::/48".into(), NextHopType::VNetPeering),
        ]
    );
    // The IPv6 branch: one route, through the LB, found by an IPv6 lookup.
    let r = t.lookup(ip("fd00:10::7")).unwrap();
    assert_eq!(r.prefix, p("fd00:10::/48"));
    assert_eq!(
        (r.source, r.state, r.next_hop_type),
        (
            RouteSource::VirtualNetworkGateway,
            RouteState::Active,
            NextHopType::VirtualNetworkGateway
        )
    );
    assert_eq!(r.next_hop_ips, vec![ip("fd00:1::100")]);
    assert_eq!(r.load_balancer.as_deref(), Some("nva-ilb6"));
    // Longest match per family; an IPv6 address never matches an IPv4 route.
    assert_eq!(t.lookup(ip("fd00:1::5")).unwrap().prefix, p("fd00:1::/48"));
    assert_eq!(t.lookup(ip("2001:db8::1")).unwrap().prefix, p("::/0"));
    assert_eq!(
        t.lookup(ip("192.168.10.1")).unwrap().prefix,
        p("192.168.10.0/24")
    );
    assert_eq!(t.lookup(ip("8.8.8.8")).unwrap().prefix, p("0.0.0.0/0"));
    assert_eq!(f.bgp_len(), 2);
    // The peered spoke gets the IPv6 route too.
    let spoke = f.vnet_table("spoke").unwrap();
    assert_eq!(
        spoke
            .lookup(ip("fd00:10::7"))
            .unwrap()
            .load_balancer
            .as_deref(),
        Some("nva-ilb6")
    );
    // Next hop tracking: the IPv6 LB with no healthy backend makes the route Inactive.
    f.set_lb_healthy("nva-ilb6", false);
    let t = f.nic_table("vm1-nic").unwrap();
    assert_eq!(t.get(&p("fd00:10::/48"))[0].state, RouteState::Inactive);
    assert_eq!(t.lookup(ip("fd00:10::7")).unwrap().prefix, p("::/0"));
}

#[test]
fn ipv6_next_hops_outside_the_connected_space_are_invalid_and_prefixes_inside_are_not_injected() {
    let mut f = dual_stack();
    f.set_bgp_route(p("fd00:20::/48"), Some(vec![ip("fd00:99::1")]));
    // A more specific of the hub's own IPv6 space is not injected (SPEC §3).
    f.set_bgp_route(p("fd00:1:0:5::/64"), Some(vec![ip("fd00:1::100")]));
    let t = f.nic_table("vm1-nic").unwrap();
    let r = &t.get(&p("fd00:20::/48"))[0];
    assert_eq!(r.state, RouteState::Invalid);
    assert!(
        r.reason
            .as_deref()
            .is_some_and(|w| w.contains("fd00:99::1") && w.contains("no network connected")),
        "{r:?}"
    );
    assert!(t.get(&p("fd00:1:0:5::/64")).is_empty());
    // Withdrawn: gone, and the change is logged under its prefix.
    let v = t.version();
    f.set_bgp_route(p("fd00:20::/48"), None);
    let t = f.nic_table("vm1-nic").unwrap();
    assert!(t.get(&p("fd00:20::/48")).is_empty());
    assert_eq!(t.changes_since(v), Some(vec![p("fd00:20::/48")]));
}
