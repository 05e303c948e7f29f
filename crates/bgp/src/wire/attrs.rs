//! Path attributes (RFC 4271 §4.3, §5) and their error handling (RFC 7606).
//!
//! [`parse_attributes`] walks the attribute list once. Each attribute is checked for its
//! flags, its length and its value; a problem becomes an [`AttrError`] whose
//! [`ErrorAction`] says what RFC 7606 asks for:
//!
//! | action | when | the caller |
//! |---|---|---|
//! | `AttributeDiscard` | ATOMIC_AGGREGATE, AGGREGATOR, AS4_*, iBGP-only attributes from an eBGP peer, a repeated attribute | keeps the route, without that attribute |
//! | `TreatAsWithdraw` | ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF, communities, flags errors, a missing mandatory attribute, an attribute overrunning the list | withdraws every prefix of the UPDATE |
//! | `SessionReset` | MP_REACH/MP_UNREACH malformed or repeated, an unrecognized well-known attribute | sends the NOTIFICATION and closes |
//!
//! With a 2-octet peer (no RFC 6793 capability on both sides) AS_PATH and AGGREGATOR carry
//! AS_TRANS for large ASNs and the real values travel in AS4_PATH / AS4_AGGREGATOR; the decoder
//! merges them (RFC 6793 §4.2.3) so [`PathAttributes`] always holds 4-octet ASNs, and the
//! encoder splits them again.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::notification::update as sub;
use super::open::AS_TRANS;
use super::prefix::{self, Ipv4NlriIter, Ipv6NlriIter, NlriError};
use super::{Afi, Prefix, Safi, SessionContext};

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod attr_type {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// Attribute flag bits (RFC 4271 §4.3).
pub mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

use attr_type as t;

/// Well-known communities (RFC 1997).
pub mod community {
    pub const NO_EXPORT: u32 = 0xFFFF_FF01;
    pub const NO_ADVERTISE: u32 = 0xFFFF_FF02;
    pub const NO_EXPORT_SUBCONFED: u32 = 0xFFFF_FF03;
}

/// ORIGIN (RFC 4271 §5.1.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// One AS_PATH segment (RFC 4271 §4.3, RFC 5065 §3).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum AsSegment {
    Set(Vec<u32>),
    Sequence(Vec<u32>),
    ConfedSequence(Vec<u32>),
    ConfedSet(Vec<u32>),
}

impl AsSegment {
    fn type_code(&self) -> u8 {
        match self {
            AsSegment::Set(_) => 1,
            AsSegment::Sequence(_) => 2,
            AsSegment::ConfedSequence(_) => 3,
            AsSegment::ConfedSet(_) => 4,
        }
    }
    pub fn asns(&self) -> &[u32] {
        match self {
            AsSegment::Set(v)
            | AsSegment::Sequence(v)
            | AsSegment::ConfedSequence(v)
            | AsSegment::ConfedSet(v) => v,
        }
    }
    fn is_confed(&self) -> bool {
        matches!(self, AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_))
    }
    /// Contribution to the path length of RFC 4271 §9.1.2.2 and RFC 5065 §5.3.
    fn hops(&self) -> usize {
        match self {
            AsSegment::Sequence(v) => v.len(),
            AsSegment::Set(_) => 1,
            _ => 0,
        }
    }
}

/// AS_PATH with 4-octet ASNs.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct AsPath {
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    pub fn from_sequence(asns: impl Into<Vec<u32>>) -> Self {
        let v = asns.into();
        if v.is_empty() {
            return Self::default();
        }
        Self {
            segments: vec![AsSegment::Sequence(v)],
        }
    }
    /// Length for best-path selection: an AS_SET counts one, confederation segments none.
    pub fn path_len(&self) -> usize {
        self.segments.iter().map(AsSegment::hops).sum()
    }
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns().contains(&asn))
    }
    /// The AS the route was last advertised from: the first AS of a leading AS_SEQUENCE.
    pub fn first_asn(&self) -> Option<u32> {
        match self.segments.first() {
            Some(AsSegment::Sequence(v)) => v.first().copied(),
            _ => None,
        }
    }
    /// The path with `asn` prepended, as an eBGP speaker sends it (RFC 4271 §5.1.2).
    pub fn prepend(&self, asn: u32) -> AsPath {
        let mut segments = Vec::with_capacity(self.segments.len() + 1);
        match self.segments.first() {
            Some(AsSegment::Sequence(v)) if v.len() < 255 => {
                let mut s = Vec::with_capacity(v.len() + 1);
                s.push(asn);
                s.extend_from_slice(v);
                segments.push(AsSegment::Sequence(s));
                segments.extend(self.segments[1..].iter().cloned());
            }
            _ => {
                segments.push(AsSegment::Sequence(vec![asn]));
                segments.extend(self.segments.iter().cloned());
            }
        }
        AsPath { segments }
    }
    fn needs_four_octets(&self) -> bool {
        self.segments
            .iter()
            .any(|s| s.asns().iter().any(|&a| a > 0xffff))
    }
}

impl fmt::Display for AsPath {
    /// The usual notation: `65001 65002 {64512,64513} (65010)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let (open, close, sep) = match s {
                AsSegment::Sequence(_) => ("", "", " "),
                AsSegment::Set(_) => ("{", "}", ","),
                AsSegment::ConfedSequence(_) => ("(", ")", " "),
                AsSegment::ConfedSet(_) => ("[", "]", ","),
            };
            f.write_str(open)?;
            for (i, a) in s.asns().iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{a}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}

/// AGGREGATOR (RFC 4271 §5.1.7), with a 4-octet AS.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Aggregator {
    pub asn: u32,
    pub address: Ipv4Addr,
}

/// LARGE_COMMUNITY (RFC 8092).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct LargeCommunity {
    pub global_admin: u32,
    pub local_data1: u32,
    pub local_data2: u32,
}

/// Next hop of MP_REACH_NLRI (RFC 4760 §3, RFC 2545 §3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MpNextHop {
    V4(Ipv4Addr),
    V6 {
        global: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
    },
}

/// MP_REACH_NLRI for IPv4 or IPv6 unicast.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct MpReach {
    pub afi: Afi,
    pub safi: Safi,
    pub next_hop: MpNextHop,
    pub nlri: Vec<Prefix>,
}

/// MP_UNREACH_NLRI for IPv4 or IPv6 unicast.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct MpUnreach {
    pub afi: Afi,
    pub safi: Safi,
    pub withdrawn: Vec<Prefix>,
}

/// An attribute this codec does not interpret, kept as received.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct RawAttribute {
    /// Optional, Transitive and Partial bits; the Extended Length bit is recomputed on encode.
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

impl RawAttribute {
    /// Whether RFC 4271 §5 lets a speaker pass this attribute on: optional transitive only.
    pub fn is_transitive(&self) -> bool {
        self.flags & flag::OPTIONAL != 0 && self.flags & flag::TRANSITIVE != 0
    }
    /// The attribute as passed on to other peers: with the Partial bit set (RFC 4271 §5:
    /// an optional transitive attribute we did not recognize).
    pub fn for_forwarding(&self) -> RawAttribute {
        RawAttribute {
            flags: self.flags | flag::PARTIAL,
            ..self.clone()
        }
    }
}

/// Every attribute of one UPDATE, decoded. The AS4_* attributes never appear here: they are
/// merged into `as_path` and `aggregator` on decode and produced again on encode.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct PathAttributes {
    pub origin: Option<Origin>,
    pub as_path: Option<AsPath>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<Aggregator>,
    pub communities: Vec<u32>,
    pub ext_communities: Vec<u64>,
    pub large_communities: Vec<LargeCommunity>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    /// Unrecognized optional attributes, ordered by type code (the order they are encoded in,
    /// so that a decoded set compares equal to its re-encoding).
    pub unknown: Vec<RawAttribute>,
}

/// What RFC 7606 asks the receiver to do about a malformed attribute, least severe first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum ErrorAction {
    /// RFC 7606 §2 "attribute discard": drop the attribute, keep the route.
    AttributeDiscard,
    /// RFC 7606 §2 "treat-as-withdraw": every prefix of the UPDATE is withdrawn.
    TreatAsWithdraw,
    /// RFC 7606 §2 "session reset": send the NOTIFICATION, close the session.
    SessionReset,
}

/// What is wrong with an attribute.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AttrProblem {
    /// Optional/Transitive bits differ from the attribute's definition (RFC 7606 §3 c).
    Flags {
        flags: u8,
    },
    /// The length does not fit the attribute's definition.
    Length {
        len: usize,
    },
    InvalidOrigin(u8),
    MalformedAsPath(&'static str),
    /// A next hop that can never be valid (RFC 4271 §6.3).
    InvalidNextHop(Ipv4Addr),
    /// A mandatory well-known attribute is absent (RFC 7606 §3 d).
    Missing,
    /// Seen before in the same UPDATE (RFC 7606 §3 g).
    Duplicate,
    /// The attribute's length runs past the end of the attribute list (RFC 7606 §4).
    Overrun,
    /// An iBGP-only attribute, or AS_CONFED segments, from an external peer.
    NotFromExternalPeer,
    /// An AS4_* attribute from a 4-octet speaker (RFC 6793 §4.1).
    UnexpectedAs4,
    /// The well-known attribute is not one this speaker knows (RFC 4271 §6.3).
    UnrecognizedWellKnown,
    /// MP_REACH/MP_UNREACH for an address family other than IPv4/IPv6 unicast.
    UnsupportedFamily {
        afi: u16,
        safi: u8,
    },
    /// MP_REACH next hop length inconsistent with the family (RFC 7606 §7.11).
    MpNextHopLength {
        len: usize,
    },
    /// MP NLRI that cannot be walked.
    MpNlri(NlriError),
}

/// One malformed attribute with the RFC 7606 action and the RFC 4271 §6.3 subcode.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{} (type {type_code}): {problem} -> {}", attr_name(*type_code), action_name(*action))]
pub struct AttrError {
    pub type_code: u8,
    pub problem: AttrProblem,
    pub action: ErrorAction,
    /// UPDATE Message Error subcode for the NOTIFICATION, when `action` is `SessionReset`.
    pub subcode: u8,
    /// NOTIFICATION data (the offending attribute, or its type for a missing one); filled only
    /// when `action` is `SessionReset`.
    pub data: Vec<u8>,
}

impl fmt::Display for AttrProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrProblem::Flags { flags } => write!(
                f,
                "flags {flags:#04x} do not match the attribute's definition"
            ),
            AttrProblem::Length { len } => write!(f, "length {len} is invalid"),
            AttrProblem::InvalidOrigin(o) => write!(f, "invalid value {o}"),
            AttrProblem::MalformedAsPath(why) => write!(f, "malformed: {why}"),
            AttrProblem::InvalidNextHop(a) => write!(f, "{a} cannot be a next hop"),
            AttrProblem::Missing => f.write_str("missing"),
            AttrProblem::Duplicate => f.write_str("repeated"),
            AttrProblem::Overrun => f.write_str("runs past the end of the attribute list"),
            AttrProblem::NotFromExternalPeer => f.write_str("not allowed from an external peer"),
            AttrProblem::UnexpectedAs4 => f.write_str("sent by a 4-octet speaker"),
            AttrProblem::UnrecognizedWellKnown => f.write_str("unrecognized well-known attribute"),
            AttrProblem::UnsupportedFamily { afi, safi } => {
                write!(f, "AFI {afi} / SAFI {safi} not supported")
            }
            AttrProblem::MpNextHopLength { len } => {
                write!(f, "next hop length {len} is invalid for the family")
            }
            AttrProblem::MpNlri(e) => write!(f, "NLRI: {e}"),
        }
    }
}

/// The name of an attribute type, for messages.
pub fn attr_name(code: u8) -> &'static str {
    match code {
        t::ORIGIN => "ORIGIN",
        t::AS_PATH => "AS_PATH",
        t::NEXT_HOP => "NEXT_HOP",
        t::MULTI_EXIT_DISC => "MULTI_EXIT_DISC",
        t::LOCAL_PREF => "LOCAL_PREF",
        t::ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        t::AGGREGATOR => "AGGREGATOR",
        t::COMMUNITIES => "COMMUNITIES",
        t::ORIGINATOR_ID => "ORIGINATOR_ID",
        t::CLUSTER_LIST => "CLUSTER_LIST",
        t::MP_REACH_NLRI => "MP_REACH_NLRI",
        t::MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        t::EXTENDED_COMMUNITIES => "EXTENDED_COMMUNITIES",
        t::AS4_PATH => "AS4_PATH",
        t::AS4_AGGREGATOR => "AS4_AGGREGATOR",
        t::LARGE_COMMUNITY => "LARGE_COMMUNITY",
        _ => "attribute",
    }
}

fn action_name(a: ErrorAction) -> &'static str {
    match a {
        ErrorAction::AttributeDiscard => "attribute discarded",
        ErrorAction::TreatAsWithdraw => "treat-as-withdraw",
        ErrorAction::SessionReset => "session reset",
    }
}

/// Expected Optional and Transitive bits of each recognized attribute.
fn expected_flags(code: u8) -> Option<u8> {
    const WK: u8 = flag::TRANSITIVE;
    const OT: u8 = flag::OPTIONAL | flag::TRANSITIVE;
    const ON: u8 = flag::OPTIONAL;
    Some(match code {
        t::ORIGIN | t::AS_PATH | t::NEXT_HOP | t::LOCAL_PREF | t::ATOMIC_AGGREGATE => WK,
        t::MULTI_EXIT_DISC
        | t::ORIGINATOR_ID
        | t::CLUSTER_LIST
        | t::MP_REACH_NLRI
        | t::MP_UNREACH_NLRI => ON,
        t::AGGREGATOR
        | t::COMMUNITIES
        | t::EXTENDED_COMMUNITIES
        | t::AS4_PATH
        | t::AS4_AGGREGATOR
        | t::LARGE_COMMUNITY => OT,
        _ => return None,
    })
}

/// The result of walking an attribute list.
#[derive(Debug, Default)]
pub struct ParsedAttributes {
    pub attrs: PathAttributes,
    /// The most severe non-reset problem, if it asks for treat-as-withdraw.
    pub withdraw: Option<AttrError>,
    /// Attributes dropped under "attribute discard", for logs and counters.
    pub discarded: Vec<AttrError>,
}

struct Walker<'c> {
    ctx: &'c SessionContext,
    out: ParsedAttributes,
    as4_path: Option<AsPath>,
    as4_aggregator: Option<Aggregator>,
}

impl Walker<'_> {
    /// Records a problem; `Err` when it asks for a session reset.
    fn problem(
        &mut self,
        type_code: u8,
        problem: AttrProblem,
        action: ErrorAction,
        subcode: u8,
        whole: &[u8],
    ) -> Result<(), AttrError> {
        let mut e = AttrError {
            type_code,
            problem,
            action,
            subcode,
            data: Vec::new(),
        };
        match action {
            ErrorAction::SessionReset => {
                e.data = whole.to_vec();
                Err(e)
            }
            ErrorAction::TreatAsWithdraw => {
                if self.out.withdraw.is_none() {
                    self.out.withdraw = Some(e);
                }
                Ok(())
            }
            ErrorAction::AttributeDiscard => {
                self.out.discarded.push(e);
                Ok(())
            }
        }
    }
}

/// Walks the path attributes of an UPDATE. `Err` is a session reset; everything else is in
/// [`ParsedAttributes`]. `has_ipv4_nlri` says whether the UPDATE announces IPv4 prefixes in
/// its NLRI field (then NEXT_HOP is mandatory).
pub fn parse_attributes(
    buf: &[u8],
    ctx: &SessionContext,
    has_ipv4_nlri: bool,
) -> Result<ParsedAttributes, AttrError> {
    use ErrorAction::*;
    let mut w = Walker {
        ctx,
        out: ParsedAttributes::default(),
        as4_path: None,
        as4_aggregator: None,
    };
    let mut seen = [0u64; 4];
    let mut pos = 0;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let (flags, code) = match rest {
            [f, c, ..] if rest.len() >= 3 => (*f, *c),
            _ => {
                w.problem(
                    0,
                    AttrProblem::Overrun,
                    TreatAsWithdraw,
                    sub::MALFORMED_ATTRIBUTE_LIST,
                    &[],
                )?;
                break;
            }
        };
        let ext = flags & flag::EXTENDED_LENGTH != 0;
        let hdr = if ext { 4 } else { 3 };
        if rest.len() < hdr {
            w.problem(
                code,
                AttrProblem::Overrun,
                TreatAsWithdraw,
                sub::MALFORMED_ATTRIBUTE_LIST,
                &[],
            )?;
            break;
        }
        let len = if ext {
            usize::from(u16::from_be_bytes([rest[2], rest[3]]))
        } else {
            usize::from(rest[2])
        };
        let Some(whole) = rest.get(..hdr + len) else {
            w.problem(
                code,
                AttrProblem::Overrun,
                TreatAsWithdraw,
                sub::MALFORMED_ATTRIBUTE_LIST,
                &[],
            )?;
            break;
        };
        let value = &whole[hdr..];
        pos += hdr + len;

        let bit = 1u64 << (code % 64);
        let slot = usize::from(code / 64);
        if seen[slot] & bit != 0 {
            let action = if code == t::MP_REACH_NLRI || code == t::MP_UNREACH_NLRI {
                SessionReset
            } else {
                AttributeDiscard
            };
            w.problem(
                code,
                AttrProblem::Duplicate,
                action,
                sub::MALFORMED_ATTRIBUTE_LIST,
                whole,
            )?;
            continue;
        }
        seen[slot] |= bit;

        match expected_flags(code) {
            None => {
                if flags & flag::OPTIONAL == 0 {
                    w.problem(
                        code,
                        AttrProblem::UnrecognizedWellKnown,
                        SessionReset,
                        sub::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                        whole,
                    )?;
                }
                w.out.attrs.unknown.push(RawAttribute {
                    flags: flags & 0xe0,
                    type_code: code,
                    value: value.to_vec(),
                });
                continue;
            }
            Some(exp) if flags & (flag::OPTIONAL | flag::TRANSITIVE) != exp => {
                let action = match code {
                    t::MP_REACH_NLRI | t::MP_UNREACH_NLRI => SessionReset,
                    t::AS4_PATH | t::AS4_AGGREGATOR => AttributeDiscard,
                    _ => TreatAsWithdraw,
                };
                w.problem(
                    code,
                    AttrProblem::Flags { flags },
                    action,
                    sub::ATTRIBUTE_FLAGS_ERROR,
                    whole,
                )?;
                continue;
            }
            Some(_) => {}
        }
        parse_one(&mut w, code, value, whole)?;
    }

    w.out.attrs.unknown.sort_by_key(|r| r.type_code);

    // RFC 6793 §4.2.3: with a 2-octet peer, put the AS4_* values back.
    if !ctx.four_octet_as {
        let mut use_as4_path = true;
        if let Some(agg) = w.out.attrs.aggregator {
            if agg.asn != u32::from(AS_TRANS) {
                // A 2-octet aggregator means the AS4 attributes are stale: ignore both.
                use_as4_path = false;
            } else if let Some(a4) = w.as4_aggregator {
                w.out.attrs.aggregator = Some(a4);
            }
        }
        if use_as4_path {
            if let (Some(p), Some(p4)) = (w.out.attrs.as_path.as_ref(), w.as4_path.take()) {
                w.out.attrs.as_path = Some(merge_as4_path(p, p4));
            }
        }
    }

    // Mandatory well-known attributes (RFC 4271 §5, RFC 7606 §3 d).
    let announces = has_ipv4_nlri
        || w.out
            .attrs
            .mp_reach
            .as_ref()
            .is_some_and(|m| !m.nlri.is_empty());
    if announces {
        for (code, present) in [
            (t::ORIGIN, w.out.attrs.origin.is_some()),
            (t::AS_PATH, w.out.attrs.as_path.is_some()),
            (
                t::NEXT_HOP,
                !has_ipv4_nlri || w.out.attrs.next_hop.is_some(),
            ),
        ] {
            if !present {
                w.problem(
                    code,
                    AttrProblem::Missing,
                    TreatAsWithdraw,
                    sub::MISSING_WELL_KNOWN_ATTRIBUTE,
                    &[code],
                )?;
            }
        }
    }
    Ok(w.out)
}

fn be32(v: &[u8]) -> u32 {
    u32::from_be_bytes([v[0], v[1], v[2], v[3]])
}

fn parse_one(w: &mut Walker<'_>, code: u8, v: &[u8], whole: &[u8]) -> Result<(), AttrError> {
    use ErrorAction::*;
    let len = v.len();
    let bad_len = AttrProblem::Length { len };
    let ebgp = w.ctx.ebgp;
    let a = &mut w.out.attrs;
    match code {
        t::ORIGIN => match v {
            [0] => a.origin = Some(Origin::Igp),
            [1] => a.origin = Some(Origin::Egp),
            [2] => a.origin = Some(Origin::Incomplete),
            [o] => {
                return w.problem(
                    code,
                    AttrProblem::InvalidOrigin(*o),
                    TreatAsWithdraw,
                    sub::INVALID_ORIGIN_ATTRIBUTE,
                    whole,
                )
            }
            _ => {
                return w.problem(
                    code,
                    bad_len,
                    TreatAsWithdraw,
                    sub::ATTRIBUTE_LENGTH_ERROR,
                    whole,
                )
            }
        },
        t::AS_PATH => {
            let size = if w.ctx.four_octet_as { 4 } else { 2 };
            match parse_as_path(v, size) {
                Ok(p) if ebgp && p.segments.iter().any(AsSegment::is_confed) => {
                    return w.problem(
                        code,
                        AttrProblem::NotFromExternalPeer,
                        TreatAsWithdraw,
                        sub::MALFORMED_AS_PATH,
                        whole,
                    )
                }
                Ok(p) => a.as_path = Some(p),
                Err(why) => {
                    return w.problem(
                        code,
                        AttrProblem::MalformedAsPath(why),
                        TreatAsWithdraw,
                        sub::MALFORMED_AS_PATH,
                        whole,
                    )
                }
            }
        }
        t::NEXT_HOP => {
            if len != 4 {
                return w.problem(
                    code,
                    bad_len,
                    TreatAsWithdraw,
                    sub::ATTRIBUTE_LENGTH_ERROR,
                    whole,
                );
            }
            let nh = Ipv4Addr::from(be32(v));
            if nh.is_unspecified() || nh.is_multicast() || nh.is_broadcast() {
                return w.problem(
                    code,
                    AttrProblem::InvalidNextHop(nh),
                    TreatAsWithdraw,
                    sub::INVALID_NEXT_HOP_ATTRIBUTE,
                    whole,
                );
            }
            a.next_hop = Some(nh);
        }
        t::MULTI_EXIT_DISC => {
            if len != 4 {
                return w.problem(
                    code,
                    bad_len,
                    TreatAsWithdraw,
                    sub::ATTRIBUTE_LENGTH_ERROR,
                    whole,
                );
            }
            a.med = Some(be32(v));
        }
        t::LOCAL_PREF => {
            if ebgp {
                return w.problem(
                    code,
                    AttrProblem::NotFromExternalPeer,
                    AttributeDiscard,
                    0,
                    whole,
                );
            }
            if len != 4 {
                return w.problem(
                    code,
                    bad_len,
                    TreatAsWithdraw,
                    sub::ATTRIBUTE_LENGTH_ERROR,
                    whole,
                );
            }
            a.local_pref = Some(be32(v));
        }
        t::ATOMIC_AGGREGATE => {
            if len != 0 {
                return w.problem(
                    code,
                    bad_len,
                    AttributeDiscard,
                    sub::ATTRIBUTE_LENGTH_ERROR,
                    whole,
                );
            }
            a.atomic_aggregate = true;
        }
        t::AGGREGATOR => {
            let want = if w.ctx.four_octet_as { 8 } else { 6 };
            if len != want {
                return w.problem(
                    code,
                    bad_len,
                    AttributeDiscard,
                    sub::ATTRIBUTE_LENGTH_ERROR,
                    whole,
                );
            }
            let (asn, addr) = if want == 8 {
                (be32(v), be32(&v[4..]))
            } else {
                (u32::from(u16::from_be_bytes([v[0], v[1]])), be32(&v[2..]))
            };
            a.aggregator = Some(Aggregator {
                asn,
                address: Ipv4Addr::from(addr),
            });
        }
        t::COMMUNITIES => {
            if len == 0 || len % 4 != 0 {
                return w.problem(
                    code,
                    bad_len,
                    TreatAsWithdraw,
                    sub::OPTIONAL_ATTRIBUTE_ERROR,
                    whole,
                );
            }
            a.communities = v.chunks_exact(4).map(be32).collect();
        }
        t::ORIGINATOR_ID | t::CLUSTER_LIST if ebgp => {
            return w.problem(
                code,
                AttrProblem::NotFromExternalPeer,
                AttributeDiscard,
                0,
                whole,
            );
        }
        t::ORIGINATOR_ID => {
            if len != 4 {
                return w.problem(
                    code,
                    bad_len,
                    TreatAsWithdraw,
                    sub::ATTRIBUTE_LENGTH_ERROR,
                    whole,
                );
            }
            a.originator_id = Some(Ipv4Addr::from(be32(v)));
        }
        t::CLUSTER_LIST => {
            if len == 0 || len % 4 != 0 {
                return w.problem(
                    code,
                    bad_len,
                    TreatAsWithdraw,
                    sub::ATTRIBUTE_LENGTH_ERROR,
                    whole,
                );
            }
            a.cluster_list = v.chunks_exact(4).map(|c| Ipv4Addr::from(be32(c))).collect();
        }
        t::EXTENDED_COMMUNITIES => {
            if len == 0 || len % 8 != 0 {
                return w.problem(
                    code,
                    bad_len,
                    TreatAsWithdraw,
                    sub::OPTIONAL_ATTRIBUTE_ERROR,
                    whole,
                );
            }
            a.ext_communities = v
                .chunks_exact(8)
                .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
        }
        t::LARGE_COMMUNITY => {
            if len == 0 || len % 12 != 0 {
                return w.problem(
                    code,
                    bad_len,
                    TreatAsWithdraw,
                    sub::OPTIONAL_ATTRIBUTE_ERROR,
                    whole,
                );
            }
            a.large_communities = v
                .chunks_exact(12)
                .map(|c| LargeCommunity {
                    global_admin: be32(c),
                    local_data1: be32(&c[4..]),
                    local_data2: be32(&c[8..]),
                })
                .collect();
        }
        t::MP_REACH_NLRI => match parse_mp_reach(v) {
            Ok(Some(m)) => a.mp_reach = Some(m),
            other => return mp_problem(w, code, v, whole, other.err()),
        },
        t::MP_UNREACH_NLRI => match parse_mp_unreach(v) {
            Ok(Some(m)) => a.mp_unreach = Some(m),
            other => return mp_problem(w, code, v, whole, other.err()),
        },
        t::AS4_PATH | t::AS4_AGGREGATOR if w.ctx.four_octet_as => {
            return w.problem(code, AttrProblem::UnexpectedAs4, AttributeDiscard, 0, whole);
        }
        t::AS4_PATH => match parse_as_path(v, 4) {
            Ok(p) if p.segments.iter().any(AsSegment::is_confed) => {
                return w.problem(
                    code,
                    AttrProblem::MalformedAsPath("AS_CONFED segment in AS4_PATH"),
                    AttributeDiscard,
                    0,
                    whole,
                )
            }
            Ok(p) => w.as4_path = Some(p),
            Err(why) => {
                return w.problem(
                    code,
                    AttrProblem::MalformedAsPath(why),
                    AttributeDiscard,
                    0,
                    whole,
                )
            }
        },
        t::AS4_AGGREGATOR => {
            if len != 8 {
                return w.problem(code, bad_len, AttributeDiscard, 0, whole);
            }
            w.as4_aggregator = Some(Aggregator {
                asn: be32(v),
                address: Ipv4Addr::from(be32(&v[4..])),
            });
        }
        _ => unreachable!("expected_flags covers exactly the codes matched here"),
    }
    Ok(())
}

/// An MP_REACH/MP_UNREACH that is malformed (`Some`: session reset, RFC 7606 §7.11) or of a
/// family this codec does not carry (`None`: discarded).
fn mp_problem(
    w: &mut Walker<'_>,
    code: u8,
    v: &[u8],
    whole: &[u8],
    err: Option<AttrProblem>,
) -> Result<(), AttrError> {
    use ErrorAction::*;
    match err {
        Some(p) => w.problem(code, p, SessionReset, sub::OPTIONAL_ATTRIBUTE_ERROR, whole),
        None => {
            let (afi, safi) = (u16::from_be_bytes([v[0], v[1]]), v[2]);
            w.problem(
                code,
                AttrProblem::UnsupportedFamily { afi, safi },
                AttributeDiscard,
                0,
                whole,
            )
        }
    }
}

/// Parses AS_PATH / AS4_PATH segments with `size`-octet ASNs.
fn parse_as_path(mut v: &[u8], size: usize) -> Result<AsPath, &'static str> {
    let mut segments = Vec::new();
    while !v.is_empty() {
        if v.len() < 2 {
            return Err("segment header truncated");
        }
        let (ty, n) = (v[0], usize::from(v[1]));
        if n == 0 {
            return Err("segment of length zero");
        }
        let body = v
            .get(2..2 + n * size)
            .ok_or("segment overruns the attribute")?;
        let asns: Vec<u32> = if size == 4 {
            body.chunks_exact(4).map(be32).collect()
        } else {
            body.chunks_exact(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .collect()
        };
        segments.push(match ty {
            1 => AsSegment::Set(asns),
            2 => AsSegment::Sequence(asns),
            3 => AsSegment::ConfedSequence(asns),
            4 => AsSegment::ConfedSet(asns),
            _ => return Err("unknown segment type"),
        });
        v = &v[2 + n * size..];
    }
    Ok(AsPath { segments })
}

/// RFC 6793 §4.2.3: the leading ASes of AS_PATH that AS4_PATH does not cover (prepended by
/// 2-octet speakers since), followed by AS4_PATH. An AS4_PATH longer than AS_PATH is ignored.
fn merge_as4_path(path: &AsPath, as4: AsPath) -> AsPath {
    let (n, n4) = (path.path_len(), as4.path_len());
    if n < n4 {
        return path.clone();
    }
    let mut keep = n - n4;
    let mut segments = Vec::new();
    let mut partial_sequence = false;
    for s in &path.segments {
        if s.is_confed() {
            segments.push(s.clone());
            continue;
        }
        if keep == 0 {
            break;
        }
        match s {
            AsSegment::Sequence(v) if v.len() > keep => {
                segments.push(AsSegment::Sequence(v[..keep].to_vec()));
                partial_sequence = true;
                keep = 0;
            }
            _ => {
                keep -= s.hops();
                segments.push(s.clone());
            }
        }
    }
    let mut rest = as4.segments.into_iter();
    if partial_sequence {
        if let (Some(AsSegment::Sequence(head)), Some(AsSegment::Sequence(next))) =
            (segments.last_mut(), rest.as_slice().first())
        {
            if head.len() + next.len() <= 255 {
                head.extend_from_slice(next);
                rest.next();
            }
        }
    }
    segments.extend(rest);
    AsPath { segments }
}

fn mp_family(afi: u16, safi: u8) -> Option<u8> {
    match (afi, safi) {
        (1, 1) => Some(32),
        (2, 1) => Some(128),
        _ => None,
    }
}

fn collect_nlri(buf: &[u8], max_bits: u8) -> Result<Vec<Prefix>, AttrProblem> {
    let n = prefix::validate_nlri(buf, max_bits).map_err(AttrProblem::MpNlri)?;
    let mut out = Vec::with_capacity(n);
    if max_bits == 32 {
        out.extend(Ipv4NlriIter::new(buf).map(Prefix::V4));
    } else {
        out.extend(Ipv6NlriIter::new(buf).map(Prefix::V6));
    }
    Ok(out)
}

/// `Ok(None)`: a family this codec does not carry.
fn parse_mp_reach(v: &[u8]) -> Result<Option<MpReach>, AttrProblem> {
    if v.len() < 5 {
        return Err(AttrProblem::Length { len: v.len() });
    }
    let (afi, safi, nh_len) = (u16::from_be_bytes([v[0], v[1]]), v[2], usize::from(v[3]));
    let Some(bits) = mp_family(afi, safi) else {
        return Ok(None);
    };
    let nh = v
        .get(4..4 + nh_len)
        .ok_or(AttrProblem::Length { len: v.len() })?;
    let next_hop = match (bits, nh_len) {
        (32, 4) => MpNextHop::V4(Ipv4Addr::from(be32(nh))),
        // IPv6 unicast, and IPv4 unicast with an IPv6 next hop (RFC 8950): decoded here, the
        // route server decides whether it takes them.
        (128 | 32, 16) => MpNextHop::V6 {
            global: v6(&nh[..16]),
            link_local: None,
        },
        (128 | 32, 32) => MpNextHop::V6 {
            global: v6(&nh[..16]),
            link_local: Some(v6(&nh[16..])),
        },
        _ => return Err(AttrProblem::MpNextHopLength { len: nh_len }),
    };
    // One reserved octet (formerly SNPAs) follows the next hop.
    let nlri = v
        .get(5 + nh_len..)
        .ok_or(AttrProblem::Length { len: v.len() })?;
    Ok(Some(MpReach {
        afi: Afi(afi),
        safi: Safi(safi),
        next_hop,
        nlri: collect_nlri(nlri, bits)?,
    }))
}

fn parse_mp_unreach(v: &[u8]) -> Result<Option<MpUnreach>, AttrProblem> {
    if v.len() < 3 {
        return Err(AttrProblem::Length { len: v.len() });
    }
    let (afi, safi) = (u16::from_be_bytes([v[0], v[1]]), v[2]);
    let Some(bits) = mp_family(afi, safi) else {
        return Ok(None);
    };
    Ok(Some(MpUnreach {
        afi: Afi(afi),
        safi: Safi(safi),
        withdrawn: collect_nlri(&v[3..], bits)?,
    }))
}

fn v6(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Writes one attribute: header, then `body` writes the value. The header is written with a
/// 2-octet length and shrunk afterwards when the value fits in one octet, so no value is
/// built twice.
fn put(out: &mut Vec<u8>, flags: u8, code: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[flags | flag::EXTENDED_LENGTH, code, 0, 0]);
    body(out);
    let len = out.len() - start - 4;
    if len <= 255 {
        out[start] = flags & !flag::EXTENDED_LENGTH;
        out[start + 2] = len as u8;
        out.remove(start + 3);
    } else {
        // Values longer than 65535 cannot be expressed; callers keep messages under 64 KiB.
        out[start + 2..start + 4].copy_from_slice(&(len.min(0xffff) as u16).to_be_bytes());
    }
}

fn emit_as_path(p: &AsPath, four: bool, skip_confed: bool, out: &mut Vec<u8>) {
    for s in &p.segments {
        if skip_confed && s.is_confed() {
            continue;
        }
        // A segment holds at most 255 ASNs; longer ones are split.
        for chunk in s.asns().chunks(255) {
            out.push(s.type_code());
            out.push(chunk.len() as u8);
            for &a in chunk {
                if four {
                    out.extend_from_slice(&a.to_be_bytes());
                } else {
                    let a2 = if a > 0xffff { AS_TRANS } else { a as u16 };
                    out.extend_from_slice(&a2.to_be_bytes());
                }
            }
        }
    }
}

fn emit_mp_nlri(nlri: &[Prefix], out: &mut Vec<u8>) {
    for p in nlri {
        match p {
            Prefix::V4(p) => prefix::emit_ipv4(p, out),
            Prefix::V6(p) => prefix::emit_ipv6(p, out),
        }
    }
}

impl PathAttributes {
    /// Appends every attribute, ordered by type code, encoded for `ctx` (2- or 4-octet ASNs,
    /// with AS4_PATH/AS4_AGGREGATOR for a 2-octet peer when needed).
    pub fn emit(&self, ctx: &SessionContext, out: &mut Vec<u8>) {
        const WK: u8 = flag::TRANSITIVE;
        const OT: u8 = flag::OPTIONAL | flag::TRANSITIVE;
        const ON: u8 = flag::OPTIONAL;
        let four = ctx.four_octet_as;
        let mut unknown: Vec<&RawAttribute> = self.unknown.iter().collect();
        unknown.sort_by_key(|r| r.type_code);
        let mut unknown = unknown.into_iter().peekable();
        let mut flush_unknown_below = |code: u8, out: &mut Vec<u8>| {
            while let Some(r) = unknown.next_if(|r| r.type_code < code) {
                put(out, r.flags, r.type_code, |o| o.extend_from_slice(&r.value));
            }
        };

        flush_unknown_below(t::ORIGIN, out);
        if let Some(o) = self.origin {
            put(out, WK, t::ORIGIN, |o2| o2.push(o as u8));
        }
        flush_unknown_below(t::AS_PATH, out);
        if let Some(p) = &self.as_path {
            put(out, WK, t::AS_PATH, |o| emit_as_path(p, four, false, o));
        }
        flush_unknown_below(t::NEXT_HOP, out);
        if let Some(nh) = self.next_hop {
            put(out, WK, t::NEXT_HOP, |o| o.extend_from_slice(&nh.octets()));
        }
        flush_unknown_below(t::MULTI_EXIT_DISC, out);
        if let Some(m) = self.med {
            put(out, ON, t::MULTI_EXIT_DISC, |o| {
                o.extend_from_slice(&m.to_be_bytes())
            });
        }
        flush_unknown_below(t::LOCAL_PREF, out);
        if let Some(l) = self.local_pref {
            put(out, WK, t::LOCAL_PREF, |o| {
                o.extend_from_slice(&l.to_be_bytes())
            });
        }
        flush_unknown_below(t::ATOMIC_AGGREGATE, out);
        if self.atomic_aggregate {
            put(out, WK, t::ATOMIC_AGGREGATE, |_| {});
        }
        flush_unknown_below(t::AGGREGATOR, out);
        if let Some(a) = self.aggregator {
            put(out, OT, t::AGGREGATOR, |o| {
                if four {
                    o.extend_from_slice(&a.asn.to_be_bytes());
                } else {
                    let a2 = if a.asn > 0xffff {
                        AS_TRANS
                    } else {
                        a.asn as u16
                    };
                    o.extend_from_slice(&a2.to_be_bytes());
                }
                o.extend_from_slice(&a.address.octets());
            });
        }
        flush_unknown_below(t::COMMUNITIES, out);
        if !self.communities.is_empty() {
            put(out, OT, t::COMMUNITIES, |o| {
                self.communities
                    .iter()
                    .for_each(|c| o.extend_from_slice(&c.to_be_bytes()))
            });
        }
        flush_unknown_below(t::ORIGINATOR_ID, out);
        if let Some(id) = self.originator_id {
            put(out, ON, t::ORIGINATOR_ID, |o| {
                o.extend_from_slice(&id.octets())
            });
        }
        flush_unknown_below(t::CLUSTER_LIST, out);
        if !self.cluster_list.is_empty() {
            put(out, ON, t::CLUSTER_LIST, |o| {
                self.cluster_list
                    .iter()
                    .for_each(|c| o.extend_from_slice(&c.octets()))
            });
        }
        flush_unknown_below(t::MP_REACH_NLRI, out);
        if let Some(m) = &self.mp_reach {
            put(out, ON, t::MP_REACH_NLRI, |o| {
                o.extend_from_slice(&m.afi.0.to_be_bytes());
                o.push(m.safi.0);
                match m.next_hop {
                    MpNextHop::V4(a) => {
                        o.push(4);
                        o.extend_from_slice(&a.octets());
                    }
                    MpNextHop::V6 {
                        global,
                        link_local: None,
                    } => {
                        o.push(16);
                        o.extend_from_slice(&global.octets());
                    }
                    MpNextHop::V6 {
                        global,
                        link_local: Some(ll),
                    } => {
                        o.push(32);
                        o.extend_from_slice(&global.octets());
                        o.extend_from_slice(&ll.octets());
                    }
                }
                o.push(0);
                emit_mp_nlri(&m.nlri, o);
            });
        }
        flush_unknown_below(t::MP_UNREACH_NLRI, out);
        if let Some(m) = &self.mp_unreach {
            put(out, ON, t::MP_UNREACH_NLRI, |o| {
                o.extend_from_slice(&m.afi.0.to_be_bytes());
                o.push(m.safi.0);
                emit_mp_nlri(&m.withdrawn, o);
            });
        }
        flush_unknown_below(t::EXTENDED_COMMUNITIES, out);
        if !self.ext_communities.is_empty() {
            put(out, OT, t::EXTENDED_COMMUNITIES, |o| {
                self.ext_communities
                    .iter()
                    .for_each(|c| o.extend_from_slice(&c.to_be_bytes()))
            });
        }
        flush_unknown_below(t::AS4_PATH, out);
        if !four {
            if let Some(p) = self.as_path.as_ref().filter(|p| p.needs_four_octets()) {
                put(out, OT, t::AS4_PATH, |o| emit_as_path(p, true, true, o));
            }
        }
        flush_unknown_below(t::AS4_AGGREGATOR, out);
        if !four {
            if let Some(a) = self.aggregator.filter(|a| a.asn > 0xffff) {
                put(out, OT, t::AS4_AGGREGATOR, |o| {
                    o.extend_from_slice(&a.asn.to_be_bytes());
                    o.extend_from_slice(&a.address.octets());
                });
            }
        }
        flush_unknown_below(t::LARGE_COMMUNITY, out);
        if !self.large_communities.is_empty() {
            put(out, OT, t::LARGE_COMMUNITY, |o| {
                for c in &self.large_communities {
                    o.extend_from_slice(&c.global_admin.to_be_bytes());
                    o.extend_from_slice(&c.local_data1.to_be_bytes());
                    o.extend_from_slice(&c.local_data2.to_be_bytes());
                }
            });
        }
        flush_unknown_below(u8::MAX, out);
        if let Some(r) = unknown.next() {
            // type code 255
            put(out, r.flags, r.type_code, |o| o.extend_from_slice(&r.value));
        }
    }

    /// Encoded length for `ctx`.
    pub fn wire_len(&self, ctx: &SessionContext) -> usize {
        let mut v = Vec::with_capacity(128);
        self.emit(ctx, &mut v);
        v.len()
    }

    /// Whether the route carries a community by value.
    pub fn has_community(&self, c: u32) -> bool {
        self.communities.contains(&c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx4() -> SessionContext {
        SessionContext {
            four_octet_as: true,
            extended_message: false,
            ebgp: true,
        }
    }
    fn ctx2() -> SessionContext {
        SessionContext {
            four_octet_as: false,
            ..ctx4()
        }
    }

    #[test]
    fn as_path_display_and_len() {
        let p = AsPath {
            segments: vec![
                AsSegment::ConfedSequence(vec![65010]),
                AsSegment::Sequence(vec![65001, 65002]),
                AsSegment::Set(vec![64512, 64513]),
            ],
        };
        assert_eq!(p.to_string(), "(65010) 65001 65002 {64512,64513}");
        assert_eq!(p.path_len(), 3);
        assert_eq!(
            p.prepend(65515).to_string(),
            "65515 (65010) 65001 65002 {64512,64513}"
        );
        assert_eq!(
            AsPath::from_sequence(vec![1, 2]).prepend(3).to_string(),
            "3 1 2"
        );
    }

    #[test]
    fn as4_merge_with_old_speaker_prepends() {
        // AS_PATH from a 2-octet speaker: 65001 65002 23456 23456, AS4_PATH: 4200000001 4200000002.
        let p = AsPath::from_sequence(vec![65001, 65002, 23456, 23456]);
        let p4 = AsPath::from_sequence(vec![4_200_000_001, 4_200_000_002]);
        assert_eq!(
            merge_as4_path(&p, p4).to_string(),
            "65001 65002 4200000001 4200000002"
        );
        // AS4_PATH longer than AS_PATH: ignored.
        let p4 = AsPath::from_sequence(vec![1, 2, 3, 4, 5]);
        assert_eq!(merge_as4_path(&p, p4), p);
        // Leading confederation segment kept.
        let p = AsPath {
            segments: vec![
                AsSegment::ConfedSequence(vec![65010]),
                AsSegment::Sequence(vec![23456]),
            ],
        };
        let p4 = AsPath::from_sequence(vec![4_200_000_001]);
        assert_eq!(merge_as4_path(&p, p4).to_string(), "(65010) 4200000001");
    }

    #[test]
    fn as4_attributes_round_trip_through_a_2_octet_session() {
        let a = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(vec![4_200_000_001, 65001])),
            next_hop: Some(Ipv4Addr::new(10, 1, 0, 100)),
            aggregator: Some(Aggregator {
                asn: 4_200_000_001,
                address: Ipv4Addr::new(1, 1, 1, 1),
            }),
            ..Default::default()
        };
        let mut buf = Vec::new();
        a.emit(&ctx2(), &mut buf);
        // AS_PATH carries AS_TRANS, AS4_PATH and AS4_AGGREGATOR are present.
        assert!(buf.windows(2).any(|w| w == [0x5b, 0xa0]));
        let codes: Vec<u8> = {
            let mut v = Vec::new();
            let mut i = 0;
            while i < buf.len() {
                v.push(buf[i + 1]);
                i += 3 + usize::from(buf[i + 2]);
            }
            v
        };
        assert_eq!(codes, [1, 2, 3, 7, 17, 18]);
        let parsed = parse_attributes(&buf, &ctx2(), true).unwrap();
        assert_eq!(parsed.attrs, a);
        assert!(parsed.withdraw.is_none() && parsed.discarded.is_empty());
        // The same bytes read by a 4-octet session would be wrong; a 4-octet encoding has none.
        let mut buf4 = Vec::new();
        a.emit(&ctx4(), &mut buf4);
        assert_eq!(parse_attributes(&buf4, &ctx4(), true).unwrap().attrs, a);
    }

    #[test]
    fn extended_length_used_only_past_255() {
        let a = PathAttributes {
            communities: (0..64).collect(),
            ..Default::default()
        };
        let mut buf = Vec::new();
        a.emit(&ctx4(), &mut buf);
        assert_eq!(
            buf[0],
            flag::OPTIONAL | flag::TRANSITIVE | flag::EXTENDED_LENGTH
        );
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), 256);
        let a = PathAttributes {
            communities: (0..63).collect(),
            ..Default::default()
        };
        let mut buf = Vec::new();
        a.emit(&ctx4(), &mut buf);
        assert_eq!(buf[0], flag::OPTIONAL | flag::TRANSITIVE);
        assert_eq!(buf[2], 252);
    }

    #[test]
    fn unknown_attributes_keep_their_place_and_flags() {
        let a = PathAttributes {
            origin: Some(Origin::Igp),
            unknown: vec![
                RawAttribute {
                    flags: 0xc0,
                    type_code: 99,
                    value: vec![1, 2, 3],
                },
                RawAttribute {
                    flags: 0x80,
                    type_code: 255,
                    value: vec![],
                },
            ],
            ..Default::default()
        };
        let mut buf = Vec::new();
        a.emit(&ctx4(), &mut buf);
        assert_eq!(buf, [0x40, 1, 1, 0, 0xc0, 99, 3, 1, 2, 3, 0x80, 255, 0]);
        assert_eq!(parse_attributes(&buf, &ctx4(), false).unwrap().attrs, a);
        assert_eq!(a.unknown[0].for_forwarding().flags, 0xe0);
        assert!(!a.unknown[1].is_transitive());
    }
}
