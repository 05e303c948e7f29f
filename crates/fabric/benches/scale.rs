//! The fabric at the scale of issue #5: 10,000 NICs (100 virtual networks of 100 NICs: a hub
//! with the route server and 99 peered spokes), 100 NVAs behind 10 load balancers, 10,000
//! BGP prefixes. Measures loading the prefixes, one prefix change (all receiving tables
//! updated), one LB health change with next hop tracking, a lookup, and the heap held.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use fabric::{Fabric, LbInfo, NicInfo, Prefix, Topology, VnetInfo};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
#[allow(unsafe_code)]
// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}
#[global_allocator]
static A: Counting = Counting;

const VNETS: u32 = 100;
const NICS_PER_VNET: u32 = 100;
const LBS: u32 = 10;
const PREFIXES: u32 = 10_000;

fn topology() -> Topology {
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
                1,
                (i % NICS_PER_VNET) as u8 + 4,
            ),
            address6: None,
        })
        .collect();
    // 10 LBs in the hub, each in front of 10 NVAs (the NVAs themselves do not appear here).
    let lbs = (0..LBS)
        .map(|l| LbInfo {
            name: format!("lb{l}"),
            frontend: Ipv4Addr::new(10, 0, 0, 100 + l as u8).into(),
            region: Some("westeurope".into()),
        })
        .collect();
    Topology::new(vnets, nics, lbs, Some("vnet0".into()))
}

fn prefix(i: u32) -> Prefix {
    Prefix::V4(fabric::Ipv4Prefix::new(Ipv4Addr::from(0xac10_0000 + (i << 8)), 24).unwrap())
}

fn loaded() -> Fabric {
    let mut f = Fabric::new(topology(), true);
    for i in 0..PREFIXES {
        f.set_bgp_route(
            prefix(i),
            Some(vec![Ipv4Addr::new(10, 0, 0, 100 + (i % LBS) as u8).into()]),
        );
    }
    f
}

fn bench(c: &mut Criterion) {
    let before = LIVE.load(Ordering::Relaxed);
    let mut f = loaded();
    let after = LIVE.load(Ordering::Relaxed);
    println!(
        "fabric: {} NICs, {VNETS} virtual networks, {PREFIXES} prefixes: {:.1} MiB of heap ({:.0} bytes per NIC)",
        VNETS * NICS_PER_VNET,
        (after - before) as f64 / 1048576.0,
        (after - before) as f64 / f64::from(VNETS * NICS_PER_VNET)
    );
    let mut g = c.benchmark_group("fabric");
    g.sample_size(10);
    g.bench_function("load_10k_prefixes", |b| {
        b.iter(|| black_box(loaded().last_touched))
    });
    let mut n = 0u32;
    g.sample_size(100);
    g.bench_function("one_prefix_change", |b| {
        b.iter(|| {
            n += 1;
            f.set_bgp_route(
                prefix(n % PREFIXES),
                Some(vec![
                    Ipv4Addr::new(10, 0, 0, 100 + (n % LBS) as u8).into(),
                    Ipv4Addr::new(10, 0, 0, 100 + ((n + 1) % LBS) as u8).into(),
                ]),
            );
            black_box(f.last_touched)
        })
    });
    println!("one prefix change touched {} tables (one per receiving virtual network, shared by its {NICS_PER_VNET} NICs)", f.last_touched);
    let mut up = false;
    g.bench_function("lb_health_change_tracking", |b| {
        b.iter(|| {
            up = !up;
            f.set_lb_healthy("lb3", up);
            black_box(f.last_touched)
        })
    });
    let t = f.nic_table("nic5050").unwrap();
    g.bench_function("lookup", |b| {
        b.iter(|| black_box(t.lookup(black_box(Ipv4Addr::new(172, 16, 77, 9).into()))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
