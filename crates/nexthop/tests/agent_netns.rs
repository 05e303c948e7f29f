//! `nexthop agent` against `nexthop run`, both inside a network namespace this test creates
//! (root only; skipped otherwise):
//!
//! ```text
//!  ns: veth v0 10.1.0.1/16 and fd00:1::1/48 (the hub, so 10.1.2.10 and fd00:1:0:2::10 are
//!      on-link)
//!      nexthop run (API 127.0.0.1:8179, route server 127.0.14.4:1790)
//!      NVA: a BGP speaker (this test) advertising 192.168.10.0/24 next hop 10.1.2.10, and
//!           fd00:10::/48 next hop fd00:1:0:2::10 over the same session (MP-BGP)
//!      nexthop agent --nic vm1-nic ──> 192.168.10.0/24 via 10.1.2.10 proto 200
//!                                      fd00:10::/48 via fd00:1:0:2::10 proto 200 metric 1024
//! ```
//!
//! Then fail static (controller killed: the route stays) and reconnect (controller back: a
//! stale proto-200 route added meanwhile is removed, the BGP route is programmed again).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bgp::fsm::SessionConfig;
use bgp::wire::attrs::{MpNextHop, MpReach};
use bgp::wire::{Afi, AsPath, Capability, Origin, PathAttributes, Prefix, Safi, UpdateMessage};
use bgp_driver::{spawn_peer, PeerCommand, PeerConfig, PeerEvent};
use labtest::{Netns, Process, Workdir};

const CONFIG: &str = r#"[[virtual_network]]
name = "hub"
region = "westeurope"
address_space = ["10.1.0.0/16", "fd00:1::/48"]

[route_server]
virtual_network = "hub"
instances = ["127.0.14.4"]
port = 1790

[[route_server.peer]]
name = "nva1"
address = "127.0.14.10"
asn = 65001

[[nic]]
name = "vm1-nic"
virtual_network = "hub"
address = "10.1.3.10"

[api]
listen = "127.0.0.1:8179"
"#;

fn routes(ns: &Netns) -> String {
    ns.exec("ip", &["route", "show", "proto", "200"])
        .unwrap_or_default()
}

fn routes6(ns: &Netns) -> String {
    ns.exec("ip", &["-6", "route", "show", "proto", "200"])
        .unwrap_or_default()
}

fn wait_routes(ns: &Netns, what: &str, cond: impl Fn(&str) -> bool, agent: &Process) -> String {
    let t = Instant::now();
    loop {
        let r = routes(ns);
        if cond(&r) {
            return r;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}; ip route show proto 200:\n{r}\nagent log:\n{}",
            agent.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn controller(ns: &Netns, wd: &Workdir, n: u32) -> Process {
    let file = wd.write("nexthop.toml", CONFIG).unwrap();
    ns.spawn(
        env!("CARGO_BIN_EXE_nexthop"),
        &["run", "--config", file.to_str().unwrap()],
        &wd.file(&format!("run{n}.log")),
    )
    .unwrap()
}

/// The NVA, inside the namespace: (re)advertises the branch every time its session comes up,
/// until `stop` is dropped.
fn nva(ns_name: String, stop: std::sync::mpsc::Receiver<()>) {
    linux::netns::run_in(&ns_name, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut s = SessionConfig::new(65001, Ipv4Addr::new(10, 1, 2, 10), 65515);
            s.connect_retry = Duration::from_millis(300);
            s.capabilities.push(Capability::Multiprotocol {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
            });
            let mut cfg = PeerConfig::new(
                "nva1",
                s,
                IpAddr::V4(Ipv4Addr::new(127, 0, 14, 10)),
                IpAddr::V4(Ipv4Addr::new(127, 0, 14, 4)),
            );
            cfg.remote_port = 1790;
            cfg.restart_delay = Duration::from_millis(200);
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            let peer = spawn_peer(cfg, tx, ());
            loop {
                if !matches!(stop.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty)) {
                    return;
                }
                match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
                    Ok(Some((_, PeerEvent::Established { .. }))) => {
                        peer.send(PeerCommand::SendUpdate(UpdateMessage {
                            withdrawn: vec![],
                            attrs: PathAttributes {
                                origin: Some(Origin::Igp),
                                as_path: Some(AsPath::from_sequence(vec![65001])),
                                next_hop: Some(Ipv4Addr::new(10, 1, 2, 10)),
                                ..Default::default()
                            },
                            nlri: vec!["192.168.10.0/24".parse().unwrap()],
                        }));
                        peer.send(PeerCommand::SendUpdate(UpdateMessage {
                            attrs: PathAttributes {
                                origin: Some(Origin::Igp),
                                as_path: Some(AsPath::from_sequence(vec![65001])),
                                mp_reach: Some(MpReach {
                                    afi: Afi::IPV6,
                                    safi: Safi::UNICAST,
                                    next_hop: MpNextHop::V6 {
                                        global: "fd00:1:0:2::10".parse().unwrap(),
                                        link_local: None,
                                    },
                                    nlri: vec![Prefix::V6("fd00:10::/48".parse().unwrap())],
                                }),
                                ..Default::default()
                            },
                            ..Default::default()
                        }));
                    }
                    Ok(None) => return,
                    _ => {}
                }
            }
        })
    })
    .unwrap()
}

/// A namespace with a veth pair v0/v1 up and `addrs` on v0 (the hub's subnet, on-link).
fn hub(tag: &str, addrs: &[&str]) -> Netns {
    let ns = Netns::new(tag).unwrap();
    ns.exec(
        "ip",
        &["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
    )
    .unwrap();
    for a in addrs {
        ns.add_addr("v0", a).unwrap();
    }
    ns.exec("ip", &["link", "set", "v0", "up"]).unwrap();
    ns.exec("ip", &["link", "set", "v1", "up"]).unwrap();
    ns
}

#[test]
fn agent_programs_fails_static_and_reconciles() {
    if !labtest::require_netns(&["ip"]) {
        return;
    }
    let ns = hub("agent", &["10.1.0.1/16", "fd00:1::1/48"]);
    let wd = Workdir::new("agent").unwrap();
    let mut run = controller(&ns, &wd, 1);
    // The agent first, so the route arrives through an incremental (long-poll) answer.
    let agent = ns
        .spawn(
            env!("CARGO_BIN_EXE_nexthop"),
            &[
                "agent",
                "--controller",
                "http://127.0.0.1:8179",
                "--nic",
                "vm1-nic",
                "--reconnect-grace-s",
                "3",
            ],
            &wd.file("agent.log"),
        )
        .unwrap();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let name = ns.name().to_string();
    let nva = std::thread::spawn(move || nva(name, stop_rx));

    let r = wait_routes(
        &ns,
        "the branch route",
        |r| r.contains("192.168.10.0/24 via 10.1.2.10"),
        &agent,
    );
    eprintln!("ip route show proto 200 (programmed):\n{r}");
    // The IPv6 branch, learned over the same session, programmed through its IPv6 next hop.
    let t = Instant::now();
    let r6 = loop {
        let r6 = routes6(&ns);
        if r6.contains("fd00:10::/48 via fd00:1:0:2::10 dev v0 metric 1024") {
            break r6;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no IPv6 route; ip -6 route show proto 200:\n{r6}\nagent log:\n{}",
            agent.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("ip -6 route show proto 200 (programmed):\n{r6}");
    eprintln!(
        "ip route:\n{}",
        ns.exec("ip", &["route"]).unwrap_or_default()
    );

    // Fail static: the controller goes away (killed: a graceful stop closes its BGP sessions
    // first, and the agent may still hear those withdrawals), the route stays.
    std::process::Command::new("kill")
        .args(["-KILL", &run.pid().to_string()])
        .status()
        .unwrap();
    drop(run);
    std::thread::sleep(Duration::from_secs(3));
    let r = routes(&ns);
    assert!(
        r.contains("192.168.10.0/24 via 10.1.2.10"),
        "route gone while the controller is down:\n{r}\n{}",
        agent.output()
    );
    // Meanwhile a stale route of ours appears (e.g. left by an earlier run).
    ns.exec(
        "ip",
        &[
            "route",
            "add",
            "192.168.99.0/24",
            "via",
            "10.1.0.5",
            "proto",
            "200",
        ],
    )
    .unwrap();

    // The controller returns: the agent reconciles the whole table.
    run = controller(&ns, &wd, 2);
    let r = wait_routes(
        &ns,
        "the stale route removed and the branch route kept",
        |r| !r.contains("192.168.99.0/24") && r.contains("192.168.10.0/24 via 10.1.2.10"),
        &agent,
    );
    eprintln!("ip route show proto 200 (after reconnect):\n{r}");

    // Again, but the NVA is gone too: the restarted controller does not list the branch. The
    // agent keeps it for the grace period (3 s here), then removes it.
    std::process::Command::new("kill")
        .args(["-KILL", &run.pid().to_string()])
        .status()
        .unwrap();
    drop(run);
    drop(stop_tx);
    nva.join().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let run = controller(&ns, &wd, 3);
    let t0 = Instant::now();
    // The agent is back once the API answers; count the grace from there.
    while ns
        .command(env!("CARGO_BIN_EXE_nexthop"))
        .args(["--api", "http://127.0.0.1:8179", "peers"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "controller not back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let r = routes(&ns);
    assert!(
        r.contains("192.168.10.0/24 via 10.1.2.10"),
        "removed within the grace period:\n{r}\n{}",
        agent.output()
    );
    wait_routes(
        &ns,
        "the branch route removed after the grace period",
        |r| !r.contains("192.168.10.0/24"),
        &agent,
    );
    let gone = t.elapsed();
    eprintln!("branch route removed {gone:?} after the controller restart (grace 3 s)");
    assert!(
        gone >= Duration::from_millis(1500),
        "removed after {gone:?}"
    );
    eprintln!("agent log:\n{}", agent.output());
    drop(agent);
    drop(run);
}

/// A hostile controller (a few lines of python answering one fixed table, whatever is asked):
/// a default route through the firewall LB (fine: the controller stays reachable through its
/// own subnet), a route more specific than the controller's subnet (refused: it would take
/// over the agent's path to the controller), a route with a gateway on no link (the kernel
/// refuses it; the others are installed all the same) and the branch. With `--allow`, only
/// what is inside it.
#[test]
fn a_hostile_controller_cannot_take_over_the_hosts_path_to_it() {
    if !labtest::require_netns(&["ip", "python3"]) {
        return;
    }
    // The controller is 10.1.1.4, on the host's own subnet 10.1.0.0/16.
    let ns = hub("hostile", &["10.1.0.1/16", "10.1.1.4/16"]);
    let wd = Workdir::new("hostile").unwrap();
    let route = |p: &str, nh: &str| {
        format!(
            r#"{{"addressPrefix":["{p}"],"loadBalancer":null,"nextHopIpAddress":["{nh}"],"nextHopType":"VirtualNetworkGateway","reason":null,"source":"VirtualNetworkGateway","state":"Active"}}"#
        )
    };
    let table = format!(
        r#"{{"value":[{},{},{},{}],"version":7}}"#,
        route("0.0.0.0/0", "10.1.0.100"),
        route("10.1.1.0/24", "10.1.0.100"),
        route("192.168.40.0/24", "172.31.9.9"),
        route("192.168.10.0/24", "10.1.0.100"),
    );
    let body = wd.write("table.json", &table).unwrap();
    let server = wd
        .write(
            "hostile.py",
            &format!(
                r#"import http.server, time
body = open("{}", "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.2)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("10.1.1.4", 8179), H).serve_forever()
"#,
                body.display()
            ),
        )
        .unwrap();
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3".to_string()
    } else {
        labtest::find_binary("python3")
            .unwrap()
            .display()
            .to_string()
    };
    let _controller = ns
        .spawn(
            &python,
            &[server.to_str().unwrap()],
            &wd.file("hostile.log"),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // `nexthop agent` for vm1-nic against the hostile controller, with `extra` flags.
    let agent_with = |extra: &[&str], log: &str| {
        let mut args = vec![
            "agent",
            "--controller",
            "http://10.1.1.4:8179",
            "--nic",
            "vm1-nic",
        ];
        args.extend_from_slice(extra);
        ns.spawn(env!("CARGO_BIN_EXE_nexthop"), &args, &wd.file(log))
            .unwrap()
    };
    let prom_file = wd.file("agent.prom");
    let agent = agent_with(
        &["--metrics-file", prom_file.to_str().unwrap()],
        "agent.log",
    );
    let r = wait_routes(
        &ns,
        "the default route and the branch",
        |r| r.contains("default via 10.1.0.100") && r.contains("192.168.10.0/24 via 10.1.0.100"),
        &agent,
    );
    assert!(
        !r.contains("10.1.1.0/24"),
        "the controller's path was taken over:\n{r}"
    );
    assert!(!r.contains("192.168.40.0/24"), "{r}");
    let how = ns.exec("ip", &["-4", "route", "get", "10.1.1.4"]).unwrap();
    assert!(
        !how.contains("via"),
        "the controller is reached through a programmed route: {how}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let log = agent.output();
    assert!(
        log.contains("10.1.1.0/24") && log.contains("controller 10.1.1.4"),
        "{log}"
    );
    assert!(
        log.contains("192.168.40.0/24"),
        "the kernel's refusal is not reported: {log}"
    );
    // And in its metrics: the route over the controller's subnet refused, the off-link one
    // failed, two programmed.
    let prom = std::fs::read_to_string(&prom_file).unwrap();
    for line in [
        "nexthop_agent_routes_refused{nic=\"vm1-nic\"} 1",
        "nexthop_agent_routes_failed{nic=\"vm1-nic\"} 1",
        "nexthop_agent_routes_programmed{nic=\"vm1-nic\"} 2",
        "nexthop_agent_controller_reachable{nic=\"vm1-nic\",controller=\"http://10.1.1.4:8179\"} 1",
    ] {
        assert!(prom.contains(line), "{line} not in:\n{prom}");
    }
    drop(agent);

    // --allow: only the branches.
    let agent = agent_with(&["--allow", "192.168.0.0/16"], "agent2.log");
    wait_routes(
        &ns,
        "only the branch",
        |r| !r.contains("default") && r.contains("192.168.10.0/24 via 10.1.0.100"),
        &agent,
    );
}
