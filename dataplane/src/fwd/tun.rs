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
pub(super) fn input(
    conn: &FwdConn,
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    ctx: &FwdCtx,
    related_icmp: bool,
) -> Verdict {
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
            Family::V6 => (
                (b[0] << 4) | (b[1] >> 4),
                b[7],
                false,
                proto::IPV6,
                ethertype::IPV6,
            ),
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
            GueRepr {
                proto: inner_proto,
                flags: 0,
            }
            .emit(&mut GuePacket::new_unchecked(&mut buf[gue_off..]));
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
            GreRepr {
                protocol: inner_type,
                csum,
                key: None,
                seq: None,
            }
            .emit(&mut GrePacket::new_unchecked(&mut buf[enc_off..]));
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
    (((hash * u64::from(SPORT_MAX - SPORT_MIN)) >> 32) + u64::from(SPORT_MIN)) as u16
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Verdict, rewrite};
    use super::*;
    use crate::flow::Dir;
    use crate::io::Desc;
    use crate::service::{FwdMode, TunConf};
    use crate::testutil;
    use crate::wire::tcp::flags;

    fn tun(kind: TunType, flags: u16) -> TunConf {
        TunConf {
            kind,
            port: if kind == TunType::Gue { 6080 } else { 0 },
            flags,
        }
    }

    /// Every encapsulation, every inner x outer family pair.
    #[test]
    fn encapsulations() {
        let kinds = [
            tun(TunType::Ipip, 0),
            tun(TunType::Gue, 0),
            tun(TunType::Gue, tun_flags::CSUM),
            tun(TunType::Gre, 0),
            tun(TunType::Gre, tun_flags::CSUM),
        ];
        for inner_v6 in [false, true] {
            for outer_v6 in [false, true] {
                for t in kinds {
                    let a = addrs(inner_v6);
                    let o = addrs(outer_v6);
                    let c = conn(FwdMode::Tunnel, a, o.d, t);
                    let f = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::SYN, b"hello");
                    let (v, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1500)));
                    let what = format!("inner_v6={inner_v6} outer_v6={outer_v6} {t:?}");
                    assert_eq!(v, Verdict::Tx { route_to: o.d }, "{what}");
                    check(&out);
                    // The inner packet: the original with its TTL decremented.
                    let mut want = f.clone();
                    testutil::set_ttl(&mut want, 63);
                    let inner = &want[14..];
                    assert_eq!(&out[out.len() - inner.len()..], inner, "{what}");
                    let outer_ip = if outer_v6 { 40 } else { 20 };
                    let enc = out.len() - 14 - inner.len() - outer_ip;
                    let (next, enc_want) = match t.kind {
                        TunType::Ipip => (if inner_v6 { 41 } else { 4 }, 0),
                        TunType::Gue => (17, 12),
                        TunType::Gre => (47, if t.flags != 0 { 8 } else { 4 }),
                    };
                    assert_eq!(enc, enc_want, "{what}");
                    if outer_v6 {
                        let h = etherparse::Ipv6HeaderSlice::from_slice(&out[14..]).unwrap();
                        assert_eq!(
                            (IpAddr::from(h.source()), IpAddr::from(h.destination())),
                            (o.dip, o.d)
                        );
                        assert_eq!(
                            (
                                h.next_header().0,
                                h.hop_limit(),
                                h.payload_length() as usize
                            ),
                            (next, 63, enc + inner.len())
                        );
                    } else {
                        let h = etherparse::Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
                        assert_eq!(
                            (IpAddr::from(h.source()), IpAddr::from(h.destination())),
                            (o.dip, o.d)
                        );
                        assert_eq!((h.protocol().0, h.ttl()), (next, 63));
                        // DF copied from an IPv4 inner packet, clear for IPv6 inside.
                        assert_eq!(h.dont_fragment(), !inner_v6, "{what}");
                    }
                    let e = 14 + outer_ip;
                    match t.kind {
                        TunType::Gue => {
                            let u = etherparse::UdpHeaderSlice::from_slice(&out[e..]).unwrap();
                            assert_eq!(u.destination_port(), 6080);
                            assert!((32768..60999).contains(&u.source_port()));
                            assert_eq!(u.checksum() != 0, t.flags != 0, "{what}");
                            assert_eq!(
                                &out[e + 8..e + 12],
                                &[0, if inner_v6 { 41 } else { 4 }, 0, 0]
                            );
                        }
                        TunType::Gre => {
                            let p = crate::wire::GrePacket::new_checked(&out[e..]).unwrap();
                            assert_eq!(p.protocol(), if inner_v6 { 0x86dd } else { 0x0800 });
                            assert_eq!(p.has_checksum(), t.flags != 0);
                        }
                        TunType::Ipip => {}
                    }
                }
            }
        }
    }

    #[test]
    fn replies_pass_through() {
        for v6 in [false, true] {
            let a = addrs(v6);
            let c = conn(FwdMode::Tunnel, a, a.d, tun(TunType::Gue, 0));
            let r = testutil::udp(M1, M2, a.d, DPORT, a.c, CPORT, b"r");
            let (v, out) = run(&r, |fr, i| rewrite(&c, Dir::Output, fr, i, &ctx(1500)));
            assert_eq!(v, Verdict::Tx { route_to: a.c });
            check(&out);
            assert_eq!(fields(&out), (a.d, a.c, 63, DPORT, CPORT));
            assert_eq!(out.len(), r.len());
        }
    }

    proptest::proptest! {
        /// Any payload, any family pair, checksummed encapsulations: every checksum verifies.
        #[test]
        fn checksummed_tunnels_verify(inner_v6 in proptest::prelude::any::<bool>(), outer_v6 in proptest::prelude::any::<bool>(),
                                      gre in proptest::prelude::any::<bool>(),
                                      payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1200)) {
            let a = addrs(inner_v6);
            let o = addrs(outer_v6);
            let kind = if gre { TunType::Gre } else { TunType::Gue };
            let c = conn(FwdMode::Tunnel, a, o.d, tun(kind, tun_flags::CSUM));
            let f = testutil::udp(M1, M2, a.c, CPORT, a.v, VPORT, &payload);
            let (v, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1500)));
            proptest::prop_assert_eq!(v, Verdict::Tx { route_to: o.d });
            proptest::prop_assert!(testutil::verify_checksums(&out).is_ok());
        }
    }

    #[test]
    fn gue_source_port_follows_the_flow() {
        let a = addrs(false);
        let c = conn(FwdMode::Tunnel, a, a.d, tun(TunType::Gue, 0));
        let sport_of = |cport: u16| {
            let f = testutil::tcp(M1, M2, a.c, cport, a.v, VPORT, flags::ACK, b"");
            let (_, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1500)));
            u16::from_be_bytes([out[34], out[35]])
        };
        assert_eq!(sport_of(1000), sport_of(1000));
        let ports: std::collections::HashSet<u16> = (1000..1064).map(sport_of).collect();
        assert!(ports.len() > 32, "poor spread: {}", ports.len());
    }

    #[test]
    fn ecn() {
        assert_eq!(ecn_encapsulate(0xb8), 0xb8);
        assert_eq!(ecn_encapsulate(0xb9), 0xb9);
        assert_eq!(ecn_encapsulate(0xbb), 0xba);
    }

    #[test]
    fn too_big_answers_with_the_room_left() {
        // IPv4 inner with DF, IPIP over IPv4: room = 1000 - 20.
        let a = addrs(false);
        let c = conn(FwdMode::Tunnel, a, a.d, tun(TunType::Ipip, 0));
        let f = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::ACK, &[0u8; 1000]);
        let (v, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1000)));
        assert_eq!(v, Verdict::Tx { route_to: a.c });
        check(&out);
        let (s, d, ..) = fields(&out);
        assert_eq!((s, d), (a.v, a.c));
        assert_eq!(
            (out[34], out[35], u16::from_be_bytes([out[40], out[41]])),
            (3, 4, 980)
        );
        // Without DF: dropped.
        let mut g = f.clone();
        testutil::set_df(&mut g, false);
        let (v, _) = run(&g, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1000)));
        assert_eq!(v, Verdict::Drop(DropReason::TooBig));
        // IPv6 inner, GUE over IPv6: room = 1500 - 40 - 12 = 1448 -> packet too big.
        let a = addrs(true);
        let c = conn(FwdMode::Tunnel, a, a.d, tun(TunType::Gue, 0));
        let f = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::ACK, &[0u8; 1400]);
        let (v, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1500)));
        assert_eq!(v, Verdict::Tx { route_to: a.c });
        check(&out);
        assert_eq!(out[54], 2);
        assert_eq!(
            u32::from_be_bytes([out[58], out[59], out[60], out[61]]),
            1448
        );
        // Room below the IPv6 minimum MTU: dropped.
        let (v, _) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1300)));
        assert_eq!(v, Verdict::Drop(DropReason::TooBig));
    }

    #[test]
    fn no_headroom_or_no_source() {
        let a = addrs(false);
        let c = conn(FwdMode::Tunnel, a, a.d, tun(TunType::Ipip, 0));
        let f = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::SYN, b"");
        let i = info(&f);
        let mut chunk = vec![0u8; crate::io::CHUNK_SIZE];
        chunk[..f.len()].copy_from_slice(&f);
        let mut d = Desc {
            addr: 0,
            len: u32::try_from(f.len()).unwrap(),
            port: 0,
        };
        let mut fr = Frame::new(&mut chunk, &mut d);
        assert_eq!(
            rewrite(&c, Dir::Input, &mut fr, &i, &ctx(1500)),
            Verdict::Drop(DropReason::NoHeadroom)
        );
        let mut no_src = ctx(1500);
        no_src.src_v4 = None;
        let (v, _) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &no_src));
        assert_eq!(v, Verdict::Drop(DropReason::NoRoute));
    }
}
