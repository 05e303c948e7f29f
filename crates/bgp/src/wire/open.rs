//! OPEN (RFC 4271 §4.2) and its capabilities (RFC 5492): multiprotocol (RFC 4760), route
//! refresh (RFC 2918), enhanced route refresh (RFC 7313), 4-octet AS (RFC 6793), graceful
//! restart (RFC 4724) and extended message (RFC 8654). Unknown capabilities are kept as
//! [`Capability::Unknown`] so they can be shown and ignored. The extended optional parameters
//! length of RFC 9072 is accepted on input.

use std::net::Ipv4Addr;

use super::{Afi, Safi};
use crate::wire::notification::{code, open as sub, Notification};

/// AS_TRANS (RFC 6793 §9): what a 4-octet speaker puts in 2-octet AS fields.
pub const AS_TRANS: u16 = 23456;

/// Capability codes (IANA "Capability Codes").
pub mod cap {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
}

const PARAM_CAPABILITIES: u8 = 2;
const PARAM_EXTENDED_LENGTH: u8 = 255;

/// One address family in the graceful restart capability.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GracefulRestartFamily {
    pub afi: Afi,
    pub safi: Safi,
    /// Forwarding state preserved (the F bit).
    pub forwarding_preserved: bool,
}

/// A capability advertised in OPEN.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Capability {
    /// RFC 4760 §8.
    Multiprotocol { afi: Afi, safi: Safi },
    /// RFC 2918.
    RouteRefresh,
    /// RFC 7313.
    EnhancedRouteRefresh,
    /// RFC 6793: the speaker's real AS number.
    FourOctetAs(u32),
    /// RFC 4724 §3. `restart_time` is 12 bits.
    GracefulRestart {
        restarted: bool,
        notification: bool,
        restart_time: u16,
        families: Vec<GracefulRestartFamily>,
    },
    /// RFC 8654.
    ExtendedMessage,
    /// Anything else, kept as received (RFC 5492 §3: ignored, not an error).
    Unknown { code: u8, value: Vec<u8> },
}

/// An OPEN message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Open {
    pub version: u8,
    /// The 2-octet "My Autonomous System" field (AS_TRANS when the real AS needs 4 octets).
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

/// Why an OPEN could not be parsed. Each maps to the NOTIFICATION of RFC 4271 §6.2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("OPEN body is {0} octets, shorter than the 10-octet minimum")]
    TooShort(usize),
    #[error("optional parameters length {declared} does not match the {actual} octets present")]
    ParamLength { declared: usize, actual: usize },
    #[error("optional parameter {0} is not supported")]
    UnsupportedParam(u8),
    #[error("capability {code} overruns its optional parameter")]
    CapabilityOverrun { code: u8 },
    #[error("capability {code} has length {len}, which its definition does not allow")]
    CapabilityLength { code: u8, len: usize },
}

impl OpenError {
    /// The NOTIFICATION to send for this error.
    pub fn to_notification(&self) -> Notification {
        match self {
            OpenError::UnsupportedParam(_) => {
                Notification::new(code::OPEN_MESSAGE, sub::UNSUPPORTED_OPTIONAL_PARAMETER)
            }
            // RFC 4271 gives no better subcode for a malformed OPEN; 0 is "unspecific".
            _ => Notification::new(code::OPEN_MESSAGE, 0),
        }
    }
}

/// Whether `caps` offer graceful restart with the N bit (RFC 8538: NOTIFICATIONs other than
/// Cease/Hard Reset keep the routes too).
pub fn graceful_notification(caps: &[Capability]) -> bool {
    caps.iter().any(|c| {
        matches!(
            c,
            Capability::GracefulRestart {
                notification: true,
                ..
            }
        )
    })
}

impl Open {
    /// The peer's AS: the 4-octet capability when present, else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(a) => Some(*a),
            _ => None,
        })
    }
    pub fn has(&self, f: impl Fn(&Capability) -> bool) -> bool {
        self.capabilities.iter().any(f)
    }

    /// Parses an OPEN body (the bytes after the header).
    pub fn parse(body: &[u8]) -> Result<Self, OpenError> {
        if body.len() < 10 {
            return Err(OpenError::TooShort(body.len()));
        }
        let version = body[0];
        let my_as = u16::from_be_bytes([body[1], body[2]]);
        let hold_time = u16::from_be_bytes([body[3], body[4]]);
        let bgp_id = Ipv4Addr::new(body[5], body[6], body[7], body[8]);
        let mut opt_len = usize::from(body[9]);
        let mut params = &body[10..];
        // RFC 9072: a non-extended length of 255 followed by type 255 means 2-octet lengths.
        let extended = opt_len == 255 && params.first() == Some(&PARAM_EXTENDED_LENGTH);
        if extended {
            if params.len() < 3 {
                return Err(OpenError::ParamLength {
                    declared: 3,
                    actual: params.len(),
                });
            }
            opt_len = usize::from(u16::from_be_bytes([params[1], params[2]]));
            params = &params[3..];
        }
        if opt_len != params.len() {
            return Err(OpenError::ParamLength {
                declared: opt_len,
                actual: params.len(),
            });
        }
        let mut capabilities = Vec::new();
        while !params.is_empty() {
            let hdr = if extended { 3 } else { 2 };
            if params.len() < hdr {
                return Err(OpenError::ParamLength {
                    declared: hdr,
                    actual: params.len(),
                });
            }
            let ptype = params[0];
            let plen = if extended {
                usize::from(u16::from_be_bytes([params[1], params[2]]))
            } else {
                usize::from(params[1])
            };
            let value = params.get(hdr..hdr + plen).ok_or(OpenError::ParamLength {
                declared: plen,
                actual: params.len() - hdr,
            })?;
            if ptype != PARAM_CAPABILITIES {
                return Err(OpenError::UnsupportedParam(ptype));
            }
            parse_capabilities(value, &mut capabilities)?;
            params = &params[hdr + plen..];
        }
        Ok(Open {
            version,
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
    }

    /// Appends the OPEN body (without the 19-octet header).
    pub(crate) fn emit_body(&self, out: &mut Vec<u8>) {
        out.push(self.version);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        let mut caps = Vec::with_capacity(64);
        for c in &self.capabilities {
            emit_capability(c, &mut caps);
        }
        // One capability per optional parameter would also do; one parameter holding all of
        // them is what FRR and BIRD send. Past 255 octets, RFC 9072 extended lengths.
        if caps.len() + 2 <= 255 {
            if caps.is_empty() {
                out.push(0);
            } else {
                out.push((caps.len() + 2) as u8);
                out.push(PARAM_CAPABILITIES);
                out.push(caps.len() as u8);
                out.extend_from_slice(&caps);
            }
        } else {
            out.push(255);
            out.push(PARAM_EXTENDED_LENGTH);
            out.extend_from_slice(&((caps.len() + 3) as u16).to_be_bytes());
            out.push(PARAM_CAPABILITIES);
            out.extend_from_slice(&(caps.len() as u16).to_be_bytes());
            out.extend_from_slice(&caps);
        }
    }
}

fn parse_capabilities(mut buf: &[u8], out: &mut Vec<Capability>) -> Result<(), OpenError> {
    while !buf.is_empty() {
        let code = buf[0];
        let len = usize::from(*buf.get(1).ok_or(OpenError::CapabilityOverrun { code })?);
        let v = buf
            .get(2..2 + len)
            .ok_or(OpenError::CapabilityOverrun { code })?;
        let bad_len = || OpenError::CapabilityLength { code, len };
        let c = match code {
            cap::MULTIPROTOCOL => {
                if len != 4 {
                    return Err(bad_len());
                }
                Capability::Multiprotocol {
                    afi: Afi(u16::from_be_bytes([v[0], v[1]])),
                    safi: Safi(v[3]),
                }
            }
            cap::ROUTE_REFRESH if len == 0 => Capability::RouteRefresh,
            cap::ENHANCED_ROUTE_REFRESH if len == 0 => Capability::EnhancedRouteRefresh,
            cap::EXTENDED_MESSAGE if len == 0 => Capability::ExtendedMessage,
            cap::ROUTE_REFRESH | cap::ENHANCED_ROUTE_REFRESH | cap::EXTENDED_MESSAGE => {
                return Err(bad_len())
            }
            cap::FOUR_OCTET_AS => {
                if len != 4 {
                    return Err(bad_len());
                }
                Capability::FourOctetAs(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            }
            cap::GRACEFUL_RESTART => {
                if len < 2 || (len - 2) % 4 != 0 {
                    return Err(bad_len());
                }
                let hdr = u16::from_be_bytes([v[0], v[1]]);
                let families = v[2..]
                    .chunks_exact(4)
                    .map(|f| GracefulRestartFamily {
                        afi: Afi(u16::from_be_bytes([f[0], f[1]])),
                        safi: Safi(f[2]),
                        forwarding_preserved: f[3] & 0x80 != 0,
                    })
                    .collect();
                Capability::GracefulRestart {
                    restarted: hdr & 0x8000 != 0,
                    notification: hdr & 0x4000 != 0,
                    restart_time: hdr & 0x0fff,
                    families,
                }
            }
            _ => Capability::Unknown {
                code,
                value: v.to_vec(),
            },
        };
        out.push(c);
        buf = &buf[2 + len..];
    }
    Ok(())
}

fn emit_capability(c: &Capability, out: &mut Vec<u8>) {
    match c {
        Capability::Multiprotocol { afi, safi } => {
            out.extend_from_slice(&[cap::MULTIPROTOCOL, 4]);
            out.extend_from_slice(&afi.0.to_be_bytes());
            out.extend_from_slice(&[0, safi.0]);
        }
        Capability::RouteRefresh => out.extend_from_slice(&[cap::ROUTE_REFRESH, 0]),
        Capability::EnhancedRouteRefresh => {
            out.extend_from_slice(&[cap::ENHANCED_ROUTE_REFRESH, 0])
        }
        Capability::ExtendedMessage => out.extend_from_slice(&[cap::EXTENDED_MESSAGE, 0]),
        Capability::FourOctetAs(a) => {
            out.extend_from_slice(&[cap::FOUR_OCTET_AS, 4]);
            out.extend_from_slice(&a.to_be_bytes());
        }
        Capability::GracefulRestart {
            restarted,
            notification,
            restart_time,
            families,
        } => {
            out.push(cap::GRACEFUL_RESTART);
            out.push((2 + 4 * families.len()).min(255) as u8);
            let hdr = (u16::from(*restarted) << 15)
                | (u16::from(*notification) << 14)
                | (restart_time & 0x0fff);
            out.extend_from_slice(&hdr.to_be_bytes());
            for f in families.iter().take(63) {
                out.extend_from_slice(&f.afi.0.to_be_bytes());
                out.push(f.safi.0);
                out.push(if f.forwarding_preserved { 0x80 } else { 0 });
            }
        }
        Capability::Unknown { code, value } => {
            let n = value.len().min(255);
            out.push(*code);
            out.push(n as u8);
            out.extend_from_slice(&value[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_capability_kept() {
        // version 4, AS 65001, hold 90, id 1.1.1.1, one param with ADD-PATH (69) and cap 65.
        let body = [
            4, 0xfd, 0xe9, 0, 90, 1, 1, 1, 1, 14, 2, 12, 69, 4, 0, 1, 1, 3, 65, 4, 0, 0, 0xfd, 0xe9,
        ];
        let o = Open::parse(&body).unwrap();
        assert_eq!(
            o.capabilities[0],
            Capability::Unknown {
                code: 69,
                value: vec![0, 1, 1, 3]
            }
        );
        assert_eq!(o.asn(), 65001);
        let mut out = Vec::new();
        o.emit_body(&mut out);
        assert_eq!(out, body);
    }

    #[test]
    fn rfc9072_extended_parameters() {
        let mut caps: Vec<Capability> = (0..70)
            .map(|i| Capability::Unknown {
                code: 200,
                value: vec![i; 2],
            })
            .collect();
        caps.push(Capability::FourOctetAs(4_200_000_000));
        let o = Open {
            version: 4,
            my_as: AS_TRANS,
            hold_time: 180,
            bgp_id: Ipv4Addr::new(9, 9, 9, 9),
            capabilities: caps,
        };
        let mut out = Vec::new();
        o.emit_body(&mut out);
        assert_eq!(out[9], 255);
        assert_eq!(Open::parse(&out).unwrap(), o);
    }

    #[test]
    fn errors() {
        assert_eq!(Open::parse(&[4, 0, 1]), Err(OpenError::TooShort(3)));
        // Declared 4 octets of parameters, 2 present.
        let e = Open::parse(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 4, 2, 0]).unwrap_err();
        assert!(matches!(e, OpenError::ParamLength { .. }));
        // Parameter type 1 (authentication, deprecated): unsupported optional parameter.
        let e = Open::parse(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 3, 1, 1, 0]).unwrap_err();
        assert_eq!(e.to_notification(), Notification::new(2, 4));
        // 4-octet AS capability of length 2.
        let e = Open::parse(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 6, 2, 4, 65, 2, 0, 1]).unwrap_err();
        assert_eq!(e, OpenError::CapabilityLength { code: 65, len: 2 });
        // Capability overrunning its parameter.
        let e = Open::parse(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 4, 2, 2, 65, 4]).unwrap_err();
        assert_eq!(e, OpenError::CapabilityOverrun { code: 65 });
    }
}
