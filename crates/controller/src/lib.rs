//! The controller's owners, sans-IO: each piece of state the `nexthop` binary runs (today a
//! route server instance) is one struct driven by `handle(now, input) -> Vec<Effect>`. The
//! binary's tokio tasks only move bytes and time: they turn socket events into inputs and carry
//! out the effects. A test drives the same owners on a simulated clock with no sockets
//! (`tests/system.rs`), the way `bgp::fsm`'s scenario harness drives two speakers.
//!
//! It must never: import tokio, open a socket, read a clock (time is an argument), or apply half
//! a reconfiguration (a spec is checked and diffed whole, then applied).
//!
//! # Layout
//!
//! - [`follower`]: `nexthop agent`'s decisions: the NIC's effective routes as the controller
//!   answers them, the kernel routes they ask for, fail static and the grace period.
//! - [`instance`]: one route server instance (`RouteServiceRole_IN_n`): its [`routeserver::Rib`],
//!   the bookkeeping of its peers, reconfiguration by one diff ([`instance::diff`]).
//! - [`views`]: the answers the API sends, built from the owners' state (effective routes).
//!
//! ```text
//!  driver (tokio, crates/nexthop)                 owner (this crate)
//!  PeerEvent from a peer task ──Input::Peer──────> Instance::handle(now, input)
//!  reload: new InstanceSpec ───Input::Reconfigure─>        │
//!                                                          v
//!  spawn peer / listener key / PeerCommand / fabric batch <── Vec<Effect>
//! ```
#![deny(unsafe_code)]

pub mod follower;
pub mod instance;
pub mod views;
