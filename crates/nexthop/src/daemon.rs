//! `nexthop run`: loads the config, starts what it declares, serves the API, and applies an
//! edited config on SIGHUP or `POST /v1/reload`.
//!
//! ```text
//!  config file ──load/validate──> specs ──start──> instances (RIB task + peers each)
//!        ^                                            ^
//!  SIGHUP / POST /v1/reload ──reload loop (1x)────────┘ reconfigure by instance name
//!  API (1x) ──queries──> instances
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, RwLock};
use tracing::{info, warn};

use crate::api::{self, ApiState, ReloadRequest};
use crate::instance::{self, InstanceHandle, InstanceSpec, Instances, PeerSpec, Query, Sinks};
use crate::lbrun::{self, LoadBalancers};

/// Instance names as the reference cloud shows them.
pub fn instance_name(i: usize) -> String {
    format!("RouteServiceRole_IN_{i}")
}

/// Turns a validated config into instance specs (one per route server address).
pub fn specs_from_config(cfg: &config::Config) -> Vec<InstanceSpec> {
    let Some(rs) = &cfg.route_server else {
        return Vec::new();
    };
    let vnet = rs
        .virtual_network
        .as_deref()
        .and_then(|name| cfg.virtual_network(name));
    let originated: Vec<bgp::wire::Ipv4Prefix> =
        vnet.map(|v| v.address_space.clone()).unwrap_or_default();
    let originated6: Vec<bgp::wire::Ipv6Prefix> =
        vnet.map(|v| v.address_space6.clone()).unwrap_or_default();
    let peers: Vec<PeerSpec> = rs
        .peers
        .iter()
        .map(|p| PeerSpec {
            name: p.name.clone(),
            address: p.address,
            asn: p.asn,
            max_routes: p.max_routes,
            hold_time: p.hold_time,
            port: p.port,
            password: p.password.as_ref().map(|k| k.expose().as_bytes().to_vec()),
            ttl_security: p.ttl_security,
            limits: routeserver::PathLimits {
                max_as_path_length: p.max_as_path_length,
                max_communities: p.max_communities,
                max_unknown_attribute_octets: p.max_unknown_attribute_octets,
            },
            bfd: p.bfd.map(|b| {
                bfd::Config::new(
                    std::time::Duration::from_millis(u64::from(b.interval_ms)),
                    b.multiplier,
                )
            }),
        })
        .collect();
    let feed_fabric = crate::fabricrun::uses_bgp_routes(cfg);
    rs.instances
        .iter()
        .enumerate()
        .map(|(i, addr)| InstanceSpec {
            name: instance_name(i),
            address: *addr,
            address6: rs.instances_ipv6.get(i).copied(),
            port: rs.port,
            asn: rs.asn,
            branch_to_branch: rs.branch_to_branch,
            originated: Vec::clone(&originated),
            originated6: Vec::clone(&originated6),
            peers: peers.clone(),
            feed_fabric,
            graceful_restart: rs
                .graceful_restart
                .enabled
                .then_some(rs.graceful_restart.restart_time_s),
        })
        .collect()
}

/// Which of the config's route server instances this process runs (`nexthop run --instance`):
/// all of them, or those at the given addresses. One config file then serves every controller
/// host, each running its own instance.
#[derive(Clone, Debug, Default)]
pub struct Only(pub Vec<std::net::Ipv4Addr>);

impl Only {
    /// The specs of the instances selected, named by their place in the config (the instance
    /// at the second address is `RouteServiceRole_IN_1` whichever process runs it). An
    /// address the config does not list is an error.
    pub fn specs(&self, cfg: &config::Config) -> anyhow::Result<Vec<InstanceSpec>> {
        let all = specs_from_config(cfg);
        if self.0.is_empty() {
            return Ok(all);
        }
        for a in &self.0 {
            if !all.iter().any(|s| s.address == *a) {
                let listed: Vec<String> = all.iter().map(|s| s.address.to_string()).collect();
                anyhow::bail!(
                    "--instance {a}: not one of route_server.instances ({})",
                    if listed.is_empty() {
                        "none".to_string()
                    } else {
                        listed.join(", ")
                    }
                );
            }
        }
        Ok(all
            .into_iter()
            .filter(|s| self.0.contains(&s.address))
            .collect())
    }
}

/// A running set of instances, load balancers and the API.
pub struct Running {
    pub instances: Instances,
    /// Health changes, failovers, sessions (`GET /v1/events`).
    pub events: crate::events::EventLog,
    pub fabric: crate::fabricrun::FabricTx,
    /// The MRT update log, if `[mrt] updates_dir` is set.
    pub mrt: Option<crate::mrtlog::MrtLog>,
    /// The BMP feed, if `[[bmp]]` collectors are configured.
    pub bmp: Option<crate::bmprun::BmpFeed>,
    pub lbs: LoadBalancers,
    /// The load balancers as configured, with their probers (dropping one stops its probes).
    lb_specs: Arc<tokio::sync::Mutex<Vec<(config::LoadBalancer, lbrun::Probing)>>>,
    /// `lb set-admin` overrides, applied to every load balancer that (re)starts.
    admin: Arc<std::sync::Mutex<crate::adminstore::AdminStore>>,
    pub api: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Where a new instance's news goes: the same places as the running ones'.
    fn sinks(&self) -> Sinks {
        Sinks {
            fabric: Some(self.fabric.clone()),
            mrt: self.mrt.clone(),
            bmp: self.bmp.clone(),
            events: Some(self.events.clone()),
        }
    }
}

/// Starts every instance, every load balancer and the API. Nothing is left running if any part
/// fails to start.
pub async fn start(
    cfg: &config::Config,
    only: &Only,
    api_addr: SocketAddr,
    auth: crate::token::ApiAuth,
    reload: Option<mpsc::Sender<ReloadRequest>>,
) -> anyhow::Result<Running> {
    auth.check_listen(api_addr)?;
    let specs = only.specs(cfg)?;
    let admin = Arc::new(std::sync::Mutex::new(crate::adminstore::AdminStore::open(
        cfg.state_dir.as_deref(),
    )?));
    let mrt = crate::mrtlog::MrtLog::start(&cfg.mrt)?;
    let bmp = crate::bmprun::feed(&cfg.bmp);
    let fabric = crate::fabricrun::start(
        crate::fabricrun::topology(cfg),
        cfg.fabric.next_hop_tracking,
    );
    // Every socket is bound before anything starts: a refused address starts nothing.
    let mut bound = Vec::new();
    for s in specs {
        let sock = instance::bind(&s)?;
        bound.push((s, sock));
    }
    let events = crate::events::EventLog::default();
    let sinks = Sinks {
        fabric: Some(fabric.clone()),
        mrt: mrt.clone(),
        bmp: bmp.clone(),
        events: Some(events.clone()),
    };
    let handles: Vec<InstanceHandle> = bound
        .into_iter()
        .map(|(s, sock)| instance::start(s, sock, sinks.clone()))
        .collect();
    let instances: Instances = Arc::new(RwLock::new(handles));
    if let Some(b) = &bmp {
        crate::bmprun::connect(b, &cfg.bmp, instances.clone()).await;
    }
    let mut lb_handles = Vec::new();
    let mut probing = Vec::new();
    for c in cfg.load_balancers.clone() {
        let overrides = lock(&admin).overrides(&c.name);
        let (h, p) =
            lbrun::start_with_probes(&c, Some(fabric.clone()), Some(events.clone()), &overrides);
        lb_handles.push(h);
        probing.push((c, p));
    }
    let lbs: LoadBalancers = Arc::new(RwLock::new(lb_handles));
    let api = match api::serve(
        api_addr,
        ApiState {
            auth: Arc::new(auth),
            admin: admin.clone(),
            instances: instances.clone(),
            lbs: lbs.clone(),
            fabric: fabric.clone(),
            reload,
            long_polls: Arc::new(tokio::sync::Semaphore::new(api::MAX_LONG_POLLS)),
            events: events.clone(),
        },
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            stop_all(&instances.read().await).await;
            return Err(e);
        }
    };
    Ok(Running {
        instances,
        events,
        fabric,
        mrt,
        bmp,
        lbs,
        lb_specs: Arc::new(tokio::sync::Mutex::new(probing)),
        admin,
        api,
    })
}

/// Applies the load balancers of a new config: unchanged ones keep running (and their flows);
/// changed ones restart; removed ones stop.
pub async fn apply_lbs(running: &Running, new: Vec<config::LoadBalancer>) -> Vec<String> {
    let mut specs = running.lb_specs.lock().await;
    let mut handles = running.lbs.write().await;
    let mut summary = Vec::new();
    let mut kept_specs = Vec::new();
    let mut kept_handles = Vec::new();
    for c in new {
        match specs.iter().position(|(old, _)| *old == c) {
            Some(i) => {
                kept_specs.push(specs.remove(i));
                if let Some(j) = handles.iter().position(|h| h.name == c.name) {
                    kept_handles.push(handles.remove(j));
                }
            }
            None => {
                summary.push(format!("load balancer {} (re)started", c.name));
                let overrides = lock(&running.admin).overrides(&c.name);
                let (h, p) = lbrun::start_with_probes(
                    &c,
                    Some(running.fabric.clone()),
                    Some(running.events.clone()),
                    &overrides,
                );
                kept_handles.push(h);
                kept_specs.push((c, p));
            }
        }
    }
    for (old, _) in specs.drain(..) {
        if !kept_specs.iter().any(|(c, _)| c.name == old.name) {
            summary.push(format!("load balancer {} stopped", old.name));
        }
    }
    *specs = kept_specs;
    *handles = kept_handles;
    summary
}

pub async fn stop_all(handles: &[InstanceHandle]) {
    for h in handles {
        h.ask(Query::Shutdown).await;
    }
}

/// What a reload does to one running instance.
enum Step {
    /// Reconfigure in place; with a socket when its port moved.
    Keep(InstanceHandle, InstanceSpec, Option<instance::Sockets>),
    Start(InstanceSpec, instance::Sockets),
}

/// Applies new specs, all or nothing: instances matched by name and address are reconfigured
/// in place (untouched peers keep their sessions); new ones start; gone ones stop. Everything
/// that can fail (binding a new address or port) is done first; if any of it fails, nothing
/// changes and the error says why.
pub async fn apply(
    instances: &Instances,
    specs: Vec<InstanceSpec>,
    sinks: Sinks,
) -> anyhow::Result<String> {
    let mut current = instances.write().await;
    let mut steps = Vec::new();
    for s in specs {
        match current
            .iter()
            .find(|h| h.name == s.name && h.address == s.address)
        {
            Some(h) if h.port == s.port && h.address6 == s.address6 => {
                steps.push(Step::Keep(h.clone(), s, None))
            }
            Some(h) if h.port == s.port => {
                // Only the IPv6 address changed: the IPv4 socket stays.
                let sock = instance::bind_ipv6(&s)
                    .map_err(|e| anyhow::anyhow!("config not applied, nothing changed: {e:#}"))?;
                steps.push(Step::Keep(h.clone(), s, Some(sock)));
            }
            Some(h) => {
                let sock = instance::bind(&s)
                    .map_err(|e| anyhow::anyhow!("config not applied, nothing changed: {e:#}"))?;
                steps.push(Step::Keep(h.clone(), s, Some(sock)));
            }
            None => {
                let sock = instance::bind(&s)
                    .map_err(|e| anyhow::anyhow!("config not applied, nothing changed: {e:#}"))?;
                steps.push(Step::Start(s, sock));
            }
        }
    }
    // Nothing below can fail.
    let mut summary = Vec::new();
    let kept: Vec<&InstanceHandle> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Keep(h, ..) => Some(h),
            Step::Start(..) => None,
        })
        .collect();
    let gone: Vec<InstanceHandle> = current
        .iter()
        .filter(|h| {
            !kept
                .iter()
                .any(|k| k.name == h.name && k.address == h.address)
        })
        .cloned()
        .collect();
    for g in &gone {
        summary.push(format!("stopped {} on {}", g.name, g.address));
        g.ask(Query::Shutdown).await;
    }
    let mut next = Vec::new();
    for step in steps {
        match step {
            Step::Keep(mut h, s, sock) => {
                h.port = s.port;
                h.address6 = s.address6;
                h.ask(|tx| Query::Reconfigure(Box::new(s), sock, tx)).await;
                next.push(h);
            }
            Step::Start(s, sock) => {
                summary.push(format!("started {} on {}", s.name, s.address));
                next.push(instance::start(s, sock, sinks.clone()));
            }
        }
    }
    *current = next;
    Ok(if summary.is_empty() {
        "applied".into()
    } else {
        summary.join("; ")
    })
}

/// The admin store, whatever a panicking holder left (it is only ever replaced whole).
pub fn lock(
    m: &std::sync::Mutex<crate::adminstore::AdminStore>,
) -> std::sync::MutexGuard<'_, crate::adminstore::AdminStore> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn load(path: &Path) -> anyhow::Result<config::Config> {
    config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// What `nexthop run` takes besides the config file.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// `--instance ADDR` (repeatable): run only these instances.
    pub only: Only,
    /// `--api-listen ADDR:PORT`: overrides `[api] listen`.
    pub api_listen: Option<SocketAddr>,
}

impl RunOptions {
    /// Loads the config with the command line's overrides applied.
    pub fn load(&self, path: &Path) -> anyhow::Result<config::Config> {
        let mut cfg = load(path)?;
        if let Some(a) = self.api_listen {
            cfg.api.listen = a;
        }
        Ok(cfg)
    }
}

/// `nexthop run --config FILE [--instance ADDR]... [--api-listen ADDR:PORT]`.
pub fn run(path: PathBuf, opts: RunOptions) -> anyhow::Result<()> {
    let cfg = opts.load(&path)?;
    opts.only.specs(&cfg)?;
    let open_files = match linux::raise_open_files_limit() {
        Ok((before, now)) => {
            info!(before, now, "open files limit (RLIMIT_NOFILE)");
            now
        }
        Err(e) => {
            warn!(error = %e, "cannot raise the open files limit; peers beyond it will be refused");
            0
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
        let auth = crate::token::ApiAuth::load(&cfg.api)?;
        let running = start(&cfg, &opts.only, cfg.api.listen, auth, Some(reload_tx)).await?;
        info!(api = %cfg.api.listen, "nexthop running");
        eprintln!(
            "nexthop: running {} (API on http://{}; open files limit {open_files})",
            path.display(),
            cfg.api.listen
        );
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("SIGHUP handler")?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("SIGTERM handler")?;
        loop {
            let reply = tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = hup.recv() => None,
                r = reload_rx.recv() => r,
            };
            let result = match opts.load(&path).and_then(|c| opts.only.specs(&c).map(|s| (c, s))) {
                Ok((new, _)) if new.state_dir != cfg.state_dir => Err(format!(
                    "config not applied, nothing changed: {}: state_dir changed; restart nexthop to move it",
                    path.display()
                )),
                Ok((new, _)) if new.api != cfg.api => Err(format!(
                    "config not applied, nothing changed: {}: [api] changed (listen or tokens); restart nexthop to apply it",
                    path.display()
                )),
                Ok((new, _)) if new.mrt != cfg.mrt || new.bmp != cfg.bmp => Err(format!(
                    "config not applied, nothing changed: {}: [mrt] or [[bmp]] changed; restart nexthop to apply it",
                    path.display()
                )),
                Ok((new, specs)) => match apply(
                    &running.instances,
                    specs,
                    running.sinks(),
                )
                .await
                {
                    Ok(m) => {
                        let _ = running
                            .fabric
                            .send(crate::fabricrun::FabricMsg::Reconfigure(
                                crate::fabricrun::topology(&new),
                                new.fabric.next_hop_tracking,
                            ));
                        let mut parts = vec![m];
                        parts.extend(apply_lbs(&running, new.load_balancers.clone()).await);
                        Ok(parts.join("; "))
                    }
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(format!("config not applied, the running one stays: {e:#}")),
            };
            match &result {
                Ok(m) => info!("reloaded: {m}"),
                Err(e) => warn!("{e}"),
            }
            if let Some(r) = reply {
                let _ = r.send(result);
            }
        }
        // The API goes first: an agent with a poll in flight must see the controller go away
        // (and keep its routes, fail static), not the withdrawals of the closing sessions.
        running.api.abort();
        stop_all(&running.instances.read().await).await;
        Ok(())
    })
}
