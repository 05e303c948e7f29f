//! `nexthop agent`: the host agent. Follows one NIC's effective routes from the controller
//! (long poll on `/v1/effective-routes?nic=NAME&since=V&wait=S`) and keeps the kernel's
//! nexthop-owned routes (protocol 200) equal to the routes of it that go through a virtual
//! network gateway (a load balancer frontend or an NVA): `PREFIX via NEXT_HOP proto 200`.
//!
//! ```text
//!  controller ──full table, then incremental answers──> merge ──> RouteMap ──desired()──>
//!      linux::agent::reconcile ──> kernel FIB
//! ```
//!
//! Fail static: while the controller is unreachable nothing is written, so the programmed
//! routes stay. On reconnect the agent fetches the whole table again and reconciles, which
//! removes the routes that went stale meanwhile.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use api_types::{EffectiveRoute, EffectiveRoutes, EffectiveRoutesQuery, NextHopType, RouteState};
use tracing::{info, warn};

/// How long the controller may hold one long poll (below the CLI client's 30 s read timeout).
pub const WAIT_S: u64 = 20;

/// The NIC's effective routes as last answered: prefix → routes of that prefix (a prefix may
/// have several, e.g. an Active one and an Invalid one).
pub type RouteMap = BTreeMap<String, Vec<EffectiveRoute>>;

/// The kernel route an effective route asks for: `None` unless it is an Active route to a
/// virtual network gateway; then its prefix via its first next hop address, or an error when
/// those are not an IPv4 prefix and address.
fn kernel_route(r: &EffectiveRoute) -> Result<Option<(linux::Prefix, Ipv4Addr)>, String> {
    if r.state != RouteState::Active || r.next_hop_type != NextHopType::VirtualNetworkGateway {
        return Ok(None);
    }
    let p = r.prefix().unwrap_or_default();
    let prefix = p
        .parse::<linux::Prefix>()
        .map_err(|e| format!("prefix {p:?}: {e}"))?;
    let gw = r
        .next_hop_ip_address
        .first()
        .and_then(|a| a.parse::<Ipv4Addr>().ok())
        .ok_or_else(|| format!("{p}: no IPv4 next hop in {:?}", r.next_hop_ip_address))?;
    Ok(Some((prefix, gw)))
}

/// Reads one answer of `/v1/effective-routes` (strictly: an unknown, renamed or missing field
/// or an unknown value is an error) and merges it into `map`. On error `map` is left as it was,
/// so the kernel is too: an answer this agent does not understand never becomes an empty
/// route set, which would delete every route.
pub fn take_answer(map: &mut RouteMap, body: &str) -> anyhow::Result<EffectiveRoutes> {
    let answer: EffectiveRoutes = crate::cli::decode(body)?;
    merge(map, &answer)?;
    Ok(answer)
}

/// Merges one answer of `/v1/effective-routes` into `map` and returns its version. A full
/// answer (no `changed`) replaces the map; an incremental one replaces the routes of each
/// prefix in `changed` (a changed prefix without a route in `value` was removed). An answer
/// with a route this agent could not program is refused whole, before `map` changes.
pub fn merge(map: &mut RouteMap, answer: &EffectiveRoutes) -> anyhow::Result<u64> {
    for r in &answer.value {
        if r.prefix().is_none() {
            return Err(anyhow!("route without addressPrefix: {r:?}"));
        }
        kernel_route(r).map_err(|e| anyhow!("route not programmable: {e}"))?;
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
pub fn desired(map: &RouteMap) -> Vec<(linux::Prefix, Ipv4Addr)> {
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

/// The path of the next question: the whole table, or a long poll from `version` held up to
/// `wait_s` seconds.
pub fn poll_path(nic: &str, version: Option<u64>, wait_s: u64) -> String {
    EffectiveRoutesQuery {
        nic: Some(nic.to_string()),
        since: version,
        wait: version.map(|_| wait_s),
    }
    .path()
}

/// During the grace period after a reconnect: `desired`, plus the routes `kept` from before
/// whose prefix `desired` lacks (a restarted controller has not relearned them yet). Changes
/// and additions apply at once; only removals wait for the grace period to end.
pub fn with_grace(
    desired: &[(linux::Prefix, Ipv4Addr)],
    kept: &[(linux::Prefix, Ipv4Addr)],
) -> Vec<(linux::Prefix, Ipv4Addr)> {
    let mut m: BTreeMap<linux::Prefix, Ipv4Addr> = kept.iter().copied().collect();
    m.extend(desired.iter().copied());
    m.into_iter().collect()
}

fn summary(ch: &linux::Changes) -> String {
    let mut parts = Vec::new();
    for r in &ch.added {
        parts.push(format!("+{} via {}", r.prefix, r.gateway));
    }
    for (o, n) in &ch.replaced {
        parts.push(format!(
            "~{} via {} (was {})",
            n.prefix, n.gateway, o.gateway
        ));
    }
    for r in &ch.removed {
        parts.push(format!("-{} via {}", r.prefix, r.gateway));
    }
    for (p, proto) in &ch.foreign {
        parts.push(format!("!{p} held by protocol {proto}"));
    }
    format!(
        "{} added, {} replaced, {} removed, {} foreign: {}",
        ch.added.len(),
        ch.replaced.len(),
        ch.removed.len(),
        ch.foreign.len(),
        parts.join(", ")
    )
}

/// Runs the agent until killed. After a reconnect, routes the controller no longer lists are
/// removed only once `grace` has passed (a restarted controller relearns its BGP routes first).
pub fn run(controller: &str, nic: &str, grace: Duration) -> anyhow::Result<()> {
    let mut nl = linux::Netlink::open().context("opening rtnetlink")?;
    let mut map = RouteMap::new();
    let mut version: Option<u64> = None;
    // What the kernel was last reconciled to, and whether it must be reconciled again anyway.
    let mut programmed: Vec<(linux::Prefix, Ipv4Addr)> = Vec::new();
    let mut dirty = true;
    let mut reachable = true;
    let mut grace_until: Option<Instant> = None;
    loop {
        let wait = if grace_until.is_some() { 1 } else { WAIT_S };
        // An error status counts as unreachable (the controller cannot answer now); an answer
        // it gives that this agent cannot read is a bad answer. Both leave the kernel as it is.
        let body = crate::cli::request(controller, "GET", &poll_path(nic, version, wait))
            .and_then(|(status, body)| crate::cli::check_status(status, &body).map(|()| body));
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                if reachable {
                    warn!(error = %format!("{e:#}"), "controller unreachable: keeping the kernel routes (fail static), retrying every second");
                    eprintln!(
                        "agent: controller unreachable ({e:#}); kernel routes left as they are"
                    );
                    grace_until = None;
                }
                reachable = false;
                version = None;
                dirty = true;
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if !reachable {
            info!("controller back: fetching the whole table");
            eprintln!(
                "agent: controller reachable again; reconciling the whole table (removals after {grace:?})"
            );
            reachable = true;
            grace_until = Some(Instant::now() + grace);
        }
        let answer = match take_answer(&mut map, &body) {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "bad answer from the controller: keeping the kernel routes; fetching the whole table");
                version = None;
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        version = Some(answer.version);
        if let Some(changed) = answer.changed.as_ref().filter(|c| !c.is_empty()) {
            info!(version = ?version, changed = ?changed, "effective routes changed");
        }
        let mut want = desired(&map);
        if let Some(until) = grace_until {
            if Instant::now() < until {
                want = with_grace(&want, &programmed);
            } else {
                grace_until = None;
            }
        }
        if !dirty && programmed == want {
            continue;
        }
        match linux::reconcile(&mut nl, &want) {
            Ok(ch) => {
                if !ch.is_empty() {
                    info!(version = ?version, summary = %summary(&ch), "kernel routes reconciled");
                    println!("v{}: {}", version.unwrap_or(0), summary(&ch));
                }
                programmed = want;
                dirty = false;
            }
            Err(e) => {
                warn!(error = %e, "reconcile failed; retrying from the whole table");
                eprintln!("agent: reconcile failed: {e}");
                version = None;
                dirty = true;
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn route(p: &str, state: &str, ty: &str, nh: &[&str]) -> Value {
        json!({"source": "VirtualNetworkGateway", "state": state, "addressPrefix": [p],
               "nextHopType": ty, "nextHopIpAddress": nh, "loadBalancer": null, "reason": null})
    }

    /// One answer as the loop takes it: its JSON text, read and merged.
    fn take(m: &mut RouteMap, answer: &Value) -> anyhow::Result<u64> {
        take_answer(m, &answer.to_string()).map(|a| a.version)
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
        assert_eq!(
            d,
            vec![
                (
                    "192.168.10.0/24".parse().unwrap(),
                    Ipv4Addr::new(10, 1, 0, 100)
                ),
                (
                    "192.168.20.0/24".parse().unwrap(),
                    Ipv4Addr::new(10, 1, 2, 10)
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
                Ipv4Addr::new(10, 1, 2, 11)
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
        assert_eq!(
            poll_path("vm1-nic", None, 20),
            "/v1/effective-routes?nic=vm1-nic"
        );
        assert_eq!(
            poll_path("vm1-nic", Some(7), 20),
            "/v1/effective-routes?nic=vm1-nic&since=7&wait=20"
        );
        assert_eq!(
            poll_path("nic a&b", None, 20),
            "/v1/effective-routes?nic=nic%20a%26b"
        );
    }

    #[test]
    fn grace_keeps_old_routes_and_takes_new_gateways() {
        let p = |s: &str| s.parse::<linux::Prefix>().unwrap();
        let a = Ipv4Addr::new(10, 1, 0, 100);
        let b = Ipv4Addr::new(10, 1, 2, 10);
        let kept = vec![(p("192.168.10.0/24"), a), (p("192.168.20.0/24"), a)];
        let desired = vec![(p("192.168.20.0/24"), b), (p("192.168.30.0/24"), b)];
        assert_eq!(
            with_grace(&desired, &kept),
            vec![
                (p("192.168.10.0/24"), a),
                (p("192.168.20.0/24"), b),
                (p("192.168.30.0/24"), b)
            ]
        );
        assert_eq!(with_grace(&desired, &[]), desired);
    }
}
