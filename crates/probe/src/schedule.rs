//! When a target's first probe starts. Offsets are spread over one interval so that N targets do
//! not all connect in the same millisecond, and they come from a pinned PRNG (splitmix64) seeded
//! from the target, so two runs — or two nexthop instances — probe on the same schedule.

use std::net::IpAddr;
use std::time::Duration;

/// splitmix64 (Steele, Lea, Flood 2014; the reference constants of `java.util.SplittableRandom`).
/// Pinned here rather than taken from a crate so the schedule can never change under us.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Offset in `[0, interval)` of the first probe of `target`.
pub fn first_offset(target: IpAddr, port: u16, interval: Duration) -> Duration {
    let address = match target {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            // Fold, and tag the family so ::a.b.c.d and a.b.c.d differ.
            (v as u64) ^ ((v >> 64) as u64) ^ (1 << 63)
        }
    };
    let mut state = address ^ (u64::from(port) << 40);
    let span = u64::try_from(interval.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    // The modulo bias is below 2^-20 for any interval under 4 hours: irrelevant for a schedule.
    Duration::from_nanos(splitmix64(&mut state) % span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // First outputs for seed 0 of the reference implementation.
        let mut s = 0;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut s), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix64(&mut s), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn offsets_are_in_range_reproducible_and_spread() {
        let interval = Duration::from_millis(100);
        let mut buckets = [0u32; 10];
        for i in 0..1000u32 {
            let ip = IpAddr::from([10, 0, (i >> 8) as u8, i as u8]);
            let o = first_offset(ip, 80, interval);
            assert!(o < interval);
            assert_eq!(o, first_offset(ip, 80, interval));
            buckets[(o.as_millis() / 10) as usize] += 1;
        }
        // 1000 targets over 10 buckets: each should hold roughly 100.
        assert!(
            buckets.iter().all(|&n| (60..=140).contains(&n)),
            "{buckets:?}"
        );
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert_ne!(first_offset(a, 80, interval), first_offset(a, 81, interval));
    }
}
