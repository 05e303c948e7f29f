//! The REST API (SPEC §6) and `/metrics` in Prometheus text.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/v1/peers` | peers per instance |
//! | GET | `/v1/rib` | the Loc-RIB per instance: ECMP paths and forwarding next hops |
//! | GET | `/v1/routes/learned?peer=NAME` | the peer's learned routes per instance |
//! | GET | `/v1/routes/advertised?peer=NAME` | what each instance advertises to the peer |
//! | GET | `/v1/lb` | the load balancers: name and frontend |
//! | GET | `/v1/lb/NAME` | a load balancer: backends with health, admin state, role, last probe, flows |
//! | POST | `/v1/lb/NAME/admin?backend=ADDR&state=up\|down\|drain\|none` | set a backend's admin state |
//! | GET | `/v1/effective-routes?nic=NAME[&since=V[&wait=S]]` | the NIC's effective routes (`{"value": [...], "version": N}`); with `since`, only those changed after V; with `wait` (seconds, at most 60), held until something changed (long poll) |
//! | GET | `/v1/trace?nic=NAME&dst=IP[&proto=tcp\|udp\|icmp&sport=N&dport=N]` | where that flow goes, and why |
//! | POST | `/v1/reload` | re-read the config file and apply it |
//! | GET | `/v1/mrt?instance=NAME` | a TABLE_DUMP_V2 (MRT, RFC 6396) snapshot of the instance's Adj-RIBs-In (binary) |
//! | GET | `/v1/openapi.json` | this table as an OpenAPI 3.1 document, schemas from the contract types |
//! | GET | `/metrics` | Prometheus text |
//!
//! Every answer and every request's parameters are a type of the contract crate
//! ([`api_types`]), which the CLI, the agent and the mux read back with the same types. JSON
//! objects are keyed by instance name (`RouteServiceRole_IN_0`, …) in instance order
//! ([`PerInstance`]). Errors are [`ErrorBody`] (`{"error": "..."}`) with a 4xx/5xx status.

use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::extract::{Query as AxQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot};

use api_types::request::MAX_WAIT_S;
use api_types::{
    AdminAnswer, AdminQuery, AdminState, EffectiveRoutes, EffectiveRoutesQuery, ErrorBody,
    EventsQuery, Health, LbListEntry, MrtQuery, PeerQuery, PerInstance, ReloadAnswer, Role,
    RouteState, SessionState, TraceFlow, TraceProto, TraceQuery,
};

use crate::contract;
use crate::instance::{Instances, PeerView, Query, RouteView};
use crate::lbrun::{LbQuery, LoadBalancers};

/// Asks the daemon to reload its config; the reply says what happened.
pub type ReloadRequest = oneshot::Sender<Result<String, String>>;

#[derive(Clone)]
pub struct ApiState {
    /// Who may call what ([`crate::token`]).
    pub auth: std::sync::Arc<crate::token::ApiAuth>,
    /// Where `lb set-admin` is kept ([`crate::adminstore`]).
    pub admin: std::sync::Arc<std::sync::Mutex<crate::adminstore::AdminStore>>,
    pub instances: Instances,
    pub lbs: LoadBalancers,
    pub fabric: crate::fabricrun::FabricTx,
    pub reload: Option<mpsc::Sender<ReloadRequest>>,
    /// Long polls held at once ([`MAX_LONG_POLLS`]).
    pub long_polls: std::sync::Arc<tokio::sync::Semaphore>,
    /// Health changes, failovers, sessions ([`crate::events`]).
    pub events: crate::events::EventLog,
}

/// What an endpoint answers with status 200, for the OpenAPI document.
#[derive(Clone, Copy)]
pub(crate) enum Answer {
    /// `application/json`, this schema.
    Json(fn(&mut schemars::SchemaGenerator) -> schemars::Schema),
    /// Bytes of this media type.
    Bytes(&'static str),
}

/// One endpoint: the router serves exactly these, and `/v1/openapi.json` describes exactly
/// these ([`crate::openapi`]), so the two cannot drift apart.
#[derive(Clone, Copy)]
pub(crate) struct Endpoint {
    pub method: &'static str,
    /// As axum writes it: `/v1/lb/:name`.
    pub path: &'static str,
    pub summary: &'static str,
    /// The query string's type (its fields are the parameters).
    pub query: Option<fn(&mut schemars::SchemaGenerator) -> schemars::Schema>,
    pub answer: Answer,
    handler: fn() -> axum::routing::MethodRouter<ApiState>,
}

fn schema_of<T: schemars::JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    g.subschema_for::<T>()
}

/// Every endpoint of the API, in the order the document lists them.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    use Answer::{Bytes, Json as J};
    let e = |method, path, summary, query, answer, handler| Endpoint {
        method,
        path,
        summary,
        query,
        answer,
        handler,
    };
    vec![
        e("get", "/v1/peers", "BGP peers of every route server instance", None,
          J(schema_of::<PerInstance<Vec<PeerView>>>), || get(peers)),
        e("get", "/v1/rib", "The Loc-RIB of every instance (both families): ECMP paths and forwarding next hops", None,
          J(schema_of::<PerInstance<Vec<api_types::RibEntryView>>>), || get(rib)),
        e("get", "/v1/routes/learned", "Routes learned from a peer, per instance (refused ones with their reason)",
          Some(schema_of::<PeerQuery>), J(schema_of::<PerInstance<Vec<RouteView>>>), || get(learned)),
        e("get", "/v1/routes/advertised", "Routes each instance advertises to a peer",
          Some(schema_of::<PeerQuery>), J(schema_of::<PerInstance<Vec<RouteView>>>), || get(advertised)),
        e("post", "/v1/reload", "Re-read the config file and apply it (admin token)", None,
          J(schema_of::<ReloadAnswer>), || post(reload)),
        e("get", "/v1/mrt", "A TABLE_DUMP_V2 (MRT, RFC 6396) snapshot of an instance's Adj-RIBs-In",
          Some(schema_of::<MrtQuery>), Bytes("application/octet-stream"), || get(mrt)),
        e("get", "/v1/effective-routes", "A NIC's effective routes; with since, only those changed after that version; with wait, a long poll",
          Some(schema_of::<EffectiveRoutesQuery>), J(schema_of::<EffectiveRoutes>), || get(effective_routes)),
        e("get", "/v1/trace", "Where a flow from a NIC goes, and why",
          Some(schema_of::<TraceQuery>), J(schema_of::<api_types::TraceAnswer>), || get(trace)),
        e("get", "/v1/lb", "The load balancers: name and frontend", None,
          J(schema_of::<Vec<LbListEntry>>), || get(lb_list)),
        e("get", "/v1/lb/:name", "A load balancer: backends with health, admin state, role, last probe, flows", None,
          J(schema_of::<api_types::LbView>), || get(lb_show)),
        e("post", "/v1/lb/:name/admin", "Set a backend's admin state (admin token)",
          Some(schema_of::<AdminQuery>), J(schema_of::<AdminAnswer>), || post(lb_admin)),
        e("get", "/v1/events", "Health changes, failovers and BGP sessions, in order; with wait, a long poll",
          Some(schema_of::<EventsQuery>), J(schema_of::<api_types::EventsAnswer>), || get(events)),
        e("get", "/v1/nics", "The NICs whose effective routes the fabric computes", None,
          J(schema_of::<Vec<api_types::NicView>>), || get(nics)),
        e("get", "/v1/openapi.json", "This document (OpenAPI 3.1)", None,
          J(schema_of::<serde_json::Value>), || get(openapi)),
        e("get", "/metrics", "Prometheus text exposition", None,
          Bytes("text/plain; version=0.0.4"), || get(metrics)),
    ]
}

pub fn router(state: ApiState) -> Router {
    endpoints()
        .into_iter()
        .fold(Router::new(), |r, e| r.route(e.path, (e.handler)()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        // The web console: a page with no data in it (it asks the API, with the token the
        // user gives it), so it is served without one.
        .route("/", get(crate::console::page))
        .with_state(state)
}

async fn openapi() -> Response {
    Json(crate::openapi::document()).into_response()
}

/// Connections served at once; beyond, a new one is closed at once (and counted in the log).
pub const MAX_CONNECTIONS: usize = 1024;
/// Long polls held at once; beyond, a long poll is answered at once as a plain question.
pub const MAX_LONG_POLLS: usize = 256;
/// A request's header must arrive within this (slow-header clients hold no connection long).
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// A TLS handshake must finish within this.
pub const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the API on `addr` until the task is dropped: HTTP/1.1, or HTTPS only when the
/// API has a certificate; at most [`MAX_CONNECTIONS`] connections, each request's header within
/// [`HEADER_READ_TIMEOUT`].
pub async fn serve(
    addr: SocketAddr,
    state: ApiState,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("API: cannot listen on {addr}: {e}"))?;
    let tls = state.auth.tls().map(tokio_rustls::TlsAcceptor::from);
    let app = router(state);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        let mut last_warned: Option<tokio::time::Instant> = None;
        let mut warn_once_a_minute = |what: &str| {
            let now = tokio::time::Instant::now();
            if last_warned.is_none_or(|t| now.duration_since(t).as_secs() >= 60) {
                last_warned = Some(now);
                tracing::warn!("API: {what}");
            }
        };
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    warn_once_a_minute(&format!("accept failed: {e}; retrying"));
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                warn_once_a_minute(&format!(
                    "{MAX_CONNECTIONS} connections open: new ones are closed"
                ));
                continue;
            };
            let (app, tls) = (app.clone(), tls.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT);
                match tls {
                    None => {
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                            .await;
                    }
                    Some(acceptor) => {
                        if let Ok(Ok(stream)) =
                            tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                        {
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                                .await;
                        }
                    }
                }
            });
        }
    }))
}

/// Every call passes here first: tokens ([`crate::token::ApiAuth::check`]).
async fn authorize(
    State(state): State<ApiState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match state.auth.check(req.method().as_str(), header) {
        Ok(()) => next.run(req).await,
        Err(why) => {
            let status = match why {
                crate::token::Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
                crate::token::Refusal::ReadOnly => StatusCode::FORBIDDEN,
            };
            let mut r = error(status, why.to_string());
            if status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
            }
            r
        }
    }
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(ErrorBody::new(msg))).into_response()
}

async fn all_peers(state: &ApiState) -> PerInstance<Vec<PeerView>> {
    let instances = state.instances.read().await.clone();
    let mut out = PerInstance::new();
    for i in instances {
        let v = i.ask(Query::Peers).await.unwrap_or_default();
        out.push(i.name.clone(), v);
    }
    out
}

async fn peers(State(state): State<ApiState>) -> Response {
    Json(all_peers(&state).await).into_response()
}

async fn rib(State(state): State<ApiState>) -> Response {
    let instances = state.instances.read().await.clone();
    let mut out = PerInstance::new();
    for i in instances {
        out.push(i.name.clone(), i.ask(Query::Rib).await.unwrap_or_default());
    }
    Json(out).into_response()
}

async fn mrt(State(state): State<ApiState>, AxQuery(q): AxQuery<MrtQuery>) -> Response {
    let instances = state.instances.read().await.clone();
    let Some(name) = q.instance.filter(|n| !n.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing ?instance=NAME");
    };
    let Some(i) = instances.iter().find(|i| i.name == name) else {
        let names: Vec<&str> = instances.iter().map(|i| i.name.as_str()).collect();
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no instance named {name:?} (instances: {})",
                names.join(", ")
            ),
        );
    };
    match i.ask(Query::Mrt).await {
        Some(bytes) => (
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "instance task gone"),
    }
}

async fn routes(state: &ApiState, peer: Option<String>, learned: bool) -> Response {
    let Some(peer) = peer.filter(|p| !p.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing ?peer=NAME");
    };
    let instances = state.instances.read().await.clone();
    let mut out: PerInstance<Vec<RouteView>> = PerInstance::new();
    let mut found = false;
    for i in instances {
        let name = peer.clone();
        let v = if learned {
            i.ask(|tx| Query::Learned(name, tx)).await.flatten()
        } else {
            i.ask(|tx| Query::Advertised(name, tx)).await.flatten()
        };
        found |= v.is_some();
        out.push(i.name.clone(), v.unwrap_or_default());
    }
    if !found {
        return error(StatusCode::NOT_FOUND, format!("no peer named {peer:?}"));
    }
    if learned {
        // A route the fabric cannot program says so next to the SPEC fields (SPEC §6).
        for (_, rows) in out.iter_mut() {
            for r in rows.iter_mut().filter(|r| r.state.is_none()) {
                let Ok(nh) = r.next_hop.parse() else { continue };
                if let Some(fabric::Resolution::Invalid(why)) =
                    crate::fabricrun::ask(&state.fabric, |tx| {
                        crate::fabricrun::FabricMsg::Resolve(nh, tx)
                    })
                    .await
                {
                    r.state = Some(RouteState::Invalid);
                    r.reason = Some(why.to_string());
                }
            }
        }
    }
    Json(out).into_response()
}

async fn learned(State(state): State<ApiState>, AxQuery(q): AxQuery<PeerQuery>) -> Response {
    routes(&state, q.peer, true).await
}

async fn advertised(State(state): State<ApiState>, AxQuery(q): AxQuery<PeerQuery>) -> Response {
    routes(&state, q.peer, false).await
}

async fn reload(State(state): State<ApiState>) -> Response {
    let Some(tx) = &state.reload else {
        return error(
            StatusCode::CONFLICT,
            "this process was not started from a config file (demo): nothing to reload",
        );
    };
    let (rtx, rrx) = oneshot::channel();
    if tx.send(rtx).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match rrx.await {
        Ok(Ok(message)) => Json(ReloadAnswer {
            message,
            reloaded: true,
        })
        .into_response(),
        Ok(Err(msg)) => error(StatusCode::UNPROCESSABLE_ENTITY, msg),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

async fn lb_list(State(state): State<ApiState>) -> Response {
    let list: Vec<LbListEntry> = state
        .lbs
        .read()
        .await
        .iter()
        .map(|l| LbListEntry {
            frontend: l.frontend,
            name: l.name.clone(),
        })
        .collect();
    Json(list).into_response()
}

async fn find_lb(state: &ApiState, name: &str) -> Option<crate::lbrun::LbHandle> {
    state
        .lbs
        .read()
        .await
        .iter()
        .find(|l| l.name == name)
        .cloned()
}

async fn lb_show(
    State(state): State<ApiState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let Some(l) = find_lb(&state, &name).await else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no load balancer named {name:?}"),
        );
    };
    match l.ask(LbQuery::Show).await {
        Some(v) => Json(v).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "load balancer task gone"),
    }
}

async fn lb_admin(
    State(state): State<ApiState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    AxQuery(q): AxQuery<AdminQuery>,
) -> Response {
    let Some(l) = find_lb(&state, &name).await else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no load balancer named {name:?}"),
        );
    };
    let Some(addr) = q.backend.as_deref().and_then(|b| b.parse().ok()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "backend=ADDRESS (an IPv4 address) is required",
        );
    };
    let Some(st) = q
        .state
        .as_deref()
        .and_then(|s| s.parse::<AdminState>().ok())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "state=up|down|drain|none is required",
        );
    };
    let lb_state = contract::lb_admin_state(st);
    match l.ask(|tx| LbQuery::SetAdmin(addr, lb_state, tx)).await {
        Some(Ok(())) => {
            let stored = crate::daemon::lock(&state.admin).record(&name, addr, st);
            match stored {
                Ok(persisted) => Json(AdminAnswer {
                    admin_state: st,
                    backend: addr,
                    persisted: Some(persisted),
                })
                .into_response(),
                Err(e) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("admin state set, but NOT kept for a restart: {e:#}"),
                ),
            }
        }
        Some(Err(e)) => error(StatusCode::NOT_FOUND, e),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "load balancer task gone"),
    }
}

async fn ask_routes(
    state: &ApiState,
    nic: &str,
    since: Option<u64>,
) -> Option<Option<EffectiveRoutes>> {
    let name = nic.to_string();
    crate::fabricrun::ask(&state.fabric, |tx| {
        crate::fabricrun::FabricMsg::EffectiveRoutes(name, since, tx)
    })
    .await
}

/// Nothing new for the caller: an incremental answer with no changed prefix.
fn unchanged(d: &Option<Option<EffectiveRoutes>>) -> bool {
    matches!(d, Some(Some(r)) if r.changed.as_ref().is_some_and(Vec::is_empty))
}

async fn effective_routes(
    State(state): State<ApiState>,
    AxQuery(q): AxQuery<EffectiveRoutesQuery>,
) -> Response {
    let Some(nic) = q.nic.filter(|n| !n.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing ?nic=NAME");
    };
    let since = q.since;
    let wait = q.wait.unwrap_or(0).min(MAX_WAIT_S);
    // Past MAX_LONG_POLLS held at once, a long poll is answered at once (the client asks
    // again): waiting clients cannot pile up without bound.
    let held = (since.is_some() && wait > 0)
        .then(|| state.long_polls.clone().try_acquire_owned().ok())
        .flatten();
    let answer = if held.is_some() {
        // Subscribe before the first question, so a change between the two is not missed.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
        let mut changes = crate::fabricrun::ask(&state.fabric, |tx| {
            crate::fabricrun::FabricMsg::Subscribe(tx)
        })
        .await;
        if let Some(c) = changes.as_mut() {
            c.borrow_and_update();
        }
        let mut d = ask_routes(&state, &nic, since).await;
        while unchanged(&d) {
            let Some(c) = changes.as_mut() else { break };
            match tokio::time::timeout_at(deadline, c.changed()).await {
                Ok(Ok(())) => {
                    c.borrow_and_update();
                    d = ask_routes(&state, &nic, since).await;
                }
                // Time is up, or the fabric task is gone: answer what there is.
                Ok(Err(_)) | Err(_) => break,
            }
        }
        d
    } else {
        ask_routes(&state, &nic, since).await
    };
    match answer {
        Some(Some(d)) => Json(d).into_response(),
        Some(None) => error(StatusCode::NOT_FOUND, format!("no NIC named {nic:?}")),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "fabric task gone"),
    }
}

/// The events after `since`; with `wait`, held until there is one (or the time is up).
async fn events(State(state): State<ApiState>, AxQuery(q): AxQuery<EventsQuery>) -> Response {
    let since = q.since.unwrap_or(0);
    let wait = q.wait.unwrap_or(0).min(MAX_WAIT_S);
    let held = (wait > 0)
        .then(|| state.long_polls.clone().try_acquire_owned().ok())
        .flatten();
    // Subscribe before the first look, so an event between the two is not missed.
    let mut newest = state.events.subscribe();
    let mut answer = state.events.since(since);
    // A `since` from before a restart was read from the start: answered at once.
    if held.is_some() && answer.events.is_empty() && answer.missed == 0 && since <= answer.last {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
        while *newest.borrow_and_update() <= since {
            match tokio::time::timeout_at(deadline, newest.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
        answer = state.events.since(since);
    }
    Json(answer).into_response()
}

async fn nics(State(state): State<ApiState>) -> Response {
    match crate::fabricrun::ask(&state.fabric, crate::fabricrun::FabricMsg::Nics).await {
        Some(list) => Json(list).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "fabric task gone"),
    }
}

async fn trace(State(state): State<ApiState>, AxQuery(q): AxQuery<TraceQuery>) -> Response {
    let Some(nic) = q.nic.filter(|n| !n.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing ?nic=NAME");
    };
    let Some(dst) = q
        .dst
        .as_deref()
        .and_then(|d| d.parse::<std::net::IpAddr>().ok())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "dst=IP address (IPv4 or IPv6) is required",
        );
    };
    let requested = q.proto.as_deref().unwrap_or("tcp");
    let Ok(trace_proto) = requested.parse::<TraceProto>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("proto {requested:?}: expected tcp, udp or icmp"),
        );
    };
    let proto = match trace_proto {
        TraceProto::Tcp => lb::flow::TCP,
        TraceProto::Udp => lb::flow::UDP,
        TraceProto::Icmp => lb::flow::ICMP,
    };
    let (sport, dport) = if proto == lb::flow::ICMP {
        (0, 0)
    } else {
        (q.sport.unwrap_or(49152), q.dport.unwrap_or(443))
    };
    let name = nic.clone();
    let (src, route) = {
        let src = crate::fabricrun::ask(&state.fabric, |tx| {
            crate::fabricrun::FabricMsg::NicAddress(name.clone(), tx)
        })
        .await
        .flatten();
        let r = crate::fabricrun::ask(&state.fabric, |tx| {
            crate::fabricrun::FabricMsg::Lookup(name, dst, tx)
        })
        .await;
        (src, r)
    };
    let Some((src4, src6)) = src else {
        return error(StatusCode::NOT_FOUND, format!("no NIC named {nic:?}"));
    };
    // The flow leaves the NIC from its address of the destination's family.
    let src = match dst {
        std::net::IpAddr::V4(_) => std::net::IpAddr::V4(src4),
        std::net::IpAddr::V6(_) => match src6 {
            Some(a) => std::net::IpAddr::V6(a),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("NIC {nic:?} has no IPv6 address (nic.address6) to trace {dst} from"),
                )
            }
        },
    };
    let flow = TraceFlow {
        dport,
        dst,
        proto: trace_proto,
        sport,
        src,
    };
    let route = match route {
        Some(Ok(r)) => r,
        Some(Err(e)) => return error(StatusCode::NOT_FOUND, e),
        None => return error(StatusCode::SERVICE_UNAVAILABLE, "fabric task gone"),
    };
    // What the route's load balancer would pick: asked of its task, then the one trace.
    let mut predicted = None;
    if let Some(lb_name) = route.as_ref().and_then(|r| r.load_balancer.as_ref()) {
        let handle = state
            .lbs
            .read()
            .await
            .iter()
            .find(|l| &l.name == lb_name)
            .cloned();
        let key = lb::AnyFlow::new(src, dst, proto, sport, dport);
        if let (Some(h), Some(key)) = (handle, key) {
            predicted = h.ask(|tx| LbQuery::Predict(key, tx)).await.flatten();
        }
    }
    Json(controller::views::trace(
        &nic,
        flow,
        route.as_ref(),
        predicted,
    ))
    .into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let peers = all_peers(&state).await;
    let instances = state.instances.read().await.clone();
    let mut s = String::new();
    let mut family = |name: &str, help: &str, kind: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(s, "{name}{{{labels}}} {v}");
        }
    };
    let rows = |f: &dyn Fn(&PeerView) -> String| -> Vec<(String, String)> {
        peers
            .iter()
            .flat_map(|(inst, ps)| {
                ps.iter()
                    .map(move |p| (format!("instance=\"{inst}\",peer=\"{}\"", p.name), f(p)))
            })
            .collect()
    };
    family(
        "bgp_peer_status",
        "1 when the BGP session is Established",
        "gauge",
        rows(&|p| u8::from(p.state == SessionState::Established).to_string()),
    );
    family(
        "routes_learned_from_peer",
        "Routes held from the peer (accepted and refused)",
        "gauge",
        rows(&|p| p.routes_received.to_string()),
    );
    family(
        "routes_accepted_from_peer",
        "Routes from the peer in the Loc-RIB",
        "gauge",
        rows(&|p| p.routes_accepted.to_string()),
    );
    family(
        "routes_advertised_to_peer",
        "Routes advertised to the peer",
        "gauge",
        rows(&|p| p.routes_advertised.to_string()),
    );
    family(
        "bgp_updates_received_total",
        "UPDATE messages received",
        "counter",
        rows(&|p| p.updates_received.to_string()),
    );
    family(
        "bgp_updates_sent_total",
        "UPDATE messages sent",
        "counter",
        rows(&|p| p.updates_sent.to_string()),
    );
    family(
        "bgp_routes_too_large_total",
        "Prefixes not announced to the peer: their path does not fit one of its messages",
        "counter",
        rows(&|p| p.routes_too_large.to_string()),
    );
    family(
        "bgp_messages_received_total",
        "BGP messages of any type received",
        "counter",
        rows(&|p| p.messages_received.to_string()),
    );
    family(
        "bgp_messages_sent_total",
        "BGP messages of any type sent",
        "counter",
        rows(&|p| p.messages_sent.to_string()),
    );
    let refused: Vec<(String, String)> = instances
        .iter()
        .map(|i| (format!("instance=\"{}\"", i.name), i.refused().to_string()))
        .collect();
    family(
        "bgp_connections_refused_total",
        "TCP connections from unconfigured addresses, closed",
        "counter",
        refused,
    );
    let lbs = state.lbs.read().await.clone();
    let mut views = Vec::new();
    for l in &lbs {
        if let Some(v) = l.ask(LbQuery::Show).await {
            views.push(v);
        }
    }
    let per_backend = |f: &dyn Fn(&crate::lbrun::BackendView) -> String| -> Vec<(String, String)> {
        views
            .iter()
            .flat_map(|v| {
                v.backends
                    .iter()
                    .map(move |b| (format!("lb=\"{}\",backend=\"{}\"", v.name, b.address), f(b)))
            })
            .collect()
    };
    let health = |b: &crate::lbrun::BackendView| match b.health {
        Health::Up => "1".to_string(),
        Health::Down => "0".to_string(),
        Health::Unknown => "-1".to_string(),
    };
    family(
        "lb_backend_health",
        "1 up, 0 down, -1 unknown",
        "gauge",
        per_backend(&health),
    );
    family(
        "lb_backend_active",
        "1 when the backend takes new flows (active or serving)",
        "gauge",
        per_backend(&|b| u8::from(matches!(b.role, Role::Active | Role::Serving)).to_string()),
    );
    family(
        "lb_backend_flows",
        "Live flows on the backend",
        "gauge",
        per_backend(&|b| b.flows.to_string()),
    );
    family(
        "lb_probes_sent_total",
        "Health probes sent",
        "counter",
        per_backend(&|b| b.probes_sent.to_string()),
    );
    family(
        "lb_probes_failed_total",
        "Health probes that failed",
        "counter",
        per_backend(&|b| b.probes_failed.to_string()),
    );
    let per_lb = |f: &dyn Fn(&crate::lbrun::LbView) -> String| -> Vec<(String, String)> {
        views
            .iter()
            .map(|v| (format!("lb=\"{}\"", v.name), f(v)))
            .collect()
    };
    family(
        "lb_flow_evictions_total",
        "Live flows evicted from the full flow table",
        "counter",
        per_lb(&|v| v.flow_evictions.to_string()),
    );
    family(
        "lb_flows_dropped_total",
        "New flows dropped with no usable backend",
        "counter",
        per_lb(&|v| v.dropped_flows.to_string()),
    );
    let cross = crate::fabricrun::ask(&state.fabric, crate::fabricrun::FabricMsg::CrossRegion)
        .await
        .unwrap_or_default();
    family(
        "fabric_cross_region_invalid_routes",
        "Routes not programmed because their next hop is a load balancer in another region",
        "gauge",
        cross
            .into_iter()
            .map(|(lb, n)| (format!("lb=\"{lb}\""), n.to_string()))
            .collect(),
    );
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        s,
    )
        .into_response()
}
