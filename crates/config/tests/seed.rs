//! The SPEC §6 example config, verbatim, and what it turns into.

use std::net::{Ipv4Addr, SocketAddr};

use config::{
    AdminState, Api, Backend, Config, Distribution, Fabric, Ipv4Prefix, Mode, NoHealthyBackends,
    ProbeProtocol,
};

const SEED: &str = include_str!("seed.toml");

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn seed_parses_with_every_field() {
    let config = config::parse(SEED, "seed.toml").unwrap();

    let [hub] = config.virtual_networks.as_slice() else {
        panic!(
            "one virtual network expected: {:?}",
            config.virtual_networks
        )
    };
    assert_eq!(hub.name, "hub");
    assert_eq!(hub.region, "westeurope");
    assert_eq!(
        hub.address_space,
        vec!["10.1.0.0/16".parse::<Ipv4Prefix>().unwrap()]
    );
    assert!(hub.peerings.is_empty());
    assert!(hub.subnets.is_empty());

    let rs = config.route_server.as_ref().unwrap();
    assert_eq!(rs.asn, 65515);
    assert_eq!(rs.virtual_network.as_deref(), Some("hub"));
    assert_eq!(rs.instances, vec![ip("10.1.1.4"), ip("10.1.1.5")]);
    assert_eq!(rs.port, 179);
    assert!(!rs.branch_to_branch);
    assert_eq!(rs.max_routes_per_peer, 4000);
    assert_eq!(rs.hold_time, 180);
    assert_eq!(rs.keepalive(), 60);
    let [nva1] = rs.peers.as_slice() else {
        panic!("one peer expected: {:?}", rs.peers)
    };
    assert_eq!(nva1.name, "nva1");
    assert_eq!(nva1.address, ip("10.1.2.10"));
    assert_eq!(nva1.asn, 65001);
    assert_eq!(nva1.hold_time, 180);
    assert_eq!(nva1.keepalive(), 60);
    assert_eq!(nva1.max_routes, 4000);
    assert_eq!(nva1.password, None);
    assert_eq!(nva1.port, 179);

    let [lb] = config.load_balancers.as_slice() else {
        panic!("one load balancer expected: {:?}", config.load_balancers)
    };
    assert_eq!(lb.name, "nva-ilb");
    assert_eq!(lb.virtual_network.as_deref(), Some("hub"));
    assert_eq!(lb.frontend, ip("10.1.0.100"));
    assert_eq!(lb.mode, Mode::ActivePassive);
    assert_eq!(
        lb.backends,
        vec![
            Backend {
                address: ip("10.1.2.10").into(),
                priority: 1,
                admin_state: AdminState::None
            },
            Backend {
                address: ip("10.1.2.11").into(),
                priority: 2,
                admin_state: AdminState::None
            },
        ]
    );
    assert_eq!(lb.probe.protocol, ProbeProtocol::Http);
    assert_eq!(lb.probe.port, 8080);
    assert_eq!(lb.probe.path, "/health");
    assert_eq!(lb.probe.interval_ms, 1000);
    assert_eq!(lb.probe.timeout_ms, 1000);
    assert_eq!(lb.probe.rise, 2);
    assert_eq!(lb.probe.fall, 2);
    assert!(!lb.probe.verify_tls);
    assert_eq!(lb.distribution, Distribution::FiveTuple);
    assert!(!lb.symmetric);
    assert!(!lb.preempt);
    assert_eq!(lb.no_healthy_backends, NoHealthyBackends::Drop);
    assert_eq!(lb.maglev_table_size, 65537);
    assert_eq!(lb.flow_idle_timeout_tcp_s, 240);
    assert_eq!(lb.flow_idle_timeout_udp_s, 30);
    assert_eq!(lb.max_flows, 1_000_000);

    let [nic] = config.nics.as_slice() else {
        panic!("one NIC expected: {:?}", config.nics)
    };
    assert_eq!(nic.name, "vm1-nic");
    assert_eq!(nic.virtual_network, "hub");
    assert_eq!(nic.address, ip("10.1.3.10"));

    assert_eq!(
        config.api,
        Api {
            listen: "127.0.0.1:8179".parse::<SocketAddr>().unwrap(),
            admin_token_file: None,
            read_token_file: None,
            tls_cert: None,
            tls_key: None,
        }
    );
    assert_eq!(
        config.fabric,
        Fabric {
            next_hop_tracking: false
        }
    );

    assert_eq!(config.virtual_network("hub"), Some(hub));
    assert_eq!(config.load_balancer("nva-ilb"), Some(lb));
    assert_eq!(
        config.load_balancer_by_frontend(ip("10.1.0.100").into()),
        Some(lb)
    );
    assert_eq!(config.nic("vm1-nic"), Some(nic));
    assert_eq!(config.nic("vm2-nic"), None);
}

#[test]
fn load_reads_the_file() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/seed.toml");
    assert_eq!(
        config::load(path).unwrap(),
        config::parse(SEED, "seed.toml").unwrap()
    );
}

#[test]
fn load_names_a_missing_file() {
    let err = config::load("/nonexistent/nexthop.toml").unwrap_err();
    assert_eq!(err.len(), 1);
    let line = err.to_string();
    assert!(
        line.starts_with("/nonexistent/nexthop.toml: cannot read: "),
        "{line}"
    );
}

#[test]
fn empty_file_is_an_empty_config() {
    assert_eq!(config::parse("", "empty.toml").unwrap(), Config::default());
}

/// The serde types on their own (toml's deserializer, no key-path tracking) agree with `parse`.
#[test]
fn plain_serde_agrees_with_parse() {
    let full = format!("{SEED}\n{}", include_str!("full.toml"));
    let parsed = config::parse(&full, "full.toml").unwrap();
    let plain: Config = toml::from_str(&full).unwrap();
    assert_eq!(parsed, plain);
    // And deny_unknown_fields holds there too.
    assert!(toml::from_str::<Config>("[api]\nlisten = \"127.0.0.1:1\"\nextra = 1\n").is_err());
}
