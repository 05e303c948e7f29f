//! Packets per second of minimum-size UDP (64-byte frames on the wire, 60 without FCS) through
//! the mux, against the kernel forwarding the same traffic in the same lab (mux replaced by
//! `ip_forward=1` and a static route to one NVA), same generator, same run.
//!
//! A measurement, not a check: ignored by default, and meaningful only in release mode:
//! `cargo test --release -j 1 -p linux --test throughput -- --ignored --nocapture`.
//! Counted at the NVAs' `eth0` (frames that arrived), so slow receivers do not limit it.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use labtest::{Lan, Netns};
use lb::{AdminState, Balancer, LbConfig, Mode};
use linux::mux::Mux;
use linux::netns;

const FRONTEND: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 100);
const BRANCH: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);
const SECONDS: f64 = 2.0;
/// 14 Ethernet + 20 IPv4 + 8 UDP + 18 = 60 bytes, 64 with the FCS.
const PAYLOAD: [u8; 18] = [0x5a; 18];

fn lab() -> Lan {
    let lan = Lan::new(&[
        ("client", &["10.1.3.10/16"]),
        ("mux", &["10.1.0.100/16"]),
        ("nva1", &["10.1.2.10/16"]),
        ("nva2", &["10.1.2.11/16"]),
    ])
    .unwrap();
    lan.ns("client")
        .exec(
            "ip",
            &["route", "add", "192.168.10.0/24", "via", "10.1.0.100"],
        )
        .unwrap();
    for n in ["nva1", "nva2"] {
        lan.ns(n).add_loopback_addr("192.168.10.1/32").unwrap();
    }
    // Resolve everyone's MAC up front so no packet waits for ARP.
    for n in ["nva1", "nva2"] {
        netns::run_in(lan.ns(n).name(), || {
            UdpSocket::bind("0.0.0.0:0")
                .and_then(|s| s.send_to(&[], (FRONTEND, 9)).map(drop))
                .unwrap()
        })
        .unwrap();
    }
    lan
}

fn rx_packets(ns: &Netns) -> u64 {
    ns.exec("cat", &["/sys/class/net/eth0/statistics/rx_packets"])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Sends minimum-size datagrams over 64 flows for `SECONDS`; returns how many were sent.
fn blast(client: &Netns) -> u64 {
    netns::run_in(client.name(), || {
        let socks: Vec<UdpSocket> = (0..64)
            .map(|_| {
                let s = UdpSocket::bind("0.0.0.0:0").unwrap();
                s.connect((BRANCH, 7000)).unwrap();
                s
            })
            .collect();
        let end = Instant::now() + Duration::from_secs_f64(SECONDS);
        let mut sent = 0u64;
        while Instant::now() < end {
            for s in &socks {
                if s.send(&PAYLOAD).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    })
    .unwrap()
}

/// Runs the generator and returns (sent, arrived at the NVAs) per second.
fn measure(lan: &Lan) -> (f64, f64) {
    let (n1, n2) = (lan.ns("nva1"), lan.ns("nva2"));
    let before = rx_packets(n1) + rx_packets(n2);
    let sent = blast(lan.ns("client"));
    std::thread::sleep(Duration::from_millis(200));
    let arrived = rx_packets(n1) + rx_packets(n2) - before;
    (sent as f64 / SECONDS, arrived as f64 / SECONDS)
}

#[test]
#[ignore = "measurement; run in release with --ignored --nocapture"]
fn mux_against_kernel_forwarding() {
    if !labtest::require_netns(&["ip", "sysctl", "cat"]) {
        return;
    }
    let lan = lab();
    let muxns = lan.ns("mux");

    muxns
        .exec("sysctl", &["-qw", "net.ipv4.ip_forward=0"])
        .unwrap();
    let balancer = Balancer::new(
        LbConfig::new("lb1", FRONTEND, Mode::ActiveActive),
        &[
            (Ipv4Addr::new(10, 1, 2, 10), 1, AdminState::Up),
            (Ipv4Addr::new(10, 1, 2, 11), 1, AdminState::Up),
        ],
    );
    let mut mux = netns::run_in(muxns.name(), || Mux::open("eth0", balancer))
        .unwrap()
        .unwrap();
    let stop = AtomicBool::new(false);
    let (mux_sent, mux_rate) = std::thread::scope(|s| {
        let (m, st) = (&mut mux, &stop);
        let runner = s.spawn(move || m.run(st, |_| {}).unwrap());
        let r = measure(&lan);
        stop.store(true, Ordering::Relaxed);
        runner.join().unwrap();
        r
    });
    eprintln!("mux stats: {:?}", mux.stats());
    drop(mux);

    muxns
        .exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])
        .unwrap();
    muxns
        .exec(
            "ip",
            &["route", "add", "192.168.10.0/24", "via", "10.1.2.10"],
        )
        .unwrap();
    let (kernel_sent, kernel_rate) = measure(&lan);

    eprintln!(
        "64-byte UDP, {SECONDS} s, 64 flows: mux {mux_rate:.0} pps forwarded (generator \
         {mux_sent:.0} pps); kernel {kernel_rate:.0} pps forwarded (generator {kernel_sent:.0} pps)"
    );
}
