//! IP prefixes as carried in NLRI fields (RFC 4271 §4.3, RFC 4760 §5).
//!
//! On the wire a prefix is one length octet (in bits) followed by the fewest octets that hold
//! that many bits. Trailing bits past the length are not significant; the decoder clears them
//! so that two encodings of the same prefix compare equal.

pub use netprefix::{Ipv4Prefix, Ipv6Prefix, Prefix, PrefixError};

/// Why an NLRI field could not be walked (RFC 7606 §5.3: the session must be reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NlriError {
    #[error("prefix length {len} at offset {offset} exceeds {max} bits")]
    LengthTooLong { offset: usize, len: u8, max: u8 },
    #[error("prefix at offset {offset} needs {need} octets, {have} remain")]
    Truncated {
        offset: usize,
        need: usize,
        have: usize,
    },
}

/// Checks that `buf` is a well-formed sequence of prefixes of at most `max_bits` bits and
/// returns how many it holds. A validated field can then be iterated without checks.
pub fn validate_nlri(buf: &[u8], max_bits: u8) -> Result<usize, NlriError> {
    let mut i = 0;
    let mut n = 0;
    while i < buf.len() {
        let len = buf[i];
        if len > max_bits {
            return Err(NlriError::LengthTooLong {
                offset: i,
                len,
                max: max_bits,
            });
        }
        let need = (usize::from(len) + 7) / 8;
        let have = buf.len() - i - 1;
        if need > have {
            return Err(NlriError::Truncated {
                offset: i,
                need,
                have,
            });
        }
        i += 1 + need;
        n += 1;
    }
    Ok(n)
}

/// Zero-copy iterator over an IPv4 NLRI field that [`validate_nlri`] accepted.
#[derive(Clone, Debug)]
pub struct Ipv4NlriIter<'a> {
    buf: &'a [u8],
}

impl<'a> Ipv4NlriIter<'a> {
    /// `buf` must have passed `validate_nlri(buf, 32)`; on a buffer that did not, iteration
    /// stops early at the first bad prefix instead of panicking.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
}

impl Iterator for Ipv4NlriIter<'_> {
    type Item = Ipv4Prefix;
    #[inline]
    fn next(&mut self) -> Option<Ipv4Prefix> {
        let (&len, rest) = self.buf.split_first()?;
        let n = (usize::from(len) + 7) / 8;
        if len > 32 || rest.len() < n {
            self.buf = &[];
            return None;
        }
        let mut b = [0u8; 4];
        b[..n].copy_from_slice(&rest[..n]);
        self.buf = &rest[n..];
        Some(Ipv4Prefix::from_bits(u32::from_be_bytes(b), len))
    }
}

/// Zero-copy iterator over an IPv6 NLRI field that [`validate_nlri`] accepted.
#[derive(Clone, Debug)]
pub struct Ipv6NlriIter<'a> {
    buf: &'a [u8],
}

impl<'a> Ipv6NlriIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
}

impl Iterator for Ipv6NlriIter<'_> {
    type Item = Ipv6Prefix;
    fn next(&mut self) -> Option<Ipv6Prefix> {
        let (&len, rest) = self.buf.split_first()?;
        let n = (usize::from(len) + 7) / 8;
        if len > 128 || rest.len() < n {
            self.buf = &[];
            return None;
        }
        let mut b = [0u8; 16];
        b[..n].copy_from_slice(&rest[..n]);
        self.buf = &rest[n..];
        Some(Ipv6Prefix::from_bits(u128::from_be_bytes(b), len))
    }
}

/// Appends `p` in NLRI encoding.
#[inline]
pub fn emit_ipv4(p: &Ipv4Prefix, out: &mut Vec<u8>) {
    let n = (usize::from(p.len()) + 7) / 8;
    out.push(p.len());
    out.extend_from_slice(&p.bits().to_be_bytes()[..n]);
}

/// Appends `p` in NLRI encoding.
pub fn emit_ipv6(p: &Ipv6Prefix, out: &mut Vec<u8>) {
    let n = (usize::from(p.len()) + 7) / 8;
    out.push(p.len());
    out.extend_from_slice(&p.bits().to_be_bytes()[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        // Host bits are a mistake in text, and mean nothing on the wire.
        assert!("192.168.10.7/24".parse::<Ipv4Prefix>().is_err());
        let p = Ipv4Prefix::truncating("192.168.10.7".parse().unwrap(), 24);
        assert_eq!(p.to_string(), "192.168.10.0/24");
        assert!(p.contains("192.168.10.200".parse().unwrap()));
        assert!(!p.contains("192.168.11.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Ipv4Prefix>().is_err());
        assert!("10.0.0.0".parse::<Ipv4Prefix>().is_err());
        let v6 = Ipv6Prefix::truncating("2001:db8::1".parse().unwrap(), 32);
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert!("2001:db8::1/32".parse::<Prefix>().is_err());
    }

    #[test]
    fn nlri_walk() {
        // 10.0.0.0/8, 192.168.10.0/24, 0.0.0.0/0, 1.2.3.4/32
        let buf = [8, 10, 24, 192, 168, 10, 0, 32, 1, 2, 3, 4];
        assert_eq!(validate_nlri(&buf, 32), Ok(4));
        let v: Vec<String> = Ipv4NlriIter::new(&buf).map(|p| p.to_string()).collect();
        assert_eq!(
            v,
            ["10.0.0.0/8", "192.168.10.0/24", "0.0.0.0/0", "1.2.3.4/32"]
        );
        let mut out = Vec::new();
        for p in Ipv4NlriIter::new(&buf) {
            emit_ipv4(&p, &mut out);
        }
        assert_eq!(out, buf);
    }

    #[test]
    fn nlri_errors() {
        assert_eq!(
            validate_nlri(&[33, 1, 2, 3, 4, 5], 32),
            Err(NlriError::LengthTooLong {
                offset: 0,
                len: 33,
                max: 32
            })
        );
        assert_eq!(
            validate_nlri(&[8, 10, 24, 192, 168], 32),
            Err(NlriError::Truncated {
                offset: 2,
                need: 3,
                have: 2
            })
        );
        // Iteration over unvalidated bytes stops rather than panicking.
        assert_eq!(Ipv4NlriIter::new(&[24, 1]).count(), 0);
    }

    #[test]
    fn host_bits_cleared_on_decode() {
        let v: Vec<_> = Ipv4NlriIter::new(&[23, 10, 1, 255]).collect();
        assert_eq!(v[0].to_string(), "10.1.254.0/23");
    }
}
