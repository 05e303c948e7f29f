//! One BFD session in asynchronous mode (RFC 5880 §6.8), sans-IO.
//!
//! The caller owns the socket and the clock: it hands [`Session::handle`] the time and what
//! happened (a decoded packet for this session, a timer tick, an operator's command) and sends
//! the packets of the effects. [`Session::deadline`] says when to tick next.
//!
//! Timers (§6.8.2–§6.8.4, §6.8.7):
//! - While not Up, packets go out at most once a second (the slow start of §6.8.3); on Up the
//!   configured `desired_min_tx` is announced with a Poll Sequence (P until the peer's F). A
//!   shorter interval applies at once, a longer one only after the Final, so the peer's
//!   detection time never runs shorter than the interval actually used.
//! - The transmit interval is the larger of the local desired interval and the peer's
//!   `required_min_rx`, less a random 0–25 % (10–25 % with a Detect Mult of 1), so two sessions
//!   do not synchronise. The randomness is a small generator seeded by the discriminator: the
//!   same inputs give the same outputs, which keeps tests exact.
//! - Detection time: the peer's Detect Mult × the larger of our `required_min_rx` and the peer's
//!   desired transmit interval; no packet in that time takes the session Down with the
//!   diagnostic "control detection time expired".
//!
//! State machine (§6.8.6), on a packet's state:
//!
//! ```text
//!            AdminDown (peer)      ┌──────────────────────────────┐
//!   any ────────────────────> Down │ Down: Down -> Init, Init -> Up │
//!                                  │ Init: Init|Up -> Up             │
//!                                  │ Up:   Down -> Down (neighbor    │
//!                                  │       signaled session down)    │
//!                                  └──────────────────────────────┘
//! ```

use std::time::{Duration, Instant};

use crate::packet::{ControlPacket, Diag, State};

/// The interval used while the session is not Up (§6.8.3: at least one second).
pub const SLOW: Duration = Duration::from_secs(1);

/// A session's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// How often this system would like to send once Up.
    pub desired_min_tx: Duration,
    /// How often this system can take packets (announced to the peer).
    pub required_min_rx: Duration,
    /// Packets the peer may miss before it declares the session down.
    pub detect_mult: u8,
}

impl Config {
    /// `interval` both ways and `multiplier` (e.g. 100 ms × 3: a dead path found in 300 ms).
    pub fn new(interval: Duration, multiplier: u8) -> Config {
        Config {
            desired_min_tx: interval,
            required_min_rx: interval,
            detect_mult: multiplier.max(1),
        }
    }
}

/// What the session is told.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// A control packet for this session (already decoded and matched to it by the caller:
    /// by Your Discriminator, or by the peer's address while that is 0).
    Packet(&'a ControlPacket),
    /// Time passed ([`Session::deadline`] was reached, or any other moment).
    Tick,
    /// The operator takes the session down (the peer is told AdminDown).
    AdminDown,
    /// The operator lets it run again.
    AdminUp,
}

/// What the session asks of its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send this packet to the peer.
    Send(ControlPacket),
    /// The state changed; `diag` says why when it left Up (or went Down).
    StateChanged { from: State, to: State, diag: Diag },
}

/// One session.
#[derive(Clone, Debug)]
pub struct Session {
    cfg: Config,
    local_disc: u32,
    remote_disc: u32,
    state: State,
    remote_state: State,
    diag: Diag,
    /// What we announce as Desired Min TX (SLOW until Up, then the configured one).
    desired_tx: Duration,
    /// What we transmit at: `desired_tx` once a Poll Sequence for it ended.
    active_tx: Duration,
    /// A Poll Sequence is running: our packets carry P until a Final arrives.
    polling: bool,
    /// The peer polled: the next packet (sent at once) carries F.
    final_due: bool,
    remote_min_rx: Duration,
    remote_desired_tx: Duration,
    remote_detect_mult: u8,
    next_tx: Instant,
    /// Set once a packet came; None while nothing is expected.
    detect_at: Option<Instant>,
    rng: u64,
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Session {
    /// A session in Down, sending its first packet at once. `local_disc` must be non-zero and
    /// unique among the system's sessions (it is how the peer's packets find this session).
    pub fn new(cfg: Config, local_disc: u32, now: Instant) -> Session {
        Session {
            cfg,
            local_disc: local_disc.max(1),
            remote_disc: 0,
            state: State::Down,
            remote_state: State::Down,
            diag: Diag::None,
            desired_tx: SLOW,
            active_tx: SLOW,
            polling: false,
            final_due: false,
            // Until the peer says otherwise, assume it takes one packet a second.
            remote_min_rx: Duration::from_micros(1),
            remote_desired_tx: SLOW,
            remote_detect_mult: cfg.detect_mult,
            next_tx: now,
            detect_at: None,
            rng: u64::from(local_disc) ^ 0x9e37_79b9_7f4a_7c15,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }
    pub fn diag(&self) -> Diag {
        self.diag
    }
    pub fn local_disc(&self) -> u32 {
        self.local_disc
    }
    pub fn remote_disc(&self) -> u32 {
        self.remote_disc
    }

    /// The interval packets go out at now (before jitter).
    pub fn tx_interval(&self) -> Duration {
        self.active_tx.max(self.remote_min_rx)
    }

    /// How long the peer may stay silent before the session goes Down.
    pub fn detection_time(&self) -> Duration {
        self.cfg.required_min_rx.max(self.remote_desired_tx) * u32::from(self.remote_detect_mult)
    }

    /// When to call [`Session::handle`] with [`Input::Tick`] next.
    pub fn deadline(&self) -> Instant {
        match self.detect_at {
            Some(d) => d.min(self.next_tx),
            None => self.next_tx,
        }
    }

    pub fn handle(&mut self, now: Instant, input: Input<'_>) -> Vec<Effect> {
        let mut fx = Vec::new();
        match input {
            Input::Packet(p) => self.receive(now, p, &mut fx),
            Input::Tick => {}
            Input::AdminDown => {
                if self.state != State::AdminDown {
                    self.set_state(State::AdminDown, Diag::AdministrativelyDown, &mut fx);
                    self.detect_at = None;
                    self.next_tx = now;
                }
            }
            Input::AdminUp => {
                if self.state == State::AdminDown {
                    self.set_state(State::Down, Diag::None, &mut fx);
                    self.next_tx = now;
                }
            }
        }
        if self.detect_at.is_some_and(|d| now >= d) {
            self.detect_at = None;
            self.remote_disc = 0;
            if matches!(self.state, State::Init | State::Up) {
                self.set_state(State::Down, Diag::ControlDetectionTimeExpired, &mut fx);
            }
        }
        if self.final_due || now >= self.next_tx {
            self.transmit(now, &mut fx);
        }
        fx
    }

    fn receive(&mut self, now: Instant, p: &ControlPacket, fx: &mut Vec<Effect>) {
        // §6.8.6: a packet for another session, or any packet while AdminDown, is dropped.
        if p.your_disc != 0 && p.your_disc != self.local_disc {
            return;
        }
        if self.state == State::AdminDown {
            return;
        }
        self.remote_disc = p.my_disc;
        self.remote_state = p.state;
        self.remote_min_rx = Duration::from_micros(u64::from(p.required_min_rx_us));
        self.remote_desired_tx = Duration::from_micros(u64::from(p.desired_min_tx_us));
        self.remote_detect_mult = p.detect_mult;
        if p.final_ && self.polling {
            self.polling = false;
            self.active_tx = self.desired_tx;
        }
        if p.poll {
            self.final_due = true;
        }
        match (self.state, p.state) {
            (State::Down, State::AdminDown) => {}
            (_, State::AdminDown) => {
                self.set_state(State::Down, Diag::NeighborSignaledSessionDown, fx)
            }
            (State::Down, State::Down) => self.set_state(State::Init, Diag::None, fx),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.set_state(State::Up, Diag::None, fx)
            }
            (State::Up, State::Down) => {
                self.set_state(State::Down, Diag::NeighborSignaledSessionDown, fx)
            }
            _ => {}
        }
        // A peer that asks for no packets (Required Min RX 0) gets none; otherwise expect the
        // next one within the detection time.
        self.detect_at = Some(now + self.detection_time());
        if self.remote_min_rx.is_zero() {
            self.next_tx = now + Duration::from_secs(3600);
        } else if self.next_tx > now + self.tx_interval() {
            // The peer sped up: do not wait out an old, longer interval.
            self.next_tx = now + self.jittered(self.tx_interval());
        }
    }

    fn set_state(&mut self, to: State, diag: Diag, fx: &mut Vec<Effect>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        if diag != Diag::None || to == State::Up {
            self.diag = diag;
        }
        if to == State::Up {
            // Announce the configured interval with a Poll. A shorter interval applies at once;
            // a longer one only once the Final came back (§6.8.3), so the peer's detection time
            // never runs shorter than our actual interval.
            self.desired_tx = self.cfg.desired_min_tx;
            self.polling = self.desired_tx != self.active_tx;
            self.active_tx = self.active_tx.min(self.desired_tx);
        } else if from == State::Up {
            self.desired_tx = SLOW;
            self.active_tx = SLOW;
            self.polling = false;
        }
        fx.push(Effect::StateChanged {
            from,
            to,
            diag: self.diag,
        });
    }

    fn transmit(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let never = self.remote_min_rx.is_zero() && self.state != State::AdminDown;
        if !never {
            fx.push(Effect::Send(ControlPacket {
                diag: self.diag,
                state: self.state,
                poll: self.polling && !self.final_due,
                final_: self.final_due,
                cpi: false,
                demand: false,
                detect_mult: self.cfg.detect_mult,
                my_disc: self.local_disc,
                your_disc: self.remote_disc,
                desired_min_tx_us: us(self.desired_tx),
                required_min_rx_us: us(self.cfg.required_min_rx),
                required_min_echo_rx_us: 0,
            }));
        }
        // A Final is sent out of turn; it does not move the periodic schedule forward.
        if !self.final_due || now >= self.next_tx {
            self.next_tx = now + self.jittered(self.tx_interval());
        }
        self.final_due = false;
    }

    /// `d` less a random 0–25 % (10–25 % with a Detect Mult of 1), §6.8.7.
    fn jittered(&mut self, d: Duration) -> Duration {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let (lo, span) = if self.cfg.detect_mult == 1 {
            (75, 15)
        } else {
            (75, 25)
        };
        let pct = lo + (self.rng % (span + 1));
        d * pct as u32 / 100
    }
}
