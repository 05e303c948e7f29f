//! `nexthop lb-mux`: the load balancer's data plane on the host owning the frontend.
//!
//! ```text
//!  controller GET /v1/lb/NAME ──once──> Balancer (mode, settings, backends), one per thread
//!  poller thread: GET /v1/lb/NAME every 20 ms ──health/admin/active changes──> a channel per thread
//!  forwarding threads (one per CPU by default), each a linux::mux::Mux in one PACKET_FANOUT
//!  hash group: Mux::run(hook), the hook drains its channel into its balancer (single owner)
//! ```
//!
//! The kernel spreads frames over the threads by flow hash, so a flow always meets the same
//! flow table; the balancers see the same changes in the same order, so a new flow gets the
//! same backend whichever thread takes it, and `nexthop trace` predicts it.
//!
//! Health comes from the controller's probes (it already applied rise/fall), so the balancer
//! here takes it as is ([`lb::Balancer::set_health`]). If the controller is unreachable the
//! last known state stays.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use lb::{AdminState, Balancer, Health, LbConfig, Mode};
use linux::RingSpec;
use serde_json::Value;
use tracing::{info, warn};

/// How often the poller asks the controller.
pub const POLL: Duration = Duration::from_millis(20);
/// How often the stats are printed.
pub const STATS_EVERY: Duration = Duration::from_secs(5);

/// One backend as the controller shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendState {
    pub priority: u32,
    pub health: Health,
    pub admin: AdminState,
    /// The controller's active backend (active-passive).
    pub active: bool,
}

/// A change for the mux's balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    Health(Ipv4Addr, Health),
    Admin(Ipv4Addr, AdminState),
    /// The controller made this backend the active one (active-passive).
    Active(Ipv4Addr),
}

fn parse_health(s: &str) -> Health {
    match s {
        "up" => Health::Up,
        "down" => Health::Down,
        _ => Health::Unknown,
    }
}

/// The backends of an LbView (`GET /v1/lb/NAME`).
pub fn backends(view: &Value) -> anyhow::Result<BTreeMap<Ipv4Addr, BackendState>> {
    let list = view
        .get("backends")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("load balancer view without backends"))?;
    let mut out = BTreeMap::new();
    for b in list {
        let addr: Ipv4Addr = b
            .get("address")
            .and_then(Value::as_str)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| anyhow!("backend without an IPv4 address: {b}"))?;
        let admin = b
            .get("adminState")
            .and_then(Value::as_str)
            .and_then(crate::lbrun::parse_admin)
            .unwrap_or(AdminState::None);
        let health = parse_health(b.get("health").and_then(Value::as_str).unwrap_or(""));
        let priority = b.get("priority").and_then(Value::as_u64).unwrap_or(0) as u32;
        let active = b.get("role").and_then(Value::as_str) == Some("active");
        out.insert(
            addr,
            BackendState {
                priority,
                health,
                admin,
                active,
            },
        );
    }
    Ok(out)
}

/// The balancer an LbView describes, with the health and admin states it shows.
pub fn balancer(view: &Value) -> anyhow::Result<Balancer> {
    let name = view
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("load balancer view without a name"))?;
    let frontend: Ipv4Addr = view
        .get("frontend")
        .and_then(Value::as_str)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| anyhow!("load balancer view without a frontend"))?;
    let mode = match view.get("mode").and_then(Value::as_str) {
        Some("active-passive") => Mode::ActivePassive,
        Some("active-active") => Mode::ActiveActive,
        other => return Err(anyhow!("unknown load balancer mode {other:?}")),
    };
    let mut cfg = LbConfig::new(name, frontend, mode);
    match view.get("settings") {
        Some(s) => {
            let s: crate::lbrun::LbSettings =
                serde_json::from_value(s.clone()).context("load balancer settings")?;
            s.apply(&mut cfg);
        }
        None => warn!("controller shows no balancer settings: using the defaults"),
    }
    let bs = backends(view)?;
    let list: Vec<(Ipv4Addr, u32, AdminState)> =
        bs.iter().map(|(a, b)| (*a, b.priority, b.admin)).collect();
    let mut lb = Balancer::new(cfg, &list);
    for (a, b) in &bs {
        lb.set_health(*a, b.health);
    }
    // Not the mux's own election: the controller's (it depends on the order health changes
    // came in, e.g. which NVA answered first at start).
    if let Some((a, _)) = bs.iter().find(|(_, b)| b.active) {
        let _ = lb.set_active(*a);
    }
    Ok(lb)
}

/// What changed from `old` to `new` (backends only in one of them are ignored: adding or
/// removing backends needs a restart of the mux).
pub fn diff(
    old: &BTreeMap<Ipv4Addr, BackendState>,
    new: &BTreeMap<Ipv4Addr, BackendState>,
) -> Vec<Update> {
    let mut out = Vec::new();
    for (a, n) in new {
        let Some(o) = old.get(a) else { continue };
        if o.admin != n.admin {
            out.push(Update::Admin(*a, n.admin));
        }
        // "unknown" is a controller that has not probed yet (e.g. it just restarted): it
        // knows less than the mux, which keeps what it last heard (fail static).
        if o.health != n.health && n.health != Health::Unknown {
            out.push(Update::Health(*a, n.health));
        }
    }
    // After the health and admin changes, which may have moved the mux's own choice.
    let active =
        |m: &BTreeMap<Ipv4Addr, BackendState>| m.iter().find(|(_, b)| b.active).map(|(a, _)| *a);
    if let Some(a) = active(new).filter(|a| !out.is_empty() || active(old) != Some(*a)) {
        out.push(Update::Active(a));
    }
    out
}

/// Applies updates to the balancer, logging the transitions.
pub fn apply(b: &mut Balancer, updates: impl IntoIterator<Item = Update>) {
    for u in updates {
        match u {
            Update::Health(a, h) => {
                if let Some(ch) = b.set_health(a, h) {
                    info!(backend = %a, from = %ch.from, to = %ch.to, "backend health");
                    eprintln!("lb-mux: backend {a} {} -> {}", ch.from, ch.to);
                }
            }
            Update::Admin(a, s) => {
                if b.set_admin(a, s).is_ok() {
                    info!(backend = %a, state = %s, "backend admin state");
                    eprintln!("lb-mux: backend {a} admin {s}");
                }
            }
            Update::Active(a) => match b.set_active(a) {
                Ok(true) => {
                    info!(backend = %a, "active backend, as the controller has it");
                    eprintln!("lb-mux: backend {a} active (the controller's choice)");
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "controller's active backend not applied"),
            },
        }
    }
}

/// [`apply`] without the log lines (the other forwarding threads).
fn apply_quietly(b: &mut Balancer, u: Update) {
    let _ = match u {
        Update::Health(a, h) => b.set_health(a, h).map(drop),
        Update::Admin(a, s) => b.set_admin(a, s).ok(),
        Update::Active(a) => b.set_active(a).ok().map(drop),
    };
}

fn warn_ip_forward() {
    if let Ok(v) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward") {
        if v.trim() == "1" {
            warn!("net.ipv4.ip_forward is 1: the kernel forwards these packets too");
            eprintln!(
                "lb-mux: warning: net.ipv4.ip_forward=1 here, so the kernel would forward the \
                 frontend's traffic as well (duplicates); set it to 0 on the mux host"
            );
        }
    }
}

/// What makes a balancer (mode, settings, backends and priorities), not its state: when the
/// controller's changes (a reload), the mux builds a new balancer.
pub fn shape(view: &Value) -> String {
    let mut backends: Vec<String> = view
        .get("backends")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|b| format!("{}/{}", b["address"], b["priority"]))
                .collect()
        })
        .unwrap_or_default();
    backends.sort();
    format!(
        "{} {} {} {}",
        view["frontend"],
        view["mode"],
        view["settings"],
        backends.join(",")
    )
}

/// What the poller hands each forwarding thread.
#[derive(Clone)]
enum Change {
    Update(Update),
    /// The load balancer was reconfigured: the controller's new view, from which each thread
    /// builds its new balancer (flows start afresh).
    Replace(Arc<Value>),
}

/// Runs the mux until killed: `threads` forwarding threads (0: one per CPU) in one
/// `PACKET_FANOUT` hash group, so each flow is always handled by the same thread and its flow
/// table; each thread has its own balancer, all fed the same changes.
pub fn run(controller: &str, lb_name: &str, interface: &str, threads: usize) -> anyhow::Result<()> {
    let path = format!("/v1/lb/{}", crate::cli::encode(lb_name));
    let view = crate::cli::get_json(controller, &path)
        .with_context(|| format!("fetching load balancer {lb_name} from {controller}"))?;
    balancer(&view)?;
    let mut known = backends(&view)?;
    warn_ip_forward();
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // A fanout group id unique on this host for this process.
    let group = (std::process::id() & 0xffff) as u16;
    let (opened_tx, opened_rx) = mpsc::channel::<anyhow::Result<()>>();
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for i in 0..threads {
        let (tx, rx) = mpsc::channel::<Change>();
        senders.push(tx);
        let (view, interface, opened) = (view.clone(), interface.to_string(), opened_tx.clone());
        workers.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let ring = RingSpec {
                fanout: (threads > 1).then_some(group),
                ..linux::mux::RING
            };
            let opened_mux = balancer(&view).and_then(|b| {
                linux::mux::Mux::open_with(&interface, b, ring)
                    .with_context(|| format!("opening the mux on {interface}"))
            });
            let mut mux = match opened_mux {
                Ok(m) => {
                    let _ = opened.send(Ok(()));
                    m
                }
                Err(e) => {
                    let _ = opened.send(Err(anyhow!("{e:#}")));
                    return Err(e);
                }
            };
            forward(&mut mux, &rx, i, threads)
        }));
    }
    for _ in 0..threads {
        opened_rx.recv().context("a forwarding thread ended")??;
    }
    eprintln!(
        "lb-mux: {lb_name} ({}) on {interface}: {} backends, {threads} forwarding thread(s)",
        view["frontend"].as_str().unwrap_or("?"),
        known.len()
    );
    let controller = controller.to_string();
    let mut known_shape = shape(&view);
    std::thread::spawn(move || {
        let mut reachable = true;
        loop {
            let started = Instant::now();
            let answer =
                crate::cli::get_json(&controller, &path).and_then(|v| backends(&v).map(|b| (v, b)));
            match answer {
                Ok((view, now)) => {
                    if !reachable {
                        eprintln!("lb-mux: controller reachable again");
                        reachable = true;
                    }
                    let changes: Vec<Change> = if shape(&view) != known_shape {
                        match balancer(&view) {
                            Ok(_) => {
                                known_shape = shape(&view);
                                vec![Change::Replace(Arc::new(view))]
                            }
                            Err(e) => {
                                warn!(error = %format!("{e:#}"), "reconfigured load balancer not usable; keeping the old one");
                                Vec::new()
                            }
                        }
                    } else {
                        diff(&known, &now).into_iter().map(Change::Update).collect()
                    };
                    for c in changes {
                        for tx in &senders {
                            if tx.send(c.clone()).is_err() {
                                return;
                            }
                        }
                    }
                    known = now;
                }
                Err(e) => {
                    if reachable {
                        eprintln!(
                            "lb-mux: controller unreachable ({e:#}); keeping the last backend states"
                        );
                        reachable = false;
                    }
                }
            }
            std::thread::sleep(POLL.saturating_sub(started.elapsed()));
        }
    });
    for w in workers {
        match w.join() {
            Ok(r) => r?,
            Err(_) => anyhow::bail!("a forwarding thread panicked"),
        }
    }
    Ok(())
}

/// One forwarding thread: the mux's loop, applying the poller's changes between blocks.
fn forward(
    mux: &mut linux::mux::Mux,
    rx: &mpsc::Receiver<Change>,
    index: usize,
    threads: usize,
) -> anyhow::Result<()> {
    let name = if threads > 1 {
        format!("lb-mux[{index}]")
    } else {
        "lb-mux".to_string()
    };
    // `run` returns when `pause` is set: the hook sets it every STATS_EVERY so the stats (only
    // readable from outside `run`) get printed, then the mux goes on.
    let pause = AtomicBool::new(false);
    loop {
        let mut last = Instant::now();
        mux.run(&pause, |b| {
            for c in rx.try_iter() {
                match c {
                    // Only the first thread logs what all of them apply.
                    Change::Update(u) if index == 0 => apply(b, [u]),
                    Change::Update(u) => apply_quietly(b, u),
                    Change::Replace(view) => match balancer(&view) {
                        Ok(new) => {
                            if index == 0 {
                                eprintln!(
                                    "lb-mux: load balancer reconfigured on the controller: {} backends, {}; flows start afresh",
                                    new.backends().len(),
                                    new.config().mode
                                );
                            }
                            *b = new;
                        }
                        Err(e) => warn!(error = %format!("{e:#}"), "reconfigured load balancer"),
                    },
                }
            }
            if last.elapsed() >= STATS_EVERY {
                last = Instant::now();
                pause.store(true, Ordering::Relaxed);
            }
        })?;
        pause.store(false, Ordering::Relaxed);
        let s = mux.stats();
        println!(
            "{name}: rx {} forwarded {} local {} malformed {} no_backend {} no_neighbour {} tx_errors {} ring_drops {}",
            s.rx, s.forwarded, s.local, s.malformed, s.no_backend, s.no_neighbour, s.tx_errors, s.ring_drops
        );
        let unresolved = mux.unresolved();
        if !unresolved.is_empty() {
            eprintln!("{name}: backends without a known MAC yet: {unresolved:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(h1: &str, h2: &str, admin2: &str) -> Value {
        let (r1, r2) = if h1 == "up" {
            ("active", "standby")
        } else if h2 == "up" && admin2 == "none" {
            ("standby", "active")
        } else {
            ("standby", "standby")
        };
        json!({"name": "lb1", "frontend": "10.1.0.100", "mode": "active-passive",
               "backends": [
                 {"address": "10.1.2.10", "health": h1, "adminState": "none", "role": r1, "priority": 1, "flows": 0},
                 {"address": "10.1.2.11", "health": h2, "adminState": admin2, "role": r2, "priority": 2, "flows": 0}],
               "settings": {"distribution": "two-tuple", "symmetric": false, "preempt": true,
                 "noHealthyBackends": "drop", "maglevTableSize": 65537, "maxFlows": 1000,
                 "idleTcpS": 240, "idleUdpS": 30}})
    }

    const NVA1: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 10);
    const NVA2: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 11);

    #[test]
    fn builds_the_controllers_balancer() {
        let b = balancer(&view("up", "up", "none")).unwrap();
        assert_eq!(b.config().mode, Mode::ActivePassive);
        assert_eq!(b.config().distribution, lb::Distribution::TwoTuple);
        assert!(b.config().preempt);
        assert_eq!(b.config().max_flows, 1000);
        assert_eq!(b.active(), Some(NVA1));
        assert_eq!(b.backends()[1].priority, 2);
    }

    #[test]
    fn diff_and_apply_fail_over() {
        let old = backends(&view("up", "up", "none")).unwrap();
        let new = backends(&view("down", "up", "drain")).unwrap();
        let d = diff(&old, &new);
        assert_eq!(
            d,
            vec![
                Update::Health(NVA1, Health::Down),
                Update::Admin(NVA2, AdminState::Drain)
            ]
        );
        let mut b = balancer(&view("up", "up", "none")).unwrap();
        apply(&mut b, [Update::Health(NVA1, Health::Down)]);
        assert_eq!(b.active(), Some(NVA2));
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn follows_the_controllers_active_backend() {
        // nva1 answered its first probe late: the controller elected nva2 and, without
        // preemption, keeps it although both are up now. The mux must not elect nva1.
        let mut v = view("up", "up", "none");
        v["backends"][0]["role"] = "standby".into();
        v["backends"][1]["role"] = "active".into();
        let mut b = balancer(&v).unwrap();
        assert_eq!(b.active(), Some(NVA2));
        // The controller fails back to nva1 after nva2 fails; then nva2 is up again, standby.
        let old = backends(&v).unwrap();
        let mut w = view("up", "down", "none");
        w["backends"][1]["role"] = "standby".into();
        let new = backends(&w).unwrap();
        let d = diff(&old, &new);
        assert_eq!(
            d,
            vec![Update::Health(NVA2, Health::Down), Update::Active(NVA1)]
        );
        apply(&mut b, d);
        assert_eq!(b.active(), Some(NVA1));
        let mut x = view("up", "up", "none");
        x["backends"][1]["role"] = "standby".into();
        apply(&mut b, diff(&new, &backends(&x).unwrap()));
        assert_eq!(b.active(), Some(NVA1));
    }

    #[test]
    fn a_restarted_controller_that_has_not_probed_yet_changes_nothing() {
        let old = backends(&view("up", "down", "none")).unwrap();
        let new = backends(&view("unknown", "unknown", "none")).unwrap();
        assert!(diff(&old, &new).is_empty());
        let back = backends(&view("down", "up", "none")).unwrap();
        assert_eq!(
            diff(&new, &back),
            vec![
                Update::Health(NVA1, Health::Down),
                Update::Health(NVA2, Health::Up),
                Update::Active(NVA2)
            ]
        );
    }

    #[test]
    fn shape_changes_with_the_config_not_with_the_state() {
        let a = view("up", "up", "none");
        assert_eq!(shape(&a), shape(&view("down", "up", "drain")));
        let mut b = a.clone();
        b["mode"] = "active-active".into();
        assert_ne!(shape(&a), shape(&b));
        let mut c = a.clone();
        c["backends"][1]["priority"] = 3.into();
        assert_ne!(shape(&a), shape(&c));
        let mut d = a.clone();
        d["settings"]["maxFlows"] = 5.into();
        assert_ne!(shape(&a), shape(&d));
    }

    #[test]
    fn rejects_bad_views() {
        assert!(balancer(
            &json!({"name": "x", "frontend": "10.0.0.1", "mode": "weird", "backends": []})
        )
        .is_err());
        assert!(backends(&json!({"backends": [{"address": "nope"}]})).is_err());
    }
}
