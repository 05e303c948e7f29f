//! The controller's contract (SPEC §6): the serde types of every answer and every request of
//! the nexthop API. The controller (`nexthop run`, `nexthop demo`) serialises them; the CLI, the
//! host agent (`nexthop agent`) and the load balancer data plane (`nexthop lb-mux`) deserialise
//! the same types. A field renamed on one side is a compile error on the other, not an empty
//! route set.
//!
//! ```text
//!  controller: routeserver / fabric / lb state ──to contract types──> serde_json ──HTTP──┐
//!  CLI, agent, lb-mux <──contract types (strict)── serde_json <───────────────────────────┘
//! ```
//!
//! It never does I/O, never imports tokio, and never depends on the crates whose state it
//! describes: converting `lb`, `fabric` or `bgp` values to these types is the binary's job.
//!
//! # Strict clients (fail static)
//!
//! Every type a client reads has `#[serde(deny_unknown_fields)]`, closed sets of values are
//! enums, and a key the API always sends is required even when its value may be `null` (see
//! `nullable` below: serde would otherwise take a missing `Option` as `None`). A malformed or
//! unexpected answer is an error, and a client that gets an error leaves the data plane as it
//! is: the agent keeps the kernel routes, the mux keeps its balancer. So:
//!
//! - a field the controller adds must be `skip_serializing_if` while it is unused, and the
//!   clients upgraded before the controller starts sending it;
//! - a value added to an enum is sent only once every client knows it.
//!
//! # Bytes
//!
//! The JSON is the contract, byte for byte: same keys, same order, `null` where the API sends
//! `null`, absent where it omits the key. The answers that the API used to build as
//! `serde_json::Value` (a `BTreeMap`, so keys sorted by bytes) keep their keys in that order:
//! their fields are declared alphabetically. `lb show` was serialised from its struct, so its
//! fields keep their declaration order. Tests pin the bytes of each answer.
//!
//! # Layout
//!
//! - [`names`]: the enums of closed sets of values (session state, route state, health, …),
//!   with the exact strings of the wire.
//! - [`per_instance`]: [`PerInstance`], an object keyed by instance name in instance order.
//! - [`route_server`]: peers, learned and advertised routes, the Loc-RIB.
//! - [`fabric`]: effective routes (full and incremental answers) and trace.
//! - [`lb`]: the load balancer list, `lb show` (backends, last probe, settings, with
//!   [`LbSettings::validate`]) and the admin answer.
//! - [`events`]: the event log (health changes, failovers, sessions) and the NIC list.
//! - [`request`]: the query parameters of each request and the paths a client asks.
//! - this file: the error body and the reload answer.
#![deny(unsafe_code)]

pub mod events;
pub mod fabric;
pub mod lb;
pub mod names;
pub mod per_instance;
pub mod request;
pub mod route_server;

use serde::{Deserialize, Deserializer, Serialize};

pub use events::{Event, EventKind, EventsAnswer, NicView, EVENTS_KEPT};
pub use fabric::{EffectiveRoute, EffectiveRoutes, TraceAnswer, TraceFlow};
pub use lb::{
    AdminAnswer, BackendView, LastProbe, LbListEntry, LbSettings, LbView, SettingsError, MAX_FLOWS,
    MAX_IDLE_S, MAX_MAGLEV_TABLE_SIZE,
};
pub use names::{
    AdminState, Distribution, Health, LbMode, NextHopType, NoHealthyBackends, Origin, Role,
    RouteDirection, RouteSource, RouteState, SessionState, TraceProto, UnknownName,
};
pub use per_instance::PerInstance;
pub use request::{AdminQuery, EffectiveRoutesQuery, EventsQuery, MrtQuery, PeerQuery, TraceQuery};
pub use route_server::{PeerView, RibEntryView, RibPathView, RouteView};

/// The body of every 4xx/5xx answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: String,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
        }
    }
}

/// `POST /v1/reload`: what the reload did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadAnswer {
    pub message: String,
    /// Always true: a reload that fails answers an [`ErrorBody`].
    pub reloaded: bool,
}

/// For a key the API always sends, possibly as `null`: a missing key is an error (serde's
/// derive would take it as `None`, which is how a renamed field goes unnoticed).
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}
