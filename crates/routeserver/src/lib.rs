//! The route server core of nexthop: what one route server instance learns, decides and
//! advertises (SPEC §3). Pure data structures and functions: no tokio, no sockets, no clock.
//! The binary feeds it UPDATEs from the BGP driver and sends what it returns.
//!
//! It must never: hold a per-peer copy of the Loc-RIB (exports are computed from the Loc-RIB
//! when a best path changes), copy an attribute set per route (sets are interned and shared),
//! or panic on any sequence of peer events.
//!
//! # Layout
//!
//! - [`intern`]: the attribute-set interner.
//! - [`decision`]: the RFC 4271 §9.1.2.2 decision process and the multipath (ECMP) set.
//! - [`rib`]: [`Rib`]: peers, Adj-RIB-In (stored inside the Loc-RIB entries, one path per peer
//!   per prefix), rejected routes with their reasons, the Loc-RIB, and export. Generic over the
//!   address family: an instance holds a `Rib<V4>` and a `Rib<V6>` with the same peers.
//! - [`family`]: [`V4`] and [`V6`], what differs between the families (where the prefixes and
//!   the next hop are in an UPDATE, how UPDATEs are packed).
//!
//! ```text
//!  UPDATE from peer ──Rib::apply_update──> Adj-RIB-In paths ──decision──> Loc-RIB best/ECMP
//!                                                                  │ best changed
//!                                                                  v
//!  UPDATEs per group <──encode (attrs once per set)── Export { per group of peers sent the
//!                                                             same: withdraw, announce }
//! ```
#![deny(unsafe_code)]

pub mod decision;
pub mod family;
pub mod intern;
pub mod rib;

pub use family::{Family, V4, V6};
pub use rib::{
    Encoded, Export, LearnedRoute, LimitExceeded, PathLimits, PeerId, PeerOut, Rib, RibConfig,
    RouteState,
};
