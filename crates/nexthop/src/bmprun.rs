//! `[[bmp]] collector = "HOST:PORT"`: every instance streams BMP (RFC 7854) to each collector,
//! as the monitored router it is: one TCP session per instance, from the instance's address,
//! Initiation (sysName = the instance's name), then for every established peer a Peer Up and
//! its Adj-RIB-In (pre-policy) as Route Monitoring, then live Peer Up / Route Monitoring / Peer
//! Down as they happen.
//!
//! ```text
//!  instance tasks ──(instance, BMP message)──> broadcast ──> a task per collector and instance
//!                   (only while a collector listens)          ──TCP from the instance's address──>
//! ```
//!
//! A collector that goes away or falls behind (the broadcast queue overflows) is reconnected
//! with a back-off of 1 s doubling to 30 s, and gets the whole state again. BGP sessions never
//! wait for a collector.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::instance::{Instances, Query};

/// Messages queued for each collector before it counts as behind.
const QUEUE: usize = 16 * 1024;

/// A message and the instance it is from.
type Tagged = (Arc<str>, Arc<[u8]>);

/// The sending side, in every instance task.
#[derive(Clone)]
pub struct BmpFeed {
    tx: broadcast::Sender<Tagged>,
}

impl BmpFeed {
    /// Whether any collector is connected (nothing is encoded otherwise).
    pub fn listening(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// A message about instance `instance`'s peers.
    pub fn send(&self, instance: &Arc<str>, message: Vec<u8>) {
        let _ = self.tx.send((instance.clone(), message.into()));
    }
}

/// The feed for `collectors`, or None when there is none. Their tasks start with
/// [`connect`] once the instances exist.
pub fn feed(collectors: &[config::Bmp]) -> Option<BmpFeed> {
    (!collectors.is_empty()).then(|| BmpFeed {
        tx: broadcast::channel(QUEUE).0,
    })
}

/// Starts one task per collector and instance (instances added by a later reload are not
/// streamed until a restart).
pub async fn connect(feed: &BmpFeed, collectors: &[config::Bmp], instances: Instances) {
    let names: Vec<(String, std::net::Ipv4Addr)> = instances
        .read()
        .await
        .iter()
        .map(|i| (i.name.clone(), i.address))
        .collect();
    for c in collectors {
        for (name, address) in &names {
            tokio::spawn(collector(
                c.collector.clone(),
                (Arc::from(name.as_str()), *address),
                feed.tx.clone(),
                instances.clone(),
            ));
        }
    }
}

async fn collector(
    addr: String,
    instance: (Arc<str>, std::net::Ipv4Addr),
    tx: broadcast::Sender<Tagged>,
    instances: Instances,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match session(&addr, &instance, &tx, &instances).await {
            Ok(true) => backoff = Duration::from_secs(1),
            Ok(false) => return,
            Err(e) => {
                warn!(collector = %addr, instance = %instance.0, error = %e, retry_in = ?backoff, "BMP collector")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// One connection to a collector for one instance: its whole state, then its live messages,
/// until the connection fails (Err) or the instance is gone (false).
async fn session(
    addr: &str,
    (name, local): &(Arc<str>, std::net::Ipv4Addr),
    tx: &broadcast::Sender<Tagged>,
    instances: &Instances,
) -> std::io::Result<bool> {
    let Some(handle) = instances
        .read()
        .await
        .iter()
        .find(|i| *i.name == **name)
        .cloned()
    else {
        return Ok(false);
    };
    let connect = async {
        let remote = tokio::net::lookup_host(addr)
            .await?
            .find(std::net::SocketAddr::is_ipv4)
            .ok_or_else(|| std::io::Error::other(format!("{addr}: no IPv4 address")))?;
        let sock = tokio::net::TcpSocket::new_v4()?;
        // From the instance's own address: the collector sees each instance as a router.
        sock.bind(std::net::SocketAddr::new((*local).into(), 0))?;
        sock.connect(remote).await
    };
    let mut s = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    s.set_nodelay(true)?;
    // Live messages from now on are kept while the state goes out: the collector may see a
    // route twice, never miss one.
    let mut rx = tx.subscribe();
    s.write_all(&bgp::bmp::initiation(
        name,
        concat!("nexthop ", env!("CARGO_PKG_VERSION")),
    ))
    .await?;
    let state = handle.ask(Query::Bmp).await.unwrap_or_default();
    for m in &state {
        s.write_all(m).await?;
    }
    info!(collector = %addr, instance = %name, messages = state.len(), "BMP collector connected; state sent");
    loop {
        match rx.recv().await {
            Ok((from, m)) if from == *name => s.write_all(&m).await?,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                return Err(std::io::Error::other(format!(
                    "{n} messages behind; reconnecting to send the whole state again"
                )))
            }
            Err(broadcast::error::RecvError::Closed) => {
                let _ = s.write_all(&bgp::bmp::termination()).await;
                return Ok(false);
            }
        }
    }
}
