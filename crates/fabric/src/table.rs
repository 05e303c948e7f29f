//! The effective route table of one virtual network, with a version per change and a bounded
//! change log, so a subscriber can ask "what changed since version V".

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// A prefix of either family (`netprefix`): host bits always zero.
pub use netprefix::Prefix;

/// Which prefix lengths occur, per family: bit n of `v4` for /n (0–32), bit n of `v6[n / 64]`
/// for /n (0–128). A longest-prefix match tries only these lengths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lengths {
    v4: u64,
    v6: [u64; 3],
}

impl Lengths {
    pub fn insert(&mut self, p: &Prefix) {
        let n = usize::from(p.len());
        match p {
            Prefix::V4(_) => self.v4 |= 1 << n,
            Prefix::V6(_) => self.v6[n / 64] |= 1 << (n % 64),
        }
    }

    pub fn union(self, o: Lengths) -> Lengths {
        Lengths {
            v4: self.v4 | o.v4,
            v6: [
                self.v6[0] | o.v6[0],
                self.v6[1] | o.v6[1],
                self.v6[2] | o.v6[2],
            ],
        }
    }

    /// The lengths of `addr`'s family, longest first (only the set bits are visited).
    pub fn longest_first(&self, addr: IpAddr) -> impl Iterator<Item = u8> {
        let words: [u64; 3] = match addr {
            IpAddr::V4(_) => [self.v4, 0, 0],
            IpAddr::V6(_) => self.v6,
        };
        let mut w = 3usize;
        let mut bits = 0u64;
        std::iter::from_fn(move || loop {
            if bits != 0 {
                let b = 63 - bits.leading_zeros();
                bits &= !(1u64 << b);
                return Some((w * 64) as u8 + b as u8);
            }
            if w == 0 {
                return None;
            }
            w -= 1;
            bits = words[w];
        })
    }
}

/// Where a route comes from (the `source` column).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum RouteSource {
    /// System routes.
    Default,
    /// Learned by the route server.
    VirtualNetworkGateway,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum NextHopType {
    VnetLocal,
    VNetPeering,
    Internet,
    VirtualNetworkGateway,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RouteState {
    Active,
    /// Not usable: the reason says why.
    Invalid,
    /// Usable in principle, not now (next hop tracking: no healthy backend).
    Inactive,
}

macro_rules! names {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(&self) -> &'static str { match self { $(Self::$v => $s),* } }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}
names!(RouteSource { Default => "Default", VirtualNetworkGateway => "VirtualNetworkGateway" });
names!(NextHopType { VnetLocal => "VnetLocal", VNetPeering => "VNetPeering", Internet => "Internet", VirtualNetworkGateway => "VirtualNetworkGateway" });
names!(RouteState { Active => "Active", Invalid => "Invalid", Inactive => "Inactive" });

/// One effective route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub source: RouteSource,
    pub state: RouteState,
    pub prefix: Prefix,
    pub next_hop_type: NextHopType,
    pub next_hop_ips: Vec<IpAddr>,
    /// The load balancer a next hop resolved through.
    pub load_balancer: Option<String>,
    pub reason: Option<String>,
}

/// How many changes the log remembers; an older version gets the whole table.
const LOG_LEN: usize = 4096;

/// What one virtual network keeps of its own: its system routes, its version and the log of
/// changed prefixes. Its BGP routes are not copied here: the [`crate::Fabric`] holds every BGP
/// prefix once (prefix -> a small index), and [`crate::TableView`] joins the two on a query.
#[derive(Clone, Debug, Default)]
pub struct VnetTable {
    pub(crate) system: HashMap<Prefix, Arc<Route>>,
    /// The lengths of the system prefixes.
    pub(crate) lengths: Lengths,
    version: u64,
    /// Version the table was created at: nothing before it can be answered incrementally.
    base: u64,
    /// The change log, one per family (an IPv4 entry stays 16 octets).
    log4: VecDeque<(u64, netprefix::Ipv4Prefix)>,
    log6: VecDeque<(u64, netprefix::Ipv6Prefix)>,
    /// The latest version the logs no longer hold: nothing at or before it can be answered
    /// incrementally.
    forgotten: u64,
}

impl VnetTable {
    /// An empty table whose versions continue after `base` (a rebuilt table must not reuse
    /// versions a subscriber already saw).
    pub fn starting_at(base: u64) -> Self {
        Self {
            version: base,
            base,
            ..Self::default()
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// Records that the routes of `p` changed.
    pub(crate) fn bump(&mut self, p: Prefix) {
        self.version += 1;
        let v = self.version;
        match p {
            Prefix::V4(p) => push_bounded(&mut self.log4, (v, p), &mut self.forgotten),
            Prefix::V6(p) => push_bounded(&mut self.log6, (v, p), &mut self.forgotten),
        }
    }

    /// Inserts or replaces a system route. No version change when equal.
    pub(crate) fn set_system(&mut self, r: Route) {
        let p = r.prefix;
        if self.system.get(&p).is_some_and(|old| **old == r) {
            return;
        }
        self.system.insert(p, Arc::new(r));
        self.lengths.insert(&p);
        self.bump(p);
    }

    pub(crate) fn remove_system(&mut self, p: Prefix) {
        if self.system.remove(&p).is_some() {
            self.bump(p);
        }
    }

    /// Prefixes changed after version `v`, or None when the log does not reach back that far.
    pub fn changes_since(&self, v: u64) -> Option<Vec<Prefix>> {
        if v < self.base {
            return None;
        }
        if v >= self.version {
            return Some(Vec::new());
        }
        if v < self.forgotten {
            return None;
        }
        let mut ps: Vec<Prefix> = self
            .log4
            .iter()
            .filter(|(x, _)| *x > v)
            .map(|(_, p)| Prefix::V4(*p))
            .chain(
                self.log6
                    .iter()
                    .filter(|(x, _)| *x > v)
                    .map(|(_, p)| Prefix::V6(*p)),
            )
            .collect();
        ps.sort();
        ps.dedup();
        Some(ps)
    }
}

/// Appends to a bounded log; what falls out moves `forgotten` up.
fn push_bounded<T>(log: &mut VecDeque<(u64, T)>, entry: (u64, T), forgotten: &mut u64) {
    if log.len() == LOG_LEN {
        if let Some((v, _)) = log.pop_front() {
            *forgotten = (*forgotten).max(v);
        }
    }
    log.push_back(entry);
}

/// The prefix of length `len` that covers `dst`.
pub(crate) fn covering(dst: IpAddr, len: u8) -> Prefix {
    Prefix::truncating(dst, len)
}
