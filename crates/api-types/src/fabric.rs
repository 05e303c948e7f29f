//! Fabric answers: `GET /v1/effective-routes` (the shape of `az network nic
//! show-effective-route-table`) and `GET /v1/trace`.
//!
//! Fields are declared in alphabetical order, the order the API sends them (see the crate doc).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::names::{NextHopType, RouteSource, RouteState, TraceProto};
use crate::nullable;

/// One effective route of a NIC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EffectiveRoute {
    /// One prefix (a list, as the reference shows it).
    pub address_prefix: Vec<String>,
    /// The load balancer the next hop resolved through; `null` when none.
    #[serde(deserialize_with = "nullable")]
    pub load_balancer: Option<String>,
    pub next_hop_ip_address: Vec<String>,
    pub next_hop_type: NextHopType,
    /// Why the route is `Invalid` or `Inactive`; `null` when it is `Active`.
    #[serde(deserialize_with = "nullable")]
    pub reason: Option<String>,
    pub source: RouteSource,
    pub state: RouteState,
}

impl EffectiveRoute {
    /// The route's prefix (the first of `addressPrefix`).
    pub fn prefix(&self) -> Option<&str> {
        self.address_prefix.first().map(String::as_str)
    }
}

/// `GET /v1/effective-routes?nic=NAME[&since=V[&wait=S]]`.
///
/// Without `since` (or with one the controller cannot answer from, e.g. older than its change
/// log or from before a restart), the whole table: `changed` and `since` absent. With `since`,
/// only the routes of the prefixes changed after it, listed in `changed`; a prefix in
/// `changed` with no route in `value` was removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EffectiveRoutes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    pub value: Vec<EffectiveRoute>,
    /// The NIC's table version this answer brings the client to.
    pub version: u64,
}

impl EffectiveRoutes {
    /// A whole table (not an incremental answer).
    pub fn is_full(&self) -> bool {
        self.changed.is_none()
    }
}

/// The flow a trace follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TraceFlow {
    /// 0 for ICMP.
    pub dport: u16,
    pub dst: IpAddr,
    pub proto: TraceProto,
    /// 0 for ICMP.
    pub sport: u16,
    /// The NIC's address.
    pub src: IpAddr,
}

/// `GET /v1/trace?nic=NAME&dst=IP[&proto=…&sport=N&dport=N]`: where that flow goes, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TraceAnswer {
    /// The backend the load balancer picks, when the route goes through one that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<IpAddr>,
    /// Why the flow goes nowhere: no route, or a load balancer with no usable backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<String>,
    pub flow: TraceFlow,
    /// The load balancer of the route, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<String>,
    pub nic: String,
    /// The route the flow takes; `null` when none matches.
    #[serde(deserialize_with = "nullable")]
    pub route: Option<EffectiveRoute>,
    /// Why that route won; sent with a route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}
