//! The one `trace` (`controller::views::trace`: what `nexthop trace` answers, built from the
//! NIC's lookup and the load balancer's predict, no state change) agrees with the simulated data
//! plane (select, records flows) for 100,000 random flows from random NICs, through a topology with two load
//! balancers (active-passive and active-active), direct routes and the Internet; and both agree
//! with the load balancer's own choice. A backend failing in the middle does not break it.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use fabric::{Fabric, LbInfo, NicInfo, Prefix, Topology, VnetInfo};
use lb::flow::{FlowKey, TCP, UDP};
use lb::{AdminState, Balancer, LbConfig, Mode};
use sim::{Outcome, Sim};

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn world() -> Sim {
    let vnets = vec![
        VnetInfo {
            name: "hub".into(),
            region: "westeurope".into(),
            address_space: vec![p("10.1.0.0/16")],
            peerings: vec!["spoke".into()],
        },
        VnetInfo {
            name: "spoke".into(),
            region: "westeurope".into(),
            address_space: vec![p("10.2.0.0/16")],
            peerings: vec![],
        },
    ];
    let nics = (0..50u8)
        .map(|i| NicInfo {
            name: format!("nic{i}"),
            vnet: if i % 2 == 0 {
                "hub".into()
            } else {
                "spoke".into()
            },
            address: Ipv4Addr::new(10, 1 + i % 2, 3, i),
            address6: None,
        })
        .collect();
    let lbs = vec![
        LbInfo {
            name: "ap".into(),
            frontend: Ipv4Addr::new(10, 1, 0, 100).into(),
            region: Some("westeurope".into()),
        },
        LbInfo {
            name: "aa".into(),
            frontend: Ipv4Addr::new(10, 1, 0, 200).into(),
            region: Some("westeurope".into()),
        },
    ];
    let mut f = Fabric::new(Topology::new(vnets, nics, lbs, Some("hub".into())), false);
    f.set_bgp_route(
        p("192.168.10.0/24"),
        Some(vec![Ipv4Addr::new(10, 1, 0, 100).into()]),
    );
    f.set_bgp_route(
        p("192.168.0.0/16"),
        Some(vec![Ipv4Addr::new(10, 1, 0, 200).into()]),
    );
    f.set_bgp_route(
        p("172.16.0.0/12"),
        Some(vec![Ipv4Addr::new(10, 1, 2, 50).into()]),
    );
    let nvas = |base: u8| {
        (0..4u8)
            .map(|i| {
                (
                    Ipv4Addr::new(10, 1, 2, base + i),
                    u32::from(i) + 1,
                    AdminState::None,
                )
            })
            .collect::<Vec<_>>()
    };
    let mut ap = Balancer::new(
        LbConfig::new("ap", Ipv4Addr::new(10, 1, 0, 100), Mode::ActivePassive),
        &nvas(10),
    );
    let mut aa = Balancer::new(
        LbConfig::new("aa", Ipv4Addr::new(10, 1, 0, 200), Mode::ActiveActive),
        &nvas(20),
    );
    for i in 0..4u8 {
        ap.record_probe(Ipv4Addr::new(10, 1, 2, 10 + i), true);
        aa.record_probe(Ipv4Addr::new(10, 1, 2, 20 + i), true);
    }
    Sim::new(
        f,
        HashMap::from([("ap".to_string(), ap), ("aa".to_string(), aa)]),
    )
}

/// A small deterministic generator (splitmix64), so the 100,000 flows are the same every run.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[test]
fn trace_agrees_with_the_sim_for_100k_random_flows() {
    let mut sim = world();
    let mut g = Gen(7);
    let dsts = [
        0xc0a8_0a00u32,
        0xc0a8_1400,
        0xac10_0000,
        0x0808_0800,
        0x0a02_0000,
    ];
    let mut seen = HashMap::new();
    for i in 0..100_000u32 {
        let r = g.next();
        let nic = format!("nic{}", r % 50);
        let src = sim.fabric.topology().nic(&nic).unwrap().address;
        let dst = dsts[(r >> 8) as usize % dsts.len()] | ((r >> 16) as u32 & 0xff);
        let flow = FlowKey::new(
            src,
            Ipv4Addr::from(dst),
            if r & 1 == 0 { TCP } else { UDP },
            (r >> 24) as u16,
            443,
        );
        if i == 50_000 {
            // An active-active backend and the active-passive active fail mid-run.
            for _ in 0..2 {
                sim.lbs
                    .get_mut("aa")
                    .unwrap()
                    .record_probe(Ipv4Addr::new(10, 1, 2, 21), false);
                sim.lbs
                    .get_mut("ap")
                    .unwrap()
                    .record_probe(Ipv4Addr::new(10, 1, 2, 10), false);
            }
        }
        let route = sim
            .fabric
            .nic_table(&nic)
            .unwrap()
            .lookup(Ipv4Addr::from(flow.dst).into());
        let lb_choice = route
            .as_ref()
            .and_then(|r| r.load_balancer.as_ref())
            .and_then(|lb| sim.lbs[lb].predict(&flow, sim.now));
        let tflow = api_types::TraceFlow {
            dport: flow.dport,
            dst: Ipv4Addr::from(flow.dst).into(),
            proto: if flow.proto == TCP {
                api_types::TraceProto::Tcp
            } else {
                api_types::TraceProto::Udp
            },
            sport: flow.sport,
            src: src.into(),
        };
        let answer = controller::views::trace(&nic, tflow, route.as_ref(), lb_choice);
        let actual = sim.send(&nic, &flow);
        match &actual {
            Outcome::Backend { lb, backend } => {
                assert_eq!(
                    answer.load_balancer.as_ref(),
                    Some(lb),
                    "flow {i}: {answer:?}"
                );
                assert_eq!(answer.backend, Some(*backend), "flow {i}: {answer:?}");
                assert!(answer.dropped.is_none());
            }
            Outcome::Direct { next_hop_type, .. } => {
                let r = answer.route.as_ref().expect("a route");
                assert_eq!(r.next_hop_type.as_str(), next_hop_type.as_str(), "flow {i}");
                assert!(
                    answer.backend.is_none() && answer.dropped.is_none(),
                    "{answer:?}"
                );
            }
            Outcome::Dropped(why) => {
                assert!(
                    answer.dropped.is_some(),
                    "flow {i}: sim dropped ({why}), trace: {answer:?}"
                );
                assert!(answer.backend.is_none());
            }
        }
        *seen.entry(std::mem::discriminant(&actual)).or_insert(0u32) += 1;
    }
    // Every kind of outcome was exercised, and after the failures nothing went to the dead.
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(
        sim.per_backend.keys().any(|(lb, _)| lb == "aa")
            && sim.per_backend.keys().any(|(lb, _)| lb == "ap")
    );
    for i in 0..1000u32 {
        let flow = FlowKey::new(
            Ipv4Addr::new(10, 1, 3, 0),
            Ipv4Addr::new(192, 168, 20, 1),
            TCP,
            i as u16,
            80,
        );
        assert_ne!(
            sim.send("nic0", &flow),
            Outcome::Backend {
                lb: "aa".into(),
                backend: Ipv4Addr::new(10, 1, 2, 21).into()
            }
        );
    }
}
