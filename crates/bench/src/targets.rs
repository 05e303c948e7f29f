//! The route servers under test, each configured as a transparent route server (route-server
//! client on every peer: no AS prepended, next hop kept, every route to every other peer), and
//! the in-process sink used to measure the injector alone.
//!
//! Addresses (all on the host loopback, `127.<net>.0.0/16`, `net` = 77 by default):
//! target `127.net.0.1`, monitor `127.net.0.2`, tester `t` `127.net.(1 + t/250).(1 + t%250)`.
//! Every target only accepts (passive): the harness's speakers connect to `target:port`.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use labtest::{Process, Workdir};
use tokio::sync::watch;

use crate::monitor::Collector;
use crate::speaker::{self, Identity, Phase};

/// The route server's ASN, for every target.
pub const RS_ASN: u32 = 65515;
/// The monitor's ASN.
pub const MONITOR_ASN: u32 = 64999;

/// AS of tester `t`: 65001… (2-octet, clear of 65515 and the other reserved numbers), then
/// 4-octet private ASNs past 400 testers.
pub fn tester_asn(t: usize) -> u32 {
    if t < 400 {
        65001 + t as u32
    } else {
        4_200_000_000 + t as u32
    }
}

/// One kind of target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// No route server: the testers send straight to the harness's own receiver. Measures the
    /// injector (and the receiving side of the harness), not a target.
    Sink,
    /// nexthop as deployed (SPEC §6): the route server programs a virtual network, with a NIC.
    Nexthop,
    /// nexthop without a virtual network: only the BGP side (what the race measured before).
    NexthopBare,
    Bird,
    Frr,
    Gobgp,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Sink,
        Kind::Nexthop,
        Kind::NexthopBare,
        Kind::Bird,
        Kind::Frr,
        Kind::Gobgp,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sink => "sink",
            Kind::Nexthop => "nexthop",
            Kind::NexthopBare => "nexthop-bare",
            Kind::Bird => "bird",
            Kind::Frr => "frr",
            Kind::Gobgp => "gobgp",
        }
    }
    /// As shown in tables.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Sink => "injector→sink",
            Kind::Nexthop => "nexthop",
            Kind::NexthopBare => "nexthop, no vnet",
            Kind::Bird => "BIRD",
            Kind::Frr => "FRR",
            Kind::Gobgp => "GoBGP",
        }
    }
    /// nexthop puts its ASN in front of routes it passes between peers (`branch_to_branch`,
    /// its documented behaviour); the others are configured as transparent route servers.
    pub fn prepends(self) -> bool {
        self.is_nexthop()
    }
    /// Either shape of nexthop.
    pub fn is_nexthop(self) -> bool {
        matches!(self, Kind::Nexthop | Kind::NexthopBare)
    }
    /// Whether this is a route server (not the sink).
    pub fn is_target(self) -> bool {
        self != Kind::Sink
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown target {s:?} (one of sink, nexthop, nexthop-bare, bird, frr, gobgp)"
                )
            })
    }
}

/// Where everything listens.
#[derive(Clone, Copy, Debug)]
pub struct Net {
    pub net: u8,
    pub port: u16,
    /// The race in IPv6 unicast (over the same IPv4 sessions).
    pub ipv6: bool,
}

impl Net {
    pub fn target(&self) -> Ipv4Addr {
        Ipv4Addr::new(127, self.net, 0, 1)
    }
    pub fn monitor(&self) -> Ipv4Addr {
        Ipv4Addr::new(127, self.net, 0, 2)
    }
    pub fn tester(&self, t: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, self.net, (1 + t / 250) as u8, (1 + t % 250) as u8)
    }
    pub fn target_sock(&self) -> SocketAddr {
        SocketAddr::new(self.target().into(), self.port)
    }
}

/// A peer of the route server, as its config names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerDef {
    pub name: String,
    pub addr: Ipv4Addr,
    pub asn: u32,
}

/// The monitor and `testers` testers.
pub fn peers(net: &Net, testers: usize, with_monitor: bool) -> Vec<PeerDef> {
    let mut v: Vec<PeerDef> = (0..testers)
        .map(|t| PeerDef {
            name: format!("t{t}"),
            addr: net.tester(t),
            asn: tester_asn(t),
        })
        .collect();
    if with_monitor {
        v.push(PeerDef {
            name: "monitor".into(),
            addr: net.monitor(),
            asn: MONITOR_ASN,
        });
    }
    v
}

/// nexthop: one instance, branch-to-branch on (routes go to the other peers), a route limit
/// far above N. With `vnet`, as SPEC §6 deploys it: the route server programs a virtual network
/// whose address space covers the testers' next hops, with one NIC, so every learned route is
/// also held and resolved by the fabric.
pub fn nexthop_config(
    net: &Net,
    peers: &[PeerDef],
    api_port: u16,
    max_routes: u64,
    vnet: bool,
) -> String {
    let mut c = String::new();
    if vnet {
        let (addr, len) = crate::monitor::VNET_SPACE;
        let space = if net.ipv6 {
            let (a6, l6) = crate::monitor::VNET_SPACE6;
            format!("\"{addr}/{len}\", \"{a6}/{l6}\"")
        } else {
            format!("\"{addr}/{len}\"")
        };
        let _ = writeln!(
            c,
            "[[virtual_network]]\nname = \"hub\"\nregion = \"westeurope\"\naddress_space = [{space}]\n\n[[nic]]\nname = \"vm1-nic\"\nvirtual_network = \"hub\"\naddress = \"10.255.3.10\"\n"
        );
    }
    let _ = writeln!(
        c,
        "[route_server]\nasn = {RS_ASN}\ninstances = [\"{}\"]\nport = {}\nbranch_to_branch = true\nmax_routes_per_peer = {}\n{}",
        net.target(),
        net.port,
        max_routes.min(u64::from(u32::MAX)),
        if vnet { "virtual_network = \"hub\"\n" } else { "" }
    );
    for p in peers {
        let _ = writeln!(
            c,
            "[[route_server.peer]]\nname = \"{}\"\naddress = \"{}\"\nasn = {}\n",
            p.name, p.addr, p.asn
        );
    }
    let _ = writeln!(c, "[api]\nlisten = \"127.0.0.1:{api_port}\"");
    c
}

/// BIRD 2: `rs client` (no prepend, no next-hop rewrite) plus `next hop keep`, `passive`.
/// A 127/8 neighbor is not "directly connected" to BIRD, so the sessions are `multihop`, and
/// BIRD resolves the 10.x next hops recursively; a static 10.0.0.0/8 in a separate IGP table
/// makes them resolvable without adding a route to what is exported.
pub fn bird_config(net: &Net, peers: &[PeerDef]) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "router id {target};\nlog stderr {{ warning, error, fatal, bug }};\n\
         protocol device {{ }}\n\
         ipv4 table igp4;\n\
         protocol static nexthops {{ ipv4 {{ table igp4; }}; route 10.0.0.0/8 blackhole; }}\n\
         ipv6 table igp6;\n\
         protocol static nexthops6 {{ ipv6 {{ table igp6; }}; route fd00::/8 blackhole; }}\n\
         template bgp rsc {{\n  local {target} port {port} as {RS_ASN};\n  multihop;\n  passive on;\n  rs client;\n  \
         {channel}\n}}",
        target = net.target(),
        port = net.port,
        channel = if net.ipv6 {
            "ipv6 { import all; export all; next hop keep; igp table igp6; };"
        } else {
            "ipv4 { import all; export all; next hop keep; igp table igp4; };"
        }
    );
    for p in peers {
        let _ = writeln!(
            c,
            "protocol bgp {} from rsc {{ neighbor {} as {}; }}",
            p.name, p.addr, p.asn
        );
    }
    c
}

/// FRR bgpd (run without zebra): `route-server-client` on every neighbor, passive, no eBGP
/// policy requirement.
pub fn frr_config(net: &Net, peers: &[PeerDef]) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "frr defaults traditional\nhostname nexthop-bench-rs\n!\nrouter bgp {RS_ASN}\n bgp router-id {}\n no bgp ebgp-requires-policy\n no bgp network import-check",
        net.target()
    );
    if net.ipv6 {
        c.push_str(" no bgp default ipv4-unicast\n");
    }
    for p in peers {
        let _ = writeln!(c, " neighbor {} remote-as {}", p.addr, p.asn);
        let _ = writeln!(c, " neighbor {} passive", p.addr);
    }
    let afi = if net.ipv6 { "ipv6" } else { "ipv4" };
    let _ = writeln!(c, " !\n address-family {afi} unicast");
    for p in peers {
        if net.ipv6 {
            let _ = writeln!(c, "  neighbor {} activate", p.addr);
        }
        let _ = writeln!(c, "  neighbor {} route-server-client", p.addr);
    }
    c.push_str(" exit-address-family\nexit\n!\n");
    c
}

/// GoBGP: `route-server-client` and `passive-mode` on every neighbor, listening on the target
/// address only.
pub fn gobgp_config(net: &Net, peers: &[PeerDef]) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "[global.config]\n  as = {RS_ASN}\n  router-id = \"{t}\"\n  port = {}\n  local-address-list = [\"{t}\"]",
        net.port,
        t = net.target()
    );
    for p in peers {
        let _ = writeln!(
            c,
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}\n  \
             [neighbors.transport.config]\n    passive-mode = true\n    local-address = \"{}\"\n  \
             [neighbors.route-server.config]\n    route-server-client = true\n  \
             [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{}\"",
            p.addr,
            p.asn,
            net.target(),
            if net.ipv6 { "ipv6-unicast" } else { "ipv4-unicast" }
        );
    }
    c
}

/// A free TCP port on 127.0.0.1 (for the APIs the targets insist on serving).
pub fn free_port() -> Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Paths of the binaries.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub nexthop: Option<PathBuf>,
}

fn need(name: &str, package: &str) -> Result<PathBuf> {
    labtest::find_binary(name)
        .ok_or_else(|| anyhow!("`{name}` not found (install the Debian package `{package}`)"))
}

/// A started target.
pub struct Running {
    pub kind: Kind,
    // Field order is drop order: the process stops before its directory goes.
    process: Option<Process>,
    sink: Option<tokio::task::JoinHandle<()>>,
    dir: Option<Workdir>,
}

impl Running {
    /// The process to measure (None for the sink).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }
    /// False once the target process has exited.
    pub fn alive(&mut self) -> bool {
        self.process.as_mut().is_none_or(|p| p.is_running())
    }
    /// The end of what the target printed (for failures).
    pub fn output_tail(&self, lines: usize) -> String {
        let Some(p) = &self.process else {
            return String::new();
        };
        let mut out = p.output();
        if let Some(d) = &self.dir {
            for log in ["bgpd.log"] {
                if let Ok(s) = std::fs::read_to_string(d.file(log)) {
                    out.push_str(&s);
                }
            }
        }
        let v: Vec<&str> = out.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }
    pub fn workdir(&self) -> Option<&Path> {
        self.dir.as_ref().map(Workdir::path)
    }
    /// Stops the target (SIGTERM, SIGKILL after 3 s) or the sink.
    pub fn stop(&mut self) {
        if let Some(p) = &mut self.process {
            p.stop();
        }
        if let Some(s) = self.sink.take() {
            s.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `kind` for `peers` on `net`. Returns once the process runs (it may still be loading
/// its config: the speakers retry their connections). The sink needs the tokio runtime.
pub fn start(
    kind: Kind,
    net: &Net,
    peers: &[PeerDef],
    bins: &Binaries,
    max_routes: u64,
    sink: Option<(Arc<Collector>, watch::Receiver<Phase>)>,
) -> Result<Running> {
    let mut r = Running {
        kind,
        process: None,
        sink: None,
        dir: None,
    };
    match kind {
        Kind::Sink => {
            let (collector, phase) = sink.ok_or_else(|| anyhow!("sink without a collector"))?;
            let std = StdListener::bind(net.target_sock())
                .with_context(|| format!("sink: listen on {}", net.target_sock()))?;
            std.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(std)?;
            let id = Identity {
                addr: net.target(),
                asn: RS_ASN,
                ipv6: net.ipv6,
            };
            r.sink = Some(tokio::spawn(async move {
                let mut conns = tokio::task::JoinSet::new();
                while let Ok((stream, from)) = listener.accept().await {
                    let (collector, phase) = (collector.clone(), phase.clone());
                    conns.spawn(async move {
                        let res = match speaker::accept(stream, id).await {
                            Ok(s) => speaker::receive(s, collector.clone(), phase).await,
                            Err(e) => Err(e),
                        };
                        if let Err(e) = res {
                            collector.note(format!("sink connection from {from}: {e:#}"));
                        }
                    });
                }
            }));
        }
        Kind::Nexthop | Kind::NexthopBare => {
            let bin = bins.nexthop.clone().ok_or_else(|| {
                anyhow!("nexthop binary not found: build it (`cargo build --release -p nexthop`) or pass --nexthop-bin")
            })?;
            let dir = Workdir::new("bench-nexthop")?;
            let conf = dir.write(
                "nexthop.toml",
                &nexthop_config(net, peers, free_port()?, max_routes, kind == Kind::Nexthop),
            )?;
            let mut cmd = Command::new(bin);
            cmd.arg("run").arg("--config").arg(conf);
            cmd.env("NEXTHOP_LOG", "warn");
            r.process = Some(Process::spawn(cmd, "nexthop", &dir.file("nexthop.out"))?);
            r.dir = Some(dir);
        }
        Kind::Bird => {
            let bird = need("bird", "bird2")?;
            let dir = Workdir::new("bench-bird")?;
            let conf = dir.write("bird.conf", &bird_config(net, peers))?;
            let check = Command::new(&bird)
                .arg("-p")
                .arg("-c")
                .arg(&conf)
                .output()?;
            if !check.status.success() {
                bail!(
                    "bird rejected its config {}: {}",
                    conf.display(),
                    String::from_utf8_lossy(&check.stderr).trim()
                );
            }
            let mut cmd = Command::new(bird);
            cmd.arg("-f").arg("-c").arg(&conf);
            cmd.arg("-s").arg(dir.file("bird.ctl"));
            cmd.arg("-P").arg(dir.file("bird.pid"));
            r.process = Some(Process::spawn(cmd, "bird", &dir.file("bird.out"))?);
            r.dir = Some(dir);
        }
        Kind::Frr => {
            let bgpd = need("bgpd", "frr")?;
            let dir = Workdir::new("bench-frr")?;
            let conf = dir.write("bgpd.conf", &frr_config(net, peers))?;
            let mut cmd = Command::new(bgpd);
            cmd.args(["-Z", "-S", "-n", "-P", "0", "-f"]).arg(&conf);
            cmd.arg("-i").arg(dir.file("bgpd.pid"));
            cmd.arg("--vty_socket").arg(dir.path());
            cmd.arg("--log")
                .arg(format!("file:{}", dir.file("bgpd.log").display()));
            cmd.args(["--log-level", "warnings"]);
            cmd.args(["-p", &net.port.to_string(), "-l", &net.target().to_string()]);
            r.process = Some(Process::spawn(cmd, "bgpd", &dir.file("bgpd.out"))?);
            r.dir = Some(dir);
        }
        Kind::Gobgp => {
            let gobgpd = need("gobgpd", "gobgpd")?;
            let dir = Workdir::new("bench-gobgp")?;
            let conf = dir.write("gobgpd.toml", &gobgp_config(net, peers))?;
            let mut cmd = Command::new(gobgpd);
            cmd.arg("-f").arg(&conf);
            cmd.args(["-p", "--pprof-disable", "-l", "warn"]);
            cmd.arg(format!("--api-hosts=127.0.0.1:{}", free_port()?));
            r.process = Some(Process::spawn(cmd, "gobgpd", &dir.file("gobgpd.log"))?);
            r.dir = Some(dir);
        }
    }
    Ok(r)
}

/// The version line of each external target, for the report.
pub fn version(kind: Kind, bins: &Binaries) -> Option<String> {
    let (bin, args): (PathBuf, &[&str]) = match kind {
        Kind::Sink => return None,
        Kind::Nexthop | Kind::NexthopBare => (bins.nexthop.clone()?, &["--version"]),
        Kind::Bird => (labtest::find_binary("bird")?, &["--version"]),
        Kind::Frr => (labtest::find_binary("bgpd")?, &["--version"]),
        Kind::Gobgp => (labtest::find_binary("gobgpd")?, &["--version"]),
    };
    let built = kind
        .is_nexthop()
        .then(|| std::fs::metadata(&bin).and_then(|m| m.modified()).ok())
        .flatten()
        .map(crate::report::utc)
        .map(|t| {
            let linking = match elf_has_interpreter(&bin) {
                Some(true) => "dynamically linked",
                Some(false) => "statically linked",
                None => "not an ELF file",
            };
            let shown = std::env::current_dir()
                .ok()
                .and_then(|d| bin.strip_prefix(d).ok().map(Path::to_path_buf))
                .unwrap_or_else(|| bin.clone());
            format!(", {} ({linking}), built {t}", shown.display())
        });
    let out = Command::new(&bin).args(args).output().ok()?;
    // BIRD prints its banner on stderr.
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(match built {
        Some(b) => format!("{line}{b}"),
        None => line.to_string(),
    })
}

/// Whether an ELF executable asks for a program interpreter (PT_INTERP: ld.so, i.e. dynamically
/// linked). None when `path` is not a readable 64-bit little-endian ELF file.
fn elf_has_interpreter(path: &Path) -> Option<bool> {
    // The ELF header and program headers are at the front (not the whole 30-50 MB binary).
    let mut data = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).ok()?, 64 * 1024),
        &mut data,
    )
    .ok()?;
    if data.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |o: usize| {
        data.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
    const PT_INTERP: u32 = 3;
    (0..phnum)
        .map(|i| {
            let o = phoff + i * phentsize;
            data.get(o..o + 4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        })
        .try_fold(false, |found, t| Some(found || t? == PT_INTERP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_dynamic_from_static_and_from_non_elf() {
        assert_eq!(
            elf_has_interpreter(Path::new(env!("CARGO_MANIFEST_PATH"))),
            None
        );
        assert_eq!(elf_has_interpreter(Path::new("/nonexistent/nexthop")), None);
        // Debian's /bin/sh (dash) is dynamically linked; this test binary is an ELF either way.
        if Path::new("/bin/sh").exists() {
            assert_eq!(elf_has_interpreter(Path::new("/bin/sh")), Some(true));
        }
        assert!(elf_has_interpreter(&std::env::current_exe().unwrap()).is_some());
    }

    fn net() -> Net {
        Net {
            ipv6: false,
            net: 77,
            port: 1790,
        }
    }

    #[test]
    fn addresses() {
        let n = net();
        assert_eq!(n.tester(0), Ipv4Addr::new(127, 77, 1, 1));
        assert_eq!(n.tester(249), Ipv4Addr::new(127, 77, 1, 250));
        assert_eq!(n.tester(250), Ipv4Addr::new(127, 77, 2, 1));
        assert_ne!(n.monitor(), n.target());
        assert_eq!(tester_asn(0), 65001);
        assert!(tester_asn(399) < 65515);
    }

    #[test]
    fn configs_name_every_peer() {
        let n = net();
        let p = peers(&n, 3, true);
        assert_eq!(p.len(), 4);
        let nh = nexthop_config(&n, &p, 9000, 1_000_000, false);
        assert!(nh.contains("branch_to_branch = true"));
        assert!(!nh.contains("virtual_network"));
        let vn = nexthop_config(&n, &p, 9000, 1_000_000, true);
        assert!(vn.contains("address_space = [\"10.0.0.0/8\"]"));
        assert!(
            vn.contains("[route_server]\nasn = 65515")
                && vn.contains("virtual_network = \"hub\"\n")
        );
        assert!(nh.contains("address = \"127.77.0.2\"\nasn = 64999"));
        assert!(nh.contains("port = 1790"));
        let b = bird_config(&n, &p);
        assert!(b.contains("rs client;"));
        assert!(b.contains("next hop keep;"));
        assert!(b.contains("protocol bgp t2 from rsc { neighbor 127.77.1.3 as 65003; }"));
        let f = frr_config(&n, &p);
        assert!(f.contains("  neighbor 127.77.0.2 route-server-client"));
        assert!(f.contains(" no bgp ebgp-requires-policy"));
        let g = gobgp_config(&n, &p);
        assert_eq!(g.matches("route-server-client = true").count(), 4);
        assert_eq!(g.matches("passive-mode = true").count(), 4);
    }

    #[test]
    fn kinds_parse() {
        assert_eq!("BIRD".parse::<Kind>().unwrap(), Kind::Bird);
        assert!("quagga".parse::<Kind>().is_err());
    }
}
