//! `nexthop demo --duration N` runs the embedded default over real TCP on 127.0.0.0/8 and exits 0
//! once both instances learned the branch prefix from both emulated NVAs.

use std::process::Command;

#[test]
fn demo_learns_the_route_on_both_instances() {
    let out = Command::new(env!("CARGO_BIN_EXE_nexthop"))
        .args(["demo", "--duration", "4", "--port", "21179"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for inst in ["RouteServiceRole_IN_0", "RouteServiceRole_IN_1"] {
        for nva in ["nva1", "nva2"] {
            let line = format!("{inst} learned from {nva}: 192.168.10.0/24");
            assert!(stdout.contains(&line), "missing {line:?} in:\n{stdout}");
        }
    }
    assert!(stdout.contains("next hop 10.1.0.100"));
}
