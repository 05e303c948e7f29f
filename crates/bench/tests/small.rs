//! The harness's CI mode, end to end: `nexthop-bench --small` against this workspace's nexthop
//! binary (4 testers × 1,000 /32s, real BGP sessions on 127.0.0.0/8), and the harness's own
//! injector into its sink. Skipped (loudly; a failure under LABTEST_REQUIRE=1, as in CI) when
//! the nexthop binary has not been built.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_nexthop-bench");

/// nexthop of the same cargo profile as this test (cargo builds every workspace binary for
/// `cargo test --workspace`), else of the other profile.
fn nexthop_binary() -> Option<PathBuf> {
    let bench = PathBuf::from(BENCH);
    let profile_dir = bench.parent()?.to_path_buf();
    let target_dir = profile_dir.parent()?.to_path_buf();
    [
        profile_dir.join("nexthop"),
        target_dir.join("release").join("nexthop"),
        target_dir.join("debug").join("nexthop"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// A port free on the target address right now (tests run in parallel with other suites).
fn free_port(net: u8) -> u16 {
    TcpListener::bind((format!("127.{net}.0.1").as_str(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BENCH)
        .args(args)
        .output()
        .expect("run nexthop-bench");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn small_mode_converges_against_nexthop() {
    let Some(nexthop) = nexthop_binary() else {
        labtest::skip("the nexthop binary is not built (cargo build -p nexthop)");
        return;
    };
    let port = free_port(78).to_string();
    let (ok, text) = run(&[
        "--small",
        "--nexthop-bin",
        nexthop.to_str().unwrap(),
        "--net",
        "78",
        "--port",
        &port,
        "--timeout",
        "60",
    ]);
    assert!(ok, "nexthop-bench --small failed:\n{text}");
    assert!(text.contains("4000/4000 routes held"), "{text}");
    assert!(text.contains("spot checks 12/12 ok"), "{text}");
    assert!(text.contains("AS path \"65515 65001\""), "{text}");
    assert!(text.contains("ok: every run converged"), "{text}");
}

#[test]
fn injector_into_sink_converges() {
    let port = free_port(79).to_string();
    let (ok, text) = run(&[
        "--scenario",
        "3x2000",
        "--targets",
        "sink",
        "--runs",
        "1",
        "--no-write",
        "--net",
        "79",
        "--port",
        &port,
        "--timeout",
        "60",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("6000/6000 routes held"), "{text}");
    assert!(text.contains("| 3 × 2,000 | injector→sink |"), "{text}");
}

#[test]
fn small_mode_fails_when_the_target_cannot_start() {
    // A "nexthop" that exits at once: the harness must report it and exit non-zero.
    let port = free_port(80).to_string();
    let (ok, text) = run(&[
        "--small",
        "--nexthop-bin",
        "/bin/false",
        "--net",
        "80",
        "--port",
        &port,
        "--timeout",
        "20",
    ]);
    assert!(!ok, "{text}");
    assert!(text.contains("FAILED"), "{text}");
}
