//! Load balancer answers: `GET /v1/lb` (the list), `GET /v1/lb/NAME` (`lb show`, what
//! `nexthop lb-mux` builds its balancer from) and `POST /v1/lb/NAME/admin`.
//!
//! `lb show` keeps its fields in declaration order (it was always serialised from its struct);
//! the list and the admin answer are alphabetical (see the crate doc).
//!
//! Settings from the controller are checked with [`LbSettings::validate`] (and
//! [`LbView::validate`]) before a data plane builds a balancer from them: the `lb` crate
//! trusts its configuration, and some values would hang it (a Maglev table size that is not
//! prime never fills the table) or exhaust memory (a table or a flow table of billions of
//! slots, per forwarding thread).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::names::{AdminState, Distribution, Health, LbMode, NoHealthyBackends, Role};
use crate::nullable;

/// The largest Maglev table a data plane builds (2^24 slots, 64 MiB per table; SPEC §4 wants
/// M ≥ 100 × the backends of a pool, and pools hold at most a few thousand).
pub const MAX_MAGLEV_TABLE_SIZE: u32 = 1 << 24;
/// The largest flow table a data plane builds (2^27 flows, 3 GiB per forwarding thread; the
/// default is 1,000,000). Far below what would overflow the table's sizing arithmetic.
pub const MAX_FLOWS: u64 = 1 << 27;
/// The longest flow idle timeout, in seconds (one week: a longer one never expires a flow in
/// practice, so the flow table only fills).
pub const MAX_IDLE_S: u32 = 7 * 24 * 3600;

/// One load balancer in `GET /v1/lb`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LbListEntry {
    pub frontend: IpAddr,
    pub name: String,
}

/// `GET /v1/lb/NAME` (`nexthop lb show`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LbView {
    pub name: String,
    pub frontend: IpAddr,
    pub mode: LbMode,
    pub backends: Vec<BackendView>,
    pub new_flows: u64,
    pub moved_flows: u64,
    pub dropped_flows: u64,
    pub flow_evictions: u64,
    pub flow_table_capacity: u64,
    /// What a data plane (`nexthop lb-mux`) needs to build the same balancer, so that it picks
    /// the backends the controller (and `nexthop trace`) predicts.
    pub settings: LbSettings,
}

/// A backend of a load balancer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendView {
    pub address: IpAddr,
    pub health: Health,
    pub admin_state: AdminState,
    pub role: Role,
    /// Lower is preferred (active-passive).
    pub priority: u32,
    /// Live flows on the backend.
    pub flows: u64,
    /// `null` until the first probe completed.
    #[serde(deserialize_with = "nullable")]
    pub last_probe: Option<LastProbe>,
    pub probes_sent: u64,
    pub probes_failed: u64,
}

/// The last probe of a backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LastProbe {
    pub ok: bool,
    /// What the probe saw, e.g. `HTTP 200 in 0.261 ms`.
    pub detail: String,
    pub latency_ms: f64,
    /// Seconds since it completed.
    pub age_s: f64,
}

/// The balancer's selection settings (SPEC §4), as `nexthop lb-mux` reads them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LbSettings {
    pub distribution: Distribution,
    pub symmetric: bool,
    pub preempt: bool,
    pub no_healthy_backends: NoHealthyBackends,
    /// Maglev table size M: a prime, at most [`MAX_MAGLEV_TABLE_SIZE`].
    pub maglev_table_size: u32,
    /// Flow table bound: 1 to [`MAX_FLOWS`].
    pub max_flows: u64,
    /// Flow idle timeouts in seconds: 1 to [`MAX_IDLE_S`].
    pub idle_tcp_s: u32,
    pub idle_udp_s: u32,
}

/// A setting a data plane must not build a balancer from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingsError {
    /// Maglev needs a prime table size: with another, some backends' preference lists are not
    /// permutations and filling the table never ends.
    MaglevTableSizeNotPrime { size: u32 },
    /// A table larger than [`MAX_MAGLEV_TABLE_SIZE`].
    MaglevTableSizeTooLarge { size: u32 },
    /// A table no larger than the backend list (one slot per backend at best).
    MaglevTableSizeTooSmall { size: u32, backends: usize },
    /// A flow table bound of 0 or above [`MAX_FLOWS`].
    MaxFlowsOutOfRange { max_flows: u64 },
    /// An idle timeout of 0 (every flow expires at once) or above [`MAX_IDLE_S`].
    IdleTimeoutOutOfRange {
        /// `idleTcpS` or `idleUdpS`.
        field: &'static str,
        seconds: u32,
    },
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MaglevTableSizeNotPrime { size } => {
                write!(f, "maglevTableSize {size} is not prime")
            }
            Self::MaglevTableSizeTooLarge { size } => write!(
                f,
                "maglevTableSize {size} is larger than {MAX_MAGLEV_TABLE_SIZE}"
            ),
            Self::MaglevTableSizeTooSmall { size, backends } => write!(
                f,
                "maglevTableSize {size} is not larger than the number of backends ({backends})"
            ),
            Self::MaxFlowsOutOfRange { max_flows } => {
                write!(f, "maxFlows {max_flows} is not between 1 and {MAX_FLOWS}")
            }
            Self::IdleTimeoutOutOfRange { field, seconds } => {
                write!(f, "{field} {seconds} is not between 1 and {MAX_IDLE_S}")
            }
        }
    }
}

impl std::error::Error for SettingsError {}

impl LbSettings {
    /// Whether a data plane may build a balancer from these settings (see [`SettingsError`]).
    pub fn validate(&self) -> Result<(), SettingsError> {
        let size = self.maglev_table_size;
        if size > MAX_MAGLEV_TABLE_SIZE {
            return Err(SettingsError::MaglevTableSizeTooLarge { size });
        }
        if !is_prime(size) {
            return Err(SettingsError::MaglevTableSizeNotPrime { size });
        }
        if !(1..=MAX_FLOWS).contains(&self.max_flows) {
            return Err(SettingsError::MaxFlowsOutOfRange {
                max_flows: self.max_flows,
            });
        }
        for (field, seconds) in [("idleTcpS", self.idle_tcp_s), ("idleUdpS", self.idle_udp_s)] {
            if !(1..=MAX_IDLE_S).contains(&seconds) {
                return Err(SettingsError::IdleTimeoutOutOfRange { field, seconds });
            }
        }
        Ok(())
    }
}

impl LbView {
    /// [`LbSettings::validate`], and a Maglev table larger than the backend list.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.settings.validate()?;
        let size = self.settings.maglev_table_size;
        if size as usize <= self.backends.len() {
            return Err(SettingsError::MaglevTableSizeTooSmall {
                size,
                backends: self.backends.len(),
            });
        }
        Ok(())
    }
}

/// `POST /v1/lb/NAME/admin?backend=ADDR&state=…`: the state now set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminAnswer {
    pub admin_state: AdminState,
    pub backend: IpAddr,
    /// Whether the change is kept across restarts (`state_dir`); absent from controllers
    /// before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persisted: Option<bool>,
}

/// One primality test for the Maglev table size, the load balancer's own.
use lb::maglev::is_prime;

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LbSettings {
        LbSettings {
            distribution: Distribution::FiveTuple,
            symmetric: false,
            preempt: false,
            no_healthy_backends: NoHealthyBackends::Drop,
            maglev_table_size: 65537,
            max_flows: 1_000_000,
            idle_tcp_s: 240,
            idle_udp_s: 30,
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(settings().validate(), Ok(()));
    }

    #[test]
    fn maglev_size_must_be_prime_and_bounded() {
        let with = |size| LbSettings {
            maglev_table_size: size,
            ..settings()
        };
        for size in [0, 1, 4, 65536, 65535] {
            assert_eq!(
                with(size).validate(),
                Err(SettingsError::MaglevTableSizeNotPrime { size })
            );
        }
        assert_eq!(with(2).validate(), Ok(()));
        assert_eq!(with(251).validate(), Ok(()));
        // The largest u32 prime: prime, but 16 GiB per table.
        assert_eq!(
            with(4_294_967_291).validate(),
            Err(SettingsError::MaglevTableSizeTooLarge {
                size: 4_294_967_291
            })
        );
        assert_eq!(
            with(65536).validate().unwrap_err().to_string(),
            "maglevTableSize 65536 is not prime"
        );
    }

    #[test]
    fn flows_and_idle_timeouts_are_bounded() {
        for max_flows in [0, MAX_FLOWS + 1, u64::MAX] {
            let s = LbSettings {
                max_flows,
                ..settings()
            };
            assert_eq!(
                s.validate(),
                Err(SettingsError::MaxFlowsOutOfRange { max_flows })
            );
        }
        let s = LbSettings {
            idle_udp_s: 0,
            ..settings()
        };
        assert_eq!(
            s.validate(),
            Err(SettingsError::IdleTimeoutOutOfRange {
                field: "idleUdpS",
                seconds: 0
            })
        );
        let s = LbSettings {
            idle_tcp_s: u32::MAX,
            ..settings()
        };
        assert!(s.validate().is_err());
        let s = LbSettings {
            max_flows: MAX_FLOWS,
            idle_tcp_s: MAX_IDLE_S,
            idle_udp_s: 1,
            ..settings()
        };
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn table_larger_than_the_backends() {
        let b = |i: u8| BackendView {
            address: std::net::Ipv4Addr::new(10, 1, 2, i).into(),
            health: Health::Up,
            admin_state: AdminState::None,
            role: Role::Serving,
            priority: 1,
            flows: 0,
            last_probe: None,
            probes_sent: 0,
            probes_failed: 0,
        };
        let mut v = LbView {
            name: "lb".into(),
            frontend: std::net::Ipv4Addr::new(10, 1, 0, 100).into(),
            mode: LbMode::ActiveActive,
            backends: vec![b(1), b(2), b(3)],
            new_flows: 0,
            moved_flows: 0,
            dropped_flows: 0,
            flow_evictions: 0,
            flow_table_capacity: 0,
            settings: LbSettings {
                maglev_table_size: 3,
                ..settings()
            },
        };
        assert_eq!(
            v.validate(),
            Err(SettingsError::MaglevTableSizeTooSmall {
                size: 3,
                backends: 3
            })
        );
        v.settings.maglev_table_size = 5;
        assert_eq!(v.validate(), Ok(()));
    }
}
