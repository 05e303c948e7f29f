//! `nexthop agent`: the host agent. Follows one NIC's effective routes from one or more
//! controllers (long poll on `/v1/effective-routes?nic=NAME&since=V&wait=S`, one thread per
//! controller) and keeps the kernel's nexthop-owned routes (protocol 200) equal to the union of
//! the routes they list that go through a virtual network gateway (a load balancer frontend or
//! an NVA): `PREFIX via NEXT_HOP proto 200`.
//!
//! ```text
//!  controller 1 ──poller thread──┐
//!  controller 2 ──poller thread──┼─(i, answer)─> Follower (one RouteMap each, union) ──>
//!                                ┘      linux::agent::reconcile ──> kernel FIB
//! ```
//!
//! Fail static: while a controller is unreachable what it last said stays; with none
//! answering nothing is written, so the programmed routes stay. On reconnect the agent fetches
//! that controller's whole table again and reconciles, which removes the routes that went stale
//! meanwhile (after the grace period). A controller silent for `--stale-after` while another
//! answers no longer counts.

use std::time::{Duration, Instant};

use anyhow::Context;
use controller::follower::{Effect, Follower, Input};

/// The addresses `controller` (a URL, `http://HOST:PORT`) reaches: the routes to them are the
/// agent's own lifeline and are never taken over.
fn controller_addresses(controller: &str) -> anyhow::Result<Vec<std::net::IpAddr>> {
    use std::net::ToSocketAddrs;
    let rest = controller.split_once("://").map_or(controller, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or(rest);
    // `HOST` alone gets port 80; `HOST:PORT` and `[V6]:PORT` are as written.
    let hostport = if hostport.ends_with(']') || !hostport.contains(':') {
        format!("{hostport}:80")
    } else {
        hostport.to_string()
    };
    let addrs: Vec<std::net::IpAddr> = hostport
        .to_socket_addrs()
        .with_context(|| format!("controller {controller}: cannot resolve {hostport}"))?
        .map(|a| a.ip())
        .collect();
    if addrs.is_empty() {
        anyhow::bail!("controller {controller}: no address");
    }
    Ok(addrs)
}

/// What `--metrics-file` holds: the last reconcile and whether the controller answers.
#[derive(Default, PartialEq, Clone)]
struct Metrics {
    nic: String,
    /// Per controller (URL): whether its last answer came and its routes count.
    heard: Vec<(String, bool)>,
    programmed: usize,
    refused: usize,
    failed: usize,
    reconciles: u64,
}

impl Metrics {
    fn text(&self) -> String {
        let nic = &self.nic;
        let mut s = String::new();
        s.push_str(
            "# HELP nexthop_agent_controller_reachable 1 when the controller answered the last question and its routes count\n\
             # TYPE nexthop_agent_controller_reachable gauge\n",
        );
        for (url, heard) in &self.heard {
            s.push_str(&format!(
                "nexthop_agent_controller_reachable{{nic=\"{nic}\",controller=\"{url}\"}} {}\n",
                u8::from(*heard)
            ));
        }
        let mut gauge = |name: &str, help: &str, kind: &str, v: String| {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{nic=\"{nic}\"}} {v}\n"
            ));
        };
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

/// With the kernel's default multipath hash (L3: addresses only), every flow between two hosts
/// takes the same path of an ECMP route; the L4 policy (`fib_multipath_hash_policy = 1`)
/// spreads flows by ports too. Said once per family, the first time a multipath route is
/// programmed under the L3 policy.
fn warn_l3_multipath_hash(want: &[controller::follower::KernelRoute], warned: &mut [bool; 2]) {
    for (i, (v4, key)) in [
        (true, "net.ipv4.fib_multipath_hash_policy"),
        (false, "net.ipv6.fib_multipath_hash_policy"),
    ]
    .into_iter()
    .enumerate()
    {
        let multipath = want
            .iter()
            .any(|(p, gws)| p.is_ipv4() == v4 && gws.len() > 1);
        if !multipath || warned[i] {
            continue;
        }
        let file = format!("/proc/sys/{}", key.replace('.', "/"));
        if std::fs::read_to_string(&file).is_ok_and(|v| v.trim() == "0") {
            warned[i] = true;
            tracing::warn!("{key} is 0: ECMP routes spread by addresses only");
            eprintln!(
                "agent: warning: {key}=0 (L3 hash): every flow between two hosts takes the same \
                 next hop of a multipath route; set it to 1 (L4: ports too) to spread flows"
            );
        }
    }
}

fn summary(ch: &linux::Changes) -> String {
    let mut parts = Vec::new();
    for r in &ch.added {
        parts.push(format!("+{} via {}", r.prefix, r.via()));
    }
    for (o, n) in &ch.replaced {
        parts.push(format!("~{} via {} (was {})", n.prefix, n.via(), o.via()));
    }
    for r in &ch.removed {
        parts.push(format!("-{} via {}", r.prefix, r.via()));
    }
    for (p, proto) in &ch.foreign {
        parts.push(format!("!{p} held by protocol {proto}"));
    }
    for (r, why) in &ch.refused {
        parts.push(format!("x{} via {} refused: {why}", r.prefix, r.via()));
    }
    for (r, e) in &ch.failed {
        parts.push(format!("x{} via {} failed: {e}", r.prefix, r.via()));
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

/// What the agent is given on its command line.
pub struct Options {
    /// The controllers' API URLs, in order of preference.
    pub controllers: Vec<String>,
    pub nic: String,
    /// After a controller reconnects, routes it no longer lists stay this long.
    pub grace: Duration,
    /// A silent controller's last answer counts this long while another one answers.
    pub stale_after: Duration,
    pub allow: Vec<linux::Prefix>,
    pub metrics_file: Option<std::path::PathBuf>,
}

/// One poller's answer: which controller, and its answer's text or why there is none.
type Heard = (usize, anyhow::Result<String>);

/// A thread asking controller `i`: it waits, asks the path it is given, and reports.
fn poller(
    i: usize,
    controller: String,
    next: std::sync::mpsc::Receiver<(Duration, String)>,
    heard: std::sync::mpsc::Sender<Heard>,
) {
    std::thread::spawn(move || {
        for (wait, path) in next {
            std::thread::sleep(wait);
            // An error status counts as unreachable (the controller cannot answer now); an
            // answer this agent cannot read is a bad answer. Both leave the kernel as it is.
            let body = crate::cli::request(&controller, "GET", &path)
                .and_then(|(status, body)| crate::cli::check_status(status, &body).map(|()| body));
            if heard.send((i, body)).is_err() {
                return;
            }
        }
    });
}

/// Runs the agent until killed. Every decision is the [`Follower`]'s; the poller threads ask
/// the controllers, and this loop programs the kernel.
pub fn run(opts: Options) -> anyhow::Result<()> {
    let Options {
        controllers,
        nic,
        grace,
        stale_after,
        allow,
        metrics_file,
    } = opts;
    anyhow::ensure!(!controllers.is_empty(), "no --controller given");
    let mut hash_warned = [false; 2];
    let mut metrics = Metrics {
        nic: nic.clone(),
        heard: controllers.iter().map(|c| (c.clone(), true)).collect(),
        ..Metrics::default()
    };
    // What the file holds now: it is rewritten only when something changed.
    let mut written: Option<Metrics> = None;
    let mut nl = linux::Netlink::open().context("opening rtnetlink")?;
    let mut protect = Vec::new();
    for c in &controllers {
        protect.extend(controller_addresses(c)?);
    }
    let guard = linux::Guard { protect, allow };
    tracing::info!(protect = ?guard.protect, allow = ?guard.allow, "routes to the controllers are never taken over");
    let mut follower = Follower::with_controllers(controllers.len(), grace, stale_after);
    let (heard_tx, heard_rx) = std::sync::mpsc::channel::<Heard>();
    let mut ask = Vec::new();
    for (i, c) in controllers.iter().enumerate() {
        let (tx, rx) = std::sync::mpsc::channel();
        poller(i, c.clone(), rx, heard_tx.clone());
        tx.send((Duration::ZERO, follower.poll_path(i, &nic)))
            .context("poller thread")?;
        ask.push(tx);
    }
    drop(heard_tx);
    let mut was_reachable = vec![true; controllers.len()];
    for (i, body) in heard_rx {
        let url = &controllers[i];
        let effects = match &body {
            Ok(b) => {
                if !was_reachable[i] {
                    eprintln!("agent: controller {url} reachable again; reconciling its whole table (removals after {grace:?})");
                    was_reachable[i] = true;
                }
                follower.handle(Instant::now(), Input::Answer(i, b))
            }
            Err(e) => {
                if was_reachable[i] {
                    eprintln!(
                        "agent: controller {url} unreachable ({e:#}); what it said stays (fail static)"
                    );
                    was_reachable[i] = false;
                }
                follower.handle(Instant::now(), Input::Unreachable(i, format!("{e:#}")))
            }
        };
        let mut wait = Duration::ZERO;
        for e in effects {
            match e {
                Effect::Wait(d) => wait += d,
                Effect::Program(want) => {
                    warn_l3_multipath_hash(&want, &mut hash_warned);
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
                                let v = follower.version(i).unwrap_or(0);
                                tracing::info!(controller = %url, version = v, summary = %summary(ch), "kernel routes reconciled");
                                println!("v{v}: {}", summary(ch));
                            }
                            for (r, why) in &ch.refused {
                                tracing::warn!(route = %format!("{} via {}", r.prefix, r.via()), "route refused: {why}");
                            }
                            if ch.failed.is_empty() {
                                Ok(())
                            } else {
                                let failed: Vec<String> = ch
                                    .failed
                                    .iter()
                                    .map(|(r, e)| format!("{} via {}: {e}", r.prefix, r.via()))
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
                            wait += d;
                        }
                    }
                }
            }
        }
        for (m, h) in metrics.heard.iter_mut().zip(follower.heard()) {
            m.1 = h;
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
        ask[i]
            .send((wait, follower.poll_path(i, &nic)))
            .context("poller thread ended")?;
    }
    anyhow::bail!("every poller thread ended")
}
