//! The virtual network fabric of nexthop (SPEC §5): virtual networks, regions, peerings, NICs,
//! and the effective routes of every NIC, with next hops resolved through load balancers.
//! Pure data: no tokio, no sockets. The binary feeds it the route server's Loc-RIB changes and
//! load balancer health; the API and the data planes read effective routes and trace flows.
//!
//! It must never: program a route whose next hop it cannot resolve (it is kept, `Invalid`, with
//! the reason), resolve through a load balancer in another region than the route server, or
//! rebuild every table for one change.
//!
//! # Layout
//!
//! - [`model`]: the topology from the config ([`Topology`]).
//! - [`table`]: [`VnetTable`], what one virtual network keeps of its own (system routes, version,
//!   change log), and the [`Route`] type of every answer.
//! - `classes`: the distinct ways BGP routes are held (which instance has which next hops) and
//!   how each resolves in each receiving network, shared by every prefix that has them.
//! - this file: [`Fabric`]: applies BGP and LB changes incrementally; [`TableView`] answers a
//!   network's effective routes and lookups.
//!
//! # Memory
//!
//! A route server with a virtual network holds every BGP prefix in its Loc-RIB and here. Here it
//! costs one hash map entry (the prefix and a 4-octet class index): the next hops, their
//! resolution and the reasons live in the class, and routes with the same next hops share it
//! (a million routes from ten NVAs are ten classes). Answers are built on demand.
//!
//! ```text
//!  Loc-RIB change of an instance ──> Fabric::set_instance_route ──> prefix -> class (union of
//!    (prefix, next hops)                                              the instances' next hops);
//!                                                                     version + 1 in each network
//!                                                                     where the route changed
//!  LB health change ──> Fabric::set_lb_healthy ──> classes re-resolved, their prefixes logged
//!  NIC ──nic_table──> TableView: the network's system routes + the BGP classes resolved for it
//! ```
//!
//! NICs of one virtual network see the same effective routes (system routes depend on the
//! virtual network, BGP routes on whether it reaches the route server), so the table is kept
//! once per virtual network and a NIC's version is its network's.
#![deny(unsafe_code)]

mod classes;
pub mod model;
pub mod table;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

pub use netprefix::{Ipv4Prefix, Ipv6Prefix};
use std::sync::Arc;

use classes::{ClassId, Classes, Resolved};
pub use model::{LbInfo, NicInfo, Topology, VnetInfo};
use shardmap::ShardedMap;
pub use table::{Lengths, NextHopType, Prefix, Route, RouteSource, RouteState, VnetTable};

/// A next hop that cannot be programmed, and why (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Invalid {
    /// The next hop is the frontend of a load balancer in another region than the route server
    /// (the reference does not support cross-region next hop IP).
    CrossRegion {
        lb: String,
        lb_region: String,
        route_server_region: String,
    },
    /// The next hop is in no network the NIC's network is connected to.
    NotConnected { next_hop: IpAddr, vnet: String },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::CrossRegion {
                lb,
                lb_region,
                route_server_region,
            } => write!(
                f,
                "load balancer {lb} is in region {lb_region}, route server in {route_server_region}: cross-region next hop IP is not supported"
            ),
            Invalid::NotConnected { next_hop, vnet } => write!(
                f,
                "next hop {next_hop} is in no network connected to virtual network {vnet}"
            ),
        }
    }
}

/// How a next hop resolves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// An LB frontend in the route server's region.
    LoadBalancer(String),
    /// Inside a network the NIC's VNet is connected to.
    Direct,
    Invalid(Invalid),
}

/// The fabric: topology, the BGP routes (each prefix once), one table per virtual network, LB
/// health.
pub struct Fabric {
    topo: Topology,
    tables: HashMap<String, VnetTable>,
    /// The networks that receive BGP routes, in the order of each class's resolutions.
    receivers: Vec<String>,
    /// Every BGP prefix of any instance, with its class (sharded: no whole-table rehash), one
    /// map per family so an IPv4 entry stays 8 octets of key.
    bgp: Bgp,
    /// The lengths BGP prefixes have (longest-prefix match skips the others).
    bgp_lengths: Lengths,
    classes: Classes,
    /// LBs with at least one usable backend.
    lb_healthy: HashMap<String, bool>,
    next_hop_tracking: bool,
    /// Tables whose routes the last change wrote (for tests and metrics).
    pub last_touched: usize,
}

/// The name [`Fabric::set_bgp_route`] files routes under (one instance, or tests).
const SOLE_INSTANCE: &str = "";

impl Fabric {
    pub fn new(topo: Topology, next_hop_tracking: bool) -> Self {
        Self::starting_at(topo, next_hop_tracking, 0)
    }

    /// A fabric whose table versions continue after `base` (rebuilt on a config change: a
    /// subscriber holding an older version gets the whole table, never a stale "no change").
    pub fn starting_at(topo: Topology, next_hop_tracking: bool, base: u64) -> Self {
        let mut tables = HashMap::new();
        for v in &topo.vnets {
            let mut t = VnetTable::starting_at(base);
            for r in topo.system_routes(&v.name) {
                t.set_system(r);
            }
            tables.insert(v.name.clone(), t);
        }
        Self {
            receivers: topo.bgp_receivers(),
            topo,
            tables,
            bgp: Bgp::default(),
            bgp_lengths: Lengths::default(),
            classes: Classes::default(),
            lb_healthy: HashMap::new(),
            next_hop_tracking,
            last_touched: 0,
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// How `nh` resolves for a NIC in `vnet`.
    pub fn resolve(&self, vnet: &str, nh: IpAddr) -> Resolution {
        if let Some(lb) = self.topo.lb_by_frontend(nh) {
            let rs_region = self.topo.route_server_region();
            return match (&lb.region, rs_region) {
                (Some(r), Some(rs)) if r != rs => Resolution::Invalid(Invalid::CrossRegion {
                    lb: lb.name.clone(),
                    lb_region: r.clone(),
                    route_server_region: rs.to_string(),
                }),
                _ => Resolution::LoadBalancer(lb.name.clone()),
            };
        }
        if self.topo.connected(vnet).iter().any(|p| p.contains(nh)) {
            Resolution::Direct
        } else {
            Resolution::Invalid(Invalid::NotConnected {
                next_hop: nh,
                vnet: vnet.to_string(),
            })
        }
    }

    /// How a set of next hops resolves in `vnet` (the same for every prefix that has it).
    fn resolve_set(&self, vnet: &str, next_hops: &[IpAddr]) -> Resolved {
        let mut valid = Vec::new();
        let mut lbs: Vec<String> = Vec::new();
        let mut reasons = Vec::new();
        let mut inactive = Vec::new();
        for &nh in next_hops {
            match self.resolve(vnet, nh) {
                Resolution::LoadBalancer(name) => {
                    if self.next_hop_tracking
                        && !self.lb_healthy.get(&name).copied().unwrap_or(true)
                    {
                        inactive.push(format!(
                            "load balancer {name} has no healthy backend (next hop tracking)"
                        ));
                        continue;
                    }
                    valid.push(nh);
                    lbs.push(name);
                }
                Resolution::Direct => valid.push(nh),
                Resolution::Invalid(why) => reasons.push(why),
            }
        }
        lbs.dedup();
        let (state, reason, ips) = if !valid.is_empty() {
            (RouteState::Active, None, valid)
        } else if !inactive.is_empty() {
            (
                RouteState::Inactive,
                Some(inactive.join("; ")),
                next_hops.to_vec(),
            )
        } else {
            let text: Vec<String> = reasons.iter().map(ToString::to_string).collect();
            (
                RouteState::Invalid,
                Some(text.join("; ")),
                next_hops.to_vec(),
            )
        };
        Resolved {
            state,
            next_hop_ips: ips,
            load_balancer: lbs.into_iter().next(),
            reason,
            invalid: reasons,
        }
    }

    /// SPEC §3: a prefix equal to or more specific than the network's own space is not injected.
    fn injected(&self, vnet: &str, prefix: &Prefix) -> bool {
        self.topo
            .vnet(vnet)
            .is_some_and(|v| !v.address_space.iter().any(|s| s.covers(prefix)))
    }

    /// The resolutions of a class in every receiving network, in `receivers` order.
    fn resolve_class(&self, union: &[IpAddr]) -> Vec<Arc<Resolved>> {
        self.receivers
            .iter()
            .map(|v| Arc::new(self.resolve_set(v, union)))
            .collect()
    }

    /// Sets what `instance` holds for `prefix`: its forwarding next hops, or none (withdrawn).
    /// The fabric programs the union of every instance's next hops.
    pub fn set_instance_route(&mut self, instance: &str, prefix: Prefix, next_hops: &[IpAddr]) {
        let old = self.bgp.get(&prefix).copied();
        let new = match self.classes.memo(old, instance, next_hops) {
            Some(id) => Some(id),
            None => match self.classes.key_with(old, instance, next_hops) {
                Some(key) => {
                    let id = match self.classes.find(&key) {
                        Some(id) => id,
                        None => {
                            let union = classes::union(&key);
                            let resolved = self.resolve_class(&union);
                            self.classes.insert(key, union, resolved)
                        }
                    };
                    self.classes.remember(old, instance, next_hops, id);
                    Some(id)
                }
                None => None,
            },
        };
        if old == new {
            self.last_touched = 0;
            return;
        }
        if let Some(id) = new {
            self.classes.retain(id);
            self.bgp.insert(prefix, id);
            self.bgp_lengths.insert(&prefix);
        } else {
            self.bgp.remove(&prefix);
        }
        self.last_touched = self.log_change(prefix, old, new);
        if let Some(id) = old {
            self.classes.release(id);
        }
    }

    /// Bumps the version of each receiving network where `prefix` resolves differently under
    /// class `new` than under `old`; returns how many receiving networks hold the prefix.
    fn log_change(&mut self, prefix: Prefix, old: Option<ClassId>, new: Option<ClassId>) -> usize {
        let mut touched = 0;
        for (i, vnet) in self.receivers.iter().enumerate() {
            if !self.injected(vnet, &prefix) {
                continue;
            }
            touched += 1;
            let was = old.map(|c| &self.classes.get(c).resolved[i]);
            let now = new.map(|c| &self.classes.get(c).resolved[i]);
            if was.map(|r| &**r) != now.map(|r| &**r) {
                if let Some(t) = self.tables.get_mut(vnet) {
                    t.bump(prefix);
                }
            }
        }
        touched
    }

    /// Forgets every route of `instance` whose prefix is not in `kept` (an instance that sent
    /// its whole Loc-RIB again).
    pub fn reset_instance(&mut self, instance: &str, kept: &std::collections::HashSet<Prefix>) {
        let gone: Vec<Prefix> = self
            .bgp
            .iter()
            .filter(|(p, c)| !kept.contains(p) && self.classes.get(*c).has(&self.classes, instance))
            .map(|(p, _)| p)
            .collect();
        for p in gone {
            self.set_instance_route(instance, p, &[]);
        }
    }

    /// Sets (Some) or removes (None) the BGP route of `prefix`, as the only instance.
    pub fn set_bgp_route(&mut self, prefix: Prefix, next_hops: Option<Vec<IpAddr>>) {
        self.set_instance_route(SOLE_INSTANCE, prefix, next_hops.as_deref().unwrap_or(&[]));
    }

    /// Re-resolves every class (LB health, topology) and logs the prefixes whose routes changed
    /// in each network. `before` is each class's resolutions under `old_receivers`.
    fn reresolve(
        &mut self,
        old_receivers: &[String],
        old_injected: &dyn Fn(&str, &Prefix) -> bool,
    ) {
        let before = self.classes.take_resolutions();
        let ids = self.classes.ids();
        let mut changed = std::collections::HashSet::new();
        for id in ids {
            let union = self.classes.get(id).union.clone();
            let now = self.resolve_class(&union);
            let old: Vec<Option<&Arc<Resolved>>> = self
                .receivers
                .iter()
                .map(|v| {
                    old_receivers
                        .iter()
                        .position(|o| o == v)
                        .and_then(|i| before.get(&id).map(|r| &r[i]))
                })
                .collect();
            if old
                .iter()
                .zip(&now)
                .any(|(o, n)| o.map(|o| &**o) != Some(&**n))
                || old_receivers != self.receivers.as_slice()
            {
                changed.insert(id);
            }
            self.classes.get_mut(id).resolved = now;
        }
        let mut touched = std::collections::HashSet::new();
        if changed.is_empty() {
            self.last_touched = 0;
            return;
        }
        for (p, c) in self.bgp.iter() {
            let (p, c) = (&p, &c);
            if !changed.contains(c) {
                continue;
            }
            for (i, vnet) in self.receivers.iter().enumerate() {
                let was = old_receivers
                    .iter()
                    .position(|o| o == vnet)
                    .filter(|_| old_injected(vnet, p))
                    .and_then(|j| before.get(c).map(|r| &r[j]));
                let now = self
                    .injected(vnet, p)
                    .then(|| &self.classes.get(*c).resolved[i]);
                if was.map(|r| &**r) != now.map(|r| &**r) {
                    if let Some(t) = self.tables.get_mut(vnet) {
                        t.bump(*p);
                        touched.insert(vnet.clone());
                    }
                }
            }
            // A network that no longer receives BGP routes loses them.
            for (j, vnet) in old_receivers.iter().enumerate() {
                if self.receivers.contains(vnet) || !old_injected(vnet, p) {
                    continue;
                }
                if before.get(c).is_some_and(|r| r.len() > j) {
                    if let Some(t) = self.tables.get_mut(vnet) {
                        t.bump(*p);
                        touched.insert(vnet.clone());
                    }
                }
            }
        }
        self.last_touched = touched.len();
    }

    /// Records whether a load balancer has a usable backend; with next hop tracking, the routes
    /// through it are re-resolved (only those change).
    pub fn set_lb_healthy(&mut self, lb: &str, healthy: bool) {
        if self.lb_healthy.insert(lb.to_string(), healthy) == Some(healthy)
            || !self.next_hop_tracking
        {
            self.last_touched = 0;
            return;
        }
        let receivers = self.receivers.clone();
        let topo = self.topo.clone();
        let injected = move |v: &str, p: &Prefix| {
            topo.vnet(v)
                .is_some_and(|n| !n.address_space.iter().any(|s| s.covers(p)))
        };
        self.reresolve(&receivers, &injected);
    }

    /// The table of the NIC's virtual network.
    pub fn nic_table(&self, nic: &str) -> Option<TableView<'_>> {
        let n = self.topo.nic(nic)?;
        self.vnet_table(&n.vnet)
    }

    /// Applies a new topology (a config reload) in place: every table keeps its version and
    /// change log and only the entries that differ change, so a subscriber sees a reload as the
    /// few prefixes it touched. Tables of new virtual networks start after every existing
    /// version; tables of removed ones go.
    pub fn reconfigure(&mut self, topo: Topology, next_hop_tracking: bool) {
        let base = self.max_version() + 1;
        let old_topo = std::mem::replace(&mut self.topo, topo);
        let old_receivers = std::mem::replace(&mut self.receivers, self.topo.bgp_receivers());
        self.next_hop_tracking = next_hop_tracking;
        let names: Vec<String> = self.topo.vnets.iter().map(|v| v.name.clone()).collect();
        self.tables.retain(|name, _| names.contains(name));
        let mut touched = 0;
        for name in &names {
            let desired: HashMap<Prefix, Route> = self
                .topo
                .system_routes(name)
                .into_iter()
                .map(|r| (r.prefix, r))
                .collect();
            let t = self
                .tables
                .entry(name.clone())
                .or_insert_with(|| VnetTable::starting_at(base));
            let before = t.version();
            let stale: Vec<Prefix> = t
                .system
                .keys()
                .filter(|p| !desired.contains_key(p))
                .copied()
                .collect();
            for p in stale {
                t.remove_system(p);
            }
            for (_, r) in desired {
                t.set_system(r);
            }
            touched += usize::from(t.version() != before);
        }
        let injected = move |v: &str, p: &Prefix| {
            old_topo
                .vnet(v)
                .is_some_and(|n| !n.address_space.iter().any(|s| s.covers(p)))
        };
        self.reresolve(&old_receivers, &injected);
        self.last_touched = self.last_touched.max(touched);
    }

    /// The highest version of any table.
    pub fn max_version(&self) -> u64 {
        self.tables
            .values()
            .map(VnetTable::version)
            .max()
            .unwrap_or(0)
    }

    /// The effective routes of `vnet`.
    pub fn vnet_table(&self, vnet: &str) -> Option<TableView<'_>> {
        let table = self.tables.get(vnet)?;
        Some(TableView {
            fabric: self,
            vnet: self.topo.vnet(vnet).map(|v| v.name.as_str()).unwrap_or(""),
            table,
            receiver: self.receivers.iter().position(|r| r == vnet),
        })
    }

    /// Per load balancer in another region than the route server: how many BGP prefixes have a
    /// next hop on its frontend (they are not programmed).
    pub fn cross_region_counts(&self) -> Vec<(String, u64)> {
        let mut per_class: HashMap<ClassId, Vec<&str>> = HashMap::new();
        for id in self.classes.ids() {
            let c = self.classes.get(id);
            let lbs: Vec<&str> = c
                .resolved
                .first()
                .map(|r| {
                    r.invalid
                        .iter()
                        .filter_map(|i| match i {
                            Invalid::CrossRegion { lb, .. } => Some(lb.as_str()),
                            Invalid::NotConnected { .. } => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            per_class.insert(id, lbs);
        }
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for (_, c) in self.bgp.iter() {
            for lb in per_class.get(&c).into_iter().flatten() {
                *counts.entry(lb).or_default() += 1;
            }
        }
        self.topo
            .lbs
            .iter()
            .map(|l| {
                (
                    l.name.clone(),
                    counts.get(l.name.as_str()).copied().unwrap_or(0),
                )
            })
            .collect()
    }

    /// The cross-region problems of `prefix`'s route in the route server's network.
    pub fn cross_region(&self, prefix: &Prefix) -> Vec<&Invalid> {
        let Some(c) = self.bgp.get(prefix) else {
            return Vec::new();
        };
        let rs = self.topo.route_server_vnet.as_deref().unwrap_or("");
        let Some(i) = self.receivers.iter().position(|r| r == rs) else {
            return Vec::new();
        };
        self.classes.get(*c).resolved[i]
            .invalid
            .iter()
            .filter(|x| matches!(x, Invalid::CrossRegion { .. }))
            .collect()
    }

    /// How many distinct classes (instance next hops and their resolutions) the prefixes share.
    pub fn class_count(&self) -> usize {
        self.classes.ids().len()
    }

    /// How many BGP prefixes the fabric holds.
    pub fn bgp_len(&self) -> usize {
        self.bgp.len()
    }
}

/// The effective routes of one virtual network: its system routes and the BGP routes as they
/// resolve there, joined on each question.
#[derive(Clone, Copy)]
pub struct TableView<'a> {
    fabric: &'a Fabric,
    vnet: &'a str,
    table: &'a VnetTable,
    /// Its index among the networks that receive BGP routes, if it is one.
    receiver: Option<usize>,
}

impl TableView<'_> {
    pub fn version(&self) -> u64 {
        self.table.version()
    }

    /// Prefixes changed after version `v`, or None when the log does not reach back that far.
    pub fn changes_since(&self, v: u64) -> Option<Vec<Prefix>> {
        self.table.changes_since(v)
    }

    /// The BGP route of `p` here, if it is injected.
    fn bgp_route(&self, p: &Prefix) -> Option<Route> {
        let i = self.receiver?;
        let c = self.fabric.bgp.get(p)?;
        if !self.fabric.injected(self.vnet, p) {
            return None;
        }
        Some(self.fabric.classes.get(*c).resolved[i].route(*p))
    }

    fn bgp_active(&self, p: &Prefix) -> bool {
        let (Some(i), Some(c)) = (self.receiver, self.fabric.bgp.get(p)) else {
            return false;
        };
        self.fabric.classes.get(*c).resolved[i].state == RouteState::Active
            && self.fabric.injected(self.vnet, p)
    }

    /// A system route as shown: `Invalid` when an active BGP route of its prefix overrides it,
    /// as the reference shows it.
    fn system_route(&self, r: &Route) -> Route {
        let mut r = r.clone();
        if self.bgp_active(&r.prefix) {
            r.state = RouteState::Invalid;
            r.reason = Some("overridden by a route from the virtual network gateway".into());
        }
        r
    }

    /// Every route, sorted by prefix then source.
    pub fn routes(&self) -> Vec<Route> {
        let mut out: Vec<Route> = self
            .table
            .system
            .values()
            .map(|r| self.system_route(r))
            .collect();
        if self.receiver.is_some() {
            out.extend(
                self.fabric
                    .bgp
                    .iter()
                    .filter_map(|(p, _)| self.bgp_route(&p)),
            );
        }
        out.sort_by(|a, b| (a.prefix, a.source).cmp(&(b.prefix, b.source)));
        out
    }

    /// The routes of one prefix (system first).
    pub fn get(&self, p: &Prefix) -> Vec<Route> {
        self.table
            .system
            .get(p)
            .map(|r| self.system_route(r))
            .into_iter()
            .chain(self.bgp_route(p))
            .collect()
    }

    /// Longest-prefix match over the routes that forward: an active BGP route, else an active
    /// system route of the same prefix.
    pub fn lookup(&self, dst: IpAddr) -> Option<Route> {
        let bgp_lengths = if self.receiver.is_some() {
            self.fabric.bgp_lengths
        } else {
            Lengths::default()
        };
        let lens = self.table.lengths.union(bgp_lengths);
        for len in lens.longest_first(dst) {
            let p = table::covering(dst, len);
            if self.bgp_active(&p) {
                return self.bgp_route(&p);
            }
            if let Some(r) = self.table.system.get(&p) {
                if r.state == RouteState::Active {
                    return Some(Route::clone(r));
                }
            }
        }
        None
    }

    /// Routes held (system and BGP, each prefix and source once).
    pub fn len(&self) -> usize {
        self.routes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The BGP prefixes, one sharded map per family.
#[derive(Default)]
struct Bgp {
    v4: ShardedMap<Ipv4Prefix, ClassId>,
    v6: ShardedMap<Ipv6Prefix, ClassId>,
}

impl Bgp {
    fn get(&self, p: &Prefix) -> Option<&ClassId> {
        match p {
            Prefix::V4(p) => self.v4.get(p),
            Prefix::V6(p) => self.v6.get(p),
        }
    }
    fn insert(&mut self, p: Prefix, c: ClassId) {
        match p {
            Prefix::V4(p) => self.v4.insert(p, c),
            Prefix::V6(p) => self.v6.insert(p, c),
        };
    }
    fn remove(&mut self, p: &Prefix) {
        match p {
            Prefix::V4(p) => self.v4.remove(p),
            Prefix::V6(p) => self.v6.remove(p),
        };
    }
    fn iter(&self) -> impl Iterator<Item = (Prefix, ClassId)> + '_ {
        let v4 = self.v4.iter().map(|(p, c)| (Prefix::V4(*p), *c));
        v4.chain(self.v6.iter().map(|(p, c)| (Prefix::V6(*p), *c)))
    }
    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}
