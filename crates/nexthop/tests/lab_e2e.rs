//! The end-to-end lab (`lab/up.sh`) with real packets: FRR NVAs advertising the branch with the
//! load balancer's frontend as next hop, `nexthop run` as route server + LB controller,
//! `nexthop agent` programming vm1's kernel routes, `nexthop lb-mux` forwarding on the LB host,
//! and TCP connections from vm1 (10.1.3.10) to the branch host (192.168.10.1). Root only; each
//! test starts its own lab under a unique name and tears it down (also on failure).
//!
//! Which NVA a connection crossed is read off the wire: a packet socket on the branch host's
//! interface records, for every packet from vm1, the source MAC (nva1's or nva2's LAN side) and
//! the TCP source port.
//!
//! Two benchmarks live here too, `#[ignore]`d (see BENCHMARKS.md for the commands):
//! `failover_distribution` (20 failures) and `mux_vs_kernel_pps`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use linux::netns;

const BRANCH: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);
const VM1: Ipv4Addr = Ipv4Addr::new(10, 1, 3, 10);
/// The same hosts' IPv6 addresses in a lab started with `--ipv6`.
const BRANCH6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x10, 0, 0, 0, 0, 0, 1);
const VM1_6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 3, 0x10);
const ECHO: u16 = 7;

/// One lab at a time: they would share 2 cores and blur the failover timings.
static ONE_LAB: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------------------------
// The lab
// ---------------------------------------------------------------------------------------------

struct Lab {
    name: String,
    dir: PathBuf,
    repo: PathBuf,
    /// Controller processes: 1 (both instances on rs) or 2 (one per instance, rs and rs2).
    controllers: u32,
    /// Started with `--ipv6`: the helpers (connections, capture, trace, probes, the load
    /// balancer) work on the IPv6 addresses and the IPv6 load balancer, nva-ilb6.
    v6: bool,
}

/// The controller hosts of a lab with `n` controller processes.
const CONTROLLER_HOSTS: [&str; 2] = ["rs", "rs2"];

impl Lab {
    /// `lab/up.sh` under a unique name (`lt-PID-N`, swept by labtest if this process dies).
    fn up(mode: &str) -> Lab {
        Self::up_with(mode, &[])
    }

    /// [`Lab::up`] with more arguments for `lab/up.sh` (`--graceful-restart`). The lab has two
    /// controller processes, one per instance (rs and rs2), as the reference runs them, unless
    /// `NEXTHOP_LAB_CONTROLLERS=1` asks for one running both instances (rs).
    fn up_with(mode: &str, more: &[&str]) -> Lab {
        let controllers: u32 = match std::env::var("NEXTHOP_LAB_CONTROLLERS").as_deref() {
            Ok("1") => 1,
            _ => 2,
        };
        Self::start(mode, controllers, more)
    }

    fn start(mode: &str, controllers: u32, more: &[&str]) -> Lab {
        static N: AtomicU64 = AtomicU64::new(1);
        let name = format!(
            "lt-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = PathBuf::from(format!("/tmp/nexthop-lab-{name}"));
        let lab = Lab {
            name,
            dir,
            repo,
            controllers,
            v6: more.contains(&"--ipv6"),
        };
        let out = lab
            .script("up.sh")
            .args(["--mode", mode, "--interval-ms", "100", "--rise", "2"])
            .args(["--fall", "3", "--nexthop", env!("CARGO_BIN_EXE_nexthop")])
            .args(["--controllers", &controllers.to_string()])
            .args(more)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "lab/up.sh failed: {text}");
        println!("{text}");
        lab
    }

    fn script(&self, name: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg(self.repo.join("lab").join(name))
            .env("LAB_NAME", &self.name)
            .env("LAB_DIR", &self.dir)
            .env("NEXTHOP", env!("CARGO_BIN_EXE_nexthop"));
        c
    }

    /// `lab/ctl.sh ARGS`; returns the unix time it printed for the action.
    fn ctl(&self, args: &[&str]) -> f64 {
        let out = self.script("ctl.sh").args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "lab/ctl.sh {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!("lab/ctl.sh {}: {text}", args.join(" "));
        text.split_whitespace()
            .last()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0.0)
    }

    /// The branch host, vm1, an NVA (hub side), in the lab's family.
    fn branch(&self) -> IpAddr {
        if self.v6 {
            BRANCH6.into()
        } else {
            BRANCH.into()
        }
    }

    fn vm1(&self) -> IpAddr {
        if self.v6 {
            VM1_6.into()
        } else {
            VM1.into()
        }
    }

    fn nva_addr(&self, nva: &str) -> IpAddr {
        match (nva, self.v6) {
            ("nva1", false) => "10.1.2.10",
            ("nva2", false) => "10.1.2.11",
            ("nva1", true) => "fd00:1::2:10",
            ("nva2", true) => "fd00:1::2:11",
            _ => panic!("no NVA {nva}"),
        }
        .parse()
        .unwrap()
    }

    /// The NVA of a backend address.
    fn nva_named(&self, addr: IpAddr) -> &'static str {
        ["nva1", "nva2"]
            .into_iter()
            .find(|n| self.nva_addr(n) == addr)
            .unwrap_or_else(|| panic!("{addr} is no NVA"))
    }

    /// The load balancer of the lab's family.
    fn lb_name(&self) -> &'static str {
        if self.v6 {
            "nva-ilb6"
        } else {
            "nva-ilb"
        }
    }

    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.name)
    }

    /// Runs a command in a host's namespace; its stdout (panics on failure).
    fn exec(&self, host: &str, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{host}: {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `nexthop ARGS` against every controller (inside the route server's namespace): a
    /// reload or an admin change reaches each, a query asks the first.
    fn nexthop(&self, args: &[&str]) -> String {
        // The lab's API listens beyond loopback: state-changing calls need its admin token.
        let token = format!("NEXTHOP_TOKEN_FILE={}/admin.token", self.dir.display());
        let mut a = vec!["env", token.as_str(), env!("CARGO_BIN_EXE_nexthop")];
        for url in ["http://10.1.1.4:8179", "http://10.1.1.5:8179"]
            .iter()
            .take(self.controllers as usize)
        {
            a.extend(["--api", url]);
        }
        a.extend_from_slice(args);
        self.exec("rs", &a)
    }

    /// BGP sessions Established, summed over the controllers (4 when every NVA is up with
    /// both instances); 0 for a controller that does not answer.
    fn established(&self) -> usize {
        CONTROLLER_HOSTS
            .iter()
            .take(self.controllers as usize)
            .filter_map(|h| self.api_on(h, "/v1/peers"))
            .map(|v| v.to_string().matches("\"Established\"").count())
            .sum()
    }

    /// GET on the controller's API; the JSON body, or None if it does not answer.
    fn api(&self, path: &str) -> Option<serde_json::Value> {
        self.api_on("rs", path)
    }

    /// GET on the API of the controller on `host` (rs, or rs2 with two controllers).
    fn api_on(&self, host: &str, path: &str) -> Option<serde_json::Value> {
        let path = path.to_string();
        netns::run_in(&self.ns(host), move || -> Option<serde_json::Value> {
            let mut s = TcpStream::connect_timeout(
                &"127.0.0.1:8179".parse().unwrap(),
                Duration::from_secs(1),
            )
            .ok()?;
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
            )
            .ok()?;
            let mut buf = String::new();
            s.read_to_string(&mut buf).ok()?;
            let (head, body) = buf.split_once("\r\n\r\n")?;
            head.starts_with("HTTP/1.1 200").then_some(())?;
            serde_json::from_str(body).ok()
        })
        .unwrap()
    }

    /// The backend the controller's `trace` predicts for vm1's TCP flow from `sport` to the echo
    /// port of the branch.
    fn trace(&self, sport: u16) -> IpAddr {
        let branch = self.branch();
        let v = self
            .api(&format!(
                "/v1/trace?nic=vm1-nic&dst={branch}&proto=tcp&sport={sport}&dport={ECHO}"
            ))
            .expect("trace answers");
        v["backend"]
            .as_str()
            .and_then(|b| b.parse().ok())
            .unwrap_or_else(|| panic!("trace without a backend: {v}"))
    }

    /// The unix times of the successful probes an NVA's health endpoint answered (the probes
    /// of the lab's family: with `--ipv6` one endpoint answers both load balancers).
    fn probes_ok(&self, nva: &str) -> Vec<f64> {
        let log = std::fs::read_to_string(self.dir.join(format!("{nva}-probes.log"))).unwrap();
        log.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let t: f64 = f.next()?.parse().ok()?;
                let ok = f.next()? == "200";
                let client: IpAddr = f.next()?.parse().ok()?;
                (ok && client.is_ipv6() == self.v6).then_some(t)
            })
            .collect()
    }

    fn mac(&self, host: &str, ifname: &str) -> [u8; 6] {
        let s = self.exec(host, &["cat", &format!("/sys/class/net/{ifname}/address")]);
        parse_mac(s.trim())
    }

    /// Packets an interface sent (e.g. an NVA's `eth1`: what it forwarded to the branch).
    fn tx_packets(&self, host: &str, ifname: &str) -> u64 {
        self.exec(
            host,
            &[
                "cat",
                &format!("/sys/class/net/{ifname}/statistics/tx_packets"),
            ],
        )
        .trim()
        .parse()
        .unwrap()
    }

    /// vm1's routes programmed by the agent (`ip -4 route show proto 200`).
    fn vm1_routes(&self) -> String {
        self.exec("vm1", &["ip", "-4", "route", "show", "proto", "200"])
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Waits up to `secs` for `text` in log `name`; panics with the log if it does not come.
    fn wait_log(&self, name: &str, text: &str, secs: u64) {
        assert!(
            labtest::wait_until(Duration::from_secs(secs), || self.log(name).contains(text)),
            "{text:?} not in {name}:\n{}",
            self.log(name)
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for f in ["nexthop.log", "nexthop2.log", "lb-mux.log", "agent.log"] {
                let log = self.log(f);
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!(
                    "--- {f} (last lines) ---\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        let mut down = self.script("down.sh");
        if std::thread::panicking() {
            eprintln!("lab files kept in {}", self.dir.display());
            down.arg("--keep-logs");
        }
        let _ = down.status();
    }
}

fn parse_mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (i, p) in s.split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(p, 16).unwrap();
    }
    m
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Which NVA: a packet socket on the branch host
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Seen {
    at: f64,
    mac: [u8; 6],
    sport: u16,
    syn: bool,
}

/// Records every TCP packet vm1 → branch:7 arriving on the branch host's `eth1`.
struct Capture {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    fn start(lab: &Lab) -> Capture {
        let fd = netns::run_in(&lab.ns("branch"), packet_socket("eth1"))
            .unwrap()
            .expect("packet socket");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st2.load(Ordering::Relaxed) {
                let Some((n, at)) = recv_stamped(&fd, &mut buf) else {
                    continue; // timeout (SO_RCVTIMEO) or EINTR
                };
                if let Some(s) = parse(&buf[..n], at) {
                    s2.lock().unwrap().push(s);
                }
            }
        });
        Capture {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many packets were recorded so far: a mark for [`Capture::syn_mac`].
    fn mark(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The MAC the SYN of the connection from `sport` came from, once it has been seen, among
    /// the packets recorded since `mark` (ephemeral ports get reused).
    fn syn_mac(&self, sport: u16, mark: usize) -> Option<[u8; 6]> {
        let seen = self.seen.lock().unwrap();
        seen.get(mark..)?
            .iter()
            .rev()
            .find(|s| s.syn && s.sport == sport)
            .map(|s| s.mac)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A closure that opens an AF_PACKET socket bound to `ifname` (run inside the namespace).
fn packet_socket(ifname: &'static str) -> impl FnOnce() -> std::io::Result<OwnedFd> + Send {
    move || {
        let proto = (libc::ETH_P_ALL as u16).to_be(); // both families
                                                      // SAFETY: plain socket calls with valid arguments; the fd is owned at once.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let name = std::ffi::CString::new(ifname).unwrap();
            let index = libc::if_nametoindex(name.as_ptr());
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = index as i32;
            let rc = libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
            let one: i32 = 1;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&one as *const i32).cast(),
                4,
            );
            let size: i32 = 8 << 20;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const i32).cast(),
                4,
            );
            Ok(fd)
        }
    }
}

/// One frame and the kernel's receive time (SO_TIMESTAMPNS, unix seconds): a time taken when
/// this thread gets to read it would lag behind on a busy machine.
fn recv_stamped(fd: &OwnedFd, buf: &mut [u8]) -> Option<(usize, f64)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain old data; it points at `iov` and `control`, alive for the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: recvmsg on a socket we own into buffers we own.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, 0) };
    if n <= 0 {
        return None;
    }
    let mut at = now_unix();
    // SAFETY: walking the control messages the kernel wrote, with the libc macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                at = ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Some((n as usize, at))
}

/// A TCP packet from vm1 to the branch's echo port (IPv4 or IPv6), with its Ethernet source.
fn parse(f: &[u8], at: f64) -> Option<Seen> {
    let ip = f.get(14..)?;
    let (tcp, src, dst): (&[u8], IpAddr, IpAddr) = match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 if ip.len() >= 20 && ip[9] == 6 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let a = |i: usize| IpAddr::from([ip[i], ip[i + 1], ip[i + 2], ip[i + 3]]);
            (ip.get(ihl..ihl + 14)?, a(12), a(16))
        }
        // The lab's IPv6 TCP has no extension headers.
        0x86dd if ip.len() >= 40 && ip[6] == 6 => {
            let a = |i: usize| IpAddr::from(<[u8; 16]>::try_from(&ip[i..i + 16]).unwrap());
            (ip.get(40..54)?, a(8), a(24))
        }
        _ => return None,
    };
    let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
    let ours = (src == IpAddr::from(VM1) && dst == IpAddr::from(BRANCH))
        || (src == IpAddr::from(VM1_6) && dst == IpAddr::from(BRANCH6));
    if !ours || dport != ECHO {
        return None;
    }
    let flags = tcp[13];
    Some(Seen {
        at,
        mac: f[6..12].try_into().ok()?,
        sport: u16::from_be_bytes([tcp[0], tcp[1]]),
        syn: flags & 0x02 != 0 && flags & 0x10 == 0,
    })
}

// ---------------------------------------------------------------------------------------------
// Connections from vm1
// ---------------------------------------------------------------------------------------------

/// Opens a TCP connection from vm1 to the branch's echo service (from `sport`, or an ephemeral
/// port) and checks one echo; returns the stream and its source port.
fn connect(lab: &Lab, sport: Option<u16>) -> std::io::Result<(TcpStream, u16)> {
    let (src, dst) = (lab.vm1(), SocketAddr::new(lab.branch(), ECHO));
    let s = netns::run_in(&lab.ns("vm1"), move || -> std::io::Result<TcpStream> {
        let sock = socket2_connect(src, dst, sport)?;
        Ok(sock)
    })
    .unwrap()?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_nodelay(true)?;
    let port = s.local_addr()?.port();
    echo(&s, b"hello branch")?;
    Ok((s, port))
}

/// A connected stream from `src` to `dst` (bound to `sport` if given; SO_REUSEADDR so a port in
/// TIME_WAIT from an earlier run can be bound again).
fn socket2_connect(src: IpAddr, dst: SocketAddr, sport: Option<u16>) -> std::io::Result<TcpStream> {
    let Some(port) = sport else {
        return TcpStream::connect_timeout(&dst, Duration::from_secs(2));
    };
    let family = if dst.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket calls on a socket we own; the addresses are valid sockaddr_in or
    // sockaddr_in6 of the length passed.
    unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let one: i32 = 1;
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const i32).cast(),
            4,
        );
        let call = |f: unsafe extern "C" fn(i32, *const libc::sockaddr, u32) -> i32,
                    a: SocketAddr| {
            let rc = match a {
                SocketAddr::V4(a) => {
                    let sin = libc::sockaddr_in {
                        sin_family: libc::AF_INET as u16,
                        sin_port: a.port().to_be(),
                        sin_addr: libc::in_addr {
                            s_addr: u32::from(*a.ip()).to_be(),
                        },
                        sin_zero: [0; 8],
                    };
                    f(
                        fd.as_raw_fd(),
                        (&sin as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as u32,
                    )
                }
                SocketAddr::V6(a) => {
                    let mut sin6: libc::sockaddr_in6 = std::mem::zeroed();
                    sin6.sin6_family = libc::AF_INET6 as u16;
                    sin6.sin6_port = a.port().to_be();
                    sin6.sin6_addr.s6_addr = a.ip().octets();
                    f(
                        fd.as_raw_fd(),
                        (&sin6 as *const libc::sockaddr_in6).cast(),
                        std::mem::size_of::<libc::sockaddr_in6>() as u32,
                    )
                }
            };
            if rc < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        call(libc::bind, SocketAddr::new(src, port))?;
        call(libc::connect, dst)?;
        Ok(TcpStream::from(fd))
    }
}

/// `n` connections from vm1, one after the other, each closed after its echo; their ports.
fn connections(lab: &Lab, n: usize) -> Vec<u16> {
    (0..n)
        .map(|i| {
            connect(lab, None)
                .unwrap_or_else(|e| panic!("connection {i} failed: {e}"))
                .1
        })
        .collect()
}

fn echo(mut s: &TcpStream, msg: &[u8]) -> std::io::Result<()> {
    s.write_all(msg)?;
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got)?;
    if got != msg {
        return Err(std::io::Error::other("echo differs"));
    }
    Ok(())
}

/// Which NVA each MAC is (the NVAs' branch-side interfaces).
fn nva_of(lab: &Lab) -> HashMap<[u8; 6], &'static str> {
    HashMap::from([
        (lab.mac("nva1", "eth1"), "nva1"),
        (lab.mac("nva2", "eth1"), "nva2"),
    ])
}

/// Waits until the capture saw the SYN of every port; each port's NVA.
fn nvas_of(cap: &Capture, mark: usize, lab: &Lab, ports: &[u16]) -> Vec<&'static str> {
    let macs = nva_of(lab);
    assert!(
        labtest::wait_until(Duration::from_secs(3), || ports
            .iter()
            .all(|p| cap.syn_mac(*p, mark).is_some())),
        "the branch did not see a SYN of every connection"
    );
    ports
        .iter()
        .map(|p| {
            let m = cap.syn_mac(*p, mark).unwrap();
            *macs.get(&m).unwrap_or(&"unknown MAC")
        })
        .collect()
}

fn count<'a>(of: &[&'a str]) -> Vec<(&'a str, usize)> {
    let mut c: Vec<(&str, usize)> = ["nva1", "nva2"]
        .iter()
        .map(|n| (*n, of.iter().filter(|x| *x == n).count()))
        .collect();
    let other = of.len() - c.iter().map(|x| x.1).sum::<usize>();
    if other > 0 {
        c.push(("other", other));
    }
    c
}

/// Reads `read` every 100 ms until `stop` is set: the time and what it read, each time.
fn sample_until<T>(stop: &AtomicBool, mut read: impl FnMut() -> T) -> Vec<(f64, T)> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        samples.push((now_unix(), read()));
        std::thread::sleep(Duration::from_millis(100));
    }
    samples
}

/// Sets the flag a scoped background loop watches when dropped, also when an assertion in the
/// scope fails: otherwise the scope would wait for the loop for ever.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn lab_ready() -> bool {
    labtest::require_netns(&["ip", "bgpd", "vtysh", "python3", "setsid", "sysctl"])
}

// ---------------------------------------------------------------------------------------------
// Failover: stop the active NVA's health endpoint, open connections until one crosses nva2
// ---------------------------------------------------------------------------------------------

struct Failover {
    /// Last successful probe of the failed NVA → first SYN through the other one, seconds.
    from_last_probe: f64,
    /// Health endpoint stopped → first SYN through the other one.
    from_stop: f64,
}

/// Fails `from`'s health endpoint and opens a connection every 5 ms until one crosses `to`.
fn fail_over(lab: &Lab, cap: &Capture, from: &str, to: &str) -> Failover {
    let macs = nva_of(lab);
    let stopped = lab.ctl(&["health", from, "stop"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mark = cap.mark();
    let mut ports = Vec::new();
    // The earliest SYN through `to` among the connections opened since the stop (the capture
    // may lag behind: every port opened so far is looked at each time).
    let first_via = |ports: &[u16]| {
        cap.seen()
            .get(mark..)
            .unwrap_or_default()
            .iter()
            .filter(|s| s.syn && ports.contains(&s.sport) && macs.get(&s.mac) == Some(&to))
            .map(|s| s.at)
            .reduce(f64::min)
    };
    let mut first = None;
    while Instant::now() < deadline && first.is_none() {
        let (_s, port) = connect(lab, None).expect("connection during the failover");
        ports.push(port);
        std::thread::sleep(Duration::from_millis(5));
        first = first_via(&ports);
    }
    std::thread::sleep(Duration::from_millis(100));
    let first = first_via(&ports).or(first);
    let first = first.unwrap_or_else(|| panic!("no connection crossed {to} within 5 s"));
    let last_ok = lab
        .probes_ok(from)
        .into_iter()
        .filter(|t| *t <= stopped + 0.001)
        .fold(0.0, f64::max);
    assert!(last_ok > 0.0, "{from} never answered a probe");
    Failover {
        from_last_probe: first - last_ok,
        from_stop: first - stopped,
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn active_passive_200_connections_cross_nva1_then_fail_over_to_nva2() {
    active_passive_200_connections(&[]);
}

/// The same over IPv6 (issue #16): the IPv6 route from the agent, 200 connections through
/// the IPv6 load balancer's mux, failover below 0.5 s from nva1's last good IPv6 probe.
#[test]
fn ipv6_active_passive_200_connections_cross_nva1_then_fail_over_to_nva2() {
    active_passive_200_connections(&["--ipv6"]);
}

fn active_passive_200_connections(more: &[&str]) {
    if !lab_ready() {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up_with("active-passive", more);
    let (family, route) = if lab.v6 {
        ("-6", "fd00:10::/48 via fd00:1::100 dev eth0 proto 200")
    } else {
        ("-4", "192.168.10.0/24 via 10.1.0.100 dev eth0 proto 200")
    };
    let routes = lab.exec("vm1", &["ip", family, "route"]);
    println!("vm1$ ip {family} route\n{routes}");
    assert!(
        routes.contains(route),
        "the agent's route is missing:\n{routes}"
    );
    if lab.v6 {
        // Both instances learned the IPv6 prefix from both NVAs over the IPv6 sessions.
        for peer in ["nva1-v6", "nva2-v6"] {
            assert!(
                rib_has_path(&lab, "fd00:10::/48", peer),
                "not every instance has fd00:10::/48 from {peer}: {:?}",
                lab.api("/v1/rib")
            );
        }
    }
    let cap = Capture::start(&lab);
    let tx0 = [
        lab.tx_packets("nva1", "eth1"),
        lab.tx_packets("nva2", "eth1"),
    ];

    let mark = cap.mark();
    let ports = connections(&lab, 200);
    let via = nvas_of(&cap, mark, &lab, &ports);
    let tx1 = [
        lab.tx_packets("nva1", "eth1"),
        lab.tx_packets("nva2", "eth1"),
    ];
    println!(
        "200 connections, SYNs seen by the branch per NVA: {:?}; packets the NVAs forwarded to the branch: nva1 {}, nva2 {}",
        count(&via),
        tx1[0] - tx0[0],
        tx1[1] - tx0[1]
    );
    assert_eq!(count(&via), vec![("nva1", 200), ("nva2", 0)]);
    assert!(tx1[0] - tx0[0] >= 200 * 3, "nva1 forwarded too little");
    // The controller agrees: nva1 is its active backend, and trace says so for these flows.
    assert_eq!(active_nva(&lab), "nva1");
    let nva1 = lab.nva_addr("nva1");
    assert!(ports.iter().take(20).all(|p| lab.trace(*p) == nva1));

    let f = fail_over(&lab, &cap, "nva1", "nva2");
    println!(
        "failover: last successful probe of nva1 -> first connection through nva2: {:.3} s (health endpoint stopped -> nva2: {:.3} s); probes every 100 ms, fall 3",
        f.from_last_probe, f.from_stop
    );
    assert!(
        f.from_last_probe < 0.5,
        "failover took {:.3} s from the last good probe",
        f.from_last_probe
    );
    // The controller's event log tells it: the health change and the failover, in that order,
    // after the sessions came up.
    let events = lab.api("/v1/events").expect("events answer");
    let list = events["events"].as_array().expect("a list");
    let find = |kind: &str| {
        list.iter().position(|e| {
            e["kind"] == kind && (e["lb"] == lab.lb_name() || kind.starts_with("peer"))
        })
    };
    let nva1_down = list.iter().position(|e| {
        e["kind"] == "health"
            && e["lb"] == lab.lb_name()
            && e["backend"] == lab.nva_addr("nva1").to_string()
            && e["to"] == "down"
    });
    let (up, down, failover) = (find("peer-up"), nva1_down, find("failover"));
    println!("events: {}", serde_json::to_string_pretty(&events).unwrap());
    assert!(
        up.is_some() && down.is_some() && failover.is_some(),
        "{events}"
    );
    let f = &list[failover.unwrap()];
    assert_eq!(f["from"], lab.nva_addr("nva1").to_string(), "{f}");
    assert_eq!(f["to"], lab.nva_addr("nva2").to_string(), "{f}");
    assert!(up < down && down < failover, "{events}");
    // From now on every new connection crosses nva2.
    let mark = cap.mark();
    let ports = connections(&lab, 50);
    assert_eq!(
        count(&nvas_of(&cap, mark, &lab, &ports)),
        vec![("nva1", 0), ("nva2", 50)]
    );
    println!("{}", lab.nexthop(&["lb", "show", lab.lb_name()]));
}

/// Classic route server use, no load balancer (issue #15 item 3): the NVAs advertise the
/// branch with their own addresses as next hops; the effective route holds both, the agent
/// programs one multipath route on vm1 (not the first next hop only), and connections spread
/// over both NVAs.
#[test]
fn without_a_load_balancer_vm1s_route_is_multipath_and_flows_spread_over_both_nvas() {
    if !lab_ready() {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up_with("active-passive", &["--no-lb"]);
    let routes = lab.vm1_routes();
    println!("vm1$ ip -4 route show proto 200\n{routes}");
    assert!(
        routes.contains("192.168.10.0/24")
            && routes.contains("nexthop via 10.1.2.10 dev eth0")
            && routes.contains("nexthop via 10.1.2.11 dev eth0"),
        "not one multipath route over both NVAs:\n{routes}"
    );
    let eff = lab
        .api("/v1/effective-routes?nic=vm1-nic")
        .expect("effective routes");
    let branch = eff["value"]
        .as_array()
        .and_then(|v| {
            v.iter()
                .find(|r| r["addressPrefix"][0] == "192.168.10.0/24")
        })
        .unwrap_or_else(|| panic!("no branch route: {eff}"));
    assert_eq!(
        branch["nextHopIpAddress"],
        serde_json::json!(["10.1.2.10", "10.1.2.11"]),
        "{branch}"
    );
    let cap = Capture::start(&lab);
    let mark = cap.mark();
    let ports = connections(&lab, 200);
    let counts = count(&nvas_of(&cap, mark, &lab, &ports));
    println!("200 connections without a load balancer, per NVA: {counts:?}");
    // A fair coin per flow (L4 hash): 100 ± 7 (1 σ); 50..150 is 7 σ.
    for (n, c) in &counts {
        assert!((50..=150).contains(c), "{n}: {c} of 200: not spread");
    }
}

#[test]
fn active_active_spreads_1000_connections_as_traced_and_keeps_long_lived_ones() {
    active_active_1000_connections(&[]);
}

/// The same over IPv6 (issue #16): the IPv6 flow hash spreads the connections, `trace`
/// predicts each one's NVA, long-lived IPv6 connections survive a failure.
#[test]
fn ipv6_active_active_spreads_1000_connections_as_traced_and_keeps_long_lived_ones() {
    active_active_1000_connections(&["--ipv6"]);
}

fn active_active_1000_connections(more: &[&str]) {
    if !lab_ready() {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up_with("active-active", more);
    let cap = Capture::start(&lab);
    let (nva1, nva2) = (lab.nva_addr("nva1"), lab.nva_addr("nva2"));

    // Long-lived connections from fixed ports: two the controller predicts on each NVA.
    let mut long: Vec<(TcpStream, u16, IpAddr)> = Vec::new();
    let (mut on1, mut on2) = (0, 0);
    for sport in 50000u16.. {
        if on1 == 2 && on2 == 2 {
            break;
        }
        let b = lab.trace(sport);
        if (b == nva1 && on1 < 2) || (b == nva2 && on2 < 2) {
            let (s, _) = connect(&lab, Some(sport)).expect("long-lived connection");
            if b == nva1 {
                on1 += 1
            } else {
                on2 += 1
            }
            long.push((s, sport, b));
        }
    }

    // 1000 short connections, each from its own ephemeral port.
    let started = Instant::now();
    let mark = cap.mark();
    let ports = connections(&lab, 1000);
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 1000, "source ports repeat");
    let via = nvas_of(&cap, mark, &lab, &ports);
    let counts = count(&via);
    println!(
        "1000 connections in {:.2} s, per NVA (SYNs seen by the branch): {counts:?}",
        started.elapsed().as_secs_f64()
    );
    // A fair coin per flow: 500 ± 16 (1 σ); 400..600 is over 6 σ.
    for (n, c) in &counts {
        assert!(
            (400..=600).contains(c),
            "{n}: {c} of 1000 connections: outside the Maglev balance"
        );
    }
    let mut wrong = Vec::new();
    for (p, v) in ports.iter().zip(&via) {
        let predicted = if lab.trace(*p) == nva1 {
            "nva1"
        } else {
            "nva2"
        };
        if predicted != *v {
            wrong.push((*p, predicted, *v));
        }
    }
    println!(
        "nexthop trace predicted {} of 1000 connections' NVA",
        1000 - wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "trace mispredicted (port, trace, wire): {wrong:?}"
    );
    println!(
        "{}",
        lab.nexthop(&[
            "trace",
            "--nic",
            "vm1-nic",
            "--dst",
            &lab.branch().to_string(),
            "--proto",
            "tcp",
            "--sport",
            &ports[0].to_string(),
            "--dport",
            "7"
        ])
    );
    for (_, p, b) in &long {
        let on = if *b == nva1 { "nva1" } else { "nva2" };
        assert_eq!(
            nvas_of(&cap, 0, &lab, &[*p]),
            vec![on],
            "long-lived from port {p}"
        );
    }

    // nva1 fails; the long-lived connections keep talking through it all.
    let failed_at = lab.ctl(&["health", "nva1", "stop"]);
    let until = Instant::now() + Duration::from_secs(2);
    let mut rounds = 0;
    while Instant::now() < until {
        for (s, p, b) in &long {
            if let Err(e) = echo(s, b"still there?") {
                panic!("long-lived connection from port {p} (via {b}) broke: {e}");
            }
        }
        rounds += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let macs = nva_of(&lab);
    let after: Vec<Seen> = cap
        .seen()
        .into_iter()
        .filter(|s| s.at > failed_at + 1.0)
        .collect();
    for (_, p, b) in &long {
        let nvas: Vec<&str> = after
            .iter()
            .filter(|s| s.sport == *p)
            .map(|s| macs[&s.mac])
            .collect();
        println!(
            "long-lived from port {p}, first via {b}: after the failure via {:?}",
            count(&nvas)
        );
        assert!(!nvas.is_empty());
        if *b == nva2 {
            assert!(
                nvas.iter().all(|n| *n == "nva2"),
                "moved off the surviving NVA"
            );
        } else {
            assert!(
                nvas.iter().all(|n| *n == "nva2"),
                "still sent to the failed NVA"
            );
        }
    }
    println!(
        "{rounds} echo rounds on {} long-lived connections across nva1's failure, none reset",
        long.len()
    );
}

#[test]
fn controller_restart_keeps_traffic_flowing_and_routes_converge() {
    if !lab_ready() {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("active-passive");
    let (long, _) = connect(&lab, None).unwrap();
    let killed = lab.ctl(&["controller", "kill"]);
    // A route the controller will not list when it is back: the agent must remove it.
    lab.exec(
        "vm1",
        &[
            "ip",
            "route",
            "add",
            "172.16.99.0/24",
            "via",
            "10.1.0.100",
            "proto",
            "200",
        ],
    );
    let mut ok = 0;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        connect(&lab, None).expect("new connection while the controller is down");
        echo(&long, b"ping").expect("long-lived connection while the controller is down");
        ok += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let routes = lab.vm1_routes();
    println!(
        "controller down: {ok} new connections succeeded; vm1$ ip route show proto 200\n{routes}"
    );
    assert!(routes.contains("192.168.10.0/24 via 10.1.0.100"));
    assert!(
        lab.api("/v1/peers").is_none(),
        "the controller still answers"
    );

    // New connections all along the controller's return: none may stall (a SYN the mux
    // dropped, e.g. because a controller that has not probed yet said "unknown", would be
    // retransmitted after 1 s).
    let stop = AtomicBool::new(false);
    let (started, t_bgp, t_route, t_agent, t_stale, during) = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let background = s.spawn(|| {
            let (mut n, mut slowest) = (0u32, Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                connect(&lab, None).expect("new connection while the controller comes back");
                slowest = slowest.max(t.elapsed());
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (n, slowest)
        });
        let started = lab.ctl(&["controller", "start"]);
        let established = || lab.established() == 4;
        assert!(
            labtest::wait_until(Duration::from_secs(30), established),
            "sessions did not come back"
        );
        let t_bgp = now_unix() - started;
        let programmed = || {
            lab.api("/v1/effective-routes?nic=vm1-nic")
                .is_some_and(|v| {
                    v["value"].as_array().is_some_and(|a| {
                        a.iter().any(|r| {
                            r["addressPrefix"][0] == "192.168.10.0/24" && r["state"] == "Active"
                        })
                    })
                })
        };
        assert!(
            labtest::wait_until(Duration::from_secs(30), programmed),
            "route not back"
        );
        let t_route = now_unix() - started;
        assert!(
            labtest::wait_until(Duration::from_secs(10), || lab
                .log("agent.log")
                .contains("reachable again")),
            "the agent did not reconnect"
        );
        let t_agent = now_unix() - started;
        // The stale route (never programmed by the agent, so not covered by its grace period) goes at the first reconcile; the live one never went.
        let gone = || !lab.vm1_routes().contains("172.16.99.0/24");
        assert!(
            labtest::wait_until(Duration::from_secs(20), gone),
            "stale route kept"
        );
        let t_stale = now_unix() - started;
        stop.store(true, Ordering::Relaxed);
        let during = background.join().unwrap();
        (started, t_bgp, t_route, t_agent, t_stale, during)
    });
    println!(
        "{} new connections while the controller came back, the slowest in {:?}",
        during.0, during.1
    );
    assert!(
        during.1 < Duration::from_millis(900),
        "a connection stalled: {:?}",
        during.1
    );
    let routes = lab.vm1_routes();
    println!(
        "controller down {:.1} s; after its restart: BGP sessions {t_bgp:.2} s, effective route Active {t_route:.2} s, agent resynced {t_agent:.2} s, stale route removed {t_stale:.2} s\nvm1$ ip route show proto 200\n{routes}",
        started - killed
    );
    assert_eq!(routes.trim(), "192.168.10.0/24 via 10.1.0.100 dev eth0");
    connect(&lab, None).expect("connection after the restart");
    echo(&long, b"still here").expect("long-lived connection after the restart");
}

/// An NVA's BGP session with `peer` as FRR shows it: (state, connections established so far).
fn frr_session(lab: &Lab, nva: &str, peer: &str) -> (String, u64) {
    let sock = lab.dir.join(nva);
    let out = lab.exec(
        nva,
        &[
            "vtysh",
            "--vty_socket",
            sock.to_str().unwrap(),
            "-c",
            &format!("show bgp neighbors {peer} json"),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    let n = &v[peer];
    (
        n["bgpState"].as_str().unwrap_or_default().to_string(),
        n["connectionsEstablished"].as_u64().unwrap_or(0),
    )
}

/// The reference's redundancy: one controller process per route server instance (rs runs
/// 10.1.1.4, rs2 runs 10.1.1.5, from one config file), the agent and the mux following both.
/// Kill -9 the first: the NVAs' sessions with the second never drop, vm1 keeps its route, a
/// long-lived connection keeps working, and an NVA failure during the outage still reaches the
/// mux (through the second controller) and moves new flows.
#[test]
fn two_controller_processes_one_killed_loses_nothing() {
    if !lab_ready() {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("active-passive", 2, &[]);
    // Each process runs its own instance only.
    let peers = |host: &str| lab.api_on(host, "/v1/peers").expect("peers answer");
    let (p1, p2) = (peers("rs"), peers("rs2"));
    assert!(
        p1.get("RouteServiceRole_IN_0").is_some() && p1.get("RouteServiceRole_IN_1").is_none(),
        "{p1}"
    );
    assert!(
        p2.get("RouteServiceRole_IN_1").is_some() && p2.get("RouteServiceRole_IN_0").is_none(),
        "{p2}"
    );
    assert_eq!(active_nva(&lab), "nva1");
    let cap = Capture::start(&lab);
    let (long, _) = connect(&lab, None).unwrap();
    let before: Vec<(String, u64)> = ["nva1", "nva2"]
        .iter()
        .map(|n| frr_session(&lab, n, "10.1.1.5"))
        .collect();
    assert!(before.iter().all(|(s, _)| s == "Established"), "{before:?}");

    let killed = lab.ctl(&["controller", "kill", "1"]);
    let mut ok = 0;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        connect(&lab, None).expect("new connection with one controller killed");
        echo(&long, b"ping").expect("long-lived connection with one controller killed");
        let routes = lab.vm1_routes();
        assert!(
            routes.contains("192.168.10.0/24 via 10.1.0.100"),
            "vm1 lost its route {:.2} s after the kill:\n{routes}",
            now_unix() - killed
        );
        ok += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let after: Vec<(String, u64)> = ["nva1", "nva2"]
        .iter()
        .map(|n| frr_session(&lab, n, "10.1.1.5"))
        .collect();
    assert_eq!(
        before, after,
        "an NVA's session with the surviving instance dropped"
    );
    assert!(
        lab.api_on("rs", "/v1/peers").is_none(),
        "the first controller still answers"
    );
    // The mux moves to the second controller.
    lab.wait_log("lb-mux.log", "following controller http://10.1.1.5:8179", 2);
    assert!(
        lab.log("agent.log")
            .contains("controller http://10.1.1.4:8179 unreachable"),
        "{}",
        lab.log("agent.log")
    );
    println!("first controller killed: {ok} rounds of (new connection, echo on a long-lived one, vm1's route) in 3 s, all fine");

    // During the outage the active NVA fails: the second controller's probes see it, the mux
    // follows it, new flows go to nva2.
    let f = fail_over(&lab, &cap, "nva1", "nva2");
    println!(
        "NVA failure with one controller down: last successful probe of nva1 -> first connection through nva2: {:.3} s (health endpoint stopped -> nva2: {:.3} s)",
        f.from_last_probe, f.from_stop
    );
    assert!(
        f.from_last_probe < 0.5,
        "failover took {:.3} s from the last good probe",
        f.from_last_probe
    );
    echo(&long, b"still here").expect("long-lived connection after the failover");

    // The killed controller comes back and rejoins: its sessions, its answers to the agent.
    lab.ctl(&["controller", "start", "1"]);
    assert!(
        labtest::wait_until(Duration::from_secs(30), || lab
            .api_on("rs", "/v1/peers")
            .is_some_and(|v| v.to_string().matches("\"Established\"").count() == 2)),
        "the restarted controller's sessions did not come back"
    );
    // The agent hears the first controller again.
    lab.wait_log(
        "agent.log",
        "controller http://10.1.1.4:8179 reachable again",
        10,
    );
    let routes = lab.vm1_routes();
    assert_eq!(routes.trim(), "192.168.10.0/24 via 10.1.0.100 dev eth0");
    connect(&lab, None).expect("connection after the first controller's return");

    // The mux is back on the first controller; now its host goes silent (its link cut: no
    // refusal, questions just hang): the mux moves to the second within its silence limit.
    let follows = |url: &str| {
        lab.log("lb-mux.log")
            .matches(&format!("following controller {url}"))
            .count()
    };
    assert!(
        labtest::wait_until(Duration::from_secs(5), || follows("http://10.1.1.4:8179")
            >= 2),
        "the mux did not go back to the first controller:\n{}",
        lab.log("lb-mux.log")
    );
    let before = follows("http://10.1.1.5:8179");
    let cut = Instant::now();
    lab.exec("rs", &["ip", "link", "set", "eth0", "down"]);
    assert!(
        labtest::wait_until(Duration::from_secs(3), || follows("http://10.1.1.5:8179")
            > before),
        "the mux still follows a silent controller:\n{}",
        lab.log("lb-mux.log")
    );
    println!(
        "first controller's link cut: the mux follows the second after {:?}",
        cut.elapsed()
    );
    connect(&lab, None).expect("connection with the first controller's host silent");
}

/// vtysh on an NVA: the JSON of `command`.
fn frr_json(lab: &Lab, nva: &str, command: &str) -> serde_json::Value {
    let sock = lab.dir.join(nva);
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns(nva), "vtysh", "--vty_socket"])
        .arg(&sock)
        .args(["-c", command])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// The next hops of FRR's paths to `prefix` on an NVA (the instances it learned it from).
fn frr_paths(lab: &Lab, nva: &str, prefix: &str) -> Vec<String> {
    let v = frr_json(lab, nva, &format!("show bgp ipv4 unicast {prefix} json"));
    v["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["peer"]["peerId"].as_str().map(str::to_string))
        .collect()
}

/// Whether `ok` holds for the answer of every instance (both, on every controller) at `path`
/// (an answer keyed by instance name).
fn every_instance(lab: &Lab, path: &str, ok: impl Fn(&serde_json::Value) -> bool) -> bool {
    let mut instances = 0;
    for host in CONTROLLER_HOSTS.iter().take(lab.controllers as usize) {
        let Some(v) = lab.api_on(host, path) else {
            return false;
        };
        let Some(o) = v.as_object() else {
            return false;
        };
        instances += o.len();
        if !o.values().all(&ok) {
            return false;
        }
    }
    instances == 2
}

/// Whether every instance's Loc-RIB holds a path from `peer` for `network`.
fn rib_has_path(lab: &Lab, network: &str, peer: &str) -> bool {
    every_instance(lab, "/v1/rib", |entries| {
        entries.as_array().is_some_and(|es| {
            es.iter().any(|e| {
                e["network"] == network
                    && e["paths"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| p["sourcePeer"] == peer))
            })
        })
    })
}

/// Whether `peer` is Established with every instance.
fn peer_up_everywhere(lab: &Lab, peer: &str) -> bool {
    every_instance(lab, "/v1/peers", |ps| {
        ps.as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["name"] == peer && p["state"] == "Established")
        })
    })
}

/// Graceful restart (RFC 4724) with real FRR NVAs (`bgp graceful-restart`):
/// - the controller is killed (-9) and restarted: the NVAs keep the virtual network's route
///   10.1.0.0/16 from it throughout (FRR's table read every 100 ms: never missing);
/// - an NVA's bgpd is killed and restarted: both instances keep its path for the branch in
///   their Loc-RIB throughout (read every 100 ms), until its End-of-RIB, and vm1 its route.
#[test]
fn graceful_restart_hides_a_controller_restart_and_an_nva_restart() {
    if !lab_ready() {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up_with("active-passive", &["--graceful-restart"]);
    let hub = "10.1.0.0/16";
    let both = || {
        let mut p = frr_paths(&lab, "nva1", hub);
        p.sort();
        p == ["10.1.1.4", "10.1.1.5"]
    };
    assert!(
        labtest::wait_until(Duration::from_secs(10), both),
        "nva1 does not hold {hub} from both instances: {:?}",
        frr_paths(&lab, "nva1", hub)
    );

    // 1. The controller restarts.
    let stop = AtomicBool::new(false);
    let (samples, missing) = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        // Both paths, the killed instances' included (stale in FRR meanwhile).
        let sampler = s.spawn(|| sample_until(&stop, || frr_paths(&lab, "nva1", hub).len() == 2));
        std::thread::sleep(Duration::from_millis(500));
        let killed = lab.ctl(&["controller", "kill"]);
        std::thread::sleep(Duration::from_secs(2));
        lab.ctl(&["controller", "start"]);
        let established = || lab.established() == 4;
        assert!(
            labtest::wait_until(Duration::from_secs(30), established),
            "sessions did not come back"
        );
        // Our End-of-RIB has reached FRR: its stale paths from us are replaced.
        assert!(
            labtest::wait_until(Duration::from_secs(10), both),
            "{:?}",
            frr_paths(&lab, "nva1", hub)
        );
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        let samples = sampler.join().unwrap();
        let n = samples.len();
        let missing: Vec<f64> = samples
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(t, _)| *t)
            .collect();
        println!(
            "controller killed at {killed:.2}, back after 2 s: nva1's table read {n} times, {hub} from either instance missing {} times",
            missing.len()
        );
        (n, missing)
    });
    assert!(samples >= 20, "too few samples: {samples}");
    assert!(
        missing.is_empty(),
        "nva1 lost {hub} during the controller's restart at {missing:?}"
    );

    // 2. nva1's bgpd restarts: while it is away and until its session is back, its path stays
    //    in both Loc-RIBs (stale); vm1 keeps its route throughout.
    let branch = "192.168.10.0/24";
    assert!(
        labtest::wait_until(Duration::from_secs(10), || rib_has_path(
            &lab, branch, "nva1"
        )),
        "{:?}",
        lab.api("/v1/rib")
    );
    let nva1_up = || peer_up_everywhere(&lab, "nva1");
    let stop = AtomicBool::new(false);
    let (samples, killed, back) = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        // (nva1's path in both Loc-RIBs, vm1's route)
        let sampler = s.spawn(|| {
            sample_until(&stop, || {
                (
                    rib_has_path(&lab, branch, "nva1"),
                    lab.vm1_routes().contains(branch),
                )
            })
        });
        std::thread::sleep(Duration::from_millis(500));
        let killed = lab.ctl(&["bgpd", "nva1", "kill"]);
        std::thread::sleep(Duration::from_secs(2));
        lab.ctl(&["bgpd", "nva1", "start"]);
        assert!(
            labtest::wait_until(Duration::from_secs(30), nva1_up),
            "nva1 did not come back: {:?}\n{}",
            lab.api("/v1/peers"),
            lab.log("nva1-bgpd.log")
        );
        let back = now_unix();
        // Its path again, sent after its End-of-RIB or before.
        assert!(
            labtest::wait_until(Duration::from_secs(20), || rib_has_path(
                &lab, branch, "nva1"
            )),
            "nva1's path did not come back"
        );
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        (sampler.join().unwrap(), killed, back)
    });
    let away: Vec<f64> = samples
        .iter()
        .filter(|(t, (has, _))| *t >= killed && *t <= back && !has)
        .map(|(t, ..)| *t)
        .collect();
    let unrouted: Vec<f64> = samples
        .iter()
        .filter(|(_, (_, routed))| !routed)
        .map(|(t, ..)| *t)
        .collect();
    let gap = samples
        .iter()
        .filter(|(t, (has, _))| *t > back && !has)
        .count();
    println!(
        "nva1's bgpd killed, back after {:.1} s: {} samples; nva1's path missing while it was away: {}; after it was back: {gap} samples of 100 ms (FRR 8.4 sends End-of-RIB before its own network route); vm1's route missing: {}",
        back - killed,
        samples.len(),
        away.len(),
        unrouted.len()
    );
    assert!(
        samples
            .iter()
            .filter(|(t, ..)| *t >= killed && *t <= back)
            .count()
            >= 10,
        "too few samples while nva1 was away"
    );
    assert!(
        away.is_empty(),
        "nva1's path went while it restarted (no graceful restart helper) at {away:?}"
    );
    assert!(unrouted.is_empty(), "vm1 lost its route at {unrouted:?}");

    // 3. `clear bgp` on nva1 (Cease/Administrative Reset; with the N bit of RFC 8538 it is a
    //    restart too): its path never leaves either Loc-RIB, vm1-nic's effective routes do
    //    not change version. First nva1's bgpd settles: for its first seconds FRR 8.4 sends
    //    End-of-RIB before its own `network` route (the gap measured in part 2), and a clear
    //    then would show that, not us.
    std::thread::sleep(Duration::from_secs(8));
    let version = |host: &str| {
        lab.api_on(host, "/v1/effective-routes?nic=vm1-nic")
            .and_then(|v| v["version"].as_u64())
            .expect("effective routes answer")
    };
    let hosts: Vec<&str> = CONTROLLER_HOSTS
        .iter()
        .take(lab.controllers as usize)
        .copied()
        .collect();
    let versions_before: Vec<u64> = hosts.iter().map(|h| version(h)).collect();
    let sock = lab.dir.join("nva1");
    let stop = AtomicBool::new(false);
    let samples = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let sampler = s.spawn(|| {
            sample_until(&stop, || {
                rib_has_path(&lab, branch, "nva1") && lab.vm1_routes().contains(branch)
            })
        });
        std::thread::sleep(Duration::from_millis(500));
        lab.exec(
            "nva1",
            &[
                "vtysh",
                "--vty_socket",
                sock.to_str().unwrap(),
                "-c",
                "clear bgp 10.1.1.4",
                "-c",
                "clear bgp 10.1.1.5",
            ],
        );
        assert!(
            labtest::wait_until(Duration::from_secs(5), || !peer_up_everywhere(&lab, "nva1")
                || lab
                    .log("nva1/bgpd.log")
                    .matches("Administrative Reset")
                    .count()
                    >= 2),
            "the clear did not reset the sessions"
        );
        assert!(
            labtest::wait_until(Duration::from_secs(30), nva1_up),
            "nva1 did not come back after the clear"
        );
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
        sampler.join().unwrap()
    });
    let missing: Vec<f64> = samples
        .iter()
        .filter(|(_, has)| !has)
        .map(|(t, _)| *t)
        .collect();
    let versions_after: Vec<u64> = hosts.iter().map(|h| version(h)).collect();
    println!(
        "clear bgp on nva1: {} samples, nva1's path (or vm1's route) missing {} times; vm1-nic's effective routes version {versions_before:?} -> {versions_after:?}",
        samples.len(),
        missing.len()
    );
    assert!(
        lab.log("nva1/bgpd.log").contains("Administrative Reset"),
        "FRR did not reset the sessions:\n{}",
        lab.log("nva1/bgpd.log")
    );
    assert!(
        missing.is_empty(),
        "nva1's path went during the clear at {missing:?}"
    );
    assert_eq!(
        versions_before, versions_after,
        "vm1-nic's effective routes changed"
    );
}

// ---------------------------------------------------------------------------------------------
// Benchmarks (ignored; commands and results in BENCHMARKS.md)
// ---------------------------------------------------------------------------------------------

/// The backend `lb show` calls active (active-passive).
fn active_nva(lab: &Lab) -> &'static str {
    active_nva_on(lab, "rs")
}

/// The backend the controller on `host` calls active.
fn active_nva_on(lab: &Lab, host: &str) -> &'static str {
    let v = lab
        .api_on(host, &format!("/v1/lb/{}", lab.lb_name()))
        .expect("lb answers");
    let active = v["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["role"] == "active"))
        .and_then(|b| b["address"].as_str())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no active backend: {v}"));
    lab.nva_named(active)
}

/// Whether the controller on `host` has both NVAs up.
fn both_up_on(lab: &Lab, host: &str) -> bool {
    lab.api_on(host, &format!("/v1/lb/{}", lab.lb_name()))
        .is_some_and(|v| {
            v["backends"]
                .as_array()
                .is_some_and(|b| b.iter().filter(|b| b["health"] == "up").count() == 2)
        })
}

/// 20 failures of the active NVA's health endpoint (interval 100 ms, fall 3): for each, the time
/// from its last successful probe to the first new connection through the other NVA.
/// `cargo test --release -p nexthop --test lab_e2e -- --ignored --nocapture failover_distribution`
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn failover_distribution() {
    if !lab_ready() {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("active-passive");
    distribution(&lab, "");
}

/// The same 20 failures with two controller processes, the first one killed before them: the
/// mux follows the second controller, whose probes see every failure.
/// `cargo test --release -p nexthop --test lab_e2e -- --ignored --nocapture failover_distribution_with_a_controller_down`
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn failover_distribution_with_a_controller_down() {
    if !lab_ready() {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("active-passive", 2, &[]);
    lab.ctl(&["controller", "kill", "1"]);
    lab.wait_log("lb-mux.log", "following controller http://10.1.1.5:8179", 2);
    distribution(&lab, " (controller 1 down)");
}

/// 20 failures of the active NVA, alternating; prints the distribution of failover times.
fn distribution(lab: &Lab, label: &str) {
    let cap = Capture::start(lab);
    let mut from_probe = Vec::new();
    let mut from_stop = Vec::new();
    let host = CONTROLLER_HOSTS[lab.controllers as usize - 1];
    for round in 0..20 {
        wait_idle();
        let from = active_nva_on(lab, host);
        let to = if from == "nva1" { "nva2" } else { "nva1" };
        let f = fail_over(lab, &cap, from, to);
        println!(
            "failure {:2}{label}: {from} -> {to}: {:.3} s from the last good probe ({:.3} s from the stop)",
            round + 1,
            f.from_last_probe,
            f.from_stop
        );
        from_probe.push(f.from_last_probe);
        from_stop.push(f.from_stop);
        lab.ctl(&["health", from, "start"]);
        assert!(labtest::wait_until(Duration::from_secs(5), || both_up_on(
            lab, host
        )));
        std::thread::sleep(Duration::from_millis(300));
    }
    for (what, v) in [
        ("last good probe", &mut from_probe),
        ("health endpoint stopped", &mut from_stop),
    ] {
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "failover{label} over {} failures, from {what}: min {:.3} s, median {:.3} s, mean {mean:.3} s, p90 {:.3} s, max {:.3} s",
            v.len(),
            v[0],
            (v[9] + v[10]) / 2.0,
            v[17],
            v[19]
        );
    }
}

/// Minimum-size UDP (60-byte frames, 64 with the FCS) from vm1 to the branch prefix over
/// `flows` connected sockets per generator thread, `sendmmsg` in batches of 64, for `secs`.
/// Returns the datagrams the kernel accepted.
fn blast(lab: &Lab, threads: usize, secs: f64) -> u64 {
    const BATCH: usize = 64;
    const FLOWS: usize = 32;
    let ns = lab.ns("vm1");
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let ns = ns.clone();
                s.spawn(move || {
                    netns::run_in(&ns, move || {
                        let socks: Vec<std::net::UdpSocket> = (0..FLOWS)
                            .map(|i| {
                                let u = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
                                u.connect((SINK, 9000 + (t * FLOWS + i) as u16)).unwrap();
                                u
                            })
                            .collect();
                        let mut payload = [0x5au8; 18];
                        let mut iov = libc::iovec {
                            iov_base: payload.as_mut_ptr().cast(),
                            iov_len: payload.len(),
                        };
                        // SAFETY: zeroed mmsghdr is valid; each points at the one iovec above.
                        let mut msgs: Vec<libc::mmsghdr> =
                            (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
                        for m in &mut msgs {
                            m.msg_hdr.msg_iov = &mut iov;
                            m.msg_hdr.msg_iovlen = 1;
                        }
                        let end = Instant::now() + Duration::from_secs_f64(secs);
                        let mut sent = 0u64;
                        while Instant::now() < end {
                            for u in &socks {
                                // SAFETY: msgs and the buffers they point to outlive the call.
                                let n = unsafe {
                                    libc::sendmmsg(
                                        u.as_raw_fd(),
                                        msgs.as_mut_ptr(),
                                        BATCH as u32,
                                        0,
                                    )
                                };
                                if n > 0 {
                                    sent += n as u64;
                                }
                            }
                        }
                        sent
                    })
                    .unwrap()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

/// Where the benchmark's datagrams go: inside the branch prefix (so vm1 routes them to the
/// load balancer), blackholed on the NVAs.
const SINK: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 200);

/// Datagrams per second the generator got out and the NVAs received (at their `eth0`; they
/// drop them at once on a blackhole route, so the downstream costs the same whichever
/// forwarder is measured).
/// Measured when no build or other benchmark runs on this shared machine (waits until none has
/// run for 3 s; a measurement during which one started is repeated).
fn pps(lab: &Lab, threads: usize, secs: f64) -> (f64, f64) {
    let rx = || lab.eth0_rx_packets("nva1") + lab.eth0_rx_packets("nva2");
    loop {
        wait_idle();
        let before = rx();
        let sent = blast(lab, threads, secs);
        std::thread::sleep(Duration::from_millis(300));
        let r = ((sent as f64) / secs, (rx() - before) as f64 / secs);
        if busy().is_none() {
            return r;
        }
    }
}

/// A process that would skew a measurement: a build, a test run or another benchmark (not
/// the `cargo test` running this one).
fn busy() -> Option<String> {
    const BUSY: [&str; 5] = [
        "cargo",
        "rustc",
        "cargo-clippy",
        "nexthop-bench",
        "clippy-driver",
    ];
    let parent = |pid: &str| -> Option<String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?
            .1
            .split(' ')
            .nth(1)
            .map(str::to_string)
    };
    let mut ours = vec![std::process::id().to_string()];
    while let Some(p) = parent(ours.last().unwrap()).filter(|p| p != "0") {
        ours.push(p);
    }
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_string_lossy().into_owned();
        if ours.contains(&pid) {
            return None;
        }
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        let comm = comm.trim();
        BUSY.contains(&comm).then(|| format!("{comm} ({pid})"))
    })
}

fn wait_idle() {
    let mut quiet_since = Instant::now();
    let mut said = false;
    while quiet_since.elapsed() < Duration::from_secs(3) {
        if let Some(what) = busy() {
            if !said {
                println!("(waiting: {what} is running)");
                said = true;
            }
            quiet_since = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Lab {
    fn eth0_rx_packets(&self, host: &str) -> u64 {
        self.exec(host, &["cat", "/sys/class/net/eth0/statistics/rx_packets"])
            .trim()
            .parse()
            .unwrap()
    }
}

/// Packets per second through `nexthop lb-mux` (one forwarding thread per CPU, and one thread)
/// against the kernel forwarding the same traffic on the same LB host (mux stopped,
/// `ip_forward=1`, a static route to nva1, no redirects), same generator, same lab, rounds
/// interleaved; 1 and 2 generator threads.
/// `cargo test --release -p nexthop --test lab_e2e -- --ignored --nocapture mux_vs_kernel_pps`
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn mux_vs_kernel_pps() {
    if !lab_ready() {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("active-passive");
    for n in ["nva1", "nva2"] {
        lab.exec(
            n,
            &["ip", "route", "add", "blackhole", &format!("{SINK}/32")],
        );
    }
    let secs = 3.0;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let muxes = [cpus, 1];
    let mut results: HashMap<(String, usize), Vec<(f64, f64)>> = HashMap::new();
    let mut run = |lab: &Lab, fw: &str, round: usize| {
        for threads in [1, 2] {
            let r = pps(lab, threads, secs);
            println!(
                "round {round} {fw}, {threads} generator thread(s): sent {:.0} pps, forwarded {:.0} pps",
                r.0, r.1
            );
            results
                .entry((fw.to_string(), threads))
                .or_default()
                .push(r);
        }
    };
    for round in 0..3 {
        for threads in muxes {
            lab.ctl(&["mux", "stop"]);
            let out = lab
                .script("ctl.sh")
                .args(["mux", "start"])
                .env("LAB_MUX_THREADS", threads.to_string())
                .output()
                .unwrap();
            assert!(out.status.success());
            std::thread::sleep(Duration::from_secs(2));
            run(&lab, &format!("mux ({threads} thread)"), round);
        }
        // The kernel instead of the mux.
        lab.ctl(&["mux", "stop"]);
        for c in [
            &["sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0"][..],
            &["sysctl", "-qw", "net.ipv4.conf.eth0.send_redirects=0"],
            &["sysctl", "-qw", "net.ipv4.ip_forward=1"],
            &["ip", "route", "add", "192.168.10.0/24", "via", "10.1.2.10"],
        ] {
            lab.exec("lb", c);
        }
        run(&lab, "kernel", round);
        lab.exec("lb", &["ip", "route", "del", "192.168.10.0/24"]);
        lab.exec("lb", &["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    }
    let median = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    println!("| forwarder | generator threads | sent pps (median) | forwarded pps (median) | each run forwarded | forwarded / kernel |");
    println!("|---|---:|---:|---:|---|---:|");
    for threads in [1, 2] {
        let kernel = median(&results[&("kernel".to_string(), threads)], |r| r.1);
        let mut names: Vec<String> = muxes.iter().map(|t| format!("mux ({t} thread)")).collect();
        names.push("kernel".into());
        for fw in names {
            let v = &results[&(fw.clone(), threads)];
            let fwd = median(v, |r| r.1);
            println!(
                "| {fw} | {threads} | {:.0} | {fwd:.0} | {} | {:.2} |",
                median(v, |r| r.0),
                v.iter()
                    .map(|r| format!("{:.0}", r.1))
                    .collect::<Vec<_>>()
                    .join(" "),
                fwd / kernel
            );
        }
    }
}

#[test]
fn a_load_balancer_reconfigured_on_the_controller_reaches_the_mux() {
    if !lab_ready() {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("active-passive");
    let cap = Capture::start(&lab);
    let mark = cap.mark();
    let ports = connections(&lab, 20);
    assert_eq!(
        count(&nvas_of(&cap, mark, &lab, &ports)),
        vec![("nva1", 20), ("nva2", 0)]
    );

    // The operator switches the load balancer to active-active and reloads.
    let conf = lab.dir.join("nexthop.toml");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace("\"active-passive\"", "\"active-active\""),
    )
    .unwrap();
    println!("{}", lab.nexthop(&["reload"]));
    assert!(
        labtest::wait_until(Duration::from_secs(10), || lab
            .log("lb-mux.log")
            .contains("reconfigured")),
        "the mux did not pick up the new configuration"
    );
    assert!(labtest::wait_until(Duration::from_secs(10), || both_up_on(
        &lab, "rs"
    )));
    let mark = cap.mark();
    let ports = connections(&lab, 200);
    let via = nvas_of(&cap, mark, &lab, &ports);
    println!("after the reload to active-active: {:?}", count(&via));
    let nva1: Ipv4Addr = "10.1.2.10".parse().unwrap();
    for (p, v) in ports.iter().zip(&via) {
        let predicted = if lab.trace(*p) == nva1 {
            "nva1"
        } else {
            "nva2"
        };
        assert_eq!(predicted, *v, "trace for port {p}");
    }
    assert!(
        count(&via).iter().all(|(_, c)| *c >= 60),
        "not spread: {:?}",
        count(&via)
    );
}
