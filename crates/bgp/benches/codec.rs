//! Decode and encode throughput of UPDATE messages, in prefixes per second on one core.
//!
//! `packed`: full-size UPDATEs (4096 octets) with ~1000 /24s behind one attribute set, what
//! BIRD and FRR send. `single`: one prefix per UPDATE, what GoBGP sends.

use std::hint::black_box;
use std::net::Ipv4Addr;

use bgp::wire::update::pack_ipv4;
use bgp::wire::{
    frame, AsPath, Ipv4Prefix, Message, Origin, PathAttributes, SessionContext, Update,
    UpdateMessage,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(vec![65001, 65002, 65003])),
        next_hop: Some(Ipv4Addr::new(10, 1, 0, 100)),
        med: Some(0),
        communities: vec![0xfde9_0001, 0xfde9_0002],
        ..Default::default()
    }
}

fn prefixes(n: u32) -> Vec<Ipv4Prefix> {
    (0..n)
        .map(|i| Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
        .collect()
}

/// Decodes every message in `buf` and touches every prefix; returns the prefix count.
fn decode_stream(buf: &[u8], ctx: &SessionContext) -> usize {
    let mut n = 0;
    let mut rest = buf;
    while let Ok(Some(f)) = frame(rest, ctx) {
        let u = Update::parse(f.body, ctx).expect("valid");
        for p in u.nlri() {
            n += black_box(p).len() as usize & 1 | 1;
        }
        rest = &rest[f.wire_len..];
    }
    n
}

fn bench(c: &mut Criterion) {
    let ctx = SessionContext::default();
    let n = 100_000u32;
    let pfx = prefixes(n);
    let mut enc_attrs = Vec::new();
    attrs().emit(&ctx, &mut enc_attrs);

    let mut packed = Vec::new();
    pack_ipv4(&enc_attrs, pfx.iter().copied(), 4096, &mut packed);
    let mut single = Vec::new();
    for p in &pfx {
        pack_ipv4(&enc_attrs, [*p], 4096, &mut single);
    }

    let mut g = c.benchmark_group("update");
    g.throughput(Throughput::Elements(u64::from(n)));
    g.bench_function("decode_packed", |b| {
        b.iter(|| assert_eq!(decode_stream(black_box(&packed), &ctx), n as usize))
    });
    g.bench_function("decode_single", |b| {
        b.iter(|| assert_eq!(decode_stream(black_box(&single), &ctx), n as usize))
    });
    let mut out = Vec::with_capacity(packed.len());
    g.bench_function("encode_packed", |b| {
        b.iter(|| {
            out.clear();
            pack_ipv4(black_box(&enc_attrs), pfx.iter().copied(), 4096, &mut out);
            black_box(out.len())
        })
    });
    let mut out = Vec::with_capacity(single.len());
    g.bench_function("encode_single", |b| {
        b.iter(|| {
            out.clear();
            for p in &pfx {
                // The attribute set is encoded per message, as a speaker without packing would.
                let m = Message::Update(UpdateMessage {
                    withdrawn: vec![],
                    attrs: attrs(),
                    nlri: vec![*p],
                });
                m.emit(&ctx, &mut out);
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
