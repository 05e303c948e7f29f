//! The simulated data plane at the scale of issue #5: 10,000 NICs in 100 virtual networks,
//! 100 NVAs behind 10 load balancers (active-active), 10,000 BGP prefixes; 200,000 flows from
//! random NICs, then an NVA fails and a prefix moves, and the counters follow. (Timing and
//! memory of the same fabric are measured in `cargo bench -p fabric --bench scale`.)

use std::collections::HashMap;
use std::net::Ipv4Addr;

use fabric::{Fabric, LbInfo, NicInfo, Prefix, Topology, VnetInfo};
use lb::flow::{FlowKey, TCP};
use lb::{AdminState, Balancer, LbConfig, Mode};
use sim::{Outcome, Sim};

const VNETS: u32 = 100;
const NICS_PER_VNET: u32 = 100;
const LBS: u32 = 10;
const NVAS_PER_LB: u32 = 10;
const PREFIXES: u32 = 10_000;

fn frontend(l: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 100 + l as u8)
}
fn nva(l: u32, n: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 1 + l as u8, 10 + n as u8)
}
fn prefix(i: u32) -> Prefix {
    Prefix::V4(fabric::Ipv4Prefix::new(Ipv4Addr::from(0xac10_0000 + (i << 8)), 24).unwrap())
}

#[test]
fn ten_thousand_nics_hundred_nvas_ten_thousand_prefixes() {
    let vnets = (0..VNETS)
        .map(|v| VnetInfo {
            name: format!("vnet{v}"),
            region: "westeurope".into(),
            address_space: vec![Prefix::V4(
                fabric::Ipv4Prefix::new(Ipv4Addr::new(10, v as u8, 0, 0), 16).unwrap(),
            )],
            peerings: if v == 0 {
                (1..VNETS).map(|s| format!("vnet{s}")).collect()
            } else {
                vec![]
            },
        })
        .collect();
    let nics = (0..VNETS * NICS_PER_VNET)
        .map(|i| NicInfo {
            name: format!("nic{i}"),
            vnet: format!("vnet{}", i / NICS_PER_VNET),
            address: Ipv4Addr::new(
                10,
                (i / NICS_PER_VNET) as u8,
                2,
                (i % NICS_PER_VNET) as u8 + 4,
            ),
            address6: None,
        })
        .collect();
    let lbs = (0..LBS)
        .map(|l| LbInfo {
            name: format!("lb{l}"),
            frontend: frontend(l).into(),
            region: Some("westeurope".into()),
        })
        .collect();
    let mut f = Fabric::new(Topology::new(vnets, nics, lbs, Some("vnet0".into())), false);
    for i in 0..PREFIXES {
        f.set_bgp_route(prefix(i), Some(vec![frontend(i % LBS).into()]));
    }
    let mut balancers = HashMap::new();
    for l in 0..LBS {
        let mut c = LbConfig::new(&format!("lb{l}"), frontend(l), Mode::ActiveActive);
        c.max_flows = 1 << 16;
        let mut b = Balancer::new(
            c,
            &(0..NVAS_PER_LB)
                .map(|n| (nva(l, n), 1, AdminState::None))
                .collect::<Vec<_>>(),
        );
        for n in 0..NVAS_PER_LB {
            b.record_probe(nva(l, n), true);
        }
        balancers.insert(format!("lb{l}"), b);
    }
    let mut sim = Sim::new(f, balancers);

    let flow = |i: u32| {
        let nic = i.wrapping_mul(2_654_435_761) % (VNETS * NICS_PER_VNET);
        let dst = 0xac10_0000 + ((i % PREFIXES) << 8) + 7;
        (
            format!("nic{nic}"),
            FlowKey {
                src: 0x0a00_0000 + nic,
                dst,
                sport: (i % 50_000) as u16 + 1024,
                dport: 443,
                proto: TCP,
            },
        )
    };
    for i in 0..200_000u32 {
        let (nic, k) = flow(i);
        assert!(
            matches!(sim.send(&nic, &k), Outcome::Backend { .. }),
            "flow {i}"
        );
    }
    assert_eq!(
        sim.per_backend.len(),
        (LBS * NVAS_PER_LB) as usize,
        "every NVA got traffic"
    );
    let per_nva: Vec<u64> = sim.per_backend.values().copied().collect();
    let (min, max) = (per_nva.iter().min().unwrap(), per_nva.iter().max().unwrap());
    println!("200,000 flows over 100 NVAs: {min}..{max} per NVA");
    assert!(
        *max < 2 * *min,
        "spread within Maglev balance: {min}..{max}"
    );

    // One NVA of lb3 fails: its flows move, no flow goes to it any more.
    let dead = nva(3, 4);
    sim.lbs.get_mut("lb3").unwrap().record_probe(dead, false);
    sim.lbs.get_mut("lb3").unwrap().record_probe(dead, false);
    let before = sim
        .per_backend
        .get(&("lb3".to_string(), dead.into()))
        .copied();
    for i in 0..200_000u32 {
        let (nic, k) = flow(i);
        sim.send(&nic, &k);
    }
    assert_eq!(
        sim.per_backend
            .get(&("lb3".to_string(), dead.into()))
            .copied(),
        before,
        "traffic to a dead NVA"
    );
    // A prefix moves to another LB: its flows follow, touching only the receiving tables.
    sim.fabric
        .set_bgp_route(prefix(3), Some(vec![frontend(5).into()]));
    assert_eq!(sim.fabric.last_touched, VNETS as usize);
    let (nic, k) = flow(3);
    assert!(matches!(sim.send(&nic, &k), Outcome::Backend { ref lb, .. } if lb == "lb5"));
}
