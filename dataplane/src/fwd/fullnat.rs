//! FULLNAT (the LVS/DPVS extension): requests are SNATed to a local address and port and
//! DNATed to the dest; replies come back to the local address and are translated back.
//!
//! Input: `caddr:cport -> vaddr:vport` becomes `laddr:lport -> daddr:dport`.
//! Output: `daddr:dport -> laddr:lport` becomes `vaddr:vport -> caddr:cport`.
//! Both directions are forwarded like a router (TTL decremented).

use super::{End, FwdConn, FwdCtx, Verdict, forward_ttl, input_mtu, input_ttl, set_packet_endpoint};
use crate::io::Frame;
use crate::service::Family;
use crate::stats::DropReason;
use crate::wire::PacketInfo;

/// Client -> director.
#[inline]
pub(super) fn input(conn: &FwdConn, frame: &mut Frame<'_>, info: &PacketInfo, ctx: &FwdCtx) -> Verdict {
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
pub(super) fn output(conn: &FwdConn, frame: &mut Frame<'_>, info: &PacketInfo, ctx: &FwdCtx) -> Verdict {
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
