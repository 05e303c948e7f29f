//! The controller's answers built from its owners' state, in the API's contract types: one
//! function per answer, used by the API and by the system harness, so what an agent is sent in
//! a test is what it is sent in production.

use api_types::{
    EffectiveRoute, EffectiveRoutes, NextHopType, RouteSource, RouteState, TraceAnswer, TraceFlow,
};

/// One effective route as the API sends it (SPEC §6, the reference's NIC output).
pub fn effective_route(r: &fabric::Route) -> EffectiveRoute {
    EffectiveRoute {
        address_prefix: vec![r.prefix.to_string()],
        load_balancer: r.load_balancer.clone(),
        next_hop_ip_address: r.next_hop_ips.iter().map(|a| a.to_string()).collect(),
        next_hop_type: match r.next_hop_type {
            fabric::NextHopType::VnetLocal => NextHopType::VnetLocal,
            fabric::NextHopType::VNetPeering => NextHopType::VNetPeering,
            fabric::NextHopType::Internet => NextHopType::Internet,
            fabric::NextHopType::VirtualNetworkGateway => NextHopType::VirtualNetworkGateway,
        },
        reason: r.reason.clone(),
        source: match r.source {
            fabric::RouteSource::Default => RouteSource::Default,
            fabric::RouteSource::VirtualNetworkGateway => RouteSource::VirtualNetworkGateway,
        },
        state: match r.state {
            fabric::RouteState::Active => RouteState::Active,
            fabric::RouteState::Invalid => RouteState::Invalid,
            fabric::RouteState::Inactive => RouteState::Inactive,
        },
    }
}

/// A NIC's effective routes: all of them, or (with `since` a version the table's log still
/// reaches) only the routes of the prefixes changed after it, listed in `changed` (a prefix
/// listed with no route was removed). A version from the future (a restarted controller counts
/// from 0 again) gets the whole table, like one older than the log.
pub fn effective_routes(t: &fabric::TableView<'_>, since: Option<u64>) -> EffectiveRoutes {
    let since = since.filter(|v| *v <= t.version());
    match since.and_then(|v| t.changes_since(v).map(|c| (v, c))) {
        Some((v, changed)) => EffectiveRoutes {
            value: changed
                .iter()
                .flat_map(|p| t.get(p))
                .map(|r| effective_route(&r))
                .collect(),
            changed: Some(changed.iter().map(ToString::to_string).collect()),
            since: Some(v),
            version: t.version(),
        },
        None => EffectiveRoutes {
            value: t.routes().iter().map(effective_route).collect(),
            changed: None,
            since: None,
            version: t.version(),
        },
    }
}

/// Where a flow from `nic` goes, and why: the one trace. The API answers `nexthop trace` with it,
/// and `crates/sim/tests/trace_agrees.rs` checks it against the simulated data plane flow by
/// flow. `route` is what the NIC's table chose for the destination (`TableView::lookup`);
/// `predicted` is what the route's load balancer would pick for this flow
/// (`lb::Balancer::predict`), None when it has no usable backend.
pub fn trace(
    nic: &str,
    flow: TraceFlow,
    route: Option<&fabric::Route>,
    predicted: Option<std::net::IpAddr>,
) -> TraceAnswer {
    let mut out = TraceAnswer {
        backend: None,
        dropped: None,
        load_balancer: None,
        nic: nic.to_string(),
        route: None,
        why: None,
        flow,
    };
    let Some(route) = route else {
        out.dropped = Some("no route matches (no active route covers the destination)".into());
        return out;
    };
    out.why = Some(format!(
        "longest prefix match: {} ({}) is the most specific active route covering {}",
        route.prefix, route.source, out.flow.dst
    ));
    out.route = Some(effective_route(route));
    if let Some(lb) = &route.load_balancer {
        out.load_balancer = Some(lb.clone());
        match predicted {
            Some(b) => out.backend = Some(b),
            None => {
                out.dropped = Some(format!(
                    "load balancer {lb} has no healthy backend (no_healthy_backends = drop)"
                ))
            }
        }
    }
    out
}
