//! Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4).
//!
//! Each backend has a preference list over the M slots, `(offset + j·skip) mod M` with
//! `offset = h1(name) mod M` and `skip = h2(name) mod (M−1) + 1`; M prime makes every list a
//! permutation. Backends take turns claiming their next preferred free slot until all M are
//! taken, so each gets ⌊M/N⌋ or ⌈M/N⌉ slots, and removing one backend mostly reassigns only its
//! own slots. The names are the backends' addresses and the hashes are the pinned functions of
//! [`crate::hash`], so every instance with the same backends builds the same table.

use crate::hash::{name_hash, SEED_OFFSET, SEED_SKIP};

/// Default table size: prime, ≥ 100 × the backends of any realistic pool (SPEC §4).
pub const DEFAULT_TABLE_SIZE: u32 = 65537;

/// A lookup table: slot → index into the backend list it was built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaglevTable {
    slots: Vec<u32>,
}

/// Slot value of a table built over no backend.
pub const NONE: u32 = u32::MAX;

impl MaglevTable {
    /// Builds the table of size `m` (a prime) over `names` (in a stable order: the entry is the
    /// index in this slice). An empty slice gives a table of [`NONE`].
    pub fn build<N: AsRef<[u8]>>(names: &[N], m: u32) -> Self {
        let m64 = u64::from(m);
        let n = names.len();
        if n == 0 || m == 0 {
            return Self {
                slots: vec![NONE; m as usize],
            };
        }
        // Per backend: the current position in its permutation and its skip.
        let mut pos: Vec<u32> = Vec::with_capacity(n);
        let mut skip: Vec<u32> = Vec::with_capacity(n);
        for name in names {
            let b = name.as_ref();
            pos.push((name_hash(b, SEED_OFFSET) % m64) as u32);
            skip.push(if m > 1 {
                (name_hash(b, SEED_SKIP) % (m64 - 1) + 1) as u32
            } else {
                1
            });
        }
        let mut slots = vec![NONE; m as usize];
        let mut filled = 0u32;
        'fill: loop {
            for i in 0..n {
                // Advance backend i to its next free preferred slot.
                let mut c = pos[i];
                while slots[c as usize] != NONE {
                    c = step(c, skip[i], m);
                }
                slots[c as usize] = i as u32;
                pos[i] = step(c, skip[i], m);
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
        Self { slots }
    }

    /// The backend index for a hash.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<u32> {
        let s = *self
            .slots
            .get((hash % self.slots.len().max(1) as u64) as usize)?;
        (s != NONE).then_some(s)
    }

    pub fn size(&self) -> usize {
        self.slots.len()
    }

    /// Slots held by each backend index (`len` entries).
    pub fn counts(&self, len: usize) -> Vec<u32> {
        let mut c = vec![0u32; len];
        for &s in &self.slots {
            if let Some(x) = c.get_mut(s as usize) {
                *x += 1;
            }
        }
        c
    }

    /// The raw slots, for comparing tables.
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }
}

#[inline]
fn step(c: u32, skip: u32, m: u32) -> u32 {
    let next = u64::from(c) + u64::from(skip);
    let m = u64::from(m);
    (if next >= m { next - m } else { next }) as u32
}

/// Whether `n` is prime (table sizes are checked at config load; this is for tests and asserts).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while u64::from(d) * u64::from(d) <= u64::from(n) {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("10.1.{}.{}", i / 250, i % 250 + 1))
            .collect()
    }

    #[test]
    fn balanced_within_one_slot() {
        for n in [1usize, 2, 3, 8, 100, 1000] {
            let t = MaglevTable::build(&names(n), DEFAULT_TABLE_SIZE);
            let c = t.counts(n);
            let (lo, hi) = (
                DEFAULT_TABLE_SIZE / n as u32,
                DEFAULT_TABLE_SIZE.div_ceil(n as u32),
            );
            assert!(
                c.iter().all(|&x| x == lo || x == hi),
                "n={n}: {:?}",
                (c.iter().min(), c.iter().max())
            );
        }
    }

    #[test]
    fn deterministic_and_empty() {
        assert_eq!(
            MaglevTable::build(&names(8), 65537),
            MaglevTable::build(&names(8), 65537)
        );
        let t = MaglevTable::build::<String>(&[], 13);
        assert_eq!(t.lookup(5), None);
        assert!(is_prime(65537) && !is_prime(65536));
    }
}
