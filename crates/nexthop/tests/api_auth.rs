//! API tokens on a real `nexthop run` (SPEC §6 `[api] admin_token_file`, `read_token_file`):
//! every state-changing route without a token answers 401, with the read token 403, with the
//! admin token 2xx; with a read token configured every GET needs a token; the CLI sends one from
//! `--token-file`. A non-loopback API without an admin token, or a token file others can read,
//! is refused at start and nothing listens.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{config_file, free_port, Daemon};

/// One HTTP/1.1 request; the status, the headers and the body.
fn http(api: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\n{auth}Connection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn token_file(dir: &Path, name: &str, token: &str, mode: u32) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
    f
}

/// One instance with one peer and one load balancer (for the admin route), the API on `api`.
fn config(api: SocketAddr, bgp_port: u16, extra_api: &str) -> String {
    format!(
        "[route_server]\ninstances = [\"127.0.12.4\"]\nport = {bgp_port}\n\n\
         [[route_server.peer]]\nname = \"nva1\"\naddress = \"127.0.12.10\"\nasn = 65001\n\n\
         [[load_balancer]]\nname = \"nva-ilb\"\nfrontend = \"10.1.0.100\"\nmode = \"active-passive\"\n\
         backends = [{{ address = \"127.0.12.10\", priority = 1 }}, {{ address = \"127.0.12.11\", priority = 2 }}]\n\
         probe = {{ protocol = \"tcp\", port = {bgp_port}, interval_ms = 1000, rise = 2, fall = 2 }}\n\n\
         [api]\nlisten = \"{api}\"\n{extra_api}"
    )
}

fn wait_accepting(api: SocketAddr, d: &mut Daemon) {
    let until = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(api).is_err() {
        assert!(d.0.try_wait().unwrap().is_none(), "nexthop exited");
        assert!(Instant::now() < until, "the API never listened on {api}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_route_needs_the_right_token() {
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = config_file("auth", "").parent().unwrap().to_path_buf();
    let admin = token_file(&dir, "admin.token", "adm-8c1f", 0o600);
    let read = token_file(&dir, "read.token", "rd-77aa", 0o600);
    let cfg = config(
        api,
        free_port(),
        &format!(
            "admin_token_file = \"{}\"\nread_token_file = \"{}\"\n",
            admin.display(),
            read.display()
        ),
    );
    let file = config_file("auth", &cfg);
    let mut d = common::run_daemon(&file);
    wait_accepting(api, &mut d);

    let posts = [
        "/v1/reload",
        "/v1/lb/nva-ilb/admin?backend=127.0.12.11&state=drain",
    ];
    for path in posts {
        let (st, head, body) = http(api, "POST", path, None);
        assert_eq!(st, 401, "POST {path} without a token: {body}");
        assert!(head.contains("www-authenticate: bearer"), "{head}");
        let e: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(e["error"].as_str().unwrap().contains("token"), "{body}");
        assert_eq!(http(api, "POST", path, Some("wrong")).0, 401, "{path}");
        assert_eq!(http(api, "POST", path, Some("rd-77aa")).0, 403, "{path}");
        let (st, _, body) = http(api, "POST", path, Some("adm-8c1f"));
        assert!(
            (200..300).contains(&st),
            "POST {path} with the admin token: {st} {body}"
        );
    }
    // The console page holds no data: served without a token; what it asks for needs one.
    let (st, head, body) = http(api, "GET", "/", None);
    assert_eq!(st, 200, "{head}");
    assert!(body.contains("<title>nexthop console</title>"));
    assert!(head.contains("content-security-policy"), "{head}");
    for path in [
        "/v1/peers",
        "/v1/rib",
        "/v1/lb/nva-ilb",
        "/metrics",
        "/v1/events",
        "/v1/nics",
    ] {
        assert_eq!(http(api, "GET", path, None).0, 401, "GET {path}");
        assert_eq!(http(api, "GET", path, Some("rd-77aa")).0, 200, "GET {path}");
        assert_eq!(
            http(api, "GET", path, Some("adm-8c1f")).0,
            200,
            "GET {path}"
        );
    }

    // The CLI sends the token of --token-file (or NEXTHOP_TOKEN_FILE).
    let cli = |token: Option<&Path>, args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nexthop"));
        c.env_remove("NEXTHOP_TOKEN_FILE")
            .arg("--api")
            .arg(format!("http://{api}"));
        if let Some(t) = token {
            c.arg("--token-file").arg(t);
        }
        let out = c.args(args).stdin(Stdio::null()).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let set_admin = ["lb", "set-admin", "nva-ilb", "127.0.12.11", "none"];
    let (ok, out) = cli(None, &set_admin);
    assert!(!ok && out.contains("--token-file"), "{out}");
    let (ok, out) = cli(Some(&read), &set_admin);
    assert!(!ok && out.contains("read token"), "{out}");
    let (ok, out) = cli(Some(&admin), &set_admin);
    assert!(ok, "{out}");
    let (ok, out) = cli(Some(&read), &["peers", "-o", "json"]);
    assert!(ok && out.contains("nva1"), "{out}");
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `nexthop run` with `cfg` must exit non-zero, say `expect`, and leave nothing listening.
fn refused_at_start(tag: &str, cfg: &str, api: SocketAddr, expect: &str) {
    let file = config_file(tag, cfg);
    let out = Command::new(env!("CARGO_BIN_EXE_nexthop"))
        .args(["run", "--config"])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {stderr}");
    assert!(stderr.contains(expect), "{stderr}");
    assert!(
        TcpStream::connect(api).is_err(),
        "something listens on {api}"
    );
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

#[test]
fn an_open_api_beyond_loopback_or_a_readable_token_file_is_refused() {
    let port = free_port();
    // Every address, no admin token.
    let any: SocketAddr = format!("0.0.0.0:{port}").parse().unwrap();
    let local: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    refused_at_start(
        "auth-open",
        &config(any, free_port(), ""),
        local,
        "is not a loopback address and api.admin_token_file is not set",
    );
    // A token file the group can read.
    let dir = config_file("auth-mode", "").parent().unwrap().to_path_buf();
    let admin = token_file(&dir, "admin.token", "adm-8c1f", 0o640);
    refused_at_start(
        "auth-mode",
        &config(
            local,
            free_port(),
            &format!("admin_token_file = \"{}\"\n", admin.display()),
        ),
        local,
        "chmod 600",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `tls_cert` and `tls_key` the API speaks HTTPS only: the CLI reaches it with
/// `--ca-file` (a private CA) and a token; without the CA, or over plain HTTP, it does not.
#[test]
fn the_api_speaks_https_with_a_private_ca() {
    let dir = config_file("tls", "").parent().unwrap().to_path_buf();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let write = |name: &str, text: String| {
        let f = dir.join(name);
        std::fs::write(&f, text).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        f
    };
    let ca_file = write("ca.pem", ca.pem());
    let cert_file = write("api.crt", cert.pem());
    let key_file = write("api.key", key.serialize_pem());
    let admin = token_file(&dir, "admin.token", "adm-tls", 0o600);
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let keys = format!(
        "admin_token_file = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        admin.display(),
        cert_file.display(),
        key_file.display()
    );
    let file = config_file("tls", &config(api, free_port(), &keys));
    let mut d = common::run_daemon(&file);
    wait_accepting(api, &mut d);

    let run = |url: &str, extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_nexthop"))
            .env_remove("NEXTHOP_TOKEN_FILE")
            .env_remove("NEXTHOP_CA_FILE")
            .args(["--api", url])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let https = format!("https://{api}");
    let ca = ca_file.to_str().unwrap();
    let tok = admin.to_str().unwrap();
    let (ok, out) = run(&https, &["--ca-file", ca, "peers", "-o", "json"]);
    assert!(ok && out.contains("nva1"), "{out}");
    let (ok, out) = run(
        &https,
        &[
            "--ca-file",
            ca,
            "--token-file",
            tok,
            "lb",
            "set-admin",
            "nva-ilb",
            "127.0.12.11",
            "drain",
        ],
    );
    assert!(ok, "{out}");
    // The system roots do not know the private CA.
    let (ok, out) = run(&https, &["peers"]);
    assert!(!ok, "verified without the CA: {out}");
    // Plain HTTP to an HTTPS-only API.
    let (ok, out) = run(&format!("http://{api}"), &["peers"]);
    assert!(!ok, "plain HTTP answered: {out}");
    drop(d);

    // A certificate without its key is refused at start.
    let half = format!("tls_cert = \"{}\"\n", cert_file.display());
    refused_at_start(
        "tls-half",
        &config(api, free_port(), &half),
        api,
        "tls_cert and api.tls_key go together",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
