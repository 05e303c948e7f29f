//! Defaults, explicit values, partial configs and reload diffs.

use std::net::Ipv4Addr;

use config::{
    diff_peers, AdminState, Config, Distribution, Mode, NoHealthyBackends, ProbeProtocol,
};

const SEED: &str = include_str!("seed.toml");
const FULL: &str = include_str!("full.toml");

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn parse(text: &str) -> Config {
    config::parse(text, "config.toml").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn only_load_balancers() {
    let config = parse(
        "[[load_balancer]]\nname = \"lab\"\nfrontend = \"127.0.0.100\"\n\
         backends = [{ address = \"127.0.0.11\" }, { address = \"127.0.0.12\" }]\n\
         probe = { protocol = \"tcp\", port = 22 }\n",
    );
    assert!(config.virtual_networks.is_empty());
    assert!(config.route_server.is_none());
    assert!(config.nics.is_empty());
    let lb = &config.load_balancers[0];
    assert_eq!(lb.virtual_network, None);
    assert_eq!(lb.frontend, ip("127.0.0.100"));
    assert_eq!(config.api.listen, config::DEFAULT_API_LISTEN);
}

#[test]
fn defaults_applied() {
    let config = parse(
        "[route_server]\ninstances = [\"127.0.0.2\"]\n\
         [[route_server.peer]]\nname = \"frr\"\naddress = \"127.0.0.3\"\nasn = 65001\n\
         [[load_balancer]]\nname = \"lb\"\nfrontend = \"127.0.0.100\"\n\
         backends = [{ address = \"127.0.0.11\" }, { address = \"127.0.0.12\", priority = 1 }, { address = \"127.0.0.13\" }]\n\
         probe = { protocol = \"http\", port = 80 }\n",
    );
    let rs = config.route_server.unwrap();
    assert_eq!(rs.asn, 65515);
    assert_eq!(rs.virtual_network, None);
    assert_eq!(rs.port, 179);
    assert!(!rs.branch_to_branch);
    assert_eq!(rs.max_routes_per_peer, 4000);
    assert_eq!((rs.hold_time, rs.keepalive()), (180, 60));
    let peer = &rs.peers[0];
    assert_eq!(
        (peer.hold_time, peer.keepalive(), peer.max_routes, peer.port),
        (180, 60, 4000, 179)
    );
    assert_eq!(peer.password, None);

    let lb = &config.load_balancers[0];
    assert_eq!(lb.mode, Mode::ActiveActive);
    // Priority defaults to position + 1, whatever the others say.
    let priorities: Vec<u32> = lb.backends.iter().map(|b| b.priority).collect();
    assert_eq!(priorities, [1, 1, 3]);
    assert!(lb
        .backends
        .iter()
        .all(|b| b.admin_state == AdminState::None));
    let probe = &lb.probe;
    assert_eq!(probe.path, "/");
    assert_eq!(
        (probe.interval_ms, probe.timeout_ms, probe.rise, probe.fall),
        (5000, 5000, 2, 2)
    );
    assert!(!probe.verify_tls);
    assert_eq!(lb.distribution, Distribution::FiveTuple);
    assert!(!lb.symmetric && !lb.preempt);
    assert_eq!(lb.no_healthy_backends, NoHealthyBackends::Drop);
    assert_eq!(lb.maglev_table_size, 65537);
    assert_eq!(
        (
            lb.flow_idle_timeout_tcp_s,
            lb.flow_idle_timeout_udp_s,
            lb.max_flows
        ),
        (240, 30, 1_000_000)
    );

    assert_eq!(config.api.listen, "127.0.0.1:8179".parse().unwrap());
    assert!(!config.fabric.next_hop_tracking);
}

#[test]
fn inherited_peer_values_follow_the_route_server() {
    let config = parse(&SEED.replace(
        "asn = 65515\n",
        "asn = 65515\nport = 1179\nhold_time = 90\nmax_routes_per_peer = 50\n",
    ));
    let rs = config.route_server.unwrap();
    let peer = &rs.peers[0];
    assert_eq!(
        (peer.port, peer.hold_time, peer.keepalive(), peer.max_routes),
        (1179, 90, 30, 50)
    );
    // Hold time 0: no keepalives.
    let config = parse(&SEED.replace("asn = 65515\n", "asn = 65515\nhold_time = 0\n"));
    assert_eq!(config.route_server.unwrap().keepalive(), 0);
}

#[test]
fn every_key_explicit() {
    let config = parse(&format!("{SEED}\n{FULL}"));
    let spoke = config.virtual_network("spoke").unwrap();
    assert_eq!(spoke.address_space.len(), 2);
    assert_eq!(spoke.peerings, ["hub"]);
    assert_eq!(spoke.subnets[0].name, "workload");
    assert_eq!(spoke.subnets[0].prefix.to_string(), "10.2.1.0/24");

    let rs = config.route_server.as_ref().unwrap();
    let nva2 = &rs.peers[1];
    assert_eq!(nva2.asn, 4_200_000_001);
    assert_eq!(
        (nva2.hold_time, nva2.keepalive(), nva2.max_routes, nva2.port),
        (30, 10, 100, 1179)
    );
    assert_eq!(nva2.password.as_ref().unwrap().expose(), "s3cret");

    let lb = config.load_balancer("aa-ilb").unwrap();
    assert_eq!(lb.mode, Mode::ActiveActive);
    let backends: Vec<(u32, AdminState)> = lb
        .backends
        .iter()
        .map(|b| (b.priority, b.admin_state))
        .collect();
    assert_eq!(
        backends,
        [
            (1, AdminState::Drain),
            (7, AdminState::Up),
            (3, AdminState::Down)
        ]
    );
    let probe = &lb.probe;
    assert_eq!(probe.protocol, ProbeProtocol::Https);
    assert_eq!((probe.port, probe.path.as_str()), (443, "/ready"));
    assert_eq!(
        (probe.interval_ms, probe.timeout_ms, probe.rise, probe.fall),
        (500, 200, 3, 1)
    );
    assert!(probe.verify_tls);
    assert_eq!(lb.distribution, Distribution::ThreeTuple);
    assert!(lb.symmetric && lb.preempt);
    assert_eq!(lb.no_healthy_backends, NoHealthyBackends::All);
    assert_eq!(lb.maglev_table_size, 251);
    assert_eq!(
        (
            lb.flow_idle_timeout_tcp_s,
            lb.flow_idle_timeout_udp_s,
            lb.max_flows
        ),
        (600, 10, 5000)
    );

    assert_eq!(config.nic("vm2-nic").unwrap().address, ip("10.2.1.10"));
    assert_eq!(config.api.listen, "0.0.0.0:9000".parse().unwrap());
    assert!(config.fabric.next_hop_tracking);
}

#[test]
fn enum_names_as_written() {
    assert_eq!(Mode::ActivePassive.to_string(), "active-passive");
    assert_eq!(AdminState::Drain.as_str(), "drain");
    assert_eq!(Distribution::TwoTuple.to_string(), "2-tuple");
    assert_eq!(ProbeProtocol::Https.to_string(), "https");
    assert_eq!(NoHealthyBackends::All.to_string(), "all");
}

const THREE_PEERS: &str = "\
[route_server]
instances = [\"10.1.1.4\", \"10.1.1.5\"]

[[route_server.peer]]
name = \"nva1\"
address = \"10.1.2.10\"
asn = 65001

[[route_server.peer]]
name = \"nva2\"
address = \"10.1.2.11\"
asn = 65002

[[route_server.peer]]
name = \"nva3\"
address = \"10.1.2.12\"
asn = 65003
";

fn names(peers: &[config::Peer]) -> Vec<&str> {
    peers.iter().map(|p| p.name.as_str()).collect()
}

#[test]
fn diff_peers_added_removed_changed_unchanged() {
    let old = parse(THREE_PEERS);
    let new = parse(
        &THREE_PEERS
            .replace("name = \"nva1\"", "name = \"nva4\"")
            .replace("asn = 65003", "asn = 65003\nhold_time = 9"),
    );
    let diff = diff_peers(&old, &new);
    assert_eq!(names(&diff.added), ["nva4"]);
    assert_eq!(names(&diff.removed), ["nva1"]);
    assert_eq!(diff.changed.len(), 1);
    assert_eq!(
        (diff.changed[0].old.hold_time, diff.changed[0].new.hold_time),
        (180, 9)
    );
    assert_eq!(names(&diff.unchanged), ["nva2"]);
    assert!(!diff.is_empty());

    let same = diff_peers(&old, &old);
    assert!(same.is_empty());
    assert_eq!(names(&same.unchanged), ["nva1", "nva2", "nva3"]);
}

#[test]
fn diff_peers_sees_inherited_values_and_session_wide_settings() {
    let old = parse(THREE_PEERS);
    // An inherited hold time changes every peer that inherits it.
    let new = parse(&THREE_PEERS.replace(
        "[\"10.1.1.4\", \"10.1.1.5\"]\n",
        "[\"10.1.1.4\", \"10.1.1.5\"]\nhold_time = 30\n",
    ));
    assert_eq!(diff_peers(&old, &new).changed.len(), 3);
    // A new local ASN resets every session although no peer field changed.
    let new = parse(&THREE_PEERS.replace("[route_server]\n", "[route_server]\nasn = 64512\n"));
    let diff = diff_peers(&old, &new);
    assert_eq!(diff.changed.len(), 3);
    assert!(diff.unchanged.is_empty());
    // What is advertised does not touch sessions.
    let new = parse(&THREE_PEERS.replace(
        "[route_server]\n",
        "[route_server]\nbranch_to_branch = true\n",
    ));
    assert_eq!(diff_peers(&old, &new).unchanged.len(), 3);
    // A route server removed takes every peer down; one added brings them up.
    let none = Config::default();
    assert_eq!(
        names(&diff_peers(&old, &none).removed),
        ["nva1", "nva2", "nva3"]
    );
    assert_eq!(
        names(&diff_peers(&none, &old).added),
        ["nva1", "nva2", "nva3"]
    );
}
