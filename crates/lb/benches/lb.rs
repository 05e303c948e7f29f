//! Maglev table build time (N backends, M = 65537; the NSDI paper: 1.8 ms) and selection
//! throughput with the flow table (table-hit path: flows already known; miss path: new flows).

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lb::flow::{FlowKey, FlowKey6, TCP};
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

    // The same over IPv6 (38-byte keys, 48-byte slots instead of 24): table hits and new flows.
    let flows6: Vec<FlowKey6> = flows
        .iter()
        .map(|f| {
            let mut src = [0u8; 16];
            src[..4].copy_from_slice(&[0xfd, 0, 0, 1]);
            src[12..].copy_from_slice(&f.src.to_be_bytes());
            FlowKey6 {
                src,
                dst: "fd00:10::1".parse::<std::net::Ipv6Addr>().unwrap().octets(),
                sport: f.sport,
                dport: f.dport,
                proto: f.proto,
            }
        })
        .collect();
    let make6 = |max_flows: usize| {
        let addr6 = |i: usize| std::net::Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 2, i as u16);
        let mut cfg = LbConfig::new("ilb6", addr6(0xffff), Mode::ActiveActive);
        cfg.max_flows = max_flows;
        let mut lb = Balancer::new(
            cfg,
            &(0..8)
                .map(|i| (addr6(i), 1, AdminState::None))
                .collect::<Vec<_>>(),
        );
        for i in 0..8 {
            lb.record_probe(addr6(i), true);
        }
        for f in &flows6 {
            lb.select(f, 1);
        }
        lb
    };
    let mut g = c.benchmark_group("select_ipv6");
    g.throughput(Throughput::Elements(flows6.len() as u64));
    for (label, max) in [
        ("flow_table_hit_128k", 1usize << 17),
        ("flow_table_hit_1m", 1 << 20),
    ] {
        let mut lb = make6(max);
        g.bench_function(label, |b| {
            b.iter(|| {
                for f in &flows6 {
                    black_box(lb.select(f, 2));
                }
            })
        });
    }
    let mut lb = make6(1 << 20);
    let mut now = 10u32;
    g.bench_function("new_flow_maglev", |b| {
        b.iter(|| {
            now += 1;
            for f in &flows6 {
                let mut k = *f;
                k.src[4..8].copy_from_slice(&now.to_be_bytes());
                black_box(lb.select(&k, now));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
