//! The simulated data plane (SPEC §2 `sim`): NICs send flows; each packet follows the NIC's
//! effective routes (longest prefix match in the [`fabric`]) and, when the route resolves
//! through a load balancer, the [`lb::Balancer`] picks the backend — the same code the real
//! data planes call. Deterministic: time is a number the caller advances, nothing is random.
//!
//! [`Sim::send`] records flows (as a data plane does); counters per backend say where traffic
//! went. The explanation of where a flow goes is `controller::views::trace`, the one `nexthop
//! trace` answers with; `tests/trace_agrees.rs` checks it against [`Sim::send`] flow by flow.
//!
//! # Layout
//! - this file: [`Sim`], [`Outcome`].
#![deny(unsafe_code)]

use std::collections::HashMap;
use std::net::IpAddr;

use fabric::{Fabric, NextHopType};
use lb::{Balancer, Flow, FlowAddr};

/// Where one packet goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Through load balancer `lb` to `backend`.
    Backend {
        lb: String,
        backend: IpAddr,
    },
    /// Delivered by a route that needs no load balancer (local, peering, Internet, direct).
    Direct {
        next_hop_type: NextHopType,
        next_hop: Option<IpAddr>,
    },
    Dropped(String),
}

/// A fabric, the load balancers by name, and counters.
pub struct Sim {
    pub fabric: Fabric,
    pub lbs: HashMap<String, Balancer>,
    /// Packets per (LB, backend).
    pub per_backend: HashMap<(String, IpAddr), u64>,
    pub dropped: u64,
    /// Seconds, for flow idle timeouts.
    pub now: u32,
}

impl Sim {
    pub fn new(fabric: Fabric, lbs: HashMap<String, Balancer>) -> Self {
        Self {
            fabric,
            lbs,
            per_backend: HashMap::new(),
            dropped: 0,
            now: 0,
        }
    }

    fn route<A: FlowAddr>(
        &self,
        nic: &str,
        flow: &Flow<A>,
    ) -> Result<(Option<String>, NextHopType, Option<IpAddr>), String> {
        let t = self
            .fabric
            .nic_table(nic)
            .ok_or_else(|| format!("no NIC named {nic:?}"))?;
        let r = t
            .lookup(flow.dst.ip())
            .ok_or_else(|| "no route matches".to_string())?;
        Ok((
            r.load_balancer.clone(),
            r.next_hop_type,
            r.next_hop_ips.first().copied(),
        ))
    }

    /// One packet of `flow` (IPv4 or IPv6) from `nic`, recorded (flow table, counters).
    pub fn send<A: FlowAddr>(&mut self, nic: &str, flow: &Flow<A>) -> Outcome {
        let out = match self.route(nic, flow) {
            Err(why) => Outcome::Dropped(why),
            Ok((Some(lb), _, _)) => {
                match self.lbs.get_mut(&lb).and_then(|b| b.select(flow, self.now)) {
                    Some(backend) => Outcome::Backend { lb, backend },
                    None => Outcome::Dropped(format!("load balancer {lb} has no healthy backend")),
                }
            }
            Ok((None, t, nh)) => Outcome::Direct {
                next_hop_type: t,
                next_hop: nh,
            },
        };
        match &out {
            Outcome::Backend { lb, backend } => {
                *self.per_backend.entry((lb.clone(), *backend)).or_default() += 1
            }
            Outcome::Dropped(_) => self.dropped += 1,
            Outcome::Direct { .. } => {}
        }
        out
    }
}
