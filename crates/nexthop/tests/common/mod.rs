//! Helpers for the tests that run the `nexthop` binary (each test file uses a subset).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bgp::fsm::SessionConfig;
use bgp::wire::{AsPath, Origin, PathAttributes, UpdateMessage};
use bgp_driver::{spawn_peer, PeerConfig, PeerEvent, PeerHandle};
use tokio::sync::mpsc;

/// A `nexthop run` (or any child) that is killed and reaped when the test ends, failed or not.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `text` to `nexthop.toml` in a fresh directory named after `tag` and this process;
/// returns the file (its parent is the directory to remove at the end).
pub fn config_file(tag: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nexthop-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("nexthop.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// `nexthop run --config CONFIG`, its stderr discarded.
pub fn run_daemon(config: &Path) -> Daemon {
    Daemon(
        Command::new(env!("CARGO_BIN_EXE_nexthop"))
            .args(["run", "--config"])
            .arg(config)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// An NVA (AS 65001, router id 10.1.2.10): a real BGP speaker that connects from `local` to the
/// route server instance at `remote:port`; returns once the session is Established (20 s at
/// most), with the receiver of its further events.
pub async fn nva_session(
    local: Ipv4Addr,
    remote: Ipv4Addr,
    port: u16,
) -> (PeerHandle, mpsc::Receiver<((), PeerEvent)>) {
    let mut s = SessionConfig::new(65001, Ipv4Addr::new(10, 1, 2, 10), 65515);
    s.connect_retry = Duration::from_millis(500);
    let mut cfg = PeerConfig::new("nva1", s, IpAddr::V4(local), IpAddr::V4(remote));
    cfg.remote_port = port;
    cfg.restart_delay = Duration::from_millis(200);
    let (tx, mut rx) = mpsc::channel(64);
    let nva = spawn_peer(cfg, tx, ());
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some((_, PeerEvent::Established { .. }))) => return (nva, rx),
            Ok(Some(_)) => {}
            other => panic!("no session: {other:?}"),
        }
    }
}

/// The branch 192.168.10.0/24 from AS 65001 with `next_hop`.
pub fn branch_update(next_hop: Ipv4Addr) -> UpdateMessage {
    UpdateMessage {
        withdrawn: vec![],
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(vec![65001])),
            next_hop: Some(next_hop),
            ..Default::default()
        },
        nlri: vec!["192.168.10.0/24".parse().unwrap()],
    }
}

/// A TCP port free on 127.0.0.1 at the time of the call.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run_cli(api: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nexthop"))
        .arg("--api")
        .arg(format!("http://{api}"))
        .args(args)
        .output()
        .unwrap()
}

/// `nexthop --api http://API ARGS…`: whether it succeeded, and its stdout followed by stderr.
pub fn cli(api: &str, args: &[&str]) -> (bool, String) {
    let out = run_cli(api, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The JSON a CLI command printed on stdout; None if it failed (e.g. the API is not up yet).
pub fn json(api: &str, args: &[&str]) -> Option<serde_json::Value> {
    let out = run_cli(api, args);
    if out.status.success() {
        serde_json::from_slice(&out.stdout).ok()
    } else {
        None
    }
}
