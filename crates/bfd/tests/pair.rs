//! Two real sessions on a simulated clock, their packets encoded and decoded on the way (a link
//! that can be cut or delay packets): they come Up through Init, speed up from the 1 s slow
//! start to 100 ms with a Poll Sequence, find a dead peer within the detection time, follow an
//! AdminDown, and come back.

use std::time::{Duration, Instant};

use bfd::{Config, ControlPacket, Diag, Effect, Input, Session, State};

/// The two ends and the link between them: packets in flight with their arrival time.
struct Pair {
    now: Instant,
    start: Instant,
    a: Session,
    b: Session,
    /// (arrival, to_b, bytes)
    wire: Vec<(Instant, bool, [u8; 24])>,
    /// Packets from b are lost (b's path is cut one way).
    cut_b: bool,
    delay: Duration,
    /// Every state change: (time since start, which, from, to, diag).
    log: Vec<(Duration, char, State, State, Diag)>,
    sent: [Vec<(Duration, ControlPacket)>; 2],
}

impl Pair {
    fn new(cfg: Config) -> Pair {
        let now = Instant::now();
        Pair {
            now,
            start: now,
            a: Session::new(cfg, 0x1111, now),
            b: Session::new(cfg, 0x2222, now),
            wire: Vec::new(),
            cut_b: false,
            delay: Duration::from_millis(1),
            log: Vec::new(),
            sent: [Vec::new(), Vec::new()],
        }
    }

    fn apply(&mut self, from_a: bool, fx: Vec<Effect>) {
        for e in fx {
            match e {
                Effect::Send(p) => {
                    self.sent[usize::from(!from_a)].push((self.now - self.start, p));
                    if from_a || !self.cut_b {
                        self.wire.push((self.now + self.delay, from_a, p.encode()));
                    }
                }
                Effect::StateChanged { from, to, diag } => {
                    let who = if from_a { 'a' } else { 'b' };
                    self.log.push((self.now - self.start, who, from, to, diag));
                }
            }
        }
    }

    /// Runs the clock for `d`, in steps to the next deadline or arrival.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next_wire = self.wire.iter().map(|w| w.0).min();
            let next = [Some(self.a.deadline()), Some(self.b.deadline()), next_wire]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            if next > end {
                self.now = end;
                return;
            }
            self.now = next.max(self.now);
            let now = self.now;
            let arrived: Vec<(bool, [u8; 24])> = self
                .wire
                .iter()
                .filter(|w| w.0 <= now)
                .map(|w| (w.1, w.2))
                .collect();
            self.wire.retain(|w| w.0 > now);
            for (to_b, bytes) in arrived {
                let p = ControlPacket::decode(&bytes).expect("a packet we sent decodes");
                if to_b {
                    let fx = self.b.handle(now, Input::Packet(&p));
                    self.apply(false, fx);
                } else {
                    let fx = self.a.handle(now, Input::Packet(&p));
                    self.apply(true, fx);
                }
            }
            let fx = self.a.handle(now, Input::Tick);
            self.apply(true, fx);
            let fx = self.b.handle(now, Input::Tick);
            self.apply(false, fx);
        }
    }

    /// An operator's command to a, at the current time.
    fn command_a(&mut self, input: Input<'_>) {
        let fx = self.a.handle(self.now, input);
        self.apply(true, fx);
    }

    #[track_caller]
    fn assert_both_up(&self) {
        assert_eq!(
            (self.a.state(), self.b.state()),
            (State::Up, State::Up),
            "{:?}",
            self.log
        );
    }

    fn when(&self, who: char, to: State) -> Option<Duration> {
        self.log
            .iter()
            .find(|l| l.1 == who && l.3 == to)
            .map(|l| l.0)
    }
}

fn cfg() -> Config {
    Config::new(Duration::from_millis(100), 3)
}

#[test]
fn two_sessions_come_up_then_speed_up_with_a_poll_sequence() {
    let mut p = Pair::new(cfg());
    p.run(Duration::from_secs(5));
    p.assert_both_up();
    // Down -> Init -> Up on both sides, within the slow start's few seconds.
    assert!(p.when('a', State::Init).is_some() && p.when('b', State::Init).is_some());
    let up = p
        .when('a', State::Up)
        .unwrap()
        .max(p.when('b', State::Up).unwrap());
    assert!(up <= Duration::from_millis(2100), "Up after {up:?}");
    // While not Up, at most one packet a second (plus Finals); once Up, every 75-100 ms.
    for side in &p.sent {
        let slow: Vec<Duration> = side
            .iter()
            .filter(|(t, pk)| *t < up && !pk.final_)
            .map(|(t, _)| *t)
            .collect();
        for w in slow.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_millis(750), "{slow:?}");
        }
        let fast: Vec<Duration> = side
            .iter()
            .filter(|(t, pk)| *t > up + Duration::from_millis(300) && !pk.final_)
            .map(|(t, _)| *t)
            .collect();
        assert!(fast.len() >= 25, "{} packets after speeding up", fast.len());
        for w in fast.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                gap >= Duration::from_millis(75) && gap <= Duration::from_millis(100),
                "gap {gap:?}"
            );
        }
        // The Poll Sequence ended: no P bit any more, and it carried the new interval.
        let (_, last) = side.last().unwrap();
        assert!(!last.poll);
        assert_eq!(last.desired_min_tx_us, 100_000);
        assert_eq!(last.state, State::Up);
    }
    // Each side polled at least once and was answered with a Final.
    assert!(p.sent[0].iter().any(|(_, pk)| pk.poll) && p.sent[1].iter().any(|(_, pk)| pk.final_));
    assert!(p.sent[1].iter().any(|(_, pk)| pk.poll) && p.sent[0].iter().any(|(_, pk)| pk.final_));
    assert_eq!(p.a.detection_time(), Duration::from_millis(300));
    assert_eq!(p.a.remote_disc(), p.b.local_disc());
}

#[test]
fn a_silent_peer_is_down_within_the_detection_time() {
    let mut p = Pair::new(cfg());
    p.run(Duration::from_secs(5));
    assert_eq!(p.a.state(), State::Up);
    let last_from_b = p.sent[1].last().unwrap().0;
    p.cut_b = true;
    p.run(Duration::from_secs(2));
    let down = p.when('a', State::Down).expect("a went down");
    let (_, _, _, _, diag) = *p
        .log
        .iter()
        .find(|l| l.1 == 'a' && l.3 == State::Down)
        .unwrap();
    assert_eq!(diag, Diag::ControlDetectionTimeExpired);
    let after = down - last_from_b;
    println!("down {after:?} after the last packet from b (detection time 300 ms)");
    assert!(
        after <= Duration::from_millis(302) && after >= Duration::from_millis(200),
        "{after:?}"
    );
    // b still hears a: it sees a go Down and follows (neighbor signaled session down).
    let b_down = p.log.iter().find(|l| l.1 == 'b' && l.3 == State::Down);
    assert_eq!(b_down.map(|l| l.4), Some(Diag::NeighborSignaledSessionDown));
    // The path heals: both Up again.
    p.cut_b = false;
    p.run(Duration::from_secs(5));
    p.assert_both_up();
}

#[test]
fn admin_down_takes_the_peer_down_and_admin_up_brings_both_back() {
    let mut p = Pair::new(cfg());
    p.run(Duration::from_secs(5));
    p.command_a(Input::AdminDown);
    p.run(Duration::from_secs(1));
    assert_eq!(p.a.state(), State::AdminDown);
    assert_eq!(p.b.state(), State::Down);
    assert_eq!(p.b.diag(), Diag::NeighborSignaledSessionDown);
    // b does not time out into anything else while a is AdminDown, and a ignores b.
    p.run(Duration::from_secs(3));
    assert_eq!((p.a.state(), p.b.state()), (State::AdminDown, State::Down));
    p.command_a(Input::AdminUp);
    p.run(Duration::from_secs(5));
    p.assert_both_up();
}

#[test]
fn a_poll_is_answered_at_once_with_a_final() {
    let now = Instant::now();
    let mut s = Session::new(cfg(), 7, now);
    let _ = s.handle(now, Input::Tick); // first packet
    let later = now + Duration::from_millis(10);
    let poll = ControlPacket {
        diag: Diag::None,
        state: State::Down,
        poll: true,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: 3,
        my_disc: 99,
        your_disc: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 100_000,
        required_min_echo_rx_us: 0,
    };
    let fx = s.handle(later, Input::Packet(&poll));
    let sent: Vec<&ControlPacket> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Send(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1, "{fx:?}");
    assert!(sent[0].final_ && !sent[0].poll);
    assert_eq!(sent[0].your_disc, 99);
    assert_eq!(sent[0].state, State::Init);
    // A packet for another session (wrong Your Discriminator) changes nothing.
    let other = ControlPacket {
        your_disc: 12345,
        state: State::Up,
        poll: false,
        ..poll
    };
    let before = s.state();
    assert!(s
        .handle(later, Input::Packet(&other))
        .iter()
        .all(|e| !matches!(e, Effect::StateChanged { .. })));
    assert_eq!(s.state(), before);
}
