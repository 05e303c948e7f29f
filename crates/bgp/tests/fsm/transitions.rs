//! One test per RFC 4271 §8.2.2 transition (or family of them): each feeds events and checks
//! the exact actions, NOTIFICATIONs compared as bytes on the wire.

use bgp::fsm::{
    default_capabilities, Action, DownReason, Event, Session, SessionConfig, State, Timer,
    OPEN_SENT_HOLD_TIME,
};
use bgp::wire::open::AS_TRANS;
use bgp::wire::{Capability, Message, Notification, Open, RouteRefresh, SessionContext};

use crate::harness::*;

fn send_open_actions(open: Open) -> Vec<Action> {
    vec![
        Action::StopTimer(Timer::ConnectRetry),
        Action::Send(Message::Open(open)),
        Action::StartTimer(Timer::Hold, OPEN_SENT_HOLD_TIME),
    ]
}

// ---- Idle, Connect, Active ----

#[test]
fn idle_manual_start_connects() {
    let mut h = Harness::new(cfg());
    h.expect(
        Event::ManualStart,
        &[
            Action::StartTimer(Timer::ConnectRetry, secs(120)),
            Action::Connect,
        ],
        State::Connect,
    );
}

#[test]
fn idle_manual_start_passive_waits_in_active() {
    let mut h = Harness::new(SessionConfig {
        passive: true,
        ..cfg()
    });
    h.expect(Event::ManualStart, &[], State::Active);
    let open = Session::new(cfg()).local_open();
    h.expect(
        Event::TcpConnectionConfirmed,
        &send_open_actions(open)[1..],
        State::OpenSent,
    );
    // The connection breaks: back to Active, still never connecting.
    let got = h.ev(Event::TcpConnectionFails);
    assert_eq!(got, [Action::StopTimer(Timer::Hold), Action::Disconnect]);
    assert_eq!(h.s.state(), State::Active);
}

#[test]
fn idle_ignores_all_but_start_and_refuses_connections() {
    let mut h = Harness::new(cfg());
    for ev in [
        Event::ManualStop,
        Event::AutomaticStop(Notification::new(6, 1)),
        Event::ConnectRetryTimerExpires,
        Event::HoldTimerExpires,
        Event::KeepaliveTimerExpires,
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
    ] {
        h.expect(ev, &[], State::Idle);
    }
    h.expect(
        Event::TcpConnectionConfirmed,
        &[Action::Disconnect],
        State::Idle,
    );
    h.expect(Event::TcpCrAcked, &[Action::Disconnect], State::Idle);
}

#[test]
fn connect_tcp_cr_acked_sends_open() {
    let mut h = Harness::in_state(State::Connect);
    let open = Open {
        version: 4,
        my_as: 65001,
        hold_time: 180,
        bgp_id: LOCAL_ID,
        capabilities: default_capabilities(LOCAL_AS),
    };
    h.expect(Event::TcpCrAcked, &send_open_actions(open), State::OpenSent);
    assert_eq!(OPEN_SENT_HOLD_TIME, secs(240));
}

#[test]
fn connect_accepts_an_inbound_connection() {
    let mut h = Harness::in_state(State::Connect);
    let open = h.s.local_open();
    h.expect(
        Event::TcpConnectionConfirmed,
        &send_open_actions(open),
        State::OpenSent,
    );
}

#[test]
fn four_octet_local_as_is_sent_as_as_trans() {
    let s = Session::new(SessionConfig::new(4_200_000_000, LOCAL_ID, PEER_AS));
    assert_eq!(s.local_open().my_as, AS_TRANS);
    assert!(s
        .local_open()
        .capabilities
        .contains(&Capability::FourOctetAs(4_200_000_000)));
}

#[test]
fn connect_tcp_failure_goes_to_active() {
    let mut h = Harness::in_state(State::Connect);
    h.expect(
        Event::TcpConnectionFails,
        &[Action::StartTimer(Timer::ConnectRetry, secs(120))],
        State::Active,
    );
}

#[test]
fn connect_retry_expiry_in_connect_retries() {
    let mut h = Harness::in_state(State::Connect);
    h.expect(
        Event::ConnectRetryTimerExpires,
        &[
            Action::Disconnect,
            Action::StartTimer(Timer::ConnectRetry, secs(120)),
            Action::Connect,
        ],
        State::Connect,
    );
}

#[test]
fn connect_retry_expiry_in_active_connects() {
    let mut h = Harness::in_state(State::Active);
    h.expect(
        Event::ConnectRetryTimerExpires,
        &[
            Action::StartTimer(Timer::ConnectRetry, secs(120)),
            Action::Connect,
        ],
        State::Connect,
    );
}

#[test]
fn active_tcp_connection_confirmed_sends_open() {
    let mut h = Harness::in_state(State::Active);
    let open = h.s.local_open();
    h.expect(
        Event::TcpConnectionConfirmed,
        &send_open_actions(open),
        State::OpenSent,
    );
}

#[test]
fn connect_and_active_give_up_silently_on_impossible_events() {
    for state in [State::Connect, State::Active] {
        for ev in [
            Event::BgpOpen(peer_open()),
            Event::KeepAliveMsg,
            Event::UpdateMsg,
            Event::OpenCollisionDump,
            Event::BgpHeaderErr(Notification::new(1, 2)),
        ] {
            let mut h = Harness::in_state(state);
            let got = h.ev(ev.clone());
            assert!(
                sent_notifications(&got).is_empty(),
                "{state} {ev:?}: {got:?}"
            );
            assert!(matches!(got.last(), Some(Action::Down { .. })));
            assert_eq!(h.s.state(), State::Idle);
        }
    }
}

#[test]
fn active_tcp_failure_goes_to_idle() {
    let mut h = Harness::in_state(State::Active);
    h.expect(
        Event::TcpConnectionFails,
        &[
            Action::StopTimer(Timer::ConnectRetry),
            Action::Down {
                reason: DownReason::ConnectionFailed,
            },
        ],
        State::Idle,
    );
}

// ---- OpenSent, OpenConfirm, Established ----

#[test]
fn open_sent_valid_open_goes_to_open_confirm() {
    let mut h = Harness::in_state(State::OpenSent);
    h.expect(
        Event::BgpOpen(peer_open()),
        &[
            Action::Send(Message::Keepalive),
            Action::StartTimer(Timer::Keepalive, secs(30)),
            Action::StartTimer(Timer::Hold, secs(90)),
        ],
        State::OpenConfirm,
    );
    assert_eq!(h.s.negotiated().map(|n| n.hold_time), Some(90));
}

#[test]
fn open_sent_tcp_failure_goes_back_to_active() {
    let mut h = Harness::in_state(State::OpenSent);
    h.expect(
        Event::TcpConnectionFails,
        &[
            Action::StopTimer(Timer::Hold),
            Action::Disconnect,
            Action::StartTimer(Timer::ConnectRetry, secs(120)),
        ],
        State::Active,
    );
}

#[test]
fn open_confirm_keepalive_establishes() {
    let mut h = Harness::in_state(State::OpenConfirm);
    h.expect(
        Event::KeepAliveMsg,
        &[
            Action::StartTimer(Timer::Hold, secs(90)),
            Action::Established(expected_negotiated()),
        ],
        State::Established,
    );
    let n = h.s.negotiated().cloned();
    assert_eq!(n, Some(expected_negotiated()));
    assert_eq!(
        expected_negotiated().context(),
        SessionContext {
            four_octet_as: true,
            extended_message: true,
            ebgp: true
        }
    );
}

#[test]
fn open_confirm_sends_keepalives() {
    let mut h = Harness::in_state(State::OpenConfirm);
    h.expect(
        Event::KeepaliveTimerExpires,
        &[
            Action::Send(Message::Keepalive),
            Action::StartTimer(Timer::Keepalive, secs(30)),
        ],
        State::OpenConfirm,
    );
}

#[test]
fn established_keepalive_and_hold() {
    let mut h = Harness::in_state(State::Established);
    h.expect(
        Event::KeepaliveTimerExpires,
        &[
            Action::Send(Message::Keepalive),
            Action::StartTimer(Timer::Keepalive, secs(30)),
        ],
        State::Established,
    );
    for ev in [
        Event::KeepAliveMsg,
        Event::UpdateMsg,
        Event::RouteRefreshMsg(RouteRefresh::ipv4_unicast()),
    ] {
        h.expect(
            ev,
            &[Action::StartTimer(Timer::Hold, secs(90))],
            State::Established,
        );
    }
    // An UPDATE the driver sent stands in for a KEEPALIVE.
    assert_eq!(
        h.s.on_message_sent(),
        [Action::StartTimer(Timer::Keepalive, secs(30))]
    );
    // Before Established the driver sends no UPDATEs; a stray call changes nothing.
    assert_eq!(
        Harness::in_state(State::OpenConfirm).s.on_message_sent(),
        []
    );
}

#[test]
fn hold_time_zero_means_no_timers() {
    let open = Open {
        hold_time: 0,
        ..peer_open()
    };
    let mut h = Harness::in_state_with(cfg(), open.clone(), State::OpenSent);
    h.expect(
        Event::BgpOpen(open),
        &[
            Action::Send(Message::Keepalive),
            Action::StopTimer(Timer::Hold),
        ],
        State::OpenConfirm,
    );
    let got = h.ev(Event::KeepAliveMsg);
    assert!(
        matches!(got[..], [Action::Established(ref n)] if n.hold_time == 0 && n.keepalive == 0)
    );
    h.expect(Event::KeepAliveMsg, &[], State::Established);
    h.expect(Event::UpdateMsg, &[], State::Established);
    // No timer runs, so an expiry can only be stale.
    h.expect(Event::HoldTimerExpires, &[], State::Established);
    h.expect(Event::KeepaliveTimerExpires, &[], State::Established);
    assert_eq!(h.s.on_message_sent(), []);
}

#[test]
fn hold_timer_expiry_sends_notification_4() {
    for state in [State::OpenSent, State::OpenConfirm, State::Established] {
        let mut h = Harness::in_state(state);
        h.expect_close(
            Event::HoldTimerExpires,
            &notification_bytes(4, 0, &[]),
            DownReason::HoldTimerExpired,
        );
    }
    // Exactly, for one of them: the hold timer already fired, so only keepalive is stopped.
    let mut h = Harness::in_state(State::Established);
    let got = h.ev(Event::HoldTimerExpires);
    assert_eq!(
        got,
        [
            Action::Send(Message::Notification(Notification::new(4, 0))),
            Action::StopTimer(Timer::Keepalive),
            Action::Disconnect,
            Action::Down {
                reason: DownReason::HoldTimerExpired
            },
        ]
    );
}

#[test]
fn stale_timer_expiry_is_dropped() {
    let mut h = Harness::in_state(State::OpenSent);
    h.expect(Event::KeepaliveTimerExpires, &[], State::OpenSent);
    h.expect(Event::ConnectRetryTimerExpires, &[], State::OpenSent);
    let mut h = Harness::in_state(State::Connect);
    h.expect(Event::HoldTimerExpires, &[], State::Connect);
}
