//! `GET /v1/events`: what happened, in order — backend health changes, failovers (the active
//! backend of an active-passive load balancer changing), BGP sessions coming up and going down.
//! The web console's timeline reads it; so can anything else that wants to follow changes
//! without polling every view.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// What kind of change an [`Event`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A backend's probed health changed (`from` → `to`: unknown, up, down).
    Health,
    /// The active backend of an active-passive load balancer changed (`from` → `to`: the
    /// backends' addresses, or "none").
    Failover,
    /// A BGP session reached Established.
    PeerUp,
    /// A BGP session left Established (`text` says why).
    PeerDown,
}

/// One change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// Position in this controller's log: 1 for its first event, one more for each next.
    pub seq: u64,
    /// Unix time, seconds.
    pub at: f64,
    pub kind: EventKind,
    /// The load balancer (health, failover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb: Option<String>,
    /// The backend whose health changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<IpAddr>,
    /// The route server instance and the peer (peer-up, peer-down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Before and after (health names, or backend addresses for a failover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// One line for a person: what happened and the evidence (the probe's answer, the
    /// NOTIFICATION).
    pub text: String,
}

/// `GET /v1/events?since=N[&wait=S]`: the events after `since` still in the log (it keeps the
/// last [`EVENTS_KEPT`]), oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsAnswer {
    pub events: Vec<Event>,
    /// The `seq` of the newest event (0: none yet): ask again with `since` = this.
    pub last: u64,
    /// Events after `since` the log no longer holds (it is bounded): the reader missed these.
    pub missed: u64,
}

/// How many events a controller keeps.
pub const EVENTS_KEPT: usize = 1000;

/// `GET /v1/nics`: a NIC of the configuration (the console lists them for effective routes and
/// trace).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NicView {
    pub name: String,
    pub virtual_network: String,
    pub address: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<IpAddr>,
}
