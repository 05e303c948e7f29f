//! Helpers for the tests that run the `nexthop` binary (each test file uses a subset).
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command};

/// A `nexthop run` (or any child) that is killed and reaped when the test ends, failed or not.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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
