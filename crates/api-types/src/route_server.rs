//! Route server answers: `GET /v1/peers`, `/v1/routes/learned`, `/v1/routes/advertised` and
//! `/v1/rib`, each a [`PerInstance`](crate::PerInstance) of a list.
//!
//! Fields are declared in alphabetical order, the order the API sends them (see the crate doc).

use serde::{Deserialize, Serialize};

use crate::names::{Origin, RouteState, SessionState};
use crate::nullable;

/// A BGP peer of one instance (`nexthop peers`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerView {
    /// The address families both sides offered on the session (`ipv4-unicast`,
    /// `ipv6-unicast`); sent once a session was established.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address_families: Vec<String>,
    /// Why the session last went down or what it last refused; `null` when nothing went wrong.
    #[serde(deserialize_with = "nullable")]
    pub last_error: Option<String>,
    /// BGP messages of any type.
    pub messages_received: u64,
    pub messages_sent: u64,
    pub name: String,
    pub peer_asn: u32,
    pub peer_ip: String,
    /// Routes from the peer in the Loc-RIB.
    pub routes_accepted: u32,
    pub routes_advertised: u32,
    /// Routes held from the peer, accepted and refused.
    pub routes_received: u32,
    /// Prefixes not announced to the peer because their path does not fit one of its messages
    /// (sent only when some were).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub routes_too_large: u64,
    pub state: SessionState,
    pub updates_received: u64,
    pub updates_sent: u64,
    /// Seconds since the session was established; `null` when it is not.
    #[serde(deserialize_with = "nullable")]
    pub uptime: Option<u64>,
}

/// A learned or advertised route (SPEC §6; like `az network routeserver peering
/// list-learned-routes`). Advertised routes have the instance's own address as `nextHop` and
/// `sourcePeer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteView {
    pub as_path: String,
    pub local_address: String,
    pub network: String,
    /// Empty when the route has no next hop attribute.
    pub next_hop: String,
    pub origin: Origin,
    /// Why the route is not programmed; sent only with `state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub source_peer: String,
    /// Sent only for a learned route that is not programmed (`Invalid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<RouteState>,
    pub weight: u32,
}

/// One Loc-RIB entry: the paths of a prefix and its forwarding next hops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RibEntryView {
    /// Distinct next hops of the ECMP set: what traffic is sent to.
    pub forwarding_next_hops: Vec<String>,
    pub network: String,
    /// The ECMP set, best first: paths equal up to the router-id tie-break (SPEC §3).
    pub paths: Vec<RibPathView>,
}

/// One path of a Loc-RIB entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RibPathView {
    pub as_path: String,
    pub best: bool,
    pub next_hop: String,
    /// The peer's name.
    pub source_peer: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
