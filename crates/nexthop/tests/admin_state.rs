//! `lb set-admin` outlives the process and every reload when the config has `state_dir`: a
//! drained backend is still drained after a restart and after a reload that restarts its load
//! balancer. Without `state_dir` the CLI says the change lasts until a restart.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{cli, config_file, free_port, json, run_daemon, Daemon};

fn config(api: &str, interval_ms: u32, state_dir: Option<&Path>) -> String {
    let state = state_dir
        .map(|d| format!("state_dir = \"{}\"\n\n", d.display()))
        .unwrap_or_default();
    format!(
        "{state}[[load_balancer]]\nname = \"nva-ilb\"\nfrontend = \"10.1.0.100\"\nmode = \"active-passive\"\n\
         backends = [{{ address = \"127.0.14.10\", priority = 1 }}, {{ address = \"127.0.14.11\", priority = 2 }}]\n\
         probe = {{ protocol = \"tcp\", port = {}, interval_ms = {interval_ms}, rise = 2, fall = 2 }}\n\n\
         [api]\nlisten = \"{api}\"\n",
        free_port()
    )
}

fn start(file: &Path, api: &str) -> Daemon {
    let mut d = run_daemon(file);
    let until = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(api).is_err() {
        assert!(d.0.try_wait().unwrap().is_none(), "nexthop exited");
        assert!(Instant::now() < until, "no API on {api}");
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}

fn admin_of(api: &str, backend: &str) -> String {
    let v = json(api, &["lb", "show", "nva-ilb", "-o", "json"]).expect("lb show");
    v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["address"] == backend)
        .map(|b| b["adminState"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn a_drain_survives_a_restart_and_a_reload() {
    let api = format!("127.0.0.1:{}", free_port());
    let file = config_file("admin-state", "");
    let state = file.parent().unwrap().join("state");
    std::fs::write(&file, config(&api, 1000, Some(&state))).unwrap();
    let d = start(&file, &api);
    let (ok, out) = cli(
        &api,
        &["lb", "set-admin", "nva-ilb", "127.0.14.10", "drain"],
    );
    assert!(ok && out.contains("kept across restarts"), "{out}");
    assert_eq!(admin_of(&api, "127.0.14.10"), "drain");
    assert_eq!(admin_of(&api, "127.0.14.11"), "none");

    // A restart.
    drop(d);
    let _d = start(&file, &api);
    assert_eq!(admin_of(&api, "127.0.14.10"), "drain", "lost in a restart");

    // A reload that restarts the load balancer (another probe interval).
    std::fs::write(&file, config(&api, 2000, Some(&state))).unwrap();
    let (ok, out) = cli(&api, &["reload"]);
    assert!(ok && out.contains("(re)started"), "{out}");
    assert_eq!(admin_of(&api, "127.0.14.10"), "drain", "lost in a reload");

    // `none` gives it back to the probes, also after a restart.
    let (ok, out) = cli(&api, &["lb", "set-admin", "nva-ilb", "127.0.14.10", "none"]);
    assert!(ok, "{out}");
    drop(_d);
    let _d = start(&file, &api);
    assert_eq!(admin_of(&api, "127.0.14.10"), "none");
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

#[test]
fn without_state_dir_the_cli_says_the_change_lasts_until_a_restart() {
    let api = format!("127.0.0.1:{}", free_port());
    let file = config_file("admin-mem", "");
    std::fs::write(&file, config(&api, 1000, None)).unwrap();
    let _d = start(&file, &api);
    let (ok, out) = cli(&api, &["lb", "set-admin", "nva-ilb", "127.0.14.11", "down"]);
    assert!(ok && out.contains("until nexthop restarts"), "{out}");
    assert_eq!(admin_of(&api, "127.0.14.11"), "down");
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}
