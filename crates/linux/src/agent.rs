//! The host agent's kernel side: make nexthop's routes in the kernel equal a desired set.
//!
//! [`reconcile`] dumps the main table once, takes nexthop's own routes (protocol
//! [`crate::netlink::RTPROT_NEXTHOP`]), then adds the missing ones, replaces those whose
//! gateways changed and deletes the stale ones. A prefix with several gateways (an ECMP set in
//! the effective routes) is one multipath route, so the kernel spreads flows over all of them
//! as the controller shows them. Running it twice with the same set changes
//! nothing. Routes of other protocols are never "stale" and never written: a desired prefix
//! that another protocol already holds at the agent's metric is left alone and reported in
//! [`Changes::foreign`] (the kernel's replace would overwrite it). Fail-static is the caller's
//! part: while the controller is away it simply does not call `reconcile`, and the routes stay.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::netlink::{own_routes, Netlink, Prefix, Result, Route, RTPROT_NEXTHOP};

/// The metric of every route the agent programs (`metric 0`, the kernel default for
/// `ip route add`). One route per prefix, multipath when it has several next hops.
pub const METRIC: u32 = 0;
/// The metric of the agent's IPv6 routes (what the kernel makes of 0).
pub const METRIC6: u32 = 1024;

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
    /// Desired routes the [`Guard`] refused, with why.
    pub refused: Vec<(Route, String)>,
    /// Routes the kernel would not take (or delete), with its error; the others were applied.
    pub failed: Vec<(Route, String)>,
}

/// What the agent will not program, whatever the controller says.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    /// The addresses the host reaches its controllers on: a route that would become the
    /// longest match for one of them is refused (it would take over the path to the controller,
    /// and with it the agent's only way to be told to undo it).
    pub protect: Vec<IpAddr>,
    /// When not empty, only routes inside one of these prefixes are programmed (`--allow`).
    pub allow: Vec<Prefix>,
}

impl Guard {
    /// Why `route` may not be programmed, given the other routes of the table; None: it may.
    fn refuses(&self, route: &Route, others: &[crate::netlink::KernelRoute]) -> Option<String> {
        if !self.allow.is_empty() && !self.allow.iter().any(|a| a.covers(&route.prefix)) {
            let allowed: Vec<String> = self.allow.iter().map(ToString::to_string).collect();
            return Some(format!("outside --allow {}", allowed.join(", ")));
        }
        for &c in &self.protect {
            if !route.prefix.contains(c) {
                continue;
            }
            // The host's own way to the controller: the longest route of another owner.
            let now = others
                .iter()
                .filter(|r| r.prefix.contains(c))
                .max_by_key(|r| r.prefix.len());
            match now {
                Some(r) if r.prefix.len() > route.prefix.len() => {}
                Some(r) => {
                    return Some(format!(
                        "it would take over the route to controller {c} (now {})",
                        r.prefix
                    ))
                }
                None => {
                    return Some(format!(
                        "it would become the route to controller {c} (no other route reaches it)"
                    ))
                }
            }
        }
        None
    }
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.replaced.is_empty()
            && self.removed.is_empty()
            && self.foreign.is_empty()
            && self.refused.is_empty()
            && self.failed.is_empty()
    }
}

/// The metric of the agent's routes: [`METRIC`] for IPv4; for IPv6 the kernel stores metric 0
/// as 1024 (IP6_RT_PRIO_USER), so the agent asks for [`METRIC6`] and finds its routes again.
fn metric(p: &Prefix) -> u32 {
    if p.is_ipv4() {
        METRIC
    } else {
        METRIC6
    }
}

/// [`reconcile_guarded`] with no guard.
pub fn reconcile(nl: &mut Netlink, desired: &[(Prefix, Vec<IpAddr>)]) -> Result<Changes> {
    reconcile_guarded(nl, desired, &Guard::default())
}

/// Makes the kernel's protocol-200 routes in the main table equal `desired` (prefix →
/// gateways, in any order; a prefix listed twice keeps its last gateways; a prefix with no
/// gateway is not programmed), less what `guard` refuses. Each
/// route is applied on its own: one the kernel refuses is reported in [`Changes::failed`] and
/// the others are applied; running it again retries it. Only a failed dump is an error.
pub fn reconcile_guarded(
    nl: &mut Netlink,
    desired: &[(Prefix, Vec<IpAddr>)],
    guard: &Guard,
) -> Result<Changes> {
    let mut want: BTreeMap<Prefix, Route> = desired
        .iter()
        .filter(|(_, g)| !g.is_empty())
        .map(|(p, g)| (*p, Route::new(*p, g.clone(), metric(p))))
        .collect();
    let mut have: BTreeMap<Prefix, Route> = BTreeMap::new();
    let mut ch = Changes::default();
    let table = nl.dump_routes()?;
    let others: Vec<crate::netlink::KernelRoute> = table
        .iter()
        .filter(|r| r.protocol != RTPROT_NEXTHOP)
        .cloned()
        .collect();
    want.retain(|_, route| match guard.refuses(route, &others) {
        Some(why) => {
            ch.refused.push((route.clone(), why));
            false
        }
        None => true,
    });
    let foreign: BTreeMap<Prefix, u8> = table
        .iter()
        .filter(|r| r.protocol != RTPROT_NEXTHOP && r.metric == metric(&r.prefix))
        .map(|r| (r.prefix, r.protocol))
        .collect();
    for r in own_routes(&table) {
        if r.metric == metric(&r.prefix) && want.contains_key(&r.prefix) {
            have.insert(r.prefix, r);
        } else {
            // Not wanted, or ours at a metric the agent never uses (an older version's).
            match nl.delete_route(r.prefix, r.metric) {
                Ok(()) => ch.removed.push(r),
                Err(e) => ch.failed.push((r, e.to_string())),
            }
        }
    }
    for (&prefix, route) in &want {
        if let Some(&protocol) = foreign.get(&prefix) {
            ch.foreign.push((prefix, protocol));
            continue;
        }
        let route = route.clone();
        match have.get(&prefix) {
            Some(old) if old.gateways == route.gateways => {}
            Some(old) => match nl.replace_unchecked(&route) {
                Ok(()) => ch.replaced.push((old.clone(), route)),
                Err(e) => ch.failed.push((route, e.to_string())),
            },
            None => match nl.replace_unchecked(&route) {
                Ok(()) => ch.added.push(route),
                Err(e) => ch.failed.push((route, e.to_string())),
            },
        }
    }
    Ok(ch)
}
