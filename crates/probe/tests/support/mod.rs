//! Backends for the probe tests: real listeners on 127.0.0.0/8 that can stop, start, answer a
//! chosen HTTP status, stay silent, or refuse to accept. Each test uses its own 127.x.y.0/24 so
//! tests in one binary never share an address.
#![allow(dead_code)] // each test binary uses a different part

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub mod scale;

pub fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

pub fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // The tests stop and restart listeners on the same address.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Binds a listener on every address at one common port (a ProbeSpec has one port), retrying
/// with a new port if another process holds it on one of the addresses.
pub fn listen_all(ips: &[IpAddr], backlog: u32) -> (u16, Vec<TcpListener>) {
    for _attempt in 0..20 {
        let first = listen(SocketAddr::new(ips[0], 0), backlog).expect("bind first address");
        let port = first.local_addr().expect("local addr").port();
        let mut all = vec![first];
        for &ip in &ips[1..] {
            match listen(SocketAddr::new(ip, port), backlog) {
                Ok(l) => all.push(l),
                Err(_) => break,
            }
        }
        if all.len() == ips.len() {
            return (port, all);
        }
    }
    panic!("no common free port on {ips:?}");
}

/// A TCP backend that accepts and closes; it can stop listening and start again.
pub struct TcpBackend {
    pub addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl TcpBackend {
    pub fn new(listener: TcpListener) -> Self {
        let addr = listener.local_addr().expect("local addr");
        Self {
            addr,
            task: Some(tokio::spawn(accept_and_close(listener))),
        }
    }

    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // Once the aborted task is joined its listener is closed: no race with the probes.
            let _ = task.await;
        }
    }

    pub fn start(&mut self) {
        let listener = listen(self.addr, 128).expect("listen again");
        self.task = Some(tokio::spawn(accept_and_close(listener)));
    }
}

async fn accept_and_close(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        drop(stream);
    }
}

/// What an HTTP backend saw: request heads and peer addresses.
#[derive(Default)]
pub struct Seen {
    pub requests: Vec<String>,
    pub peers: Vec<SocketAddr>,
}

/// An HTTP/1.1 backend answering every request with `status` (changeable while running);
/// optionally behind a TLS acceptor.
pub struct HttpBackend {
    pub addr: SocketAddr,
    pub status: Arc<AtomicU16>,
    pub seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl HttpBackend {
    pub fn new(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let status = Arc::new(AtomicU16::new(200));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (s, n) = (status.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                n.lock().unwrap().peers.push(peer);
                let (s, n, tls) = (s.clone(), n.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => serve_one(stream, &s, &n).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_one(stream, &s, &n).await;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            status,
            seen,
            task,
        }
    }

    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    status: &AtomicU16,
    seen: &Mutex<Seen>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    seen.lock()
        .unwrap()
        .requests
        .push(String::from_utf8_lossy(&head).into_owned());
    let code = status.load(Ordering::SeqCst);
    let reply = format!("HTTP/1.1 {code} Test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    let _ = s.write_all(reply.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// Accepts connections and never answers: an application that hangs.
pub fn silent_backend(listener: TcpListener) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    })
}

/// Fills the accept queue of a listener that never accepts, so new SYNs are dropped and
/// connects hang: a black hole on loopback without root. Returns the connections that got in.
pub async fn fill_backlog(addr: SocketAddr) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(e)) => panic!("filling backlog of {addr}: {e}"),
            Err(_) => return held,
        }
    }
    panic!("the accept queue of {addr} never filled");
}

/// A result with the time the test received it.
pub struct Stamped {
    pub at: Instant,
    pub result: probe::ProbeResult,
}

/// Receives until `deadline`, stamping each result.
pub async fn collect_until(
    rx: &mut mpsc::Receiver<probe::ProbeResult>,
    deadline: Instant,
) -> Vec<Stamped> {
    let mut out = Vec::new();
    while let Ok(Some(result)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        out.push(Stamped {
            at: Instant::now(),
            result,
        });
    }
    out
}

/// The next result for `target`, waiting at most `within`.
pub async fn next_for(
    rx: &mut mpsc::Receiver<probe::ProbeResult>,
    target: IpAddr,
    within: Duration,
) -> probe::ProbeResult {
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) if r.target == target => return r,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("results channel closed"),
            Err(_) => panic!("no result for {target} within {within:?}"),
        }
    }
}

/// CPU seconds (user, system) from a /proc stat file; /proc reports in USER_HZ = 100 ticks/s.
pub fn cpu_seconds(stat_path: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(stat_path).expect("read /proc stat");
    // Fields after the ")" closing the command name: state is the first, utime the 12th.
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields[i].parse::<u64>().expect("cpu ticks") as f64 / 100.0;
    (ticks(11), ticks(12))
}
