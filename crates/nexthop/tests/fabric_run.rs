//! `nexthop run` with the fabric: an NVA (a real BGP speaker over TCP, run by this test on
//! 127.0.0.0/8) advertises 192.168.10.0/24 with the LB frontend as next hop. The NIC's effective
//! routes resolve it through the LB; with the LB's network in another region than the route
//! server (config reload) the route is Invalid with the cross-region reason — in the effective
//! routes, the learned routes and the metric — and reloading the old config makes it valid.
//! `trace` names the backend. No root needed.

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use bgp_driver::PeerCommand;

mod common;
use common::{branch_update, cli, config_file, free_port, json, nva_session, run_daemon};

fn config(spoke_region: &str, bgp_port: u16, api: &str, probe_port: u16) -> String {
    format!(
        r#"[[virtual_network]]
name = "hub"
region = "westeurope"
address_space = ["10.1.0.0/16"]
peerings = ["spoke"]

[[virtual_network]]
name = "spoke"
region = "{spoke_region}"
address_space = ["10.2.0.0/16"]

[route_server]
virtual_network = "hub"
instances = ["127.0.11.4"]
port = {bgp_port}

[[route_server.peer]]
name = "nva1"
address = "127.0.11.10"
asn = 65001

[[load_balancer]]
name = "nva-ilb"
virtual_network = "spoke"
frontend = "10.2.0.100"
mode = "active-passive"
backends = [{{ address = "127.0.11.10", priority = 1 }}]
probe = {{ protocol = "tcp", port = {probe_port}, interval_ms = 100 }}

[[nic]]
name = "vm1-nic"
virtual_network = "hub"
address = "10.1.3.10"

[api]
listen = "{api}"
"#
    )
}

/// Polls the branch route of vm1-nic until `cond` holds.
fn branch_route(
    api: &str,
    what: &str,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let v = json(api, &["effective-routes", "--nic", "vm1-nic", "-o", "json"]);
        let r = v.as_ref().and_then(|v| {
            v["value"]
                .as_array()?
                .iter()
                .find(|r| r["addressPrefix"][0] == "192.168.10.0/24")
                .cloned()
        });
        if let Some(r) = r.filter(|r| cond(r)) {
            return r;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}: {v:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metrics(api: &str) -> String {
    http_get(api, "/metrics")
}

/// The body of a GET (the API answers with Content-Length and closes).
fn http_get(api: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(api).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut m = String::new();
    s.read_to_string(&mut m).unwrap();
    m.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_region_lb_is_invalid_and_a_reload_fixes_it() {
    let (bgp_port, probe_port) = (free_port(), free_port());
    let api = format!("127.0.0.1:{}", free_port());
    // The NVA's probe target: a TCP listener on its address.
    let _probe = TcpListener::bind(("127.0.11.10", probe_port)).unwrap();
    let file = config_file("fabric", &config("westeurope", bgp_port, &api, probe_port));
    let d = run_daemon(&file);
    let dir = file.parent().unwrap().to_path_buf();

    // The NVA: a real BGP speaker that connects to the instance and advertises the branch.
    let (nva, _events) = nva_session(
        Ipv4Addr::new(127, 0, 11, 10),
        Ipv4Addr::new(127, 0, 11, 4),
        bgp_port,
    )
    .await;
    nva.send(PeerCommand::SendUpdate(branch_update(Ipv4Addr::new(
        10, 2, 0, 100,
    ))));

    let api2 = api.clone();
    tokio::task::spawn_blocking(move || {
        let api = api2;
        // Same region: active, through the LB, once.
        let r = branch_route(&api, "an active route via nva-ilb", |r| r["state"] == "Active");
        assert_eq!(r["source"], "VirtualNetworkGateway");
        assert_eq!(r["nextHopType"], "VirtualNetworkGateway");
        assert_eq!(r["nextHopIpAddress"], serde_json::json!(["10.2.0.100"]));
        assert_eq!(r["loadBalancer"], "nva-ilb");
        // trace predicts the backend once the probe says it is up.
        let t = Instant::now();
        let tr = loop {
            let tr = json(&api, &["trace", "--nic", "vm1-nic", "--dst", "192.168.10.7", "--sport", "40000", "--dport", "443", "-o", "json"]).unwrap();
            if tr.get("backend").is_some() || t.elapsed() > Duration::from_secs(10) {
                break tr;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(tr["backend"], "127.0.11.10", "{tr}");
        assert_eq!(tr["loadBalancer"], "nva-ilb");

        let v0 = json(&api, &["effective-routes", "--nic", "vm1-nic", "-o", "json"]).unwrap()["version"].as_u64().unwrap();
        // The LB's network moves to another region: Invalid with the reason, not programmed.
        std::fs::write(&file, config("northeurope", bgp_port, &api, probe_port)).unwrap();
        let (ok, out) = cli(&api, &["reload"]);
        assert!(ok, "{out}");
        let r = branch_route(&api, "the cross-region Invalid route", |r| r["state"] == "Invalid");
        assert_eq!(
            r["reason"],
            "load balancer nva-ilb is in region northeurope, route server in westeurope: cross-region next hop IP is not supported"
        );
        // A subscriber holding the version before the reload is not told "nothing changed".
        let since = http_get(&api, &format!("/v1/effective-routes?nic=vm1-nic&since={v0}"));
        let since: serde_json::Value = serde_json::from_str(&since).unwrap();
        assert!(since["version"].as_u64().unwrap() > v0, "{since}");
        assert!(since["value"].as_array().unwrap().iter().any(|r| r["addressPrefix"][0] == "192.168.10.0/24" && r["state"] == "Invalid"), "{since}");
        let (_, table) = cli(&api, &["effective-routes", "--nic", "vm1-nic"]);
        assert!(table.contains("cross-region next hop IP is not supported"), "{table}");
        let learned = json(&api, &["routes", "learned", "--peer", "nva1", "-o", "json"]).unwrap();
        let l = &learned["RouteServiceRole_IN_0"][0];
        assert_eq!(l["state"], "Invalid", "{learned}");
        assert!(l["reason"].as_str().unwrap().contains("cross-region"));
        assert!(metrics(&api).contains("fabric_cross_region_invalid_routes{lb=\"nva-ilb\"} 1"));
        let tr = json(&api, &["trace", "--nic", "vm1-nic", "--dst", "192.168.10.7", "-o", "json"]).unwrap();
        assert_eq!(tr["route"]["nextHopType"], "Internet", "not programmed: the default route carries it: {tr}");

        // Back in the route server's region: valid again.
        std::fs::write(&file, config("westeurope", bgp_port, &api, probe_port)).unwrap();
        let (ok, out) = cli(&api, &["reload"]);
        assert!(ok, "{out}");
        branch_route(&api, "valid again", |r| r["state"] == "Active");
        assert!(metrics(&api).contains("fabric_cross_region_invalid_routes{lb=\"nva-ilb\"} 0"));
    })
    .await
    .unwrap();
    nva.send(PeerCommand::Shutdown);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
