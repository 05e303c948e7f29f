//! Requests: the paths of the API and the query parameters of each.
//!
//! The server reads the parameters with these types; a client builds its request path with
//! their `path` methods, so both sides spell each parameter once. Unlike answers, parameters
//! are read leniently (an unknown parameter is ignored, as it always was), and every one is an
//! `Option` with the value as sent: the server answers a missing or malformed one with an
//! [`ErrorBody`](crate::ErrorBody) that says what it expected, parsing enum values with their
//! `FromStr` ([`AdminState`](crate::AdminState), [`TraceProto`](crate::TraceProto)).
//!
//! | method | path |
//! |---|---|
//! | GET | [`PEERS`], [`RIB`], [`LBS`], [`lb_path`] |
//! | GET | `/v1/routes/learned` and `/v1/routes/advertised` with [`PeerQuery`] |
//! | GET | [`EFFECTIVE_ROUTES`] with [`EffectiveRoutesQuery`] |
//! | GET | [`TRACE`] with [`TraceQuery`] |
//! | POST | [`RELOAD`]; `/v1/lb/NAME/admin` with [`AdminQuery`] |

use serde::{Deserialize, Serialize};

use crate::names::RouteDirection;

pub const PEERS: &str = "/v1/peers";
pub const RIB: &str = "/v1/rib";
pub const LBS: &str = "/v1/lb";
pub const RELOAD: &str = "/v1/reload";
pub const EFFECTIVE_ROUTES: &str = "/v1/effective-routes";
pub const TRACE: &str = "/v1/trace";
pub const EVENTS: &str = "/v1/events";
pub const NICS: &str = "/v1/nics";
/// The longest a long poll of the effective routes is held, in seconds (a larger `wait` is cut
/// to it).
pub const MAX_WAIT_S: u64 = 60;

/// `GET /v1/lb/NAME`.
pub fn lb_path(name: &str) -> String {
    format!("{LBS}/{}", encode(name))
}

/// `GET /v1/routes/{learned,advertised}?peer=NAME`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PeerQuery {
    pub peer: Option<String>,
}

impl PeerQuery {
    pub fn path(&self, which: RouteDirection) -> String {
        with_query(
            &format!("/v1/routes/{which}"),
            &[("peer", self.peer.clone())],
        )
    }
}

/// `GET /v1/mrt?instance=NAME`: a TABLE_DUMP_V2 snapshot (RFC 6396) of the instance's
/// Adj-RIBs-In, as `application/octet-stream`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MrtQuery {
    pub instance: Option<String>,
}

impl MrtQuery {
    pub fn path(&self) -> String {
        with_query("/v1/mrt", &[("instance", self.instance.clone())])
    }
}

/// `GET /v1/events[?since=N[&wait=S]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventsQuery {
    /// Only the events after this `seq` (default 0: every event still kept).
    pub since: Option<u64>,
    /// Long poll: when there is no event after `since`, wait up to this many seconds (at most
    /// [`MAX_WAIT_S`]) for one before answering.
    pub wait: Option<u64>,
}

impl EventsQuery {
    pub fn path(&self) -> String {
        with_query(
            EVENTS,
            &[
                ("since", self.since.map(|v| v.to_string())),
                ("wait", self.wait.map(|v| v.to_string())),
            ],
        )
    }
}

/// `GET /v1/effective-routes?nic=NAME[&since=V[&wait=S]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EffectiveRoutesQuery {
    pub nic: Option<String>,
    /// Only the routes of prefixes changed after this version.
    pub since: Option<u64>,
    /// Long poll: when nothing changed since `since`, wait up to this many seconds (at most
    /// [`MAX_WAIT_S`]) for a change before answering.
    pub wait: Option<u64>,
}

impl EffectiveRoutesQuery {
    pub fn path(&self) -> String {
        with_query(
            EFFECTIVE_ROUTES,
            &[
                ("nic", self.nic.clone()),
                ("since", self.since.map(|v| v.to_string())),
                ("wait", self.wait.map(|v| v.to_string())),
            ],
        )
    }
}

/// `GET /v1/trace?nic=NAME&dst=IP[&proto=tcp|udp|icmp&sport=N&dport=N]`. Defaults: `tcp`,
/// source port 49152, destination port 443 (both 0 for ICMP).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TraceQuery {
    pub nic: Option<String>,
    /// An IPv4 or IPv6 address.
    pub dst: Option<String>,
    /// A [`TraceProto`](crate::TraceProto) name.
    pub proto: Option<String>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

impl TraceQuery {
    pub fn path(&self) -> String {
        with_query(
            TRACE,
            &[
                ("nic", self.nic.clone()),
                ("dst", self.dst.clone()),
                ("proto", self.proto.clone()),
                ("sport", self.sport.map(|v| v.to_string())),
                ("dport", self.dport.map(|v| v.to_string())),
            ],
        )
    }
}

/// `POST /v1/lb/NAME/admin?backend=ADDR&state=up|down|drain|none`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AdminQuery {
    /// An IPv4 address.
    pub backend: Option<String>,
    /// An [`AdminState`](crate::AdminState) name.
    pub state: Option<String>,
}

impl AdminQuery {
    pub fn path(&self, lb: &str) -> String {
        with_query(
            &format!("{}/admin", lb_path(lb)),
            &[
                ("backend", self.backend.clone()),
                ("state", self.state.clone()),
            ],
        )
    }
}

/// `base?k=v&…` with the parameters that have a value, percent-encoded.
fn with_query(base: &str, params: &[(&str, Option<String>)]) -> String {
    let mut out = base.to_string();
    let mut sep = '?';
    for (k, v) in params {
        if let Some(v) = v {
            out.push(sep);
            out.push_str(k);
            out.push('=');
            out.push_str(&encode(v));
            sep = '&';
        }
    }
    out
}

/// Percent-encodes a query value or a path segment (everything but RFC 3986 unreserved
/// characters).
pub fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let q = EffectiveRoutesQuery {
            nic: Some("vm1-nic".into()),
            ..Default::default()
        };
        assert_eq!(q.path(), "/v1/effective-routes?nic=vm1-nic");
        let q = EffectiveRoutesQuery {
            nic: Some("nic a&b".into()),
            since: Some(7),
            wait: Some(20),
        };
        assert_eq!(
            q.path(),
            "/v1/effective-routes?nic=nic%20a%26b&since=7&wait=20"
        );
        let q = PeerQuery {
            peer: Some("nva1".into()),
        };
        assert_eq!(
            q.path(RouteDirection::Learned),
            "/v1/routes/learned?peer=nva1"
        );
        let q = TraceQuery {
            nic: Some("vm1-nic".into()),
            dst: Some("192.168.10.7".into()),
            proto: Some("udp".into()),
            sport: None,
            dport: Some(53),
        };
        assert_eq!(
            q.path(),
            "/v1/trace?nic=vm1-nic&dst=192.168.10.7&proto=udp&dport=53"
        );
        let q = AdminQuery {
            backend: Some("10.1.2.10".into()),
            state: Some("drain".into()),
        };
        assert_eq!(
            q.path("nva ilb"),
            "/v1/lb/nva%20ilb/admin?backend=10.1.2.10&state=drain"
        );
        assert_eq!(lb_path("é"), "/v1/lb/%C3%A9");
    }
}
