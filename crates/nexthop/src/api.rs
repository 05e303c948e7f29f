//! The REST API (SPEC §6) and `/metrics` in Prometheus text.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/v1/peers` | peers per instance |
//! | GET | `/v1/rib` | the Loc-RIB per instance: ECMP paths and forwarding next hops |
//! | GET | `/v1/routes/learned?peer=NAME` | the peer's learned routes per instance |
//! | GET | `/v1/routes/advertised?peer=NAME` | what each instance advertises to the peer |
//! | POST | `/v1/reload` | re-read the config file and apply it |
//! | GET | `/metrics` | Prometheus text |
//!
//! JSON objects are keyed by instance name (`RouteServiceRole_IN_0`, …) in instance order.
//! Errors are `{"error": "..."}` with a 4xx/5xx status.

use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::extract::{Query as AxQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot};

use crate::instance::{Instances, PeerView, Query, RouteView};

/// Asks the daemon to reload its config; the reply says what happened.
pub type ReloadRequest = oneshot::Sender<Result<String, String>>;

#[derive(Clone)]
pub struct ApiState {
    pub instances: Instances,
    pub reload: Option<mpsc::Sender<ReloadRequest>>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/peers", get(peers))
        .route("/v1/rib", get(rib))
        .route("/v1/routes/learned", get(learned))
        .route("/v1/routes/advertised", get(advertised))
        .route("/v1/reload", post(reload))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves the API on `addr` until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    state: ApiState,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("API: cannot listen on {addr}: {e}"))?;
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state)).await {
            tracing::error!(error = %e, "API server stopped");
        }
    }))
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": msg.into() }))).into_response()
}

/// Instance names in order: a BTreeMap of `RouteServiceRole_IN_n` sorts them for n < 10, and
/// an IndexMap-like Vec keeps them right beyond that.
type PerInstance<T> = Vec<(String, T)>;

fn per_instance_json<T: serde::Serialize>(v: PerInstance<T>) -> Response {
    let mut m = serde_json::Map::new();
    for (k, x) in v {
        m.insert(
            k,
            serde_json::to_value(x).unwrap_or(serde_json::Value::Null),
        );
    }
    Json(serde_json::Value::Object(m)).into_response()
}

async fn all_peers(state: &ApiState) -> PerInstance<Vec<PeerView>> {
    let instances = state.instances.read().await.clone();
    let mut out = Vec::new();
    for i in instances {
        let v = i.ask(Query::Peers).await.unwrap_or_default();
        out.push((i.name.clone(), v));
    }
    out
}

async fn peers(State(state): State<ApiState>) -> Response {
    per_instance_json(all_peers(&state).await)
}

async fn rib(State(state): State<ApiState>) -> Response {
    let instances = state.instances.read().await.clone();
    let mut out = Vec::new();
    for i in instances {
        out.push((i.name.clone(), i.ask(Query::Rib).await.unwrap_or_default()));
    }
    per_instance_json(out)
}

#[derive(serde::Deserialize)]
struct PeerParam {
    peer: Option<String>,
}

async fn routes(state: &ApiState, peer: Option<String>, learned: bool) -> Response {
    let Some(peer) = peer.filter(|p| !p.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing ?peer=NAME");
    };
    let instances = state.instances.read().await.clone();
    let mut out: PerInstance<Vec<RouteView>> = Vec::new();
    let mut found = false;
    for i in instances {
        let name = peer.clone();
        let v = if learned {
            i.ask(|tx| Query::Learned(name, tx)).await.flatten()
        } else {
            i.ask(|tx| Query::Advertised(name, tx)).await.flatten()
        };
        found |= v.is_some();
        out.push((i.name.clone(), v.unwrap_or_default()));
    }
    if !found {
        return error(StatusCode::NOT_FOUND, format!("no peer named {peer:?}"));
    }
    per_instance_json(out)
}

async fn learned(State(state): State<ApiState>, AxQuery(q): AxQuery<PeerParam>) -> Response {
    routes(&state, q.peer, true).await
}

async fn advertised(State(state): State<ApiState>, AxQuery(q): AxQuery<PeerParam>) -> Response {
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
        Ok(Ok(msg)) => {
            Json(serde_json::json!({ "reloaded": true, "message": msg })).into_response()
        }
        Ok(Err(msg)) => error(StatusCode::UNPROCESSABLE_ENTITY, msg),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
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
        rows(&|p| u8::from(p.state == "Established").to_string()),
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
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        s,
    )
        .into_response()
}
