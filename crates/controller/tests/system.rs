//! The system harness: route server instances driven on a simulated clock with no sockets, fed
//! UPDATE bytes as a peer task would decode them, with every effect carried out on a model of
//! the driver (running peer tasks, the listener's keys, what each peer was sent, what the fabric
//! holds). Tests assert the outcome on that model, so they hold whatever order the owner picks
//! for its effects.
//!
//! The same owners run in `nexthop run`; the end-to-end tests with real FRR, BIRD and GoBGP
//! peers stay in crates/nexthop/tests.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bgp::fsm::{DownReason, Negotiated, State};
use bgp::peer::{PeerCommand, PeerConfig, PeerEvent};
use bgp::wire::open::{Capability, GracefulRestartFamily, Open};
use bgp::wire::{
    Afi, AsPath, Ipv4Prefix, Message, Origin, PathAttributes, Safi, SessionContext, UpdateMessage,
};
use controller::instance::{
    diff, Effect, Input, Instance, InstanceSpec, PeerSpec, LIMIT_HOLD_DOWN,
};
use routeserver::PeerId;

fn pfx(s: &str) -> Ipv4Prefix {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn peer(name: &str, address: &str, asn: u32) -> PeerSpec {
    PeerSpec {
        name: name.into(),
        address: ip(address).into(),
        asn,
        max_routes: 1000,
        hold_time: 180,
        port: 179,
        password: None,
        ttl_security: false,
        limits: Default::default(),
        bfd: None,
    }
}

/// The seed's instance: AS 65515, the hub's address space, nva1 and nva2 in AS 65001.
fn spec(name: &str, address: &str) -> InstanceSpec {
    InstanceSpec {
        name: name.into(),
        address: ip(address),
        address6: None,
        port: 179,
        asn: 65515,
        branch_to_branch: false,
        originated: vec![pfx("10.1.0.0/16")],
        originated6: Vec::new(),
        peers: vec![
            peer("nva1", "10.1.2.10", 65001),
            peer("nva2", "10.1.2.11", 65001),
        ],
        feed_fabric: true,
        graceful_restart: None,
    }
}

/// A peer task as the driver runs it: its config and what it was told.
#[derive(Debug)]
struct PeerTask {
    config: PeerConfig,
    /// Decoded UPDATEs it was asked to send, in order.
    sent: Vec<UpdateMessage>,
    /// Every other command (Reset, route refresh, the last Deconfigure or Shutdown).
    commands: Vec<String>,
    ended: bool,
}

/// One instance, its driver's state, and what the fabric holds from it.
struct Sim {
    now: Instant,
    owner: Instance,
    tasks: BTreeMap<PeerId, PeerTask>,
    /// The listener: remote address -> (peer id, TCP-MD5 key).
    listener: HashMap<IpAddr, (PeerId, Option<Vec<u8>>)>,
    /// The Loc-RIB as the fabric was told it: prefix -> forwarding next hops.
    fabric: BTreeMap<fabric::Prefix, Vec<IpAddr>>,
    /// Effects of the last step.
    last: Vec<String>,
    /// Fabric batches not yet taken by a [`World`]'s fabric.
    batches: Vec<(bool, Vec<(fabric::Prefix, Vec<IpAddr>)>)>,
    /// GTSM on the listening socket.
    listener_gtsm: bool,
}

const CTX: SessionContext = SessionContext {
    four_octet_as: true,
    extended_message: false,
    ebgp: true,
};

impl Sim {
    fn new(spec: InstanceSpec) -> Self {
        let (owner, fx) = Instance::new(spec);
        let mut sim = Self {
            now: Instant::now(),
            owner,
            tasks: BTreeMap::new(),
            listener: HashMap::new(),
            fabric: BTreeMap::new(),
            last: Vec::new(),
            batches: Vec::new(),
            listener_gtsm: false,
        };
        sim.carry_out(fx);
        sim
    }

    fn step(&mut self, input: Input) {
        let fx = self.owner.handle(self.now, input);
        self.carry_out(fx);
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn carry_out(&mut self, fx: Vec<Effect>) {
        self.last = fx.iter().map(|e| format!("{e:?}")).collect();
        for e in fx {
            match e {
                Effect::StartPeer { id, config } => {
                    let old = self.tasks.insert(
                        id,
                        PeerTask {
                            config,
                            sent: Vec::new(),
                            commands: Vec::new(),
                            ended: false,
                        },
                    );
                    assert!(old.is_none(), "peer id {id} reused");
                }
                Effect::Accept { id, remote, md5 } => {
                    assert!(
                        self.tasks.contains_key(&id),
                        "accept for a peer never started"
                    );
                    self.listener.insert(remote, (id, md5.map(|k| k.0)));
                }
                Effect::StopAccepting { remote } => {
                    self.listener.remove(&remote);
                }
                Effect::ListenerTtlSecurity(on) => self.listener_gtsm = on,
                Effect::Peer { id, command } => {
                    let t = self
                        .tasks
                        .get_mut(&id)
                        .expect("command for an unknown peer");
                    assert!(!t.ended, "command for an ended peer task: {command:?}");
                    match command {
                        PeerCommand::Send(bytes) => {
                            let mut buf = &bytes[..];
                            while !buf.is_empty() {
                                let (m, n) =
                                    Message::decode(buf, &CTX).expect("owner sent bad bytes");
                                match m {
                                    Message::Update(u) => t.sent.push(u),
                                    other => panic!("Send carried a {:?}", other.kind()),
                                }
                                buf = &buf[n..];
                            }
                        }
                        PeerCommand::Deconfigure | PeerCommand::Shutdown | PeerCommand::Abandon => {
                            t.ended = true;
                            t.commands.push(format!("{command:?}"));
                        }
                        other => t.commands.push(format!("{other:?}")),
                    }
                }
                Effect::Fabric { reset, routes } => {
                    self.batches.push((reset, routes.clone()));
                    if reset {
                        self.fabric.clear();
                    }
                    for (p, nhs) in routes {
                        if nhs.is_empty() {
                            self.fabric.remove(&p);
                        } else {
                            self.fabric.insert(p, nhs);
                        }
                    }
                }
            }
        }
    }

    fn id(&self, name: &str) -> PeerId {
        self.owner
            .find(name)
            .unwrap_or_else(|| panic!("no peer {name}"))
    }

    fn task(&self, name: &str) -> &PeerTask {
        &self.tasks[&self.id(name)]
    }

    /// The running (not ended) task of `name`.
    fn running(&self, name: &str) -> &PeerTask {
        let t = self.task(name);
        assert!(!t.ended, "{name}'s task has ended");
        t
    }

    fn establish(&mut self, name: &str) {
        self.establish_with(name, Vec::new());
    }

    /// `name` comes up offering `capabilities` in its OPEN (both families negotiated).
    fn establish_with(&mut self, name: &str, capabilities: Vec<Capability>) {
        let both = vec![(Afi::IPV4, Safi::UNICAST), (Afi::IPV6, Safi::UNICAST)];
        self.establish_families(name, capabilities, both);
    }

    /// `name` comes up with only `families` in common.
    fn establish_families(
        &mut self,
        name: &str,
        capabilities: Vec<Capability>,
        families: Vec<(Afi, Safi)>,
    ) {
        let id = self.id(name);
        let spec = self.owner.peer(id).unwrap().spec.clone();
        let IpAddr::V4(bgp_id) = spec.address else {
            panic!("the harness peers have IPv4 addresses");
        };
        let negotiated = Negotiated {
            hold_time: spec.hold_time,
            keepalive: spec.hold_time / 3,
            peer_as: spec.asn,
            peer_id: bgp_id,
            four_octet_as: true,
            route_refresh: true,
            enhanced_route_refresh: false,
            extended_message: false,
            families,
            ebgp: true,
            peer_open: Open {
                version: 4,
                my_as: spec.asn as u16,
                hold_time: spec.hold_time,
                bgp_id,
                capabilities,
            },
        };
        self.step(Input::Peer(id, PeerEvent::Established { negotiated }));
    }

    fn down(&mut self, name: &str) {
        let id = self.id(name);
        self.step(Input::Peer(
            id,
            PeerEvent::Down {
                reason: DownReason::ConnectionFailed,
            },
        ));
    }

    /// `name` announces `prefixes` via `next_hop`: the UPDATE goes through its wire encoding
    /// and is decoded as the peer's task would.
    fn announce(&mut self, name: &str, prefixes: &[&str], next_hop: &str) {
        let asn = self.owner.peer(self.id(name)).unwrap().spec.asn;
        self.update(
            name,
            UpdateMessage {
                withdrawn: Vec::new(),
                attrs: PathAttributes {
                    origin: Some(Origin::Igp),
                    as_path: Some(AsPath::from_sequence(vec![asn])),
                    next_hop: Some(ip(next_hop)),
                    ..Default::default()
                },
                nlri: prefixes.iter().map(|p| pfx(p)).collect(),
            },
        );
    }

    /// `name` withdraws `prefixes`.
    fn withdraw(&mut self, name: &str, prefixes: &[&str]) {
        self.update(
            name,
            UpdateMessage {
                withdrawn: prefixes.iter().map(|p| pfx(p)).collect(),
                attrs: PathAttributes::default(),
                nlri: Vec::new(),
            },
        );
    }

    /// `u` from `name`, through its wire encoding and the decoder, as the driver hands it
    /// over (with what RFC 7606 made of it).
    fn update(&mut self, name: &str, u: UpdateMessage) {
        let id = self.id(name);
        let mut bytes = Vec::new();
        u.emit(&CTX, &mut bytes);
        let f = bgp::wire::frame(&bytes, &CTX).unwrap().unwrap();
        let parsed = bgp::wire::Update::parse(f.body, &CTX).unwrap();
        self.step(Input::Peer(
            id,
            PeerEvent::Update {
                update: parsed.to_message(),
                treat_as_withdraw: parsed.treat_as_withdraw.clone(),
                discarded: parsed.discarded.clone(),
            },
        ));
    }

    fn reconfigure(&mut self, spec: InstanceSpec) {
        self.step(Input::Reconfigure(Box::new(spec)));
    }

    /// What `name`'s current session holds from us: prefix -> AS path, from every UPDATE sent.
    fn received(&self, name: &str) -> BTreeMap<Ipv4Prefix, String> {
        let mut m = BTreeMap::new();
        for u in &self.running(name).sent {
            for p in &u.withdrawn {
                m.remove(p);
            }
            for p in &u.nlri {
                let path = u
                    .attrs
                    .as_path
                    .as_ref()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                m.insert(*p, path);
            }
        }
        m
    }
}

#[test]
fn the_md5_key_reaches_the_session_and_the_listener() {
    let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
    s.peers[0].password = Some(b"s3cret".to_vec());
    let sim = Sim::new(s);
    let nva1 = sim.running("nva1");
    assert_eq!(nva1.config.password.as_deref(), Some(&b"s3cret"[..]));
    assert_eq!(
        sim.listener[&IpAddr::V4(ip("10.1.2.10"))],
        (sim.id("nva1"), Some(b"s3cret".to_vec()))
    );
    // The other peer has no key anywhere.
    assert_eq!(sim.running("nva2").config.password, None);
    assert_eq!(sim.listener[&IpAddr::V4(ip("10.1.2.11"))].1, None);
}

#[test]
fn a_new_password_restarts_only_that_peer_with_the_new_key() {
    let mut sim = Sim::new(spec("RouteServiceRole_IN_0", "10.1.1.4"));
    sim.establish("nva1");
    sim.establish("nva2");
    sim.announce("nva2", &["192.168.10.0/24"], "10.1.0.100");
    let nva2_before = sim.id("nva2");
    let old_nva1 = sim.id("nva1");

    let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
    s.peers[0].password = Some(b"new-key".to_vec());
    sim.reconfigure(s);

    assert!(sim.tasks[&old_nva1].ended, "the old session must end");
    assert_eq!(sim.tasks[&old_nva1].commands, ["Deconfigure"]);
    let nva1 = sim.running("nva1");
    assert_eq!(nva1.config.password.as_deref(), Some(&b"new-key"[..]));
    assert_eq!(
        sim.listener[&IpAddr::V4(ip("10.1.2.10"))],
        (sim.id("nva1"), Some(b"new-key".to_vec()))
    );
    // nva2 kept its session and its routes.
    assert_eq!(sim.id("nva2"), nva2_before);
    assert!(sim.running("nva2").commands.is_empty());
    assert_eq!(
        sim.fabric[&pfx("192.168.10.0/24").into()],
        [IpAddr::from(ip("10.1.0.100"))]
    );

    // Removing the key takes it off the listener too.
    sim.reconfigure(spec("RouteServiceRole_IN_0", "10.1.1.4"));
    assert_eq!(sim.running("nva1").config.password, None);
    assert_eq!(sim.listener[&IpAddr::V4(ip("10.1.2.10"))].1, None);
}

#[test]
fn ttl_security_reaches_the_session_and_a_change_restarts_only_that_peer() {
    let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
    s.peers[0].ttl_security = true;
    let mut sim = Sim::new(s.clone());
    assert!(sim.running("nva1").config.ttl_security);
    assert!(!sim.running("nva2").config.ttl_security);
    sim.establish("nva2");
    let nva2 = sim.id("nva2");
    // Not every peer uses it: the listener does not (a SYN cannot tell which peer it is for).
    assert!(!sim.listener_gtsm);
    s.peers[0].ttl_security = false;
    assert_eq!(
        diff(sim.owner.spec(), &s).changed,
        [("nva1".to_string(), vec!["ttl_security"])]
    );
    sim.reconfigure(s.clone());
    assert!(!sim.running("nva1").config.ttl_security);
    assert_eq!(sim.id("nva2"), nva2);
    // Every peer uses it: so does the listener, and a new port's socket gets it again.
    for p in s.peers.iter_mut() {
        p.ttl_security = true;
    }
    sim.reconfigure(s.clone());
    assert!(sim.listener_gtsm);
    s.port = 1179;
    sim.reconfigure(s.clone());
    assert!(
        sim.last.iter().any(|e| e == "ListenerTtlSecurity(true)"),
        "{:?}",
        sim.last
    );
    s.peers[1].ttl_security = false;
    sim.reconfigure(s);
    assert!(!sim.listener_gtsm);
}

#[test]
fn a_new_asn_restarts_every_session_and_advertises_the_new_as() {
    let mut sim = Sim::new(spec("RouteServiceRole_IN_0", "10.1.1.4"));
    sim.establish("nva1");
    sim.establish("nva2");
    sim.announce("nva1", &["192.168.10.0/24"], "10.1.0.100");
    assert_eq!(sim.received("nva1")[&pfx("10.1.0.0/16")], "65515");
    let before = (sim.id("nva1"), sim.id("nva2"));

    let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
    s.asn = 65520;
    sim.reconfigure(s);

    assert!(sim.tasks[&before.0].ended && sim.tasks[&before.1].ended);
    for name in ["nva1", "nva2"] {
        let t = sim.running(name);
        assert_eq!(
            t.config.session.local_as, 65520,
            "{name}'s OPEN carries the new AS"
        );
    }
    // Nothing learned under the old AS survives.
    assert!(sim.fabric.is_empty());
    assert!(sim.owner.rib().prefixes().next().is_none());
    sim.establish("nva1");
    assert_eq!(sim.received("nva1")[&pfx("10.1.0.0/16")], "65520");
}

#[test]
fn a_new_port_restarts_every_session() {
    let mut sim = Sim::new(spec("RouteServiceRole_IN_0", "10.1.1.4"));
    sim.establish("nva1");
    let before = (sim.id("nva1"), sim.id("nva2"));
    let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
    s.port = 1179;
    let changes = diff(sim.owner.spec(), &s);
    assert!(changes
        .sessions_reset
        .as_deref()
        .unwrap()
        .contains("port 179 -> 1179"));
    sim.reconfigure(s);
    assert!(sim.tasks[&before.0].ended && sim.tasks[&before.1].ended);
    assert_ne!(sim.id("nva1"), before.0);
    assert_eq!(sim.owner.spec().port, 1179);
    // Both are accepted again (on the new listener the driver opened).
    assert_eq!(sim.listener.len(), 2);
}

#[test]
fn hold_time_and_limit_changes_restart_only_their_peer_with_the_new_values() {
    let mut sim = Sim::new(spec("RouteServiceRole_IN_0", "10.1.1.4"));
    sim.establish("nva1");
    sim.establish("nva2");
    let nva2 = sim.id("nva2");
    let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
    s.peers[0].hold_time = 9;
    s.peers[0].max_routes = 2;
    let changes = diff(sim.owner.spec(), &s);
    assert_eq!(
        changes.changed,
        [("nva1".to_string(), vec!["max_routes", "hold_time"])]
    );
    sim.reconfigure(s);
    assert_eq!(sim.running("nva1").config.session.hold_time, 9);
    assert_eq!(sim.id("nva2"), nva2);
    assert!(sim.running("nva2").commands.is_empty());
    // The new limit holds.
    sim.establish("nva1");
    sim.announce(
        "nva1",
        &["192.168.1.0/24", "192.168.2.0/24", "192.168.3.0/24"],
        "10.1.0.100",
    );
    assert!(sim.running("nva1").commands[0].contains("Reset"));
}

/// BFD (issue #15): a BFD Down takes an Established session down at once, Cease/BFD Down
/// (RFC 9384) and a restart, its routes withdrawn everywhere; a BFD Down for a session that is
/// not Established, or for an address that is no peer, changes nothing.
#[test]
fn a_bfd_down_closes_the_session_and_withdraws_its_routes() {
    let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
    s.branch_to_branch = true;
    s.peers[1].asn = 65002;
    let mut sim = Sim::new(s);
    sim.establish("nva1");
    sim.establish("nva2");
    sim.announce("nva1", &["192.168.10.0/24"], "10.1.0.100");
    assert!(sim.received("nva2").contains_key(&pfx("192.168.10.0/24")));
    assert_eq!(sim.fabric.len(), 1);

    sim.step(Input::BfdDown {
        address: ip("10.9.9.9").into(),
        why: "control detection time expired".into(),
    });
    assert!(sim.last.is_empty(), "{:?}", sim.last);

    sim.step(Input::BfdDown {
        address: ip("10.1.2.10").into(),
        why: "control detection time expired".into(),
    });
    let cmds = &sim.running("nva1").commands;
    assert!(
        cmds.iter()
            .any(|c| c.contains("Reset") && c.contains("code: 6, subcode: 10")),
        "{cmds:?}"
    );
    assert!(sim.fabric.is_empty(), "withdrawn from the fabric");
    assert!(!sim.received("nva2").contains_key(&pfx("192.168.10.0/24")));
    let nva1 = sim.owner.peers().find(|p| p.spec.name == "nva1").unwrap();
    assert!(
        nva1.last_error
            .as_deref()
            .is_some_and(|e| e.contains("BFD session down")),
        "{:?}",
        nva1.last_error
    );
    // Again while it is down: nothing more.
    sim.step(Input::BfdDown {
        address: ip("10.1.2.10").into(),
        why: "control detection time expired".into(),
    });
    assert!(sim.last.is_empty(), "{:?}", sim.last);
}

#[test]
fn an_unchanged_spec_does_nothing() {
    let mut sim = Sim::new(spec("RouteServiceRole_IN_0", "10.1.1.4"));
    sim.establish("nva1");
    sim.reconfigure(spec("RouteServiceRole_IN_0", "10.1.1.4"));
    assert!(sim.last.is_empty(), "{:?}", sim.last);
}

#[test]
fn the_route_limit_resets_with_cease_1_and_holds_the_peer_down() {
    let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
    s.branch_to_branch = true;
    s.peers[0].max_routes = 2;
    // Another AS, so branch-to-branch passes nva1's routes to it (no AS loop).
    s.peers[1].asn = 65002;
    let mut sim = Sim::new(s);
    sim.establish("nva1");
    sim.establish("nva2");
    sim.announce("nva1", &["192.168.1.0/24"], "10.1.2.10");
    assert!(sim.received("nva2").contains_key(&pfx("192.168.1.0/24")));
    assert_eq!(sim.fabric.len(), 1);

    sim.announce("nva1", &["192.168.2.0/24", "192.168.3.0/24"], "10.1.2.10");
    let cmds = &sim.running("nva1").commands;
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    // Cease (6) / Maximum Number of Prefixes Reached (1), data AFI 1, SAFI 1, limit 2 (RFC 4486).
    assert!(
        cmds[0].contains("code: 6, subcode: 1, data: [0, 1, 1, 0, 0, 0, 2]"),
        "{cmds:?}"
    );
    assert!(
        cmds[0].contains(&format!("restart_after: {LIMIT_HOLD_DOWN:?}")),
        "{cmds:?}"
    );
    // Everything nva1 sent is gone: from nva2 and from the fabric.
    assert!(!sim.received("nva2").contains_key(&pfx("192.168.1.0/24")));
    assert!(sim.fabric.is_empty());
    let slot = sim.owner.peer(sim.id("nva1")).unwrap();
    assert_eq!(slot.state, State::Idle);

    // The driver reports the closed session; the limit stays the reason shown.
    sim.down("nva1");
    let slot = sim.owner.peer(sim.id("nva1")).unwrap();
    assert!(slot
        .last_error
        .as_deref()
        .unwrap()
        .starts_with("maximum number of prefixes"));

    // After the hold-down the peer comes back and within its limit is served again.
    sim.advance(LIMIT_HOLD_DOWN);
    sim.establish("nva1");
    sim.announce("nva1", &["192.168.1.0/24"], "10.1.2.10");
    assert_eq!(sim.fabric.len(), 1);
    assert_eq!(sim.owner.peer(sim.id("nva1")).unwrap().last_error, None);
}

#[test]
fn events_of_a_removed_peer_are_dropped() {
    let mut sim = Sim::new(spec("RouteServiceRole_IN_0", "10.1.1.4"));
    sim.establish("nva1");
    let old = sim.id("nva1");
    let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
    s.peers.remove(0);
    sim.reconfigure(s.clone());
    assert!(sim.owner.find("nva1").is_none());
    assert!(!sim.listener.contains_key(&IpAddr::V4(ip("10.1.2.10"))));
    // Its task's last event arrives after the removal, and the peer is added back meanwhile:
    // the new peer has a new id, and the stale Down changes nothing.
    sim.reconfigure(spec("RouteServiceRole_IN_0", "10.1.1.4"));
    sim.establish("nva1");
    sim.step(Input::Peer(
        old,
        PeerEvent::Down {
            reason: DownReason::ConnectionFailed,
        },
    ));
    assert!(sim.last.is_empty());
    assert_eq!(
        sim.owner.peer(sim.id("nva1")).unwrap().state,
        State::Established
    );
}

#[test]
fn a_spec_never_prints_its_key() {
    let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
    s.peers[0].password = Some(b"s3cret".to_vec());
    let mut t = s.clone();
    t.peers[0].password = Some(b"other".to_vec());
    let (_, fx) = Instance::new(s.clone());
    let shown = format!("{s:?} {} {fx:?}", diff(&s, &t));
    assert!(
        !shown.contains("s3cret") && !shown.contains("other"),
        "{shown}"
    );
    assert!(shown.contains("password changed"), "{shown}");
}

#[test]
fn shutdown_ends_every_peer_with_administrative_shutdown() {
    let mut sim = Sim::new(spec("RouteServiceRole_IN_0", "10.1.1.4"));
    sim.establish("nva1");
    sim.step(Input::Shutdown);
    assert!(sim
        .tasks
        .values()
        .all(|t| t.ended && t.commands == ["Shutdown"]));
    assert!(sim.listener.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The whole controller: two instances, the fabric, and an agent that follows vm1-nic.
// ---------------------------------------------------------------------------------------------

use controller::follower::{self, Follower, KernelRoute};
use fabric::{Fabric, LbInfo, NicInfo, Topology, VnetInfo};

/// The seed's topology: hub 10.1.0.0/16 in westeurope, vm1-nic, the LB nva-ilb on 10.1.0.100 in
/// `lb_region`.
fn topology(lb_region: &str) -> Topology {
    Topology::new(
        vec![VnetInfo {
            name: "hub".into(),
            region: "westeurope".into(),
            address_space: vec!["10.1.0.0/16".parse().unwrap()],
            peerings: Vec::new(),
        }],
        vec![NicInfo {
            name: "vm1-nic".into(),
            vnet: "hub".into(),
            address: ip("10.1.3.10"),
            address6: None,
        }],
        vec![LbInfo {
            name: "nva-ilb".into(),
            frontend: ip("10.1.0.100").into(),
            region: Some(lb_region.into()),
        }],
        Some("hub".into()),
    )
}

/// One controller process: its route server instances and its fabric, as `nexthop run` wires
/// them.
struct Controller {
    instances: Vec<Sim>,
    fabric: Fabric,
    /// It answers (false: it is down).
    up: bool,
}

impl Controller {
    /// A controller running the instances at `addresses` (of the seed's two).
    fn new(lb_region: &str, tracking: bool, addresses: &[usize]) -> Self {
        Self {
            instances: Self::instances(addresses),
            fabric: Fabric::new(topology(lb_region), tracking),
            up: true,
        }
    }

    fn instances(addresses: &[usize]) -> Vec<Sim> {
        const ALL: [&str; 2] = ["10.1.1.4", "10.1.1.5"];
        addresses
            .iter()
            .map(|&i| Sim::new(spec(&format!("RouteServiceRole_IN_{i}"), ALL[i])))
            .collect()
    }

    /// Restarted: the same instances, new (no session, nothing learned), and a new fabric
    /// whose versions start again from 0.
    fn restart(&mut self) {
        let topo = self.fabric.topology().clone();
        let addresses: Vec<usize> = self
            .instances
            .iter()
            .map(|s| usize::from(s.owner.spec().address == ip("10.1.1.5")))
            .collect();
        self.instances = Self::instances(&addresses);
        self.fabric = Fabric::new(topo, false);
        self.up = true;
    }

    /// Both NVAs up on each instance, each announcing `prefix` via the LB frontend.
    fn nvas_announce(&mut self, prefix: &str) {
        for sim in &mut self.instances {
            for nva in ["nva1", "nva2"] {
                if sim.owner.peer(sim.id(nva)).unwrap().state != State::Established {
                    sim.establish(nva);
                }
                sim.announce(nva, &[prefix], "10.1.0.100");
            }
        }
    }

    /// The fabric takes the instances' batches.
    fn feed(&mut self) {
        for sim in &mut self.instances {
            let name = sim.owner.spec().name.clone();
            for (reset, routes) in sim.batches.drain(..) {
                let routes: Vec<(fabric::Prefix, Vec<IpAddr>)> = routes;
                if reset {
                    let kept = routes.iter().map(|(p, _)| *p).collect();
                    self.fabric.reset_instance(&name, &kept);
                }
                for (p, nh) in routes {
                    self.fabric.set_instance_route(&name, p, &nh);
                }
            }
        }
    }

    /// Its answer to an agent holding `version`, as the API writes it.
    fn answer(&self, version: Option<u64>) -> Option<String> {
        if !self.up {
            return None;
        }
        let t = self.fabric.nic_table("vm1-nic").unwrap();
        let a = controller::views::effective_routes(&t, version);
        Some(serde_json::to_string(&a).unwrap())
    }
}

/// Controllers and one agent that follows vm1-nic on all of them.
struct World {
    ctls: Vec<Controller>,
    agent: Follower,
    /// What the agent's kernel holds (proto 200).
    kernel: Vec<KernelRoute>,
    now: Instant,
}

const GRACE: Duration = Duration::from_secs(30);
const STALE_AFTER: Duration = Duration::from_secs(300);

impl World {
    /// One controller process running both instances.
    fn new(lb_region: &str, tracking: bool) -> Self {
        Self::with(vec![Controller::new(lb_region, tracking, &[0, 1])])
    }

    /// The reference's shape: one controller process per instance, the agent following both.
    fn two_processes() -> Self {
        Self::with(vec![
            Controller::new("westeurope", false, &[0]),
            Controller::new("westeurope", false, &[1]),
        ])
    }

    fn with(ctls: Vec<Controller>) -> Self {
        Self {
            agent: Follower::with_controllers(ctls.len(), GRACE, STALE_AFTER),
            ctls,
            kernel: Vec::new(),
            now: Instant::now(),
        }
    }

    /// The only (first) controller.
    fn ctl(&mut self) -> &mut Controller {
        &mut self.ctls[0]
    }

    fn nvas_announce(&mut self, prefix: &str) {
        for c in &mut self.ctls {
            c.nvas_announce(prefix);
        }
    }

    /// Every fabric takes its instances' batches, then the agent asks each controller once
    /// and programs what it is told.
    fn settle(&mut self) {
        for i in 0..self.ctls.len() {
            self.ctls[i].feed();
            let answer = self.ctls[i].answer(self.agent.version(i));
            self.agent_hears(i, answer);
        }
    }

    fn agent_hears(&mut self, from: usize, answer: Option<String>) -> Vec<follower::Effect> {
        let input = match &answer {
            Some(body) => follower::Input::Answer(from, body),
            None => follower::Input::Unreachable(from, "connection refused".into()),
        };
        let fx = self.agent.handle(self.now, input);
        for e in &fx {
            if let follower::Effect::Program(want) = e {
                self.kernel = want.clone();
                self.agent
                    .handle(self.now, follower::Input::Reconciled(Ok(())));
            }
        }
        fx
    }

    fn kernel(&self) -> Vec<String> {
        self.kernel
            .iter()
            .map(|(p, gws)| {
                let gws: Vec<String> = gws.iter().map(ToString::to_string).collect();
                format!("{p} via {}", gws.join(","))
            })
            .collect()
    }
}

#[test]
fn the_agent_programs_the_branch_through_the_lb() {
    let mut w = World::new("westeurope", false);
    w.settle();
    assert!(w.kernel.is_empty());
    w.nvas_announce("192.168.10.0/24");
    w.settle();
    // Four paths (two NVAs on two instances), one next hop: the LB frontend.
    assert_eq!(w.kernel(), ["192.168.10.0/24 via 10.1.0.100"]);
}

#[test]
fn a_controller_restart_costs_the_agent_nothing_within_the_grace_period() {
    let mut w = World::new("westeurope", false);
    w.nvas_announce("192.168.10.0/24");
    w.nvas_announce("192.168.20.0/24");
    w.settle();
    assert_eq!(w.kernel().len(), 2);

    // Down: fail static.
    w.ctl().up = false;
    w.settle();
    w.settle();
    assert_eq!(
        w.kernel().len(),
        2,
        "routes kept while the controller is away"
    );

    // Back, with nothing learned yet: the grace period keeps both routes.
    w.ctl().restart();
    w.settle();
    assert_eq!(w.kernel().len(), 2, "removal waits for the grace period");
    // The NVAs come back, but 192.168.20.0/24 is no longer announced.
    w.nvas_announce("192.168.10.0/24");
    w.settle();
    assert_eq!(w.kernel().len(), 2);
    // Once the grace period is over the route nobody announces goes.
    w.now += GRACE;
    w.settle();
    assert_eq!(w.kernel(), ["192.168.10.0/24 via 10.1.0.100"]);
}

#[test]
fn an_answer_the_agent_does_not_understand_changes_nothing() {
    let mut w = World::new("westeurope", false);
    w.nvas_announce("192.168.10.0/24");
    w.settle();
    let before = w.kernel();
    // A controller of another version: a field renamed, one added, an unknown state.
    let t = w.ctl().fabric.nic_table("vm1-nic").unwrap();
    let good = serde_json::to_string(&controller::views::effective_routes(&t, None)).unwrap();
    assert!(good.contains("nextHopIpAddress") && good.contains("\"Active\""));
    for bad in [
        good.replace("nextHopIpAddress", "nextHopIp"),
        good.replacen('{', "{\"muxes\":[],", 1),
        good.replace("\"Active\"", "\"Degraded\""),
        "{}".to_string(),
        "not json".to_string(),
    ] {
        let fx = w.agent_hears(0, Some(bad.clone()));
        assert_eq!(fx, [follower::Effect::Wait(follower::RETRY)], "{bad}");
        assert_eq!(w.kernel(), before, "{bad}");
        // The next question is the whole table again.
        assert_eq!(
            w.agent.poll_path(0, "vm1-nic"),
            "/v1/effective-routes?nic=vm1-nic"
        );
    }
    w.settle();
    assert_eq!(w.kernel(), before);
}

#[test]
fn a_cross_region_next_hop_is_never_programmed() {
    let mut w = World::new("northeurope", false);
    w.nvas_announce("192.168.10.0/24");
    w.settle();
    assert!(w.kernel.is_empty(), "{:?}", w.kernel());
    let t = w.ctl().fabric.nic_table("vm1-nic").unwrap();
    let r = t.get(&"192.168.10.0/24".parse().unwrap()).pop().unwrap();
    assert_eq!(r.state, fabric::RouteState::Invalid);
    assert!(r.reason.unwrap().contains("cross-region"));
    assert_eq!(
        w.ctl().fabric.cross_region_counts(),
        [("nva-ilb".to_string(), 1)]
    );
}

#[test]
fn next_hop_tracking_takes_the_route_out_while_the_lb_has_no_healthy_backend() {
    let mut w = World::new("westeurope", true);
    w.nvas_announce("192.168.10.0/24");
    w.settle();
    assert_eq!(w.kernel().len(), 1);
    w.ctl().fabric.set_lb_healthy("nva-ilb", false);
    w.settle();
    assert!(w.kernel.is_empty());
    w.ctl().fabric.set_lb_healthy("nva-ilb", true);
    w.settle();
    assert_eq!(w.kernel(), ["192.168.10.0/24 via 10.1.0.100"]);
}

#[test]
fn a_route_held_by_one_instance_only_is_programmed() {
    let mut w = World::new("westeurope", false);
    let sim = &mut w.ctl().instances[1];
    sim.establish("nva1");
    sim.announce("nva1", &["192.168.30.0/24"], "10.1.0.100");
    w.settle();
    assert_eq!(w.kernel(), ["192.168.30.0/24 via 10.1.0.100"]);
    // It goes when that instance loses it.
    w.ctl().instances[1].down("nva1");
    w.settle();
    assert!(w.kernel.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Two controller processes (one per instance), the agent following both.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_agent_programs_the_union_of_its_controllers() {
    let mut w = World::two_processes();
    // At start, the kernel waits until both controllers have been heard: the first to answer
    // cannot remove what the second lists.
    w.ctls[1].nvas_announce("192.168.40.0/24");
    w.ctls[1].feed();
    let first = w.ctls[0].answer(None);
    let fx = w.agent_hears(0, first);
    assert!(
        !fx.iter().any(|e| matches!(e, follower::Effect::Program(_))),
        "{fx:?}"
    );
    let second = w.ctls[1].answer(None);
    w.agent_hears(1, second);
    assert_eq!(w.kernel(), ["192.168.40.0/24 via 10.1.0.100"]);
    w.ctls[1].instances[0].withdraw("nva1", &["192.168.40.0/24"]);
    w.ctls[1].instances[0].withdraw("nva2", &["192.168.40.0/24"]);
    w.settle();
    assert!(w.kernel.is_empty(), "{:?}", w.kernel());
    // Only the second instance hears an NVA announce 192.168.30.0/24.
    let sim = &mut w.ctls[1].instances[0];
    sim.establish("nva1");
    sim.announce("nva1", &["192.168.30.0/24"], "10.1.0.100");
    w.nvas_announce("192.168.10.0/24");
    w.settle();
    assert_eq!(
        w.kernel(),
        [
            "192.168.10.0/24 via 10.1.0.100",
            "192.168.30.0/24 via 10.1.0.100"
        ]
    );
    // Withdrawn where it was: gone, though the other controller never had it.
    w.ctls[1].instances[0].withdraw("nva1", &["192.168.30.0/24"]);
    w.settle();
    assert_eq!(w.kernel(), ["192.168.10.0/24 via 10.1.0.100"]);
    // A route both have goes only when both lose it.
    w.ctls[0].instances[0].withdraw("nva1", &["192.168.10.0/24"]);
    w.ctls[0].instances[0].withdraw("nva2", &["192.168.10.0/24"]);
    w.settle();
    assert_eq!(w.kernel(), ["192.168.10.0/24 via 10.1.0.100"]);
    w.ctls[1].instances[0].down("nva1");
    w.ctls[1].instances[0].down("nva2");
    w.settle();
    assert!(w.kernel.is_empty(), "{:?}", w.kernel());
}

#[test]
fn losing_one_controller_loses_nothing_and_changes_still_arrive() {
    let mut w = World::two_processes();
    w.nvas_announce("192.168.10.0/24");
    w.settle();
    assert_eq!(w.kernel(), ["192.168.10.0/24 via 10.1.0.100"]);
    assert_eq!(w.agent.heard(), [true, true]);

    // The first controller is killed: nothing changes in the kernel.
    w.ctls[0].up = false;
    w.settle();
    assert_eq!(w.kernel(), ["192.168.10.0/24 via 10.1.0.100"]);
    assert_eq!(w.agent.heard(), [false, true]);

    // Meanwhile the second one learns a new route, and loses one: both reach the kernel —
    // except that the silent controller's last answer still holds 192.168.10.0/24.
    w.ctls[1].instances[0].announce("nva1", &["192.168.20.0/24"], "10.1.0.100");
    w.ctls[1].instances[0].down("nva2");
    w.ctls[1].instances[0].withdraw("nva1", &["192.168.10.0/24"]);
    w.settle();
    assert_eq!(
        w.kernel(),
        [
            "192.168.10.0/24 via 10.1.0.100",
            "192.168.20.0/24 via 10.1.0.100"
        ]
    );
    // Until the silent controller's answer is stale: then what the live one says is all.
    w.now += STALE_AFTER - Duration::from_secs(1);
    w.settle();
    assert_eq!(w.kernel().len(), 2);
    w.now += Duration::from_secs(1);
    w.settle();
    assert_eq!(w.kernel(), ["192.168.20.0/24 via 10.1.0.100"]);
    assert_eq!(w.agent.heard(), [false, true]);
}

#[test]
fn with_every_controller_silent_nothing_is_removed_ever() {
    let mut w = World::two_processes();
    w.nvas_announce("192.168.10.0/24");
    w.settle();
    w.ctls[0].up = false;
    w.settle();
    w.now += Duration::from_secs(10);
    w.ctls[1].up = false;
    for _ in 0..3 {
        w.now += STALE_AFTER;
        w.settle();
    }
    assert_eq!(w.kernel(), ["192.168.10.0/24 via 10.1.0.100"]);
    assert_eq!(w.agent.heard(), [false, false]);
    // The second comes back (restarted, nothing learned yet): its grace period, and the first
    // controller's last answer, keep the route; once it has relearned it, it stays.
    w.ctls[1].restart();
    w.settle();
    assert_eq!(w.kernel(), ["192.168.10.0/24 via 10.1.0.100"]);
    w.ctls[1].nvas_announce("192.168.10.0/24");
    w.now += GRACE;
    w.settle();
    assert_eq!(w.kernel(), ["192.168.10.0/24 via 10.1.0.100"]);
}

#[test]
fn a_restarted_controller_rejoins_without_a_flap() {
    let mut w = World::two_processes();
    w.nvas_announce("192.168.10.0/24");
    w.settle();
    w.ctls[0].up = false;
    w.settle();
    // Restarted and answering before its NVAs are back: the other controller and the grace
    // period keep the route; every answer reprograms the same set.
    w.ctls[0].restart();
    for _ in 0..5 {
        w.settle();
        assert_eq!(w.kernel(), ["192.168.10.0/24 via 10.1.0.100"]);
        w.now += GRACE;
    }
    assert_eq!(w.agent.heard(), [true, true]);
    // Its NVAs return: both count again — the route now goes only when both lose it.
    w.ctls[0].nvas_announce("192.168.10.0/24");
    w.settle();
    w.ctls[1].instances[0].down("nva1");
    w.ctls[1].instances[0].down("nva2");
    w.settle();
    assert_eq!(w.kernel(), ["192.168.10.0/24 via 10.1.0.100"]);
}

// ---------------------------------------------------------------------------------------------
// Graceful restart (RFC 4724)
// ---------------------------------------------------------------------------------------------

/// The capability an NVA with `bgp graceful-restart` offers: restart time, F bit for IPv4.
fn gr(restart_time: u16, forwarding: bool) -> Vec<Capability> {
    gr_n(restart_time, forwarding, false)
}

/// [`gr`] with the N bit (RFC 8538) as given.
fn gr_n(restart_time: u16, forwarding: bool, notification: bool) -> Vec<Capability> {
    vec![gr_capability(
        restart_time,
        notification,
        &[(Afi::IPV4, forwarding)],
    )]
}

/// A graceful restart capability listing `families` (unicast) with their F bits.
fn gr_capability(restart_time: u16, notification: bool, families: &[(Afi, bool)]) -> Capability {
    Capability::GracefulRestart {
        restarted: false,
        notification,
        restart_time,
        families: families
            .iter()
            .map(|&(afi, forwarding_preserved)| GracefulRestartFamily {
                afi,
                safi: Safi::UNICAST,
                forwarding_preserved,
            })
            .collect(),
    }
}

fn gr_spec() -> InstanceSpec {
    InstanceSpec {
        graceful_restart: Some(120),
        ..spec("RouteServiceRole_IN_0", "10.1.1.4")
    }
}

fn down(sim: &mut Sim, name: &str, reason: DownReason) {
    let id = sim.id(name);
    sim.step(Input::Peer(id, PeerEvent::Down { reason }));
}

fn end_of_rib(sim: &mut Sim, name: &str) {
    let id = sim.id(name);
    sim.step(Input::Peer(
        id,
        PeerEvent::Update {
            update: UpdateMessage::end_of_rib(),
            treat_as_withdraw: None,
            discarded: Vec::new(),
        },
    ));
}

fn fabric_has(sim: &Sim) -> Vec<String> {
    sim.fabric.keys().map(ToString::to_string).collect()
}

#[test]
fn graceful_restart_is_offered_only_when_configured() {
    let cap = |sim: &Sim| {
        sim.task("nva1")
            .config
            .session
            .capabilities
            .iter()
            .find(|c| matches!(c, Capability::GracefulRestart { .. }))
            .cloned()
    };
    assert_eq!(
        cap(&Sim::new(spec("RouteServiceRole_IN_0", "10.1.1.4"))),
        None
    );
    let Some(Capability::GracefulRestart {
        restart_time,
        families,
        ..
    }) = cap(&Sim::new(gr_spec()))
    else {
        panic!("no graceful restart capability");
    };
    assert_eq!(restart_time, 120);
    assert!(
        families.iter().all(|f| f.forwarding_preserved),
        "{families:?}"
    );
    // Turning it on or off is a new OPEN: every session restarts, and the reload says why.
    let d = diff(&spec("RouteServiceRole_IN_0", "10.1.1.4"), &gr_spec());
    assert!(
        d.sessions_reset
            .as_deref()
            .is_some_and(|r| r.contains("graceful_restart off -> 120 s")),
        "{d:?}"
    );
}

#[test]
fn a_restarting_peer_keeps_its_routes_until_its_end_of_rib() {
    let mut sim = Sim::new(gr_spec());
    sim.establish_with("nva1", gr(90, true));
    // We send it our routes, then End-of-RIB.
    assert!(
        sim.task("nva1")
            .commands
            .iter()
            .any(|c| c.contains("SendUpdate") && c.contains("nlri: []")),
        "{:?}",
        sim.task("nva1").commands
    );
    sim.announce(
        "nva1",
        &["192.168.10.0/24", "192.168.20.0/24"],
        "10.1.0.100",
    );
    assert_eq!(fabric_has(&sim), ["192.168.10.0/24", "192.168.20.0/24"]);

    // Its TCP connection goes (bgpd killed): the routes stay, nothing is withdrawn.
    sim.batches.clear();
    down(&mut sim, "nva1", DownReason::ConnectionFailed);
    assert_eq!(fabric_has(&sim), ["192.168.10.0/24", "192.168.20.0/24"]);
    assert!(sim.batches.is_empty(), "{:?}", sim.batches);
    assert!(sim
        .owner
        .peer(sim.id("nva1"))
        .unwrap()
        .stale_until
        .is_some());

    // Back with its forwarding state; it sends one route again: both stay until End-of-RIB.
    sim.advance(Duration::from_secs(30));
    sim.step(Input::Tick);
    sim.establish_with("nva1", gr(90, true));
    sim.announce("nva1", &["192.168.10.0/24"], "10.1.0.100");
    sim.advance(Duration::from_secs(80));
    sim.step(Input::Tick);
    assert_eq!(fabric_has(&sim), ["192.168.10.0/24", "192.168.20.0/24"]);
    assert!(sim
        .batches
        .iter()
        .all(|(_, r)| r.iter().all(|(_, nh)| !nh.is_empty())));
    end_of_rib(&mut sim, "nva1");
    assert_eq!(fabric_has(&sim), ["192.168.10.0/24"]);
    assert!(sim
        .owner
        .peer(sim.id("nva1"))
        .unwrap()
        .stale_until
        .is_none());
    // A later End-of-RIB (a route refresh) changes nothing.
    end_of_rib(&mut sim, "nva1");
    assert_eq!(fabric_has(&sim), ["192.168.10.0/24"]);
}

#[test]
fn a_restarting_peer_that_does_not_come_back_loses_its_routes_at_its_restart_time() {
    let mut sim = Sim::new(gr_spec());
    sim.establish_with("nva1", gr(90, true));
    sim.announce("nva1", &["192.168.10.0/24"], "10.1.0.100");
    down(&mut sim, "nva1", DownReason::HoldTimerExpired);
    sim.advance(Duration::from_secs(89));
    sim.step(Input::Tick);
    assert_eq!(fabric_has(&sim), ["192.168.10.0/24"]);
    sim.advance(Duration::from_secs(1));
    sim.step(Input::Tick);
    assert!(fabric_has(&sim).is_empty());
}

#[test]
fn graceful_restart_does_not_hold_routes_it_should_not() {
    // A NOTIFICATION (the peer said goodbye), a peer that did not offer graceful restart, one
    // that comes back without its forwarding state, one that hit its route limit, and an
    // instance with graceful restart off: the routes go at once.
    let mut sim = Sim::new(gr_spec());
    sim.establish_with("nva1", gr(90, true));
    sim.announce("nva1", &["192.168.10.0/24"], "10.1.0.100");
    down(
        &mut sim,
        "nva1",
        DownReason::PeerNotification(bgp::wire::Notification::new(6, 2)),
    );
    assert!(fabric_has(&sim).is_empty(), "after a NOTIFICATION");

    sim.establish("nva2");
    sim.announce("nva2", &["192.168.20.0/24"], "10.1.0.100");
    down(&mut sim, "nva2", DownReason::ConnectionFailed);
    assert!(fabric_has(&sim).is_empty(), "without the capability");

    sim.establish_with("nva1", gr(90, true));
    sim.announce("nva1", &["192.168.30.0/24"], "10.1.0.100");
    down(&mut sim, "nva1", DownReason::ConnectionFailed);
    assert_eq!(fabric_has(&sim), ["192.168.30.0/24"]);
    sim.establish_with("nva1", gr(90, false));
    assert!(fabric_has(&sim).is_empty(), "back without forwarding state");

    let mut off = Sim::new(spec("RouteServiceRole_IN_0", "10.1.1.4"));
    off.establish_with("nva1", gr(90, true));
    off.announce("nva1", &["192.168.10.0/24"], "10.1.0.100");
    down(&mut off, "nva1", DownReason::ConnectionFailed);
    assert!(fabric_has(&off).is_empty(), "graceful restart off");
}

#[test]
fn with_graceful_restart_a_stop_closes_sessions_without_a_notification() {
    let mut sim = Sim::new(gr_spec());
    sim.establish_with("nva1", gr(90, true));
    sim.step(Input::Shutdown);
    assert!(sim
        .tasks
        .values()
        .all(|t| t.ended && t.commands.last().is_some_and(|c| c == "Abandon")));
}

#[test]
fn with_the_n_bit_a_clear_keeps_the_routes_and_a_hard_reset_does_not() {
    use bgp::wire::notification::{cease, code};
    use bgp::wire::Notification;
    let mut sim = Sim::new(gr_spec());
    sim.establish_with("nva1", gr_n(90, true, true));
    sim.announce("nva1", &["192.168.10.0/24"], "10.1.0.100");
    // `clear bgp` on the NVA: Cease/Administrative Reset; both offered N, so it restarts.
    let admin_reset = Notification::new(code::CEASE, cease::ADMINISTRATIVE_RESET);
    down(
        &mut sim,
        "nva1",
        DownReason::PeerNotification(admin_reset.clone()),
    );
    assert_eq!(fabric_has(&sim), ["192.168.10.0/24"]);
    sim.establish_with("nva1", gr_n(90, true, true));
    sim.announce("nva1", &["192.168.10.0/24"], "10.1.0.100");
    end_of_rib(&mut sim, "nva1");
    assert_eq!(fabric_has(&sim), ["192.168.10.0/24"]);
    // Cease/Hard Reset: the routes go at once.
    down(
        &mut sim,
        "nva1",
        DownReason::PeerNotification(Notification::hard_reset(&admin_reset)),
    );
    assert!(fabric_has(&sim).is_empty());
    // The same Administrative Reset from a peer without the N bit: gone at once.
    sim.establish_with("nva1", gr_n(90, true, false));
    sim.announce("nva1", &["192.168.10.0/24"], "10.1.0.100");
    down(&mut sim, "nva1", DownReason::PeerNotification(admin_reset));
    assert!(fabric_has(&sim).is_empty());
}

// ---------------------------------------------------------------------------------------------
// IPv6 unicast (issue #16): the second RIB of an instance, same peers, same rules
// ---------------------------------------------------------------------------------------------

mod ipv6 {
    use super::*;
    use bgp::wire::attrs::{MpNextHop, MpReach};
    use bgp::wire::{Ipv6Prefix, Prefix};
    use std::net::Ipv6Addr;

    fn p6(s: &str) -> Ipv6Prefix {
        s.parse().unwrap()
    }

    /// `name` announces IPv6 `prefixes` (MP_REACH_NLRI) with next hop `nh`.
    fn announce6(sim: &mut Sim, name: &str, prefixes: &[&str], nh: &str) {
        let asn = sim.owner.peer(sim.id(name)).unwrap().spec.asn;
        sim.update(
            name,
            UpdateMessage {
                attrs: PathAttributes {
                    origin: Some(Origin::Igp),
                    as_path: Some(AsPath::from_sequence(vec![asn])),
                    mp_reach: Some(MpReach {
                        afi: Afi::IPV6,
                        safi: Safi::UNICAST,
                        next_hop: MpNextHop::V6 {
                            global: nh.parse().unwrap(),
                            link_local: None,
                        },
                        nlri: prefixes.iter().map(|p| Prefix::V6(p6(p))).collect(),
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
    }

    /// What `name`'s session holds from us in IPv6: prefix -> (next hop, AS path).
    fn received6(sim: &Sim, name: &str) -> BTreeMap<Ipv6Prefix, (Ipv6Addr, String)> {
        let mut m = BTreeMap::new();
        for u in &sim.running(name).sent {
            if let Some(w) = &u.attrs.mp_unreach {
                for p in &w.withdrawn {
                    if let Prefix::V6(p) = p {
                        m.remove(p);
                    }
                }
            }
            if let Some(r) = &u.attrs.mp_reach {
                let MpNextHop::V6 { global, .. } = r.next_hop else {
                    panic!("IPv4 next hop for IPv6: {r:?}")
                };
                let path = u.attrs.as_path.as_ref().map(|a| a.to_string());
                for p in &r.nlri {
                    if let Prefix::V6(p) = p {
                        m.insert(*p, (global, path.clone().unwrap_or_default()));
                    }
                }
            }
        }
        m
    }

    #[test]
    fn ipv6_routes_cross_peers_and_the_route_limit_counts_both_families() {
        let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
        s.branch_to_branch = true;
        s.originated6 = vec![p6("fd00:1::/48")];
        s.peers[0].max_routes = 3;
        s.peers[1].asn = 65002;
        let mut sim = Sim::new(s);
        // Both families offered on every session.
        let caps = &sim.running("nva1").config.session.capabilities;
        assert!(caps.contains(&Capability::Multiprotocol {
            afi: Afi::IPV6,
            safi: Safi::UNICAST
        }));
        sim.establish("nva1");
        sim.establish("nva2");
        // The hub's IPv6 space, with the IPv4-mapped instance address as next hop (the
        // instance has no IPv6 address).
        let got = received6(&sim, "nva2");
        assert_eq!(
            got.get(&p6("fd00:1::/48")),
            Some(&("::ffff:10.1.1.4".parse().unwrap(), "65515".to_string())),
            "{got:?}"
        );

        sim.announce("nva1", &["192.168.1.0/24"], "10.1.2.10");
        announce6(&mut sim, "nva1", &["fd00:10::/48"], "fd00:1::100");
        let got = received6(&sim, "nva2");
        assert_eq!(
            got.get(&p6("fd00:10::/48")),
            Some(&("fd00:1::100".parse().unwrap(), "65515 65001".to_string())),
            "{got:?}"
        );
        assert!(!received6(&sim, "nva1").contains_key(&p6("fd00:10::/48")));
        // The fabric gets both families' forwarding next hops.
        assert_eq!(sim.fabric.len(), 2);
        let nh6: IpAddr = "fd00:1::100".parse().unwrap();
        assert_eq!(sim.fabric[&fabric::Prefix::V6(p6("fd00:10::/48"))], [nh6]);
        assert_eq!(sim.owner.peer_counts(sim.id("nva1")), (2, 2));

        // 1 IPv4 + 1 IPv6 held + 2 incoming > 3: Cease/1, and both families are withdrawn.
        announce6(
            &mut sim,
            "nva1",
            &["fd00:11::/48", "fd00:12::/48"],
            "fd00:1::100",
        );
        let cmds = &sim.running("nva1").commands;
        // Cease/1 naming the family that went over: AFI 2, SAFI 1, limit 3.
        assert!(
            cmds[0].contains("code: 6, subcode: 1, data: [0, 2, 1, 0, 0, 0, 3]"),
            "{cmds:?}"
        );
        assert!(!received6(&sim, "nva2").contains_key(&p6("fd00:10::/48")));
        assert!(!sim.received("nva2").contains_key(&pfx("192.168.1.0/24")));
        assert_eq!(sim.owner.peer_counts(sim.id("nva1")), (0, 0));
    }

    /// A peer that negotiated IPv4 only is never sent IPv6, not even when it asks for it with
    /// a ROUTE-REFRESH; its IPv6 announcements are still taken (RFC 4760 lets a speaker
    /// ignore them, and refusing them would hide a peer's misconfiguration).
    #[test]
    fn a_family_not_negotiated_is_never_sent() {
        let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
        s.originated6 = vec![p6("fd00:1::/48")];
        let mut sim = Sim::new(s);
        sim.establish_families("nva1", Vec::new(), vec![(Afi::IPV4, Safi::UNICAST)]);
        assert!(received6(&sim, "nva1").is_empty());
        assert!(sim.received("nva1").contains_key(&pfx("10.1.0.0/16")));
        let id = sim.id("nva1");
        sim.step(Input::Peer(
            id,
            PeerEvent::RouteRefresh(bgp::wire::RouteRefresh {
                afi: Afi::IPV6,
                ..bgp::wire::RouteRefresh::ipv4_unicast()
            }),
        ));
        assert!(received6(&sim, "nva1").is_empty());
        let families = &sim.owner.peer(id).unwrap().families;
        assert_eq!(families, &[(Afi::IPV4, Safi::UNICAST)]);
    }

    /// RFC 4760 §7: a peer that negotiated IPv4 only and sends IPv6 anyway: ignored, said so.
    #[test]
    fn routes_of_a_family_not_negotiated_are_ignored() {
        let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
        s.branch_to_branch = true;
        s.peers[1].asn = 65002;
        let mut sim = Sim::new(s);
        sim.establish_families("nva1", Vec::new(), vec![(Afi::IPV4, Safi::UNICAST)]);
        sim.establish("nva2");
        announce6(&mut sim, "nva1", &["fd00:10::/48"], "fd00:1::100");
        assert!(sim.owner.rib6().is_empty());
        assert!(received6(&sim, "nva2").is_empty());
        let slot = sim.owner.peer(sim.id("nva1")).unwrap();
        assert!(
            slot.last_error
                .as_deref()
                .is_some_and(|e| e.contains("not negotiated")),
            "{:?}",
            slot.last_error
        );
        // IPv4 from it is taken as ever.
        sim.announce("nva1", &["192.168.1.0/24"], "10.1.2.10");
        assert!(sim.received("nva2").contains_key(&pfx("192.168.1.0/24")));
    }

    /// Graceful restart per family (RFC 4724 §4.2): a peer whose capability lists IPv4 only
    /// keeps its IPv4 routes (stale) while it restarts and loses its IPv6 ones at once; an
    /// End-of-RIB of another SAFI sweeps nothing.
    #[test]
    fn graceful_restart_keeps_only_the_families_the_peer_listed() {
        let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
        s.graceful_restart = Some(120);
        let mut sim = Sim::new(s);
        sim.establish_with("nva1", gr(120, true));
        sim.announce("nva1", &["192.168.1.0/24"], "10.1.2.10");
        announce6(&mut sim, "nva1", &["fd00:10::/48"], "fd00:1::100");
        sim.down("nva1");
        let id = sim.id("nva1");
        assert_eq!(sim.owner.rib().stale_count(id), 1);
        assert_eq!(sim.owner.rib().len(), 1);
        assert!(
            sim.owner.rib6().is_empty(),
            "IPv6 was not listed: withdrawn"
        );
        sim.establish_with("nva1", gr(120, true));
        sim.update("nva1", UpdateMessage::end_of_rib_for(Afi::IPV4, Safi(128)));
        assert_eq!(
            sim.owner.rib().stale_count(id),
            1,
            "another SAFI's End-of-RIB"
        );
        sim.update("nva1", UpdateMessage::end_of_rib());
        assert_eq!(sim.owner.rib().len(), 0);
    }

    #[test]
    fn graceful_restart_sends_end_of_rib_per_family_and_waits_for_both() {
        let mut s = spec("RouteServiceRole_IN_0", "10.1.1.4");
        s.graceful_restart = Some(120);
        let mut sim = Sim::new(s);
        let gr = gr_capability(120, false, &[(Afi::IPV4, true), (Afi::IPV6, true)]);
        sim.establish_with("nva1", vec![gr.clone()]);
        // The End-of-RIBs go as SendUpdate commands (their debug form): IPv4's empty UPDATE,
        // then IPv6's empty MP_UNREACH_NLRI.
        let eors: Vec<&String> = sim
            .running("nva1")
            .commands
            .iter()
            .filter(|c| c.starts_with("SendUpdate"))
            .collect();
        assert_eq!(eors.len(), 2, "{eors:?}");
        assert!(eors[0].contains("mp_unreach: None"), "{eors:?}");
        assert!(
            eors[1].contains(
                "mp_unreach: Some(MpUnreach { afi: Afi(2), safi: Safi(1), withdrawn: [] })"
            ),
            "{eors:?}"
        );

        sim.announce("nva1", &["192.168.1.0/24"], "10.1.2.10");
        announce6(&mut sim, "nva1", &["fd00:10::/48"], "fd00:1::100");
        sim.down("nva1");
        let id = sim.id("nva1");
        assert_eq!(sim.owner.rib().stale_count(id), 1);
        assert_eq!(sim.owner.rib6().stale_count(id), 1);
        // Back; it sends the IPv4 route again and both End-of-RIBs; the IPv6 route it did not
        // send again goes at the IPv6 End-of-RIB only.
        sim.establish_with("nva1", vec![gr]);
        sim.announce("nva1", &["192.168.1.0/24"], "10.1.2.10");
        sim.update("nva1", UpdateMessage::end_of_rib());
        assert_eq!(sim.owner.rib().stale_count(id), 0);
        assert_eq!(
            sim.owner.rib6().len(),
            1,
            "IPv6 still waits for its End-of-RIB"
        );
        assert!(sim.owner.peer(id).unwrap().stale_until.is_some());
        sim.update(
            "nva1",
            UpdateMessage::end_of_rib_for(Afi::IPV6, Safi::UNICAST),
        );
        assert_eq!(sim.owner.rib6().len(), 0);
        assert_eq!(sim.owner.rib().len(), 1);
        assert!(sim.owner.peer(id).unwrap().stale_until.is_none());
    }
}
