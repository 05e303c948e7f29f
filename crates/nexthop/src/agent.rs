//! `nexthop agent`: the host agent. Follows one NIC's effective routes from the controller
//! (long poll on `/v1/effective-routes?nic=NAME&since=V&wait=S`) and keeps the kernel's
//! nexthop-owned routes (protocol 200) equal to the routes of it that go through a virtual
//! network gateway (a load balancer frontend or an NVA): `PREFIX via NEXT_HOP proto 200`.
//!
//! ```text
//!  controller ──full table, then incremental answers──> merge ──> RouteMap ──desired()──>
//!      linux::agent::reconcile ──> kernel FIB
//! ```
//!
//! Fail static: while the controller is unreachable nothing is written, so the programmed
//! routes stay. On reconnect the agent fetches the whole table again and reconciles, which
//! removes the routes that went stale meanwhile.

use std::time::{Duration, Instant};

use anyhow::Context;
use controller::follower::{Effect, Follower, Input};

fn summary(ch: &linux::Changes) -> String {
    let mut parts = Vec::new();
    for r in &ch.added {
        parts.push(format!("+{} via {}", r.prefix, r.gateway));
    }
    for (o, n) in &ch.replaced {
        parts.push(format!(
            "~{} via {} (was {})",
            n.prefix, n.gateway, o.gateway
        ));
    }
    for r in &ch.removed {
        parts.push(format!("-{} via {}", r.prefix, r.gateway));
    }
    for (p, proto) in &ch.foreign {
        parts.push(format!("!{p} held by protocol {proto}"));
    }
    format!(
        "{} added, {} replaced, {} removed, {} foreign: {}",
        ch.added.len(),
        ch.replaced.len(),
        ch.removed.len(),
        ch.foreign.len(),
        parts.join(", ")
    )
}

/// Runs the agent until killed. After a reconnect, routes the controller no longer lists are
/// removed only once `grace` has passed (a restarted controller relearns its BGP routes first).
/// Every decision is the [`Follower`]'s; this loop asks the controller and programs the kernel.
pub fn run(controller: &str, nic: &str, grace: Duration) -> anyhow::Result<()> {
    let mut nl = linux::Netlink::open().context("opening rtnetlink")?;
    let mut follower = Follower::new(grace);
    let mut was_reachable = true;
    loop {
        // An error status counts as unreachable (the controller cannot answer now); an answer
        // it gives that this agent cannot read is a bad answer. Both leave the kernel as it is.
        let body = crate::cli::request(controller, "GET", &follower.poll_path(nic))
            .and_then(|(status, body)| crate::cli::check_status(status, &body).map(|()| body));
        let effects = match &body {
            Ok(b) => {
                if !was_reachable {
                    eprintln!("agent: controller reachable again; reconciling the whole table (removals after {grace:?})");
                    was_reachable = true;
                }
                follower.handle(Instant::now(), Input::Answer(b))
            }
            Err(e) => {
                if was_reachable {
                    eprintln!(
                        "agent: controller unreachable ({e:#}); kernel routes left as they are"
                    );
                    was_reachable = false;
                }
                follower.handle(Instant::now(), Input::Unreachable(format!("{e:#}")))
            }
        };
        for e in effects {
            match e {
                Effect::Wait(d) => std::thread::sleep(d),
                Effect::Program(want) => {
                    let result = linux::reconcile(&mut nl, &want);
                    let reported = match &result {
                        Ok(ch) => {
                            if !ch.is_empty() {
                                let v = follower.version().unwrap_or(0);
                                tracing::info!(version = v, summary = %summary(ch), "kernel routes reconciled");
                                println!("v{v}: {}", summary(ch));
                            }
                            Ok(())
                        }
                        Err(e) => {
                            eprintln!("agent: reconcile failed: {e}");
                            Err(e.to_string())
                        }
                    };
                    for e in follower.handle(Instant::now(), Input::Reconciled(reported)) {
                        if let Effect::Wait(d) = e {
                            std::thread::sleep(d);
                        }
                    }
                }
            }
        }
    }
}
