//! The internal load balancer of nexthop (SPEC §4): for every flow arriving at a frontend, which
//! NVA gets it. Pure state and functions: no tokio, no sockets, no clock (time is passed in as
//! seconds). Health probes run elsewhere and report here with [`Balancer::record_probe`]; the
//! data planes ask [`Balancer::select`]; `trace` asks [`Balancer::predict`], which gives the same
//! answer without changing anything.
//!
//! It must never: move a flow whose backend is still usable, build a table that depends on
//! anything but the configuration, or grow the flow table past its bound.
//!
//! # Layout
//!
//! - [`hash`]: the pinned hash functions and seeds.
//! - [`maglev`]: the Maglev lookup table.
//! - [`flow`]: the bounded flow table.
//! - this file: backends (health with rise/fall, admin state, role) and selection.
//!
//! ```text
//!  probe results ──record_probe──> backend health ──(set changed)──> Maglev table, active backend
//!  flow ──select──> flow table hit (backend still usable)? ──yes──> same backend
//!                                   └─no──> active-passive: the active backend
//!                                           active-active: Maglev[hash(flow)] over usable backends
//! ```
#![deny(unsafe_code)]

pub mod flow;
pub mod hash;
pub mod maglev;

use std::fmt;
use std::net::IpAddr;

use flow::FlowTables;
pub use flow::{Flow, FlowAddr, FlowKey, FlowKey6, FlowTable};
use hash::mix64;
pub use maglev::MaglevTable;

/// How flows are spread (SPEC §4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Every new flow to the active backend; the others stand by.
    ActivePassive,
    /// New flows spread over the usable backends by Maglev.
    ActiveActive,
}

/// Which fields of a flow choose its backend, as the reference cloud names them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Distribution {
    /// Source and destination address and port, protocol.
    FiveTuple,
    /// Source and destination address ("client IP").
    TwoTuple,
    /// Source and destination address, protocol ("client IP and protocol").
    ThreeTuple,
}

/// What to do with a new flow when no backend is usable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NoHealthy {
    Drop,
    /// Spread over every backend as if all were healthy.
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Health {
    Unknown,
    Up,
    Down,
}

/// Operator override of the probes (SPEC §4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AdminState {
    /// Follow the probes.
    None,
    /// In service whatever the probes say.
    Up,
    /// Out of service: no new flows, existing ones move.
    Down,
    /// No new flows; existing flows stay.
    Drain,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// Active-passive: takes every new flow.
    Active,
    /// Active-passive: waits.
    Standby,
    /// Active-active: takes new flows.
    Serving,
    /// Active-active: takes no new flows (down, drained or disabled).
    Idle,
}

macro_rules! names {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
names!(Health { Unknown => "unknown", Up => "up", Down => "down" });
names!(AdminState { None => "none", Up => "up", Down => "down", Drain => "drain" });
names!(Role { Active => "active", Standby => "standby", Serving => "serving", Idle => "idle" });
names!(Mode { ActivePassive => "active-passive", ActiveActive => "active-active" });

/// One load balancer's configuration.
#[derive(Clone, Debug)]
pub struct LbConfig {
    pub name: String,
    /// IPv4 or IPv6: the balancer serves this family (its backends are of the same family).
    pub frontend: IpAddr,
    pub mode: Mode,
    pub distribution: Distribution,
    pub symmetric: bool,
    pub preempt: bool,
    pub no_healthy: NoHealthy,
    pub table_size: u32,
    pub rise: u32,
    pub fall: u32,
    pub max_flows: usize,
    pub idle_tcp_s: u32,
    pub idle_udp_s: u32,
}

impl LbConfig {
    /// The SPEC §4 defaults for a frontend.
    pub fn new(name: &str, frontend: impl Into<IpAddr>, mode: Mode) -> Self {
        Self {
            name: name.to_string(),
            frontend: frontend.into(),
            mode,
            distribution: Distribution::FiveTuple,
            symmetric: false,
            preempt: false,
            no_healthy: NoHealthy::Drop,
            table_size: maglev::DEFAULT_TABLE_SIZE,
            rise: 2,
            fall: 2,
            max_flows: 1 << 20,
            idle_tcp_s: 240,
            idle_udp_s: 30,
        }
    }
}

/// One backend (an NVA) and everything known about it.
#[derive(Clone, Debug)]
pub struct Backend {
    pub address: IpAddr,
    /// Lower is preferred (active-passive).
    pub priority: u32,
    pub admin: AdminState,
    pub health: Health,
    /// Consecutive probe results in the direction opposite to the current health.
    streak: u32,
}

impl Backend {
    /// May take new flows.
    fn usable_new(&self) -> bool {
        match self.admin {
            AdminState::Down | AdminState::Drain => false,
            AdminState::Up => true,
            AdminState::None => self.health == Health::Up,
        }
    }
    /// May keep the flows it has.
    fn usable_existing(&self) -> bool {
        match self.admin {
            AdminState::Down => false,
            AdminState::Up => true,
            AdminState::Drain | AdminState::None => self.health != Health::Down,
        }
    }
}

/// A health transition, for the log and the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthChange {
    pub backend: IpAddr,
    pub from: Health,
    pub to: Health,
}

/// Errors of operator commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LbError {
    NoSuchBackend(IpAddr),
    /// The backend cannot take new flows (down, drained, disabled), so it cannot be active.
    NotUsable(IpAddr),
}

impl fmt::Display for LbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LbError::NoSuchBackend(a) => write!(f, "no backend {a} in this load balancer"),
            LbError::NotUsable(a) => write!(f, "backend {a} cannot take new flows"),
        }
    }
}

/// Counters of the selection path.
#[derive(Clone, Copy, Debug, Default)]
pub struct SelectStats {
    pub new_flows: u64,
    pub moved_flows: u64,
    pub dropped_flows: u64,
}

/// One load balancer: backends, table, flows.
pub struct Balancer {
    cfg: LbConfig,
    /// Sorted by address: the stable order the Maglev table indexes.
    backends: Vec<Backend>,
    /// Maglev over the backends usable for new flows; entries index `usable`.
    table: MaglevTable,
    usable: Vec<u32>,
    /// Maglev over every backend (for `no_healthy_backends = "all"`).
    table_all: MaglevTable,
    active: Option<u32>,
    flows: FlowTables,
    pub stats: SelectStats,
}

impl Balancer {
    /// `backends`: (address, priority, admin state). Their order does not matter. Backends
    /// whose family is not the frontend's take no flows (the configuration refuses them).
    pub fn new<A: Into<IpAddr> + Copy>(cfg: LbConfig, backends: &[(A, u32, AdminState)]) -> Self {
        let mut b: Vec<Backend> = backends
            .iter()
            .map(|&(address, priority, admin)| Backend {
                address: address.into(),
                priority,
                admin,
                health: Health::Unknown,
                streak: 0,
            })
            .filter(|b| b.address.is_ipv4() == cfg.frontend.is_ipv4())
            .collect();
        b.sort_by_key(|x| x.address);
        b.dedup_by_key(|x| x.address);
        let names: Vec<Vec<u8>> = b.iter().map(|x| name(x.address)).collect();
        let table_all = MaglevTable::build(&names, cfg.table_size);
        // The family the balancer serves gets the configured table, the other one set.
        let (v4, v6) = if cfg.frontend.is_ipv4() {
            (cfg.max_flows, 1)
        } else {
            (1, cfg.max_flows)
        };
        let flows = FlowTables {
            v4: FlowTable::new(v4, cfg.idle_tcp_s, cfg.idle_udp_s),
            v6: FlowTable::new(v6, cfg.idle_tcp_s, cfg.idle_udp_s),
        };
        let mut lb = Self {
            table: MaglevTable::build::<[u8; 4]>(&[], cfg.table_size),
            usable: Vec::new(),
            table_all,
            active: None,
            flows,
            stats: SelectStats::default(),
            backends: b,
            cfg,
        };
        lb.rebuild();
        lb
    }

    pub fn config(&self) -> &LbConfig {
        &self.cfg
    }
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }
    /// The counters of the flow table of the balancer's family.
    pub fn flow_stats(&self) -> flow::FlowStats {
        match self.cfg.frontend {
            IpAddr::V4(_) => self.flows.v4.stats,
            IpAddr::V6(_) => self.flows.v6.stats,
        }
    }
    /// Slots of the flow table of the balancer's family: the bound on flows held.
    pub fn flow_capacity(&self) -> usize {
        match self.cfg.frontend {
            IpAddr::V4(_) => self.flows.v4.capacity(),
            IpAddr::V6(_) => self.flows.v6.capacity(),
        }
    }
    /// The flow table of one family.
    pub fn flow_table<A: FlowAddr>(&self) -> &FlowTable<A> {
        A::table(&self.flows)
    }
    pub fn index_of(&self, addr: impl Into<IpAddr>) -> Option<usize> {
        let addr = addr.into();
        self.backends.iter().position(|b| b.address == addr)
    }

    /// The role each backend plays now.
    pub fn role(&self, i: usize) -> Role {
        match self.cfg.mode {
            Mode::ActivePassive if self.active == Some(i as u32) => Role::Active,
            Mode::ActivePassive => Role::Standby,
            Mode::ActiveActive if self.backends.get(i).is_some_and(Backend::usable_new) => {
                Role::Serving
            }
            Mode::ActiveActive => Role::Idle,
        }
    }

    /// The active backend (active-passive).
    pub fn active(&self) -> Option<IpAddr> {
        self.active.map(|i| self.backends[i as usize].address)
    }

    /// Applies one probe result. The first result decides an unknown backend at once; after
    /// that `rise` consecutive successes bring a down backend up and `fall` consecutive failures
    /// take an up one down.
    pub fn record_probe(&mut self, addr: impl Into<IpAddr>, ok: bool) -> Option<HealthChange> {
        let addr = addr.into();
        let i = self.index_of(addr)?;
        let (rise, fall) = (self.cfg.rise.max(1), self.cfg.fall.max(1));
        let b = &mut self.backends[i];
        let from = b.health;
        let to = match (b.health, ok) {
            (Health::Unknown, true) => Health::Up,
            (Health::Unknown, false) => Health::Down,
            (Health::Up, true) | (Health::Down, false) => {
                b.streak = 0;
                return None;
            }
            (Health::Up, false) => {
                b.streak += 1;
                if b.streak < fall {
                    return None;
                }
                Health::Down
            }
            (Health::Down, true) => {
                b.streak += 1;
                if b.streak < rise {
                    return None;
                }
                Health::Up
            }
        };
        b.streak = 0;
        b.health = to;
        // A backend's first Up is part of the initial election, not a recovery: the preferred
        // backend takes the active role even without preemption (whichever probe answered
        // first must not decide).
        self.rebuild_with(from == Health::Unknown);
        Some(HealthChange {
            backend: addr,
            from,
            to,
        })
    }

    /// Sets a backend's health directly, for a data plane following a controller that already
    /// applied rise/fall to its probes. None when unchanged or there is no such backend.
    pub fn set_health(&mut self, addr: impl Into<IpAddr>, health: Health) -> Option<HealthChange> {
        let addr = addr.into();
        let i = self.index_of(addr)?;
        let b = &mut self.backends[i];
        let from = b.health;
        if from == health {
            return None;
        }
        b.streak = 0;
        b.health = health;
        self.rebuild_with(from == Health::Unknown);
        Some(HealthChange {
            backend: addr,
            from,
            to: health,
        })
    }

    /// Makes `addr` the active backend (active-passive), for a data plane following a
    /// controller's election: which backend is active depends on the order health changes
    /// arrived in (no preemption), which a follower cannot replay. Returns whether the active
    /// backend changed.
    pub fn set_active(&mut self, addr: impl Into<IpAddr>) -> Result<bool, LbError> {
        let addr = addr.into();
        let i = self.index_of(addr).ok_or(LbError::NoSuchBackend(addr))? as u32;
        if !self.usable.contains(&i) {
            return Err(LbError::NotUsable(addr));
        }
        let changed = self.active != Some(i);
        self.active = Some(i);
        Ok(changed)
    }

    /// Sets a backend's admin state.
    pub fn set_admin(&mut self, addr: impl Into<IpAddr>, state: AdminState) -> Result<(), LbError> {
        let addr = addr.into();
        let i = self.index_of(addr).ok_or(LbError::NoSuchBackend(addr))?;
        self.backends[i].admin = state;
        self.rebuild();
        Ok(())
    }

    /// Recomputes the usable set, its Maglev table (only when the set changed) and the active
    /// backend.
    fn rebuild(&mut self) {
        self.rebuild_with(false)
    }

    fn rebuild_with(&mut self, electing: bool) {
        let usable: Vec<u32> = (0..self.backends.len() as u32)
            .filter(|&i| self.backends[i as usize].usable_new())
            .collect();
        if usable != self.usable || self.table.size() == 0 {
            let names: Vec<Vec<u8>> = usable
                .iter()
                .map(|&i| name(self.backends[i as usize].address))
                .collect();
            self.table = MaglevTable::build(&names, self.cfg.table_size);
            self.usable = usable;
        }
        // Active-passive: keep the active one while it can take flows, unless preemption is on
        // and a preferred backend is usable again.
        let best = self
            .usable
            .iter()
            .copied()
            .min_by_key(|&i| (self.backends[i as usize].priority, i));
        self.active = match (self.active, best) {
            (Some(a), Some(b)) if self.usable.contains(&a) => {
                let (pa, pb) = (
                    self.backends[a as usize].priority,
                    self.backends[b as usize].priority,
                );
                if (self.cfg.preempt || electing) && pb < pa {
                    Some(b)
                } else {
                    Some(a)
                }
            }
            (_, b) => b,
        };
    }

    /// The hash that chooses a new flow's backend, per the distribution mode; symmetric mode
    /// orders the two ends first (by address, then port) so a flow and its reverse hash alike.
    /// Pinned: `mix64(A::pair_hash(a, b) ^ (ports << 8 | proto))`, `ports` = `sport << 16 |
    /// dport` (5-tuple) or 0, `proto` the protocol (5- and 3-tuple) or 0; see
    /// [`FlowAddr::pair_hash`] for each family's address words.
    #[inline]
    pub fn flow_hash<A: FlowAddr>(&self, k: &Flow<A>) -> u64 {
        let (mut a, mut b, mut pa, mut pb) = (k.src, k.dst, k.sport, k.dport);
        if self.cfg.symmetric && (a, pa) > (b, pb) {
            std::mem::swap(&mut a, &mut b);
            std::mem::swap(&mut pa, &mut pb);
        }
        let (ports, proto) = match self.cfg.distribution {
            Distribution::FiveTuple => ((u64::from(pa) << 16) | u64::from(pb), u64::from(k.proto)),
            Distribution::ThreeTuple => (0, u64::from(k.proto)),
            Distribution::TwoTuple => (0, 0),
        };
        mix64(A::pair_hash(a, b) ^ (ports << 8 | proto))
    }

    /// The backend for a new flow, ignoring the flow table.
    fn choose_new<A: FlowAddr>(&self, k: &Flow<A>) -> Option<u32> {
        if !self.usable.is_empty() {
            return match self.cfg.mode {
                Mode::ActivePassive => self.active,
                Mode::ActiveActive => self
                    .table
                    .lookup(self.flow_hash(k))
                    .map(|i| self.usable[i as usize]),
            };
        }
        match self.cfg.no_healthy {
            NoHealthy::Drop => None,
            NoHealthy::All => match self.cfg.mode {
                Mode::ActivePassive => (0..self.backends.len() as u32)
                    .min_by_key(|&i| (self.backends[i as usize].priority, i)),
                Mode::ActiveActive => self.table_all.lookup(self.flow_hash(k)),
            },
        }
    }

    /// Where a packet of flow `k` goes now (`now` in seconds); records the flow. None: dropped.
    #[inline]
    pub fn select<A: FlowAddr>(&mut self, k: &Flow<A>, now: u32) -> Option<IpAddr> {
        if A::IPV4 != self.cfg.frontend.is_ipv4() {
            // A flow of the family this balancer does not serve goes nowhere.
            self.stats.dropped_flows += 1;
            return None;
        }
        let existing = A::table_mut(&mut self.flows).lookup(k, now);
        if let Some(i) = existing {
            if self.backends[i as usize].usable_existing() {
                return Some(self.backends[i as usize].address);
            }
        }
        match self.choose_new(k) {
            Some(i) => {
                if existing.is_some() {
                    self.stats.moved_flows += 1;
                } else {
                    self.stats.new_flows += 1;
                }
                A::table_mut(&mut self.flows).insert(*k, i, now);
                Some(self.backends[i as usize].address)
            }
            // Nowhere to move it: an established flow stays where it was (as the reference
            // does with all backends down); a new one is dropped.
            None => match existing {
                Some(i) => Some(self.backends[i as usize].address),
                None => {
                    self.stats.dropped_flows += 1;
                    None
                }
            },
        }
    }

    /// What [`Balancer::select`] would answer, without changing any state.
    pub fn predict<A: FlowAddr>(&self, k: &Flow<A>, now: u32) -> Option<IpAddr> {
        if A::IPV4 != self.cfg.frontend.is_ipv4() {
            return None;
        }
        let existing = A::table(&self.flows).peek(k, now);
        if let Some(i) = existing {
            if self.backends[i as usize].usable_existing() {
                return Some(self.backends[i as usize].address);
            }
        }
        self.choose_new(k)
            .or(existing)
            .map(|i| self.backends[i as usize].address)
    }

    /// Live flows per backend (walks the flow table).
    pub fn flows_per_backend(&self, now: u32) -> Vec<u64> {
        match self.cfg.frontend {
            IpAddr::V4(_) => self.flows.v4.count_by_backend(self.backends.len(), now),
            IpAddr::V6(_) => self.flows.v6.count_by_backend(self.backends.len(), now),
        }
    }
}

/// A flow of either family, for callers that take both (`trace`, the API).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AnyFlow {
    V4(FlowKey),
    V6(FlowKey6),
}

impl AnyFlow {
    /// The flow from `src` to `dst`; None when the two are of different families.
    pub fn new(src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) -> Option<Self> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                Some(Self::V4(FlowKey::new(s, d, proto, sport, dport)))
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                Some(Self::V6(FlowKey6::new(s, d, proto, sport, dport)))
            }
            _ => None,
        }
    }
}

impl Balancer {
    /// [`Balancer::predict`] for a flow of either family.
    pub fn predict_any(&self, k: &AnyFlow, now: u32) -> Option<IpAddr> {
        match k {
            AnyFlow::V4(k) => self.predict(k, now),
            AnyFlow::V6(k) => self.predict(k, now),
        }
    }
    /// [`Balancer::select`] for a flow of either family.
    pub fn select_any(&mut self, k: &AnyFlow, now: u32) -> Option<IpAddr> {
        match k {
            AnyFlow::V4(k) => self.select(k, now),
            AnyFlow::V6(k) => self.select(k, now),
        }
    }
}

/// A backend's Maglev name: its address's octets (4 for IPv4, as before IPv6 existed, so IPv4
/// tables are unchanged; 16 for IPv6).
fn name(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}
