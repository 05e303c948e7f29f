//! Routes per second through one instance's RIB: P peers each announce N unique /32s in packed
//! UPDATEs (ingest, decision process, export to a monitor peer, encoding of what the monitor is
//! sent), as in a bgperf run. Also prints bytes of heap per path, counted by a global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicIsize, Ordering};

use bgp::wire::{AsPath, Ipv4Prefix, Origin, PathAttributes, SessionContext, UpdateMessage};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use routeserver::{Rib, RibConfig};

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

/// The UPDATEs each tester sends: N unique /32s, ~900 per message, one attribute set per peer.
fn workload(peers: u32, n: u32) -> Vec<Vec<UpdateMessage>> {
    (0..peers)
        .map(|t| {
            let attrs = PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::from_sequence(vec![65001 + t])),
                next_hop: Some(Ipv4Addr::from(0x0a00_0001 + t)),
                ..Default::default()
            };
            let all: Vec<Ipv4Prefix> = (0..n)
                .map(|i| Ipv4Prefix::new(Ipv4Addr::from(0x1000_0000 + (t << 20) + i), 32).unwrap())
                .collect();
            all.chunks(900)
                .map(|c| UpdateMessage {
                    withdrawn: vec![],
                    attrs: attrs.clone(),
                    nlri: c.to_vec(),
                })
                .collect()
        })
        .collect()
}

fn run(work: &[Vec<UpdateMessage>], ctx: &SessionContext) -> (Rib, usize) {
    let mut rib = Rib::new(RibConfig {
        asn: 65515,
        local_address: Ipv4Addr::new(10, 1, 1, 4),
        branch_to_branch: true,
        originated: vec![],
    });
    let ids: Vec<usize> = (0..work.len())
        .map(|t| {
            let id = rib.add_peer(
                &format!("t{t}"),
                Ipv4Addr::from(0x0a00_0001 + t as u32),
                65001 + t as u32,
                u32::MAX,
            );
            rib.peer_up(id, Ipv4Addr::from(0x0a00_0001 + t as u32));
            id
        })
        .collect();
    let mon = rib.add_peer("monitor", Ipv4Addr::new(10, 9, 9, 9), 64999, u32::MAX);
    rib.peer_up(mon, Ipv4Addr::new(10, 9, 9, 9));
    let mut bytes = 0;
    let mut out = Vec::with_capacity(1 << 20);
    for (t, msgs) in work.iter().enumerate() {
        for m in msgs {
            let ex = rib.apply_update(ids[t], m).expect("under limit");
            for (q, o) in ex.peers() {
                if q == mon {
                    out.clear();
                    o.encode(ctx, &mut out);
                    bytes += out.len();
                }
            }
        }
    }
    (rib, bytes)
}

fn bench(c: &mut Criterion) {
    let ctx = SessionContext::default();
    let mut g = c.benchmark_group("rib_ingest_export");
    g.sample_size(10);
    for (p, n) in [(10u32, 10_000u32), (100, 1_000), (8, 4_000)] {
        let work = workload(p, n);
        g.throughput(Throughput::Elements(u64::from(p * n)));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{p}x{n}")),
            &work,
            |b, w| b.iter(|| black_box(run(w, &ctx).1)),
        );
        let before = LIVE.load(Ordering::Relaxed);
        let (rib, _) = run(&work, &ctx);
        let after = LIVE.load(Ordering::Relaxed);
        println!(
            "memory {p}x{n}: {} paths, {} attribute sets, {:.1} bytes/path",
            rib.len(),
            rib.attribute_sets(),
            (after - before) as f64 / f64::from(p * n)
        );
        drop(rib);
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
