//! The checks of a received OPEN (RFC 4271 §6.2, RFC 6286) and what both OPENs negotiate.

use std::net::Ipv4Addr;

use bgp::fsm::{
    default_capabilities, Action, DownReason, Event, Negotiated, Session, SessionConfig, State,
    Timer,
};
use bgp::wire::open::AS_TRANS;
use bgp::wire::{Afi, Capability, Notification, Open, Safi};

use crate::harness::*;

fn open_error(cfg: SessionConfig, open: Open, code: u8, subcode: u8, data: &[u8]) {
    let mut h = Harness::in_state_with(cfg, open.clone(), State::OpenSent);
    let n = Notification::with_data(code, subcode, data);
    h.expect_close(
        Event::BgpOpen(open),
        &notification_bytes(code, subcode, data),
        DownReason::LocalError(n),
    );
    assert_eq!(h.s.connect_retry_counter(), 1);
}

#[test]
fn open_unsupported_version() {
    open_error(
        cfg(),
        Open {
            version: 3,
            ..peer_open()
        },
        2,
        1,
        &[0, 4],
    );
    open_error(
        cfg(),
        Open {
            version: 5,
            ..peer_open()
        },
        2,
        1,
        &[0, 4],
    );
}

#[test]
fn open_bad_peer_as() {
    open_error(
        cfg(),
        Open {
            my_as: 65003,
            capabilities: vec![],
            ..peer_open()
        },
        2,
        2,
        &[],
    );
    // The 4-octet capability is what counts when present.
    let caps = vec![Capability::FourOctetAs(4_200_000_000)];
    open_error(
        cfg(),
        Open {
            capabilities: caps.clone(),
            ..peer_open()
        },
        2,
        2,
        &[],
    );
    let four = SessionConfig::new(LOCAL_AS, LOCAL_ID, 4_200_000_000);
    let ok = Open {
        my_as: AS_TRANS,
        capabilities: caps,
        ..peer_open()
    };
    let mut h = Harness::in_state_with(four.clone(), ok.clone(), State::OpenSent);
    h.ev(Event::BgpOpen(ok));
    assert_eq!(h.s.state(), State::OpenConfirm);
    // A peer with a 4-octet AS but no capability can only say AS_TRANS: not who we expect.
    open_error(
        four,
        Open {
            my_as: AS_TRANS,
            capabilities: vec![],
            ..peer_open()
        },
        2,
        2,
        &[],
    );
}

#[test]
fn open_bad_bgp_identifier() {
    open_error(
        cfg(),
        Open {
            bgp_id: Ipv4Addr::UNSPECIFIED,
            ..peer_open()
        },
        2,
        3,
        &[],
    );
    // RFC 6286: our own identifier is an error from an internal peer only.
    let ibgp = SessionConfig::new(PEER_AS, LOCAL_ID, PEER_AS);
    open_error(
        ibgp,
        Open {
            bgp_id: LOCAL_ID,
            ..peer_open()
        },
        2,
        3,
        &[],
    );
    let same_id = Open {
        bgp_id: LOCAL_ID,
        ..peer_open()
    };
    let mut h = Harness::in_state_with(cfg(), same_id, State::Established);
    assert_eq!(h.s.negotiated().map(|n| n.ebgp), Some(true));
    h.expect(
        Event::KeepAliveMsg,
        &[Action::StartTimer(Timer::Hold, secs(90))],
        State::Established,
    );
}

#[test]
fn open_unacceptable_hold_time() {
    open_error(
        cfg(),
        Open {
            hold_time: 1,
            ..peer_open()
        },
        2,
        6,
        &[],
    );
    open_error(
        cfg(),
        Open {
            hold_time: 2,
            ..peer_open()
        },
        2,
        6,
        &[],
    );
}

#[test]
fn hold_time_negotiation() {
    // (ours, peer's) -> (hold, keepalive)
    for (ours, theirs, hold, keepalive) in [
        (180, 90, 90, 30),
        (180, 0, 0, 0),
        (180, 3, 3, 1),
        (180, 4, 4, 1),
        (60, 180, 60, 20),
        (0, 90, 0, 0),
        (180, 65535, 180, 60),
    ] {
        let open = Open {
            hold_time: theirs,
            ..peer_open()
        };
        let c = SessionConfig {
            hold_time: ours,
            ..cfg()
        };
        let h = Harness::in_state_with(c, open, State::Established);
        let n = h.s.negotiated().cloned();
        assert_eq!(
            n.map(|n| (n.hold_time, n.keepalive)),
            Some((hold, keepalive)),
            "{ours}/{theirs}"
        );
    }
    // We never propose the illegal 1 or 2 ourselves.
    let s = Session::new(SessionConfig {
        hold_time: 2,
        ..cfg()
    });
    assert_eq!(s.local_open().hold_time, 3);
}

fn negotiate(ours: Vec<Capability>, theirs: Vec<Capability>) -> Negotiated {
    let c = SessionConfig {
        capabilities: ours,
        ..cfg()
    };
    let open = Open {
        capabilities: theirs,
        ..peer_open()
    };
    let h = Harness::in_state_with(c, open, State::OpenConfirm);
    h.s.negotiated().cloned().expect("OPEN accepted")
}

#[test]
fn four_octet_as_needs_both_sides() {
    let four = Capability::FourOctetAs(PEER_AS);
    assert!(negotiate(vec![Capability::FourOctetAs(LOCAL_AS)], vec![four.clone()]).four_octet_as);
    assert!(!negotiate(vec![], vec![four]).four_octet_as);
    let n = negotiate(vec![Capability::FourOctetAs(LOCAL_AS)], vec![]);
    assert!(!n.four_octet_as);
    assert_eq!(n.peer_as, PEER_AS);
    assert!(!n.context().four_octet_as);
}

#[test]
fn other_capabilities_need_both_sides() {
    let all = default_capabilities(PEER_AS);
    let n = negotiate(vec![Capability::RouteRefresh], all.clone());
    assert!(n.route_refresh && !n.enhanced_route_refresh && !n.extended_message);
    let n = negotiate(
        default_capabilities(LOCAL_AS),
        vec![Capability::ExtendedMessage],
    );
    assert!(n.extended_message && !n.route_refresh && !n.enhanced_route_refresh);
    assert!(n.context().extended_message);
}

#[test]
fn families_are_the_intersection() {
    let mp = |afi, safi| Capability::Multiprotocol {
        afi: Afi(afi),
        safi: Safi(safi),
    };
    let n = negotiate(
        vec![mp(1, 1), mp(2, 1)],
        vec![mp(2, 1), mp(1, 2), Capability::RouteRefresh],
    );
    assert_eq!(n.families, [(Afi::IPV6, Safi::UNICAST)]);
    // No Multiprotocol capability: the base protocol, IPv4 unicast.
    let n = negotiate(vec![mp(1, 1), mp(2, 1)], vec![]);
    assert_eq!(n.families, [(Afi::IPV4, Safi::UNICAST)]);
    let n = negotiate(vec![mp(2, 1)], vec![]);
    assert_eq!(n.families, []);
}
