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
//! - [`table`]: [`VnetTable`], the effective routes shared by the NICs of one virtual network,
//!   with versions and a change log.
//! - this file: [`Fabric`]: applies BGP and LB changes incrementally, answers effective routes
//!   and lookups.
//!
//! ```text
//!  Loc-RIB change (prefix, next hops) ──> Fabric::set_bgp_route ──> each receiving VnetTable:
//!                                                                    one entry, version + 1
//!  LB health change ──> Fabric::set_lb_healthy ──> entries via that LB re-resolved (tracking)
//!  NIC ──effective_routes / lookup(dst)──> its VnetTable (NICs of a VNet share one table)
//! ```
//!
//! NICs of one virtual network see the same effective routes (system routes depend on the
//! virtual network, BGP routes on whether it reaches the route server), so the table is kept
//! once per virtual network and a NIC's version is its network's.
#![deny(unsafe_code)]

pub mod model;
pub mod table;

use std::collections::HashMap;
use std::net::Ipv4Addr;

pub use model::{LbInfo, NicInfo, Topology, VnetInfo};
pub use table::{NextHopType, Prefix, Route, RouteSource, RouteState, VnetTable};

/// A BGP route as the route server's Loc-RIB has it: the prefix and the distinct forwarding
/// next hops of its ECMP set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpRoute {
    pub prefix: Prefix,
    pub next_hops: Vec<Ipv4Addr>,
}

/// How a next hop resolves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// An LB frontend in the route server's region.
    LoadBalancer(String),
    /// Inside a network the NIC's VNet is connected to.
    Direct,
    Invalid(String),
}

/// The fabric: topology, one table per virtual network, LB health.
pub struct Fabric {
    topo: Topology,
    tables: HashMap<String, VnetTable>,
    /// Current BGP routes by prefix (as last set), to re-resolve on LB health changes.
    bgp: HashMap<Prefix, Vec<Ipv4Addr>>,
    /// LBs with at least one usable backend.
    lb_healthy: HashMap<String, bool>,
    next_hop_tracking: bool,
    /// Table entries written by the last change (for tests and metrics).
    pub last_touched: usize,
}

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
                t.set(r);
            }
            tables.insert(v.name.clone(), t);
        }
        Self {
            topo,
            tables,
            bgp: HashMap::new(),
            lb_healthy: HashMap::new(),
            next_hop_tracking,
            last_touched: 0,
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// How `nh` resolves for a NIC in `vnet`.
    pub fn resolve(&self, vnet: &str, nh: Ipv4Addr) -> Resolution {
        if let Some(lb) = self.topo.lb_by_frontend(nh) {
            let rs_region = self.topo.route_server_region();
            return match (&lb.region, rs_region) {
                (Some(r), Some(rs)) if r != rs => Resolution::Invalid(format!(
                    "load balancer {} is in region {r}, route server in {rs}: cross-region next hop IP is not supported",
                    lb.name
                )),
                _ => Resolution::LoadBalancer(lb.name.clone()),
            };
        }
        if self.topo.connected(vnet).iter().any(|p| p.contains(nh)) {
            Resolution::Direct
        } else {
            Resolution::Invalid(format!(
                "next hop {nh} is in no network connected to virtual network {vnet}"
            ))
        }
    }

    /// The effective route a VNet gets for a BGP route, or None when it is not injected there.
    fn bgp_entry(&self, vnet: &str, prefix: Prefix, next_hops: &[Ipv4Addr]) -> Option<Route> {
        // SPEC §3: a prefix equal to or more specific than the VNet's own space is not injected.
        if self
            .topo
            .vnet(vnet)?
            .address_space
            .iter()
            .any(|s| s.covers(&prefix))
        {
            return None;
        }
        let mut valid = Vec::new();
        let mut lbs = Vec::new();
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
        let (state, reason, ips) = if !valid.is_empty() {
            (RouteState::Active, None, valid)
        } else if !inactive.is_empty() {
            (
                RouteState::Inactive,
                Some(inactive.join("; ")),
                next_hops.to_vec(),
            )
        } else {
            (
                RouteState::Invalid,
                Some(reasons.join("; ")),
                next_hops.to_vec(),
            )
        };
        lbs.dedup();
        Some(Route {
            source: RouteSource::VirtualNetworkGateway,
            state,
            prefix,
            next_hop_type: NextHopType::VirtualNetworkGateway,
            next_hop_ips: ips,
            load_balancer: lbs.first().cloned(),
            reason,
        })
    }

    /// Sets (Some) or removes (None) the BGP route of `prefix`. Touches only the tables of the
    /// virtual networks that receive the route server's routes.
    pub fn set_bgp_route(&mut self, prefix: Prefix, next_hops: Option<Vec<Ipv4Addr>>) {
        match &next_hops {
            Some(nh) => {
                self.bgp.insert(prefix, nh.clone());
            }
            None => {
                self.bgp.remove(&prefix);
            }
        }
        let mut touched = 0;
        let mut shared: Option<std::sync::Arc<Route>> = None;
        for vnet in self.topo.bgp_receivers() {
            let entry = next_hops
                .as_ref()
                .and_then(|nh| self.bgp_entry(&vnet, prefix, nh));
            if let Some(t) = self.tables.get_mut(&vnet) {
                touched += 1;
                match entry {
                    Some(r) => {
                        // Networks that resolve the route alike share one copy.
                        let arc = match &shared {
                            Some(a) if **a == r => a.clone(),
                            _ => std::sync::Arc::new(r),
                        };
                        shared = Some(arc.clone());
                        t.set(arc);
                    }
                    None => t.remove(prefix, RouteSource::VirtualNetworkGateway),
                }
            }
        }
        self.last_touched = touched;
    }

    /// Records whether a load balancer has a usable backend; with next hop tracking, the routes
    /// through it are re-resolved (only those).
    pub fn set_lb_healthy(&mut self, lb: &str, healthy: bool) {
        if self.lb_healthy.insert(lb.to_string(), healthy) == Some(healthy) {
            self.last_touched = 0;
            return;
        }
        if !self.next_hop_tracking {
            self.last_touched = 0;
            return;
        }
        let frontend = self
            .topo
            .lbs
            .iter()
            .find(|l| l.name == lb)
            .map(|l| l.frontend);
        let affected: Vec<(Prefix, Vec<Ipv4Addr>)> = self
            .bgp
            .iter()
            .filter(|(_, nh)| Some(nh.iter().any(|n| Some(*n) == frontend)) == Some(true))
            .map(|(p, n)| (*p, n.clone()))
            .collect();
        let mut touched = 0;
        for (p, nh) in affected {
            self.set_bgp_route(p, Some(nh));
            touched += self.last_touched;
        }
        self.last_touched = touched;
    }

    /// The table of the NIC's virtual network.
    pub fn nic_table(&self, nic: &str) -> Option<&VnetTable> {
        let n = self.topo.nic(nic)?;
        self.tables.get(&n.vnet)
    }

    /// Applies a new topology (a config reload) in place: every table keeps its version and
    /// change log and only the entries that differ change, so a subscriber sees a reload as the
    /// few prefixes it touched. Tables of new virtual networks start after every existing
    /// version; tables of removed ones go.
    pub fn reconfigure(&mut self, topo: Topology, next_hop_tracking: bool) {
        let base = self.max_version() + 1;
        self.topo = topo;
        self.next_hop_tracking = next_hop_tracking;
        let names: Vec<String> = self.topo.vnets.iter().map(|v| v.name.clone()).collect();
        self.tables.retain(|name, _| names.contains(name));
        let receivers = self.topo.bgp_receivers();
        let mut touched = 0;
        for name in &names {
            let mut desired: HashMap<(Prefix, RouteSource), Route> = self
                .topo
                .system_routes(name)
                .into_iter()
                .map(|r| ((r.prefix, r.source), r))
                .collect();
            if receivers.contains(name) {
                for (p, nh) in &self.bgp {
                    if let Some(r) = self.bgp_entry(name, *p, nh) {
                        desired.insert((*p, RouteSource::VirtualNetworkGateway), r);
                    }
                }
            }
            let t = self
                .tables
                .entry(name.clone())
                .or_insert_with(|| VnetTable::starting_at(base));
            let before = t.version();
            for r in t.routes() {
                if !desired.contains_key(&(r.prefix, r.source)) {
                    t.remove(r.prefix, r.source);
                }
            }
            for (_, r) in desired {
                t.set(r);
            }
            touched += usize::from(t.version() != before);
        }
        self.last_touched = touched;
    }

    /// The highest version of any table.
    pub fn max_version(&self) -> u64 {
        self.tables
            .values()
            .map(VnetTable::version)
            .max()
            .unwrap_or(0)
    }

    /// The routes of `vnet` (tests, API).
    pub fn vnet_table(&self, vnet: &str) -> Option<&VnetTable> {
        self.tables.get(vnet)
    }
}
