//! Between the cores' values (`bgp`, `fabric`, `lb`) and the API's ([`api_types`]): the one
//! place that maps one to the other, so the controller's answers and what the data planes
//! build from them agree.
//!
//! Each mapping is an exhaustive `match`: a state added to a core does not compile until the
//! contract says how it is sent.

use api_types::{
    AdminState, Distribution, Health, LbMode, LbSettings, NoHealthyBackends, Role, SessionState,
};

pub fn session_state(s: bgp::fsm::State) -> SessionState {
    use bgp::fsm::State;
    match s {
        State::Idle => SessionState::Idle,
        State::Connect => SessionState::Connect,
        State::Active => SessionState::Active,
        State::OpenSent => SessionState::OpenSent,
        State::OpenConfirm => SessionState::OpenConfirm,
        State::Established => SessionState::Established,
    }
}

pub fn health(h: lb::Health) -> Health {
    match h {
        lb::Health::Unknown => Health::Unknown,
        lb::Health::Up => Health::Up,
        lb::Health::Down => Health::Down,
    }
}

pub fn lb_health(h: Health) -> lb::Health {
    match h {
        Health::Unknown => lb::Health::Unknown,
        Health::Up => lb::Health::Up,
        Health::Down => lb::Health::Down,
    }
}

pub fn admin_state(a: lb::AdminState) -> AdminState {
    match a {
        lb::AdminState::None => AdminState::None,
        lb::AdminState::Up => AdminState::Up,
        lb::AdminState::Down => AdminState::Down,
        lb::AdminState::Drain => AdminState::Drain,
    }
}

pub fn lb_admin_state(a: AdminState) -> lb::AdminState {
    match a {
        AdminState::None => lb::AdminState::None,
        AdminState::Up => lb::AdminState::Up,
        AdminState::Down => lb::AdminState::Down,
        AdminState::Drain => lb::AdminState::Drain,
    }
}

pub fn role(r: lb::Role) -> Role {
    match r {
        lb::Role::Active => Role::Active,
        lb::Role::Standby => Role::Standby,
        lb::Role::Serving => Role::Serving,
        lb::Role::Idle => Role::Idle,
    }
}

pub fn mode(m: lb::Mode) -> LbMode {
    match m {
        lb::Mode::ActivePassive => LbMode::ActivePassive,
        lb::Mode::ActiveActive => LbMode::ActiveActive,
    }
}

pub fn lb_mode(m: LbMode) -> lb::Mode {
    match m {
        LbMode::ActivePassive => lb::Mode::ActivePassive,
        LbMode::ActiveActive => lb::Mode::ActiveActive,
    }
}

/// The selection settings of a balancer's configuration.
pub fn settings(cfg: &lb::LbConfig) -> LbSettings {
    LbSettings {
        distribution: match cfg.distribution {
            lb::Distribution::FiveTuple => Distribution::FiveTuple,
            lb::Distribution::TwoTuple => Distribution::TwoTuple,
            lb::Distribution::ThreeTuple => Distribution::ThreeTuple,
        },
        symmetric: cfg.symmetric,
        preempt: cfg.preempt,
        no_healthy_backends: match cfg.no_healthy {
            lb::NoHealthy::Drop => NoHealthyBackends::Drop,
            lb::NoHealthy::All => NoHealthyBackends::All,
        },
        maglev_table_size: cfg.table_size,
        max_flows: cfg.max_flows as u64,
        idle_tcp_s: cfg.idle_tcp_s,
        idle_udp_s: cfg.idle_udp_s,
    }
}

/// Applies settings from a controller to `cfg`, once [`LbSettings::validate`] accepted them.
pub fn apply_settings(
    s: &LbSettings,
    cfg: &mut lb::LbConfig,
) -> Result<(), api_types::SettingsError> {
    s.validate()?;
    cfg.distribution = match s.distribution {
        Distribution::FiveTuple => lb::Distribution::FiveTuple,
        Distribution::TwoTuple => lb::Distribution::TwoTuple,
        Distribution::ThreeTuple => lb::Distribution::ThreeTuple,
    };
    cfg.symmetric = s.symmetric;
    cfg.preempt = s.preempt;
    cfg.no_healthy = match s.no_healthy_backends {
        NoHealthyBackends::Drop => lb::NoHealthy::Drop,
        NoHealthyBackends::All => lb::NoHealthy::All,
    };
    cfg.table_size = s.maglev_table_size;
    // At most MAX_FLOWS after validate, which fits a usize.
    cfg.max_flows = usize::try_from(s.max_flows).unwrap_or(usize::MAX);
    cfg.idle_tcp_s = s.idle_tcp_s;
    cfg.idle_udp_s = s.idle_udp_s;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's strings are the ones the cores print (what the API sent before the
    /// contract, and what logs say).
    #[test]
    fn names_match_the_cores_display() {
        use bgp::fsm::State;
        for s in [
            State::Idle,
            State::Connect,
            State::Active,
            State::OpenSent,
            State::OpenConfirm,
            State::Established,
        ] {
            assert_eq!(session_state(s).as_str(), s.to_string());
        }
        for h in [lb::Health::Unknown, lb::Health::Up, lb::Health::Down] {
            assert_eq!(health(h).as_str(), h.as_str());
            assert_eq!(lb_health(health(h)), h);
        }
        for a in [
            lb::AdminState::None,
            lb::AdminState::Up,
            lb::AdminState::Down,
            lb::AdminState::Drain,
        ] {
            assert_eq!(admin_state(a).as_str(), a.as_str());
            assert_eq!(lb_admin_state(admin_state(a)), a);
        }
        for r in [
            lb::Role::Active,
            lb::Role::Standby,
            lb::Role::Serving,
            lb::Role::Idle,
        ] {
            assert_eq!(role(r).as_str(), r.as_str());
        }
        for m in [lb::Mode::ActivePassive, lb::Mode::ActiveActive] {
            assert_eq!(mode(m).as_str(), m.as_str());
            assert_eq!(lb_mode(mode(m)), m);
        }
        let p: fabric::Prefix = "10.1.0.0/16".parse().unwrap();
        for (src, st, ty) in [
            (
                fabric::RouteSource::Default,
                fabric::RouteState::Active,
                fabric::NextHopType::VnetLocal,
            ),
            (
                fabric::RouteSource::Default,
                fabric::RouteState::Inactive,
                fabric::NextHopType::VNetPeering,
            ),
            (
                fabric::RouteSource::VirtualNetworkGateway,
                fabric::RouteState::Invalid,
                fabric::NextHopType::Internet,
            ),
            (
                fabric::RouteSource::VirtualNetworkGateway,
                fabric::RouteState::Active,
                fabric::NextHopType::VirtualNetworkGateway,
            ),
        ] {
            let r = fabric::Route {
                source: src,
                state: st,
                prefix: p,
                next_hop_type: ty,
                next_hop_ips: vec![],
                load_balancer: None,
                reason: None,
            };
            let e = controller::views::effective_route(&r);
            assert_eq!(e.source.as_str(), src.as_str());
            assert_eq!(e.state.as_str(), st.as_str());
            assert_eq!(e.next_hop_type.as_str(), ty.as_str());
        }
    }

    #[test]
    fn settings_go_there_and_back() {
        let mut cfg = lb::LbConfig::new(
            "x",
            std::net::Ipv4Addr::new(10, 0, 0, 1),
            lb::Mode::ActiveActive,
        );
        cfg.distribution = lb::Distribution::ThreeTuple;
        cfg.no_healthy = lb::NoHealthy::All;
        cfg.table_size = 251;
        cfg.max_flows = 5000;
        let s = settings(&cfg);
        let mut back = lb::LbConfig::new(
            "x",
            std::net::Ipv4Addr::new(10, 0, 0, 1),
            lb::Mode::ActiveActive,
        );
        apply_settings(&s, &mut back).unwrap();
        assert_eq!(settings(&back), s);
        let bad = LbSettings {
            maglev_table_size: 65536,
            ..s
        };
        let before = format!("{back:?}");
        assert!(apply_settings(&bad, &mut back).is_err());
        assert_eq!(
            format!("{back:?}"),
            before,
            "refused settings leave the config as it is"
        );
    }
}
