//! The host agent's kernel side: make nexthop's routes in the kernel equal a desired set.
//!
//! [`reconcile`] dumps the main table once, takes nexthop's own routes (protocol
//! [`crate::netlink::RTPROT_NEXTHOP`]), then adds the missing ones, replaces those whose
//! gateway changed and deletes the stale ones. Running it twice with the same set changes
//! nothing. Routes of other protocols are never "stale" and never written: a desired prefix
//! that another protocol already holds at the agent's metric is left alone and reported in
//! [`Changes::foreign`] (the kernel's replace would overwrite it). Fail-static is the caller's
//! part: while the controller is away it simply does not call `reconcile`, and the routes stay.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::netlink::{own_routes, Netlink, Prefix, Result, Route, RTPROT_NEXTHOP};

/// The metric of every route the agent programs (`metric 0`, the kernel default for
/// `ip route add`). One route per prefix: effective routes have one next hop per prefix.
pub const METRIC: u32 = 0;

/// What one [`reconcile`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<Route>,
    /// (old, new).
    pub replaced: Vec<(Route, Route)>,
    pub removed: Vec<Route>,
    /// Desired routes not programmed because another protocol owns that prefix at
    /// [`METRIC`]: (prefix, that protocol).
    pub foreign: Vec<(Prefix, u8)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.replaced.is_empty()
            && self.removed.is_empty()
            && self.foreign.is_empty()
    }
}

/// Makes the kernel's protocol-200 routes in the main table equal `desired` (prefix →
/// gateway; a prefix listed twice keeps its last gateway). Stops at the first kernel error;
/// running it again continues from where the kernel is.
pub fn reconcile(nl: &mut Netlink, desired: &[(Prefix, Ipv4Addr)]) -> Result<Changes> {
    let want: BTreeMap<Prefix, Ipv4Addr> = desired.iter().copied().collect();
    let mut have: BTreeMap<Prefix, Route> = BTreeMap::new();
    let mut ch = Changes::default();
    let table = nl.dump_routes()?;
    let foreign: BTreeMap<Prefix, u8> = table
        .iter()
        .filter(|r| r.protocol != RTPROT_NEXTHOP && r.metric == METRIC)
        .map(|r| (r.prefix, r.protocol))
        .collect();
    for r in own_routes(&table) {
        if r.metric == METRIC && want.contains_key(&r.prefix) {
            have.insert(r.prefix, r);
        } else {
            // Not wanted, or ours at a metric the agent never uses (an older version's).
            nl.delete_route(r.prefix, r.metric)?;
            ch.removed.push(r);
        }
    }
    for (&prefix, &gateway) in &want {
        let route = Route {
            prefix,
            gateway,
            metric: METRIC,
        };
        if let Some(&protocol) = foreign.get(&prefix) {
            ch.foreign.push((prefix, protocol));
            continue;
        }
        match have.get(&prefix) {
            Some(old) if old.gateway == gateway => {}
            Some(old) => {
                nl.replace_unchecked(&route)?;
                ch.replaced.push((*old, route));
            }
            None => {
                nl.replace_unchecked(&route)?;
                ch.added.push(route);
            }
        }
    }
    Ok(ch)
}
