//! BIRD 2 as a peer: a config builder, a launcher and `birdc` queries.
//!
//! Started in the foreground as `bird -f -c DIR/bird.conf -s DIR/bird.ctl -P DIR/bird.pid`
//! and queried with `birdc -s DIR/bird.ctl CMD`. Every BGP protocol imports and exports
//! everything (`import all; export all;`, or the export filter given) into the default tables
//! `master4` / `master6`, and static routes are blackholes there.
//!
//! # Quirks of BIRD 2.0.12 (SPEC §7, and found while building this)
//!
//! - On a shared subnet (a [`crate::Lan`]) eBGP needs neither `multihop` nor `direct`.
//! - On the host loopback it does: a neighbor in 127.0.0.0/8 is a host-scope address, which
//!   BIRD does not count as directly connected, so the protocol stops at once with
//!   `Error: Invalid next hop`. The builder adds `multihop` for 127.x neighbors.
//! - A route received with a NEXT_HOP that is not on a connected subnet is silently treated as
//!   withdraw in direct mode: it never reaches the table, `show protocols all` counts it under
//!   "Import withdraws", and nothing is logged even with `log ... all`. On a LAN, give
//!   next hops inside the LAN's prefix (the seed's LB frontend 10.1.0.100 on a 10.1.0.0/16 LAN
//!   is fine). With `multihop` (the host-loopback case) BIRD keeps such routes and resolves
//!   the next hop recursively.
//! - Towards FRR and GoBGP on the host loopback, BIRD's own routes need
//!   [`BirdPeer::next_hop_address`]: both reject a 127.x next hop.
//! - After a session error BIRD waits 60 s (up to 300 s) before retrying; the builder sets
//!   `connect retry time 5; error wait time 5, 30;`.
//! - `local ... port N` sets the port it listens on for that protocol; BIRD logs
//!   `Unexpected connect from unknown address` for a connection whose source it does not know.
//! - BIRD sends no MED unless a filter sets `bgp_med`; next hop is its own address on export;
//!   it sends End-of-RIB after the initial table whether or not graceful restart was agreed.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::process::{binary, command_in, run, sanitize, tail, Process, Workdir};
use crate::route::{normalize_state, Route};

/// One `protocol bgp` of a [`BirdBuilder`].
#[derive(Clone, Debug)]
pub struct BirdPeer {
    name: String,
    neighbor: String,
    remote_as: u32,
    neighbor_port: Option<u16>,
    local: Option<String>,
    local_port: Option<u16>,
    multihop: Option<bool>,
    next_hop_address: Option<String>,
    passive: bool,
    ipv6: bool,
    export_filter: Option<String>,
    lines: Vec<String>,
}

impl BirdPeer {
    /// `protocol bgp NAME { neighbor ADDR as REMOTE_AS; ... }`. `name` is made a valid BIRD
    /// symbol (other characters become `_`).
    pub fn new(name: &str, neighbor: &str, remote_as: u32) -> BirdPeer {
        let mut name: String = sanitize(name, 48).replace('-', "_");
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            name.insert(0, 'p');
        }
        BirdPeer {
            name,
            neighbor: neighbor.to_string(),
            remote_as,
            neighbor_port: None,
            local: None,
            local_port: None,
            multihop: None,
            next_hop_address: None,
            passive: false,
            ipv6: false,
            export_filter: None,
            lines: Vec::new(),
        }
    }

    /// The neighbor's port (default 179).
    pub fn port(mut self, port: u16) -> Self {
        self.neighbor_port = Some(port);
        self
    }

    /// The local address (`local ADDR`), also the source of BIRD's connection.
    pub fn local(mut self, addr: &str) -> Self {
        self.local = Some(addr.to_string());
        self
    }

    /// The port BIRD listens on for this protocol (`local ... port N`, default 179).
    pub fn local_port(mut self, port: u16) -> Self {
        self.local_port = Some(port);
        self
    }

    /// Force `multihop` on or off (default: on only for a neighbor in 127.0.0.0/8).
    pub fn multihop(mut self, on: bool) -> Self {
        self.multihop = Some(on);
        self
    }

    /// The NEXT_HOP of routes sent to this peer (`next hop address ADDR`); for an IPv6 channel
    /// give an IPv6 address and call [`BirdPeer::ipv6`].
    pub fn next_hop_address(mut self, addr: &str) -> Self {
        self.next_hop_address = Some(addr.to_string());
        self
    }

    /// Only accept connections (`passive on`).
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }

    /// Add an IPv6 unicast channel (MP-BGP over this session).
    pub fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    /// The body of the export filter for both channels, e.g.
    /// `"bgp_community.add((65002,100)); accept;"` (default `export all`).
    pub fn export_filter(mut self, body: &str) -> Self {
        self.export_filter = Some(body.to_string());
        self
    }

    /// Any other line inside the protocol block, e.g. `"hold time 9;"`.
    pub fn line(mut self, line: &str) -> Self {
        self.lines.push(line.to_string());
        self
    }

    fn channel(&self, afi: &str, next_hop: Option<&str>) -> String {
        let export = match &self.export_filter {
            Some(body) => format!("export filter {{ {body} }};"),
            None => "export all;".to_string(),
        };
        let nh = next_hop
            .map(|a| format!(" next hop address {a};"))
            .unwrap_or_default();
        format!("  {afi} {{ import all; {export}{nh} }};\n")
    }
}

/// Builds a `bird.conf` and starts BIRD with it.
#[derive(Clone, Debug)]
pub struct BirdBuilder {
    asn: u32,
    router_id: String,
    peers: Vec<BirdPeer>,
    statics4: Vec<String>,
    statics6: Vec<String>,
    config_lines: Vec<String>,
}

impl BirdBuilder {
    pub fn new(asn: u32, router_id: &str) -> BirdBuilder {
        BirdBuilder {
            asn,
            router_id: router_id.to_string(),
            peers: Vec::new(),
            statics4: Vec::new(),
            statics6: Vec::new(),
            config_lines: Vec::new(),
        }
    }

    pub fn peer(mut self, p: BirdPeer) -> Self {
        self.peers.push(p);
        self
    }

    /// A static blackhole route to advertise (IPv4 or IPv6 by the prefix).
    pub fn static_route(self, prefix: &str) -> Self {
        self.static_route_with(prefix, "")
    }

    /// A static route with per-route attributes, a filter body such as
    /// `"bgp_community.add((65002,1)); bgp_med = 20;"`.
    pub fn static_route_with(mut self, prefix: &str, attrs: &str) -> Self {
        let line = if attrs.is_empty() {
            format!("  route {prefix} blackhole;")
        } else {
            format!("  route {prefix} blackhole {{ {attrs} }};")
        };
        if prefix.contains(':') {
            self.statics6.push(line);
        } else {
            self.statics4.push(line);
        }
        self
    }

    /// A raw top-level line (filters, functions, more protocols).
    pub fn config_line(mut self, line: &str) -> Self {
        self.config_lines.push(line.to_string());
        self
    }

    /// The `bird.conf` this builder describes; `log_file` is where BIRD logs.
    pub fn render(&self, log_file: &str) -> String {
        let mut c = String::new();
        let _ = writeln!(c, "log \"{log_file}\" all;");
        let _ = writeln!(c, "router id {};", self.router_id);
        c.push_str("protocol device {}\n");
        for (afi, routes) in [("ipv4", &self.statics4), ("ipv6", &self.statics6)] {
            if !routes.is_empty() {
                let _ = writeln!(
                    c,
                    "protocol static static_{afi} {{\n  {afi};\n{}\n}}",
                    routes.join("\n")
                );
            }
        }
        for l in &self.config_lines {
            let _ = writeln!(c, "{l}");
        }
        for p in &self.peers {
            let _ = writeln!(c, "protocol bgp {} {{", p.name);
            let mut local = "  local".to_string();
            if let Some(a) = &p.local {
                let _ = write!(local, " {a}");
            }
            if let Some(port) = p.local_port {
                let _ = write!(local, " port {port}");
            }
            let _ = writeln!(c, "{local} as {};", self.asn);
            let port = p
                .neighbor_port
                .map(|n| format!(" port {n}"))
                .unwrap_or_default();
            let _ = writeln!(c, "  neighbor {}{port} as {};", p.neighbor, p.remote_as);
            if p.multihop.unwrap_or_else(|| p.neighbor.starts_with("127.")) {
                c.push_str("  multihop;\n");
            }
            if p.passive {
                c.push_str("  passive on;\n");
            }
            c.push_str("  connect retry time 5;\n  error wait time 5, 30;\n");
            for l in &p.lines {
                let _ = writeln!(c, "  {l}");
            }
            let nh = p.next_hop_address.as_deref();
            let v6 = nh.is_some_and(|a| a.contains(':'));
            c.push_str(&p.channel("ipv4", if v6 { None } else { nh }));
            if p.ipv6 {
                c.push_str(&p.channel("ipv6", if v6 { nh } else { None }));
            }
            c.push_str("}\n");
        }
        c
    }

    /// Writes the config into a fresh [`Workdir`] (checked with `bird -p` first) and starts BIRD
    /// inside `netns` (or on the host). Returns once `birdc` answers.
    pub fn start(self, netns: Option<&Netns>) -> io::Result<Bird> {
        let bird = binary("bird", "bird2")?;
        let birdc = binary("birdc", "bird2")?;
        let dir = Workdir::new(&format!("bird-{}", self.router_id))?;
        let log = dir.file("bird.log");
        let conf = dir.write("bird.conf", &self.render(&log.display().to_string()))?;
        // Unlike bgpd -C, bird -p does reject a bad config, with the line number.
        run(Command::new(&bird).arg("-p").arg("-c").arg(&conf)).map_err(|e| {
            io::Error::other(format!(
                "{e}\n--- {} ---\n{}",
                conf.display(),
                self.render("")
            ))
        })?;
        let socket = dir.file("bird.ctl");
        let mut cmd = command_in(netns.map(Netns::name), &bird);
        cmd.arg("-f")
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(&socket)
            .arg("-P")
            .arg(dir.file("bird.pid"));
        let process = Process::spawn(cmd, "bird", &dir.file("bird.out"))?;
        let mut b = Bird {
            process,
            birdc,
            socket,
            log,
            netns: netns.map(|n| n.name().to_string()),
            config: self,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            b.process.check_alive()?;
            if b.birdc("show status").is_ok() {
                return Ok(b);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "bird did not answer birdc within 15 s; output:\n{}",
                    tail(&b.process.output(), 40)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A running BIRD; stopped when dropped.
#[derive(Debug)]
pub struct Bird {
    // Field order is drop order: the daemon stops before its directory goes.
    process: Process,
    birdc: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    netns: Option<String>,
    config: BirdBuilder,
    dir: Workdir,
}

impl Bird {
    /// Starts building a BIRD with local AS `asn` and `router id router_id`.
    pub fn builder(asn: u32, router_id: &str) -> BirdBuilder {
        BirdBuilder::new(asn, router_id)
    }

    /// Runs one `birdc` command (words separated by spaces) and returns its output without the
    /// `BIRD x.y.z ready.` banner.
    pub fn birdc(&self, cmd: &str) -> io::Result<String> {
        let out = run(Command::new(&self.birdc)
            .arg("-s")
            .arg(&self.socket)
            .args(cmd.split_whitespace()))?;
        let body: Vec<&str> = out
            .lines()
            .filter(|l| !(l.starts_with("BIRD ") && l.ends_with("ready.")))
            .collect();
        let body = body.join("\n");
        if body.starts_with("syntax error") || body.starts_with("Unable to connect") {
            return Err(io::Error::other(format!("birdc {cmd:?}: {body}")));
        }
        Ok(body)
    }

    /// Every route in every table (`show route all`), static ones included (their next hop and
    /// AS path are empty).
    pub fn routes(&self) -> io::Result<Vec<Route>> {
        Ok(parse_routes(&self.birdc("show route all")?))
    }

    /// The state of the BGP session with neighbor `addr` (the protocol whose `neighbor` it is),
    /// as in [`crate::Frr::neighbor_state`].
    pub fn neighbor_state(&self, addr: &str) -> String {
        match self.config.peers.iter().find(|p| p.neighbor == addr) {
            Some(p) => self.protocol_state(&p.name.clone()),
            None => format!("error: no protocol with neighbor {addr}"),
        }
    }

    /// The `BGP state:` of protocol `name`.
    pub fn protocol_state(&self, name: &str) -> String {
        match self.birdc(&format!("show protocols all {name}")) {
            Ok(out) => out
                .lines()
                .find_map(|l| l.trim().strip_prefix("BGP state:"))
                .map(normalize_state)
                .unwrap_or_else(|| format!("error: no BGP state in {out:?}")),
            Err(e) => format!("error: {e}"),
        }
    }

    pub fn workdir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The BIRD log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn config(&self) -> String {
        self.config.render(&self.log.display().to_string())
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

/// Parses `show route all`:
///
/// ```text
/// Table master4:
/// 192.168.10.0/24      unicast [nva1 18:30:00.000 from 10.1.2.10] * (100) [AS65001i]
///         via 10.1.0.100 on eth0
///         Type: BGP univ
///         BGP.as_path: 65001
///         BGP.next_hop: 10.1.0.100
///                      unicast [nva2 ...] (100) [AS65002i]
/// ```
fn parse_routes(out: &str) -> Vec<Route> {
    let mut routes: Vec<Route> = Vec::new();
    let mut prefix = String::new();
    for line in out.lines() {
        if line.is_empty() || line.starts_with("Table ") {
            continue;
        }
        if line.starts_with('\t') {
            let Some(r) = routes.last_mut() else { continue };
            let attr = line.trim();
            if let Some(p) = attr.strip_prefix("BGP.as_path:") {
                r.as_path = p.split_whitespace().collect::<Vec<_>>().join(" ");
            } else if let Some(nh) = attr.strip_prefix("BGP.next_hop:") {
                r.next_hop = nh.split_whitespace().next().unwrap_or_default().to_string();
            }
            continue;
        }
        if !line.starts_with(' ') {
            prefix = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
        if line.contains('[') {
            let best = line
                .split(']')
                .nth(1)
                .is_some_and(|rest| rest.trim_start().starts_with('*'));
            routes.push(Route {
                prefix: prefix.clone(),
                next_hop: String::new(),
                as_path: String::new(),
                best,
            });
        }
    }
    routes.sort();
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_show_route_all() {
        let out = [
            "Table master4:",
            "192.168.10.0/24      unicast [nva1 18:30:00.000 from 10.1.2.10] * (100) [AS65001i]",
            "\tvia 10.1.0.100 on eth0",
            "\tType: BGP univ",
            "\tBGP.origin: IGP",
            "\tBGP.as_path: 65001",
            "\tBGP.next_hop: 10.1.0.100",
            "                     unicast [nva2 18:30:01.000 from 10.1.2.11] (100) [AS65002 65002i]",
            "\tBGP.as_path: 65002 65002",
            "\tBGP.next_hop: 10.1.0.101",
            "10.20.0.0/16         blackhole [static_ipv4 18:27:17.015] * (200)",
            "\tType: static univ",
            "",
            "Table master6:",
            "2001:db8::/48        unicast [nva1 18:30:00.000 from 10.1.2.10] * (100) [AS65001i]",
            "\tBGP.next_hop: 2001:db8:1::1 fe80::1",
        ]
        .join("\n");
        let out = out.as_str();
        let r = parse_routes(out);
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[0],
            Route {
                prefix: "10.20.0.0/16".into(),
                next_hop: "".into(),
                as_path: "".into(),
                best: true
            }
        );
        assert_eq!(r[1].prefix, "192.168.10.0/24");
        assert_eq!(
            (r[1].next_hop.as_str(), r[1].as_path.as_str(), r[1].best),
            ("10.1.0.100", "65001", true)
        );
        assert_eq!(
            (r[2].next_hop.as_str(), r[2].as_path.as_str(), r[2].best),
            ("10.1.0.101", "65002 65002", false)
        );
        assert_eq!(r[3].next_hop, "2001:db8:1::1");
    }
}
