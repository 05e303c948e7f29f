//! UPDATE (RFC 4271 §4.3).
//!
//! Decoding is zero-copy for the IPv4 withdrawn and NLRI fields: [`Update::parse`] validates
//! them once and [`Update::withdrawn`] / [`Update::nlri`] iterate the received bytes. The
//! attributes are decoded into [`PathAttributes`] once per message, which is what makes packed
//! UPDATEs (hundreds of prefixes sharing one attribute set) cheap.
//!
//! Encoding: [`UpdateMessage::emit`] writes one message when everything fits and otherwise
//! splits withdrawals and announcements over as many messages as needed;
//! [`pack_ipv4`] packs prefixes behind an already-encoded attribute set, the hot path of a
//! route server exporting to many peers.

use super::attrs::{self, AttrError, ErrorAction, MpReach, MpUnreach, PathAttributes};
use super::notification::{code, update as sub, Notification};
use super::prefix::{self, Ipv4NlriIter, Ipv4Prefix, Ipv6Prefix, NlriError};
use super::{
    begin_message, finish_message, Afi, MessageType, Prefix, Safi, SessionContext, HEADER_LEN,
};

/// An UPDATE that must end the session (RFC 7606 "session reset").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("withdrawn routes length {declared} overruns the {available} octets of the message")]
    WithdrawnLength { declared: usize, available: usize },
    #[error("total path attribute length {declared} overruns the {available} octets left")]
    AttributesLength { declared: usize, available: usize },
    #[error("withdrawn routes field: {0}")]
    Withdrawn(NlriError),
    #[error("NLRI field: {0}")]
    Nlri(NlriError),
    #[error("{0}")]
    Attribute(AttrError),
}

impl UpdateError {
    /// The NOTIFICATION to send (RFC 4271 §6.3, RFC 7606 §5).
    pub fn to_notification(&self) -> Notification {
        match self {
            UpdateError::WithdrawnLength { .. } | UpdateError::AttributesLength { .. } => {
                Notification::new(code::UPDATE_MESSAGE, sub::MALFORMED_ATTRIBUTE_LIST)
            }
            UpdateError::Withdrawn(_) | UpdateError::Nlri(_) => {
                Notification::new(code::UPDATE_MESSAGE, sub::INVALID_NETWORK_FIELD)
            }
            UpdateError::Attribute(e) => {
                Notification::with_data(code::UPDATE_MESSAGE, e.subcode, e.data.clone())
            }
        }
    }
}

/// A decoded UPDATE. Borrowed from the receive buffer for its IPv4 prefixes.
#[derive(Debug)]
pub struct Update<'a> {
    withdrawn: &'a [u8],
    nlri: &'a [u8],
    /// The path attributes, minus any that were discarded.
    pub attrs: PathAttributes,
    /// `Some` when RFC 7606 asks for treat-as-withdraw: every prefix announced by this UPDATE
    /// (NLRI field and MP_REACH_NLRI) must be handled as withdrawn.
    pub treat_as_withdraw: Option<AttrError>,
    /// Attributes dropped under RFC 7606 "attribute discard".
    pub discarded: Vec<AttrError>,
}

impl<'a> Update<'a> {
    /// Parses an UPDATE body (the bytes after the 19-octet header).
    pub fn parse(body: &'a [u8], ctx: &SessionContext) -> Result<Self, UpdateError> {
        let avail = body.len().saturating_sub(2);
        if body.len() < 2 {
            return Err(UpdateError::WithdrawnLength {
                declared: 0,
                available: body.len(),
            });
        }
        let wlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
        if wlen + 2 > avail {
            // Room is also needed for the 2-octet attribute length.
            return Err(UpdateError::WithdrawnLength {
                declared: wlen,
                available: avail.saturating_sub(2),
            });
        }
        let withdrawn = &body[2..2 + wlen];
        let rest = &body[2 + wlen..];
        let alen = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if alen > rest.len() - 2 {
            return Err(UpdateError::AttributesLength {
                declared: alen,
                available: rest.len() - 2,
            });
        }
        let attr_bytes = &rest[2..2 + alen];
        let nlri = &rest[2 + alen..];
        prefix::validate_nlri(withdrawn, 32).map_err(UpdateError::Withdrawn)?;
        prefix::validate_nlri(nlri, 32).map_err(UpdateError::Nlri)?;
        let parsed = attrs::parse_attributes(attr_bytes, ctx, !nlri.is_empty())
            .map_err(UpdateError::Attribute)?;
        debug_assert!(parsed
            .withdraw
            .as_ref()
            .is_none_or(|e| e.action == ErrorAction::TreatAsWithdraw));
        Ok(Update {
            withdrawn,
            nlri,
            attrs: parsed.attrs,
            treat_as_withdraw: parsed.withdraw,
            discarded: parsed.discarded,
        })
    }

    /// IPv4 prefixes in the Withdrawn Routes field.
    pub fn withdrawn(&self) -> Ipv4NlriIter<'a> {
        Ipv4NlriIter::new(self.withdrawn)
    }
    /// IPv4 prefixes in the NLRI field. Check [`Update::treat_as_withdraw`] before taking them
    /// as announced.
    pub fn nlri(&self) -> Ipv4NlriIter<'a> {
        Ipv4NlriIter::new(self.nlri)
    }
    /// RFC 4724 §2: an UPDATE with nothing in it marks the end of the initial IPv4 table.
    pub fn is_end_of_rib(&self) -> bool {
        self.withdrawn.is_empty() && self.nlri.is_empty() && self.attrs == PathAttributes::default()
    }

    /// The owned message this UPDATE amounts to, with the RFC 7606 outcome applied: under
    /// treat-as-withdraw every announced prefix becomes a withdrawal and no attribute is kept.
    pub fn to_message(&self) -> UpdateMessage {
        let mut m = UpdateMessage {
            withdrawn: self.withdrawn().collect(),
            attrs: self.attrs.clone(),
            nlri: self.nlri().collect(),
        };
        if self.treat_as_withdraw.is_some() {
            m.withdrawn.append(&mut m.nlri);
            let mut unreach = m.attrs.mp_unreach.take();
            if let Some(reach) = m.attrs.mp_reach.take() {
                let u = unreach.get_or_insert(MpUnreach {
                    afi: reach.afi,
                    safi: reach.safi,
                    withdrawn: Vec::new(),
                });
                if u.afi == reach.afi {
                    u.withdrawn.extend(reach.nlri);
                }
            }
            m.attrs = PathAttributes {
                mp_unreach: unreach,
                ..Default::default()
            };
        }
        m
    }
}

/// An owned UPDATE, for encoding and tests.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct UpdateMessage {
    pub withdrawn: Vec<Ipv4Prefix>,
    pub attrs: PathAttributes,
    pub nlri: Vec<Ipv4Prefix>,
}

impl UpdateMessage {
    /// RFC 4724 §2: an UPDATE with nothing in it marks the end of the initial IPv4 table.
    pub fn is_end_of_rib(&self) -> bool {
        self.withdrawn.is_empty() && self.nlri.is_empty() && self.attrs == PathAttributes::default()
    }

    /// An End-of-RIB marker for IPv4 unicast (RFC 4724 §2).
    pub fn end_of_rib() -> Self {
        Self::default()
    }

    /// An End-of-RIB marker for `afi`/`safi`: for IPv4 unicast the empty UPDATE, for any other
    /// family an UPDATE holding only an empty MP_UNREACH_NLRI of that family (RFC 4724 §2).
    pub fn end_of_rib_for(afi: Afi, safi: Safi) -> Self {
        if afi == Afi::IPV4 && safi == Safi::UNICAST {
            return Self::end_of_rib();
        }
        Self {
            attrs: PathAttributes {
                mp_unreach: Some(MpUnreach {
                    afi,
                    safi,
                    withdrawn: Vec::new(),
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The family this UPDATE is the End-of-RIB marker of, if it is one.
    pub fn end_of_rib_family(&self) -> Option<(Afi, Safi)> {
        if self.is_end_of_rib() {
            return Some((Afi::IPV4, Safi::UNICAST));
        }
        let u = self.attrs.mp_unreach.as_ref()?;
        let only_unreach = PathAttributes {
            mp_unreach: self.attrs.mp_unreach.clone(),
            ..Default::default()
        };
        (self.withdrawn.is_empty()
            && self.nlri.is_empty()
            && u.withdrawn.is_empty()
            && self.attrs == only_unreach)
            .then_some((u.afi, u.safi))
    }

    /// Appends this UPDATE as one message when it fits in the session's maximum message size,
    /// else as several: withdrawals first, then announcements packed behind the attributes.
    pub fn emit(&self, ctx: &SessionContext, out: &mut Vec<u8>) {
        let max = ctx.max_message_len();
        let start = begin_message(MessageType::Update, out);
        let wlen: usize = self.withdrawn.iter().map(Ipv4Prefix::wire_len).sum();
        out.extend_from_slice(&(wlen.min(0xffff) as u16).to_be_bytes());
        for p in &self.withdrawn {
            prefix::emit_ipv4(p, out);
        }
        let alen_at = out.len();
        out.extend_from_slice(&[0, 0]);
        self.attrs.emit(ctx, out);
        let alen = out.len() - alen_at - 2;
        out[alen_at..alen_at + 2].copy_from_slice(&(alen.min(0xffff) as u16).to_be_bytes());
        for p in &self.nlri {
            prefix::emit_ipv4(p, out);
        }
        if out.len() - start <= max {
            finish_message(start, out);
            return;
        }
        out.truncate(start);
        self.emit_split(ctx, out);
    }

    fn emit_split(&self, ctx: &SessionContext, out: &mut Vec<u8>) {
        let max = ctx.max_message_len();
        pack_withdrawals(self.withdrawn.iter().copied(), max, out);
        if let Some(u) = &self.attrs.mp_unreach {
            // Room per message: header, two empty length fields, the attribute header (4), AFI/SAFI (3).
            for chunk in chunk_prefixes(&u.withdrawn, max - HEADER_LEN - 4 - 4 - 3) {
                let a = PathAttributes {
                    mp_unreach: Some(MpUnreach {
                        afi: u.afi,
                        safi: u.safi,
                        withdrawn: chunk.to_vec(),
                    }),
                    ..Default::default()
                };
                UpdateMessage {
                    attrs: a,
                    ..Default::default()
                }
                .emit_one(ctx, out);
            }
        }
        let mut base = self.attrs.clone();
        base.mp_unreach = None;
        let reach = base.mp_reach.take();
        let mut encoded = Vec::with_capacity(256);
        base.emit(ctx, &mut encoded);
        if let Some(r) = reach {
            let room = max.saturating_sub(HEADER_LEN + 4 + encoded.len() + 4 + 5 + 32);
            for chunk in chunk_prefixes(&r.nlri, room.max(17)) {
                let mut a = base.clone();
                a.mp_reach = Some(MpReach {
                    afi: r.afi,
                    safi: r.safi,
                    next_hop: r.next_hop,
                    nlri: chunk.to_vec(),
                });
                UpdateMessage {
                    attrs: a,
                    ..Default::default()
                }
                .emit_one(ctx, out);
            }
        }
        if !self.nlri.is_empty() {
            pack_ipv4(&encoded, self.nlri.iter().copied(), max, out);
        }
    }

    /// Emits as exactly one message; the caller has made sure it fits.
    fn emit_one(&self, ctx: &SessionContext, out: &mut Vec<u8>) {
        let start = begin_message(MessageType::Update, out);
        out.extend_from_slice(&[0, 0]);
        let alen_at = out.len();
        out.extend_from_slice(&[0, 0]);
        self.attrs.emit(ctx, out);
        let alen = out.len() - alen_at - 2;
        out[alen_at..alen_at + 2].copy_from_slice(&(alen as u16).to_be_bytes());
        finish_message(start, out);
    }
}

fn chunk_prefixes(p: &[Prefix], room: usize) -> Vec<&[Prefix]> {
    let mut chunks = Vec::new();
    let (mut from, mut used) = (0, 0);
    for (i, x) in p.iter().enumerate() {
        let l = 1 + (usize::from(x.len()) + 7) / 8;
        if used + l > room && i > from {
            chunks.push(&p[from..i]);
            from = i;
            used = 0;
        }
        used += l;
    }
    if from < p.len() {
        chunks.push(&p[from..]);
    }
    chunks
}

/// Appends UPDATEs that announce `prefixes` with the attribute set `encoded_attrs` (as written
/// by [`PathAttributes::emit`]), as many prefixes per message as `max_len` allows. Returns the
/// number of messages written.
pub fn pack_ipv4(
    encoded_attrs: &[u8],
    prefixes: impl IntoIterator<Item = Ipv4Prefix>,
    max_len: usize,
    out: &mut Vec<u8>,
) -> usize {
    let mut messages = 0;
    let mut start = usize::MAX;
    for p in prefixes {
        if start == usize::MAX || out.len() - start + p.wire_len() > max_len {
            if start != usize::MAX {
                finish_message(start, out);
            }
            start = begin_message(MessageType::Update, out);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(encoded_attrs.len() as u16).to_be_bytes());
            out.extend_from_slice(encoded_attrs);
            messages += 1;
        }
        prefix::emit_ipv4(&p, out);
    }
    if start != usize::MAX {
        finish_message(start, out);
    }
    messages
}

/// Appends UPDATEs that announce IPv6 unicast `prefixes` with the attribute set `encoded_attrs`
/// (as written by [`PathAttributes::emit`], without MP_REACH_NLRI) and `next_hop`: each message
/// ends with an MP_REACH_NLRI (RFC 4760 §3, RFC 2545) holding as many prefixes as `max_len`
/// allows. Returns the number of messages written.
pub fn pack_ipv6(
    encoded_attrs: &[u8],
    next_hop: &attrs::MpNextHop,
    prefixes: impl IntoIterator<Item = Ipv6Prefix>,
    max_len: usize,
    out: &mut Vec<u8>,
) -> usize {
    let mut head = Vec::with_capacity(40);
    head.extend_from_slice(&Afi::IPV6.0.to_be_bytes());
    head.push(Safi::UNICAST.0);
    match next_hop {
        attrs::MpNextHop::V4(a) => {
            head.push(4);
            head.extend_from_slice(&a.octets());
        }
        attrs::MpNextHop::V6 { global, link_local } => {
            head.push(if link_local.is_some() { 32 } else { 16 });
            head.extend_from_slice(&global.octets());
            if let Some(ll) = link_local {
                head.extend_from_slice(&ll.octets());
            }
        }
    }
    head.push(0); // reserved (formerly SNPAs)
    pack_mp(
        encoded_attrs,
        attrs::attr_type::MP_REACH_NLRI,
        &head,
        prefixes,
        max_len,
        out,
    )
}

/// Appends UPDATEs that withdraw IPv6 unicast `prefixes` in MP_UNREACH_NLRI, packed. Returns
/// the number of messages written.
pub fn pack_ipv6_withdrawals(
    prefixes: impl IntoIterator<Item = Ipv6Prefix>,
    max_len: usize,
    out: &mut Vec<u8>,
) -> usize {
    let mut head = Vec::with_capacity(3);
    head.extend_from_slice(&Afi::IPV6.0.to_be_bytes());
    head.push(Safi::UNICAST.0);
    pack_mp(
        &[],
        attrs::attr_type::MP_UNREACH_NLRI,
        &head,
        prefixes,
        max_len,
        out,
    )
}

/// UPDATEs of `encoded_attrs` followed by one attribute `code` (extended length) made of `head`
/// and as many prefixes as fit.
fn pack_mp(
    encoded_attrs: &[u8],
    code: u8,
    head: &[u8],
    prefixes: impl IntoIterator<Item = Ipv6Prefix>,
    max_len: usize,
    out: &mut Vec<u8>,
) -> usize {
    let mut messages = 0;
    let mut start = usize::MAX;
    // The MP attribute's header is 4 octets: flags, code, 2-octet length.
    let close = |start: usize, out: &mut Vec<u8>| {
        let alen = out.len() - start - HEADER_LEN - 4;
        out[start + HEADER_LEN + 2..start + HEADER_LEN + 4]
            .copy_from_slice(&(alen as u16).to_be_bytes());
        let mp_at = start + HEADER_LEN + 4 + encoded_attrs.len();
        let mp_len = out.len() - mp_at - 4;
        out[mp_at + 2..mp_at + 4].copy_from_slice(&(mp_len as u16).to_be_bytes());
        finish_message(start, out);
    };
    for p in prefixes {
        if start == usize::MAX || out.len() - start + p.wire_len() > max_len {
            if start != usize::MAX {
                close(start, out);
            }
            start = begin_message(MessageType::Update, out);
            out.extend_from_slice(&[0, 0, 0, 0]);
            out.extend_from_slice(encoded_attrs);
            out.extend_from_slice(&[
                attrs::flag::OPTIONAL | attrs::flag::EXTENDED_LENGTH,
                code,
                0,
                0,
            ]);
            out.extend_from_slice(head);
            messages += 1;
        }
        prefix::emit_ipv6(&p, out);
    }
    if start != usize::MAX {
        close(start, out);
    }
    messages
}

/// Appends UPDATEs that withdraw `prefixes`, packed. Returns the number of messages written.
pub fn pack_withdrawals(
    prefixes: impl IntoIterator<Item = Ipv4Prefix>,
    max_len: usize,
    out: &mut Vec<u8>,
) -> usize {
    let mut messages = 0;
    let mut start = usize::MAX;
    let close = |start: usize, out: &mut Vec<u8>| {
        let wlen = out.len() - start - HEADER_LEN - 2;
        out[start + HEADER_LEN..start + HEADER_LEN + 2]
            .copy_from_slice(&(wlen as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        finish_message(start, out);
    };
    for p in prefixes {
        // Two octets stay free for the (empty) attribute length.
        if start == usize::MAX || out.len() - start + p.wire_len() + 2 > max_len {
            if start != usize::MAX {
                close(start, out);
            }
            start = begin_message(MessageType::Update, out);
            out.extend_from_slice(&[0, 0]);
            messages += 1;
        }
        prefix::emit_ipv4(&p, out);
    }
    if start != usize::MAX {
        close(start, out);
    }
    messages
}

/// The IPv4 unicast family, as ROUTE-REFRESH and MP attributes name it.
pub const IPV4_UNICAST: (Afi, Safi) = (Afi::IPV4, Safi::UNICAST);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::attrs::{flag, AttrProblem, Origin};
    use crate::wire::{frame, AsPath, Message};
    use std::net::Ipv4Addr;

    fn ctx() -> SessionContext {
        SessionContext::default()
    }

    fn p(s: &str) -> Ipv4Prefix {
        s.parse().unwrap()
    }

    fn seed_route() -> UpdateMessage {
        UpdateMessage {
            withdrawn: vec![],
            attrs: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::from_sequence(vec![65001])),
                next_hop: Some(Ipv4Addr::new(10, 1, 0, 100)),
                med: Some(0),
                ..Default::default()
            },
            nlri: vec![p("192.168.10.0/24")],
        }
    }

    /// Builds an UPDATE body from raw attribute bytes and NLRI bytes.
    fn body(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0];
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(attrs);
        b.extend_from_slice(nlri);
        b
    }

    const ORIGIN: [u8; 4] = [0x40, 1, 1, 0];
    const AS_PATH: [u8; 9] = [0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9];
    const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 10, 1, 0, 100];
    const NLRI: [u8; 4] = [24, 192, 168, 10];

    fn good_attrs() -> Vec<u8> {
        [&ORIGIN[..], &AS_PATH, &NEXT_HOP].concat()
    }

    #[test]
    fn emit_parse_seed_route() {
        let m = seed_route();
        let mut out = vec![];
        m.emit(&ctx(), &mut out);
        let f = frame(&out, &ctx()).unwrap().unwrap();
        assert_eq!(f.wire_len, out.len());
        let u = Update::parse(f.body, &ctx()).unwrap();
        assert_eq!(u.nlri().collect::<Vec<_>>(), vec![p("192.168.10.0/24")]);
        assert_eq!(u.attrs.next_hop, Some(Ipv4Addr::new(10, 1, 0, 100)));
        assert_eq!(u.to_message(), m);
    }

    #[test]
    fn end_of_rib() {
        let out = Message::Update(UpdateMessage::end_of_rib()).to_bytes(&ctx());
        assert_eq!(out.len(), 23);
        let u = Update::parse(&out[19..], &ctx()).unwrap();
        assert!(u.is_end_of_rib());
    }

    #[test]
    fn large_update_is_split_and_every_prefix_survives() {
        let mut m = seed_route();
        m.nlri = (0..3000u32)
            .map(|i| Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
            .collect();
        m.withdrawn = (0..1500u32)
            .map(|i| Ipv4Prefix::new(Ipv4Addr::from(0x0b00_0000 + (i << 8)), 24).unwrap())
            .collect();
        let mut out = vec![];
        m.emit(&ctx(), &mut out);
        let (mut wd, mut nlri, mut msgs) = (vec![], vec![], 0);
        let mut buf = &out[..];
        while !buf.is_empty() {
            let f = frame(buf, &ctx()).unwrap().unwrap();
            assert!(f.wire_len <= 4096);
            let u = Update::parse(f.body, &ctx()).unwrap();
            wd.extend(u.withdrawn());
            if u.nlri().next().is_some() {
                assert_eq!(u.attrs, m.attrs);
            }
            nlri.extend(u.nlri());
            buf = &buf[f.wire_len..];
            msgs += 1;
        }
        assert_eq!(wd, m.withdrawn);
        assert_eq!(nlri, m.nlri);
        assert!(msgs <= 5, "{msgs} messages");
    }

    #[test]
    fn pack_ipv4_fills_messages() {
        let mut enc = vec![];
        seed_route().attrs.emit(&ctx(), &mut enc);
        let mut out = vec![];
        let n = pack_ipv4(
            &enc,
            (0..2000u32).map(|i| Ipv4Prefix::from_bits(i << 8, 24)),
            4096,
            &mut out,
        );
        // 4096 - 19 - 4 - attrs, 4 octets per /24.
        let per = (4096 - 23 - enc.len()) / 4;
        assert_eq!(n, 2000usize.div_ceil(per));
    }

    // --- RFC 7606 outcomes, one test per class of error -------------------------------------

    fn parse(attrs: &[u8], nlri: &[u8]) -> Result<Update<'static>, UpdateError> {
        let b: &'static [u8] = Box::leak(body(attrs, nlri).into_boxed_slice());
        Update::parse(b, &ctx())
    }

    fn withdraw_problem(attrs: &[u8]) -> AttrProblem {
        let u = parse(attrs, &NLRI).unwrap();
        let e = u.treat_as_withdraw.clone().expect("treat-as-withdraw");
        assert_eq!(u.to_message().withdrawn, vec![p("192.168.10.0/24")]);
        assert!(u.to_message().nlri.is_empty());
        e.problem
    }

    #[test]
    fn good_update_has_no_errors() {
        let u = parse(&good_attrs(), &NLRI).unwrap();
        assert!(u.treat_as_withdraw.is_none() && u.discarded.is_empty());
    }

    #[test]
    fn bad_origin_is_treat_as_withdraw() {
        let a = [&[0x40, 1, 1, 7][..], &AS_PATH, &NEXT_HOP].concat();
        assert_eq!(withdraw_problem(&a), AttrProblem::InvalidOrigin(7));
        let a = [&[0x40, 1, 2, 0, 0][..], &AS_PATH, &NEXT_HOP].concat();
        assert_eq!(withdraw_problem(&a), AttrProblem::Length { len: 2 });
    }

    #[test]
    fn malformed_as_path_is_treat_as_withdraw() {
        // Segment claims 2 ASNs, holds 1.
        let a = [
            &ORIGIN[..],
            &[0x40, 2, 6, 2, 2, 0, 0, 0xfd, 0xe9],
            &NEXT_HOP,
        ]
        .concat();
        assert!(matches!(
            withdraw_problem(&a),
            AttrProblem::MalformedAsPath(_)
        ));
        // Unknown segment type 9.
        let a = [
            &ORIGIN[..],
            &[0x40, 2, 6, 9, 1, 0, 0, 0xfd, 0xe9],
            &NEXT_HOP,
        ]
        .concat();
        assert!(matches!(
            withdraw_problem(&a),
            AttrProblem::MalformedAsPath(_)
        ));
        // Confederation segment from an external peer.
        let a = [
            &ORIGIN[..],
            &[0x40, 2, 6, 3, 1, 0, 0, 0xfd, 0xe9],
            &NEXT_HOP,
        ]
        .concat();
        assert_eq!(withdraw_problem(&a), AttrProblem::NotFromExternalPeer);
    }

    #[test]
    fn bad_next_hop_is_treat_as_withdraw() {
        let a = [&ORIGIN[..], &AS_PATH, &[0x40, 3, 4, 0, 0, 0, 0]].concat();
        assert_eq!(
            withdraw_problem(&a),
            AttrProblem::InvalidNextHop(Ipv4Addr::UNSPECIFIED)
        );
        let a = [&ORIGIN[..], &AS_PATH, &[0x40, 3, 4, 224, 0, 0, 1]].concat();
        assert!(matches!(
            withdraw_problem(&a),
            AttrProblem::InvalidNextHop(_)
        ));
        let a = [&ORIGIN[..], &AS_PATH, &[0x40, 3, 3, 10, 1, 0]].concat();
        assert_eq!(withdraw_problem(&a), AttrProblem::Length { len: 3 });
    }

    #[test]
    fn missing_mandatory_is_treat_as_withdraw() {
        let a = [&ORIGIN[..], &AS_PATH].concat();
        assert_eq!(withdraw_problem(&a), AttrProblem::Missing);
        let e = parse(&a, &NLRI).unwrap().treat_as_withdraw.unwrap();
        assert_eq!(e.type_code, 3);
        // Without NLRI, nothing is mandatory.
        assert!(parse(&[], &[]).unwrap().treat_as_withdraw.is_none());
    }

    #[test]
    fn flags_error_is_treat_as_withdraw() {
        // ORIGIN marked optional.
        let a = [&[0xc0, 1, 1, 0][..], &AS_PATH, &NEXT_HOP].concat();
        assert_eq!(withdraw_problem(&a), AttrProblem::Flags { flags: 0xc0 });
        // MED marked transitive.
        let a = [&good_attrs()[..], &[0xc0, 4, 4, 0, 0, 0, 1]].concat();
        assert_eq!(withdraw_problem(&a), AttrProblem::Flags { flags: 0xc0 });
    }

    #[test]
    fn community_lengths() {
        let a = [&good_attrs()[..], &[0xc0, 8, 3, 1, 2, 3]].concat();
        assert_eq!(withdraw_problem(&a), AttrProblem::Length { len: 3 });
        let a = [&good_attrs()[..], &[0xc0, 16, 4, 1, 2, 3, 4]].concat();
        assert_eq!(withdraw_problem(&a), AttrProblem::Length { len: 4 });
        let a = [&good_attrs()[..], &[0xc0, 32, 8, 1, 2, 3, 4, 5, 6, 7, 8]].concat();
        assert_eq!(withdraw_problem(&a), AttrProblem::Length { len: 8 });
    }

    #[test]
    fn attribute_discard_cases() {
        // ATOMIC_AGGREGATE with a value, AGGREGATOR of the wrong length, LOCAL_PREF from eBGP.
        let a = [
            &good_attrs()[..],
            &[0x40, 5, 4, 0, 0, 0, 100],
            &[0x40, 6, 1, 0],
            &[0xc0, 7, 5, 0, 1, 2, 3, 4],
        ]
        .concat();
        let u = parse(&a, &NLRI).unwrap();
        assert!(u.treat_as_withdraw.is_none());
        let codes: Vec<_> = u
            .discarded
            .iter()
            .map(|e| (e.type_code, e.action))
            .collect();
        assert_eq!(
            codes,
            [
                (5, ErrorAction::AttributeDiscard),
                (6, ErrorAction::AttributeDiscard),
                (7, ErrorAction::AttributeDiscard)
            ]
        );
        assert_eq!(u.attrs.local_pref, None);
        assert!(!u.attrs.atomic_aggregate);
        assert_eq!(u.to_message().nlri, vec![p("192.168.10.0/24")]);
    }

    #[test]
    fn duplicate_attribute_keeps_first() {
        let a = [&good_attrs()[..], &[0x40, 1, 1, 2]].concat();
        let u = parse(&a, &NLRI).unwrap();
        assert_eq!(u.attrs.origin, Some(Origin::Igp));
        assert_eq!(u.discarded[0].problem, AttrProblem::Duplicate);
    }

    #[test]
    fn duplicate_mp_reach_resets() {
        let mp = [0x80, 14, 9, 0, 1, 1, 4, 10, 0, 0, 1, 0];
        let a = [&ORIGIN[..], &AS_PATH, &mp, &mp].concat();
        let e = parse(&a, &[]).unwrap_err();
        assert_eq!(e.to_notification().subcode, sub::MALFORMED_ATTRIBUTE_LIST);
    }

    #[test]
    fn mp_reach_bad_next_hop_length_resets() {
        let a = [
            &ORIGIN[..],
            &AS_PATH,
            &[0x80, 14, 8, 0, 1, 1, 3, 10, 0, 0, 0],
        ]
        .concat();
        let e = parse(&a, &[]).unwrap_err();
        let n = e.to_notification();
        assert_eq!((n.code, n.subcode), (3, sub::OPTIONAL_ATTRIBUTE_ERROR));
        assert_eq!(n.data, [0x80, 14, 8, 0, 1, 1, 3, 10, 0, 0, 0]);
    }

    #[test]
    fn unrecognized_well_known_resets() {
        let a = [&good_attrs()[..], &[0x40, 99, 0]].concat();
        let n = parse(&a, &NLRI).unwrap_err().to_notification();
        assert_eq!((n.code, n.subcode, n.data), (3, 2, vec![0x40, 99, 0]));
    }

    #[test]
    fn attribute_overrunning_the_list_is_treat_as_withdraw() {
        // NEXT_HOP says 4 octets, list ends after 2.
        let a = [&ORIGIN[..], &AS_PATH, &[0x40, 3, 4, 10, 1]].concat();
        assert_eq!(withdraw_problem(&a), AttrProblem::Overrun);
        // A lone flags octet.
        let a = [&good_attrs()[..], &[0x40]].concat();
        assert_eq!(withdraw_problem(&a), AttrProblem::Overrun);
        // Extended length flag with a one-octet header left.
        let a = [&good_attrs()[..], &[0x50, 8, 0]].concat();
        assert_eq!(withdraw_problem(&a), AttrProblem::Overrun);
    }

    #[test]
    fn framing_errors_reset() {
        // Withdrawn length past the end.
        let e = Update::parse(&[0, 9, 0, 0], &ctx()).unwrap_err();
        assert!(matches!(e, UpdateError::WithdrawnLength { .. }));
        assert_eq!(e.to_notification(), Notification::new(3, 1));
        // Attribute length past the end.
        let e = Update::parse(&[0, 0, 0, 9, 0x40], &ctx()).unwrap_err();
        assert!(matches!(e, UpdateError::AttributesLength { .. }));
        // Too short for either length field.
        assert!(Update::parse(&[0], &ctx()).is_err());
        assert!(Update::parse(&[0, 0, 0], &ctx()).is_err());
        // NLRI with a /33 and a truncated prefix.
        let n = parse(&good_attrs(), &[33, 1, 2, 3, 4, 5])
            .unwrap_err()
            .to_notification();
        assert_eq!((n.code, n.subcode), (3, 10));
        assert!(parse(&good_attrs(), &[24, 1, 2]).is_err());
        // Withdrawn field with a bad prefix.
        let e = Update::parse(&[0, 2, 40, 1, 0, 0], &ctx()).unwrap_err();
        assert_eq!(e.to_notification(), Notification::new(3, 10));
    }

    #[test]
    fn unknown_optional_transitive_kept_for_forwarding() {
        let a = [&good_attrs()[..], &[0xc0, 200, 2, 7, 7]].concat();
        let u = parse(&a, &NLRI).unwrap();
        let r = &u.attrs.unknown[0];
        assert_eq!(
            (r.type_code, r.flags, &r.value[..]),
            (200, 0xc0, &[7u8, 7][..])
        );
        assert_eq!(r.for_forwarding().flags & flag::PARTIAL, flag::PARTIAL);
    }

    #[test]
    fn treat_as_withdraw_covers_mp_reach() {
        let v6 = [
            0x80, 14, 26, 0, 2, 1, 16, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
            32, 0x20, 1, 0x0d, 0xb8,
        ];
        // ORIGIN invalid, MP_REACH with 2001:db8::/32.
        let a = [&[0x40, 1, 1, 5][..], &AS_PATH, &v6[..]].concat();
        let u = parse(&a, &[]).unwrap();
        assert!(u.treat_as_withdraw.is_some());
        let m = u.to_message();
        assert!(m.attrs.mp_reach.is_none());
        assert_eq!(
            m.attrs.mp_unreach.unwrap().withdrawn,
            vec!["2001:db8::/32".parse::<Prefix>().unwrap()]
        );
    }
}
