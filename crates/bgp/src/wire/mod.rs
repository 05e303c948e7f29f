//! The BGP-4 wire format: framing and every message type.
//!
//! # Contract
//!
//! Decoding never panics, never reads out of bounds and never allocates more than a small
//! multiple of the input it was given: every length field is checked against the bytes that are
//! actually there before it is used. Errors are data: a header or OPEN error becomes the
//! NOTIFICATION that RFC 4271 §6 prescribes ([`HeaderError::to_notification`],
//! [`OpenError::to_notification`]); an UPDATE error is classified per RFC 7606 as
//! session-reset ([`UpdateError`]), treat-as-withdraw or attribute-discard
//! ([`update::Update::outcome`], [`update::Update::discarded`]), and the caller acts on it.
//!
//! # Layout
//!
//! - [`prefix`]: IPv4/IPv6 prefixes and the NLRI encoding.
//! - [`open`]: OPEN and capabilities.
//! - [`attrs`]: path attributes, the RFC 7606 classification, the RFC 6793 AS4 merge.
//! - [`update`]: UPDATE, zero-copy on decode, packed many-NLRI encode.
//! - [`notification`]: NOTIFICATION codes, subcodes and the shutdown communication.
//!
//! ```text
//!   bytes ──frame()──> (MessageType, body) ──Open::parse / Update::parse / ...──> typed message
//!   typed message ──emit / UpdateBuilder──> bytes (header written last, length back-patched)
//! ```

pub mod attrs;
pub mod notification;
pub mod open;
pub mod prefix;
pub mod update;

use std::fmt;

pub use attrs::{AsPath, AsSegment, Origin, PathAttributes};
pub use notification::Notification;
pub use open::{Capability, Open, OpenError};
pub use prefix::{Ipv4Prefix, Ipv6Prefix, Prefix};
pub use update::{Update, UpdateError, UpdateMessage};

/// Length of the fixed header: marker (16), length (2), type (1).
pub const HEADER_LEN: usize = 19;
/// Largest message without RFC 8654.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message with the extended message capability.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

/// Address Family Identifier (IANA).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Afi(pub u16);
/// Subsequent Address Family Identifier (IANA).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Safi(pub u8);

impl Afi {
    pub const IPV4: Afi = Afi(1);
    pub const IPV6: Afi = Afi(2);
}
impl Safi {
    pub const UNICAST: Safi = Safi(1);
}

/// Message types (RFC 4271 §4.1, RFC 2918).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MessageType {
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    RouteRefresh = 5,
}

impl MessageType {
    pub fn from_u8(t: u8) -> Option<Self> {
        Some(match t {
            1 => Self::Open,
            2 => Self::Update,
            3 => Self::Notification,
            4 => Self::Keepalive,
            5 => Self::RouteRefresh,
            _ => return None,
        })
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Open => "OPEN",
            Self::Update => "UPDATE",
            Self::Notification => "NOTIFICATION",
            Self::Keepalive => "KEEPALIVE",
            Self::RouteRefresh => "ROUTE-REFRESH",
        })
    }
}

/// What the decoder needs to know about the session (negotiated in OPEN).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SessionContext {
    /// Both sides sent the 4-octet AS capability (RFC 6793): AS_PATH carries 4-octet ASNs.
    pub four_octet_as: bool,
    /// Both sides sent the extended message capability (RFC 8654).
    pub extended_message: bool,
    /// The peer is in another AS: LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST are not
    /// expected from it and AS_CONFED segments are an error (RFC 7606 §7.5, RFC 5065 §5).
    pub ebgp: bool,
}

impl Default for SessionContext {
    fn default() -> Self {
        Self {
            four_octet_as: true,
            extended_message: false,
            ebgp: true,
        }
    }
}

impl SessionContext {
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

/// A message header that fails the checks of RFC 4271 §6.1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("marker is not all ones")]
    ConnectionNotSynchronized,
    #[error("message length {len} is invalid for {kind}")]
    BadMessageLength { len: u16, kind: &'static str },
    #[error("message type {0} is not known")]
    BadMessageType(u8),
}

impl HeaderError {
    /// The NOTIFICATION of RFC 4271 §6.1, with the data the RFC asks for.
    pub fn to_notification(&self) -> Notification {
        use notification::{code, header};
        match self {
            HeaderError::ConnectionNotSynchronized => {
                Notification::new(code::MESSAGE_HEADER, header::CONNECTION_NOT_SYNCHRONIZED)
            }
            HeaderError::BadMessageLength { len, .. } => Notification::with_data(
                code::MESSAGE_HEADER,
                header::BAD_MESSAGE_LENGTH,
                len.to_be_bytes(),
            ),
            HeaderError::BadMessageType(t) => {
                Notification::with_data(code::MESSAGE_HEADER, header::BAD_MESSAGE_TYPE, [*t])
            }
        }
    }
}

/// One framed message: its type and body (the bytes after the header).
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub kind: MessageType,
    pub body: &'a [u8],
    /// Total length on the wire, header included: how far to advance the input.
    pub wire_len: usize,
}

/// Frames the next message in `buf`. `Ok(None)`: not enough bytes yet. Checks the marker, the
/// length against the type's minimum and the negotiated maximum, and the type.
pub fn frame<'a>(buf: &'a [u8], ctx: &SessionContext) -> Result<Option<Frame<'a>>, HeaderError> {
    if buf.len() < HEADER_LEN {
        // A wrong marker can already be seen in a partial header; say so early.
        if buf.iter().take(16).any(|&b| b != 0xff) {
            return Err(HeaderError::ConnectionNotSynchronized);
        }
        return Ok(None);
    }
    if buf[..16].iter().any(|&b| b != 0xff) {
        return Err(HeaderError::ConnectionNotSynchronized);
    }
    let len = u16::from_be_bytes([buf[16], buf[17]]);
    let t = buf[18];
    let kind = MessageType::from_u8(t).ok_or(HeaderError::BadMessageType(t))?;
    let l = usize::from(len);
    let (min, max, name) = match kind {
        MessageType::Open => (29, MAX_MESSAGE_LEN, "OPEN"),
        MessageType::Update => (23, ctx.max_message_len(), "UPDATE"),
        MessageType::Notification => (21, ctx.max_message_len(), "NOTIFICATION"),
        MessageType::Keepalive => (19, 19, "KEEPALIVE"),
        // A wrong ROUTE-REFRESH length is an RFC 7313 error, checked by its parser.
        MessageType::RouteRefresh => (HEADER_LEN, ctx.max_message_len(), "ROUTE-REFRESH"),
    };
    if l < min || l > max {
        return Err(HeaderError::BadMessageLength { len, kind: name });
    }
    if buf.len() < l {
        return Ok(None);
    }
    Ok(Some(Frame {
        kind,
        body: &buf[HEADER_LEN..l],
        wire_len: l,
    }))
}

/// Writes a header for a message of `kind` whose body follows; the length is patched by
/// [`finish_message`].
pub fn begin_message(kind: MessageType, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&[0, 0, kind as u8]);
    start
}

/// Patches the length of the message begun at `start`.
pub fn finish_message(start: usize, out: &mut [u8]) {
    let len = (out.len() - start) as u16;
    out[start + 16..start + 18].copy_from_slice(&len.to_be_bytes());
}

/// ROUTE-REFRESH (RFC 2918, subtypes of RFC 7313).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RouteRefresh {
    pub afi: Afi,
    pub safi: Safi,
    /// 0 = normal request, 1 = Beginning of Route Refresh, 2 = End of Route Refresh.
    pub subtype: u8,
}

impl RouteRefresh {
    pub fn ipv4_unicast() -> Self {
        Self {
            afi: Afi::IPV4,
            safi: Safi::UNICAST,
            subtype: 0,
        }
    }
    /// RFC 7313 §5: a ROUTE-REFRESH whose length is not 23 is a ROUTE-REFRESH Message Error
    /// carrying the message.
    pub fn parse(body: &[u8]) -> Result<Self, Notification> {
        if body.len() != 4 {
            let mut data = Vec::with_capacity(HEADER_LEN + body.len().min(4096));
            let start = begin_message(MessageType::RouteRefresh, &mut data);
            data.extend_from_slice(&body[..body.len().min(4096)]);
            finish_message(start, &mut data);
            return Err(Notification::with_data(
                notification::code::ROUTE_REFRESH_MESSAGE,
                notification::route_refresh::INVALID_MESSAGE_LENGTH,
                data,
            ));
        }
        Ok(Self {
            afi: Afi(u16::from_be_bytes([body[0], body[1]])),
            subtype: body[2],
            safi: Safi(body[3]),
        })
    }
}

/// An owned message of any type, for tests, fixtures and the session state machine. The hot
/// path decodes UPDATEs with [`Update::parse`] instead, which borrows its NLRI.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    Open(Open),
    Update(UpdateMessage),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

/// Why a whole message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("header: {0}")]
    Header(#[from] HeaderError),
    #[error("OPEN: {0}")]
    Open(#[from] OpenError),
    #[error("UPDATE: {0}")]
    Update(#[from] UpdateError),
    #[error("{0}")]
    Other(Notification),
    #[error("message truncated: {have} of {need} octets")]
    Incomplete { have: usize, need: usize },
}

impl DecodeError {
    /// The NOTIFICATION to send before closing, if one applies.
    pub fn to_notification(&self) -> Option<Notification> {
        Some(match self {
            DecodeError::Header(e) => e.to_notification(),
            DecodeError::Open(e) => e.to_notification(),
            DecodeError::Update(e) => e.to_notification(),
            DecodeError::Other(n) => n.clone(),
            DecodeError::Incomplete { .. } => return None,
        })
    }
}

impl Message {
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Decodes one whole message from the front of `buf`; returns it and its wire length.
    /// An UPDATE whose RFC 7606 outcome is treat-as-withdraw decodes to the withdrawal it
    /// amounts to; attributes to discard are dropped.
    pub fn decode(buf: &[u8], ctx: &SessionContext) -> Result<(Message, usize), DecodeError> {
        let f = frame(buf, ctx)?.ok_or(DecodeError::Incomplete {
            have: buf.len(),
            need: if buf.len() >= HEADER_LEN {
                usize::from(u16::from_be_bytes([buf[16], buf[17]]))
            } else {
                HEADER_LEN
            },
        })?;
        let m = match f.kind {
            MessageType::Open => Message::Open(Open::parse(f.body)?),
            MessageType::Update => Message::Update(Update::parse(f.body, ctx)?.to_message()),
            MessageType::Notification => Message::Notification(Notification::parse(f.body).ok_or(
                HeaderError::BadMessageLength {
                    len: f.wire_len as u16,
                    kind: "NOTIFICATION",
                },
            )?),
            MessageType::Keepalive => Message::Keepalive,
            MessageType::RouteRefresh => {
                Message::RouteRefresh(RouteRefresh::parse(f.body).map_err(DecodeError::Other)?)
            }
        };
        Ok((m, f.wire_len))
    }

    /// Appends the encoded message. An UPDATE too large for one message is split into several
    /// (see [`UpdateMessage::emit`]).
    pub fn emit(&self, ctx: &SessionContext, out: &mut Vec<u8>) {
        if let Message::Update(u) = self {
            u.emit(ctx, out);
            return;
        }
        let start = begin_message(self.kind(), out);
        match self {
            Message::Open(o) => o.emit_body(out),
            Message::Notification(n) => n.emit_body(out),
            Message::Keepalive => {}
            Message::RouteRefresh(r) => {
                out.extend_from_slice(&r.afi.0.to_be_bytes());
                out.push(r.subtype);
                out.push(r.safi.0);
            }
            Message::Update(_) => unreachable!("handled above"),
        }
        finish_message(start, out);
    }

    /// Convenience: the encoded message as a new buffer.
    pub fn to_bytes(&self, ctx: &SessionContext) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.emit(ctx, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEPALIVE: [u8; 19] = [0xff; 19];

    fn keepalive() -> Vec<u8> {
        let mut k = KEEPALIVE.to_vec();
        k[16] = 0;
        k[17] = 19;
        k[18] = 4;
        k
    }

    #[test]
    fn keepalive_round_trip() {
        let ctx = SessionContext::default();
        assert_eq!(Message::Keepalive.to_bytes(&ctx), keepalive());
        assert_eq!(
            Message::decode(&keepalive(), &ctx).unwrap(),
            (Message::Keepalive, 19)
        );
    }

    #[test]
    fn header_errors() {
        let ctx = SessionContext::default();
        let mut m = keepalive();
        m[3] = 0;
        assert_eq!(
            frame(&m, &ctx).unwrap_err(),
            HeaderError::ConnectionNotSynchronized
        );
        assert_eq!(
            frame(&m[..5], &ctx).unwrap_err(),
            HeaderError::ConnectionNotSynchronized
        );
        let mut m = keepalive();
        m[18] = 9;
        let e = frame(&m, &ctx).unwrap_err();
        assert_eq!(e.to_notification(), Notification::with_data(1, 3, [9]));
        let mut m = keepalive();
        m[17] = 20;
        m.push(0);
        let e = frame(&m, &ctx).unwrap_err();
        assert_eq!(e.to_notification(), Notification::with_data(1, 2, [0, 20]));
        // An UPDATE longer than 4096 without RFC 8654, accepted with it.
        let mut big = vec![0xff; 16];
        big.extend_from_slice(&5000u16.to_be_bytes());
        big.push(2);
        big.resize(5000, 0);
        assert!(matches!(
            frame(&big, &ctx),
            Err(HeaderError::BadMessageLength { len: 5000, .. })
        ));
        let ext = SessionContext {
            extended_message: true,
            ..ctx
        };
        assert!(frame(&big, &ext).unwrap().is_some());
        // OPEN is never longer than 4096, even with RFC 8654.
        big[18] = 1;
        assert!(frame(&big, &ext).is_err());
        // Shorter than the header minimum for the type.
        let mut short = vec![0xff; 16];
        short.extend_from_slice(&[0, 20, 2, 0]);
        assert!(matches!(
            frame(&short, &ctx),
            Err(HeaderError::BadMessageLength { len: 20, .. })
        ));
    }

    #[test]
    fn partial_input_waits() {
        let ctx = SessionContext::default();
        let k = keepalive();
        for n in 0..k.len() {
            assert!(frame(&k[..n], &ctx).unwrap().is_none(), "{n}");
        }
    }

    #[test]
    fn route_refresh() {
        let ctx = SessionContext::default();
        let m = Message::RouteRefresh(RouteRefresh {
            afi: Afi::IPV4,
            safi: Safi::UNICAST,
            subtype: 2,
        });
        let b = m.to_bytes(&ctx);
        assert_eq!(&b[16..], &[0, 23, 5, 0, 1, 2, 1]);
        assert_eq!(Message::decode(&b, &ctx).unwrap().0, m);
        let mut bad = b.clone();
        bad.push(0);
        bad[17] = 24;
        let e = Message::decode(&bad, &ctx).unwrap_err();
        let n = e.to_notification().unwrap();
        assert_eq!((n.code, n.subcode), (7, 1));
        assert_eq!(n.data, bad);
    }
}
