//! `nexthop lb-mux` following `nexthop run`, with real packets between namespaces this test
//! creates (root only; skipped otherwise):
//!
//! ```text
//!   client 10.1.3.10   192.168.10.0/24 via 10.1.0.100 ─┐
//!   mux    10.1.0.100  nexthop run (probes the NVAs) + nexthop lb-mux on eth0, ip_forward=0
//!   nva1   10.1.2.10   192.168.10.1/32 on lo, UDP :7000, probe TCP :9000 (priority 1)
//!   nva2   10.1.2.11   192.168.10.1/32 on lo, UDP :7000, probe TCP :9000 (priority 2)
//! ```
//!
//! Active-passive: every flow crosses nva1; nva1's probe listener closes and new flows cross
//! nva2; the time from closing it to the first flow through nva2 is printed.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use labtest::{Lan, Workdir};
use linux::netns;

const BRANCH: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);
const PORT: u16 = 7000;
const PROBE_PORT: u16 = 9000;

const CONFIG: &str = r#"[[virtual_network]]
name = "hub"
region = "westeurope"
address_space = ["10.1.0.0/16"]

[[load_balancer]]
name = "nva-ilb"
virtual_network = "hub"
frontend = "10.1.0.100"
mode = "active-passive"
backends = [{ address = "10.1.2.10", priority = 1 }, { address = "10.1.2.11", priority = 2 }]
probe = { protocol = "tcp", port = 9000, interval_ms = 100, timeout_ms = 100, rise = 2, fall = 3 }

[[nic]]
name = "vm1-nic"
virtual_network = "hub"
address = "10.1.3.10"

[api]
listen = "127.0.0.1:8179"
"#;

#[test]
fn lb_mux_forwards_to_the_active_nva_and_fails_over() {
    if !labtest::require_netns(&["ip", "sysctl"]) {
        return;
    }
    let lan = Lan::new(&[
        ("client", &["10.1.3.10/16"]),
        ("mux", &["10.1.0.100/16"]),
        ("nva1", &["10.1.2.10/16"]),
        ("nva2", &["10.1.2.11/16"]),
    ])
    .unwrap();
    let (client, muxns) = (lan.ns("client"), lan.ns("mux"));
    client
        .exec(
            "ip",
            &["route", "add", "192.168.10.0/24", "via", "10.1.0.100"],
        )
        .unwrap();
    muxns
        .exec("sysctl", &["-qw", "net.ipv4.ip_forward=0"])
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<(&'static str, u16, Instant)>();
    let mut probes = Vec::new();
    let mut listeners = Vec::new();
    for (name, addr) in [
        ("nva1", Ipv4Addr::new(10, 1, 2, 10)),
        ("nva2", Ipv4Addr::new(10, 1, 2, 11)),
    ] {
        let ns = lan.ns(name);
        ns.add_loopback_addr("192.168.10.1/32").unwrap();
        let (sock, probe) = netns::run_in(ns.name(), || {
            (
                UdpSocket::bind((BRANCH, PORT)).unwrap(),
                TcpListener::bind((addr, PROBE_PORT)).unwrap(),
            )
        })
        .unwrap();
        probe.set_nonblocking(true).unwrap();
        probes.push(probe);
        let (done, tx) = (done.clone(), tx.clone());
        listeners.push(std::thread::spawn(move || {
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut buf = [0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                if let Ok((_, from)) = sock.recv_from(&mut buf) {
                    let _ = tx.send((name, from.port(), Instant::now()));
                }
            }
        }));
    }
    // Accept (and drop) probe connections so the listeners' backlogs never fill.
    let probes = Arc::new(std::sync::Mutex::new(probes));
    let acceptor = {
        let (probes, done) = (probes.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                for p in probes.lock().unwrap().iter() {
                    while p.accept().is_ok() {}
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    let wd = Workdir::new("lbmux").unwrap();
    let file = wd.write("nexthop.toml", CONFIG).unwrap();
    let run = muxns
        .spawn(
            env!("CARGO_BIN_EXE_nexthop"),
            &["run", "--config", file.to_str().unwrap()],
            &wd.file("run.log"),
        )
        .unwrap();
    // Both NVAs up at the controller.
    let t = Instant::now();
    loop {
        let out = muxns
            .command(env!("CARGO_BIN_EXE_nexthop"))
            .args([
                "--api",
                "http://127.0.0.1:8179",
                "lb",
                "show",
                "nva-ilb",
                "-o",
                "json",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let ups = v["backends"]
            .as_array()
            .map(|b| b.iter().filter(|b| b["health"] == "up").count())
            .unwrap_or(0);
        if ups == 2 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "backends not up: {v}\n{}",
            run.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mux = muxns
        .spawn(
            env!("CARGO_BIN_EXE_nexthop"),
            &[
                "lb-mux",
                "--controller",
                "http://127.0.0.1:8179",
                "--lb",
                "nva-ilb",
                "--interface",
                "eth0",
            ],
            &wd.file("mux.log"),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));

    // Active-passive: every flow crosses nva1.
    let send = |i: usize| {
        netns::run_in(client.name(), || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(format!("flow {i}").as_bytes(), (BRANCH, PORT))
                .unwrap();
            s.local_addr().unwrap().port()
        })
        .unwrap()
    };
    let flows = 50;
    for i in 0..flows {
        send(i);
    }
    std::thread::sleep(Duration::from_millis(500));
    let got: Vec<_> = rx.try_iter().collect();
    let via1 = got.iter().filter(|g| g.0 == "nva1").count();
    eprintln!(
        "{flows} flows: {via1} via nva1, {} via nva2",
        got.len() - via1
    );
    assert_eq!(
        (via1, got.len()),
        (flows, flows),
        "mux log:\n{}",
        mux.output()
    );

    // nva1's probe listener closes: new flows go to nva2.
    let failed_at = Instant::now();
    probes.lock().unwrap().remove(0);
    let mut i = flows;
    let first_via_nva2 = loop {
        send(i);
        i += 1;
        if let Some((_, _, at)) = rx.try_iter().find(|g| g.0 == "nva2") {
            break at;
        }
        assert!(
            failed_at.elapsed() < Duration::from_secs(10),
            "no flow through nva2 after the failure; mux log:\n{}",
            mux.output()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    eprintln!(
        "failover: first flow through nva2 {:?} after nva1's probe listener closed \
         (interval 100 ms, fall 3, plus the mux's 20 ms poll)",
        first_via_nva2 - failed_at
    );
    // The stats line (every 5 s) comes, and the mux goes on forwarding after printing it.
    let t = Instant::now();
    while !mux.output().contains(" forwarded ") {
        assert!(t.elapsed() < Duration::from_secs(10), "no stats line");
        std::thread::sleep(Duration::from_millis(200));
    }
    rx.try_iter().count();
    send(i);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        rx.try_iter().map(|g| g.0).collect::<Vec<_>>(),
        vec!["nva2"],
        "after the stats line; mux log:\n{}",
        mux.output()
    );
    done.store(true, Ordering::Relaxed);
    for l in listeners {
        l.join().unwrap();
    }
    acceptor.join().unwrap();
    eprintln!("mux log:\n{}", mux.output());
    drop(mux);
    drop(run);
}
