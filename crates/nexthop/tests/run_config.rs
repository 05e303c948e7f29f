//! `nexthop run --config FILE` end to end (SPEC §6): a bad config is refused before anything
//! starts, with every problem named by file and key path; a good one runs and answers the API;
//! an edited config is applied on SIGHUP and on `nexthop reload` (POST /v1/reload) without
//! touching the sessions it does not change, and an invalid edit leaves the running config alone.
//!
//! Every process started here (nexthop, gobgpd) is owned by a guard that stops it when dropped,
//! also when an assertion fails; the working directories (config, logs) are kept on failure and
//! their paths printed.
//!
//! Addresses: 127.0.8.0/24 (route server instances .4 and .5, GoBGP peers .10–.12) and
//! 127.0.9.0/24 for the test of a bug. Each test picks its own free ports, so the tests run in
//! parallel with each other and with other test binaries.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use labtest::{GoBgp, GoBgpNeighbor, Process, Workdir};
use serde_json::Value;

const IN_0: &str = "RouteServiceRole_IN_0";
const IN_1: &str = "RouteServiceRole_IN_1";
const INSTANCES: [&str; 2] = ["127.0.8.4", "127.0.8.5"];
/// How long a session may take to come up: both sides retry every 5 s.
const UP: Duration = Duration::from_secs(60);

/// The binary, with an environment that does not change its output: no backtraces after
/// `Error:` and no API address from the developer's shell.
fn nexthop() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nexthop"));
    c.env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("NEXTHOP_API")
        .stdin(Stdio::null());
    c
}

fn free_port() -> u16 {
    labtest::free_port().expect("a free port")
}

/// True when something accepts a TCP connection on `addr`.
fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

fn assert_refused(addr: SocketAddr, context: &str) {
    match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        Err(e) => panic!("{context}: connecting to {addr}: expected refused, got {e}"),
        Ok(_) => panic!("{context}: something listens on {addr}"),
    }
}

fn sock(addr: &str, port: u16) -> SocketAddr {
    format!("{addr}:{port}").parse().expect("socket address")
}

/// A child that is killed and reaped when the guard drops, for the short-lived runs.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Config errors: nothing starts, every problem named.
// ---------------------------------------------------------------------------------------------

/// Writes `template` (with `{port}` and `{api}` replaced by free ports) to a file, runs
/// `nexthop run --config FILE` and checks that it exits non-zero within a few seconds, that
/// stderr has exactly one `FILE: KEY: PROBLEM` line per `expected` (key, part of the problem),
/// and that nothing listened on the API port or the BGP port of either instance, while it ran
/// or after. Returns stderr.
fn assert_refused_config(tag: &str, template: &str, expected: &[(&str, &str)]) -> String {
    let (port, api) = (free_port(), free_port());
    let text = template
        .replace("{port}", &port.to_string())
        .replace("{api}", &api.to_string());
    let dir = Workdir::new(tag).expect("workdir");
    let file = dir.write("nexthop.toml", &text).expect("config written");
    let stderr_path = dir.file("stderr.log");
    let child = nexthop()
        .args(["run", "--config"])
        .arg(&file)
        .stdout(File::create(dir.file("stdout.log")).expect("stdout file"))
        .stderr(File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("nexthop runs");
    let mut child = KillOnDrop(child);

    let probes: Vec<SocketAddr> = std::iter::once(sock("127.0.0.1", api))
        .chain(INSTANCES.iter().map(|a| sock(a, port)))
        .collect();
    let started = Instant::now();
    let mut listened = Vec::new();
    let status: ExitStatus = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break status;
        }
        for p in &probes {
            if !listened.contains(p) && accepts(*p) {
                listened.push(*p);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{tag}: nexthop still running after 5 s on a bad config:\n{text}\nstderr:\n{}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let context = format!("{tag}: config:\n{text}\nstderr:\n{stderr}");
    assert!(!status.success(), "{context}\nexited with {status}");
    assert!(listened.is_empty(), "{context}\nlistened on {listened:?}");
    for p in &probes {
        assert_refused(*p, &context);
    }

    let prefix = format!("{}: ", file.display());
    let error_lines: Vec<&str> = stderr
        .lines()
        .map(|l| {
            l.strip_prefix("nexthop: ")
                .or_else(|| l.strip_prefix("Error: "))
                .unwrap_or(l)
        })
        .filter(|l| l.starts_with(&prefix))
        .collect();
    for (key, problem) in expected {
        let at = format!("{prefix}{key}: ");
        let line = error_lines.iter().find(|l| l.starts_with(&at));
        let line = line.unwrap_or_else(|| panic!("{context}\nno line starting {at:?}"));
        assert!(
            line.contains(problem),
            "{context}\nline {line:?} does not say {problem:?}"
        );
    }
    assert_eq!(
        error_lines.len(),
        expected.len(),
        "{context}\none error line per problem expected: {expected:?}"
    );
    stderr
}

/// Two peers, the second with ASN `{asn}`; the route server keeps its default ASN 65515.
const SECOND_PEER_ASN: &str = r#"
[route_server]
instances = ["127.0.8.4", "127.0.8.5"]
port = {port}

[[route_server.peer]]
name = "g1"
address = "127.0.8.10"
asn = 65001

[[route_server.peer]]
name = "g2"
address = "127.0.8.11"
asn = {asn}

[api]
listen = "127.0.0.1:{api}"
"#;

#[test]
fn reserved_peer_asns_are_refused() {
    for asn in ["65515", "23456", "64496"] {
        let stderr = assert_refused_config(
            &format!("reserved-{asn}"),
            &SECOND_PEER_ASN.replace("{asn}", asn),
            &[("route_server.peer[1].asn", &format!("{asn} is reserved"))],
        );
        // The message lists what is reserved, so the user need not look it up.
        assert!(
            stderr.contains("64496–64511") && stderr.contains("65535–65551"),
            "{}",
            stderr
        );
    }
}

#[test]
fn the_route_servers_own_asn_is_refused_for_a_peer() {
    let template = SECOND_PEER_ASN
        .replace("{asn}", "65100")
        .replace("port = {port}", "port = {port}\nasn = 65100");
    assert_refused_config(
        "own-asn",
        &template,
        &[(
            "route_server.peer[1].asn",
            "65100 is the route server's own ASN",
        )],
    );
}

#[test]
fn an_unknown_key_is_refused_with_the_valid_ones() {
    let template = SECOND_PEER_ASN
        .replace("{asn}", "65002")
        .replace("asn = 65001", "asn = 65001\npasword = \"secret\"");
    let stderr = assert_refused_config(
        "unknown-key",
        &template,
        &[(
            "route_server.peer[0].pasword",
            "unknown key (did you mean `password`?)",
        )],
    );
    assert!(
        stderr.contains("valid keys: name, address, asn"),
        "{}",
        stderr
    );
    // The value of a mistyped password key is not echoed.
    assert!(!stderr.contains("secret"), "{}", stderr);
}

const ADDRESS_SPACE: &str = r#"
[[virtual_network]]
name = "hub"
region = "westeurope"
address_space = [{space}]

[route_server]
virtual_network = "hub"
instances = ["127.0.8.4", "127.0.8.5"]
port = {port}

[[route_server.peer]]
name = "g1"
address = "127.0.8.10"
asn = 65001

[api]
listen = "127.0.0.1:{api}"
"#;

#[test]
fn a_bad_prefix_in_the_address_space_is_refused() {
    for (space, problem) in [
        ("\"10.1.0.0/33\"", "invalid prefix length"),
        (
            "\"10.1.0.1/16\"",
            "host bits set, did you mean 10.1.0.0/16?",
        ),
        ("\"10.1.0.0\"", "expected ADDRESS/LENGTH"),
        ("\"10.1.0.0/16\", \"10.1.128.0/17\"", "overlaps 10.1.0.0/16"),
    ] {
        let key = if space.contains(',') {
            "virtual_network[0].address_space[1]"
        } else {
            "virtual_network[0].address_space[0]"
        };
        // One error only: the network whose prefix is bad is still known by name, so
        // `route_server.virtual_network = "hub"` is not a second, false, error.
        assert_refused_config(
            "bad-prefix",
            &ADDRESS_SPACE.replace("{space}", space),
            &[(key, problem)],
        );
    }
}

#[test]
fn a_duplicate_peer_name_is_refused() {
    let template = SECOND_PEER_ASN
        .replace("{asn}", "65002")
        .replace("name = \"g2\"", "name = \"g1\"");
    assert_refused_config(
        "dup-name",
        &template,
        &[(
            "route_server.peer[1].name",
            "duplicate peer name \"g1\" (first at route_server.peer[0].name)",
        )],
    );
}

#[test]
fn two_errors_are_reported_at_once() {
    // One in [route_server] (a check across values), one in [api] (an unknown key).
    let template = SECOND_PEER_ASN
        .replace("{asn}", "64496")
        .replace("listen = ", "listn = \"127.0.0.1:1\"\nlisten = ");
    assert_refused_config(
        "two-errors",
        &template,
        &[
            ("route_server.peer[1].asn", "64496 is reserved"),
            ("api.listn", "unknown key (did you mean `listen`?)"),
        ],
    );
    // Both in [[route_server.peer]]: an unknown key in one, a duplicate address in another.
    let template = SECOND_PEER_ASN
        .replace("{asn}", "65002")
        .replace("asn = 65001", "asn = 65001\nholdtime = 9")
        .replace("127.0.8.11", "127.0.8.10");
    assert_refused_config(
        "two-errors",
        &template,
        &[
            ("route_server.peer[0].holdtime", "did you mean `hold_time`?"),
            (
                "route_server.peer[1].address",
                "duplicate peer address 127.0.8.10",
            ),
        ],
    );
}

/// A value that does not parse (a bad instance address) makes the whole `[route_server]` table
/// unreadable, so the other problems in it (here a reserved peer ASN) are not reported: the
/// user fixes one, runs again, and only then learns of the next.
#[test]
#[ignore = "bug: a value that fails to parse hides every other problem of its table \
            (route_server.instances[1] = \"300.1.1.1\" hides route_server.peer[1].asn = 65515)"]
fn a_value_error_does_not_hide_the_other_errors_of_its_table() {
    let template = SECOND_PEER_ASN
        .replace("{asn}", "65515")
        .replace("\"127.0.8.5\"", "\"300.1.1.1\"");
    assert_refused_config(
        "hidden-errors",
        &template,
        &[
            ("route_server.instances[1]", "invalid IPv4 address"),
            ("route_server.peer[1].asn", "65515 is reserved"),
        ],
    );
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let dir = Workdir::new("missing").expect("workdir");
    let file = dir.file("no-such.toml");
    let out = nexthop()
        .args(["run", "--config"])
        .arg(&file)
        .output()
        .expect("nexthop runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: cannot read: ", file.display()))
            && stderr.contains("No such file or directory"),
        "{stderr}"
    );
}

#[test]
fn an_api_port_in_use_is_an_error_and_nothing_stays_up() {
    let (port, holder) = (
        free_port(),
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    let api = holder.local_addr().unwrap();
    let dir = Workdir::new("api-in-use").expect("workdir");
    let file = dir
        .write(
            "nexthop.toml",
            &good_config(port, api, &[("g1", "127.0.8.10", 65001)]),
        )
        .unwrap();
    let child = nexthop()
        .args(["run", "--config"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(File::create(dir.file("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let ok = labtest::wait_until(Duration::from_secs(5), || {
        child.0.try_wait().ok().flatten().is_some()
    });
    let stderr = std::fs::read_to_string(dir.file("stderr.log")).unwrap_or_default();
    assert!(ok, "still running although {api} is taken:\n{stderr}");
    assert!(!child.0.wait().unwrap().success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {api}")),
        "{stderr}"
    );
    for a in INSTANCES {
        assert_refused(sock(a, port), &stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. and 3. A running daemon.
// ---------------------------------------------------------------------------------------------

/// `[route_server]` on both instances with `peers` (name, address, ASN), the API on `api`.
fn good_config(port: u16, api: SocketAddr, peers: &[(&str, &str, u32)]) -> String {
    let mut c = format!(
        "[route_server]\ninstances = [\"{}\", \"{}\"]\nport = {port}\n",
        INSTANCES[0], INSTANCES[1]
    );
    for (name, address, asn) in peers {
        c.push_str(&format!(
            "\n[[route_server.peer]]\nname = \"{name}\"\naddress = \"{address}\"\nasn = {asn}\n"
        ));
    }
    c.push_str(&format!("\n[api]\nlisten = \"{api}\"\n"));
    c
}

/// A running `nexthop run`, stopped (SIGTERM, then SIGKILL) when dropped.
struct Nexthop {
    // Field order is drop order: the process stops before its directory goes.
    process: Process,
    config: PathBuf,
    api: String,
    dir: Workdir,
}

impl Nexthop {
    /// Writes `config` and starts `nexthop run` on it; returns once the API accepts
    /// connections.
    fn start(tag: &str, config: &str, api: SocketAddr) -> Nexthop {
        Self::start_with(tag, config, api, &[])
    }

    /// [`Nexthop::start`] with more arguments for `nexthop run` (`--instance`, `--api-listen`).
    fn start_with(tag: &str, config: &str, api: SocketAddr, args: &[&str]) -> Nexthop {
        let dir = Workdir::new(tag).expect("workdir");
        let file = dir.write("nexthop.toml", config).expect("config written");
        let mut cmd = nexthop();
        cmd.env("NEXTHOP_LOG", "info")
            .args(["run", "--config"])
            .arg(&file)
            .args(args);
        let process = Process::spawn(cmd, "nexthop", &dir.file("nexthop.log")).expect("spawn");
        let mut n = Nexthop {
            process,
            config: file,
            api: format!("http://{api}"),
            dir,
        };
        let up = labtest::wait_until(Duration::from_secs(15), || {
            !n.process.is_running() || accepts(api)
        });
        assert!(
            up && n.process.is_running(),
            "nexthop did not serve its API on {api}:\n{}",
            n.log()
        );
        n
    }

    /// Replaces the config file; a rename, so a reload never reads half a file.
    fn write_config(&self, config: &str) {
        let tmp = self.dir.write("nexthop.toml.new", config).expect("write");
        std::fs::rename(tmp, &self.config).expect("rename");
    }

    fn sighup(&self) {
        let st = Command::new("kill")
            .args(["-HUP", &self.process.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(st.success(), "kill -HUP {}", self.process.pid());
    }

    /// `nexthop --api URL ARGS...`
    fn cli(&self, args: &[&str]) -> Output {
        nexthop()
            .args(["--api", &self.api])
            .args(args)
            .output()
            .expect("nexthop CLI runs")
    }

    /// `nexthop --api URL ARGS... -o json`, parsed.
    fn json(&self, args: &[&str]) -> Result<Value, String> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.cli(&all);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "{args:?} failed ({}): {}{stdout}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_str(&stdout).map_err(|e| format!("{args:?}: {e}: {stdout}"))
    }

    fn peers(&self) -> Value {
        self.json(&["peers"])
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log()))
    }

    /// Polls `peers -o json` until `ok` holds; panics with the last answer and the log.
    fn wait_peers(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let done = labtest::wait_until(UP, || {
            last = self.peers();
            ok(&last)
        });
        assert!(
            done,
            "timed out waiting for {what}; peers:\n{last:#}\nlog:\n{}",
            self.log()
        );
        last
    }

    fn log(&self) -> String {
        self.process.output()
    }

    fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}

impl Drop for Nexthop {
    fn drop(&mut self) {
        self.process.stop();
    }
}

/// The peers of one instance by name.
fn by_name<'a>(peers: &'a Value, instance: &str) -> BTreeMap<String, &'a Value> {
    peers[instance]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["name"].as_str().unwrap_or_default().to_string(), p))
        .collect()
}

/// True when both instances have exactly `names` as peers, all Established.
fn exactly_established(peers: &Value, names: &[&str]) -> bool {
    [IN_0, IN_1].iter().all(|i| {
        let ps = by_name(peers, i);
        ps.keys().map(String::as_str).eq(names.iter().copied())
            && ps.values().all(|p| p["state"] == "Established")
    })
}

/// `uptime` of `name` on each instance.
fn uptimes(peers: &Value, name: &str) -> Vec<u64> {
    [IN_0, IN_1]
        .iter()
        .map(|i| {
            by_name(peers, i)
                .get(name)
                .and_then(|p| p["uptime"].as_u64())
                .unwrap_or_else(|| panic!("{name} on {i} has no uptime: {peers:#}"))
        })
        .collect()
}

#[test]
fn a_good_config_runs_and_answers_the_api() {
    let (port, api) = (free_port(), sock("127.0.0.1", free_port()));
    let config = good_config(
        port,
        api,
        &[("g1", "127.0.8.10", 65001), ("g2", "127.0.8.11", 65002)],
    );
    let mut nh = Nexthop::start("good", &config, api);
    // The API accepts as soon as it is bound; the line follows when the daemon is up.
    let running = format!("running {}", nh.config.display());
    assert!(
        labtest::wait_until(Duration::from_secs(10), || nh.log().contains(&running)),
        "{}",
        nh.log()
    );
    for a in INSTANCES {
        assert!(accepts(sock(a, port)), "no BGP listener on {a}:{port}");
    }

    let peers = nh.peers();
    let instances: Vec<&String> = peers.as_object().expect("an object").keys().collect();
    assert_eq!(instances, [IN_0, IN_1], "{peers:#}");
    for inst in [IN_0, IN_1] {
        let ps = peers[inst].as_array().expect("a list of peers");
        assert_eq!(ps.len(), 2, "{peers:#}");
        for (p, (name, ip, asn)) in ps
            .iter()
            .zip([("g1", "127.0.8.10", 65001), ("g2", "127.0.8.11", 65002)])
        {
            assert_eq!(p["name"], name, "{peers:#}");
            assert_eq!(p["peerIp"], ip, "{peers:#}");
            assert_eq!(p["peerAsn"], asn, "{peers:#}");
            let state = p["state"].as_str().unwrap_or_default();
            assert!(
                ["Idle", "Connect", "Active"].contains(&state),
                "no peer runs, so {name} cannot be {state:?}: {peers:#}"
            );
            for counter in ["routesReceived", "routesAccepted", "routesAdvertised"] {
                assert_eq!(p[counter], 0, "{counter}: {peers:#}");
            }
            assert!(p["uptime"].is_null(), "{peers:#}");
            assert!(
                p.get("lastError").is_some(),
                "lastError is always present: {peers:#}"
            );
        }
    }

    // The other read commands answer too.
    let learned = nh.json(&["routes", "learned", "--peer", "g1"]).unwrap();
    assert_eq!(
        learned,
        serde_json::json!({IN_0: [], IN_1: []}),
        "{learned:#}"
    );
    let out = nh.cli(&["routes", "learned", "--peer", "nosuch", "-o", "json"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no peer named \"nosuch\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(nh.is_running(), "{}", nh.log());
}

/// One GoBGP session as gobgpd sees it.
#[derive(Debug, Clone, PartialEq)]
struct GoSession {
    /// 6 = Established.
    state: u64,
    /// When the session last came up (Unix seconds); unchanged while it stays up.
    established_at: u64,
    opens_received: u64,
    notifications_received: u64,
}

/// gobgpd's sessions, by neighbor address.
fn go_sessions(g: &GoBgp) -> BTreeMap<String, GoSession> {
    let out = g.gobgp(&["neighbor", "-j"]).expect("gobgp neighbor");
    let v: Value = serde_json::from_str(&out).expect("gobgp JSON");
    v.as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let st = &n["state"];
            let received = &st["messages"]["received"];
            (
                n["conf"]["neighbor_address"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                GoSession {
                    state: st["session_state"].as_u64().unwrap_or(0),
                    established_at: n["timers"]["state"]["uptime"]["seconds"]
                        .as_u64()
                        .unwrap_or(0),
                    opens_received: received["open"].as_u64().unwrap_or(0),
                    notifications_received: received["notification"].as_u64().unwrap_or(0),
                },
            )
        })
        .collect()
}

/// gobgpd `addr` in `asn`, listening on `addr:port` and peering with both instances.
fn gobgp_peer(asn: u32, addr: &str, port: u16) -> GoBgp {
    let mut b = GoBgp::builder(asn, addr).listen(addr).port(port.into());
    for i in INSTANCES {
        b = b.neighbor(GoBgpNeighbor::new(i, 65515).port(port));
    }
    b.start(None)
        .unwrap_or_else(|e| panic!("gobgpd {addr}: {e}"))
}

fn go_established(g: &GoBgp) -> bool {
    INSTANCES
        .iter()
        .all(|i| g.neighbor_state(i) == "Established")
}

/// Networks of the Loc-RIB of each instance with the peers that have a path to them.
fn rib(nh: &Nexthop) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let v = nh.json(&["rib"]).unwrap_or_else(|e| panic!("{e}"));
    [IN_0, IN_1]
        .iter()
        .map(|i| {
            let entries = v[*i]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let peers = e["paths"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| p["sourcePeer"].as_str().unwrap_or_default().to_string())
                        .collect();
                    (e["network"].as_str().unwrap_or_default().to_string(), peers)
                })
                .collect();
            (i.to_string(), entries)
        })
        .collect()
}

fn rib_has(nh: &Nexthop, network: &str, peer: &str) -> bool {
    rib(nh).values().all(|r| {
        r.get(network)
            .is_some_and(|ps| ps.iter().any(|p| p == peer))
    })
}

fn rib_lacks(nh: &Nexthop, network: &str) -> bool {
    rib(nh).values().all(|r| !r.contains_key(network))
}

#[test]
fn reload_adds_and_removes_peers_and_keeps_the_others() {
    if !labtest::require(&["gobgpd", "gobgp"]) {
        return;
    }
    let (port, api) = (free_port(), sock("127.0.0.1", free_port()));
    let (g1_peer, g2_peer, g3_peer) = (
        ("g1", "127.0.8.10", 65001),
        ("g2", "127.0.8.11", 65002),
        ("g3", "127.0.8.12", 65003),
    );
    let mut nh = Nexthop::start("reload", &good_config(port, api, &[g1_peer, g2_peer]), api);
    let g1 = gobgp_peer(65001, "127.0.8.10", port);
    let g2 = gobgp_peer(65002, "127.0.8.11", port);
    g1.add_route("192.168.10.0/24", "10.1.0.100", &[]).unwrap();
    g2.add_route("192.168.20.0/24", "10.1.0.100", &[]).unwrap();
    nh.wait_peers("g1 and g2 Established on both instances", |p| {
        exactly_established(p, &["g1", "g2"])
    });
    assert!(
        labtest::wait_until(UP, || go_established(&g1) && go_established(&g2)),
        "g1: {:?}\ng2: {:?}",
        go_sessions(&g1),
        go_sessions(&g2)
    );
    assert!(
        labtest::wait_until(UP, || rib_has(&nh, "192.168.10.0/24", "g1")
            && rib_has(&nh, "192.168.20.0/24", "g2")),
        "{:?}",
        rib(&nh)
    );
    let g1_before = go_sessions(&g1);
    let g1_updates_before: Vec<Value> = [IN_0, IN_1]
        .iter()
        .map(|i| by_name(&nh.peers(), i)["g1"]["updatesReceived"].clone())
        .collect();
    let uptime_before = uptimes(&nh.peers(), "g1");
    let before = Instant::now();

    // SIGHUP: g2 out, g3 in.
    let g3 = gobgp_peer(65003, "127.0.8.12", port);
    nh.write_config(&good_config(port, api, &[g1_peer, g3_peer]));
    nh.sighup();
    let peers = nh.wait_peers("g3 Established and g2 gone after SIGHUP", |p| {
        exactly_established(p, &["g1", "g3"])
    });
    assert!(
        labtest::wait_until(UP, || go_established(&g3)),
        "g3: {:?}",
        go_sessions(&g3)
    );
    // g2 was told why (Cease) and stays down: its connections are refused now.
    for (addr, s) in go_sessions(&g2) {
        assert_ne!(s.state, 6, "g2 still up with {addr}: {s:?}");
        assert!(s.notifications_received >= 1, "g2 ← {addr}: {s:?}");
        assert!(
            g2.log().lines().any(|l| l.contains("Peer Down")
                && l.contains(&format!("Key={addr} "))
                && l.contains("code 6(cease)")
                && (l.contains("administrative shutdown")
                    || l.contains("deconfigured")
                    || l.contains("de-configured"))),
            "g2 saw no Cease from {addr}:\n{}",
            g2.log()
        );
    }
    let out = nh.cli(&["routes", "learned", "--peer", "g2", "-o", "json"]);
    assert!(!out.status.success(), "g2 is no longer configured");
    assert!(rib_lacks(&nh, "192.168.20.0/24"), "{:?}", rib(&nh));
    // g1 was never touched: same session (gobgpd's view), uptime kept growing (ours), its
    // route still there and no UPDATE re-sent.
    assert_eq!(
        go_sessions(&g1),
        g1_before,
        "g1's sessions were reset by a reload that did not change g1"
    );
    let uptime_after = uptimes(&peers, "g1");
    let elapsed = before.elapsed().as_secs();
    for (b, a) in uptime_before.iter().zip(&uptime_after) {
        assert!(
            *a + 1 >= b + elapsed,
            "g1's uptime went from {b} to {a} in {elapsed} s: reset? {peers:#}"
        );
    }
    assert!(rib_has(&nh, "192.168.10.0/24", "g1"), "{:?}", rib(&nh));
    let g1_updates_after: Vec<Value> = [IN_0, IN_1]
        .iter()
        .map(|i| by_name(&peers, i)["g1"]["updatesReceived"].clone())
        .collect();
    assert_eq!(g1_updates_after, g1_updates_before, "{peers:#}");

    // `nexthop reload` (POST /v1/reload): g2 back; g1 and g3 untouched.
    let g3_before = go_sessions(&g3);
    nh.write_config(&good_config(port, api, &[g1_peer, g3_peer, g2_peer]));
    let out = nh.cli(&["reload"]);
    assert!(
        out.status.success(),
        "reload: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let said: Value = serde_json::from_slice(&out.stdout).expect("reload answers JSON");
    assert_eq!(said["reloaded"], true, "{said}");
    nh.wait_peers("g2 back after nexthop reload", |p| {
        exactly_established(p, &["g1", "g2", "g3"])
    });
    assert!(
        labtest::wait_until(UP, || go_established(&g2)),
        "g2: {:?}",
        go_sessions(&g2)
    );
    assert!(
        labtest::wait_until(UP, || rib_has(&nh, "192.168.20.0/24", "g2")),
        "g2's route is learned again: {:?}",
        rib(&nh)
    );
    assert_eq!(go_sessions(&g1), g1_before, "g1 reset by the second reload");
    assert_eq!(go_sessions(&g3), g3_before, "g3 reset by the second reload");

    // An invalid edit: `nexthop reload` fails with the validation error, SIGHUP logs it, and
    // the running config stays with every session up.
    let g2_before = go_sessions(&g2);
    let bad = good_config(port, api, &[g1_peer, g3_peer, ("g2", "127.0.8.11", 65515)]);
    nh.write_config(&bad);
    let out = nh.cli(&["reload"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an invalid config was applied");
    assert!(
        stderr.contains(&format!(
            "{}: route_server.peer[2].asn: 65515 is reserved",
            nh.config.display()
        )) && stderr.contains("the running one stays"),
        "{stderr}"
    );
    nh.write_config(&format!("{bad}\n[route_server\n"));
    nh.sighup();
    assert!(
        labtest::wait_until(Duration::from_secs(10), || nh
            .log()
            .matches("config not applied")
            .count()
            >= 2),
        "no warning about the SIGHUP with a broken file:\n{}",
        nh.log()
    );
    assert!(
        nh.is_running(),
        "a bad file on SIGHUP stopped nexthop:\n{}",
        nh.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    let peers = nh.peers();
    assert!(
        exactly_established(&peers, &["g1", "g2", "g3"]),
        "{peers:#}"
    );
    assert_eq!(by_name(&peers, IN_0)["g2"]["peerAsn"], 65002, "{peers:#}");
    assert_eq!(go_sessions(&g1), g1_before, "g1 reset by an invalid reload");
    assert_eq!(go_sessions(&g2), g2_before, "g2 reset by an invalid reload");
    assert_eq!(go_sessions(&g3), g3_before, "g3 reset by an invalid reload");
}

/// The RIB task gives a new peer the id (slot) a removed one just freed, and the removed peer's
/// task reports its end (`Down`: "stopped by operator") after the new peer is in that slot; the
/// new peer then shows the old one's error, and the RIB takes the old session's Down for the new
/// peer's.
#[test]
fn a_peer_added_by_a_reload_does_not_inherit_a_removed_peers_error() {
    if !labtest::require(&["gobgpd", "gobgp"]) {
        return;
    }
    let (port, api) = (free_port(), sock("127.0.0.1", free_port()));
    let config = |peer: (&str, &str, u32)| {
        format!(
            "[route_server]\ninstances = [\"127.0.9.4\"]\nport = {port}\n\n\
             [[route_server.peer]]\nname = \"{}\"\naddress = \"{}\"\nasn = {}\n\n\
             [api]\nlisten = \"{api}\"\n",
            peer.0, peer.1, peer.2
        )
    };
    let nh = Nexthop::start("inherit", &config(("old", "127.0.9.11", 65002)), api);
    let _old = GoBgp::builder(65002, "127.0.9.11")
        .listen("127.0.9.11")
        .port(port.into())
        .neighbor(GoBgpNeighbor::new("127.0.9.4", 65515).port(port))
        .start(None)
        .unwrap();
    nh.wait_peers("old Established", |p| {
        by_name(p, IN_0)
            .get("old")
            .is_some_and(|p| p["state"] == "Established")
    });
    // "new" is not running: it never had a session, so it has no error of its own.
    nh.write_config(&config(("new", "127.0.9.12", 65003)));
    let out = nh.cli(&["reload"]);
    assert!(out.status.success());
    std::thread::sleep(Duration::from_secs(1));
    let peers = nh.peers();
    let new = by_name(&peers, IN_0)["new"].clone();
    assert!(
        new["lastError"].is_null(),
        "a peer that never connected shows {}: {peers:#}",
        new["lastError"]
    );
}

/// One instance on 127.0.10.4 with `peers` (name, address, ASN, TCP-MD5 key).
fn md5_config(port: u16, api: SocketAddr, peers: &[(&str, &str, u32, Option<&str>)]) -> String {
    let mut c = format!("[route_server]\ninstances = [\"127.0.10.4\"]\nport = {port}\n");
    for (name, address, asn, key) in peers {
        c.push_str(&format!(
            "\n[[route_server.peer]]\nname = \"{name}\"\naddress = \"{address}\"\nasn = {asn}\n"
        ));
        if let Some(k) = key {
            c.push_str(&format!("password = \"{k}\"\n"));
        }
    }
    c.push_str(&format!("\n[api]\nlisten = \"{api}\"\n"));
    c
}

fn state_on_in0(peers: &Value, name: &str) -> String {
    by_name(peers, IN_0)
        .get(name)
        .and_then(|p| p["state"].as_str())
        .unwrap_or("absent")
        .to_string()
}

/// A peer's `password` is TCP-MD5 (RFC 2385) on every connection of its session, ours and the
/// peer's: a real GoBGP with the same key comes up; after a reload that changes the key only
/// that peer goes down and stays down (GoBGP still signs with the old key, and neither side
/// accepts the other's segments), the other peer keeps its session; the right key again brings
/// it back. (It was copied into the config and then dropped: sessions ran unsigned.)
#[test]
fn a_peer_password_is_tcp_md5_on_the_session_and_a_reload_changes_it() {
    if !labtest::require(&["gobgpd", "gobgp"]) {
        return;
    }
    let (port, api) = (free_port(), sock("127.0.0.1", free_port()));
    let signed = |key| ("m1", "127.0.10.11", 65011, key);
    let plain = ("m2", "127.0.10.12", 65012, None);
    let nh = Nexthop::start(
        "md5",
        &md5_config(port, api, &[signed(Some("right-key")), plain]),
        api,
    );
    let speaker = |asn: u32, addr: &str, key: Option<&str>| {
        let mut n = GoBgpNeighbor::new("127.0.10.4", 65515).port(port);
        if let Some(k) = key {
            n = n.password(k);
        }
        GoBgp::builder(asn, addr)
            .listen(addr)
            .port(port.into())
            .neighbor(n)
            .start(None)
            .unwrap_or_else(|e| panic!("gobgpd {addr}: {e}"))
    };
    let m1 = speaker(65011, "127.0.10.11", Some("right-key"));
    let m2 = speaker(65012, "127.0.10.12", None);
    nh.wait_peers("m1 (signed) and m2 (plain) Established", |p| {
        state_on_in0(p, "m1") == "Established" && state_on_in0(p, "m2") == "Established"
    });

    // Another key on our side: m1 drops and cannot come back; m2 is untouched.
    let m2_before = go_sessions(&m2);
    nh.write_config(&md5_config(port, api, &[signed(Some("other-key")), plain]));
    let out = nh.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    nh.wait_peers("m1 down after its key changed", |p| {
        state_on_in0(p, "m1") != "Established"
    });
    // Both sides retry every 5 s: a session that could come up would be up by now.
    std::thread::sleep(Duration::from_secs(12));
    let peers = nh.peers();
    assert_ne!(state_on_in0(&peers, "m1"), "Established", "{peers:#}");
    assert_ne!(m1.neighbor_state("127.0.10.4"), "Established");
    assert_eq!(state_on_in0(&peers, "m2"), "Established", "{peers:#}");
    assert_eq!(
        go_sessions(&m2),
        m2_before,
        "m2 was reset by m1's key change"
    );

    // The right key again.
    nh.write_config(&md5_config(port, api, &[signed(Some("right-key")), plain]));
    assert!(nh.cli(&["reload"]).status.success());
    nh.wait_peers("m1 back with the right key", |p| {
        state_on_in0(p, "m1") == "Established"
    });
    assert_eq!(
        go_sessions(&m2),
        m2_before,
        "m2 was reset by m1's key change"
    );
}

/// A reload that cannot be applied (a new instance address that is not on this host) is
/// refused whole: the error names the address, every session stays up untouched, and a later
/// good reload applies (no half-started instance or leaked listener is left behind). It used
/// to drop every running instance.
#[test]
fn a_reload_that_cannot_bind_changes_nothing() {
    if !labtest::require(&["gobgpd", "gobgp"]) {
        return;
    }
    let (port, api) = (free_port(), sock("127.0.0.1", free_port()));
    let g1_peer = ("g1", "127.0.8.20", 65021);
    let g2_peer = ("g2", "127.0.8.21", 65022);
    let nh = Nexthop::start("refused", &good_config(port, api, &[g1_peer]), api);
    let g1 = gobgp_peer(65021, "127.0.8.20", port);
    nh.wait_peers("g1 Established", |p| exactly_established(p, &["g1"]));
    assert!(labtest::wait_until(UP, || go_established(&g1)));
    let g1_before = go_sessions(&g1);

    // A third instance on an address no interface has (TEST-NET-1: nothing is sent there; the
    // bind is refused with EADDRNOTAVAIL).
    let bad = good_config(port, api, &[g1_peer, g2_peer]).replace(
        &format!("instances = [\"{}\", \"{}\"]", INSTANCES[0], INSTANCES[1]),
        &format!(
            "instances = [\"{}\", \"{}\", \"192.0.2.4\"]",
            INSTANCES[0], INSTANCES[1]
        ),
    );
    assert!(bad.contains("192.0.2.4"));
    nh.write_config(&bad);
    let out = nh.cli(&["reload"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a reload that cannot bind was applied"
    );
    assert!(
        stderr.contains("192.0.2.4") && stderr.contains("nothing changed"),
        "{stderr}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let peers = nh.peers();
    assert!(exactly_established(&peers, &["g1"]), "{peers:#}");
    assert!(peers.get("RouteServiceRole_IN_2").is_none(), "{peers:#}");
    assert_eq!(
        go_sessions(&g1),
        g1_before,
        "g1 was reset by a refused reload"
    );

    // A good reload still applies: g2 comes up, g1 untouched.
    let g2 = gobgp_peer(65022, "127.0.8.21", port);
    nh.write_config(&good_config(port, api, &[g1_peer, g2_peer]));
    let out = nh.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    nh.wait_peers("g2 Established after the good reload", |p| {
        exactly_established(p, &["g1", "g2"])
    });
    assert!(labtest::wait_until(UP, || go_established(&g2)));
    assert_eq!(
        go_sessions(&g1),
        g1_before,
        "g1 was reset by the good reload"
    );
}

/// `nexthop run --instance ADDR --api-listen ADDR:PORT`: two processes from one config file are
/// the reference's two instances. Each runs only its own instance (named by its place in the
/// config), serves its own API, and a peer's session with one survives the other's kill -9.
#[test]
fn one_process_per_instance_from_one_config() {
    if !labtest::require(&["gobgpd", "gobgp"]) {
        return;
    }
    let port = free_port();
    // `[api] listen` in the file is never used: each process is given its own.
    let config = good_config(
        port,
        sock("127.0.0.1", free_port()),
        &[("g1", "127.0.8.10", 65001)],
    );
    let (api0, api1) = (
        sock("127.0.0.1", free_port()),
        sock("127.0.0.1", free_port()),
    );
    let (a0, a1) = (api0.to_string(), api1.to_string());
    let mut nh0 = Nexthop::start_with(
        "inst0",
        &config,
        api0,
        &["--instance", INSTANCES[0], "--api-listen", &a0],
    );
    let mut nh1 = Nexthop::start_with(
        "inst1",
        &config,
        api1,
        &["--instance", INSTANCES[1], "--api-listen", &a1],
    );
    let g1 = gobgp_peer(65001, "127.0.8.10", port);
    g1.add_route("192.168.10.0/24", "10.1.0.100", &[]).unwrap();

    let only = |nh: &Nexthop, name: &str| {
        nh.wait_peers(&format!("g1 Established on {name} only"), |p| {
            let keys: Vec<&String> = p
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            keys == [name]
                && by_name(p, name)
                    .get("g1")
                    .is_some_and(|g| g["state"] == "Established")
        })
    };
    only(&nh0, IN_0);
    only(&nh1, IN_1);
    assert!(
        labtest::wait_until(UP, || go_established(&g1)),
        "{:?}",
        go_sessions(&g1)
    );
    // Each process listens on its own instance's address only.
    assert!(accepts(sock(INSTANCES[0], port)) && accepts(sock(INSTANCES[1], port)));
    assert!(
        labtest::wait_until(UP, || {
            [(&nh0, IN_0), (&nh1, IN_1)].iter().all(|(nh, i)| {
                nh.json(&["rib"]).is_ok_and(|v| {
                    v[*i]
                        .as_array()
                        .is_some_and(|es| es.iter().any(|e| e["network"] == "192.168.10.0/24"))
                })
            })
        }),
        "both instances learn g1's route"
    );

    // kill -9 the first: g1's session with the second stays up, and the second keeps answering.
    let before = go_sessions(&g1);
    let up_before = by_name(&nh1.peers(), IN_1)["g1"]["uptime"].clone();
    nh0.process.kill();
    assert!(!nh0.is_running());
    assert!(
        labtest::wait_until(Duration::from_secs(10), || go_sessions(&g1)
            .get(INSTANCES[0])
            .is_some_and(|s| s.state != 6)),
        "g1 sees the killed instance go: {:?}",
        go_sessions(&g1)
    );
    std::thread::sleep(Duration::from_secs(2));
    let after = go_sessions(&g1);
    assert_eq!(after[INSTANCES[1]].state, 6, "{after:?}");
    assert_eq!(
        after[INSTANCES[1]].established_at, before[INSTANCES[1]].established_at,
        "g1's session with the surviving instance never dropped: {before:?} → {after:?}"
    );
    let p1 = nh1.peers();
    assert_eq!(by_name(&p1, IN_1)["g1"]["state"], "Established", "{p1:#}");
    assert!(
        by_name(&p1, IN_1)["g1"]["uptime"].as_u64() >= up_before.as_u64(),
        "{p1:#}"
    );
    assert!(nh1.is_running(), "{}", nh1.log());
}

/// `--instance` with an address the config does not list is refused before anything starts.
#[test]
fn an_instance_the_config_does_not_list_is_refused() {
    let (port, api) = (free_port(), sock("127.0.0.1", free_port()));
    let dir = Workdir::new("bad-instance").expect("workdir");
    let file = dir
        .write(
            "nexthop.toml",
            &good_config(port, api, &[("g1", "127.0.8.10", 65001)]),
        )
        .expect("config written");
    let out = nexthop()
        .args(["run", "--config"])
        .arg(&file)
        .args(["--instance", "127.0.8.9"])
        .output()
        .expect("nexthop runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "--instance 127.0.8.9: not one of route_server.instances (127.0.8.4, 127.0.8.5)"
        ),
        "{stderr}"
    );
    assert_refused(api, "no API after a refused --instance");
    for a in INSTANCES {
        assert_refused(sock(a, port), "no BGP listener after a refused --instance");
    }
}

/// `nexthop config check FILE`: what `run` would check, then the plan; nothing starts.
#[test]
fn config_check_prints_the_plan_and_runs_nothing() {
    let (port, api) = (free_port(), sock("127.0.0.1", free_port()));
    let dir = Workdir::new("config-check").expect("workdir");
    let good = dir
        .write(
            "good.toml",
            &good_config(port, api, &[("g1", "127.0.8.10", 65001)]),
        )
        .expect("config written");
    let check = |args: &[&str]| {
        let out = nexthop()
            .args(["config", "check"])
            .args(args)
            .output()
            .expect("nexthop runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let g = good.to_str().unwrap();
    let (ok, stdout, stderr) = check(&[g]);
    assert!(ok, "{stderr}");
    for line in [
        format!("{g}: valid"),
        format!("instance {IN_0} on 127.0.8.4:{port}"),
        format!("instance {IN_1} on 127.0.8.5:{port}"),
        format!("peer g1 127.0.8.10 AS 65001 port {port}: hold 180 s, at most 4000 routes"),
        format!("api: http://{api}, admin token not set"),
    ] {
        assert!(stdout.contains(&line), "{line:?} not in:\n{stdout}");
    }
    assert_refused(api, "config check serves nothing");
    assert_refused(sock(INSTANCES[0], port), "config check binds nothing");

    // With --instance: only that one.
    let (ok, stdout, _) = check(&[g, "--instance", INSTANCES[1]]);
    assert!(
        ok && stdout.contains(IN_1) && !stdout.contains(IN_0),
        "{stdout}"
    );

    // What `run` refuses, `config check` refuses, with the same words.
    let (ok, _, stderr) = check(&[g, "--instance", "127.0.8.9"]);
    assert!(
        !ok && stderr.contains("not one of route_server.instances"),
        "{stderr}"
    );
    let bad = dir
        .write(
            "bad.toml",
            &SECOND_PEER_ASN
                .replace("{asn}", "65515")
                .replace("{port}", &port.to_string())
                .replace("{api}", &api.port().to_string()),
        )
        .expect("config written");
    let (ok, _, stderr) = check(&[bad.to_str().unwrap()]);
    assert!(
        !ok && stderr.contains(&format!(
            "{}: route_server.peer[1].asn: 65515 is reserved",
            bad.display()
        )),
        "{stderr}"
    );
    let open = dir
        .write(
            "open.toml",
            &good_config(
                port,
                sock("0.0.0.0", api.port()),
                &[("g1", "127.0.8.10", 65001)],
            ),
        )
        .expect("config written");
    let (ok, _, stderr) = check(&[open.to_str().unwrap()]);
    assert!(
        !ok && stderr.contains("admin_token_file is not set"),
        "{stderr}"
    );
}

/// `NEXTHOP_LOG_FORMAT=json`: every log event is one JSON object a line.
#[test]
fn json_logs_are_one_object_a_line() {
    let (port, api) = (free_port(), sock("127.0.0.1", free_port()));
    let dir = Workdir::new("json-logs").expect("workdir");
    let file = dir
        .write(
            "nexthop.toml",
            &good_config(port, api, &[("g1", "127.0.8.10", 65001)]),
        )
        .expect("config written");
    let mut cmd = nexthop();
    cmd.env("NEXTHOP_LOG", "info")
        .env("NEXTHOP_LOG_FORMAT", "json")
        .args(["run", "--config"])
        .arg(&file);
    let mut p = Process::spawn(cmd, "nexthop", &dir.file("nexthop.log")).expect("spawn");
    assert!(
        labtest::wait_until(Duration::from_secs(15), || accepts(api)),
        "{}",
        p.output()
    );
    p.stop();
    let log = p.output();
    let events: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events.iter().any(|e| e["level"] == "INFO"
            && e["fields"]["message"] == "peer configured"
            && e["fields"]["peer"] == "g1"),
        "{log}"
    );
    assert!(events
        .iter()
        .all(|e| e["timestamp"].is_string() && e["target"].is_string()));
}

/// `[mrt] updates_dir`: every UPDATE received, as BGP4MP records that Debian's `bgpdump -m`
/// reads: GoBGP's announcement and withdrawal of 192.168.10.0/24, on both instances.
#[test]
fn mrt_update_log_is_read_by_bgpdump() {
    if !labtest::require(&["gobgpd", "gobgp", "bgpdump"]) {
        return;
    }
    let (port, api) = (free_port(), sock("127.0.0.1", free_port()));
    let work = Workdir::new("mrt-updates").expect("workdir");
    let dir = work.file("mrt");
    let config = format!(
        "{}\n[mrt]\nupdates_dir = \"{}\"\nrotate_s = 60\n",
        good_config(port, api, &[("g1", "127.0.8.10", 65001)]),
        dir.display()
    );
    let nh = Nexthop::start("mrt-updates", &config, api);
    let g1 = gobgp_peer(65001, "127.0.8.10", port);
    g1.add_route("192.168.10.0/24", "10.1.0.100", &[]).unwrap();
    assert!(
        labtest::wait_until(UP, || rib_has(&nh, "192.168.10.0/24", "g1")),
        "{:?}",
        rib(&nh)
    );
    g1.del_route("192.168.10.0/24").unwrap();
    assert!(labtest::wait_until(UP, || rib_lacks(
        &nh,
        "192.168.10.0/24"
    )));
    // `bgpdump -m` (one line a route) and `bgpdump` (verbose: the session's local end).
    let read = |flags: &[&str]| -> String {
        let mut all = String::new();
        for f in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let out = Command::new("bgpdump")
                .args(flags)
                .arg(f.path())
                .output()
                .unwrap();
            all.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        all
    };
    let (mut lines, mut verbose) = (String::new(), String::new());
    let seen = labtest::wait_until(Duration::from_secs(5), || {
        lines = read(&["-m"]);
        verbose = read(&[]);
        let count = |what: &str| lines.lines().filter(|l| l.contains(what)).count();
        count("|A|127.0.8.10|65001|192.168.10.0/24|65001|IGP|10.1.0.100|") == 2
            && count("|W|127.0.8.10|65001|192.168.10.0/24") == 2
            && INSTANCES
                .iter()
                .all(|local| verbose.contains(&format!("TO: {local} AS65515")))
    });
    assert!(seen, "bgpdump of {}:\n{lines}\n{verbose}", dir.display());
}

/// `[[bmp]] collector`: Debian's pmacct BMP collector (`pmbmpd`) logs each instance as a router
/// (its own address, its name as sysName) with the peer's Peer Up and its route
/// 192.168.10.0/24 (pre-policy), then its withdrawal and Peer Down.
#[test]
fn bmp_reaches_pmacct() {
    if !labtest::require(&["gobgpd", "gobgp", "pmbmpd"]) {
        return;
    }
    let (port, api, bmp_port) = (free_port(), sock("127.0.0.1", free_port()), free_port());
    let work = Workdir::new("bmp").expect("workdir");
    let log = work.file("bmp.json");
    let mut collector = Command::new(labtest::find_binary("pmbmpd").expect("pmbmpd"));
    collector
        .args(["-L", "127.0.0.1", "-l", &bmp_port.to_string(), "-o"])
        .arg(&log);
    let _collector = Process::spawn(collector, "pmbmpd", &work.file("pmbmpd.log")).expect("pmbmpd");
    let config = format!(
        "{}\n[[bmp]]\ncollector = \"127.0.0.1:{bmp_port}\"\n",
        good_config(port, api, &[("g1", "127.0.8.10", 65001)]),
    );
    let nh = Nexthop::start("bmp", &config, api);
    let g1 = gobgp_peer(65001, "127.0.8.10", port);
    g1.add_route("192.168.10.0/24", "10.1.0.100", &[]).unwrap();
    assert!(labtest::wait_until(UP, || rib_has(
        &nh,
        "192.168.10.0/24",
        "g1"
    )));
    let events = || -> Vec<Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let has = |evs: &[Value], kind: &str, extra: &dyn Fn(&Value) -> bool| {
        evs.iter()
            .filter(|e| e["bmp_msg_type"] == kind && e["peer_ip"] == "127.0.8.10" && extra(e))
            .count()
    };
    let mut evs = Vec::new();
    let up = labtest::wait_until(Duration::from_secs(15), || {
        evs = events();
        // Each instance is a router of its own, seen from its own address.
        INSTANCES.iter().all(|router| {
            has(&evs, "peer_up", &|e| e["bmp_router"] == *router) >= 1
                && has(&evs, "route_monitor", &|e| {
                    e["bmp_router"] == *router
                        && e["ip_prefix"] == "192.168.10.0/24"
                        && e["bgp_nexthop"] == "10.1.0.100"
                        && e["as_path"] == "65001"
                }) >= 1
        }) && INSTANCES.iter().all(|router| {
            evs.iter().any(|e| {
                e["bmp_msg_type"] == "init"
                    && e["bmp_router"] == *router
                    && e["bmp_init_info_sysname"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("RouteServiceRole_IN_"))
            })
        })
    });
    assert!(up, "pmbmpd logged:\n{:#?}\n{}", evs, nh.log());
    g1.del_route("192.168.10.0/24").unwrap();
    drop(g1);
    let down = labtest::wait_until(Duration::from_secs(15), || {
        evs = events();
        has(&evs, "route_monitor", &|e| {
            e["ip_prefix"] == "192.168.10.0/24" && e["log_type"] == "withdraw"
        }) >= 2
            && has(&evs, "peer_down", &|_| true) >= 2
    });
    assert!(down, "pmbmpd logged:\n{evs:#?}");
}

/// A reload that adds, removes and adds again `instances_ipv6` (issue #16): the instance's
/// IPv6 listener comes and goes with it while its IPv4 one stays (binding the IPv4 socket again
/// would fail while it listens), and every reload is applied.
#[test]
fn a_reload_changes_the_ipv6_listener_and_keeps_the_ipv4_one() {
    let v6_loopback = std::net::TcpListener::bind("[::1]:0").is_ok();
    if !v6_loopback {
        labtest::skip("no IPv6 loopback (::1) on this host");
        return;
    }
    let (port, api) = (free_port(), sock("127.0.0.1", free_port()));
    let config = |v6: bool| {
        format!(
            "[route_server]\ninstances = [\"127.0.11.4\"]\n{}port = {port}\n\n[[route_server.peer]]\nname = \"nva1\"\naddress = \"127.0.11.10\"\nasn = 65001\n\n[api]\nlisten = \"{api}\"\n",
            if v6 { "instances_ipv6 = [\"::1\"]\n" } else { "" }
        )
    };
    let v4 = sock("127.0.11.4", port);
    let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let nh = Nexthop::start("reload6", &config(true), api);
    assert!(accepts(v4) && accepts(v6), "{}", nh.log());
    for (on, step) in [
        (false, "instances_ipv6 removed"),
        (true, "instances_ipv6 back"),
    ] {
        nh.write_config(&config(on));
        nh.sighup();
        let done = labtest::wait_until(Duration::from_secs(10), || accepts(v6) == on);
        assert!(
            done,
            "{step}: [::1]:{port} accepts = {}\n{}",
            accepts(v6),
            nh.log()
        );
        assert!(accepts(v4), "{step}: the IPv4 listener went\n{}", nh.log());
    }
    assert!(!nh.log().contains("config not applied"), "{}", nh.log());
}
