//! `nexthop demo`: the seed's topology on loopback, with real BGP over TCP and no config.
//!
//! Two route server instances listen on 127.0.1.4 and 127.0.1.5 (port 1179, AS 65515) with the
//! API on 127.0.0.1:8179; two emulated NVAs on 127.0.2.10 and 127.0.2.11 (AS 65001) are real BGP
//! speakers that peer with both instances and advertise 192.168.10.0/24 with next hop
//! 10.1.0.100, the load balancer frontend, as the seed's route-map does. They also advertise the
//! IPv6 branch fd00:10::/48 with next hop fd00:1::100 over the same IPv4 sessions (MP-BGP,
//! RFC 4760: loopback has one IPv6 address, ::1, which cannot hold two instances), and the
//! instances advertise the hub's IPv6 space fd00:1::/48 back with their IPv4-mapped addresses as
//! next hop. The demo narrates the sessions, what each instance learned and what each NVA
//! received; the CLI works against it from another terminal.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgp::fsm::SessionConfig;
use bgp::wire::attrs::{MpNextHop, MpReach};
use bgp::wire::{
    Afi, AsPath, Capability, Ipv4Prefix, Ipv6Prefix, Origin, PathAttributes, Prefix, Safi,
    UpdateMessage,
};
use bgp_driver::{spawn_peer, PeerCommand, PeerConfig, PeerEvent, PeerHandle};
use tokio::sync::mpsc;

use crate::daemon::{self, instance_name};
use crate::instance::Query;
use crate::lbrun::LbQuery;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// BGP port of the route server instances.
    #[arg(long, default_value_t = 1179)]
    port: u16,
    /// Where the API listens.
    #[arg(long, default_value = "127.0.0.1:8179")]
    api_listen: SocketAddr,
    /// Load balancer mode.
    #[arg(long, default_value = "active-passive", value_parser = ["active-passive", "active-active"])]
    mode: String,
    /// When the active NVA's health endpoint stops, to show the failover (seconds after the
    /// start). Three seconds later it answers again; two more and, when the demo started in
    /// active-passive, the load balancer switches to active-active.
    #[arg(long, default_value_t = 6.0)]
    fail_active_after: f64,
    /// Keep every NVA healthy and the mode fixed: only sessions, routes and flows.
    #[arg(long)]
    no_failure: bool,
    /// Port of the emulated NVAs' HTTP health endpoints.
    #[arg(long, default_value_t = 18080)]
    health_port: u16,
    /// Print the embedded config (what `nexthop run` would need for the same system) and exit.
    #[arg(long)]
    print_config: bool,
}

const INSTANCES: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 0, 1, 4), Ipv4Addr::new(127, 0, 1, 5)];
const NVAS: [(&str, Ipv4Addr); 2] = [
    ("nva1", Ipv4Addr::new(127, 0, 2, 10)),
    ("nva2", Ipv4Addr::new(127, 0, 2, 11)),
];
const RS_ASN: u32 = 65515;
const NVA_ASN: u32 = 65001;
const LB_FRONTEND: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 100);
/// The IPv6 frontend the NVAs name as next hop of the IPv6 branch (advertised only: the demo's
/// data plane is IPv4).
const LB_FRONTEND6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x100);
/// Simulated flows from vm1 (10.1.3.10) to hosts of the branch, through the LB.
const FLOWS: u32 = 1000;

fn branch() -> Ipv4Prefix {
    Ipv4Prefix::new(Ipv4Addr::new(192, 168, 10, 0), 24).unwrap_or_else(|_| unreachable!())
}

fn branch6() -> Ipv6Prefix {
    Ipv6Prefix::new(Ipv6Addr::new(0xfd00, 0x10, 0, 0, 0, 0, 0, 0), 48)
        .unwrap_or_else(|_| unreachable!())
}

/// The embedded default: the seed's topology on loopback, as a config `nexthop run` accepts.
pub fn config_text(a: &DemoArgs) -> String {
    format!(
        r#"# nexthop demo: the seed's topology on 127.0.0.0/8
[[virtual_network]]
name = "hub"
region = "westeurope"
address_space = ["10.1.0.0/16", "fd00:1::/48"]

[route_server]
asn = {RS_ASN}
virtual_network = "hub"
instances = ["{i0}", "{i1}"]
port = {port}

[[route_server.peer]]
name = "nva1"
address = "{n1}"
asn = {NVA_ASN}

[[route_server.peer]]
name = "nva2"
address = "{n2}"
asn = {NVA_ASN}

[[load_balancer]]
name = "nva-ilb"
virtual_network = "hub"
frontend = "{LB_FRONTEND}"
mode = "{mode}"
backends = [{{ address = "{n1}", priority = 1 }}, {{ address = "{n2}", priority = 2 }}]
probe = {{ protocol = "http", port = {hp}, path = "/health", interval_ms = 100, rise = 2, fall = 3 }}

[[nic]]
name = "vm1-nic"
virtual_network = "hub"
address = "10.1.3.10"
address6 = "fd00:1::3:10"

[api]
listen = "{api}"
"#,
        i0 = INSTANCES[0],
        i1 = INSTANCES[1],
        port = a.port,
        n1 = NVAS[0].1,
        n2 = NVAS[1].1,
        mode = a.mode,
        hp = a.health_port,
        api = a.api_listen,
    )
}

fn seed_route() -> UpdateMessage {
    UpdateMessage {
        withdrawn: vec![],
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(vec![NVA_ASN])),
            next_hop: Some(LB_FRONTEND),
            ..Default::default()
        },
        nlri: vec![branch()],
    }
}

/// The IPv6 branch, in MP_REACH_NLRI over the IPv4 session.
fn seed_route6() -> UpdateMessage {
    UpdateMessage {
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(vec![NVA_ASN])),
            mp_reach: Some(MpReach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                next_hop: MpNextHop::V6 {
                    global: LB_FRONTEND6,
                    link_local: None,
                },
                nlri: vec![Prefix::V6(branch6())],
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Which emulated NVA session an event is from: (nva, instance).
type Tag = (usize, usize);

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.print_config {
        print!("{}", config_text(&args));
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let stamp = || format!("[{:5.2}s]", started.elapsed().as_secs_f32());
    println!(
        "nexthop demo: route server {} and {} (AS {RS_ASN}, BGP port {}), API http://{}",
        INSTANCES[0], INSTANCES[1], args.port, args.api_listen
    );
    println!("  emulated NVAs {} and {} (AS {NVA_ASN}) advertise {} with next hop {LB_FRONTEND} (the LB frontend)", NVAS[0].1, NVAS[1].1, branch());
    println!("  and {} with next hop {LB_FRONTEND6}, as IPv6 NLRI over the same IPv4 sessions (MP-BGP; loopback's one IPv6 address cannot hold two instances)", branch6());
    println!("  try: nexthop peers | nexthop routes learned --peer nva1 -o json | nexthop routes advertised --peer nva1");

    let cfg = config::parse(&config_text(&args), "<embedded demo config>")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Each emulated NVA serves the HTTP health endpoint the load balancer probes.
    let mut health = Vec::new();
    for (_, addr) in NVAS {
        health.push(
            HealthEndpoint::start(SocketAddr::new(IpAddr::V4(addr), args.health_port)).await?,
        );
    }
    // The demo has no tokens: its API stays on loopback (checked by `start`).
    let running = daemon::start(
        &cfg,
        &daemon::Only::default(),
        args.api_listen,
        crate::token::ApiAuth::open(),
        None,
    )
    .await?;
    println!("  load balancer nva-ilb {LB_FRONTEND} ({}) over {} and {}, HTTP probes every 100 ms (fall 3, rise 2)", args.mode, NVAS[0].1, NVAS[1].1);
    println!("  {FLOWS} simulated flows from vm1-nic 10.1.3.10 to {} go through it; try: nexthop lb show nva-ilb", branch());

    // The emulated NVAs: one session per instance each, like the seed's FRR config.
    let (tx, mut rx) = mpsc::channel::<(Tag, PeerEvent)>(256);
    let mut nvas: BTreeMap<Tag, PeerHandle> = BTreeMap::new();
    for (n, (name, addr)) in NVAS.iter().enumerate() {
        for (i, inst) in INSTANCES.iter().enumerate() {
            let mut s = SessionConfig::new(NVA_ASN, *addr, RS_ASN);
            s.connect_retry = Duration::from_secs(1);
            s.capabilities.push(Capability::Multiprotocol {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
            });
            let mut cfg = PeerConfig::new(
                format!("{name}->{inst}"),
                s,
                IpAddr::V4(*addr),
                IpAddr::V4(*inst),
            );
            cfg.remote_port = args.port;
            cfg.restart_delay = Duration::from_millis(500);
            nvas.insert((n, i), spawn_peer(cfg, tx.clone(), (n, i)));
        }
    }
    drop(tx);

    let deadline = args
        .duration
        .map(|d| tokio::time::Instant::now() + Duration::from_secs(d));
    let stop = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    let mut received: BTreeMap<Tag, Vec<String>> = BTreeMap::new();
    let mut reported = false;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let flows = demo_flows();
    let mut lb = running.lbs.read().await.first().cloned();
    let mut last_split: Option<Vec<(Ipv4Addr, u32)>> = None;
    let mut failed_at: Option<Instant> = None;
    let mut failover: Option<Duration> = None;
    let mut caveat_shown = false;
    let fail_at =
        (!args.no_failure).then(|| started + Duration::from_secs_f64(args.fail_active_after));
    let recover_at = fail_at.map(|t| t + Duration::from_secs(3));
    let switch_at = fail_at
        .filter(|_| args.mode == "active-passive")
        .map(|t| t + Duration::from_secs(5));
    let mut victim_idx: Option<usize> = None;
    let mut recovered = false;
    let mut switched = false;
    let mut lb_ready = false;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                if !reported && received.len() == nvas.len() {
                    reported = report(&running, &received, &stamp).await;
                }
                if fail_at.is_some_and(|t| Instant::now() >= t) && failed_at.is_none() {
                    let active = match &lb { Some(l) => l.ask(LbQuery::Show).await.and_then(|v| v.backends.iter().find(|b| matches!(b.role, api_types::Role::Active | api_types::Role::Serving)).map(|b| b.address)), None => None };
                    let victim = active.and_then(|a| NVAS.iter().position(|(_, x)| *x == a)).unwrap_or(0);
                    println!("{} failing {} ({}): its health endpoint stops answering", stamp(), NVAS[victim].0, NVAS[victim].1);
                    health[victim].set_healthy(false);
                    failed_at = Some(Instant::now());
                    victim_idx = Some(victim);
                }
                if let (Some(t), Some(v), false) = (recover_at, victim_idx, recovered) {
                    if Instant::now() >= t {
                        recovered = true;
                        health[v].set_healthy(true);
                        println!("{} {} answers its health probes again; it stays standby (preempt = false: no second failover)", stamp(), NVAS[v].0);
                    }
                }
                if let (Some(t), false) = (switch_at, switched) {
                    if Instant::now() >= t {
                        switched = true;
                        println!("{} switching nva-ilb to active-active (a config change; the LB restarts and probes again)", stamp());
                        let mut c = cfg.load_balancers[0].clone();
                        c.mode = config::Mode::ActiveActive;
                        daemon::apply_lbs(&running, vec![c]).await;
                        lb = running.lbs.read().await.first().cloned();
                        last_split = None;
                        lb_ready = false;
                    }
                }
                // The simulated data plane: vm1-nic's effective route for the branch decides
                // (no route through the LB yet: the flows are not sent), then the LB picks the
                // NVA of every flow.
                let Some(l) = &lb else { continue };
                let route = crate::fabricrun::ask(&running.fabric, |tx| {
                    crate::fabricrun::FabricMsg::Lookup("vm1-nic".into(), Ipv4Addr::new(192, 168, 10, 1).into(), tx)
                })
                .await;
                let via_lb = matches!(&route, Some(Ok(Some(r))) if r.load_balancer.as_deref() == Some("nva-ilb"));
                if !via_lb {
                    continue;
                }
                // Flows start once every NVA has answered a first probe, so the initial
                // election (priority 1 active) is not decided by whichever probe came back first.
                if !lb_ready {
                    lb_ready = l.ask(LbQuery::Show).await.is_some_and(|v| v.backends.iter().all(|b| b.health != api_types::Health::Unknown));
                    if !lb_ready {
                        continue;
                    }
                }
                let Some(dest) = l.ask(|tx| LbQuery::SelectMany(flows.clone(), tx)).await else { continue };
                let split: Vec<(Ipv4Addr, u32)> = NVAS.iter().map(|(_, a)| (*a, dest.iter().filter(|d| **d == Some(IpAddr::V4(*a))).count() as u32)).collect();
                let dropped = dest.iter().filter(|d| d.is_none()).count();
                // Before the first probes answer no backend is known healthy: not news.
                let waiting = dropped == flows.len() && last_split.is_none();
                if !waiting && last_split.as_ref() != Some(&split) {
                    let parts: Vec<String> = split.iter().zip(NVAS).map(|((_, n), (name, _))| format!("{name} {n}")).collect();
                    println!("{} flows through nva-ilb: {} (dropped {dropped})", stamp(), parts.join(", "));
                    if let (Some(t), None) = (failed_at, failover) {
                        let victim = victim_idx.unwrap_or(0);
                        if split[victim].1 == 0 {
                            let d = t.elapsed();
                            failover = Some(d);
                            println!("{} failover: every flow left {} {:.0} ms after its health endpoint stopped (probe interval 100 ms, fall 3; the reference cloud takes 10-15 s)", stamp(), NVAS[victim].0, d.as_secs_f64() * 1000.0);
                        }
                    }
                    if (args.mode == "active-active" || switched) && dropped == 0 && split.iter().all(|(_, n)| *n > 0) && !caveat_shown {
                        caveat_shown = true;
                        println!("{} active-active: flows are spread by a 5-tuple Maglev hash; the return traffic of a flow may cross the other NVA (asymmetric routing) unless the NVAs share state or the LB hashes symmetrically (symmetric = true)", stamp());
                    }
                    last_split = Some(split);
                }
            }
            ev = rx.recv() => {
                let Some(((n, i), ev)) = ev else { break };
                let (nva, inst) = (NVAS[n].0, instance_name(i));
                match ev {
                    PeerEvent::Established { .. } => {
                        println!("{} {nva}: session with {inst} ({}) Established; advertising {} via {LB_FRONTEND} and {} via {LB_FRONTEND6}", stamp(), INSTANCES[i], branch(), branch6());
                        if let Some(h) = nvas.get(&(n, i)) {
                            h.send(PeerCommand::SendUpdate(seed_route()));
                            h.send(PeerCommand::SendUpdate(seed_route6()));
                        }
                    }
                    PeerEvent::Update { update, .. } => {
                        let path = update.attrs.as_path.as_ref().map(|p| p.to_string()).unwrap_or_default();
                        let nh = update.attrs.next_hop.map(|a| a.to_string()).unwrap_or_default();
                        for p in &update.nlri {
                            println!("{} {nva}: received {p} from {inst}, next hop {nh}, AS path {path}", stamp());
                            received.entry((n, i)).or_default().push(p.to_string());
                        }
                        if let Some(r) = &update.attrs.mp_reach {
                            let nh = match r.next_hop { MpNextHop::V6 { global, .. } => global.to_string(), MpNextHop::V4(a) => a.to_string() };
                            for p in &r.nlri {
                                println!("{} {nva}: received {p} from {inst}, next hop {nh}, AS path {path}", stamp());
                                received.entry((n, i)).or_default().push(p.to_string());
                            }
                        }
                    }
                    PeerEvent::Down { reason } => println!("{} {nva}: session with {inst} down: {reason}", stamp()),
                    _ => {}
                }
            }
        }
    }
    let ok = reported || report(&running, &received, &stamp).await;
    if failed_at.is_some() && failover.is_none() {
        println!("{} no failover observed before the end", stamp());
    }
    for h in nvas.values() {
        h.send(PeerCommand::Shutdown);
    }
    daemon::stop_all(&running.instances.read().await).await;
    running.api.abort();
    if !ok {
        anyhow::bail!(
            "the demo did not converge: not every instance learned the route from every NVA"
        );
    }
    if failed_at.is_some() && failover.is_none() {
        anyhow::bail!("the active NVA failed but its flows did not move");
    }
    Ok(())
}

/// The simulated flows: TCP from vm1-nic to hosts of the branch, distinct source ports.
fn demo_flows() -> Vec<lb::AnyFlow> {
    (0..FLOWS)
        .map(|i| {
            lb::AnyFlow::V4(lb::flow::FlowKey::new(
                Ipv4Addr::new(10, 1, 3, 10),
                Ipv4Addr::new(192, 168, 10, 1 + (i % 200) as u8),
                lb::flow::TCP,
                20000 + i as u16,
                443,
            ))
        })
        .collect()
}

/// An emulated NVA's HTTP health endpoint: answers `200 OK` while healthy; when failed it
/// stops listening, as a crashed appliance would (connection refused).
struct HealthEndpoint {
    healthy: tokio::sync::watch::Sender<bool>,
}

impl HealthEndpoint {
    async fn start(addr: SocketAddr) -> anyhow::Result<Self> {
        // Bind once up front so a port clash is an error now, not a silent probe failure.
        let first = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("health endpoint {addr}: {e}"))?;
        let (tx, mut rx) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            let mut listener = Some(first);
            loop {
                if *rx.borrow() {
                    let l = match listener.take() {
                        Some(l) => l,
                        None => match tokio::net::TcpListener::bind(addr).await {
                            Ok(l) => l,
                            Err(_) => return,
                        },
                    };
                    loop {
                        tokio::select! {
                            c = l.accept() => if let Ok((mut s, _)) = c {
                                tokio::spawn(async move {
                                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                                    let mut buf = [0u8; 512];
                                    let _ = s.read(&mut buf).await;
                                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n").await;
                                });
                            },
                            r = rx.changed() => { if r.is_err() { return; } if !*rx.borrow() { break; } }
                        }
                    }
                } else if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Self { healthy: tx })
    }
    fn set_healthy(&self, on: bool) {
        let _ = self.healthy.send(on);
    }
}

/// Prints what each instance learned; true once both learned the branch prefix from both NVAs.
async fn report(
    running: &daemon::Running,
    received: &BTreeMap<Tag, Vec<String>>,
    stamp: &dyn Fn() -> String,
) -> bool {
    let mut complete = true;
    let mut lines = Vec::new();
    for h in running.instances.read().await.iter() {
        for (nva, _) in NVAS {
            let learned = h
                .ask(|tx| Query::Learned(nva.to_string(), tx))
                .await
                .flatten()
                .unwrap_or_default();
            let nets: Vec<String> = learned
                .iter()
                .map(|r| format!("{} via {} (AS path {})", r.network, r.next_hop, r.as_path))
                .collect();
            complete &= learned.iter().any(|r| {
                r.network == branch().to_string() && r.next_hop == LB_FRONTEND.to_string()
            });
            complete &= learned.iter().any(|r| {
                r.network == branch6().to_string() && r.next_hop == LB_FRONTEND6.to_string()
            });
            lines.push(format!(
                "  {} learned from {nva}: {}",
                h.name,
                if nets.is_empty() {
                    "nothing yet".into()
                } else {
                    nets.join(", ")
                }
            ));
        }
    }
    if !complete {
        return false;
    }
    println!("{} converged:", stamp());
    for l in lines {
        println!("{l}");
    }
    for ((n, i), nets) in received {
        println!(
            "  {} received from {}: {}",
            NVAS[*n].0,
            instance_name(*i),
            nets.join(", ")
        );
    }
    println!("  one forwarding next hop for {}: {LB_FRONTEND} (two paths per instance, same LB frontend)", branch());
    println!("  one forwarding next hop for {}: {LB_FRONTEND6} (the fabric programs it as an address of the hub: the load balancer is IPv4-only so far)", branch6());
    // The fabric: what vm1-nic's effective routes say about the branch.
    let eff = crate::fabricrun::ask(&running.fabric, |tx| {
        crate::fabricrun::FabricMsg::EffectiveRoutes("vm1-nic".into(), None, tx)
    })
    .await
    .flatten();
    if let Some(answer) = eff {
        println!("  effective routes of vm1-nic (10.1.3.10):");
        for r in answer.value {
            let via = r
                .load_balancer
                .as_ref()
                .map(|l| format!(" via load balancer {l}"))
                .unwrap_or_default();
            println!(
                "    {:<22} {:<7} {:<16} {:<22} {}{via}",
                r.source.as_str(),
                r.state.as_str(),
                r.address_prefix.join(","),
                r.next_hop_type.as_str(),
                r.next_hop_ip_address.join(",")
            );
        }
    }
    true
}
