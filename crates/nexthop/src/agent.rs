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
use serde_json::Value;
use tracing::{info, warn};

/// How long the controller may hold one long poll (below the CLI client's 30 s read timeout).
pub const WAIT_S: u64 = 20;

/// The NIC's effective routes as last answered: prefix → routes of that prefix (a prefix may
/// have several, e.g. an Active one and an Invalid one).
pub type RouteMap = BTreeMap<String, Vec<Value>>;

fn prefix_of(route: &Value) -> Option<String> {
    route
        .get("addressPrefix")?
        .as_array()?
        .first()?
        .as_str()
        .map(str::to_string)
}

/// Merges one answer of `/v1/effective-routes` into `map` and returns its version. A full
/// answer (no `changed`) replaces the map; an incremental one replaces the routes of each
/// prefix in `changed` (a changed prefix without a route in `value` was removed).
pub fn merge(map: &mut RouteMap, answer: &Value) -> anyhow::Result<u64> {
    let version = answer
        .get("version")
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("effective routes answer without a version"))?;
    let routes = answer
        .get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("effective routes answer without a value array"))?;
    match answer.get("changed").and_then(Value::as_array) {
        Some(changed) => {
            for p in changed.iter().filter_map(Value::as_str) {
                map.remove(p);
            }
        }
        None => map.clear(),
    }
    for r in routes {
        let p = prefix_of(r).ok_or_else(|| anyhow!("route without addressPrefix: {r}"))?;
        map.entry(p).or_default().push(r.clone());
    }
    Ok(version)
}

/// The kernel routes the map asks for: per prefix, its Active route when that goes to a
/// virtual network gateway, via its first next hop address.
pub fn desired(map: &RouteMap) -> Vec<(linux::Prefix, Ipv4Addr)> {
    let mut out = Vec::new();
    for (p, routes) in map {
        let Some(active) = routes
            .iter()
            .find(|r| r.get("state").and_then(Value::as_str) == Some("Active"))
        else {
            continue;
        };
        if active.get("nextHopType").and_then(Value::as_str) != Some("VirtualNetworkGateway") {
            continue;
        }
        let gw = active
            .get("nextHopIpAddress")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Ipv4Addr>().ok());
        match (p.parse::<linux::Prefix>(), gw) {
            (Ok(prefix), Some(gw)) => out.push((prefix, gw)),
            _ => warn!(prefix = %p, "effective route not programmable (prefix or next hop)"),
        }
    }
    out
}

/// The path of the next question: the whole table, or a long poll from `version` held up to
/// `wait_s` seconds.
pub fn poll_path(nic: &str, version: Option<u64>, wait_s: u64) -> String {
    let nic = crate::cli::encode(nic);
    match version {
        Some(v) => format!("/v1/effective-routes?nic={nic}&since={v}&wait={wait_s}"),
        None => format!("/v1/effective-routes?nic={nic}"),
    }
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
        let answer = match crate::cli::get_json(controller, &poll_path(nic, version, wait)) {
            Ok(a) => a,
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
        let full = answer.get("changed").is_none();
        match merge(&mut map, &answer) {
            Ok(v) => version = Some(v),
            Err(e) => {
                warn!(error = %e, "bad answer from the controller; fetching the whole table");
                version = None;
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        }
        if !full {
            if let Some(changed) = answer
                .get("changed")
                .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
            {
                info!(version = ?version, %changed, "effective routes changed");
            }
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
    use serde_json::json;

    fn route(p: &str, state: &str, ty: &str, nh: &[&str]) -> Value {
        json!({"source": "VirtualNetworkGateway", "state": state, "addressPrefix": [p],
               "nextHopType": ty, "nextHopIpAddress": nh, "loadBalancer": null, "reason": null})
    }

    #[test]
    fn full_then_incremental() {
        let mut m = RouteMap::new();
        let full = json!({"value": [
            route("10.1.0.0/16", "Active", "VnetLocal", &[]),
            route("192.168.10.0/24", "Active", "VirtualNetworkGateway", &["10.1.0.100"]),
            route("192.168.20.0/24", "Active", "VirtualNetworkGateway", &["10.1.2.10", "10.1.2.11"]),
        ], "version": 5});
        assert_eq!(merge(&mut m, &full).unwrap(), 5);
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
        assert_eq!(merge(&mut m, &inc).unwrap(), 8);
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
        merge(&mut m, &none).unwrap();
        assert_eq!(desired(&m).len(), 1);
        // A full answer replaces everything.
        let full2 = json!({"value": [], "version": 1});
        merge(&mut m, &full2).unwrap();
        assert!(m.is_empty() && desired(&m).is_empty());
    }

    #[test]
    fn active_route_of_prefix_decides() {
        let mut m = RouteMap::new();
        let a = json!({"value": [
            route("0.0.0.0/0", "Invalid", "VirtualNetworkGateway", &["10.1.0.100"]),
            route("0.0.0.0/0", "Active", "Internet", &[]),
        ], "version": 2});
        merge(&mut m, &a).unwrap();
        assert!(desired(&m).is_empty());
    }

    #[test]
    fn malformed_answers() {
        let mut m = RouteMap::new();
        assert!(merge(&mut m, &json!({"value": []})).is_err());
        assert!(merge(&mut m, &json!({"version": 1})).is_err());
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
