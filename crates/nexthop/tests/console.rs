//! The web console (`/`) in a real browser: `nexthop demo` runs, headless Chromium opens the
//! console through chromedriver (`tests/support/console_browser.py`, W3C WebDriver), and the
//! live page must show both instances' sessions Established, 192.168.10.0/24 via 10.1.0.100
//! through nva-ilb with nva1 active, then — without a reload — nva2 active and the failover in
//! its timeline. Screenshots land in `target/tmp/console/`. Needs Debian's `chromium` and
//! `chromium-driver` (CI installs them); says so and skips without them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET on `addr`: status line, headers and body.
fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(1)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    // Up to the close, or what came before a pause (chromedriver keeps the connection open).
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_console_follows_the_demo_failover_live_in_chromium() {
    let missing: Vec<&str> = [
        "/usr/bin/chromium",
        "/usr/bin/chromedriver",
        "/usr/bin/python3",
    ]
    .into_iter()
    .filter(|p| !std::path::Path::new(p).exists())
    .collect();
    if !missing.is_empty() {
        // A skip says so (and fails under LABTEST_REQUIRE=1, as in CI).
        labtest::skip(&format!(
            "{} not installed (apt-get install -y chromium chromium-driver python3)",
            missing.join(", ")
        ));
        return;
    }
    // Ports of its own (the demo test uses others); the failover late enough for the browser
    // to have drawn the page before it.
    let api = "127.0.0.1:28379";
    let _demo = Killed(
        Command::new(env!("CARGO_BIN_EXE_nexthop"))
            .args(["demo", "--duration", "60", "--port", "23179"])
            .args(["--api-listen", api, "--health-port", "28380"])
            .args(["--fail-active-after", "15"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("demo runs"),
    );
    let start = Instant::now();
    let page = loop {
        if let Some(p) = get(api, "/").filter(|p| p.starts_with("HTTP/1.1 200")) {
            break p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the console never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(page.contains("text/html"), "{page}");
    assert!(page.contains("content-security-policy"), "{page}");
    assert!(page.contains("<title>nexthop console</title>"));

    let port = free_port();
    let _driver = Killed(
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs"),
    );
    let driver = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while get(&driver, "/status").is_none_or(|s| !s.replace(' ', "").contains("\"ready\":true")) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "chromedriver never ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/console_browser.py"
    );
    let out = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(format!("http://{driver}"))
        // A shared link: a looking-glass search and a trace in the fragment.
        .arg(format!(
            "http://{api}/#q=192.168.10.7&trace=nic%3Dvm1-nic%26dst%3D192.168.10.7%26proto%3Dtcp%26sport%3D40000%26dport%3D443"
        ))
        .arg(&out_dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "the browser check failed:\n{text}");
    for f in ["console-before.png", "console-after.png"] {
        let png = std::fs::read(out_dir.join(f)).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{f}");
        assert!(
            png.len() > 20_000,
            "{f}: {} bytes, a blank page?",
            png.len()
        );
    }
}
