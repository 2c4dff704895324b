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
pub(super) fn input(conn: &FwdConn, frame: &mut Frame<'_>, info: &PacketInfo, ctx: &FwdCtx) -> Verdict {
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
