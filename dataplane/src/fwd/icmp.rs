//! ICMP errors about tracked conns (IPVS `ip_vs_in_icmp`, `ip_vs_out_icmp`, `ip_vs_nat_icmp`),
//! and the ICMP errors the director itself originates (time exceeded, fragmentation needed /
//! packet too big), built in place in the offending frame.
//!
//! Which errors relate to a conn: ICMPv4 destination unreachable, source quench and time
//! exceeded; every ICMPv6 error (type < 128); never a fragmented ICMP. The quoted packet must
//! show its IP header and the 4 port bytes (TCP/UDP), and not be a later fragment.
//!
//! Directions, as IPVS sees them:
//! - An error travelling dest -> client (`Dir::Output`, from the real server's side) quotes a
//!   packet the director sent to the dest (`caddr:cport -> daddr:dport` for NAT,
//!   `laddr:lport -> daddr:dport` for FULLNAT); reversed, that is the conn's out key.
//! - An error travelling client -> dest (`Dir::Input`) quotes a reply the client received
//!   (`vaddr:vport -> caddr:cport`); reversed, that is the conn's in key.
//! - Special case (IPv4, `ip_vs_in_icmp`): an error from a router between the director and a
//!   TUN dest quotes the director's own tunnel packet (IPIP, GUE or GRE carrying IPv4). Its
//!   inner packet is the client's original request, whose key *is* the in key. IPVS turns it
//!   into an error to the client quoting that request, from the VIP, with a fragmentation-needed
//!   MTU reduced by the tunnel overhead; so does xvs.
//!
//! Translation (NAT, `ip_vs_nat_icmp`): Output: outer source -> vaddr, quoted destination ->
//! vaddr:vport. Input: outer destination -> daddr, quoted source -> daddr:dport. FULLNAT also
//! translates the other end of both (outer and quoted), so the client sees its own request
//! quoted and the dest sees its own reply quoted. The quoted IPv4 header checksum and, when
//! its field is inside the quote, the quoted TCP/UDP checksum are updated incrementally (IPVS
//! leaves the quoted L4 checksum stale; updating it keeps the quote self-consistent and costs
//! nothing); the ICMP checksum is recomputed over the whole message, as IPVS does. DR and Local
//! forward the error unchanged to the dest; TUN encapsulates it like any packet of the conn.
//! Errors are never answered with errors: a related ICMP with TTL <= 1 or too big is dropped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    End, FwdConn, FwdCtx, Verdict, be16, forward_ttl, input_mtu, input_ttl, put_be16, set_endpoint,
};
use crate::flow::{Dir, FlowKey, proto};
use crate::io::Frame;
use crate::service::{Family, FwdMode};
use crate::stats::DropReason;
use crate::wire::{
    Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv4Repr, Ipv6Repr, PacketInfo, checksum, icmp, icmpv6,
    ipv6,
};

/// ICMPv4 destination unreachable.
pub(crate) const V4_DEST_UNREACH: u8 = icmp::msg::DEST_UNREACH;
/// ICMPv4 code: fragmentation needed and DF set.
pub(crate) const V4_FRAG_NEEDED: u8 = icmp::unreach::FRAG_NEEDED;
/// ICMPv4 time exceeded.
pub(crate) const V4_TIME_EXCEEDED: u8 = icmp::msg::TIME_EXCEEDED;
/// ICMPv6 packet too big.
pub(crate) const V6_PKT_TOO_BIG: u8 = icmpv6::msg::PKT_TOO_BIG;
/// ICMPv6 time exceeded.
pub(crate) const V6_TIME_EXCEEDED: u8 = icmpv6::msg::TIME_EXCEEDED;

/// Largest IPv4 ICMP error the kernel sends (576, RFC 1812 4.3.2.3).
const V4_ERROR_MAX: usize = 576;
/// Largest IPv6 ICMP error (the minimum MTU, RFC 4443 2.4(c)).
const V6_ERROR_MAX: usize = 1280;

/// Where the packet quoted by an ICMP error is, and what it is.
#[derive(Copy, Clone, Debug)]
enum Quote {
    /// An ordinary quoted packet.
    Regular {
        /// Offset of the quoted IP header in the frame.
        ip_off: usize,
        /// Offset of its L4 header.
        l4_off: usize,
        /// L4 protocol.
        proto: u8,
        /// Its key as it was sent.
        key: FlowKey,
    },
    /// The director's own IPv4 tunnel packet; the client's request sits inside.
    Tunnel {
        /// Bytes of outer IP header plus UDP+GUE / GRE header in the quote.
        overhead: usize,
        /// Offset of the client's original IPv4 packet.
        inner_off: usize,
        /// That packet's DF bit.
        inner_df: bool,
        /// That packet's key (as sent: the conn's in key).
        key: FlowKey,
    },
}

/// The key of the packet an ICMP error is about, as that packet was sent, or `None` when the
/// ICMP is not an error IPVS relates to conns (see the module docs).
///
/// Conn lookup (what `ip_vs_in_icmp` / `ip_vs_out_icmp` do): first `key.reversed()` — an
/// ordinary error quotes a packet that travelled the other way, so its reverse is the conn's
/// in key (error from the client side, `Dir::Input`) or out key (error from the dest side,
/// `Dir::Output`); if that finds nothing, `key` itself — the tunnel case, where the key is the
/// client's original request, i.e. the in key (`Dir::Input`). Pass the direction the table
/// reports to [`rewrite_icmp`]. No match either way: drop with `IcmpNoConn`.
#[inline]
#[must_use]
pub fn icmp_inner_key(frame: &[u8], info: &PacketInfo) -> Option<FlowKey> {
    match parse_quote(frame, info)? {
        Quote::Regular { key, .. } | Quote::Tunnel { key, .. } => Some(key),
    }
}

/// Is this ICMP(v6) packet an error IPVS relates to a conn?
#[inline]
fn related_type(info: &PacketInfo) -> bool {
    match info.proto {
        proto::ICMP => matches!(
            info.icmp_type,
            icmp::msg::DEST_UNREACH | icmp::msg::SOURCE_QUENCH | icmp::msg::TIME_EXCEEDED
        ),
        proto::ICMPV6 => icmpv6::is_error(info.icmp_type),
        _ => false,
    }
}

/// Ports of the TCP/UDP/SCTP header at `at` if its first 4 bytes are inside `end`.
#[inline]
fn ports(buf: &[u8], proto: u8, at: usize, end: usize) -> Option<(u16, u16)> {
    if !matches!(proto, proto::TCP | proto::UDP | proto::SCTP) || at + 4 > end {
        return None;
    }
    Some((be16(buf, at), be16(buf, at + 2)))
}

/// A quoted IPv4 header at `off` (within `end`): (header length, protocol, src, dst, df).
#[inline]
fn quoted_v4(buf: &[u8], off: usize, end: usize) -> Option<(usize, u8, Ipv4Addr, Ipv4Addr, bool)> {
    if off + 20 > end || buf[off] >> 4 != 4 {
        return None;
    }
    let hl = usize::from(buf[off] & 0x0f) * 4;
    // A later fragment has no L4 header to read ports from.
    if hl < 20 || off + hl > end || be16(buf, off + 6) & 0x1fff != 0 {
        return None;
    }
    let p = Ipv4Packet::new_unchecked(&buf[off..off + hl]);
    Some((hl, p.protocol(), p.src_addr(), p.dst_addr(), p.dont_frag()))
}

fn parse_quote(buf: &[u8], info: &PacketInfo) -> Option<Quote> {
    if info.frag != crate::wire::Frag::None || !related_type(info) {
        return None;
    }
    let end = info.l3_end().min(buf.len());
    let q = info.l4_off + 8;
    match info.family {
        Family::V4 => {
            let (hl, p, s, d, _) = quoted_v4(buf, q, end)?;
            let l4 = q + hl;
            // The director's own tunnel packet? Find the client's request inside.
            let encap = match p {
                proto::IPIP => Some(0),
                proto::UDP if l4 + 8 + 4 <= end => {
                    let g = l4 + 8;
                    let ghl = 4 + usize::from(buf[g] & 0x1f) * 4;
                    (buf[g] >> 5 == 0 && buf[g + 1] == proto::IPIP).then_some(8 + ghl)
                }
                proto::GRE if l4 + 4 <= end => {
                    let flags = be16(buf, l4);
                    // Version 0 carrying IPv4, only the checksum option (what IPVS sends).
                    (flags & !crate::wire::gre::FLAG_CSUM == 0
                        && be16(buf, l4 + 2) == crate::wire::ethertype::IPV4)
                        .then_some(if flags != 0 { 8 } else { 4 })
                }
                _ => None,
            };
            if let Some(encap) = encap {
                let inner = l4 + encap;
                let (ihl, ip, is, id, idf) = quoted_v4(buf, inner, end)?;
                let (sp, dp) = ports(buf, ip, inner + ihl, end)?;
                return Some(Quote::Tunnel {
                    overhead: hl + encap,
                    inner_off: inner,
                    inner_df: idf,
                    key: FlowKey {
                        proto: ip,
                        src: is.into(),
                        dst: id.into(),
                        sport: sp,
                        dport: dp,
                    },
                });
            }
            let (sp, dp) = ports(buf, p, l4, end)?;
            Some(Quote::Regular {
                ip_off: q,
                l4_off: l4,
                proto: p,
                key: FlowKey {
                    proto: p,
                    src: s.into(),
                    dst: d.into(),
                    sport: sp,
                    dport: dp,
                },
            })
        }
        Family::V6 => {
            if q + 40 > end || buf[q] >> 4 != 6 {
                return None;
            }
            let w = ipv6::walk_ext(&buf[q..end], buf[q + 6], end - q).ok()?;
            if w.frag_offset != 0 {
                return None;
            }
            let l4 = q + w.l4_off;
            let (sp, dp) = ports(buf, w.protocol, l4, end)?;
            let p = crate::wire::Ipv6Packet::new_unchecked(&buf[q..q + 40]);
            Some(Quote::Regular {
                ip_off: q,
                l4_off: l4,
                proto: w.protocol,
                key: FlowKey {
                    proto: w.protocol,
                    src: p.src_addr().into(),
                    dst: p.dst_addr().into(),
                    sport: sp,
                    dport: dp,
                },
            })
        }
    }
}

/// Translate and forward an ICMP error about `conn`, travelling in `dir` (the direction the
/// conn table reported for [`icmp_inner_key`]'s key). Same frame contract as
/// [`super::rewrite`].
pub fn rewrite_icmp(
    conn: &FwdConn,
    dir: Dir,
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    ctx: &FwdCtx,
) -> Verdict {
    if frame.set_len(info.l3_end()).is_err() {
        return Verdict::Drop(DropReason::Malformed);
    }
    let Some(q) = parse_quote(frame.data(), info) else {
        return Verdict::Drop(DropReason::IcmpNoConn);
    };
    let t = &conn.tuple;
    let (ip_off, l4_off, qproto) = match q {
        Quote::Tunnel {
            overhead,
            inner_off,
            inner_df,
            key,
        } => {
            if conn.mode != FwdMode::Tunnel || dir != Dir::Input {
                return Verdict::Drop(DropReason::IcmpNoConn);
            }
            return tunnel_error(frame, info, overhead, inner_off, inner_df, &key);
        }
        Quote::Regular {
            ip_off,
            l4_off,
            proto,
            ..
        } => (ip_off, l4_off, proto),
    };
    // Outer and quoted rewrites per mode and direction: (outer src, outer dst, quoted src,
    // quoted dst) replacements, and where it goes.
    type Ep = Option<(IpAddr, u16)>;
    let (osrc, odst, qsrc, qdst, route_to): (Option<IpAddr>, Option<IpAddr>, Ep, Ep, IpAddr) =
        match (conn.mode, dir) {
            (FwdMode::Masq, Dir::Output) => {
                (Some(t.vaddr), None, None, Some((t.vaddr, t.vport)), t.caddr)
            }
            (FwdMode::Masq, Dir::Input) => {
                (None, Some(t.daddr), Some((t.daddr, t.dport)), None, t.daddr)
            }
            (FwdMode::FullNat, Dir::Output) => (
                Some(t.vaddr),
                Some(t.caddr),
                Some((t.caddr, t.cport)),
                Some((t.vaddr, t.vport)),
                t.caddr,
            ),
            (FwdMode::FullNat, Dir::Input) => (
                Some(t.laddr),
                Some(t.daddr),
                Some((t.daddr, t.dport)),
                Some((t.laddr, t.lport)),
                t.daddr,
            ),
            (FwdMode::Route | FwdMode::Local, Dir::Input) => {
                if Family::of(&t.daddr) != info.family {
                    return Verdict::Drop(DropReason::NoRoute);
                }
                if let Err(v) = input_ttl(frame, info, false) {
                    return v;
                }
                if let Err(v) = input_mtu(frame, info, ctx.mtu, false) {
                    return v;
                }
                return Verdict::Tx { route_to: t.daddr };
            }
            (FwdMode::Tunnel, Dir::Input) => {
                return super::tun::input(conn, frame, info, ctx, true);
            }
            (FwdMode::Route | FwdMode::Local | FwdMode::Tunnel, Dir::Output) => {
                return match forward_ttl(frame.data_mut(), info) {
                    Ok(()) => Verdict::Tx { route_to: info.dst },
                    Err(v) => v,
                };
            }
        };
    let fam_ok = |a: &IpAddr| Family::of(a) == info.family;
    if !(osrc.iter().all(fam_ok) && odst.iter().all(fam_ok) && fam_ok(&route_to)) {
        return Verdict::Drop(DropReason::NoRoute);
    }
    let ttl = match dir {
        Dir::Input => input_ttl(frame, info, false),
        Dir::Output => forward_ttl(frame.data_mut(), info),
    };
    if let Err(v) = ttl {
        return v;
    }
    if ctx.mtu != 0 && info.l3_len > ctx.mtu {
        return Verdict::Drop(DropReason::TooBig);
    }
    let end = info.l3_end();
    let buf = frame.data_mut();
    let q_l4_len = end - l4_off;
    if let Some((a, p)) = qsrc {
        set_endpoint(buf, ip_off, l4_off, q_l4_len, qproto, End::Src, a, p);
    }
    if let Some((a, p)) = qdst {
        set_endpoint(buf, ip_off, l4_off, q_l4_len, qproto, End::Dst, a, p);
    }
    // Outer addresses: the ICMP checksum is recomputed below, so no L4 update here (proto 0).
    if let Some(a) = osrc {
        set_endpoint(buf, info.l3_off, info.l4_off, 0, 0, End::Src, a, 0);
    }
    if let Some(a) = odst {
        set_endpoint(buf, info.l3_off, info.l4_off, 0, 0, End::Dst, a, 0);
    }
    fill_icmp_checksum(buf, info.l3_off, info.l4_off, end);
    Verdict::Tx { route_to }
}

/// Recompute the ICMP / ICMPv6 checksum of the message at `l4_off..end`.
fn fill_icmp_checksum(buf: &mut [u8], l3_off: usize, l4_off: usize, end: usize) {
    put_be16(buf, l4_off + 2, 0);
    let sum = checksum::data(&buf[l4_off..end]);
    let c = if buf[l3_off] >> 4 == 4 {
        !sum
    } else {
        let p = crate::wire::Ipv6Packet::new_unchecked(&buf[l3_off..l3_off + 40]);
        let len = u32::try_from(end - l4_off).unwrap_or(0);
        !checksum::add(
            checksum::pseudo_v6(&p.src_addr(), &p.dst_addr(), proto::ICMPV6, len),
            sum,
        )
    };
    put_be16(buf, l4_off + 2, c);
}

/// The tunnel special case of `ip_vs_in_icmp`: an error about our tunnel packet becomes an
/// error to the client about its own request.
#[cold]
fn tunnel_error(
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    overhead: usize,
    inner_off: usize,
    inner_df: bool,
    key: &FlowKey,
) -> Verdict {
    let buf = frame.data();
    let rest = u32::from_be_bytes([
        buf[info.l4_off + 4],
        buf[info.l4_off + 5],
        buf[info.l4_off + 6],
        buf[info.l4_off + 7],
    ]);
    let (typ, code) = (info.icmp_type, info.icmp_code);
    let mut rest = rest;
    if typ == icmp::msg::DEST_UNREACH && code == icmp::unreach::FRAG_NEEDED {
        // The client does not do PMTU discovery: nothing to tell it (IPVS "ignore_tunnel").
        if !inner_df {
            return Verdict::Drop(DropReason::TooBig);
        }
        let mut mtu = rest & 0xffff;
        let oh = u32::try_from(overhead).unwrap_or(u32::MAX);
        if mtu > 68 + oh {
            mtu -= oh;
        }
        rest = mtu;
    }
    let end = info.l3_end();
    let tos = buf[inner_off + 1];
    build_error(
        frame,
        info.l3_off,
        inner_off,
        end - inner_off,
        tos,
        typ,
        code,
        rest,
        key.dst,
        key.src,
        DropReason::IcmpNoConn,
    )
}

/// Turn the frame into an ICMP port unreachable (ICMPv6 destination unreachable, port
/// unreachable) from the packet's destination back to its source: what `ip_vs_leave` sends when
/// a service has no dest available for a new connection, TCP or UDP alike.
#[cold]
pub fn port_unreachable(frame: &mut Frame<'_>, info: &PacketInfo) -> Verdict {
    let (typ, code) = if info.dst.is_ipv4() { (3, 3) } else { (1, 4) };
    error_in_place(frame, info, typ, code, 0, info.dst, DropReason::NoDest)
}

/// Turn the frame into an ICMP error of `typ`/`code`/`rest` about the packet `info` describes,
/// from `src`, to the packet's source; the answer to TTL expiry and oversize. Never answers
/// an ICMP error (or a later fragment): then it drops with `fallback`.
#[cold]
pub(crate) fn error_in_place(
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    typ: u8,
    code: u8,
    rest: u32,
    src: IpAddr,
    fallback: DropReason,
) -> Verdict {
    let is_error = match info.proto {
        proto::ICMP => icmp::is_error(info.icmp_type),
        proto::ICMPV6 => icmpv6::is_error(info.icmp_type),
        _ => false,
    };
    if is_error || info.frag == crate::wire::Frag::NotFirst {
        return Verdict::Drop(fallback);
    }
    let tos = frame.data()[info.l3_off + 1];
    build_error(
        frame,
        info.l3_off,
        info.l3_off,
        info.l3_len,
        tos,
        typ,
        code,
        rest,
        src,
        info.src,
        fallback,
    )
}

/// Build an ICMP(v6) error at `l3_off` quoting `quote_len` bytes found at `quote_off` (cut to
/// the size limit), from `src` to `dst`. The family follows `src`.
#[allow(clippy::too_many_arguments)]
fn build_error(
    frame: &mut Frame<'_>,
    l3_off: usize,
    quote_off: usize,
    quote_len: usize,
    tos: u8,
    typ: u8,
    code: u8,
    rest: u32,
    src: IpAddr,
    dst: IpAddr,
    fallback: DropReason,
) -> Verdict {
    let (hdr, max) = match src {
        IpAddr::V4(_) => (20 + 8, V4_ERROR_MAX),
        IpAddr::V6(_) => (40 + 8, V6_ERROR_MAX),
    };
    let q = quote_len.min(max - hdr);
    let new_len = l3_off + hdr + q;
    if Family::of(&src) != Family::of(&dst) {
        return Verdict::Drop(fallback);
    }
    // Move the quote to its place (grow first, shrink after, so both ranges are in the frame).
    if new_len > frame.len() && frame.set_len(new_len).is_err() {
        return Verdict::Drop(fallback);
    }
    frame
        .data_mut()
        .copy_within(quote_off..quote_off + q, l3_off + hdr);
    if frame.set_len(new_len).is_err() {
        return Verdict::Drop(fallback);
    }
    let buf = &mut frame.data_mut()[l3_off..];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            // icmp_send: TOS bits of the offending packet with precedence "internetwork
            // control"; default TTL; no DF.
            Ipv4Repr {
                src: s,
                dst: d,
                protocol: proto::ICMP,
                payload_len: 8 + q,
                ttl: 64,
                dscp_ecn: (tos & 0x1e) | 0xc0,
                ident: 0,
                df: false,
            }
            .emit(&mut Ipv4Packet::new_unchecked(&mut buf[..20]));
            let mut m = Icmpv4Packet::new_unchecked(&mut buf[20..]);
            m.set_msg_type(typ);
            m.set_msg_code(code);
            m.set_rest_of_header(rest);
            m.fill_checksum();
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            emit_v6(buf, s, d, 8 + q);
            let mut m = Icmpv6Packet::new_unchecked(&mut buf[40..]);
            m.set_msg_type(typ);
            m.set_msg_code(code);
            m.set_rest_of_header(rest);
            m.fill_checksum(&s, &d);
        }
        _ => return Verdict::Drop(fallback),
    }
    Verdict::Tx { route_to: dst }
}

fn emit_v6(buf: &mut [u8], s: Ipv6Addr, d: Ipv6Addr, payload_len: usize) {
    Ipv6Repr {
        src: s,
        dst: d,
        next_header: proto::ICMPV6,
        payload_len,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut crate::wire::Ipv6Packet::new_unchecked(&mut buf[..40]));
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{FwdConn, rewrite};
    use super::*;
    use crate::service::{TunConf, TunType};
    use crate::testutil;
    use crate::wire::tcp::flags;

    /// (error type, code) for "port unreachable" and "frag needed / too big" per family.
    fn unreach(v6: bool) -> (u8, u8) {
        if v6 { (1, 4) } else { (3, 3) }
    }

    /// The quoted packet of an ICMP error frame.
    fn quote(out: &[u8]) -> &[u8] {
        let ip = if out[14] >> 4 == 6 { 40 } else { 20 };
        &out[14 + ip + 8..]
    }

    /// The request a conn's dest received (after the Input rewrite).
    fn forwarded(c: &FwdConn, a: Addrs) -> Vec<u8> {
        let f = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::SYN, b"req");
        run(&f, |fr, i| rewrite(c, Dir::Input, fr, i, &ctx(1500))).1
    }

    #[test]
    fn nat_error_from_dest_side() {
        for v6 in [false, true] {
            let a = addrs(v6);
            let c = conn(FwdMode::Masq, a, a.d, TunConf::default());
            let sent = forwarded(&c, a);
            let (t, code) = unreach(v6);
            let e = testutil::icmp_error(M1, M2, a.d, a.c, t, code, 0, testutil::l3(&sent));
            assert_eq!(
                icmp_inner_key(&e, &info(&e)).map(|k| k.reversed()),
                Some(c.tuple.out_key())
            );
            let (v, out) = run(&e, |fr, i| rewrite_icmp(&c, Dir::Output, fr, i, &ctx(1500)));
            assert_eq!(v, Verdict::Tx { route_to: a.c });
            check(&out);
            let (s, d, ttl, ..) = fields(&out);
            assert_eq!((s, d, ttl), (a.v, a.c, 63));
            // The client sees its own request quoted (apart from the TTL the director took).
            let mut orig = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::SYN, b"req");
            testutil::set_ttl(&mut orig, 63);
            assert_eq!(quote(&out), &orig[14..]);
        }
    }

    #[test]
    fn nat_error_from_client_side() {
        for v6 in [false, true] {
            let a = addrs(v6);
            let c = conn(FwdMode::Masq, a, a.d, TunConf::default());
            // A reply as the client got it, quoted (cut to 8 bytes of TCP) in a frag needed.
            let reply = testutil::tcp(M1, M2, a.v, VPORT, a.c, CPORT, flags::ACK, &[5u8; 100]);
            let ip = if v6 { 40 } else { 20 };
            let cut = &testutil::l3(&reply)[..ip + 8];
            let (t, code) = if v6 { (2, 0) } else { (3, 4) };
            let router = if v6 {
                "2001:db8:9::1".parse().unwrap()
            } else {
                "198.18.9.1".parse().unwrap()
            };
            let e = testutil::icmp_error(M1, M2, router, a.v, t, code, 1400, cut);
            assert_eq!(
                icmp_inner_key(&e, &info(&e)).map(|k| k.reversed()),
                Some(c.tuple.in_key())
            );
            let (v, out) = run(&e, |fr, i| rewrite_icmp(&c, Dir::Input, fr, i, &ctx(1500)));
            assert_eq!(v, Verdict::Tx { route_to: a.d });
            check(&out);
            let (s, d, ..) = fields(&out);
            assert_eq!((s, d), (router, a.d));
            // The dest sees its own reply quoted: from daddr:dport.
            let q = quote(&out);
            let (qs, qsport) = if v6 {
                (
                    IpAddr::from(<[u8; 16]>::try_from(&q[8..24]).unwrap()),
                    u16::from_be_bytes([q[40], q[41]]),
                )
            } else {
                (
                    IpAddr::from(<[u8; 4]>::try_from(&q[12..16]).unwrap()),
                    u16::from_be_bytes([q[20], q[21]]),
                )
            };
            assert_eq!((qs, qsport), (a.d, DPORT));
        }
    }

    #[test]
    fn fullnat_errors_both_ways() {
        for v6 in [false, true] {
            let a = addrs(v6);
            let c = conn(FwdMode::FullNat, a, a.d, TunConf::default());
            let sent = forwarded(&c, a);
            let (t, code) = unreach(v6);
            let e = testutil::icmp_error(M1, M2, a.d, a.l, t, code, 0, testutil::l3(&sent));
            assert_eq!(
                icmp_inner_key(&e, &info(&e)).map(|k| k.reversed()),
                Some(c.tuple.out_key())
            );
            let (v, out) = run(&e, |fr, i| rewrite_icmp(&c, Dir::Output, fr, i, &ctx(1500)));
            assert_eq!(v, Verdict::Tx { route_to: a.c });
            check(&out);
            let mut orig = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::SYN, b"req");
            testutil::set_ttl(&mut orig, 63);
            assert_eq!(quote(&out), &orig[14..]);
            let (s, d, ..) = fields(&out);
            assert_eq!((s, d), (a.v, a.c));

            let reply = testutil::tcp(M1, M2, a.v, VPORT, a.c, CPORT, flags::ACK, b"resp");
            let e = testutil::icmp_error(M1, M2, a.c, a.v, t, code, 0, testutil::l3(&reply));
            assert_eq!(
                icmp_inner_key(&e, &info(&e)).map(|k| k.reversed()),
                Some(c.tuple.in_key())
            );
            let (v, out) = run(&e, |fr, i| rewrite_icmp(&c, Dir::Input, fr, i, &ctx(1500)));
            assert_eq!(v, Verdict::Tx { route_to: a.d });
            check(&out);
            let (s, d, ..) = fields(&out);
            assert_eq!((s, d), (a.l, a.d));
            // The dest sees its own reply: daddr:dport -> laddr:lport.
            let want = testutil::tcp(M1, M2, a.d, DPORT, a.l, LPORT, flags::ACK, b"resp");
            assert_eq!(quote(&out), &want[14..]);
        }
    }

    #[test]
    fn dr_and_tun_forward_errors() {
        for v6 in [false, true] {
            let a = addrs(v6);
            let reply = testutil::tcp(M1, M2, a.v, VPORT, a.c, CPORT, flags::ACK, b"");
            let (t, code) = unreach(v6);
            let e = testutil::icmp_error(M1, M2, a.c, a.v, t, code, 0, testutil::l3(&reply));
            let c = conn(FwdMode::Route, a, a.d, TunConf::default());
            let (v, out) = run(&e, |fr, i| rewrite_icmp(&c, Dir::Input, fr, i, &ctx(1500)));
            assert_eq!(v, Verdict::Tx { route_to: a.d });
            check(&out);
            assert_eq!(
                &out[14 + if v6 { 40 } else { 20 }..],
                &e[14 + if v6 { 40 } else { 20 }..]
            );
            let c = conn(
                FwdMode::Tunnel,
                a,
                a.d,
                TunConf {
                    kind: TunType::Ipip,
                    port: 0,
                    flags: 0,
                },
            );
            let (v, out) = run(&e, |fr, i| rewrite_icmp(&c, Dir::Input, fr, i, &ctx(1500)));
            assert_eq!(v, Verdict::Tx { route_to: a.d });
            check(&out);
            assert_eq!(out.len(), e.len() + if v6 { 40 } else { 20 });
        }
    }

    #[test]
    fn error_about_our_tunnel_goes_back_to_the_client() {
        for kind in [TunType::Ipip, TunType::Gue, TunType::Gre] {
            let a = addrs(false);
            let tc = TunConf {
                kind,
                port: 6080,
                flags: 0,
            };
            let c = conn(FwdMode::Tunnel, a, a.d, tc);
            let sent = forwarded(&c, a); // the tunnel packet DIP -> RIP
            let router = "198.18.9.1".parse().unwrap();
            let e = testutil::icmp_error(M1, M2, router, a.dip, 3, 4, 1400, testutil::l3(&sent));
            assert_eq!(
                icmp_inner_key(&e, &info(&e)),
                Some(c.tuple.in_key()),
                "{kind:?}"
            );
            let (v, out) = run(&e, |fr, i| rewrite_icmp(&c, Dir::Input, fr, i, &ctx(1500)));
            assert_eq!(v, Verdict::Tx { route_to: a.c }, "{kind:?}");
            check(&out);
            let (s, d, ..) = fields(&out);
            assert_eq!((s, d), (a.v, a.c));
            let overhead = 20
                + match kind {
                    TunType::Ipip => 0,
                    TunType::Gue => 12,
                    TunType::Gre => 4,
                };
            assert_eq!(u16::from_be_bytes([out[40], out[41]]), 1400 - overhead);
            let mut orig = testutil::tcp(M1, M2, a.c, CPORT, a.v, VPORT, flags::SYN, b"req");
            testutil::set_ttl(&mut orig, 63);
            assert_eq!(quote(&out), &orig[14..]);
        }
    }

    #[test]
    fn unrelated_icmp() {
        let a = addrs(false);
        let echo = testutil::echo_request(M1, M2, a.c, a.v, 1, b"ping");
        assert_eq!(icmp_inner_key(&echo, &info(&echo)), None);
        // A quote without its ports.
        let req = testutil::tcp(M1, M2, a.v, VPORT, a.c, CPORT, flags::ACK, b"");
        let e = testutil::icmp_error(M1, M2, a.c, a.v, 3, 3, 0, &testutil::l3(&req)[..22]);
        assert_eq!(icmp_inner_key(&e, &info(&e)), None);
        let c = conn(FwdMode::Masq, a, a.d, TunConf::default());
        let (v, _) = run(&e, |fr, i| rewrite_icmp(&c, Dir::Input, fr, i, &ctx(1500)));
        assert_eq!(v, Verdict::Drop(DropReason::IcmpNoConn));
        // Errors are never answered with errors.
        let mut e = testutil::icmp_error(M1, M2, a.c, a.v, 3, 3, 0, testutil::l3(&req));
        testutil::set_ttl(&mut e, 1);
        let (v, _) = run(&e, |fr, i| rewrite_icmp(&c, Dir::Input, fr, i, &ctx(1500)));
        assert_eq!(v, Verdict::Drop(DropReason::TtlExceeded));
    }
}
