//! A flood of TCP connections from an address no peer is configured for costs the configured
//! peers nothing: 10,000 connections (100 at a time) to a running `nexthop run`'s BGP port,
//! and its real BGP peer stays Established with its route, every flood connection is refused
//! (closed before a byte is read) and counted.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp_driver::{PeerCommand, PeerEvent};
use common::{branch_update, config_file, free_port, json, nva_session, run_daemon};

const INSTANCE: Ipv4Addr = Ipv4Addr::new(127, 0, 13, 4);
const NVA: Ipv4Addr = Ipv4Addr::new(127, 0, 13, 10);
const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 13, 99);
const FLOOD: usize = 10_000;

fn metric(api: &str, name: &str) -> Option<u64> {
    let mut s = std::net::TcpStream::connect(api).ok()?;
    use std::io::{Read, Write};
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_from_strangers_costs_the_peers_nothing() {
    let (port, api_port) = (free_port(), free_port());
    let api = format!("127.0.0.1:{api_port}");
    let cfg = format!(
        "[route_server]\ninstances = [\"{INSTANCE}\"]\nport = {port}\n\n\
         [[route_server.peer]]\nname = \"nva1\"\naddress = \"{NVA}\"\nasn = 65001\n\n\
         [api]\nlisten = \"{api}\"\n"
    );
    let file = config_file("flood", &cfg);
    let _d = run_daemon(&file);
    let (nva, mut events) = nva_session(NVA, INSTANCE, port).await;
    // Every event of the session from now on, to see that it never went down.
    let went_down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let down = went_down.clone();
    let watcher = tokio::spawn(async move {
        while let Some((_, ev)) = events.recv().await {
            if matches!(ev, PeerEvent::Down { .. }) {
                down.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    nva.send(PeerCommand::SendUpdate(branch_update(Ipv4Addr::new(
        10, 1, 0, 100,
    ))));
    let learned = || json(&api, &["routes", "learned", "--peer", "nva1", "-o", "json"]);
    let mut ok = false;
    for _ in 0..100 {
        if learned().is_some_and(|v| v.to_string().contains("192.168.10.0/24")) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the route was never learned");
    let updates_before = json(&api, &["peers", "-o", "json"]).unwrap()["RouteServiceRole_IN_0"][0]
        ["updatesReceived"]
        .clone();

    // The flood, 100 connections at a time from an unconfigured address.
    let target = SocketAddr::from((INSTANCE, port));
    let mut connected = 0usize;
    for _ in 0..FLOOD / 100 {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..100 {
            set.spawn(async move {
                let s = tokio::net::TcpSocket::new_v4().ok()?;
                s.bind(SocketAddr::from((STRANGER, 0))).ok()?;
                let mut c = s.connect(target).await.ok()?;
                // The route server closes it without reading: EOF (or a reset).
                let mut b = [0u8; 1];
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio::io::AsyncReadExt::read(&mut c, &mut b),
                )
                .await;
                Some(())
            });
        }
        while let Some(r) = set.join_next().await {
            connected += usize::from(matches!(r, Ok(Some(()))));
        }
    }
    assert!(
        connected >= FLOOD * 9 / 10,
        "only {connected} flood connections got through to accept"
    );

    // The peer never noticed.
    assert!(
        !went_down.load(std::sync::atomic::Ordering::SeqCst),
        "the NVA's session went down during the flood"
    );
    let peers = json(&api, &["peers", "-o", "json"]).unwrap();
    let p = &peers["RouteServiceRole_IN_0"][0];
    assert_eq!(p["state"], "Established", "{peers:#}");
    assert_eq!(p["updatesReceived"], updates_before, "{peers:#}");
    assert!(learned().unwrap().to_string().contains("192.168.10.0/24"));
    let refused = metric(&api, "bgp_connections_refused_total").unwrap_or(0);
    assert!(
        refused >= connected as u64,
        "refused {refused} < {connected}"
    );
    drop(nva);
    watcher.abort();
}
