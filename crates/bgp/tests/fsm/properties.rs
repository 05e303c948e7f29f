//! Random event sequences, checked against an independent model of what the RFC allows.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use bgp::fsm::{Action, Event, Session, SessionConfig, State, Timer};
use bgp::wire::open::AS_TRANS;
use bgp::wire::{Afi, Capability, Notification, Open, RouteRefresh, Safi};
use proptest::prelude::*;

use crate::harness::{LOCAL_AS, LOCAL_ID, PEER_AS, PEER_ID};

#[derive(Clone, Debug)]
enum Op {
    Event(Event),
    /// The driver sent an UPDATE.
    Sent,
}

fn notification() -> impl Strategy<Value = Notification> {
    (
        0u8..8,
        0u8..12,
        proptest::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(|(c, s, d)| Notification::with_data(c, s, d))
}

fn capabilities() -> impl Strategy<Value = Vec<Capability>> {
    let pool = vec![
        Capability::Multiprotocol {
            afi: Afi::IPV4,
            safi: Safi::UNICAST,
        },
        Capability::Multiprotocol {
            afi: Afi::IPV6,
            safi: Safi::UNICAST,
        },
        Capability::RouteRefresh,
        Capability::EnhancedRouteRefresh,
        Capability::FourOctetAs(PEER_AS),
        Capability::FourOctetAs(4_200_000_000),
        Capability::ExtendedMessage,
        Capability::Unknown {
            code: 69,
            value: vec![0, 1, 1, 3],
        },
    ];
    proptest::sample::subsequence(pool.clone(), 0..=pool.len())
}

/// OPENs near the edges of every §6.2 check, valid often enough to reach Established.
fn open() -> impl Strategy<Value = Open> {
    (
        prop_oneof![8 => Just(4u8), 1 => any::<u8>()],
        prop_oneof![6 => Just(PEER_AS as u16), 1 => Just(AS_TRANS), 1 => Just(LOCAL_AS as u16), 1 => any::<u16>()],
        prop_oneof![Just(0u16), 1u16..4, Just(90), Just(180), any::<u16>()],
        prop_oneof![6 => Just(PEER_ID), 1 => Just(LOCAL_ID), 1 => Just(Ipv4Addr::UNSPECIFIED)],
        capabilities(),
    )
        .prop_map(|(version, my_as, hold_time, bgp_id, capabilities)| Open {
            version,
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let ev = prop_oneof![
        2 => Just(Event::ManualStart),
        1 => Just(Event::AutomaticStart),
        1 => Just(Event::ManualStop),
        1 => notification().prop_map(Event::AutomaticStop),
        1 => Just(Event::ConnectRetryTimerExpires),
        1 => Just(Event::HoldTimerExpires),
        2 => Just(Event::KeepaliveTimerExpires),
        2 => Just(Event::TcpConnectionConfirmed),
        3 => Just(Event::TcpCrAcked),
        1 => Just(Event::TcpConnectionFails),
        4 => open().prop_map(Event::BgpOpen),
        1 => notification().prop_map(Event::BgpHeaderErr),
        1 => notification().prop_map(Event::BgpOpenMsgErr),
        1 => Just(Event::OpenCollisionDump),
        1 => notification().prop_map(Event::NotifMsg),
        4 => Just(Event::KeepAliveMsg),
        2 => Just(Event::UpdateMsg),
        1 => notification().prop_map(Event::UpdateMsgErr),
        1 => Just(Event::RouteRefreshMsg(RouteRefresh::ipv4_unicast())),
    ];
    prop_oneof![10 => ev.prop_map(Op::Event), 1 => Just(Op::Sent)]
}

/// Random ops, with whole handshakes mixed in so that Established is reached often and then
/// disturbed.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let handshake = (any::<bool>(), open()).prop_map(|(inbound, o)| {
        let tcp = if inbound {
            Event::TcpConnectionConfirmed
        } else {
            Event::TcpCrAcked
        };
        [
            Event::AutomaticStart,
            tcp,
            Event::BgpOpen(o),
            Event::KeepAliveMsg,
        ]
        .map(Op::Event)
        .to_vec()
    });
    let segment = prop_oneof![4 => op().prop_map(|o| vec![o]), 1 => handshake];
    proptest::collection::vec(segment, 0..30).prop_map(|v| v.concat())
}

fn config() -> impl Strategy<Value = SessionConfig> {
    (
        any::<bool>(),
        prop_oneof![Just(0u16), Just(1), Just(3), Just(90), Just(180)],
        any::<bool>(),
    )
        .prop_map(|(passive, hold_time, ibgp)| {
            let local_as = if ibgp { PEER_AS } else { LOCAL_AS };
            SessionConfig {
                passive,
                hold_time,
                ..SessionConfig::new(local_as, LOCAL_ID, PEER_AS)
            }
        })
}

/// §6.2 written out again, independently of the session's own checks.
fn acceptable(cfg: &SessionConfig, o: &Open) -> bool {
    let peer_as = o.four_octet_as().unwrap_or(u32::from(o.my_as));
    let ibgp = cfg.local_as == cfg.peer_as;
    o.version == 4
        && peer_as == cfg.peer_as
        && !o.bgp_id.is_unspecified()
        && !(ibgp && o.bgp_id == cfg.local_id)
        && o.hold_time != 1
        && o.hold_time != 2
}

fn count(actions: &[Action], f: impl Fn(&Action) -> bool) -> usize {
    actions.iter().filter(|a| f(a)).count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_events_keep_the_invariants(cfg in config(), ops in ops()) {
        let mut s = Session::new(cfg.clone());
        // The OPEN that let the session past OpenSent, per the model.
        let mut accepted: Option<Open> = None;
        // Timers started and not stopped, per the actions.
        let mut running: HashSet<Timer> = HashSet::new();
        for op in ops {
            let prev = s.state();
            let (candidate, stale_timer, actions) = match op {
                Op::Sent => (None, false, s.on_message_sent()),
                Op::Event(ev) => {
                    let candidate = match &ev {
                        Event::BgpOpen(o) if prev == State::OpenSent && acceptable(&cfg, o) => Some(o.clone()),
                        _ => None,
                    };
                    let stale = match ev {
                        Event::ConnectRetryTimerExpires => !running.remove(&Timer::ConnectRetry),
                        Event::HoldTimerExpires => !running.remove(&Timer::Hold),
                        Event::KeepaliveTimerExpires => !running.remove(&Timer::Keepalive),
                        _ => false,
                    };
                    (candidate, stale, s.handle_event(ev))
                }
            };
            let now = s.state();
            if stale_timer {
                prop_assert!(actions.is_empty(), "stale expiry acted: {actions:?}");
            }
            for a in &actions {
                match a {
                    Action::StartTimer(t, _) => { running.insert(*t); }
                    Action::StopTimer(t) => prop_assert!(running.remove(t), "stopped {t:?} that was not running"),
                    Action::Connect => prop_assert!(!cfg.passive, "a passive session connected"),
                    _ => {}
                }
            }
            if prev == State::OpenSent && now == State::OpenConfirm {
                prop_assert!(candidate.is_some(), "OpenConfirm without an acceptable OPEN");
                accepted = candidate;
            }
            if !matches!(now, State::OpenConfirm | State::Established) {
                accepted = None;
            }
            if now == State::Established {
                let a = accepted.as_ref();
                prop_assert!(a.is_some(), "Established without a valid OPEN");
                prop_assert_eq!(s.negotiated().map(|n| &n.peer_open), a);
            }
            prop_assert_eq!(s.negotiated().is_some(), matches!(now, State::OpenConfirm | State::Established));
            let established = usize::from(prev == State::OpenConfirm && now == State::Established);
            prop_assert_eq!(count(&actions, |a| matches!(a, Action::Established(_))), established);
            let down = usize::from(prev != State::Idle && now == State::Idle);
            prop_assert_eq!(count(&actions, |a| matches!(a, Action::Down { .. })), down);
            if now == State::Idle {
                prop_assert!(running.is_empty(), "timers left running in Idle: {running:?}");
            }
            if now == State::Established {
                let hold = s.negotiated().map_or(0, |n| n.hold_time);
                prop_assert_eq!(running.contains(&Timer::Hold), hold > 0);
                prop_assert_eq!(running.contains(&Timer::Keepalive), hold > 0);
            }
        }
    }
}
