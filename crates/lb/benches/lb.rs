//! Maglev table build time (N backends, M = 65537; the NSDI paper: 1.8 ms) and selection
//! throughput with the flow table (table-hit path: flows already known; miss path: new flows).

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lb::flow::{FlowKey, TCP};
use lb::maglev::{MaglevTable, DEFAULT_TABLE_SIZE};
use lb::{AdminState, Balancer, LbConfig, Mode};

fn addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x0a01_0000 + i as u32)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev_build");
    for n in [2usize, 8, 100, 1000] {
        let names: Vec<[u8; 4]> = (0..n).map(|i| addr(i).octets()).collect();
        g.bench_with_input(BenchmarkId::from_parameter(n), &names, |b, names| {
            b.iter(|| black_box(MaglevTable::build(names, DEFAULT_TABLE_SIZE)))
        });
    }
    g.finish();

    let flows: Vec<FlowKey> = (0..100_000u32)
        .map(|i| FlowKey {
            src: 0x0a01_0300 + (i >> 10),
            dst: 0xc0a8_0a01,
            sport: (i & 0xffff) as u16,
            dport: 443,
            proto: TCP,
        })
        .collect();
    let make = |max_flows: usize| {
        let mut cfg = LbConfig::new("ilb", Ipv4Addr::new(10, 1, 0, 100), Mode::ActiveActive);
        cfg.max_flows = max_flows;
        let mut lb = Balancer::new(
            cfg,
            &(0..8)
                .map(|i| (addr(i), 1, AdminState::None))
                .collect::<Vec<_>>(),
        );
        for i in 0..8 {
            lb.record_probe(addr(i), true);
        }
        for f in &flows {
            lb.select(f, 1);
        }
        lb
    };
    let mut g = c.benchmark_group("select");
    g.throughput(Throughput::Elements(flows.len() as u64));
    // 100k live flows in a table sized for 128k (3 MB, mostly cache-resident) and in the
    // default 1M-flow table (24 MB: every lookup is a cache miss).
    for (label, max) in [
        ("flow_table_hit_128k", 1usize << 17),
        ("flow_table_hit_1m", 1 << 20),
    ] {
        let mut lb = make(max);
        g.bench_function(label, |b| {
            b.iter(|| {
                for f in &flows {
                    black_box(lb.select(f, 2));
                }
            })
        });
    }
    let mut lb = make(1 << 20);
    let mut now = 10u32;
    g.bench_function("new_flow_maglev", |b| {
        b.iter(|| {
            // Each round is a new set of flows (the source address changes with the clock).
            now += 1;
            for f in &flows {
                let k = FlowKey {
                    src: f.src ^ (now << 20),
                    ..*f
                };
                black_box(lb.select(&k, now));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
