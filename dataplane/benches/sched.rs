//! `pick` cost per scheduler with 2, 16 and 256 dests.
//!
//! Each iteration schedules one new connection from a rotating set of 4096 clients (sources
//! for sh/mh, destinations for dh/lblc/lblcr) against dests with mixed weights (1..=4) and
//! mixed conn counts, none overloaded. Counters do not change between picks (no conn is
//! bound), so lc-style schedulers scan the same loads each time: the figure is the scan cost.
//! Run: `cargo bench -p xvs-dataplane --bench sched`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use xvs_dataplane::flow::{FlowKey, proto};
use xvs_dataplane::sched::{AnyScheduler, NAMES};
use xvs_dataplane::service::{Dest, DestConf, DestId, DestState, FwdMode, TunConf};

fn make_dests(n: u32) -> Vec<Dest> {
    (0..n)
        .map(|i| {
            let conf = DestConf {
                addr: IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i)),
                port: 80,
                fwd: FwdMode::Route,
                weight: i32::try_from(1 + i % 4).unwrap_or(1),
                u_threshold: 0,
                l_threshold: 0,
                tun: TunConf::default(),
            };
            let state = Arc::new(DestState::new(&conf, 1));
            // Loads spread so the least-connection scans do real comparisons.
            let x = i.wrapping_mul(2_654_435_761) >> 20;
            state.activeconns.store(x % 50, Ordering::Relaxed);
            state.inactconns.store(x % 300, Ordering::Relaxed);
            Dest {
                id: DestId(i),
                conf,
                state,
            }
        })
        .collect()
}

fn make_keys() -> Vec<FlowKey> {
    (0..4096u32)
        .map(|i| {
            let a = IpAddr::V4(Ipv4Addr::from(0xc0a8_0000 + i.wrapping_mul(40_503)));
            FlowKey {
                proto: proto::TCP,
                src: a,
                dst: a,
                sport: u16::try_from(1024 + (i % 60_000)).unwrap_or(1024),
                dport: 80,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let keys = make_keys();
    let mut g = c.benchmark_group("sched_pick");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    for &n in &[2u32, 16, 256] {
        let dests = make_dests(n);
        for name in NAMES {
            let Ok(mut s) = AnyScheduler::build(name, 0, &dests) else {
                continue;
            };
            let mut k = 0usize;
            let mut now = 0u64;
            g.bench_with_input(BenchmarkId::new(*name, n), &n, |b, _| {
                b.iter(|| {
                    k = (k + 1) & 4095;
                    now += 1;
                    black_box(s.pick(&dests, &keys[k], now))
                });
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
