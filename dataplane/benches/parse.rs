//! Criterion benches for the wire layer: the per-frame summary parser and the checksum loop.
//!
//! Run: `cargo bench -p xvs-dataplane --bench parse`.
//! Frames are built with etherparse (the same shape `testutil` builds) so the bench needs no
//! crate feature.

// Bench setup may panic: a broken fixture should stop the bench loudly.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etherparse::PacketBuilder;
use xvs_dataplane::wire::{self, checksum};

const M1: [u8; 6] = [2, 0, 0, 0, 0, 1];
const M2: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn tcp4() -> Vec<u8> {
    let b = PacketBuilder::ethernet2(M1, M2)
        .ipv4([198, 18, 0, 1], [198, 18, 1, 1], 64)
        .tcp(40000, 80, 1000, 64240)
        .ack(1);
    let mut v = Vec::new();
    b.write(&mut v, &[0u8; 64]).unwrap();
    v
}

fn tcp6() -> Vec<u8> {
    let s = "2001:db8::1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let d = "2001:db8::2"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let b = PacketBuilder::ethernet2(M1, M2)
        .ipv6(s, d, 64)
        .tcp(40000, 80, 1000, 64240)
        .ack(1);
    let mut v = Vec::new();
    b.write(&mut v, &[0u8; 64]).unwrap();
    v
}

fn udp4() -> Vec<u8> {
    let b = PacketBuilder::ethernet2(M1, M2)
        .ipv4([198, 18, 0, 1], [198, 18, 1, 1], 64)
        .udp(40000, 53);
    let mut v = Vec::new();
    b.write(&mut v, &[0u8; 18]).unwrap();
    v
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_frame");
    for (name, f) in [("tcp4", tcp4()), ("tcp6", tcp6()), ("udp4", udp4())] {
        assert!(matches!(wire::parse_frame(&f), Ok(wire::Parsed::Ip(_))));
        g.bench_function(name, |b| b.iter(|| wire::parse_frame(black_box(&f))));
    }
    g.finish();

    let mut g = c.benchmark_group("checksum");
    for n in [64usize, 1500] {
        let data: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_function(format!("{n}B"), |b| {
            b.iter(|| checksum::data(black_box(&data)))
        });
    }
    g.bench_function("update32", |b| {
        b.iter(|| {
            checksum::update32(
                black_box(0x1234),
                black_box(0xc612_0001),
                black_box(0x0a00_0002),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
