//! BGP-4 protocol core: the wire codec, the session state machine, MRT export and BMP.
#![deny(unsafe_code)]
pub mod bmp;
pub mod fsm;
pub mod mrt;
pub mod peer;
pub mod wire;
