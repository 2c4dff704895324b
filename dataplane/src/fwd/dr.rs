//! DR (`-g`, "Route") and Local: the IP packet goes to the dest unchanged apart from the TTL
//! (`ip_vs_dr_xmit`); the worker puts the dest's MAC on it. Local is treated like DR: xvs has no
//! local stack to deliver to.

use super::{FwdConn, FwdCtx, Verdict, input_mtu, input_ttl};
use crate::io::Frame;
use crate::service::Family;
use crate::stats::DropReason;
use crate::wire::PacketInfo;

/// Client -> director: routed to `daddr` as is.
#[inline]
pub(super) fn input(
    conn: &FwdConn,
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    ctx: &FwdCtx,
) -> Verdict {
    let daddr = conn.tuple.daddr;
    if Family::of(&daddr) != info.family {
        return Verdict::Drop(DropReason::NoRoute);
    }
    if let Err(v) = input_ttl(frame, info, true) {
        return v;
    }
    if let Err(v) = input_mtu(frame, info, ctx.mtu, true) {
        return v;
    }
    Verdict::Tx { route_to: daddr }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Verdict, rewrite};
    use crate::flow::Dir;
    use crate::service::{FwdMode, TunConf};
    use crate::testutil;
    use crate::wire::tcp::flags;

    #[test]
    fn untouched_but_ttl() {
        for v6 in [false, true] {
            for mode in [FwdMode::Route, FwdMode::Local] {
                let a = addrs(v6);
                let c = conn(mode, a, a.d, TunConf::default());
                let f = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::SYN, b"data");
                let (v, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(1500)));
                assert_eq!(v, Verdict::Tx { route_to: a.d });
                check(&out);
                assert_eq!(fields(&out), (a.c, a.v, 63, CPORT, VPORT));
                // Everything but the TTL (and the IPv4 header checksum) is byte-identical.
                let ttl_at = if v6 { 14 + 7 } else { 14 + 8 };
                let diff: Vec<usize> = (14..f.len()).filter(|&k| f[k] != out[k]).collect();
                assert!(
                    diff.iter()
                        .all(|&k| k == ttl_at || (!v6 && (k == 24 || k == 25))),
                    "{diff:?}"
                );
                // A stray reply is passed on unchanged apart from the TTL.
                let r = testutil::tcp(M1, M2, a.d, DPORT, a.c, CPORT, flags::ACK, b"");
                let (v, out) = run(&r, |fr, i| rewrite(&c, Dir::Output, fr, i, &ctx(1500)));
                assert_eq!(v, Verdict::Tx { route_to: a.c });
                assert_eq!(fields(&out), (a.d, a.c, 63, DPORT, CPORT));
            }
        }
    }

    #[test]
    fn frag_needed_v4() {
        let a = addrs(false);
        let c = conn(FwdMode::Route, a, a.d, TunConf::default());
        let f = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::ACK, &[1u8; 600]);
        let (v, out) = run(&f, |fr, i| rewrite(&c, Dir::Input, fr, i, &ctx(576)));
        assert_eq!(v, Verdict::Tx { route_to: a.c });
        check(&out);
        assert_eq!(
            (out[34], out[35], u16::from_be_bytes([out[40], out[41]])),
            (3, 4, 576)
        );
    }
}
