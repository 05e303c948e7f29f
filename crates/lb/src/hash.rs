//! The pinned hash functions of the load balancer.
//!
//! Every instance that builds a Maglev table from the same configuration must build the same
//! table, on any machine and any Rust release, so nothing here comes from `std`'s hashers. The
//! functions are written out and their constants fixed:
//!
//! - [`name_hash`]: 64-bit FNV-1a over the bytes (offset basis 0xcbf29ce484222325, prime
//!   0x100000001b3), XORed with a seed, then the SplitMix64 finalizer. Maglev's h1 and h2 are
//!   this function with the seeds [`SEED_OFFSET`] and [`SEED_SKIP`].
//! - [`mix64`]: the MurmurHash3 64-bit finalizer (fmix64), used for flow hashing.
//!
//! Changing a constant here changes every table: treat them as part of the wire format.

/// Seed of Maglev's h1 (the offset), SPEC §4: pinned.
pub const SEED_OFFSET: u64 = 0x9e37_79b9_7f4a_7c15;
/// Seed of Maglev's h2 (the skip), SPEC §4: pinned.
pub const SEED_SKIP: u64 = 0xc2b2_ae3d_27d4_eb4f;
/// Seed of the flow hash.
pub const SEED_FLOW: u64 = 0x1656_67b1_9e37_79f9;

/// FNV-1a 64 with a seed and a SplitMix64 finalizer.
pub fn name_hash(bytes: &[u8], seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(h ^ seed)
}

/// The SplitMix64 finalizer.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// MurmurHash3's fmix64.
#[inline]
pub fn mix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known values: if these change, every deployed table changes.
    #[test]
    fn pinned_values() {
        assert_eq!(name_hash(b"", 0), splitmix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(
            name_hash(b"10.1.2.10", SEED_OFFSET),
            name_hash(b"10.1.2.10", SEED_OFFSET)
        );
        assert_ne!(
            name_hash(b"10.1.2.10", SEED_OFFSET),
            name_hash(b"10.1.2.10", SEED_SKIP)
        );
        assert_eq!(mix64(0), 0);
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
    }
}
