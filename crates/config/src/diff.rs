//! What a reload changes for BGP peers.

use crate::model::{Config, Peer, RouteServer};

/// The peers of two configs, matched by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerDiff {
    /// In the new config only: bring up. In the new config's order.
    pub added: Vec<Peer>,
    /// In the old config only: take down. In the old config's order.
    pub removed: Vec<Peer>,
    /// In both, but a session has to be re-established. In the new config's order.
    pub changed: Vec<PeerChange>,
    /// In both and untouched: keep the sessions. In the new config's order.
    pub unchanged: Vec<Peer>,
}

/// A peer whose session must restart, as it was and as it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerChange {
    pub old: Peer,
    pub new: Peer,
}

impl PeerDiff {
    /// True when the reload leaves every session alone.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Compares the peers of `old` and `new` by name.
///
/// A peer is changed when any of its fields differs (values inherited from `[route_server]`,
/// such as `hold_time`, count as its own) or when the route server changed what every session
/// depends on: its ASN, its instances or its port. `virtual_network` and `branch_to_branch` only
/// change what is advertised, which UPDATEs carry, so they leave sessions alone.
pub fn diff_peers(old: &Config, new: &Config) -> PeerDiff {
    let old_peers = peers(old.route_server.as_ref());
    let new_peers = peers(new.route_server.as_ref());
    let sessions_reset = match (&old.route_server, &new.route_server) {
        (Some(a), Some(b)) => a.asn != b.asn || a.instances != b.instances || a.port != b.port,
        _ => false,
    };

    let mut diff = PeerDiff::default();
    for peer in new_peers {
        match old_peers.iter().find(|p| p.name == peer.name) {
            None => diff.added.push(peer.clone()),
            Some(was) if sessions_reset || was != peer => diff.changed.push(PeerChange {
                old: was.clone(),
                new: peer.clone(),
            }),
            Some(_) => diff.unchanged.push(peer.clone()),
        }
    }
    diff.removed = old_peers
        .iter()
        .filter(|p| !new_peers.iter().any(|n| n.name == p.name))
        .cloned()
        .collect();
    diff
}

fn peers(rs: Option<&RouteServer>) -> &[Peer] {
    rs.map(|rs| rs.peers.as_slice()).unwrap_or_default()
}
