//! Conn table micro benchmarks: lookup hit and insert with 1k, 1M and 10M conns, plus the
//! memory a filled table takes (heap accounting and RSS growth, per conn).
//!
//! Run: `cargo bench -p xvs-dataplane --bench conn` (set `XVS_CONN_BENCH_SIZES=1000,1000000`
//! to pick sizes). Keys are IPv4 NAT conns with distinct (client address, client port); lookups
//! walk the keys in a scrambled order so caches see a realistic miss rate at 1M/10M.
#![allow(missing_docs, clippy::cast_possible_truncation, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use xvs_dataplane::conn::{ConnTable, NewConn};
use xvs_dataplane::flow::{ConnTuple, proto};
use xvs_dataplane::service::{DestConf, DestState, FwdMode, ServiceState, Timeouts, TunConf};

const T: Timeouts = Timeouts {
    tcp: 900,
    tcp_fin: 120,
    udp: 300,
};

fn tuple(i: u64) -> ConnTuple {
    // 50k ports per client address, clients spread over 10/8.
    let c = Ipv4Addr::from(0x0a00_0000u32 + (i / 50_000) as u32);
    let cport = 10_000 + (i % 50_000) as u16;
    ConnTuple {
        proto: proto::TCP,
        caddr: IpAddr::V4(c),
        vaddr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
        daddr: IpAddr::V4(Ipv4Addr::new(198, 19, 0, 2)),
        laddr: IpAddr::V4(c),
        cport,
        vport: 80,
        dport: 8080,
        lport: cport,
    }
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

struct Setup {
    table: ConnTable,
    dest: Arc<DestState>,
    svc: Arc<ServiceState>,
    n: u64,
}

fn new_conn(s: &Setup, tu: ConnTuple) -> NewConn {
    NewConn {
        tuple: tu,
        fwd: FwdMode::Masq,
        tun: TunConf::default(),
        dest: Arc::clone(&s.dest),
        svc: Arc::clone(&s.svc),
        control: None,
        one_packet: false,
        tcp_flags: 0x02,
        len: 60,
    }
}

fn setup(n: u64) -> Setup {
    let conf = DestConf {
        addr: IpAddr::V4(Ipv4Addr::new(198, 19, 0, 2)),
        port: 8080,
        fwd: FwdMode::Masq,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
        tun: TunConf::default(),
    };
    let rss0 = rss_bytes();
    // conn_tab_bits as an operator would size the table for n conns (8..=20).
    let bits = (64 - n.leading_zeros()).clamp(8, 20) as u8;
    let table = ConnTable::with_bits(bits, n as usize + 1_000_000, 1).unwrap();
    let s = Setup {
        table,
        dest: Arc::new(DestState::new(&conf, 1)),
        svc: Arc::new(ServiceState::new(1)),
        n,
    };
    let t0 = Instant::now();
    for i in 0..n {
        s.table.create(new_conn(&s, tuple(i)), 0, 0, &T).unwrap();
    }
    let fill = t0.elapsed();
    let rss = rss_bytes().saturating_sub(rss0);
    println!(
        "conns {n} (conn_tab_bits {bits}): fill {:.1} ns/conn; heap {:.1} B/conn (max {}), RSS growth {:.1} B/conn; slot {} B, bytes_per_conn() {} B",
        fill.as_nanos() as f64 / n as f64,
        s.table.memory_bytes() as f64 / n as f64,
        s.table.max_conns(),
        rss as f64 / n as f64,
        ConnTable::slot_size(false),
        ConnTable::bytes_per_conn(),
    );
    s
}

/// Nanoseconds this thread has spent on a CPU (`/proc/thread-self/schedstat`): unlike wall
/// time it does not grow while other processes hold the cores.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `XVS_CONN_BENCH_RAW=1`: plain loops timed in on-CPU nanoseconds, for a loaded machine.
fn raw(n: u64) {
    let s = setup(n);
    let m = n.next_power_of_two();
    let mut x = 1u64;
    let ops = 2_000_000u64;
    let (w0, c0) = (Instant::now(), cpu_ns());
    for now in 0..ops {
        loop {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1) & (m - 1);
            if x < s.n {
                break;
            }
        }
        let k = tuple(x).in_key();
        black_box(s.table.lookup(&k, 0x10, 100, now + 1, 0, &T));
    }
    let (w1, c1) = (w0.elapsed(), cpu_ns());
    // Steady state: insert a batch (timed), remove it (untimed), so slots are reused and the
    // table stays at n conns.
    let (batch, rounds) = (1000u64, 500u64);
    let ins = batch * rounds;
    let mut spent = 0;
    for r in 0..rounds {
        let base = n + (r % 100) * batch;
        let c = cpu_ns();
        for i in 0..batch {
            black_box(s.table.create(new_conn(&s, tuple(base + i)), 0, 0, &T).ok());
        }
        spent += cpu_ns() - c;
        for i in 0..batch {
            s.table.remove(&tuple(base + i).in_key());
        }
    }
    let (c2, c3) = (0, spent);
    println!(
        "raw conns {n}: lookup_hit {:.1} ns on-CPU ({:.1} ns wall), insert {:.1} ns on-CPU",
        (c1 - c0) as f64 / ops as f64,
        w1.as_nanos() as f64 / ops as f64,
        (c3 - c2) as f64 / ins as f64,
    );
}

fn sizes() -> Vec<u64> {
    std::env::var("XVS_CONN_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 1_000_000, 10_000_000])
}

fn bench(c: &mut Criterion) {
    if std::env::var_os("XVS_CONN_BENCH_RAW").is_some() {
        for n in sizes() {
            raw(n);
        }
        return;
    }
    let mut g = c.benchmark_group("conn");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in sizes() {
        let s = setup(n);
        // A full-period LCG over a power of two >= n scrambles the visiting order.
        let m = n.next_power_of_two();
        let mut x = 1u64;
        let mut now = 1u64;
        g.bench_with_input(BenchmarkId::new("lookup_hit", n), &n, |b, _| {
            b.iter(|| {
                loop {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1) & (m - 1);
                    if x < s.n {
                        break;
                    }
                }
                now += 1;
                let k = tuple(x).in_key();
                black_box(s.table.lookup(&k, 0x10, 100, now, 0, &T))
            });
        });
        let mut next = s.n;
        g.bench_with_input(BenchmarkId::new("insert", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let first = next;
                let t0 = Instant::now();
                for i in 0..iters {
                    black_box(
                        s.table
                            .create(new_conn(&s, tuple(first + i)), 0, 0, &T)
                            .ok(),
                    );
                }
                let el = t0.elapsed();
                // Keep the table at n conns: remove what was inserted (untimed).
                for i in 0..iters {
                    s.table.remove(&tuple(first + i).in_key());
                }
                next = first + iters;
                if next > s.n + 900_000 {
                    next = s.n;
                }
                el
            });
        });
        drop(s);
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
