//! Bidirectional Forwarding Detection (RFC 5880), asynchronous mode, as single-hop BFD over
//! UDP uses it (RFC 5881): how two systems find out within a fraction of a second that the
//! path between them is gone, much faster than a BGP hold timer.
//!
//! Pure state and functions, no sockets and no clock (time is passed in), like the `bgp` FSM:
//!
//! - [`packet`]: the 24-byte control packet, encoded and decoded with the reception checks of
//!   RFC 5880 §6.8.6 that do not depend on a session.
//! - [`session`]: one session's state machine (AdminDown, Down, Init, Up), its transmit and
//!   detection timers with the slow start and the Poll/Final sequence of §6.8.3, driven by
//!   [`session::Session::handle`] with the time and an input, answering with effects (packets
//!   to send, state changes).
//!
//! ```text
//!  UDP 3784 ──decode──> Input::Packet ─┐
//!  timer (deadline())──> Input::Tick ──┼─> Session::handle(now, ·) ─> [Send(packet), StateChanged]
//!  operator ──> Input::AdminDown/Up ───┘
//! ```
#![deny(unsafe_code)]

pub mod packet;
pub mod session;

pub use packet::{ControlPacket, DecodeError, Diag, State};
pub use session::{Config, Effect, Input, Session};
