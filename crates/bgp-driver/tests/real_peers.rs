//! Our speaker against real FRR bgpd, BIRD 2 and GoBGP over TCP on 127.0.0.0/8: the session
//! reaches Established, their UPDATEs decode to what they were told to send, and the UPDATE we
//! send is accepted (checked with vtysh / birdc / gobgp). Skipped, saying so, without root or
//! without the daemons (CI installs them).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp::fsm::{Negotiated, SessionConfig};
use bgp::wire::attrs::LargeCommunity;
use bgp::wire::{AsPath, Ipv4Prefix, Origin, PathAttributes, UpdateMessage};
use bgp_driver::{spawn_peer, Listener, PeerCommand, PeerConfig, PeerEvent, PeerHandle};
use labtest::{Bird, BirdPeer, Frr, FrrNeighbor, GoBgp, GoBgpNeighbor, Route};
use tokio::sync::mpsc;

const UP: Duration = Duration::from_secs(60);
const RS_AS: u32 = 65515;

struct Ours {
    handle: PeerHandle,
    events: mpsc::Receiver<((), PeerEvent)>,
}

/// Our speaker on `local`:`port`, peering with `peer`:`peer_port`.
fn ours(local: &str, port: u16, peer: &str, peer_port: u16, peer_as: u32) -> Ours {
    let mut s = SessionConfig::new(RS_AS, Ipv4Addr::new(10, 1, 1, 4), peer_as);
    s.connect_retry = Duration::from_secs(1);
    s.hold_time = 30;
    let local: IpAddr = local.parse().unwrap();
    let peer: IpAddr = peer.parse().unwrap();
    let mut cfg = PeerConfig::new("peer", s, local, peer);
    cfg.remote_port = peer_port;
    cfg.restart_delay = Duration::from_millis(200);
    let (tx, events) = mpsc::channel(1024);
    let handle = spawn_peer(cfg, tx, ());
    let l = Listener::new();
    l.register(peer, handle.inbound());
    tokio::spawn(l.run(Listener::bind(SocketAddr::new(local, port)).unwrap()));
    Ours { handle, events }
}

impl Ours {
    async fn established(&mut self) -> Negotiated {
        let until = tokio::time::Instant::now() + UP;
        loop {
            match tokio::time::timeout_at(until, self.events.recv()).await {
                Ok(Some((_, PeerEvent::Established { negotiated }))) => return negotiated,
                Ok(Some(_)) => {}
                other => panic!("no session: {other:?}"),
            }
        }
    }
    /// Collects UPDATEs until one announces `prefix`; returns that UPDATE.
    async fn update_for(&mut self, prefix: &str) -> UpdateMessage {
        let want: Ipv4Prefix = prefix.parse().unwrap();
        let until = tokio::time::Instant::now() + UP;
        loop {
            match tokio::time::timeout_at(until, self.events.recv()).await {
                Ok(Some((
                    _,
                    PeerEvent::Update {
                        update,
                        treat_as_withdraw,
                        discarded,
                    },
                ))) => {
                    assert!(treat_as_withdraw.is_none(), "{treat_as_withdraw:?}");
                    assert!(discarded.is_empty(), "{discarded:?}");
                    if update.nlri.contains(&want) {
                        return update;
                    }
                }
                Ok(Some((_, PeerEvent::Down { reason }))) => panic!("session down: {reason}"),
                Ok(Some(_)) => {}
                other => panic!("no UPDATE for {prefix}: {other:?}"),
            }
        }
    }
    /// Advertises the virtual network's address space as a route server instance does.
    async fn advertise_vnet(&self) {
        let u = UpdateMessage {
            withdrawn: vec![],
            attrs: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::from_sequence(vec![RS_AS])),
                // Not our 127/8 address: FRR and BIRD refuse loopback next hops.
                next_hop: Some(Ipv4Addr::new(10, 1, 1, 4)),
                communities: vec![(RS_AS << 16) | 100],
                large_communities: vec![LargeCommunity {
                    global_admin: RS_AS,
                    local_data1: 1,
                    local_data2: 2,
                }],
                ..Default::default()
            },
            nlri: vec!["10.1.0.0/16".parse().unwrap()],
        };
        assert!(self.handle.send(PeerCommand::SendUpdate(u)));
    }
}

fn accepted(routes: std::io::Result<Vec<Route>>) -> Option<Route> {
    routes.ok()?.into_iter().find(|r| r.prefix == "10.1.0.0/16")
}

fn can_run(bins: &[&str]) -> bool {
    if !labtest::have_root() {
        labtest::skip("needs root to run the daemons");
        return false;
    }
    labtest::require(bins)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_session_and_routes() {
    if !can_run(&["bgpd", "vtysh"]) {
        return;
    }
    let (frr_addr, our_addr) = ("127.0.5.10", "127.0.5.1");
    let (frr_port, our_port) = (labtest::free_port().unwrap(), labtest::free_port().unwrap());
    let mut me = ours(our_addr, our_port, frr_addr, frr_port, 65001);
    // The seed's NVA: route-map SET-NEXTHOP sets 10.1.0.100 towards the route server.
    let frr = Frr::builder(65001, "10.1.2.10")
        .listen(frr_addr)
        .port(frr_port)
        .neighbor(
            FrrNeighbor::new(our_addr, RS_AS)
                .port(our_port)
                .next_hop_out("10.1.0.100")
                .update_source(frr_addr),
        )
        .network("192.168.10.0/24")
        .start(None)
        .unwrap();
    let n = me.established().await;
    assert_eq!((n.peer_as, n.peer_id), (65001, Ipv4Addr::new(10, 1, 2, 10)));
    assert!(n.four_octet_as && n.route_refresh, "{n:?}");
    let u = me.update_for("192.168.10.0/24").await;
    assert_eq!(u.attrs.next_hop, Some(Ipv4Addr::new(10, 1, 0, 100)));
    assert_eq!(
        u.attrs.as_path.as_ref().map(|p| p.to_string()).as_deref(),
        Some("65001")
    );
    assert_eq!(u.attrs.origin, Some(Origin::Igp));
    assert_eq!(u.attrs.med, Some(0), "FRR sends MED 0");

    me.advertise_vnet().await;
    let got = tokio::task::block_in_place(|| {
        labtest::wait_until(UP, || accepted(frr.routes()).is_some());
        accepted(frr.routes())
    });
    let r = got.unwrap_or_else(|| panic!("FRR did not accept our route:\n{}", frr.log()));
    assert_eq!(
        (r.next_hop.as_str(), r.as_path.as_str()),
        ("10.1.1.4", "65515")
    );
    let detail =
        tokio::task::block_in_place(|| frr.vtysh_json("show bgp ipv4 unicast 10.1.0.0/16 json"))
            .unwrap();
    assert_eq!(
        detail["paths"][0]["origin"].as_str(),
        Some("IGP"),
        "{detail:?}"
    );
    assert_eq!(
        detail["paths"][0]["community"]["string"].as_str(),
        Some("65515:100")
    );
    assert_eq!(
        detail["paths"][0]["largeCommunity"]["string"].as_str(),
        Some("65515:1:2")
    );
    me.handle.send(PeerCommand::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bird_session_and_routes() {
    if !can_run(&["bird", "birdc"]) {
        return;
    }
    let (bird_addr, our_addr) = ("127.0.5.20", "127.0.5.2");
    let (bird_port, our_port) = (labtest::free_port().unwrap(), labtest::free_port().unwrap());
    let mut me = ours(our_addr, our_port, bird_addr, bird_port, 65002);
    let bird = Bird::builder(65002, "10.1.2.11")
        .peer(
            BirdPeer::new("routeserver", our_addr, RS_AS)
                .port(our_port)
                .local(bird_addr)
                .local_port(bird_port)
                .next_hop_address("10.1.0.100"),
        )
        .static_route("192.168.10.0/24")
        .start(None)
        .unwrap();
    let n = me.established().await;
    assert_eq!((n.peer_as, n.peer_id), (65002, Ipv4Addr::new(10, 1, 2, 11)));
    assert!(
        n.four_octet_as && n.route_refresh && n.enhanced_route_refresh,
        "{n:?}"
    );
    let u = me.update_for("192.168.10.0/24").await;
    assert_eq!(u.attrs.next_hop, Some(Ipv4Addr::new(10, 1, 0, 100)));
    assert_eq!(
        u.attrs.as_path.as_ref().map(|p| p.to_string()).as_deref(),
        Some("65002")
    );
    assert_eq!(u.attrs.med, None, "BIRD sends no MED");

    me.advertise_vnet().await;
    let got = tokio::task::block_in_place(|| {
        labtest::wait_until(UP, || accepted(bird.routes()).is_some());
        accepted(bird.routes())
    });
    let r = got.unwrap_or_else(|| panic!("BIRD did not accept our route:\n{}", bird.log()));
    assert_eq!(
        (r.next_hop.as_str(), r.as_path.as_str()),
        ("10.1.1.4", "65515")
    );
    let all = tokio::task::block_in_place(|| bird.birdc("show route 10.1.0.0/16 all")).unwrap();
    assert!(all.contains("(65515,100)"), "{all}");
    assert!(all.contains("(65515, 1, 2)"), "{all}");
    me.handle.send(PeerCommand::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gobgp_session_and_routes() {
    if !can_run(&["gobgpd", "gobgp"]) {
        return;
    }
    let (gobgp_addr, our_addr) = ("127.0.5.30", "127.0.5.3");
    let (gobgp_port, our_port) = (labtest::free_port().unwrap(), labtest::free_port().unwrap());
    let mut me = ours(our_addr, our_port, gobgp_addr, gobgp_port, 65003);
    let gobgp = GoBgp::builder(65003, "10.1.2.12")
        .listen(gobgp_addr)
        .port(gobgp_port.into())
        .neighbor(
            GoBgpNeighbor::new(our_addr, RS_AS)
                .port(our_port)
                .local_address(gobgp_addr),
        )
        .start(None)
        .unwrap();
    tokio::task::block_in_place(|| {
        gobgp.add_route(
            "192.168.10.0/24",
            "10.1.0.100",
            &[
                "community",
                "65003:7",
                "large-community",
                "65003:0:1",
                "med",
                "50",
            ],
        )
    })
    .unwrap();
    let n = me.established().await;
    assert_eq!((n.peer_as, n.peer_id), (65003, Ipv4Addr::new(10, 1, 2, 12)));
    let u = me.update_for("192.168.10.0/24").await;
    assert_eq!(u.attrs.next_hop, Some(Ipv4Addr::new(10, 1, 0, 100)));
    assert_eq!(
        u.attrs.as_path.as_ref().map(|p| p.to_string()).as_deref(),
        Some("65003")
    );
    assert_eq!(u.attrs.med, Some(50));
    assert_eq!(u.attrs.communities, vec![(65003 << 16) | 7]);
    assert_eq!(
        u.attrs.large_communities,
        vec![LargeCommunity {
            global_admin: 65003,
            local_data1: 0,
            local_data2: 1
        }]
    );

    me.advertise_vnet().await;
    let got = tokio::task::block_in_place(|| {
        labtest::wait_until(UP, || accepted(gobgp.routes()).is_some());
        accepted(gobgp.routes())
    });
    let r = got.unwrap_or_else(|| panic!("GoBGP did not accept our route:\n{}", gobgp.log()));
    assert_eq!(
        (r.next_hop.as_str(), r.as_path.as_str()),
        ("10.1.1.4", "65515")
    );
    me.handle.send(PeerCommand::Shutdown);
}

/// TCP-MD5 (RFC 2385) with FRR: the wrong key never gets a session, the right one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_tcp_md5() {
    if !can_run(&["bgpd", "vtysh"]) {
        return;
    }
    let (frr_addr, our_addr) = ("127.0.5.40", "127.0.5.4");
    let (frr_port, our_port) = (labtest::free_port().unwrap(), labtest::free_port().unwrap());
    let frr = Frr::builder(65001, "10.1.2.10")
        .listen(frr_addr)
        .port(frr_port)
        .neighbor(
            FrrNeighbor::new(our_addr, RS_AS)
                .port(our_port)
                .update_source(frr_addr)
                .line("password s3cret"),
        )
        .network("192.168.10.0/24")
        .start(None)
        .unwrap();
    let with_key = |key: &str| {
        let mut s = SessionConfig::new(RS_AS, Ipv4Addr::new(10, 1, 1, 4), 65001);
        s.connect_retry = Duration::from_secs(1);
        let mut cfg = PeerConfig::new(
            "md5",
            s,
            our_addr.parse().unwrap(),
            frr_addr.parse().unwrap(),
        );
        cfg.remote_port = frr_port;
        cfg.restart_delay = Duration::from_millis(200);
        cfg.password = Some(key.as_bytes().to_vec());
        cfg
    };
    // Wrong key: the kernel drops the SYNs unsigned by the right key; no session.
    let (tx, mut rx) = mpsc::channel(64);
    let h = spawn_peer(with_key("wrong"), tx, ());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while let Ok(Some((_, ev))) = tokio::time::timeout_at(deadline, rx.recv()).await {
        assert!(
            !matches!(ev, PeerEvent::Established { .. }),
            "session with a wrong TCP-MD5 key"
        );
    }
    h.send(PeerCommand::Shutdown);
    // Right key, both directions: our connection is signed and our listener requires it.
    let mut me = Ours::from_handle(with_key("s3cret"), our_addr, our_port, Some("s3cret"));
    let n = me.established().await;
    assert_eq!(n.peer_as, 65001);
    me.update_for("192.168.10.0/24").await;
    let state = tokio::task::block_in_place(|| frr.neighbor_state(our_addr));
    assert_eq!(state, "Established");
    me.handle.send(PeerCommand::Shutdown);
}

impl Ours {
    fn from_handle(cfg: PeerConfig, local: &str, port: u16, key: Option<&str>) -> Ours {
        let peer = cfg.remote_addr;
        let (tx, events) = mpsc::channel(1024);
        let handle = spawn_peer(cfg, tx, ());
        let l = Listener::new();
        let sock = Listener::bind(SocketAddr::new(local.parse().unwrap(), port)).unwrap();
        l.attach(&sock);
        if let Some(k) = key {
            l.set_md5(peer, k.as_bytes()).unwrap();
        }
        l.register(peer, handle.inbound());
        tokio::spawn(l.run(sock));
        Ours { handle, events }
    }
}
