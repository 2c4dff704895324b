//! Forwarding modes: the per-packet rewrite of a tracked conn's packets, in place in the frame.
//!
//! The mode is fixed when a conn is created; [`rewrite`] dispatches on it with a `match` (no
//! `dyn`). Each mode follows what IPVS's `ip_vs_xmit.c` does for the same mode:
//!
//! | mode | Input (client -> dest) | Output (dest -> client) |
//! |---|---|---|
//! | NAT (`Masq`) | dst -> daddr:dport | src -> vaddr:vport |
//! | DR (`Route`), `Local` | untouched at L3 | passed through (IPVS lets it continue) |
//! | TUN (`Tunnel`) | encapsulated to daddr (IPIP, GUE, GRE) | passed through |
//! | FULLNAT | src -> laddr:lport, dst -> daddr:dport | src -> vaddr:vport, dst -> caddr:cport |
//!
//! Every forwarded packet has its TTL / hop limit decremented, as IPVS does in
//! `__ip_vs_get_out_rt` (Input) and `ip_forward` does for NAT replies (Output); a packet that
//! arrives with TTL <= 1 in the Input direction is turned into an ICMP time exceeded back to the
//! client (source: the VIP, as `icmp_send` picks for a locally delivered packet); in the Output
//! direction it is dropped (`TtlExceeded`). In the Input direction a packet larger than the
//! egress MTU gets an ICMP "fragmentation needed" (IPv4 with DF) / "packet too big" (IPv6)
//! back to the client, as `ensure_mtu_is_adequate` does. xvs never fragments: anything else too
//! big (IPv4 without DF, where the kernel would fragment; replies in the Output direction,
//! where `ip_forward` would answer the dest from an address xvs is not told) is dropped
//! (`TooBig`).
//!
//! Checksums are updated incrementally (RFC 1624), pseudo-header included; a UDP/IPv4 checksum
//! of 0 (none) stays 0, and an updated UDP checksum that comes out 0 is sent as `0xffff`.
//!
//! **CHECKSUM_PARTIAL.** A kernel sending through a veth with TX offload on leaves TCP/UDP
//! checksum fields holding only the folded pseudo-header sum; the receiving end of an AF_XDP
//! forwarder sees exactly those bytes and no offload metadata. With
//! [`FwdCtx::complete_partial`] set, the rewrite first checks the L4 checksum; when it does not
//! verify but equals the pseudo-header sum, the packet is taken to be partial and its checksum is
//! completed (a full pass over the segment) before the incremental updates. Off by default:
//! the check costs a pass over the payload, real NICs never hand out partial checksums, and the
//! end-to-end tests turn TX offload off on their peers.
//!
//! Frame contract with the worker: `frame.data()` starts at L2 and the IP packet at
//! `info.l3_off`; on `Tx` the output IP packet starts at the same offset (bytes before it are
//! scratch for the worker's Ethernet header, whose ethertype follows the IP version nibble) and
//! the frame ends where the IP packet ends (Ethernet padding is trimmed here). Never: allocate,
//! log, or read past `info.l3_end()`.

mod dr;
mod fullnat;
mod icmp;
mod nat;
mod tun;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use icmp::{icmp_inner_key, port_unreachable, rewrite_icmp};

use crate::flow::{ConnTuple, Dir, proto};
use crate::io::Frame;
use crate::service::{Family, FwdMode, TunConf};
use crate::stats::DropReason;
use crate::wire::{PacketInfo, checksum, ipv4, ipv6, tcp, udp};

/// What [`rewrite`] needs to know about a conn (copied from it; the mode never changes).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FwdConn {
    /// The conn's addresses and ports.
    pub tuple: ConnTuple,
    /// Forwarding mode.
    pub mode: FwdMode,
    /// Tunnel settings (TUN only).
    pub tun: TunConf,
}

/// Per-egress facts the worker supplies.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct FwdCtx {
    /// The director's IPv4 address on the egress interface: the outer source of TUN
    /// packets. `None`: IPv4 tunnels cannot be sent (`NoRoute`).
    pub src_v4: Option<Ipv4Addr>,
    /// The director's IPv6 address on the egress interface.
    pub src_v6: Option<Ipv6Addr>,
    /// Egress L3 MTU; 0 disables the MTU check.
    pub mtu: usize,
    /// Complete CHECKSUM_PARTIAL TCP/UDP checksums (see the module docs).
    pub complete_partial: bool,
}

/// The outcome of a rewrite.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the frame; the worker routes to `route_to` (next hop = it or its gateway),
    /// resolves the MAC and writes the Ethernet header in front of `info.l3_off`.
    Tx {
        /// Address to route towards.
        route_to: IpAddr,
    },
    /// Drop and count.
    Drop(DropReason),
}

/// Rewrite a packet of `conn` travelling in `dir` for the conn's forwarding mode.
///
/// `info` must be `parse_frame`'s summary of this very frame.
#[inline]
pub fn rewrite(
    conn: &FwdConn,
    dir: Dir,
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    ctx: &FwdCtx,
) -> Verdict {
    if frame.set_len(info.l3_end()).is_err() {
        return Verdict::Drop(DropReason::Malformed);
    }
    if ctx.complete_partial {
        complete_partial(frame.data_mut(), info);
    }
    match (conn.mode, dir) {
        (FwdMode::Masq, Dir::Input) => nat::input(conn, frame, info, ctx),
        (FwdMode::Masq, Dir::Output) => nat::output(conn, frame, info, ctx),
        (FwdMode::Route | FwdMode::Local, Dir::Input) => dr::input(conn, frame, info, ctx),
        (FwdMode::Tunnel, Dir::Input) => tun::input(conn, frame, info, ctx, false),
        (FwdMode::FullNat, Dir::Input) => fullnat::input(conn, frame, info, ctx),
        (FwdMode::FullNat, Dir::Output) => fullnat::output(conn, frame, info, ctx),
        // IPVS never translates these (handle_response: "after_nat"); route them on as
        // addressed, after the forwarding TTL decrement.
        (FwdMode::Route | FwdMode::Local | FwdMode::Tunnel, Dir::Output) => {
            match forward_ttl(frame.data_mut(), info) {
                Ok(()) => Verdict::Tx { route_to: info.dst },
                Err(v) => v,
            }
        }
    }
}

/// Which end of a packet to rewrite.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Src,
    Dst,
}

/// Rewrite the address and port of one end of the IP packet at `l3_off` whose L4 header is at
/// `l4_off` (`l4_len` bytes of it available, 0 when it must not be touched), updating the IPv4
/// header checksum and the TCP/UDP/ICMPv6 checksum incrementally: the address difference is
/// computed once and applied to each checksum that covers it.
///
/// Returns false (nothing written) when `addr` is not of the packet's family.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn set_endpoint(
    buf: &mut [u8],
    l3_off: usize,
    l4_off: usize,
    l4_len: usize,
    proto: u8,
    end: End,
    addr: IpAddr,
    port: u16,
) -> bool {
    let v4 = buf[l3_off] >> 4 == 4;
    let addr_diff = match (v4, addr) {
        (true, IpAddr::V4(n)) => {
            let at = l3_off
                + if end == End::Src {
                    ipv4::SRC_OFFSET
                } else {
                    ipv4::DST_OFFSET
                };
            let old = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
            let new = n.to_bits();
            buf[at..at + 4].copy_from_slice(&new.to_be_bytes());
            let d = checksum::diff32(old, new);
            put_csum(buf, l3_off + ipv4::CHECKSUM_OFFSET, |c| {
                checksum::apply(c, d)
            });
            d
        }
        (false, IpAddr::V6(n)) => {
            let at = l3_off
                + if end == End::Src {
                    ipv6::SRC_OFFSET
                } else {
                    ipv6::DST_OFFSET
                };
            let new = n.octets();
            let d = checksum::diff_bytes(&buf[at..at + 16], &new);
            buf[at..at + 16].copy_from_slice(&new);
            d
        }
        _ => return false,
    };
    // Ports need 4 bytes of L4 header; a checksum is updated only when its field is present
    // (an ICMP error may quote just the first 8 bytes of a TCP header).
    let p_off = l4_off + if end == End::Src { 0 } else { 2 };
    let has_ports = matches!(proto, proto::TCP | proto::UDP) && l4_len >= 4;
    let mut diff = addr_diff;
    if has_ports {
        diff = checksum::add(diff, checksum::diff16(be16(buf, p_off), port));
        put_be16(buf, p_off, port);
    }
    match proto {
        proto::TCP if l4_len >= tcp::CHECKSUM_OFFSET + 2 => {
            put_csum(buf, l4_off + tcp::CHECKSUM_OFFSET, |c| {
                checksum::apply(c, diff)
            });
        }
        proto::UDP if l4_len >= udp::HEADER_LEN => {
            let at = l4_off + udp::CHECKSUM_OFFSET;
            let c = be16(buf, at);
            // Zero: no checksum (IPv4); it stays that way. IPv6 forbids zero; leave it alone.
            if c != 0 {
                let n = checksum::apply(c, diff);
                put_be16(buf, at, if n == 0 { 0xffff } else { n });
            }
        }
        // SCTP is not handled: its CRC32c covers the ports and has no incremental form (and
        // does not cover addresses); xvs does not balance SCTP.
        proto::ICMPV6 if l4_len >= 4 => {
            put_csum(buf, l4_off + 2, |c| checksum::apply(c, addr_diff));
        }
        _ => {}
    }
    true
}

/// Apply `f` to the big-endian checksum at `at` and store the result.
#[inline(always)]
pub(crate) fn put_csum(buf: &mut [u8], at: usize, f: impl FnOnce(u16) -> u16) -> u16 {
    let c = f(be16(buf, at));
    put_be16(buf, at, c);
    c
}

#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
pub(crate) fn put_be16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Rewrite one end of the packet `info` describes (its L4 header only if it has one).
#[inline]
pub(crate) fn set_packet_endpoint(
    buf: &mut [u8],
    info: &PacketInfo,
    end: End,
    addr: IpAddr,
    port: u16,
) -> bool {
    let l4_len = if info.frag == crate::wire::Frag::NotFirst {
        0
    } else {
        info.l3_end() - info.l4_off
    };
    set_endpoint(
        buf,
        info.l3_off,
        info.l4_off,
        l4_len,
        info.proto,
        end,
        addr,
        port,
    )
}

/// The Output-direction forwarding TTL step (`ip_forward` before IPVS sees a NAT reply):
/// decrement with an incremental checksum update; at TTL <= 1 drop (`TtlExceeded`).
#[inline]
pub(crate) fn forward_ttl(buf: &mut [u8], info: &PacketInfo) -> Result<(), Verdict> {
    if info.ttl <= 1 {
        return Err(Verdict::Drop(DropReason::TtlExceeded));
    }
    decrement_ttl(buf, info);
    Ok(())
}

/// Decrement TTL / hop limit (IPv4 header checksum updated incrementally).
#[inline(always)]
pub(crate) fn decrement_ttl(buf: &mut [u8], info: &PacketInfo) {
    let o = info.l3_off;
    match info.family {
        Family::V4 => {
            let old = be16(buf, o + ipv4::TTL_OFFSET);
            let new = old.wrapping_sub(0x0100);
            put_be16(buf, o + ipv4::TTL_OFFSET, new);
            put_csum(buf, o + ipv4::CHECKSUM_OFFSET, |c| {
                checksum::update16(c, old, new)
            });
        }
        Family::V6 => buf[o + 7] = buf[o + 7].wrapping_sub(1),
    }
}

/// Input-direction TTL step with the ICMP time exceeded answer (IPVS `decrement_ttl`): `Ok`
/// when the packet may go on (TTL decremented), `Err(verdict)` otherwise.
#[inline(always)]
pub(crate) fn input_ttl(
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    icmp_allowed: bool,
) -> Result<(), Verdict> {
    if info.ttl <= 1 {
        if !icmp_allowed {
            return Err(Verdict::Drop(DropReason::TtlExceeded));
        }
        let (t, c) = match info.family {
            Family::V4 => (icmp::V4_TIME_EXCEEDED, 0),
            Family::V6 => (icmp::V6_TIME_EXCEEDED, 0),
        };
        return Err(icmp::error_in_place(
            frame,
            info,
            t,
            c,
            0,
            info.dst,
            DropReason::TtlExceeded,
        ));
    }
    decrement_ttl(frame.data_mut(), info);
    Ok(())
}

/// The non-tunnel MTU check of `ensure_mtu_is_adequate` for the Input direction: too big with
/// DF (always for IPv6) -> ICMP error to the client; too big without DF -> drop (IPVS would
/// fragment).
#[inline(always)]
pub(crate) fn input_mtu(
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    mtu: usize,
    icmp_allowed: bool,
) -> Result<(), Verdict> {
    if mtu == 0 || info.l3_len <= mtu {
        return Ok(());
    }
    Err(too_big(frame, info, mtu, icmp_allowed))
}

/// The answer to a packet of `info` that exceeds `mtu`.
#[cold]
pub(crate) fn too_big(
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    mtu: usize,
    icmp_allowed: bool,
) -> Verdict {
    let eligible = icmp_allowed && info.frag != crate::wire::Frag::NotFirst;
    let mtu32 = u32::try_from(mtu).unwrap_or(u32::MAX);
    match info.family {
        Family::V4 if info.df && eligible => {
            // RFC 1191: the next-hop MTU sits in the low 16 bits of the rest-of-header word.
            icmp::error_in_place(
                frame,
                info,
                icmp::V4_DEST_UNREACH,
                icmp::V4_FRAG_NEEDED,
                mtu32 & 0xffff,
                info.dst,
                DropReason::TooBig,
            )
        }
        Family::V6 if eligible => icmp::error_in_place(
            frame,
            info,
            icmp::V6_PKT_TOO_BIG,
            0,
            mtu32,
            info.dst,
            DropReason::TooBig,
        ),
        _ => Verdict::Drop(DropReason::TooBig),
    }
}

/// Complete a CHECKSUM_PARTIAL TCP/UDP checksum (see the module docs).
#[cold]
fn complete_partial(buf: &mut [u8], info: &PacketInfo) {
    if info.frag != crate::wire::Frag::None {
        return;
    }
    let at = match info.proto {
        proto::TCP => info.l4_off + tcp::CHECKSUM_OFFSET,
        proto::UDP => info.l4_off + udp::CHECKSUM_OFFSET,
        _ => return,
    };
    let seg = &buf[info.l4_off..info.l3_end()];
    let Ok(len) = u32::try_from(seg.len()) else {
        return;
    };
    let Some(pseudo) = checksum::pseudo(&info.src, &info.dst, info.proto, len) else {
        return;
    };
    let field = be16(buf, at);
    if checksum::add(pseudo, checksum::data(seg)) == 0xffff || field != pseudo {
        return; // valid, or not a partial checksum
    }
    put_be16(buf, at, 0);
    let c = !checksum::add(pseudo, checksum::data(&buf[info.l4_off..info.l3_end()]));
    put_be16(
        buf,
        at,
        if c == 0 && info.proto == proto::UDP {
            0xffff
        } else {
            c
        },
    );
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Frames over plain buffers for the fwd unit tests.
    use super::*;
    use crate::io::{CHUNK_SIZE, Desc, HEADROOM};
    use crate::wire::{Parsed, parse_frame};

    pub(crate) const M1: [u8; 6] = [2, 0, 0, 0, 0, 1];
    pub(crate) const M2: [u8; 6] = [2, 0, 0, 0, 0, 2];

    /// Client, VIP, dest, local (FULLNAT) and director addresses of one family.
    #[derive(Copy, Clone, Debug)]
    pub(crate) struct Addrs {
        pub(crate) c: IpAddr,
        pub(crate) v: IpAddr,
        pub(crate) d: IpAddr,
        pub(crate) l: IpAddr,
        pub(crate) dip: IpAddr,
    }

    pub(crate) const CPORT: u16 = 40000;
    pub(crate) const VPORT: u16 = 80;
    pub(crate) const DPORT: u16 = 8080;
    pub(crate) const LPORT: u16 = 5000;

    pub(crate) fn addrs(v6: bool) -> Addrs {
        let p = |s: &str| s.parse::<IpAddr>().unwrap();
        if v6 {
            Addrs {
                c: p("2001:db8:1::1"),
                v: p("2001:db8:2::1"),
                d: p("2001:db8:3::1"),
                l: p("2001:db8:4::1"),
                dip: p("2001:db8:3::fe"),
            }
        } else {
            Addrs {
                c: p("198.18.0.1"),
                v: p("198.18.1.1"),
                d: p("198.18.2.1"),
                l: p("198.18.3.1"),
                dip: p("198.18.2.254"),
            }
        }
    }

    /// A conn of `mode` over the addresses of `a` (the dest from `d`, so TUN can mix families).
    pub(crate) fn conn(mode: FwdMode, a: Addrs, d: IpAddr, tun: TunConf) -> FwdConn {
        let (laddr, lport) = if mode == FwdMode::FullNat {
            (a.l, LPORT)
        } else {
            (a.c, CPORT)
        };
        FwdConn {
            tuple: ConnTuple {
                proto: proto::TCP,
                caddr: a.c,
                vaddr: a.v,
                daddr: d,
                laddr,
                cport: CPORT,
                vport: VPORT,
                dport: DPORT,
                lport,
            },
            mode,
            tun,
        }
    }

    pub(crate) fn ctx(mtu: usize) -> FwdCtx {
        let a4 = addrs(false).dip;
        let a6 = addrs(true).dip;
        let (IpAddr::V4(s4), IpAddr::V6(s6)) = (a4, a6) else {
            unreachable!()
        };
        FwdCtx {
            src_v4: Some(s4),
            src_v6: Some(s6),
            mtu,
            complete_partial: false,
        }
    }

    /// Parse an output frame with etherparse: (src, dst, ttl, sport, dport) of its IP / L4.
    pub(crate) fn fields(frame: &[u8]) -> (IpAddr, IpAddr, u8, u16, u16) {
        use etherparse::{NetSlice, SlicedPacket, TransportSlice};
        let s = SlicedPacket::from_ethernet(frame).unwrap();
        let (src, dst, ttl) = match s.net.unwrap() {
            NetSlice::Ipv4(i) => (
                IpAddr::from(i.header().source()),
                IpAddr::from(i.header().destination()),
                i.header().ttl(),
            ),
            NetSlice::Ipv6(i) => (
                IpAddr::from(i.header().source()),
                IpAddr::from(i.header().destination()),
                i.header().hop_limit(),
            ),
        };
        let (sp, dp) = match s.transport {
            Some(TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
            Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
            _ => (0, 0),
        };
        (src, dst, ttl, sp, dp)
    }

    /// Checksums valid and etherparse accepts the frame.
    pub(crate) fn check(frame: &[u8]) {
        crate::testutil::verify_checksums(frame).unwrap_or_else(|e| panic!("{e}: {frame:02x?}"));
        etherparse::SlicedPacket::from_ethernet(frame).unwrap();
    }

    /// A chunk holding `frame` at HEADROOM, and its descriptor.
    pub(crate) fn chunk(frame: &[u8]) -> (Vec<u8>, Desc) {
        let mut c = vec![0u8; CHUNK_SIZE];
        c[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let len = u32::try_from(frame.len()).unwrap();
        (
            c,
            Desc {
                addr: HEADROOM as u64,
                len,
                port: 0,
            },
        )
    }

    pub(crate) fn info(frame: &[u8]) -> PacketInfo {
        match parse_frame(frame).unwrap() {
            Parsed::Ip(i) => i,
            p => panic!("not IP: {p:?}"),
        }
    }

    /// Run `f` (rewrite or rewrite_icmp) over `frame`; returns the verdict and the output
    /// frame, with a placeholder Ethernet header written the way the worker would.
    pub(crate) fn run(
        frame: &[u8],
        f: impl FnOnce(&mut Frame<'_>, &PacketInfo) -> Verdict,
    ) -> (Verdict, Vec<u8>) {
        let i = info(frame);
        let (mut c, mut d) = chunk(frame);
        let v = {
            let mut fr = Frame::new(&mut c, &mut d);
            f(&mut fr, &i)
        };
        let mut fr = Frame::new(&mut c, &mut d);
        let data = fr.data_mut();
        // The worker's L2: untagged Ethernet, type from the IP version nibble.
        let et: u16 = if data[i.l3_off] >> 4 == 6 {
            0x86dd
        } else {
            0x0800
        };
        let l3 = data[i.l3_off..].to_vec();
        let mut out = Vec::with_capacity(14 + l3.len());
        out.extend_from_slice(&M2);
        out.extend_from_slice(&M1);
        out.extend_from_slice(&et.to_be_bytes());
        out.extend_from_slice(&l3);
        (v, out)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::testutil;
    use crate::wire::tcp::flags;

    /// Turn a full TCP/UDP checksum into what a CHECKSUM_PARTIAL sender leaves: the folded
    /// pseudo-header sum.
    fn make_partial(f: &mut [u8]) {
        let i = test_support::info(f);
        let at = i.l4_off + if i.proto == proto::TCP { 16 } else { 6 };
        let len = u32::try_from(i.l3_end() - i.l4_off).unwrap();
        let p = checksum::pseudo(&i.src, &i.dst, i.proto, len).unwrap();
        f[at..at + 2].copy_from_slice(&p.to_be_bytes());
    }

    #[test]
    fn complete_partial_checksums() {
        for v6 in [false, true] {
            for udp in [false, true] {
                let a = addrs(v6);
                let c = conn(FwdMode::Masq, a, a.d, TunConf::default());
                let mut f = if udp {
                    testutil::udp(M1, M2, a.c, CPORT, a.v, VPORT, b"some data")
                } else {
                    testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::ACK, b"some data")
                };
                make_partial(&mut f);
                assert!(testutil::verify_checksums(&f).is_err());
                // Without the option the partial checksum stays wrong...
                let (_, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1500)));
                assert!(testutil::verify_checksums(&out).is_err());
                // ...with it, it is completed.
                let mut cx = ctx(1500);
                cx.complete_partial = true;
                let (_, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &cx));
                check(&out);
                // A correct checksum is left alone by the option.
                let g = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::ACK, b"x");
                let (_, out) = run(&g, |fr, i| rewrite(&c, Dir::Input, fr, i, &cx));
                check(&out);
            }
        }
    }

    #[test]
    fn non_first_fragment_keeps_its_payload() {
        let a = addrs(false);
        let c = conn(FwdMode::Masq, a, a.d, TunConf::default());
        let mut f = testutil::udp(M1, M2, a.c, CPORT, a.v, VPORT, &[9u8; 32]);
        {
            let mut p = crate::wire::Ipv4Packet::new_unchecked(&mut f[14..]);
            p.set_frag(false, false, 64);
            p.fill_checksum();
        }
        let (v, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1500)));
        assert_eq!(v, Verdict::Tx { route_to: a.d });
        // Only the IP header changed: no L4 header in a later fragment.
        assert_eq!(&out[34..], &f[34..]);
        let p = crate::wire::Ipv4Packet::new_checked(&out[14..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(IpAddr::V4(p.dst_addr()), a.d);
    }
}
