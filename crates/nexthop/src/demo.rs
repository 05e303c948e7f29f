//! `nexthop demo`: the seed's topology on loopback, with real BGP over TCP.
//!
//! Two route server instances listen on 127.0.1.4 and 127.0.1.5 (port 1179); two emulated NVAs
//! on 127.0.2.10 and 127.0.2.11 peer with both and advertise 192.168.10.0/24 with next hop
//! 10.1.0.100, the load balancer frontend. Until the route server lands (issue #3) the
//! instances are bare BGP speakers: the demo shows sessions coming up and what each instance
//! receives, nothing more.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgp::fsm::SessionConfig;
use bgp::wire::{AsPath, Ipv4Prefix, Origin, PathAttributes, UpdateMessage};
use bgp_driver::{spawn_peer, Listener, PeerCommand, PeerConfig, PeerEvent};
use tokio::sync::mpsc;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// BGP port of the route server instances.
    #[arg(long, default_value_t = 1179)]
    port: u16,
}

const INSTANCES: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 0, 1, 4), Ipv4Addr::new(127, 0, 1, 5)];
const NVAS: [(&str, Ipv4Addr); 2] = [("nva1", Ipv4Addr::new(127, 0, 2, 10)), ("nva2", Ipv4Addr::new(127, 0, 2, 11))];
const RS_ASN: u32 = 65515;
const NVA_ASN: u32 = 65001;

fn seed_route() -> UpdateMessage {
    UpdateMessage {
        withdrawn: vec![],
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(vec![NVA_ASN])),
            next_hop: Some(Ipv4Addr::new(10, 1, 0, 100)),
            ..Default::default()
        },
        nlri: vec![Ipv4Prefix::new(Ipv4Addr::new(192, 168, 10, 0), 24).expect("valid prefix")],
    }
}

/// Which side of which session an event belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Tag {
    instance: usize,
    nva: usize,
    /// true: the route server's end; false: the NVA's end.
    rs_side: bool,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (tx, mut rx) = mpsc::channel::<(Tag, PeerEvent)>(256);
    println!("nexthop demo: route server instances {} and {} (AS {RS_ASN}, port {}),", INSTANCES[0], INSTANCES[1], args.port);
    println!("  emulated NVAs {} and {} (AS {NVA_ASN}) advertising 192.168.10.0/24 via next hop 10.1.0.100", NVAS[0].1, NVAS[1].1);
    println!("  (the route server's RIB, API and CLI arrive with issue #3; this shows the BGP sessions)");

    let mut listeners = Vec::new();
    let mut handles = Vec::new();
    for (i, inst) in INSTANCES.iter().enumerate() {
        let l = Listener::new();
        for (n, (name, nva)) in NVAS.iter().enumerate() {
            let mut s = SessionConfig::new(RS_ASN, *inst, NVA_ASN);
            s.passive = true;
            let cfg = PeerConfig::new(*name, s, IpAddr::V4(*inst), IpAddr::V4(*nva));
            let h = spawn_peer(cfg, tx.clone(), Tag { instance: i, nva: n, rs_side: true });
            l.register(IpAddr::V4(*nva), h.inbound());
            handles.push(h);
        }
        let sock = Listener::bind(SocketAddr::new(IpAddr::V4(*inst), args.port))
            .map_err(|e| anyhow::anyhow!("cannot listen on {inst}:{}: {e}", args.port))?;
        listeners.push(tokio::spawn(l.run(sock)));
    }
    for (n, (name, nva)) in NVAS.iter().enumerate() {
        for (i, inst) in INSTANCES.iter().enumerate() {
            let mut s = SessionConfig::new(NVA_ASN, *nva, RS_ASN);
            s.connect_retry = Duration::from_secs(1);
            let mut cfg = PeerConfig::new(format!("{name}->rs{i}"), s, IpAddr::V4(*nva), IpAddr::V4(*inst));
            cfg.remote_port = args.port;
            handles.push(spawn_peer(cfg, tx.clone(), Tag { instance: i, nva: n, rs_side: false }));
        }
    }
    drop(tx);

    let mut learned: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + Duration::from_secs(d));
    let stop = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            ev = rx.recv() => {
                let Some((tag, ev)) = ev else { break };
                let t = started.elapsed().as_secs_f32();
                let inst = format!("RouteServiceRole_IN_{}", tag.instance);
                let nva = NVAS[tag.nva].0;
                match ev {
                    PeerEvent::Established { negotiated } if tag.rs_side => {
                        println!("[{t:5.2}s] {inst}: session with {nva} ({}) Established, hold {} s", NVAS[tag.nva].1, negotiated.hold_time);
                    }
                    PeerEvent::Established { .. } => {
                        // The NVA side: advertise the branch prefix, as the seed's route-map does.
                        let h = &handles[INSTANCES.len() * NVAS.len() + tag.nva * INSTANCES.len() + tag.instance];
                        h.send(PeerCommand::SendUpdate(seed_route())).await;
                    }
                    PeerEvent::Update { update, .. } if tag.rs_side => {
                        let nh = update.attrs.next_hop.map(|n| n.to_string()).unwrap_or_default();
                        let path = update.attrs.as_path.as_ref().map(|p| p.to_string()).unwrap_or_default();
                        for p in &update.nlri {
                            println!("[{t:5.2}s] {inst}: learned {p} from {nva}, next hop {nh}, AS path {path}");
                            learned.entry((tag.instance, tag.nva)).or_default().push(p.to_string());
                        }
                    }
                    PeerEvent::Down { reason } if tag.rs_side => println!("[{t:5.2}s] {inst}: session with {nva} down: {reason}"),
                    _ => {}
                }
            }
        }
    }
    println!("summary:");
    for (i, _) in INSTANCES.iter().enumerate() {
        for (n, (name, _)) in NVAS.iter().enumerate() {
            let l = learned.get(&(i, n)).map(|v| v.join(", ")).unwrap_or_else(|| "nothing".into());
            println!("  RouteServiceRole_IN_{i} learned from {name}: {l}");
        }
    }
    for h in &handles {
        h.send(PeerCommand::Shutdown).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for l in listeners {
        l.abort();
    }
    let complete = learned.len() == INSTANCES.len() * NVAS.len();
    if !complete {
        anyhow::bail!("not every instance learned the route from every NVA");
    }
    Ok(())
}
