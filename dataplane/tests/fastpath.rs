//! The IPv4 fast path (`worker/fast.rs`) against the general path: the same frame of the same
//! conn, sent once with the fast path off and once with it on, must come out byte-identical
//! (or be dropped for the same reason); a conn's first packet must come out of a fresh worker
//! the same on either path. Random ports, flags, TTLs (1 included), sizes around
//! the MTU, DF, Ethernet padding and zero UDP checksums, in both directions of NAT, FULLNAT,
//! DR and TUN conns (the last three also exercise the hand-over to the general rewrite).
#![allow(clippy::unwrap_used)]

mod common;

use common::{C_MAC, D0, D1, R_MAC, ip, step, worker};
use proptest::prelude::*;
use xvs_dataplane::io::mem::MemIo;
use xvs_dataplane::testutil;
use xvs_dataplane::wire::tcp::flags;
use xvs_dataplane::worker::Worker;

/// (VIP, port, UDP) of the services in `common::config()` this test drives.
const SERVICES: [(&str, u16, bool); 6] = [
    ("198.18.1.100", 80, false), // NAT
    ("198.18.1.100", 53, true),  // NAT, UDP
    ("198.18.1.101", 80, false), // DR
    ("198.18.1.102", 80, false), // TUN ipip
    ("198.18.1.103", 80, false), // TUN gue
    ("198.18.1.105", 80, false), // FULLNAT
];

/// Send `f` once through each path; both outcomes must be equal.
fn both_paths(w: &mut Worker<MemIo>, port: u16, f: &[u8], now: u64) -> Vec<(u16, Vec<u8>)> {
    w.set_fast_path(false);
    let d0 = w.stats().drops;
    let slow = step(w, port, f, now);
    let d1 = w.stats().drops;
    w.set_fast_path(true);
    let fast = step(w, port, f, now);
    let d2 = w.stats().drops;
    assert_eq!(fast, slow, "fast path output differs");
    let dslow: Vec<u64> = d1.iter().zip(d0.iter()).map(|(a, b)| a - b).collect();
    let dfast: Vec<u64> = d2.iter().zip(d1.iter()).map(|(a, b)| a - b).collect();
    assert_eq!(dfast, dslow, "drop reasons differ");
    fast
}

#[derive(Debug, Clone)]
struct Case {
    svc: usize,
    cport: u16,
    reply: bool,
    tcp_flags: u8,
    ttl: u8,
    payload: usize,
    df: bool,
    pad: usize,
    zero_udp_csum: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..SERVICES.len(),
        1024u16..65535,
        any::<bool>(),
        prop::sample::select(vec![
            flags::ACK,
            flags::ACK | flags::PSH,
            flags::FIN | flags::ACK,
            flags::RST,
            flags::SYN,
        ]),
        prop::sample::select(vec![1u8, 2, 64, 255]),
        prop::sample::select(vec![0usize, 1, 100, 1440, 1460, 1461, 1472, 1473, 1600]),
        any::<bool>(),
        0usize..24,
        any::<bool>(),
    )
        .prop_map(
            |(svc, cport, reply, tcp_flags, ttl, payload, df, pad, zero_udp_csum)| Case {
                svc,
                cport,
                reply,
                tcp_flags,
                ttl,
                payload,
                df,
                pad,
                zero_udp_csum,
            },
        )
}

fn run(c: &Case) {
    let (mut w, _, _) = worker();
    let (vip, vport, udp) = SERVICES[c.svc];
    let (client, vip) = (ip("198.18.1.2"), ip(vip));
    // Open the conn (both paths see the same conn afterwards).
    let first = if udp {
        testutil::udp(C_MAC, D0, client, c.cport, vip, vport, b"q")
    } else {
        testutil::tcp(C_MAC, D0, client, c.cport, vip, vport, flags::SYN, b"")
    };
    let out = step(&mut w, 0, &first, 1);
    assert_eq!(out.len(), 1, "the conn opens");
    // The first packet schedules on both paths alike (FULLNAT excepted: its local port
    // depends on the table's random hash seed).
    if SERVICES[c.svc].0 != "198.18.1.105" {
        let (mut general, _, _) = worker();
        general.set_fast_path(false);
        assert_eq!(step(&mut general, 0, &first, 1), out, "new conn differs");
    }
    let fwd = &out[0].1;
    let payload = vec![0x5a; c.payload];
    let mut f = if c.reply {
        // From the dest to whatever the forwarded packet came from (the LIP for FULLNAT).
        let l3 = testutil::l3(fwd);
        let src_port = u16::from_be_bytes([l3[20], l3[21]]);
        let from = std::net::IpAddr::V4(std::net::Ipv4Addr::new(l3[12], l3[13], l3[14], l3[15]));
        let to_port = u16::from_be_bytes([l3[22], l3[23]]);
        let rip = std::net::IpAddr::V4(std::net::Ipv4Addr::new(l3[16], l3[17], l3[18], l3[19]));
        if udp {
            testutil::udp(R_MAC, D1, rip, to_port, from, src_port, &payload)
        } else {
            testutil::tcp(
                R_MAC,
                D1,
                rip,
                to_port,
                from,
                src_port,
                c.tcp_flags,
                &payload,
            )
        }
    } else if udp {
        testutil::udp(C_MAC, D0, client, c.cport, vip, vport, &payload)
    } else {
        testutil::tcp(
            C_MAC,
            D0,
            client,
            c.cport,
            vip,
            vport,
            c.tcp_flags,
            &payload,
        )
    };
    testutil::set_ttl(&mut f, c.ttl);
    testutil::set_df(&mut f, c.df);
    if udp && c.zero_udp_csum {
        f[14 + 20 + 6] = 0;
        f[14 + 20 + 7] = 0;
    }
    f.resize(f.len() + c.pad, 0xee);
    let port = u16::from(c.reply);
    let out = both_paths(&mut w, port, &f, 2);
    for (_, o) in &out {
        testutil::verify_checksums(o).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn fast_path_equals_general_path(c in case()) {
        run(&c);
    }
}

/// Each shape the fast path takes is really taken: an established NAT packet in each
/// direction is forwarded identically and counted once per send.
#[test]
fn established_nat_both_directions() {
    for reply in [false, true] {
        for svc in [0, 1, 2, 5] {
            run(&Case {
                svc,
                cport: 40000,
                reply,
                tcp_flags: flags::ACK,
                ttl: 64,
                payload: 10,
                df: true,
                pad: 0,
                zero_udp_csum: false,
            });
        }
    }
}

/// Whole bursts, as a NIC hands them over: several conns' handshakes, data, replies and
/// closes interleaved in one `poll`, including a conn's SYN and its next packets in the same
/// burst. The fast path (which looks two client -> VIP packets up at once) must transmit
/// exactly what the general path, one packet at a time, transmits, and leave the same conns.
#[test]
fn bursts_equal_on_both_paths() {
    let client = ip("198.18.1.2");
    let nat = ip("198.18.1.100");
    let dr = ip("198.18.1.101");
    let tcp = |vip, cport: u16, fl: u8, data: &[u8]| {
        testutil::tcp(C_MAC, D0, client, cport, vip, 80, fl, data)
    };
    let udp = |cport: u16| testutil::udp(C_MAC, D0, client, cport, nat, 53, b"q");
    let bursts: Vec<Vec<(u16, Vec<u8>)>> = vec![
        // Handshakes and data of the same conns within one burst.
        vec![
            (0, tcp(nat, 41000, flags::SYN, b"")),
            (0, tcp(nat, 41000, flags::ACK, b"")),
            (0, tcp(nat, 41001, flags::SYN, b"")),
            (0, tcp(nat, 41000, flags::ACK | flags::PSH, b"get")),
            (0, tcp(dr, 42000, flags::SYN, b"")),
            (0, tcp(dr, 42000, flags::ACK, b"")),
            (0, udp(43000)),
            (0, udp(43000)),
            (0, tcp(nat, 41002, flags::ACK, b"no conn")),
            (0, tcp(nat, 41001, flags::ACK, b"")),
        ],
        // Established traffic, a close and a reuse of a closed conn's ports.
        vec![
            (0, tcp(nat, 41000, flags::ACK, b"more")),
            (0, tcp(nat, 41001, flags::ACK | flags::PSH, b"x")),
            (0, tcp(dr, 42000, flags::ACK, b"y")),
            (0, tcp(nat, 41001, flags::FIN | flags::ACK, b"")),
            (0, tcp(nat, 41001, flags::ACK, b"")),
            (0, tcp(nat, 41000, flags::RST, b"")),
            (0, tcp(nat, 41000, flags::SYN, b"")),
            (0, tcp(nat, 41000, flags::ACK, b"")),
            (0, udp(43000)),
        ],
    ];
    let run = |fast: bool| {
        let (mut w, _, conns) = worker();
        w.set_fast_path(fast);
        let mut out = Vec::new();
        for (i, burst) in bursts.iter().enumerate() {
            for (port, f) in burst {
                assert!(w.io_mut().inject(*port, f));
            }
            w.poll(10 + i as u64);
            out.push(w.io_mut().take_tx());
        }
        let mut table = Vec::new();
        conns.for_each(100, |c| table.push(format!("{c:?}")));
        table.sort();
        (out, w.stats().drops, table)
    };
    let (slow, fast) = (run(false), run(true));
    assert!(
        slow.0.iter().map(Vec::len).sum::<usize>() > 10,
        "traffic went through"
    );
    assert_eq!(fast.0, slow.0, "transmitted frames differ");
    assert_eq!(fast.1, slow.1, "drop reasons differ");
    assert_eq!(fast.2, slow.2, "conn tables differ");
}
