//! The controller's answers built from its owners' state, in the API's contract types: one
//! function per answer, used by the API and by the system harness, so what an agent is sent in
//! a test is what it is sent in production.

use api_types::{EffectiveRoute, EffectiveRoutes, NextHopType, RouteSource, RouteState};

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
