//! TUN (`-i`, "Tunnel"): the whole IP packet is encapsulated to the dest, which answers the
//! client directly (`ip_vs_tunnel_xmit` / `_v6`).
//!
//! Outer header as IPVS builds it: source = the director's address on the egress interface
//! ([`FwdCtx::src_v4`]/[`FwdCtx::src_v6`]), destination = daddr, TTL / hop limit copied from
//! the inner packet (after its decrement), DSCP copied and ECN encapsulated (RFC 6040: CE
//! becomes ECT(0)), IPv4 DF copied from an IPv4 inner packet (0 for IPv6 inside IPv4),
//! identification 0, IPv6 flow label 0. The outer family is the dest's; the inner one may
//! differ (IPv6 in IPv4 is protocol 41, IPv4 in IPv6 next header 4), as IPVS allows for TUN.
//!
//! Encapsulations:
//! - IPIP: the outer IP header only (protocol 4 or 41).
//! - GUE: UDP to `tun.port`, source port from a hash of the inner flow in the kernel's default
//!   ephemeral range 32768..60999 (`udp_flow_src_port`), a 4-byte variant-0 GUE header. UDP
//!   checksum 0 unless `--tun-csum` (or `--tun-remcsum`, which xvs treats as `--tun-csum`:
//!   remote checksum offload only applies to CHECKSUM_PARTIAL packets, which xvs never holds).
//! - GRE: 4 bytes, plus 4 for the checksum with `--tun-csum`; protocol 0x0800 / 0x86dd.
//!
//! MTU: the room left for the inner packet is `mtu - outer IP - encapsulation`; below 68 (IPv4
//! outer) or 1280 (IPv6 outer) the packet is dropped, as IPVS does. A larger inner packet
//! gets ICMP fragmentation needed (IPv4 with DF) / packet too big (IPv6) carrying that room,
//! built in place and sent back to the client; without DF it is dropped (IPVS would fragment
//! the outer packet).

use std::net::IpAddr;

use super::{FwdConn, FwdCtx, Verdict, input_ttl, too_big};
use crate::flow::proto;
use crate::io::Frame;
use crate::service::{Family, TunType, tun_flags};
use crate::stats::DropReason;
use crate::wire::{
    GrePacket, GreRepr, GuePacket, GueRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, PacketInfo,
    UdpPacket, ethertype, gre, gue, udp,
};

/// Lowest port `udp_flow_src_port` picks (default `ip_local_port_range` start).
const SPORT_MIN: u32 = 32768;
/// End of the range (exclusive), the default `ip_local_port_range` end.
const SPORT_MAX: u32 = 60999;

/// Encapsulate a client -> director packet to the dest. `related_icmp`: the packet is an ICMP
/// error being forwarded (`rewrite_icmp`), which never triggers ICMP errors of its own.
#[inline]
pub(super) fn input(conn: &FwdConn, frame: &mut Frame<'_>, info: &PacketInfo, ctx: &FwdCtx, related_icmp: bool) -> Verdict {
    let daddr = conn.tuple.daddr;
    let src = match daddr {
        IpAddr::V4(_) => ctx.src_v4.map(IpAddr::V4),
        IpAddr::V6(_) => ctx.src_v6.map(IpAddr::V6),
    };
    let Some(src) = src else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    let outer_v6 = daddr.is_ipv6();
    let outer_ip = if outer_v6 { 40 } else { 20 };
    let csum = conn.tun.flags & (tun_flags::CSUM | tun_flags::REMCSUM) != 0;
    let encap = match conn.tun.kind {
        TunType::Ipip => 0,
        TunType::Gue => udp::HEADER_LEN + gue::BASE_LEN,
        TunType::Gre => gre::BASE_LEN + if csum { 4 } else { 0 },
    };
    let overhead = outer_ip + encap;

    if let Err(v) = input_ttl(frame, info, !related_icmp) {
        return v;
    }
    if ctx.mtu != 0 {
        let room = ctx.mtu.saturating_sub(overhead);
        if room < if outer_v6 { 1280 } else { 68 } {
            return Verdict::Drop(DropReason::TooBig);
        }
        if info.l3_len > room {
            return too_big(frame, info, room, !related_icmp);
        }
    }

    // What the outer header copies from the inner one (TTL already decremented).
    let (ds, ttl, df, inner_proto, inner_type) = {
        let b = &frame.data()[info.l3_off..];
        match info.family {
            Family::V4 => (b[1], b[8], info.df, proto::IPIP, ethertype::IPV4),
            Family::V6 => ((b[0] << 4) | (b[1] >> 4), b[7], false, proto::IPV6, ethertype::IPV6),
        }
    };
    let ds = ecn_encapsulate(ds);
    let sport = flow_src_port(info);
    if frame.push_front(overhead).is_err() {
        return Verdict::Drop(DropReason::NoHeadroom);
    }
    let o = info.l3_off;
    let buf = frame.data_mut();
    let enc_off = o + outer_ip;
    let next = match conn.tun.kind {
        TunType::Ipip => inner_proto,
        TunType::Gue => proto::UDP,
        TunType::Gre => proto::GRE,
    };
    // Outer IP header (the IPv4 one gets its checksum from emit).
    let payload_len = encap + info.l3_len;
    match (src, daddr) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ipv4Repr {
            src: s,
            dst: d,
            protocol: next,
            payload_len,
            ttl,
            dscp_ecn: ds,
            ident: 0,
            df,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut buf[o..enc_off])),
        (IpAddr::V6(s), IpAddr::V6(d)) => Ipv6Repr {
            src: s,
            dst: d,
            next_header: next,
            payload_len,
            hop_limit: ttl,
            traffic_class: ds,
            flow_label: 0,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut buf[o..enc_off])),
        // INVARIANT: src was chosen by daddr's family above.
        _ => return Verdict::Drop(DropReason::NoRoute),
    }
    match conn.tun.kind {
        TunType::Ipip => {}
        TunType::Gue => {
            let gue_off = enc_off + udp::HEADER_LEN;
            GueRepr { proto: inner_proto, flags: 0 }.emit(&mut GuePacket::new_unchecked(&mut buf[gue_off..]));
            let mut u = UdpPacket::new_unchecked(&mut buf[enc_off..]);
            u.set_src_port(sport);
            u.set_dst_port(conn.tun.port);
            #[allow(clippy::cast_possible_truncation)] // bounded by the frame chunk size
            u.set_len(payload_len as u16);
            if csum {
                u.fill_checksum(&src, &daddr);
            } else {
                u.set_checksum(0);
            }
        }
        TunType::Gre => {
            GreRepr { protocol: inner_type, csum, key: None, seq: None }.emit(&mut GrePacket::new_unchecked(&mut buf[enc_off..]));
        }
    }
    Verdict::Tx { route_to: daddr }
}

/// RFC 6040 / `INET_ECN_encapsulate(tos, tos)`: keep DSCP, copy ECN except CE -> ECT(0).
#[inline]
const fn ecn_encapsulate(ds: u8) -> u8 {
    let ecn = ds & 3;
    (ds & !3) | if ecn == 3 { 2 } else { ecn }
}

/// A source port from the inner flow, so the dest's NIC can spread tunnels over queues, in
/// `[SPORT_MIN, SPORT_MAX)` as `udp_flow_src_port` maps its hash.
#[inline]
#[allow(clippy::cast_possible_truncation)] // u128 halves and a bounded port, on purpose
fn flow_src_port(info: &PacketInfo) -> u16 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |w: u64| h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
    for a in [info.src, info.dst] {
        match a {
            IpAddr::V4(v) => mix(u64::from(v.to_bits())),
            IpAddr::V6(v) => {
                let b = v.to_bits();
                mix((b >> 64) as u64);
                mix(b as u64);
            }
        }
    }
    mix((u64::from(info.sport) << 24) | (u64::from(info.dport) << 8) | u64::from(info.proto));
    let hash = (h >> 32) ^ (h & 0xffff_ffff);
    let port = (((hash * u64::from(SPORT_MAX - SPORT_MIN)) >> 32) + u64::from(SPORT_MIN)) as u16;
    port
}
