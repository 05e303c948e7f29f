//! The fabric is fed BGP routes only while the route server has a virtual network: without one
//! no table receives them, so the instances keep them to themselves. A reload that gives the
//! route server its network must program every route already learned (the instance resends its
//! whole Loc-RIB), one that takes it away must drop them, and giving it back programs them again.
//! An NVA (a real BGP speaker over TCP on 127.0.0.0/8) advertises 192.168.10.0/24 with a next
//! hop in the hub. No root needed.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp_driver::PeerCommand;

mod common;
use common::{branch_update, cli, config_file, free_port, json, nva_session, run_daemon};

fn config(rs_vnet: bool, bgp_port: u16, api: &str) -> String {
    let vnet = if rs_vnet {
        r#"virtual_network = "hub""#
    } else {
        ""
    };
    format!(
        r#"[[virtual_network]]
name = "hub"
region = "westeurope"
address_space = ["10.1.0.0/16"]

[route_server]
{vnet}
instances = ["127.0.14.4"]
port = {bgp_port}

[[route_server.peer]]
name = "nva1"
address = "127.0.14.10"
asn = 65001

[[nic]]
name = "vm1-nic"
virtual_network = "hub"
address = "10.1.3.10"

[api]
listen = "{api}"
"#
    )
}

fn reload(api: &str) {
    let (ok, out) = cli(api, &["reload"]);
    assert!(ok, "{out}");
}

/// vm1-nic's route for the branch, if it has one (None also while the API is not up).
fn branch_route(api: &str) -> Option<serde_json::Value> {
    let v = json(api, &["effective-routes", "--nic", "vm1-nic", "-o", "json"])?;
    v["value"]
        .as_array()?
        .iter()
        .find(|r| r["addressPrefix"][0] == "192.168.10.0/24")
        .cloned()
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(20), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_adds_the_virtual_network_programs_the_routes_already_learned() {
    let bgp_port = free_port();
    let api = format!("127.0.0.1:{}", free_port());
    let file = config_file("fabric-feed", &config(false, bgp_port, &api));
    let d = run_daemon(&file);
    let dir = file.parent().unwrap().to_path_buf();

    let (nva, mut rx) = nva_session(
        Ipv4Addr::new(127, 0, 14, 10),
        Ipv4Addr::new(127, 0, 14, 4),
        bgp_port,
    )
    .await;
    nva.send(PeerCommand::SendUpdate(branch_update(Ipv4Addr::new(
        10, 1, 0, 50,
    ))));
    // Keep the session's events flowing while the blocking part runs.
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });

    let api2 = api.clone();
    tokio::task::spawn_blocking(move || {
        let api = api2;
        wait_for("the route learned", || {
            json(&api, &["routes", "learned", "--peer", "nva1", "-o", "json"])
                .is_some_and(|l| l["RouteServiceRole_IN_0"][0]["network"] == "192.168.10.0/24")
        });
        assert!(
            branch_route(&api).is_none(),
            "no route server network: nothing is programmed"
        );

        std::fs::write(&file, config(true, bgp_port, &api)).unwrap();
        reload(&api);
        wait_for("the route programmed after the reload", || {
            branch_route(&api).is_some_and(|r| {
                r["state"] == "Active" && r["nextHopIpAddress"] == serde_json::json!(["10.1.0.50"])
            })
        });

        std::fs::write(&file, config(false, bgp_port, &api)).unwrap();
        reload(&api);
        wait_for("the route gone with the network", || {
            json(
                &api,
                &["effective-routes", "--nic", "vm1-nic", "-o", "json"],
            )
            .is_some()
                && branch_route(&api).is_none()
        });

        std::fs::write(&file, config(true, bgp_port, &api)).unwrap();
        reload(&api);
        wait_for("the route programmed again", || {
            branch_route(&api).is_some_and(|r| r["state"] == "Active")
        });
    })
    .await
    .unwrap();
    nva.send(PeerCommand::Shutdown);
    drain.abort();
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
