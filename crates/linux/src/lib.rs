//! nexthop's Linux data plane (SPEC §2): real packets between hosts or network namespaces.
//!
//! - The **host agent** side keeps a workload host's kernel routing table equal to its NIC's
//!   effective routes: a route whose next hop is a load balancer frontend becomes the kernel
//!   route `PREFIX via FRONTEND proto 200` ([`agent::reconcile`] over [`netlink`]).
//! - The **load balancer mux** runs on the host owning the frontend address: frames routed to
//!   the frontend as next hop (destination IP elsewhere) are sent on, unchanged but for their
//!   Ethernet addresses, to the backend NVA that [`lb::Balancer::select`] picks ([`mux`]).
//!
//! What it must never do: touch a kernel route whose protocol is not
//! [`netlink::RTPROT_NEXTHOP`] (200); change a forwarded packet beyond its two MAC addresses
//! (no NAT, TTL and checksums untouched); forward a frame addressed to one of the host's own
//! IPs (that traffic is the kernel's); decide anything about routes or backends itself — the
//! desired routes and the [`lb::Balancer`] come from the caller (the `nexthop` binary, which
//! follows the controller). It has no tokio: the mux is a blocking loop on its own thread.
//!
//! # Layout
//!
//! - [`netlink`]: hand-written rtnetlink client — nexthop's routes (add/replace/delete/dump by
//!   protocol), and read-only dumps of links, addresses, neighbours.
//! - [`agent`]: [`agent::reconcile`], kernel routes ← desired set.
//! - [`mux`]: the AF_PACKET forwarder (TPACKET_V3 receive ring, `sendmmsg` batches) and its
//!   frame classification, MAC rewrite and checksum completion.
//! - [`netns`]: run a closure inside a named network namespace (tests, multi-namespace use).
//! - `sys` (private): the only `unsafe` — libc socket calls, the mmap'd ring, `setns`; one
//!   `// SAFETY:` each. [`RingSpec`] (the ring geometry) is re-exported from it.
//!
//! Tests: `tests/routes.rs` (netlink and `reconcile` in a namespace), `tests/mux.rs` (UDP and
//! TCP through the mux between four namespaces), `tests/throughput.rs` (ignored measurement:
//! mux against kernel forwarding).
//!
//! ```text
//!  controller ──effective routes──> agent::reconcile ──RTM_NEWROUTE/DELROUTE proto 200──> kernel FIB
//!                                                      (workload host: PREFIX via FRONTEND)
//!
//!  workload ──frame to FRONTEND's MAC, dst IP = branch──> [mux host, ip_forward=0]
//!     TPACKET_V3 ring ──5-tuple──> Balancer::select ──backend IP──> neighbour table (MAC)
//!        └──rewrite dst MAC = backend, src MAC = ours──> sendmmsg (same interface) ──> NVA
//! ```
#![deny(unsafe_code)]

pub mod agent;
pub mod mux;
pub mod netlink;
pub mod netns;
mod sys;

pub use sys::{raise_open_files_limit, RingSpec};

pub use agent::{reconcile, reconcile_guarded, Changes, Guard};
pub use netlink::{Netlink, Prefix, Route, RTPROT_NEXTHOP};
