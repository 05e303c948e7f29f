//! BGP-4 protocol core: the wire codec and the session state machine.
#![deny(unsafe_code)]
pub mod fsm;
pub mod peer;
pub mod wire;
