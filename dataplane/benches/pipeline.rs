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
//! - `floor`: frames of an unknown ethertype, dropped at the first test: the cost of the
//!   harness (inject, rx, recycle) and the loop that the others include.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use xvs_dataplane::io::mem::MemIo;
use xvs_dataplane::testutil::rig;
use xvs_dataplane::worker::Worker;

const BURST: usize = 32;

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
        let (mut w, conns) = rig::worker(20, n as usize + 1024, 4 * BURST);
        for chunk in (0..n).collect::<Vec<_>>().chunks(BURST) {
            let frames: Vec<Vec<u8>> = chunk.iter().map(|&i| rig::syn(i)).collect();
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
                        rig::data(x % n)
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
        .map(|ch| ch.iter().map(|&i| rig::syn(i)).collect())
        .collect();
    let (mut w, conns) = rig::worker(20, POOL as usize + 1024, 4 * BURST);
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

/// The harness alone: frames of an unknown ethertype, dropped at the first byte test (inject,
/// rx, classify, recycle). What the other benchmarks spend outside the pipeline proper.
fn floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    let (mut w, _conns) = rig::worker(12, 1024, 4 * BURST);
    let frames: Vec<Vec<u8>> = (0..BURST as u32)
        .map(|i| {
            let mut f = rig::data(i);
            f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            f
        })
        .collect();
    g.bench_function("floor", |b| {
        b.iter(|| {
            for f in &frames {
                w.io_mut().inject(0, f);
            }
            w.poll(2);
        });
    });
    g.finish();
}

criterion_group!(benches, floor, established, new_conn);
criterion_main!(benches);
