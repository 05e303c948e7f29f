//! `nexthop demo`: the seed's topology on loopback, with real BGP over TCP and no config.
//!
//! Two route server instances listen on 127.0.1.4 and 127.0.1.5 (port 1179, AS 65515) with the
//! API on 127.0.0.1:8179; two emulated NVAs on 127.0.2.10 and 127.0.2.11 (AS 65001) are real BGP
//! speakers that peer with both instances and advertise 192.168.10.0/24 with next hop
//! 10.1.0.100, the load balancer frontend, as the seed's route-map does. The demo narrates the
//! sessions, what each instance learned and what each NVA received; the CLI works against it
//! from another terminal.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgp::fsm::SessionConfig;
use bgp::wire::{AsPath, Ipv4Prefix, Origin, PathAttributes, UpdateMessage};
use bgp_driver::{spawn_peer, PeerCommand, PeerConfig, PeerEvent, PeerHandle};
use tokio::sync::mpsc;

use crate::daemon::{self, instance_name};
use crate::instance::{InstanceSpec, PeerSpec, Query};

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
}

const INSTANCES: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 0, 1, 4), Ipv4Addr::new(127, 0, 1, 5)];
const NVAS: [(&str, Ipv4Addr); 2] = [
    ("nva1", Ipv4Addr::new(127, 0, 2, 10)),
    ("nva2", Ipv4Addr::new(127, 0, 2, 11)),
];
const RS_ASN: u32 = 65515;
const NVA_ASN: u32 = 65001;
const LB_FRONTEND: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 100);

fn branch() -> Ipv4Prefix {
    Ipv4Prefix::new(Ipv4Addr::new(192, 168, 10, 0), 24).unwrap_or_else(|_| unreachable!())
}

/// The embedded default: what `nexthop run` would get from the seed's config on loopback.
pub fn specs(port: u16) -> Vec<InstanceSpec> {
    let peers: Vec<PeerSpec> = NVAS
        .iter()
        .map(|(name, addr)| PeerSpec {
            name: name.to_string(),
            address: *addr,
            asn: NVA_ASN,
            max_routes: 4000,
            hold_time: 180,
            port,
            password: None,
        })
        .collect();
    INSTANCES
        .iter()
        .enumerate()
        .map(|(i, addr)| InstanceSpec {
            name: instance_name(i),
            address: *addr,
            port,
            asn: RS_ASN,
            branch_to_branch: false,
            originated: vec![
                Ipv4Prefix::new(Ipv4Addr::new(10, 1, 0, 0), 16).unwrap_or_else(|_| unreachable!())
            ],
            hold_time: 180,
            peers: peers.clone(),
        })
        .collect()
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

/// Which emulated NVA session an event is from: (nva, instance).
type Tag = (usize, usize);

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
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
    println!("  try: nexthop peers | nexthop routes learned --peer nva1 -o json | nexthop routes advertised --peer nva1");

    let running = daemon::start(specs(args.port), args.api_listen, None).await?;

    // The emulated NVAs: one session per instance each, like the seed's FRR config.
    let (tx, mut rx) = mpsc::channel::<(Tag, PeerEvent)>(256);
    let mut nvas: BTreeMap<Tag, PeerHandle> = BTreeMap::new();
    for (n, (name, addr)) in NVAS.iter().enumerate() {
        for (i, inst) in INSTANCES.iter().enumerate() {
            let mut s = SessionConfig::new(NVA_ASN, *addr, RS_ASN);
            s.connect_retry = Duration::from_secs(1);
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
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                if !reported && received.len() == nvas.len() {
                    reported = report(&running, &received, &stamp).await;
                }
            }
            ev = rx.recv() => {
                let Some(((n, i), ev)) = ev else { break };
                let (nva, inst) = (NVAS[n].0, instance_name(i));
                match ev {
                    PeerEvent::Established { .. } => {
                        println!("{} {nva}: session with {inst} ({}) Established; advertising {} via {LB_FRONTEND}", stamp(), INSTANCES[i], branch());
                        if let Some(h) = nvas.get(&(n, i)) {
                            h.send(PeerCommand::SendUpdate(seed_route()));
                        }
                    }
                    PeerEvent::Update { update, .. } => {
                        for p in &update.nlri {
                            let path = update.attrs.as_path.as_ref().map(|p| p.to_string()).unwrap_or_default();
                            let nh = update.attrs.next_hop.map(|a| a.to_string()).unwrap_or_default();
                            println!("{} {nva}: received {p} from {inst}, next hop {nh}, AS path {path}", stamp());
                            received.entry((n, i)).or_default().push(p.to_string());
                        }
                    }
                    PeerEvent::Down { reason } => println!("{} {nva}: session with {inst} down: {reason}", stamp()),
                    _ => {}
                }
            }
        }
    }
    let ok = reported || report(&running, &received, &stamp).await;
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
    Ok(())
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
    true
}
