//! Decode and encode throughput of UPDATE messages, in prefixes per second on one core.
//!
//! `packed`: full-size UPDATEs (4096 octets) with ~1000 /24s behind one attribute set, what
//! BIRD and FRR send. `single`: one prefix per UPDATE, what GoBGP sends. `update_ipv6`: the
//! same for IPv6 /48s packed into MP_REACH_NLRI (what the route server receives and sends for
//! IPv6 unicast).

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::wire::attrs::MpNextHop;
use bgp::wire::update::{pack_ipv4, pack_ipv6};
use bgp::wire::{
    frame, AsPath, Ipv4Prefix, Ipv6Prefix, Message, Origin, PathAttributes, SessionContext, Update,
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
    bench_ipv6(c, &ctx);
}

/// Decodes every message in `buf` and touches every IPv6 prefix of its MP_REACH_NLRI.
fn decode_stream6(buf: &[u8], ctx: &SessionContext) -> usize {
    let mut n = 0;
    let mut rest = buf;
    while let Ok(Some(f)) = frame(rest, ctx) {
        let u = Update::parse(f.body, ctx).expect("valid");
        if let Some(r) = &u.attrs.mp_reach {
            for p in &r.nlri {
                n += black_box(p).len() as usize & 1 | 1;
            }
        }
        rest = &rest[f.wire_len..];
    }
    n
}

fn bench_ipv6(c: &mut Criterion, ctx: &SessionContext) {
    let n = 100_000u32;
    // /48s: 7 octets each in NLRI, ~580 per 4096-octet message.
    let pfx: Vec<Ipv6Prefix> = (0..n)
        .map(|i| {
            let a = (0x2001_0db8u128 << 96) | (u128::from(i) << 80);
            Ipv6Prefix::new(Ipv6Addr::from(a), 48).unwrap()
        })
        .collect();
    let mut a = attrs();
    a.next_hop = None;
    let mut enc_attrs = Vec::new();
    a.emit(ctx, &mut enc_attrs);
    let nh = MpNextHop::V6 {
        global: "fd00:1::100".parse().unwrap(),
        link_local: None,
    };
    let mut packed = Vec::new();
    pack_ipv6(&enc_attrs, &nh, pfx.iter().copied(), 4096, &mut packed);

    let mut g = c.benchmark_group("update_ipv6");
    g.throughput(Throughput::Elements(u64::from(n)));
    g.bench_function("decode_packed", |b| {
        b.iter(|| assert_eq!(decode_stream6(black_box(&packed), ctx), n as usize))
    });
    let mut out = Vec::with_capacity(packed.len());
    g.bench_function("encode_packed", |b| {
        b.iter(|| {
            out.clear();
            pack_ipv6(
                black_box(&enc_attrs),
                &nh,
                pfx.iter().copied(),
                4096,
                &mut out,
            );
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
