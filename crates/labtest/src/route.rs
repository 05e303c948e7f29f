//! What the launchers report, in one vocabulary for all three daemons.

/// One path to a prefix as a daemon holds it (every path, not only the best one).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// `"192.168.10.0/24"`, `"2001:db8:10::/48"`.
    pub prefix: String,
    /// The BGP next hop as the daemon shows it. A locally originated route shows the daemon's
    /// own placeholder (`0.0.0.0` for FRR, empty for BIRD static routes).
    pub next_hop: String,
    /// ASNs separated by single spaces, `""` for a local route; an AS_SET is shown as
    /// `{a,b}`.
    pub as_path: String,
    /// Whether the daemon selected this path as best.
    pub best: bool,
}

/// The RFC 4271 §8.2.2 session state names that every launcher's `neighbor_state` returns
/// (FRR, BIRD and GoBGP each spell them their own way).
pub const SESSION_STATES: [&str; 6] = [
    "Idle",
    "Connect",
    "Active",
    "OpenSent",
    "OpenConfirm",
    "Established",
];

/// Maps a daemon's spelling of a session state to the RFC name; unknown spellings pass through.
pub(crate) fn normalize_state(s: &str) -> String {
    let lower = s.trim().to_ascii_lowercase();
    let name = match lower.as_str() {
        "idle" | "bgp_fsm_idle" | "1" => "Idle",
        "connect" | "bgp_fsm_connect" | "2" => "Connect",
        "active" | "bgp_fsm_active" | "3" => "Active",
        "opensent" | "bgp_fsm_opensent" | "4" => "OpenSent",
        "openconfirm" | "bgp_fsm_openconfirm" | "5" => "OpenConfirm",
        "established" | "establ" | "bgp_fsm_established" | "6" => "Established",
        _ => return s.trim().to_string(),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_normalize() {
        assert_eq!(normalize_state("Established"), "Established");
        assert_eq!(normalize_state("6"), "Established");
        assert_eq!(normalize_state("OpenSent"), "OpenSent");
        assert_eq!(normalize_state("BGP_FSM_ACTIVE"), "Active");
        assert_eq!(normalize_state("Clearing"), "Clearing");
    }
}
