//! BGP-4 protocol core: the wire codec, the session state machine, and MRT export.
#![deny(unsafe_code)]
pub mod fsm;
pub mod mrt;
pub mod peer;
pub mod wire;
