//! FULLNAT (the LVS/DPVS extension): requests are SNATed to a local address and port and
//! DNATed to the dest; replies come back to the local address and are translated back.
//!
//! Input: `caddr:cport -> vaddr:vport` becomes `laddr:lport -> daddr:dport`.
//! Output: `daddr:dport -> laddr:lport` becomes `vaddr:vport -> caddr:cport`.
//! Both directions are forwarded like a router (TTL decremented).

use super::{
    End, FwdConn, FwdCtx, Verdict, forward_ttl, input_mtu, input_ttl, set_packet_endpoint,
};
use crate::io::Frame;
use crate::service::Family;
use crate::stats::DropReason;
use crate::wire::PacketInfo;

/// Client -> director.
#[inline]
pub(super) fn input(
    conn: &FwdConn,
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    ctx: &FwdCtx,
) -> Verdict {
    let t = &conn.tuple;
    if Family::of(&t.daddr) != info.family || Family::of(&t.laddr) != info.family {
        return Verdict::Drop(DropReason::NoRoute);
    }
    if let Err(v) = input_ttl(frame, info, true) {
        return v;
    }
    if let Err(v) = input_mtu(frame, info, ctx.mtu, true) {
        return v;
    }
    let buf = frame.data_mut();
    set_packet_endpoint(buf, info, End::Src, t.laddr, t.lport);
    set_packet_endpoint(buf, info, End::Dst, t.daddr, t.dport);
    Verdict::Tx { route_to: t.daddr }
}

/// Dest -> director (reply).
#[inline]
pub(super) fn output(
    conn: &FwdConn,
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    ctx: &FwdCtx,
) -> Verdict {
    let t = &conn.tuple;
    if Family::of(&t.vaddr) != info.family || Family::of(&t.caddr) != info.family {
        return Verdict::Drop(DropReason::NoRoute);
    }
    if let Err(v) = forward_ttl(frame.data_mut(), info) {
        return v;
    }
    if ctx.mtu != 0 && info.l3_len > ctx.mtu {
        return Verdict::Drop(DropReason::TooBig);
    }
    let buf = frame.data_mut();
    set_packet_endpoint(buf, info, End::Src, t.vaddr, t.vport);
    set_packet_endpoint(buf, info, End::Dst, t.caddr, t.cport);
    Verdict::Tx { route_to: t.caddr }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Verdict, rewrite};
    use crate::flow::Dir;
    use crate::service::{FwdMode, TunConf};
    use crate::stats::DropReason;
    use crate::testutil;
    use crate::wire::tcp::flags;

    #[test]
    fn both_directions_both_families() {
        for v6 in [false, true] {
            for udp in [false, true] {
                let a = addrs(v6);
                let c = conn(FwdMode::FullNat, a, a.d, TunConf::default());
                let mk = |s, sp, d, dp| {
                    if udp {
                        testutil::udp(M1, M2, s, sp, d, dp, b"payload")
                    } else {
                        testutil::tcp(M1, M2, s, sp, d, dp, flags::ACK | flags::PSH, b"payload")
                    }
                };
                let f = mk(a.c, CPORT, a.v, VPORT);
                let (v, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1500)));
                assert_eq!(v, Verdict::Tx { route_to: a.d });
                check(&out);
                assert_eq!(fields(&out), (a.l, a.d, 63, LPORT, DPORT));
                let r = mk(a.d, DPORT, a.l, LPORT);
                let (v, out) = run(&r, |fr, i| rewrite(&c, Dir::Output, fr, i, &ctx(1500)));
                assert_eq!(v, Verdict::Tx { route_to: a.c });
                check(&out);
                assert_eq!(fields(&out), (a.v, a.c, 63, VPORT, CPORT));
            }
        }
    }

    #[test]
    fn reply_too_big_or_expired_is_dropped() {
        let a = addrs(false);
        let c = conn(FwdMode::FullNat, a, a.d, TunConf::default());
        let r = testutil::tcp(M1, M2, a.d, DPORT, a.l, LPORT, flags::ACK, &[0u8; 1000]);
        let (v, _) = run(&r, |fr, i| rewrite(&c, Dir::Output, fr, i, &ctx(576)));
        assert_eq!(v, Verdict::Drop(DropReason::TooBig));
        let mut r = testutil::tcp(M1, M2, a.d, DPORT, a.l, LPORT, flags::ACK, b"");
        testutil::set_ttl(&mut r, 0);
        let (v, _) = run(&r, |fr, i| rewrite(&c, Dir::Output, fr, i, &ctx(1500)));
        assert_eq!(v, Verdict::Drop(DropReason::TtlExceeded));
    }
}
