//! The bodies of xvs's fuzz targets, one function per target, so that the libFuzzer entry
//! points in `fuzz_targets/` (run with `cargo fuzz`) and the plain tests at the bottom of this
//! file (run with `cargo test --lib` on stable, over the committed seed corpus in `seeds/` and
//! a seeded random driver) exercise exactly the same code.
//!
//! Each function takes arbitrary bytes and checks the target's contract; a panic (an assertion
//! here or a bug in xvs) is a finding:
//! - [`wire_parse`]: `parse_frame` / `parse_ip` never panic and everything `Ok` promises holds.
//! - [`pipeline`]: frames into a `Worker<MemIo>` running the fixed director of
//!   `dataplane/tests/common`: never a panic; every received frame is either transmitted or
//!   dropped with a counted reason; no frame of the pool leaks; and when a frame's checksums are
//!   all correct (`testutil::verify_checksums`), every frame the worker emits for it has correct
//!   checksums too.
//! - [`proto`]: the control protocol's framing and decoder, and the control thread handling any
//!   request that decodes.
//! - [`ipvsadm_args`]: the ipvsadm command-line parser, and applying what it accepts.
//! - [`restore`]: `-R` input (the ipvsadm-save format) applied by the control thread.
//!
//! These functions must never read the clock, the network or anything but their input: host
//! and service names resolve through fixed tables, never the system resolver.

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use xvs_control::cli::names::Names;
use xvs_control::cli::parse::{Action, parse, restore_words};
use xvs_control::proto::{decode_request, decode_response, read_frame};
use xvs_control::server::{Hooks, Server};
use xvs_dataplane::conn::ConnTable;
use xvs_dataplane::director::Director;
use xvs_dataplane::io::mem::MemIo;
use xvs_dataplane::testutil::verify_checksums;
use xvs_dataplane::wire::{Frag, Parsed, parse_frame, parse_ip};
use xvs_dataplane::worker::{Shared, Worker};

/// The fixed director (ports, neighbours, one service per mode and family) the dataplane's
/// fixture tests run; shared so the fuzzer and the fixtures see the same configuration.
#[path = "../../dataplane/tests/common/mod.rs"]
#[allow(clippy::all, missing_docs)]
pub mod common;

/// Target `wire_parse`: the hot-path frame parser on arbitrary bytes.
pub fn wire_parse(data: &[u8]) {
    match parse_frame(data) {
        Ok(Parsed::Ip(info)) => {
            assert!(
                info.l3_off >= 14 && info.l3_off <= 18,
                "l3_off {}",
                info.l3_off
            );
            assert!(info.l3_end() <= data.len(), "l3 runs past the frame");
            let ip = &data[info.l3_off..info.l3_end()];
            match info.family {
                xvs_dataplane::service::Family::V4 => {
                    assert_eq!(ip[0] >> 4, 4);
                    let hl = usize::from(ip[0] & 0xf) * 4;
                    assert!(hl >= 20 && hl <= ip.len());
                    assert_eq!(
                        ones_sum(&ip[..hl], 0),
                        0xffff,
                        "IPv4 checksum accepted wrong"
                    );
                }
                xvs_dataplane::service::Family::V6 => {
                    assert_eq!(ip[0] >> 4, 6);
                    assert!(ip.len() >= 40);
                }
            }
            if info.frag != Frag::NotFirst {
                assert!(info.l4_off >= info.l3_off && info.l4_off <= info.l3_end());
                let l4 = &data[info.l4_off..info.l3_end()];
                match info.proto {
                    6 => {
                        assert!(l4.len() >= 20);
                        let doff = usize::from(l4[12] >> 4) * 4;
                        assert!(doff >= 20 && doff <= l4.len(), "TCP data offset {doff}");
                        assert_eq!(info.tcp_flags, l4[13]);
                    }
                    17 => assert!(l4.len() >= 8),
                    1 | 58 => assert!(l4.len() >= 8),
                    _ => {}
                }
            }
            // The same IP packet parsed without its Ethernet header agrees.
            let again = parse_ip(data, info.l3_off).map(|mut i| {
                i.vlan = info.vlan;
                i
            });
            assert_eq!(again, Ok(info));
        }
        Ok(Parsed::Arp { l3_off }) => assert!(l3_off <= data.len()),
        Ok(Parsed::Other(_)) | Err(_) => {}
    }
    // Raw IP at a few offsets (the tunnel-inner path).
    for off in [0, 1, 14, 18, data.len(), data.len() + 1] {
        if let Ok(info) = parse_ip(data, off) {
            assert!(info.l3_end() <= data.len());
        }
    }
}

/// Frames in the pool of the fuzzed worker (small: a fresh worker is built per input).
const POOL: usize = 64;

/// Build the fuzzed worker: the fixture director, a small conn table.
fn fuzz_worker() -> Worker<MemIo> {
    let director = Arc::new(Director::new(1));
    // INVARIANT: the fixture configuration is valid (the fixture tests apply it too).
    director
        .apply(&common::config())
        .unwrap_or_else(|e| panic!("fixture config refused: {e}"));
    let conns =
        Arc::new(ConnTable::with_bits(8, 256, 1).unwrap_or_else(|e| panic!("conn table: {e}")));
    let shared = Arc::new(
        Shared::new(director, conns, common::net(), 1).unwrap_or_else(|e| panic!("net: {e}")),
    );
    let io = MemIo::new(POOL, vec![common::D0, common::D1]);
    Worker::new(0, io, shared)
}

/// Target `pipeline`: a sequence of frames through one worker.
///
/// Input: records of `[h, len_hi, len_lo, bytes...]`: port `h & 1`; if `h & 2`, the frame's
/// checksums are made correct first ([`fix_checksums`]); the clock advances by `(h >> 2)`
/// seconds before the frame (so conns and neighbours expire); `len` is capped by what is left.
pub fn pipeline(data: &[u8]) {
    let mut w = fuzz_worker();
    let mut now_ms = 1_000u64;
    let mut rest = data;
    let mut frame = Vec::with_capacity(4096);
    while let Some(h) = next_record(&mut rest, &mut frame) {
        now_ms += u64::from(h >> 2) * 1000;
        let valid = verify_checksums(&frame).is_ok();
        // Larger than a chunk: the NIC would never deliver it.
        if w.io_mut().inject(u16::from(h & 1), &frame) {
            run_burst(&mut w, &mut now_ms, (1, valid), &frame);
        }
    }
}

/// Take the next record of a [`pipeline`] input off `rest`: its frame into `frame` (checksums
/// fixed when `h & 2`), its header byte `h` returned; `None` at the end.
fn next_record(rest: &mut &[u8], frame: &mut Vec<u8>) -> Option<u8> {
    let (&[h, hi, lo], tail) = rest.split_first_chunk::<3>()?;
    let len = usize::from(u16::from_be_bytes([hi, lo])).min(tail.len());
    frame.clear();
    frame.extend_from_slice(&tail[..len]);
    *rest = &tail[len..];
    if h & 2 != 0 {
        fix_checksums(frame);
    }
    Some(h)
}

/// Frames [`pipeline_bursts`] delivers in one burst at most (a quarter of the pool, leaving
/// room for the ARP requests and ICMP answers the worker allocates).
const BURST: usize = POOL / 4;

/// Target `pipeline_bursts`: the records of [`pipeline`], delivered in bursts as a NIC does: a
/// frame whose clock advance is 0 joins the burst before it (up to [`BURST`] frames), so the
/// worker's per-burst paths run (two client -> VIP frames in a row are looked up together).
/// Per burst: every frame is sent or dropped with exactly one counted reason, no pool frame
/// leaks, and when every frame of the burst has right checksums, so does every frame emitted.
pub fn pipeline_bursts(data: &[u8]) {
    let mut w = fuzz_worker();
    let mut now_ms = 1_000u64;
    let mut rest = data;
    let mut frame = Vec::with_capacity(4096);
    let mut burst = (0u64, true);
    while let Some(h) = next_record(&mut rest, &mut frame) {
        let advance = u64::from(h >> 2) * 1000;
        if advance != 0 || burst.0 == BURST as u64 {
            run_burst(&mut w, &mut now_ms, burst, &[]);
            burst = (0, true);
        }
        now_ms += advance;
        let valid = verify_checksums(&frame).is_ok();
        if w.io_mut().inject(u16::from(h & 1), &frame) {
            burst = (burst.0 + 1, burst.1 && valid);
        }
    }
    run_burst(&mut w, &mut now_ms, burst, &[]);
}

/// One turn over the `n` frames injected (`all_valid`: all with right checksums; `input`, the
/// frame when there is one, for the message), checked as [`pipeline`] and [`pipeline_bursts`]
/// say.
fn run_burst(w: &mut Worker<MemIo>, now_ms: &mut u64, (n, all_valid): (u64, bool), input: &[u8]) {
    if n == 0 {
        return;
    }
    let before = w.stats().clone();
    w.poll(*now_ms);
    if w.held() > 0 {
        // Waiting for a neighbour nobody will announce: let it time out into a counted drop
        // (the worker's hold queue, like the kernel's neighbour queue).
        *now_ms += xvs_dataplane::worker::HOLD_MS;
        w.poll(*now_ms);
    }
    let out = w.io_mut().take_tx();
    let after = w.stats();
    let drops: u64 = after.drops.iter().sum::<u64>() - before.drops.iter().sum::<u64>();
    let tx = after.tx_packets - before.tx_packets;
    assert_eq!(after.rx_packets - before.rx_packets, n);
    assert_eq!(
        tx + drops,
        n,
        "a frame was neither sent nor counted as dropped"
    );
    assert_eq!(w.io().free_frames(), w.io().chunks(), "a frame leaked");
    assert!(out.len() as u64 >= tx);
    if all_valid {
        for (p, o) in &out {
            assert!(usize::from(*p) < 2);
            if let Err(e) = verify_checksums(o) {
                panic!(
                    "valid input produced a frame with a bad checksum on port {p}: {e}\nin:  {input:02x?}\nout: {o:02x?}"
                );
            }
        }
    }
}

/// A fresh control-thread state over an empty director.
fn server() -> Server {
    Server::with_names(Arc::new(Director::new(1)), Hooks::default(), 12, names())
}

/// Fixed host and service tables (never the system resolver: no DNS query per input).
fn names() -> Names {
    Names::from_texts(
        "198.18.1.100 vip www web\n::1 localhost6\n",
        "http 80/tcp\nhttp 80/udp\ndomain 53/udp\nhttps 443/tcp\n",
    )
}

/// Target `proto`: the control socket's framing and decoder, then the control thread.
///
/// The input is tried as one frame body, and as a stream of length-prefixed frames.
pub fn proto(data: &[u8]) {
    let mut s = server();
    let mut pending = String::new();
    let mut handle = |s: &mut Server, body: &[u8]| {
        if let Ok(req) = decode_request(body) {
            let _ = s.handle(req.body, &mut pending);
        }
        let _ = decode_response(body);
    };
    handle(&mut s, data);
    let mut cur = Cursor::new(data);
    for _ in 0..64 {
        match read_frame(&mut cur) {
            Ok(body) => handle(&mut s, &body),
            Err(_) => break,
        }
    }
}

/// Target `ipvsadm_args`: the ipvsadm argument parser; a command it accepts is then applied.
///
/// Input: text whose NUL- or newline-separated words are the arguments (after `ipvsadm`). The
/// first byte's low bit selects `reading_stdin` (the `-R` line mode).
pub fn ipvsadm_args(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut argv = vec!["ipvsadm".to_owned()];
    argv.extend(text.split(['\0', '\n']).map(str::to_owned));
    let names = names();
    match parse(&argv, first & 1 != 0, &names) {
        Action::Exec(cmd) => {
            let _ = server().exec(&cmd);
        }
        Action::Exit(e) => assert!(e.code != 0 || !(e.stdout.is_empty() && e.stderr.is_empty())),
        _ => {}
    }
    // The same text as one `-R` line.
    let words = restore_words("ipvsadm", &text.replace(['\0', '\n'], " "));
    let _ = parse(&words, true, &names);
}

/// Target `restore`: ipvsadm-save text applied by the control thread (`-R`, `--restore`).
/// The first byte's low bit selects strict mode (`xvsd --restore`: any refusal applies nothing).
pub fn restore(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut s = server();
    let before = s.config().clone();
    let r = s.restore("ipvsadm", &text, first & 1 != 0);
    assert!(r.error_lines.iter().all(|&l| l >= 1 && l <= r.lines));
    if r.exit_code == 2 || (first & 1 != 0 && !r.messages.is_empty()) {
        // A syntax error, or a refusal in strict mode, applies nothing.
        assert_eq!(
            s.config(),
            &before,
            "a refused restore changed the configuration"
        );
    }
}

/// One's-complement sum of `data` (odd byte padded) added to `init`, folded to 16 bits.
#[must_use]
pub fn ones_sum(data: &[u8], init: u32) -> u16 {
    let mut s = u64::from(init);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        s += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        s += u64::from(*b) << 8;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    #[allow(clippy::cast_possible_truncation)]
    let r = s as u16;
    r
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

/// Make the checksums of a frame correct where it can (independently of the code under test):
/// the IPv4 header, and the TCP/UDP/ICMP/ICMPv6 checksum of an unfragmented packet (IPv6:
/// without extension headers). An 802.1Q tag is skipped. Anything it cannot make sense of is
/// left as it is.
pub fn fix_checksums(f: &mut [u8]) {
    if f.len() < 14 {
        return;
    }
    let (mut et, mut off) = (be16(f, 12), 14);
    if et == 0x8100 && f.len() >= 18 {
        et = be16(f, 16);
        off = 18;
    }
    let (pseudo, l4_start, l4_end, proto) = match et {
        0x0800 => {
            if f.len() < off + 20 || f[off] >> 4 != 4 {
                return;
            }
            let hl = usize::from(f[off] & 0xf) * 4;
            if hl < 20 || off + hl > f.len() {
                return;
            }
            f[off + 10] = 0;
            f[off + 11] = 0;
            let c = !ones_sum(&f[off..off + hl], 0);
            f[off + 10..off + 12].copy_from_slice(&c.to_be_bytes());
            let tl = be16(f, off + 2);
            if tl < hl || off + tl > f.len() || be16(f, off + 6) & 0x3fff != 0 {
                return;
            }
            let proto = f[off + 9];
            let src = Ipv4Addr::new(f[off + 12], f[off + 13], f[off + 14], f[off + 15]);
            let dst = Ipv4Addr::new(f[off + 16], f[off + 17], f[off + 18], f[off + 19]);
            (
                pseudo_sum(IpAddr::V4(src), IpAddr::V4(dst), proto, tl - hl),
                off + hl,
                off + tl,
                proto,
            )
        }
        0x86dd => {
            if f.len() < off + 40 || f[off] >> 4 != 6 {
                return;
            }
            let plen = be16(f, off + 4);
            if off + 40 + plen > f.len() {
                return;
            }
            let a = |at: usize| -> Ipv6Addr {
                let mut o = [0u8; 16];
                o.copy_from_slice(&f[at..at + 16]);
                Ipv6Addr::from(o)
            };
            let proto = f[off + 6];
            (
                pseudo_sum(IpAddr::V6(a(off + 8)), IpAddr::V6(a(off + 24)), proto, plen),
                off + 40,
                off + 40 + plen,
                proto,
            )
        }
        _ => return,
    };
    let at = match proto {
        6 if l4_end - l4_start >= 20 => 16,
        17 if l4_end - l4_start >= 8 => 6,
        1 | 58 if l4_end - l4_start >= 4 => 2,
        _ => return,
    };
    let l4 = &mut f[l4_start..l4_end];
    l4[at] = 0;
    l4[at + 1] = 0;
    let init = if proto == 1 { 0 } else { u32::from(pseudo) };
    let mut c = !ones_sum(l4, init);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

fn pseudo_sum(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u16 {
    let mut b = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            b.extend_from_slice(&s.octets());
            b.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            b.extend_from_slice(&s.octets());
            b.extend_from_slice(&d.octets());
        }
        _ => {}
    }
    #[allow(clippy::cast_possible_truncation)]
    b.extend_from_slice(&(len as u32).to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, proto]);
    ones_sum(&b, 0)
}

#[cfg(test)]
mod tests;
