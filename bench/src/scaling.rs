//! Scaling of the per-core pipeline: the whole worker turn (parse, conn lookup, NAT rewrite,
//! neighbour, L2) on `MemIo`, run by 1 or more threads that share one conn table and one
//! director, as live workers do. Each thread owns its own clients' conns (created by SYNs
//! before the clock starts) and then pushes bursts of 32 data packets through its worker.
//!
//! Invariants: threads start together (a barrier) and the rate is total packets over the
//! slowest thread's time; no packet may be dropped (checked, reported as an error).
//! It measures CPU work only: no NIC, no copies beyond MemIo's inject.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
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
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 100);

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

fn net() -> NetConf {
    let a = |s: [u8; 4], p| PortAddr {
        addr: IpAddr::V4(Ipv4Addr::from(s)),
        prefix: p,
    };
    NetConf {
        ports: vec![
            PortConf {
                name: "p0".into(),
                mac: D0,
                addrs: vec![a([198, 18, 1, 1], 16)],
                mtu: 1500,
            },
            PortConf {
                name: "p1".into(),
                mac: D1,
                addrs: vec![a([198, 18, 2, 1], 24)],
                mtu: 1500,
            },
        ],
        routes: vec![],
        neigh: (0..4u8)
            .map(|i| {
                (
                    IpAddr::V4(Ipv4Addr::new(198, 18, 2, 10 + i)),
                    [2, 0, 0, 0, 0, 0xa0 + i],
                )
            })
            .collect(),
    }
}

fn config() -> Config {
    let dests = (0..4u8)
        .map(|i| DestConf {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 2, 10 + i)),
            port: 8080,
            fwd: FwdMode::Masq,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun: TunConf::default(),
        })
        .collect();
    Config {
        services: vec![ServiceConf {
            key: ServiceKey::Inet {
                proto: Protocol::Tcp,
                addr: IpAddr::V4(VIP),
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
    }
}

/// Client `i`: a distinct (address, port) pair.
// Ports stay below 65536 by construction.
#[allow(clippy::cast_possible_truncation)]
fn client(i: u32) -> (IpAddr, u16) {
    let a = Ipv4Addr::from(0xc612_4000 | (i / 50_000));
    (IpAddr::V4(a), 10_000 + (i % 50_000) as u16)
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
    let director = Arc::new(Director::new(threads));
    director.apply(&config()).map_err(|e| anyhow!("{e}"))?;
    let total = conns_per_thread as usize * threads;
    let conns =
        Arc::new(ConnTable::with_bits(20, total + 4096, threads).map_err(|e| anyhow!("{e}"))?);
    let shared = Arc::new(Shared::new(director, Arc::clone(&conns), net(), threads)?);
    let barrier = Arc::new(Barrier::new(threads));
    let mut handles = Vec::new();
    for t in 0..threads {
        let (shared, barrier) = (Arc::clone(&shared), Arc::clone(&barrier));
        let base = t as u32 * conns_per_thread;
        handles.push(std::thread::spawn(move || -> Result<(u64, Duration)> {
            let mut w = Worker::new(t, MemIo::new(4 * BURST, vec![D0, D1]), shared);
            let ids: Vec<u32> = (base..base + conns_per_thread).collect();
            for ch in ids.chunks(BURST) {
                let syns: Vec<Vec<u8>> = ch
                    .iter()
                    .map(|&i| {
                        let (a, p) = client(i);
                        tu::tcp(C, D0, a, p, IpAddr::V4(VIP), 80, SYN, b"")
                    })
                    .collect();
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
                            let (a, p) = client(base + x % conns_per_thread.max(1));
                            tu::tcp(C, D0, a, p, IpAddr::V4(VIP), 80, ACK | PSH, &[0u8; 40])
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
