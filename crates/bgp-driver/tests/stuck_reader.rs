//! A peer that keeps its session up (it sends KEEPALIVEs) but stops reading must not make us
//! queue without bound: past `max_send_queue` octets waiting for its socket the session closes
//! with Cease/8 (Out of Resources) and the driver reconnects. The same traffic to a peer that
//! reads is delivered without a reset. The peer is a raw TCP speaker on 127.0.0.0/8.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp::fsm::SessionConfig;
use bgp::wire::open::Open;
use bgp::wire::{Message, SessionContext};
use bgp_driver::{spawn_peer, PeerCommand, PeerConfig, PeerEvent};
use tokio::sync::mpsc;

const KEEPALIVE: [u8; 19] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0, 19, 4,
];

/// Accepts connections on `l`, opens the session on each (OPEN, KEEPALIVE) and then sends a
/// KEEPALIVE every 300 ms; reads everything it is sent only if `reads`. Counts connections.
fn raw_peer(l: TcpListener, reads: bool, stop: Arc<AtomicBool>, accepted: Arc<AtomicUsize>) {
    l.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut s, _)) = l.accept() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        s.set_nonblocking(false).unwrap();
        let open = Message::Open(Open {
            version: 4,
            my_as: 65001,
            hold_time: 9,
            bgp_id: Ipv4Addr::new(10, 1, 2, 10),
            capabilities: vec![],
        });
        if s.write_all(&open.to_bytes(&SessionContext::default()))
            .is_err()
        {
            continue;
        }
        // Their OPEN and KEEPALIVE.
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = vec![0u8; 65536];
        let _ = s.read(&mut buf);
        if reads {
            let mut r = s.try_clone().unwrap();
            std::thread::spawn(move || {
                r.set_read_timeout(None).unwrap();
                while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
        keepalives(&mut s, &stop);
    }
}

fn keepalives(s: &mut TcpStream, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        if s.write_all(&KEEPALIVE).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

struct Run {
    down: Option<String>,
    established: usize,
    accepted: usize,
}

/// Our speaker at 127.0.4.`n`0 connects to a raw peer at 127.0.4.`n`1 and, once established,
/// sends 256 KiB every 10 ms for `secs` (25 MiB/s, which a reading peer takes easily on
/// loopback) with a send queue limit of `limit` octets; then waits `then` for what follows.
async fn run(n: u8, reads: bool, limit: usize, secs: u64, then: Duration) -> Run {
    let local = Ipv4Addr::new(127, 0, 4, n * 10);
    let remote = Ipv4Addr::new(127, 0, 4, n * 10 + 1);
    let l = TcpListener::bind((remote, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let peer = {
        let (stop, accepted) = (stop.clone(), accepted.clone());
        std::thread::spawn(move || raw_peer(l, reads, stop, accepted))
    };

    let mut s = SessionConfig::new(65515, local, 65001);
    s.hold_time = 9;
    s.connect_retry = Duration::from_millis(300);
    let mut cfg = PeerConfig::new("stuck", s, IpAddr::V4(local), IpAddr::V4(remote));
    cfg.remote_port = port;
    cfg.restart_delay = Duration::from_millis(200);
    cfg.max_send_queue = limit;
    let (tx, mut rx) = mpsc::channel(64);
    let h = spawn_peer(cfg, tx, ());

    let mut out = Run {
        down: None,
        established: 0,
        accepted: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.established == 0 {
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some(((), PeerEvent::Established { .. }))) => out.established += 1,
            Ok(Some(_)) => {}
            other => panic!("no session: {other:?}"),
        }
    }
    let chunk: Arc<[u8]> = KEEPALIVE.repeat(256 * 1024 / 19).into();
    let sending = Instant::now();
    let end = sending + Duration::from_secs(secs) + then;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    // A stalled test task must not send a burst of missed ticks at once.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick(), if sending.elapsed() < Duration::from_secs(secs) && out.down.is_none() => {
                h.send(PeerCommand::Send(chunk.clone()));
            }
            ev = tokio::time::timeout_at(end.into(), rx.recv()) => match ev {
                Ok(Some(((), PeerEvent::Down { reason }))) => {
                    out.down.get_or_insert(reason.to_string());
                }
                Ok(Some(((), PeerEvent::Established { .. }))) => out.established += 1,
                Ok(Some(_)) => {}
                _ => break,
            },
        }
    }
    h.send(PeerCommand::Shutdown);
    stop.store(true, Ordering::Relaxed);
    out.accepted = accepted.load(Ordering::Relaxed);
    let _ = peer.join();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_closed_with_cease_out_of_resources_and_comes_back() {
    // 2 MiB: the kernel's socket buffers on loopback take a few MiB first, so the limit is
    // reached within about a second.
    let r = run(1, false, 2 << 20, 4, Duration::from_secs(2)).await;
    let down = r
        .down
        .expect("the session to a peer that does not read stayed up");
    assert!(down.contains("Out of Resources"), "down because: {down}");
    // The driver came back: a new connection and a new session after the restart delay.
    assert!(r.accepted >= 2, "no reconnect ({} connections)", r.accepted);
    assert!(
        r.established >= 2,
        "no new session ({} sessions)",
        r.established
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_traffic_to_a_peer_that_reads_keeps_the_session() {
    // A limit a reading peer never nears even if this machine stalls its reader for a while.
    let r = run(2, true, 32 << 20, 3, Duration::from_millis(500)).await;
    assert_eq!(r.down, None);
    assert_eq!((r.accepted, r.established), (1, 1));
}
