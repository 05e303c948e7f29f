//! The harness's own BGP speakers: just enough of a session to be a fast tester, a monitor and a
//! sink, written straight on tokio and `bgp::wire` (no FSM task, no per-message channel hop).
//!
//! - [`connect`] / [`accept`]: OPEN, KEEPALIVE, Established (both sides send OPEN first, so one
//!   [`handshake`] serves both).
//! - [`Tester`]: its UPDATEs are encoded before the race ([`encode_routes`]: one attribute set,
//!   packed 4096-octet UPDATEs, then End-of-RIB) and written with one `write_all` at the start
//!   signal; a reader drains what the target sends back and counts the other testers' routes.
//! - [`receive`]: the monitor's (and the sink's) read loop, feeding a [`Collector`].
//!
//! ```text
//!   tester ──OPEN/KEEPALIVE──> target ──UPDATE──> monitor ──Update::parse──> Collector
//!      └──(go) write_all(pre-encoded UPDATEs)──┘ └──UPDATE──> tester reader (counts, discards)
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bgp::wire::attrs::{AsPath, MpNextHop, Origin, PathAttributes};
use bgp::wire::open::AS_TRANS;
use bgp::wire::update::{pack_ipv4, pack_ipv6};
use bgp::wire::{
    frame, Afi, Capability, Ipv4Prefix, Message, MessageType, Notification, Open, Safi,
    SessionContext, Update, UpdateMessage, MAX_MESSAGE_LEN,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::monitor::{Collector, Layout};

/// Hold time the harness's speakers offer. Keepalives go every third of the negotiated time.
pub const HOLD_TIME: u16 = 180;

/// Who a speaker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub addr: Ipv4Addr,
    pub asn: u32,
    /// Offer IPv6 unicast instead of IPv4 unicast (the harness's IPv6 mode).
    pub ipv6: bool,
}

/// The OPEN a harness speaker sends: IPv4 unicast (IPv6 unicast in IPv6 mode), route refresh,
/// 4-octet AS.
pub fn open_for(id: &Identity) -> Open {
    Open {
        version: 4,
        my_as: u16::try_from(id.asn).unwrap_or(AS_TRANS),
        hold_time: HOLD_TIME,
        bgp_id: id.addr,
        capabilities: vec![
            Capability::Multiprotocol {
                afi: if id.ipv6 { Afi::IPV6 } else { Afi::IPV4 },
                safi: Safi::UNICAST,
            },
            Capability::RouteRefresh,
            Capability::FourOctetAs(id.asn),
        ],
    }
}

/// An Established session.
pub struct Session {
    pub stream: TcpStream,
    pub ctx: SessionContext,
    /// Negotiated hold time (0: no keepalives).
    pub hold: u16,
    /// Bytes read past the peer's KEEPALIVE (an UPDATE may follow it in the same segment).
    pub leftover: Vec<u8>,
    /// The peer's OPEN.
    pub peer: Open,
}

impl Session {
    /// Interval between our keepalives.
    pub fn keepalive_every(&self) -> Duration {
        if self.hold == 0 {
            Duration::from_secs(3600)
        } else {
            Duration::from_secs(u64::from(self.hold / 3).max(1))
        }
    }
}

/// Connects from `id.addr` to `target` and establishes a session, retrying (the target may
/// still be starting, or may refuse until its config is loaded) until `deadline`.
pub async fn connect(id: Identity, target: SocketAddr, deadline: Instant) -> Result<Session> {
    let mut delay = Duration::from_millis(50);
    loop {
        match try_connect(id, target).await {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() + delay < deadline => {
                tracing_lite(&format!("{}: {e:#}; retrying", id.addr));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Err(e) => {
                return Err(e.context(format!(
                    "session {} (AS {}) -> {target} not established",
                    id.addr, id.asn
                )))
            }
        }
    }
}

fn tracing_lite(msg: &str) {
    if std::env::var_os("NEXTHOP_BENCH_DEBUG").is_some() {
        eprintln!("debug: {msg}");
    }
}

async fn try_connect(id: Identity, target: SocketAddr) -> Result<Session> {
    let sock = TcpSocket::new_v4()?;
    sock.set_reuseaddr(true)?;
    sock.bind(SocketAddr::new(id.addr.into(), 0))
        .with_context(|| format!("bind {}", id.addr))?;
    let stream = tokio::time::timeout(Duration::from_secs(5), sock.connect(target))
        .await
        .map_err(|_| anyhow!("connect timed out"))?
        .context("connect")?;
    handshake(stream, id).await
}

/// Establishes a session on a connection someone else opened (the sink's side).
pub async fn accept(stream: TcpStream, id: Identity) -> Result<Session> {
    handshake(stream, id).await
}

/// OPEN, then KEEPALIVE, both ways; fails on a NOTIFICATION, a close or 15 s of silence.
pub async fn handshake(mut stream: TcpStream, id: Identity) -> Result<Session> {
    stream.set_nodelay(true)?;
    let ctx0 = SessionContext::default();
    stream
        .write_all(&Message::Open(open_for(&id)).to_bytes(&ctx0))
        .await?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut peer: Option<Open> = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // Frame everything buffered.
        loop {
            let f = match frame(&buf, &ctx0) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => bail!("bad message from peer during handshake: {e}"),
            };
            let used = f.wire_len;
            match f.kind {
                MessageType::Open => {
                    let o = Open::parse(f.body).map_err(|e| anyhow!("bad OPEN: {e}"))?;
                    stream
                        .write_all(&Message::Keepalive.to_bytes(&ctx0))
                        .await?;
                    peer = Some(o);
                }
                MessageType::Keepalive if peer.is_some() => {
                    let peer = peer.take().expect("checked");
                    let ctx = SessionContext {
                        four_octet_as: peer.four_octet_as().is_some(),
                        extended_message: false,
                        ebgp: true,
                    };
                    let hold = HOLD_TIME.min(peer.hold_time);
                    buf.drain(..used);
                    return Ok(Session {
                        stream,
                        ctx,
                        hold,
                        leftover: buf,
                        peer,
                    });
                }
                MessageType::Notification => {
                    let n = Notification::parse(f.body);
                    bail!("peer sent NOTIFICATION during handshake: {}", describe(n));
                }
                other => bail!("unexpected {other} during handshake"),
            }
            buf.drain(..used);
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| anyhow!("no OPEN/KEEPALIVE from peer within 15 s"))??;
        if n == 0 {
            bail!("peer closed the connection during handshake");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// "code/subcode (name)" of a NOTIFICATION, for error messages.
pub fn describe(n: Option<Notification>) -> String {
    match n {
        Some(n) => {
            let what = match (n.code, n.subcode) {
                (2, 2) => " (OPEN: bad peer AS)",
                (2, _) => " (OPEN message error)",
                (3, 8) => " (UPDATE: invalid NEXT_HOP)",
                (3, _) => " (UPDATE message error)",
                (4, _) => " (hold timer expired)",
                (6, 1) => " (Cease: maximum prefixes reached)",
                (6, 2) => " (Cease: administrative shutdown)",
                (6, 5) => " (Cease: connection rejected)",
                (6, _) => " (Cease)",
                _ => "",
            };
            format!("{}/{}{what}", n.code, n.subcode)
        }
        None => "malformed NOTIFICATION".to_string(),
    }
}

/// Phases the harness moves every speaker through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Established, waiting for the start signal.
    Ready,
    /// Send the routes.
    Go,
    /// The run is over: stop writing and reading.
    Stop,
}

/// Resolves once the phase is `Stop` (or the sender is gone).
pub async fn stopped(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p == Phase::Stop).await.map(|_| ());
}

/// The attribute set of tester `t` and its packed UPDATEs followed by End-of-RIB.
pub fn encode_routes(
    layout: &Layout,
    t: usize,
    asn: u32,
    next_hop: IpAddr,
    ctx: &SessionContext,
) -> Vec<u8> {
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(vec![asn])),
        next_hop: match next_hop {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        },
        ..Default::default()
    };
    let mut encoded = Vec::with_capacity(64);
    attrs.emit(ctx, &mut encoded);
    let n = layout.per_peer as usize;
    if let IpAddr::V6(global) = next_hop {
        // 9 octets per /64 plus ~80 per 4096-octet message.
        let mut out = Vec::with_capacity(n * 9 + (n / 440 + 2) * (encoded.len() + 60) + 64);
        let nh = MpNextHop::V6 {
            global,
            link_local: None,
        };
        let prefixes = (0..layout.per_peer).map(|i| Layout::prefix6_of(layout.prefix(t, i)));
        pack_ipv6(&encoded, &nh, prefixes, MAX_MESSAGE_LEN, &mut out);
        UpdateMessage::end_of_rib_for(Afi::IPV6, Safi::UNICAST).emit(ctx, &mut out);
        return out;
    }
    // 5 octets per /32 plus ~50 per 4096-octet message.
    let mut out = Vec::with_capacity(n * 5 + (n / 800 + 2) * (encoded.len() + 23) + 64);
    pack_ipv4(
        &encoded,
        (0..layout.per_peer).map(|i| {
            Ipv4Prefix::new(Ipv4Addr::from(layout.prefix(t, i)), 32).expect("/32 is valid")
        }),
        MAX_MESSAGE_LEN,
        &mut out,
    );
    UpdateMessage::end_of_rib().emit(ctx, &mut out);
    out
}

/// What a tester's reader saw.
#[derive(Debug, Default)]
pub struct TesterStats {
    /// Announcements of other testers' prefixes received from the target (not deduplicated).
    pub others_routes: AtomicU64,
    pub bytes_in: AtomicU64,
    pub error: Mutex<Option<String>>,
}

/// One tester peer, Established and with its UPDATEs encoded.
pub struct Tester {
    pub index: usize,
    pub session: Session,
    pub updates: Vec<u8>,
    pub stats: Arc<TesterStats>,
}

impl Tester {
    /// Runs until `Phase::Stop`: a reader task drains the target's UPDATEs; this task sends
    /// keepalives and, at `Phase::Go`, all the routes in one write.
    pub async fn run(self, layout: Layout, mut phase: watch::Receiver<Phase>) {
        let Tester {
            index,
            session,
            updates,
            stats,
        } = self;
        let ka_every = session.keepalive_every();
        let ctx = session.ctx;
        let (rd, mut wr) = session.stream.into_split();
        let reader = tokio::spawn(drain(
            rd,
            session.leftover,
            index,
            layout,
            stats.clone(),
            phase.clone(),
        ));
        let ka = Message::Keepalive.to_bytes(&ctx);
        let mut sent = false;
        let mut tick = tokio::time::interval_at(Instant::now() + ka_every, ka_every);
        loop {
            let now = *phase.borrow_and_update();
            match now {
                Phase::Stop => break,
                Phase::Go if !sent => {
                    sent = true;
                    // A slow target reads slowly: stay stoppable while the write is pending.
                    let done = tokio::select! {
                        r = wr.write_all(&updates) => r.map(|_| true),
                        _ = stopped(&mut phase) => Ok(false),
                    };
                    match done {
                        Ok(true) => continue,
                        Ok(false) => break,
                        Err(e) => {
                            set_error(&stats, format!("write: {e}"));
                            break;
                        }
                    }
                }
                _ => {}
            }
            tokio::select! {
                r = phase.changed() => if r.is_err() { break },
                _ = tick.tick() => {
                    if wr.write_all(&ka).await.is_err() { break; }
                }
            }
        }
        drop(updates);
        close(wr).await;
        let _ = reader.await;
    }
}

async fn close(mut wr: OwnedWriteHalf) {
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
}

fn set_error(stats: &TesterStats, msg: String) {
    let mut e = stats.error.lock().unwrap_or_else(|p| p.into_inner());
    if e.is_none() {
        *e = Some(msg);
    }
}

/// A growable receive buffer with a read offset, so framing does not shift bytes per message.
struct RxBuf {
    data: Vec<u8>,
    start: usize,
}

impl RxBuf {
    fn new(leftover: Vec<u8>) -> Self {
        let mut data = leftover;
        data.reserve(256 * 1024);
        RxBuf { data, start: 0 }
    }
    fn pending(&self) -> &[u8] {
        &self.data[self.start..]
    }
    fn consume(&mut self, n: usize) {
        self.start += n;
    }
    async fn fill(&mut self, rd: &mut OwnedReadHalf) -> std::io::Result<usize> {
        if self.start > 0 {
            self.data.drain(..self.start);
            self.start = 0;
        }
        let len = self.data.len();
        if self.data.capacity() - len < 64 * 1024 {
            self.data.reserve(256 * 1024);
        }
        let cap = self.data.capacity();
        self.data.resize(cap, 0);
        let r = rd.read(&mut self.data[len..]).await;
        let n = *r.as_ref().unwrap_or(&0);
        self.data.truncate(len + n);
        r
    }
}

/// Reads until the connection closes or `Phase::Stop`; counts announcements of other testers'
/// /32s (walking the NLRI field only, no attribute decoding) and notes a NOTIFICATION.
async fn drain(
    mut rd: OwnedReadHalf,
    leftover: Vec<u8>,
    me: usize,
    layout: Layout,
    stats: Arc<TesterStats>,
    mut phase: watch::Receiver<Phase>,
) {
    let ctx = SessionContext {
        extended_message: true, // framing only: accept whatever length was negotiated
        ..SessionContext::default()
    };
    let mut buf = RxBuf::new(leftover);
    loop {
        let mut counted = 0u64;
        loop {
            let f = match frame(buf.pending(), &ctx) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    set_error(&stats, format!("bad message from target: {e}"));
                    return;
                }
            };
            match f.kind {
                MessageType::Update => counted += count_others(f.body, me, &layout),
                MessageType::Notification => {
                    set_error(
                        &stats,
                        format!(
                            "target sent NOTIFICATION {}",
                            describe(Notification::parse(f.body))
                        ),
                    );
                    return;
                }
                _ => {}
            }
            let n = f.wire_len;
            buf.consume(n);
        }
        if counted > 0 {
            stats.others_routes.fetch_add(counted, Ordering::Relaxed);
        }
        tokio::select! {
            r = buf.fill(&mut rd) => match r {
                Ok(0) | Err(_) => {
                    if *phase.borrow() != Phase::Stop {
                        set_error(&stats, "target closed the session".to_string());
                    }
                    return;
                }
                Ok(n) => { stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed); }
            },
            _ = stopped(&mut phase) => return,
        }
    }
}

/// Announced prefixes of an UPDATE body that belong to testers other than `me`.
pub fn count_others(body: &[u8], me: usize, layout: &Layout) -> u64 {
    if layout.ipv6 {
        let Ok(u) = Update::parse(body, &SessionContext::default()) else {
            return 0;
        };
        let Some(r) = &u.attrs.mp_reach else {
            return 0;
        };
        return r
            .nlri
            .iter()
            .filter_map(|p| match p {
                bgp::wire::Prefix::V6(p) => Layout::key6(p),
                bgp::wire::Prefix::V4(_) => None,
            })
            .filter(|k| matches!(layout.owner(*k), Some((o, _)) if o != me))
            .count() as u64;
    }
    if body.len() < 4 {
        return 0;
    }
    let wlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let Some(rest) = body.get(2 + wlen..) else {
        return 0;
    };
    if rest.len() < 2 {
        return 0;
    }
    let alen = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
    let Some(mut nlri) = rest.get(2 + alen..) else {
        return 0;
    };
    let mut n = 0;
    while let Some((&bits, tail)) = nlri.split_first() {
        let bytes = usize::from(bits).div_ceil(8);
        if tail.len() < bytes {
            break;
        }
        if bits == 32 {
            let a = u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]);
            if matches!(layout.owner(a), Some((o, _)) if o != me) {
                n += 1;
            }
        }
        nlri = &tail[bytes..];
    }
    n
}

/// The monitor's (and each sink connection's) loop: every UPDATE is decoded and handed to
/// `collector`; keepalives go out at the negotiated interval. Ends at `Phase::Stop` or when the
/// session closes (an error then, unless stopping).
pub async fn receive(
    session: Session,
    collector: Arc<Collector>,
    mut phase: watch::Receiver<Phase>,
) -> Result<()> {
    let ctx = session.ctx;
    let ka_every = session.keepalive_every();
    let (mut rd, wr) = session.stream.into_split();
    let ka_task = tokio::spawn(keepalives(wr, ctx, ka_every, phase.clone()));
    let mut buf = RxBuf::new(session.leftover);
    let result = loop {
        let mut err = None;
        loop {
            let f = match frame(buf.pending(), &ctx) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    err = Some(anyhow!("bad message from target: {e}"));
                    break;
                }
            };
            match f.kind {
                MessageType::Update => match Update::parse(f.body, &ctx) {
                    Ok(u) => collector.process(&u),
                    Err(e) => {
                        err = Some(anyhow!("malformed UPDATE from target: {e}"));
                        break;
                    }
                },
                MessageType::Notification => {
                    err = Some(anyhow!(
                        "target sent NOTIFICATION {}",
                        describe(Notification::parse(f.body))
                    ));
                    break;
                }
                _ => {}
            }
            let n = f.wire_len;
            buf.consume(n);
        }
        if let Some(e) = err {
            break Err(e);
        }
        tokio::select! {
            r = buf.fill(&mut rd) => match r {
                Ok(0) | Err(_) => {
                    if *phase.borrow() == Phase::Stop {
                        break Ok(());
                    }
                    break Err(anyhow!("target closed the session"));
                }
                Ok(_) => {}
            },
            _ = stopped(&mut phase) => break Ok(()),
        }
    };
    ka_task.abort();
    result
}

/// Sends a KEEPALIVE every `every` until `Phase::Stop`, then closes the write side.
async fn keepalives(
    mut wr: OwnedWriteHalf,
    ctx: SessionContext,
    every: Duration,
    mut phase: watch::Receiver<Phase>,
) {
    let ka = Message::Keepalive.to_bytes(&ctx);
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = tick.tick() => if wr.write_all(&ka).await.is_err() { break },
            _ = stopped(&mut phase) => break,
        }
    }
    close(wr).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv6 mode: the testers' /64s in MP_REACH_NLRI, the IPv6 End-of-RIB, and a monitor that
    /// counts and checks them (and refuses a wrong next hop).
    #[test]
    fn ipv6_routes_reach_the_collector() {
        use crate::monitor::{tester_next_hop6, Collector};
        let layout = Layout::new(2, 1500).with_ipv6(true);
        let ctx = SessionContext::default();
        let c = Collector::new(layout, vec![vec![65001], vec![65002]]);
        for (t, asn) in [(0usize, 65001u32), (1, 65002)] {
            let bytes = encode_routes(&layout, t, asn, tester_next_hop6(t).into(), &ctx);
            let mut rest = &bytes[..];
            let mut eor = 0;
            while !rest.is_empty() {
                let f = frame(rest, &ctx).unwrap().unwrap();
                assert!(f.wire_len <= MAX_MESSAGE_LEN);
                let u = Update::parse(f.body, &ctx).unwrap();
                if u.to_message().end_of_rib_family() == Some((Afi::IPV6, Safi::UNICAST)) {
                    eor += 1;
                }
                assert_eq!(count_others(f.body, t, &layout), 0);
                let other = count_others(f.body, 1 - t, &layout);
                let n = u.attrs.mp_reach.as_ref().map_or(0, |r| r.nlri.len());
                assert_eq!(other, n as u64);
                c.process(&u);
                rest = &rest[f.wire_len..];
            }
            assert_eq!(eor, 1);
        }
        let ck = c.check();
        assert!(ck.passed(), "{ck:?}");
        assert_eq!(ck.held, 3000);
        assert_eq!(ck.spot_ok, 6);

        let wrong = Collector::new(layout, vec![vec![65001], vec![65002]]);
        let bytes = encode_routes(&layout, 0, 65001, tester_next_hop6(1).into(), &ctx);
        let f = frame(&bytes, &ctx).unwrap().unwrap();
        wrong.process(&Update::parse(f.body, &ctx).unwrap());
        assert!(wrong.check().mismatched > 0);
    }

    #[test]
    fn encoded_routes_decode_to_the_plan() {
        let layout = Layout::new(3, 2000);
        let ctx = SessionContext::default();
        let nh = Ipv4Addr::new(10, 2, 0, 1);
        let bytes = encode_routes(&layout, 1, 65002, nh.into(), &ctx);
        let mut rest = &bytes[..];
        let mut prefixes = Vec::new();
        let mut eor = 0;
        while !rest.is_empty() {
            let f = frame(rest, &ctx).unwrap().unwrap();
            assert_eq!(f.kind, MessageType::Update);
            assert!(f.wire_len <= MAX_MESSAGE_LEN);
            let u = Update::parse(f.body, &ctx).unwrap();
            if u.is_end_of_rib() {
                eor += 1;
            } else {
                assert_eq!(u.attrs.next_hop, Some(nh));
                assert_eq!(u.attrs.as_path, Some(AsPath::from_sequence(vec![65002])));
                assert_eq!(count_others(f.body, 0, &layout), u.nlri().count() as u64);
                assert_eq!(count_others(f.body, 1, &layout), 0);
                prefixes.extend(u.nlri().map(|p| p.bits()));
            }
            rest = &rest[f.wire_len..];
        }
        assert_eq!(eor, 1);
        let want: Vec<u32> = (0..2000).map(|i| layout.prefix(1, i)).collect();
        assert_eq!(prefixes, want);
    }

    #[test]
    fn open_carries_four_octet_as() {
        let o = open_for(&Identity {
            ipv6: false,
            addr: Ipv4Addr::new(127, 77, 1, 1),
            asn: 4_200_000_001,
        });
        assert_eq!(o.my_as, AS_TRANS);
        assert_eq!(o.asn(), 4_200_000_001);
    }
}
