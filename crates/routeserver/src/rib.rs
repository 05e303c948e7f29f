//! One route server instance's RIB: peers, Adj-RIB-In, Loc-RIB and export (SPEC §3).
//!
//! Storage: the Loc-RIB maps each prefix to an [`Entry`] holding every accepted path for it,
//! at most one per peer, best first. That list *is* the Adj-RIB-In of every peer for that prefix
//! (RFC 4271 §3.2 allows any storage that behaves the same); a peer's Adj-RIB-In is read back
//! with [`Rib::learned_from`]. Routes refused by policy are kept per peer with the reason, so the
//! operator can see them. Nothing is stored per peer on the way out: what a peer is sent follows
//! from the Loc-RIB, the originated prefixes and the export rules, and is recomputed when a best
//! path changes.
//!
//! Export rules (SPEC §3):
//! - every peer gets the virtual network's address space with NEXT_HOP = this instance's
//!   address, AS_PATH = our ASN, ORIGIN IGP;
//! - learned routes go to the other peers only with `branch_to_branch`: our ASN prepended,
//!   NEXT_HOP unchanged (third-party next hop), MED and iBGP-only attributes removed, unknown
//!   optional transitive attributes passed on with the Partial bit; never to a peer whose AS is
//!   already in the path, never routes with NO_ADVERTISE or NO_EXPORT.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bgp::wire::attrs::community;
use bgp::wire::{AsPath, Origin, PathAttributes, SessionContext, UpdateMessage, HEADER_LEN};

use crate::decision::{decide, Candidate};
use crate::family::{Family, V4};
use crate::intern::Interner;
use shardmap::ShardedMap;

/// Index of a peer in its [`Rib`]; stable while the peer is configured.
pub type PeerId = usize;

/// What the RIB of one instance is told by configuration.
#[derive(Clone, Debug)]
pub struct RibConfig<F: Family = V4> {
    pub asn: u32,
    /// The instance's own address in the family: the next hop of the routes it originates.
    pub local_address: F::Addr,
    pub branch_to_branch: bool,
    /// The virtual network's address space in the family, advertised to every peer.
    pub originated: Vec<F::Prefix>,
}

/// A configured peer and what is known of it.
#[derive(Debug)]
struct Peer<F: Family> {
    name: String,
    address: IpAddr,
    asn: u32,
    max_routes: u32,
    limits: PathLimits,
    /// Established: routes are exchanged.
    up: bool,
    router_id: Ipv4Addr,
    /// Accepted paths held in the Loc-RIB entries.
    accepted: u32,
    /// Paths refused by policy, with the reason.
    rejected: HashMap<F::Prefix, Rejected>,
    /// Graceful restart (RFC 4724): prefixes whose path from this peer is kept from a session
    /// that went down, not yet sent again. Empty unless the peer is restarting.
    stale: std::collections::HashSet<F::Prefix>,
}

#[derive(Debug, Clone)]
struct Rejected {
    attrs: Arc<PathAttributes>,
    reason: String,
}

#[derive(Debug, Clone)]
struct Path {
    /// A [`PeerId`], in 4 octets: with the attribute set, a path is 16.
    peer: u32,
    attrs: Arc<PathAttributes>,
}

impl Path {
    fn new(peer: PeerId, attrs: Arc<PathAttributes>) -> Self {
        let peer = u32::try_from(peer).unwrap_or(u32::MAX);
        Self { peer, attrs }
    }
    fn peer(&self) -> PeerId {
        self.peer as PeerId
    }
}

/// Every accepted path for one prefix, best first. Most prefixes have one path: it is held
/// inline, so such a prefix costs its map slot (24 octets) and nothing on the heap.
#[derive(Debug)]
enum Entry {
    One(Path),
    Many(Box<Paths>),
}

/// Two or more paths.
#[derive(Debug)]
struct Paths {
    paths: Vec<Path>,
    /// How many of `paths` (from the front) form the ECMP set.
    multipath: u16,
}

impl Entry {
    fn paths(&self) -> &[Path] {
        match self {
            Entry::One(p) => std::slice::from_ref(p),
            Entry::Many(m) => &m.paths,
        }
    }
    fn paths_mut(&mut self) -> &mut [Path] {
        match self {
            Entry::One(p) => std::slice::from_mut(p),
            Entry::Many(m) => &mut m.paths,
        }
    }
    fn multipath(&self) -> u16 {
        match self {
            Entry::One(_) => 1,
            Entry::Many(m) => m.multipath,
        }
    }
    fn push(&mut self, p: Path) {
        match self {
            Entry::Many(m) => m.paths.push(p),
            Entry::One(first) => {
                let paths = vec![first.clone(), p];
                *self = Entry::Many(Box::new(Paths {
                    paths,
                    multipath: 1,
                }));
            }
        }
    }
    /// Removes the path at `i` of a Many entry (the order changes: the caller re-decides),
    /// back to One when one is left.
    fn swap_remove(&mut self, i: usize) -> Option<Path> {
        let Entry::Many(m) = self else { return None };
        let old = m.paths.swap_remove(i);
        if m.paths.len() == 1 {
            if let Some(last) = m.paths.pop() {
                *self = Entry::One(last);
            }
        }
        Some(old)
    }
}

/// A peer sent more routes than it may (SPEC §3: held + incoming > limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    pub held: u32,
    pub incoming: u32,
    pub limit: u32,
    /// The family of the UPDATE that went over (the NOTIFICATION names it, RFC 4486 §4).
    pub afi: bgp::wire::Afi,
}

/// Whether a learned route is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteState {
    /// In the Loc-RIB; `best` when it is the path exported, `multipath` when it is in the ECMP set.
    Accepted { best: bool, multipath: bool },
    /// Refused by policy, with why.
    Rejected(String),
}

/// One route of a peer's Adj-RIB-In.
#[derive(Debug, Clone)]
pub struct LearnedRoute<F: Family = V4> {
    pub prefix: F::Prefix,
    pub attrs: Arc<PathAttributes>,
    pub state: RouteState,
}

/// What [`PeerOut::encode`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Encoded {
    /// UPDATE messages appended.
    pub messages: usize,
    /// Prefixes not announced because their path does not fit one message of the session
    /// (withdrawn from the peer instead).
    pub too_large: usize,
}

/// What to send one peer.
#[derive(Debug, Clone)]
pub struct PeerOut<F: Family = V4> {
    pub withdraw: Vec<F::Prefix>,
    /// Prefixes grouped by the attribute set they are announced with.
    pub announce: Vec<(Arc<PathAttributes>, Vec<F::Prefix>)>,
}

impl<F: Family> Default for PeerOut<F> {
    fn default() -> Self {
        Self {
            withdraw: Vec::new(),
            announce: Vec::new(),
        }
    }
}

impl<F: Family> PeerOut<F> {
    pub fn is_empty(&self) -> bool {
        self.withdraw.is_empty() && self.announce.is_empty()
    }
    fn add(&mut self, attrs: &Arc<PathAttributes>, p: F::Prefix) {
        // Few groups per batch: a linear scan by identity beats hashing attribute sets.
        match self
            .announce
            .iter_mut()
            .rev()
            .find(|(a, _)| Arc::ptr_eq(a, attrs))
        {
            Some((_, v)) => v.push(p),
            None => self.announce.push((attrs.clone(), vec![p])),
        }
    }
    /// Encodes as packed UPDATE messages for a session with `ctx`: withdrawals first, then each
    /// attribute set once with as many prefixes behind it as fit.
    /// Appends the messages for a session with context `ctx`.
    pub fn encode(&self, ctx: &SessionContext, out: &mut Vec<u8>) -> Encoded {
        let max = ctx.max_message_len();
        let mut n = F::pack_withdrawals(&self.withdraw, max, out);
        let mut attrs = Vec::with_capacity(128);
        let mut too_large: Vec<F::Prefix> = Vec::new();
        for (a, prefixes) in &self.announce {
            attrs.clear();
            F::encoded_part(a).emit(ctx, &mut attrs);
            // Header, withdrawn length, attribute length, the attributes and one host route: a
            // path that does not fit one message of this session is not sent (RFC 4271 §9.2:
            // an UPDATE is never longer than the peer accepts), and the peer is told to drop
            // what it had for those prefixes instead.
            let room = HEADER_LEN + 2 + 2 + attrs.len() + F::announce_overhead(a);
            if room + F::HOST_ROUTE_OCTETS > max {
                too_large.extend(prefixes.iter().copied());
                continue;
            }
            n += F::pack(a, &attrs, prefixes, max, out);
        }
        if !too_large.is_empty() {
            n += F::pack_withdrawals(&too_large, max, out);
        }
        Encoded {
            messages: n,
            too_large: too_large.len(),
        }
    }
    /// The same, decoded back into messages (tests, logs).
    pub fn to_messages(&self) -> Vec<UpdateMessage> {
        let ctx = SessionContext {
            extended_message: true,
            ..SessionContext::default()
        };
        let mut buf = Vec::new();
        self.encode(&ctx, &mut buf);
        let mut msgs = Vec::new();
        let mut at = 0;
        while at < buf.len() {
            match bgp::wire::Message::decode(&buf[at..], &ctx) {
                Ok((bgp::wire::Message::Update(u), n)) => {
                    msgs.push(u);
                    at += n;
                }
                _ => break,
            }
        }
        msgs
    }
}

/// The result of a change: what each peer must be sent, and which Loc-RIB prefixes changed.
///
/// A route server sends most of its peers the same thing (all but the source of a route), so
/// peers are kept in groups that are sent exactly the same [`PeerOut`]: a group is split only
/// when its peers are told different things (BIRD's buckets, FRR's update-groups, per batch).
/// The caller encodes each group once per session context.
#[derive(Debug)]
pub struct Export<F: Family = V4> {
    /// What each group is sent.
    outs: Vec<PeerOut<F>>,
    /// Per group: how many peers are in it.
    members: Vec<u32>,
    /// Per peer id: its group in `outs` (NO_GROUP: nothing to send).
    group_of: Vec<u32>,
    /// Prefixes whose best path or ECMP set changed (for the fabric).
    pub changed: Vec<F::Prefix>,
    /// Exported attribute sets made during this batch, by the address of their source set, so
    /// that all prefixes of one UPDATE share one exported set (and one packed message).
    cache: ExportCache,
    /// Established peers, computed once per batch.
    up: Option<Vec<PeerId>>,
    /// Scratch space of [`Export::apply`], kept for the next prefix of the batch.
    ops: Vec<(PeerId, Op)>,
    moves: Vec<Move>,
    pick: Vec<usize>,
}

/// (group before, op, how many peers go with it, group after).
type Move = (u32, Op, u32, u32);

const NO_GROUP: u32 = u32::MAX;

/// What one prefix change does to a peer's export.
#[derive(Debug, Clone)]
enum Op {
    Keep,
    Withdraw,
    Announce(Arc<PathAttributes>),
}

impl Op {
    fn same(&self, o: &Op) -> bool {
        match (self, o) {
            (Op::Keep, Op::Keep) | (Op::Withdraw, Op::Withdraw) => true,
            (Op::Announce(a), Op::Announce(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
    fn apply<F: Family>(&self, out: &mut PeerOut<F>, prefix: F::Prefix) {
        match self {
            Op::Keep => {}
            Op::Withdraw => out.withdraw.push(prefix),
            Op::Announce(a) => out.add(a, prefix),
        }
    }
}

/// (source set, exported set). Holding the source keeps its address from being reused by a new
/// set within the batch; the interner's sweep collects sets this kept alive past their release.
type ExportCache = Vec<(Arc<PathAttributes>, Arc<PathAttributes>)>;

impl<F: Family> Default for Export<F> {
    fn default() -> Self {
        Self {
            outs: Vec::new(),
            members: Vec::new(),
            group_of: Vec::new(),
            changed: Vec::new(),
            cache: Vec::new(),
            up: None,
            ops: Vec::new(),
            moves: Vec::new(),
            pick: Vec::new(),
        }
    }
}

impl<F: Family> Export<F> {
    fn group(&self, q: PeerId) -> u32 {
        self.group_of.get(q).copied().unwrap_or(NO_GROUP)
    }

    fn set_group(&mut self, q: PeerId, g: u32) {
        if self.group_of.len() <= q {
            self.group_of.resize(q + 1, NO_GROUP);
        }
        let old = std::mem::replace(&mut self.group_of[q], g);
        if old != NO_GROUP {
            self.members[old as usize] -= 1;
        }
        if g != NO_GROUP {
            self.members[g as usize] += 1;
        }
    }

    /// A new group holding a copy of `from`'s output (empty for NO_GROUP), with no peers yet.
    fn new_group(&mut self, from: u32) -> u32 {
        let out = match from {
            NO_GROUP => PeerOut::default(),
            g => self.outs[g as usize].clone(),
        };
        self.outs.push(out);
        self.members.push(0);
        (self.outs.len() - 1) as u32
    }

    /// What `q` alone is sent, to change it: `q` leaves a group it shares.
    fn out(&mut self, q: PeerId) -> &mut PeerOut<F> {
        let g = self.group(q);
        if g == NO_GROUP || self.members[g as usize] > 1 {
            let n = self.new_group(g);
            self.set_group(q, n);
        }
        let g = self.group(q);
        &mut self.outs[g as usize]
    }

    /// Applies one prefix change to every peer in `ops` (peer, op): peers of one group told
    /// different things end up in different groups.
    fn apply(&mut self, prefix: F::Prefix, ops: &[(PeerId, Op)]) {
        let mut moves = std::mem::take(&mut self.moves);
        let mut pick = std::mem::take(&mut self.pick);
        moves.clear();
        pick.clear();
        for (q, op) in ops {
            let g = self.group(*q);
            let i = match moves.iter().position(|(o, p, _, _)| *o == g && p.same(op)) {
                Some(i) => i,
                None => {
                    moves.push((g, op.clone(), 0, g));
                    moves.len() - 1
                }
            };
            moves[i].2 += 1;
            pick.push(i);
        }
        for m in &mut moves {
            let (from, ref op, count, _) = *m;
            if matches!(op, Op::Keep) {
                continue;
            }
            // All of a group told the same: change it in place; else a copy for those told so.
            let to = if from != NO_GROUP && count == self.members[from as usize] {
                from
            } else {
                self.new_group(from)
            };
            op.apply(&mut self.outs[to as usize], prefix);
            m.3 = to;
        }
        for ((q, _), &i) in ops.iter().zip(&pick) {
            let to = moves[i].3;
            if to != self.group(*q) {
                self.set_group(*q, to);
            }
        }
        self.moves = moves;
        self.pick = pick;
    }

    /// (peers, what each of them is sent) per group with something to send; peers by id.
    pub fn groups(&self) -> Vec<(Vec<PeerId>, &PeerOut<F>)> {
        let mut peers: Vec<Vec<PeerId>> = vec![Vec::new(); self.outs.len()];
        for (q, &g) in self.group_of.iter().enumerate() {
            if g != NO_GROUP {
                peers[g as usize].push(q);
            }
        }
        peers
            .into_iter()
            .zip(&self.outs)
            .filter(|(p, o)| !p.is_empty() && !o.is_empty())
            .collect()
    }

    /// (peer, what it is sent) for every peer sent something, by peer id.
    pub fn peers(&self) -> Vec<(PeerId, &PeerOut<F>)> {
        self.group_of
            .iter()
            .enumerate()
            .filter(|(_, &g)| g != NO_GROUP && !self.outs[g as usize].is_empty())
            .map(|(q, &g)| (q, &self.outs[g as usize]))
            .collect()
    }
}

/// The best path of a prefix before and after a change: (peer, attribute set).
type Best = Option<(PeerId, Arc<PathAttributes>)>;

/// The RIB of one route server instance.
#[derive(Debug)]
pub struct Rib<F: Family = V4> {
    cfg: RibConfig<F>,
    peers: Vec<Option<Peer<F>>>,
    loc: ShardedMap<F::Prefix, Entry>,
    interner: Interner,
    originated_attrs: Arc<PathAttributes>,
}

impl<F: Family> Rib<F> {
    pub fn new(cfg: RibConfig<F>) -> Self {
        let originated_attrs = originated_attrs::<F>(cfg.asn, cfg.local_address);
        Self {
            cfg,
            peers: Vec::new(),
            loc: ShardedMap::default(),
            interner: Interner::default(),
            originated_attrs,
        }
    }

    pub fn config(&self) -> &RibConfig<F> {
        &self.cfg
    }

    /// Changes the instance's own AS (a reload). The AS is in every OPEN and every exported
    /// AS_PATH, so the caller resets every session around it: it removes its peers first and adds
    /// them again after, and nothing learned under the old AS survives.
    pub fn set_asn(&mut self, asn: u32) {
        debug_assert!(
            self.peer_ids().next().is_none(),
            "set_asn with peers configured"
        );
        self.cfg.asn = asn;
        self.originated_attrs = originated_attrs::<F>(asn, self.cfg.local_address);
    }

    /// Changes the instance's own address in this family (a reload): the next hop of the
    /// originated prefixes. Like [`Rib::set_asn`], with the sessions reset around it.
    pub fn set_local_address(&mut self, addr: F::Addr) {
        self.cfg.local_address = addr;
        self.originated_attrs = originated_attrs::<F>(self.cfg.asn, addr);
    }

    pub fn add_peer(
        &mut self,
        name: &str,
        address: impl Into<IpAddr>,
        asn: u32,
        max_routes: u32,
    ) -> PeerId {
        let p = Peer {
            name: name.to_string(),
            address: address.into(),
            asn,
            max_routes,
            limits: PathLimits::default(),
            up: false,
            router_id: Ipv4Addr::UNSPECIFIED,
            accepted: 0,
            rejected: HashMap::new(),
            stale: Default::default(),
        };
        // Ids are never reused: events of a removed peer may still be in flight, and must not be
        // taken for a new peer's.
        self.peers.push(Some(p));
        self.peers.len() - 1
    }

    /// Sets the attribute limits of a peer's paths (before its session comes up).
    pub fn set_peer_limits(&mut self, id: PeerId, limits: PathLimits) {
        if let Some(Some(p)) = self.peers.get_mut(id) {
            p.limits = limits;
        }
    }

    /// Removes a peer (deconfigured); its routes are withdrawn from the others.
    pub fn remove_peer(&mut self, id: PeerId) -> Export<F> {
        let ex = self.peer_down(id);
        if let Some(slot) = self.peers.get_mut(id) {
            *slot = None;
        }
        ex
    }

    fn peer(&self, id: PeerId) -> Option<&Peer<F>> {
        self.peers.get(id).and_then(Option::as_ref)
    }

    pub fn peer_name(&self, id: PeerId) -> Option<&str> {
        self.peer(id).map(|p| p.name.as_str())
    }

    pub fn peer_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(i, _)| i)
    }

    /// (received = accepted + rejected, accepted) routes held from the peer.
    pub fn peer_counts(&self, id: PeerId) -> (u32, u32) {
        self.peer(id).map_or((0, 0), |p| {
            (p.accepted + p.rejected.len() as u32, p.accepted)
        })
    }

    /// The session came up: returns the full set to send it.
    pub fn peer_up(&mut self, id: PeerId, router_id: Ipv4Addr) -> Export<F> {
        if let Some(Some(p)) = self.peers.get_mut(id) {
            p.up = true;
            p.router_id = router_id;
        }
        self.full_export(id)
    }

    /// Everything `id` should hold from us, as one export (session up, or ROUTE-REFRESH).
    pub fn full_export(&self, id: PeerId) -> Export<F> {
        let mut ex = Export::default();
        let out = ex.out(id);
        for (p, a) in self.advertised_to(id) {
            out.add(&a, p);
        }
        ex
    }

    /// Graceful restart, helper side (RFC 4724 §4.2): the session went down and the peer is
    /// restarting. Its paths stay in the Loc-RIB, still used and advertised, marked stale; a
    /// path it sends again is fresh; [`Rib::sweep_stale`] withdraws those it did not (at its
    /// End-of-RIB, or when the restart time runs out). Nothing changes for the other peers.
    /// Returns how many paths are stale.
    pub fn peer_down_stale(&mut self, id: PeerId) -> usize {
        let Some(Some(p)) = self.peers.get_mut(id) else {
            return 0;
        };
        p.up = false;
        for (_, r) in std::mem::take(&mut p.rejected) {
            self.interner.release(r.attrs);
        }
        let held: Vec<F::Prefix> = self
            .loc
            .iter()
            .filter(|(_, e)| e.paths().iter().any(|x| x.peer() == id))
            .map(|(p, _)| *p)
            .collect();
        let Some(Some(p)) = self.peers.get_mut(id) else {
            return 0;
        };
        p.stale.extend(held);
        p.stale.len()
    }

    /// Withdraws the peer's stale paths (see [`Rib::peer_down_stale`]).
    pub fn sweep_stale(&mut self, id: PeerId) -> Export<F> {
        let mut ex = Export::default();
        let Some(Some(p)) = self.peers.get_mut(id) else {
            return ex;
        };
        for prefix in std::mem::take(&mut p.stale) {
            let before = self.best(&prefix);
            let before_mp = self.loc.get(&prefix).map_or(0, Entry::multipath);
            if self.remove_path(prefix, id) {
                self.finish_change(prefix, before, before_mp, &mut ex);
            }
        }
        ex
    }

    /// How many of the peer's paths are stale (graceful restart).
    pub fn stale_count(&self, id: PeerId) -> usize {
        self.peer(id).map_or(0, |p| p.stale.len())
    }

    /// A path from `id` for `prefix` was sent again (or withdrawn): it is no longer stale.
    fn refresh(&mut self, id: PeerId, prefix: &F::Prefix) {
        if let Some(Some(p)) = self.peers.get_mut(id) {
            if !p.stale.is_empty() {
                p.stale.remove(prefix);
            }
        }
    }

    /// The session went down: every route learned from it is withdrawn.
    pub fn peer_down(&mut self, id: PeerId) -> Export<F> {
        let mut ex = Export::default();
        let Some(Some(p)) = self.peers.get_mut(id) else {
            return ex;
        };
        p.stale = Default::default();
        let was_up = std::mem::replace(&mut p.up, false);
        let rejected = std::mem::take(&mut p.rejected);
        for (_, r) in rejected {
            self.interner.release(r.attrs);
        }
        if !was_up && self.peer(id).is_some_and(|p| p.accepted == 0) {
            return ex;
        }
        let prefixes: Vec<F::Prefix> = self
            .loc
            .iter()
            .filter(|(_, e)| e.paths().iter().any(|x| x.peer() == id))
            .map(|(p, _)| *p)
            .collect();
        for prefix in prefixes {
            let before = self.best(&prefix);
            let before_mp = self.loc.get(&prefix).map_or(0, Entry::multipath);
            self.remove_path(prefix, id);
            self.finish_change(prefix, before, before_mp, &mut ex);
        }
        ex
    }

    /// Applies this family's part of one UPDATE from `id`. Over the peer's route limit nothing
    /// is applied: the caller resets the session (Cease/1) and calls [`Rib::peer_down`].
    pub fn apply_update(
        &mut self,
        id: PeerId,
        u: &UpdateMessage,
    ) -> Result<Export<F>, LimitExceeded> {
        self.apply_update_counted(id, u, 0)
    }

    /// [`Rib::apply_update`] for a peer that also holds `held_elsewhere` routes of another
    /// family: the route limit counts them too.
    pub fn apply_update_counted(
        &mut self,
        id: PeerId,
        u: &UpdateMessage,
        held_elsewhere: u32,
    ) -> Result<Export<F>, LimitExceeded> {
        let mut ex = Export::default();
        let Some(part) = F::part(u) else {
            return Ok(ex);
        };
        let Some(peer) = self.peer(id) else {
            return Ok(ex);
        };
        let held = (peer.accepted + peer.rejected.len() as u32).saturating_add(held_elsewhere);
        let incoming = part.announced.len() as u32;
        if held.saturating_add(incoming) > peer.max_routes {
            return Err(LimitExceeded {
                held,
                incoming,
                limit: peer.max_routes,
                afi: F::AFI,
            });
        }
        let (peer_asn, own_asn, limits) = (peer.asn, self.cfg.asn, peer.limits);
        for p in part.withdrawn.iter() {
            self.withdraw_one(id, *p, &mut ex);
        }
        if part.announced.is_empty() {
            return Ok(ex);
        }
        // A path over the peer's attribute limits is treated as withdrawn (RFC 7606 style: the
        // session stays) and held without the oversized parts, so it costs no memory.
        let a: &PathAttributes = &part.attrs;
        let (verdict, attrs) = match limits.check(a) {
            Err(why) => (Err(why), self.interner.intern(limits.stripped(a))),
            Ok(()) => (
                match part.refused {
                    Some(why) => Err(why),
                    None => policy(a, peer_asn, own_asn),
                },
                self.interner.intern(part.attrs.into_owned()),
            ),
        };
        for p in part.announced.iter() {
            match &verdict {
                Ok(()) => self.announce_one(id, *p, &attrs, &mut ex),
                Err(reason) => {
                    self.withdraw_one(id, *p, &mut ex);
                    let r = Rejected {
                        attrs: attrs.clone(),
                        reason: reason.clone(),
                    };
                    if let Some(Some(peer)) = self.peers.get_mut(id) {
                        if let Some(old) = peer.rejected.insert(*p, r) {
                            self.interner.release(old.attrs);
                        }
                    }
                }
            }
        }
        self.interner.release(attrs);
        self.interner.maybe_sweep();
        Ok(ex)
    }

    fn best(&self, prefix: &F::Prefix) -> Best {
        let e = self.loc.get(prefix)?;
        e.paths().first().map(|p| (p.peer(), p.attrs.clone()))
    }

    fn withdraw_one(&mut self, id: PeerId, prefix: F::Prefix, ex: &mut Export<F>) {
        self.refresh(id, &prefix);
        if let Some(Some(peer)) = self.peers.get_mut(id) {
            if let Some(old) = peer.rejected.remove(&prefix) {
                self.interner.release(old.attrs);
            }
        }
        let before = self.best(&prefix);
        let before_mp = self.loc.get(&prefix).map_or(0, Entry::multipath);
        if self.remove_path(prefix, id) {
            self.finish_change(prefix, before, before_mp, ex);
        }
    }

    fn announce_one(
        &mut self,
        id: PeerId,
        prefix: F::Prefix,
        attrs: &Arc<PathAttributes>,
        ex: &mut Export<F>,
    ) {
        self.refresh(id, &prefix);
        if let Some(Some(peer)) = self.peers.get_mut(id) {
            if let Some(old) = peer.rejected.remove(&prefix) {
                self.interner.release(old.attrs);
            }
        }
        let before = self.best(&prefix);
        let before_mp = self.loc.get(&prefix).map_or(0, Entry::multipath);
        let added = match self.loc.get_mut(&prefix) {
            None => {
                self.loc
                    .insert(prefix, Entry::One(Path::new(id, attrs.clone())));
                true
            }
            Some(e) => match e.paths_mut().iter_mut().find(|x| x.peer() == id) {
                Some(x) => {
                    if Arc::ptr_eq(&x.attrs, attrs) {
                        return; // a repeat: nothing changes
                    }
                    let old = std::mem::replace(&mut x.attrs, attrs.clone());
                    self.interner.release(old);
                    false
                }
                None => {
                    e.push(Path::new(id, attrs.clone()));
                    true
                }
            },
        };
        if added {
            if let Some(Some(p)) = self.peers.get_mut(id) {
                p.accepted += 1;
            }
        }
        self.finish_change(prefix, before, before_mp, ex);
    }

    /// Removes `id`'s path for `prefix`; false if it had none.
    fn remove_path(&mut self, prefix: F::Prefix, id: PeerId) -> bool {
        let Some(e) = self.loc.get_mut(&prefix) else {
            return false;
        };
        let Some(i) = e.paths().iter().position(|x| x.peer() == id) else {
            return false;
        };
        let old = match e.swap_remove(i) {
            Some(old) => old,
            // The only path: the prefix goes.
            None => match self.loc.remove(&prefix) {
                Some(Entry::One(old)) => old,
                _ => return false,
            },
        };
        self.interner.release(old.attrs);
        if let Some(Some(p)) = self.peers.get_mut(id) {
            p.accepted = p.accepted.saturating_sub(1);
        }
        true
    }

    /// Re-runs the decision process for `prefix` and exports what changed.
    fn finish_change(
        &mut self,
        prefix: F::Prefix,
        before: Best,
        before_mp: u16,
        ex: &mut Export<F>,
    ) {
        self.redecide(prefix);
        let after = self.best(&prefix);
        let after_mp = self.loc.get(&prefix).map_or(0, Entry::multipath);
        let same_best = match (&before, &after) {
            (None, None) => true,
            (Some((p1, a1)), Some((p2, a2))) => p1 == p2 && Arc::ptr_eq(a1, a2),
            _ => false,
        };
        if same_best && before_mp == after_mp {
            return;
        }
        ex.changed.push(prefix);
        if same_best || !self.cfg.branch_to_branch || self.cfg.originated.contains(&prefix) {
            return;
        }
        let mut cache = std::mem::take(&mut ex.cache);
        let peers = ex.up.take().unwrap_or_else(|| {
            self.peers
                .iter()
                .enumerate()
                .filter(|(_, p)| p.as_ref().is_some_and(|p| p.up))
                .map(|(i, _)| i)
                .collect()
        });
        let mut ops = std::mem::take(&mut ex.ops);
        ops.clear();
        ops.extend(peers.iter().map(|&q| {
            let had = self.exported_for(q, &before, &mut cache);
            let has = self.exported_for(q, &after, &mut cache);
            let op = match (had, has) {
                (Some(a), Some(b)) if Arc::ptr_eq(&a, &b) => Op::Keep,
                (_, Some(b)) => Op::Announce(b),
                (Some(_), None) => Op::Withdraw,
                (None, None) => Op::Keep,
            };
            (q, op)
        }));
        ex.apply(prefix, &ops);
        ex.ops = ops;
        ex.cache = cache;
        ex.up = Some(peers);
    }

    /// The attribute set `q` is sent for a best path, if it is sent one at all.
    fn exported_for(
        &self,
        q: PeerId,
        best: &Best,
        cache: &mut ExportCache,
    ) -> Option<Arc<PathAttributes>> {
        let (src, attrs) = best.as_ref()?;
        let peer = self.peer(q)?;
        if *src == q || !exportable(attrs, peer.asn) {
            return None;
        }
        if let Some((_, a)) = cache.iter().find(|(k, _)| Arc::ptr_eq(k, attrs)) {
            return Some(a.clone());
        }
        let a = Arc::new(export_attrs::<F>(attrs, self.cfg.asn));
        cache.push((attrs.clone(), a.clone()));
        Some(a)
    }

    fn redecide(&mut self, prefix: F::Prefix) {
        let Some(Entry::Many(e)) = self.loc.get_mut(&prefix) else {
            return; // one path: it is the best and the ECMP set
        };
        let peers = &self.peers;
        let cands: Vec<Candidate<'_>> = e
            .paths
            .iter()
            .map(|p| {
                let (rid, addr) = peers.get(p.peer()).and_then(Option::as_ref).map_or(
                    (Ipv4Addr::UNSPECIFIED, IpAddr::from(Ipv4Addr::UNSPECIFIED)),
                    |x| (x.router_id, x.address),
                );
                Candidate {
                    attrs: &p.attrs,
                    peer_router_id: rid,
                    peer_address: addr,
                }
            })
            .collect();
        let mut mp = Vec::with_capacity(cands.len());
        let best = decide(&cands, &mut mp);
        drop(cands);
        // Order: best, then the rest of the ECMP set, then the others.
        let mut order: Vec<usize> = Vec::with_capacity(e.paths.len());
        order.push(best);
        order.extend(mp.iter().copied().filter(|&i| i != best));
        order.extend((0..e.paths.len()).filter(|i| !mp.contains(i)));
        let old = std::mem::take(&mut e.paths);
        let mut slots: Vec<Option<Path>> = old.into_iter().map(Some).collect();
        e.paths = order.into_iter().filter_map(|i| slots[i].take()).collect();
        e.multipath = mp.len() as u16;
    }

    /// Changes the originated prefixes and `branch_to_branch` (a config reload) and returns what
    /// every established peer must be sent to match.
    pub fn set_export_config(
        &mut self,
        originated: Vec<F::Prefix>,
        branch_to_branch: bool,
    ) -> Export<F> {
        let up: Vec<PeerId> = self
            .peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.as_ref().is_some_and(|p| p.up))
            .map(|(i, _)| i)
            .collect();
        let before: Vec<HashMap<F::Prefix, Arc<PathAttributes>>> = up
            .iter()
            .map(|&q| self.advertised_to(q).into_iter().collect())
            .collect();
        self.cfg.originated = originated;
        self.cfg.branch_to_branch = branch_to_branch;
        let mut ex = Export::default();
        for (q, old) in up.into_iter().zip(before) {
            let new: HashMap<F::Prefix, Arc<PathAttributes>> =
                self.advertised_to(q).into_iter().collect();
            for p in old.keys().filter(|p| !new.contains_key(p)) {
                ex.out(q).withdraw.push(*p);
            }
            for (p, a) in &new {
                if old.get(p).is_none_or(|o| **o != **a) {
                    ex.out(q).add(a, *p);
                }
            }
        }
        ex
    }

    /// What `q` is sent, computed from the Loc-RIB (no Adj-RIB-Out is stored).
    pub fn advertised_to(&self, q: PeerId) -> Vec<(F::Prefix, Arc<PathAttributes>)> {
        let mut out: Vec<(F::Prefix, Arc<PathAttributes>)> = self
            .cfg
            .originated
            .iter()
            .map(|p| (*p, self.originated_attrs.clone()))
            .collect();
        if self.cfg.branch_to_branch {
            let mut cache = Vec::new();
            for (prefix, e) in self.loc.iter() {
                if self.cfg.originated.contains(prefix) {
                    continue;
                }
                let best = e.paths().first().map(|p| (p.peer(), p.attrs.clone()));
                if let Some(a) = self.exported_for(q, &best, &mut cache) {
                    out.push((*prefix, a));
                }
            }
        }
        out.sort_by_key(|(p, _)| *p);
        out
    }

    /// The peer's Adj-RIB-In: accepted and rejected routes, sorted by prefix.
    pub fn learned_from(&self, id: PeerId) -> Vec<LearnedRoute<F>> {
        let mut out = Vec::new();
        for (prefix, e) in self.loc.iter() {
            for (i, p) in e.paths().iter().enumerate() {
                if p.peer() == id {
                    out.push(LearnedRoute {
                        prefix: *prefix,
                        attrs: p.attrs.clone(),
                        state: RouteState::Accepted {
                            best: i == 0,
                            multipath: i < usize::from(e.multipath()),
                        },
                    });
                }
            }
        }
        if let Some(p) = self.peer(id) {
            for (prefix, r) in &p.rejected {
                out.push(LearnedRoute {
                    prefix: *prefix,
                    attrs: r.attrs.clone(),
                    state: RouteState::Rejected(r.reason.clone()),
                });
            }
        }
        out.sort_by_key(|r| r.prefix);
        out
    }

    /// Every path held, accepted or refused by policy (the Adj-RIBs-In), by prefix in order,
    /// as (peer, attributes): what an MRT table dump holds.
    pub fn adj_ribs_in(&self) -> BTreeMap<F::Prefix, Vec<(PeerId, Arc<PathAttributes>)>> {
        let mut out: BTreeMap<F::Prefix, Vec<(PeerId, Arc<PathAttributes>)>> = BTreeMap::new();
        for (prefix, e) in self.loc.iter() {
            out.entry(*prefix)
                .or_default()
                .extend(e.paths().iter().map(|p| (p.peer(), p.attrs.clone())));
        }
        for (id, p) in self.peers.iter().enumerate() {
            let Some(p) = p else { continue };
            for (prefix, r) in &p.rejected {
                out.entry(*prefix).or_default().push((id, r.attrs.clone()));
            }
        }
        out
    }

    /// A configured peer's address, AS and BGP identifier (unspecified until its first session).
    pub fn peer_info(&self, id: PeerId) -> Option<(IpAddr, u32, Ipv4Addr)> {
        self.peer(id).map(|p| (p.address, p.asn, p.router_id))
    }

    /// The Loc-RIB entry of a prefix: the ECMP paths (best first) as (peer, attributes).
    pub fn multipath(&self, prefix: &F::Prefix) -> Vec<(PeerId, Arc<PathAttributes>)> {
        self.loc.get(prefix).map_or_else(Vec::new, |e| {
            e.paths()
                .iter()
                .take(usize::from(e.multipath()))
                .map(|p| (p.peer(), p.attrs.clone()))
                .collect()
        })
    }

    /// Distinct forwarding next hops of a prefix's ECMP set (two NVAs advertising the same
    /// LB frontend are one next hop).
    pub fn forwarding_next_hops(&self, prefix: &F::Prefix) -> Vec<F::Addr> {
        let mut v: Vec<F::Addr> = self
            .multipath(prefix)
            .iter()
            .filter_map(|(_, a)| F::next_hop(a))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Prefixes in the Loc-RIB.
    pub fn prefixes(&self) -> impl Iterator<Item = &F::Prefix> {
        self.loc.keys()
    }

    pub fn len(&self) -> usize {
        self.loc.len()
    }
    pub fn is_empty(&self) -> bool {
        self.loc.is_empty()
    }
    /// Distinct attribute sets held (for memory accounting).
    pub fn attribute_sets(&self) -> usize {
        self.interner.len()
    }
}

/// SPEC §3 import policy. Err is the reason the route is refused.
/// How large a peer's paths may be (issue #13): beyond, a path is refused with the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathLimits {
    /// ASNs in the AS_PATH, every segment counted.
    pub max_as_path_length: u32,
    /// Standard, extended and large communities together.
    pub max_communities: u32,
    /// Octets of unrecognized optional attributes (their values).
    pub max_unknown_attribute_octets: u32,
}

impl Default for PathLimits {
    /// 255 ASNs, 1024 communities, 4096 octets of unknown attributes: far above what real
    /// routes carry, far below what would let a peer make the route server hold megabytes
    /// per path.
    fn default() -> Self {
        Self {
            max_as_path_length: 255,
            max_communities: 1024,
            max_unknown_attribute_octets: 4096,
        }
    }
}

impl PathLimits {
    /// Why `a` is over a limit, if it is.
    pub fn check(&self, a: &PathAttributes) -> Result<(), String> {
        let asns: usize = a
            .as_path
            .as_ref()
            .map_or(0, |p| p.segments.iter().map(|s| s.asns().len()).sum());
        if asns > self.max_as_path_length as usize {
            return Err(format!(
                "AS_PATH of {asns} ASNs is over this peer's limit of {} (max_as_path_length)",
                self.max_as_path_length
            ));
        }
        let communities = a.communities.len() + a.ext_communities.len() + a.large_communities.len();
        if communities > self.max_communities as usize {
            return Err(format!(
                "{communities} communities are over this peer's limit of {} (max_communities)",
                self.max_communities
            ));
        }
        let unknown: usize = a.unknown.iter().map(|u| u.value.len()).sum();
        if unknown > self.max_unknown_attribute_octets as usize {
            return Err(format!(
                "{unknown} octets of unknown attributes are over this peer's limit of {} (max_unknown_attribute_octets)",
                self.max_unknown_attribute_octets
            ));
        }
        Ok(())
    }

    /// `a` without the parts the limits bound (what a refused path is held as).
    fn stripped(&self, a: &PathAttributes) -> PathAttributes {
        PathAttributes {
            origin: a.origin,
            next_hop: a.next_hop,
            mp_reach: a.mp_reach.clone(),
            ..Default::default()
        }
    }
}

fn policy(a: &PathAttributes, peer_asn: u32, own_asn: u32) -> Result<(), String> {
    let Some(path) = &a.as_path else {
        return Err("no AS_PATH".into());
    };
    if path.contains(own_asn) {
        return Err(format!("AS path {path} already contains {own_asn} (loop)"));
    }
    match path.first_asn() {
        Some(first) if first == peer_asn => Ok(()),
        Some(first) => Err(format!(
            "first AS in the AS path is {first}, not the peer's AS {peer_asn}"
        )),
        None => Err(format!(
            "AS path does not start with the peer's AS {peer_asn}"
        )),
    }
}

fn exportable(a: &PathAttributes, to_asn: u32) -> bool {
    !a.has_community(community::NO_ADVERTISE)
        && !a.has_community(community::NO_EXPORT)
        && !a.as_path.as_ref().is_some_and(|p| p.contains(to_asn))
}

/// The attributes an instance originates its address space with.
fn originated_attrs<F: Family>(asn: u32, local: F::Addr) -> Arc<PathAttributes> {
    let a = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(vec![asn])),
        ..Default::default()
    };
    Arc::new(F::with_next_hop(a, local))
}

/// The attributes of a learned route as re-advertised to another peer (RFC 4271 §5.1).
fn export_attrs<F: Family>(a: &PathAttributes, own_asn: u32) -> PathAttributes {
    let mut out = PathAttributes {
        origin: a.origin,
        as_path: Some(a.as_path.as_ref().map_or_else(
            || AsPath::from_sequence(vec![own_asn]),
            |p| p.prepend(own_asn),
        )),
        next_hop: a.next_hop,
        med: None,
        local_pref: None,
        atomic_aggregate: a.atomic_aggregate,
        aggregator: a.aggregator,
        communities: a.communities.clone(),
        ext_communities: a.ext_communities.clone(),
        large_communities: a.large_communities.clone(),
        originator_id: None,
        cluster_list: Vec::new(),
        mp_reach: None,
        mp_unreach: None,
        unknown: a
            .unknown
            .iter()
            .filter(|r| r.is_transitive())
            .map(|r| r.for_forwarding())
            .collect(),
    };
    F::export_next_hop(a, &mut out);
    out
}
