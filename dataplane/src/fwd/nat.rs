//! NAT (`-m`, "Masq"): DNAT of requests to the dest, SNAT of replies back to the VIP
//! (`ip_vs_nat_xmit` and `handle_response` in IPVS).

use super::{
    End, FwdConn, FwdCtx, Verdict, forward_ttl, input_mtu, input_ttl, set_packet_endpoint,
};
use crate::io::Frame;
use crate::service::Family;
use crate::stats::DropReason;
use crate::wire::PacketInfo;

/// Client -> director: destination becomes `daddr:dport`; routed to the dest.
#[inline]
pub(super) fn input(
    conn: &FwdConn,
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    ctx: &FwdCtx,
) -> Verdict {
    let t = &conn.tuple;
    if Family::of(&t.daddr) != info.family {
        return Verdict::Drop(DropReason::NoRoute);
    }
    if let Err(v) = input_ttl(frame, info, true) {
        return v;
    }
    if let Err(v) = input_mtu(frame, info, ctx.mtu, true) {
        return v;
    }
    set_packet_endpoint(frame.data_mut(), info, End::Dst, t.daddr, t.dport);
    Verdict::Tx { route_to: t.daddr }
}

/// Dest -> director (reply): source becomes `vaddr:vport`; routed to the client.
#[inline]
pub(super) fn output(
    conn: &FwdConn,
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    ctx: &FwdCtx,
) -> Verdict {
    let t = &conn.tuple;
    if Family::of(&t.vaddr) != info.family {
        return Verdict::Drop(DropReason::NoRoute);
    }
    if let Err(v) = forward_ttl(frame.data_mut(), info) {
        return v;
    }
    if ctx.mtu != 0 && info.l3_len > ctx.mtu {
        return Verdict::Drop(DropReason::TooBig);
    }
    set_packet_endpoint(frame.data_mut(), info, End::Src, t.vaddr, t.vport);
    Verdict::Tx { route_to: t.caddr }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{FwdConn, Verdict, rewrite};
    use crate::flow::Dir;
    use crate::service::{FwdMode, TunConf};
    use crate::stats::DropReason;
    use crate::testutil;
    use crate::wire::tcp::flags;
    use proptest::prelude::*;
    use std::net::IpAddr;

    fn nat(v6: bool) -> (Addrs, FwdConn) {
        let a = addrs(v6);
        (a, conn(FwdMode::Masq, a, a.d, TunConf::default()))
    }

    #[test]
    fn input_and_output_both_families() {
        for v6 in [false, true] {
            let (a, c) = nat(v6);
            // Client -> VIP, TCP and UDP.
            for udp in [false, true] {
                let f = if udp {
                    testutil::udp(M1, M2, a.c, CPORT, a.v, VPORT, b"query")
                } else {
                    testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::SYN, b"")
                };
                let (v, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1500)));
                assert_eq!(v, Verdict::Tx { route_to: a.d });
                check(&out);
                assert_eq!(fields(&out), (a.c, a.d, 63, CPORT, DPORT));
                assert_eq!(out.len(), f.len());
            }
            // Dest -> client reply.
            let r = testutil::tcp(
                M1,
                M2,
                a.d,
                DPORT,
                a.c,
                CPORT,
                flags::SYN | flags::ACK,
                b"hello",
            );
            let (v, out) = run(&r, |fr, i| rewrite(&c, Dir::Output, fr, i, &ctx(1500)));
            assert_eq!(v, Verdict::Tx { route_to: a.c });
            check(&out);
            assert_eq!(fields(&out), (a.v, a.c, 63, VPORT, CPORT));
            // The payload is untouched.
            assert_eq!(&out[out.len() - 5..], b"hello");
        }
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let (a, c) = nat(false);
        let mut f = testutil::udp(M1, M2, a.c, CPORT, a.v, VPORT, b"x");
        f[14 + 20 + 6] = 0;
        f[14 + 20 + 7] = 0;
        let (_, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(0)));
        assert_eq!(&out[40..42], &[0, 0]);
        check(&out);
    }

    #[test]
    fn padding_is_trimmed() {
        let (a, c) = nat(false);
        let mut f = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::ACK, b"");
        let n = f.len();
        f.resize(60, 0xee);
        let (_, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1500)));
        assert_eq!(out.len(), n);
        check(&out);
    }

    #[test]
    fn ttl_expiry() {
        for v6 in [false, true] {
            let (a, c) = nat(v6);
            let mut f = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::SYN, b"abc");
            testutil::set_ttl(&mut f, 1);
            let (v, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1500)));
            assert_eq!(v, Verdict::Tx { route_to: a.c });
            check(&out);
            let (s, d, ..) = fields(&out);
            assert_eq!((s, d), (a.v, a.c));
            let typ = if v6 { 3 } else { 11 };
            let icmp_off = if v6 { 14 + 40 } else { 14 + 20 };
            assert_eq!(out[icmp_off], typ);
            // The quote is the offending packet (still addressed to the VIP).
            assert_eq!(&out[icmp_off + 8..], &f[14..]);
            let mut r = testutil::tcp(M1, M2, a.d, DPORT, a.c, CPORT, flags::ACK, b"");
            testutil::set_ttl(&mut r, 1);
            let (v, _) = run(&r, |fr, i| rewrite(&c, Dir::Output, fr, i, &ctx(1500)));
            assert_eq!(v, Verdict::Drop(DropReason::TtlExceeded));
        }
    }

    #[test]
    fn too_big() {
        let payload = [7u8; 1400];
        for v6 in [false, true] {
            let (a, c) = nat(v6);
            let f = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::ACK, &payload);
            let (v, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1280)));
            assert_eq!(v, Verdict::Tx { route_to: a.c });
            check(&out);
            if v6 {
                assert_eq!((out[54], out[55]), (2, 0));
                assert_eq!(
                    u32::from_be_bytes([out[58], out[59], out[60], out[61]]),
                    1280
                );
                assert_eq!(out.len(), 14 + 1280); // quote cut to the IPv6 minimum MTU
            } else {
                assert_eq!((out[34], out[35]), (3, 4));
                assert_eq!(u16::from_be_bytes([out[40], out[41]]), 1280);
                assert_eq!(out.len(), 14 + 576);
            }
        }
        // IPv4 without DF: IPVS would fragment; xvs drops.
        let (a, c) = nat(false);
        let mut f = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::ACK, &payload);
        testutil::set_df(&mut f, false);
        let (v, _) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1280)));
        assert_eq!(v, Verdict::Drop(DropReason::TooBig));
    }

    #[test]
    fn family_mismatch_is_dropped() {
        let a4 = addrs(false);
        let c = conn(FwdMode::Masq, a4, addrs(true).d, TunConf::default());
        let f = testutil::tcp(M1, M2, a4.c, CPORT, a4.v, VPORT, flags::SYN, b"");
        let (v, _) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1500)));
        assert_eq!(v, Verdict::Drop(DropReason::NoRoute));
    }

    proptest! {
        /// Incremental updates equal a full recompute: whatever the addresses, ports and
        /// payload, the rewritten packet verifies.
        #[test]
        fn rewritten_checksums_verify(v6 in any::<bool>(), udp in any::<bool>(), c4 in any::<u32>(), d4 in any::<u32>(),
                                      c6 in any::<u128>(), d6 in any::<u128>(), cport in any::<u16>(), dport in any::<u16>(),
                                      payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut a = addrs(v6);
            if v6 {
                a.c = IpAddr::from(c6.to_be_bytes());
                a.d = IpAddr::from(d6.to_be_bytes());
            } else {
                a.c = IpAddr::from(c4.to_be_bytes());
                a.d = IpAddr::from(d4.to_be_bytes());
            }
            let mut c = conn(FwdMode::Masq, a, a.d, TunConf::default());
            c.tuple.cport = cport;
            c.tuple.dport = dport;
            let f = if udp {
                testutil::udp(M1, M2, a.c, cport, a.v, VPORT, &payload)
            } else {
                testutil::tcp(M1, M2, a.c, cport, a.v, VPORT, flags::ACK, &payload)
            };
            let (v, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(0)));
            prop_assert_eq!(v, Verdict::Tx { route_to: a.d });
            prop_assert!(testutil::verify_checksums(&out).is_ok());
            prop_assert_eq!(fields(&out), (a.c, a.d, 63, cport, dport));
            let r = if udp {
                testutil::udp(M1, M2, a.d, dport, a.c, cport, &payload)
            } else {
                testutil::tcp(M1, M2, a.d, dport, a.c, cport, flags::ACK, &payload)
            };
            let (_, out) = run(&r, |fr, i| rewrite(&c, Dir::Output, fr, i, &ctx(0)));
            prop_assert!(testutil::verify_checksums(&out).is_ok());
            prop_assert_eq!(fields(&out), (a.v, a.c, 63, VPORT, cport));
        }
    }
}
