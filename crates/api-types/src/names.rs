//! Closed sets of values, each with the exact strings the API has always sent. One table per
//! enum gives its `as_str`, `Display`, `FromStr`, `Serialize` and `Deserialize`, so the name on
//! the wire and the name in a log or a table cannot drift apart. An unknown string is an error.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string that names no value of the set (from `FromStr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName {
    /// The enum, e.g. `Health`.
    pub kind: &'static str,
    pub value: String,
    /// The strings it accepts.
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a {}: expected one of {}",
            self.value,
            self.kind,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownName {}

macro_rules! names {
    ($(#[$m:meta])* $t:ident { $($(#[$vm:meta])* $v:ident => $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $t {
            $($(#[$vm])* $v),*
        }

        impl $t {
            /// Every value, in declaration order.
            pub const ALL: &'static [$t] = &[$($t::$v),*];
            /// The strings of the wire, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($s),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($t::$v => $s),*
                }
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $t {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($s => Ok($t::$v),)*
                    _ => Err(UnknownName {
                        kind: stringify!($t),
                        value: s.to_string(),
                        expected: Self::NAMES,
                    }),
                }
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        /// In the API's schema: a string, one of the names.
        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($t).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "enum": $t::NAMES })
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "one of {}", $t::NAMES.join(", "))
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$t, E> {
                        s.parse().map_err(|_| E::unknown_variant(s, $t::NAMES))
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

names!(
    /// A BGP session's state (RFC 4271 §8.2.2), as `bgp::fsm::State` prints it.
    SessionState {
        Idle => "Idle",
        Connect => "Connect",
        Active => "Active",
        OpenSent => "OpenSent",
        OpenConfirm => "OpenConfirm",
        Established => "Established",
    }
);

names!(
    /// The state of an effective route, or of a learned route the fabric cannot program.
    RouteState {
        Active => "Active",
        /// Not usable: the reason says why.
        Invalid => "Invalid",
        /// Usable in principle, not now (next hop tracking: no healthy backend).
        Inactive => "Inactive",
    }
);

names!(
    /// Where an effective route comes from (the `source` column).
    RouteSource {
        /// System routes.
        Default => "Default",
        /// Learned by the route server.
        VirtualNetworkGateway => "VirtualNetworkGateway",
    }
);

names!(
    /// An effective route's next hop type (SPEC §5).
    NextHopType {
        VnetLocal => "VnetLocal",
        VNetPeering => "VNetPeering",
        Internet => "Internet",
        VirtualNetworkGateway => "VirtualNetworkGateway",
    }
);

names!(
    /// The origin column of learned and advertised routes.
    Origin {
        /// Learned from a peer (and re-advertised).
        EBgp => "EBgp",
        /// Originated by the route server (its virtual network's address space).
        Igp => "Igp",
    }
);

names!(
    /// A backend's health, from the probes.
    Health {
        Unknown => "unknown",
        Up => "up",
        Down => "down",
    }
);

names!(
    /// Operator override of the probes (SPEC §4).
    AdminState {
        /// Follow the probes.
        None => "none",
        Up => "up",
        Down => "down",
        /// No new flows; existing flows stay.
        Drain => "drain",
    }
);

names!(
    /// The role a backend plays now.
    Role {
        /// Active-passive: takes every new flow.
        Active => "active",
        /// Active-passive: waits.
        Standby => "standby",
        /// Active-active: takes new flows.
        Serving => "serving",
        /// Active-active: takes no new flows (down, drained or disabled).
        Idle => "idle",
    }
);

names!(
    /// How a load balancer spreads flows.
    LbMode {
        ActivePassive => "active-passive",
        ActiveActive => "active-active",
    }
);

names!(
    /// Which fields of a flow choose its backend.
    Distribution {
        FiveTuple => "five-tuple",
        TwoTuple => "two-tuple",
        ThreeTuple => "three-tuple",
    }
);

names!(
    /// What a load balancer does with a new flow when no backend is usable.
    NoHealthyBackends {
        Drop => "drop",
        /// Spread over every backend as if all were healthy.
        All => "all",
    }
);

names!(
    /// The protocol of a traced flow.
    TraceProto {
        Tcp => "tcp",
        Udp => "udp",
        Icmp => "icmp",
    }
);

names!(
    /// Which routes of a peer `/v1/routes/…` answers.
    RouteDirection {
        /// Received from the peer.
        Learned => "learned",
        /// Sent to the peer.
        Advertised => "advertised",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_an_error() {
        for h in Health::ALL {
            assert_eq!(h.as_str().parse::<Health>(), Ok(*h));
            assert_eq!(h.to_string(), h.as_str());
        }
        let e = "sideways".parse::<Health>().unwrap_err();
        assert_eq!(e.kind, "Health");
        assert_eq!(
            e.to_string(),
            "\"sideways\" is not a Health: expected one of unknown, up, down"
        );
        // Case matters: the wire has one spelling.
        assert!("Up".parse::<Health>().is_err());
        assert!("vnetpeering".parse::<NextHopType>().is_err());
        assert_eq!(NextHopType::VNetPeering.as_str(), "VNetPeering");
    }
}
