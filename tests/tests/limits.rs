//! The conn table limit through the whole pipeline (`Worker<MemIo>` on the fixed director of
//! `dataplane/tests/common`; no namespaces, no root): once `max_conns` entries exist, a new
//! connection is dropped and counted as `ConnTableFull` (IPVS drops when it cannot allocate a
//! conn) while established ones keep flowing both ways, the table's memory does not grow
//! under a flood of new connections, and expired conns make room again.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

#[path = "../../dataplane/tests/common/mod.rs"]
mod common;

use std::net::Ipv4Addr;

use common::*;
use xvs_dataplane::stats::DropReason;
use xvs_dataplane::testutil::{self as tu, verify_checksums};
use xvs_dataplane::wire::tcp::flags::{ACK, PSH, SYN};

const MAX: usize = 64;
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 100);
const RIP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 10);
const CIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

#[test]
fn full_table_drops_new_conns_and_keeps_old_ones() {
    let (mut w, _, conns) = worker_with(&config(), MAX);
    let mut now = 1000;
    let drops =
        |w: &xvs_dataplane::worker::Worker<_>| w.stats().drops[DropReason::ConnTableFull as usize];

    // Fill the table.
    for i in 0..MAX as u16 {
        let syn = tu::tcp4(C_MAC, D0, CIP, 10_000 + i, VIP, 80, SYN, b"");
        let out = step(&mut w, 0, &syn, now);
        assert_eq!(out.len(), 1, "SYN {i} not forwarded");
    }
    assert_eq!(conns.len(), MAX);
    let mem_full = conns.memory_bytes();

    // A flood of new conns from many sources: every one dropped and counted.
    let flood = 20 * MAX as u32;
    for i in 0..flood {
        let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 1, 0)) + 2 + (i % 200));
        let syn = tu::tcp4(C_MAC, D0, src, 20_000 + (i / 200) as u16, VIP, 80, SYN, b"");
        now += 1;
        assert!(
            step(&mut w, 0, &syn, now).is_empty(),
            "SYN {i} passed a full table"
        );
    }
    assert_eq!(drops(&w), u64::from(flood));
    assert_eq!(conns.len(), MAX);
    assert!(
        conns.memory_bytes() <= mem_full,
        "memory grew under the flood: {} -> {}",
        mem_full,
        conns.memory_bytes()
    );

    // The established conns still flow, both ways, with correct checksums.
    for i in 0..MAX as u16 {
        now += 1;
        let data = tu::tcp4(C_MAC, D0, CIP, 10_000 + i, VIP, 80, ACK | PSH, b"GET /");
        let out = step(&mut w, 0, &data, now);
        assert_eq!(out.len(), 1, "conn {i} lost");
        assert_eq!(out[0].0, 1);
        verify_checksums(&out[0].1).unwrap();
        let reply = tu::tcp4(R_MAC, D1, RIP, 8080, CIP, 10_000 + i, ACK | PSH, b"200 OK");
        let out = step(&mut w, 1, &reply, now);
        assert_eq!(out.len(), 1, "reply of conn {i} lost");
        assert_eq!(out[0].0, 0);
        verify_checksums(&out[0].1).unwrap();
    }
    assert_eq!(drops(&w), u64::from(flood));

    // Once the conns expire (established: 900 s), new conns are accepted again.
    now += 1_000_000;
    for _ in 0..64 {
        // The worker expires once per clock tick.
        now += 1;
        w.poll(now);
        if conns.is_empty() {
            break;
        }
    }
    assert!(conns.is_empty(), "{} conns left after expiry", conns.len());
    let syn = tu::tcp4(C_MAC, D0, CIP, 30_000, VIP, 80, SYN, b"");
    assert_eq!(step(&mut w, 0, &syn, now).len(), 1);
    assert_eq!(conns.len(), 1);
    assert!(conns.memory_bytes() <= mem_full);
}

#[test]
fn memory_is_bounded_by_max_conns_not_by_traffic() {
    // Two tables with the same limit: one flooded with 10x more distinct new conns than the
    // other. Both stop at the limit; the flooded one holds no more memory.
    let mut mem = Vec::new();
    for flood in [MAX as u32 * 2, MAX as u32 * 20] {
        let (mut w, _, conns) = worker_with(&config(), MAX);
        for i in 0..flood {
            let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 1, 0)) + 2 + (i % 250));
            let syn = tu::tcp4(C_MAC, D0, src, 1024 + (i / 250) as u16, VIP, 80, SYN, b"");
            step(&mut w, 0, &syn, 1000 + u64::from(i));
        }
        assert_eq!(conns.len(), MAX);
        assert_eq!(
            w.stats().drops[DropReason::ConnTableFull as usize],
            u64::from(flood) - MAX as u64
        );
        mem.push(conns.memory_bytes());
    }
    assert_eq!(mem[0], mem[1], "memory depends on the flood size");
}
