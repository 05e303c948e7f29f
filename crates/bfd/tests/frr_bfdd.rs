//! Interop with FRR's `bfdd` (Debian's frr, run by `labtest::Bfdd`), single hop over UDP as
//! RFC 5881 has it, in two network namespaces on one LAN: our session (driven here by a plain UDP loop: control
//! packets to port 3784 from a source port in 49152–65535 with TTL 255) comes Up with bfdd's
//! peer at 100 ms × 3, bfdd sees it up, and when bfdd dies our session goes Down with
//! "control detection time expired" within the detection time of its last packet; when it
//! comes back, Up again. Root and FRR needed: skipped (and said so) without them.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bfd::{Config, ControlPacket, Diag, Effect, Input, Session, State};
use labtest::{Bfdd, Lan};

const OURS: &str = "10.9.0.2";
const FRR: &str = "10.9.0.1";

/// Runs our session for `d` (inside our namespace): every packet received is handed to it,
/// every packet it asks for is sent. Returns its state changes with their times and the time
/// of the last packet received.
struct Driver {
    rx: UdpSocket,
    tx: UdpSocket,
    session: Session,
    changes: Vec<(Instant, State, Diag)>,
    last_rx: Option<Instant>,
}

impl Driver {
    fn new() -> Driver {
        let rx = UdpSocket::bind(format!("{OURS}:3784")).unwrap();
        let tx = UdpSocket::bind(format!("{OURS}:49152")).unwrap();
        tx.set_ttl(255).unwrap();
        let peer: SocketAddr = format!("{FRR}:3784").parse().unwrap();
        tx.connect(peer).unwrap();
        let session = Session::new(
            Config::new(Duration::from_millis(100), 3),
            0x5eed,
            Instant::now(),
        );
        Driver {
            rx,
            tx,
            session,
            changes: Vec::new(),
            last_rx: None,
        }
    }

    fn apply(&mut self, fx: Vec<Effect>) {
        for e in fx {
            match e {
                Effect::Send(p) => {
                    if std::env::var("BFD_TRACE").is_ok() {
                        println!(
                            "{:?} sent {:?} P{} F{} tx {} rx {}",
                            Instant::now(),
                            p.state,
                            p.poll,
                            p.final_,
                            p.desired_min_tx_us,
                            p.required_min_rx_us
                        );
                    }
                    let _ = self.tx.send(&p.encode());
                }
                Effect::StateChanged { to, diag, .. } => {
                    println!("our session: {to} ({diag})");
                    self.changes.push((Instant::now(), to, diag));
                }
            }
        }
    }

    fn run(&mut self, d: Duration, until: impl Fn(&Session) -> bool) {
        let end = Instant::now() + d;
        let mut buf = [0u8; 128];
        while Instant::now() < end && !until(&self.session) {
            let wait = self
                .session
                .deadline()
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            self.rx.set_read_timeout(Some(wait)).unwrap();
            if let Ok((n, from)) = self.rx.recv_from(&mut buf) {
                let now = Instant::now();
                if from.ip().to_string() == FRR {
                    match ControlPacket::decode(&buf[..n]) {
                        Ok(p) => {
                            if std::env::var("BFD_TRACE").is_ok() {
                                println!(
                                    "{now:?} got {:?} P{} F{} tx {} rx {}",
                                    p.state,
                                    p.poll,
                                    p.final_,
                                    p.desired_min_tx_us,
                                    p.required_min_rx_us
                                );
                            }
                            self.last_rx = Some(now);
                            let fx = self.session.handle(now, Input::Packet(&p));
                            self.apply(fx);
                        }
                        Err(e) => println!("not taken from bfdd: {e}"),
                    }
                }
            }
            let fx = self.session.handle(Instant::now(), Input::Tick);
            self.apply(fx);
        }
    }
}

#[test]
fn our_session_comes_up_with_frr_bfdd_and_detects_its_death() {
    if !labtest::require_netns(&["ip", "bfdd", "vtysh", "chown"]) {
        return;
    }
    let lan = Lan::new(&[("frr", &["10.9.0.1/24"]), ("ours", &["10.9.0.2/24"])]).unwrap();
    let mut bfdd = Bfdd::start(lan.ns("frr"), FRR, &[OURS], 100).unwrap();
    let ours = lan.ns("ours").name().to_string();
    let (up_after, frr_saw_up, down_after, diag, again_up) = linux::netns::run_in(&ours, || {
        let mut d = Driver::new();
        let start = Instant::now();
        d.run(Duration::from_secs(10), |s| s.state() == State::Up);
        assert_eq!(d.session.state(), State::Up, "never Up with bfdd");
        let up_after = start.elapsed();
        // Let the Poll Sequence settle both ways, then ask bfdd (from another thread: our
        // session must keep sending while vtysh runs).
        d.run(Duration::from_secs(1), |_| false);
        let frr_saw_up = std::thread::scope(|sc| {
            let h = sc.spawn(|| bfdd.peers());
            d.run(Duration::from_secs(10), |_| h.is_finished());
            h.join().unwrap()
        });
        assert_eq!(d.session.state(), State::Up, "{:?}", d.changes);
        // bfdd dies: no more packets.
        bfdd.kill();
        d.run(Duration::from_secs(3), |s| s.state() == State::Down);
        let (at, state, diag) = *d.changes.last().unwrap();
        assert_eq!(state, State::Down);
        let down_after = at - d.last_rx.unwrap();
        // It comes back: Up again.
        let _again = Bfdd::start(lan.ns("frr"), FRR, &[OURS], 100).unwrap();
        d.run(Duration::from_secs(10), |s| s.state() == State::Up);
        (up_after, frr_saw_up, down_after, diag, d.session.state())
    })
    .unwrap();
    println!(
        "Up with bfdd after {up_after:?}; bfdd says {frr_saw_up:?}; Down {down_after:?} after bfdd's last packet ({diag}); after bfdd's restart: {again_up}"
    );
    assert_eq!(frr_saw_up, vec![(OURS.to_string(), "up".to_string())]);
    assert_eq!(diag, Diag::ControlDetectionTimeExpired);
    assert!(
        down_after <= Duration::from_millis(400),
        "Down {down_after:?} after the last packet (detection time 300 ms)"
    );
    assert_eq!(again_up, State::Up);
}
