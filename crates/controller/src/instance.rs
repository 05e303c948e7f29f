//! One route server instance (`RouteServiceRole_IN_n`) as a sans-IO owner: the [`Rib`], the
//! bookkeeping of every peer (one [`PeerSlot`] each), exports encoded once per session context,
//! and reconfiguration by one diff ([`diff`]) that covers every setting a session depends on.
//!
//! ```text
//!  Input::Peer(id, PeerEvent) ──> Instance::handle(now, input) ──> Effect::StartPeer / Accept
//!  Input::Reconfigure(spec)   ──>        (owns Rib + PeerSlots)      Effect::Peer(id, command)
//!  Input::Shutdown            ──>                                    Effect::StopAccepting
//!                                                                    Effect::Fabric(batch)
//! ```
//!
//! The driver (crates/nexthop's instance task) spawns a `bgp-driver` peer task for each
//! [`Effect::StartPeer`], registers the peer (and its TCP-MD5 key) on the instance's listener
//! for each [`Effect::Accept`], and hands every [`Effect::Peer`] command to the peer's task.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp::fsm::{DownReason, SessionConfig, State};
use bgp::peer::{PeerCommand, PeerConfig, PeerEvent};
use bgp::wire::notification::{cease, code};
use bgp::wire::open::{Capability, GracefulRestartFamily};
use bgp::wire::{Afi, Safi, UpdateMessage};
use bgp::wire::{Ipv4Prefix, Ipv6Prefix, Notification, RouteRefresh, SessionContext};
use routeserver::{Export, Family, PathLimits, PeerId, Rib, RibConfig, V4, V6};
use tracing::{error, info, warn};

/// What an instance is told by configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceSpec {
    pub name: String,
    pub address: Ipv4Addr,
    /// The instance's IPv6 address (`instances_ipv6`): IPv6 peers' sessions run from it, and it
    /// is the next hop of the IPv6 address space. None: IPv6 routes still go over IPv4
    /// sessions (MP-BGP), with the IPv4-mapped address as our next hop.
    pub address6: Option<Ipv6Addr>,
    pub port: u16,
    pub asn: u32,
    pub branch_to_branch: bool,
    pub originated: Vec<Ipv4Prefix>,
    /// The virtual network's IPv6 address space.
    pub originated6: Vec<Ipv6Prefix>,
    pub peers: Vec<PeerSpec>,
    /// The fabric programs BGP routes (the route server has a virtual network): only then is
    /// it fed this instance's Loc-RIB changes.
    pub feed_fabric: bool,
    /// Graceful restart (RFC 4724) with this restart time in seconds (1–4095); None: off.
    pub graceful_restart: Option<u16>,
}

/// One configured peer: everything its session depends on.
#[derive(Clone, PartialEq)]
pub struct PeerSpec {
    pub name: String,
    /// The session runs over this address's family (from the instance's address of it).
    pub address: IpAddr,
    pub asn: u32,
    pub max_routes: u32,
    pub hold_time: u16,
    /// The peer's BGP port (we connect to it; it connects to ours).
    pub port: u16,
    /// TCP-MD5 key (RFC 2385), on our connections and on the listener for this peer.
    pub password: Option<Vec<u8>>,
    /// GTSM (RFC 5082) on every connection of the session.
    pub ttl_security: bool,
    /// How large the peer's paths may be; beyond, a path is refused with the reason.
    pub limits: PathLimits,
    /// BFD with the peer (run by the driver; its Down comes back as [`Input::BfdDown`]).
    pub bfd: Option<bfd::Config>,
}

/// Never prints the key.
impl fmt::Debug for PeerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerSpec")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("asn", &self.asn)
            .field("max_routes", &self.max_routes)
            .field("hold_time", &self.hold_time)
            .field("port", &self.port)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("ttl_security", &self.ttl_security)
            .field("limits", &self.limits)
            .finish()
    }
}

/// How long a peer that exceeded its route limit waits before it may reconnect.
pub const LIMIT_HOLD_DOWN: Duration = Duration::from_secs(30);

/// ConnectRetryTime of every session (RFC 4271 §10 suggests 120 s; a route server's peers are
/// few and local, and a lost session should come back quickly).
pub const CONNECT_RETRY: Duration = Duration::from_secs(5);

/// How long a restarted peer's stale paths wait for its End-of-RIB once its session is back
/// (FRR's default stale-path time).
pub const STALE_PATH_TIME: Duration = Duration::from_secs(360);

/// How often the driver gives [`Input::Tick`].
pub const TICK: Duration = Duration::from_secs(1);

/// What the instance is told.
#[derive(Debug)]
pub enum Input {
    /// What the peer's task reports.
    Peer(PeerId, PeerEvent),
    /// A new spec (reload) for the same address. The caller has made sure whatever it needs
    /// from the host (a listener on the new port) exists; nothing here can fail.
    Reconfigure(Box<InstanceSpec>),
    /// Process exit: every session closes with Cease/Administrative Shutdown; with graceful
    /// restart on, without a NOTIFICATION (the peers keep our routes for the restart time).
    Shutdown,
    /// Time passes (every [`TICK`]): restarting peers whose time ran out lose their stale paths.
    Tick,
    /// BFD declared the path to the peer at `address` down (`why`: its diagnostic): the
    /// session goes down at once, its routes withdrawn (RFC 5882 §4.3), as if the hold timer had
    /// expired, and may come back when BGP does.
    BfdDown { address: IpAddr, why: String },
}

/// What the instance asks its driver to do.
#[derive(Debug)]
pub enum Effect {
    /// Start a peer task with this config (the session's TCP-MD5 key included).
    StartPeer { id: PeerId, config: PeerConfig },
    /// Give connections from `remote` on the instance's listener to peer `id`, and require this
    /// TCP-MD5 key from it (none: no key).
    Accept {
        id: PeerId,
        remote: IpAddr,
        md5: Option<Key>,
    },
    /// Refuse connections from `remote` again, and remove its key from the listener.
    StopAccepting { remote: IpAddr },
    /// GTSM on the listening socket (true when every peer of the instance uses it): SYNs from
    /// farther than one hop never make a connection. Given whenever it changes.
    ListenerTtlSecurity(bool),
    /// A command for peer `id`'s task (after `Deconfigure` or `Shutdown` the task ends).
    Peer { id: PeerId, command: PeerCommand },
    /// The forwarding next hops of these prefixes changed (empty: the prefix is gone); with
    /// `reset`, the batch is the whole Loc-RIB and the fabric forgets this instance's others.
    Fabric {
        reset: bool,
        routes: Vec<(fabric::Prefix, Vec<IpAddr>)>,
    },
}

/// A TCP-MD5 key on its way to the listener; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub Vec<u8>);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// Everything the instance keeps about one peer beside the RIB.
#[derive(Debug)]
pub struct PeerSlot {
    pub spec: PeerSpec,
    pub id: PeerId,
    pub state: State,
    /// When the session was established, while it is.
    pub since: Option<Instant>,
    pub ctx: SessionContext,
    pub last_error: Option<String>,
    pub updates_in: u64,
    pub updates_out: u64,
    /// Prefixes not announced to the peer because their path does not fit its messages.
    pub routes_too_large: u64,
    /// The session was closed for exceeding `max_routes`; its Down keeps that as the reason.
    limit_hit: bool,
    /// The restart time the peer offered in its last OPEN (graceful restart), if it did.
    peer_restart_time: Option<u16>,
    /// The families its graceful restart capability listed, with their forwarding-state bit
    /// (RFC 4724 §3); a family not listed has its routes withdrawn at once when it restarts.
    peer_gr_families: Vec<(Afi, bool)>,
    /// Both sides offered the N bit (RFC 8538) on the last session.
    graceful_notification: bool,
    /// The OPEN the peer sent on its current session (for BMP's Peer Up).
    pub peer_open: Option<bgp::wire::Open>,
    /// The address families both sides offered on the current (or last) session.
    pub families: Vec<(Afi, Safi)>,
    /// The peer is restarting (graceful restart, helper side): its stale paths go at this time
    /// unless its End-of-RIB comes first.
    pub stale_until: Option<Instant>,
}

/// One route server instance.
pub struct Instance {
    spec: InstanceSpec,
    rib: Rib,
    /// IPv6 unicast: the same peers under the same ids.
    rib6: Rib<V6>,
    peers: BTreeMap<PeerId, PeerSlot>,
    /// Where exports are encoded before they are copied, at their exact size, into the buffer
    /// the peers share: it grows once, not for every message.
    encode_buf: Vec<u8>,
    /// Whether the listener has GTSM on (every peer uses it).
    listener_gtsm: bool,
}

/// The largest encode buffer kept between exports (a full table for a new peer is larger).
const ENCODE_BUF_KEPT: usize = 1 << 20;

/// How a new spec differs from the running one: what [`Instance`] applies on
/// [`Input::Reconfigure`], and what a reload reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// Why every session restarts (the instance's AS or port changed), if it does.
    pub sessions_reset: Option<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Peers whose session restarts, with the settings that changed (`password` is named,
    /// never shown).
    pub changed: Vec<(String, Vec<&'static str>)>,
    /// The originated prefixes or `branch_to_branch` changed: routes are re-sent, sessions stay.
    pub export_changed: bool,
    /// The fabric starts or stops taking this instance's routes.
    pub fabric_feed_changed: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(why) = &self.sessions_reset {
            parts.push(format!("every session restarts ({why})"));
        }
        if !self.added.is_empty() {
            parts.push(format!("peers added: {}", self.added.join(", ")));
        }
        if !self.removed.is_empty() {
            parts.push(format!("peers removed: {}", self.removed.join(", ")));
        }
        for (name, what) in &self.changed {
            parts.push(format!(
                "peer {name} restarts ({} changed)",
                what.join(", ")
            ));
        }
        if self.export_changed {
            parts.push("advertised routes re-sent (address space or branch_to_branch)".into());
        }
        if self.fabric_feed_changed {
            parts.push("the fabric's use of BGP routes changed".into());
        }
        if parts.is_empty() {
            parts.push("unchanged".into());
        }
        f.write_str(&parts.join("; "))
    }
}

/// The one diff of two specs of the same instance.
pub fn diff(old: &InstanceSpec, new: &InstanceSpec) -> Changes {
    let mut reasons = Vec::new();
    if old.asn != new.asn {
        reasons.push(format!("asn {} -> {}", old.asn, new.asn));
    }
    if old.port != new.port {
        reasons.push(format!("port {} -> {}", old.port, new.port));
    }
    if old.address != new.address {
        reasons.push(format!("address {} -> {}", old.address, new.address));
    }
    if old.address6 != new.address6 {
        let a = |a: Option<Ipv6Addr>| a.map_or("none".to_string(), |a| a.to_string());
        reasons.push(format!(
            "IPv6 address {} -> {}",
            a(old.address6),
            a(new.address6)
        ));
    }
    if old.graceful_restart != new.graceful_restart {
        let gr = |g: Option<u16>| g.map_or("off".to_string(), |t| format!("{t} s"));
        reasons.push(format!(
            "graceful_restart {} -> {}",
            gr(old.graceful_restart),
            gr(new.graceful_restart)
        ));
    }
    let sessions_reset = (!reasons.is_empty()).then(|| reasons.join(", "));
    let mut changes = Changes {
        sessions_reset,
        export_changed: old.originated != new.originated
            || old.originated6 != new.originated6
            || old.branch_to_branch != new.branch_to_branch,
        fabric_feed_changed: old.feed_fabric != new.feed_fabric,
        ..Changes::default()
    };
    for p in &new.peers {
        match old.peers.iter().find(|o| o.name == p.name) {
            None => changes.added.push(p.name.clone()),
            Some(o) => {
                let what = peer_fields_changed(o, p);
                if !what.is_empty() {
                    changes.changed.push((p.name.clone(), what));
                }
            }
        }
    }
    changes.removed = old
        .peers
        .iter()
        .filter(|o| !new.peers.iter().any(|p| p.name == o.name))
        .map(|o| o.name.clone())
        .collect();
    changes
}

fn peer_fields_changed(old: &PeerSpec, new: &PeerSpec) -> Vec<&'static str> {
    let mut what = Vec::new();
    if old.address != new.address {
        what.push("address");
    }
    if old.asn != new.asn {
        what.push("asn");
    }
    if old.max_routes != new.max_routes {
        what.push("max_routes");
    }
    if old.hold_time != new.hold_time {
        what.push("hold_time");
    }
    if old.port != new.port {
        what.push("port");
    }
    if old.password != new.password {
        what.push("password");
    }
    if old.ttl_security != new.ttl_security {
        what.push("ttl_security");
    }
    if old.limits != new.limits {
        what.push("attribute limits");
    }
    what
}

impl Instance {
    /// A new instance and the effects that start its peers.
    pub fn new(spec: InstanceSpec) -> (Self, Vec<Effect>) {
        let rib = Rib::new(RibConfig {
            asn: spec.asn,
            local_address: spec.address,
            branch_to_branch: spec.branch_to_branch,
            originated: spec.originated.clone(),
        });
        let rib6 = Rib::new(RibConfig {
            asn: spec.asn,
            local_address: spec.next_hop6(),
            branch_to_branch: spec.branch_to_branch,
            originated: spec.originated6.clone(),
        });
        let mut me = Self {
            spec: InstanceSpec {
                peers: Vec::new(),
                ..spec.clone()
            },
            rib,
            rib6,
            peers: BTreeMap::new(),
            encode_buf: Vec::new(),
            listener_gtsm: false,
        };
        let mut fx = Vec::new();
        for p in spec.peers {
            me.add_peer(p, &mut fx);
        }
        me.update_listener_gtsm(&mut fx);
        (me, fx)
    }

    pub fn spec(&self) -> &InstanceSpec {
        &self.spec
    }

    pub fn rib(&self) -> &Rib {
        &self.rib
    }

    /// The IPv6 unicast RIB (same peer ids as [`Instance::rib`]).
    pub fn rib6(&self) -> &Rib<V6> {
        &self.rib6
    }

    /// Routes held from peer `id` in both families (received = accepted + refused, accepted).
    pub fn peer_counts(&self, id: PeerId) -> (u32, u32) {
        let (r4, a4) = self.rib.peer_counts(id);
        let (r6, a6) = self.rib6.peer_counts(id);
        (r4 + r6, a4 + a6)
    }

    /// The peers, in the order they were configured.
    pub fn peers(&self) -> impl Iterator<Item = &PeerSlot> {
        self.peers.values()
    }

    pub fn peer(&self, id: PeerId) -> Option<&PeerSlot> {
        self.peers.get(&id)
    }

    /// The OPEN our sessions with peer `id` send (for BMP's Peer Up).
    pub fn open_sent(&self, id: PeerId) -> Option<bgp::wire::Open> {
        self.peers
            .get(&id)
            .map(|s| self.peer_config(&s.spec).session.open())
    }

    pub fn find(&self, name: &str) -> Option<PeerId> {
        self.peers
            .values()
            .find(|s| s.spec.name == name)
            .map(|s| s.id)
    }

    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Effect> {
        let mut fx = Vec::new();
        match input {
            Input::Peer(id, ev) => self.peer_event(now, id, ev, &mut fx),
            Input::Reconfigure(spec) => self.reconfigure(*spec, &mut fx),
            Input::Shutdown => {
                let graceful = self.spec.graceful_restart.is_some();
                let ids: Vec<PeerId> = self.peers.keys().copied().collect();
                for id in ids {
                    let how = if graceful {
                        PeerCommand::Abandon
                    } else {
                        PeerCommand::Shutdown
                    };
                    self.remove_peer(id, how, &mut fx);
                }
            }
            Input::BfdDown { address, why } => {
                let Some(slot) = self
                    .peers
                    .values_mut()
                    .find(|s| s.spec.address == address && s.state == State::Established)
                else {
                    return fx;
                };
                let id = slot.id;
                let msg = format!("BFD session down ({why})");
                warn!(peer = %slot.spec.name, "{msg}: BGP session closed, routes withdrawn");
                slot.last_error = Some(msg);
                slot.state = State::Idle;
                slot.since = None;
                slot.stale_until = None;
                // Cease/BFD Down (RFC 9384); the path is likely gone, so the peer may never see
                // it. The session starts again at once: BGP comes back with the path.
                fx.push(Effect::Peer {
                    id,
                    command: PeerCommand::Reset {
                        notification: Notification::new(code::CEASE, cease::BFD_DOWN),
                        restart_after: Duration::from_secs(1),
                    },
                });
                self.all_down(id, &mut fx);
            }
            Input::Tick => {
                let due: Vec<PeerId> = self
                    .peers
                    .values()
                    .filter(|s| s.stale_until.is_some_and(|t| now >= t))
                    .map(|s| s.id)
                    .collect();
                for id in due {
                    self.sweep_stale(id, "its restart time ran out", &mut fx);
                }
            }
        }
        fx
    }

    /// Withdraws a restarting peer's stale paths (graceful restart), saying `why`.
    fn sweep_stale(&mut self, id: PeerId, why: &str, fx: &mut Vec<Effect>) {
        let Some(slot) = self.peers.get_mut(&id) else {
            return;
        };
        slot.stale_until = None;
        let n = self.rib.stale_count(id) + self.rib6.stale_count(id);
        if n > 0 {
            info!(peer = %slot.spec.name, stale = n, "graceful restart over ({why}); withdrawing the paths it did not send again");
        }
        let ex = self.rib.sweep_stale(id);
        self.export(ex, fx);
        let ex = self.rib6.sweep_stale(id);
        self.export(ex, fx);
    }

    /// Withdraws one family's stale paths of a restarting peer.
    fn sweep_family(&mut self, id: PeerId, afi: Afi, fx: &mut Vec<Effect>) {
        if afi == Afi::IPV6 {
            let ex = self.rib6.sweep_stale(id);
            self.export(ex, fx);
        } else {
            let ex = self.rib.sweep_stale(id);
            self.export(ex, fx);
        }
    }

    /// A restarting peer's End-of-RIB for one family: that family's stale paths go; the
    /// restart is over when no family has any left.
    fn end_of_rib(&mut self, id: PeerId, afi: Afi, fx: &mut Vec<Effect>) {
        self.sweep_family(id, afi, fx);
        if self.rib.stale_count(id) + self.rib6.stale_count(id) == 0 {
            if let Some(slot) = self.peers.get_mut(&id) {
                if slot.stale_until.take().is_some() {
                    info!(peer = %slot.spec.name, "graceful restart over (End-of-RIB received)");
                }
            }
        }
    }

    /// GTSM on the listener exactly when every peer uses it.
    fn update_listener_gtsm(&mut self, fx: &mut Vec<Effect>) {
        let want = !self.spec.peers.is_empty() && self.spec.peers.iter().all(|p| p.ttl_security);
        if want != self.listener_gtsm {
            self.listener_gtsm = want;
            fx.push(Effect::ListenerTtlSecurity(want));
        }
    }

    /// The session config of a peer: one place, so every setting of [`PeerSpec`] reaches it.
    fn peer_config(&self, p: &PeerSpec) -> PeerConfig {
        let mut s = SessionConfig::new(self.spec.asn, self.spec.address, p.asn);
        s.hold_time = p.hold_time;
        s.connect_retry = CONNECT_RETRY;
        // Both families on every session (MP-BGP, RFC 4760): an IPv4 session may carry IPv6
        // routes and the other way round; each side uses what both offered.
        s.capabilities.insert(
            1,
            Capability::Multiprotocol {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
            },
        );
        let local = match p.address {
            IpAddr::V4(_) => IpAddr::V4(self.spec.address),
            // Config validation makes sure an IPv6 peer's instance has an IPv6 address.
            IpAddr::V6(_) => IpAddr::V6(self.spec.address6.unwrap_or(Ipv6Addr::UNSPECIFIED)),
        };
        let mut cfg = PeerConfig::new(p.name.clone(), s, local, p.address);
        if let Some(restart_time) = self.spec.graceful_restart {
            // F: the data plane (agents, muxes) keeps forwarding while this process restarts.
            // N (RFC 8538): a NOTIFICATION other than Cease/Hard Reset (an operator's `clear
            // bgp`) keeps the routes on both sides too.
            cfg.session.capabilities.push(Capability::GracefulRestart {
                restarted: false,
                notification: true,
                restart_time,
                families: [Afi::IPV4, Afi::IPV6]
                    .into_iter()
                    .map(|afi| GracefulRestartFamily {
                        afi,
                        safi: Safi::UNICAST,
                        forwarding_preserved: true,
                    })
                    .collect(),
            });
        }
        cfg.remote_port = p.port;
        cfg.password = p.password.clone();
        cfg.ttl_security = p.ttl_security;
        cfg
    }

    fn add_peer(&mut self, p: PeerSpec, fx: &mut Vec<Effect>) {
        let id = self.rib.add_peer(&p.name, p.address, p.asn, p.max_routes);
        self.rib.set_peer_limits(id, p.limits);
        let id6 = self.rib6.add_peer(&p.name, p.address, p.asn, p.max_routes);
        self.rib6.set_peer_limits(id6, p.limits);
        debug_assert_eq!(id, id6, "both RIBs number peers alike");
        fx.push(Effect::StartPeer {
            id,
            config: self.peer_config(&p),
        });
        fx.push(Effect::Accept {
            id,
            remote: p.address,
            md5: p.password.clone().map(Key),
        });
        info!(peer = %p.name, address = %p.address, asn = p.asn, md5 = p.password.is_some(), "peer configured");
        self.spec.peers.push(p.clone());
        self.peers.insert(
            id,
            PeerSlot {
                spec: p,
                id,
                state: State::Idle,
                since: None,
                ctx: SessionContext::default(),
                last_error: None,
                updates_in: 0,
                updates_out: 0,
                routes_too_large: 0,
                limit_hit: false,
                peer_restart_time: None,
                peer_gr_families: Vec::new(),
                graceful_notification: false,
                peer_open: None,
                families: Vec::new(),
                stale_until: None,
            },
        );
    }

    /// Takes a peer down for good: `how` is Deconfigure (reload) or Shutdown (process exit).
    fn remove_peer(&mut self, id: PeerId, how: PeerCommand, fx: &mut Vec<Effect>) {
        let Some(slot) = self.peers.remove(&id) else {
            return;
        };
        info!(peer = %slot.spec.name, "peer removed");
        self.spec.peers.retain(|p| p.name != slot.spec.name);
        fx.push(Effect::StopAccepting {
            remote: slot.spec.address,
        });
        fx.push(Effect::Peer { id, command: how });
        let ex = self.rib.remove_peer(id);
        self.export(ex, fx);
        let ex = self.rib6.remove_peer(id);
        self.export(ex, fx);
    }

    fn peer_event(&mut self, now: Instant, id: PeerId, ev: PeerEvent, fx: &mut Vec<Effect>) {
        let Some(slot) = self.peers.get_mut(&id) else {
            // A removed peer's last words: its id is never reused, so they are dropped.
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
                slot.since = Some(now);
                slot.ctx = negotiated.context();
                slot.last_error = None;
                slot.limit_hit = false;
                let gr = peer_graceful_restart(&negotiated.peer_open);
                slot.peer_open = Some(negotiated.peer_open.clone());
                slot.families = negotiated.families.clone();
                slot.peer_restart_time = gr.as_ref().map(|(t, _)| *t);
                let gr_families = gr.as_ref().map(|(_, f)| f.clone()).unwrap_or_default();
                slot.peer_gr_families = gr_families.clone();
                slot.graceful_notification = self.spec.graceful_restart.is_some()
                    && bgp::wire::open::graceful_notification(&negotiated.peer_open.capabilities);
                info!(peer = %slot.spec.name, "established; sending our routes");
                if slot.stale_until.is_some() {
                    // Back within its restart time: per family, with its forwarding state kept
                    // (and the family on the new session) its stale paths wait for its
                    // End-of-RIB; any other family's go now.
                    slot.stale_until = Some(now + STALE_PATH_TIME);
                    let name = slot.spec.name.clone();
                    for afi in [Afi::IPV4, Afi::IPV6] {
                        let kept = gr_families.contains(&(afi, true))
                            && negotiated.families.contains(&(afi, Safi::UNICAST));
                        if !kept {
                            self.sweep_family(id, afi, fx);
                        }
                    }
                    let stale = self.rib.stale_count(id) + self.rib6.stale_count(id);
                    if stale > 0 {
                        info!(peer = %name, stale, "restarted peer back; its stale paths stay until its End-of-RIB");
                    } else if let Some(slot) = self.peers.get_mut(&id) {
                        slot.stale_until = None;
                    }
                }
                let families = negotiated.families.clone();
                let has = |afi: Afi| families.contains(&(afi, Safi::UNICAST));
                if has(Afi::IPV4) {
                    let ex = self.rib.peer_up(id, negotiated.peer_id);
                    self.export(ex, fx);
                }
                if has(Afi::IPV6) {
                    let ex = self.rib6.peer_up(id, negotiated.peer_id);
                    self.export(ex, fx);
                }
                if gr.is_some() && self.spec.graceful_restart.is_some() {
                    // Everything it should hold from us went out above.
                    for afi in [Afi::IPV4, Afi::IPV6].into_iter().filter(|a| has(*a)) {
                        fx.push(Effect::Peer {
                            id,
                            command: PeerCommand::SendUpdate(UpdateMessage::end_of_rib_for(
                                afi,
                                Safi::UNICAST,
                            )),
                        });
                    }
                }
            }
            PeerEvent::Update {
                update,
                treat_as_withdraw,
                discarded,
            } => {
                slot.updates_in += 1;
                // An UPDATE that lost an attribute on the way in (an MP attribute of a family
                // this codec does not carry, say) is not an End-of-RIB, even if it is empty now.
                if let Some((afi, safi)) = update
                    .end_of_rib_family()
                    .filter(|_| treat_as_withdraw.is_none() && discarded.is_empty())
                {
                    let unicast = safi == Safi::UNICAST && (afi == Afi::IPV4 || afi == Afi::IPV6);
                    if slot.stale_until.is_some() && unicast {
                        self.end_of_rib(id, afi, fx);
                    }
                    return;
                }
                // RFC 4760 §7: routes of a family the session did not negotiate are ignored
                // (and said so), never taken into that family's RIB.
                let v4 = slot.families.contains(&(Afi::IPV4, Safi::UNICAST));
                let v6 = slot.families.contains(&(Afi::IPV6, Safi::UNICAST));
                if (!v4 && V4::part(&update).is_some()) || (!v6 && V6::part(&update).is_some()) {
                    slot.last_error = Some(
                        "routes of an address family not negotiated on this session ignored".into(),
                    );
                }
                if let Some(e) = treat_as_withdraw {
                    slot.last_error = Some(format!(
                        "malformed UPDATE treated as withdraw (RFC 7606): {e}"
                    ));
                }
                if let Some(first) = discarded.first() {
                    slot.last_error = Some(format!("attribute discarded (RFC 7606): {first}"));
                }
                let held6 = self.rib6.peer_counts(id).0;
                let applied = match v4 {
                    true => self.rib.apply_update_counted(id, &update, held6),
                    false => Ok(Export::default()),
                }
                .map(|ex| self.export(ex, fx))
                .and_then(|()| {
                    let held4 = self.rib.peer_counts(id).0;
                    match v6 {
                        true => self.rib6.apply_update_counted(id, &update, held4),
                        false => Ok(Export::default()),
                    }
                })
                .map(|ex| self.export(ex, fx));
                let Some(slot) = self.peers.get_mut(&id) else {
                    return;
                };
                match applied {
                    Ok(()) => {}
                    Err(lim) => {
                        let msg = format!(
                            "maximum number of prefixes reached: {} held + {} incoming > {}",
                            lim.held, lim.incoming, lim.limit
                        );
                        warn!(peer = %slot.spec.name, "{msg}; closing with Cease/1, reconnect allowed after {LIMIT_HOLD_DOWN:?}");
                        slot.last_error = Some(msg);
                        slot.limit_hit = true;
                        slot.state = State::Idle;
                        slot.since = None;
                        // RFC 4486 §4: AFI, SAFI and the upper bound.
                        let mut data = lim.afi.0.to_be_bytes().to_vec();
                        data.push(Safi::UNICAST.0);
                        data.extend_from_slice(&lim.limit.to_be_bytes());
                        fx.push(Effect::Peer {
                            id,
                            command: PeerCommand::Reset {
                                notification: Notification::with_data(
                                    code::CEASE,
                                    cease::MAXIMUM_NUMBER_OF_PREFIXES_REACHED,
                                    data,
                                ),
                                restart_after: LIMIT_HOLD_DOWN,
                            },
                        });
                        self.all_down(id, fx);
                    }
                }
            }
            PeerEvent::RouteRefresh(rr) => {
                // Only for a family of the session (RFC 2918 §4: ignore the others).
                if !slot.families.contains(&(rr.afi, rr.safi)) {
                    warn!(peer = %slot.spec.name, afi = rr.afi.0, safi = rr.safi.0, "ROUTE-REFRESH for a family not negotiated; ignored");
                    return;
                }
                if rr.afi == Afi::IPV6 {
                    let ex = self.rib6.full_export(id);
                    self.export(ex, fx);
                } else {
                    let ex = self.rib.full_export(id);
                    self.export(ex, fx);
                }
            }
            PeerEvent::Down { reason } => {
                slot.state = State::Idle;
                slot.since = None;
                if !slot.limit_hit {
                    slot.last_error = Some(reason.to_string());
                }
                // Graceful restart, helper side (RFC 4724 §4.2): the peer offered it and the
                // session ended without a NOTIFICATION (the TCP connection, or the peer went
                // silent); with the N bit on both sides (RFC 8538), also after one that is not
                // Cease/Hard Reset (an operator's `clear bgp`, an error).
                let restarting = match &reason {
                    DownReason::ConnectionFailed | DownReason::HoldTimerExpired => true,
                    DownReason::PeerNotification(n) | DownReason::LocalError(n) => {
                        slot.graceful_notification && !n.is_hard_reset()
                    }
                    _ => false,
                } && !slot.limit_hit
                    && self.spec.graceful_restart.is_some();
                match slot.peer_restart_time.filter(|t| restarting && *t > 0) {
                    Some(t) => {
                        let until = now + Duration::from_secs(u64::from(t));
                        // A second failure while restarting keeps the first deadline.
                        slot.stale_until = Some(slot.stale_until.map_or(until, |u| u.min(until)));
                        // Only the families its capability listed keep their routes (RFC 4724
                        // §4.2); the others' are withdrawn now.
                        let listed =
                            |afi: Afi| slot.peer_gr_families.iter().any(|(a, _)| *a == afi);
                        let (keep4, keep6) = (listed(Afi::IPV4), listed(Afi::IPV6));
                        info!(peer = %slot.spec.name, %reason, restart_time = t, "session down, peer restarting (graceful restart): the routes of the families it listed stay, stale");
                        if keep4 {
                            self.rib.peer_down_stale(id);
                        } else {
                            let ex = self.rib.peer_down(id);
                            self.export(ex, fx);
                        }
                        if keep6 {
                            self.rib6.peer_down_stale(id);
                        } else {
                            let ex = self.rib6.peer_down(id);
                            self.export(ex, fx);
                        }
                    }
                    None => {
                        info!(peer = %slot.spec.name, %reason, "session down; withdrawing its routes");
                        slot.stale_until = None;
                        self.all_down(id, fx);
                    }
                }
            }
        }
    }

    /// The forwarding next hops of `prefixes` of one family, as the fabric takes them.
    fn fabric_routes<'a, F: Family>(
        rib: &Rib<F>,
        prefixes: impl Iterator<Item = &'a F::Prefix>,
    ) -> Vec<(fabric::Prefix, Vec<IpAddr>)>
    where
        F::Prefix: Into<fabric::Prefix>,
        F::Addr: Into<IpAddr>,
    {
        prefixes
            .map(|p| {
                let nhs = rib.forwarding_next_hops(p).into_iter().map(Into::into);
                ((*p).into(), nhs.collect())
            })
            .collect()
    }

    /// The whole Loc-RIB of both families as one batch that replaces what the fabric had from
    /// this instance (`reset`), or an empty reset (the fabric forgets this instance).
    fn feed_fabric_all(&self, on: bool, fx: &mut Vec<Effect>) {
        let mut routes = Vec::new();
        if on {
            routes = Self::fabric_routes(&self.rib, self.rib.prefixes());
            routes.extend(Self::fabric_routes(&self.rib6, self.rib6.prefixes()));
        }
        fx.push(Effect::Fabric {
            reset: true,
            routes,
        });
    }

    /// The session with `id` is down for good: its routes of both families are withdrawn.
    fn all_down(&mut self, id: PeerId, fx: &mut Vec<Effect>) {
        let ex = self.rib.peer_down(id);
        self.export(ex, fx);
        let ex = self.rib6.peer_down(id);
        self.export(ex, fx);
    }

    fn export<F: FabricFeed>(&mut self, ex: Export<F>, fx: &mut Vec<Effect>) {
        if self.spec.feed_fabric && !ex.changed.is_empty() {
            let routes = F::fabric_routes(self, &ex.changed);
            fx.push(Effect::Fabric {
                reset: false,
                routes,
            });
        }
        // Each group of peers sent the same thing is encoded once per session context, and
        // its peers share the bytes.
        for (members, out) in ex.groups() {
            let mut encoded: Vec<(SessionContext, Arc<[u8]>, routeserver::Encoded)> = Vec::new();
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
                slot.updates_out += n.messages as u64;
                slot.routes_too_large += n.too_large as u64;
                fx.push(Effect::Peer {
                    id: q,
                    command: PeerCommand::Send(bytes),
                });
            }
        }
    }

    fn reconfigure(&mut self, spec: InstanceSpec, fx: &mut Vec<Effect>) {
        let changes = diff(&self.spec, &spec);
        if changes.is_empty() {
            return;
        }
        info!(%changes, "reconfiguring");
        // Sessions that restart go first, so no peer is ever sent routes computed under both
        // the old and the new settings.
        let restart: Vec<String> = match &changes.sessions_reset {
            Some(_) => self.spec.peers.iter().map(|p| p.name.clone()).collect(),
            None => changes
                .removed
                .iter()
                .chain(changes.changed.iter().map(|(n, _)| n))
                .cloned()
                .collect(),
        };
        for name in &restart {
            if let Some(id) = self.find(name) {
                self.remove_peer(id, PeerCommand::Deconfigure, fx);
            }
        }
        if self.spec.asn != spec.asn {
            self.rib.set_asn(spec.asn);
            self.rib6.set_asn(spec.asn);
        }
        if self.spec.address6 != spec.address6 {
            // Every session was restarted above (diff): IPv6 peers now run from the new address,
            // and the IPv6 space goes out with it as the next hop.
            self.spec.address6 = spec.address6;
            self.rib6.set_local_address(self.spec.next_hop6());
            // The driver listens on a new IPv6 socket: GTSM goes on it again if wanted.
            self.listener_gtsm = false;
        }
        self.spec.asn = spec.asn;
        if self.spec.port != spec.port {
            // The driver listens on a new socket: it starts without GTSM.
            self.listener_gtsm = false;
        }
        self.spec.port = spec.port;
        if changes.export_changed {
            // The advertised set changed: rebuild the RIB's export rules and, as the reference
            // does, ask every peer to refresh so both sides are in sync.
            warn!(
                "address space or branch_to_branch changed: sessions keep running, routes re-sent"
            );
            self.spec.originated = spec.originated.clone();
            self.spec.branch_to_branch = spec.branch_to_branch;
            self.spec.originated6 = spec.originated6.clone();
            let ex = self
                .rib
                .set_export_config(spec.originated.clone(), spec.branch_to_branch);
            self.export(ex, fx);
            let ex = self
                .rib6
                .set_export_config(spec.originated6.clone(), spec.branch_to_branch);
            self.export(ex, fx);
            for s in self.peers.values() {
                if s.state == State::Established {
                    for (afi, safi) in &s.families {
                        fx.push(Effect::Peer {
                            id: s.id,
                            command: PeerCommand::SendRouteRefresh(RouteRefresh {
                                afi: *afi,
                                safi: *safi,
                                ..RouteRefresh::ipv4_unicast()
                            }),
                        });
                    }
                }
            }
        }
        if changes.fabric_feed_changed {
            // The fabric starts or stops programming BGP routes: it gets the whole Loc-RIB, or
            // forgets this instance's routes.
            self.spec.feed_fabric = spec.feed_fabric;
            self.feed_fabric_all(spec.feed_fabric, fx);
        }
        // Added and restarted peers, in the new spec's order.
        for p in spec.peers {
            if self.find(&p.name).is_none() {
                self.add_peer(p, fx);
            }
        }
        self.update_listener_gtsm(fx);
        if self.spec.address != spec.address {
            // The daemon starts a new instance for a new address (it needs its own listener);
            // here the sessions were restarted from the old one, which stays.
            error!(old = %self.spec.address, new = %spec.address, "an instance cannot move to another address; keeping the old one");
        }
    }
}

/// A family's Loc-RIB changes as the fabric takes them (both families, one prefix type).
trait FabricFeed: Family {
    fn fabric_routes(
        owner: &Instance,
        changed: &[Self::Prefix],
    ) -> Vec<(fabric::Prefix, Vec<IpAddr>)>;
}

impl FabricFeed for V4 {
    fn fabric_routes(
        owner: &Instance,
        changed: &[Ipv4Prefix],
    ) -> Vec<(fabric::Prefix, Vec<IpAddr>)> {
        Instance::fabric_routes(&owner.rib, changed.iter())
    }
}

impl FabricFeed for V6 {
    fn fabric_routes(
        owner: &Instance,
        changed: &[Ipv6Prefix],
    ) -> Vec<(fabric::Prefix, Vec<IpAddr>)> {
        Instance::fabric_routes(&owner.rib6, changed.iter())
    }
}

impl InstanceSpec {
    /// The next hop of the IPv6 routes this instance originates: its IPv6 address, else its
    /// IPv4 address mapped into IPv6 (what MP-BGP speakers use over an IPv4 session).
    pub fn next_hop6(&self) -> Ipv6Addr {
        self.address6
            .unwrap_or_else(|| self.address.to_ipv6_mapped())
    }
}

/// The graceful restart capability of an OPEN: (restart time, the unicast families it lists
/// with their forwarding-state bit).
fn peer_graceful_restart(open: &bgp::wire::Open) -> Option<(u16, Vec<(Afi, bool)>)> {
    open.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart {
            restart_time,
            families,
            ..
        } => Some((
            *restart_time,
            families
                .iter()
                .filter(|f| f.safi == Safi::UNICAST && (f.afi == Afi::IPV4 || f.afi == Afi::IPV6))
                .map(|f| (f.afi, f.forwarding_preserved))
                .collect(),
        )),
        _ => None,
    })
}
