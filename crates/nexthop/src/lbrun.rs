//! Load balancers at run time: one task per `[[load_balancer]]` owns its [`Balancer`], takes
//! the probe results of its backends and answers the API.
//!
//! ```text
//!  probe tasks (1x per backend, crate `probe`) ──ProbeReport──> LB task (1x per LB, owns Balancer)
//!  API / CLI ──LbQuery (oneshot reply)──────────────────────────> ┘
//!  data planes ──select(flow)──────────────────────────────────> ┘   (sim today, Linux later)
//! ```
//!
//! Every health change is logged once with the probe evidence that caused it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lb::{AdminState, AnyFlow, Balancer, Distribution, LbConfig, Mode, NoHealthy};
use tokio::sync::{mpsc, oneshot, RwLock};
use tracing::{info, warn};

/// One probe outcome, as the LB task needs it.
#[derive(Clone, Debug)]
pub struct ProbeReport {
    pub target: IpAddr,
    pub ok: bool,
    pub latency: Duration,
    pub detail: String,
}

/// A load balancer as the API shows it (SPEC §6 `lb show`): the contract's types.
pub use api_types::{BackendView, LastProbe, LbView};

/// Requests to an LB task.
pub enum LbQuery {
    Show(oneshot::Sender<LbView>),
    SetAdmin(IpAddr, AdminState, oneshot::Sender<Result<(), String>>),
    /// Where a flow would go, without recording it (trace).
    Predict(AnyFlow, oneshot::Sender<Option<IpAddr>>),
    /// Many flows at once (the sim data plane).
    SelectMany(Vec<AnyFlow>, oneshot::Sender<Vec<Option<IpAddr>>>),
}

/// What the daemon keeps of a running LB.
#[derive(Clone)]
pub struct LbHandle {
    pub name: String,
    pub frontend: IpAddr,
    queries: mpsc::Sender<LbQuery>,
}

impl LbHandle {
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> LbQuery) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.queries.send(make(tx)).await.ok()?;
        rx.await.ok()
    }
}

pub type LoadBalancers = Arc<RwLock<Vec<LbHandle>>>;

/// Builds the core configuration from the file's.
pub fn lb_config(c: &config::LoadBalancer) -> (LbConfig, Vec<(IpAddr, u32, AdminState)>) {
    let mode = match c.mode {
        config::Mode::ActivePassive => Mode::ActivePassive,
        config::Mode::ActiveActive => Mode::ActiveActive,
    };
    let mut l = LbConfig::new(&c.name, c.frontend, mode);
    l.distribution = match c.distribution {
        config::Distribution::FiveTuple => Distribution::FiveTuple,
        config::Distribution::TwoTuple => Distribution::TwoTuple,
        config::Distribution::ThreeTuple => Distribution::ThreeTuple,
    };
    l.symmetric = c.symmetric;
    l.preempt = c.preempt;
    l.no_healthy = match c.no_healthy_backends {
        config::NoHealthyBackends::Drop => NoHealthy::Drop,
        config::NoHealthyBackends::All => NoHealthy::All,
    };
    l.table_size = c.maglev_table_size;
    l.rise = c.probe.rise;
    l.fall = c.probe.fall;
    l.max_flows = c.max_flows as usize;
    l.idle_tcp_s = c.flow_idle_timeout_tcp_s;
    l.idle_udp_s = c.flow_idle_timeout_udp_s;
    let backends = c
        .backends
        .iter()
        .map(|b| (b.address, b.priority, admin(b.admin_state)))
        .collect();
    (l, backends)
}

pub fn admin(a: config::AdminState) -> AdminState {
    match a {
        config::AdminState::Up => AdminState::Up,
        config::AdminState::Down => AdminState::Down,
        config::AdminState::Drain => AdminState::Drain,
        config::AdminState::None => AdminState::None,
    }
}

struct BackendStats {
    sent: u64,
    failed: u64,
    last: Option<(ProbeReport, Instant)>,
}

/// Starts the task of one LB. Probe results arrive on the returned sender.
pub fn start(
    cfg: LbConfig,
    backends: Vec<(IpAddr, u32, AdminState)>,
    fabric: Option<crate::fabricrun::FabricTx>,
    events: Option<crate::events::EventLog>,
) -> (LbHandle, mpsc::Sender<ProbeReport>) {
    let (qtx, mut qrx) = mpsc::channel::<LbQuery>(256);
    let (ptx, mut prx) = mpsc::channel::<ProbeReport>(1024);
    let handle = LbHandle {
        name: cfg.name.clone(),
        frontend: cfg.frontend,
        queries: qtx,
    };
    let span = tracing::info_span!("lb", name = %cfg.name);
    let mut balancer = Balancer::new(cfg, &backends);
    let mut counted = FlowCounts::default();
    let started = Instant::now();
    let mut stats: Vec<BackendStats> = balancer
        .backends()
        .iter()
        .map(|_| BackendStats {
            sent: 0,
            failed: 0,
            last: None,
        })
        .collect();
    let task = async move {
        let now_s = || started.elapsed().as_secs() as u32;
        let mut last_healthy: Option<bool> = None;
        // (the active backend, whether the first election happened)
        let mut active = (balancer.active(), false);
        loop {
            tokio::select! {
                Some(p) = prx.recv() => {
                    let Some(i) = balancer.index_of(p.target) else { continue };
                    stats[i].sent += 1;
                    stats[i].failed += u64::from(!p.ok);
                    if let Some(ch) = balancer.record_probe(p.target, p.ok) {
                        let now_active = balancer.active().map(|a| a.to_string()).unwrap_or_else(|| "none".into());
                        if ch.to == lb::Health::Down {
                            warn!(backend = %ch.backend, from = %ch.from, to = %ch.to, evidence = %p.detail, active = %now_active, "backend health changed");
                        } else {
                            info!(backend = %ch.backend, from = %ch.from, to = %ch.to, evidence = %p.detail, active = %now_active, "backend health changed");
                        }
                        if let Some(log) = &events {
                            log.push(api_types::Event {
                                lb: Some(balancer.config().name.clone()),
                                backend: Some(ch.backend),
                                from: Some(ch.from.to_string()),
                                to: Some(ch.to.to_string()),
                                ..crate::events::event(
                                    api_types::EventKind::Health,
                                    format!("backend {} {} -> {} ({})", ch.backend, ch.from, ch.to, p.detail),
                                )
                            });
                        }
                    }
                    note_failover(&balancer, &mut active, events.as_ref(), "after a health change");
                    stats[i].last = Some((p, Instant::now()));
                    // Next hop tracking (fabric): whether any backend takes new flows.
                    let healthy = (0..balancer.backends().len()).any(|i| matches!(balancer.role(i), lb::Role::Active | lb::Role::Serving));
                    if last_healthy != Some(healthy) {
                        last_healthy = Some(healthy);
                        if let Some(f) = &fabric {
                            let _ = f.send(crate::fabricrun::FabricMsg::LbHealth { lb: balancer.config().name.clone(), healthy });
                        }
                    }
                }
                q = qrx.recv() => match q {
                    None => return,
                    Some(LbQuery::Show(tx)) => {
                        let now = now_s();
                        let flows = counted.get(&balancer, now);
                        let _ = tx.send(view(&balancer, &stats, flows));
                    }
                    Some(LbQuery::SetAdmin(addr, st, tx)) => {
                        let r = balancer.set_admin(addr, st).map_err(|e| e.to_string());
                        if r.is_ok() { info!(backend = %addr, state = %st, "admin state set"); }
                        let _ = tx.send(r);
                        note_failover(&balancer, &mut active, events.as_ref(), &format!("after admin state {st} on {addr}"));
                    }
                    Some(LbQuery::Predict(flow, tx)) => {
                        let _ = tx.send(balancer.predict_any(&flow, now_s()));
                    }
                    Some(LbQuery::SelectMany(flows, tx)) => {
                        let now = now_s();
                        let _ = tx.send(flows.iter().map(|f| balancer.select_any(f, now)).collect());
                    }
                },
            }
        }
    };
    tokio::spawn(tracing::Instrument::instrument(task, span));
    (handle, ptx)
}

/// Logs a change of the active backend (active-passive) as a failover event.
fn note_failover(
    b: &Balancer,
    (active, elected): &mut (Option<IpAddr>, bool),
    events: Option<&crate::events::EventLog>,
    why: &str,
) {
    let now = b.active();
    if now == *active || b.config().mode != Mode::ActivePassive {
        *active = now;
        return;
    }
    let name = |a: Option<IpAddr>| a.map_or_else(|| "none".to_string(), |a| a.to_string());
    let (from, to) = (name(*active), name(now));
    *active = now;
    // The first election (none -> the preferred backend, at start) is not a failover; a
    // backend taking over after all were down is.
    if !std::mem::replace(elected, true) && from == "none" {
        return;
    }
    warn!(lb = %b.config().name, %from, %to, "failover: active backend changed {why}");
    if let Some(log) = events {
        log.push(api_types::Event {
            lb: Some(b.config().name.clone()),
            from: Some(from.clone()),
            to: Some(to.clone()),
            ..crate::events::event(
                api_types::EventKind::Failover,
                format!("active backend {from} -> {to} ({why})"),
            )
        });
    }
}

/// Live flows per backend, for the view: counting walks the whole flow table (24 MB by
/// default), and a data plane polls the view every 20 ms, so a count is reused while no flow was
/// added or evicted within the same second.
#[derive(Default)]
struct FlowCounts {
    key: Option<(u64, u64, u32)>,
    counts: Vec<u64>,
}

impl FlowCounts {
    fn get(&mut self, b: &Balancer, now: u32) -> &[u64] {
        let key = (
            b.stats.new_flows + b.stats.moved_flows,
            b.flow_stats().evictions,
            now,
        );
        if self.key != Some(key) {
            self.counts = b.flows_per_backend(now);
            self.key = Some(key);
        }
        &self.counts
    }
}

fn view(b: &Balancer, stats: &[BackendStats], flows: &[u64]) -> LbView {
    use crate::contract;
    let cfg = b.config();
    LbView {
        name: cfg.name.clone(),
        frontend: cfg.frontend,
        mode: contract::mode(cfg.mode),
        backends: b
            .backends()
            .iter()
            .enumerate()
            .map(|(i, x)| BackendView {
                address: x.address,
                health: contract::health(x.health),
                admin_state: contract::admin_state(x.admin),
                role: contract::role(b.role(i)),
                priority: x.priority,
                flows: flows.get(i).copied().unwrap_or(0),
                last_probe: stats[i].last.as_ref().map(|(p, at)| LastProbe {
                    ok: p.ok,
                    detail: p.detail.clone(),
                    latency_ms: p.latency.as_secs_f64() * 1000.0,
                    age_s: at.elapsed().as_secs_f64(),
                }),
                probes_sent: stats[i].sent,
                probes_failed: stats[i].failed,
            })
            .collect(),
        new_flows: b.stats.new_flows,
        moved_flows: b.stats.moved_flows,
        dropped_flows: b.stats.dropped_flows,
        flow_evictions: b.flow_stats().evictions,
        flow_table_capacity: b.flow_capacity() as u64,
        settings: contract::settings(cfg),
    }
}

/// The probes of one load balancer: dropping it stops them.
pub struct Probing {
    _prober: probe::Prober,
    forward: tokio::task::JoinHandle<()>,
}

impl Drop for Probing {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

/// Starts a load balancer from its config and the probes of its backends.
pub fn start_with_probes(
    c: &config::LoadBalancer,
    fabric: Option<crate::fabricrun::FabricTx>,
    events: Option<crate::events::EventLog>,
    overrides: &std::collections::BTreeMap<IpAddr, api_types::AdminState>,
) -> (LbHandle, Probing) {
    let (cfg, mut backends) = lb_config(c);
    // `lb set-admin` outlives restarts and reloads (crate::adminstore).
    for (addr, _, admin) in backends.iter_mut() {
        if let Some(st) = overrides.get(addr) {
            *admin = crate::contract::lb_admin_state(*st);
        }
    }
    let targets: Vec<IpAddr> = backends.iter().map(|(a, _, _)| *a).collect();
    let (handle, reports) = start(cfg, backends, fabric, events);
    let spec = probe::ProbeSpec {
        protocol: match c.probe.protocol {
            config::ProbeProtocol::Tcp => probe::Protocol::Tcp,
            config::ProbeProtocol::Http => probe::Protocol::Http,
            config::ProbeProtocol::Https => probe::Protocol::Https,
        },
        port: c.probe.port,
        path: c.probe.path.clone(),
        interval: Duration::from_millis(u64::from(c.probe.interval_ms)),
        timeout: Duration::from_millis(u64::from(c.probe.timeout_ms)),
        verify_tls: c.probe.verify_tls,
        source: None,
    };
    let (tx, mut rx) = mpsc::channel::<probe::ProbeResult>(1024);
    let prober = probe::spawn(spec, targets, tx);
    let forward = tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            let report = ProbeReport {
                target: r.target,
                ok: r.ok,
                latency: r.latency,
                detail: r.detail,
            };
            if reports.send(report).await.is_err() {
                return;
            }
        }
    });
    (
        handle,
        Probing {
            _prober: prober,
            forward,
        },
    )
}
