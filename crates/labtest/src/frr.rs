//! FRR `bgpd` as a peer: a config builder, a launcher and `vtysh` queries.
//!
//! bgpd runs alone, without zebra, in the foreground (so the handle owns its pid):
//! `bgpd -Z -S -n -P 0 -f DIR/bgpd.conf -i DIR/bgpd.pid --vty_socket DIR --log file:DIR/bgpd.log
//! -p PORT [-l ADDR]...`, and is queried with `vtysh --vty_socket DIR -d bgpd -c CMD`.
//!
//! # Quirks of FRR 8.4 (SPEC §7, and found while building this)
//!
//! - Without zebra (`-Z`) bgpd learns no router-id and no RIB: the config needs `bgp router-id`,
//!   `no bgp network import-check` (else a `network` is never advertised, since no IGP route
//!   backs it) and `no bgp ebgp-requires-policy` (else eBGP routes are neither sent nor accepted
//!   without a route-map). The builder always writes all three.
//! - The default connect-retry timer is 120 s; the builder writes `timers connect 5`.
//! - `bgpd -C` exits 0 and prints nothing even for lines it does not know; at run time it only
//!   logs `No such command on config line N`. [`FrrBuilder::start`] scans the log for that and
//!   fails, so a typo cannot silently become a missing neighbor.
//! - `-S` (skip run-as) keeps bgpd root, so it can write its vty socket and logs in the test's
//!   root-owned temp dir (by default it switches to user `frr`; `-u root -g root` instead
//!   fails with "user(root) is not part of vty group specified(frrvty)"). `vtysh` must then
//!   run as root.
//! - A NEXT_HOP in 127.0.0.0/8 is a martian to FRR: an UPDATE carrying one is answered with
//!   NOTIFICATION 3/8 (Invalid NEXT_HOP) and the session resets. On the host's loopback the
//!   other side must therefore rewrite its next hop (BIRD: `next hop address`, GoBGP: an
//!   explicit `nexthop`); FRR itself needs [`FrrNeighbor::next_hop_out`] towards BIRD and GoBGP,
//!   which reject a loopback next hop too.
//! - With `-l ADDR` bgpd listens on ADDR only but still connects from the kernel's choice of
//!   source (127.0.0.1 on the loopback); the builder adds `update-source` = the first listen
//!   address unless the neighbor sets its own.
//! - FRR advertises a route back to the peer it learned it from (that peer drops it as an
//!   AS-path loop), so `PfxSnt` counts include them.
//! - Locally originated routes carry MED 0 (`metric 0`) and next hop `0.0.0.0` in its own table;
//!   the OPEN carries the FQDN capability (73) with the configured `hostname`.
//! - It sends no End-of-RIB to a peer that did not offer graceful restart, and never sends an
//!   eBGP peer a route whose communities (before the outbound route-map) hold NO_EXPORT.
//!   See `crates/bgp/tests/fixtures/README.md` for its exact OPEN and UPDATEs.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::json::Json;
use crate::netns::Netns;
use crate::process::{binary, command_in, run, tail, Process, Workdir};
use crate::route::{normalize_state, Route};

/// One `neighbor` of an [`FrrBuilder`].
#[derive(Clone, Debug)]
pub struct FrrNeighbor {
    address: String,
    remote_as: u32,
    port: Option<u16>,
    next_hop_out: Option<String>,
    route_map_out: Option<String>,
    update_source: Option<String>,
    passive: bool,
    ipv6: bool,
    lines: Vec<String>,
}

impl FrrNeighbor {
    pub fn new(address: &str, remote_as: u32) -> FrrNeighbor {
        FrrNeighbor {
            address: address.to_string(),
            remote_as,
            port: None,
            next_hop_out: None,
            route_map_out: None,
            update_source: None,
            passive: false,
            ipv6: false,
            lines: Vec::new(),
        }
    }

    /// The peer's TCP port (default 179).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Sets the NEXT_HOP of every IPv4 route sent to this neighbor, through a generated
    /// `route-map NH-OUT-<n> permit 10 / set ip next-hop ADDR` (the seed's SET-NEXTHOP map).
    pub fn next_hop_out(mut self, next_hop: &str) -> Self {
        self.next_hop_out = Some(next_hop.to_string());
        self
    }

    /// Applies route-map `name` (defined with [`FrrBuilder::config_line`]) outbound.
    pub fn route_map_out(mut self, name: &str) -> Self {
        self.route_map_out = Some(name.to_string());
        self
    }

    /// The source address of the TCP connection (`neighbor X update-source ADDR`).
    pub fn update_source(mut self, addr: &str) -> Self {
        self.update_source = Some(addr.to_string());
        self
    }

    /// Never connect, only accept (`neighbor X passive`).
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }

    /// Also exchange IPv6 unicast with this neighbor (activated in `address-family ipv6`).
    pub fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    /// Any other `neighbor ADDR <rest>` line under `router bgp`, e.g. `"timers 3 9"`.
    pub fn line(mut self, rest: &str) -> Self {
        self.lines.push(rest.to_string());
        self
    }
}

/// Builds a `bgpd.conf` and starts bgpd with it. Defaults: hostname `frr`, listen on every
/// address of the namespace on port 179.
#[derive(Clone, Debug)]
pub struct FrrBuilder {
    asn: u32,
    router_id: String,
    hostname: String,
    listen: Vec<String>,
    port: u16,
    neighbors: Vec<FrrNeighbor>,
    networks4: Vec<String>,
    networks6: Vec<String>,
    router_lines: Vec<String>,
    ipv4_lines: Vec<String>,
    ipv6_lines: Vec<String>,
    config_lines: Vec<String>,
}

impl FrrBuilder {
    pub fn new(asn: u32, router_id: &str) -> FrrBuilder {
        FrrBuilder {
            asn,
            router_id: router_id.to_string(),
            hostname: "frr".to_string(),
            listen: Vec::new(),
            port: 179,
            neighbors: Vec::new(),
            networks4: Vec::new(),
            networks6: Vec::new(),
            router_lines: Vec::new(),
            ipv4_lines: Vec::new(),
            ipv6_lines: Vec::new(),
            config_lines: Vec::new(),
        }
    }

    /// The `hostname` (also sent in the OPEN's FQDN capability).
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = name.to_string();
        self
    }

    /// Listen on `addr` only (`-l`, repeatable); needed on the host, where 179 on every address
    /// would collide with other tests.
    pub fn listen(mut self, addr: &str) -> Self {
        self.listen.push(addr.to_string());
        self
    }

    /// The BGP listen port (`-p`, default 179).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn neighbor(mut self, n: FrrNeighbor) -> Self {
        self.neighbors.push(n);
        self
    }

    /// Advertise `prefix` (`network` in the IPv4 or IPv6 unicast address family).
    pub fn network(mut self, prefix: &str) -> Self {
        if prefix.contains(':') {
            self.networks6.push(prefix.to_string());
        } else {
            self.networks4.push(prefix.to_string());
        }
        self
    }

    /// A raw line under `router bgp` (before the address families).
    pub fn router_line(mut self, line: &str) -> Self {
        self.router_lines.push(line.to_string());
        self
    }

    /// A raw line inside `address-family ipv4 unicast`, e.g.
    /// `"network 10.1.0.0/16 route-map TAG"`.
    pub fn ipv4_line(mut self, line: &str) -> Self {
        self.ipv4_lines.push(line.to_string());
        self
    }

    /// A raw line inside `address-family ipv6 unicast`.
    pub fn ipv6_line(mut self, line: &str) -> Self {
        self.ipv6_lines.push(line.to_string());
        self
    }

    /// A raw top-level line after `router bgp`: route-maps, prefix-lists, community-lists.
    pub fn config_line(mut self, line: &str) -> Self {
        self.config_lines.push(line.to_string());
        self
    }

    /// The `bgpd.conf` this builder describes.
    pub fn render(&self) -> String {
        let mut c = String::new();
        let _ = writeln!(c, "frr defaults traditional\nhostname {}\n!", self.hostname);
        let _ = writeln!(c, "router bgp {}", self.asn);
        let _ = writeln!(c, " bgp router-id {}", self.router_id);
        c.push_str(" bgp log-neighbor-changes\n");
        c.push_str(" no bgp ebgp-requires-policy\n no bgp network import-check\n");
        for n in &self.neighbors {
            let a = &n.address;
            let _ = writeln!(c, " neighbor {a} remote-as {}", n.remote_as);
            if let Some(p) = n.port {
                let _ = writeln!(c, " neighbor {a} port {p}");
            }
            let _ = writeln!(c, " neighbor {a} timers connect 5");
            if let Some(src) = n.update_source.as_ref().or(self.listen.first()) {
                let _ = writeln!(c, " neighbor {a} update-source {src}");
            }
            if n.passive {
                let _ = writeln!(c, " neighbor {a} passive");
            }
            for l in &n.lines {
                let _ = writeln!(c, " neighbor {a} {l}");
            }
        }
        for l in &self.router_lines {
            let _ = writeln!(c, " {l}");
        }
        c.push_str(" !\n address-family ipv4 unicast\n");
        for p in &self.networks4 {
            let _ = writeln!(c, "  network {p}");
        }
        for (i, n) in self.neighbors.iter().enumerate() {
            if let Some(map) = self.out_map(i, n) {
                let _ = writeln!(c, "  neighbor {} route-map {map} out", n.address);
            }
        }
        for l in &self.ipv4_lines {
            let _ = writeln!(c, "  {l}");
        }
        c.push_str(" exit-address-family\n");
        if !self.networks6.is_empty() || self.neighbors.iter().any(|n| n.ipv6) {
            c.push_str(" !\n address-family ipv6 unicast\n");
            for p in &self.networks6 {
                let _ = writeln!(c, "  network {p}");
            }
            for n in self.neighbors.iter().filter(|n| n.ipv6) {
                let _ = writeln!(c, "  neighbor {} activate", n.address);
            }
            for l in &self.ipv6_lines {
                let _ = writeln!(c, "  {l}");
            }
            c.push_str(" exit-address-family\n");
        }
        c.push_str("exit\n!\n");
        for (i, n) in self.neighbors.iter().enumerate() {
            if let (Some(nh), None) = (&n.next_hop_out, &n.route_map_out) {
                let _ = writeln!(
                    c,
                    "route-map NH-OUT-{i} permit 10\n set ip next-hop {nh}\nexit\n!"
                );
            }
        }
        for l in &self.config_lines {
            let _ = writeln!(c, "{l}");
        }
        c
    }

    fn out_map(&self, i: usize, n: &FrrNeighbor) -> Option<String> {
        n.route_map_out
            .clone()
            .or_else(|| n.next_hop_out.as_ref().map(|_| format!("NH-OUT-{i}")))
    }

    /// Writes the config into a fresh [`Workdir`] and starts bgpd inside `netns` (or on the
    /// host). Returns once `vtysh` answers; fails if bgpd exits or rejects a config line.
    pub fn start(self, netns: Option<&Netns>) -> io::Result<Frr> {
        if let Some(n) = self
            .neighbors
            .iter()
            .find(|n| n.next_hop_out.is_some() && n.route_map_out.is_some())
        {
            return Err(io::Error::other(format!(
                "neighbor {}: next_hop_out and route_map_out both set; put `set ip next-hop` in the route-map",
                n.address
            )));
        }
        let bgpd = binary("bgpd", "frr")?;
        let vtysh = binary("vtysh", "frr")?;
        let dir = Workdir::new(&format!("frr-{}", self.hostname))?;
        let conf = dir.write("bgpd.conf", &self.render())?;
        let log = dir.file("bgpd.log");
        let mut cmd = command_in(netns.map(Netns::name), &bgpd);
        cmd.args(["-Z", "-S", "-n", "-P", "0", "-f"]).arg(&conf);
        cmd.arg("-i").arg(dir.file("bgpd.pid"));
        cmd.arg("--vty_socket").arg(dir.path());
        cmd.arg("--log").arg(format!("file:{}", log.display()));
        cmd.args(["--log-level", "info", "-p", &self.port.to_string()]);
        for a in &self.listen {
            cmd.args(["-l", a]);
        }
        let process = Process::spawn(cmd, "bgpd", &dir.file("bgpd.out"))?;
        let mut frr = Frr {
            process,
            vtysh,
            log,
            netns: netns.map(|n| n.name().to_string()),
            config: self,
            dir,
        };
        frr.wait_ready()?;
        Ok(frr)
    }
}

/// A running bgpd; stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Frr {
    // Field order is drop order: the daemon stops before its directory goes.
    process: Process,
    vtysh: PathBuf,
    log: PathBuf,
    netns: Option<String>,
    config: FrrBuilder,
    dir: Workdir,
}

impl Frr {
    /// Starts building a bgpd with local AS `asn` and `bgp router-id router_id`.
    pub fn builder(asn: u32, router_id: &str) -> FrrBuilder {
        FrrBuilder::new(asn, router_id)
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            self.process.check_alive()?;
            if self.vtysh("show version").is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "bgpd did not answer vtysh within 15 s; output:\n{}",
                    tail(&self.process.output(), 40)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default() + &self.process.output();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("on config line"))
            .collect();
        if !bad.is_empty() {
            return Err(io::Error::other(format!(
                "bgpd rejected config lines ({}):\n{}\n--- config ---\n{}",
                self.dir.file("bgpd.conf").display(),
                bad.join("\n"),
                self.config.render()
            )));
        }
        Ok(())
    }

    /// Runs one vtysh command against this bgpd and returns its output.
    pub fn vtysh(&self, cmd: &str) -> io::Result<String> {
        // The vty socket is a path, reachable from the host whatever namespace bgpd is in.
        let out = run(Command::new(&self.vtysh)
            .arg("--vty_socket")
            .arg(self.dir.path())
            .args(["-d", "bgpd", "-c", cmd]))?;
        if out.starts_with('%') {
            return Err(io::Error::other(format!(
                "vtysh -c {cmd:?}: {}",
                out.trim()
            )));
        }
        Ok(out)
    }

    /// `vtysh` output parsed as JSON (for the `... json` commands).
    pub fn vtysh_json(&self, cmd: &str) -> io::Result<Json> {
        let out = self.vtysh(cmd)?;
        Json::parse(&out).map_err(|e| io::Error::other(format!("vtysh -c {cmd:?}: {e}: {out}")))
    }

    /// Every path in the IPv4 and IPv6 unicast tables (`show bgp ipv4|ipv6 unicast json`).
    pub fn routes(&self) -> io::Result<Vec<Route>> {
        let mut routes = Vec::new();
        for afi in ["ipv4", "ipv6"] {
            let v = self.vtysh_json(&format!("show bgp {afi} unicast json"))?;
            for (prefix, paths) in v["routes"].as_object().unwrap_or_default() {
                for p in paths.as_array().unwrap_or_default() {
                    routes.push(Route {
                        prefix: prefix.clone(),
                        next_hop: p["nexthops"][0]["ip"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        as_path: p["path"].as_str().unwrap_or_default().to_string(),
                        best: p["bestpath"].as_bool().unwrap_or(false),
                    });
                }
            }
        }
        routes.sort();
        Ok(routes)
    }

    /// The session state with neighbor `addr` (`Idle` … `Established`, see
    /// [`crate::SESSION_STATES`]), or a string starting with `error:` if it cannot be read —
    /// never equal to a state, so it can go straight into [`crate::wait_until`].
    pub fn neighbor_state(&self, addr: &str) -> String {
        match self.vtysh_json(&format!("show bgp neighbors {addr} json")) {
            Ok(v) => match v[addr]["bgpState"].as_str() {
                Some(s) => normalize_state(s),
                None => format!("error: no bgpState for {addr} in {v:?}"),
            },
            Err(e) => format!("error: {e}"),
        }
    }

    /// Where the config, vty socket and logs are.
    pub fn workdir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The bgpd log so far (`DIR/bgpd.log`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The config bgpd was started with.
    pub fn config(&self) -> String {
        self.config.render()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The namespace bgpd runs in (`None`: the host).
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// Stops bgpd now (dropping does it too).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}
