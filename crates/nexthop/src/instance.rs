//! The driver of one route server instance (`RouteServiceRole_IN_n`): a task that owns the
//! sans-IO [`controller::instance::Instance`] and carries out its effects with real sockets, the
//! peer tasks of its sessions, and the listener on its address.
//!
//! ```text
//!  Listener (ADDRESS:port) ──conn──> peer task (1x per peer) ──PeerEvent──┐
//!                                         ^                               v
//!                                         └──PeerCommand── instance task (1x): Instance::handle
//!  API ──Query (oneshot reply)──────────────────────────────────────────> ┘
//! ```
//!
//! The instance task is the only owner of the RIB and of the peers' bookkeeping (both inside
//! the `Instance`); everything else reaches it over its channels. What the task decides is all
//! in the owner: this file turns events into inputs, effects into sockets and tasks, and the
//! owner's state into API views.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp::fsm::State;
use bgp::wire::{Afi, Safi};
use bgp_driver::{spawn_peer, Listener, PeerCommand, PeerEvent, PeerHandle};
use controller::instance::{Effect, Input, Instance, PeerSlot};
pub use controller::instance::{InstanceSpec, PeerSpec};
use routeserver::{Family, PeerId, Rib, RouteState};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{error, info};

/// Peers, learned and advertised routes and the Loc-RIB as the API shows them (SPEC §6): the
/// contract's types.
pub use api_types::{PeerView, RibEntryView, RibPathView, RouteView};

/// Requests to the instance task.
pub enum Query {
    /// The Loc-RIB, sorted by prefix.
    Rib(oneshot::Sender<Vec<RibEntryView>>),
    Peers(oneshot::Sender<Vec<PeerView>>),
    /// None: no peer of that name on this instance.
    Learned(String, oneshot::Sender<Option<Vec<RouteView>>>),
    Advertised(String, oneshot::Sender<Option<Vec<RouteView>>>),
    /// A TABLE_DUMP_V2 (MRT, RFC 6396) snapshot of the Adj-RIBs-In.
    Mrt(oneshot::Sender<Vec<u8>>),
    /// BMP messages for a collector that just connected: Peer Up and the Adj-RIB-In of every
    /// established peer.
    Bmp(oneshot::Sender<Vec<Vec<u8>>>),
    /// Apply a new spec (reload): peers added, removed, changed; untouched peers keep their
    /// sessions. With a socket: the port changed and this is the new listener, already bound
    /// (binding is what can fail, so the daemon does it before anything changes).
    Reconfigure(Box<InstanceSpec>, Option<Sockets>, oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// The handle the API and the daemon keep.
#[derive(Clone)]
pub struct InstanceHandle {
    pub name: String,
    pub address: Ipv4Addr,
    pub address6: Option<std::net::Ipv6Addr>,
    pub port: u16,
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

/// An instance's listening sockets: its IPv4 address, and its IPv6 address if it has one.
/// Given to a running instance (a reload), `v4: None` keeps the IPv4 socket it has, and `v6`
/// replaces the IPv6 one (None: it stops listening on IPv6).
pub struct Sockets {
    pub v4: Option<TcpListener>,
    pub v6: Option<TcpListener>,
}

/// Binds an instance's listening sockets: the one step of starting or moving an instance that
/// the host can refuse (an address not on the host, a port in use).
pub fn bind(spec: &InstanceSpec) -> anyhow::Result<Sockets> {
    let one = |ip: IpAddr| {
        let at = SocketAddr::new(ip, spec.port);
        Listener::bind(at).map_err(|e| anyhow::anyhow!("{}: cannot listen on {at}: {e}", spec.name))
    };
    Ok(Sockets {
        v4: Some(one(IpAddr::V4(spec.address))?),
        v6: spec.address6.map(|a| one(IpAddr::V6(a))).transpose()?,
    })
}

/// Binds only a new IPv6 socket (a reload that changed `instances_ipv6` but not the port: the
/// IPv4 socket stays, and binding it again would fail while it listens).
pub fn bind_ipv6(spec: &InstanceSpec) -> anyhow::Result<Sockets> {
    let v6 = spec
        .address6
        .map(|a| {
            let at = SocketAddr::new(IpAddr::V6(a), spec.port);
            Listener::bind(at)
                .map_err(|e| anyhow::anyhow!("{}: cannot listen on {at}: {e}", spec.name))
        })
        .transpose()?;
    Ok(Sockets { v4: None, v6 })
}

/// Starts the instance's tasks on a socket bound by [`bind`]; cannot fail.
/// Where an instance's news goes besides its peers: the fabric (Loc-RIB changes) and the MRT
/// update log (every UPDATE received), each if configured.
#[derive(Clone, Default)]
pub struct Sinks {
    pub fabric: Option<crate::fabricrun::FabricTx>,
    pub mrt: Option<crate::mrtlog::MrtLog>,
    /// BMP collectors (`[[bmp]]`).
    pub bmp: Option<crate::bmprun::BmpFeed>,
    /// The event log: sessions coming up and going down.
    pub events: Option<crate::events::EventLog>,
}

pub fn start(spec: InstanceSpec, socks: Sockets, sinks: Sinks) -> InstanceHandle {
    let Sinks {
        fabric,
        mrt,
        bmp,
        events: event_log,
    } = sinks;
    let listener = Listener::new();
    let mut accepting = [None, None];
    accept_on(&listener, socks, &mut accepting);
    let (qtx, qrx) = mpsc::channel(64);
    let (etx, erx) = mpsc::channel(1024);
    let handle = InstanceHandle {
        name: spec.name.clone(),
        address: spec.address,
        address6: spec.address6,
        port: spec.port,
        queries: qtx,
        listener: listener.clone(),
    };
    let fabric_name: Arc<str> = spec.name.as_str().into();
    let span = tracing::info_span!("instance", name = %spec.name);
    let (owner, fx) = Instance::new(spec);
    let mut task = InstanceTask {
        owner,
        handles: HashMap::new(),
        listener,
        accepting,
        events: etx,
        fabric,
        fabric_name,
        mrt,
        bmp,
        event_log,
        bfd: None,
        bfd_changes: mpsc::channel(64),
    };
    task.execute(fx);
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            task.set_bfd().await;
            task.run(qrx, erx).await
        },
        span,
    ));
    handle
}

/// Attaches `socks` to `listener` and accepts on them: a new IPv4 socket replaces the one
/// in `tasks[0]` (none: it stays), the IPv6 one always replaces `tasks[1]`.
fn accept_on(listener: &Listener, socks: Sockets, tasks: &mut [Option<JoinHandle<()>>; 2]) {
    let Sockets { v4, v6 } = socks;
    let start = |sock: TcpListener, slot: &mut Option<JoinHandle<()>>| {
        listener.attach(&sock);
        if let Some(old) = slot.replace(tokio::spawn(listener.clone().run(sock))) {
            old.abort();
        }
    };
    if let Some(sock) = v4 {
        start(sock, &mut tasks[0]);
    }
    match v6 {
        Some(sock) => start(sock, &mut tasks[1]),
        None => {
            listener.detach_ipv6();
            if let Some(old) = tasks[1].take() {
                old.abort();
            }
        }
    }
}

struct InstanceTask {
    owner: Instance,
    /// The running peer tasks, by the owner's peer id.
    handles: HashMap<PeerId, PeerHandle>,
    listener: Listener,
    /// The tasks accepting on the instance's IPv4 and IPv6 sockets: aborting one closes its
    /// socket.
    accepting: [Option<JoinHandle<()>>; 2],
    events: mpsc::Sender<(PeerId, PeerEvent)>,
    /// Where Loc-RIB changes go (the fabric), if anywhere.
    fabric: Option<crate::fabricrun::FabricTx>,
    /// The instance's name in every batch to the fabric (one allocation for all of them).
    fabric_name: Arc<str>,
    /// Where every UPDATE received is logged, if anywhere (`[mrt] updates_dir`).
    mrt: Option<crate::mrtlog::MrtLog>,
    /// Where sessions and UPDATEs are streamed, if anywhere (`[[bmp]]`).
    bmp: Option<crate::bmprun::BmpFeed>,
    /// Sessions up and down, for `GET /v1/events`.
    event_log: Option<crate::events::EventLog>,
    /// BFD with the peers that have it ([`crate::bfdrun`]), and its state changes.
    bfd: Option<crate::bfdrun::BfdTask>,
    bfd_changes: (
        mpsc::Sender<crate::bfdrun::Change>,
        mpsc::Receiver<crate::bfdrun::Change>,
    ),
}

impl InstanceTask {
    async fn run(
        mut self,
        mut queries: mpsc::Receiver<Query>,
        mut events: mpsc::Receiver<(PeerId, PeerEvent)>,
    ) {
        let mut tick = tokio::time::interval(controller::instance::TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some((id, ev)) = events.recv() => {
                    if let (Some(log), PeerEvent::Update { update, .. }) = (&self.mrt, &ev) {
                        if let Some(p) = self.owner.peer(id) {
                            let spec = self.owner.spec();
                            let local = match p.spec.address {
                                IpAddr::V4(_) => IpAddr::V4(spec.address),
                                IpAddr::V6(_) => IpAddr::V6(spec.next_hop6()),
                            };
                            log.update((p.spec.asn, p.spec.address), (spec.asn, local), update);
                        }
                    }
                    if let Some(m) = self.bmp_message(id, &ev) {
                        if let Some(b) = &self.bmp {
                            b.send(&self.fabric_name, m);
                        }
                    }
                    self.log_session(id, &ev);
                    let fx = self.owner.handle(Instant::now(), Input::Peer(id, ev));
                    self.execute(fx);
                }
                _ = tick.tick() => {
                    let fx = self.owner.handle(Instant::now(), Input::Tick);
                    self.execute(fx);
                }
                Some((peer, from, to, diag)) = self.bfd_changes.1.recv() => {
                    // BFD leaving Up takes the BGP session down at once (RFC 5882 §4.3).
                    if from == bfd::State::Up && to != bfd::State::Up {
                        let fx = self.owner.handle(
                            Instant::now(),
                            Input::BfdDown { address: peer, why: format!("BFD {to}: {diag}") },
                        );
                        self.execute(fx);
                    }
                }
                q = queries.recv() => match q {
                    None => return self.shutdown().await,
                    Some(Query::Shutdown(done)) => {
                        self.shutdown().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(q) => self.query(q).await,
                },
            }
        }
    }

    async fn shutdown(&mut self) {
        let fx = self.owner.handle(Instant::now(), Input::Shutdown);
        self.execute(fx);
        // Let the peer tasks send their Cease before the runtime goes, then close the socket
        // (a later start on the same address must be able to bind it).
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.accepting.iter().flatten().for_each(JoinHandle::abort);
    }

    /// Carries out the owner's effects, in order.
    fn execute(&mut self, fx: Vec<Effect>) {
        for e in fx {
            match e {
                Effect::StartPeer { id, config } => {
                    let h = spawn_peer(config, self.events.clone(), id);
                    self.handles.insert(id, h);
                }
                Effect::Accept { id, remote, md5 } => {
                    if let Some(h) = self.handles.get(&id) {
                        self.listener.register(remote, h.inbound());
                    }
                    let key = md5.as_ref().map_or(&[][..], |k| k.0.as_slice());
                    if let Err(e) = self.listener.set_md5(remote, key) {
                        // The config crate checks the key's length; what is left is a kernel
                        // without TCP-MD5. The peer's connections are refused rather than
                        // accepted unsigned.
                        error!(%remote, error = %e, "cannot set the TCP-MD5 key on the listener");
                    }
                }
                Effect::StopAccepting { remote } => self.listener.unregister(remote),
                Effect::ListenerTtlSecurity(on) => {
                    if let Err(e) = self.listener.set_ttl_security(on) {
                        error!(error = %e, on, "cannot set GTSM on the listener");
                    }
                }
                Effect::Peer { id, command } => {
                    let last = matches!(
                        command,
                        PeerCommand::Deconfigure | PeerCommand::Shutdown | PeerCommand::Abandon
                    );
                    let h = if last {
                        self.handles.remove(&id)
                    } else {
                        self.handles.get(&id).cloned()
                    };
                    if let Some(h) = h {
                        h.send(command);
                    }
                }
                Effect::Fabric { reset, routes } => self.feed_fabric(reset, routes),
            }
        }
    }

    /// The Loc-RIB prefixes go to the fabric as they are: one prefix type everywhere.
    fn feed_fabric(&self, reset: bool, routes: Vec<(fabric::Prefix, Vec<IpAddr>)>) {
        let Some(f) = &self.fabric else { return };
        let _ = f.send(crate::fabricrun::FabricMsg::RibChanges {
            instance: self.fabric_name.clone(),
            reset,
            routes,
        });
    }

    async fn query(&mut self, q: Query) {
        match q {
            Query::Peers(tx) => {
                let mut v: Vec<PeerView> = self.owner.peers().map(|s| self.peer_view(s)).collect();
                v.sort_by(|a, b| a.name.cmp(&b.name));
                let _ = tx.send(v);
            }
            Query::Rib(tx) => {
                let _ = tx.send(self.rib_view());
            }
            Query::Learned(name, tx) => {
                let _ = tx.send(self.owner.find(&name).map(|id| self.learned(id)));
            }
            Query::Advertised(name, tx) => {
                let _ = tx.send(self.owner.find(&name).map(|id| self.advertised(id)));
            }
            Query::Mrt(tx) => {
                let _ = tx.send(self.mrt());
            }
            Query::Bmp(tx) => {
                let _ = tx.send(self.bmp_state());
            }
            Query::Reconfigure(spec, sock, tx) => {
                if let Some(socks) = sock {
                    // The new sockets first, so the keys the owner re-registers land on them.
                    accept_on(&self.listener, socks, &mut self.accepting);
                    info!(port = spec.port, "listening on the new sockets");
                }
                let fx = self.owner.handle(Instant::now(), Input::Reconfigure(spec));
                self.execute(fx);
                self.set_bfd().await;
                let _ = tx.send(());
            }
            Query::Shutdown(_) => {}
        }
    }

    /// The per-peer header of a BMP message about peer `id` (its BGP identifier as last seen).
    fn bmp_header(&self, id: PeerId, bgp_id: Option<Ipv4Addr>) -> Option<bgp::bmp::PeerHeader> {
        let p = self.owner.peer(id)?;
        let seen = self.owner.rib().peer_info(id).map(|(_, _, r)| r);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Some(bgp::bmp::PeerHeader {
            address: p.spec.address,
            asn: p.spec.asn,
            bgp_id: bgp_id
                .or(seen.filter(|r| !r.is_unspecified()))
                .unwrap_or(Ipv4Addr::UNSPECIFIED),
            secs: u32::try_from(now.as_secs()).unwrap_or(u32::MAX),
            micros: now.subsec_micros(),
        })
    }

    /// Runs BFD with the peers whose spec asks for it (IPv4 peers; config refuses IPv6 ones):
    /// starts the task when the first such peer appears, gives it the new list on a reload,
    /// stops it when none is left. A BFD port already taken leaves the sessions without BFD, said
    /// in the log.
    async fn set_bfd(&mut self) {
        let peers: Vec<(IpAddr, bfd::Config)> = self
            .owner
            .spec()
            .peers
            .iter()
            .filter(|p| p.address.is_ipv4())
            .filter_map(|p| p.bfd.map(|c| (p.address, c)))
            .collect();
        if peers.is_empty() {
            self.bfd = None;
            return;
        }
        match &self.bfd {
            Some(t) => t.set_peers(peers),
            None => {
                let local = self.owner.spec().address;
                match crate::bfdrun::start(local, peers, self.bfd_changes.0.clone()).await {
                    Ok(t) => self.bfd = Some(t),
                    Err(e) => tracing::warn!(%local, "BFD not started: {e}"),
                }
            }
        }
    }

    /// A session reaching or leaving Established, in the event log.
    fn log_session(&self, id: PeerId, ev: &PeerEvent) {
        let (Some(log), Some(p)) = (&self.event_log, self.owner.peer(id)) else {
            return;
        };
        let (kind, text) = match ev {
            PeerEvent::Established { .. } => (
                api_types::EventKind::PeerUp,
                format!(
                    "{} ({}) Established with {}",
                    p.spec.name, p.spec.address, self.fabric_name
                ),
            ),
            PeerEvent::Down { reason } => (
                api_types::EventKind::PeerDown,
                format!(
                    "{} ({}) down on {}: {reason}",
                    p.spec.name, p.spec.address, self.fabric_name
                ),
            ),
            _ => return,
        };
        log.push(api_types::Event {
            instance: Some(self.fabric_name.to_string()),
            peer: Some(p.spec.name.clone()),
            ..crate::events::event(kind, text)
        });
    }

    /// The BMP message a peer event makes, while a collector listens.
    fn bmp_message(&self, id: PeerId, ev: &PeerEvent) -> Option<Vec<u8>> {
        use bgp::bmp::DownReason as Why;
        use bgp::fsm::DownReason;
        if !self.bmp.as_ref().is_some_and(|b| b.listening()) {
            return None;
        }
        Some(match ev {
            PeerEvent::Established { negotiated } => {
                let h = self.bmp_header(id, Some(negotiated.peer_id))?;
                let sent = self.owner.open_sent(id)?;
                bgp::bmp::peer_up(&h, self.owner.spec().address, &sent, &negotiated.peer_open)
            }
            PeerEvent::Update { update, .. } => {
                bgp::bmp::route_monitoring(&self.bmp_header(id, None)?, update)
            }
            PeerEvent::Down { reason } => {
                let why = match reason {
                    DownReason::PeerNotification(n) => Why::RemoteNotification(n.clone()),
                    DownReason::LocalError(n) | DownReason::AutomaticStop(n) => {
                        Why::LocalNotification(n.clone())
                    }
                    DownReason::ConnectionFailed => Why::RemoteNoData,
                    _ => Why::LocalNoNotification,
                };
                bgp::bmp::peer_down(&self.bmp_header(id, None)?, &why)
            }
            _ => return None,
        })
    }

    /// What a collector that just connected is told: for every established peer, its Peer Up
    /// and each path of its Adj-RIB-In (one prefix a Route Monitoring message).
    fn bmp_state(&self) -> Vec<Vec<u8>> {
        let rib = self.owner.rib();
        let mut out = Vec::new();
        for p in self.owner.peers().filter(|p| p.state == State::Established) {
            let (Some(h), Some(sent), Some(received)) = (
                self.bmp_header(p.id, None),
                self.owner.open_sent(p.id),
                p.peer_open.as_ref(),
            ) else {
                continue;
            };
            out.push(bgp::bmp::peer_up(
                &h,
                self.owner.spec().address,
                &sent,
                received,
            ));
            // Its Adj-RIB-In: accepted and refused paths alike (pre-policy).
            for r in rib.learned_from(p.id) {
                let u = bgp::wire::UpdateMessage {
                    withdrawn: Vec::new(),
                    attrs: (*r.attrs).clone(),
                    nlri: vec![r.prefix],
                };
                out.push(bgp::bmp::route_monitoring(&h, &u));
            }
            // IPv6: the prefix back inside the path's MP_REACH_NLRI.
            for r in self.owner.rib6().learned_from(p.id) {
                let mut attrs = (*r.attrs).clone();
                if let Some(reach) = attrs.mp_reach.as_mut() {
                    reach.nlri = vec![bgp::wire::Prefix::V6(r.prefix)];
                }
                let u = bgp::wire::UpdateMessage {
                    attrs,
                    ..Default::default()
                };
                out.push(bgp::bmp::route_monitoring(&h, &u));
            }
        }
        out
    }

    /// The Adj-RIBs-In as a TABLE_DUMP_V2 file: every configured peer in the index, every path
    /// (accepted or refused by policy) stamped with the time of the dump.
    fn mrt(&self) -> Vec<u8> {
        use bgp::mrt::{MrtPeer, TableDump};
        let rib = self.owner.rib();
        let ids: Vec<PeerId> = rib.peer_ids().collect();
        let peers: Vec<MrtPeer> = ids
            .iter()
            .filter_map(|id| rib.peer_info(*id))
            .map(|(address, asn, bgp_id)| MrtPeer {
                bgp_id,
                address,
                asn,
            })
            .collect();
        let index: HashMap<PeerId, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        let spec = self.owner.spec();
        let mut dump = TableDump::new(now, spec.address, &spec.name, &peers);
        for (prefix, paths) in rib.adj_ribs_in() {
            dump.add(
                prefix,
                paths
                    .iter()
                    .filter_map(|(id, a)| index.get(id).map(|i| (*i, now, a.as_ref()))),
            );
        }
        // IPv6 after IPv4 (the same peers, the same index).
        for (prefix, paths) in self.owner.rib6().adj_ribs_in() {
            dump.add6(
                prefix,
                paths
                    .iter()
                    .filter_map(|(id, a)| index.get(id).map(|i| (*i, now, a.as_ref()))),
            );
        }
        dump.finish()
    }

    fn peer_view(&self, s: &PeerSlot) -> PeerView {
        let (received, accepted) = self.owner.peer_counts(s.id);
        let stats = self.handles.get(&s.id).map(|h| &h.stats);
        let has = |afi: Afi| s.families.contains(&(afi, Safi::UNICAST));
        PeerView {
            address_families: s
                .families
                .iter()
                .map(|(afi, safi)| family_name(*afi, *safi))
                .collect(),
            name: s.spec.name.clone(),
            peer_ip: s.spec.address.to_string(),
            peer_asn: s.spec.asn,
            state: crate::contract::session_state(s.state),
            routes_received: received,
            routes_too_large: s.routes_too_large,
            routes_accepted: accepted,
            routes_advertised: if s.state == State::Established {
                let n4 = has(Afi::IPV4).then(|| self.owner.rib().advertised_to(s.id).len());
                let n6 = has(Afi::IPV6).then(|| self.owner.rib6().advertised_to(s.id).len());
                (n4.unwrap_or(0) + n6.unwrap_or(0)) as u32
            } else {
                0
            },
            last_error: s.last_error.clone(),
            uptime: s.since.map(|t| t.elapsed().as_secs()),
            updates_received: s.updates_in,
            updates_sent: s.updates_out,
            messages_received: stats.map_or(0, |st| st.messages_in.load(Ordering::Relaxed)),
            messages_sent: stats.map_or(0, |st| st.messages_out.load(Ordering::Relaxed)),
        }
    }

    /// The Loc-RIB of both families, IPv4 first, each by prefix.
    fn rib_view(&self) -> Vec<RibEntryView> {
        let mut v = self.rib_entries(self.owner.rib());
        v.extend(self.rib_entries(self.owner.rib6()));
        v
    }

    fn rib_entries<F: Family>(&self, rib: &Rib<F>) -> Vec<RibEntryView> {
        let mut prefixes: Vec<F::Prefix> = rib.prefixes().copied().collect();
        prefixes.sort();
        prefixes
            .into_iter()
            .map(|p| RibEntryView {
                network: p.to_string(),
                paths: rib
                    .multipath(&p)
                    .iter()
                    .enumerate()
                    .map(|(i, (peer, a))| RibPathView {
                        source_peer: self
                            .owner
                            .peer(*peer)
                            .map(|s| s.spec.name.clone())
                            .unwrap_or_default(),
                        next_hop: next_hop_text::<F>(a),
                        as_path: a
                            .as_path
                            .as_ref()
                            .map(|x| x.to_string())
                            .unwrap_or_default(),
                        best: i == 0,
                    })
                    .collect(),
                forwarding_next_hops: rib
                    .forwarding_next_hops(&p)
                    .iter()
                    .map(|n| n.to_string())
                    .collect(),
            })
            .collect()
    }

    /// The instance's own address in the family of `F` (the next hop it advertises with).
    fn local_address<F: Family>(&self) -> String {
        let spec = self.owner.spec();
        if F::AFI == Afi::IPV6 {
            spec.next_hop6().to_string()
        } else {
            spec.address.to_string()
        }
    }

    /// Routes learned from peer `id`, both families.
    fn learned(&self, id: PeerId) -> Vec<RouteView> {
        let mut v = self.learned_in(self.owner.rib(), id);
        v.extend(self.learned_in(self.owner.rib6(), id));
        v
    }

    fn learned_in<F: Family>(&self, rib: &Rib<F>, id: PeerId) -> Vec<RouteView> {
        let src = self
            .owner
            .peer(id)
            .map(|s| s.spec.address.to_string())
            .unwrap_or_default();
        let local = self.local_address::<F>();
        rib.learned_from(id)
            .into_iter()
            .map(|r| {
                let (state, reason) = match r.state {
                    RouteState::Accepted { .. } => (None, None),
                    RouteState::Rejected(why) => (Some(api_types::RouteState::Invalid), Some(why)),
                };
                RouteView {
                    local_address: local.clone(),
                    network: r.prefix.to_string(),
                    next_hop: next_hop_text::<F>(&r.attrs),
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

    /// Routes advertised to peer `id`, in the families of its session.
    fn advertised(&self, id: PeerId) -> Vec<RouteView> {
        let families = self
            .owner
            .peer(id)
            .map(|s| s.families.clone())
            .unwrap_or_default();
        let has = |afi: Afi| families.is_empty() || families.contains(&(afi, Safi::UNICAST));
        let mut v = Vec::new();
        if has(Afi::IPV4) {
            v.extend(self.advertised_in(self.owner.rib(), id, &self.owner.spec().originated));
        }
        if has(Afi::IPV6) {
            v.extend(self.advertised_in(self.owner.rib6(), id, &self.owner.spec().originated6));
        }
        v
    }

    fn advertised_in<F: Family>(
        &self,
        rib: &Rib<F>,
        id: PeerId,
        originated: &[F::Prefix],
    ) -> Vec<RouteView> {
        let me = self.local_address::<F>();
        rib.advertised_to(id)
            .into_iter()
            .map(|(prefix, a)| RouteView {
                local_address: me.clone(),
                network: prefix.to_string(),
                next_hop: next_hop_text::<F>(&a),
                source_peer: me.clone(),
                origin: if originated.contains(&prefix) {
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
            })
            .collect()
    }
}

/// A path's next hop in the API: the family's forwarding next hop, empty when it has none.
fn next_hop_text<F: Family>(a: &bgp::wire::PathAttributes) -> String {
    F::next_hop(a).map(|n| n.to_string()).unwrap_or_default()
}

/// `ipv4-unicast`, `ipv6-unicast`; other families by number.
fn family_name(afi: Afi, safi: Safi) -> String {
    match (afi, safi) {
        (Afi::IPV4, Safi::UNICAST) => "ipv4-unicast".into(),
        (Afi::IPV6, Safi::UNICAST) => "ipv6-unicast".into(),
        (a, s) => format!("afi-{}-safi-{}", a.0, s.0),
    }
}

/// Shared view of all instances, for the API.
pub type Instances = Arc<tokio::sync::RwLock<Vec<InstanceHandle>>>;
