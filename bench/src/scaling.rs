//! Scaling of the per-core pipeline: the whole worker turn (parse, conn lookup, NAT rewrite,
//! neighbour, L2) on `MemIo`, run by 1 or more threads that share one conn table and one
//! director, as live workers do. Each thread owns its own clients' conns (created by SYNs
//! before the clock starts) and then pushes bursts of 32 data packets through its worker.
//!
//! Invariants: threads start together (a barrier) and the rate is total packets over the
//! slowest thread's time; no packet may be dropped (checked, reported as an error).
//! It measures CPU work only: no NIC, no copies beyond MemIo's inject.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use xvs_dataplane::io::mem::MemIo;
use xvs_dataplane::testutil::rig;
use xvs_dataplane::worker::Worker;

const BURST: usize = 32;

/// One scaling measurement.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Scaling {
    /// Worker threads.
    pub threads: usize,
    /// Conns in the shared table.
    pub conns: usize,
    /// Packets per second, all threads together.
    pub pps: f64,
}

fn burst(w: &mut Worker<MemIo>, frames: &[Vec<u8>], now: u64) {
    for f in frames {
        w.io_mut().inject(0, f);
    }
    w.poll(now);
    w.io_mut().discard_tx();
}

/// Run `threads` workers over one shared table, `conns_per_thread` conns each, for `secs`.
///
/// # Errors
/// Setup failures, a worker that dropped packets, or a thread that panicked.
// Rates are f64 reports of counters below 2^53.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
pub fn run(threads: usize, conns_per_thread: u32, secs: f64) -> Result<Scaling> {
    let threads = threads.max(1);
    let total = conns_per_thread as usize * threads;
    // The director of the MemIo benches: one NAT service, wlc over 4 dests, static neighbours.
    let (shared, conns) = rig::shared(20, total + 4096, threads);
    let barrier = Arc::new(Barrier::new(threads));
    let mut handles = Vec::new();
    for t in 0..threads {
        let (shared, barrier) = (Arc::clone(&shared), Arc::clone(&barrier));
        let base = t as u32 * conns_per_thread;
        handles.push(std::thread::spawn(move || -> Result<(u64, Duration)> {
            let mut w = Worker::new(t, MemIo::new(4 * BURST, vec![rig::D0, rig::D1]), shared);
            let ids: Vec<u32> = (base..base + conns_per_thread).collect();
            for ch in ids.chunks(BURST) {
                let syns: Vec<Vec<u8>> = ch.iter().map(|&i| rig::syn(i)).collect();
                burst(&mut w, &syns, 1);
            }
            // 64 bursts of data packets of pseudo-randomly chosen conns of this thread.
            let mut x = 0x9e37_79b9u32 ^ base;
            let bursts: Vec<Vec<Vec<u8>>> = (0..64)
                .map(|_| {
                    (0..BURST)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 17;
                            x ^= x << 5;
                            rig::data(base + x % conns_per_thread.max(1))
                        })
                        .collect()
                })
                .collect();
            let before = w.stats().dropped();
            barrier.wait();
            let t0 = Instant::now();
            let limit = Duration::from_secs_f64(secs);
            let mut k = 0usize;
            let mut pkts = 0u64;
            while t0.elapsed() < limit {
                for _ in 0..64 {
                    burst(&mut w, &bursts[k % bursts.len()], 2);
                    k += 1;
                    pkts += BURST as u64;
                }
            }
            let dt = t0.elapsed();
            let dropped = w.stats().dropped() - before;
            if dropped > 0 {
                bail!("worker {t} dropped {dropped} packets");
            }
            Ok((pkts, dt))
        }));
    }
    let mut pkts = 0u64;
    let mut slowest = Duration::ZERO;
    for h in handles {
        let (p, d) = h
            .join()
            .map_err(|_| anyhow!("a scaling thread panicked"))??;
        pkts += p;
        slowest = slowest.max(d);
    }
    Ok(Scaling {
        threads,
        conns: conns.len(),
        pps: pkts as f64 / slowest.as_secs_f64().max(1e-9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_threads_share_one_table_without_drops() {
        let s = run(2, 500, 0.05).unwrap();
        assert_eq!(s.threads, 2);
        assert_eq!(s.conns, 1000, "both threads' conns are in the one table");
        assert!(s.pps > 0.0);
    }
}
