//! Network namespaces a test creates and deletes, and small LANs between them.
//!
//! Names are `lt-<pid>-<n>-<tag>`: unique per process and per call, since cargo runs tests in
//! parallel threads and CI may run several test binaries at once. Interfaces are created
//! directly inside the namespaces (never in the host's), so their short fixed names (`br0`,
//! `p1`, `eth0`) cannot collide. A namespace left behind by a test binary that was killed is
//! removed by the next `Netns::new` of any test binary (its pid no longer exists).

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::process::{run, sanitize, signal, unique_id, Process};

const PREFIX: &str = "lt-";

/// One network namespace with `lo` up. Dropping it stops every process still inside (SIGTERM,
/// SIGKILL after 2 s) and deletes it, which also deletes its interfaces (a veth pair dies with
/// either end).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `lt-<pid>-<n>-<tag>` and brings its `lo` up.
    pub fn new(tag: &str) -> io::Result<Netns> {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(remove_stale);
        let name = format!(
            "{PREFIX}{}-{}-{}",
            std::process::id(),
            unique_id(),
            sanitize(tag, 32)
        );
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.exec("ip", &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside this namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs `program args…` inside the namespace and returns its stdout; an error (with stderr)
    /// if it exits non-zero.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<String> {
        run(self.command(program).args(args))
    }

    /// Starts `program args…` inside the namespace, output to `log`. The returned handle stops
    /// it on drop; dropping the namespace stops it too.
    pub fn spawn(&self, program: &str, args: &[&str], log: &Path) -> io::Result<Process> {
        let mut cmd = self.command(program);
        cmd.args(args);
        Process::spawn(cmd, program, log)
    }

    /// Adds `cidr` (e.g. `10.1.2.10/32`, `2001:db8::1/128`) to `dev`, which must exist.
    /// IPv6 addresses skip duplicate address detection so they are usable at once.
    pub fn add_addr(&self, dev: &str, cidr: &str) -> io::Result<()> {
        let mut args = vec!["addr", "add", cidr, "dev", dev];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.exec("ip", &args).map(drop)
    }

    /// Adds `cidr` to the namespace's `lo` (already up).
    pub fn add_loopback_addr(&self, cidr: &str) -> io::Result<()> {
        self.add_addr("lo", cidr)
    }

    /// Pids of every process inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        pids_in(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_all_in(&self.name);
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("labtest: could not delete namespace {}: {e}", self.name);
        }
    }
}

fn pids_in(ns: &str) -> Vec<u32> {
    run(Command::new("ip").args(["netns", "pids", ns]))
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every process in a namespace this crate created was started by a test through it.
fn kill_all_in(ns: &str) {
    let pids = pids_in(ns);
    if pids.is_empty() {
        return;
    }
    for &pid in &pids {
        signal(pid, "TERM");
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !pids_in(ns).is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in pids_in(ns) {
        signal(pid, "KILL");
    }
}

/// Deletes `lt-<pid>-…` namespaces whose test process no longer exists (it was SIGKILLed, so
/// no destructor ran).
fn remove_stale() {
    let Ok(list) = run(Command::new("ip").args(["netns", "list"])) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(owner) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()) else {
            continue;
        };
        let Ok(pid) = owner.parse::<u32>() else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            kill_all_in(name);
            let _ = run(Command::new("ip").args(["netns", "del", name]));
        }
    }
}

/// A LAN: a bridge `br0` in a hub namespace and one veth leg per member namespace, where it is
/// `eth0` and carries the member's addresses — e.g. an NVA at 10.1.2.10/16 and a route server
/// at 10.1.1.4/16 + 10.1.1.5/16 on one /16.
///
/// Dropping it deletes the members, then the hub.
#[derive(Debug)]
pub struct Lan {
    // Declaration order is drop order: members (and their daemons) before the hub.
    members: Vec<(String, Netns)>,
    hub: Netns,
}

impl Lan {
    /// A LAN with `members` as `(name, addresses)`; each address is a CIDR put on its `eth0`.
    ///
    /// ```no_run
    /// let lan = labtest::Lan::new(&[
    ///     ("nva", &["10.1.2.10/16"]),
    ///     ("rs", &["10.1.1.4/16", "10.1.1.5/16"]),
    /// ])
    /// .unwrap();
    /// lan.ns("nva").exec("ping", &["-c1", "-W1", "10.1.1.5"]).unwrap();
    /// ```
    pub fn new(members: &[(&str, &[&str])]) -> io::Result<Lan> {
        let hub = Netns::new("hub")?;
        hub.exec("ip", &["link", "add", "br0", "type", "bridge"])?;
        hub.exec("ip", &["link", "set", "br0", "up"])?;
        let mut lan = Lan {
            members: Vec::new(),
            hub,
        };
        for (name, addrs) in members {
            lan.add(name, addrs)?;
        }
        Ok(lan)
    }

    /// Adds one more member namespace on the bridge.
    pub fn add(&mut self, name: &str, addrs: &[&str]) -> io::Result<&Netns> {
        if self.members.iter().any(|(n, _)| n == name) {
            return Err(io::Error::other(format!(
                "LAN member {name} already exists"
            )));
        }
        let ns = Netns::new(name)?;
        let leg = format!("p{}", self.members.len() + 1);
        self.hub.exec(
            "ip",
            &[
                "link",
                "add",
                &leg,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name(),
            ],
        )?;
        self.hub
            .exec("ip", &["link", "set", &leg, "master", "br0", "up"])?;
        for a in addrs {
            ns.add_addr("eth0", a)?;
        }
        ns.exec("ip", &["link", "set", "eth0", "up"])?;
        self.members.push((name.to_string(), ns));
        Ok(&self.members[self.members.len() - 1].1)
    }

    /// The member namespace called `name`.
    ///
    /// # Panics
    /// If there is no such member (a bug in the test).
    pub fn ns(&self, name: &str) -> &Netns {
        match self.members.iter().find(|(n, _)| n == name) {
            Some((_, ns)) => ns,
            None => panic!("no LAN member named {name}"),
        }
    }

    /// The namespace holding the bridge.
    pub fn hub(&self) -> &Netns {
        &self.hub
    }
}
