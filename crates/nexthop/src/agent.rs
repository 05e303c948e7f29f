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

/// What `--metrics-file` holds: the last reconcile and whether the controller answers.
#[derive(Default, PartialEq, Clone)]
struct Metrics {
    nic: String,
    reachable: bool,
    programmed: usize,
    refused: usize,
    failed: usize,
    reconciles: u64,
}

impl Metrics {
    fn text(&self) -> String {
        let nic = &self.nic;
        let mut s = String::new();
        let mut gauge = |name: &str, help: &str, kind: &str, v: String| {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{nic=\"{nic}\"}} {v}\n"
            ));
        };
        gauge(
            "nexthop_agent_controller_reachable",
            "1 when the last question to the controller was answered",
            "gauge",
            u8::from(self.reachable).to_string(),
        );
        gauge(
            "nexthop_agent_routes_programmed",
            "Routes programmed in the kernel (proto 200) at the last reconcile",
            "gauge",
            self.programmed.to_string(),
        );
        gauge(
            "nexthop_agent_routes_refused",
            "Routes the controller asked for and the agent refused (path to the controller, --allow)",
            "gauge",
            self.refused.to_string(),
        );
        gauge(
            "nexthop_agent_routes_failed",
            "Routes the kernel refused at the last reconcile",
            "gauge",
            self.failed.to_string(),
        );
        gauge(
            "nexthop_agent_reconciles_total",
            "Reconciles of the kernel routes",
            "counter",
            self.reconciles.to_string(),
        );
        s
    }

    /// Replaces `path` whole (a reader never sees half a file).
    fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        let tmp = path.with_extension("prom.new");
        std::fs::write(&tmp, self.text())?;
        std::fs::rename(&tmp, path)
    }
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
    metrics_file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let mut metrics = Metrics {
        nic: nic.to_string(),
        reachable: true,
        ..Metrics::default()
    };
    // What the file holds now: it is rewritten only when something changed.
    let mut written: Option<Metrics> = None;
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
                metrics.reachable = true;
                follower.handle(Instant::now(), Input::Answer(b))
            }
            Err(e) => {
                if was_reachable {
                    eprintln!(
                        "agent: controller unreachable ({e:#}); kernel routes left as they are"
                    );
                    was_reachable = false;
                }
                metrics.reachable = false;
                follower.handle(Instant::now(), Input::Unreachable(format!("{e:#}")))
            }
        };
        for e in effects {
            match e {
                Effect::Wait(d) => std::thread::sleep(d),
                Effect::Program(want) => {
                    let result = linux::reconcile_guarded(&mut nl, &want, &guard);
                    metrics.reconciles += 1;
                    if let Ok(ch) = &result {
                        metrics.refused = ch.refused.len();
                        metrics.failed = ch.failed.len();
                        metrics.programmed = want.len() - ch.refused.len() - ch.failed.len();
                    }
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
        if let Some(path) = metrics_file
            .as_ref()
            .filter(|_| written.as_ref() != Some(&metrics))
        {
            match metrics.write(path) {
                Ok(()) => written = Some(metrics.clone()),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot write the metrics file")
                }
            }
        }
    }
}
