//! What a BGP driver and its application say to each other: how a peer is reached
//! ([`PeerConfig`]), what the driver reports ([`PeerEvent`]) and what the application commands
//! ([`PeerCommand`]).
//!
//! Plain data, no I/O: a driver (`bgp-driver` runs one task per peer over TCP) executes these,
//! and a sans-IO application (a route server instance) can be driven by a test harness that
//! feeds it [`PeerEvent`]s and reads the [`PeerCommand`]s it gives, with no sockets.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::fsm::{DownReason, Negotiated, SessionConfig, State};
use crate::wire::attrs::AttrError;
use crate::wire::{Notification, RouteRefresh, UpdateMessage};

/// How a peer is reached and what its session says.
#[derive(Clone)]
pub struct PeerConfig {
    /// For logs and the application: the operator's name for the peer.
    pub name: String,
    pub session: SessionConfig,
    /// Source address of our connections (the route server instance's address).
    pub local_addr: IpAddr,
    pub remote_addr: IpAddr,
    /// Port we connect to (179 unless a test or a lab says otherwise).
    pub remote_port: u16,
    /// Wait before starting again after the session went down; doubled on each failure up to
    /// `max_restart_delay`, reset once a session is established.
    pub restart_delay: Duration,
    pub max_restart_delay: Duration,
    /// TCP-MD5 key (RFC 2385) for the session, at most 80 octets.
    pub password: Option<Vec<u8>>,
    /// GTSM (RFC 5082): send with TTL 255 and drop segments with a TTL under 254, on our
    /// connections and on the peer's.
    pub ttl_security: bool,
    /// Octets queued for the peer and not yet taken by its socket beyond which the session is
    /// closed with Cease/8 (Out of Resources, RFC 4486): a peer that keeps its session up but
    /// stops reading must not hold every UPDATE made since. It reconnects after the restart
    /// delay and gets the whole table again.
    pub max_send_queue: usize,
}

/// Default of [`PeerConfig::max_send_queue`]: far above a full table (6.4 M routes packed are
/// ≈ 30 MB), far below what would starve the host.
pub const DEFAULT_MAX_SEND_QUEUE: usize = 256 << 20;

/// Never prints the TCP-MD5 key.
impl std::fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConfig")
            .field("name", &self.name)
            .field("session", &self.session)
            .field("local_addr", &self.local_addr)
            .field("remote_addr", &self.remote_addr)
            .field("remote_port", &self.remote_port)
            .field("restart_delay", &self.restart_delay)
            .field("max_restart_delay", &self.max_restart_delay)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("ttl_security", &self.ttl_security)
            .field("max_send_queue", &self.max_send_queue)
            .finish()
    }
}

impl PeerConfig {
    pub fn new(
        name: impl Into<String>,
        session: SessionConfig,
        local_addr: IpAddr,
        remote_addr: IpAddr,
    ) -> Self {
        Self {
            name: name.into(),
            session,
            local_addr,
            remote_addr,
            remote_port: 179,
            restart_delay: Duration::from_secs(1),
            max_restart_delay: Duration::from_secs(60),
            password: None,
            ttl_security: false,
            max_send_queue: DEFAULT_MAX_SEND_QUEUE,
        }
    }
}

/// What a peer task tells the application.
#[derive(Debug)]
pub enum PeerEvent {
    /// The session state changed (the most advanced of the peer's connections).
    State {
        state: State,
    },
    Established {
        negotiated: Negotiated,
    },
    /// A received UPDATE, with the RFC 7606 outcome already applied (a treat-as-withdraw UPDATE
    /// arrives as the withdrawal it amounts to, with `treat_as_withdraw` saying why).
    Update {
        update: UpdateMessage,
        treat_as_withdraw: Option<AttrError>,
        discarded: Vec<AttrError>,
    },
    /// The peer asked for our routes again (RFC 2918).
    RouteRefresh(RouteRefresh),
    /// An established session ended; every route learned on it is gone.
    Down {
        reason: DownReason,
    },
}

/// What the application tells a peer task.
#[derive(Debug)]
pub enum PeerCommand {
    /// Encoded UPDATE messages, for the session's negotiated context, sent in order. Shared:
    /// a route server sends most peers the same bytes, and holds one copy of them.
    Send(Arc<[u8]>),
    /// An UPDATE to encode with the negotiated context and send.
    SendUpdate(UpdateMessage),
    SendRouteRefresh(RouteRefresh),
    /// Close with this NOTIFICATION (e.g. Cease/1 when the prefix limit is hit) and start again
    /// after `restart_after`.
    Reset {
        notification: Notification,
        restart_after: Duration,
    },
    /// ManualStop: Cease/Administrative Shutdown, and the task ends.
    Shutdown,
    /// The peer was removed from the configuration: Cease/Peer De-configured (RFC 4486), and
    /// the task ends.
    Deconfigure,
    /// The process stops to restart with graceful restart (RFC 4724): the task ends and its
    /// connections close without a NOTIFICATION, so that the peer, as helper, keeps our routes
    /// for the restart time.
    Abandon,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let mut c = PeerConfig::new(
            "nva1",
            SessionConfig::new(65515, "10.1.1.4".parse().unwrap(), 65001),
            "10.1.1.4".parse().unwrap(),
            "10.1.2.10".parse().unwrap(),
        );
        c.password = Some(b"s3cret".to_vec());
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("115, 51"),
            "{shown}"
        );
        assert!(shown.contains("<set>"));
    }
}
