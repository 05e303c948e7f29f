//! The BGP-4 session state machine of RFC 4271 §8 for one TCP connection, sans-IO.
//!
//! A [`Session`] is fed [`Event`]s and answers with [`Action`]s; it owns no socket, no task and
//! no clock. Timers are [`Action::StartTimer`] / [`Action::StopTimer`] with durations, and the
//! driver turns their expiry back into events, so a test can drive a whole handshake with no
//! sockets and no sleeps. [`Session::handle_event`] never panics, whatever the event and state.
//!
//! ```text
//!   socket bytes ──decode──> Event ─┐                 ┌─> Send(msg) ──encode──> socket
//!   timer expiry ──────────> Event ─┼─> Session ──────┼─> StartTimer / StopTimer ──> timers
//!   operator, RIB ─────────> Event ─┘  (this module)  └─> Connect, Disconnect, Established, Down
//! ```
//!
//! # One connection per session
//!
//! RFC 4271 §8 describes one FSM per peer that may juggle two connections during a collision.
//! Here a session holds at most one connection (or one outbound attempt): the driver runs a second
//! `Session` for a second connection and settles collisions with [`resolve_collision`], telling
//! the loser with [`Event::OpenCollisionDump`]. So in OpenSent, OpenConfirm and Established the
//! TCP events 16/17 are ignored: that connection belongs to another session. When the session
//! takes a connection (events 16/17 in Connect or Active), any other attempt the driver holds for
//! it is the driver's to abandon.
//!
//! # What is not implemented
//!
//! - DelayOpen (events 12, 20) and DampPeerOscillations (event 13, IdleHoldTimer): the optional
//!   session attributes of §8.1.1 are FALSE.
//! - SendNOTIFICATIONwithoutOPEN is FALSE: errors found in Connect or Active close silently.
//! - CollisionDetectEstablishedState is FALSE, but an [`Event::OpenCollisionDump`] in Established is
//!   still honoured, since only a driver that decided so sends it.
//! - Restarts: after any error the session rests in Idle and the driver decides when to start it
//!   again ([`Event::AutomaticStart`], with whatever back-off it likes); [`Action::Down`] is its
//!   cue. Events 6 and 7 (automatic start with DelayOpen or damping) do not exist here.
//! - TcpConnection_Valid / Tcp_CR_Invalid (events 14, 15): the driver filters connections from
//!   addresses it does not know before any session sees them.
//!
//! # Where this differs from the letter of §8.2.2, and why
//!
//! - Connect + TcpConnectionFails goes to Active with the ConnectRetryTimer restarted (RFC 1771's
//!   rule, and what RFC 4271 does when DelayOpen runs) rather than to Idle: an unreachable peer
//!   is then retried every ConnectRetry interval with no restart from the driver.
//! - A NOTIFICATION received is never answered (RFC 4271 has OpenSent answer event 25 with an FSM
//!   error): the peer has already closed, and a NOTIFICATION in reply only races the FIN.
//! - A header error in Established is answered with its own NOTIFICATION (§6.1), not the FSM
//!   error that the event list of §8.2.2 implies.
//! - An OPEN on this connection in OpenConfirm or Established is an unexpected message (RFC 6608
//!   subcodes 2 and 3); collisions with another connection arrive as OpenCollisionDump instead.
//! - Any message received in Established (ROUTE-REFRESH too, not only KEEPALIVE and UPDATE)
//!   restarts the hold timer: each proves the peer alive.
//! - An expiry of a timer that is not running is dropped: it can only be a late delivery after
//!   [`Action::StopTimer`], and §8.2.2 would otherwise tear the session down for it.
//! - A passive session (§8.1.1 PassiveTcpEstablishment) never starts the ConnectRetryTimer,
//!   whose expiry would make it connect; it waits in Active until the peer connects.
//! - Every way to Idle stops every timer (Active + TcpConnectionFails restarts the
//!   ConnectRetryTimer on its way to Idle in §8.2.2, where nothing listens to it).

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::notification::{cease, code, fsm as fsm_sub, open as open_sub};
use crate::wire::open::AS_TRANS;
use crate::wire::{
    Afi, Capability, Message, Notification, Open, RouteRefresh, Safi, SessionContext,
};

/// The only BGP version spoken (RFC 4271 §4.2).
pub const BGP_VERSION: u8 = 4;
/// Hold time proposed when the configuration says nothing (RFC 4271 §10).
pub const DEFAULT_HOLD_TIME: u16 = 180;
/// ConnectRetryTime (RFC 4271 §10).
pub const DEFAULT_CONNECT_RETRY: Duration = Duration::from_secs(120);
/// The hold timer while waiting for the peer's OPEN: "a large value", 4 minutes suggested
/// (RFC 4271 §8.2.2), so a peer that connects and stays silent does not pin the session forever.
pub const OPEN_SENT_HOLD_TIME: Duration = Duration::from_secs(240);

/// The session states of RFC 4271 §8.2.2.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The mandatory timers of RFC 4271 §8 (§10 for their default values).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Timer {
    ConnectRetry,
    Hold,
    Keepalive,
}

impl Timer {
    const ALL: [Timer; 3] = [Timer::ConnectRetry, Timer::Hold, Timer::Keepalive];
    fn index(self) -> usize {
        self as usize
    }
}

/// What one session is told by configuration.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SessionConfig {
    pub local_as: u32,
    pub local_id: Ipv4Addr,
    /// The AS the peer must announce in its OPEN (§6.2 Bad Peer AS otherwise).
    pub peer_as: u32,
    /// Proposed in OPEN; the session uses the smaller of this and the peer's. 0 turns keepalives
    /// off. 1 and 2 are illegal (§4.2) and are proposed as 3.
    pub hold_time: u16,
    pub connect_retry: Duration,
    /// PassiveTcpEstablishment (§8.1.1): never connect, wait for the peer.
    pub passive: bool,
    /// Sent in OPEN as they are. Without [`Capability::FourOctetAs`] a local AS above 65535 is
    /// sent as AS_TRANS and the peer will reject it.
    pub capabilities: Vec<Capability>,
}

impl SessionConfig {
    /// The OPEN a session with this config sends (§4.2; AS_TRANS in the 2-octet field per
    /// RFC 6793 §9).
    pub fn open(&self) -> Open {
        Open {
            version: BGP_VERSION,
            my_as: u16::try_from(self.local_as).unwrap_or(AS_TRANS),
            hold_time: self.hold_time,
            bgp_id: self.local_id,
            capabilities: self.capabilities.clone(),
        }
    }

    /// An active session with the RFC 4271 §10 timers and [`default_capabilities`].
    pub fn new(local_as: u32, local_id: Ipv4Addr, peer_as: u32) -> Self {
        Self {
            local_as,
            local_id,
            peer_as,
            hold_time: DEFAULT_HOLD_TIME,
            connect_retry: DEFAULT_CONNECT_RETRY,
            passive: false,
            capabilities: default_capabilities(local_as),
        }
    }
}

/// What a route server wants from any modern peer: IPv4 unicast (RFC 4760), route refresh
/// (RFC 2918) and its enhanced form (RFC 7313), 4-octet AS (RFC 6793), extended messages
/// (RFC 8654).
pub fn default_capabilities(local_as: u32) -> Vec<Capability> {
    vec![
        Capability::Multiprotocol {
            afi: Afi::IPV4,
            safi: Safi::UNICAST,
        },
        Capability::RouteRefresh,
        Capability::EnhancedRouteRefresh,
        Capability::FourOctetAs(local_as),
        Capability::ExtendedMessage,
    ]
}

/// What both OPENs together decided (RFC 4271 §4.2, RFC 5492 for capabilities).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Negotiated {
    /// min(ours, peer's) in seconds; 0 means no keepalives and no hold timer.
    pub hold_time: u16,
    /// hold_time / 3 (the §10 ratio), in seconds.
    pub keepalive: u16,
    pub peer_as: u32,
    pub peer_id: Ipv4Addr,
    pub four_octet_as: bool,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    pub extended_message: bool,
    /// The address families both sides announced, in our order.
    pub families: Vec<(Afi, Safi)>,
    /// The peer is in another AS (what a route server expects).
    pub ebgp: bool,
    /// Kept whole so the API can show everything the peer offered, unknown capabilities included.
    pub peer_open: Open,
}

impl Negotiated {
    /// Both sides offered graceful restart with the N bit (RFC 8538): a NOTIFICATION meant to
    /// drop the routes must be Cease/Hard Reset.
    pub fn graceful_notification(&self, ours: &[Capability]) -> bool {
        crate::wire::open::graceful_notification(ours)
            && crate::wire::open::graceful_notification(&self.peer_open.capabilities)
    }

    /// How UPDATEs on this session are encoded and decoded.
    pub fn context(&self) -> SessionContext {
        SessionContext {
            four_octet_as: self.four_octet_as,
            extended_message: self.extended_message,
            ebgp: self.ebgp,
        }
    }
}

/// Inputs to the state machine, named after the events of RFC 4271 §8.1.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// Event 1, ManualStart; with [`SessionConfig::passive`], event 4,
    /// ManualStart_with_PassiveTcpEstablishment.
    ManualStart,
    /// Event 2, ManualStop: sends Cease/Administrative Shutdown if our OPEN went out.
    ManualStop,
    /// Event 3, AutomaticStart (event 5 when passive): the driver restarting the session after
    /// [`Action::Down`]. Unlike ManualStart it keeps the ConnectRetryCounter, so the driver can
    /// back off on [`Session::connect_retry_counter`].
    AutomaticStart,
    /// Event 8, AutomaticStop: the local system gives up on the peer (e.g. the maximum prefix
    /// count of RFC 4486 was reached) and sends this NOTIFICATION if our OPEN went out.
    AutomaticStop(Notification),
    /// Event 9, ConnectRetryTimer_Expires.
    ConnectRetryTimerExpires,
    /// Event 10, HoldTimer_Expires.
    HoldTimerExpires,
    /// Event 11, KeepaliveTimer_Expires.
    KeepaliveTimerExpires,
    /// Event 17, TcpConnectionConfirmed: an inbound connection was accepted for this session.
    TcpConnectionConfirmed,
    /// Event 16, Tcp_CR_Acked: the connection the session asked for with [`Action::Connect`]
    /// is up.
    TcpCrAcked,
    /// Event 18, TcpConnectionFails: the attempt failed, or the connection closed or broke.
    TcpConnectionFails,
    /// Event 19, BGPOpen: a well-formed OPEN; its contents are checked here (§6.2).
    BgpOpen(Open),
    /// Event 21, BGPHeaderErr: the NOTIFICATION the header error calls for (§6.1).
    BgpHeaderErr(Notification),
    /// Event 22, BGPOpenMsgErr: an OPEN that could not be parsed, and its NOTIFICATION (§6.2).
    BgpOpenMsgErr(Notification),
    /// Event 23, OpenCollisionDump: this connection lost a collision (§6.8).
    OpenCollisionDump,
    /// Events 24 and 25, NotifMsgVerErr and NotifMsg: the peer sent a NOTIFICATION (it is
    /// event 24 when that is OPEN Message Error / Unsupported Version Number).
    NotifMsg(Notification),
    /// Event 26, KeepAliveMsg.
    KeepAliveMsg,
    /// Event 27, UpdateMsg: a valid UPDATE (RFC 7606 treat-as-withdraw included); the driver
    /// applies it, the session only learns the peer is alive.
    UpdateMsg,
    /// Event 28, UpdateMsgErr: an UPDATE error that resets the session (RFC 7606 §3), and its
    /// NOTIFICATION.
    UpdateMsgErr(Notification),
    /// Not an RFC 4271 event: a ROUTE-REFRESH (RFC 2918, RFC 7313). Allowed in Established only;
    /// before that it is an unexpected message (RFC 6608). The driver answers the request.
    RouteRefreshMsg(RouteRefresh),
}

impl Event {
    /// The RFC 4271 §8.1 name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Event::ManualStart => "ManualStart",
            Event::ManualStop => "ManualStop",
            Event::AutomaticStart => "AutomaticStart",
            Event::AutomaticStop(_) => "AutomaticStop",
            Event::ConnectRetryTimerExpires => "ConnectRetryTimer_Expires",
            Event::HoldTimerExpires => "HoldTimer_Expires",
            Event::KeepaliveTimerExpires => "KeepaliveTimer_Expires",
            Event::TcpConnectionConfirmed => "TcpConnectionConfirmed",
            Event::TcpCrAcked => "Tcp_CR_Acked",
            Event::TcpConnectionFails => "TcpConnectionFails",
            Event::BgpOpen(_) => "BGPOpen",
            Event::BgpHeaderErr(_) => "BGPHeaderErr",
            Event::BgpOpenMsgErr(_) => "BGPOpenMsgErr",
            Event::OpenCollisionDump => "OpenCollisionDump",
            Event::NotifMsg(_) => "NotifMsg",
            Event::KeepAliveMsg => "KeepAliveMsg",
            Event::UpdateMsg => "UpdateMsg",
            Event::UpdateMsgErr(_) => "UpdateMsgErr",
            Event::RouteRefreshMsg(_) => "RouteRefreshMsg",
        }
    }

    fn timer(&self) -> Option<Timer> {
        match self {
            Event::ConnectRetryTimerExpires => Some(Timer::ConnectRetry),
            Event::HoldTimerExpires => Some(Timer::Hold),
            Event::KeepaliveTimerExpires => Some(Timer::Keepalive),
            _ => None,
        }
    }
}

/// What the driver must do, in order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    /// Encode and write this message (with [`Negotiated::context`] once there is one).
    Send(Message),
    /// Start the timer, or restart it if it runs; its expiry comes back as the matching event.
    StartTimer(Timer, Duration),
    StopTimer(Timer),
    /// Open a TCP connection to the peer; the outcome comes back as TcpCrAcked or
    /// TcpConnectionFails.
    Connect,
    /// Close the connection (after writing what was sent), or abandon the attempt in progress.
    Disconnect,
    /// The session reached Established: start exchanging routes with these parameters.
    Established(Negotiated),
    /// The session went back to Idle from any other state, once per time; if it had been
    /// Established, the routes learned from the peer are to be withdrawn.
    Down {
        reason: DownReason,
    },
}

/// Why a session went down, for logs and the API ("why did this peer drop?").
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum DownReason {
    /// ManualStop (event 2).
    ManualStop,
    /// AutomaticStop (event 8), with the NOTIFICATION it asked for.
    AutomaticStop(Notification),
    /// No message from the peer within the hold time (event 10).
    HoldTimerExpired,
    /// This connection lost a collision to another one with the same peer (event 23).
    CollisionLost,
    /// We found an error in what the peer sent, or when it sent it. The NOTIFICATION was sent if
    /// the session had reached OpenSent; before that, none is (SendNOTIFICATIONwithoutOPEN).
    LocalError(Notification),
    /// The peer sent this NOTIFICATION (events 24, 25).
    PeerNotification(Notification),
    /// The TCP connection closed or broke without a NOTIFICATION (event 18).
    ConnectionFailed,
    /// An event that cannot happen in Connect or Active, which §8.2.2 answers by giving up.
    UnexpectedEvent(&'static str),
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::ManualStop => f.write_str("stopped by operator"),
            DownReason::AutomaticStop(n) => write!(f, "stopped automatically: {n}"),
            DownReason::HoldTimerExpired => f.write_str("hold timer expired"),
            DownReason::CollisionLost => f.write_str("connection collision lost"),
            DownReason::LocalError(n) => write!(f, "error detected: {n}"),
            DownReason::PeerNotification(n) => write!(f, "peer sent NOTIFICATION: {n}"),
            DownReason::ConnectionFailed => f.write_str("TCP connection failed"),
            DownReason::UnexpectedEvent(e) => write!(f, "unexpected event {e}"),
        }
    }
}

/// Which of two connections with one peer survives a collision.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CollisionWinner {
    /// The connection we opened (TcpCrAcked).
    LocallyInitiated,
    /// The connection the peer opened (TcpConnectionConfirmed).
    RemotelyInitiated,
}

/// RFC 4271 §6.8: the connection opened by the speaker with the higher BGP Identifier survives,
/// the identifiers compared as unsigned integers in host byte order. The driver calls this when
/// an OPEN arrives while another connection to the same peer is in OpenConfirm (or OpenSent),
/// and sends [`Event::OpenCollisionDump`] to the session that lost.
pub fn resolve_collision(local_id: Ipv4Addr, remote_id: Ipv4Addr) -> CollisionWinner {
    if u32::from(local_id) < u32::from(remote_id) {
        CollisionWinner::RemotelyInitiated
    } else {
        CollisionWinner::LocallyInitiated
    }
}

/// [`resolve_collision`] with the RFC 6286 §2.3 tie-break, for eBGP peers that may share our
/// BGP Identifier: on equal identifiers the connection opened by the speaker with the larger AS
/// number survives.
pub fn resolve_collision_with_as(
    local_id: Ipv4Addr,
    local_as: u32,
    remote_id: Ipv4Addr,
    remote_as: u32,
) -> CollisionWinner {
    if local_id == remote_id {
        if local_as < remote_as {
            CollisionWinner::RemotelyInitiated
        } else {
            CollisionWinner::LocallyInitiated
        }
    } else {
        resolve_collision(local_id, remote_id)
    }
}

/// One connection's state machine (RFC 4271 §8).
#[derive(Clone, Debug)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    /// Which timers the driver was told to run: an expiry of any other is stale and dropped,
    /// and only running timers are stopped, so the actions say exactly what changed.
    running: [bool; 3],
    /// §8 ConnectRetryCounter: failures since the operator last started or stopped the session.
    /// Nothing damps on it here; the driver may back off on it, the operator sees it as flaps.
    connect_retry_counter: u32,
    /// The outcome of the peer's OPEN: present exactly in OpenConfirm and Established.
    negotiated: Option<Negotiated>,
}

impl Session {
    pub fn new(mut cfg: SessionConfig) -> Self {
        // §4.2: "MUST be either zero or at least three seconds"; rounding up keeps a typo from
        // making every peer reject us.
        if cfg.hold_time == 1 || cfg.hold_time == 2 {
            cfg.hold_time = 3;
        }
        Self {
            cfg,
            state: State::Idle,
            running: [false; 3],
            connect_retry_counter: 0,
            negotiated: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Present in OpenConfirm and Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    pub fn connect_retry_counter(&self) -> u32 {
        self.connect_retry_counter
    }

    /// The OPEN this session sends (see [`SessionConfig::open`]).
    pub fn local_open(&self) -> Open {
        self.cfg.open()
    }

    /// Feeds one event; returns what the driver must do, in order.
    #[must_use = "the driver must carry out every action, in order"]
    pub fn handle_event(&mut self, ev: Event) -> Vec<Action> {
        if let Some(t) = ev.timer() {
            if !self.running[t.index()] {
                return Vec::new();
            }
            self.running[t.index()] = false;
        }
        let mut out = Vec::new();
        match self.state {
            State::Idle => self.idle(ev, &mut out),
            State::Connect => self.connect(ev, &mut out),
            State::Active => self.active(ev, &mut out),
            State::OpenSent => self.open_sent(ev, &mut out),
            State::OpenConfirm => self.open_confirm(ev, &mut out),
            State::Established => self.established(ev, &mut out),
        }
        out
    }

    /// Call after the driver sent an UPDATE: §8.2.2 restarts the KeepaliveTimer on every
    /// KEEPALIVE or UPDATE sent, so KEEPALIVEs only fill silences. The session's own KEEPALIVEs
    /// are already accounted for.
    #[must_use = "the driver must carry out every action, in order"]
    pub fn on_message_sent(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Established {
            self.restart_keepalive(&mut out);
        }
        out
    }

    fn idle(&mut self, ev: Event, out: &mut Vec<Action>) {
        match ev {
            Event::ManualStart | Event::AutomaticStart => {
                if ev == Event::ManualStart {
                    self.connect_retry_counter = 0;
                }
                if self.cfg.passive {
                    self.state = State::Active;
                } else {
                    self.start(out, Timer::ConnectRetry, self.cfg.connect_retry);
                    out.push(Action::Connect);
                    self.state = State::Connect;
                }
            }
            // "refuses all incoming BGP connections": the driver already holds the socket.
            Event::TcpConnectionConfirmed | Event::TcpCrAcked => out.push(Action::Disconnect),
            _ => {}
        }
    }

    fn connect(&mut self, ev: Event, out: &mut Vec<Action>) {
        match ev {
            Event::ManualStart | Event::AutomaticStart => {}
            Event::ManualStop => self.go_idle(out, None, DownReason::ManualStop),
            Event::ConnectRetryTimerExpires => {
                out.push(Action::Disconnect);
                self.start(out, Timer::ConnectRetry, self.cfg.connect_retry);
                out.push(Action::Connect);
            }
            Event::TcpCrAcked | Event::TcpConnectionConfirmed => self.send_open(out),
            Event::TcpConnectionFails => {
                // The attempt is already over: nothing to disconnect. See the module doc.
                self.start(out, Timer::ConnectRetry, self.cfg.connect_retry);
                self.state = State::Active;
            }
            ev => self.give_up(ev, out),
        }
    }

    fn active(&mut self, ev: Event, out: &mut Vec<Action>) {
        match ev {
            Event::ManualStart | Event::AutomaticStart => {}
            Event::ManualStop => self.go_idle(out, None, DownReason::ManualStop),
            Event::ConnectRetryTimerExpires => {
                self.start(out, Timer::ConnectRetry, self.cfg.connect_retry);
                out.push(Action::Connect);
                self.state = State::Connect;
            }
            Event::TcpCrAcked | Event::TcpConnectionConfirmed => self.send_open(out),
            ev => self.give_up(ev, out),
        }
    }

    /// The rest of the Connect and Active events of §8.2.2: each ends in Idle, without a
    /// NOTIFICATION since no OPEN was sent.
    fn give_up(&mut self, ev: Event, out: &mut Vec<Action>) {
        let reason = match ev {
            Event::AutomaticStop(n) => DownReason::AutomaticStop(n),
            Event::TcpConnectionFails => DownReason::ConnectionFailed,
            Event::BgpHeaderErr(n) | Event::BgpOpenMsgErr(n) => DownReason::LocalError(n),
            Event::NotifMsg(n) => DownReason::PeerNotification(n),
            ev => DownReason::UnexpectedEvent(ev.name()),
        };
        self.go_idle(out, None, reason);
    }

    fn send_open(&mut self, out: &mut Vec<Action>) {
        self.stop(out, Timer::ConnectRetry);
        out.push(Action::Send(Message::Open(self.local_open())));
        self.start(out, Timer::Hold, OPEN_SENT_HOLD_TIME);
        self.state = State::OpenSent;
    }

    fn open_sent(&mut self, ev: Event, out: &mut Vec<Action>) {
        match ev {
            Event::TcpConnectionFails => {
                // §8.2.2: back to listening (and retrying), not to Idle.
                for t in Timer::ALL {
                    self.stop(out, t);
                }
                out.push(Action::Disconnect);
                if !self.cfg.passive {
                    self.start(out, Timer::ConnectRetry, self.cfg.connect_retry);
                }
                self.state = State::Active;
            }
            Event::BgpOpen(open) => match self.check_open(open) {
                Ok(n) => {
                    out.push(Action::Send(Message::Keepalive));
                    if n.hold_time > 0 {
                        self.start(out, Timer::Keepalive, secs(n.keepalive));
                        self.start(out, Timer::Hold, secs(n.hold_time));
                    } else {
                        self.stop(out, Timer::Hold);
                    }
                    self.negotiated = Some(n);
                    self.state = State::OpenConfirm;
                }
                Err(n) => self.notify_and_close(out, n),
            },
            ev => self.common(ev, out),
        }
    }

    fn open_confirm(&mut self, ev: Event, out: &mut Vec<Action>) {
        match ev {
            Event::KeepaliveTimerExpires => self.send_keepalive(out),
            Event::KeepAliveMsg => match self.negotiated.clone() {
                Some(n) => {
                    self.restart_hold(out);
                    self.state = State::Established;
                    out.push(Action::Established(n));
                }
                // Unreachable by construction; failing closed beats trusting a missing OPEN.
                None => self.fsm_error(out, fsm_sub::UNSPECIFIED),
            },
            ev => self.common(ev, out),
        }
    }

    fn established(&mut self, ev: Event, out: &mut Vec<Action>) {
        match ev {
            Event::KeepaliveTimerExpires => self.send_keepalive(out),
            Event::KeepAliveMsg | Event::UpdateMsg | Event::RouteRefreshMsg(_) => {
                self.restart_hold(out)
            }
            Event::UpdateMsgErr(n) => self.notify_and_close(out, n),
            // An OPEN, even a broken one, is just an unexpected message now (RFC 6608).
            Event::BgpOpenMsgErr(_) => {
                self.fsm_error(out, fsm_sub::UNEXPECTED_MESSAGE_IN_ESTABLISHED)
            }
            ev => self.common(ev, out),
        }
    }

    /// The events that OpenSent, OpenConfirm and Established treat alike: a connection is up
    /// and an OPEN was sent, so every way out says why with a NOTIFICATION, unless the peer
    /// already did or the connection is gone.
    fn common(&mut self, ev: Event, out: &mut Vec<Action>) {
        match ev {
            Event::ManualStart
            | Event::AutomaticStart
            | Event::TcpCrAcked
            | Event::TcpConnectionConfirmed => {}
            Event::ManualStop => {
                let n = Notification::new(code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN);
                self.go_idle(out, Some(n), DownReason::ManualStop);
            }
            Event::AutomaticStop(n) => {
                self.go_idle(out, Some(n.clone()), DownReason::AutomaticStop(n))
            }
            Event::HoldTimerExpires => {
                let n = Notification::new(code::HOLD_TIMER_EXPIRED, 0);
                self.go_idle(out, Some(n), DownReason::HoldTimerExpired);
            }
            Event::OpenCollisionDump => {
                let n = Notification::new(code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION);
                self.go_idle(out, Some(n), DownReason::CollisionLost);
            }
            Event::BgpHeaderErr(n) | Event::BgpOpenMsgErr(n) => self.notify_and_close(out, n),
            Event::TcpConnectionFails => self.go_idle(out, None, DownReason::ConnectionFailed),
            Event::NotifMsg(n) => self.go_idle(out, None, DownReason::PeerNotification(n)),
            // Timers that cannot run in this state (dropped before dispatch) and messages the
            // state handlers did not claim: RFC 6608 says which state saw them.
            Event::ConnectRetryTimerExpires | Event::KeepaliveTimerExpires => {
                self.fsm_error(out, fsm_sub::UNSPECIFIED)
            }
            Event::BgpOpen(_)
            | Event::KeepAliveMsg
            | Event::UpdateMsg
            | Event::UpdateMsgErr(_)
            | Event::RouteRefreshMsg(_) => {
                let sub = match self.state {
                    State::OpenSent => fsm_sub::UNEXPECTED_MESSAGE_IN_OPENSENT,
                    State::OpenConfirm => fsm_sub::UNEXPECTED_MESSAGE_IN_OPENCONFIRM,
                    State::Established => fsm_sub::UNEXPECTED_MESSAGE_IN_ESTABLISHED,
                    _ => fsm_sub::UNSPECIFIED,
                };
                self.fsm_error(out, sub)
            }
        }
    }

    /// §6.2's checks of a well-formed OPEN, in the RFC's order, and the negotiation.
    fn check_open(&self, open: Open) -> Result<Negotiated, Notification> {
        let err = |sub| Notification::new(code::OPEN_MESSAGE, sub);
        if open.version != BGP_VERSION {
            // The data is the largest version we support, as a 2-octet integer.
            return Err(Notification::with_data(
                code::OPEN_MESSAGE,
                open_sub::UNSUPPORTED_VERSION,
                u16::from(BGP_VERSION).to_be_bytes(),
            ));
        }
        let peer_as = open.asn();
        if peer_as != self.cfg.peer_as {
            return Err(err(open_sub::BAD_PEER_AS));
        }
        // RFC 6286 §2.2: only 0 is invalid, plus our own identifier from an internal peer.
        let ebgp = self.cfg.peer_as != self.cfg.local_as;
        if open.bgp_id.is_unspecified() || (!ebgp && open.bgp_id == self.cfg.local_id) {
            return Err(err(open_sub::BAD_BGP_IDENTIFIER));
        }
        if open.hold_time == 1 || open.hold_time == 2 {
            return Err(err(open_sub::UNACCEPTABLE_HOLD_TIME));
        }
        let hold_time = self.cfg.hold_time.min(open.hold_time);
        let ours = &self.cfg.capabilities;
        let both = |f: fn(&Capability) -> bool| ours.iter().any(f) && open.has(f);
        let our_families = families(ours);
        let peer_families = families(&open.capabilities);
        let mut common: Vec<(Afi, Safi)> = Vec::new();
        for f in our_families {
            if peer_families.contains(&f) && !common.contains(&f) {
                common.push(f);
            }
        }
        Ok(Negotiated {
            hold_time,
            keepalive: hold_time / 3,
            peer_as,
            peer_id: open.bgp_id,
            four_octet_as: both(|c| matches!(c, Capability::FourOctetAs(_))),
            route_refresh: both(|c| matches!(c, Capability::RouteRefresh)),
            enhanced_route_refresh: both(|c| matches!(c, Capability::EnhancedRouteRefresh)),
            extended_message: both(|c| matches!(c, Capability::ExtendedMessage)),
            families: common,
            ebgp,
            peer_open: open,
        })
    }

    fn send_keepalive(&mut self, out: &mut Vec<Action>) {
        out.push(Action::Send(Message::Keepalive));
        self.restart_keepalive(out);
    }

    fn restart_keepalive(&mut self, out: &mut Vec<Action>) {
        let (hold, keepalive) = self
            .negotiated
            .as_ref()
            .map_or((0, 0), |n| (n.hold_time, n.keepalive));
        if hold > 0 {
            self.start(out, Timer::Keepalive, secs(keepalive));
        }
    }

    fn restart_hold(&mut self, out: &mut Vec<Action>) {
        let hold = self.negotiated.as_ref().map_or(0, |n| n.hold_time);
        if hold > 0 {
            self.start(out, Timer::Hold, secs(hold));
        }
    }

    fn fsm_error(&mut self, out: &mut Vec<Action>, subcode: u8) {
        self.notify_and_close(out, Notification::new(code::FSM, subcode));
    }

    fn notify_and_close(&mut self, out: &mut Vec<Action>, n: Notification) {
        self.go_idle(out, Some(n.clone()), DownReason::LocalError(n));
    }

    /// Every way to Idle: say why, stop every timer, drop the connection, forget the peer's
    /// OPEN, count the failure, and tell the driver once.
    fn go_idle(&mut self, out: &mut Vec<Action>, notify: Option<Notification>, reason: DownReason) {
        if let Some(n) = notify {
            out.push(Action::Send(Message::Notification(n)));
        }
        for t in Timer::ALL {
            self.stop(out, t);
        }
        // Active has neither a connection nor an attempt to drop.
        if self.state != State::Active {
            out.push(Action::Disconnect);
        }
        self.connect_retry_counter = match &reason {
            DownReason::ManualStop => 0,
            // Event 24 (version error) before Established: the peer is negotiating a version,
            // not failing.
            DownReason::PeerNotification(n)
                if n.code == code::OPEN_MESSAGE
                    && n.subcode == open_sub::UNSUPPORTED_VERSION
                    && self.state != State::Established =>
            {
                self.connect_retry_counter
            }
            _ => self.connect_retry_counter.saturating_add(1),
        };
        self.negotiated = None;
        self.state = State::Idle;
        out.push(Action::Down { reason });
    }

    fn start(&mut self, out: &mut Vec<Action>, t: Timer, d: Duration) {
        self.running[t.index()] = true;
        out.push(Action::StartTimer(t, d));
    }

    fn stop(&mut self, out: &mut Vec<Action>, t: Timer) {
        if std::mem::take(&mut self.running[t.index()]) {
            out.push(Action::StopTimer(t));
        }
    }
}

fn secs(s: u16) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// The families a side announced; a side with no Multiprotocol capability speaks IPv4 unicast
/// only (RFC 4760 §1: the base protocol carries only IPv4).
fn families(caps: &[Capability]) -> Vec<(Afi, Safi)> {
    let v: Vec<(Afi, Safi)> = caps
        .iter()
        .filter_map(|c| match c {
            Capability::Multiprotocol { afi, safi } => Some((*afi, *safi)),
            _ => None,
        })
        .collect();
    if v.is_empty() {
        vec![(Afi::IPV4, Safi::UNICAST)]
    } else {
        v
    }
}
