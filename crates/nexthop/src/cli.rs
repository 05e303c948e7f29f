//! The query commands: a small HTTP/1.1 client for the API and the tables they print.
//!
//! The client is a few lines over `std::net::TcpStream` (one request, `Connection: close`)
//! rather than an HTTP client crate: the CLI talks to one local API and nothing else.
//!
//! Every answer is read as its contract type ([`api_types`]), strictly: an answer this client
//! does not understand (a controller of another version) is an error, never a table with
//! blanks. `-o json` prints the typed answer written again, which is the controller's JSON
//! (pretty-printed).

use std::fmt::Display;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use api_types::request::{self, lb_path, RELOAD};
use api_types::{
    AdminAnswer, AdminQuery, EffectiveRoutes, EffectiveRoutesQuery, ErrorBody, LbView, PeerQuery,
    PeerView, PerInstance, ReloadAnswer, RibEntryView, RouteDirection, RouteView, TraceAnswer,
    TraceQuery,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest answer the client reads (a whole effective-route table of a million prefixes
/// is ≈ 200 MB of JSON): a controller, or whatever answers in its place, cannot make a client
/// hold more.
pub const MAX_ANSWER: u64 = 256 << 20;

/// The HTTP client of every command that talks to the API (ureq on rustls): one agent per
/// process, so connections and the TLS configuration are reused (the mux asks every 20 ms).
fn agent() -> &'static ureq::Agent {
    static AGENT: std::sync::OnceLock<ureq::Agent> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| {
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(
                crate::apitls::client_roots(),
            )))
            .build();
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Above the longest long poll (20 s).
            .timeout_global(Some(Duration::from_secs(30)))
            .max_redirects(0)
            .tls_config(tls)
            .build()
            .new_agent()
    })
}

/// Sends one request to the API; returns the status and the body. The body is read up to
/// [`MAX_ANSWER`] octets and must be UTF-8.
pub fn request(api: &str, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let (status, body) = request_bytes(api, method, path)?;
    let body = String::from_utf8(body)
        .map_err(|e| anyhow!("reading the answer of {api}: not UTF-8: {e}"))?;
    Ok((status, body))
}

/// [`request`] for an answer that is not text (an MRT dump).
pub fn request_bytes(api: &str, method: &str, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let base = api.trim_end_matches('/');
    let url = if base.contains("://") {
        format!("{base}{path}")
    } else {
        format!("http://{base}{path}")
    };
    let auth = crate::token::client_token()?.map(|t| format!("Bearer {t}"));
    let answer = match method {
        "GET" => {
            let mut r = agent().get(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        "POST" => {
            let mut r = agent().post(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.send_empty()
        }
        other => bail!("HTTP method {other} is not used by the API"),
    };
    let answer = answer.map_err(|e| match e {
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => anyhow!(
            "cannot reach the nexthop API at {api}: {e} (is `nexthop run` or `nexthop demo` running? set --api or NEXTHOP_API)"
        ),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => anyhow!(
            "TLS with the nexthop API at {api}: {e} (a private CA? pass --ca-file or NEXTHOP_CA_FILE)"
        ),
        e => anyhow!("the nexthop API at {api}: {e}"),
    })?;
    let status = answer.status().as_u16();
    let body = answer
        .into_body()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_vec()
        .map_err(|e| anyhow!("reading the answer of {api}: {e}"))?;
    Ok((status, body))
}

/// Sends one request and reads the answer as `T`. An error status becomes the command's error
/// with the API's message; an answer that is not a `T` is an error that says so.
pub fn call<T: DeserializeOwned>(api: &str, method: &str, path: &str) -> anyhow::Result<T> {
    let (status, body) = request(api, method, path)?;
    check_status(status, &body)?;
    decode(&body).with_context(|| format!("{method} {path} at {api}"))
}

/// An error status as an error with the API's message ([`ErrorBody`]).
pub fn check_status(status: u16, body: &str) -> anyhow::Result<()> {
    if status < 400 {
        return Ok(());
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => bail!("{}", e.error),
        Err(_) => bail!("API answered {status}: {body}"),
    }
}

/// Reads an answer as its contract type, strictly (see [`api_types`]).
pub fn decode<T: DeserializeOwned>(body: &str) -> anyhow::Result<T> {
    serde_json::from_str(body).map_err(|e| {
        anyhow!("answer not understood: {e} (a controller of another version than this client?)")
    })
}

/// GET an answer of the API as its contract type (see [`call`]).
pub fn get<T: DeserializeOwned>(api: &str, path: &str) -> anyhow::Result<T> {
    call(api, "GET", path)
}

/// A cell: the value, or `-` when there is none.
fn opt<T: Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

/// Prints rows as aligned columns.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn peers(api: &str, output: &str) -> anyhow::Result<()> {
    let v: PerInstance<Vec<PeerView>> = get(api, request::PEERS)?;
    if output == "json" {
        return print_json(&v);
    }
    let mut rows = Vec::new();
    for (inst, ps) in v.iter() {
        for p in ps {
            rows.push(vec![
                inst.to_string(),
                p.name.clone(),
                p.peer_ip.clone(),
                p.peer_asn.to_string(),
                p.state.to_string(),
                opt(&p.uptime),
                p.routes_received.to_string(),
                p.routes_accepted.to_string(),
                p.routes_advertised.to_string(),
                opt(&p.last_error),
            ]);
        }
    }
    table(
        &[
            "INSTANCE",
            "PEER",
            "ADDRESS",
            "ASN",
            "STATE",
            "UPTIME(S)",
            "RECEIVED",
            "ACCEPTED",
            "ADVERTISED",
            "LAST ERROR",
        ],
        rows,
    );
    Ok(())
}

pub fn routes(api: &str, which: &str, peer: &str, output: &str) -> anyhow::Result<()> {
    let Ok(which) = which.parse::<RouteDirection>() else {
        bail!("nexthop routes: expected `learned` or `advertised`, got {which:?}");
    };
    let query = PeerQuery {
        peer: Some(peer.to_string()),
    };
    let v: PerInstance<Vec<RouteView>> = get(api, &query.path(which))?;
    if output == "json" {
        return print_json(&v);
    }
    let mut rows = Vec::new();
    for (inst, rs) in v.iter() {
        for r in rs {
            let state = match &r.reason {
                Some(why) => format!("{} ({why})", opt(&r.state)),
                None => "Valid".into(),
            };
            rows.push(vec![
                inst.to_string(),
                r.network.clone(),
                r.next_hop.clone(),
                r.source_peer.clone(),
                r.as_path.clone(),
                r.origin.to_string(),
                state,
            ]);
        }
    }
    table(
        &[
            "INSTANCE",
            "NETWORK",
            "NEXT HOP",
            "SOURCE PEER",
            "AS PATH",
            "ORIGIN",
            "STATE",
        ],
        rows,
    );
    Ok(())
}

pub fn rib(api: &str, output: &str) -> anyhow::Result<()> {
    let v: PerInstance<Vec<RibEntryView>> = get(api, request::RIB)?;
    if output == "json" {
        return print_json(&v);
    }
    let mut rows = Vec::new();
    for (inst, es) in v.iter() {
        for e in es {
            let paths: Vec<String> = e
                .paths
                .iter()
                .map(|p| {
                    format!(
                        "{}{} via {} [{}]",
                        if p.best { "*" } else { "" },
                        p.source_peer,
                        p.next_hop,
                        p.as_path
                    )
                })
                .collect();
            rows.push(vec![
                inst.to_string(),
                e.network.clone(),
                e.forwarding_next_hops.join(","),
                paths.join("; "),
            ]);
        }
    }
    table(
        &[
            "INSTANCE",
            "NETWORK",
            "FORWARDING NEXT HOPS",
            "ECMP PATHS (* best)",
        ],
        rows,
    );
    Ok(())
}

pub fn lb_show(api: &str, name: &str, output: &str) -> anyhow::Result<()> {
    let v: LbView = get(api, &lb_path(name))?;
    if output == "json" {
        return print_json(&v);
    }
    println!("{} frontend {} mode {}", v.name, v.frontend, v.mode);
    let rows = v
        .backends
        .iter()
        .map(|b| {
            let probe = match &b.last_probe {
                Some(p) => format!(
                    "{} ({:.1} ms, {:.1} s ago)",
                    p.detail, p.latency_ms, p.age_s
                ),
                None => "-".into(),
            };
            vec![
                b.address.to_string(),
                b.health.to_string(),
                b.admin_state.to_string(),
                b.role.to_string(),
                b.priority.to_string(),
                b.flows.to_string(),
                probe,
            ]
        })
        .collect();
    table(
        &[
            "BACKEND",
            "HEALTH",
            "ADMIN",
            "ROLE",
            "PRIORITY",
            "FLOWS",
            "LAST PROBE",
        ],
        rows,
    );
    println!(
        "new flows {}, moved {}, dropped {}, evicted {}",
        v.new_flows, v.moved_flows, v.dropped_flows, v.flow_evictions
    );
    Ok(())
}

/// Runs `f` on every controller given (`--api` repeatable: one per controller host, each
/// applying and persisting on its own). Every controller is asked even when one fails; the
/// command fails if any did, naming which. With one controller its error is the command's.
fn on_each(apis: &[String], mut f: impl FnMut(&str) -> anyhow::Result<()>) -> anyhow::Result<()> {
    if let [api] = apis {
        return f(api);
    }
    let mut failed = Vec::new();
    for api in apis {
        if let Err(e) = f(api) {
            eprintln!("nexthop: {api}: {e:#}");
            failed.push(api.as_str());
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("failed on {}", failed.join(", "));
    }
    Ok(())
}

/// `nexthop mrt dump --instance NAME --out FILE`: the instance's Adj-RIBs-In as a TABLE_DUMP_V2
/// file (RFC 6396; `bgpdump -m FILE` reads it). The file is replaced whole.
pub fn mrt_dump(api: &str, instance: &str, out: &std::path::Path) -> anyhow::Result<()> {
    let path = api_types::MrtQuery {
        instance: Some(instance.to_string()),
    }
    .path();
    let (status, body) = request_bytes(api, "GET", &path)?;
    if status >= 400 {
        check_status(status, &String::from_utf8_lossy(&body))?;
    }
    let tmp = out.with_extension("mrt.new");
    std::fs::write(&tmp, &body).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "{instance}: {} octets of TABLE_DUMP_V2 in {}",
        body.len(),
        out.display()
    );
    Ok(())
}

/// `nexthop reload` on each controller given: one JSON answer a line.
pub fn reload(apis: &[String]) -> anyhow::Result<()> {
    on_each(apis, |api| {
        let answer: ReloadAnswer = call(api, "POST", RELOAD).context("reload failed")?;
        println!("{}", serde_json::to_string(&answer)?);
        Ok(())
    })
}

/// `nexthop lb set-admin` on each controller given.
pub fn lb_set_admin(apis: &[String], name: &str, backend: &str, state: &str) -> anyhow::Result<()> {
    let query = AdminQuery {
        backend: Some(backend.to_string()),
        state: Some(state.to_string()),
    };
    on_each(apis, |api| {
        let answer: AdminAnswer = call(api, "POST", &query.path(name))?;
        let kept = match answer.persisted {
            Some(true) => " (kept across restarts)",
            Some(false) => " (until nexthop restarts: no state_dir in its config)",
            None => "",
        };
        let on = if apis.len() > 1 {
            format!(" on {api}")
        } else {
            String::new()
        };
        println!(
            "{name}: backend {} admin state set to {}{kept}{on}",
            answer.backend, answer.admin_state
        );
        Ok(())
    })
}

pub fn effective_routes(api: &str, nic: &str, output: &str) -> anyhow::Result<()> {
    let query = EffectiveRoutesQuery {
        nic: Some(nic.to_string()),
        ..Default::default()
    };
    let v: EffectiveRoutes = get(api, &query.path())?;
    if output == "json" {
        return print_json(&v);
    }
    let rows = v
        .value
        .iter()
        .map(|r| {
            let mut nh = r.next_hop_ip_address.join(",");
            if let Some(lb) = &r.load_balancer {
                nh = format!("{nh} (via {lb})");
            }
            vec![
                r.source.to_string(),
                r.state.to_string(),
                r.address_prefix.join(","),
                r.next_hop_type.to_string(),
                nh,
                opt(&r.reason),
            ]
        })
        .collect();
    table(
        &[
            "SOURCE",
            "STATE",
            "ADDRESS PREFIX",
            "NEXT HOP TYPE",
            "NEXT HOP IP",
            "REASON",
        ],
        rows,
    );
    Ok(())
}

pub fn trace(
    api: &str,
    nic: &str,
    dst: &str,
    proto: &str,
    sport: Option<u16>,
    dport: Option<u16>,
    output: &str,
) -> anyhow::Result<()> {
    let query = TraceQuery {
        nic: Some(nic.to_string()),
        dst: Some(dst.to_string()),
        proto: Some(proto.to_string()),
        sport,
        dport,
    };
    let v: TraceAnswer = get(api, &query.path())?;
    if output == "json" {
        return print_json(&v);
    }
    let f = &v.flow;
    // Address and port as a socket address: [fd00::1]:7 for IPv6.
    let (src, dst) = (
        std::net::SocketAddr::new(f.src, f.sport),
        std::net::SocketAddr::new(f.dst, f.dport),
    );
    println!("flow    {} {src} -> {dst} from NIC {}", f.proto, v.nic);
    if let Some(r) = &v.route {
        println!(
            "route   {} {} -> {} {} ({})",
            r.source,
            r.prefix().unwrap_or("-"),
            r.next_hop_type,
            serde_json::to_string(&r.next_hop_ip_address)?,
            r.state
        );
        println!("why     {}", opt(&v.why));
    }
    if let Some(lb) = &v.load_balancer {
        println!("via     load balancer {lb}");
    }
    if let Some(b) = &v.backend {
        println!("backend {b}");
    }
    if let Some(d) = &v.dropped {
        println!("DROPPED {d}");
    }
    Ok(())
}
