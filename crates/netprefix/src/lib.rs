//! IP prefixes, one type per family for every layer of nexthop: the config parses straight
//! into them, the BGP codec decodes into them, the RIB, the fabric and the kernel client use
//! them. The invariant (host bits zero) is enforced where a prefix is made: [`Ipv4Prefix::new`]
//! refuses host bits (a typo in a config), [`Ipv4Prefix::truncating`] clears them (what a wire
//! format's trailing bits mean). No conversion between layers, so none can fall back to a
//! default route.
//!
//! No I/O; `serde` (as the text `"10.1.0.0/16"`) behind the `serde` feature.
//!
//! # Layout
//! - [`Ipv4Prefix`], [`Ipv6Prefix`], [`Prefix`] (either), [`PrefixError`].
#![deny(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 prefix, host bits zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    addr: u32,
    len: u8,
}

/// An IPv6 prefix, host bits zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Prefix {
    addr: u128,
    len: u8,
}

/// Either family.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Prefix {
    V4(Ipv4Prefix),
    V6(Ipv6Prefix),
}

/// Why a string or an (address, length) pair is not a prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("expected ADDRESS/LENGTH, e.g. 10.1.0.0/16")]
    MissingLength,
    #[error("invalid IPv4 address")]
    BadAddress,
    #[error("invalid IPv6 address")]
    BadAddress6,
    #[error("invalid prefix length (expected 0 to {max})")]
    BadLength { max: u8 },
    /// The network written as it should be.
    #[error("host bits set, did you mean {0}?")]
    HostBitsSet(String),
}

fn mask32(len: u8) -> u32 {
    match len {
        0 => 0,
        len => u32::MAX << (32 - u32::from(len.min(32))),
    }
}

fn mask128(len: u8) -> u128 {
    match len {
        0 => 0,
        len => u128::MAX << (128 - u32::from(len.min(128))),
    }
}

impl Ipv4Prefix {
    /// The default route 0.0.0.0/0.
    pub const DEFAULT: Ipv4Prefix = Ipv4Prefix { addr: 0, len: 0 };

    /// `addr/len`; an error when `len > 32` or `addr` has bits set past `len`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Self, PrefixError> {
        if len > 32 {
            return Err(PrefixError::BadLength { max: 32 });
        }
        let p = Self::truncating(addr, len);
        if u32::from(addr) != p.addr {
            return Err(PrefixError::HostBitsSet(p.to_string()));
        }
        Ok(p)
    }

    /// `addr/len` with the host bits cleared; `len` capped at 32.
    pub fn truncating(addr: Ipv4Addr, len: u8) -> Self {
        Self::from_bits(u32::from(addr), len)
    }

    /// From a host-order address; host bits cleared, `len` capped at 32.
    pub fn from_bits(addr: u32, len: u8) -> Self {
        let len = len.min(32);
        Self {
            addr: addr & mask32(len),
            len,
        }
    }

    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    /// The address as a host-order integer.
    pub fn bits(&self) -> u32 {
        self.addr
    }

    /// The prefix length, 0 to 32.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is the default route 0.0.0.0/0.
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// The netmask, e.g. 255.255.0.0 for a /16.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask32(self.len))
    }

    /// Whether `addr` is inside this prefix.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask32(self.len) == self.addr
    }

    /// Whether `other` is this prefix or a more specific one inside it.
    pub fn covers(&self, other: &Ipv4Prefix) -> bool {
        other.len >= self.len && other.addr & mask32(self.len) == self.addr
    }

    /// Whether the two share at least one address.
    pub fn overlaps(&self, other: &Ipv4Prefix) -> bool {
        self.covers(other) || other.covers(self)
    }

    /// Octets it takes in a BGP NLRI field (RFC 4271 §4.3), length octet included.
    pub fn wire_len(&self) -> usize {
        1 + (usize::from(self.len) + 7) / 8
    }
}

impl Ipv6Prefix {
    /// The default route ::/0.
    pub const DEFAULT: Ipv6Prefix = Ipv6Prefix { addr: 0, len: 0 };

    /// `addr/len`; an error when `len > 128` or `addr` has bits set past `len`.
    pub fn new(addr: Ipv6Addr, len: u8) -> Result<Self, PrefixError> {
        if len > 128 {
            return Err(PrefixError::BadLength { max: 128 });
        }
        let p = Self::truncating(addr, len);
        if u128::from(addr) != p.addr {
            return Err(PrefixError::HostBitsSet(p.to_string()));
        }
        Ok(p)
    }

    /// `addr/len` with the host bits cleared; `len` capped at 128.
    pub fn truncating(addr: Ipv6Addr, len: u8) -> Self {
        Self::from_bits(u128::from(addr), len)
    }

    /// From a host-order address; host bits cleared, `len` capped at 128.
    pub fn from_bits(addr: u128, len: u8) -> Self {
        let len = len.min(128);
        Self {
            addr: addr & mask128(len),
            len,
        }
    }

    pub fn addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.addr)
    }

    pub fn bits(&self) -> u128 {
        self.addr
    }

    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        u128::from(addr) & mask128(self.len) == self.addr
    }

    pub fn covers(&self, other: &Ipv6Prefix) -> bool {
        other.len >= self.len && other.addr & mask128(self.len) == self.addr
    }

    /// Octets it takes in a BGP NLRI field (RFC 4760 §5), length octet included.
    pub fn wire_len(&self) -> usize {
        1 + (usize::from(self.len) + 7) / 8
    }
}

impl Prefix {
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        match self {
            Prefix::V4(p) => p.len(),
            Prefix::V6(p) => p.len(),
        }
    }

    pub fn addr(&self) -> IpAddr {
        match self {
            Prefix::V4(p) => IpAddr::V4(p.addr()),
            Prefix::V6(p) => IpAddr::V6(p.addr()),
        }
    }

    /// `addr/len` with the host bits cleared, in `addr`'s family.
    pub fn truncating(addr: IpAddr, len: u8) -> Self {
        match addr {
            IpAddr::V4(a) => Prefix::V4(Ipv4Prefix::truncating(a, len)),
            IpAddr::V6(a) => Prefix::V6(Ipv6Prefix::truncating(a, len)),
        }
    }

    /// Whether `addr` is inside this prefix (never across families).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self, addr) {
            (Prefix::V4(p), IpAddr::V4(a)) => p.contains(a),
            (Prefix::V6(p), IpAddr::V6(a)) => p.contains(a),
            _ => false,
        }
    }

    /// Whether `other` is this prefix or a more specific one inside it (same family only).
    pub fn covers(&self, other: &Prefix) -> bool {
        match (self, other) {
            (Prefix::V4(p), Prefix::V4(o)) => p.covers(o),
            (Prefix::V6(p), Prefix::V6(o)) => p.covers(o),
            _ => false,
        }
    }

    pub fn is_ipv4(&self) -> bool {
        matches!(self, Prefix::V4(_))
    }
}

impl From<Ipv4Prefix> for Prefix {
    fn from(p: Ipv4Prefix) -> Self {
        Prefix::V4(p)
    }
}

impl From<Ipv6Prefix> for Prefix {
    fn from(p: Ipv6Prefix) -> Self {
        Prefix::V6(p)
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

impl fmt::Debug for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

impl fmt::Debug for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(p) => p.fmt(f),
            Prefix::V6(p) => p.fmt(f),
        }
    }
}

/// `ADDRESS/LENGTH` split, the length plain digits (u8's parser takes "+16").
fn split(s: &str, max: u8) -> Result<(&str, u8), PrefixError> {
    let (addr, len) = s.split_once('/').ok_or(PrefixError::MissingLength)?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PrefixError::BadLength { max });
    }
    let len = len.parse().map_err(|_| PrefixError::BadLength { max })?;
    Ok((addr, len))
}

impl FromStr for Ipv4Prefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, PrefixError> {
        let (addr, len) = split(s, 32)?;
        Self::new(addr.parse().map_err(|_| PrefixError::BadAddress)?, len)
    }
}

impl FromStr for Ipv6Prefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, PrefixError> {
        let (addr, len) = split(s, 128)?;
        Self::new(addr.parse().map_err(|_| PrefixError::BadAddress6)?, len)
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, PrefixError> {
        if s.contains(':') {
            s.parse().map(Prefix::V6)
        } else {
            s.parse().map(Prefix::V4)
        }
    }
}

#[cfg(feature = "serde")]
mod text {
    use super::*;

    macro_rules! as_text {
        ($t:ty, $what:literal) => {
            impl serde::Serialize for $t {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    s.collect_str(self)
                }
            }
            impl<'de> serde::Deserialize<'de> for $t {
                fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    struct V;
                    impl serde::de::Visitor<'_> for V {
                        type Value = $t;
                        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                            f.write_str($what)
                        }
                        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$t, E> {
                            s.parse().map_err(E::custom)
                        }
                    }
                    d.deserialize_str(V)
                }
            }
        };
    }
    as_text!(Ipv4Prefix, "an IPv4 prefix such as \"10.1.0.0/16\"");
    as_text!(Ipv6Prefix, "an IPv6 prefix such as \"fd00:1::/64\"");
    as_text!(
        Prefix,
        "an IP prefix such as \"10.1.0.0/16\" or \"fd00:1::/64\""
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Ipv4Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "0.0.0.0/0",
            "10.1.0.0/16",
            "192.168.10.0/24",
            "10.1.2.10/32",
            "128.0.0.0/1",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
        assert_eq!(p("10.1.0.0/16").addr(), Ipv4Addr::new(10, 1, 0, 0));
        assert_eq!(p("10.1.0.0/16").netmask(), Ipv4Addr::new(255, 255, 0, 0));
        for s in ["::/0", "fd00:1::/64", "2001:db8::1/128"] {
            assert_eq!(s.parse::<Ipv6Prefix>().unwrap().to_string(), s);
            assert_eq!(s.parse::<Prefix>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn host_bits_are_refused_by_new_and_cleared_by_truncating() {
        let err = "10.1.0.1/16".parse::<Ipv4Prefix>().unwrap_err();
        assert_eq!(err.to_string(), "host bits set, did you mean 10.1.0.0/16?");
        assert_eq!(
            Ipv4Prefix::truncating(Ipv4Addr::new(10, 1, 0, 1), 16),
            p("10.1.0.0/16")
        );
        assert_eq!(Ipv4Prefix::from_bits(u32::MAX, 40).len(), 32);
        assert!("fd00:1::1/64".parse::<Ipv6Prefix>().is_err());
    }

    #[test]
    fn malformed() {
        use PrefixError::*;
        for (s, e) in [
            ("10.1.0.0", MissingLength),
            ("10.1.0/16", BadAddress),
            ("10.1.0.0/33", BadLength { max: 32 }),
            ("10.1.0.0/", BadLength { max: 32 }),
            ("10.1.0.0/+16", BadLength { max: 32 }),
            ("10.1.0.0/1000", BadLength { max: 32 }),
            ("", MissingLength),
        ] {
            assert_eq!(s.parse::<Ipv4Prefix>(), Err(e), "{s}");
        }
        assert_eq!(
            "fd00::/129".parse::<Ipv6Prefix>(),
            Err(BadLength { max: 128 })
        );
    }

    #[test]
    fn containment() {
        let hub = p("10.1.0.0/16");
        assert!(hub.contains(Ipv4Addr::new(10, 1, 255, 255)));
        assert!(!hub.contains(Ipv4Addr::new(10, 2, 0, 0)));
        assert!(hub.covers(&p("10.1.3.0/24")) && hub.covers(&hub));
        assert!(!p("10.1.3.0/24").covers(&hub));
        assert!(p("10.1.3.0/24").overlaps(&hub) && !p("10.2.0.0/16").overlaps(&hub));
        assert!(Ipv4Prefix::DEFAULT.contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(p("10.1.2.10/32").wire_len(), 5);
        assert_eq!(p("0.0.0.0/0").wire_len(), 1);
    }
}
