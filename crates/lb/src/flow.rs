//! The flow table: which backend each flow (5-tuple) was sent to.
//!
//! A set-associative table of fixed size, like a CPU cache: a flow hashes to one set of
//! [`WAYS`] slots and lives in one of them. Memory never grows past the bound chosen at
//! creation; when a set is full the least recently seen flow of that set is evicted (an
//! approximation of global LRU that costs one cache line walk instead of a linked list) and
//! counted. Idle flows expire after the per-protocol timeout and are reused first.

use crate::hash::{mix64, SEED_FLOW};

/// IP protocol numbers.
pub const ICMP: u8 = 1;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// Slots per set.
pub const WAYS: usize = 8;

/// The address of one end of a flow, in the form the flow table stores: a `u32` for IPv4
/// (host order of the network-order octets), the 16 network-order octets for IPv6 (compared
/// bytewise, which is numeric order).
pub trait FlowAddr:
    Copy + Eq + Ord + std::hash::Hash + std::fmt::Debug + Default + 'static
{
    /// IPv4 (`u32`) or IPv6.
    const IPV4: bool;
    /// Hashes the two addresses of a flow (in the order given) into the first word of the flow
    /// hash, pinned (see [`Flow::table_hash`] and `Balancer::flow_hash`):
    /// - IPv4: `mix64(((src as u64) << 32 | dst) ^ SEED_FLOW)`;
    /// - IPv6: each address as two big-endian u64 words (octets 0–7, 8–15), chained:
    ///   `h = mix64(src_hi ^ SEED_FLOW); h = mix64(h ^ src_lo); h = mix64(h ^ dst_hi);
    ///   mix64(h ^ dst_lo)`.
    fn pair_hash(a: Self, b: Self) -> u64;
    /// The flow table of this family in a [`FlowTables`].
    fn table(t: &FlowTables) -> &FlowTable<Self>;
    fn table_mut(t: &mut FlowTables) -> &mut FlowTable<Self>;
    /// As an IP address.
    fn ip(self) -> std::net::IpAddr;
}

impl FlowAddr for u32 {
    const IPV4: bool = true;
    #[inline]
    fn pair_hash(a: u32, b: u32) -> u64 {
        mix64(((u64::from(a) << 32) | u64::from(b)) ^ SEED_FLOW)
    }
    fn table(t: &FlowTables) -> &FlowTable<u32> {
        &t.v4
    }
    fn table_mut(t: &mut FlowTables) -> &mut FlowTable<u32> {
        &mut t.v4
    }
    fn ip(self) -> std::net::IpAddr {
        std::net::Ipv4Addr::from(self).into()
    }
}

/// An IPv6 address in a flow key: its 16 octets in network order.
pub type V6 = [u8; 16];

impl FlowAddr for V6 {
    const IPV4: bool = false;
    #[inline]
    fn pair_hash(a: V6, b: V6) -> u64 {
        let word = |x: &V6, i: usize| {
            u64::from_be_bytes([
                x[i],
                x[i + 1],
                x[i + 2],
                x[i + 3],
                x[i + 4],
                x[i + 5],
                x[i + 6],
                x[i + 7],
            ])
        };
        let mut h = mix64(word(&a, 0) ^ SEED_FLOW);
        h = mix64(h ^ word(&a, 8));
        h = mix64(h ^ word(&b, 0));
        mix64(h ^ word(&b, 8))
    }
    fn table(t: &FlowTables) -> &FlowTable<V6> {
        &t.v6
    }
    fn table_mut(t: &mut FlowTables) -> &mut FlowTable<V6> {
        &mut t.v6
    }
    fn ip(self) -> std::net::IpAddr {
        std::net::Ipv6Addr::from(self).into()
    }
}

/// A flow, as seen in the packet's direction. `FlowKey` for IPv4, `FlowKey6` for IPv6.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Flow<A> {
    pub src: A,
    pub dst: A,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

/// An IPv4 flow (16 bytes).
pub type FlowKey = Flow<u32>;
/// An IPv6 flow (38 bytes).
pub type FlowKey6 = Flow<V6>;

impl Flow<u32> {
    pub fn new(
        src: std::net::Ipv4Addr,
        dst: std::net::Ipv4Addr,
        proto: u8,
        sport: u16,
        dport: u16,
    ) -> Self {
        Self {
            src: src.into(),
            dst: dst.into(),
            sport,
            dport,
            proto,
        }
    }
}

impl Flow<V6> {
    pub fn new(
        src: std::net::Ipv6Addr,
        dst: std::net::Ipv6Addr,
        proto: u8,
        sport: u16,
        dport: u16,
    ) -> Self {
        Self {
            src: src.octets(),
            dst: dst.octets(),
            sport,
            dport,
            proto,
        }
    }
}

impl<A: FlowAddr> Flow<A> {
    /// The same flow seen from the other side.
    pub fn reverse(&self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            proto: self.proto,
        }
    }
    /// Hash of the whole 5-tuple, for the table's set index.
    #[inline]
    pub fn table_hash(&self) -> u64 {
        let b =
            (u64::from(self.sport) << 24) | (u64::from(self.dport) << 8) | u64::from(self.proto);
        mix64(A::pair_hash(self.src, self.dst) ^ b)
    }
}

/// One flow table per address family; a balancer serves one family and sizes the other's
/// table to a single set.
pub struct FlowTables {
    pub v4: FlowTable<u32>,
    pub v6: FlowTable<V6>,
}

const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Slot<A> {
    key: Flow<A>,
    backend: u32,
    /// Seconds (the caller's clock) of the last packet.
    last_seen: u32,
}

impl<A: FlowAddr> Slot<A> {
    fn empty() -> Self {
        Slot {
            key: Flow::default(),
            backend: EMPTY,
            last_seen: 0,
        }
    }
}

/// Counters of the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Live flows displaced because their set was full.
    pub evictions: u64,
    /// Flows found expired (idle past their timeout) when looked up or reused.
    pub expirations: u64,
}

/// The flow table.
pub struct FlowTable<A = u32> {
    sets: Vec<[Slot<A>; WAYS]>,
    mask: usize,
    idle_tcp: u32,
    idle_other: u32,
    pub stats: FlowStats,
}

impl<A: FlowAddr> FlowTable<A> {
    /// A table of at least `max_flows` slots (rounded up to a power of two of sets), with idle
    /// timeouts in seconds for TCP and for everything else (UDP, ICMP).
    pub fn new(max_flows: usize, idle_tcp: u32, idle_other: u32) -> Self {
        let sets = max_flows.div_ceil(WAYS).max(1).next_power_of_two();
        Self {
            sets: vec![[Slot::empty(); WAYS]; sets],
            mask: sets - 1,
            idle_tcp,
            idle_other,
            stats: FlowStats::default(),
        }
    }

    /// Slots in the table: the bound on flows held.
    pub fn capacity(&self) -> usize {
        self.sets.len() * WAYS
    }

    /// Bytes the table holds, fixed at creation.
    pub fn memory_bytes(&self) -> usize {
        self.sets.len() * std::mem::size_of::<[Slot<A>; WAYS]>()
    }

    fn idle(&self, proto: u8) -> u32 {
        if proto == TCP {
            self.idle_tcp
        } else {
            self.idle_other
        }
    }

    /// The backend of a live flow, refreshing its idle timer.
    #[inline]
    pub fn lookup(&mut self, key: &Flow<A>, now: u32) -> Option<u32> {
        let idle = self.idle(key.proto);
        let set = &mut self.sets[(key.table_hash() as usize) & self.mask];
        for s in set.iter_mut() {
            if s.backend != EMPTY && s.key == *key {
                if now.wrapping_sub(s.last_seen) > idle {
                    s.backend = EMPTY;
                    self.stats.expirations += 1;
                    return None;
                }
                s.last_seen = now;
                return Some(s.backend);
            }
        }
        None
    }

    /// The backend of a live flow, without touching the table (for `trace`).
    pub fn peek(&self, key: &Flow<A>, now: u32) -> Option<u32> {
        let set = &self.sets[(key.table_hash() as usize) & self.mask];
        set.iter()
            .find(|s| {
                s.backend != EMPTY
                    && s.key == *key
                    && now.wrapping_sub(s.last_seen) <= self.idle(key.proto)
            })
            .map(|s| s.backend)
    }

    /// Records (or moves) a flow. The slot taken is, in order of preference: the flow's own,
    /// an empty one, an expired one, the least recently seen.
    pub fn insert(&mut self, key: Flow<A>, backend: u32, now: u32) {
        let (idle_tcp, idle_other) = (self.idle_tcp, self.idle_other);
        let expired = |s: &Slot<A>| {
            now.wrapping_sub(s.last_seen)
                > if s.key.proto == TCP {
                    idle_tcp
                } else {
                    idle_other
                }
        };
        let set = &mut self.sets[(key.table_hash() as usize) & self.mask];
        let victim = match set.iter().position(|s| s.backend != EMPTY && s.key == key) {
            Some(i) => i,
            None => {
                let rank = |s: &Slot<A>| match (s.backend == EMPTY, expired(s)) {
                    (true, _) => (0, 0),
                    (false, true) => (1, 0),
                    (false, false) => (2, s.last_seen),
                };
                (0..WAYS).min_by_key(|&i| rank(&set[i])).unwrap_or(0)
            }
        };
        let v = &mut set[victim];
        if v.backend != EMPTY && v.key != key {
            if expired(v) {
                self.stats.expirations += 1;
            } else {
                self.stats.evictions += 1;
            }
        }
        *v = Slot {
            key,
            backend,
            last_seen: now,
        };
    }

    /// Live flows per backend index (`n` backends). Walks the whole table: for the API, not the
    /// packet path.
    pub fn count_by_backend(&self, n: usize, now: u32) -> Vec<u64> {
        let mut c = vec![0u64; n];
        for set in &self.sets {
            for s in set {
                if s.backend != EMPTY && now.wrapping_sub(s.last_seen) <= self.idle(s.key.proto) {
                    if let Some(x) = c.get_mut(s.backend as usize) {
                        *x += 1;
                    }
                }
            }
        }
        c
    }

    /// Live flows in the table.
    pub fn len(&self, now: u32) -> usize {
        self.sets
            .iter()
            .flatten()
            .filter(|s| {
                s.backend != EMPTY && now.wrapping_sub(s.last_seen) <= self.idle(s.key.proto)
            })
            .count()
    }

    pub fn is_empty(&self, now: u32) -> bool {
        self.len(now) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> FlowKey {
        FlowKey {
            src: 0x0a01_030a,
            dst: 0xc0a8_0a01,
            sport: (i % 60000) as u16,
            dport: 443,
            proto: TCP,
        }
    }

    #[test]
    fn insert_lookup_and_idle_expiry() {
        let mut t = FlowTable::new(1024, 240, 30);
        t.insert(key(1), 3, 100);
        assert_eq!(t.lookup(&key(1), 200), Some(3));
        assert_eq!(
            t.lookup(&key(1), 200 + 241),
            None,
            "idle past the TCP timeout"
        );
        let mut u = key(2);
        u.proto = UDP;
        t.insert(u, 1, 100);
        assert_eq!(t.lookup(&u, 131), None, "UDP times out after 30 s");
        assert_eq!(t.stats.expirations, 2);
    }

    #[test]
    fn bound_holds_and_evictions_are_counted() {
        let mut t = FlowTable::new(4096, 240, 30);
        let cap = t.capacity();
        for i in 0..100_000u32 {
            let mut k = key(i);
            k.src = i;
            t.insert(k, i % 7, 10);
        }
        assert_eq!(t.len(10), cap, "full, never more");
        assert_eq!(t.stats.evictions, 100_000 - cap as u64);
    }

    #[test]
    fn least_recently_seen_is_evicted_first() {
        let mut t = FlowTable::new(WAYS, 240, 30); // one set
        for i in 0..WAYS as u32 {
            t.insert(key(i), i, 10 + i);
        }
        assert_eq!(t.lookup(&key(0), 50), Some(0)); // flow 0 becomes the most recent
        t.insert(key(100), 9, 51);
        assert_eq!(t.peek(&key(0), 51), Some(0), "recently seen flow kept");
        assert_eq!(t.peek(&key(1), 51), None, "oldest flow evicted");
        assert_eq!(t.stats.evictions, 1);
    }
}
