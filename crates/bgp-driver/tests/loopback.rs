//! Two of our own speakers over real TCP on 127.0.0.0/8: establish, exchange an UPDATE, and
//! settle a connection collision when both sides connect at once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp::fsm::DownReason;
use bgp::fsm::{SessionConfig, State};
use bgp::wire::open::{Capability, GracefulRestartFamily};
use bgp::wire::{Afi, AsPath, Ipv4Prefix, Origin, PathAttributes, Safi, UpdateMessage};
use bgp_driver::{spawn_peer, Listener, PeerCommand, PeerConfig, PeerEvent, PeerHandle};
use tokio::sync::mpsc;

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A speaker at `local` peering with `remote`, both listening on `port`, offering `more`
/// capabilities in its OPEN beside the defaults.
#[allow(clippy::too_many_arguments)]
async fn speaker(
    name: &str,
    local: &str,
    local_as: u32,
    remote: &str,
    remote_as: u32,
    port: u16,
    passive: bool,
    more: Vec<Capability>,
) -> (PeerHandle, mpsc::Receiver<(String, PeerEvent)>) {
    let mut s = SessionConfig::new(local_as, local.parse().unwrap(), remote_as);
    s.capabilities.extend(more);
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
    let (a, mut arx) = speaker(
        "b",
        "127.0.3.1",
        65515,
        "127.0.3.2",
        65001,
        port,
        true,
        Vec::new(),
    )
    .await;
    let (b, mut brx) = speaker(
        "a",
        "127.0.3.2",
        65001,
        "127.0.3.1",
        65515,
        port,
        false,
        Vec::new(),
    )
    .await;
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
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::DEBUG)
        .try_init();
    let port = 20180;
    // Both active: each connects to the other at about the same time.
    let (_a, mut arx) = speaker(
        "b",
        "127.0.3.3",
        65515,
        "127.0.3.4",
        65002,
        port,
        false,
        Vec::new(),
    )
    .await;
    let (_b, mut brx) = speaker(
        "a",
        "127.0.3.4",
        65002,
        "127.0.3.3",
        65515,
        port,
        false,
        Vec::new(),
    )
    .await;
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

/// Graceful restart with the N bit (RFC 8538) on both sides.
fn graceful(notification: bool) -> Vec<Capability> {
    vec![Capability::GracefulRestart {
        restarted: false,
        notification,
        restart_time: 120,
        families: vec![GracefulRestartFamily {
            afi: Afi::IPV4,
            safi: Safi::UNICAST,
            forwarding_preserved: true,
        }],
    }]
}

/// The reason of the next Down `rx` reports.
async fn next_down(rx: &mut mpsc::Receiver<(String, PeerEvent)>) -> DownReason {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some((_, PeerEvent::Down { reason }))) => return reason,
            Ok(Some(_)) => continue,
            other => panic!("no Down: {other:?}"),
        }
    }
}

/// Two speakers established on `port`, 127.0.3.`n` (passive, graceful restart with the N bit)
/// and 127.0.3.`n+1` (N bit as given): the first one's events, the second one's handle.
async fn gr_pair(
    port: u16,
    n: u8,
    second_n_bit: bool,
) -> (PeerHandle, mpsc::Receiver<(String, PeerEvent)>, PeerHandle) {
    let (a_addr, b_addr) = (format!("127.0.3.{n}"), format!("127.0.3.{}", n + 1));
    let (a, mut arx) = speaker(
        "b",
        &a_addr,
        65515,
        &b_addr,
        65001,
        port,
        true,
        graceful(true),
    )
    .await;
    let (b, mut brx) = speaker(
        "a",
        &b_addr,
        65001,
        &a_addr,
        65515,
        port,
        false,
        graceful(second_n_bit),
    )
    .await;
    wait_established(&mut arx).await;
    wait_established(&mut brx).await;
    (a, arx, b)
}

#[tokio::test]
async fn with_the_n_bit_an_intended_stop_is_a_hard_reset_and_abandon_says_nothing() {
    // Both offer the N bit: a deconfigured peer is told Cease/Hard Reset (carrying Cease/3),
    // so it does not keep our routes as after a restart.
    let (_a, mut arx, b) = gr_pair(20181, 5, true).await;
    assert!(b.send(PeerCommand::Deconfigure));
    match next_down(&mut arx).await {
        DownReason::PeerNotification(n) => {
            assert!(n.is_hard_reset(), "{n:?}");
            assert_eq!(n.data[..2], [6, 3], "{n:?}");
        }
        other => panic!("{other}"),
    }

    // Without the N bit on one side: the plain Cease.
    let (_a, mut arx, b) = gr_pair(20182, 7, false).await;
    assert!(b.send(PeerCommand::Shutdown));
    match next_down(&mut arx).await {
        DownReason::PeerNotification(n) => {
            assert!(!n.is_hard_reset() && n.code == 6 && n.subcode == 2, "{n:?}")
        }
        other => panic!("{other}"),
    }

    // Abandon (a restart with graceful restart): the connection closes, no NOTIFICATION.
    let (_a, mut arx, b) = gr_pair(20183, 9, true).await;
    assert!(b.send(PeerCommand::Abandon));
    assert_eq!(next_down(&mut arx).await, DownReason::ConnectionFailed);
}
