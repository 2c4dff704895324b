//! A deterministic per-packet cost probe for `valgrind --tool=callgrind`: the NAT rig of
//! `testutil::rig` (one service, four dests) on `MemIo`, then `N` packets down one path.
//!
//! `cargo build --release -p xvs-dataplane --example pipeline_cost`, then
//! `valgrind --tool=callgrind target/release/examples/pipeline_cost established 10000` (and with
//! 20000): the difference of the two instruction totals divided by 10000 is the instructions
//! per packet, independent of machine load. Paths: `established` (1000 conns, data segments
//! round robin over them), `new` (a SYN per packet, each a new conn; N <= 40000), `floor`
//! (frames of an unknown ethertype: what injecting, receiving, classifying and recycling cost,
//! i.e. the harness and loop that the other two paths include).
#![allow(clippy::unwrap_used)]

use xvs_dataplane::testutil::rig;

const BURST: usize = 32;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "established".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    // conn_tab_bits sized for the load, as an operator would (16: 64k entries reserved, so the
    // `new` path measures inserts, not index growth).
    let (mut w, _conns) = rig::worker(16, 100_000, 4 * BURST);
    // A fixed pool of frames whatever N, so the difference of two runs is pipeline work only.
    let frames: Vec<Vec<u8>> = if path == "floor" {
        // The harness and loop alone: frames of an unknown ethertype, dropped at the first
        // byte test (inject, rx, classify, recycle).
        (0..1000)
            .map(|i| {
                let mut f = rig::data(i);
                f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
                f
            })
            .collect()
    } else if path == "new" {
        assert!(n <= 40_000, "new: at most 40000 packets");
        (0..40_000).map(rig::syn).collect()
    } else {
        for i in 0..1000 {
            w.io_mut().inject(0, &rig::syn(i));
            w.poll(1);
            w.io_mut().discard_tx();
        }
        (0..1000).map(rig::data).collect()
    };
    let mut sent = 0;
    while sent < n {
        let k = BURST.min(n - sent);
        for j in 0..k {
            w.io_mut().inject(0, &frames[(sent + j) % frames.len()]);
        }
        sent += k;
        w.poll(2);
        w.io_mut().discard_tx();
    }
    println!(
        "{path}: {n} packets, {} sent, {} dropped",
        w.stats().tx_packets,
        w.stats().dropped()
    );
    // Skip the teardown: dropping N conns would be counted as per-packet cost.
    std::process::exit(0);
}
