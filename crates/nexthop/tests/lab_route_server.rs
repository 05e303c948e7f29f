//! End-to-end tests of `nexthop run` against real BGP peers, in the seed's topology (SPEC §6):
//! route server instances 10.1.1.4 and 10.1.1.5 (both on the one interface of namespace "rs"),
//! AS 65515, virtual network hub 10.1.0.0/16, NVAs on 10.1.2.0/24 of the same LAN advertising
//! their prefixes with the load balancer frontend 10.1.0.100 as next hop.
//!
//! ```text
//!   nva1     (FRR  10.1.2.10) ──┐
//!   nva2     (BIRD 10.1.2.11) ──┤
//!   nva3     (raw  10.1.2.12) ──┼── br0 (hub netns) ──── rs: nexthop run, 10.1.1.4 + 10.1.1.5
//!   intruder (     10.1.2.99) ──┘                         API 127.0.0.1:8179, queried with the
//!                                                         CLI / curl via `ip netns exec rs`
//! ```
//!
//! Every namespace, daemon and the nexthop process itself live in labtest handles, which tear
//! them down when the test ends, also when it panics. The tests skip (cleanly) without root,
//! network namespaces or the peer daemons; `LABTEST_REQUIRE=1` turns a skip into a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use labtest::{Bfdd, Bird, BirdBuilder, BirdPeer, Frr, FrrNeighbor, Lan, Netns, Process, Workdir};
use serde_json::Value;

const NEXTHOP: &str = env!("CARGO_BIN_EXE_nexthop");
/// The API listens on the loopback of the "rs" namespace, so a fixed port never collides.
const API: &str = "http://127.0.0.1:8179";
/// FRR's connect timer is 5 s (labtest), nexthop's 5 s; BIRD retries after 5 s.
const UP: Duration = Duration::from_secs(60);
const IN0: &str = "RouteServiceRole_IN_0";
const IN1: &str = "RouteServiceRole_IN_1";
const INSTANCES: [(&str, &str); 2] = [(IN0, "10.1.1.4"), (IN1, "10.1.1.5")];
const BRANCH: &str = "192.168.10.0/24";
const LB_FRONTEND: &str = "10.1.0.100";

// ---------------------------------------------------------------------------------------------
// The route server under test
// ---------------------------------------------------------------------------------------------

/// One configured NVA: (name, address, ASN).
type PeerDef = (&'static str, &'static str, u32);
const NVA1: PeerDef = ("nva1", "10.1.2.10", 65001);
const NVA2: PeerDef = ("nva2", "10.1.2.11", 65001);
const NVA3: PeerDef = ("nva3", "10.1.2.12", 65003);

/// The seed's config (SPEC §6) with `peers` and extra `[route_server]` keys.
fn seed_config(peers: &[PeerDef], route_server_extra: &str) -> String {
    let mut c = String::from(
        r#"[[virtual_network]]
name = "hub"
region = "westeurope"
address_space = ["10.1.0.0/16"]

[route_server]
asn = 65515
virtual_network = "hub"
instances = ["10.1.1.4", "10.1.1.5"]
"#,
    );
    c.push_str(route_server_extra);
    c.push('\n');
    for (name, address, asn) in peers {
        c.push_str(&format!(
            "\n[[route_server.peer]]\nname = \"{name}\"\naddress = \"{address}\"\nasn = {asn}\n"
        ));
    }
    c.push_str(
        r#"
[[load_balancer]]
name = "nva-ilb"
virtual_network = "hub"
frontend = "10.1.0.100"
mode = "active-passive"
backends = [{ address = "10.1.2.10", priority = 1 }, { address = "10.1.2.11", priority = 2 }]
probe = { protocol = "http", port = 8080, path = "/health", interval_ms = 1000, rise = 2, fall = 2 }

[[nic]]
name = "vm1-nic"
virtual_network = "hub"
address = "10.1.3.10"

[api]
listen = "127.0.0.1:8179"
"#,
    );
    c
}

/// `nexthop run` inside a namespace; stopped when dropped (and by the namespace's drop).
struct RouteServer<'a> {
    // Field order is drop order: the process stops before its directory goes.
    process: Process,
    ns: &'a Netns,
    dir: Workdir,
}

impl<'a> RouteServer<'a> {
    fn start(ns: &'a Netns, config: &str) -> RouteServer<'a> {
        let dir = Workdir::new("nexthop").unwrap();
        let conf = dir.write("nexthop.toml", config).unwrap();
        let mut cmd = ns.command(NEXTHOP);
        cmd.env("NEXTHOP_LOG", "info")
            .arg("run")
            .arg("--config")
            .arg(&conf);
        let process = Process::spawn(cmd, "nexthop", &dir.file("nexthop.log")).unwrap();
        let mut rs = RouteServer { process, ns, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                rs.process.is_running(),
                "nexthop exited early:\n{}",
                rs.log()
            );
            if rs.cli(&["peers", "-o", "json"]).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "nexthop API did not answer within 30 s:\n{}",
                rs.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        rs
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.file("nexthop.log")).unwrap_or_default()
    }

    /// Runs the CLI against this route server's API (inside its namespace).
    fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .ns
            .command(NEXTHOP)
            .args(["--api", API])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "nexthop {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ))
        }
    }

    fn json(&self, args: &[&str]) -> Value {
        let text = self.cli(args).unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("nexthop {args:?}: {e}: {text}"))
    }

    fn peers(&self) -> Value {
        self.json(&["peers", "-o", "json"])
    }

    /// The peers JSON entry of `name` on `instance` (Null if absent).
    fn peer(&self, instance: &str, name: &str) -> Value {
        find_by(&self.peers()[instance], "name", name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn learned(&self, peer: &str) -> Value {
        self.json(&["routes", "learned", "--peer", peer, "-o", "json"])
    }

    fn rib(&self) -> Value {
        self.json(&["rib", "-o", "json"])
    }

    fn metrics(&self) -> String {
        self.ns
            .exec(
                "curl",
                &["-sSf", "--max-time", "10", &format!("{API}/metrics")],
            )
            .unwrap()
    }

    /// True when `name` is Established on every instance.
    fn established_everywhere(&self, name: &str) -> bool {
        let p = self.peers();
        INSTANCES.iter().all(|(inst, _)| {
            find_by(&p[*inst], "name", name).is_some_and(|x| x["state"] == "Established")
        })
    }

    /// True when `peer` has `network` learned (and not refused) on every instance.
    fn learned_everywhere(&self, peer: &str, network: &str) -> bool {
        let l = self.learned(peer);
        INSTANCES.iter().all(|(inst, _)| {
            find_by(&l[*inst], "network", network).is_some_and(|r| r.get("state").is_none())
        })
    }

    /// Waits until `peer` is Established on both instances; panics with both sides' logs.
    fn wait_established(&self, peer: &str, other_log: impl Fn() -> String) {
        let ok = labtest::wait_until(UP, || self.established_everywhere(peer));
        assert!(
            ok,
            "{peer} not Established on both instances within {UP:?}\npeers: {}\n--- nexthop log ---\n{}\n--- peer log ---\n{}",
            self.peers(),
            self.log(),
            other_log()
        );
    }

    /// The `uptime` of `peer` on each instance.
    fn uptimes(&self, peer: &str) -> Vec<u64> {
        INSTANCES
            .iter()
            .map(|(inst, _)| {
                let p = self.peer(inst, peer);
                assert_eq!(p["state"], "Established", "{inst}: {p}");
                p["uptime"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{inst}: no uptime: {p}"))
            })
            .collect()
    }
}

/// The element of a JSON array whose `key` equals `value`.
fn find_by<'v>(array: &'v Value, key: &str, value: &str) -> Option<&'v Value> {
    array.as_array()?.iter().find(|x| x[key] == value)
}

/// Asserts that `peer`'s session never went down since `before` was taken at `since`: it is
/// Established on both instances with an uptime that grew by the time that passed, and its
/// branch route is still learned everywhere.
fn assert_undisturbed(rs: &RouteServer, peer: &str, before: &[u64], since: Instant) {
    let after = rs.uptimes(peer);
    let passed = since.elapsed().as_secs();
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(
            *a + 1 >= b + passed,
            "{}: {peer} uptime {b} s → {a} s over {passed} s: the session was reset\n{}",
            INSTANCES[i].0,
            rs.log()
        );
    }
    assert!(
        rs.learned_everywhere(peer, BRANCH),
        "{peer} lost {BRANCH}: {}",
        rs.learned(peer)
    );
    println!("{peer} undisturbed: uptime {before:?} → {after:?} over {passed} s");
}

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

/// The seed's NVA in FRR: both instances as neighbors, `route-map SET-NEXTHOP` out.
fn seed_nva(ns: &Netns) -> Frr {
    let mut b = Frr::builder(65001, "10.1.2.10").hostname("nva1");
    for (_, addr) in INSTANCES {
        b = b
            .neighbor(FrrNeighbor::new(addr, 65515).route_map_out("SET-NEXTHOP"))
            .ipv4_line(&format!("neighbor {addr} next-hop-self"));
    }
    b.network(BRANCH)
        .config_line(&format!(
            "route-map SET-NEXTHOP permit 10\n set ip next-hop {LB_FRONTEND}\nexit\n!"
        ))
        .start(Some(ns))
        .unwrap()
}

/// BIRD as nva2, peering with both instances and exporting only its static routes through
/// `export` (a filter body run for static routes; everything else is rejected).
fn bird_nva2(export: &str) -> BirdBuilder {
    let filter = format!("if source = RTS_STATIC then {{ {export} accept; }} reject;");
    Bird::builder(65001, "10.1.2.11")
        .peer(BirdPeer::new("rs0", "10.1.1.4", 65515).export_filter(&filter))
        .peer(BirdPeer::new("rs1", "10.1.1.5", 65515).export_filter(&filter))
}

/// Runs several vtysh commands in one session (labtest's `Frr::vtysh` takes one `-c`).
fn vtysh_config(frr: &Frr, commands: &[&str]) {
    let vtysh = labtest::find_binary("vtysh").expect("vtysh");
    let mut cmd = Command::new(vtysh);
    cmd.arg("--vty_socket")
        .arg(frr.workdir())
        .args(["-d", "bgpd"]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !text.contains('%'),
        "vtysh {commands:?}: {}: {text}",
        out.status
    );
}

fn python3() -> PathBuf {
    // Inside `ip netns exec`, prefer the system interpreter over a version-manager shim.
    let system = Path::new("/usr/bin/python3");
    if system.exists() {
        system.to_path_buf()
    } else {
        labtest::find_binary("python3").expect("python3")
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The seed, with FRR as the NVA
// ---------------------------------------------------------------------------------------------

#[test]
fn frr_seed_nva_learned_on_both_instances() {
    if !labtest::require_netns(&["bgpd", "vtysh"]) {
        return;
    }
    let started = Instant::now();
    let lan = Lan::new(&[
        ("nva1", &["10.1.2.10/16"]),
        ("rs", &["10.1.1.4/16", "10.1.1.5/16"]),
    ])
    .unwrap();
    let rs = RouteServer::start(lan.ns("rs"), &seed_config(&[NVA1], ""));
    let frr = seed_nva(lan.ns("nva1"));

    rs.wait_established("nva1", || frr.log());
    for (_, addr) in INSTANCES {
        assert!(
            labtest::wait_until(UP, || frr.neighbor_state(addr) == "Established"),
            "FRR → {addr}: {}",
            frr.neighbor_state(addr)
        );
    }
    println!("both sessions Established after {:?}", started.elapsed());
    println!(
        "$ nexthop peers -o json\n{}",
        rs.cli(&["peers", "-o", "json"]).unwrap()
    );

    assert!(
        labtest::wait_until(UP, || rs.learned_everywhere("nva1", BRANCH)),
        "{BRANCH} not learned from nva1 on both instances: {}",
        rs.learned("nva1")
    );
    let text = rs
        .cli(&["routes", "learned", "--peer", "nva1", "-o", "json"])
        .unwrap();
    println!("$ nexthop routes learned --peer nva1 -o json\n{text}");
    let learned: Value = serde_json::from_str(&text).unwrap();
    for (inst, addr) in INSTANCES {
        let r = find_by(&learned[inst], "network", BRANCH).unwrap();
        assert_eq!(r["nextHop"], LB_FRONTEND, "{inst}: {r}");
        assert_eq!(r["sourcePeer"], "10.1.2.10", "{inst}: {r}");
        assert_eq!(r["asPath"], "65001", "{inst}: {r}");
        assert_eq!(r["origin"], "EBgp", "{inst}: {r}");
        assert_eq!(r["weight"], 32768, "{inst}: {r}");
        assert_eq!(r["localAddress"], addr, "{inst}: {r}");
        assert!(r.get("state").is_none(), "{inst}: refused: {r}");
        // FRR sends the hub's prefix back (AS path 65001 65515): held, refused as a loop.
        if let Some(r) = find_by(&learned[inst], "network", "10.1.0.0/16") {
            assert_eq!(r["state"], "Invalid", "{inst}: {r}");
            assert!(
                r["reason"].as_str().is_some_and(|w| w.contains("65515")),
                "{inst}: {r}"
            );
        }
    }

    // FRR holds the hub's address space from both instances: two paths, one per instance.
    let both = labtest::wait_until(UP, || {
        frr.routes()
            .is_ok_and(|r| r.iter().filter(|r| r.prefix == "10.1.0.0/16").count() == 2)
    });
    let table = frr.vtysh("show bgp ipv4 unicast json").unwrap();
    println!("FRR: show bgp ipv4 unicast json\n{table}");
    assert!(both, "FRR did not get 10.1.0.0/16 from both instances");
    let table = frr.vtysh_json("show bgp ipv4 unicast json").unwrap();
    let paths = table["routes"]["10.1.0.0/16"].as_array().unwrap();
    let mut next_hops: Vec<&str> = paths
        .iter()
        .map(|p| p["nexthops"][0]["ip"].as_str().unwrap_or_default())
        .collect();
    next_hops.sort();
    assert_eq!(next_hops, ["10.1.1.4", "10.1.1.5"], "{table:?}");
    for p in paths {
        assert_eq!(p["path"].as_str(), Some("65515"), "{p:?}");
    }

    let text = rs
        .cli(&["routes", "advertised", "--peer", "nva1", "-o", "json"])
        .unwrap();
    println!("$ nexthop routes advertised --peer nva1 -o json\n{text}");
    let advertised: Value = serde_json::from_str(&text).unwrap();
    for (inst, addr) in INSTANCES {
        let r = find_by(&advertised[inst], "network", "10.1.0.0/16")
            .unwrap_or_else(|| panic!("{inst}: 10.1.0.0/16 not advertised: {advertised}"));
        assert_eq!(r["nextHop"], addr, "{inst}: {r}");
        assert_eq!(r["asPath"], "65515", "{inst}: {r}");
        assert_eq!(r["origin"], "Igp", "{inst}: {r}");
    }
    println!("done in {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// 1b. Dual stack: IPv6 over an IPv4 session (FRR, MP-BGP) and over IPv6 sessions (BIRD)
// ---------------------------------------------------------------------------------------------

const BRANCH6: &str = "fd00:10::/48";
const LB_FRONTEND6: &str = "fd00:1::100";
const INSTANCES6: [(&str, &str); 2] = [(IN0, "fd00:1:1::4"), (IN1, "fd00:1:1::5")];

/// The seed's config with the hub's IPv6 space and instance addresses (issue #16's keys), FRR
/// as nva1 on IPv4, BIRD as nva2 on IPv6 (both families), GoBGP as nva3 on IPv6 (IPv6 only).
fn dual_stack_config() -> String {
    seed_config(&[NVA1], "instances_ipv6 = [\"fd00:1:1::4\", \"fd00:1:1::5\"]")
        .replace(
            r#"address_space = ["10.1.0.0/16"]"#,
            r#"address_space = ["10.1.0.0/16", "fd00:1::/48"]"#,
        )
        .replace(
            "\n[[load_balancer]]",
            "\n[[route_server.peer]]\nname = \"nva2\"\naddress = \"fd00:1:2::11\"\nasn = 65002\n\n[[route_server.peer]]\nname = \"nva3\"\naddress = \"fd00:1:2::12\"\nasn = 65003\n\n[[load_balancer]]",
        )
}

#[test]
fn dual_stack_ipv6_learned_over_ipv4_and_ipv6_sessions() {
    if !labtest::require_netns(&["bgpd", "vtysh", "bird", "birdc", "gobgpd", "gobgp"]) {
        return;
    }
    let started = Instant::now();
    let lan = Lan::new(&[
        ("nva1", &["10.1.2.10/16", "fd00:1:2::10/32"]),
        ("nva2", &["10.1.2.11/16", "fd00:1:2::11/32"]),
        ("nva3", &["10.1.2.12/16", "fd00:1:2::12/32"]),
        (
            "rs",
            &[
                "10.1.1.4/16",
                "10.1.1.5/16",
                "fd00:1:1::4/32",
                "fd00:1:1::5/32",
            ],
        ),
    ])
    .unwrap();
    let config = dual_stack_config();
    let rs = RouteServer::start(lan.ns("rs"), &config);

    // nva1: FRR over IPv4 sessions, IPv6 unicast activated on them (MP-BGP), the IPv6 branch
    // with the IPv6 frontend as next hop.
    let mut b = Frr::builder(65001, "10.1.2.10").hostname("nva1");
    for (_, addr) in INSTANCES {
        b = b
            .neighbor(
                FrrNeighbor::new(addr, 65515)
                    .route_map_out("SET-NEXTHOP")
                    .ipv6(),
            )
            .ipv6_line(&format!("neighbor {addr} route-map SET-NEXTHOP6 out"));
    }
    let frr = b
        .network(BRANCH)
        .network(BRANCH6)
        .config_line(&format!(
            "route-map SET-NEXTHOP permit 10\n set ip next-hop {LB_FRONTEND}\nexit\n!"
        ))
        .config_line(&format!(
            "route-map SET-NEXTHOP6 permit 10\n set ipv6 next-hop global {LB_FRONTEND6}\nexit\n!"
        ))
        .start(Some(lan.ns("nva1")))
        .unwrap();
    // nva2: BIRD over IPv6 sessions to the instances' IPv6 addresses.
    let filter = "if source = RTS_STATIC then accept; reject;";
    let mut bb = Bird::builder(65002, "10.1.2.11");
    for (i, (_, addr)) in INSTANCES6.iter().enumerate() {
        bb = bb.peer(
            BirdPeer::new(&format!("rs{i}"), addr, 65515)
                .ipv6()
                .next_hop_address(LB_FRONTEND6)
                .export_filter(filter),
        );
    }
    let bird = bb
        .static_route(BRANCH6)
        .start(Some(lan.ns("nva2")))
        .unwrap();

    // nva3: GoBGP over IPv6 sessions that carry IPv6 unicast only.
    let mut gb = labtest::GoBgp::builder(65003, "10.1.2.12").listen("fd00:1:2::12");
    for (_, addr) in INSTANCES6 {
        gb = gb.neighbor(labtest::GoBgpNeighbor::new(addr, 65515));
    }
    let gobgp = gb.start(Some(lan.ns("nva3"))).unwrap();

    rs.wait_established("nva1", || frr.log());
    rs.wait_established("nva2", || bird.log());
    rs.wait_established("nva3", || gobgp.log());
    gobgp.add_route(BRANCH6, LB_FRONTEND6, &[]).unwrap();
    println!("all sessions Established after {:?}", started.elapsed());
    let peers = rs.peers();
    println!("$ nexthop peers -o json\n{peers}");
    for (inst, _) in INSTANCES {
        let p1 = find_by(&peers[inst], "name", "nva1").unwrap();
        let fams: Vec<&str> = p1["addressFamilies"]
            .as_array()
            .unwrap_or_else(|| panic!("{inst}: no addressFamilies: {p1}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(fams, ["ipv4-unicast", "ipv6-unicast"], "{inst}: {p1}");
        let p2 = find_by(&peers[inst], "name", "nva2").unwrap();
        assert_eq!(p2["peerIp"], "fd00:1:2::11", "{inst}: {p2}");
        let p3 = find_by(&peers[inst], "name", "nva3").unwrap();
        assert_eq!(
            p3["addressFamilies"],
            serde_json::json!(["ipv6-unicast"]),
            "{inst}: {p3}"
        );
    }

    // Both instances learn the IPv6 branch from every NVA, next hop the IPv6 frontend.
    let learned_both = || {
        ["nva1", "nva2", "nva3"]
            .iter()
            .all(|peer| rs.learned_everywhere(peer, BRANCH6))
    };
    assert!(
        labtest::wait_until(UP, learned_both),
        "{BRANCH6} not learned from every NVA on both instances:\nnva1: {}\nnva2: {}\nnva3: {}\n{}",
        rs.learned("nva1"),
        rs.learned("nva2"),
        rs.learned("nva3"),
        rs.log()
    );
    for peer in ["nva1", "nva2", "nva3"] {
        let learned = rs.learned(peer);
        for (inst, addr6) in INSTANCES6 {
            let r = find_by(&learned[inst], "network", BRANCH6).unwrap();
            assert_eq!(r["nextHop"], LB_FRONTEND6, "{inst} {peer}: {r}");
            assert_eq!(r["localAddress"], addr6, "{inst} {peer}: {r}");
        }
    }
    // IPv4 is untouched by the IPv6 next to it.
    assert!(
        rs.learned_everywhere("nva1", BRANCH),
        "{}",
        rs.learned("nva1")
    );
    // One Loc-RIB entry per instance with three paths and one forwarding next hop.
    let rib = rs.rib();
    for (inst, _) in INSTANCES {
        let e = rib_entry(&rib, inst, BRANCH6).unwrap_or_else(|| panic!("{inst}: {rib}"));
        assert_eq!(e["paths"].as_array().map(Vec::len), Some(3), "{inst}: {e}");
        assert_eq!(
            e["forwardingNextHops"],
            serde_json::json!([LB_FRONTEND6]),
            "{inst}: {e}"
        );
    }

    // The peers get the hub's IPv6 space from each instance, next hop that instance's IPv6
    // address: FRR over its IPv4 sessions, BIRD over its IPv6 ones.
    let frr_has = || {
        frr.routes().is_ok_and(|r| {
            let mut nh: Vec<String> = r
                .iter()
                .filter(|r| r.prefix == "fd00:1::/48")
                .map(|r| r.next_hop.clone())
                .collect();
            nh.sort();
            nh == ["fd00:1:1::4", "fd00:1:1::5"]
        })
    };
    let ok = labtest::wait_until(UP, frr_has);
    let table = frr.vtysh("show bgp ipv6 unicast json").unwrap_or_default();
    assert!(
        ok,
        "FRR did not get fd00:1::/48 from both instances:\n{table}"
    );
    let bird_has = || {
        bird.routes()
            .is_ok_and(|r| r.iter().filter(|r| r.prefix == "fd00:1::/48").count() == 2)
    };
    let ok = labtest::wait_until(UP, bird_has);
    assert!(
        ok,
        "BIRD did not get fd00:1::/48 from both instances:\n{}",
        bird.birdc("show route all").unwrap_or_default()
    );
    let adv = rs.json(&["routes", "advertised", "--peer", "nva2", "-o", "json"]);
    for (inst, addr6) in INSTANCES6 {
        let r = find_by(&adv[inst], "network", "fd00:1::/48")
            .unwrap_or_else(|| panic!("{inst}: {adv}"));
        assert_eq!(r["nextHop"], addr6, "{inst}: {r}");
        // BIRD's IPv4 channel is on too (MP-BGP over IPv6): the IPv4 space goes with the
        // instance's IPv4 address as next hop.
        let r = find_by(&adv[inst], "network", "10.1.0.0/16")
            .unwrap_or_else(|| panic!("{inst}: {adv}"));
        assert_eq!(
            r["nextHop"],
            INSTANCES[inst.ends_with('1') as usize].1,
            "{r}"
        );
    }

    // GoBGP got the hub's IPv6 space over its IPv6-only sessions (and no IPv4).
    let gb_has = || {
        gobgp.routes().is_ok_and(|r| {
            r.iter().filter(|r| r.prefix == "fd00:1::/48").count() == 2
                && !r.iter().any(|r| r.prefix == "10.1.0.0/16")
        })
    };
    assert!(
        labtest::wait_until(UP, gb_has),
        "GoBGP: {:?}",
        gobgp.routes()
    );
    // BIRD and GoBGP withdraw: only FRR's path is left, everywhere.
    bird.birdc("disable rs0").unwrap();
    bird.birdc("disable rs1").unwrap();
    gobgp.del_route(BRANCH6).unwrap();
    let one = labtest::wait_until(UP, || {
        let rib = rs.rib();
        INSTANCES.iter().all(|(inst, _)| {
            rib_entry(&rib, inst, BRANCH6)
                .is_some_and(|e| e["paths"].as_array().map(Vec::len) == Some(1))
        })
    });
    assert!(
        one,
        "BIRD's and GoBGP's IPv6 paths not withdrawn: {}",
        rs.rib()
    );
    println!("done in {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// 2. Two NVAs: ECMP, standby by prepending, failover on withdraw
// ---------------------------------------------------------------------------------------------

/// The Loc-RIB entry of `network` on `instance`.
fn rib_entry(rib: &Value, instance: &str, network: &str) -> Option<Value> {
    find_by(&rib[instance], "network", network).cloned()
}

/// Waits until every instance's Loc-RIB entry for the branch prefix satisfies `ok`.
fn wait_rib(rs: &RouteServer, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let done = labtest::wait_until(UP, || {
        let rib = rs.rib();
        INSTANCES
            .iter()
            .all(|(inst, _)| rib_entry(&rib, inst, BRANCH).is_some_and(|e| ok(&e)))
    });
    let text = rs.cli(&["rib", "-o", "json"]).unwrap();
    println!("$ nexthop rib -o json   ({what})\n{text}");
    assert!(done, "{what}: not reached within {UP:?}:\n{text}");
    serde_json::from_str(&text).unwrap()
}

fn path_summary(e: &Value) -> Vec<(String, String, bool)> {
    e["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["sourcePeer"].as_str().unwrap_or_default().to_string(),
                p["asPath"].as_str().unwrap_or_default().to_string(),
                p["best"] == true,
            )
        })
        .collect()
}

#[test]
fn two_nvas_ecmp_prepend_and_failover() {
    if !labtest::require_netns(&["bgpd", "vtysh", "bird", "birdc"]) {
        return;
    }
    let started = Instant::now();
    let lan = Lan::new(&[
        ("nva1", &["10.1.2.10/16"]),
        ("nva2", &["10.1.2.11/16"]),
        ("rs", &["10.1.1.4/16", "10.1.1.5/16"]),
    ])
    .unwrap();
    let rs = RouteServer::start(lan.ns("rs"), &seed_config(&[NVA1, NVA2], ""));
    let frr = seed_nva(lan.ns("nva1"));
    let active = "bgp_next_hop = 10.1.0.100;";
    let standby = "bgp_path.prepend(65001); bgp_path.prepend(65001); bgp_next_hop = 10.1.0.100;";
    let bird = bird_nva2(active)
        .static_route(BRANCH)
        .start(Some(lan.ns("nva2")))
        .unwrap();
    rs.wait_established("nva1", || frr.log());
    rs.wait_established("nva2", || bird.log());
    println!("both NVAs Established after {:?}", started.elapsed());

    // Active-active: the same prefix with the same next hop from both NVAs → two paths, one
    // forwarding next hop.
    let rib = wait_rib(&rs, "ECMP over nva1 and nva2", |e| {
        e["paths"].as_array().is_some_and(|p| p.len() == 2)
    });
    for (inst, _) in INSTANCES {
        let e = rib_entry(&rib, inst, BRANCH).unwrap();
        let mut peers: Vec<String> = path_summary(&e).into_iter().map(|p| p.0).collect();
        peers.sort();
        assert_eq!(peers, ["nva1", "nva2"], "{inst}: {e}");
        for p in e["paths"].as_array().unwrap() {
            assert_eq!(p["nextHop"], LB_FRONTEND, "{inst}: {e}");
            assert_eq!(p["asPath"], "65001", "{inst}: {e}");
        }
        assert_eq!(
            e["forwardingNextHops"],
            serde_json::json!([LB_FRONTEND]),
            "{inst}: {e}"
        );
        let best = e["paths"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["best"] == true)
            .count();
        assert_eq!(best, 1, "{inst}: exactly one best path: {e}");
    }
    println!("ECMP reached after {:?}", started.elapsed());

    // The fabric (issue #5): vm1-nic's effective routes have the branch once, next hop the LB
    // frontend resolved through nva-ilb, although both NVAs and both instances learned it.
    let eff = rs.json(&["effective-routes", "--nic", "vm1-nic", "-o", "json"]);
    println!("effective routes of vm1-nic:\n{eff:#}");
    let branch: Vec<&Value> = eff["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["addressPrefix"][0] == BRANCH)
        .collect();
    assert_eq!(branch.len(), 1, "{eff}");
    assert_eq!(branch[0]["source"], "VirtualNetworkGateway");
    assert_eq!(branch[0]["state"], "Active");
    assert_eq!(branch[0]["nextHopType"], "VirtualNetworkGateway");
    assert_eq!(
        branch[0]["nextHopIpAddress"],
        serde_json::json!([LB_FRONTEND])
    );
    assert_eq!(branch[0]["loadBalancer"], "nva-ilb");

    // BIRD becomes the standby: it prepends its AS twice; `birdc configure` re-exports.
    let conf = bird_nva2(standby)
        .static_route(BRANCH)
        .render(&bird.workdir().join("bird.log").display().to_string());
    std::fs::write(bird.workdir().join("bird.conf"), conf).unwrap();
    let out = bird.birdc("configure").unwrap();
    println!("birdc configure: {out}");
    assert!(out.contains("Reconfigur"), "birdc configure: {out}");
    let rib = wait_rib(&rs, "nva2 prepended: only nva1 in the ECMP set", |e| {
        path_summary(e) == [("nva1".to_string(), "65001".to_string(), true)]
    });
    for (inst, _) in INSTANCES {
        let e = rib_entry(&rib, inst, BRANCH).unwrap();
        assert_eq!(e["forwardingNextHops"], serde_json::json!([LB_FRONTEND]));
    }
    // The standby's path is still held (Adj-RIB-In), just not in the ECMP set.
    let learned = rs.learned("nva2");
    println!("$ nexthop routes learned --peer nva2 -o json\n{learned:#}");
    for (inst, _) in INSTANCES {
        let r = find_by(&learned[inst], "network", BRANCH)
            .unwrap_or_else(|| panic!("{inst}: nva2's standby path not held: {learned}"));
        assert_eq!(r["asPath"], "65001 65001 65001", "{inst}: {r}");
    }
    assert!(rs.established_everywhere("nva2"), "{}", rs.peers());
    println!("standby reached after {:?}", started.elapsed());

    // The active NVA withdraws: the standby's path becomes best.
    vtysh_config(
        &frr,
        &[
            "configure terminal",
            "router bgp 65001",
            "address-family ipv4 unicast",
            &format!("no network {BRANCH}"),
        ],
    );
    let rib = wait_rib(&rs, "nva1 withdrew: nva2 best", |e| {
        path_summary(e) == [("nva2".to_string(), "65001 65001 65001".to_string(), true)]
    });
    for (inst, _) in INSTANCES {
        let e = rib_entry(&rib, inst, BRANCH).unwrap();
        assert_eq!(e["forwardingNextHops"], serde_json::json!([LB_FRONTEND]));
        assert_eq!(e["paths"][0]["nextHop"], LB_FRONTEND);
    }
    let learned = rs.learned("nva1");
    for (inst, _) in INSTANCES {
        assert!(
            find_by(&learned[inst], "network", BRANCH).is_none(),
            "{inst}: nva1 still has {BRANCH}: {learned}"
        );
    }
    assert!(rs.established_everywhere("nva1"), "{}", rs.peers());
    println!("failover reached after {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// 3. Route limit
// ---------------------------------------------------------------------------------------------

#[test]
fn route_limit_tears_down_only_that_peer() {
    route_limit_scenario(false);
}

/// SPEC §3 / the brief: after a route-limit teardown the peer may reconnect only after a 30 s
/// back-off. BIRD retries after 5 s (`error wait time 5, 30`), and nexthop lets it in.
#[test]
fn route_limit_backoff_keeps_the_peer_out_for_30_s() {
    route_limit_scenario(true);
}

/// nva1 (FRR) advertises the branch prefix; nva2 (BIRD) advertises 4001 /32s against
/// `max_routes_per_peer = 4000`. With `watch_backoff`, also checks that nva2 stays out for the
/// back-off.
fn route_limit_scenario(watch_backoff: bool) {
    if !labtest::require_netns(&["bgpd", "vtysh", "bird", "birdc"]) {
        return;
    }
    let started = Instant::now();
    let lan = Lan::new(&[
        ("nva1", &["10.1.2.10/16"]),
        ("nva2", &["10.1.2.11/16"]),
        ("rs", &["10.1.1.4/16", "10.1.1.5/16"]),
    ])
    .unwrap();
    let rs = RouteServer::start(
        lan.ns("rs"),
        &seed_config(&[NVA1, NVA2], "max_routes_per_peer = 4000"),
    );
    let frr = seed_nva(lan.ns("nva1"));
    rs.wait_established("nva1", || frr.log());
    assert!(
        labtest::wait_until(UP, || rs.learned_everywhere("nva1", BRANCH)),
        "{}",
        rs.learned("nva1")
    );
    let nva1_before = rs.uptimes("nva1");
    let nva1_since = Instant::now();

    // 4001 /32s: one more than the limit.
    let mut bird = bird_nva2("bgp_next_hop = 10.1.0.100;");
    for i in 0..4001u32 {
        bird = bird.static_route(&format!("172.16.{}.{}/32", i / 256, i % 256));
    }
    let bird = bird.start(Some(lan.ns("nva2"))).unwrap();

    let limited = |p: &Value| {
        p["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("maximum number of prefixes"))
            && p["routesReceived"] == 0
            && p["state"] != "Established"
    };
    let nva2_routes = |rib: &Value, inst: &str| {
        rib[inst]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["network"].as_str().unwrap_or("").starts_with("172.16."))
            .count()
    };
    // Peers and Loc-RIB read together: torn down, counters at zero and every route withdrawn.
    let hit = labtest::wait_until(UP, || {
        let peers_ok = INSTANCES
            .iter()
            .all(|(inst, _)| limited(&rs.peer(inst, "nva2")));
        let rib = rs.rib();
        peers_ok
            && INSTANCES
                .iter()
                .all(|(inst, _)| nva2_routes(&rib, inst) == 0)
    });
    let hit_at = Instant::now();
    let rib = rs.rib();
    println!(
        "limit hit after {:?}\n$ nexthop peers -o json\n{}",
        started.elapsed(),
        rs.cli(&["peers", "-o", "json"]).unwrap()
    );
    assert!(
        hit,
        "nva2 not torn down with its routes withdrawn on both instances: {}\n{} / {} of its routes in the Loc-RIB\n--- nexthop log ---\n{}\n--- bird log ---\n{}",
        rs.peers(),
        nva2_routes(&rib, IN0),
        nva2_routes(&rib, IN1),
        rs.log(),
        bird.log()
    );
    for (inst, _) in INSTANCES {
        println!(
            "{inst}: nva2 lastError: {}",
            rs.peer(inst, "nva2")["lastError"]
        );
        assert!(rib_entry(&rib, inst, BRANCH).is_some(), "{inst}: {rib}");
    }

    // BIRD saw a Cease / Maximum number of prefixes reached NOTIFICATION on both sessions.
    for proto in ["rs0", "rs1"] {
        let seen = labtest::wait_until(Duration::from_secs(10), || {
            bird.birdc(&format!("show protocols all {proto}"))
                .is_ok_and(|o| o.contains("Received: Maximum number of prefixes reached"))
        });
        let out = bird.birdc(&format!("show protocols all {proto}")).unwrap();
        println!("birdc show protocols all {proto}\n{out}");
        assert!(seen, "{proto}: no Cease/1 received:\n{out}\n{}", bird.log());
    }

    // nva1 never noticed.
    assert_undisturbed(&rs, "nva1", &nva1_before, nva1_since);

    if watch_backoff {
        // nva2 may not come back before 30 s have passed since the teardown; watch 25 s.
        let mut back_early = None;
        while hit_at.elapsed() < Duration::from_secs(25) && back_early.is_none() {
            let p = rs.peers();
            for (inst, _) in INSTANCES {
                let n = find_by(&p[inst], "name", "nva2")
                    .cloned()
                    .unwrap_or_default();
                if n["state"] == "Established" || n["routesReceived"] != 0 {
                    back_early = Some((hit_at.elapsed(), inst.to_string(), n));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            back_early.is_none(),
            "nva2 came back during the 30 s back-off: {back_early:?}\n{}",
            rs.log()
        );
        assert_undisturbed(&rs, "nva1", &nva1_before, nva1_since);
    }
    println!("done in {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// 4. Unconfigured source address
// ---------------------------------------------------------------------------------------------

/// Connects, sends nothing, and reports how the connection ended and what was received.
const PROBE: &str = r#"
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.settimeout(10)
s.connect((sys.argv[2], 179))
data = b""
try:
    while True:
        d = s.recv(4096)
        if not d:
            print("EOF", data.hex()); break
        data += d
except ConnectionResetError:
    print("RESET", data.hex())
except socket.timeout:
    print("TIMEOUT", data.hex())
"#;

fn refused_count(metrics: &str, instance: &str) -> u64 {
    let key = format!("bgp_connections_refused_total{{instance=\"{instance}\"}}");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /metrics:\n{metrics}"))
}

#[test]
fn unconfigured_address_is_refused() {
    if !labtest::require_netns(&["python3", "curl"]) {
        return;
    }
    let started = Instant::now();
    let lan = Lan::new(&[
        ("intruder", &["10.1.2.99/16"]),
        ("rs", &["10.1.1.4/16", "10.1.1.5/16"]),
    ])
    .unwrap();
    let rs = RouteServer::start(lan.ns("rs"), &seed_config(&[NVA1], ""));
    let before = refused_count(&rs.metrics(), IN0);

    let out = lan
        .ns("intruder")
        .exec(
            python3().to_str().unwrap(),
            &["-c", PROBE, "10.1.2.99", "10.1.1.4"],
        )
        .unwrap();
    println!("connection from 10.1.2.99 to 10.1.1.4:179: {}", out.trim());
    let mut words = out.split_whitespace();
    let how = words.next().unwrap_or_default();
    let received = words.next().unwrap_or_default();
    assert!(
        how == "EOF" || how == "RESET",
        "the connection was not closed: {out}"
    );
    assert!(
        received.is_empty(),
        "bytes were sent (an OPEN?): {received}"
    );

    let metrics = rs.metrics();
    let after = refused_count(&metrics, IN0);
    for l in metrics.lines().filter(|l| l.contains("refused")) {
        println!("{l}");
    }
    assert!(after >= 1 && after > before, "refused {before} → {after}");
    // Only the instance that was connected to counted it.
    assert_eq!(refused_count(&metrics, IN1), 0);
    println!("done in {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// 5. Malformed UPDATEs from a raw peer (RFC 7606)
// ---------------------------------------------------------------------------------------------

fn bgp_message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&(19 + body.len() as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

/// An UPDATE announcing one prefix (`len`, then `bytes` as given, so a bad length can be sent)
/// from AS 65003 (4-octet AS_PATH: both sides offer the capability) via the LB frontend.
fn update(origin: u8, len: u8, bytes: &[u8]) -> Vec<u8> {
    let mut attrs = vec![0x40, 1, 1, origin];
    attrs.extend_from_slice(&[0x40, 2, 6, 2, 1]);
    attrs.extend_from_slice(&65003u32.to_be_bytes());
    attrs.extend_from_slice(&[0x40, 3, 4, 10, 1, 0, 100]);
    let mut body = vec![0, 0];
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(&attrs);
    body.push(len);
    body.extend_from_slice(bytes);
    bgp_message(2, &body)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The JSON lines the raw peer printed so far.
fn raw_events(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn has_event(events: &[Value], key: &str, value: &str) -> bool {
    events.iter().any(|e| e[key] == value)
}

#[test]
fn malformed_attribute_gets_rfc7606_outcome_and_spares_other_peers() {
    if !labtest::require_netns(&["bgpd", "vtysh", "python3"]) {
        return;
    }
    let started = Instant::now();
    let lan = Lan::new(&[
        ("nva1", &["10.1.2.10/16"]),
        ("nva3", &["10.1.2.12/16"]),
        ("rs", &["10.1.1.4/16", "10.1.1.5/16"]),
    ])
    .unwrap();
    let rs = RouteServer::start(lan.ns("rs"), &seed_config(&[NVA1, NVA3], ""));
    let frr = seed_nva(lan.ns("nva1"));
    rs.wait_established("nva1", || frr.log());
    assert!(
        labtest::wait_until(UP, || rs.learned_everywhere("nva1", BRANCH)),
        "{}",
        rs.learned("nva1")
    );

    let prefix = "192.168.30.0/24";
    let valid = update(0, 24, &[192, 168, 30]);
    let bad_origin = update(5, 24, &[192, 168, 30]);
    let bad_length = update(0, 33, &[192, 168, 31, 0, 0]);
    let work = Workdir::new("raw-peer").unwrap();
    let (go_a, go_b) = (work.file("go-a"), work.file("go-b"));
    let log = work.file("raw_peer.jsonl");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/raw_bgp_peer.py");
    let steps = [
        format!("hex:{}", hex(&valid)),
        format!("wait:{}", go_a.display()),
        format!("hex:{}", hex(&bad_origin)),
        format!("wait:{}", go_b.display()),
        format!("hex:{}", hex(&bad_length)),
    ];
    let mut args = vec![
        script.to_string(),
        "--local".into(),
        "10.1.2.12".into(),
        "--remote".into(),
        "10.1.1.4".into(),
        "--asn".into(),
        "65003".into(),
        "--router-id".into(),
        "10.1.2.12".into(),
    ];
    args.extend(steps);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let py = python3();
    let _raw = lan
        .ns("nva3")
        .spawn(py.to_str().unwrap(), &args, &log)
        .unwrap();
    let raw_log = || std::fs::read_to_string(&log).unwrap_or_default();

    let up = labtest::wait_until(UP, || {
        has_event(&raw_events(&log), "event", "established")
            && rs.peer(IN0, "nva3")["state"] == "Established"
    });
    assert!(
        up,
        "raw peer not Established: {}\n--- raw peer ---\n{}\n--- nexthop ---\n{}",
        rs.peer(IN0, "nva3"),
        raw_log(),
        rs.log()
    );
    let in0_has = |network: &str| {
        find_by(&rs.learned("nva3")[IN0], "network", network)
            .is_some_and(|r| r.get("state").is_none())
    };
    assert!(
        labtest::wait_until(UP, || in0_has(prefix)),
        "valid UPDATE not learned: {}\n{}",
        rs.learned("nva3"),
        raw_log()
    );
    let nva1_before = rs.uptimes("nva1");
    let nva1_since = Instant::now();
    let nva3_before = rs.peer(IN0, "nva3")["uptime"].as_u64().unwrap();

    // (a) ORIGIN 5: treat-as-withdraw (RFC 7606 §7.1). The session stays up, the prefix goes.
    std::fs::write(&go_a, "").unwrap();
    let withdrawn = labtest::wait_until(Duration::from_secs(30), || {
        raw_events(&log)
            .iter()
            .any(|e| e["event"] == "sent" && e["step"] == 2)
            && rs.peer(IN0, "nva3")["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("RFC 7606"))
            && !in0_has(prefix)
    });
    // Give a NOTIFICATION, if one were coming, time to arrive.
    std::thread::sleep(Duration::from_secs(2));
    let nva3 = rs.peer(IN0, "nva3");
    let learned = rs.learned("nva3");
    println!(
        "(a) after ORIGIN 5:\nnva3 on {IN0}: {nva3}\n$ nexthop routes learned --peer nva3 -o json\n{learned:#}\n--- raw peer ---\n{}",
        raw_log()
    );
    assert!(
        withdrawn,
        "ORIGIN 5 not treated as withdraw: {nva3}\n{learned}"
    );
    let events = raw_events(&log);
    assert!(
        !has_event(&events, "type", "NOTIFICATION") && !has_event(&events, "event", "eof"),
        "the session was reset on a treat-as-withdraw error:\n{}",
        raw_log()
    );
    assert_eq!(nva3["state"], "Established", "{nva3}");
    assert!(
        nva3["uptime"].as_u64().unwrap_or(0) >= nva3_before,
        "nva3 session restarted: {nva3}"
    );
    assert!(
        find_by(&learned[IN0], "network", prefix).is_none(),
        "{prefix} still held: {learned}"
    );
    assert_undisturbed(&rs, "nva1", &nva1_before, nva1_since);

    // (b) NLRI prefix length 33: session reset with UPDATE Message Error / Invalid Network
    // Field (3/10).
    std::fs::write(&go_b, "").unwrap();
    let notified = labtest::wait_until(Duration::from_secs(30), || {
        raw_events(&log)
            .iter()
            .any(|e| e["type"] == "NOTIFICATION" && e["code"] == 3 && e["subcode"] == 10)
    });
    println!("(b) after a /33:\n--- raw peer ---\n{}", raw_log());
    assert!(
        notified,
        "no NOTIFICATION 3/10:\n{}\n{}",
        raw_log(),
        rs.log()
    );
    let down = labtest::wait_until(Duration::from_secs(10), || {
        rs.peer(IN0, "nva3")["state"] != "Established"
    });
    let nva3 = rs.peer(IN0, "nva3");
    println!("nva3 on {IN0}: {nva3}");
    assert!(down, "nva3 still Established after the reset: {nva3}");
    assert!(
        rs.learned("nva3")[IN0]
            .as_array()
            .is_some_and(|a| a.is_empty()),
        "{}",
        rs.learned("nva3")
    );
    assert_undisturbed(&rs, "nva1", &nva1_before, nva1_since);
    println!("done in {:?}", started.elapsed());
}

/// The seed's FRR NVA, with the load balancer's virtual network (hub, where the NVAs and the LB
/// frontend 10.1.0.100 live) in another region than the route server's own network (peered
/// with hub): the branch route is Invalid with the cross-region reason in the NIC's effective
/// routes, the learned routes and the metric; a reload with the regions equal makes it valid.
#[test]
fn cross_region_lb_is_invalid_until_a_reload_fixes_it() {
    if !labtest::require_netns(&["bgpd", "vtysh"]) {
        return;
    }
    let config = |hub_region: &str| {
        seed_config(&[NVA1], "")
            .replace(
                "[route_server]\nasn = 65515\nvirtual_network = \"hub\"",
                "[route_server]\nasn = 65515\nvirtual_network = \"rsnet\"",
            )
            .replace(
                "[[virtual_network]]\nname = \"hub\"\nregion = \"westeurope\"\naddress_space = [\"10.1.0.0/16\"]\n",
                &format!(
                    "[[virtual_network]]\nname = \"hub\"\nregion = \"{hub_region}\"\naddress_space = [\"10.1.0.0/16\"]\n\n\
                     [[virtual_network]]\nname = \"rsnet\"\nregion = \"westeurope\"\naddress_space = [\"10.3.0.0/16\"]\npeerings = [\"hub\"]\n"
                ),
            )
    };
    let cfg = config("northeurope");
    assert!(
        cfg.contains("rsnet") && cfg.contains("northeurope"),
        "{cfg}"
    );
    let lan = Lan::new(&[
        ("nva1", &["10.1.2.10/16"]),
        ("rs", &["10.1.1.4/16", "10.1.1.5/16"]),
    ])
    .unwrap();
    let mut rs = RouteServer::start(lan.ns("rs"), &cfg);
    let frr = seed_nva(lan.ns("nva1"));
    rs.wait_established("nva1", || frr.log());
    // Learned (Invalid: see below) on both instances.
    assert!(
        labtest::wait_until(UP, || {
            let l = rs.json(&["routes", "learned", "--peer", "nva1", "-o", "json"]);
            INSTANCES
                .iter()
                .all(|(inst, _)| find_by(&l[*inst], "network", BRANCH).is_some())
        }),
        "{}",
        rs.learned("nva1")
    );

    let reason = "load balancer nva-ilb is in region northeurope, route server in westeurope: cross-region next hop IP is not supported";
    let branch = |v: &Value| -> Option<Value> {
        v["value"]
            .as_array()?
            .iter()
            .find(|r| r["addressPrefix"][0] == BRANCH)
            .cloned()
    };
    assert!(labtest::wait_until(UP, || branch(&rs.json(&[
        "effective-routes",
        "--nic",
        "vm1-nic",
        "-o",
        "json"
    ]))
    .is_some_and(|r| r["state"] == "Invalid")));
    let r = branch(&rs.json(&["effective-routes", "--nic", "vm1-nic", "-o", "json"])).unwrap();
    assert_eq!(r["reason"], reason, "{r}");
    println!(
        "$ nexthop effective-routes --nic vm1-nic\n{}",
        rs.cli(&["effective-routes", "--nic", "vm1-nic"]).unwrap()
    );
    let learned = rs.json(&["routes", "learned", "--peer", "nva1", "-o", "json"]);
    for (inst, _) in INSTANCES {
        let l = find_by(&learned[inst], "network", BRANCH).unwrap();
        assert_eq!(
            (l["state"].as_str(), l["reason"].as_str()),
            (Some("Invalid"), Some(reason)),
            "{inst}: {l}"
        );
    }
    let m = rs.metrics();
    assert!(
        m.contains("fabric_cross_region_invalid_routes{lb=\"nva-ilb\"} 1"),
        "{m}"
    );
    assert!(rs.process.is_running(), "nothing crashed");

    // The same region again: a reload makes the route valid, the session never dropped.
    rs.dir.write("nexthop.toml", &config("westeurope")).unwrap();
    rs.cli(&["reload"]).unwrap();
    assert!(labtest::wait_until(UP, || branch(&rs.json(&[
        "effective-routes",
        "--nic",
        "vm1-nic",
        "-o",
        "json"
    ]))
    .is_some_and(|r| r["state"] == "Active")));
    let r = branch(&rs.json(&["effective-routes", "--nic", "vm1-nic", "-o", "json"])).unwrap();
    assert_eq!(r["loadBalancer"], "nva-ilb");
    assert_eq!(frr.neighbor_state("10.1.1.4"), "Established");
}

// ---------------------------------------------------------------------------------------------
// TCP-MD5 and GTSM against FRR (issue #13)
// ---------------------------------------------------------------------------------------------

/// `seed_config` with extra keys on one peer.
fn with_peer_keys(config: &str, peer: PeerDef, keys: &str) -> String {
    let (name, address, asn) = peer;
    let block = format!("name = \"{name}\"\naddress = \"{address}\"\nasn = {asn}\n");
    assert!(config.contains(&block));
    config.replace(&block, &format!("{block}{keys}\n"))
}

/// An FRR NVA peering with both instances, with extra `neighbor` lines.
fn frr_nva(ns: &Netns, asn: u32, id: &str, lines: &[&str]) -> Frr {
    let mut b = Frr::builder(asn, id).hostname(id);
    for (_, addr) in INSTANCES {
        let mut n = FrrNeighbor::new(addr, 65515);
        for l in lines {
            n = n.line(l);
        }
        b = b.neighbor(n);
    }
    b.network(BRANCH).start(Some(ns)).unwrap()
}

/// nva1 signs with the right key and asks for GTSM: both sessions come up. nva3 signs with
/// another key than nexthop's: it never comes up, and nva1's sessions are untouched meanwhile.
#[test]
fn frr_with_md5_and_gtsm_comes_up_and_a_wrong_key_never_does() {
    if !labtest::require_netns(&["bgpd", "vtysh"]) {
        return;
    }
    let lan = Lan::new(&[
        ("nva1", &["10.1.2.10/16"]),
        ("nva3", &["10.1.2.12/16"]),
        ("rs", &["10.1.1.4/16", "10.1.1.5/16"]),
    ])
    .unwrap();
    let config = with_peer_keys(
        &seed_config(&[NVA1, NVA3], ""),
        NVA1,
        "password = \"nva1-key\"\nttl_security = true",
    );
    let config = with_peer_keys(&config, NVA3, "password = \"nexthop-key\"");
    let rs = RouteServer::start(lan.ns("rs"), &config);
    let nva1 = frr_nva(
        lan.ns("nva1"),
        65001,
        "10.1.2.10",
        &["password nva1-key", "ttl-security hops 1"],
    );
    let nva3 = frr_nva(
        lan.ns("nva3"),
        65003,
        "10.1.2.12",
        &["password another-key"],
    );
    rs.wait_established("nva1", || nva1.log());
    let since = Instant::now();
    let before = rs.uptimes("nva1");
    // Both sides retry every 5 s: a session that could come up would be up by now.
    std::thread::sleep(Duration::from_secs(15));
    assert!(!rs.established_everywhere("nva3"), "{}", rs.peers());
    for (_, addr) in INSTANCES {
        assert_ne!(nva3.neighbor_state(addr), "Established");
        assert_eq!(nva1.neighbor_state(addr), "Established");
    }
    assert_undisturbed(&rs, "nva1", &before, since);
}

/// nexthop asks for GTSM from its only peer, FRR does not use it (FRR sends eBGP with TTL 1):
/// with every peer on GTSM the listener itself drops SYNs under TTL 254, and our connections
/// drop FRR's answers, so the session never comes up, whoever connects first.
#[test]
fn ttl_security_refuses_a_peer_that_does_not_send_ttl_255() {
    if !labtest::require_netns(&["bgpd", "vtysh"]) {
        return;
    }
    let lan = Lan::new(&[
        ("nva1", &["10.1.2.10/16"]),
        ("rs", &["10.1.1.4/16", "10.1.1.5/16"]),
    ])
    .unwrap();
    let config = with_peer_keys(&seed_config(&[NVA1], ""), NVA1, "ttl_security = true");
    let rs = RouteServer::start(lan.ns("rs"), &config);
    let nva1 = frr_nva(lan.ns("nva1"), 65001, "10.1.2.10", &[]);
    std::thread::sleep(Duration::from_secs(15));
    assert!(!rs.established_everywhere("nva1"), "{}", rs.peers());
    for (_, addr) in INSTANCES {
        assert_ne!(nva1.neighbor_state(addr), "Established", "{}", nva1.log());
    }
}

// ---------------------------------------------------------------------------------------------
// BFD (issue #15): FRR's bfdd beside FRR's bgpd on an NVA
// ---------------------------------------------------------------------------------------------

/// FRR bgpd as NVA `name` at `addr`, peering with both instances (hold time 9 s), announcing
/// the branch via the frontend.
fn frr_nva_hold9(ns: &Netns, name: &str, addr: &str) -> Frr {
    let mut b = Frr::builder(65001, addr).hostname(name);
    for (_, inst) in INSTANCES {
        b = b
            .neighbor(
                FrrNeighbor::new(inst, 65515)
                    .route_map_out("SET-NEXTHOP")
                    .line("timers 3 9"),
            )
            .ipv4_line(&format!("neighbor {inst} next-hop-self"));
    }
    b.network(BRANCH)
        .config_line(&format!(
            "route-map SET-NEXTHOP permit 10\n set ip next-hop {LB_FRONTEND}\nexit\n!"
        ))
        .start(Some(ns))
        .unwrap()
}

/// Two NVAs lose their link at the same moment (no FIN, no NOTIFICATION: `ip link set eth0
/// down`). nva1 has BFD (100 ms × 3) with both instances: its sessions go down and its routes
/// are withdrawn within a second; nva2 has none: its sessions stay Established until the hold
/// time (9 s) says otherwise.
#[test]
fn bfd_takes_a_dead_nva_down_at_once_and_without_it_the_hold_time_decides() {
    if !labtest::require_netns(&["bgpd", "vtysh", "bfdd", "chown"]) {
        return;
    }
    let lan = Lan::new(&[
        ("nva1", &["10.1.2.10/16"]),
        ("nva2", &["10.1.2.11/16"]),
        ("rs", &["10.1.1.4/16", "10.1.1.5/16"]),
    ])
    .unwrap();
    let config = seed_config(&[NVA1, NVA2], "hold_time = 9").replacen(
        "asn = 65001\n",
        "asn = 65001\nbfd = { interval_ms = 100, multiplier = 3 }\n",
        1,
    );
    assert!(config.contains("bfd = {"));
    let rs = RouteServer::start(lan.ns("rs"), &config);
    let nva1 = frr_nva_hold9(lan.ns("nva1"), "nva1", "10.1.2.10");
    let nva2 = frr_nva_hold9(lan.ns("nva2"), "nva2", "10.1.2.11");
    let instances: Vec<&str> = INSTANCES.iter().map(|(_, a)| *a).collect();
    let bfdd = Bfdd::start(lan.ns("nva1"), "10.1.2.10", &instances, 100).unwrap();
    rs.wait_established("nva1", || nva1.log());
    rs.wait_established("nva2", || nva2.log());
    assert!(
        labtest::wait_until(Duration::from_secs(20), || bfdd.up() == 2),
        "bfdd's sessions with both instances never came up: {:?}\n{}",
        bfdd.peers(),
        rs.log()
    );
    assert!(labtest::wait_until(UP, || rs
        .learned_everywhere("nva1", BRANCH)
        && rs.learned_everywhere("nva2", BRANCH)));

    let cut = Instant::now();
    for n in ["nva1", "nva2"] {
        lan.ns(n)
            .exec("ip", &["link", "set", "eth0", "down"])
            .unwrap();
    }
    let down = |name: &str| {
        let p = rs.peers();
        INSTANCES.iter().all(|(inst, _)| {
            find_by(&p[*inst], "name", name).is_some_and(|x| x["state"] != "Established")
        })
    };
    assert!(
        labtest::wait_until(Duration::from_secs(5), || down("nva1")),
        "nva1 still Established 5 s after its link went down:\n{}",
        rs.log()
    );
    let took = cut.elapsed();
    let nva2_up = rs.established_everywhere("nva2");
    let rib = rs.rib();
    println!(
        "link down -> nva1 (BFD 100 ms x 3) down on both instances after {took:?}; nva2 (no BFD, hold 9 s) still Established: {nva2_up}"
    );
    let p = rs.peers();
    println!(
        "nva1 on IN_0: {}",
        find_by(&p[IN0], "name", "nva1").unwrap()
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(nva2_up, "nva2 went down without BFD that fast?");
    // nva1's paths are gone from every Loc-RIB, nva2's are there.
    for (inst, _) in INSTANCES {
        let entry = find_by(&rib[inst], "network", BRANCH).expect("the branch still via nva2");
        let peers: Vec<&str> = entry["paths"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["sourcePeer"].as_str())
            .collect();
        assert!(
            !peers.contains(&"nva1") && peers.contains(&"nva2"),
            "{inst}: {peers:?}"
        );
    }
    let err = find_by(&p[IN0], "name", "nva1").unwrap()["lastError"].to_string();
    assert!(err.contains("BFD Down"), "{err}");
}
