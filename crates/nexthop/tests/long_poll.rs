//! The long poll of `/v1/effective-routes?nic=NAME&since=V&wait=S` against `nexthop run`:
//! held while nothing changes (answers `changed: []` when the time is up), answered as soon as
//! the NIC's table changes (here: a config reload adds a peering, so a VNetPeering route), and
//! a version the controller never reached (it restarted) gets the whole table. No root needed.

use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{config_file, free_port, run_daemon};

fn config(peered: bool, bgp_port: u16, api: &str) -> String {
    let peerings = if peered { r#"["spoke"]"# } else { "[]" };
    format!(
        r#"[[virtual_network]]
name = "hub"
region = "westeurope"
address_space = ["10.1.0.0/16"]
peerings = {peerings}

[[virtual_network]]
name = "spoke"
region = "westeurope"
address_space = ["10.2.0.0/16"]

[route_server]
virtual_network = "hub"
instances = ["127.0.13.4"]
port = {bgp_port}

[[route_server.peer]]
name = "nva1"
address = "127.0.13.10"
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

/// One request; (status, JSON body).
fn request(api: &str, method: &str, path: &str) -> std::io::Result<(u16, Value)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(api)?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut m = String::new();
    s.read_to_string(&mut m)?;
    let (head, body) = m.split_once("\r\n\r\n").unwrap_or((&m, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

fn get(api: &str, path: &str) -> Value {
    let (status, v) = request(api, "GET", path).unwrap();
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

fn has_prefix(v: &Value, p: &str) -> bool {
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["addressPrefix"][0] == p)
}

#[test]
fn long_poll_waits_for_a_change() {
    let api = format!("127.0.0.1:{}", free_port());
    let bgp_port = free_port();
    let file = config_file("longpoll", &config(false, bgp_port, &api));
    let _d = run_daemon(&file);
    let t = Instant::now();
    let full = loop {
        if let Ok((200, v)) = request(&api, "GET", "/v1/effective-routes?nic=vm1-nic") {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "API never came up");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(full.get("changed").is_none());
    assert!(!has_prefix(&full, "10.2.0.0/16"));
    let v0 = full["version"].as_u64().unwrap();

    // Nothing changes: held for `wait`, then an empty incremental answer.
    let t = Instant::now();
    let idle = get(
        &api,
        &format!("/v1/effective-routes?nic=vm1-nic&since={v0}&wait=1"),
    );
    let held = t.elapsed();
    assert!(
        held >= Duration::from_millis(900),
        "answered after {held:?}"
    );
    assert!(held < Duration::from_secs(5), "answered after {held:?}");
    assert_eq!(idle["changed"], serde_json::json!([]));
    assert_eq!(idle["version"].as_u64(), Some(v0));

    // Without `wait`, an incremental question is answered at once.
    let t = Instant::now();
    get(
        &api,
        &format!("/v1/effective-routes?nic=vm1-nic&since={v0}"),
    );
    assert!(t.elapsed() < Duration::from_millis(900));

    // A change while the poll is held answers it.
    let api2 = api.clone();
    let poll = std::thread::spawn(move || {
        let t = Instant::now();
        let v = get(
            &api2,
            &format!("/v1/effective-routes?nic=vm1-nic&since={v0}&wait=30"),
        );
        (v, t.elapsed())
    });
    std::thread::sleep(Duration::from_secs(1));
    std::fs::write(&file, config(true, bgp_port, &api)).unwrap();
    let (status, r) = request(&api, "POST", "/v1/reload").unwrap();
    assert_eq!(status, 200, "reload: {r}");
    let (v, held) = poll.join().unwrap();
    eprintln!("long poll answered after {held:?}: {v}");
    assert!(
        held >= Duration::from_millis(900),
        "answered after {held:?}"
    );
    assert!(held < Duration::from_secs(10), "answered after {held:?}");
    assert!(v["version"].as_u64().unwrap() > v0);
    let changed: Vec<&str> = v["changed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(changed.contains(&"10.2.0.0/16"), "{v}");
    assert!(has_prefix(&v, "10.2.0.0/16"), "{v}");

    // A version from the future (the controller restarted): the whole table.
    let future = v["version"].as_u64().unwrap() + 1000;
    let t = Instant::now();
    let w = get(
        &api,
        &format!("/v1/effective-routes?nic=vm1-nic&since={future}&wait=5"),
    );
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(w.get("changed").is_none(), "{w}");
    assert!(has_prefix(&w, "10.2.0.0/16") && has_prefix(&w, "10.1.0.0/16"));

    // An unknown NIC is still a 404, with or without wait.
    let (status, _) = request(&api, "GET", "/v1/effective-routes?nic=nope&since=0&wait=5").unwrap();
    assert_eq!(status, 404);
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}
