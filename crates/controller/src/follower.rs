//! What `nexthop agent` decides, sans-IO: it follows one NIC's effective routes from one or
//! more controllers and says which kernel routes (`PREFIX via NEXT_HOP proto 200`) to program.
//!
//! ```text
//!  answer text of controller i ──Input::Answer(i)──> strict read ──merge──> its RouteMap ──┐
//!  no answer from i ──Input::Unreachable(i)──> its map stays (fail static)                 v
//!  reconcile result ──Input::Reconciled──>     union of the controllers' routes ──> Effect::Program
//! ```
//!
//! Fail static: while a controller is unreachable, or answers something this agent does not
//! understand (an unknown or missing field, an unknown value), what it last said stays; its next
//! question is the whole table. After a reconnect, routes a controller no longer lists are
//! removed only once the grace period has passed: a restarted controller relearns its BGP
//! routes first. Additions and changes apply at once.
//!
//! Several controllers (one per route server instance, on separate hosts): the kernel gets the
//! union of what they say, per prefix. A silent controller's last answer counts until
//! `stale_after` has passed while another controller answers; then it is dropped (with no
//! other controller answering, it is kept: fail static). Where controllers disagree on a
//! prefix's gateway, the first controller (in the order given) that answers wins, then the
//! silent ones in order. The first reconcile waits until every controller has answered or
//! failed once.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use api_types::{EffectiveRoute, EffectiveRoutes, EffectiveRoutesQuery, NextHopType, RouteState};
use tracing::{info, warn};

/// One kernel route: the prefix via the gateway.
/// A prefix and its gateways (one, or several for an ECMP set: one multipath kernel route),
/// sorted.
pub type KernelRoute = (linux::Prefix, Vec<IpAddr>);

/// The NIC's effective routes as last answered: prefix → routes of that prefix (a prefix may
/// have several, e.g. an Active one and an Invalid one).
pub type RouteMap = BTreeMap<String, Vec<EffectiveRoute>>;

/// How long the controller may hold one long poll (below the CLI client's 30 s read timeout).
pub const WAIT_S: u64 = 20;

/// The pause after a failure (no answer, a bad answer, a failed reconcile) before asking again.
pub const RETRY: Duration = Duration::from_secs(1);

/// The longest pause after failed reconciles in a row (the pause doubles from [`RETRY`]).
pub const MAX_RETRY: Duration = Duration::from_secs(32);

/// How long a silent controller's last answer counts while another one answers (`--stale-after`).
pub const STALE_AFTER: Duration = Duration::from_secs(300);

/// What the follower is told. Controllers are numbered in the order they were given.
#[derive(Debug)]
pub enum Input<'a> {
    /// The text of controller `.0`'s answer to the question [`Follower::poll_path`] gave.
    Answer(usize, &'a str),
    /// No answer from controller `.0` (connection refused, timeout, an error status): why.
    Unreachable(usize, String),
    /// The result of the last [`Effect::Program`].
    Reconciled(Result<(), String>),
}

/// What the follower asks of its driver.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// Make the kernel's nexthop-owned routes exactly these, then report [`Input::Reconciled`].
    Program(Vec<KernelRoute>),
    /// Wait this long before asking again the controller whose input this answers.
    Wait(Duration),
}

/// What one controller said, and whether it is heard.
#[derive(Debug, Default)]
struct Source {
    map: RouteMap,
    /// The version of its last answer merged; None: the next question is the whole table.
    version: Option<u64>,
    reachable: bool,
    /// When its last answer was understood.
    heard: Option<Instant>,
    grace_until: Option<Instant>,
    /// What it asked for when it went silent: kept during its grace period after it is back.
    held: Vec<KernelRoute>,
    /// Silent for longer than `stale_after` while another answered: it counts for nothing.
    stale: bool,
    /// Not asked yet (no answer, no failure): the first reconcile waits for every controller,
    /// so a controller that answers first cannot remove what another one lists.
    unheard: bool,
}

impl Source {
    /// The kernel routes this controller asks for now.
    fn wants(&self, now: Instant) -> Vec<KernelRoute> {
        if self.stale {
            return Vec::new();
        }
        let want = desired(&self.map);
        match self.grace_until {
            Some(until) if now < until => with_grace(&want, &self.held),
            _ => want,
        }
    }
}

/// The state of one agent.
#[derive(Debug)]
pub struct Follower {
    sources: Vec<Source>,
    /// What the kernel was last programmed to (reported by [`Input::Reconciled`]).
    programmed: Vec<KernelRoute>,
    /// Asked to program, not yet reported.
    pending: Option<Vec<KernelRoute>>,
    /// The kernel must be reconciled again even if `programmed` matches (after a failure or a
    /// reconnect: something may have changed it meanwhile).
    dirty: bool,
    grace: Duration,
    stale_after: Duration,
    /// Failed reconciles in a row (a route the kernel keeps refusing): the pause doubles.
    failures: u32,
}

/// The kernel route an effective route asks for: `None` unless it is an Active route to a
/// virtual network gateway; then its prefix via every next hop address of the prefix's family
/// (IPv4 or IPv6; several make one multipath route), or an error when there is none or the
/// prefix does not parse.
fn kernel_route(r: &EffectiveRoute) -> Result<Option<KernelRoute>, String> {
    if r.state != RouteState::Active || r.next_hop_type != NextHopType::VirtualNetworkGateway {
        return Ok(None);
    }
    let p = r.prefix().unwrap_or_default();
    let prefix = p
        .parse::<linux::Prefix>()
        .map_err(|e| format!("prefix {p:?}: {e}"))?;
    let mut gws: Vec<IpAddr> = r
        .next_hop_ip_address
        .iter()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .filter(|a| a.is_ipv4() == prefix.is_ipv4())
        .collect();
    gws.sort();
    gws.dedup();
    if gws.is_empty() {
        return Err(format!(
            "{p}: no next hop of its family in {:?}",
            r.next_hop_ip_address
        ));
    }
    Ok(Some((prefix, gws)))
}

/// Reads one answer of `/v1/effective-routes` strictly (an unknown, renamed or missing field or
/// an unknown value is an error) and merges it into `map`. On error `map` is left as it was, so
/// the kernel is too: an answer this agent does not understand never becomes an empty route
/// set, which would delete every route.
pub fn take_answer(map: &mut RouteMap, body: &str) -> Result<EffectiveRoutes, String> {
    let answer: EffectiveRoutes = serde_json::from_str(body).map_err(|e| {
        format!("answer not understood: {e} (a controller of another version than this agent?)")
    })?;
    merge(map, &answer)?;
    Ok(answer)
}

/// Merges one answer into `map` and returns its version. A full answer (no `changed`) replaces
/// the map; an incremental one replaces the routes of each prefix in `changed` (a changed
/// prefix without a route in `value` was removed). An answer with a route this agent could not
/// program is refused whole, before `map` changes.
pub fn merge(map: &mut RouteMap, answer: &EffectiveRoutes) -> Result<u64, String> {
    for r in &answer.value {
        if r.prefix().is_none() {
            return Err(format!("route without addressPrefix: {r:?}"));
        }
        kernel_route(r).map_err(|e| format!("route not programmable: {e}"))?;
    }
    match &answer.changed {
        Some(changed) => {
            for p in changed {
                map.remove(p);
            }
        }
        None => map.clear(),
    }
    for r in &answer.value {
        let p = r.prefix().unwrap_or_default().to_string();
        map.entry(p).or_default().push(r.clone());
    }
    Ok(answer.version)
}

/// The kernel routes the map asks for: per prefix, its Active route when that goes to a
/// virtual network gateway, via its first next hop address.
pub fn desired(map: &RouteMap) -> Vec<KernelRoute> {
    let mut out = Vec::new();
    for (p, routes) in map {
        let Some(active) = routes.iter().find(|r| r.state == RouteState::Active) else {
            continue;
        };
        // `merge` refused answers with a route `kernel_route` rejects.
        match kernel_route(active) {
            Ok(Some(r)) => out.push(r),
            Ok(None) => {}
            Err(e) => warn!(prefix = %p, "effective route not programmable: {e}"),
        }
    }
    out
}

/// During the grace period after a reconnect: `desired`, plus the routes `kept` from before
/// whose prefix `desired` lacks (a restarted controller has not relearned them yet).
pub fn with_grace(desired: &[KernelRoute], kept: &[KernelRoute]) -> Vec<KernelRoute> {
    let mut m: BTreeMap<linux::Prefix, Vec<IpAddr>> = kept.iter().cloned().collect();
    m.extend(desired.iter().cloned());
    m.into_iter().collect()
}

impl Follower {
    /// An agent following one controller.
    pub fn new(grace: Duration) -> Self {
        Self::with_controllers(1, grace, STALE_AFTER)
    }

    /// An agent following `n` controllers (at least one). It asks each for the whole table
    /// first and programs what they say (routes left in the kernel from before it started and
    /// not listed are removed at once).
    pub fn with_controllers(n: usize, grace: Duration, stale_after: Duration) -> Self {
        Self {
            sources: (0..n.max(1))
                .map(|_| Source {
                    reachable: true,
                    unheard: true,
                    ..Source::default()
                })
                .collect(),
            programmed: Vec::new(),
            pending: None,
            dirty: true,
            grace,
            stale_after,
            failures: 0,
        }
    }

    /// The next question to controller `from`: the whole table, or a long poll from the
    /// version held (short during its grace period, so the end is noticed).
    pub fn poll_path(&self, from: usize, nic: &str) -> String {
        let s = &self.sources[from];
        let wait = if s.grace_until.is_some() { 1 } else { WAIT_S };
        EffectiveRoutesQuery {
            nic: Some(nic.to_string()),
            since: s.version,
            wait: s.version.map(|_| wait),
        }
        .path()
    }

    /// What the kernel was last programmed to.
    pub fn programmed(&self) -> &[KernelRoute] {
        &self.programmed
    }

    /// The version of controller `from`'s last answer.
    pub fn version(&self, from: usize) -> Option<u64> {
        self.sources[from].version
    }

    /// Per controller: whether its last answer came and its routes count (not stale).
    pub fn heard(&self) -> Vec<bool> {
        self.sources
            .iter()
            .map(|s| s.reachable && !s.stale)
            .collect()
    }

    pub fn handle(&mut self, now: Instant, input: Input<'_>) -> Vec<Effect> {
        match input {
            Input::Unreachable(from, why) => {
                let s = &mut self.sources[from];
                s.unheard = false;
                if s.reachable {
                    warn!(controller = from, error = %why, "controller unreachable: keeping its routes (fail static), retrying every second");
                    s.held = s.wants(now);
                    s.grace_until = None;
                }
                s.reachable = false;
                s.version = None;
                self.dirty = true;
                // Only a controller going stale changes what the kernel should hold.
                let mut fx = Vec::new();
                if self.expire(now) {
                    fx.extend(self.program(now));
                }
                fx.push(Effect::Wait(RETRY));
                fx
            }
            Input::Answer(from, body) => self.answer(now, from, body),
            Input::Reconciled(Ok(())) => {
                if let Some(p) = self.pending.take() {
                    self.programmed = p;
                }
                self.dirty = false;
                self.failures = 0;
                Vec::new()
            }
            Input::Reconciled(Err(e)) => {
                // Some routes went in and some did not: what was asked stands as the grace
                // period's reference, and the whole tables are asked again after a pause that
                // doubles while the kernel keeps refusing.
                if let Some(p) = self.pending.take() {
                    self.programmed = p;
                }
                for s in &mut self.sources {
                    s.version = None;
                }
                self.dirty = true;
                let wait = RETRY
                    .saturating_mul(1 << self.failures.min(5))
                    .min(MAX_RETRY);
                self.failures += 1;
                warn!(error = %e, retry_in = ?wait, "reconcile incomplete; retrying from the whole table");
                vec![Effect::Wait(wait)]
            }
        }
    }

    /// Marks stale the silent controllers not heard for `stale_after` while another one is
    /// heard; true when one went stale now.
    fn expire(&mut self, now: Instant) -> bool {
        if !self.sources.iter().any(|s| s.reachable) {
            return false;
        }
        let mut changed = false;
        for (i, s) in self.sources.iter_mut().enumerate() {
            let silent_since = s
                .heard
                .map_or(true, |h| now.duration_since(h) >= self.stale_after);
            if !s.reachable && !s.stale && silent_since {
                warn!(controller = i, after = ?self.stale_after, "controller silent too long while another answers: its routes no longer count");
                s.stale = true;
                s.map.clear();
                s.held.clear();
                changed = true;
            }
        }
        changed
    }

    /// What the controllers ask for together: per prefix, the gateways of the first controller
    /// that answers and lists it, else of the first silent one.
    fn union(&self, now: Instant) -> Vec<KernelRoute> {
        let mut m: BTreeMap<linux::Prefix, Vec<IpAddr>> = BTreeMap::new();
        for heard in [true, false] {
            for s in self.sources.iter().filter(|s| s.reachable == heard) {
                for (p, gw) in s.wants(now) {
                    m.entry(p).or_insert(gw);
                }
            }
        }
        m.into_iter().collect()
    }

    /// An [`Effect::Program`] when the union differs from the kernel (or the kernel is dirty).
    fn program(&mut self, now: Instant) -> Option<Effect> {
        for s in &mut self.sources {
            if s.grace_until.is_some_and(|until| now >= until) {
                s.grace_until = None;
            }
        }
        if self.sources.iter().any(|s| s.unheard) {
            return None;
        }
        let want = self.union(now);
        if !self.dirty && self.programmed == want {
            return None;
        }
        self.pending = Some(want.clone());
        Some(Effect::Program(want))
    }

    fn answer(&mut self, now: Instant, from: usize, body: &str) -> Vec<Effect> {
        let grace = self.grace;
        let s = &mut self.sources[from];
        s.unheard = false;
        if !s.reachable {
            info!(
                controller = from,
                ?grace,
                "controller back: taking its whole table (removals after the grace period)"
            );
            s.reachable = true;
            s.stale = false;
            s.grace_until = Some(now + grace);
        }
        let answer = match take_answer(&mut s.map, body) {
            Ok(a) => a,
            Err(e) => {
                warn!(controller = from, error = %e, "bad answer from the controller: keeping its routes; fetching the whole table");
                s.version = None;
                return vec![Effect::Wait(RETRY)];
            }
        };
        s.version = Some(answer.version);
        s.heard = Some(now);
        if let Some(changed) = answer.changed.as_ref().filter(|c| !c.is_empty()) {
            info!(
                controller = from,
                version = answer.version,
                ?changed,
                "effective routes changed"
            );
        }
        self.expire(now);
        self.program(now).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::net::Ipv4Addr;

    fn route(p: &str, state: &str, ty: &str, nh: &[&str]) -> Value {
        json!({"source": "VirtualNetworkGateway", "state": state, "addressPrefix": [p],
               "nextHopType": ty, "nextHopIpAddress": nh, "loadBalancer": null, "reason": null})
    }

    /// One answer as the loop takes it: its JSON text, read and merged.
    fn take(m: &mut RouteMap, answer: &Value) -> Result<u64, String> {
        take_answer(m, &answer.to_string()).map(|a| a.version)
    }

    /// A dual-stack network's answer: IPv6 gateway routes are programmed via their IPv6 next
    /// hop, beside the IPv4 ones; system routes of either family are not.
    #[test]
    fn ipv6_routes_beside_ipv4_ones() {
        let mut m = RouteMap::new();
        let full = json!({"value": [
            route("::/0", "Active", "Internet", &[]),
            route("fd00:1::/48", "Active", "VnetLocal", &[]),
            route("fd00:10::/48", "Active", "VirtualNetworkGateway", &["fd00:1::100"]),
            route("192.168.10.0/24", "Active", "VirtualNetworkGateway", &["10.1.0.100"]),
        ], "version": 3});
        assert_eq!(take(&mut m, &full).unwrap(), 3);
        assert_eq!(
            desired(&m),
            vec![
                (
                    "192.168.10.0/24".parse().unwrap(),
                    vec![IpAddr::from(Ipv4Addr::new(10, 1, 0, 100))]
                ),
                (
                    "fd00:10::/48".parse().unwrap(),
                    vec!["fd00:1::100".parse::<IpAddr>().unwrap()]
                ),
            ]
        );
        // A gateway of the other family: the answer is refused whole (nothing changes).
        let bad = json!({"value": [
            route("fd00:11::/48", "Active", "VirtualNetworkGateway", &["10.1.0.100"]),
        ], "version": 4});
        let e = take(&mut m, &bad).unwrap_err();
        assert!(e.contains("no next hop of its family"), "{e}");
        assert_eq!(desired(&m).len(), 2);
    }

    #[test]
    fn full_then_incremental() {
        let mut m = RouteMap::new();
        let full = json!({"value": [
            route("10.1.0.0/16", "Active", "VnetLocal", &[]),
            route("192.168.10.0/24", "Active", "VirtualNetworkGateway", &["10.1.0.100"]),
            route("192.168.20.0/24", "Active", "VirtualNetworkGateway", &["10.1.2.10", "10.1.2.11"]),
        ], "version": 5});
        assert_eq!(take(&mut m, &full).unwrap(), 5);
        let d = desired(&m);
        // An ECMP set (NVAs advertising their own addresses) is one multipath route over every
        // next hop, not the first one only.
        assert_eq!(
            d,
            vec![
                (
                    "192.168.10.0/24".parse().unwrap(),
                    vec![IpAddr::from(Ipv4Addr::new(10, 1, 0, 100))]
                ),
                (
                    "192.168.20.0/24".parse().unwrap(),
                    vec![
                        IpAddr::from(Ipv4Addr::new(10, 1, 2, 10)),
                        IpAddr::from(Ipv4Addr::new(10, 1, 2, 11))
                    ]
                ),
            ]
        );
        // 192.168.10.0/24 removed, 192.168.20.0/24 now via another next hop, a new one Invalid.
        let inc = json!({"value": [
            route("192.168.20.0/24", "Active", "VirtualNetworkGateway", &["10.1.2.11"]),
            route("192.168.30.0/24", "Invalid", "VirtualNetworkGateway", &["10.9.0.1"]),
        ], "version": 8, "since": 5,
           "changed": ["192.168.10.0/24", "192.168.20.0/24", "192.168.30.0/24"]});
        assert_eq!(take(&mut m, &inc).unwrap(), 8);
        assert_eq!(
            desired(&m),
            vec![(
                "192.168.20.0/24".parse().unwrap(),
                vec![IpAddr::from(Ipv4Addr::new(10, 1, 2, 11))]
            )]
        );
        assert!(m.contains_key("10.1.0.0/16"));
        // An empty incremental answer changes nothing.
        let none = json!({"value": [], "version": 8, "since": 8, "changed": []});
        take(&mut m, &none).unwrap();
        assert_eq!(desired(&m).len(), 1);
        // A full answer replaces everything.
        let full2 = json!({"value": [], "version": 1});
        take(&mut m, &full2).unwrap();
        assert!(m.is_empty() && desired(&m).is_empty());
    }

    #[test]
    fn active_route_of_prefix_decides() {
        let mut m = RouteMap::new();
        let a = json!({"value": [
            route("0.0.0.0/0", "Invalid", "VirtualNetworkGateway", &["10.1.0.100"]),
            route("0.0.0.0/0", "Active", "Internet", &[]),
        ], "version": 2});
        take(&mut m, &a).unwrap();
        assert!(desired(&m).is_empty());
    }

    #[test]
    fn malformed_answers() {
        let mut m = RouteMap::new();
        assert!(take(&mut m, &json!({"value": []})).is_err());
        assert!(take(&mut m, &json!({"version": 1})).is_err());
        assert!(take(&mut m, &json!({"value": [], "version": -1})).is_err());
        assert!(take(&mut m, &json!([])).is_err());
        assert!(take_answer(&mut m, "{\"value\": [], \"vers").is_err());
    }

    /// The agent's fail-static promise: an answer it does not understand, full or incremental,
    /// changes neither the map nor the kernel routes it asks for.
    #[test]
    fn answers_not_understood_change_nothing() {
        let mut m = RouteMap::new();
        let good = json!({"value": [
            route("10.1.0.0/16", "Active", "VnetLocal", &[]),
            route("192.168.10.0/24", "Active", "VirtualNetworkGateway", &["10.1.0.100"]),
        ], "version": 5});
        take(&mut m, &good).unwrap();
        let before = m.clone();
        let want = desired(&m);
        assert_eq!(want.len(), 1);

        let full = |r: Value| json!({"value": [r], "version": 6});
        let vng = || {
            route(
                "192.168.10.0/24",
                "Active",
                "VirtualNetworkGateway",
                &["10.1.0.100"],
            )
        };
        let mut unknown_field = vng();
        unknown_field["metric"] = 10.into();
        let mut renamed = vng();
        let nh = renamed
            .as_object_mut()
            .unwrap()
            .remove("nextHopIpAddress")
            .unwrap();
        renamed["nextHopIp"] = nh;
        let mut missing_nullable = vng();
        missing_nullable.as_object_mut().unwrap().remove("reason");
        let mut top_level_unknown = full(vng());
        top_level_unknown["muxes"] = json!(["10.1.0.101"]);
        let bad = [
            full(unknown_field),
            full(renamed),
            full(missing_nullable),
            top_level_unknown,
            // Unknown enum values.
            full(route(
                "192.168.10.0/24",
                "Pending",
                "VirtualNetworkGateway",
                &["10.1.0.100"],
            )),
            full(route(
                "192.168.10.0/24",
                "Active",
                "Blackhole",
                &["10.1.0.100"],
            )),
            full(route(
                "192.168.10.0/24",
                "active",
                "VirtualNetworkGateway",
                &["10.1.0.100"],
            )),
            // Well formed, but not a route this agent can program: refused whole.
            full(route(
                "192.168.10.0/24",
                "Active",
                "VirtualNetworkGateway",
                &[],
            )),
            full(route(
                "192.168.10.0/24",
                "Active",
                "VirtualNetworkGateway",
                &["fd00::1"],
            )),
            full(route(
                "192.168.10.0/33",
                "Active",
                "VirtualNetworkGateway",
                &["10.1.0.100"],
            )),
            json!({"value": [{"source": "VirtualNetworkGateway", "state": "Active", "addressPrefix": [],
                   "nextHopType": "VnetLocal", "nextHopIpAddress": [], "loadBalancer": null, "reason": null}],
                   "version": 6}),
            // An incremental answer that removes the route, with a field renamed.
            json!({"value": [], "version": 6, "since": 5, "changedPrefixes": ["192.168.10.0/24"]}),
        ];
        for b in &bad {
            assert!(take(&mut m, b).is_err(), "accepted: {b}");
            assert_eq!(m, before, "map changed by {b}");
            assert_eq!(desired(&m), want, "desired set changed by {b}");
        }
    }

    #[test]
    fn paths() {
        let mut f = Follower::new(Duration::from_secs(10));
        assert_eq!(
            f.poll_path(0, "vm1-nic"),
            "/v1/effective-routes?nic=vm1-nic"
        );
        assert_eq!(
            f.poll_path(0, "nic a&b"),
            "/v1/effective-routes?nic=nic%20a%26b"
        );
        let now = Instant::now();
        let full = json!({"value": [], "version": 7}).to_string();
        f.handle(now, Input::Answer(0, &full));
        assert_eq!(
            f.poll_path(0, "vm1-nic"),
            "/v1/effective-routes?nic=vm1-nic&since=7&wait=20"
        );
    }

    #[test]
    fn grace_keeps_old_routes_and_takes_new_gateways() {
        let p = |s: &str| s.parse::<linux::Prefix>().unwrap();
        let a = vec![IpAddr::from(Ipv4Addr::new(10, 1, 0, 100))];
        let b = vec![
            IpAddr::from(Ipv4Addr::new(10, 1, 2, 10)),
            IpAddr::from(Ipv4Addr::new(10, 1, 2, 11)),
        ];
        let kept = vec![
            (p("192.168.10.0/24"), a.clone()),
            (p("192.168.20.0/24"), a.clone()),
        ];
        let desired = vec![
            (p("192.168.20.0/24"), b.clone()),
            (p("192.168.30.0/24"), b.clone()),
        ];
        assert_eq!(
            with_grace(&desired, &kept),
            vec![
                (p("192.168.10.0/24"), a),
                (p("192.168.20.0/24"), b.clone()),
                (p("192.168.30.0/24"), b)
            ]
        );
        assert_eq!(with_grace(&desired, &[]), desired);
    }
}
