//! The whole per-core pipeline on `MemIo`: frames in, parse, conn lookup (or scheduling and
//! conn creation), NAT rewrite, route, neighbour, L2, frames out.
//!
//! Run: `cargo bench -p xvs-dataplane --bench pipeline`. Each iteration injects one burst of
//! 32 frames into `MemIo` (a 60-100 byte copy per frame, standing in for the NIC's DMA),
//! runs one worker turn and returns the transmitted chunks to the pool; criterion reports
//! the time per packet (Throughput::Elements).
//! - `established/N`: data packets of N established NAT conns, in a pseudo-random order
//!   (N = 1k and 1M conns in the table).
//! - `new_conn`: SYNs that each create a conn (wlc over 4 dests); the table is emptied between
//!   samples (outside the timing) so it never fills.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use xvs_dataplane::conn::ConnTable;
use xvs_dataplane::director::Director;
use xvs_dataplane::io::mem::MemIo;
use xvs_dataplane::neigh::{NetConf, PortAddr, PortConf};
use xvs_dataplane::service::{
    Config, DestConf, FwdMode, Protocol, ServiceConf, ServiceKey, TunConf,
};
use xvs_dataplane::testutil as tu;
use xvs_dataplane::wire::tcp::flags::{ACK, PSH, SYN};
use xvs_dataplane::worker::{Shared, Worker};

const D0: [u8; 6] = [2, 0, 0, 0, 0, 1];
const D1: [u8; 6] = [2, 0, 0, 0, 0, 2];
const C: [u8; 6] = [2, 0, 0, 0, 0, 0xc1];
const BURST: usize = 32;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn setup(max_conns: usize) -> (Worker<MemIo>, Arc<ConnTable>) {
    let dests = (0..4)
        .map(|i| DestConf {
            addr: ip(&format!("198.18.2.{}", 10 + i)),
            port: 8080,
            fwd: FwdMode::Masq,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun: TunConf::default(),
        })
        .collect();
    let cfg = Config {
        services: vec![ServiceConf {
            key: ServiceKey::Inet {
                proto: Protocol::Tcp,
                addr: ip("198.18.1.100"),
                port: 80,
            },
            sched_name: "wlc".into(),
            flags: 0,
            timeout_s: 0,
            netmask: u32::MAX,
            pe_name: None,
            dests,
            laddrs: vec![],
        }],
        ..Config::default()
    };
    let director = Arc::new(Director::new(1));
    director.apply(&cfg).unwrap();
    let conns = Arc::new(ConnTable::with_bits(20, max_conns, 1).unwrap());
    let mut neigh = vec![];
    for i in 0..4 {
        neigh.push((
            ip(&format!("198.18.2.{}", 10 + i)),
            [2, 0, 0, 0, 0, 0xa0 + i as u8],
        ));
    }
    let net = NetConf {
        ports: vec![
            PortConf {
                name: "p0".into(),
                mac: D0,
                addrs: vec![PortAddr {
                    addr: ip("198.18.1.1"),
                    prefix: 16,
                }],
                mtu: 1500,
            },
            PortConf {
                name: "p1".into(),
                mac: D1,
                addrs: vec![PortAddr {
                    addr: ip("198.18.2.1"),
                    prefix: 24,
                }],
                mtu: 1500,
            },
        ],
        routes: vec![],
        neigh,
    };
    let shared = Arc::new(Shared::new(director, Arc::clone(&conns), net, 1).unwrap());
    (
        Worker::new(0, MemIo::new(4 * BURST, vec![D0, D1]), shared),
        conns,
    )
}

/// Client `i`: a distinct (address, port) pair in 198.18.0.0/16 x ports.
fn client(i: u32) -> (IpAddr, u16) {
    let a = Ipv4Addr::from(0xc612_0000 | ((i / 50_000) & 0xffff));
    (IpAddr::V4(a), 10_000 + (i % 50_000) as u16)
}

fn syn(i: u32) -> Vec<u8> {
    let (a, p) = client(i);
    tu::tcp(C, D0, a, p, ip("198.18.1.100"), 80, SYN, b"")
}

fn run_burst(w: &mut Worker<MemIo>, frames: &[Vec<u8>], now: u64) {
    for f in frames {
        w.io_mut().inject(0, f);
    }
    w.poll(now);
    w.io_mut().discard_tx();
}

fn established(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    for n in [1_000u32, 1_000_000] {
        let (mut w, conns) = setup(n as usize + 1024);
        for chunk in (0..n).collect::<Vec<_>>().chunks(BURST) {
            let frames: Vec<Vec<u8>> = chunk.iter().map(|&i| syn(i)).collect();
            run_burst(&mut w, &frames, 1);
        }
        assert_eq!(conns.len(), n as usize);
        // 64 bursts of data packets of pseudo-randomly chosen conns.
        let mut x = 0x9e37_79b9u32;
        let bursts: Vec<Vec<Vec<u8>>> = (0..64)
            .map(|_| {
                (0..BURST)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        let (a, p) = client(x % n);
                        tu::tcp(C, D0, a, p, ip("198.18.1.100"), 80, ACK | PSH, &[0u8; 40])
                    })
                    .collect()
            })
            .collect();
        let mut k = 0;
        g.bench_function(format!("established/{n}"), |b| {
            b.iter(|| {
                run_burst(&mut w, &bursts[k % bursts.len()], 2);
                k += 1;
            });
        });
        let st = w.stats();
        assert_eq!(st.dropped(), 0, "no drops in the bench: {:?}", st.drops);
    }
    g.finish();
}

fn new_conn(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    const POOL: u32 = 200_000;
    let syns: Vec<Vec<Vec<u8>>> = (0..POOL)
        .collect::<Vec<_>>()
        .chunks(BURST)
        .map(|ch| ch.iter().map(|&i| syn(i)).collect())
        .collect();
    let (mut w, conns) = setup(POOL as usize + 1024);
    g.bench_function("new_conn", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut next = 0usize;
            for _ in 0..iters {
                if next == syns.len() {
                    conns.flush();
                    next = 0;
                }
                let t0 = Instant::now();
                run_burst(&mut w, &syns[next], 3);
                total += t0.elapsed();
                next += 1;
            }
            conns.flush();
            total
        });
    });
    g.finish();
}

criterion_group!(benches, established, new_conn);
criterion_main!(benches);
