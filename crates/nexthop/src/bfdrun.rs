//! BFD for a route server instance's peers (RFC 5881 single hop, IPv4): one task per instance
//! with peers that have `bfd = {...}`, owning their [`bfd::Session`]s and two UDP sockets —
//! packets in on the instance's address, port 3784; packets out from a source port in
//! 49152–65535 with TTL 255. It reports every state change to the instance task, which takes
//! the BGP session down when BFD leaves Up.
//!
//! ```text
//!  UDP :3784 ──decode──> session of the source address ──> Send ──> UDP (TTL 255) to peer:3784
//!  deadline ──Tick──────> every session                 └─> StateChanged ──> instance task
//!  reload ──new peer list──> sessions added / dropped (unchanged ones keep running)
//! ```
//!
//! Not yet: checking that received packets came with TTL 255 (RFC 5881 §5), IPv6 sessions,
//! echo mode.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bfd::{Config, ControlPacket, Effect, Input, Session, State};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The BFD control port (RFC 5881 §4).
pub const PORT: u16 = 3784;

/// A state change of the session with a peer: (peer, from, to, diagnostic).
pub type Change = (IpAddr, State, State, bfd::Diag);

/// The running task; dropping it stops it.
pub struct BfdTask {
    peers: mpsc::Sender<Vec<(IpAddr, Config)>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BfdTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BfdTask {
    /// The peers to run sessions with from now on (a reload).
    pub fn set_peers(&self, peers: Vec<(IpAddr, Config)>) {
        let _ = self.peers.try_send(peers);
    }
}

/// Starts BFD on `local` for `peers`; changes go to `changes`. An error when the sockets cannot
/// be had (the port taken by another BFD daemon).
pub async fn start(
    local: Ipv4Addr,
    peers: Vec<(IpAddr, Config)>,
    changes: mpsc::Sender<Change>,
) -> std::io::Result<BfdTask> {
    let rx = UdpSocket::bind(SocketAddr::new(local.into(), PORT)).await?;
    let tx = source_socket(local).await?;
    tx.set_ttl(255)?;
    let (ptx, prx) = mpsc::channel(4);
    let task = tokio::spawn(run(rx, tx, peers, prx, changes));
    Ok(BfdTask { peers: ptx, task })
}

/// A socket on a source port in 49152–65535 (RFC 5881 §4): the first one free.
async fn source_socket(local: Ipv4Addr) -> std::io::Result<UdpSocket> {
    let mut last = None;
    for port in 49152..=65535u16 {
        match UdpSocket::bind(SocketAddr::new(local.into(), port)).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
        if port > 49152 + 256 {
            break;
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no source port")))
}

/// A discriminator for the session with `peer`: non-zero, and different for every peer of
/// this task (the peer's address, which is unique here, mixed).
fn discriminator(peer: IpAddr, taken: &HashMap<IpAddr, Session>) -> u32 {
    let mut d = match peer {
        IpAddr::V4(a) => u32::from(a).rotate_left(13) ^ 0x5bd1_e995,
        IpAddr::V6(a) => a.octets().chunks(4).fold(0u32, |h, c| {
            h.rotate_left(5) ^ u32::from_be_bytes([c[0], c[1], c[2], c[3]])
        }),
    };
    while d == 0 || taken.values().any(|s| s.local_disc() == d) {
        d = d.wrapping_add(1);
    }
    d
}

async fn run(
    rx: UdpSocket,
    tx: UdpSocket,
    peers: Vec<(IpAddr, Config)>,
    mut updates: mpsc::Receiver<Vec<(IpAddr, Config)>>,
    changes: mpsc::Sender<Change>,
) {
    let mut sessions: HashMap<IpAddr, Session> = HashMap::new();
    let mut configs: HashMap<IpAddr, Config> = HashMap::new();
    // The sans-IO sessions count time in std Instants; tokio's converts.
    let now = || Instant::now().into_std();
    let set = |peers: Vec<(IpAddr, Config)>,
               sessions: &mut HashMap<IpAddr, Session>,
               configs: &mut HashMap<IpAddr, Config>| {
        sessions.retain(|a, _| peers.iter().any(|(p, _)| p == a));
        configs.retain(|a, _| peers.iter().any(|(p, _)| p == a));
        for (peer, cfg) in peers {
            if configs.get(&peer) == Some(&cfg) {
                continue;
            }
            let d = discriminator(peer, sessions);
            info!(%peer, interval = ?cfg.desired_min_tx, multiplier = cfg.detect_mult, "BFD session");
            sessions.insert(peer, Session::new(cfg, d, now()));
            configs.insert(peer, cfg);
        }
    };
    set(peers, &mut sessions, &mut configs);
    let mut buf = [0u8; 512];
    loop {
        let deadline = sessions
            .values()
            .map(Session::deadline)
            .min()
            .map(Instant::from_std)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let mut fx: Vec<(IpAddr, Vec<Effect>)> = Vec::new();
        tokio::select! {
            r = rx.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let Some(s) = sessions.get_mut(&from.ip()) else {
                    debug!(%from, "BFD packet from no configured peer");
                    continue;
                };
                match ControlPacket::decode(&buf[..n]) {
                    Ok(p) => fx.push((from.ip(), s.handle(now(), Input::Packet(&p)))),
                    Err(e) => debug!(%from, "BFD packet refused: {e}"),
                }
            }
            _ = tokio::time::sleep_until(deadline) => {}
            u = updates.recv() => match u {
                Some(p) => set(p, &mut sessions, &mut configs),
                None => return,
            },
        }
        let t = now();
        for (peer, s) in sessions.iter_mut() {
            fx.push((*peer, s.handle(t, Input::Tick)));
        }
        for (peer, effects) in fx {
            for e in effects {
                match e {
                    Effect::Send(p) => {
                        if let Err(e) = tx.send_to(&p.encode(), SocketAddr::new(peer, PORT)).await {
                            debug!(%peer, "BFD send failed: {e}");
                        }
                    }
                    Effect::StateChanged { from, to, diag } => {
                        if to == State::Up {
                            info!(%peer, "BFD session Up");
                        } else {
                            warn!(%peer, %from, %to, %diag, "BFD session state");
                        }
                        let _ = changes.send((peer, from, to, diag)).await;
                    }
                }
            }
        }
    }
}
