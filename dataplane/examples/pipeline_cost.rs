//! A deterministic per-packet cost probe for `valgrind --tool=callgrind`: sets up one NAT
//! service over four dests on `MemIo`, then pushes `N` packets down one path and exits.
//!
//! `cargo build --release -p xvs-dataplane --example pipeline_cost --features testutil`, then
//! `valgrind --tool=callgrind target/release/examples/pipeline_cost established 10000` (and with
//! 20000): the difference of the two instruction totals divided by 10000 is the instructions
//! per packet, independent of machine load. Paths: `established`, `new`.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

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

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "established".into());
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
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
    let conns = Arc::new(ConnTable::with_bits(12, 100_000, 1).unwrap());
    let neigh = (0..4)
        .map(|i| {
            (
                ip(&format!("198.18.2.{}", 10 + i)),
                [2, 0, 0, 0, 0, 0xa0 + i as u8],
            )
        })
        .collect();
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
    let mut w = Worker::new(0, MemIo::new(4 * BURST, vec![D0, D1]), shared);
    let client = |i: u32| {
        (
            IpAddr::V4(Ipv4Addr::from(0xc612_0000 | (i / 50_000))),
            10_000 + (i % 50_000) as u16,
        )
    };
    // A fixed pool of frames whatever N, so the difference of two runs is pipeline work only.
    let pool: u32 = if path == "new" { 40_000 } else { 1000 };
    assert!(path != "new" || n <= pool, "new: at most {pool} packets");
    let frames: Vec<Vec<u8>> = match path.as_str() {
        "new" => (0..pool)
            .map(|i| {
                let (a, p) = client(i);
                tu::tcp(C, D0, a, p, ip("198.18.1.100"), 80, SYN, b"")
            })
            .collect(),
        _ => {
            // 1000 established conns, then data packets round-robin over them.
            for i in 0..1000 {
                let (a, p) = client(i);
                w.io_mut()
                    .inject(0, &tu::tcp(C, D0, a, p, ip("198.18.1.100"), 80, SYN, b""));
                w.poll(1);
                w.io_mut().discard_tx();
            }
            (0..pool)
                .map(|i| {
                    let (a, p) = client(i);
                    tu::tcp(C, D0, a, p, ip("198.18.1.100"), 80, ACK | PSH, &[0u8; 40])
                })
                .collect()
        }
    };
    let mut sent = 0;
    while sent < n as usize {
        for k in 0..BURST.min(n as usize - sent) {
            w.io_mut().inject(0, &frames[(sent + k) % frames.len()]);
        }
        sent += BURST.min(n as usize - sent);
        w.poll(2);
        w.io_mut().discard_tx();
    }
    println!(
        "{path}: {} packets, {} sent, {} dropped",
        n,
        w.stats().tx_packets,
        w.stats().dropped()
    );
}
