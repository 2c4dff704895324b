//! PLACEHOLDER until the fwd module lands from the wire branch (same signatures): not functional.
#![allow(missing_docs, unused_variables, clippy::all)]
use crate::flow::*;
use crate::io::Frame;
use crate::service::*;
use crate::wire::PacketInfo;
use std::net::*;
pub struct FwdConn {
    pub tuple: ConnTuple,
    pub mode: FwdMode,
    pub tun: TunConf,
}
pub struct FwdCtx {
    pub src_v4: Option<Ipv4Addr>,
    pub src_v6: Option<Ipv6Addr>,
    pub mtu: usize,
}
pub enum Verdict {
    Tx { route_to: IpAddr },
    Drop(crate::stats::DropReason),
}
pub fn rewrite(
    conn: &FwdConn,
    dir: Dir,
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    ctx: &FwdCtx,
) -> Verdict {
    todo!()
}
pub fn icmp_inner_key(frame: &[u8], info: &PacketInfo) -> Option<FlowKey> {
    None
}
pub fn rewrite_icmp(
    conn: &FwdConn,
    dir: Dir,
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    ctx: &FwdCtx,
) -> Verdict {
    todo!()
}
