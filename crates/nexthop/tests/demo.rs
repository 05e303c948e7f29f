//! `nexthop demo --duration N` runs the embedded default over real TCP on 127.0.0.0/8 and exits 0
//! once both instances learned the branch prefix from both emulated NVAs; the CLI works against
//! its API while it runs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One demo at a time: the emulated NVAs' health endpoints have fixed addresses.
static ONE_DEMO: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn nexthop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nexthop"))
}

#[test]
fn demo_tells_the_story_and_the_cli_reads_it() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    // Ports of its own, so a demo a developer is running does not collide.
    let api = "127.0.0.1:28179";
    let child = nexthop()
        .args([
            "demo",
            "--duration",
            "20",
            "--port",
            "21179",
            "--api-listen",
            api,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    // While it runs: the SPEC §6 JSON of learned routes, from the CLI.
    let start = Instant::now();
    let mut learned = String::new();
    while start.elapsed() < Duration::from_secs(5) {
        let out = nexthop()
            .args([
                "--api",
                &format!("http://{api}"),
                "routes",
                "learned",
                "--peer",
                "nva1",
                "-o",
                "json",
            ])
            .output()
            .unwrap();
        learned = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success()
            && learned.matches("192.168.10.0/24").count() == 2
            && learned.matches("fd00:10::/48").count() == 2
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let v: serde_json::Value =
        serde_json::from_str(&learned).unwrap_or_else(|e| panic!("{e}: {learned}"));
    for inst in ["RouteServiceRole_IN_0", "RouteServiceRole_IN_1"] {
        let r = &v[inst][0];
        assert_eq!(r["network"], "192.168.10.0/24", "{v}");
        assert_eq!(r["nextHop"], "10.1.0.100");
        assert_eq!(r["sourcePeer"], "127.0.2.10");
        assert_eq!(r["asPath"], "65001");
        assert_eq!(r["origin"], "EBgp");
        assert_eq!(r["weight"], 32768);
        // The IPv6 branch, learned over the same IPv4 session (MP-BGP).
        let r = &v[inst][1];
        assert_eq!(r["network"], "fd00:10::/48", "{v}");
        assert_eq!(r["nextHop"], "fd00:1::100");
        assert_eq!(r["sourcePeer"], "127.0.2.10");
        assert_eq!(r["asPath"], "65001");
    }
    let peers = nexthop()
        .args(["--api", &format!("http://{api}"), "peers", "-o", "json"])
        .output()
        .unwrap();
    let p: serde_json::Value = serde_json::from_slice(&peers.stdout).unwrap();
    assert_eq!(p["RouteServiceRole_IN_1"][1]["name"], "nva2");
    assert_eq!(p["RouteServiceRole_IN_1"][1]["state"], "Established");
    // The hub's IPv4 and IPv6 address spaces.
    assert_eq!(p["RouteServiceRole_IN_1"][1]["routesAdvertised"], 2, "{p}");
    assert_eq!(
        p["RouteServiceRole_IN_1"][1]["addressFamilies"],
        serde_json::json!(["ipv4-unicast", "ipv6-unicast"]),
        "{p}"
    );

    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for inst in ["RouteServiceRole_IN_0", "RouteServiceRole_IN_1"] {
        for nva in ["nva1", "nva2"] {
            let line = format!(
                "{inst} learned from {nva}: 192.168.10.0/24 via 10.1.0.100 (AS path 65001), fd00:10::/48 via fd00:1::100 (AS path 65001)"
            );
            assert!(stdout.contains(&line), "missing {line:?} in:\n{stdout}");
            let line = format!("{nva} received from {inst}: 10.1.0.0/16, fd00:1::/48");
            assert!(stdout.contains(&line), "missing {line:?} in:\n{stdout}");
        }
    }
}

/// `nexthop mrt dump` on the demo: a TABLE_DUMP_V2 file that Debian's `bgpdump -m` reads, with
/// 192.168.10.0/24 from both NVAs on both instances (next hop, AS path, peer).
#[test]
fn mrt_dump_of_the_demo_reads_in_bgpdump() {
    if !labtest::require(&["bgpdump"]) {
        return;
    }
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let api = "127.0.0.1:28180";
    let url = format!("http://{api}");
    let mut child = nexthop()
        .args([
            "demo",
            "--duration",
            "20",
            "--port",
            "21180",
            "--api-listen",
            api,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    let dir = labtest::Workdir::new("mrt").expect("workdir");
    let dump = |inst: &str| -> String {
        let file = dir.file(&format!("{inst}.mrt"));
        let out = nexthop()
            .args(["--api", &url, "mrt", "dump", "--instance", inst, "--out"])
            .arg(&file)
            .output()
            .unwrap();
        if !out.status.success() {
            return String::from_utf8_lossy(&out.stderr).into_owned();
        }
        let read = Command::new("bgpdump")
            .arg("-m")
            .arg(&file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&read.stdout).into_owned()
    };
    let line = |peer: &str| format!("|B|{peer}|65001|192.168.10.0/24|65001|IGP|10.1.0.100|");
    // The IPv6 branch (RIB_IPV6_UNICAST, next hop in the abbreviated MP_REACH_NLRI).
    let line6 = |peer: &str| format!("|B|{peer}|65001|fd00:10::/48|65001|IGP|fd00:1::100|");
    let start = Instant::now();
    let mut last = String::new();
    let ok = loop {
        let both = ["RouteServiceRole_IN_0", "RouteServiceRole_IN_1"].map(dump);
        if both.iter().all(|d| {
            ["127.0.2.10", "127.0.2.11"]
                .iter()
                .all(|p| d.contains(&line(p)) && d.contains(&line6(p)))
        }) {
            break true;
        }
        last = both.join("\n---\n");
        if start.elapsed() > Duration::from_secs(10) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    // An instance that does not exist: a clear error, no file.
    let out = nexthop()
        .args(["--api", &url, "mrt", "dump", "--instance", "nope", "--out"])
        .arg(dir.file("nope.mrt"))
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "bgpdump -m does not show both NVAs' routes:\n{last}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no instance named \"nope\""),
        "{stderr}"
    );
    assert!(!dir.file("nope.mrt").exists());
}

/// `/v1/openapi.json` against the live demo: Debian's python3-jsonschema validates every JSON
/// answer of the running API against the schema the document gives for it, and refuses an
/// answer that breaks the contract (a session state the API never sends).
#[test]
fn the_openapi_document_describes_the_live_answers() {
    let python = "/usr/bin/python3";
    let has_jsonschema = Command::new(python)
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_jsonschema {
        labtest::skip("needs /usr/bin/python3 with jsonschema (Debian's python3-jsonschema)");
        return;
    }
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let api = "127.0.0.1:28181";
    let mut child = nexthop()
        .args([
            "demo",
            "--duration",
            "20",
            "--port",
            "21181",
            "--api-listen",
            api,
            "--no-failure",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    let get = |path: &str| -> Option<String> {
        let mut r = ureq::get(&format!("http://{api}{path}")).call().ok()?;
        r.body_mut().read_to_string().ok()
    };
    // Until both instances hold the branch from both NVAs.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10)
        && get("/v1/rib").is_none_or(|r| r.matches("\"best\":true").count() < 4)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let dir = labtest::Workdir::new("openapi").expect("workdir");
    let doc = get("/v1/openapi.json").expect("the document");
    let doc_file = dir.write("openapi.json", &doc).unwrap();
    let calls = [
        ("/v1/peers", "/v1/peers"),
        ("/v1/rib", "/v1/rib"),
        ("/v1/routes/learned?peer=nva1", "/v1/routes/learned"),
        ("/v1/routes/advertised?peer=nva1", "/v1/routes/advertised"),
        ("/v1/lb", "/v1/lb"),
        ("/v1/lb/nva-ilb", "/v1/lb/{name}"),
        ("/v1/effective-routes?nic=vm1-nic", "/v1/effective-routes"),
        ("/v1/trace?nic=vm1-nic&dst=192.168.10.7", "/v1/trace"),
        ("/v1/trace?nic=vm1-nic&dst=fd00:10::7", "/v1/trace"),
        ("/v1/events", "/v1/events"),
        ("/v1/nics", "/v1/nics"),
    ];
    let mut args: Vec<String> = Vec::new();
    for (i, (url, template)) in calls.iter().enumerate() {
        let body = get(url).unwrap_or_else(|| panic!("GET {url} failed"));
        let f = dir.write(&format!("answer{i}.json"), &body).unwrap();
        args.extend(["get".into(), template.to_string(), f.display().to_string()]);
    }
    // The control: the peers answer with a state the contract does not have.
    let peers = get("/v1/peers").unwrap();
    assert!(peers.contains("\"Established\""), "{peers}");
    let bad = dir
        .write(
            "bad_peers.json",
            &peers.replacen("\"Established\"", "\"Establishedd\"", 1),
        )
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let run = |extra: &[String]| {
        Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/support/validate_openapi.py"
            ))
            .arg(&doc_file)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&args);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("ok GET").count(), calls.len(), "{text}");
    let out = run(&["get".into(), "/v1/peers".into(), bad.display().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("INVALID GET /v1/peers"),
        "a broken answer passed: {text}"
    );
}
