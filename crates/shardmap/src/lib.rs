//! A hash map split into [`SHARDS`] hash maps by a hash of the key, for tables of millions of
//! entries (the route server's Loc-RIB, the fabric's BGP prefixes).
//!
//! Why not one `HashMap`: a hash table grows by allocating a table twice the size and moving
//! every entry, so while it grows the old and the new table are both resident — at 32,000
//! prefixes that is 0.8 MB of old table next to 1.6 MB of new, the largest single item in the
//! route server's peak memory. With shards each grows on its own, so the transient is a 1/64th of
//! that; lookups cost one small hash more. Iteration order is arbitrary, as with `HashMap`.
//!
//! No I/O, no dependencies.
#![deny(unsafe_code)]

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// A power of two: the shard index is the top bits of a multiplicative hash.
pub const SHARDS: usize = 64;

pub struct ShardedMap<K, V> {
    shards: Box<[HashMap<K, V>]>,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| HashMap::new()).collect(),
        }
    }
}

impl<K: std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for ShardedMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.shards.iter().flat_map(|s| s.iter()))
            .finish()
    }
}

/// Folds what a key's `Hash` writes (a prefix writes its address, then its length) into one
/// word; `finish` spreads it by Fibonacci hashing, so consecutive prefixes (the common case: a
/// block of /24s or /32s) land in different shards.
#[derive(Default)]
struct Fold(u64);

impl Hasher for Fold {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0 << 8) | u64::from(i);
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0 << 32) | u64::from(i);
    }
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

fn shard<K: Hash>(k: &K) -> usize {
    let mut h = Fold::default();
    k.hash(&mut h);
    (h.finish() >> (64 - SHARDS.trailing_zeros())) as usize
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    pub fn get(&self, k: &K) -> Option<&V> {
        self.shards[shard(k)].get(k)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.shards[shard(k)].get_mut(k)
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.shards[shard(k)].contains_key(k)
    }

    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        self.shards[shard(&k)].insert(k, v)
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let s = &mut self.shards[shard(k)];
        let v = s.remove(k);
        // A shard that emptied gives its table back (a withdrawn full table frees its memory).
        if s.is_empty() {
            s.shrink_to_fit();
        }
        v
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.shards.iter().flat_map(|s| s.keys())
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|s| s.values())
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(HashMap::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like a prefix: an address and a length.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
    struct P {
        addr: u32,
        len: u8,
    }

    fn p(addr: u32, len: u8) -> P {
        P { addr, len }
    }

    #[test]
    fn behaves_like_one_map() {
        let mut m = ShardedMap::default();
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
