//! A malformed-input corpus through the whole pipeline (`Worker<MemIo>` on the fixed director of
//! `common`): every valid frame of each forwarding mode truncated at every offset, bad IPv4
//! and IPv6 lengths, IHL and TCP data offsets out of range, IPv4 options, fragments, bad
//! checksums, unknown ethertypes and IP protocols, VLAN tags (single and stacked), oversized
//! frames, and seeded random garbage.
//!
//! For every frame, [`feed`] checks the contract: it never panics; it is either transmitted or
//! dropped with exactly one counted reason; no frame of the pool leaks; and when the input's
//! checksums are all correct, every emitted frame's checksums are correct. A wrong L4 checksum
//! is forwarded still wrong (IPVS updates L4 checksums incrementally and never verifies them on
//! the NAT path; the receiver drops the segment), but the IPv4 header checksum of an emitted
//! frame is always right.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::*;
use xvs_dataplane::io::mem::MemIo;
use xvs_dataplane::io::{CHUNK_SIZE, HEADROOM};
use xvs_dataplane::stats::DropReason;
use xvs_dataplane::testutil::{self as tu, verify_checksums};
use xvs_dataplane::wire::Ipv4Packet;
use xvs_dataplane::wire::tcp::flags::{ACK, PSH, SYN};
use xvs_dataplane::worker::Worker;

/// What became of one frame.
#[derive(Debug)]
enum Outcome {
    /// Transmitted (with any neighbour requests sent in the same turn).
    Tx(Vec<(u16, Vec<u8>)>),
    /// Dropped for this reason.
    Drop(DropReason),
}

struct Rig {
    w: Worker<MemIo>,
    now_ms: u64,
}

impl Rig {
    fn new() -> Self {
        let (w, _, _) = worker();
        Self { w, now_ms: 1000 }
    }

    /// Run one frame and check the contract (see the module docs).
    fn feed(&mut self, port: u16, frame: &[u8]) -> Outcome {
        let valid = verify_checksums(frame).is_ok();
        let before = self.w.stats().clone();
        assert!(self.w.io_mut().inject(port, frame), "frame does not fit");
        self.now_ms += 1;
        self.w.poll(self.now_ms);
        if self.w.held() > 0 {
            // Waiting for a neighbour nobody will announce: let it time out into a counted drop.
            self.now_ms += xvs_dataplane::worker::HOLD_MS;
            self.w.poll(self.now_ms);
        }
        let out = self.w.io_mut().take_tx();
        let after = self.w.stats();
        assert_eq!(after.rx_packets, before.rx_packets + 1);
        assert_eq!(
            self.w.io().free_frames(),
            self.w.io().chunks(),
            "frame leaked"
        );
        let grew: Vec<DropReason> = DropReason::ALL
            .iter()
            .copied()
            .filter(|r| after.drops[*r as usize] > before.drops[*r as usize])
            .collect();
        let sent = after.tx_packets - before.tx_packets;
        assert_eq!(
            sent + grew.len() as u64,
            1,
            "neither sent nor dropped once: sent {sent}, drops {grew:?}"
        );
        for (p, o) in &out {
            assert!(*p < 2);
            assert!(
                o.len() <= 1514 + 4 + 40,
                "emitted frame of {} bytes",
                o.len()
            );
            if let Err(e) = verify_checksums(o) {
                assert!(
                    !valid,
                    "valid input produced a bad checksum ({e})\nin:  {frame:02x?}\nout: {o:02x?}"
                );
                assert!(
                    !e.contains("IPv4 header checksum"),
                    "emitted an IPv4 header with a wrong checksum: {e}"
                );
            }
        }
        match grew.first() {
            Some(r) => Outcome::Drop(*r),
            None => {
                assert!(!out.is_empty());
                Outcome::Tx(out)
            }
        }
    }

    fn expect_drop(&mut self, port: u16, frame: &[u8], want: &[DropReason], what: &str) {
        match self.feed(port, frame) {
            Outcome::Drop(r) if want.contains(&r) => {}
            o => panic!("{what}: expected a drop {want:?}, got {o:?}"),
        }
    }

    fn expect_tx(&mut self, port: u16, frame: &[u8], what: &str) -> Vec<(u16, Vec<u8>)> {
        match self.feed(port, frame) {
            Outcome::Tx(out) => out,
            o => panic!("{what}: expected a forward, got {o:?}"),
        }
    }
}

fn v4(s: &str) -> std::net::Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> std::net::Ipv6Addr {
    s.parse().unwrap()
}

const CIP: &str = "198.18.1.2";
const CIP6: &str = "fd01::2";
const RIP: &str = "198.18.2.10";

/// IPv4 VIPs of the fixture (NAT, DR, TUN ipip/gue/gre, FULLNAT) and IPv6 ones.
const VIPS4: [&str; 6] = [
    "198.18.1.100",
    "198.18.1.101",
    "198.18.1.102",
    "198.18.1.103",
    "198.18.1.104",
    "198.18.1.105",
];
const VIPS6: [&str; 4] = ["fd01::100", "fd01::101", "fd01::102", "fd01::105"];

/// A rig with a conn open to every service, and the valid established-flow frames (client
/// data to each VIP, NAT replies, UDP both ways) that it forwards: (description, port, frame).
fn established() -> (Rig, Vec<(String, u16, Vec<u8>)>) {
    let mut rig = Rig::new();
    let mut frames = Vec::new();
    for (i, vip) in VIPS4.iter().enumerate() {
        let sp = 41000 + i as u16;
        let syn = tu::tcp4(C_MAC, D0, v4(CIP), sp, v4(vip), 80, SYN, b"");
        rig.expect_tx(0, &syn, &format!("SYN to {vip}"));
        let data = tu::tcp4(
            C_MAC,
            D0,
            v4(CIP),
            sp,
            v4(vip),
            80,
            ACK | PSH,
            b"GET / HTTP/1.0\r\n\r\n",
        );
        frames.push((format!("TCP data to {vip}"), 0, data));
    }
    for (i, vip) in VIPS6.iter().enumerate() {
        let sp = 42000 + i as u16;
        let syn = tu::tcp6(C_MAC, D0, v6(CIP6), sp, v6(vip), 80, SYN, b"");
        rig.expect_tx(0, &syn, &format!("SYN to {vip}"));
        let data = tu::tcp6(
            C_MAC,
            D0,
            v6(CIP6),
            sp,
            v6(vip),
            80,
            ACK | PSH,
            b"GET /\r\n",
        );
        frames.push((format!("TCP data to {vip}"), 0, data));
    }
    // NAT replies (v4 TCP, v6 TCP, v4 UDP).
    let reply = tu::tcp4(
        R_MAC,
        D1,
        v4(RIP),
        8080,
        v4(CIP),
        41000,
        ACK | PSH,
        b"HTTP/1.0 200 OK\r\n",
    );
    frames.push(("NAT reply".into(), 1, reply));
    let reply6 = tu::tcp6(R_MAC, D1, v6("fd02::10"), 8080, v6(CIP6), 42000, ACK, b"ok");
    frames.push(("NAT reply v6".into(), 1, reply6));
    let q = tu::udp4(C_MAC, D0, v4(CIP), 5000, v4("198.18.1.100"), 53, b"query");
    rig.expect_tx(0, &q, "UDP query");
    frames.push(("UDP query".into(), 0, q));
    let a = tu::udp4(R_MAC, D1, v4(RIP), 5353, v4(CIP), 5000, b"answer");
    frames.push(("UDP answer".into(), 1, a));
    for (what, port, f) in &frames {
        let out = rig.expect_tx(*port, f, what);
        for (_, o) in out {
            verify_checksums(&o).unwrap();
        }
    }
    (rig, frames)
}

/// Fix the IPv4 header checksum of an untagged frame after editing the header.
fn fix_ip(f: &mut [u8]) {
    if let Ok(mut p) = Ipv4Packet::new_checked(&mut f[14..]) {
        p.fill_checksum();
    }
}

fn is_v4(f: &[u8]) -> bool {
    f[12..14] == [0x08, 0x00]
}

#[test]
fn truncated_at_every_offset() {
    let (mut rig, frames) = established();
    let mut n = 0;
    for (what, port, f) in &frames {
        for cut in 0..f.len() {
            rig.expect_drop(
                *port,
                &f[..cut],
                &[DropReason::Malformed],
                &format!("{what} cut at {cut}"),
            );
            n += 1;
        }
        // Still forwarded whole afterwards: no state was spoiled.
        rig.expect_tx(*port, f, what);
    }
    assert!(n > 500, "{n} truncations");
}

#[test]
fn bad_ipv4_lengths_and_ihl() {
    let (mut rig, frames) = established();
    for (what, port, f) in frames.iter().filter(|(_, _, f)| is_v4(f)) {
        let ip_len = f.len() - 14;
        // Total length below the header, inside the L4 header, or past the frame.
        for tl in [0usize, 1, 19, 20, 21, 39, ip_len + 1, ip_len + 100, 0xffff] {
            let mut g = f.clone();
            g[16..18].copy_from_slice(&(tl as u16).to_be_bytes());
            fix_ip(&mut g);
            rig.expect_drop(
                *port,
                &g,
                &[DropReason::Malformed],
                &format!("{what} tl {tl}"),
            );
        }
        // IHL below 5 is malformed; above 5 the L4 header moves (whatever follows: a counted
        // drop or a forward with the contract's checksums).
        for ihl in 0u8..16 {
            let mut g = f.clone();
            g[14] = 0x40 | ihl;
            fix_ip(&mut g);
            if ihl < 5 {
                rig.expect_drop(
                    *port,
                    &g,
                    &[DropReason::Malformed],
                    &format!("{what} ihl {ihl}"),
                );
            } else {
                rig.feed(*port, &g);
            }
        }
        // Version nibble.
        for ver in [0u8, 5, 6, 15] {
            let mut g = f.clone();
            g[14] = (ver << 4) | 5;
            fix_ip(&mut g);
            rig.expect_drop(
                *port,
                &g,
                &[DropReason::Malformed],
                &format!("{what} version {ver}"),
            );
        }
        // Bad header checksum.
        let mut g = f.clone();
        g[24] ^= 0x5a;
        rig.expect_drop(
            *port,
            &g,
            &[DropReason::BadIpChecksum],
            &format!("{what} bad IP csum"),
        );
    }
}

#[test]
fn bad_ipv6_payload_length() {
    let (mut rig, frames) = established();
    for (what, port, f) in frames.iter().filter(|(_, _, f)| !is_v4(f)) {
        let plen = f.len() - 54;
        for pl in [0usize, 1, 19, plen + 1, plen + 1000, 0xffff] {
            let mut g = f.clone();
            g[18..20].copy_from_slice(&(pl as u16).to_be_bytes());
            rig.expect_drop(
                *port,
                &g,
                &[DropReason::Malformed],
                &format!("{what} plen {pl}"),
            );
        }
        let mut g = f.clone();
        g[14] = 0x40;
        rig.feed(*port, &g);
    }
}

#[test]
fn tcp_data_offset_out_of_range() {
    let (mut rig, frames) = established();
    for (what, port, f) in &frames {
        let l4 = if is_v4(f) { 34 } else { 54 };
        if f[if is_v4(f) { 23 } else { 20 }] != 6 {
            continue;
        }
        let seg = f.len() - l4;
        for doff in 0u8..16 {
            let mut g = f.clone();
            g[l4 + 12] = (doff << 4) | (g[l4 + 12] & 0xf);
            let bytes = usize::from(doff) * 4;
            if bytes < 20 || bytes > seg {
                rig.expect_drop(
                    *port,
                    &g,
                    &[DropReason::Malformed],
                    &format!("{what} doff {doff}"),
                );
            } else {
                rig.feed(*port, &g);
            }
        }
    }
}

#[test]
fn ipv4_options_are_forwarded_with_valid_checksums() {
    let mut rig = Rig::new();
    for (i, vip) in VIPS4.iter().enumerate() {
        let f = tu::tcp4(C_MAC, D0, v4(CIP), 43000 + i as u16, v4(vip), 80, SYN, b"");
        // Insert 8 bytes of options (NOP NOP, record-route-free padding, EOL) after the header.
        let mut g = f[..34].to_vec();
        g.extend_from_slice(&[1, 1, 1, 1, 1, 1, 1, 0]);
        g.extend_from_slice(&f[34..]);
        g[14] = 0x47;
        let tl = (g.len() - 14) as u16;
        g[16..18].copy_from_slice(&tl.to_be_bytes());
        fix_ip(&mut g);
        verify_checksums(&g).unwrap();
        let out = rig.expect_tx(0, &g, &format!("SYN with options to {vip}"));
        for (_, o) in out {
            verify_checksums(&o).unwrap();
        }
    }
}

#[test]
fn fragments() {
    let (mut rig, frames) = established();
    for (_, port, f) in frames.iter().filter(|(_, _, f)| is_v4(f)) {
        // A later fragment: no L4 header, nothing to look up.
        for (mf, off) in [(true, 185u16), (false, 185), (true, 1)] {
            let mut g = f.clone();
            let v = (u16::from(mf) << 13) | off;
            g[20..22].copy_from_slice(&v.to_be_bytes());
            fix_ip(&mut g);
            rig.expect_drop(*port, &g, &[DropReason::Fragment], "a later fragment");
        }
        // A first fragment (MF, offset 0): handled like the datagram or dropped, counted.
        let mut g = f.clone();
        g[20..22].copy_from_slice(&(1u16 << 13).to_be_bytes());
        fix_ip(&mut g);
        rig.feed(*port, &g);
    }
    // An IPv6 fragment header (next header 44) in front of the TCP header.
    for (what, port, f) in frames.iter().filter(|(_, _, f)| !is_v4(f)) {
        for off_mf in [0x0001u16, 0x0008, 0x0009] {
            let mut g = f[..54].to_vec();
            let nh = g[20];
            g[20] = 44;
            let mut fh = vec![nh, 0];
            fh.extend_from_slice(&off_mf.to_be_bytes());
            fh.extend_from_slice(&[0, 0, 0, 1]);
            g.extend_from_slice(&fh);
            g.extend_from_slice(&f[54..]);
            let pl = (g.len() - 54) as u16;
            g[18..20].copy_from_slice(&pl.to_be_bytes());
            match rig.feed(*port, &g) {
                Outcome::Drop(_) => {}
                Outcome::Tx(_) => assert_eq!(off_mf, 0x0001, "{what}: a later fragment forwarded"),
            }
        }
    }
}

#[test]
fn bad_l4_checksum_is_forwarded_still_wrong() {
    let (mut rig, frames) = established();
    for (what, port, f) in &frames {
        let mut g = f.clone();
        let n = g.len();
        g[n - 1] ^= 0x33; // payload byte: the L4 checksum no longer matches
        assert!(verify_checksums(&g).is_err());
        if let Outcome::Tx(out) = rig.feed(*port, &g) {
            // The contract (in `feed`): the IPv4 header is right; the L4 stays wrong.
            for (_, o) in out {
                assert!(
                    verify_checksums(&o).is_err(),
                    "{what}: a bad checksum became good"
                );
            }
        }
    }
}

#[test]
fn unknown_ethertypes_and_protocols() {
    let mut rig = Rig::new();
    let base = tu::tcp4(C_MAC, D0, v4(CIP), 44000, v4("198.18.1.100"), 80, SYN, b"");
    for et in [0x0000u16, 0x05dc, 0x88cc, 0x8847, 0x88a8, 0x9100, 0xffff] {
        let mut g = base.clone();
        g[12..14].copy_from_slice(&et.to_be_bytes());
        rig.expect_drop(
            0,
            &g,
            &[DropReason::UnknownEthertype, DropReason::Malformed],
            &format!("ethertype {et:#06x}"),
        );
    }
    for proto in [0u8, 2, 4, 41, 47, 50, 132, 136, 253, 255] {
        for vip in VIPS4 {
            let mut g = tu::tcp4(C_MAC, D0, v4(CIP), 44001, v4(vip), 80, SYN, b"");
            g[23] = proto;
            fix_ip(&mut g);
            rig.expect_drop(
                0,
                &g,
                // SCTP (132) is a protocol IPVS balances: a non-INIT chunk finds no conn.
                &[
                    DropReason::UnknownProtocol,
                    DropReason::NotOurs,
                    DropReason::NoConn,
                ],
                &format!("protocol {proto} to {vip}"),
            );
        }
        let mut g = tu::tcp6(C_MAC, D0, v6(CIP6), 44001, v6("fd01::100"), 80, SYN, b"");
        g[20] = proto;
        rig.feed(0, &g);
    }
    // Not addressed to us at all.
    let g = tu::tcp4(C_MAC, D0, v4(CIP), 44002, v4("198.18.9.9"), 80, SYN, b"");
    rig.expect_drop(0, &g, &[DropReason::NotOurs], "foreign destination");
}

#[test]
fn vlan_tags() {
    let (mut rig, frames) = established();
    for (what, port, f) in &frames {
        for vid in [0u16, 1, 7, 4095] {
            let g = tu::with_vlan(f, vid);
            rig.feed(*port, &g);
            // Two tags (QinQ with 0x8100 inside 0x8100): not IP at the offset we parse.
            let gg = tu::with_vlan(&g, vid);
            rig.feed(*port, &gg);
            // A tag truncated after the TPID.
            rig.feed(*port, &g[..16]);
            let _ = what;
        }
    }
}

#[test]
fn oversized_frames() {
    let mut rig = Rig::new();
    let big = vec![0x61u8; 3000];
    for vip in VIPS4 {
        let syn = tu::tcp4(C_MAC, D0, v4(CIP), 45000, v4(vip), 80, SYN, b"");
        rig.expect_tx(0, &syn, "SYN");
        for df in [true, false] {
            let mut g = tu::tcp4(C_MAC, D0, v4(CIP), 45000, v4(vip), 80, ACK, &big);
            tu::set_df(&mut g, df);
            // Larger than the egress MTU: a counted drop (ICMP needs-fragmentation may be sent
            // back), never a frame over the MTU (checked in `feed`).
            rig.feed(0, &g);
        }
    }
    for vip in VIPS6 {
        let syn = tu::tcp6(C_MAC, D0, v6(CIP6), 45001, v6(vip), 80, SYN, b"");
        rig.expect_tx(0, &syn, "SYN v6");
        let g = tu::tcp6(C_MAC, D0, v6(CIP6), 45001, v6(vip), 80, ACK, &big);
        rig.feed(0, &g);
    }
    // The largest frame a chunk holds, of garbage and of a header claiming 64 KiB.
    let max = CHUNK_SIZE - HEADROOM;
    let mut g = vec![0xffu8; max];
    rig.feed(0, &g);
    g[..34].copy_from_slice(
        &tu::tcp4(C_MAC, D0, v4(CIP), 45002, v4("198.18.1.100"), 80, SYN, b"")[..34],
    );
    g[16..18].copy_from_slice(&0xffffu16.to_be_bytes());
    fix_ip(&mut g);
    rig.expect_drop(
        0,
        &g,
        &[DropReason::Malformed],
        "total length past the frame",
    );
}

/// xorshift64*: deterministic, no dependency.
fn rng(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn random_garbage_and_bit_flips() {
    let (mut rig, frames) = established();
    let mut s = 0x0dd_ba11_u64;
    for _ in 0..3000 {
        let len = (rng(&mut s) % 200) as usize;
        let mut g: Vec<u8> = (0..len).map(|_| rng(&mut s) as u8).collect();
        // Half the time an IP ethertype, so the IP parser sees the garbage.
        if len >= 14 && rng(&mut s).is_multiple_of(2) {
            let et: u16 = if rng(&mut s).is_multiple_of(2) {
                0x0800
            } else {
                0x86dd
            };
            g[12..14].copy_from_slice(&et.to_be_bytes());
            if et == 0x0800 && len > 34 {
                g[14] = 0x45;
                fix_ip(&mut g);
            }
        }
        rig.feed((rng(&mut s) % 2) as u16, &g);
    }
    for _ in 0..3000 {
        let (_, port, f) = &frames[(rng(&mut s) as usize) % frames.len()];
        let mut g = f.clone();
        for _ in 0..1 + rng(&mut s) % 3 {
            let i = (rng(&mut s) as usize) % g.len();
            g[i] ^= 1 << (rng(&mut s) % 8);
        }
        if is_v4(&g) && rng(&mut s).is_multiple_of(2) {
            fix_ip(&mut g);
        }
        rig.feed(*port, &g);
    }
    // The established flows still forward after all that.
    for (what, port, f) in &frames {
        rig.expect_tx(*port, f, what);
    }
}
