//! The ways out of a session: unexpected messages (RFC 6608), NOTIFICATIONs received and
//! sent, operator and automatic stops, collisions (§6.8), and what survives them.

use std::net::Ipv4Addr;

use bgp::fsm::{
    resolve_collision, resolve_collision_with_as, Action, CollisionWinner, DownReason, Event,
    SessionConfig, State, Timer,
};
use bgp::wire::{Message, Notification, RouteRefresh};

use crate::harness::*;

const ALL_STATES: [State; 6] = [
    State::Idle,
    State::Connect,
    State::Active,
    State::OpenSent,
    State::OpenConfirm,
    State::Established,
];

#[test]
fn unexpected_messages_are_fsm_errors() {
    let rr = || Event::RouteRefreshMsg(RouteRefresh::ipv4_unicast());
    let cases = [
        (State::OpenSent, Event::KeepAliveMsg, 1),
        (State::OpenSent, Event::UpdateMsg, 1),
        (
            State::OpenSent,
            Event::UpdateMsgErr(Notification::new(3, 1)),
            1,
        ),
        (State::OpenSent, rr(), 1),
        (State::OpenConfirm, Event::BgpOpen(peer_open()), 2),
        (State::OpenConfirm, Event::UpdateMsg, 2),
        (State::OpenConfirm, rr(), 2),
        (State::Established, Event::BgpOpen(peer_open()), 3),
        (
            State::Established,
            Event::BgpOpenMsgErr(Notification::new(2, 0)),
            3,
        ),
    ];
    for (state, ev, subcode) in cases {
        let mut h = Harness::in_state(state);
        let reason = DownReason::LocalError(Notification::new(5, subcode));
        h.expect_close(ev, &notification_bytes(5, subcode, &[]), reason);
    }
}

#[test]
fn message_errors_send_their_notification() {
    for state in [State::OpenSent, State::OpenConfirm, State::Established] {
        let mut h = Harness::in_state(state);
        let n = Notification::with_data(1, 2, [0, 20]);
        h.expect_close(
            Event::BgpHeaderErr(n.clone()),
            &notification_bytes(1, 2, &[0, 20]),
            DownReason::LocalError(n),
        );
    }
    for state in [State::OpenSent, State::OpenConfirm] {
        let mut h = Harness::in_state(state);
        let n = Notification::new(2, 4);
        h.expect_close(
            Event::BgpOpenMsgErr(n.clone()),
            &notification_bytes(2, 4, &[]),
            DownReason::LocalError(n),
        );
    }
    let mut h = Harness::in_state(State::Established);
    let n = Notification::with_data(3, 1, [1, 2]);
    h.expect_close(
        Event::UpdateMsgErr(n.clone()),
        &notification_bytes(3, 1, &[1, 2]),
        DownReason::LocalError(n),
    );
}

#[test]
fn notification_received_closes_without_reply() {
    let n = Notification::shutdown(2, "bye");
    let down = Action::Down {
        reason: DownReason::PeerNotification(n.clone()),
    };
    let both = [
        Action::StopTimer(Timer::Hold),
        Action::StopTimer(Timer::Keepalive),
    ];
    let cases: [(State, Vec<Action>); 6] = [
        (State::Idle, vec![]),
        (
            State::Connect,
            vec![
                Action::StopTimer(Timer::ConnectRetry),
                Action::Disconnect,
                down.clone(),
            ],
        ),
        (
            State::Active,
            vec![Action::StopTimer(Timer::ConnectRetry), down.clone()],
        ),
        (
            State::OpenSent,
            vec![
                Action::StopTimer(Timer::Hold),
                Action::Disconnect,
                down.clone(),
            ],
        ),
        (
            State::OpenConfirm,
            [&both[..], &[Action::Disconnect, down.clone()]].concat(),
        ),
        (
            State::Established,
            [&both[..], &[Action::Disconnect, down.clone()]].concat(),
        ),
    ];
    for (state, actions) in cases {
        let mut h = Harness::in_state(state);
        h.expect(Event::NotifMsg(n.clone()), &actions, State::Idle);
    }
}

#[test]
fn manual_stop_in_each_state() {
    let down = Action::Down {
        reason: DownReason::ManualStop,
    };
    let cease = Action::Send(Message::Notification(Notification::new(6, 2)));
    let both = [
        Action::StopTimer(Timer::Hold),
        Action::StopTimer(Timer::Keepalive),
    ];
    let cases: [(State, Vec<Action>); 6] = [
        (State::Idle, vec![]),
        (
            State::Connect,
            vec![
                Action::StopTimer(Timer::ConnectRetry),
                Action::Disconnect,
                down.clone(),
            ],
        ),
        (
            State::Active,
            vec![Action::StopTimer(Timer::ConnectRetry), down.clone()],
        ),
        (
            State::OpenSent,
            vec![
                cease.clone(),
                Action::StopTimer(Timer::Hold),
                Action::Disconnect,
                down.clone(),
            ],
        ),
        (
            State::OpenConfirm,
            [
                &[cease.clone()][..],
                &both,
                &[Action::Disconnect, down.clone()],
            ]
            .concat(),
        ),
        (
            State::Established,
            [
                &[cease.clone()][..],
                &both,
                &[Action::Disconnect, down.clone()],
            ]
            .concat(),
        ),
    ];
    for (state, actions) in cases {
        let mut h = Harness::in_state(state);
        h.expect(Event::ManualStop, &actions, State::Idle);
        if matches!(
            state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            assert_eq!(
                sent_notifications(&actions),
                [notification_bytes(6, 2, &[])]
            );
        }
        assert_eq!(h.s.connect_retry_counter(), 0);
    }
}

#[test]
fn automatic_stop_sends_its_notification() {
    let n = Notification::new(6, 1);
    let mut h = Harness::in_state(State::Established);
    h.expect_close(
        Event::AutomaticStop(n.clone()),
        &notification_bytes(6, 1, &[]),
        DownReason::AutomaticStop(n.clone()),
    );
    // Before an OPEN was sent, there is no one to tell.
    let mut h = Harness::in_state(State::Connect);
    let got = h.ev(Event::AutomaticStop(n.clone()));
    assert!(sent_notifications(&got).is_empty());
    assert_eq!(
        got.last(),
        Some(&Action::Down {
            reason: DownReason::AutomaticStop(n)
        })
    );
}

#[test]
fn collision_resolution() {
    let (low, high) = (Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2));
    assert_eq!(
        resolve_collision(low, high),
        CollisionWinner::RemotelyInitiated
    );
    assert_eq!(
        resolve_collision(high, low),
        CollisionWinner::LocallyInitiated
    );
    // Host byte order: 1.0.0.2 < 2.0.0.1, though read little-endian it would be the reverse.
    let (a, b) = (Ipv4Addr::new(1, 0, 0, 2), Ipv4Addr::new(2, 0, 0, 1));
    assert_eq!(resolve_collision(a, b), CollisionWinner::RemotelyInitiated);
    assert_eq!(resolve_collision(b, a), CollisionWinner::LocallyInitiated);
    // RFC 6286 §2.3: equal identifiers, the larger AS keeps its connection.
    assert_eq!(
        resolve_collision_with_as(a, 65001, a, 65002),
        CollisionWinner::RemotelyInitiated
    );
    assert_eq!(
        resolve_collision_with_as(a, 65002, a, 65001),
        CollisionWinner::LocallyInitiated
    );
    assert_eq!(
        resolve_collision_with_as(a, 1, b, 2),
        resolve_collision(a, b)
    );
}

#[test]
fn open_collision_dump_sends_cease_7() {
    for state in [State::OpenSent, State::OpenConfirm, State::Established] {
        let mut h = Harness::in_state(state);
        h.expect_close(
            Event::OpenCollisionDump,
            &notification_bytes(6, 7, &[]),
            DownReason::CollisionLost,
        );
    }
}

#[test]
fn second_connection_is_not_this_sessions() {
    for state in [State::OpenSent, State::OpenConfirm, State::Established] {
        let mut h = Harness::in_state(state);
        h.expect(Event::TcpConnectionConfirmed, &[], state);
        h.expect(Event::TcpCrAcked, &[], state);
        h.expect(Event::ManualStart, &[], state);
        h.expect(Event::AutomaticStart, &[], state);
    }
}

#[test]
fn connect_retry_counter_counts_failures() {
    let mut h = Harness::in_state(State::Established);
    h.ev(Event::HoldTimerExpires);
    assert_eq!(h.s.connect_retry_counter(), 1);
    // The driver's restart keeps the count; the operator's resets it.
    h.expect(
        Event::AutomaticStart,
        &[
            Action::StartTimer(Timer::ConnectRetry, secs(120)),
            Action::Connect,
        ],
        State::Connect,
    );
    h.ev(Event::TcpCrAcked);
    h.ev(Event::NotifMsg(Notification::new(6, 4)));
    assert_eq!(h.s.connect_retry_counter(), 2);
    // A peer that only refuses our version is negotiating, not failing (event 24).
    h.ev(Event::AutomaticStart);
    h.ev(Event::TcpCrAcked);
    h.ev(Event::NotifMsg(Notification::with_data(2, 1, [0, 4])));
    assert_eq!(h.s.connect_retry_counter(), 2);
    h.ev(Event::ManualStart);
    assert_eq!(h.s.connect_retry_counter(), 0);
    let mut h = Harness::new(SessionConfig {
        passive: true,
        ..cfg()
    });
    h.expect(Event::AutomaticStart, &[], State::Active);
}

#[test]
fn restart_after_down() {
    let mut h = Harness::in_state(State::Established);
    h.ev(Event::TcpConnectionFails);
    assert_eq!(h.s.state(), State::Idle);
    assert_eq!(h.s.negotiated(), None);
    h.ev(Event::ManualStart);
    h.ev(Event::TcpCrAcked);
    h.ev(Event::BgpOpen(peer_open()));
    let got = h.ev(Event::KeepAliveMsg);
    assert_eq!(
        got.last(),
        Some(&Action::Established(expected_negotiated()))
    );
}

#[test]
fn down_reason_reads_well() {
    let r = DownReason::PeerNotification(Notification::shutdown(2, "maintenance"));
    assert_eq!(
        r.to_string(),
        "peer sent NOTIFICATION: Cease / Administrative Shutdown: \"maintenance\""
    );
    assert_eq!(
        DownReason::UnexpectedEvent("KeepAliveMsg").to_string(),
        "unexpected event KeepAliveMsg"
    );
}

#[test]
fn every_state_survives_every_event() {
    let events = || {
        [
            Event::ManualStart,
            Event::ManualStop,
            Event::AutomaticStart,
            Event::AutomaticStop(Notification::new(6, 1)),
            Event::ConnectRetryTimerExpires,
            Event::HoldTimerExpires,
            Event::KeepaliveTimerExpires,
            Event::TcpConnectionConfirmed,
            Event::TcpCrAcked,
            Event::TcpConnectionFails,
            Event::BgpOpen(peer_open()),
            Event::BgpHeaderErr(Notification::new(1, 1)),
            Event::BgpOpenMsgErr(Notification::new(2, 0)),
            Event::OpenCollisionDump,
            Event::NotifMsg(Notification::new(6, 2)),
            Event::KeepAliveMsg,
            Event::UpdateMsg,
            Event::UpdateMsgErr(Notification::new(3, 1)),
            Event::RouteRefreshMsg(RouteRefresh::ipv4_unicast()),
        ]
    };
    for state in ALL_STATES {
        for ev in events() {
            let mut h = Harness::in_state(state);
            let name = ev.name();
            let got = h.ev(ev);
            let downs = got
                .iter()
                .filter(|a| matches!(a, Action::Down { .. }))
                .count();
            let went_idle = state != State::Idle && h.s.state() == State::Idle;
            assert_eq!(downs, usize::from(went_idle), "{state} {name}: {got:?}");
        }
    }
}
