//! The mux with real packets, in namespaces the test creates:
//!
//! ```text
//!   client 10.1.3.10   192.168.10.0/24 via 10.1.0.100 proto 200 (agent) ─┐
//!   mux    10.1.0.100  ip_forward=0, Mux on eth0                          ├─ br0 (one LAN)
//!   nva1   10.1.2.10   192.168.10.1/32 on lo, UDP :7000, TCP :8000        │
//!   nva2   10.1.2.11   192.168.10.1/32 on lo, UDP :7000, TCP :8000       ─┘
//! ```
//!
//! Each flow from the client must arrive at the NVA an identical `Balancer` predicts, exactly
//! once and only through the mux (the kernel there does not forward); NVAs answer the client
//! directly.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use labtest::Lan;
use lb::{AdminState, Balancer, FlowKey, LbConfig, Mode};
use linux::mux::Mux;
use linux::{netns, reconcile, Netlink};

const FRONTEND: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 100);
const BRANCH: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);
const NVA1: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 10);
const NVA2: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 11);
const PORT: u16 = 7000;
const TCP_PORT: u16 = 8000;
const FLOWS: usize = 100;

fn balancer() -> Balancer {
    Balancer::new(
        LbConfig::new("lb1", FRONTEND, Mode::ActiveActive),
        &[(NVA1, 1, AdminState::Up), (NVA2, 1, AdminState::Up)],
    )
}

/// The LAN of the module doc, the mux not yet started.
fn lab() -> Lan {
    let lan = Lan::new(&[
        ("client", &["10.1.3.10/16"]),
        ("mux", &["10.1.0.100/16"]),
        ("nva1", &["10.1.2.10/16"]),
        ("nva2", &["10.1.2.11/16"]),
    ])
    .unwrap();
    // The client's route to the branch is the one the host agent programs.
    let client = lan.ns("client");
    let changes = netns::run_in(client.name(), || {
        let mut nl = Netlink::open()?;
        reconcile(
            &mut nl,
            &[("192.168.10.0/24".parse().unwrap(), vec![FRONTEND.into()])],
        )
    })
    .unwrap()
    .unwrap();
    assert_eq!(changes.added.len(), 1);
    eprintln!(
        "client routes:\n{}",
        client.exec("ip", &["-4", "route", "show"]).unwrap()
    );
    lan.ns("mux")
        .exec("sysctl", &["-qw", "net.ipv4.ip_forward=0"])
        .unwrap();
    for name in ["nva1", "nva2"] {
        lan.ns(name).add_loopback_addr("192.168.10.1/32").unwrap();
    }
    lan
}

/// Receives on `sock` until `done` is set; returns each sender.
fn collect(sock: UdpSocket, done: &AtomicBool) -> Vec<SocketAddr> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while !done.load(Ordering::Relaxed) {
        if let Ok((_, from)) = sock.recv_from(&mut buf) {
            got.push(from);
        }
    }
    got
}

#[test]
fn udp_flows_reach_the_backend_the_balancer_chose() {
    if !labtest::require_netns(&["ip", "sysctl"]) {
        return;
    }
    let lan = lab();
    let (client, muxns) = (lan.ns("client"), lan.ns("mux"));
    let done = Arc::new(AtomicBool::new(false));
    let mut listeners = Vec::new();
    for name in ["nva1", "nva2"] {
        let ns = lan.ns(name);
        let sock = netns::run_in(ns.name(), || UdpSocket::bind((BRANCH, PORT)))
            .unwrap()
            .unwrap();
        let done = done.clone();
        listeners.push(std::thread::spawn(move || collect(sock, &done)));
    }

    let mut mux = netns::run_in(muxns.name(), || Mux::open("eth0", balancer()))
        .unwrap()
        .unwrap();
    assert!(mux.unresolved().is_empty(), "NVA MACs resolved at open");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let runner = s.spawn(|| {
            mux.run(&stop, |_| {}).unwrap();
        });
        // The mux had the kernel resolve both NVAs when it opened.
        let neigh = muxns.exec("ip", &["neigh", "show", "dev", "eth0"]).unwrap();
        eprintln!("mux neighbours:\n{neigh}");

        let sent: Vec<u16> = netns::run_in(client.name(), || {
            (0..FLOWS)
                .map(|i| {
                    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
                    s.send_to(format!("flow {i}").as_bytes(), (BRANCH, PORT))
                        .unwrap();
                    s.local_addr().unwrap().port()
                })
                .collect()
        })
        .unwrap();
        assert_eq!(sent.len(), FLOWS);
        std::thread::sleep(Duration::from_millis(500));
        done.store(true, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        runner.join().unwrap();
    });

    let got: Vec<Vec<SocketAddr>> = listeners.into_iter().map(|h| h.join().unwrap()).collect();
    let stats = mux.stats();
    eprintln!("mux stats: {stats:?}");
    eprintln!("per NVA: nva1 {} nva2 {}", got[0].len(), got[1].len());
    let predict = balancer();
    let mut wrong = HashMap::new();
    for (nva, senders) in [NVA1, NVA2].iter().zip(&got) {
        for from in senders {
            let SocketAddr::V4(from) = from else { panic!() };
            assert_eq!(
                *from.ip(),
                Ipv4Addr::new(10, 1, 3, 10),
                "source address kept"
            );
            let key = FlowKey::new(*from.ip(), BRANCH, 17, from.port(), PORT);
            let want = predict.predict(&key, 0);
            if want != Some((*nva).into()) {
                wrong.insert(from.port(), (*nva, want));
            }
        }
    }
    assert!(wrong.is_empty(), "flows at the wrong NVA: {wrong:?}");
    assert_eq!(
        got[0].len() + got[1].len(),
        FLOWS,
        "every flow arrived once"
    );
    assert!(!got[0].is_empty() && !got[1].is_empty(), "both NVAs used");
    assert_eq!(stats.forwarded, FLOWS as u64);
    assert_eq!(stats.no_neighbour + stats.no_backend + stats.tx_errors, 0);
    let fwd = muxns
        .exec("sysctl", &["-n", "net.ipv4.ip_forward"])
        .unwrap();
    assert_eq!(
        fwd.trim(),
        "0",
        "the kernel must not forward on the mux host"
    );
}

/// Accepts on `l` until `done`; returns each peer.
fn accept_all(l: TcpListener, done: &AtomicBool) -> Vec<SocketAddr> {
    l.set_nonblocking(true).unwrap();
    let mut peers = Vec::new();
    while !done.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((_, peer)) => peers.push(peer),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    peers
}

fn connect_n(client: &labtest::Netns, n: usize) -> Vec<u16> {
    netns::run_in(client.name(), || {
        (0..n)
            .map(|_| {
                let s =
                    TcpStream::connect_timeout(&(BRANCH, TCP_PORT).into(), Duration::from_secs(3))
                        .expect("TCP connection through the mux");
                s.local_addr().unwrap().port()
            })
            .collect()
    })
    .unwrap()
}

/// TCP handshakes cross the mux (the NVA answers the client directly), each connection lands
/// on the predicted NVA, and an admin change applied through the run hook moves new
/// connections at once.
#[test]
fn tcp_connections_follow_the_balancer_and_its_changes() {
    if !labtest::require_netns(&["ip", "sysctl"]) {
        return;
    }
    let lan = lab();
    let (client, muxns) = (lan.ns("client"), lan.ns("mux"));
    let done = Arc::new(AtomicBool::new(false));
    let mut acceptors = Vec::new();
    for name in ["nva1", "nva2"] {
        let l = netns::run_in(lan.ns(name).name(), || {
            TcpListener::bind((BRANCH, TCP_PORT))
        })
        .unwrap()
        .unwrap();
        let done = done.clone();
        acceptors.push(std::thread::spawn(move || accept_all(l, &done)));
    }
    let mut mux = netns::run_in(muxns.name(), || Mux::open("eth0", balancer()))
        .unwrap()
        .unwrap();
    let (tx, rx) = mpsc::channel::<(Ipv4Addr, AdminState)>();
    let stop = AtomicBool::new(false);
    let (before, after) = std::thread::scope(|s| {
        let (mux, stop) = (&mut mux, &stop);
        let runner = s.spawn(move || {
            mux.run(stop, |b| {
                for (addr, state) in rx.try_iter() {
                    b.set_admin(addr, state).unwrap();
                }
            })
            .unwrap();
        });
        let before = connect_n(client, 40);
        tx.send((NVA1, AdminState::Down)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let after = connect_n(client, 20);
        std::thread::sleep(Duration::from_millis(300));
        done.store(true, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        runner.join().unwrap();
        (before, after)
    });
    let got: Vec<Vec<SocketAddr>> = acceptors.into_iter().map(|h| h.join().unwrap()).collect();
    eprintln!("mux stats: {:?}", mux.stats());
    eprintln!("per NVA: nva1 {} nva2 {}", got[0].len(), got[1].len());
    let at = |port: u16| -> Vec<usize> {
        (0..2)
            .filter(|&i| got[i].iter().any(|p| p.port() == port))
            .collect()
    };
    let predict = balancer();
    for port in &before {
        let key = FlowKey::new(Ipv4Addr::new(10, 1, 3, 10), BRANCH, 6, *port, TCP_PORT);
        let want = if predict.predict(&key, 0) == Some(NVA1.into()) {
            0
        } else {
            1
        };
        assert_eq!(at(*port), vec![want], "connection from port {port}");
    }
    for port in &after {
        assert_eq!(
            at(*port),
            vec![1],
            "after nva1 went down, port {port} must be at nva2"
        );
    }
    assert!(
        before.iter().any(|p| at(*p) == vec![0]),
        "nva1 served before going down"
    );
    assert_eq!(got[0].len() + got[1].len(), before.len() + after.len());
    assert_eq!(mux.stats().no_neighbour + mux.stats().tx_errors, 0);
}

/// The first captured frame of a pcap file (classic format, as `tcpdump -w` writes).
fn first_frame(path: &std::path::Path) -> Option<Vec<u8>> {
    let b = std::fs::read(path).ok()?;
    let rec = b.get(24..40)?;
    let len = u32::from_le_bytes(rec[8..12].try_into().ok()?) as usize;
    b.get(40..40 + len).map(<[u8]>::to_vec)
}

fn mac_of(ns: &labtest::Netns) -> [u8; 6] {
    netns::run_in(ns.name(), || Netlink::open().unwrap().link("eth0").unwrap())
        .unwrap()
        .and_then(|l| l.mac)
        .unwrap()
}

/// The frame the NVA receives is the client's frame with two new MAC addresses: same IP
/// header (TTL, ID, addresses), same payload; only the UDP checksum the client's veth left
/// unfinished is completed.
#[test]
fn forwarded_frames_change_only_their_macs() {
    if !labtest::require_netns(&["ip", "sysctl", "tcpdump"]) {
        return;
    }
    let lan = lab();
    let (client, muxns, nva1) = (lan.ns("client"), lan.ns("mux"), lan.ns("nva1"));
    let work = labtest::Workdir::new("mux-pcap").unwrap();
    let mut dumps = Vec::new();
    for (ns, name) in [(client, "client"), (nva1, "nva1")] {
        let pcap = work.file(&format!("{name}.pcap"));
        let log = work.file(&format!("{name}.log"));
        let pcap_s = pcap.to_str().unwrap().to_string();
        let args = [
            "-n", "-U", "-c", "1", "-i", "eth0", "-w", &pcap_s, "udp", "port", "7000",
        ];
        dumps.push((ns.spawn("tcpdump", &args, &log).unwrap(), pcap, log));
    }
    for (_, _, log) in &dumps {
        assert!(labtest::wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(log).is_ok_and(|s| s.contains("listening on"))
        }));
    }
    // Only nva1 takes flows, so the one datagram goes there.
    let only_nva1 = Balancer::new(
        LbConfig::new("lb1", FRONTEND, Mode::ActiveActive),
        &[(NVA1, 1, AdminState::Up), (NVA2, 1, AdminState::Down)],
    );
    let mut mux = netns::run_in(muxns.name(), || Mux::open("eth0", only_nva1))
        .unwrap()
        .unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (m, st) = (&mut mux, &stop);
        let runner = s.spawn(move || m.run(st, |_| {}).unwrap());
        netns::run_in(client.name(), || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(b"only the MACs change", (BRANCH, PORT)).unwrap();
        })
        .unwrap();
        let captured = labtest::wait_until(Duration::from_secs(5), || {
            dumps.iter().all(|(_, p, _)| first_frame(p).is_some())
        });
        stop.store(true, Ordering::Relaxed);
        runner.join().unwrap();
        assert!(captured, "tcpdump saw the datagram on both sides");
    });
    let sent = first_frame(&dumps[0].1).unwrap();
    let got = first_frame(&dumps[1].1).unwrap();
    eprintln!("client frame: {sent:02x?}\nnva1 frame:   {got:02x?}");
    assert_eq!(
        &sent[0..6],
        &mac_of(muxns),
        "client sends to the frontend's MAC"
    );
    assert_eq!(&got[0..6], &mac_of(nva1), "to the NVA's MAC");
    assert_eq!(&got[6..12], &mac_of(muxns), "from the mux's MAC");
    assert_eq!(sent.len(), got.len());
    let udp_csum = 14 + 20 + 6..14 + 20 + 8;
    assert_eq!(
        &got[12..udp_csum.start],
        &sent[12..udp_csum.start],
        "IP header unchanged"
    );
    assert_eq!(
        &got[udp_csum.end..],
        &sent[udp_csum.end..],
        "payload unchanged"
    );
    assert_eq!(got[14 + 8], 64, "TTL as the client sent it");
    assert_eq!(mux.stats().forwarded, 1);
}
