//! `Ipv4Prefix`: an IPv4 network written `10.1.0.0/16`, never with host bits set.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network: address and prefix length, host bits zero.
///
/// Written and read as `"10.1.0.0/16"`. Host bits set (`10.1.0.1/16`) is an error rather
/// than silently masked: in an address space it is almost always a typo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    addr: Ipv4Addr,
    len: u8,
}

/// Why a string or an (address, length) pair is not an [`Ipv4Prefix`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("expected ADDRESS/LENGTH, e.g. 10.1.0.0/16")]
    MissingLength,
    #[error("invalid IPv4 address")]
    BadAddress,
    #[error("invalid prefix length (expected 0 to 32)")]
    BadLength,
    #[error("host bits set, did you mean {0}?")]
    HostBitsSet(Ipv4Prefix),
}

impl Ipv4Prefix {
    /// `addr/len`; fails when `len > 32` or `addr` has bits set past `len`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Self, PrefixError> {
        if len > 32 {
            return Err(PrefixError::BadLength);
        }
        let network = Self::truncating(addr, len);
        if network.addr != addr {
            return Err(PrefixError::HostBitsSet(network));
        }
        Ok(network)
    }

    /// `addr/len` with the host bits cleared; `len` is capped at 32.
    pub fn truncating(addr: Ipv4Addr, len: u8) -> Self {
        let len = len.min(32);
        Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        }
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0 to 32.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    /// The netmask, e.g. 255.255.0.0 for a /16.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.len))
    }

    /// True when `addr` is inside this network.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.len) == u32::from(self.addr)
    }

    /// True when `other` is this network or a more specific one inside it.
    pub fn covers(&self, other: &Ipv4Prefix) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }

    /// True when the two networks share at least one address.
    pub fn overlaps(&self, other: &Ipv4Prefix) -> bool {
        self.covers(other) || other.covers(self)
    }
}

fn mask(len: u8) -> u32 {
    match len {
        0 => 0,
        len => u32::MAX << (32 - u32::from(len.min(32))),
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s.split_once('/').ok_or(PrefixError::MissingLength)?;
        let addr = addr.parse().map_err(|_| PrefixError::BadAddress)?;
        // u8::from_str accepts "+16"; a prefix length is plain digits.
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PrefixError::BadLength);
        }
        let len = len.parse().map_err(|_| PrefixError::BadLength)?;
        Self::new(addr, len)
    }
}

impl serde::Serialize for Ipv4Prefix {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Ipv4Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Ipv4Prefix;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an IPv4 prefix such as \"10.1.0.0/16\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Ipv4Prefix, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
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
        assert_eq!(p("10.1.0.0/16").len(), 16);
        assert_eq!(p("10.1.0.0/16").netmask(), Ipv4Addr::new(255, 255, 0, 0));
    }

    #[test]
    fn host_bits_set_is_an_error_that_suggests_the_network() {
        let err = "10.1.0.1/16".parse::<Ipv4Prefix>().unwrap_err();
        assert_eq!(err, PrefixError::HostBitsSet(p("10.1.0.0/16")));
        assert_eq!(err.to_string(), "host bits set, did you mean 10.1.0.0/16?");
    }

    #[test]
    fn malformed() {
        use PrefixError::*;
        for (s, e) in [
            ("10.1.0.0", MissingLength),
            ("10.1.0/16", BadAddress),
            ("10.1.0.0/33", BadLength),
            ("10.1.0.0/", BadLength),
            ("10.1.0.0/+16", BadLength),
            ("10.1.0.0/1000", BadLength),
            ("", MissingLength),
        ] {
            assert_eq!(s.parse::<Ipv4Prefix>(), Err(e), "{s}");
        }
    }

    #[test]
    fn containment() {
        let hub = p("10.1.0.0/16");
        assert!(hub.contains(Ipv4Addr::new(10, 1, 255, 255)));
        assert!(!hub.contains(Ipv4Addr::new(10, 2, 0, 0)));
        assert!(hub.covers(&p("10.1.3.0/24")));
        assert!(hub.covers(&hub));
        assert!(!p("10.1.3.0/24").covers(&hub));
        assert!(p("10.1.3.0/24").overlaps(&hub));
        assert!(!p("10.2.0.0/16").overlaps(&hub));
        assert!(p("0.0.0.0/0").contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert!(p("10.1.2.10/32").contains(Ipv4Addr::new(10, 1, 2, 10)));
    }
}
