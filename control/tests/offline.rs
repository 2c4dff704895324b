//! `xvsd` offline mode: an ipvsadm-save file plus a pcap of a TCP exchange go in, the rewritten
//! frames come out, for NAT, DR, TUN and FULLNAT, with valid checksums; packets that open no
//! conn produce nothing; an ARP request for the VIP is answered. No privileges needed.
#![allow(clippy::unwrap_used, clippy::too_many_arguments)]

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use xvs_dataplane::io::pcap::{PcapReader, PcapWriter};
use xvs_dataplane::testutil::{self as tu, verify_checksums};
use xvs_dataplane::wire::tcp::flags::{ACK, PSH, SYN};
use xvs_dataplane::wire::{self, Parsed};

const D: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const C: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
const R: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa1];
const CIP: &str = "198.18.0.2";
const RIP: &str = "198.18.0.10";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::create(path).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write(1_700_000_000_000_000 + i as u64 * 1000, f).unwrap();
    }
    w.flush().unwrap();
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push(rec.data);
    }
    out
}

/// Run `xvsd --pcap-in --pcap-out --restore` on `rules` and `frames`; returns the output frames.
fn replay(rules: &str, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    replay_with(rules, frames, &[])
}

fn mac_arg(a: &str, m: [u8; 6]) -> String {
    format!(
        "{a}={}",
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    )
}

/// [`replay`] with extra xvsd arguments.
fn replay_with(rules: &str, frames: &[Vec<u8>], extra: &[String]) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let (rin, pin, pout) = (
        dir.path().join("rules"),
        dir.path().join("in.pcap"),
        dir.path().join("out.pcap"),
    );
    std::fs::write(&rin, rules).unwrap();
    write_pcap(&pin, frames);
    let neigh = |a: &str, m: [u8; 6]| {
        format!(
            "{a}={}",
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        )
    };
    let out = Command::new(env!("CARGO_BIN_EXE_xvsd"))
        .args([
            "--pcap-in",
            pin.to_str().unwrap(),
            "--pcap-out",
            pout.to_str().unwrap(),
        ])
        .args([
            "--restore",
            rin.to_str().unwrap(),
            "--mac",
            "02:00:00:00:00:01",
        ])
        .args([
            "--addr",
            "pcap0=198.18.0.1/24",
            "--addr",
            "pcap0=fd00::1/64",
        ])
        .args(["--neigh", &neigh(CIP, C), "--neigh", &neigh(RIP, R)])
        .args(["--socket", dir.path().join("unused.sock").to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xvsd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_pcap(&pout)
}

fn tcp(
    sm: [u8; 6],
    dm: [u8; 6],
    s: &str,
    sp: u16,
    d: &str,
    dp: u16,
    fl: u8,
    data: &[u8],
) -> Vec<u8> {
    tu::tcp(sm, dm, ip(s), sp, ip(d), dp, fl, data)
}

fn info(f: &[u8]) -> wire::PacketInfo {
    match wire::parse_frame(f).unwrap() {
        Parsed::Ip(i) => i,
        _ => panic!("not IP"),
    }
}

/// SYN, SYN-ACK (from `reply_from` when the mode sees replies), ACK and data for `vip:80`.
fn exchange(vip: &str, reply_from: Option<(&str, u16)>) -> Vec<Vec<u8>> {
    let mut v = vec![tcp(C, D, CIP, 40000, vip, 80, SYN, b"")];
    if let Some((src, sport)) = reply_from {
        v.push(tcp(R, D, src, sport, CIP, 40000, SYN | ACK, b""));
    }
    v.push(tcp(C, D, CIP, 40000, vip, 80, ACK, b""));
    v.push(tcp(
        C,
        D,
        CIP,
        40000,
        vip,
        80,
        ACK | PSH,
        b"GET / HTTP/1.0\r\n\r\n",
    ));
    v
}

#[test]
fn nat_exchange_comes_out_rewritten_both_ways() {
    let rules = "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.10:8080 -m -w 1\n";
    let out = replay(rules, &exchange("198.18.0.100", Some((RIP, 8080))));
    assert_eq!(out.len(), 4);
    for f in &out {
        verify_checksums(f).unwrap();
    }
    let i: Vec<_> = out.iter().map(|f| info(f)).collect();
    assert_eq!((i[0].dst, i[0].dport), (ip(RIP), 8080), "SYN DNATed");
    assert_eq!(&out[0][..6], &R, "to the dest's MAC");
    assert_eq!(
        (i[1].src, i[1].sport, i[1].dst),
        (ip("198.18.0.100"), 80, ip(CIP)),
        "SYN-ACK SNATed"
    );
    assert_eq!(&out[1][..6], &C);
    assert_eq!((i[2].dst, i[2].dport), (ip(RIP), 8080));
    assert_eq!(
        (i[3].dst, i[3].dport, i[3].l3_len),
        (ip(RIP), 8080, 40 + 18)
    );
}

#[test]
fn dr_exchange_keeps_l3_and_changes_the_mac() {
    let rules = "-A -t 198.18.0.101:80 -s wlc\n-a -t 198.18.0.101:80 -r 198.18.0.10:80 -g -w 1\n";
    let out = replay(rules, &exchange("198.18.0.101", None));
    assert_eq!(out.len(), 3);
    for f in &out {
        verify_checksums(f).unwrap();
        assert_eq!(&f[..6], &R);
        assert_eq!((info(f).dst, info(f).dport), (ip("198.18.0.101"), 80));
    }
}

#[test]
fn tun_exchange_is_encapsulated_in_ipip_gue_and_gre() {
    for (flags, proto) in [
        ("--tun-type ipip", 4u8),
        ("--tun-type gue --tun-port 6080", 17),
        ("--tun-type gre", 47),
    ] {
        let rules = format!(
            "-A -t 198.18.0.102:80 -s rr\n-a -t 198.18.0.102:80 -r 198.18.0.10:80 -i -w 1 {flags}\n"
        );
        let out = replay(&rules, &exchange("198.18.0.102", None));
        assert_eq!(out.len(), 3, "{flags}");
        for f in &out {
            verify_checksums(f).unwrap_or_else(|e| panic!("{flags}: {e}"));
            let o = info(f);
            assert_eq!(
                (o.src, o.dst, o.proto),
                (ip("198.18.0.1"), ip(RIP), proto),
                "{flags}"
            );
        }
    }
}

#[test]
fn fullnat_exchange_is_translated_to_the_local_address() {
    let rules = "-A -t 198.18.0.105:80 -s rr\n-a -t 198.18.0.105:80 -r 198.18.0.10:8080 --fullnat -w 1\n--add-laddr -t 198.18.0.105:80 -z 198.18.0.200\n";
    let out = replay(rules, &exchange("198.18.0.105", None));
    assert_eq!(out.len(), 3);
    let lport = info(&out[0]).sport;
    for f in &out {
        verify_checksums(f).unwrap();
        let o = info(f);
        assert_eq!(
            (o.src, o.sport, o.dst, o.dport),
            (ip("198.18.0.200"), lport, ip(RIP), 8080)
        );
    }
}

#[test]
fn nothing_comes_out_for_packets_that_open_no_conn_and_arp_is_answered() {
    let rules = "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.10:8080 -m -w 1\n";
    let frames = vec![
        tcp(C, D, CIP, 40000, "198.18.0.100", 80, ACK, b""),
        tcp(C, D, CIP, 40001, "198.18.0.100", 81, SYN, b""),
        tu::arp_request(C, CIP.parse().unwrap(), "198.18.0.100".parse().unwrap()),
    ];
    let out = replay(rules, &frames);
    assert_eq!(out.len(), 1, "only the ARP reply");
    let a = wire::ArpPacket::new_checked(&out[0][14..]).unwrap();
    assert_eq!(a.operation(), wire::arp::OP_REPLY);
    assert_eq!(a.sender_hw(), D);
    assert_eq!(IpAddr::V4(a.sender_ip()), ip("198.18.0.100"));
}

#[test]
fn a_bad_restore_file_names_its_line_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (rin, pin, pout) = (
        dir.path().join("rules"),
        dir.path().join("in.pcap"),
        dir.path().join("out.pcap"),
    );
    std::fs::write(
        &rin,
        "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.10:8080 -m -w 99999999\n",
    )
    .unwrap();
    write_pcap(&pin, &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_xvsd"))
        .args([
            "--pcap-in",
            pin.to_str().unwrap(),
            "--pcap-out",
            pout.to_str().unwrap(),
        ])
        .args(["--restore", rin.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":2:"), "names line 2: {err}");
}

/// Real servers .10 (A), .11 (B), .12 (C), added in that order, so the kernel's list is C, B, A.
const RS: [&str; 3] = ["198.18.0.10", "198.18.0.11", "198.18.0.12"];

fn rs_mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, 0xa1 + u8::try_from(i).unwrap()]
}

/// The dest index (0 = A, 1 = B, 2 = C) each SYN of `clients` was sent to, through xvsd.
fn picks(sched: &str, weights: [u32; 3], clients: &[(String, u16)]) -> Vec<usize> {
    let mut rules = format!("-A -t 198.18.0.100:80 -s {sched}\n");
    for (rs, w) in RS.iter().zip(weights) {
        rules.push_str(&format!("-a -t 198.18.0.100:80 -r {rs}:80 -m -w {w}\n"));
    }
    let frames: Vec<Vec<u8>> = clients
        .iter()
        .map(|(c, p)| tcp(C, D, c, *p, "198.18.0.100", 80, SYN, b""))
        .collect();
    let extra: Vec<String> = (0..3)
        .flat_map(|i| ["--neigh".to_string(), mac_arg(RS[i], rs_mac(i))])
        .collect();
    let out = replay_with(&rules, &frames, &extra);
    assert_eq!(out.len(), clients.len(), "{sched}: every SYN scheduled");
    out.iter()
        .map(|f| RS.iter().position(|r| ip(r) == info(f).dst).unwrap())
        .collect()
}

fn clients(n: usize, distinct_addrs: bool) -> Vec<(String, u16)> {
    (0..n)
        .map(|i| {
            let a = if distinct_addrs {
                format!("198.18.0.{}", 20 + i)
            } else {
                CIP.to_string()
            };
            (a, 30000 + u16::try_from(i).unwrap())
        })
        .collect()
}

#[test]
fn rr_picks_in_the_kernels_list_order() {
    // rr walks the list from its head: C, B, A, C, ...
    let got = picks("rr", [1, 1, 1], &clients(7, false));
    assert_eq!(got, vec![2, 1, 0, 2, 1, 0, 2]);
}

#[test]
fn wrr_with_weights_added_as_4_3_2_picks_the_kernels_sequence() {
    // Hand-derived from ip_vs_wrr.c (see sched/wrr.rs): the adds leave cw = 1, so the first
    // round is C B A, then cw 4: A, cw 3: B A, cw 2: C B A, cw 1: C B A, ...
    let got = picks("wrr", [4, 3, 2], &clients(16, false));
    assert_eq!(got, vec![2, 1, 0, 0, 1, 0, 2, 1, 0, 2, 1, 0, 0, 1, 0, 2]);
}

/// The scheduler module's own decision for the same list and keys (unit-tested against the
/// kernel's tables separately), to check the pipeline delivers exactly those picks in order.
fn oracle(sched: &str, weights: [u32; 3], cl: &[(String, u16)]) -> Vec<usize> {
    use std::sync::Arc;
    use xvs_dataplane::flow::FlowKey;
    use xvs_dataplane::sched::AnyScheduler;
    use xvs_dataplane::service::{Dest, DestConf, DestId, DestState, FwdMode, TunConf};
    // Kernel list order: last added first.
    let list: Vec<Dest> = (0..3)
        .rev()
        .map(|i| {
            let conf = DestConf {
                addr: ip(RS[i]),
                port: 80,
                fwd: FwdMode::Masq,
                weight: i32::try_from(weights[i]).unwrap(),
                u_threshold: 0,
                l_threshold: 0,
                tun: TunConf::default(),
            };
            Dest {
                id: DestId(u32::try_from(i).unwrap()),
                state: Arc::new(DestState::new(&conf, 1)),
                conf,
            }
        })
        .collect();
    let mut s = AnyScheduler::build(sched, 0, &list).unwrap();
    cl.iter()
        .map(|(c, p)| {
            let k = FlowKey {
                proto: 6,
                src: ip(c),
                dst: ip("198.18.0.100"),
                sport: *p,
                dport: 80,
            };
            let d = &list[s.pick(&list, &k, 0).unwrap()];
            RS.iter().position(|r| ip(r) == d.conf.addr).unwrap()
        })
        .collect()
}

#[test]
fn sh_and_mh_pick_by_client_address_as_the_scheduler_does() {
    for sched in ["sh", "mh"] {
        let cl = clients(40, true);
        let got = picks(sched, [1, 2, 1], &cl);
        assert_eq!(got, oracle(sched, [1, 2, 1], &cl), "{sched}");
        assert!(
            (0..3).all(|d| got.contains(&d)),
            "{sched}: every dest used: {got:?}"
        );
        // The same clients again, from other ports: the same dests.
        let again: Vec<(String, u16)> = cl.iter().map(|(c, p)| (c.clone(), p + 1000)).collect();
        assert_eq!(
            picks(sched, [1, 2, 1], &again),
            got,
            "{sched}: source hashing ignores the port"
        );
    }
}
