//! Two of our own speakers over real TCP on 127.0.0.0/8: establish, exchange an UPDATE, and
//! settle a connection collision when both sides connect at once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp::fsm::{SessionConfig, State};
use bgp::wire::{AsPath, Ipv4Prefix, Origin, PathAttributes, UpdateMessage};
use bgp_driver::{spawn_peer, Listener, PeerCommand, PeerConfig, PeerEvent, PeerHandle};
use tokio::sync::mpsc;

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A speaker at `local` peering with `remote`, both listening on `port`.
async fn speaker(
    name: &str,
    local: &str,
    local_as: u32,
    remote: &str,
    remote_as: u32,
    port: u16,
    passive: bool,
) -> (PeerHandle, mpsc::Receiver<(String, PeerEvent)>) {
    let mut s = SessionConfig::new(local_as, local.parse().unwrap(), remote_as);
    s.passive = passive;
    s.hold_time = 9;
    s.connect_retry = Duration::from_millis(300);
    let mut cfg = PeerConfig::new(name, s, addr(local), addr(remote));
    cfg.remote_port = port;
    cfg.restart_delay = Duration::from_millis(100);
    let (tx, rx) = mpsc::channel(64);
    let h = spawn_peer(cfg, tx, name.to_string());
    let l = Listener::new();
    l.register(addr(remote), h.inbound());
    let sock = Listener::bind(SocketAddr::new(addr(local), port)).unwrap();
    tokio::spawn(l.run(sock));
    (h, rx)
}

async fn wait_established(rx: &mut mpsc::Receiver<(String, PeerEvent)>) -> bgp::fsm::Negotiated {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some((_, PeerEvent::Established { negotiated }))) => return negotiated,
            Ok(Some(_)) => continue,
            other => panic!("no Established: {other:?}"),
        }
    }
}

fn route() -> UpdateMessage {
    UpdateMessage {
        withdrawn: vec![],
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(vec![65001])),
            next_hop: Some(Ipv4Addr::new(10, 1, 0, 100)),
            ..Default::default()
        },
        nlri: vec!["192.168.10.0/24".parse::<Ipv4Prefix>().unwrap()],
    }
}

#[tokio::test]
async fn establish_and_exchange_update() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::DEBUG)
        .try_init();
    let port = 20179;
    let (a, mut arx) = speaker("b", "127.0.3.1", 65515, "127.0.3.2", 65001, port, true).await;
    let (b, mut brx) = speaker("a", "127.0.3.2", 65001, "127.0.3.1", 65515, port, false).await;
    let na = wait_established(&mut arx).await;
    let nb = wait_established(&mut brx).await;
    assert_eq!((na.peer_as, nb.peer_as), (65001, 65515));
    assert!(na.four_octet_as && na.route_refresh && na.extended_message);
    assert_eq!(na.hold_time, 9);
    assert!(b.send(PeerCommand::SendUpdate(route())));
    loop {
        match tokio::time::timeout(Duration::from_secs(5), arx.recv())
            .await
            .unwrap()
            .unwrap()
            .1
        {
            PeerEvent::Update {
                update,
                treat_as_withdraw,
                ..
            } => {
                assert!(treat_as_withdraw.is_none());
                assert_eq!(update, route());
                break;
            }
            PeerEvent::State { .. } => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    // Shutting one side down: the other sees Cease / Administrative Shutdown.
    assert!(b.send(PeerCommand::Shutdown));
    loop {
        match tokio::time::timeout(Duration::from_secs(5), arx.recv())
            .await
            .unwrap()
            .unwrap()
            .1
        {
            PeerEvent::Down { reason } => {
                assert!(
                    reason.to_string().contains("Administrative Shutdown"),
                    "{reason}"
                );
                break;
            }
            _ => continue,
        }
    }
    drop(a);
}

#[tokio::test]
async fn collision_leaves_one_session() {
    let port = 20180;
    // Both active: each connects to the other at about the same time.
    let (_a, mut arx) = speaker("b", "127.0.3.3", 65515, "127.0.3.4", 65002, port, false).await;
    let (_b, mut brx) = speaker("a", "127.0.3.4", 65002, "127.0.3.3", 65515, port, false).await;
    let na = wait_established(&mut arx).await;
    let nb = wait_established(&mut brx).await;
    assert_eq!(na.peer_id, Ipv4Addr::new(127, 0, 3, 4));
    assert_eq!(nb.peer_id, Ipv4Addr::new(127, 0, 3, 3));
    // The session stays up for several keepalive intervals (hold 9 s, keepalive 3 s): no
    // second session fights the first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Ok(Some((_, ev))) = tokio::time::timeout_at(deadline, arx.recv()).await {
        if let PeerEvent::Down { reason } = ev {
            panic!("session went down: {reason}");
        }
        if let PeerEvent::State { state } = ev {
            assert_eq!(state, State::Established, "state moved after establishment");
        }
    }
}
