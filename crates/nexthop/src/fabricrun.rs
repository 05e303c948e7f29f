//! The fabric at run time: one task owns the [`Fabric`], fed by every route server instance's
//! Loc-RIB changes and by load balancer health, and answers effective routes and traces.
//!
//! ```text
//!  RIB tasks (1x per instance) ──RibChanges─┐
//!  LB tasks (1x per LB) ──LbHealth──────────┼─> fabric task (1x, owns Fabric) <──FabricQuery── API
//!  reload ──Reconfigure(Topology)───────────┘
//! ```
//!
//! Both instances normally hold the same routes; the fabric programs the union of their
//! forwarding next hops, so a route learned on one instance only still works (the reference
//! would program it inconsistently, FACTS §1).
//!
//! An instance feeds the fabric only when the route server has a virtual network (without one
//! no table receives BGP routes), one [`FabricMsg::RibChanges`] per RIB export; when a reload
//! gives it one, the instance sends its whole Loc-RIB as a `reset` batch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use fabric::{Fabric, LbInfo, NicInfo, Prefix, Resolution, Route, Topology, VnetInfo};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::warn;

pub enum FabricMsg {
    /// One RIB export of instance `instance`: per changed prefix, its forwarding next hops now
    /// (empty: gone). With `reset` the batch is the instance's whole Loc-RIB: its prefixes not
    /// in it are gone.
    RibChanges {
        instance: Arc<str>,
        reset: bool,
        routes: Vec<(Prefix, Vec<IpAddr>)>,
    },
    LbHealth {
        lb: String,
        healthy: bool,
    },
    Reconfigure(Topology, bool),
    /// A NIC's routes (all, or those changed since a version); None when there is no such NIC.
    EffectiveRoutes(
        String,
        Option<u64>,
        oneshot::Sender<Option<api_types::EffectiveRoutes>>,
    ),
    /// The route a NIC uses for a destination.
    Lookup(
        String,
        IpAddr,
        oneshot::Sender<Result<Option<Route>, String>>,
    ),
    /// Every NIC (the console's list).
    Nics(oneshot::Sender<Vec<api_types::NicView>>),
    /// A NIC's address (trace).
    NicAddress(
        String,
        oneshot::Sender<Option<(Ipv4Addr, Option<Ipv6Addr>)>>,
    ),
    /// How a next hop resolves from the route server's network (for learned routes).
    Resolve(IpAddr, oneshot::Sender<Resolution>),
    /// Routes Invalid because of a cross-region LB, per LB (metric).
    CrossRegion(oneshot::Sender<BTreeMap<String, u64>>),
    /// A receiver whose value the fabric task bumps after every change that may have changed
    /// some NIC's table (RIB change, LB health, reconfigure): long-polls wait on it, then ask
    /// again.
    Subscribe(oneshot::Sender<watch::Receiver<u64>>),
}

/// Unbounded: the RIB tasks hand over changes without waiting (the fabric is the faster side,
/// and is fed only when a virtual network receives BGP routes).
pub type FabricTx = mpsc::UnboundedSender<FabricMsg>;

/// Whether the fabric programs BGP routes under `cfg`: the route server has a virtual network
/// (the tables of it and of its peers receive them). If not, instances do not feed it.
pub fn uses_bgp_routes(cfg: &config::Config) -> bool {
    cfg.route_server
        .as_ref()
        .and_then(|r| r.virtual_network.as_deref())
        .and_then(|v| cfg.virtual_network(v))
        .is_some()
}

/// The topology of a config.
pub fn topology(cfg: &config::Config) -> Topology {
    let vnets = cfg
        .virtual_networks
        .iter()
        .map(|v| VnetInfo {
            name: v.name.clone(),
            region: v.region.clone(),
            address_space: v
                .address_space
                .iter()
                .map(|p| Prefix::V4(*p))
                .chain(v.address_space6.iter().map(|p| Prefix::V6(*p)))
                .collect(),
            peerings: v.peerings.clone(),
        })
        .collect();
    let nics = cfg
        .nics
        .iter()
        .map(|n| NicInfo {
            name: n.name.clone(),
            vnet: n.virtual_network.clone(),
            address: n.address,
            address6: n.address6,
        })
        .collect();
    let lbs = cfg
        .load_balancers
        .iter()
        .map(|l| LbInfo {
            name: l.name.clone(),
            frontend: l.frontend,
            region: l
                .virtual_network
                .as_deref()
                .and_then(|v| cfg.virtual_network(v))
                .map(|v| v.region.clone()),
        })
        .collect();
    let rs_vnet = cfg
        .route_server
        .as_ref()
        .and_then(|r| r.virtual_network.clone());
    Topology::new(vnets, nics, lbs, rs_vnet)
}

/// Starts the fabric task.
pub fn start(topo: Topology, tracking: bool) -> FabricTx {
    let (tx, mut rx) = mpsc::unbounded_channel::<FabricMsg>();
    tokio::spawn(async move {
        let mut fabric = Fabric::new(topo, tracking);
        let mut health: HashMap<String, bool> = HashMap::new();
        let mut logged: HashSet<String> = HashSet::new();
        let (changes, _) = watch::channel(0u64);
        while let Some(m) = rx.recv().await {
            let bump = matches!(
                m,
                FabricMsg::RibChanges { .. }
                    | FabricMsg::LbHealth { .. }
                    | FabricMsg::Reconfigure(..)
            );
            match m {
                FabricMsg::RibChanges {
                    instance,
                    reset,
                    routes: batch,
                } => {
                    if reset {
                        let keep: HashSet<Prefix> = batch.iter().map(|(p, _)| *p).collect();
                        fabric.reset_instance(&instance, &keep);
                    }
                    for (p, nh) in batch {
                        fabric.set_instance_route(&instance, p, &nh);
                        log_cross_region(&fabric, p, &mut logged);
                    }
                }
                FabricMsg::LbHealth { lb, healthy } => {
                    health.insert(lb.clone(), healthy);
                    fabric.set_lb_healthy(&lb, healthy);
                }
                FabricMsg::Reconfigure(topo, tracking) => {
                    // In place: only the entries the new config changes get new versions.
                    fabric.reconfigure(topo, tracking);
                    logged.clear();
                    for (lb, h) in &health {
                        fabric.set_lb_healthy(lb, *h);
                    }
                    for (lb, n) in fabric.cross_region_counts() {
                        if n > 0 && logged.insert(lb.clone()) {
                            warn!(%lb, routes = n, "load balancer in another region than the route server: routes via it are not programmed (cross-region next hop IP is not supported)");
                        }
                    }
                }
                FabricMsg::EffectiveRoutes(nic, since, tx) => {
                    let answer = fabric
                        .nic_table(&nic)
                        .map(|t| controller::views::effective_routes(&t, since));
                    let _ = tx.send(answer);
                }
                FabricMsg::Lookup(nic, dst, tx) => {
                    let r = match fabric.nic_table(&nic) {
                        Some(t) => Ok(t.lookup(dst)),
                        None => Err(format!("no NIC named {nic:?}")),
                    };
                    let _ = tx.send(r);
                }
                FabricMsg::Nics(tx) => {
                    let list = fabric
                        .topology()
                        .nics
                        .iter()
                        .map(|n| api_types::NicView {
                            name: n.name.clone(),
                            virtual_network: n.vnet.clone(),
                            address: n.address.into(),
                            address6: n.address6.map(IpAddr::V6),
                        })
                        .collect();
                    let _ = tx.send(list);
                }
                FabricMsg::NicAddress(nic, tx) => {
                    let _ = tx.send(fabric.topology().nic(&nic).map(|n| (n.address, n.address6)));
                }
                FabricMsg::Resolve(nh, tx) => {
                    // Without a virtual network for the route server there is nothing to
                    // resolve against: say nothing rather than call every route invalid.
                    let r = match fabric
                        .topology()
                        .route_server_vnet
                        .as_deref()
                        .filter(|v| fabric.topology().vnet(v).is_some())
                    {
                        Some(_) => resolve_rs(&fabric, nh),
                        None => Resolution::Direct,
                    };
                    let _ = tx.send(r);
                }
                FabricMsg::CrossRegion(tx) => {
                    let _ = tx.send(fabric.cross_region_counts().into_iter().collect());
                }
                FabricMsg::Subscribe(tx) => {
                    let _ = tx.send(changes.subscribe());
                }
            }
            if bump {
                changes.send_modify(|n| *n += 1);
            }
        }
    });
    tx
}

fn resolve_rs(f: &Fabric, nh: IpAddr) -> Resolution {
    let vnet = f.topology().route_server_vnet.clone().unwrap_or_default();
    f.resolve(&vnet, nh)
}

/// SPEC: a cross-region next hop is logged once (per load balancer).
fn log_cross_region(f: &Fabric, p: Prefix, logged: &mut HashSet<String>) {
    for why in f.cross_region(&p) {
        if let fabric::Invalid::CrossRegion { lb, .. } = why {
            if logged.insert(lb.clone()) {
                warn!(prefix = %p, %lb, "{why}; routes via it are not programmed");
            }
        }
    }
}

/// Asks the fabric task.
pub async fn ask<T>(
    tx: &FabricTx,
    make: impl FnOnce(oneshot::Sender<T>) -> FabricMsg,
) -> Option<T> {
    let (otx, orx) = oneshot::channel();
    tx.send(make(otx)).ok()?;
    orx.await.ok()
}
