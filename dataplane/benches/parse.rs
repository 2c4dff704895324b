//! Criterion benches for the wire layer (the per-frame summary parser, the checksum loop) and
//! the per-packet forwarding rewrite.
//!
//! Run: `cargo bench -p xvs-dataplane --bench parse`.
//! Frames are built with etherparse (the same shape `testutil` builds) so the bench needs no
//! crate feature.

// Bench setup may panic: a broken fixture should stop the bench loudly.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etherparse::PacketBuilder;
use xvs_dataplane::flow::{ConnTuple, Dir};
use xvs_dataplane::fwd::{self, FwdConn, FwdCtx};
use xvs_dataplane::io::{CHUNK_SIZE, Desc, Frame, HEADROOM};
use xvs_dataplane::service::{FwdMode, TunConf, TunType};
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

/// `fwd::rewrite` on an established TCP/IPv4 conn: NAT both ways, DR, TUN (IPIP, GUE) and
/// FULLNAT. Each iteration first restores the frame (a 118-byte copy, included in the figure).
fn bench_fwd(c: &mut Criterion) {
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let tuple = ConnTuple {
        proto: 6,
        caddr: ip("198.18.0.1"),
        vaddr: ip("198.18.1.1"),
        daddr: ip("198.18.2.1"),
        laddr: ip("198.18.3.1"),
        cport: 40000,
        vport: 80,
        dport: 8080,
        lport: 5000,
    };
    let request = tcp4();
    let reply = {
        let b = PacketBuilder::ethernet2(M1, M2)
            .ipv4([198, 18, 2, 1], [198, 18, 0, 1], 64)
            .tcp(8080, 40000, 1000, 64240)
            .ack(1);
        let mut v = Vec::new();
        b.write(&mut v, &[0u8; 64]).unwrap();
        v
    };
    let ctx = FwdCtx {
        src_v4: Some("198.18.2.254".parse().unwrap()),
        src_v6: None,
        mtu: 1500,
        complete_partial: false,
    };
    let cases = [
        (
            "nat_in",
            FwdMode::Masq,
            TunConf::default(),
            Dir::Input,
            &request,
        ),
        (
            "nat_out",
            FwdMode::Masq,
            TunConf::default(),
            Dir::Output,
            &reply,
        ),
        (
            "dr",
            FwdMode::Route,
            TunConf::default(),
            Dir::Input,
            &request,
        ),
        (
            "tun_ipip",
            FwdMode::Tunnel,
            TunConf::default(),
            Dir::Input,
            &request,
        ),
        (
            "tun_gue",
            FwdMode::Tunnel,
            TunConf {
                kind: TunType::Gue,
                port: 6080,
                flags: 0,
            },
            Dir::Input,
            &request,
        ),
        (
            "fullnat_in",
            FwdMode::FullNat,
            TunConf::default(),
            Dir::Input,
            &request,
        ),
    ];
    let mut g = c.benchmark_group("fwd_rewrite");
    for (name, mode, tun, dir, frame) in cases {
        let conn = FwdConn { tuple, mode, tun };
        let wire::Parsed::Ip(info) = wire::parse_frame(frame).unwrap() else {
            panic!()
        };
        let mut chunk = vec![0u8; CHUNK_SIZE];
        g.bench_function(name, |b| {
            b.iter(|| {
                chunk[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
                let mut d = Desc {
                    addr: HEADROOM as u64,
                    len: frame.len() as u32,
                    port: 0,
                };
                let mut f = Frame::new(&mut chunk, &mut d);
                black_box(fwd::rewrite(&conn, dir, &mut f, black_box(&info), &ctx))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_fwd);
criterion_main!(benches);
