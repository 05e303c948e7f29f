//! Test support for nexthop's end-to-end tests: throw-away network namespaces and real BGP
//! peers (FRR `bgpd`, BIRD 2, GoBGP) started from a config built in Rust, queried through
//! their own CLIs, and torn down when the handle is dropped — also when the test panics.
//!
//! What it must never do: send traffic anywhere but 127.0.0.0/8 and the namespaces it created,
//! touch a host interface, or kill a process it did not start. It has no dependencies beyond
//! `std` so any crate can use it as a dev-dependency.
//!
//! # Layout
//!
//! - [`env`](mod@env): [`have_root`], [`have_netns`], [`have_binary`], [`skip`], [`require`],
//!   [`require_netns`] — decide whether a test can run.
//! - [`netns`]: [`Netns`] (one namespace) and [`Lan`] (a bridge plus veth legs to member
//!   namespaces).
//! - [`process`]: [`Process`] (a child killed on drop) and [`Workdir`] (a temp dir per instance).
//! - [`frr`], [`bird`], [`gobgp`]: the peer launchers and their config builders.
//! - [`json`]: the small JSON reader used on FRR's and GoBGP's output.
//!
//! ```text
//!   test ──Lan::new──> hub netns (br0) ──veth──> member netns "nva", "rs", ...
//!   test ──Frr::builder(..).start(Some(ns))──> Workdir/bgpd.conf ──ip netns exec──> bgpd
//!   test ──frr.routes() / neighbor_state()──> vtysh --vty_socket Workdir ──> parsed Route
//!   drop: daemons (SIGTERM, then SIGKILL) → namespaces (leftover pids killed, ns deleted)
//!         → Workdir (kept, and its path printed, when the test panicked)
//! ```
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use labtest::{Bird, BirdPeer, Frr, FrrNeighbor, Lan};
//!
//! if !labtest::require_netns(&["bgpd", "vtysh", "bird", "birdc"]) {
//!     return;
//! }
//! let lan = Lan::new(&[("nva", &["10.1.2.10/16"]), ("rs", &["10.1.1.4/16"])]).unwrap();
//! let frr = Frr::builder(65001, "10.1.2.10")
//!     .neighbor(FrrNeighbor::new("10.1.1.4", 65515).next_hop_out("10.1.0.100"))
//!     .network("192.168.10.0/24")
//!     .start(Some(lan.ns("nva")))
//!     .unwrap();
//! let bird = Bird::builder(65515, "10.1.1.4")
//!     .peer(BirdPeer::new("nva1", "10.1.2.10", 65001))
//!     .start(Some(lan.ns("rs")))
//!     .unwrap();
//! assert!(labtest::wait_until(Duration::from_secs(30), || {
//!     frr.neighbor_state("10.1.1.4") == "Established"
//! }));
//! let routes = bird.routes().unwrap();
//! assert_eq!(routes[0].next_hop, "10.1.0.100");
//! ```
#![deny(unsafe_code)]

pub mod bfdd;
pub mod bird;
pub mod env;
pub mod frr;
pub mod gobgp;
pub mod json;
pub mod netns;
pub mod process;
mod route;

pub use bfdd::Bfdd;
pub use bird::{Bird, BirdBuilder, BirdPeer};
pub use env::{find_binary, have_binary, have_netns, have_root, require, require_netns, skip};
pub use frr::{Frr, FrrBuilder, FrrNeighbor};
pub use gobgp::{free_port, GoBgp, GoBgpBuilder, GoBgpNeighbor};
pub use netns::{Lan, Netns};
pub use process::{Process, Workdir};
pub use route::{Route, SESSION_STATES};

use std::time::{Duration, Instant};

/// Polls `condition` every 200 ms until it returns true (→ `true`) or `timeout` passes
/// (→ `false`). The condition is always evaluated at least once, and once more at the deadline.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(200)));
    }
}
