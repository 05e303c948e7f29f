//! Two speakers wired back to back, quinn-style: every message goes through the codec, timers
//! run on a simulated clock, and a link can be cut. No sockets, no sleeps.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

use bgp::fsm::{Action, DownReason, Event, Negotiated, Session, SessionConfig, State, Timer};
use bgp::wire::{Message, SessionContext};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

struct Speaker {
    session: Session,
    /// Deadline of each running timer, in simulated milliseconds.
    timers: BTreeMap<u8, (u64, Timer)>,
    established: Option<Negotiated>,
    downs: Vec<DownReason>,
    keepalives_sent: usize,
}

impl Speaker {
    fn new(cfg: SessionConfig) -> Self {
        Self {
            session: Session::new(cfg),
            timers: BTreeMap::new(),
            established: None,
            downs: Vec::new(),
            keepalives_sent: 0,
        }
    }
}

fn timer_key(t: Timer) -> u8 {
    match t {
        Timer::ConnectRetry => 0,
        Timer::Hold => 1,
        Timer::Keepalive => 2,
    }
}

struct Net {
    now: u64,
    a: Speaker,
    b: Speaker,
    queue: VecDeque<(Side, Event)>,
    /// Whether bytes get through; when false, messages vanish and connects fail.
    link_up: bool,
    connected: bool,
}

impl Net {
    fn new(a: SessionConfig, b: SessionConfig) -> Self {
        Self {
            now: 0,
            a: Speaker::new(a),
            b: Speaker::new(b),
            queue: VecDeque::new(),
            link_up: true,
            connected: false,
        }
    }

    fn speaker(&mut self, side: Side) -> &mut Speaker {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn feed(&mut self, side: Side, ev: Event) {
        let actions = self.speaker(side).session.handle_event(ev);
        self.apply(side, actions);
    }

    fn apply(&mut self, side: Side, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send(m) => {
                    if m == Message::Keepalive {
                        self.speaker(side).keepalives_sent += 1;
                    }
                    // Through the codec both ways, as on a real connection.
                    let ctx = SessionContext::default();
                    let bytes = m.to_bytes(&ctx);
                    let (m, _) = Message::decode(&bytes, &ctx).expect("own message decodes");
                    let ev = match m {
                        Message::Open(o) => Event::BgpOpen(o),
                        Message::Keepalive => Event::KeepAliveMsg,
                        Message::Notification(n) => Event::NotifMsg(n),
                        Message::RouteRefresh(r) => Event::RouteRefreshMsg(r),
                        Message::Update(_) => Event::UpdateMsg,
                    };
                    if self.link_up && self.connected {
                        self.queue.push_back((side.other(), ev));
                    }
                }
                Action::StartTimer(t, d) => {
                    let deadline = self.now + d.as_millis() as u64;
                    self.speaker(side)
                        .timers
                        .insert(timer_key(t), (deadline, t));
                }
                Action::StopTimer(t) => {
                    self.speaker(side).timers.remove(&timer_key(t));
                }
                Action::Connect => {
                    if self.link_up {
                        self.connected = true;
                        self.queue.push_back((side, Event::TcpCrAcked));
                        self.queue
                            .push_back((side.other(), Event::TcpConnectionConfirmed));
                    } else {
                        self.queue.push_back((side, Event::TcpConnectionFails));
                    }
                }
                Action::Disconnect => {
                    if std::mem::take(&mut self.connected) && self.link_up {
                        self.queue
                            .push_back((side.other(), Event::TcpConnectionFails));
                    }
                }
                Action::Established(n) => self.speaker(side).established = Some(n),
                Action::Down { reason } => self.speaker(side).downs.push(reason),
            }
        }
    }

    /// Delivers everything in flight, then fires timers in deadline order until `until_ms`.
    fn run_until(&mut self, until_ms: u64) {
        loop {
            while let Some((side, ev)) = self.queue.pop_front() {
                self.feed(side, ev);
            }
            let next = [Side::A, Side::B]
                .into_iter()
                .flat_map(|s| {
                    let timers: Vec<_> = self.speaker(s).timers.values().copied().collect();
                    timers.into_iter().map(move |(d, t)| (d, s, t))
                })
                .min_by_key(|(d, _, _)| *d);
            match next {
                Some((deadline, side, t)) if deadline <= until_ms => {
                    self.now = deadline;
                    self.speaker(side).timers.remove(&timer_key(t));
                    let ev = match t {
                        Timer::ConnectRetry => Event::ConnectRetryTimerExpires,
                        Timer::Hold => Event::HoldTimerExpires,
                        Timer::Keepalive => Event::KeepaliveTimerExpires,
                    };
                    self.feed(side, ev);
                }
                _ => {
                    self.now = until_ms;
                    return;
                }
            }
        }
    }
}

fn pair() -> Net {
    let a = SessionConfig::new(65001, Ipv4Addr::new(10, 0, 0, 1), 65002);
    let b = SessionConfig {
        passive: true,
        hold_time: 90,
        ..SessionConfig::new(65002, Ipv4Addr::new(10, 0, 0, 2), 65001)
    };
    Net::new(a, b)
}

const MINUTE: u64 = 60_000;

#[test]
fn handshake_keepalives_and_hold_expiry() {
    let mut net = pair();
    net.feed(Side::B, Event::ManualStart);
    net.feed(Side::A, Event::ManualStart);
    net.run_until(0);
    assert_eq!(net.a.session.state(), State::Established);
    assert_eq!(net.b.session.state(), State::Established);
    let (na, nb) = (
        net.a.established.clone().unwrap(),
        net.b.established.clone().unwrap(),
    );
    assert_eq!((na.hold_time, nb.hold_time), (90, 90));
    assert_eq!((na.peer_as, nb.peer_as), (65002, 65001));
    assert!(na.four_octet_as && nb.extended_message);

    // Ten quiet minutes: keepalives every 30 s keep both hold timers from expiring.
    net.run_until(10 * MINUTE);
    assert_eq!(net.a.session.state(), State::Established);
    assert_eq!(net.b.session.state(), State::Established);
    assert!(
        (19..=22).contains(&net.a.keepalives_sent),
        "{}",
        net.a.keepalives_sent
    );

    // The link goes silent without a FIN: both sides notice within the hold time.
    net.link_up = false;
    let cut = net.now;
    net.run_until(cut + 2 * MINUTE);
    assert_eq!(net.a.downs, [DownReason::HoldTimerExpired]);
    assert_eq!(net.b.downs, [DownReason::HoldTimerExpired]);
    assert_eq!(net.a.session.state(), State::Idle);
    assert!(net.a.timers.is_empty() && net.b.timers.is_empty());
}

#[test]
fn unreachable_peer_is_retried_every_connect_retry() {
    let mut net = pair();
    net.link_up = false;
    net.feed(Side::A, Event::ManualStart);
    net.run_until(0);
    assert_eq!(net.a.session.state(), State::Active);
    // The link comes back; the next ConnectRetry expiry (120 s) connects.
    net.link_up = true;
    net.feed(Side::B, Event::ManualStart);
    net.run_until(3 * MINUTE);
    assert_eq!(net.a.session.state(), State::Established);
    assert_eq!(net.b.session.state(), State::Established);
    assert!(net.a.downs.is_empty());
}

#[test]
fn manual_stop_tells_the_peer() {
    let mut net = pair();
    net.feed(Side::B, Event::ManualStart);
    net.feed(Side::A, Event::ManualStart);
    net.run_until(0);
    net.feed(Side::B, Event::ManualStop);
    net.run_until(0);
    assert_eq!(net.b.downs, [DownReason::ManualStop]);
    let Some(DownReason::PeerNotification(n)) = net.a.downs.first() else {
        panic!("{:?}", net.a.downs);
    };
    assert_eq!((n.code, n.subcode), (6, 2));
    assert_eq!(net.a.session.state(), State::Idle);
    // The driver of A restarts it; with B down, A keeps retrying from Connect/Active.
    net.feed(Side::A, Event::ManualStart);
    net.run_until(10 * MINUTE);
    assert!(matches!(
        net.a.session.state(),
        State::Connect | State::Active | State::OpenSent
    ));
}
