//! Table-driven fixtures (Katran style): input frame -> expected output frame (byte for byte)
//! or drop reason, run through the real pipeline (`Worker<MemIo>`) on a fixed configuration
//! and a fake clock. One table per scenario; rows run in order on one worker, so replies find
//! the conns earlier rows created. Every transmitted frame also passes `verify_checksums`.

#![allow(
    clippy::too_many_arguments,
    clippy::unwrap_used,
    clippy::explicit_counter_loop
)]

mod common;

use std::net::IpAddr;

use common::*;
use xvs_dataplane::stats::DropReason;
use xvs_dataplane::testutil::{self as tu, set_ttl, verify_checksums};
use xvs_dataplane::wire::tcp::flags::{ACK, FIN, PSH, RST, SYN};
use xvs_dataplane::wire::{self, Parsed};

type Check = Box<dyn Fn(&[u8])>;

enum Expect {
    /// Transmitted on this port, exactly these bytes.
    Tx(u16, Vec<u8>),
    /// Transmitted on this port; the closure checks it.
    TxCheck(u16, Check),
    /// Dropped for this reason, nothing transmitted.
    Drop(DropReason),
}

struct Case {
    desc: &'static str,
    port: u16,
    input: Vec<u8>,
    expect: Expect,
}

fn tcp(
    smac: [u8; 6],
    dmac: [u8; 6],
    s: &str,
    sp: u16,
    d: &str,
    dp: u16,
    fl: u8,
    ttl: u8,
) -> Vec<u8> {
    let mut f = tu::tcp(smac, dmac, ip(s), sp, ip(d), dp, fl, b"");
    set_ttl(&mut f, ttl);
    f
}

fn tcp_data(
    smac: [u8; 6],
    dmac: [u8; 6],
    s: &str,
    sp: u16,
    d: &str,
    dp: u16,
    data: &[u8],
    ttl: u8,
) -> Vec<u8> {
    let mut f = tu::tcp(smac, dmac, ip(s), sp, ip(d), dp, ACK | PSH, data);
    set_ttl(&mut f, ttl);
    f
}

fn udp(
    smac: [u8; 6],
    dmac: [u8; 6],
    s: &str,
    sp: u16,
    d: &str,
    dp: u16,
    data: &[u8],
    ttl: u8,
) -> Vec<u8> {
    let mut f = tu::udp(smac, dmac, ip(s), sp, ip(d), dp, data);
    set_ttl(&mut f, ttl);
    f
}

fn run(table: Vec<Case>) {
    let (mut w, _d, _c) = worker();
    let mut now = 1_000;
    for c in table {
        let before = w.stats().drops;
        let out = step(&mut w, c.port, &c.input, now);
        now += 1;
        match c.expect {
            Expect::Tx(port, want) => {
                assert_eq!(
                    out.len(),
                    1,
                    "{}: expected one frame, got {}",
                    c.desc,
                    out.len()
                );
                verify_checksums(&out[0].1).unwrap_or_else(|e| panic!("{}: {e}", c.desc));
                assert_eq!(out[0].0, port, "{}: egress port", c.desc);
                assert_eq!(hex(&out[0].1), hex(&want), "{}: frame", c.desc);
            }
            Expect::TxCheck(port, check) => {
                assert_eq!(
                    out.len(),
                    1,
                    "{}: expected one frame, got {}",
                    c.desc,
                    out.len()
                );
                verify_checksums(&out[0].1).unwrap_or_else(|e| panic!("{}: {e}", c.desc));
                assert_eq!(out[0].0, port, "{}: egress port", c.desc);
                check(&out[0].1);
            }
            Expect::Drop(r) => {
                assert!(
                    out.is_empty(),
                    "{}: expected a drop, got {} frame(s)",
                    c.desc,
                    out.len()
                );
                let after = w.stats().drops;
                assert_eq!(
                    after[r as usize],
                    before[r as usize] + 1,
                    "{}: drop reason {r:?}",
                    c.desc
                );
            }
        }
    }
    // Nothing leaked: every chunk is back in the pool.
    assert_eq!(w.io().free_frames(), w.io().chunks());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn info(frame: &[u8]) -> wire::PacketInfo {
    match wire::parse_frame(frame).unwrap() {
        Parsed::Ip(i) => i,
        _ => panic!("not IP"),
    }
}

#[test]
fn nat_ipv4_tcp_both_directions() {
    let (c, v, r) = ("198.18.1.2", "198.18.1.100", "198.18.2.10");
    run(vec![
        Case {
            desc: "SYN to the VIP is DNATed to the dest",
            port: 0,
            input: tcp(C_MAC, D0, c, 40000, v, 80, SYN, 64),
            expect: Expect::Tx(1, tcp(D1, R_MAC, c, 40000, r, 8080, SYN, 63)),
        },
        Case {
            desc: "SYN-ACK from the dest is SNATed back to the VIP",
            port: 1,
            input: tcp(R_MAC, D1, r, 8080, c, 40000, SYN | ACK, 64),
            expect: Expect::Tx(0, tcp(D0, C_MAC, v, 80, c, 40000, SYN | ACK, 63)),
        },
        Case {
            desc: "ACK with data in",
            port: 0,
            input: tcp_data(C_MAC, D0, c, 40000, v, 80, b"GET / HTTP/1.0\r\n\r\n", 64),
            expect: Expect::Tx(
                1,
                tcp_data(D1, R_MAC, c, 40000, r, 8080, b"GET / HTTP/1.0\r\n\r\n", 63),
            ),
        },
        Case {
            desc: "data out",
            port: 1,
            input: tcp_data(R_MAC, D1, r, 8080, c, 40000, b"HTTP/1.0 200 OK\r\n\r\n", 64),
            expect: Expect::Tx(
                0,
                tcp_data(D0, C_MAC, v, 80, c, 40000, b"HTTP/1.0 200 OK\r\n\r\n", 63),
            ),
        },
        Case {
            desc: "FIN in",
            port: 0,
            input: tcp(C_MAC, D0, c, 40000, v, 80, FIN | ACK, 64),
            expect: Expect::Tx(1, tcp(D1, R_MAC, c, 40000, r, 8080, FIN | ACK, 63)),
        },
        Case {
            desc: "a non-SYN from a client without a conn opens nothing",
            port: 0,
            input: tcp(C_MAC, D0, c, 40001, v, 80, ACK, 64),
            expect: Expect::Drop(DropReason::NoConn),
        },
        Case {
            desc: "a SYN to a port of the VIP with no service opens nothing",
            port: 0,
            input: tcp(C_MAC, D0, c, 40002, v, 81, SYN, 64),
            expect: Expect::Drop(DropReason::NoConn),
        },
        Case {
            desc: "a SYN to an address that is not ours",
            port: 0,
            input: tcp(C_MAC, D0, c, 40003, "198.18.1.77", 80, SYN, 64),
            expect: Expect::Drop(DropReason::NotOurs),
        },
        Case {
            desc: "a reply from the dest for no conn",
            port: 1,
            input: tcp(R_MAC, D1, r, 8080, c, 49999, ACK, 64),
            expect: Expect::Drop(DropReason::NotOurs),
        },
        Case {
            desc: "a RST closes; a SYN with RST opens nothing",
            port: 0,
            input: tcp(C_MAC, D0, c, 40004, v, 80, SYN | RST, 64),
            expect: Expect::Drop(DropReason::NoConn),
        },
    ]);
}

#[test]
fn nat_ipv6_tcp_and_ipv4_udp() {
    let (c, v, r) = ("fd01::2", "fd01::100", "fd02::10");
    run(vec![
        Case {
            desc: "v6 SYN in",
            port: 0,
            input: tcp(C_MAC, D0, c, 40000, v, 80, SYN, 64),
            expect: Expect::Tx(1, tcp(D1, R_MAC, c, 40000, r, 8080, SYN, 63)),
        },
        Case {
            desc: "v6 SYN-ACK out",
            port: 1,
            input: tcp(R_MAC, D1, r, 8080, c, 40000, SYN | ACK, 64),
            expect: Expect::Tx(0, tcp(D0, C_MAC, v, 80, c, 40000, SYN | ACK, 63)),
        },
        Case {
            desc: "UDP datagram in",
            port: 0,
            input: udp(
                C_MAC,
                D0,
                "198.18.1.2",
                5000,
                "198.18.1.100",
                53,
                b"query",
                64,
            ),
            expect: Expect::Tx(
                1,
                udp(
                    D1,
                    R_MAC,
                    "198.18.1.2",
                    5000,
                    "198.18.2.10",
                    5353,
                    b"query",
                    63,
                ),
            ),
        },
        Case {
            desc: "UDP reply out",
            port: 1,
            input: udp(
                R_MAC,
                D1,
                "198.18.2.10",
                5353,
                "198.18.1.2",
                5000,
                b"answer",
                64,
            ),
            expect: Expect::Tx(
                0,
                udp(
                    D0,
                    C_MAC,
                    "198.18.1.100",
                    53,
                    "198.18.1.2",
                    5000,
                    b"answer",
                    63,
                ),
            ),
        },
    ]);
}

#[test]
fn dr_rewrites_macs_only() {
    run(vec![
        Case {
            desc: "DR v4: same IP packet to the dest's MAC",
            port: 0,
            input: tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.101", 80, SYN, 64),
            expect: Expect::Tx(
                1,
                tcp(D1, R_MAC, "198.18.1.2", 40000, "198.18.1.101", 80, SYN, 63),
            ),
        },
        Case {
            desc: "DR v4: the next packet of the conn too",
            port: 0,
            input: tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.101", 80, ACK, 64),
            expect: Expect::Tx(
                1,
                tcp(D1, R_MAC, "198.18.1.2", 40000, "198.18.1.101", 80, ACK, 63),
            ),
        },
        Case {
            desc: "DR v6",
            port: 0,
            input: tcp(C_MAC, D0, "fd01::2", 40000, "fd01::101", 80, SYN, 64),
            expect: Expect::Tx(
                1,
                tcp(D1, R_MAC, "fd01::2", 40000, "fd01::101", 80, SYN, 63),
            ),
        },
    ]);
}

/// The outer header of a tunnelled frame, and the inner IP packet it carries.
fn check_tunnel(frame: &[u8], outer_proto: u8, inner: &[u8]) {
    let o = info(frame);
    assert_eq!(&frame[..12], &[R_MAC, D1].concat()[..], "MACs");
    assert_eq!(o.proto, outer_proto, "outer protocol");
    assert_eq!(
        o.dst,
        ip(if o.dst.is_ipv4() {
            "198.18.2.10"
        } else {
            "fd02::10"
        }),
        "outer dst"
    );
    assert_eq!(
        o.src,
        ip(if o.dst.is_ipv4() {
            "198.18.2.1"
        } else {
            "fd02::1"
        }),
        "outer src"
    );
    assert!(
        frame.ends_with(inner),
        "inner packet is carried unchanged but for the TTL"
    );
}

#[test]
fn tun_encapsulates_ipip_gue_gre() {
    let inner = |vip: &str| {
        tcp(
            D1,
            R_MAC,
            if vip.contains(':') {
                "fd01::2"
            } else {
                "198.18.1.2"
            },
            40000,
            vip,
            80,
            SYN,
            63,
        )[14..]
            .to_vec()
    };
    let (i2, i3, i4, i6) = (
        inner("198.18.1.102"),
        inner("198.18.1.103"),
        inner("198.18.1.104"),
        inner("fd01::102"),
    );
    run(vec![
        Case {
            desc: "IPIP",
            port: 0,
            input: tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.102", 80, SYN, 64),
            expect: Expect::TxCheck(1, Box::new(move |f| check_tunnel(f, 4, &i2))),
        },
        Case {
            desc: "GUE to port 6080",
            port: 0,
            input: tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.103", 80, SYN, 64),
            expect: Expect::TxCheck(
                1,
                Box::new(move |f| {
                    check_tunnel(f, 17, &i3);
                    assert_eq!(info(f).dport, 6080);
                }),
            ),
        },
        Case {
            desc: "GRE",
            port: 0,
            input: tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.104", 80, SYN, 64),
            expect: Expect::TxCheck(1, Box::new(move |f| check_tunnel(f, 47, &i4))),
        },
        Case {
            desc: "IPv6 in IPv6",
            port: 0,
            input: tcp(C_MAC, D0, "fd01::2", 40000, "fd01::102", 80, SYN, 64),
            expect: Expect::TxCheck(1, Box::new(move |f| check_tunnel(f, 41, &i6))),
        },
        Case {
            desc: "too big for the tunnel with DF: ICMP fragmentation needed back to the client",
            port: 0,
            input: tcp_data(
                C_MAC,
                D0,
                "198.18.1.2",
                40000,
                "198.18.1.102",
                80,
                &[0x55; 1460],
                64,
            ),
            expect: Expect::TxCheck(
                0,
                Box::new(|f| {
                    let o = info(f);
                    assert_eq!(o.proto, 1);
                    assert_eq!((o.icmp_type, o.icmp_code), (3, 4));
                    assert_eq!(o.dst, ip("198.18.1.2"));
                    // next-hop MTU: 1500 minus the 20-byte outer header
                    assert_eq!(u16::from_be_bytes([f[o.l4_off + 6], f[o.l4_off + 7]]), 1480);
                }),
            ),
        },
    ]);
}

#[test]
fn fullnat_translates_both_ends() {
    let (mut w, _d, _c) = worker();
    let out = step(
        &mut w,
        0,
        &tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.105", 80, SYN, 64),
        1000,
    );
    assert_eq!(out.len(), 1);
    verify_checksums(&out[0].1).unwrap();
    let o = info(&out[0].1);
    assert_eq!(out[0].0, 1);
    assert_eq!(
        (o.src, o.dst, o.dport),
        (ip("198.18.2.200"), ip("198.18.2.10"), 8080)
    );
    let reply = tcp(
        R_MAC,
        D1,
        "198.18.2.10",
        8080,
        "198.18.2.200",
        o.sport,
        SYN | ACK,
        64,
    );
    let out = step(&mut w, 1, &reply, 1001);
    assert_eq!(out.len(), 1);
    assert_eq!(
        hex(&out[0].1),
        hex(&tcp(
            D0,
            C_MAC,
            "198.18.1.105",
            80,
            "198.18.1.2",
            40000,
            SYN | ACK,
            63
        ))
    );
    // IPv6
    let out = step(
        &mut w,
        0,
        &tcp(C_MAC, D0, "fd01::2", 40000, "fd01::105", 80, SYN, 64),
        1002,
    );
    verify_checksums(&out[0].1).unwrap();
    let o = info(&out[0].1);
    assert_eq!(
        (o.src, o.dst, o.dport),
        (ip("fd02::200"), ip("fd02::10"), 8080)
    );
    let out = step(
        &mut w,
        1,
        &tcp(
            R_MAC,
            D1,
            "fd02::10",
            8080,
            "fd02::200",
            o.sport,
            SYN | ACK,
            64,
        ),
        1003,
    );
    assert_eq!(
        hex(&out[0].1),
        hex(&tcp(
            D0,
            C_MAC,
            "fd01::105",
            80,
            "fd01::2",
            40000,
            SYN | ACK,
            63
        ))
    );
}

#[test]
fn neighbours_are_answered() {
    run(vec![
        Case {
            desc: "ARP request for the VIP",
            port: 0,
            input: tu::arp_request(
                C_MAC,
                "198.18.1.2".parse().unwrap(),
                "198.18.1.100".parse().unwrap(),
            ),
            expect: Expect::TxCheck(
                0,
                Box::new(|f| {
                    let a = wire::ArpPacket::new_checked(&f[14..]).unwrap();
                    assert_eq!(a.operation(), wire::arp::OP_REPLY);
                    assert_eq!(a.sender_hw(), D0);
                    assert_eq!(IpAddr::V4(a.sender_ip()), ip("198.18.1.100"));
                }),
            ),
        },
        Case {
            desc: "ARP request for our own address",
            port: 1,
            input: tu::arp_request(
                R_MAC,
                "198.18.2.10".parse().unwrap(),
                "198.18.2.1".parse().unwrap(),
            ),
            expect: Expect::TxCheck(1, Box::new(|f| assert_eq!(&f[..6], &R_MAC))),
        },
        Case {
            desc: "ARP request for someone else",
            port: 0,
            input: tu::arp_request(
                C_MAC,
                "198.18.1.2".parse().unwrap(),
                "198.18.1.9".parse().unwrap(),
            ),
            expect: Expect::Drop(DropReason::ArpIgnored),
        },
        Case {
            desc: "neighbour solicitation for the v6 VIP",
            port: 0,
            input: tu::neighbor_solicit(
                C_MAC,
                "fd01::2".parse().unwrap(),
                "fd01::100".parse().unwrap(),
            ),
            expect: Expect::TxCheck(0, Box::new(|f| assert_eq!(info(f).icmp_type, 136))),
        },
    ]);
}

#[test]
fn malformed_and_unknown_frames_are_counted_drops() {
    let good = tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.100", 80, SYN, 64);
    let mut bad_csum = good.clone();
    bad_csum[14 + 10] ^= 0xff;
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x43;
    let mut long_len = good.clone();
    long_len[14 + 2] = 0x05;
    let mut other = good.clone();
    other[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    run(vec![
        Case {
            desc: "truncated IPv4 header",
            port: 0,
            input: good[..20].to_vec(),
            expect: Expect::Drop(DropReason::Malformed),
        },
        Case {
            desc: "runt frame",
            port: 0,
            input: good[..10].to_vec(),
            expect: Expect::Drop(DropReason::Malformed),
        },
        Case {
            desc: "bad IPv4 header checksum",
            port: 0,
            input: bad_csum,
            expect: Expect::Drop(DropReason::BadIpChecksum),
        },
        Case {
            desc: "IHL below 5",
            port: 0,
            input: bad_ihl,
            expect: Expect::Drop(DropReason::Malformed),
        },
        Case {
            desc: "total length beyond the frame",
            port: 0,
            input: long_len,
            expect: Expect::Drop(DropReason::Malformed),
        },
        Case {
            desc: "unknown ethertype",
            port: 0,
            input: other,
            expect: Expect::Drop(DropReason::UnknownEthertype),
        },
        Case {
            desc: "VLAN-tagged SYN is handled like an untagged one",
            port: 0,
            input: tu::with_vlan(&good, 7),
            expect: Expect::Tx(
                1,
                tcp(D1, R_MAC, "198.18.1.2", 40000, "198.18.2.10", 8080, SYN, 63),
            ),
        },
    ]);
}

#[test]
fn icmp_errors_about_a_conn_are_translated() {
    let (mut w, _d, _c) = worker();
    let syn = tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.100", 80, SYN, 64);
    let out = step(&mut w, 0, &syn, 1000);
    let sent = &out[0].1;
    // The real server answers the packet it got with a port unreachable.
    let err = tu::icmp_error(
        R_MAC,
        D1,
        ip("198.18.2.10"),
        ip("198.18.1.2"),
        3,
        3,
        0,
        &sent[14..],
    );
    let out = step(&mut w, 1, &err, 1001);
    assert_eq!(out.len(), 1, "translated ICMP error forwarded");
    verify_checksums(&out[0].1).unwrap();
    let o = info(&out[0].1);
    assert_eq!(out[0].0, 0);
    assert_eq!(
        (o.src, o.dst),
        (ip("198.18.1.100"), ip("198.18.1.2")),
        "outer source is the VIP"
    );
    // The quoted packet now reads client -> VIP:80, as the client sent it.
    let q = wire::parse_ip(&out[0].1, o.l4_off + 8).unwrap();
    assert_eq!(
        (q.src, q.dst, q.sport, q.dport),
        (ip("198.18.1.2"), ip("198.18.1.100"), 40000, 80)
    );
    // An ICMP error about nothing we track is dropped.
    let other = tcp(D1, R_MAC, "198.18.1.2", 40999, "198.18.2.10", 8080, SYN, 63);
    let stray = tu::icmp_error(
        R_MAC,
        D1,
        ip("198.18.2.10"),
        ip("198.18.1.2"),
        3,
        3,
        0,
        &other[14..],
    );
    let before = w.stats().drops[DropReason::IcmpNoConn as usize];
    assert!(step(&mut w, 1, &stray, 1002).is_empty());
    assert_eq!(w.stats().drops[DropReason::IcmpNoConn as usize], before + 1);
}

#[test]
fn ttl_expiring_at_the_director_gets_time_exceeded() {
    run(vec![Case {
        desc: "TTL 1 towards the dest",
        port: 0,
        input: tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.100", 80, SYN, 1),
        expect: Expect::TxCheck(
            0,
            Box::new(|f| {
                let o = info(f);
                assert_eq!((o.proto, o.icmp_type), (1, 11));
                assert_eq!(o.dst, ip("198.18.1.2"));
            }),
        ),
    }]);
}

#[test]
fn persistence_keeps_a_client_on_one_dest() {
    let (mut w, _d, _c) = worker();
    let mut dests = Vec::new();
    for (i, client) in [
        "198.18.1.2",
        "198.18.1.2",
        "198.18.1.2",
        "198.18.1.3",
        "198.18.1.3",
    ]
    .iter()
    .enumerate()
    {
        let sp = 41000 + u16::try_from(i).unwrap();
        let out = step(
            &mut w,
            0,
            &tcp(C_MAC, D0, client, sp, "198.18.1.106", 443, SYN, 64),
            1000 + i as u64,
        );
        assert_eq!(out.len(), 1, "SYN {i} from {client}");
        dests.push((client.to_string(), out[0].1[..6].to_vec()));
    }
    // Same client, same dest, every time; the next client got the other dest (rr).
    assert_eq!(dests[0].1, dests[1].1);
    assert_eq!(dests[1].1, dests[2].1);
    assert_eq!(dests[3].1, dests[4].1);
    assert_ne!(dests[0].1, dests[3].1);
}

#[test]
fn a_frame_waits_for_its_next_hop_and_leaves_when_it_is_resolved() {
    use xvs_dataplane::service::{Config, FwdMode, Protocol};
    let unknown = "198.18.2.20"; // no static neighbour entry
    let cfg = Config {
        services: vec![service(
            Protocol::Tcp,
            "198.18.1.100",
            80,
            "rr",
            vec![dest(unknown, 8080, FwdMode::Masq)],
        )],
        ..Config::default()
    };
    let (mut w, _d, _c) = worker_with(&cfg, 1024);
    let out = step(
        &mut w,
        0,
        &tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.100", 80, SYN, 64),
        1000,
    );
    // Only the ARP request for the dest goes out; the SYN waits.
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 1);
    let a = wire::ArpPacket::new_checked(&out[0].1[14..]).unwrap();
    assert_eq!(
        (a.operation(), IpAddr::V4(a.target_ip())),
        (wire::arp::OP_REQUEST, ip(unknown))
    );
    assert_eq!(w.held(), 1);
    // The dest answers; the held SYN leaves with its MAC.
    const U_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x20];
    let reply = tu::arp_reply(
        U_MAC,
        D1,
        unknown.parse().unwrap(),
        "198.18.2.1".parse().unwrap(),
    );
    let out = step(&mut w, 1, &reply, 1001);
    assert!(out.is_empty(), "the ARP reply itself is consumed");
    w.poll(1002);
    let out = w.io_mut().take_tx();
    assert_eq!(out.len(), 1);
    assert_eq!(
        hex(&out[0].1),
        hex(&tcp(D1, U_MAC, "198.18.1.2", 40000, unknown, 8080, SYN, 63))
    );
    assert_eq!(w.held(), 0);
    // A frame for a neighbour that never answers is dropped after HOLD_MS, and counted.
    let cfg2 = Config {
        services: vec![service(
            Protocol::Tcp,
            "198.18.1.100",
            80,
            "rr",
            vec![dest("198.18.2.21", 8080, FwdMode::Masq)],
        )],
        ..Config::default()
    };
    let (mut w, _d, _c) = worker_with(&cfg2, 1024);
    let _ = step(
        &mut w,
        0,
        &tcp(C_MAC, D0, "198.18.1.2", 40001, "198.18.1.100", 80, SYN, 64),
        1000,
    );
    assert_eq!(w.held(), 1);
    w.poll(1000 + xvs_dataplane::worker::HOLD_MS);
    assert_eq!(w.held(), 0);
    assert_eq!(w.stats().drops[DropReason::NeighUnresolved as usize], 1);
    let _ = w.io_mut().take_tx();
    assert_eq!(w.io().free_frames(), w.io().chunks());
}

#[test]
fn no_dest_available_answers_port_unreachable_as_ip_vs_leave() {
    use xvs_dataplane::service::{Config, FwdMode, Protocol};
    let mut quiesced = dest("198.18.2.10", 8080, FwdMode::Masq);
    quiesced.weight = 0;
    let cfg = Config {
        services: vec![
            service(
                Protocol::Tcp,
                "198.18.1.100",
                80,
                "wlc",
                vec![quiesced.clone()],
            ),
            service(Protocol::Udp, "fd01::100", 53, "rr", vec![]),
        ],
        ..Config::default()
    };
    let (mut w, _d, _c) = worker_with(&cfg, 1024);
    let syn = tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.100", 80, SYN, 64);
    let out = step(&mut w, 0, &syn, 1000);
    assert_eq!(out.len(), 1);
    verify_checksums(&out[0].1).unwrap();
    let o = info(&out[0].1);
    assert_eq!((out[0].0, o.proto, o.icmp_type, o.icmp_code), (0, 1, 3, 3));
    assert_eq!((o.src, o.dst), (ip("198.18.1.100"), ip("198.18.1.2")));
    assert_eq!(&out[0].1[..6], &C_MAC);
    let out = step(
        &mut w,
        0,
        &udp(C_MAC, D0, "fd01::2", 5000, "fd01::100", 53, b"q", 64),
        1001,
    );
    let o = info(&out[0].1);
    assert_eq!(
        (o.proto, o.icmp_type, o.icmp_code, o.src),
        (58, 1, 4, ip("fd01::100"))
    );
    assert_eq!(w.stats().drops[DropReason::NoDest as usize], 2);
    // A flood is answered at most ICMP_BURST times, then one per millisecond.
    for i in 0..200u16 {
        w.io_mut().inject(
            0,
            &tcp(
                C_MAC,
                D0,
                "198.18.1.2",
                41000 + i,
                "198.18.1.100",
                80,
                SYN,
                64,
            ),
        );
        if i % 32 == 31 {
            w.poll(1002);
        }
    }
    w.poll(1002);
    let answered = w.io_mut().take_tx().len();
    assert!((40..=50).contains(&answered), "rate-limited: {answered}");
}

/// conn_reuse_mode (default 1), on both paths: a client's SYN that finds its previous conn
/// reset (CLOSE) or in TIME_WAIT is scheduled afresh (rr moves on to the other dest) instead of
/// following the old conn; an established conn's SYN stays on it.
#[test]
fn syn_on_a_closed_conn_is_scheduled_afresh() {
    use xvs_dataplane::service::{FwdMode, Protocol};
    for fast in [true, false] {
        let cfg = xvs_dataplane::service::Config {
            services: vec![service(
                Protocol::Tcp,
                "198.18.1.110",
                80,
                "rr",
                vec![
                    dest("198.18.2.10", 8080, FwdMode::Masq),
                    dest("198.18.2.11", 8080, FwdMode::Masq),
                ],
            )],
            ..Default::default()
        };
        let (mut w, _, conns) = worker_with(&cfg, 1024);
        w.set_fast_path(fast);
        let to = |out: &[(u16, Vec<u8>)]| info(&out[0].1).dst;
        let syn = tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.110", 80, SYN, 64);
        let first = to(&step(&mut w, 0, &syn, 1));
        // The dest resets: CLOSE. The client's next SYN from the same port is a new conn.
        let rst = tcp(
            R_MAC,
            D1,
            &first.to_string(),
            8080,
            "198.18.1.2",
            40000,
            RST,
            64,
        );
        assert_eq!(step(&mut w, 1, &rst, 2).len(), 1);
        let second = to(&step(&mut w, 0, &syn, 3));
        assert_ne!(first, second, "fast={fast}: rescheduled");
        assert_eq!(conns.len(), 1);
        // Established: a stray SYN stays on the conn.
        let synack = tcp(
            R_MAC,
            D1,
            &second.to_string(),
            8080,
            "198.18.1.2",
            40000,
            SYN | ACK,
            64,
        );
        step(&mut w, 1, &synack, 4);
        let ack = tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.110", 80, ACK, 64);
        step(&mut w, 0, &ack, 5);
        assert_eq!(to(&step(&mut w, 0, &syn, 6)), second, "fast={fast}: kept");
    }
}

/// A deleted dest's conns, on both paths: the client's packets are dropped (`ip_vs_in` checks
/// the dest is available), the dest's late replies still go back to the client (`ip_vs_out`
/// does not check).
#[test]
fn deleted_dest_drops_client_packets_but_passes_its_replies() {
    use xvs_dataplane::service::{FwdMode, Protocol};
    for fast in [true, false] {
        let svc = |dests| xvs_dataplane::service::Config {
            services: vec![service(Protocol::Tcp, "198.18.1.110", 80, "rr", dests)],
            ..Default::default()
        };
        let (mut w, director, _) =
            worker_with(&svc(vec![dest("198.18.2.10", 8080, FwdMode::Masq)]), 1024);
        w.set_fast_path(fast);
        let syn = tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.110", 80, SYN, 64);
        assert_eq!(step(&mut w, 0, &syn, 1).len(), 1);
        director
            .apply(&svc(vec![dest("198.18.2.11", 8080, FwdMode::Masq)]))
            .unwrap();
        let ack = tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.110", 80, ACK, 64);
        assert!(step(&mut w, 0, &ack, 2).is_empty(), "fast={fast}");
        assert_eq!(w.stats().drops[DropReason::NoDest as usize], 1);
        let fin = tcp(
            R_MAC,
            D1,
            "198.18.2.10",
            8080,
            "198.18.1.2",
            40000,
            FIN | ACK,
            64,
        );
        let out = step(&mut w, 1, &fin, 3);
        assert_eq!(out.len(), 1, "fast={fast}: the reply passes");
        assert_eq!(info(&out[0].1).src, ip("198.18.1.110"));
    }
}

/// ICMP of the other family (an ICMPv6 message in IPv4, ICMP in IPv6) is no ICMP to IPVS: an
/// unknown protocol, dropped, even when it quotes a tracked conn (found by the pipeline fuzz
/// target: it was translated like an ICMPv6 error and left with a wrong checksum).
#[test]
fn icmp_of_the_other_family_is_an_unknown_protocol() {
    let (mut w, _, _) = worker();
    let syn = tcp(C_MAC, D0, "198.18.1.2", 40000, "198.18.1.100", 80, SYN, 64);
    let fwd = step(&mut w, 0, &syn, 1);
    assert_eq!(fwd.len(), 1);
    // A "packet too big" quoting the forwarded SYN, from the dest, as ICMPv6 over IPv4.
    let quoted = tu::l3(&fwd[0].1)[..28].to_vec();
    let mut msg = vec![2, 0, 0, 0, 0, 0, 0x05, 0xdc];
    msg.extend_from_slice(&quoted);
    let ip = etherparse::Ipv4Header::new(
        u16::try_from(msg.len()).unwrap(),
        64,
        etherparse::IpNumber(58),
        [198, 18, 2, 10],
        [198, 18, 1, 2],
    )
    .unwrap();
    let mut f = Vec::new();
    f.extend_from_slice(&D1);
    f.extend_from_slice(&R_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    ip.write(&mut f).unwrap();
    f.extend_from_slice(&msg);
    assert!(step(&mut w, 1, &f, 2).is_empty());
    assert_eq!(w.stats().drops[DropReason::UnknownProtocol as usize], 1);
}
