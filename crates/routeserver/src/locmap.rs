//! The Loc-RIB's prefix map, split into [`SHARDS`] hash maps by a hash of the prefix.
//!
//! Why not one `HashMap`: a hash table grows by allocating a table twice the size and moving
//! every entry, so while it grows the old and the new table are both resident — at 32,000
//! prefixes that is 0.8 MB of old table next to 1.6 MB of new, the largest single item in the
//! route server's peak memory. With shards each grows on its own, so the transient is a 1/64th of
//! that; lookups cost one multiply more. Iteration order is arbitrary, as with `HashMap`.

use std::collections::HashMap;

use bgp::wire::Ipv4Prefix;

/// A power of two: the shard index is the top bits of a multiplicative hash.
const SHARDS: usize = 64;

pub(crate) struct LocMap<V> {
    shards: Box<[HashMap<Ipv4Prefix, V>]>,
}

impl<V> Default for LocMap<V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| HashMap::new()).collect(),
        }
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for LocMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Fibonacci hashing of address and length: consecutive prefixes (the common case: a block of
/// /24s or /32s) land in different shards.
fn shard(p: &Ipv4Prefix) -> usize {
    let k = (u64::from(u32::from(p.addr())) << 8) | u64::from(p.len());
    (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARDS.trailing_zeros())) as usize
}

impl<V> LocMap<V> {
    pub(crate) fn get(&self, p: &Ipv4Prefix) -> Option<&V> {
        self.shards[shard(p)].get(p)
    }

    pub(crate) fn get_mut(&mut self, p: &Ipv4Prefix) -> Option<&mut V> {
        self.shards[shard(p)].get_mut(p)
    }

    pub(crate) fn insert(&mut self, p: Ipv4Prefix, v: V) -> Option<V> {
        self.shards[shard(&p)].insert(p, v)
    }

    pub(crate) fn remove(&mut self, p: &Ipv4Prefix) -> Option<V> {
        let s = &mut self.shards[shard(p)];
        let v = s.remove(p);
        // A shard that emptied gives its table back (a withdrawn full table frees its memory).
        if s.is_empty() {
            s.shrink_to_fit();
        }
        v
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Ipv4Prefix, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &Ipv4Prefix> {
        self.shards.iter().flat_map(|s| s.keys())
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.shards.iter().all(HashMap::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn p(a: u32, len: u8) -> Ipv4Prefix {
        Ipv4Prefix::new(Ipv4Addr::from(a), len).unwrap()
    }

    #[test]
    fn behaves_like_one_map() {
        let mut m = LocMap::default();
        let mut reference = HashMap::new();
        for i in 0..5000u32 {
            let k = p(0x0b00_0000 + i * 256, 24);
            assert_eq!(m.insert(k, i), reference.insert(k, i));
        }
        assert_eq!(m.insert(p(0x0b00_0000, 24), 7), Some(0));
        reference.insert(p(0x0b00_0000, 24), 7);
        assert_eq!(m.insert(p(0x0b00_0000, 16), 9), None); // same address, other length
        reference.insert(p(0x0b00_0000, 16), 9);
        for i in (0..5000u32).step_by(3) {
            let k = p(0x0b00_0000 + i * 256, 24);
            assert_eq!(m.remove(&k), reference.remove(&k));
        }
        assert_eq!(m.len(), reference.len());
        let mut got: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
        let mut want: Vec<_> = reference.iter().map(|(k, v)| (*k, *v)).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        *m.get_mut(&p(0x0b00_0000, 16)).unwrap() += 1;
        assert_eq!(m.get(&p(0x0b00_0000, 16)), Some(&10));
        assert_eq!(m.keys().count(), reference.len());
        for (k, _) in want {
            m.remove(&k);
        }
        assert!(m.is_empty());
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn consecutive_prefixes_spread_over_the_shards() {
        let mut counts = [0usize; SHARDS];
        for i in 0..6400u32 {
            counts[shard(&p(0x0b00_0000 + i, 32))] += 1;
        }
        // 100 per shard on average; none starved or flooded.
        assert!(
            counts.iter().all(|&c| (50..=150).contains(&c)),
            "{counts:?}"
        );
    }
}
