//! Builds sessions in any state over the usual path and checks what they do.

use std::net::Ipv4Addr;
use std::time::Duration;

use bgp::fsm::{
    default_capabilities, Action, DownReason, Event, Negotiated, Session, SessionConfig, State,
};
use bgp::wire::{Afi, Message, Open, Safi, SessionContext};

pub const LOCAL_AS: u32 = 65001;
pub const PEER_AS: u32 = 65002;
pub const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

pub fn cfg() -> SessionConfig {
    SessionConfig::new(LOCAL_AS, LOCAL_ID, PEER_AS)
}

/// The OPEN a modern peer sends: hold 90 and the same capabilities as ours.
pub fn peer_open() -> Open {
    Open {
        version: 4,
        my_as: PEER_AS as u16,
        hold_time: 90,
        bgp_id: PEER_ID,
        capabilities: default_capabilities(PEER_AS),
    }
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A NOTIFICATION as it must appear on the wire, built by hand rather than by the codec.
pub fn notification_bytes(code: u8, subcode: u8, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0xff; 16];
    b.extend_from_slice(&(21 + data.len() as u16).to_be_bytes());
    b.extend_from_slice(&[3, code, subcode]);
    b.extend_from_slice(data);
    b
}

/// The bytes of every NOTIFICATION the actions send.
pub fn sent_notifications(actions: &[Action]) -> Vec<Vec<u8>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(m @ Message::Notification(_)) => {
                Some(m.to_bytes(&SessionContext::default()))
            }
            _ => None,
        })
        .collect()
}

pub struct Harness {
    pub s: Session,
}

impl Harness {
    pub fn new(cfg: SessionConfig) -> Self {
        Self {
            s: Session::new(cfg),
        }
    }

    /// A session with the default configuration driven to `state` over the usual path.
    pub fn in_state(state: State) -> Self {
        Self::in_state_with(cfg(), peer_open(), state)
    }

    pub fn in_state_with(cfg: SessionConfig, open: Open, state: State) -> Self {
        let mut h = Self::new(cfg);
        let path: &[Event] = match state {
            State::Idle => &[],
            State::Connect => &[Event::ManualStart],
            State::Active => &[Event::ManualStart, Event::TcpConnectionFails],
            State::OpenSent => &[Event::ManualStart, Event::TcpCrAcked],
            State::OpenConfirm => &[
                Event::ManualStart,
                Event::TcpCrAcked,
                Event::BgpOpen(open.clone()),
            ],
            State::Established => &[
                Event::ManualStart,
                Event::TcpCrAcked,
                Event::BgpOpen(open.clone()),
                Event::KeepAliveMsg,
            ],
        };
        for ev in path {
            h.ev(ev.clone());
        }
        assert_eq!(h.s.state(), state, "could not reach {state}");
        h
    }

    pub fn ev(&mut self, ev: Event) -> Vec<Action> {
        self.s.handle_event(ev)
    }

    /// Feeds `ev` and checks both the actions and the state that follows.
    #[track_caller]
    pub fn expect(&mut self, ev: Event, actions: &[Action], state: State) {
        let got = self.ev(ev);
        assert_eq!(got, actions);
        assert_eq!(self.s.state(), state);
    }

    /// Feeds `ev` and checks that the session closed to Idle with exactly this NOTIFICATION
    /// first and `Down` last.
    #[track_caller]
    pub fn expect_close(&mut self, ev: Event, wire: &[u8], reason: DownReason) {
        let got = self.ev(ev);
        assert_eq!(sent_notifications(&got), vec![wire.to_vec()], "{got:?}");
        assert!(matches!(
            got.first(),
            Some(Action::Send(Message::Notification(_)))
        ));
        assert!(got.contains(&Action::Disconnect), "{got:?}");
        assert_eq!(got.last(), Some(&Action::Down { reason }));
        assert_eq!(self.s.state(), State::Idle);
        assert_eq!(self.s.negotiated(), None);
    }
}

/// What [`peer_open`] negotiates with [`cfg`].
pub fn expected_negotiated() -> Negotiated {
    Negotiated {
        hold_time: 90,
        keepalive: 30,
        peer_as: PEER_AS,
        peer_id: PEER_ID,
        four_octet_as: true,
        route_refresh: true,
        enhanced_route_refresh: true,
        extended_message: true,
        families: vec![(Afi::IPV4, Safi::UNICAST)],
        ebgp: true,
        peer_open: peer_open(),
    }
}
