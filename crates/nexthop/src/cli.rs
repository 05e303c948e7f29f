//! The query commands: a small HTTP/1.1 client for the API and the tables they print.
//!
//! The client is a few lines over `std::net::TcpStream` (one request, `Connection: close`)
//! rather than an HTTP client crate: the CLI talks to one local API and nothing else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

/// Sends one request to the API; returns the status and the parsed JSON body (or text).
pub fn request(api: &str, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let hostport = api
        .strip_prefix("http://")
        .unwrap_or(api)
        .trim_end_matches('/');
    let mut s = TcpStream::connect(hostport).with_context(|| format!("cannot reach the nexthop API at {api} (is `nexthop run` or `nexthop demo` running? set --api or NEXTHOP_API)"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP response from {api}"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("malformed status line"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// GET a JSON document; an API error becomes the command's error.
pub fn get_json(api: &str, path: &str) -> anyhow::Result<Value> {
    let (status, body) = request(api, "GET", path)?;
    let v: Value = serde_json::from_str(&body)
        .with_context(|| format!("API answered {status} with non-JSON: {body}"))?;
    if status >= 400 {
        bail!(
            "{}",
            v.get("error").and_then(Value::as_str).unwrap_or(&body)
        );
    }
    Ok(v)
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(x) => x.to_string(),
    }
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

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn peers(api: &str, output: &str) -> anyhow::Result<()> {
    let v = get_json(api, "/v1/peers")?;
    if output == "json" {
        return print_json(&v);
    }
    let mut rows = Vec::new();
    for (inst, ps) in v.as_object().into_iter().flatten() {
        for p in ps.as_array().into_iter().flatten() {
            rows.push(vec![
                inst.clone(),
                s(p, "name"),
                s(p, "peerIp"),
                s(p, "peerAsn"),
                s(p, "state"),
                s(p, "uptime"),
                s(p, "routesReceived"),
                s(p, "routesAccepted"),
                s(p, "routesAdvertised"),
                s(p, "lastError"),
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
    if which != "learned" && which != "advertised" {
        bail!("nexthop routes: expected `learned` or `advertised`, got {which:?}");
    }
    let v = get_json(api, &format!("/v1/routes/{which}?peer={}", encode(peer)))?;
    if output == "json" {
        return print_json(&v);
    }
    let mut rows = Vec::new();
    for (inst, rs) in v.as_object().into_iter().flatten() {
        for r in rs.as_array().into_iter().flatten() {
            let state = match r.get("reason") {
                Some(Value::String(why)) => format!("{} ({why})", s(r, "state")),
                _ => "Valid".into(),
            };
            rows.push(vec![
                inst.clone(),
                s(r, "network"),
                s(r, "nextHop"),
                s(r, "sourcePeer"),
                s(r, "asPath"),
                s(r, "origin"),
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

/// Percent-encodes a query value or a path segment.
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn reload(api: &str) -> anyhow::Result<()> {
    let (status, body) = request(api, "POST", "/v1/reload")?;
    if status >= 400 {
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(String::from));
        bail!("reload failed: {}", msg.unwrap_or(body));
    }
    println!("{body}");
    Ok(())
}

pub fn rib(api: &str, output: &str) -> anyhow::Result<()> {
    let v = get_json(api, "/v1/rib")?;
    if output == "json" {
        return print_json(&v);
    }
    let mut rows = Vec::new();
    for (inst, es) in v.as_object().into_iter().flatten() {
        for e in es.as_array().into_iter().flatten() {
            let paths: Vec<String> = e["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}{} via {} [{}]",
                        if p["best"] == true { "*" } else { "" },
                        s(p, "sourcePeer"),
                        s(p, "nextHop"),
                        s(p, "asPath")
                    )
                })
                .collect();
            let nh: Vec<String> = e["forwardingNextHops"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(String::from))
                .collect();
            rows.push(vec![
                inst.clone(),
                s(e, "network"),
                nh.join(","),
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
    let v = get_json(api, &format!("/v1/lb/{}", encode(name)))?;
    if output == "json" {
        return print_json(&v);
    }
    println!(
        "{} frontend {} mode {}",
        s(&v, "name"),
        s(&v, "frontend"),
        s(&v, "mode")
    );
    let rows = v["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            let probe = match b.get("lastProbe") {
                Some(p) if !p.is_null() => format!(
                    "{} ({:.1} ms, {:.1} s ago)",
                    s(p, "detail"),
                    p["latencyMs"].as_f64().unwrap_or(0.0),
                    p["ageS"].as_f64().unwrap_or(0.0)
                ),
                _ => "-".into(),
            };
            vec![
                s(b, "address"),
                s(b, "health"),
                s(b, "adminState"),
                s(b, "role"),
                s(b, "priority"),
                s(b, "flows"),
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
        s(&v, "newFlows"),
        s(&v, "movedFlows"),
        s(&v, "droppedFlows"),
        s(&v, "flowEvictions")
    );
    Ok(())
}

pub fn lb_set_admin(api: &str, name: &str, backend: &str, state: &str) -> anyhow::Result<()> {
    let path = format!(
        "/v1/lb/{}/admin?backend={}&state={}",
        encode(name),
        encode(backend),
        encode(state)
    );
    let (status, body) = request(api, "POST", &path)?;
    if status >= 400 {
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(String::from));
        bail!("{}", msg.unwrap_or(body));
    }
    println!("{name}: backend {backend} admin state set to {state}");
    Ok(())
}

pub fn effective_routes(api: &str, nic: &str, output: &str) -> anyhow::Result<()> {
    let v = get_json(api, &format!("/v1/effective-routes?nic={}", encode(nic)))?;
    if output == "json" {
        return print_json(&v);
    }
    let list = |x: &Value| {
        x.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect::<Vec<_>>()
            .join(",")
    };
    let rows = v["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let mut nh = list(&r["nextHopIpAddress"]);
            if let Some(lb) = r["loadBalancer"].as_str() {
                nh = format!("{nh} (via {lb})");
            }
            vec![
                s(r, "source"),
                s(r, "state"),
                list(&r["addressPrefix"]),
                s(r, "nextHopType"),
                nh,
                s(r, "reason"),
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
    let mut path = format!(
        "/v1/trace?nic={}&dst={}&proto={}",
        encode(nic),
        encode(dst),
        encode(proto)
    );
    if let Some(p) = sport {
        path.push_str(&format!("&sport={p}"));
    }
    if let Some(p) = dport {
        path.push_str(&format!("&dport={p}"));
    }
    let v = get_json(api, &path)?;
    if output == "json" {
        return print_json(&v);
    }
    let f = &v["flow"];
    println!(
        "flow    {} {}:{} -> {}:{} from NIC {}",
        s(f, "proto"),
        s(f, "src"),
        s(f, "sport"),
        s(f, "dst"),
        s(f, "dport"),
        s(&v, "nic")
    );
    let r = &v["route"];
    if !r.is_null() {
        let pfx = r["addressPrefix"]
            .get(0)
            .and_then(Value::as_str)
            .unwrap_or("-");
        println!(
            "route   {} {} -> {} {} ({})",
            s(r, "source"),
            pfx,
            s(r, "nextHopType"),
            r["nextHopIpAddress"],
            s(r, "state")
        );
        println!("why     {}", s(&v, "why"));
    }
    if let Some(lb) = v.get("loadBalancer").and_then(Value::as_str) {
        println!("via     load balancer {lb}");
    }
    if let Some(b) = v.get("backend").and_then(Value::as_str) {
        println!("backend {b}");
    }
    if let Some(d) = v.get("dropped").and_then(Value::as_str) {
        println!("DROPPED {d}");
    }
    Ok(())
}
