//! The hot path allocates nothing: a counting global allocator sees zero allocations while
//! 10,000 established-flow packets and 2,000 new connections (NAT, both directions) go
//! through `Worker<MemIo>` after warm-up.
#![allow(clippy::unwrap_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::*;
use xvs_dataplane::testutil as tu;
use xvs_dataplane::wire::tcp::flags::{ACK, PSH, SYN};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours, passed through.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn no_allocation_per_packet_after_warm_up() {
    let (mut w, _d, _c) = worker();
    let (c, v, r) = ("198.18.1.2", "198.18.1.100", "198.18.2.10");
    let syn = tu::tcp(C_MAC, D0, ip(c), 40000, ip(v), 80, SYN, b"");
    let synack = tu::tcp(R_MAC, D1, ip(r), 8080, ip(c), 40000, SYN | ACK, b"");
    let data_in = tu::tcp(C_MAC, D0, ip(c), 40000, ip(v), 80, ACK | PSH, &[7; 100]);
    let data_out = tu::tcp(R_MAC, D1, ip(r), 8080, ip(c), 40000, ACK | PSH, &[8; 1000]);
    let new_syns: Vec<Vec<u8>> = (0..2_000u16)
        .map(|i| tu::tcp(C_MAC, D0, ip(c), 10_000 + i, ip(v), 80, SYN, b""))
        .collect();
    // Warm-up: the conn, the neighbour map, the first bursts.
    for f in [&syn, &synack, &data_in, &data_out] {
        assert_eq!(step(&mut w, 0, f, 1).len(), 1);
    }
    let sent_before = w.stats().tx_packets;
    COUNTING.store(true, Ordering::SeqCst);
    let mut now = 2;
    for i in 0..10_000u32 {
        // Runs of client packets (looked up in pairs) between replies.
        let (port, f) = if i % 4 != 3 {
            (0, &data_in)
        } else {
            (1, &data_out)
        };
        w.io_mut().inject(port, f);
        if i % 32 == 31 {
            w.poll(now);
            w.io_mut().discard_tx();
            now += 1;
        }
    }
    for (i, f) in new_syns.iter().enumerate() {
        w.io_mut().inject(0, f);
        if i % 32 == 31 {
            w.poll(now);
            w.io_mut().discard_tx();
            now += 1;
        }
    }
    w.poll(now);
    w.io_mut().discard_tx();
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    let sent = w.stats().tx_packets - sent_before;
    assert_eq!(
        sent,
        12_000,
        "every packet forwarded (drops: {:?})",
        w.stats().drops
    );
    assert_eq!(allocs, 0, "allocations on the hot path over {sent} packets");
}
