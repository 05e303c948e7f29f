//! The launchers against each other for real: FRR ↔ BIRD on a LAN and on the host loopback,
//! GoBGP ↔ FRR on a LAN, two gobgpd in one namespace. Each reaches Established and sees the
//! other's routes with the expected next hop and AS path.

use std::time::Duration;

use labtest::{Bird, BirdPeer, Frr, FrrNeighbor, GoBgp, GoBgpNeighbor, Lan, Route};

const UP: Duration = Duration::from_secs(60);

fn find<'a>(routes: &'a [Route], prefix: &str) -> Option<&'a Route> {
    routes.iter().find(|r| r.prefix == prefix && r.best)
}

/// The seed's topology: an FRR NVA advertising 192.168.10.0/24 with the LB frontend
/// 10.1.0.100 as next hop to a "route server" (BIRD, AS 65515) on the same /16.
#[test]
fn frr_and_bird_on_a_lan() {
    if !labtest::require_netns(&["bgpd", "vtysh", "bird", "birdc"]) {
        return;
    }
    let lan = Lan::new(&[("nva", &["10.1.2.10/16"]), ("rs", &["10.1.1.4/16"])]).unwrap();
    let frr = Frr::builder(65001, "10.1.2.10")
        .hostname("nva1")
        .neighbor(FrrNeighbor::new("10.1.1.4", 65515).next_hop_out("10.1.0.100"))
        .network("192.168.10.0/24")
        .start(Some(lan.ns("nva")))
        .unwrap();
    let bird = Bird::builder(65515, "10.1.1.4")
        .peer(BirdPeer::new("nva1", "10.1.2.10", 65001))
        .static_route("10.1.0.0/16")
        .start(Some(lan.ns("rs")))
        .unwrap();

    let established = labtest::wait_until(UP, || {
        frr.neighbor_state("10.1.1.4") == "Established"
            && bird.neighbor_state("10.1.2.10") == "Established"
    });
    assert!(
        established,
        "frr: {} / bird: {}\n{}\n{}",
        frr.neighbor_state("10.1.1.4"),
        bird.neighbor_state("10.1.2.10"),
        frr.log(),
        bird.log()
    );
    assert!(labtest::wait_until(UP, || bird
        .routes()
        .is_ok_and(|r| find(&r, "192.168.10.0/24").is_some())));
    let learned = bird.routes().unwrap();
    let r = find(&learned, "192.168.10.0/24").unwrap();
    assert_eq!(
        (r.next_hop.as_str(), r.as_path.as_str()),
        ("10.1.0.100", "65001"),
        "{learned:?}"
    );

    assert!(labtest::wait_until(UP, || frr
        .routes()
        .is_ok_and(|r| find(&r, "10.1.0.0/16").is_some())));
    let learned = frr.routes().unwrap();
    let r = find(&learned, "10.1.0.0/16").unwrap();
    assert_eq!(
        (r.next_hop.as_str(), r.as_path.as_str()),
        ("10.1.1.4", "65515"),
        "{learned:?}"
    );
}

/// The same pair on the host, on 127.0.0.x addresses and free ports: no namespace needed,
/// but both sides must rewrite the next hop (each rejects a 127/8 next hop) and BIRD needs
/// `multihop` (the builders handle the latter).
#[test]
fn frr_and_bird_on_host_loopback() {
    if !labtest::require(&["bgpd", "vtysh", "bird", "birdc"]) {
        return;
    }
    let (frr_port, bird_port) = (labtest::free_port().unwrap(), labtest::free_port().unwrap());
    let (frr_addr, bird_addr) = ("127.0.0.21", "127.0.0.22");
    let frr = Frr::builder(65001, "10.1.2.10")
        .listen(frr_addr)
        .port(frr_port)
        .neighbor(
            FrrNeighbor::new(bird_addr, 65002)
                .port(bird_port)
                .next_hop_out("10.1.0.100"),
        )
        .network("192.168.10.0/24")
        .start(None)
        .unwrap();
    let bird = Bird::builder(65002, "10.1.2.11")
        .peer(
            BirdPeer::new("frr", frr_addr, 65001)
                .port(frr_port)
                .local(bird_addr)
                .local_port(bird_port)
                .next_hop_address("10.1.0.101"),
        )
        .static_route("10.20.0.0/16")
        .start(None)
        .unwrap();
    let established = labtest::wait_until(UP, || {
        frr.neighbor_state(bird_addr) == "Established"
            && bird.neighbor_state(frr_addr) == "Established"
    });
    assert!(established, "frr: {}\nbird: {}", frr.log(), bird.log());
    assert!(labtest::wait_until(UP, || frr
        .routes()
        .is_ok_and(|r| find(&r, "10.20.0.0/16").is_some())));
    let r = frr.routes().unwrap();
    let r = find(&r, "10.20.0.0/16").unwrap();
    assert_eq!(
        (r.next_hop.as_str(), r.as_path.as_str()),
        ("10.1.0.101", "65002")
    );
    assert!(labtest::wait_until(UP, || bird
        .routes()
        .is_ok_and(|r| r.iter().any(|r| r.prefix == "192.168.10.0/24"))));
    let r = bird.routes().unwrap();
    let r = r.iter().find(|r| r.prefix == "192.168.10.0/24").unwrap();
    assert_eq!(
        (r.next_hop.as_str(), r.as_path.as_str()),
        ("10.1.0.100", "65001")
    );
}

#[test]
fn gobgp_and_frr_on_a_lan() {
    if !labtest::require_netns(&["bgpd", "vtysh", "gobgpd", "gobgp"]) {
        return;
    }
    let lan = Lan::new(&[("nva", &["10.1.2.12/16"]), ("rs", &["10.1.1.4/16"])]).unwrap();
    let gobgp = GoBgp::builder(65003, "10.1.2.12")
        .neighbor(GoBgpNeighbor::new("10.1.1.4", 65515))
        .start(Some(lan.ns("nva")))
        .unwrap();
    let frr = Frr::builder(65515, "10.1.1.4")
        .neighbor(FrrNeighbor::new("10.1.2.12", 65003))
        .network("10.1.0.0/16")
        .start(Some(lan.ns("rs")))
        .unwrap();
    gobgp
        .add_route(
            "192.168.30.0/24",
            "10.1.0.100",
            &[
                "community",
                "65003:1",
                "large-community",
                "65003:0:1",
                "med",
                "50",
            ],
        )
        .unwrap();
    let established = labtest::wait_until(UP, || {
        gobgp.neighbor_state("10.1.1.4") == "Established"
            && frr.neighbor_state("10.1.2.12") == "Established"
    });
    assert!(established, "gobgp: {}\nfrr: {}", gobgp.log(), frr.log());

    assert!(labtest::wait_until(UP, || frr
        .routes()
        .is_ok_and(|r| find(&r, "192.168.30.0/24").is_some())));
    let learned = frr.routes().unwrap();
    let r = find(&learned, "192.168.30.0/24").unwrap();
    assert_eq!(
        (r.next_hop.as_str(), r.as_path.as_str()),
        ("10.1.0.100", "65003"),
        "{learned:?}"
    );
    let detail = frr
        .vtysh_json("show bgp ipv4 unicast 192.168.30.0/24 json")
        .unwrap();
    let path = &detail["paths"][0];
    assert_eq!(
        path["origin"].as_str(),
        Some("IGP"),
        "origin igp must be sent: {detail:?}"
    );
    assert_eq!(path["metric"].as_u64(), Some(50), "{detail:?}");
    assert_eq!(path["community"]["string"].as_str(), Some("65003:1"));
    assert_eq!(path["largeCommunity"]["string"].as_str(), Some("65003:0:1"));

    assert!(labtest::wait_until(UP, || gobgp
        .routes()
        .is_ok_and(|r| find(&r, "10.1.0.0/16").is_some())));
    let learned = gobgp.routes().unwrap();
    let r = find(&learned, "10.1.0.0/16").unwrap();
    assert_eq!(
        (r.next_hop.as_str(), r.as_path.as_str()),
        ("10.1.1.4", "65515"),
        "{learned:?}"
    );
}

/// Two gobgpd in one namespace (SPEC §7: needs --pprof-disable), on the host loopback with
/// distinct API ports chosen by the builder.
#[test]
fn two_gobgpd_on_host_loopback() {
    if !labtest::require(&["gobgpd", "gobgp"]) {
        return;
    }
    let (pa, pb) = (labtest::free_port().unwrap(), labtest::free_port().unwrap());
    let a = GoBgp::builder(65101, "10.0.0.1")
        .listen("127.0.0.31")
        .port(pa.into())
        .neighbor(GoBgpNeighbor::new("127.0.0.32", 65102).port(pb))
        .start(None)
        .unwrap();
    let b = GoBgp::builder(65102, "10.0.0.2")
        .listen("127.0.0.32")
        .port(pb.into())
        .neighbor(GoBgpNeighbor::new("127.0.0.31", 65101).port(pa))
        .start(None)
        .unwrap();
    assert_ne!(a.api().1, b.api().1);
    a.add_route("10.50.0.0/16", "10.1.0.100", &[]).unwrap();
    assert!(
        labtest::wait_until(UP, || a.neighbor_state("127.0.0.32") == "Established"),
        "{}",
        a.log()
    );
    assert!(labtest::wait_until(UP, || b.routes().is_ok_and(|r| find(
        &r,
        "10.50.0.0/16"
    )
    .is_some())));
    let r = b.routes().unwrap();
    let r = find(&r, "10.50.0.0/16").unwrap();
    assert_eq!(
        (r.next_hop.as_str(), r.as_path.as_str()),
        ("10.1.0.100", "65101")
    );
}

#[test]
fn frr_rejects_a_bad_config_line() {
    if !labtest::require_netns(&["bgpd", "vtysh"]) {
        return;
    }
    let ns = labtest::Netns::new("frr-bad").unwrap();
    let err = Frr::builder(65001, "10.0.0.1")
        .neighbor(FrrNeighbor::new("10.0.0.2", 65002).line("timerz connect 5"))
        .start(Some(&ns))
        .unwrap_err();
    assert!(err.to_string().contains("timerz"), "{err}");
}
