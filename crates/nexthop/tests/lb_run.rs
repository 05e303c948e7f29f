//! `nexthop run` with only a load balancer whose backends are HTTP listeners this test runs on
//! 127.0.0.0/8: `nexthop lb show -o json` reflects a failure and the failover, and
//! `lb set-admin` drains. No root needed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{cli, config_file, free_port, run_daemon};

/// An HTTP health endpoint that answers 200, or 500 when `sick`; `stop` closes it.
struct Backend {
    sick: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

fn backend(addr: SocketAddr) -> Backend {
    let l = TcpListener::bind(addr).unwrap();
    l.set_nonblocking(true).unwrap();
    let (sick, stop) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (s2, t2) = (sick.clone(), stop.clone());
    std::thread::spawn(move || {
        while !t2.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut c, _)) => {
                    let _ = c.set_nonblocking(false);
                    let mut buf = [0u8; 512];
                    let _ = c.read(&mut buf);
                    let status = if s2.load(Ordering::Relaxed) {
                        "500 Internal Server Error"
                    } else {
                        "200 OK"
                    };
                    let _ = write!(
                        c,
                        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Backend { sick, stop }
}

fn wait(api: &str, what: &str, cond: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let t = Instant::now();
    loop {
        // Until the daemon's API is up, the CLI fails: keep trying.
        let (ok, out) = cli(api, &["lb", "show", "nva-ilb", "-o", "json"]);
        let v: serde_json::Value = if ok {
            serde_json::from_str(&out).unwrap()
        } else {
            serde_json::Value::Null
        };
        if ok && cond(&v) {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}: {v:#} {out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn role(v: &serde_json::Value, addr: &str) -> (String, String) {
    let b = v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["address"] == addr)
        .unwrap();
    (
        b["health"].as_str().unwrap().to_string(),
        b["role"].as_str().unwrap().to_string(),
    )
}

#[test]
fn lb_show_reflects_failure_and_failover() {
    let (a, b) = ("127.0.9.10", "127.0.9.11");
    let port = free_port();
    let api = format!("127.0.0.1:{}", free_port());
    let ba = backend(format!("{a}:{port}").parse().unwrap());
    let _bb = backend(format!("{b}:{port}").parse().unwrap());
    let cfg = config_file(
        "lbrun",
        &format!(
            r#"[[load_balancer]]
name = "nva-ilb"
frontend = "10.1.0.100"
mode = "active-passive"
backends = [{{ address = "{a}", priority = 1 }}, {{ address = "{b}", priority = 2 }}]
probe = {{ protocol = "http", port = {port}, path = "/health", interval_ms = 100, rise = 2, fall = 3 }}

[api]
listen = "{api}"
"#
        ),
    );
    let _d = run_daemon(&cfg);

    let v = wait(&api, "both up, priority 1 active", |v| {
        role(v, a) == ("up".into(), "active".into()) && role(v, b).0 == "up"
    });
    assert_eq!(v["frontend"], "10.1.0.100");
    assert_eq!(v["mode"], "active-passive");
    assert_eq!(role(&v, b), ("up".into(), "standby".into()));
    let last = &v["backends"][0]["lastProbe"];
    assert_eq!(last["ok"], true);
    assert!(last["detail"].as_str().unwrap().contains("200"), "{last}");

    // HTTP 500 on the active: down after `fall` probes, the standby takes over.
    ba.sick.store(true, Ordering::Relaxed);
    let t = Instant::now();
    let v = wait(&api, "failover to the standby", |v| {
        role(v, a).0 == "down" && role(v, b).1 == "active"
    });
    println!("failover seen by the API after {:?}", t.elapsed());
    let last = &v["backends"][0]["lastProbe"];
    assert!(last["detail"].as_str().unwrap().contains("500"), "{last}");
    assert!(v["backends"][0]["probesFailed"].as_u64().unwrap() >= 3);

    // Recovery without preemption: healthy again, but the standby stays active.
    ba.sick.store(false, Ordering::Relaxed);
    let v = wait(&api, "recovery", |v| role(v, a).0 == "up");
    assert_eq!(role(&v, b).1, "active", "no preemption by default");

    // Admin state: drain the active one.
    let (ok, out) = cli(&api, &["lb", "set-admin", "nva-ilb", b, "drain"]);
    assert!(ok, "{out}");
    let v = wait(&api, "drain", |v| v["backends"][1]["adminState"] == "drain");
    assert_eq!(
        role(&v, a).1,
        "active",
        "the drained backend takes no new flows"
    );
    let (ok, out) = cli(&api, &["lb", "set-admin", "nva-ilb", "127.0.9.99", "down"]);
    assert!(!ok && out.contains("no backend 127.0.9.99"), "{out}");

    // The listener goes away entirely: connection refused is down too.
    ba.stop.store(true, Ordering::Relaxed);
    wait(&api, "down on connection refused", |v| {
        role(v, a).0 == "down"
    });
    let metrics = {
        let mut s = std::net::TcpStream::connect(&api).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut m = String::new();
        s.read_to_string(&mut m).unwrap();
        m
    };
    assert!(
        metrics.contains(&format!(
            "lb_backend_health{{lb=\"nva-ilb\",backend=\"{a}\"}} 0"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("lb_probes_failed_total"));
    let _ = std::fs::remove_dir_all(cfg.parent().unwrap());
}
