//! One route server instance (`RouteServiceRole_IN_n`): a BGP speaker on its own address, the
//! task that owns its [`Rib`], and the peer tasks of its sessions.
//!
//! ```text
//!  Listener (ADDRESS:port) ──conn──> peer task (1x per peer) ──PeerEvent──┐
//!                                         ^                               v
//!                                         └──PeerCommand::Send── RIB task (1x, owns the Rib)
//!  API ──Query (oneshot reply)──────────────────────────────────────────> ┘
//! ```
//!
//! The RIB task is the only owner of the RIB and of the peers' bookkeeping; everything else
//! reaches it over its channels.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp::fsm::{SessionConfig, State};
use bgp::wire::notification::{cease, code};
use bgp::wire::{Ipv4Prefix, Notification, RouteRefresh, SessionContext};
use bgp_driver::{spawn_peer, Listener, PeerCommand, PeerConfig, PeerEvent, PeerHandle};
use routeserver::{Export, PeerId, Rib, RibConfig, RouteState};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// What an instance is told by configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceSpec {
    pub name: String,
    pub address: Ipv4Addr,
    pub port: u16,
    pub asn: u32,
    pub branch_to_branch: bool,
    pub originated: Vec<Ipv4Prefix>,
    pub hold_time: u16,
    pub peers: Vec<PeerSpec>,
    /// The fabric programs BGP routes (the route server has a virtual network): only then is
    /// it fed this instance's Loc-RIB changes.
    pub feed_fabric: bool,
}

/// One configured peer.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerSpec {
    pub name: String,
    pub address: Ipv4Addr,
    pub asn: u32,
    pub max_routes: u32,
    pub hold_time: u16,
    /// The peer's BGP port (we connect to it; it connects to ours).
    pub port: u16,
    /// TCP-MD5 key.
    pub password: Option<String>,
}

/// Peers, learned and advertised routes and the Loc-RIB as the API shows them (SPEC §6): the
/// contract's types.
pub use api_types::{PeerView, RibEntryView, RibPathView, RouteView};

/// Requests to the RIB task.
pub enum Query {
    /// The Loc-RIB, sorted by prefix.
    Rib(oneshot::Sender<Vec<RibEntryView>>),
    Peers(oneshot::Sender<Vec<PeerView>>),
    /// None: no peer of that name on this instance.
    Learned(String, oneshot::Sender<Option<Vec<RouteView>>>),
    Advertised(String, oneshot::Sender<Option<Vec<RouteView>>>),
    /// Apply a new spec (reload): peers added, removed, changed; untouched peers keep their
    /// sessions.
    Reconfigure(Box<InstanceSpec>, oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// The handle the API and the daemon keep.
#[derive(Clone)]
pub struct InstanceHandle {
    pub name: String,
    pub address: Ipv4Addr,
    queries: mpsc::Sender<Query>,
    pub listener: Listener,
}

impl InstanceHandle {
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Query) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.queries.send(make(tx)).await.ok()?;
        rx.await.ok()
    }
    pub fn refused(&self) -> u64 {
        self.listener.refused.count.load(Ordering::Relaxed)
    }
}

/// Everything the RIB task keeps about one peer beside the RIB.
struct PeerSlot {
    spec: PeerSpec,
    id: PeerId,
    handle: PeerHandle,
    state: State,
    since: Option<Instant>,
    ctx: SessionContext,
    last_error: Option<String>,
    updates_in: u64,
    updates_out: u64,
}

/// How long a peer that exceeded its route limit waits before it may reconnect.
const LIMIT_BACKOFF: Duration = Duration::from_secs(30);

/// Binds the instance's address and starts its tasks.
pub async fn start(
    spec: InstanceSpec,
    fabric: Option<crate::fabricrun::FabricTx>,
) -> anyhow::Result<InstanceHandle> {
    let sock =
        Listener::bind(SocketAddr::new(IpAddr::V4(spec.address), spec.port)).map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot listen on {}:{}: {e}",
                spec.name,
                spec.address,
                spec.port
            )
        })?;
    let listener = Listener::new();
    listener.attach(&sock);
    tokio::spawn(listener.clone().run(sock));
    let (qtx, qrx) = mpsc::channel(64);
    let (etx, erx) = mpsc::channel(1024);
    let handle = InstanceHandle {
        name: spec.name.clone(),
        address: spec.address,
        queries: qtx,
        listener: listener.clone(),
    };
    let rib = Rib::new(RibConfig {
        asn: spec.asn,
        local_address: spec.address,
        branch_to_branch: spec.branch_to_branch,
        originated: spec.originated.clone(),
    });
    let mut task = RibTask {
        spec: spec.clone(),
        rib,
        peers: HashMap::new(),
        listener,
        events: etx,
        fabric,
        fabric_name: spec.name.as_str().into(),
        encode_buf: Vec::new(),
    };
    for p in spec.peers.clone() {
        task.add_peer(p);
    }
    let span = tracing::info_span!("instance", name = %spec.name);
    tokio::spawn(tracing::Instrument::instrument(task.run(qrx, erx), span));
    Ok(handle)
}

struct RibTask {
    spec: InstanceSpec,
    rib: Rib,
    peers: HashMap<PeerId, PeerSlot>,
    listener: Listener,
    events: mpsc::Sender<(PeerId, PeerEvent)>,
    /// Where Loc-RIB changes go (the fabric), if anywhere; fed only with `spec.feed_fabric`.
    fabric: Option<crate::fabricrun::FabricTx>,
    /// The instance's name in every batch to the fabric (one allocation for all of them).
    fabric_name: Arc<str>,
    /// Where exports are encoded before they are copied, at their exact size, into the buffer
    /// the peers share: it grows once, not for every message.
    encode_buf: Vec<u8>,
}

/// The largest encode buffer kept between exports (a full table for a new peer is larger).
const ENCODE_BUF_KEPT: usize = 1 << 20;

impl RibTask {
    fn add_peer(&mut self, p: PeerSpec) {
        let id = self.rib.add_peer(&p.name, p.address, p.asn, p.max_routes);
        let mut s = SessionConfig::new(self.spec.asn, self.spec.address, p.asn);
        s.hold_time = p.hold_time;
        s.connect_retry = Duration::from_secs(5);
        let mut cfg = PeerConfig::new(
            p.name.clone(),
            s,
            IpAddr::V4(self.spec.address),
            IpAddr::V4(p.address),
        );
        cfg.remote_port = p.port;
        let handle = spawn_peer(cfg, self.events.clone(), id);
        self.listener
            .register(IpAddr::V4(p.address), handle.inbound());
        info!(peer = %p.name, address = %p.address, asn = p.asn, "peer configured");
        self.peers.insert(
            id,
            PeerSlot {
                spec: p,
                id,
                handle,
                state: State::Idle,
                since: None,
                ctx: SessionContext::default(),
                last_error: None,
                updates_in: 0,
                updates_out: 0,
            },
        );
    }

    /// Takes a peer down for good: `how` is Deconfigure (reload) or Shutdown (process exit).
    fn remove_peer(&mut self, id: PeerId, how: PeerCommand) {
        if let Some(slot) = self.peers.remove(&id) {
            info!(peer = %slot.spec.name, "peer removed");
            self.listener.unregister(IpAddr::V4(slot.spec.address));
            slot.handle.send(how);
            let ex = self.rib.remove_peer(id);
            self.send_export(ex);
        }
    }

    async fn run(
        mut self,
        mut queries: mpsc::Receiver<Query>,
        mut events: mpsc::Receiver<(PeerId, PeerEvent)>,
    ) {
        loop {
            tokio::select! {
                Some((id, ev)) = events.recv() => self.peer_event(id, ev),
                q = queries.recv() => match q {
                    None => return self.shutdown().await,
                    Some(Query::Shutdown(done)) => {
                        self.shutdown().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(q) => self.query(q),
                },
            }
        }
    }

    async fn shutdown(&mut self) {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            self.remove_peer(id, PeerCommand::Shutdown);
        }
        // Let the peer tasks send their Cease before the runtime goes.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fn peer_event(&mut self, id: PeerId, ev: PeerEvent) {
        let Some(slot) = self.peers.get_mut(&id) else {
            return;
        };
        match ev {
            PeerEvent::State { state } => {
                slot.state = state;
                if state != State::Established {
                    slot.since = None;
                }
            }
            PeerEvent::Established { negotiated } => {
                slot.state = State::Established;
                slot.since = Some(Instant::now());
                slot.ctx = negotiated.context();
                slot.last_error = None;
                info!(peer = %slot.spec.name, "established; sending our routes");
                let ex = self.rib.peer_up(id, negotiated.peer_id);
                self.send_export(ex);
            }
            PeerEvent::Update {
                update,
                treat_as_withdraw,
                discarded,
            } => {
                slot.updates_in += 1;
                if let Some(e) = treat_as_withdraw {
                    slot.last_error = Some(format!(
                        "malformed UPDATE treated as withdraw (RFC 7606): {e}"
                    ));
                }
                if !discarded.is_empty() {
                    slot.last_error =
                        Some(format!("attribute discarded (RFC 7606): {}", discarded[0]));
                }
                match self.rib.apply_update(id, &update) {
                    Ok(ex) => self.send_export(ex),
                    Err(lim) => {
                        let msg = format!(
                            "maximum number of prefixes reached: {} held + {} incoming > {}",
                            lim.held, lim.incoming, lim.limit
                        );
                        warn!(peer = %slot.spec.name, "{msg}; closing with Cease/1, reconnect allowed after {LIMIT_BACKOFF:?}");
                        slot.last_error = Some(msg);
                        // RFC 4486 §4: AFI, SAFI and the upper bound.
                        let mut data = vec![0, 1, 1];
                        data.extend_from_slice(&lim.limit.to_be_bytes());
                        let n = Notification::with_data(
                            code::CEASE,
                            cease::MAXIMUM_NUMBER_OF_PREFIXES_REACHED,
                            data,
                        );
                        slot.handle.send(PeerCommand::Reset {
                            notification: n,
                            restart_after: LIMIT_BACKOFF,
                        });
                        let ex = self.rib.peer_down(id);
                        self.send_export(ex);
                    }
                }
            }
            PeerEvent::RouteRefresh(_) => {
                let ex = self.rib.full_export(id);
                self.send_export(ex);
            }
            PeerEvent::Down { reason } => {
                info!(peer = %slot.spec.name, %reason, "session down; withdrawing its routes");
                slot.state = State::Idle;
                slot.since = None;
                if slot
                    .last_error
                    .as_deref()
                    .is_none_or(|e| !e.starts_with("maximum number"))
                {
                    slot.last_error = Some(reason.to_string());
                }
                let ex = self.rib.peer_down(id);
                self.send_export(ex);
            }
        }
    }

    /// Sends the fabric the forwarding next hops of `prefixes` as one batch; with `reset`, the
    /// batch is the whole Loc-RIB (the fabric drops this instance's other prefixes).
    fn feed_fabric<'a>(&self, prefixes: impl Iterator<Item = &'a Ipv4Prefix>, reset: bool) {
        let Some(f) = &self.fabric else { return };
        let routes: Vec<(fabric::Prefix, Vec<Ipv4Addr>)> = prefixes
            .map(|p| {
                let prefix =
                    fabric::Prefix::new(p.addr(), p.len()).unwrap_or(fabric::Prefix::DEFAULT);
                (prefix, self.rib.forwarding_next_hops(p))
            })
            .collect();
        if routes.is_empty() && !reset {
            return;
        }
        let _ = f.send(crate::fabricrun::FabricMsg::RibChanges {
            instance: self.fabric_name.clone(),
            reset,
            routes,
        });
    }

    fn send_export(&mut self, ex: Export) {
        if self.spec.feed_fabric {
            self.feed_fabric(ex.changed.iter(), false);
        }
        // Each group of peers sent the same thing is encoded once per session context, and
        // its peers share the bytes.
        for (members, out) in ex.groups() {
            let mut encoded: Vec<(SessionContext, Arc<[u8]>, usize)> = Vec::new();
            for q in members {
                let Some(slot) = self.peers.get_mut(&q) else {
                    continue;
                };
                if slot.state != State::Established {
                    continue;
                }
                let (bytes, n) = match encoded.iter().find(|(c, _, _)| *c == slot.ctx) {
                    Some((_, b, n)) => (b.clone(), *n),
                    None => {
                        let buf = &mut self.encode_buf;
                        buf.clear();
                        let n = out.encode(&slot.ctx, buf);
                        let b: Arc<[u8]> = Arc::from(&buf[..]);
                        if buf.capacity() > ENCODE_BUF_KEPT {
                            *buf = Vec::new();
                        }
                        encoded.push((slot.ctx, b.clone(), n));
                        (b, n)
                    }
                };
                slot.updates_out += n as u64;
                slot.handle.send(PeerCommand::Send(bytes));
            }
        }
    }

    fn find(&self, name: &str) -> Option<PeerId> {
        self.peers
            .values()
            .find(|s| s.spec.name == name)
            .map(|s| s.id)
    }

    fn query(&mut self, q: Query) {
        match q {
            Query::Peers(tx) => {
                let mut v: Vec<PeerView> = self.peers.values().map(|s| self.peer_view(s)).collect();
                v.sort_by(|a, b| a.name.cmp(&b.name));
                let _ = tx.send(v);
            }
            Query::Rib(tx) => {
                let _ = tx.send(self.rib_view());
            }
            Query::Learned(name, tx) => {
                let _ = tx.send(self.find(&name).map(|id| self.learned(id)));
            }
            Query::Advertised(name, tx) => {
                let _ = tx.send(self.find(&name).map(|id| self.advertised(id)));
            }
            Query::Reconfigure(spec, tx) => {
                self.reconfigure(*spec);
                let _ = tx.send(());
            }
            Query::Shutdown(_) => {}
        }
    }

    fn peer_view(&self, s: &PeerSlot) -> PeerView {
        let (received, accepted) = self.rib.peer_counts(s.id);
        PeerView {
            name: s.spec.name.clone(),
            peer_ip: s.spec.address.to_string(),
            peer_asn: s.spec.asn,
            state: crate::contract::session_state(s.state),
            routes_received: received,
            routes_accepted: accepted,
            routes_advertised: if s.state == State::Established {
                self.rib.advertised_to(s.id).len() as u32
            } else {
                0
            },
            last_error: s.last_error.clone(),
            uptime: s.since.map(|t| t.elapsed().as_secs()),
            updates_received: s.updates_in,
            updates_sent: s.updates_out,
            messages_received: s
                .handle
                .stats
                .messages_in
                .load(std::sync::atomic::Ordering::Relaxed),
            messages_sent: s
                .handle
                .stats
                .messages_out
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    fn rib_view(&self) -> Vec<RibEntryView> {
        let mut prefixes: Vec<Ipv4Prefix> = self.rib.prefixes().copied().collect();
        prefixes.sort();
        prefixes
            .into_iter()
            .map(|p| RibEntryView {
                network: p.to_string(),
                paths: self
                    .rib
                    .multipath(&p)
                    .iter()
                    .enumerate()
                    .map(|(i, (peer, a))| RibPathView {
                        source_peer: self
                            .peers
                            .get(peer)
                            .map(|s| s.spec.name.clone())
                            .unwrap_or_default(),
                        next_hop: a.next_hop.map(|n| n.to_string()).unwrap_or_default(),
                        as_path: a
                            .as_path
                            .as_ref()
                            .map(|x| x.to_string())
                            .unwrap_or_default(),
                        best: i == 0,
                    })
                    .collect(),
                forwarding_next_hops: self
                    .rib
                    .forwarding_next_hops(&p)
                    .iter()
                    .map(|n| n.to_string())
                    .collect(),
            })
            .collect()
    }

    fn learned(&self, id: PeerId) -> Vec<RouteView> {
        let src = self
            .peers
            .get(&id)
            .map(|s| s.spec.address.to_string())
            .unwrap_or_default();
        self.rib
            .learned_from(id)
            .into_iter()
            .map(|r| {
                let (state, reason) = match r.state {
                    RouteState::Accepted { .. } => (None, None),
                    RouteState::Rejected(why) => (Some(api_types::RouteState::Invalid), Some(why)),
                };
                RouteView {
                    local_address: self.spec.address.to_string(),
                    network: r.prefix.to_string(),
                    next_hop: r.attrs.next_hop.map(|n| n.to_string()).unwrap_or_default(),
                    source_peer: src.clone(),
                    origin: api_types::Origin::EBgp,
                    as_path: r
                        .attrs
                        .as_path
                        .as_ref()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    weight: 32768,
                    state,
                    reason,
                }
            })
            .collect()
    }

    fn advertised(&self, id: PeerId) -> Vec<RouteView> {
        let me = self.spec.address.to_string();
        self.rib
            .advertised_to(id)
            .into_iter()
            .map(|(prefix, a)| {
                let originated = self.spec.originated.contains(&prefix);
                RouteView {
                    local_address: me.clone(),
                    network: prefix.to_string(),
                    next_hop: a.next_hop.map(|n| n.to_string()).unwrap_or_default(),
                    source_peer: me.clone(),
                    origin: if originated {
                        api_types::Origin::Igp
                    } else {
                        api_types::Origin::EBgp
                    },
                    as_path: a
                        .as_path
                        .as_ref()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    weight: 0,
                    state: None,
                    reason: None,
                }
            })
            .collect()
    }

    fn reconfigure(&mut self, spec: InstanceSpec) {
        let old: HashMap<String, PeerSpec> = self
            .spec
            .peers
            .iter()
            .map(|p| (p.name.clone(), p.clone()))
            .collect();
        let new: HashMap<String, PeerSpec> = spec
            .peers
            .iter()
            .map(|p| (p.name.clone(), p.clone()))
            .collect();
        for (name, p) in &old {
            if new.get(name) != Some(p) {
                if let Some(id) = self.find(name) {
                    self.remove_peer(id, PeerCommand::Deconfigure);
                }
            }
        }
        self.spec.peers = spec.peers.clone();
        for (name, p) in &new {
            if old.get(name) != Some(p) {
                self.add_peer(p.clone());
            }
        }
        if spec.feed_fabric != self.spec.feed_fabric {
            // The fabric starts or stops programming BGP routes: it gets the whole Loc-RIB, or
            // forgets this instance's routes.
            self.spec.feed_fabric = spec.feed_fabric;
            if spec.feed_fabric {
                self.feed_fabric(self.rib.prefixes(), true);
            } else {
                self.feed_fabric(std::iter::empty(), true);
            }
        }
        if spec.originated != self.spec.originated
            || spec.branch_to_branch != self.spec.branch_to_branch
        {
            // The advertised set changed: rebuild the RIB's export rules and, as the reference
            // does, ask every peer to refresh so both sides are in sync.
            warn!(
                "address space or branch_to_branch changed: sessions keep running, routes re-sent"
            );
            self.spec.originated = spec.originated.clone();
            self.spec.branch_to_branch = spec.branch_to_branch;
            let ex = self
                .rib
                .set_export_config(spec.originated.clone(), spec.branch_to_branch);
            self.send_export(ex);
            for s in self.peers.values() {
                if s.state == State::Established {
                    s.handle
                        .send(PeerCommand::SendRouteRefresh(RouteRefresh::ipv4_unicast()));
                }
            }
        }
    }
}

/// Shared view of all instances, for the API.
pub type Instances = Arc<tokio::sync::RwLock<Vec<InstanceHandle>>>;
