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
