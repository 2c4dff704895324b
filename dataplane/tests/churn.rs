//! Reconfiguration loses no established conn: while packets of 100 established NAT conns keep
//! flowing through `Worker<MemIo>`, the dests are re-weighted, added and deleted (not the one
//! the conns use... and then that one too is quiesced with weight 0): every packet of every
//! established conn is still forwarded to the dest it started on, and new conns follow the
//! new configuration.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use xvs_dataplane::service::{Config, FwdMode, Protocol};
use xvs_dataplane::testutil as tu;
use xvs_dataplane::wire::tcp::flags::{ACK, PSH, SYN};
use xvs_dataplane::wire::{self, Parsed};

fn cfg(dests: &[(&str, i32)]) -> Config {
    let ds = dests
        .iter()
        .map(|(a, w)| {
            let mut d = dest(a, 8080, FwdMode::Masq);
            d.weight = *w;
            d
        })
        .collect();
    Config {
        services: vec![service(Protocol::Tcp, "198.18.1.100", 80, "wlc", ds)],
        ..Config::default()
    }
}

fn dst_of(frame: &[u8]) -> std::net::IpAddr {
    match wire::parse_frame(frame).unwrap() {
        Parsed::Ip(i) => i.dst,
        _ => panic!("not IP"),
    }
}

#[test]
fn edits_around_established_conns_lose_none_of_them() {
    let (mut w, director, _conns) = worker_with(&cfg(&[("198.18.2.10", 1)]), 1 << 16);
    let (c, v) = ("198.18.1.2", "198.18.1.100");
    // 100 conns, all on .10 (the only dest).
    for p in 0..100u16 {
        let out = step(
            &mut w,
            0,
            &tu::tcp(C_MAC, D0, ip(c), 20000 + p, ip(v), 80, SYN, b""),
            10,
        );
        assert_eq!(dst_of(&out[0].1), ip("198.18.2.10"));
    }
    let edits = [
        cfg(&[("198.18.2.10", 5)]),                     // re-weight
        cfg(&[("198.18.2.11", 1), ("198.18.2.10", 5)]), // add
        cfg(&[("198.18.2.11", 3), ("198.18.2.10", 5)]), // edit the other
        cfg(&[("198.18.2.11", 3), ("198.18.2.10", 0)]), // quiesce ours
    ];
    let mut now = 20;
    for (round, e) in edits.iter().enumerate() {
        director.apply(e).unwrap();
        for p in 0..100u16 {
            let f = tu::tcp(C_MAC, D0, ip(c), 20000 + p, ip(v), 80, ACK | PSH, b"more");
            let out = step(&mut w, 0, &f, now);
            now += 1;
            assert_eq!(out.len(), 1, "edit {round}: conn {p} still forwarded");
            assert_eq!(
                dst_of(&out[0].1),
                ip("198.18.2.10"),
                "edit {round}: conn {p} kept its dest"
            );
        }
    }
    // With .10 quiesced, a new conn goes to .11.
    let out = step(
        &mut w,
        0,
        &tu::tcp(C_MAC, D0, ip(c), 30000, ip(v), 80, SYN, b""),
        now,
    );
    assert_eq!(dst_of(&out[0].1), ip("198.18.2.11"));
    // Deleting .10 altogether: its conns are no longer forwarded (the kernel drops packets of
    // conns whose dest is gone unless expire_nodest_conn is off; see conn::Hit::dest_available)
    // but nothing panics and nothing leaks.
    director.apply(&cfg(&[("198.18.2.11", 3)])).unwrap();
    let _ = step(
        &mut w,
        0,
        &tu::tcp(C_MAC, D0, ip(c), 20000, ip(v), 80, ACK, b""),
        now + 1,
    );
    assert_eq!(w.io().free_frames(), w.io().chunks());
}
