//! FRR's BFD daemon, `bfdd`, for BFD interop tests: one process in a namespace with static
//! single-hop sessions (`bfd / peer ADDR local-address LOCAL`). It runs without zebra; it gives
//! up root for the frr user, so its directory is handed to that user. Queried with
//! `vtysh --vty_socket DIR -d bfdd`.

use std::io;
use std::process::Command;

use crate::json::Json;
use crate::{find_binary, Netns, Process, Workdir};

/// A running bfdd; stopped (and its directory removed) when dropped.
#[derive(Debug)]
pub struct Bfdd {
    // Field order is drop order: the process stops before its directory goes.
    process: Process,
    dir: Workdir,
    ns: String,
}

impl Bfdd {
    /// bfdd in `ns` at `local`, with a session (`interval_ms` both ways, multiplier 3) to each
    /// of `peers`.
    pub fn start(ns: &Netns, local: &str, peers: &[&str], interval_ms: u32) -> io::Result<Bfdd> {
        let dir = Workdir::new("bfdd")?;
        let mut conf = String::from("debug bfd peer\ndebug bfd network\nbfd\n");
        for p in peers {
            conf.push_str(&format!(
                " peer {p} local-address {local}\n  receive-interval {interval_ms}\n  transmit-interval {interval_ms}\n  detect-multiplier 3\n !\n"
            ));
        }
        conf.push_str("!\n");
        let file = dir.write("bfdd.conf", &conf)?;
        let owned = Command::new("chown")
            .args(["-R", "frr:frr"])
            .arg(dir.path())
            .status()?;
        if !owned.success() {
            return Err(io::Error::other("chown frr:frr failed (no frr user?)"));
        }
        let bin = find_binary("bfdd").ok_or_else(|| io::Error::other("bfdd not found"))?;
        let mut cmd = ns.command(bin);
        cmd.arg("-f")
            .arg(&file)
            .arg("--vty_socket")
            .arg(dir.path())
            .arg("-i")
            .arg(dir.file("bfdd.pid"))
            .arg("--log")
            .arg(format!("file:{}", dir.file("bfdd.log").display()));
        let process = Process::spawn(cmd, "bfdd", &dir.file("bfdd.out"))?;
        Ok(Bfdd {
            process,
            dir,
            ns: ns.name().to_string(),
        })
    }

    /// Each session's peer and status (`up`, `down`, `init`), from `show bfd peers json`;
    /// empty while bfdd does not answer.
    pub fn peers(&self) -> Vec<(String, String)> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "vtysh", "--vty_socket"])
            .arg(self.dir.path())
            .args(["-d", "bfdd", "-c", "show bfd peers json"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let Ok(v) = Json::parse(&out) else {
            return Vec::new();
        };
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
                        (s("peer"), s("status"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many of its sessions are up.
    pub fn up(&self) -> usize {
        self.peers().iter().filter(|(_, s)| s == "up").count()
    }

    /// SIGKILL: its sessions just stop (a crashed daemon).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Its log file.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.file("bfdd.log")).unwrap_or_default()
    }
}
