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

/// The addresses `controller` (a URL, `http://HOST:PORT`) reaches: the routes to them are the
/// agent's own lifeline and are never taken over.
fn controller_addresses(controller: &str) -> anyhow::Result<Vec<std::net::Ipv4Addr>> {
    use std::net::ToSocketAddrs;
    let rest = controller.split_once("://").map_or(controller, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let addrs: Vec<std::net::Ipv4Addr> = hostport
        .to_socket_addrs()
        .with_context(|| format!("controller {controller}: cannot resolve {hostport}"))?
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    if addrs.is_empty() {
        anyhow::bail!("controller {controller}: no IPv4 address");
    }
    Ok(addrs)
}

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
    for (r, why) in &ch.refused {
        parts.push(format!("x{} via {} refused: {why}", r.prefix, r.gateway));
    }
    for (r, e) in &ch.failed {
        parts.push(format!("x{} via {} failed: {e}", r.prefix, r.gateway));
    }
    format!(
        "{} added, {} replaced, {} removed, {} foreign, {} refused, {} failed: {}",
        ch.added.len(),
        ch.replaced.len(),
        ch.removed.len(),
        ch.foreign.len(),
        ch.refused.len(),
        ch.failed.len(),
        parts.join(", ")
    )
}

/// Runs the agent until killed. After a reconnect, routes the controller no longer lists are
/// removed only once `grace` has passed (a restarted controller relearns its BGP routes first).
/// Every decision is the [`Follower`]'s; this loop asks the controller and programs the kernel.
pub fn run(
    controller: &str,
    nic: &str,
    grace: Duration,
    allow: Vec<linux::Prefix>,
) -> anyhow::Result<()> {
    let mut nl = linux::Netlink::open().context("opening rtnetlink")?;
    let guard = linux::Guard {
        protect: controller_addresses(controller)?,
        allow,
    };
    tracing::info!(protect = ?guard.protect, allow = ?guard.allow, "routes to the controller are never taken over");
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
                    let result = linux::reconcile_guarded(&mut nl, &want, &guard);
                    let reported = match &result {
                        Ok(ch) => {
                            if !ch.is_empty() {
                                let v = follower.version().unwrap_or(0);
                                tracing::info!(version = v, summary = %summary(ch), "kernel routes reconciled");
                                println!("v{v}: {}", summary(ch));
                            }
                            for (r, why) in &ch.refused {
                                tracing::warn!(route = %format!("{} via {}", r.prefix, r.gateway), "route refused: {why}");
                            }
                            if ch.failed.is_empty() {
                                Ok(())
                            } else {
                                let failed: Vec<String> = ch
                                    .failed
                                    .iter()
                                    .map(|(r, e)| format!("{} via {}: {e}", r.prefix, r.gateway))
                                    .collect();
                                Err(format!("the kernel refused {}", failed.join("; ")))
                            }
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
