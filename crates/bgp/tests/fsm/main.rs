//! The session state machine of RFC 4271 §8, driven with no sockets and no clock.
//!
//! - `harness`: sessions in any state, NOTIFICATIONs as wire bytes.
//! - `transitions`: the §8.2.2 transitions that lead to Established, action by action.
//! - `open_checks`: the checks of a received OPEN and the negotiation.
//! - `closing`: every way out, each NOTIFICATION compared as wire bytes.
//! - `scenario`: two speakers talking through encoded bytes under a simulated clock.
//! - `properties`: random event sequences never panic nor reach Established without a valid OPEN.

mod closing;
mod harness;
mod open_checks;
mod properties;
mod scenario;
mod transitions;
