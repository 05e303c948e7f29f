//! `nexthop lb-mux`: the load balancer's data plane on the host owning the frontend.
//!
//! ```text
//!  controller GET /v1/lb/NAME ──once──> Balancer (mode, settings, backends), one per thread
//!  a thread per controller: GET /v1/lb/NAME every 20 ms ──> its latest answer
//!  selector thread: every 20 ms, the latest view of the first controller that answers
//!      ──health/admin/active changes──> a channel per forwarding thread
//!  forwarding threads (one per CPU by default), each a linux::mux::Mux in one PACKET_FANOUT
//!  hash group: Mux::run(hook), the hook drains its channel into its balancer (single owner)
//! ```
//!
//! The kernel spreads frames over the threads by flow hash, so a flow always meets the same
//! flow table; the balancers see the same changes in the same order, so a new flow gets the
//! same backend whichever thread takes it, and `nexthop trace` predicts it.
//!
//! Several controllers (one per route server instance, each probing on its own): the mux takes
//! health and roles from the first one, in the order given, that answered within
//! [`SILENT`]; when it stops answering (a refused connection counts at once) the next one's
//! view applies from the next poll.
//!
//! Health comes from the controller's probes (it already applied rise/fall), so the balancer
//! here takes it as is ([`lb::Balancer::set_health`]). If no controller is reachable, or
//! answers something this mux does not understand (the view is read strictly as
//! [`api_types::LbView`]), the last known state stays; settings it refuses
//! ([`api_types::LbView::validate`]) leave the current balancer in place.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use api_types::request::lb_path;
use api_types::{LbMode, LbSettings, LbView, Role};
use lb::{AdminState, Balancer, Health, LbConfig};
use linux::RingSpec;
use tracing::{info, warn};

use crate::contract;

/// How often the poller asks the controller.
pub const POLL: Duration = Duration::from_millis(20);
/// A controller whose last answer is older than this (or whose last question failed) is not
/// followed: the next one in order is. Ten polls: a controller answers one in about a
/// millisecond, so only one that is gone (a host down, a link cut) stays silent this long.
pub const SILENT: Duration = Duration::from_millis(200);
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
    Health(IpAddr, Health),
    Admin(IpAddr, AdminState),
    /// The controller made this backend the active one (active-passive).
    Active(IpAddr),
}

/// The backends of an LbView (`GET /v1/lb/NAME`).
pub fn backends(view: &LbView) -> BTreeMap<IpAddr, BackendState> {
    view.backends
        .iter()
        .map(|b| {
            let state = BackendState {
                priority: b.priority,
                health: contract::lb_health(b.health),
                admin: contract::lb_admin_state(b.admin_state),
                active: b.role == Role::Active,
            };
            (b.address, state)
        })
        .collect()
}

/// The balancer an LbView describes, with the health and admin states it shows. Settings the
/// view's own checks refuse (a Maglev table size that is not prime, …) are an error: the `lb`
/// crate would hang or run out of memory on them.
pub fn balancer(view: &LbView) -> anyhow::Result<Balancer> {
    view.validate()
        .with_context(|| format!("load balancer {}: settings refused", view.name))?;
    let mut cfg = LbConfig::new(&view.name, view.frontend, contract::lb_mode(view.mode));
    contract::apply_settings(&view.settings, &mut cfg)?;
    let bs = backends(view);
    let list: Vec<(IpAddr, u32, AdminState)> =
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
    old: &BTreeMap<IpAddr, BackendState>,
    new: &BTreeMap<IpAddr, BackendState>,
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
        |m: &BTreeMap<IpAddr, BackendState>| m.iter().find(|(_, b)| b.active).map(|(a, _)| *a);
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

/// An IPv6 host with forwarding off and no route for a packet's destination answers it with
/// ICMPv6 "no route" (IPv4 drops it silently): the client's connection then fails although the
/// mux forwarded its packet. Any route covering the destinations will do; a mux host usually
/// has a default route.
fn warn_no_ipv6_default_route() {
    let Ok(table) = std::fs::read_to_string("/proc/net/ipv6_route") else {
        return;
    };
    let zero = "0".repeat(32);
    let default = table.lines().any(|l| {
        let mut f = l.split_whitespace();
        f.next() == Some(zero.as_str()) && f.next() == Some("00")
    });
    if !default {
        warn!("no IPv6 default route: the kernel answers forwarded packets with ICMPv6 no-route");
        eprintln!(
            "lb-mux: warning: this host has no IPv6 default route, so its kernel answers every \
             packet the mux forwards with an ICMPv6 'no route' error (clients see their \
             connections refused); add one (e.g. `ip -6 route add blackhole default`)"
        );
    }
}

fn warn_ip_forward() {
    for (file, key) in [
        ("/proc/sys/net/ipv4/ip_forward", "net.ipv4.ip_forward"),
        (
            "/proc/sys/net/ipv6/conf/all/forwarding",
            "net.ipv6.conf.all.forwarding",
        ),
    ] {
        if std::fs::read_to_string(file).is_ok_and(|v| v.trim() == "1") {
            warn!("{key} is 1: the kernel forwards these packets too");
            eprintln!(
                "lb-mux: warning: {key}=1 here, so the kernel would forward the frontend's \
                 traffic as well (duplicates); set it to 0 on the mux host"
            );
        }
    }
}

/// What makes a balancer (mode, settings, backends and priorities), not its state: when the
/// controller's changes (a reload), the mux builds a new balancer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    frontend: IpAddr,
    mode: LbMode,
    settings: LbSettings,
    /// (address, priority), sorted.
    backends: Vec<(IpAddr, u32)>,
}

pub fn shape(view: &LbView) -> Shape {
    let mut backends: Vec<(IpAddr, u32)> = view
        .backends
        .iter()
        .map(|b| (b.address, b.priority))
        .collect();
    backends.sort();
    Shape {
        frontend: view.frontend,
        mode: view.mode,
        settings: view.settings.clone(),
        backends,
    }
}

/// What the poller hands each forwarding thread.
#[derive(Clone, Debug)]
enum Change {
    Update(Update),
    /// The load balancer was reconfigured: the controller's new view, from which each thread
    /// builds its new balancer (flows start afresh).
    Replace(Arc<LbView>),
}

/// What the poller knows of the controller's view, and what it makes of the next one.
struct Poller {
    /// The backends as last answered.
    known: BTreeMap<IpAddr, BackendState>,
    /// The shape the forwarding threads' balancers have.
    shape: Shape,
    /// A reconfiguration this mux refused, so that it is reported once, not every poll.
    refused: Option<Shape>,
}

impl Poller {
    /// Starting from the view the balancers were built from.
    fn new(view: &LbView) -> Self {
        Self {
            known: backends(view),
            shape: shape(view),
            refused: None,
        }
    }

    /// The changes for the forwarding threads from the controller's latest view: a new
    /// balancer when the shape changed and its settings are usable; otherwise the backends'
    /// state changes, applied to the balancer in place (a refused reconfiguration keeps the
    /// current balancer, and backends it does not have are ignored).
    fn next(&mut self, view: LbView) -> Vec<Change> {
        let now = backends(&view);
        let new_shape = shape(&view);
        let mut out = Vec::new();
        if new_shape != self.shape && self.refused.as_ref() != Some(&new_shape) {
            match balancer(&view) {
                Ok(_) => {
                    self.shape = new_shape;
                    self.refused = None;
                    self.known = now;
                    return vec![Change::Replace(Arc::new(view))];
                }
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "reconfigured load balancer not usable; keeping the old one");
                    eprintln!("lb-mux: reconfigured load balancer not usable ({e:#}); keeping the old one");
                    self.refused = Some(new_shape);
                }
            }
        }
        out.extend(diff(&self.known, &now).into_iter().map(Change::Update));
        self.known = now;
        out
    }
}

/// The controller the mux follows (its URL), None while none answers.
type Followed = Arc<std::sync::Mutex<Option<String>>>;

fn lock_followed(f: &Followed) -> std::sync::MutexGuard<'_, Option<String>> {
    f.lock().unwrap_or_else(|p| p.into_inner())
}

/// The latest answer of each controller, written by its thread.
type Latest = Arc<std::sync::Mutex<Option<(Instant, anyhow::Result<LbView>)>>>;

/// A thread asking `controller` for the load balancer every [`POLL`], keeping its latest answer.
fn ask_every_poll(controller: String, path: String) -> Latest {
    let latest: Latest = Arc::default();
    let slot = latest.clone();
    std::thread::spawn(move || loop {
        let started = Instant::now();
        let r = crate::cli::get::<LbView>(&controller, &path);
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), r));
        std::thread::sleep(POLL.saturating_sub(started.elapsed()));
    });
    latest
}

/// What the [`Selector`] makes of one poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pick {
    /// Follow controller `index`. `news`: its latest answer was not taken yet (apply it);
    /// `switched`: another controller than at the last poll (report it).
    Follow {
        index: usize,
        news: bool,
        switched: bool,
    },
    /// No controller answers; `first`: the first poll it is so (report it once).
    Nobody { first: bool },
}

/// Which controller the mux follows, sans-IO: at each poll it is told when each controller
/// last answered (None: its last question failed, or none was answered yet) and picks the
/// first one in order that answered within [`SILENT`].
#[derive(Debug, Default)]
struct Selector {
    /// The controller followed and the time of the answer last taken from it.
    following: Option<(usize, Instant)>,
    silent: bool,
}

impl Selector {
    fn pick(&mut self, now: Instant, answered: &[Option<Instant>]) -> Pick {
        let live = answered.iter().enumerate().find_map(|(i, a)| {
            a.filter(|at| now.saturating_duration_since(*at) < SILENT)
                .map(|at| (i, at))
        });
        match live {
            Some((index, at)) => {
                let switched = self.following.map(|(f, _)| f) != Some(index);
                let news = self.following != Some((index, at));
                self.following = Some((index, at));
                self.silent = false;
                Pick::Follow {
                    index,
                    news,
                    switched,
                }
            }
            None => {
                let first = !self.silent;
                self.silent = true;
                self.following = None;
                Pick::Nobody { first }
            }
        }
    }
}

/// When each controller last answered (None: its last question failed, or none was answered).
fn answered(latest: &[Latest]) -> Vec<Option<Instant>> {
    latest
        .iter()
        .map(
            |l| match l.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                Some((at, Ok(_))) => Some(*at),
                _ => None,
            },
        )
        .collect()
}

/// Controller `i`'s latest answer.
fn view_of(latest: &[Latest], i: usize) -> Option<LbView> {
    match latest[i].lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        Some((_, Ok(v))) => Some(v.clone()),
        _ => None,
    }
}

/// Runs the mux until killed: `threads` forwarding threads (0: one per CPU) in one
/// `PACKET_FANOUT` hash group, so each flow is always handled by the same thread and its flow
/// table; each thread has its own balancer, all fed the same changes.
pub fn run(
    controllers: &[String],
    lb_name: &str,
    interface: &str,
    threads: usize,
) -> anyhow::Result<()> {
    let path = lb_path(lb_name);
    // The first controller in order that answers gives the balancer to start with.
    let mut failures = Vec::new();
    let mut first = None;
    for c in controllers {
        match crate::cli::get::<LbView>(c, &path) {
            Ok(v) => {
                first = Some(v);
                break;
            }
            Err(e) => failures.push(format!("{c}: {e:#}")),
        }
    }
    let view = first.ok_or_else(|| {
        anyhow!(
            "fetching load balancer {lb_name}: no controller answered ({})",
            failures.join("; ")
        )
    })?;
    balancer(&view)?;
    let mut poller = Poller::new(&view);
    warn_ip_forward();
    if view.frontend.is_ipv6() {
        warn_no_ipv6_default_route();
    }
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // The controller the mux follows now, for the stats lines.
    let following_now: Followed = Arc::default();
    // A fanout group id unique on this host for this process.
    let group = (std::process::id() & 0xffff) as u16;
    let (opened_tx, opened_rx) = mpsc::channel::<anyhow::Result<()>>();
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for i in 0..threads {
        let (tx, rx) = mpsc::channel::<Change>();
        senders.push(tx);
        let (view, interface, opened) = (view.clone(), interface.to_string(), opened_tx.clone());
        let followed = following_now.clone();
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
            forward(&mut mux, &rx, i, threads, &followed)
        }));
    }
    for _ in 0..threads {
        opened_rx.recv().context("a forwarding thread ended")??;
    }
    eprintln!(
        "lb-mux: {lb_name} ({}) on {interface}: {} backends, {threads} forwarding thread(s)",
        view.frontend,
        view.backends.len()
    );
    let latest: Vec<Latest> = controllers
        .iter()
        .map(|c| ask_every_poll(c.clone(), path.clone()))
        .collect();
    let controllers = controllers.to_vec();
    let followed = following_now.clone();
    std::thread::spawn(move || {
        let mut selector = Selector::default();
        loop {
            let started = Instant::now();
            match selector.pick(started, &answered(&latest)) {
                Pick::Follow {
                    index,
                    news,
                    switched,
                } => {
                    if switched {
                        *lock_followed(&followed) = Some(controllers[index].clone());
                        eprintln!("lb-mux: following controller {}", controllers[index]);
                        info!(controller = %controllers[index], "following controller");
                    }
                    if let Some(view) = view_of(&latest, index).filter(|_| news) {
                        for c in poller.next(view) {
                            for tx in &senders {
                                if tx.send(c.clone()).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
                Pick::Nobody { first } => {
                    if first {
                        eprintln!(
                            "lb-mux: no controller answers ({}); keeping the last backend states",
                            controllers.join(", ")
                        );
                        warn!("no controller answers; keeping the last backend states");
                        *lock_followed(&followed) = None;
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
    followed: &Followed,
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
        let controller = lock_followed(followed)
            .clone()
            .unwrap_or_else(|| "none".to_string());
        println!(
            "{name}: rx {} forwarded {} local {} malformed {} no_backend {} no_neighbour {} tx_errors {} ring_drops {} controller {controller}",
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

    #[test]
    fn the_selector_follows_the_first_controller_that_answers() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut s = Selector::default();
        let follow = |index, news, switched| Pick::Follow {
            index,
            news,
            switched,
        };
        // Both answer: the first; its answer is news once.
        assert_eq!(
            s.pick(ms(10), &[Some(ms(5)), Some(ms(6))]),
            follow(0, true, true)
        );
        assert_eq!(
            s.pick(ms(30), &[Some(ms(5)), Some(ms(26))]),
            follow(0, false, false)
        );
        assert_eq!(
            s.pick(ms(50), &[Some(ms(45)), Some(ms(46))]),
            follow(0, true, false)
        );
        // The first refuses (its last question failed): the second at once.
        assert_eq!(s.pick(ms(70), &[None, Some(ms(66))]), follow(1, true, true));
        // The first is back: followed again.
        assert_eq!(
            s.pick(ms(90), &[Some(ms(85)), Some(ms(86))]),
            follow(0, true, true)
        );
        // The first goes silent (its questions hang): still followed within SILENT, not after.
        let silent = ms(85) + SILENT;
        assert_eq!(
            s.pick(
                silent - Duration::from_millis(1),
                &[Some(ms(85)), Some(silent - Duration::from_millis(5))]
            ),
            follow(0, false, false)
        );
        assert_eq!(
            s.pick(
                silent,
                &[Some(ms(85)), Some(silent - Duration::from_millis(5))]
            ),
            follow(1, true, true)
        );
        // Nobody: reported once; then the first to answer again is news.
        let later = silent + SILENT * 2;
        assert_eq!(
            s.pick(later, &[None, Some(silent)]),
            Pick::Nobody { first: true }
        );
        assert_eq!(s.pick(later, &[None, None]), Pick::Nobody { first: false });
        assert_eq!(s.pick(later, &[None, Some(later)]), follow(1, true, true));
    }
    use lb::Mode;
    use serde_json::{json, Value};

    /// A view as the controller sends it (`GET /v1/lb/NAME`), read as the mux reads it.
    fn lbv(v: &Value) -> LbView {
        crate::cli::decode(&v.to_string()).unwrap()
    }

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
                 {"address": "10.1.2.10", "health": h1, "adminState": "none", "role": r1, "priority": 1, "flows": 0,
                  "lastProbe": {"ok": true, "detail": "HTTP 200 in 0.261 ms", "latencyMs": 0.260737, "ageS": 0.02},
                  "probesSent": 3, "probesFailed": 0},
                 {"address": "10.1.2.11", "health": h2, "adminState": admin2, "role": r2, "priority": 2, "flows": 0,
                  "lastProbe": null, "probesSent": 0, "probesFailed": 0}],
               "newFlows": 0, "movedFlows": 0, "droppedFlows": 0, "flowEvictions": 0,
               "flowTableCapacity": 1024,
               "settings": {"distribution": "two-tuple", "symmetric": false, "preempt": true,
                 "noHealthyBackends": "drop", "maglevTableSize": 65537, "maxFlows": 1000,
                 "idleTcpS": 240, "idleUdpS": 30}})
    }

    const NVA1: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 10));
    const NVA2: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 11));

    #[test]
    fn builds_the_controllers_balancer() {
        let b = balancer(&lbv(&view("up", "up", "none"))).unwrap();
        assert_eq!(b.config().mode, Mode::ActivePassive);
        assert_eq!(b.config().distribution, lb::Distribution::TwoTuple);
        assert!(b.config().preempt);
        assert_eq!(b.config().max_flows, 1000);
        assert_eq!(b.active(), Some(NVA1));
        assert_eq!(b.backends()[1].priority, 2);
    }

    #[test]
    fn diff_and_apply_fail_over() {
        let old = backends(&lbv(&view("up", "up", "none")));
        let new = backends(&lbv(&view("down", "up", "drain")));
        let d = diff(&old, &new);
        assert_eq!(
            d,
            vec![
                Update::Health(NVA1, Health::Down),
                Update::Admin(NVA2, AdminState::Drain)
            ]
        );
        let mut b = balancer(&lbv(&view("up", "up", "none"))).unwrap();
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
        let mut b = balancer(&lbv(&v)).unwrap();
        assert_eq!(b.active(), Some(NVA2));
        // The controller fails back to nva1 after nva2 fails; then nva2 is up again, standby.
        let old = backends(&lbv(&v));
        let mut w = view("up", "down", "none");
        w["backends"][1]["role"] = "standby".into();
        let new = backends(&lbv(&w));
        let d = diff(&old, &new);
        assert_eq!(
            d,
            vec![Update::Health(NVA2, Health::Down), Update::Active(NVA1)]
        );
        apply(&mut b, d);
        assert_eq!(b.active(), Some(NVA1));
        let mut x = view("up", "up", "none");
        x["backends"][1]["role"] = "standby".into();
        apply(&mut b, diff(&new, &backends(&lbv(&x))));
        assert_eq!(b.active(), Some(NVA1));
    }

    #[test]
    fn a_restarted_controller_that_has_not_probed_yet_changes_nothing() {
        let old = backends(&lbv(&view("up", "down", "none")));
        let new = backends(&lbv(&view("unknown", "unknown", "none")));
        assert!(diff(&old, &new).is_empty());
        let back = backends(&lbv(&view("down", "up", "none")));
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
        assert_eq!(shape(&lbv(&a)), shape(&lbv(&view("down", "up", "drain"))));
        let mut b = a.clone();
        b["mode"] = "active-active".into();
        assert_ne!(shape(&lbv(&a)), shape(&lbv(&b)));
        let mut c = a.clone();
        c["backends"][1]["priority"] = 3.into();
        assert_ne!(shape(&lbv(&a)), shape(&lbv(&c)));
        let mut d = a.clone();
        d["settings"]["maxFlows"] = 5.into();
        assert_ne!(shape(&lbv(&a)), shape(&lbv(&d)));
    }

    #[test]
    fn rejects_bad_views() {
        let decode = |v: Value| crate::cli::decode::<LbView>(&v.to_string());
        let mut weird = view("up", "up", "none");
        weird["mode"] = "weird".into();
        assert!(decode(weird).is_err());
        let mut nope = view("up", "up", "none");
        nope["backends"][0]["address"] = "nope".into();
        assert!(decode(nope).is_err());
        // A field this mux does not know, at the top and in a backend; one renamed.
        let mut unknown = view("up", "up", "none");
        unknown["muxes"] = json!(["10.1.0.101"]);
        assert!(decode(unknown).is_err());
        let mut unknown = view("up", "up", "none");
        unknown["backends"][1]["weight"] = 1.into();
        assert!(decode(unknown).is_err());
        let mut renamed = view("up", "up", "none");
        let s = renamed.as_object_mut().unwrap().remove("settings").unwrap();
        renamed["balancerSettings"] = s;
        assert!(decode(renamed).is_err());
        let mut role = view("up", "up", "none");
        role["backends"][0]["role"] = "primary".into();
        assert!(decode(role).is_err());
    }

    #[test]
    fn refuses_settings_the_balancer_would_hang_on() {
        for (key, bad) in [
            ("maglevTableSize", json!(65536)),
            ("maglevTableSize", json!(4_294_967_291u64)),
            ("maglevTableSize", json!(2)),
            ("maxFlows", json!(0)),
            ("maxFlows", json!(u64::MAX)),
            ("idleTcpS", json!(0)),
        ] {
            let mut v = view("up", "up", "none");
            v["settings"][key] = bad.clone();
            let e = balancer(&lbv(&v))
                .err()
                .unwrap_or_else(|| panic!("{key} {bad}"));
            assert!(format!("{e:#}").contains(key), "{e:#}");
        }
    }

    #[test]
    fn a_refused_reconfiguration_keeps_the_balancer_and_follows_health() {
        let mut p = Poller::new(&lbv(&view("up", "up", "none")));
        // The controller's LB gets a table size that is not prime, and nva1 goes down.
        let mut bad = view("down", "up", "none");
        bad["settings"]["maglevTableSize"] = 65536.into();
        let changes = p.next(lbv(&bad));
        assert!(
            changes.iter().all(|c| matches!(c, Change::Update(_))),
            "{changes:?}"
        );
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::Update(Update::Health(NVA1, Health::Down)))));
        // Polled again: refused once, nothing new.
        assert!(p.next(lbv(&bad)).is_empty());
        // A usable reconfiguration replaces the balancer.
        let mut good = view("down", "up", "none");
        good["settings"]["maglevTableSize"] = 251.into();
        let changes = p.next(lbv(&good));
        assert!(
            matches!(changes.as_slice(), [Change::Replace(_)]),
            "{changes:?}"
        );
        assert!(p.next(lbv(&good)).is_empty());
    }
}
