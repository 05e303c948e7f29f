//! Autonomous system numbers a peer may not use (SPEC §3).

use std::fmt::Write as _;
use std::ops::RangeInclusive;

/// Peer ASNs the route server rejects at config load, as in the reference route server
/// (SPEC §3): Microsoft's own ASNs, the route server's fixed ASN, AS_TRANS (RFC 6793),
/// documentation ASNs (RFC 5398) and 65535–65551 (RFC 7300, RFC 5398).
pub const RESERVED_ASNS: &[RangeInclusive<u32>] = &[
    8074..=8074,
    8075..=8075,
    12076..=12076,
    65515..=65515,
    65517..=65520,
    23456..=23456,
    64496..=64511,
    65535..=65551,
];

/// AS_TRANS (RFC 6793 §9): stands in for a 4-byte ASN in a 2-byte field, never a speaker's ASN.
pub const AS_TRANS: u32 = 23456;

/// True when a peer may not use `asn` (SPEC §3).
pub fn is_reserved_asn(asn: u32) -> bool {
    RESERVED_ASNS.iter().any(|range| range.contains(&asn))
}

/// The list as the SPEC writes it: `8074, 8075, …, 65535–65551`.
pub(crate) fn reserved_asns_text() -> String {
    let mut text = String::new();
    for (i, range) in RESERVED_ASNS.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        if range.start() == range.end() {
            let _ = write!(text, "{}", range.start());
        } else {
            let _ = write!(text, "{}–{}", range.start(), range.end());
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_list_matches_spec() {
        assert_eq!(
            reserved_asns_text(),
            "8074, 8075, 12076, 65515, 65517–65520, 23456, 64496–64511, 65535–65551"
        );
    }

    #[test]
    fn range_edges() {
        for asn in [
            8074, 8075, 12076, 65515, 65517, 65520, 23456, 64496, 64511, 65535, 65551,
        ] {
            assert!(is_reserved_asn(asn), "{asn}");
        }
        for asn in [
            0, 1, 8073, 8076, 12075, 65516, 65521, 64495, 64512, 65534, 65552, 65001,
        ] {
            assert!(!is_reserved_asn(asn), "{asn}");
        }
        assert!(!is_reserved_asn(u32::MAX));
    }
}
