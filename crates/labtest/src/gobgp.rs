//! GoBGP as a peer: a TOML config builder, a launcher and `gobgp` CLI helpers.
//!
//! Started as `gobgpd -f DIR/gobgpd.toml -p --pprof-disable --api-hosts ADDR:PORT -l info`;
//! the CLI is `gobgp -u ADDR -p PORT ...`, run in the same namespace as the daemon (the API is
//! gRPC over TCP, unlike the unix sockets of FRR and BIRD).
//!
//! # Quirks of GoBGP 3.10 (SPEC §7, and found while building this)
//!
//! - gobgpd serves pprof on localhost:6060 by default, so a second gobgpd in one namespace
//!   fails; it always gets `--pprof-disable`. Its gRPC API defaults to `:50051`: two on the host
//!   need distinct ports ([`GoBgpBuilder::api`]; on the host a free port is picked).
//! - `gobgp global rib add` sends ORIGIN incomplete unless told `origin igp`;
//!   [`GoBgp::add_route`] adds `origin igp` unless the attributes name an origin.
//! - Routes are originated only through the API/CLI ([`GoBgp::add_route`]), not the config.
//! - GoBGP sends one prefix per UPDATE, no MED unless `med N` is given, and no End-of-RIB
//!   without graceful restart; its OPEN offers extended next hop (RFC 8950) even on an IPv4
//!   session.
//! - A NEXT_HOP in 127.0.0.0/8 is "invalid nexthop address" to GoBGP: that UPDATE is treated as
//!   withdraw (the session stays up). On the host loopback the peer must set a routable next
//!   hop.
//! - Its OPEN carries the FQDN capability (73) with the OS host name (`uname -n`), not
//!   anything from the config.
//! - Without `port` gobgpd listens on 179 on every address; `port = -1` disables listening.
//! - `session_state` in `gobgp neighbor -j` is a number (6 = established) in 3.x.

use std::fmt::Write as _;
use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::json::Json;
use crate::netns::Netns;
use crate::process::{binary, command_in, run, tail, Process, Workdir};
use crate::route::{normalize_state, Route};

/// One `[[neighbors]]` of a [`GoBgpBuilder`].
#[derive(Clone, Debug)]
pub struct GoBgpNeighbor {
    address: String,
    peer_as: u32,
    remote_port: Option<u16>,
    local_address: Option<String>,
    passive: bool,
    ipv6: bool,
    password: Option<String>,
}

impl GoBgpNeighbor {
    pub fn new(address: &str, peer_as: u32) -> GoBgpNeighbor {
        GoBgpNeighbor {
            address: address.to_string(),
            peer_as,
            remote_port: None,
            local_address: None,
            passive: false,
            ipv6: false,
            password: None,
        }
    }

    /// TCP-MD5 (RFC 2385) on the session (`auth-password`).
    pub fn password(mut self, key: &str) -> Self {
        self.password = Some(key.to_string());
        self
    }

    /// The neighbor's port (default 179).
    pub fn port(mut self, port: u16) -> Self {
        self.remote_port = Some(port);
        self
    }

    /// The source address of the connection (`transport.config.local-address`).
    pub fn local_address(mut self, addr: &str) -> Self {
        self.local_address = Some(addr.to_string());
        self
    }

    /// Only accept (`passive-mode = true`).
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }

    /// Enable IPv6 unicast besides IPv4 unicast on this session.
    pub fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }
}

/// Builds `gobgpd.toml` and starts gobgpd with it.
#[derive(Clone, Debug)]
pub struct GoBgpBuilder {
    asn: u32,
    router_id: String,
    port: i32,
    listen: Vec<String>,
    neighbors: Vec<GoBgpNeighbor>,
    api: Option<(String, u16)>,
    toml: Vec<String>,
}

impl GoBgpBuilder {
    pub fn new(asn: u32, router_id: &str) -> GoBgpBuilder {
        GoBgpBuilder {
            asn,
            router_id: router_id.to_string(),
            port: 179,
            listen: Vec::new(),
            neighbors: Vec::new(),
            api: None,
            toml: Vec::new(),
        }
    }

    /// The BGP listen port (`global.config.port`, default 179; -1: do not listen).
    pub fn port(mut self, port: i32) -> Self {
        self.port = port;
        self
    }

    /// Listen on `addr` only (`local-address-list`, repeatable).
    pub fn listen(mut self, addr: &str) -> Self {
        self.listen.push(addr.to_string());
        self
    }

    pub fn neighbor(mut self, n: GoBgpNeighbor) -> Self {
        self.neighbors.push(n);
        self
    }

    /// Where the gRPC API listens (default 127.0.0.1:50051 in a namespace, 127.0.0.1 and a free
    /// port on the host).
    pub fn api(mut self, addr: &str, port: u16) -> Self {
        self.api = Some((addr.to_string(), port));
        self
    }

    /// Raw TOML appended at the end (policies, defined sets).
    pub fn toml(mut self, text: &str) -> Self {
        self.toml.push(text.to_string());
        self
    }

    /// The `gobgpd.toml` this builder describes.
    pub fn render(&self) -> String {
        let mut c = String::new();
        let _ = writeln!(
            c,
            "[global.config]\n  as = {}\n  router-id = \"{}\"\n  port = {}",
            self.asn, self.router_id, self.port
        );
        if !self.listen.is_empty() {
            let list: Vec<String> = self.listen.iter().map(|a| format!("\"{a}\"")).collect();
            let _ = writeln!(c, "  local-address-list = [{}]", list.join(", "));
        }
        for n in &self.neighbors {
            let _ = writeln!(
                c,
                "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}",
                n.address, n.peer_as
            );
            if let Some(key) = &n.password {
                let _ = writeln!(c, "    auth-password = \"{key}\"");
            }
            let _ = writeln!(c, "  [neighbors.transport.config]");
            if let Some(src) = n.local_address.as_ref().or(self.listen.first()) {
                let _ = writeln!(c, "    local-address = \"{src}\"");
            }
            if let Some(p) = n.remote_port {
                let _ = writeln!(c, "    remote-port = {p}");
            }
            if n.passive {
                let _ = writeln!(c, "    passive-mode = true");
            }
            c.push_str("  [neighbors.timers.config]\n    connect-retry = 5\n    idle-hold-time-after-reset = 5\n");
            let v4_session = !n.address.contains(':');
            let families: &[&str] = match (v4_session, n.ipv6) {
                (true, false) => &["ipv4-unicast"],
                (false, false) => &["ipv6-unicast"],
                (_, true) => &["ipv4-unicast", "ipv6-unicast"],
            };
            for f in families {
                let _ = writeln!(c, "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{f}\"");
            }
        }
        for t in &self.toml {
            let _ = writeln!(c, "\n{t}");
        }
        c
    }

    /// Writes the config into a fresh [`Workdir`] and starts gobgpd inside `netns` (or on the
    /// host). Returns once the CLI answers.
    pub fn start(mut self, netns: Option<&Netns>) -> io::Result<GoBgp> {
        let gobgpd = binary("gobgpd", "gobgpd")?;
        let gobgp = binary("gobgp", "gobgpd")?;
        let api = match (&self.api, netns) {
            (Some(a), _) => a.clone(),
            (None, Some(_)) => ("127.0.0.1".to_string(), 50051),
            (None, None) => ("127.0.0.1".to_string(), free_port()?),
        };
        self.api = Some(api.clone());
        let dir = Workdir::new(&format!("gobgp-{}", self.router_id))?;
        let conf = dir.write("gobgpd.toml", &self.render())?;
        let mut cmd = command_in(netns.map(Netns::name), &gobgpd);
        cmd.arg("-f")
            .arg(&conf)
            .args(["-p", "--pprof-disable", "-l", "info"]);
        cmd.arg(format!("--api-hosts={}:{}", api.0, api.1));
        let process = Process::spawn(cmd, "gobgpd", &dir.file("gobgpd.log"))?;
        let mut g = GoBgp {
            process,
            gobgp,
            api,
            netns: netns.map(|n| n.name().to_string()),
            config: self,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            g.process.check_alive()?;
            if g.gobgp(&["global"]).is_ok() {
                return Ok(g);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "gobgpd did not answer on {}:{} within 15 s; output:\n{}",
                    g.api.0,
                    g.api.1,
                    tail(&g.process.output(), 40)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A TCP port that was free on 127.0.0.1 a moment ago (the usual race applies).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running gobgpd; stopped when dropped.
#[derive(Debug)]
pub struct GoBgp {
    // Field order is drop order: the daemon stops before its directory goes.
    process: Process,
    gobgp: PathBuf,
    api: (String, u16),
    netns: Option<String>,
    config: GoBgpBuilder,
    dir: Workdir,
}

impl GoBgp {
    /// Starts building a gobgpd with local AS `asn` and router-id `router_id`.
    pub fn builder(asn: u32, router_id: &str) -> GoBgpBuilder {
        GoBgpBuilder::new(asn, router_id)
    }

    /// Runs `gobgp -u ADDR -p PORT args...` in the daemon's namespace; its stdout.
    pub fn gobgp(&self, args: &[&str]) -> io::Result<String> {
        let mut cmd = command_in(self.netns.as_deref(), &self.gobgp);
        cmd.args(["-u", &self.api.0, "-p", &self.api.1.to_string()])
            .args(args);
        run(&mut cmd)
    }

    /// `gobgp ... -j` parsed.
    pub fn gobgp_json(&self, args: &[&str]) -> io::Result<Json> {
        let mut a = args.to_vec();
        a.push("-j");
        let out = self.gobgp(&a)?;
        Json::parse(&out).map_err(|e| io::Error::other(format!("gobgp {args:?}: {e}: {out}")))
    }

    /// Originates `prefix` with `next_hop`:
    /// `gobgp global rib add -a ipv4|ipv6 PREFIX origin igp nexthop NH ATTRS...`. `attrs` are
    /// further CLI words, e.g. `["community", "65003:1,65003:2", "large-community", "65003:0:1",
    /// "med", "50", "aspath", "65003 65003"]`; give `origin X` there to override `igp`.
    pub fn add_route(&self, prefix: &str, next_hop: &str, attrs: &[&str]) -> io::Result<()> {
        let afi = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let mut args = vec!["global", "rib", "add", "-a", afi, prefix];
        if !attrs.contains(&"origin") {
            args.extend(["origin", "igp"]);
        }
        args.extend(["nexthop", next_hop]);
        args.extend(attrs);
        self.gobgp(&args).map(drop)
    }

    /// Withdraws a route added with [`GoBgp::add_route`].
    pub fn del_route(&self, prefix: &str) -> io::Result<()> {
        let afi = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        self.gobgp(&["global", "rib", "del", "-a", afi, prefix])
            .map(drop)
    }

    /// Every path in the global RIB, IPv4 and IPv6 unicast (`gobgp global rib -a AFI -j`).
    pub fn routes(&self) -> io::Result<Vec<Route>> {
        let mut routes = Vec::new();
        for afi in ["ipv4", "ipv6"] {
            let v = self.gobgp_json(&["global", "rib", "-a", afi])?;
            for (prefix, paths) in v.as_object().unwrap_or_default() {
                for p in paths.as_array().unwrap_or_default() {
                    routes.push(path_to_route(prefix, p));
                }
            }
        }
        routes.sort();
        Ok(routes)
    }

    /// The state of the session with neighbor `addr`, as in [`crate::Frr::neighbor_state`].
    pub fn neighbor_state(&self, addr: &str) -> String {
        match self.gobgp_json(&["neighbor"]) {
            Ok(v) => {
                let n = v.as_array().unwrap_or_default().iter().find(|n| {
                    n["state"]["neighbor_address"].as_str() == Some(addr)
                        || n["conf"]["neighbor_address"].as_str() == Some(addr)
                });
                match n.map(|n| &n["state"]["session_state"]) {
                    Some(Json::Number(s)) => normalize_state(&s.to_string()),
                    Some(Json::String(s)) => normalize_state(s),
                    // Absent when 0 (protobuf JSON leaves out zero values): state unknown.
                    Some(_) => "error: no session_state".to_string(),
                    None => format!("error: no neighbor {addr}"),
                }
            }
            Err(e) => format!("error: {e}"),
        }
    }

    /// The API address the CLI uses.
    pub fn api(&self) -> (&str, u16) {
        (&self.api.0, self.api.1)
    }

    pub fn workdir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// gobgpd's log so far (its stdout and stderr).
    pub fn log(&self) -> String {
        self.process.output()
    }

    pub fn config(&self) -> String {
        self.config.render()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// One path of `gobgp global rib -j`: `{"nlri":{"prefix":..},"best":true,"attrs":[{"type":2,
/// "as_paths":[{"segment_type":2,"num":1,"asns":[65001]}]},{"type":3,"nexthop":"10.1.0.100"},
/// {"type":14,"nexthop":"2001:db8::1",...}]}`.
fn path_to_route(prefix: &str, p: &Json) -> Route {
    let mut next_hop = String::new();
    let mut as_path = Vec::new();
    for a in p["attrs"].as_array().unwrap_or_default() {
        match a["type"].as_u64() {
            Some(2) => {
                for seg in a["as_paths"].as_array().unwrap_or_default() {
                    let asns: Vec<String> = seg["asns"]
                        .as_array()
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|n| n.as_u64().map(|n| n.to_string()))
                        .collect();
                    // segment_type 1 = AS_SET (RFC 4271 §4.3).
                    if seg["segment_type"].as_u64() == Some(1) {
                        as_path.push(format!("{{{}}}", asns.join(",")));
                    } else {
                        as_path.extend(asns);
                    }
                }
            }
            Some(3) => next_hop = a["nexthop"].as_str().unwrap_or_default().to_string(),
            Some(14) if next_hop.is_empty() => {
                next_hop = match &a["nexthop"] {
                    Json::String(s) => s.clone(),
                    Json::Array(v) => v
                        .first()
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    _ => String::new(),
                }
            }
            _ => {}
        }
    }
    Route {
        prefix: prefix.to_string(),
        next_hop,
        as_path: as_path.join(" "),
        best: p["best"].as_bool().unwrap_or(false),
    }
}
