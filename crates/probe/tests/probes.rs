//! End-to-end probe tests over real loopback sockets (no root needed).

mod support;

use std::time::Duration;

use probe::{spawn, ProbeSpec};
use support::*;
use tokio::sync::mpsc;
use tokio::time::Instant;

const INTERVAL: Duration = Duration::from_millis(100);
/// Room for a loaded 2-core machine (other builds run beside the tests).
const SLACK: Duration = Duration::from_millis(150);

#[tokio::test]
async fn tcp_follows_listener_down_and_up() {
    let target = ip(127, 81, 1, 1);
    let (port, mut listeners) = listen_all(&[target], 128);
    let mut backend = TcpBackend::new(listeners.remove(0));
    let (tx, mut rx) = mpsc::channel(64);
    let _prober = spawn(ProbeSpec::tcp(port, INTERVAL), vec![target], tx);

    let mut last_seq = 0;
    for _ in 0..3 {
        let r = next_for(&mut rx, target, INTERVAL + SLACK).await;
        assert!(r.ok, "{r:?}");
        assert!(r.detail.starts_with("TCP connect in "), "{r:?}");
        assert_eq!(r.seq, last_seq + 1);
        last_seq = r.seq;
    }

    backend.stop().await;
    let stopped = Instant::now();
    let r = loop {
        let r = next_for(&mut rx, target, 2 * INTERVAL + SLACK).await;
        if !r.ok {
            break r;
        }
    };
    assert!(
        stopped.elapsed() <= 2 * INTERVAL + SLACK,
        "down seen after {:?}",
        stopped.elapsed()
    );
    assert_eq!(r.detail, "connection refused");
    let r = next_for(&mut rx, target, INTERVAL + SLACK).await;
    assert!(!r.ok && r.detail == "connection refused", "{r:?}");

    backend.start();
    let started = Instant::now();
    let r = loop {
        let r = next_for(&mut rx, target, 2 * INTERVAL + SLACK).await;
        if r.ok {
            break r;
        }
    };
    assert!(
        started.elapsed() <= 2 * INTERVAL + SLACK,
        "up seen after {:?}",
        started.elapsed()
    );
    assert!(r.detail.starts_with("TCP connect in "), "{r:?}");
}

#[tokio::test]
async fn http_status_decides_and_only_200_is_up() {
    let target = ip(127, 81, 2, 1);
    let (port, mut listeners) = listen_all(&[target], 128);
    let backend = HttpBackend::new(listeners.remove(0), None);
    let (tx, mut rx) = mpsc::channel(64);
    let _prober = spawn(
        ProbeSpec::http(port, "/health?full=1", INTERVAL),
        vec![target],
        tx,
    );

    let r = next_for(&mut rx, target, INTERVAL + SLACK).await;
    assert!(r.ok && r.detail.starts_with("HTTP 200 in "), "{r:?}");

    for (code, ok, detail) in [
        (500, false, "HTTP 500"),
        (200, true, "HTTP 200 in "),
        (301, false, "HTTP 301"),
    ] {
        backend.set_status(code);
        // A probe in flight when the status changed may still report the old one.
        let changed = Instant::now();
        let r = loop {
            let r = next_for(&mut rx, target, 2 * INTERVAL + SLACK).await;
            if r.ok == ok {
                break r;
            }
        };
        assert!(
            changed.elapsed() <= 2 * INTERVAL + SLACK,
            "{code} seen after {:?}",
            changed.elapsed()
        );
        assert!(r.detail.starts_with(detail), "{code}: {r:?}");
    }

    let seen = backend.seen.lock().unwrap();
    let req = &seen.requests[0];
    assert!(req.starts_with("GET /health?full=1 HTTP/1.1\r\n"), "{req}");
    assert!(
        req.contains(&format!("\r\nHost: {target}:{port}\r\n")),
        "{req}"
    );
    assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
}

#[tokio::test]
async fn hung_http_server_times_out_without_delaying_a_healthy_target() {
    let (hung, healthy) = (ip(127, 81, 3, 1), ip(127, 81, 3, 2));
    let (port, mut listeners) = listen_all(&[hung, healthy], 128);
    let _hung = silent_backend(listeners.remove(0));
    let _healthy = HttpBackend::new(listeners.remove(0), None);
    let timeout = Duration::from_millis(60);
    let (tx, mut rx) = mpsc::channel(64);
    let prober = spawn(
        ProbeSpec::http(port, "/", INTERVAL).with_timeout(timeout),
        vec![hung, healthy],
        tx,
    );

    let run = Duration::from_millis(1200);
    let seen = collect_until(&mut rx, Instant::now() + run).await;
    let (of_hung, of_healthy): (Vec<_>, Vec<_>) =
        seen.iter().partition(|s| s.result.target == hung);

    assert!(
        of_hung.len() >= 10,
        "{} results for the hung target",
        of_hung.len()
    );
    for s in &of_hung {
        let r = &s.result;
        assert!(!r.ok, "{r:?}");
        assert_eq!(r.detail, "timed out after 60 ms");
        assert!(
            r.latency >= timeout && r.latency <= timeout + SLACK,
            "{r:?}"
        );
    }
    // The healthy target keeps its own schedule: a result every interval, all ok.
    assert!(
        of_healthy.len() >= 10,
        "{} results for the healthy target",
        of_healthy.len()
    );
    assert!(of_healthy.iter().all(|s| s.result.ok));
    for pair in of_healthy.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap <= INTERVAL + SLACK / 2 + Duration::from_millis(25),
            "gap {gap:?}"
        );
        assert_eq!(pair[1].result.seq, pair[0].result.seq + 1);
    }
    let stats = prober.stats();
    assert_eq!(stats.total.late, 0, "{stats:?}");
    // Every probe of the hung target fails; one may still be in flight.
    let c = stats.targets[0].counts;
    assert!(c.failed <= c.sent && c.failed + 1 >= c.sent, "{stats:?}");
    assert_eq!(stats.targets[1].counts.failed, 0, "{stats:?}");
}

#[tokio::test]
async fn full_accept_queue_is_a_black_hole_and_times_out() {
    let (hole, healthy) = (ip(127, 81, 4, 1), ip(127, 81, 4, 2));
    // Backlog 0: the kernel queues one connection, then drops SYNs while nobody accepts.
    let (port, mut listeners) = listen_all(&[hole, healthy], 0);
    let _never_accepting = listeners.remove(0);
    let _filler = fill_backlog(std::net::SocketAddr::new(hole, port)).await;
    let _healthy = TcpBackend::new(listeners.remove(0));

    let timeout = Duration::from_millis(80);
    let (tx, mut rx) = mpsc::channel(64);
    let prober = spawn(
        ProbeSpec::tcp(port, INTERVAL).with_timeout(timeout),
        vec![hole, healthy],
        tx,
    );
    let seen = collect_until(&mut rx, Instant::now() + Duration::from_millis(700)).await;
    let of_hole: Vec<_> = seen.iter().filter(|s| s.result.target == hole).collect();
    let of_healthy: Vec<_> = seen.iter().filter(|s| s.result.target == healthy).collect();
    assert!(of_hole.len() >= 5, "{}", of_hole.len());
    for s in &of_hole {
        assert!(!s.result.ok);
        assert_eq!(s.result.detail, "timed out after 80 ms");
        assert!(s.result.latency <= timeout + SLACK, "{:?}", s.result);
    }
    assert!(of_healthy.len() >= 5 && of_healthy.iter().all(|s| s.result.ok));
    assert_eq!(prober.stats().total.late, 0);
}

#[tokio::test]
async fn source_address_is_bound() {
    let (target, source) = (ip(127, 81, 6, 1), ip(127, 81, 6, 99));
    let (port, mut listeners) = listen_all(&[target], 128);
    let backend = HttpBackend::new(listeners.remove(0), None);
    let (tx, mut rx) = mpsc::channel(64);
    let _prober = spawn(
        ProbeSpec::http(port, "/", INTERVAL).with_source(source),
        vec![target],
        tx,
    );
    let r = next_for(&mut rx, target, INTERVAL + SLACK).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(backend.seen.lock().unwrap().peers[0].ip(), source);
}

#[tokio::test]
async fn tasks_end_when_the_receiver_is_gone_and_on_drop() {
    let target = ip(127, 81, 7, 1);
    let (port, mut listeners) = listen_all(&[target], 128);
    let backend = HttpBackend::new(listeners.remove(0), None);

    let (tx, rx) = mpsc::channel(64);
    let mut prober = spawn(ProbeSpec::tcp(port, INTERVAL), vec![target, target], tx);
    assert_eq!(prober.targets().count(), 1, "duplicates are probed once");
    assert_eq!(prober.running(), 1);
    drop(rx);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(prober.running(), 0);

    // Dropping the Prober stops the probing: no new connections reach the backend.
    let (tx, mut rx) = mpsc::channel(64);
    let prober = spawn(ProbeSpec::http(port, "/", INTERVAL), vec![target], tx);
    next_for(&mut rx, target, INTERVAL + SLACK).await;
    drop(prober);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before = backend.seen.lock().unwrap().peers.len();
    tokio::time::sleep(3 * INTERVAL).await;
    assert_eq!(backend.seen.lock().unwrap().peers.len(), before);
    assert!(
        rx.recv().await.is_none(),
        "all senders dropped with the tasks"
    );
}

#[tokio::test]
async fn first_probes_are_spread_over_the_interval() {
    // Reproducible jitter: the first result of each target arrives near its computed offset.
    let targets: Vec<_> = (1..=4).map(|d| ip(127, 81, 8, d)).collect();
    let (port, listeners) = listen_all(&targets, 128);
    let _backends: Vec<_> = listeners.into_iter().map(TcpBackend::new).collect();
    let interval = Duration::from_millis(400);
    let (tx, mut rx) = mpsc::channel(64);
    let t0 = Instant::now();
    let _prober = spawn(ProbeSpec::tcp(port, interval), targets.clone(), tx);
    for _ in 0..targets.len() {
        let r = rx.recv().await.unwrap();
        assert_eq!(r.seq, 1);
        let expected = probe::first_offset(r.target, port, interval);
        let at = t0.elapsed();
        assert!(
            at >= expected && at <= expected + SLACK,
            "{}: at {at:?}, offset {expected:?}",
            r.target
        );
    }
}
