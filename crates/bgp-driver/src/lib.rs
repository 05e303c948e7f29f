//! A thin tokio driver for the `bgp` crate: it runs [`bgp::fsm::Session`]s over TCP.
//!
//! The state machine decides; this crate only moves bytes and time. One task per peer owns the
//! peer's sessions (at most two while a connection collision is being settled, RFC 4271 §6.8),
//! executes their [`Action`]s and turns socket reads and timer expiries back into [`Event`]s.
//! It never interprets routes: decoded UPDATEs go to the application as [`PeerEvent::Update`],
//! and the application sends routes back as [`PeerCommand::Send`].
//!
//! # Layout
//!
//! - [`Listener`]: accepts on one local address, hands each connection to the peer configured
//!   for its source address, refuses the rest.
//! - [`spawn_peer`]: the peer task; [`PeerHandle`] to command it.
//!
//! # Tasks
//!
//! ```text
//!  Listener (1x per local address) ──TcpStream──> peer task (1x per peer)
//!                                                  │  ▲
//!                          reader task (1x per conn)┘  │ framed bytes
//!                          writer task (1x per conn) <─┘ encoded messages
//!  application <──PeerEvent── peer task <──PeerCommand── application
//! ```
#![deny(unsafe_code)]

pub mod sockopt;

pub use bgp::peer::{PeerCommand, PeerConfig, PeerEvent, DEFAULT_MAX_SEND_QUEUE};

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bgp::fsm::{resolve_collision, Action, CollisionWinner, Event, Session, State, Timer};
use bgp::wire::{
    frame, MessageType, Notification, Open, RouteRefresh, SessionContext, Update, HEADER_LEN,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// How long a closed connection's writer may still flush what was queued (the NOTIFICATION,
/// normally) before it is dropped: a peer that does not read must not keep it alive.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Commands a running peer task.
#[derive(Clone, Debug)]
pub struct PeerHandle {
    pub name: String,
    /// Unbounded: the application (the RIB task) must never wait on a peer, or a peer
    /// waiting on the application would deadlock both. A slow peer is held back by TCP, and
    /// what is queued for it is what it has not yet read.
    commands: mpsc::UnboundedSender<PeerCommand>,
    inbound: mpsc::Sender<TcpStream>,
    /// Message counters, read by the API and metrics.
    pub stats: Arc<PeerStats>,
}

/// BGP messages (any type) received and sent on the peer's connections.
#[derive(Debug, Default)]
pub struct PeerStats {
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
}

/// How many whole messages `buf` holds (it only ever holds whole messages).
fn count_messages(buf: &[u8]) -> u64 {
    let (mut n, mut off) = (0, 0);
    while buf.len() >= off + HEADER_LEN {
        let len = usize::from(u16::from_be_bytes([buf[off + 16], buf[off + 17]]));
        if len < HEADER_LEN {
            break;
        }
        off += len;
        n += 1;
    }
    n
}

impl PeerHandle {
    /// Queues a command; false when the task has ended.
    pub fn send(&self, cmd: PeerCommand) -> bool {
        self.commands.send(cmd).is_ok()
    }
    /// The sender the [`Listener`] gives this peer's inbound connections to.
    pub fn inbound(&self) -> mpsc::Sender<TcpStream> {
        self.inbound.clone()
    }
}

/// Starts the task of one peer. Events go to `events`, tagged by the caller's choice of
/// channel (one per peer, or a shared one with the name inside `T`).
pub fn spawn_peer<T: Send + 'static>(
    cfg: PeerConfig,
    events: mpsc::Sender<(T, PeerEvent)>,
    tag: T,
) -> PeerHandle
where
    T: Clone + Sync,
{
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::channel(4);
    let name = cfg.name.clone();
    let stats = Arc::new(PeerStats::default());
    let mut task = PeerTask::new(cfg, events, tag);
    task.stats = stats.clone();
    let span = tracing::info_span!("peer", name = %cfg_name(&task), addr = %task.cfg.remote_addr);
    tokio::spawn(tracing::Instrument::instrument(
        task.run(cmd_rx, in_rx),
        span,
    ));
    PeerHandle {
        name,
        commands: cmd_tx,
        inbound: in_tx,
        stats,
    }
}

/// One TCP connection and the session that runs on it.
struct Conn {
    id: u64,
    session: Session,
    /// The connection we opened (Tcp_CR_Acked) rather than accepted; decides collisions.
    outbound: bool,
    /// None until the TCP connection exists (while connecting). Unbounded, so that the peer
    /// task never waits on a slow socket; `queued` counts what it holds.
    writer: Option<mpsc::UnboundedSender<Arc<[u8]>>>,
    /// Octets given to the writer and not yet written to the socket.
    queued: Arc<AtomicUsize>,
    /// Set when the session is over: the writer drops what it has not started and writes the
    /// NOTIFICATION next (so a slow reader still learns why, within [`FLUSH_TIMEOUT`]).
    closing: Arc<AtomicBool>,
    write_task: Option<tokio::task::JoinHandle<()>>,
    reader: Option<tokio::task::JoinHandle<()>>,
    connecting: Option<tokio::task::JoinHandle<()>>,
    deadlines: [Option<Instant>; 3],
    ctx: SessionContext,
    /// Bytes received and not yet framed.
    rx: Vec<u8>,
    /// Disconnected; removed once the actions of the current event are done.
    closed: bool,
}

impl Conn {
    /// Hands `bytes` to the writer; returns the octets now waiting for the socket.
    fn queue(&self, bytes: Arc<[u8]>) -> usize {
        let Some(w) = &self.writer else { return 0 };
        let n = bytes.len();
        // Counted before the writer can see it, so its decrement never comes first.
        let total = self.queued.fetch_add(n, Ordering::Relaxed) + n;
        if w.send(bytes).is_err() {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return 0;
        }
        total
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(r) = self.reader.take() {
            r.abort();
        }
        if let Some(c) = self.connecting.take() {
            c.abort();
        }
    }
}

enum Internal {
    Connected(u64, TcpStream),
    ConnectFailed(u64, std::io::Error),
    Data(u64, Vec<u8>),
    Closed(u64),
}

struct PeerTask<T> {
    cfg: PeerConfig,
    events: mpsc::Sender<(T, PeerEvent)>,
    tag: T,
    conns: Vec<Conn>,
    next_id: u64,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
    /// When to start again after the last connection went away; None while running or stopped.
    restart_at: Option<Instant>,
    backoff: Duration,
    /// For the jitter of the restart and ConnectRetry timers.
    rng: u64,
    reported: State,
    shutting_down: bool,
    started: bool,
    /// After a Reset (e.g. the prefix limit): inbound connections are refused until then.
    hold_down_until: Option<Instant>,
    stats: Arc<PeerStats>,
}

fn timer_index(t: Timer) -> usize {
    match t {
        Timer::ConnectRetry => 0,
        Timer::Hold => 1,
        Timer::Keepalive => 2,
    }
}
const TIMERS: [Timer; 3] = [Timer::ConnectRetry, Timer::Hold, Timer::Keepalive];

/// A seed that differs between tasks and processes (the time, and where this value lives).
fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let here = &t as *const u64 as u64;
    (t ^ here.rotate_left(32)) | 1
}

impl<T: Clone + Send + Sync + 'static> PeerTask<T> {
    fn new(cfg: PeerConfig, events: mpsc::Sender<(T, PeerEvent)>, tag: T) -> Self {
        let (internal_tx, internal_rx) = mpsc::channel(64);
        let backoff = cfg.restart_delay;
        Self {
            cfg,
            events,
            tag,
            conns: Vec::new(),
            next_id: 0,
            internal_tx,
            internal_rx,
            restart_at: Some(Instant::now()),
            backoff,
            rng: seed(),
            reported: State::Idle,
            shutting_down: false,
            started: false,
            hold_down_until: None,
            stats: Arc::default(),
        }
    }

    /// `d` less a random 0–25 % (RFC 4271 §10's jitter). Two speakers that lost a connection
    /// collision to each other at the same moment (each keeping a different connection, as
    /// §6.8 allows when one side is already Established) would otherwise retry in lockstep and
    /// collide again, for ever.
    fn jittered(&mut self, d: Duration) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        d * (75 + (self.rng % 26) as u32) / 100
    }

    async fn emit(&self, ev: PeerEvent) {
        // The application going away ends nothing here; the task is stopped by Shutdown.
        let _ = self.events.send((self.tag.clone(), ev)).await;
    }

    fn new_conn(&mut self, passive: bool) -> usize {
        self.next_id += 1;
        let mut scfg = self.cfg.session.clone();
        scfg.passive = passive || scfg.passive;
        self.conns.push(Conn {
            id: self.next_id,
            session: Session::new(scfg),
            outbound: false,
            writer: None,
            queued: Arc::new(AtomicUsize::new(0)),
            closing: Arc::new(AtomicBool::new(false)),
            write_task: None,
            reader: None,
            connecting: None,
            deadlines: [None; 3],
            ctx: SessionContext::default(),
            rx: Vec::new(),
            closed: false,
        });
        self.conns.len() - 1
    }

    fn index_of(&self, id: u64) -> Option<usize> {
        self.conns.iter().position(|c| c.id == id)
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<PeerCommand>,
        mut inbound: mpsc::Receiver<TcpStream>,
    ) {
        loop {
            let next_deadline = self
                .conns
                .iter()
                .flat_map(|c| c.deadlines.iter().flatten().copied())
                .chain(self.restart_at)
                .min();
            let sleep = async {
                match next_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => { if self.command(cmd).await { break; } }
                    None => { self.command(PeerCommand::Shutdown).await; break; }
                },
                Some(stream) = inbound.recv() => self.accept(stream).await,
                Some(msg) = self.internal_rx.recv() => self.internal(msg).await,
                _ = sleep => self.timers_due().await,
            }
            if self.shutting_down && self.conns.is_empty() {
                break;
            }
        }
        debug!("peer task ends");
    }

    /// Returns true when the task should end.
    async fn command(&mut self, cmd: PeerCommand) -> bool {
        match cmd {
            PeerCommand::Send(bytes) => {
                if let Some(i) = self.established() {
                    let queued = self.conns[i].queue(bytes);
                    if queued > self.cfg.max_send_queue {
                        self.send_queue_overflow(i, queued).await;
                        return false;
                    }
                    let acts = self.conns[i].session.on_message_sent();
                    self.execute(i, acts).await;
                }
            }
            PeerCommand::SendUpdate(u) => {
                if let Some(i) = self.established() {
                    let mut out = Vec::new();
                    u.emit(&self.conns[i].ctx, &mut out);
                    return Box::pin(self.command(PeerCommand::Send(out.into()))).await;
                }
            }
            PeerCommand::SendRouteRefresh(rr) => {
                if let Some(i) = self.established() {
                    let bytes = bgp::wire::Message::RouteRefresh(rr).to_bytes(&self.conns[i].ctx);
                    self.conns[i].queue(bytes.into());
                }
            }
            PeerCommand::Reset {
                notification,
                restart_after,
            } => {
                for i in (0..self.conns.len()).rev() {
                    let n = self.meant(i, notification.clone());
                    let acts = self.conns[i].session.handle_event(Event::AutomaticStop(n));
                    self.execute(i, acts).await;
                }
                self.restart_at = Some(Instant::now() + restart_after);
                // The peer is kept out for the whole back-off, its own reconnects included.
                self.hold_down_until = Some(Instant::now() + restart_after);
            }
            PeerCommand::Abandon => {
                // Dropping the connections closes them (FIN) after the writers flush.
                info!("closing without NOTIFICATION (graceful restart)");
                return true;
            }
            PeerCommand::Shutdown | PeerCommand::Deconfigure => {
                self.shutting_down = true;
                self.restart_at = None;
                for i in (0..self.conns.len()).rev() {
                    let ev = match cmd {
                        PeerCommand::Deconfigure => Event::AutomaticStop(self.meant(
                            i,
                            Notification::new(
                                bgp::wire::notification::code::CEASE,
                                bgp::wire::notification::cease::PEER_DECONFIGURED,
                            ),
                        )),
                        _ if self.hard_reset(i) => {
                            Event::AutomaticStop(Notification::hard_reset(&Notification::new(
                                bgp::wire::notification::code::CEASE,
                                bgp::wire::notification::cease::ADMINISTRATIVE_SHUTDOWN,
                            )))
                        }
                        _ => Event::ManualStop,
                    };
                    let acts = self.conns[i].session.handle_event(ev);
                    self.execute(i, acts).await;
                }
                return true;
            }
        }
        false
    }

    /// Whether connection `i`'s session negotiated the graceful restart N bit (RFC 8538).
    fn hard_reset(&self, i: usize) -> bool {
        self.conns[i]
            .session
            .negotiated()
            .is_some_and(|n| n.graceful_notification(&self.cfg.session.capabilities))
    }

    /// A NOTIFICATION that ends the session for good (deconfigured, route limit): as Cease/Hard
    /// Reset where the N bit was negotiated, or the peer would keep our routes as after a
    /// restart.
    fn meant(&self, i: usize, n: Notification) -> Notification {
        if self.hard_reset(i) {
            Notification::hard_reset(&n)
        } else {
            n
        }
    }

    /// The peer is not reading: more than [`PeerConfig::max_send_queue`] octets wait for its
    /// socket. The writer is dropped with what it holds (it could not flush a NOTIFICATION
    /// either), and the session stops with Cease/8; the usual restart follows.
    async fn send_queue_overflow(&mut self, i: usize, queued: usize) {
        warn!(
            queued,
            limit = self.cfg.max_send_queue,
            "peer is not reading: send queue over the limit, closing with Cease/8 (Out of Resources)"
        );
        if let Some(w) = self.conns[i].write_task.take() {
            w.abort();
        }
        let n = bgp::wire::Notification::new(
            bgp::wire::notification::code::CEASE,
            bgp::wire::notification::cease::OUT_OF_RESOURCES,
        );
        let acts = self.conns[i].session.handle_event(Event::AutomaticStop(n));
        self.execute(i, acts).await;
    }

    fn established(&self) -> Option<usize> {
        self.conns
            .iter()
            .position(|c| c.session.state() == State::Established)
    }

    async fn accept(&mut self, stream: TcpStream) {
        if self.shutting_down {
            return;
        }
        if self.hold_down_until.is_some_and(|t| Instant::now() < t) {
            debug!("connection refused: the peer is held down after a reset");
            return;
        }
        let _ = stream.set_nodelay(true);
        if self.cfg.ttl_security {
            // The handshake is done; from here a segment that crossed a router is dropped, so
            // an OPEN from farther away than one hop never arrives.
            if let Err(e) = sockopt::set_ttl_security(&stream) {
                warn!(error = %e, "GTSM on an accepted connection failed; closing it");
                return;
            }
        }
        // A session still waiting for TCP takes the connection (events 16/17 in Connect/Active).
        if let Some(i) = self.conns.iter().position(|c| c.writer.is_none()) {
            if let Some(h) = self.conns[i].connecting.take() {
                h.abort();
            }
            self.attach(i, stream, false);
            let acts = self.conns[i]
                .session
                .handle_event(Event::TcpConnectionConfirmed);
            self.execute(i, acts).await;
            return;
        }
        if self.established().is_some() || self.conns.len() >= 2 {
            // §6.8: a connection collides with an established session; the new one goes.
            debug!("refusing a second connection while a session is up");
            return;
        }
        let i = self.new_conn(true);
        self.attach(i, stream, false);
        let mut acts = self.conns[i].session.handle_event(Event::ManualStart);
        acts.extend(
            self.conns[i]
                .session
                .handle_event(Event::TcpConnectionConfirmed),
        );
        self.execute(i, acts).await;
    }

    fn attach(&mut self, i: usize, stream: TcpStream, outbound: bool) {
        let (r, w) = stream.into_split();
        let (wtx, wrx) = mpsc::unbounded_channel();
        let id = self.conns[i].id;
        let c = &mut self.conns[i];
        c.outbound = outbound;
        c.writer = Some(wtx);
        c.reader = Some(tokio::spawn(read_loop(id, r, self.internal_tx.clone())));
        c.write_task = Some(tokio::spawn(write_loop(
            w,
            wrx,
            self.stats.clone(),
            c.queued.clone(),
            c.closing.clone(),
        )));
    }

    async fn internal(&mut self, msg: Internal) {
        match msg {
            Internal::Connected(id, stream) => {
                let Some(i) = self.index_of(id) else { return };
                self.conns[i].connecting = None;
                if self.conns[i].writer.is_some() {
                    return; // an inbound connection got there first
                }
                let _ = stream.set_nodelay(true);
                self.attach(i, stream, true);
                let acts = self.conns[i].session.handle_event(Event::TcpCrAcked);
                self.execute(i, acts).await;
            }
            Internal::ConnectFailed(id, e) => {
                let Some(i) = self.index_of(id) else { return };
                debug!(error = %e, "connect failed");
                self.conns[i].connecting = None;
                let acts = self.conns[i]
                    .session
                    .handle_event(Event::TcpConnectionFails);
                self.execute(i, acts).await;
            }
            Internal::Data(id, bytes) => {
                let Some(i) = self.index_of(id) else { return };
                self.conns[i].rx.extend_from_slice(&bytes);
                self.process_rx(id).await;
            }
            Internal::Closed(id) => {
                let Some(i) = self.index_of(id) else { return };
                let acts = self.conns[i]
                    .session
                    .handle_event(Event::TcpConnectionFails);
                self.execute(i, acts).await;
            }
        }
    }

    /// Frames and handles every complete message received on connection `id`.
    async fn process_rx(&mut self, id: u64) {
        let Some(i) = self.index_of(id) else { return };
        // Data events are handled one at a time by this task, so nothing is appended to `rx`
        // while the buffer is out.
        let buf = std::mem::take(&mut self.conns[i].rx);
        let mut off = 0;
        loop {
            let Some(i) = self.index_of(id) else { return };
            // Re-read each time: the context changes when the session is established.
            let ctx = self.conns[i].ctx;
            let (event, update, fatal) = match frame(&buf[off..], &ctx) {
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, "bad message header");
                    (Event::BgpHeaderErr(e.to_notification()), None, true)
                }
                Ok(Some(f)) => {
                    off += f.wire_len;
                    self.stats.messages_in.fetch_add(1, Ordering::Relaxed);
                    let (ev, upd) = decode_event(f.kind, f.body, &ctx);
                    (ev, upd, false)
                }
            };
            if let Event::BgpOpen(open) = &event {
                if self.collision(i, open).await {
                    return;
                }
            }
            let Some(i) = self.index_of(id) else { return };
            let acts = self.conns[i].session.handle_event(event);
            let up = self.conns[i].session.state() == State::Established;
            self.execute(i, acts).await;
            if let (Some(ev), true) = (update, up) {
                self.emit(ev).await;
            }
            if fatal {
                return;
            }
        }
        if let Some(i) = self.index_of(id) {
            self.conns[i].rx = buf[off..].to_vec();
        }
    }

    /// RFC 4271 §6.8, on an OPEN received on connection `i`. Returns true when `i` lost (and
    /// was dumped), so its OPEN must not be processed.
    async fn collision(&mut self, i: usize, open: &Open) -> bool {
        let Some(j) = (0..self.conns.len()).find(|&j| {
            j != i
                && matches!(
                    self.conns[j].session.state(),
                    State::OpenSent | State::OpenConfirm | State::Established
                )
        }) else {
            return false;
        };
        let winner = if self.conns[j].session.state() == State::Established {
            // CollisionDetectEstablishedState is off: the established session stays.
            if self.conns[j].outbound {
                CollisionWinner::LocallyInitiated
            } else {
                CollisionWinner::RemotelyInitiated
            }
        } else {
            resolve_collision(self.cfg.session.local_id, open.bgp_id)
        };
        let i_wins = (winner == CollisionWinner::LocallyInitiated) == self.conns[i].outbound;
        let loser = if i_wins { j } else { i };
        info!(winner = ?winner, "connection collision resolved");
        let acts = self.conns[loser]
            .session
            .handle_event(Event::OpenCollisionDump);
        self.execute(loser, acts).await;
        !i_wins
    }

    async fn timers_due(&mut self) {
        let now = Instant::now();
        if self.restart_at.is_some_and(|t| t <= now) {
            self.restart_at = None;
            if self.conns.is_empty() && !self.shutting_down {
                let i = self.new_conn(false);
                // The first start is the operator's; later ones are restarts (RFC 4271 event 3).
                let ev = if self.started {
                    Event::AutomaticStart
                } else {
                    Event::ManualStart
                };
                self.started = true;
                let acts = self.conns[i].session.handle_event(ev);
                self.execute(i, acts).await;
            }
        }
        let mut due = Vec::new();
        for c in &mut self.conns {
            for (k, d) in c.deadlines.iter_mut().enumerate() {
                if d.is_some_and(|d| d <= now) {
                    *d = None;
                    due.push((c.id, TIMERS[k]));
                }
            }
        }
        for (id, t) in due {
            let Some(i) = self.index_of(id) else { continue };
            let ev = match t {
                Timer::ConnectRetry => Event::ConnectRetryTimerExpires,
                Timer::Hold => Event::HoldTimerExpires,
                Timer::Keepalive => Event::KeepaliveTimerExpires,
            };
            let acts = self.conns[i].session.handle_event(ev);
            self.execute(i, acts).await;
        }
    }

    async fn execute(&mut self, i: usize, actions: Vec<Action>) {
        let id = self.conns[i].id;
        for a in actions {
            let Some(i) = self.index_of(id) else { return };
            match a {
                Action::Send(m) => {
                    let bytes = m.to_bytes(&self.conns[i].ctx);
                    self.conns[i].queue(bytes.into());
                }
                Action::StartTimer(t, d) => {
                    let d = match t {
                        Timer::ConnectRetry => self.jittered(d),
                        _ => d,
                    };
                    self.conns[i].deadlines[timer_index(t)] = Some(Instant::now() + d)
                }
                Action::StopTimer(t) => self.conns[i].deadlines[timer_index(t)] = None,
                Action::Connect => self.connect(i),
                Action::Disconnect => {
                    // Dropping the writer's sender lets it flush what was queued (the
                    // NOTIFICATION), then close. The session itself goes at the end of this
                    // batch, so the actions after Disconnect (Down) still see it.
                    let c = &mut self.conns[i];
                    c.writer = None;
                    c.closed = true;
                    c.closing.store(true, Ordering::Release);
                    if let Some(w) = c.write_task.take() {
                        tokio::spawn(async move {
                            tokio::time::sleep(FLUSH_TIMEOUT).await;
                            w.abort();
                        });
                    }
                    if let Some(r) = c.reader.take() {
                        r.abort();
                    }
                    if let Some(h) = c.connecting.take() {
                        h.abort();
                    }
                }
                Action::Established(n) => {
                    self.conns[i].ctx = n.context();
                    self.backoff = self.cfg.restart_delay;
                    info!(
                        peer_as = n.peer_as,
                        hold = n.hold_time,
                        "session established"
                    );
                    // The other connection, if any, has lost.
                    let others: Vec<u64> = self
                        .conns
                        .iter()
                        .filter(|c| c.id != id)
                        .map(|c| c.id)
                        .collect();
                    for o in others {
                        if let Some(j) = self.index_of(o) {
                            let acts = self.conns[j].session.handle_event(Event::OpenCollisionDump);
                            Box::pin(self.execute(j, acts)).await;
                        }
                    }
                    self.emit(PeerEvent::Established { negotiated: n }).await;
                }
                Action::Down { reason } => {
                    let was_up = self.reported == State::Established;
                    info!(%reason, "session down");
                    if was_up
                        && !self
                            .conns
                            .iter()
                            .any(|c| c.id != id && c.session.state() == State::Established)
                    {
                        self.emit(PeerEvent::Down { reason }).await;
                    }
                }
            }
        }
        self.conns.retain(|c| !c.closed);
        self.after_change().await;
    }

    async fn after_change(&mut self) {
        let state = self
            .conns
            .iter()
            .map(|c| c.session.state())
            .max_by_key(|s| state_rank(*s))
            .unwrap_or(State::Idle);
        if state != self.reported {
            self.reported = state;
            self.emit(PeerEvent::State { state }).await;
        }
        if self.conns.is_empty() && self.restart_at.is_none() && !self.shutting_down {
            let wait = self.jittered(self.backoff);
            self.restart_at = Some(Instant::now() + wait);
            self.backoff = (self.backoff * 2).min(self.cfg.max_restart_delay);
        }
    }

    fn connect(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.writer.is_some() || c.connecting.is_some() {
            return;
        }
        let id = c.id;
        let tx = self.internal_tx.clone();
        let local = SocketAddr::new(self.cfg.local_addr, 0);
        let remote = SocketAddr::new(self.cfg.remote_addr, self.cfg.remote_port);
        let key = self.cfg.password.clone();
        let gtsm = self.cfg.ttl_security;
        c.connecting = Some(tokio::spawn(async move {
            let msg = match connect_from(local, remote, key.as_deref(), gtsm).await {
                Ok(s) => Internal::Connected(id, s),
                Err(e) => Internal::ConnectFailed(id, e),
            };
            let _ = tx.send(msg).await;
        }));
    }
}

fn cfg_name<T>(t: &PeerTask<T>) -> &str {
    &t.cfg.name
}

fn state_rank(s: State) -> u8 {
    match s {
        State::Idle => 0,
        State::Connect => 1,
        State::Active => 2,
        State::OpenSent => 3,
        State::OpenConfirm => 4,
        State::Established => 5,
    }
}

/// Turns one framed message into the session's event, and for an UPDATE also the event the
/// application gets once the session accepts it.
fn decode_event(
    kind: MessageType,
    body: &[u8],
    ctx: &SessionContext,
) -> (Event, Option<PeerEvent>) {
    match kind {
        MessageType::Open => match Open::parse(body) {
            Ok(o) => (Event::BgpOpen(o), None),
            Err(e) => (Event::BgpOpenMsgErr(e.to_notification()), None),
        },
        MessageType::Keepalive => (Event::KeepAliveMsg, None),
        MessageType::Notification => match Notification::parse(body) {
            Some(n) => (Event::NotifMsg(n), None),
            None => (
                Event::BgpHeaderErr(Notification::with_data(
                    1,
                    2,
                    ((body.len() + HEADER_LEN) as u16).to_be_bytes(),
                )),
                None,
            ),
        },
        MessageType::RouteRefresh => match RouteRefresh::parse(body) {
            Ok(rr) => (
                Event::RouteRefreshMsg(rr),
                Some(PeerEvent::RouteRefresh(rr)),
            ),
            Err(n) => (Event::UpdateMsgErr(n), None),
        },
        MessageType::Update => match Update::parse(body, ctx) {
            Ok(u) => {
                if let Some(e) = &u.treat_as_withdraw {
                    warn!(error = %e, "malformed UPDATE treated as withdraw (RFC 7606)");
                }
                for e in &u.discarded {
                    info!(error = %e, "attribute discarded (RFC 7606)");
                }
                let ev = PeerEvent::Update {
                    update: u.to_message(),
                    treat_as_withdraw: u.treat_as_withdraw.clone(),
                    discarded: u.discarded.clone(),
                };
                (Event::UpdateMsg, Some(ev))
            }
            Err(e) => {
                warn!(error = %e, "malformed UPDATE resets the session (RFC 7606)");
                (Event::UpdateMsgErr(e.to_notification()), None)
            }
        },
    }
}

async fn connect_from(
    local: SocketAddr,
    remote: SocketAddr,
    md5: Option<&[u8]>,
    ttl_security: bool,
) -> std::io::Result<TcpStream> {
    let sock = if remote.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    if let Some(key) = md5 {
        sockopt::set_tcp_md5(&sock, remote.ip(), key)?;
    }
    if ttl_security {
        sockopt::set_ttl_security(&sock)?;
    }
    if !local.ip().is_unspecified() {
        sock.bind(local)?;
    }
    tokio::time::timeout(Duration::from_secs(10), sock.connect(remote))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

async fn read_loop(id: u64, mut r: OwnedReadHalf, tx: mpsc::Sender<Internal>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = tx.send(Internal::Closed(id)).await;
                return;
            }
            Ok(n) => {
                if tx
                    .send(Internal::Data(id, buf[..n].to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Writes what the peer task queues, in order. The buffers may be shared with other peers'
/// writers: they are written as they are (vectored writes of up to [`WRITE_IOVS`] of them), not
/// copied into a buffer of this connection.
async fn write_loop(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Arc<[u8]>>,
    stats: Arc<PeerStats>,
    queued: Arc<AtomicUsize>,
    closing: Arc<AtomicBool>,
) {
    let mut queue: VecDeque<Arc<[u8]>> = VecDeque::new();
    // Octets of the front buffer already written.
    let mut done = 0;
    let mut pruned = false;
    loop {
        if !pruned && closing.load(Ordering::Acquire) {
            pruned = true;
            prune_for_close(&mut queue, done, &mut rx, &queued);
        }
        if queue.is_empty() {
            match rx.recv().await {
                Some(b) => queue.push_back(b),
                None => break,
            }
        }
        while queue.len() < WRITE_IOVS {
            match rx.try_recv() {
                Ok(b) => queue.push_back(b),
                Err(_) => break,
            }
        }
        queue.retain(|b| !b.is_empty());
        let Some(front) = queue.front() else { continue };
        let mut slices = Vec::with_capacity(queue.len());
        slices.push(IoSlice::new(&front[done..]));
        slices.extend(queue.iter().skip(1).map(|b| IoSlice::new(b)));
        let mut n = match w.write_vectored(&slices).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        drop(slices);
        while let Some(front) = queue.front() {
            let left = front.len() - done;
            if n < left {
                done += n;
                break;
            }
            n -= left;
            done = 0;
            stats
                .messages_out
                .fetch_add(count_messages(front), Ordering::Relaxed);
            queued.fetch_sub(front.len(), Ordering::Relaxed);
            queue.pop_front();
        }
    }
    let _ = w.shutdown().await;
}

/// The session is over: of what waits, keep the buffer being written (its message must end
/// whole) and the NOTIFICATION(s); UPDATEs and KEEPALIVEs not started would only delay the
/// NOTIFICATION to a slow reader. The peer task queued everything before it set `closing`, so
/// draining the channel here sees all of it.
fn prune_for_close(
    queue: &mut VecDeque<Arc<[u8]>>,
    done: usize,
    rx: &mut mpsc::UnboundedReceiver<Arc<[u8]>>,
    queued: &AtomicUsize,
) {
    let mut waiting = std::mem::take(queue);
    if done > 0 {
        queue.extend(waiting.pop_front());
    }
    for b in waiting
        .into_iter()
        .chain(std::iter::from_fn(|| rx.try_recv().ok()))
    {
        if b.get(18) == Some(&(MessageType::Notification as u8)) && b.len() >= HEADER_LEN {
            queue.push_back(b);
        } else {
            queued.fetch_sub(b.len(), Ordering::Relaxed);
        }
    }
}

/// How many queued buffers one write takes at most (Linux allows 1024).
const WRITE_IOVS: usize = 64;

/// How long a [`Listener`] waits after a failed `accept` before it accepts again.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Connections refused by a [`Listener`] because no peer is configured for their source.
#[derive(Debug, Default)]
pub struct Refused {
    pub count: AtomicU64,
    /// `accept` calls that failed (out of descriptors, out of buffers): see [`Listener::run`].
    pub accept_errors: AtomicU64,
    last_logged: Mutex<HashMap<IpAddr, Instant>>,
}

/// Accepts connections on one local address and gives each to the peer configured for its
/// source address. Any other source is closed before a byte is read, counted, and logged at
/// most once per address per minute.
#[derive(Clone)]
pub struct Listener {
    peers: Arc<Mutex<HashMap<IpAddr, mpsc::Sender<TcpStream>>>>,
    pub refused: Arc<Refused>,
    /// The listening sockets' descriptors, IPv4 and IPv6, for per-peer TCP-MD5 keys (-1 until
    /// attached). An instance with an IPv6 address listens on both.
    fd: Arc<std::sync::atomic::AtomicI32>,
    fd6: Arc<std::sync::atomic::AtomicI32>,
}

impl Default for Listener {
    fn default() -> Self {
        Self {
            peers: Arc::default(),
            refused: Arc::default(),
            fd: Arc::new(std::sync::atomic::AtomicI32::new(-1)),
            fd6: Arc::new(std::sync::atomic::AtomicI32::new(-1)),
        }
    }
}

impl Listener {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn register(&self, remote: IpAddr, inbound: mpsc::Sender<TcpStream>) {
        self.lock().insert(remote, inbound);
    }
    pub fn unregister(&self, remote: IpAddr) {
        self.lock().remove(&remote);
        let _ = self.set_md5(remote, b"");
    }
    /// Remembers a socket `run` will accept on (one per family), so keys can be set on it.
    pub fn attach(&self, sock: &TcpListener) {
        use std::os::fd::AsRawFd;
        let v6 = sock.local_addr().is_ok_and(|a| a.is_ipv6());
        let slot = if v6 { &self.fd6 } else { &self.fd };
        slot.store(sock.as_raw_fd(), Ordering::Relaxed);
    }
    /// Forgets the IPv6 socket (the instance no longer listens on an IPv6 address).
    pub fn detach_ipv6(&self) {
        self.fd6.store(-1, Ordering::Relaxed);
    }
    /// Sets (empty: removes) the TCP-MD5 key the listening socket of `remote`'s family
    /// requires from it.
    pub fn set_md5(&self, remote: IpAddr, key: &[u8]) -> std::io::Result<()> {
        let slot = if remote.is_ipv6() {
            &self.fd6
        } else {
            &self.fd
        };
        let fd = slot.load(Ordering::Relaxed);
        if fd < 0 {
            return if key.is_empty() {
                Ok(())
            } else {
                Err(std::io::Error::other("listener not attached"))
            };
        }
        match sockopt::set_tcp_md5(&RawSock(fd), remote, key) {
            // Removing a key that was never set: nothing to remove.
            Err(e) if key.is_empty() && e.raw_os_error() == Some(libc_enoent()) => Ok(()),
            r => r,
        }
    }
    /// GTSM on the listening socket itself (every peer of this address uses it): a SYN from
    /// farther than one hop is dropped before any connection exists. Per-peer GTSM on an
    /// accepted connection comes after its handshake, so only this closes that window.
    pub fn set_ttl_security(&self, on: bool) -> std::io::Result<()> {
        let fd = self.fd.load(Ordering::Relaxed);
        if fd < 0 {
            return Err(std::io::Error::other("listener not attached"));
        }
        let fd6 = self.fd6.load(Ordering::Relaxed);
        for fd in [fd, fd6].into_iter().filter(|fd| *fd >= 0) {
            if on {
                sockopt::set_ttl_security(&RawSock(fd))?;
            } else {
                sockopt::clear_ttl_security(&RawSock(fd))?;
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, mpsc::Sender<TcpStream>>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds `addr` (SO_REUSEADDR, so a restart does not wait for TIME_WAIT).
    pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
        let sock = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        sock.set_reuseaddr(true)?;
        sock.bind(addr)?;
        sock.listen(128)
    }

    /// Accepts until the task is dropped (abort it to close the socket). An accept error
    /// (EMFILE or ENFILE when descriptors run out, ENOBUFS, a connection reset before it was
    /// taken) never ends the listener: it is counted, logged at most once a minute, and accepting
    /// resumes after [`ACCEPT_RETRY`], so the peers already up keep running and new ones get in
    /// once resources are back.
    pub async fn run(self, listener: TcpListener) {
        let mut last_warned: Option<Instant> = None;
        loop {
            let (stream, from) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    self.refused.accept_errors.fetch_add(1, Ordering::Relaxed);
                    let now = Instant::now();
                    if last_warned.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60))
                    {
                        last_warned = Some(now);
                        warn!(error = %e, "accept failed; accepting again in {ACCEPT_RETRY:?}");
                    }
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            };
            let target = self.lock().get(&from.ip()).cloned();
            match target {
                Some(tx) => {
                    if tx.try_send(stream).is_err() {
                        debug!(%from, "peer busy with connections; closing this one");
                    }
                }
                None => {
                    drop(stream);
                    self.refused.count.fetch_add(1, Ordering::Relaxed);
                    let now = Instant::now();
                    let mut last = self
                        .refused
                        .last_logged
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    let due = last
                        .get(&from.ip())
                        .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(60));
                    if due {
                        last.insert(from.ip(), now);
                        warn!(%from, "connection from an unconfigured address refused");
                    }
                }
            }
        }
    }
}

/// A borrowed descriptor for [`sockopt::set_tcp_md5`].
struct RawSock(std::os::fd::RawFd);
impl std::os::fd::AsRawFd for RawSock {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

/// The IPv4 address of `ip`, or 0.0.0.0: BGP identifiers are IPv4-shaped.
pub fn ipv4_or_unspecified(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// ENOENT: what the kernel answers when asked to delete a TCP-MD5 key it does not hold.
const fn libc_enoent() -> i32 {
    2
}
