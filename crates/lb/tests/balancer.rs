//! Properties of the Maglev table and the balancer (issue #4): balance, minimal disruption,
//! identical tables, symmetric hashing, flow stickiness, drain, active-passive with preemption.

use std::net::{IpAddr, Ipv4Addr};

use lb::flow::{FlowKey, TCP, UDP};
use lb::maglev::{MaglevTable, DEFAULT_TABLE_SIZE};
use lb::{AdminState, Balancer, Distribution, Health, LbConfig, Mode, NoHealthy, Role};
use proptest::prelude::*;

fn v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, (2 + i / 240) as u8, (10 + i % 240) as u8)
}

fn addr(i: usize) -> IpAddr {
    v4(i).into()
}

fn names(n: usize) -> Vec<[u8; 4]> {
    (0..n).map(|i| v4(i).octets()).collect()
}

/// Slots that changed owner when backend `gone` was removed, beyond `gone`'s own slots, as a
/// fraction of the table.
fn disruption(n: usize, gone: usize) -> f64 {
    let all = names(n);
    let before = MaglevTable::build(&all, DEFAULT_TABLE_SIZE);
    let mut rest = all.clone();
    rest.remove(gone);
    let after = MaglevTable::build(&rest, DEFAULT_TABLE_SIZE);
    let mut moved = 0;
    for (b, a) in before.slots().iter().zip(after.slots()) {
        let b = *b as usize;
        if b == gone {
            continue;
        }
        let b_after = if b > gone { b - 1 } else { b };
        if *a as usize != b_after {
            moved += 1;
        }
    }
    moved as f64 / f64::from(DEFAULT_TABLE_SIZE)
}

#[test]
fn removing_one_backend_moves_at_most_one_percent_of_the_others() {
    for n in [2usize, 8, 100] {
        let worst = (0..n.min(10)).map(|g| disruption(n, g)).fold(0.0, f64::max);
        println!("N = {n}: removing one backend moved {:.3}% of the other backends' slots (worst of {} removals)", worst * 100.0, n.min(10));
        assert!(worst <= 0.01, "N = {n}: {worst}");
    }
}

#[test]
fn tables_built_independently_are_identical() {
    for n in [1usize, 2, 8, 100, 1000] {
        let a = MaglevTable::build(&names(n), DEFAULT_TABLE_SIZE);
        // Built again from a reversed then re-sorted config: the balancer sorts by address.
        let mut cfg: Vec<(IpAddr, u32, AdminState)> =
            (0..n).map(|i| (addr(i), 1, AdminState::None)).collect();
        cfg.reverse();
        let mut lb = Balancer::new(
            LbConfig::new("x", Ipv4Addr::new(10, 1, 0, 100), Mode::ActiveActive),
            &cfg,
        );
        for i in 0..n {
            lb.record_probe(addr(i), true);
        }
        let b = MaglevTable::build(
            &lb.backends()
                .iter()
                .map(|b| match b.address {
                    IpAddr::V4(a) => a.octets(),
                    IpAddr::V6(_) => unreachable!("an IPv4 balancer"),
                })
                .collect::<Vec<_>>(),
            DEFAULT_TABLE_SIZE,
        );
        assert!(a.slots() == b.slots(), "n = {n}: tables differ");
    }
}

fn aa(n: usize, symmetric: bool) -> Balancer {
    active_active(Ipv4Addr::new(10, 1, 0, 100).into(), addr, n, symmetric)
}

/// An active-active balancer at `frontend` over backends `backend(0..n)`, all probed up.
fn active_active(
    frontend: IpAddr,
    backend: fn(usize) -> IpAddr,
    n: usize,
    symmetric: bool,
) -> Balancer {
    let mut c = LbConfig::new("ilb", frontend, Mode::ActiveActive);
    c.symmetric = symmetric;
    c.max_flows = 1 << 16;
    let mut lb = Balancer::new(
        c,
        &(0..n)
            .map(|i| (backend(i), 1, AdminState::None))
            .collect::<Vec<_>>(),
    );
    for i in 0..n {
        lb.record_probe(backend(i), true);
    }
    lb
}

proptest! {
    #[test]
    fn symmetric_mode_maps_a_flow_and_its_reverse_alike(a in any::<u32>(), b in any::<u32>(), p in any::<u16>(), q in any::<u16>(), udp in any::<bool>()) {
        let lb = aa(8, true);
        let k = FlowKey { src: a, dst: b, sport: p, dport: q, proto: if udp { UDP } else { TCP } };
        prop_assert_eq!(lb.flow_hash(&k), lb.flow_hash(&k.reverse()));
        prop_assert_eq!(lb.predict(&k, 0), lb.predict(&k.reverse(), 0));
    }

    #[test]
    fn predict_agrees_with_select(flows in proptest::collection::vec((any::<u32>(), any::<u16>()), 1..200)) {
        let mut lb = aa(5, false);
        for (src, sport) in flows {
            let k = FlowKey { src, dst: 0xc0a8_0a01, sport, dport: 443, proto: TCP };
            let p = lb.predict(&k, 1);
            prop_assert_eq!(p, lb.select(&k, 1));
        }
    }
}

fn flows(n: u32) -> Vec<FlowKey> {
    (0..n)
        .map(|i| FlowKey {
            src: 0x0a01_0300 + (i % 200),
            dst: 0xc0a8_0a01,
            sport: 1024 + (i as u16),
            dport: 80,
            proto: TCP,
        })
        .collect()
}

#[test]
fn a_dead_backend_moves_only_its_own_flows() {
    let mut lb = aa(4, false);
    let fs = flows(5000);
    let before: Vec<IpAddr> = fs.iter().map(|k| lb.select(k, 10).unwrap()).collect();
    let dead = addr(2);
    lb.record_probe(dead, false);
    lb.record_probe(dead, false);
    assert_eq!(lb.backends()[2].health, Health::Down);
    for (k, b) in fs.iter().zip(&before) {
        let now = lb.select(k, 11).unwrap();
        if *b == dead {
            assert_ne!(now, dead);
        } else {
            assert_eq!(now, *b, "a flow of a surviving backend moved");
        }
    }
}

#[test]
fn drain_keeps_existing_flows_and_takes_no_new_ones() {
    let mut lb = aa(2, false);
    let fs = flows(2000);
    let before: Vec<IpAddr> = fs.iter().map(|k| lb.select(k, 10).unwrap()).collect();
    lb.set_admin(addr(0), AdminState::Drain).unwrap();
    for (k, b) in fs.iter().zip(&before) {
        assert_eq!(lb.select(k, 11).unwrap(), *b);
    }
    for k in flows(4000).iter().skip(2000) {
        assert_eq!(
            lb.select(k, 11).unwrap(),
            addr(1),
            "new flow on a drained backend"
        );
    }
    assert_eq!(lb.role(0), Role::Idle);
}

#[test]
fn flow_table_bound_holds_under_ten_million_flows() {
    let mut c = LbConfig::new("ilb", Ipv4Addr::new(10, 1, 0, 100), Mode::ActiveActive);
    c.max_flows = 1 << 16;
    let mut lb = Balancer::new(
        c,
        &[
            (addr(0), 1, AdminState::None),
            (addr(1), 1, AdminState::None),
        ],
    );
    lb.record_probe(addr(0), true);
    lb.record_probe(addr(1), true);
    let cap = lb.flow_table::<u32>().capacity();
    let mem = lb.flow_table::<u32>().memory_bytes();
    for i in 0..10_000_000u32 {
        let k = FlowKey {
            src: i,
            dst: 0xc0a8_0a01,
            sport: (i >> 8) as u16,
            dport: 443,
            proto: TCP,
        };
        lb.select(&k, 100);
    }
    assert_eq!(lb.flow_table::<u32>().len(100), cap);
    assert_eq!(lb.flow_table::<u32>().memory_bytes(), mem, "no growth");
    assert_eq!(lb.flow_stats().evictions, 10_000_000 - cap as u64);
}

fn ap(preempt: bool) -> Balancer {
    let mut c = LbConfig::new("nva-ilb", Ipv4Addr::new(10, 1, 0, 100), Mode::ActivePassive);
    c.preempt = preempt;
    let mut lb = Balancer::new(
        c,
        &[
            (addr(1), 2, AdminState::None),
            (addr(0), 1, AdminState::None),
        ],
    );
    lb.record_probe(addr(0), true);
    lb.record_probe(addr(1), true);
    lb
}

#[test]
fn active_passive_fails_over_after_fall_probes() {
    let mut lb = ap(false);
    assert_eq!(
        lb.active(),
        Some(addr(0)),
        "lowest priority number is active"
    );
    assert_eq!((lb.role(0), lb.role(1)), (Role::Active, Role::Standby));
    let fs = flows(100);
    assert!(fs.iter().all(|k| lb.select(k, 1) == Some(addr(0))));
    assert!(
        lb.record_probe(addr(0), false).is_none(),
        "one failure is not enough (fall = 2)"
    );
    assert_eq!(lb.active(), Some(addr(0)));
    let change = lb.record_probe(addr(0), false).unwrap();
    assert_eq!((change.from, change.to), (Health::Up, Health::Down));
    assert_eq!(lb.active(), Some(addr(1)));
    assert!(
        fs.iter().all(|k| lb.select(k, 2) == Some(addr(1))),
        "flows of the dead active move"
    );
    assert!(flows(200)
        .iter()
        .skip(100)
        .all(|k| lb.select(k, 2) == Some(addr(1))));
}

#[test]
fn preemption_both_ways() {
    for preempt in [false, true] {
        let mut lb = ap(preempt);
        lb.record_probe(addr(0), false);
        lb.record_probe(addr(0), false);
        assert_eq!(lb.active(), Some(addr(1)));
        let old = flows(10);
        old.iter()
            .for_each(|k| assert_eq!(lb.select(k, 1), Some(addr(1))));
        // The primary recovers after `rise` successes.
        lb.record_probe(addr(0), true);
        lb.record_probe(addr(0), true);
        assert_eq!(lb.backends()[0].health, Health::Up);
        let want = if preempt { addr(0) } else { addr(1) };
        assert_eq!(lb.active(), Some(want), "preempt = {preempt}");
        let new = FlowKey {
            src: 0x0b00_0001,
            dst: 1,
            sport: 1,
            dport: 1,
            proto: TCP,
        };
        assert_eq!(lb.select(&new, 2), Some(want));
        // Existing flows stay on the healthy standby-turned-active either way.
        old.iter()
            .for_each(|k| assert_eq!(lb.select(k, 2), Some(addr(1))));
    }
}

#[test]
fn all_down_drop_or_all() {
    for mode in [NoHealthy::Drop, NoHealthy::All] {
        let mut c = LbConfig::new("ilb", Ipv4Addr::new(10, 1, 0, 100), Mode::ActiveActive);
        c.no_healthy = mode;
        let mut lb = Balancer::new(
            c,
            &[
                (addr(0), 1, AdminState::None),
                (addr(1), 1, AdminState::None),
            ],
        );
        lb.record_probe(addr(0), false);
        lb.record_probe(addr(1), false);
        let got = lb.select(&flows(1)[0], 1);
        match mode {
            NoHealthy::Drop => assert_eq!(got, None),
            NoHealthy::All => assert!(got.is_some()),
        }
    }
}

#[test]
fn two_and_three_tuple_ignore_ports() {
    for d in [Distribution::TwoTuple, Distribution::ThreeTuple] {
        let mut c = LbConfig::new("ilb", Ipv4Addr::new(10, 1, 0, 100), Mode::ActiveActive);
        c.distribution = d;
        let mut lb = Balancer::new(
            c,
            &(0..8)
                .map(|i| (addr(i), 1, AdminState::None))
                .collect::<Vec<_>>(),
        );
        (0..8).for_each(|i| {
            lb.record_probe(addr(i), true);
        });
        let k = FlowKey {
            src: 7,
            dst: 9,
            sport: 1000,
            dport: 80,
            proto: TCP,
        };
        let other_ports = FlowKey {
            sport: 2000,
            dport: 443,
            ..k
        };
        assert_eq!(lb.flow_hash(&k), lb.flow_hash(&other_ports), "{d:?}");
        let udp = FlowKey { proto: UDP, ..k };
        assert_eq!(
            lb.flow_hash(&k) == lb.flow_hash(&udp),
            d == Distribution::TwoTuple
        );
    }
}

#[test]
fn the_preferred_backend_is_elected_whichever_probe_answers_first() {
    let c = LbConfig::new("nva-ilb", Ipv4Addr::new(10, 1, 0, 100), Mode::ActivePassive);
    let mut lb = Balancer::new(
        c,
        &[
            (addr(0), 1, AdminState::None),
            (addr(1), 2, AdminState::None),
        ],
    );
    lb.record_probe(addr(1), true);
    assert_eq!(lb.active(), Some(addr(1)), "the only one up so far");
    lb.record_probe(addr(0), true);
    assert_eq!(
        lb.active(),
        Some(addr(0)),
        "priority 1 takes over at its first Up, without preempt"
    );
}

#[test]
fn a_follower_takes_the_controllers_active_backend() {
    let mut lb = ap(false);
    assert_eq!(lb.active(), Some(addr(0)));
    // The controller elected the other one (its preferred backend answered late).
    assert_eq!(lb.set_active(addr(1)), Ok(true));
    assert_eq!(lb.set_active(addr(1)), Ok(false), "unchanged");
    assert_eq!((lb.role(0), lb.role(1)), (Role::Standby, Role::Active));
    let fs = flows(50);
    assert!(fs.iter().all(|k| lb.predict(k, 1) == Some(addr(1))));
    assert!(fs.iter().all(|k| lb.select(k, 1) == Some(addr(1))));
    // A backend that cannot take flows cannot be made active.
    lb.set_health(addr(0), Health::Down);
    assert_eq!(lb.set_active(addr(0)), Err(lb::LbError::NotUsable(addr(0))));
    assert_eq!(lb.active(), Some(addr(1)));
    assert!(lb.set_active(Ipv4Addr::new(192, 0, 2, 1)).is_err());
}

// ---- IPv6 (issue #16): the same balancer over 16-octet addresses ----

use lb::flow::FlowKey6;
use lb::hash::{mix64, SEED_FLOW};
use std::net::Ipv6Addr;

fn addr6(i: usize) -> IpAddr {
    Ipv6Addr::new(0xfd00, 1, 2, 0, 0, 0, 0, 0x10 + i as u16).into()
}

fn aa6(n: usize, symmetric: bool) -> Balancer {
    let frontend: Ipv6Addr = "fd00:1::100".parse().unwrap();
    active_active(frontend.into(), addr6, n, symmetric)
}

fn flows6(n: u32) -> Vec<FlowKey6> {
    (0..n)
        .map(|i| {
            FlowKey6::new(
                Ipv6Addr::new(0xfd00, 1, 3, 0, 0, 0, 0, 0x10 + (i % 200) as u16),
                "fd00:10::1".parse().unwrap(),
                TCP,
                1024 + i as u16,
                80,
            )
        })
        .collect()
}

proptest! {
    #[test]
    fn ipv6_symmetric_mode_maps_a_flow_and_its_reverse_alike(a in any::<u128>(), b in any::<u128>(), p in any::<u16>(), q in any::<u16>()) {
        let lb = aa6(8, true);
        let k = FlowKey6::new(Ipv6Addr::from(a), Ipv6Addr::from(b), TCP, p, q);
        prop_assert_eq!(lb.flow_hash(&k), lb.flow_hash(&k.reverse()));
        prop_assert_eq!(lb.predict(&k, 0), lb.predict(&k.reverse(), 0));
    }

    #[test]
    fn ipv6_predict_agrees_with_select(flows in proptest::collection::vec((any::<u128>(), any::<u16>()), 1..200)) {
        let mut lb = aa6(5, false);
        for (src, sport) in flows {
            let k = FlowKey6::new(Ipv6Addr::from(src), "fd00:10::1".parse().unwrap(), TCP, sport, 443);
            let p = lb.predict(&k, 1);
            prop_assert_eq!(p, lb.select(&k, 1));
        }
    }
}

/// The flow hash is part of the wire format (every mux and `trace` must agree): it is computed
/// here again from its documentation, for both families.
#[test]
fn flow_hashes_follow_their_documented_byte_order() {
    let lb = aa(2, false);
    let k = FlowKey::new(
        Ipv4Addr::new(10, 1, 3, 10),
        Ipv4Addr::new(192, 168, 10, 1),
        TCP,
        40000,
        443,
    );
    let words = (0x0a01_030a_u64 << 32) | 0xc0a8_0a01;
    let ports = (40000u64 << 16) | 443;
    assert_eq!(
        lb.flow_hash(&k),
        mix64(mix64(words ^ SEED_FLOW) ^ (ports << 8 | 6))
    );

    let lb = aa6(2, false);
    let k = FlowKey6::new(
        "fd00:1:3::10".parse().unwrap(),
        "fd00:10::1".parse().unwrap(),
        TCP,
        40000,
        443,
    );
    let (src_hi, src_lo) = (0xfd00_0001_0003_0000_u64, 0x0000_0000_0000_0010_u64);
    let (dst_hi, dst_lo) = (0xfd00_0010_0000_0000_u64, 0x0000_0000_0000_0001_u64);
    let mut h = mix64(src_hi ^ SEED_FLOW);
    h = mix64(h ^ src_lo);
    h = mix64(h ^ dst_hi);
    h = mix64(h ^ dst_lo);
    assert_eq!(lb.flow_hash(&k), mix64(h ^ (ports << 8 | 6)));
    // 2-tuple: ports and protocol left out.
    let mut c = LbConfig::new(
        "ilb6",
        "fd00:1::100".parse::<Ipv6Addr>().unwrap(),
        Mode::ActiveActive,
    );
    c.distribution = Distribution::TwoTuple;
    let two = Balancer::new(c, &[(addr6(0), 1, AdminState::None)]);
    assert_eq!(two.flow_hash(&k), mix64(h));
}

#[test]
fn ipv6_flows_spread_evenly_and_a_dead_backend_moves_only_its_own() {
    let mut lb = aa6(4, false);
    let fs = flows6(8000);
    let before: Vec<IpAddr> = fs.iter().map(|k| lb.select(k, 10).unwrap()).collect();
    for i in 0..4 {
        let n = before.iter().filter(|b| **b == addr6(i)).count();
        assert!((1600..2400).contains(&n), "backend {i} got {n} of 8000");
    }
    let dead = addr6(2);
    lb.record_probe(dead, false);
    lb.record_probe(dead, false);
    for (k, b) in fs.iter().zip(&before) {
        let now = lb.select(k, 11).unwrap();
        if *b == dead {
            assert_ne!(now, dead);
        } else {
            assert_eq!(now, *b, "a flow of a surviving backend moved");
        }
    }
    assert_eq!(lb.flow_table::<lb::flow::V6>().len(11), 8000);
    assert_eq!(lb.flow_stats().evictions, 0);
}

#[test]
fn ipv6_active_passive_fails_over() {
    let mut c = LbConfig::new(
        "ilb6",
        "fd00:1::100".parse::<Ipv6Addr>().unwrap(),
        Mode::ActivePassive,
    );
    c.fall = 2;
    let mut lb = Balancer::new(
        c,
        &[
            (addr6(0), 1, AdminState::None),
            (addr6(1), 2, AdminState::None),
        ],
    );
    lb.record_probe(addr6(1), true);
    lb.record_probe(addr6(0), true);
    assert_eq!(lb.active(), Some(addr6(0)));
    let fs = flows6(100);
    assert!(fs.iter().all(|k| lb.select(k, 1) == Some(addr6(0))));
    lb.record_probe(addr6(0), false);
    lb.record_probe(addr6(0), false);
    assert_eq!(lb.active(), Some(addr6(1)));
    assert!(fs.iter().all(|k| lb.select(k, 2) == Some(addr6(1))));
}

#[test]
fn a_backend_of_the_other_family_takes_no_flows() {
    let mut lb = Balancer::new(
        LbConfig::new(
            "ilb6",
            "fd00:1::100".parse::<Ipv6Addr>().unwrap(),
            Mode::ActiveActive,
        ),
        &[
            (addr6(0), 1, AdminState::None),
            (addr(0), 1, AdminState::None),
        ],
    );
    assert_eq!(lb.backends().len(), 1);
    assert_eq!(lb.record_probe(addr(0), true), None);
    lb.record_probe(addr6(0), true);
    assert!(flows6(50).iter().all(|k| lb.select(k, 1) == Some(addr6(0))));
    // A flow of the other family goes nowhere (and trace says so).
    assert_eq!(lb.predict(&flows(1)[0], 1), None);
    assert_eq!(lb.select(&flows(1)[0], 1), None);
}
