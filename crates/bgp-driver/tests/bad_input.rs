//! Bad input over a real TCP connection: a raw client opens a session with our speaker, then
//! sends one broken message; the speaker answers with the NOTIFICATION RFC 4271 / RFC 7606
//! prescribes and closes, or, for treat-as-withdraw, keeps the session and withdraws.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use bgp::fsm::SessionConfig;
use bgp::wire::{Capability, Message, Notification, Open, SessionContext};
use bgp_driver::{spawn_peer, Listener, PeerConfig, PeerEvent};
use tokio::sync::mpsc;

const OUR: &str = "127.0.6.1";

/// Starts our passive speaker on OUR:`port` for a peer at `peer` (AS 65001).
async fn speaker(peer: &str, port: u16) -> mpsc::Receiver<((), PeerEvent)> {
    let mut s = SessionConfig::new(65515, Ipv4Addr::new(10, 1, 1, 4), 65001);
    s.passive = true;
    let peer_ip: IpAddr = peer.parse().unwrap();
    let cfg = PeerConfig::new("raw", s, OUR.parse().unwrap(), peer_ip);
    let (tx, rx) = mpsc::channel(64);
    let h = spawn_peer(cfg, tx, ());
    let l = Listener::new();
    l.register(peer_ip, h.inbound());
    tokio::spawn(l.run(Listener::bind(SocketAddr::new(OUR.parse().unwrap(), port)).unwrap()));
    std::mem::forget(h);
    rx
}

/// A raw BGP client at `from` that completes the handshake and returns the stream.
fn handshake(from: &str, port: u16) -> TcpStream {
    let sock = connect_from(from, port);
    let ctx = SessionContext::default();
    let open = Message::Open(Open {
        version: 4,
        my_as: 65001,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(10, 1, 2, 10),
        capabilities: vec![Capability::FourOctetAs(65001), Capability::RouteRefresh],
    });
    let mut s = sock;
    s.write_all(&open.to_bytes(&ctx)).unwrap();
    s.write_all(&Message::Keepalive.to_bytes(&ctx)).unwrap();
    // Read their OPEN and KEEPALIVE.
    let mut got = read_messages(&mut s, 2);
    assert!(matches!(got.remove(0), Message::Open(_)));
    s
}

fn connect_from(from: &str, port: u16) -> TcpStream {
    // std cannot bind before connect; go through tokio's TcpSocket on a tiny runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(from.parse().unwrap(), 0)).unwrap();
        let st = s
            .connect(SocketAddr::new(OUR.parse().unwrap(), port))
            .await
            .unwrap();
        st.into_std().unwrap()
    })
}

fn read_messages(s: &mut TcpStream, n: usize) -> Vec<Message> {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let ctx = SessionContext::default();
    while out.len() < n {
        let mut chunk = [0u8; 4096];
        let k = s.read(&mut chunk).unwrap_or(0);
        if k == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..k]);
        while let Ok((m, used)) = Message::decode(&buf, &ctx) {
            out.push(m);
            buf.drain(..used);
        }
    }
    out
}

/// Sends `bad` after the handshake and returns the NOTIFICATION received (KEEPALIVEs skipped).
fn notification_for(from: &str, port: u16, bad: &[u8]) -> Notification {
    let mut s = handshake(from, port);
    s.write_all(bad).unwrap();
    for m in read_messages(&mut s, 4) {
        if let Message::Notification(n) = m {
            // And the connection is closed after it.
            let mut rest = [0u8; 64];
            assert_eq!(s.read(&mut rest).unwrap_or(0), 0);
            return n;
        }
    }
    panic!("no NOTIFICATION");
}

fn header(len: u16, kind: u8) -> Vec<u8> {
    let mut h = vec![0xff; 16];
    h.extend_from_slice(&len.to_be_bytes());
    h.push(kind);
    h
}

fn update(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut m = header((19 + 4 + attrs.len() + nlri.len()) as u16, 2);
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(attrs);
    m.extend_from_slice(nlri);
    m
}

const GOOD: [u8; 20] = [
    0x40, 1, 1, 0, 0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9, 0x40, 3, 4, 10, 1, 0, 100,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_update_errors_get_their_notifications() {
    let port = 22179;
    let cases: Vec<(&str, Vec<u8>, (u8, u8))> = vec![
        (
            "wrong marker",
            {
                let mut m = header(19, 4);
                m[0] = 0;
                m
            },
            (1, 1),
        ),
        ("bad length", header(18, 4), (1, 2)),
        (
            "keepalive too long",
            {
                let mut m = header(20, 4);
                m.push(0);
                m
            },
            (1, 2),
        ),
        (
            "oversized update",
            {
                let mut m = header(5000, 2);
                m.resize(5000, 0);
                m
            },
            (1, 2),
        ),
        ("unknown type", header(19, 9), (1, 3)),
        (
            "withdrawn length overrun",
            {
                let mut m = header(23, 2);
                m.extend_from_slice(&[0, 9, 0, 0]);
                m
            },
            (3, 1),
        ),
        (
            "bad NLRI length",
            update(&GOOD, &[33, 1, 2, 3, 4, 5]),
            (3, 10),
        ),
        (
            "unrecognized well-known",
            update(&[&GOOD[..], &[0x40, 99, 0]].concat(), &[24, 192, 168, 10]),
            (3, 2),
        ),
        (
            "duplicate MP_REACH",
            {
                let mp = [0x80, 14, 9, 0, 1, 1, 4, 10, 0, 0, 1, 0];
                update(&[&GOOD[..], &mp, &mp].concat(), &[])
            },
            (3, 1),
        ),
        (
            "unexpected OPEN",
            Message::Open(Open {
                version: 4,
                my_as: 65001,
                hold_time: 90,
                bgp_id: Ipv4Addr::new(10, 1, 2, 10),
                capabilities: vec![],
            })
            .to_bytes(&SessionContext::default()),
            (5, 3),
        ),
    ];
    for (i, (name, bad, want)) in cases.into_iter().enumerate() {
        let from = format!("127.0.6.{}", 10 + i);
        let _rx = speaker(&from, port + i as u16).await;
        let from2 = from.clone();
        let n =
            tokio::task::spawn_blocking(move || notification_for(&from2, port + i as u16, &bad))
                .await
                .unwrap();
        assert_eq!((n.code, n.subcode), want, "{name}: got {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn treat_as_withdraw_keeps_the_session() {
    let port = 22200;
    let from = "127.0.6.50";
    let mut rx = speaker(from, port).await;
    let mut s = tokio::task::spawn_blocking(move || handshake(from, port))
        .await
        .unwrap();
    // A good route, then the same prefix with an invalid ORIGIN (treat-as-withdraw), then
    // another good route: the session survives and the events say what happened.
    s.write_all(&update(&GOOD, &[24, 192, 168, 10])).unwrap();
    let mut bad = GOOD;
    bad[3] = 9;
    s.write_all(&update(&bad, &[24, 192, 168, 10])).unwrap();
    s.write_all(&update(&GOOD, &[24, 192, 168, 20])).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
            .1
        {
            PeerEvent::Update {
                update,
                treat_as_withdraw,
                ..
            } => seen.push((
                update.nlri.len(),
                update.withdrawn.len(),
                treat_as_withdraw.is_some(),
            )),
            PeerEvent::Down { reason } => panic!("session reset: {reason}"),
            _ => {}
        }
    }
    assert_eq!(seen, vec![(1, 0, false), (0, 1, true), (1, 0, false)]);
}
