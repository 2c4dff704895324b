//! The IPv4 fast path: an established TCP/UDP packet of a NAT, FULLNAT or DR conn, from frame
//! to transmit-ready, without building the general path's `PacketInfo`, `Hit` or `IpAddr`s.
//!
//! It takes only the common shape: Ethernet II without a VLAN tag, IPv4 without options, not a
//! fragment, TTL > 1, a valid header checksum, a whole TCP or UDP header, and no
//! CHECKSUM_PARTIAL completion configured. Anything else [`classify`] declines before
//! touching the frame or the conn table, and the general path runs as if it had never looked.
//! Two client -> VIP frames in a row are looked up together ([`pair`]: both shards locked at
//! once, so the second lookup's loads overlap the first's instead of waiting for its rewrite
//! and the next lock), with the table seeing what two lookups in a row show it; when the first
//! misses (a SYN, most likely), the second's bucket and free slot are read in while the first
//! conn is created.
//! Before any lookup, a client -> VIP frame (not a SYN) whose flow is in the worker's flow
//! cache ([`super::flows`]) is finished by [`cached`]: its conn is touched by reference
//! ([`crate::conn::ConnTable::touch_v4`], which refuses a conn that is gone, due or replaced)
//! and the frame rewritten from the cached next hop and checksum differences; every other
//! client -> VIP frame this path forwards caches its flow.
//! A packet of no conn comes back as [`Fast::Miss`], with where its conn would go: it is then
//! scheduled without probing the table a second time, and created without a second probe
//! when the conn's shard did not change meanwhile ([`crate::conn::MissV4`]). Once a conn is found the packet is finished here,
//! or, when the conn's mode or the packet needs more (TUN, MTU answers, an unknown next hop),
//! handed to the general rewrite with that very hit, so the lookup's side effects (state,
//! timer, counters) happen exactly once.
//!
//! What it writes is what the general rewrite writes for the same packet (fixtures and the
//! end-to-end tests run both paths): TTL decremented, NAT/FULLNAT addresses and ports
//! replaced with RFC 1624 checksum updates (a zero UDP checksum stays zero, a computed zero is
//! sent as `0xffff`), Ethernet padding trimmed, the next hop's and egress port's MACs.
//! Never: allocate, lock anything but the conns' shards (two only in a pair, in shard order),
//! or change a frame it declines.

use std::net::{IpAddr, Ipv4Addr};

use super::flows::{Flow, Nat};
use super::{Ctx, created, forward, leave, schedule};
use crate::conn::{FlowKeyV4, HitV4, MissV4};
use crate::flow::{Dir, proto};
use crate::io::Frame;
use crate::neigh::NeighMap;
use crate::service::{Family, FwdMode};
use crate::stats::DropReason;
use crate::wire::{self, Frag, PacketInfo, Parsed, checksum};

/// What the fast path did with a frame.
pub(super) enum Fast {
    /// Finished: transmit (`Ok`) or drop.
    Done(Result<(), DropReason>),
    /// An IPv4 TCP/UDP packet of [`classify`]'s shape that belongs to no conn (both directions
    /// probed): for [`new_v4`], with where its conn would go.
    Miss(MissV4),
}

const ETH: usize = 14;
const IP_TTL: usize = ETH + 8;
const IP_CSUM: usize = ETH + 10;
const IP_SRC: usize = ETH + 12;
const IP_DST: usize = ETH + 16;
const L4: usize = ETH + 20;

/// A frame of the fast path's shape, classified: its flow, TCP flags (0 for UDP) and IP
/// length.
#[derive(Copy, Clone, Debug)]
pub(super) struct V4 {
    pub(super) key: FlowKeyV4,
    pub(super) tcp_flags: u8,
    pub(super) tl: usize,
}

impl V4 {
    #[inline]
    fn len(&self) -> u32 {
        #[allow(clippy::cast_possible_truncation)] // INVARIANT: tl <= 65535.
        let len = self.tl as u32;
        len
    }
}

/// Whether `d` has the fast path's shape (see the module doc), and its flow if so. Reads only.
#[inline(always)]
pub(super) fn classify(d: &[u8]) -> Option<V4> {
    let (h, after) = d.split_first_chunk::<L4>()?;
    if h[12] != 0x08 || h[13] != 0x00 || h[ETH] != 0x45 {
        return None;
    }
    let tl = usize::from(u16::from_be_bytes([h[ETH + 2], h[ETH + 3]]));
    let frag = u16::from_be_bytes([h[ETH + 6], h[ETH + 7]]);
    if tl < 20 || tl - 20 > after.len() || frag & 0x3fff != 0 || h[IP_TTL] <= 1 {
        return None;
    }
    if header_sum(h) != 0xffff {
        return None;
    }
    let l4 = &after[..tl - 20];
    let (p, tcp_flags) = match h[ETH + 9] {
        proto::TCP => {
            let t = l4.first_chunk::<20>()?;
            let hl = usize::from(t[12] >> 4) * 4;
            if hl < 20 || hl > l4.len() {
                return None;
            }
            (proto::TCP, t[13])
        }
        proto::UDP => {
            let u = l4.first_chunk::<8>()?;
            let ul = usize::from(u16::from_be_bytes([u[4], u[5]]));
            if ul < 8 || ul > l4.len() {
                return None;
            }
            (proto::UDP, 0)
        }
        _ => return None,
    };
    let ports = l4.first_chunk::<4>()?;
    let key = FlowKeyV4 {
        proto: p,
        src: u32::from_be_bytes([h[IP_SRC], h[IP_SRC + 1], h[IP_SRC + 2], h[IP_SRC + 3]]),
        dst: u32::from_be_bytes([h[IP_DST], h[IP_DST + 1], h[IP_DST + 2], h[IP_DST + 3]]),
        sport: u16::from_be_bytes([ports[0], ports[1]]),
        dport: u16::from_be_bytes([ports[2], ports[3]]),
    };
    Some(V4 { key, tcp_flags, tl })
}

/// Look up a classified frame and forward it if its conn is found.
#[inline(always)]
pub(super) fn lookup(ctx: &mut Ctx, frame: &mut Frame<'_>, p: &V4) -> Fast {
    let conns = &ctx.shared.conns;
    let snap = &ctx.snap;
    match conns.lookup_v4(
        &p.key,
        p.tcp_flags,
        p.len(),
        ctx.now_ms,
        ctx.index,
        &snap.timeouts,
        || !snap.vip_only_v4(p.key.dst),
    ) {
        Ok(hit) => Fast::Done(forward_v4(ctx, frame, &hit, p.tl)),
        Err(miss) => Fast::Miss(miss),
    }
}

/// Forward a classified frame through the worker's flow cache ([`super::flows`]) when its flow
/// is cached and its conn still stands: the conn is touched by reference, the rewrite uses the
/// cached next hop and checksum differences. `None` (nothing changed) sends the frame on to
/// the lookup.
#[inline(always)]
pub(super) fn cached(
    ctx: &mut Ctx,
    frame: &mut Frame<'_>,
    p: &V4,
    slot: usize,
) -> Option<Result<(), DropReason>> {
    // A SYN most likely opens a conn (or reuses one): not worth a probe of the cache.
    if p.tcp_flags & wire::tcp::flags::SYN != 0 {
        return None;
    }
    let f = ctx.flows.get_at(slot, &p.key)?;
    // Too big: the lookup path hands it to the general rewrite (fragmentation needed).
    if f.mtu != 0 && p.tl > f.mtu as usize {
        return None;
    }
    let snap = &ctx.snap;
    match ctx.shared.conns.touch_v4(
        &f.conn,
        p.tcp_flags,
        p.len(),
        ctx.now_ms,
        ctx.index,
        &snap.timeouts,
    ) {
        Some(available) => {
            ctx.stats.flow_hits += 1;
            // The kernel drops client packets of conns whose dest was deleted (see
            // `forward_v4`).
            Some(if available {
                forward_cached(frame, f, p.tl)
            } else {
                Err(DropReason::NoDest)
            })
        }
        None => {
            ctx.flows.forget_at(slot);
            None
        }
    }
}

/// The rewrite of [`forward_v4`] for a cached flow `f`: the same bytes, from the differences
/// worked out when the flow was cached (the packet's old addresses and ports are its key's).
#[inline(always)]
fn forward_cached(frame: &mut Frame<'_>, f: &Flow, tl: usize) -> Result<(), DropReason> {
    frame.set_len(ETH + tl).map_err(|_| DropReason::Malformed)?;
    let b = frame.data_mut();
    let (h, rest) = b
        .split_first_chunk_mut::<{ L4 + 8 }>()
        .ok_or(DropReason::Malformed)?;
    h[IP_TTL] -= 1;
    let [_, _, daddr, laddr] = f.conn.addrs;
    let [_, _, dport, lport] = f.conn.ports;
    if f.nat == Nat::Both {
        h[IP_SRC..IP_SRC + 4].copy_from_slice(&laddr.to_be_bytes());
        h[L4..L4 + 2].copy_from_slice(&lport.to_be_bytes());
    }
    if f.nat != Nat::None {
        h[IP_DST..IP_DST + 4].copy_from_slice(&daddr.to_be_bytes());
        h[L4 + 2..L4 + 4].copy_from_slice(&dport.to_be_bytes());
    }
    update_ip_csum(h, f.ip_delta);
    if f.nat != Nat::None {
        update_l4_csum(h, rest, f.conn.proto, f.l4_delta)?;
    }
    h[0..12].copy_from_slice(&f.macs);
    frame.set_port(f.port);
    Ok(())
}

/// Whether a classified frame may be looked up in a pair ([`pair`]): it goes to a service
/// address only, so its lookup is the client -> VIP probe alone.
#[inline(always)]
pub(super) fn pairable(ctx: &mut Ctx, p: &V4) -> bool {
    let dst = p.key.dst;
    if ctx.vip_hint == Some(dst) {
        return true;
    }
    let vip = ctx.snap.vip_only_v4(dst);
    if vip {
        ctx.vip_hint = Some(dst);
    }
    vip
}

/// Look up two [`pairable`] frames together ([`crate::conn::ConnTable::lookup_v4_pair`]).
#[inline(always)]
pub(super) fn pair(
    ctx: &Ctx,
    a: &V4,
    b: &V4,
) -> (Result<HitV4, MissV4>, Option<Result<HitV4, MissV4>>) {
    ctx.shared.conns.lookup_v4_pair(
        [&a.key, &b.key],
        [a.tcp_flags, b.tcp_flags],
        [a.len(), b.len()],
        ctx.now_ms,
        ctx.index,
        &ctx.snap.timeouts,
    )
}

/// Finish a classified frame whose lookup was done: forward it on its conn's `hit`, or
/// (a miss) schedule a new conn for it.
#[inline(always)]
pub(super) fn finish(
    ctx: &mut Ctx,
    frame: &mut Frame<'_>,
    p: &V4,
    hit: Result<&HitV4, MissV4>,
) -> Result<(), DropReason> {
    match hit {
        Ok(h) => forward_v4(ctx, frame, h, p.tl),
        Err(miss) => new_v4(ctx, frame, miss),
    }
}

/// The first packet of a flow the fast path classified (`info`, a [`Fast::Miss`]): schedule a
/// conn as the general path does, then forward it here. Out of line: inlined, it enlarges the
/// established packets' loop and slows it (measured: 92 -> 104 ns per established packet).
#[inline(never)]
pub(super) fn new_v4(ctx: &mut Ctx, frame: &mut Frame<'_>, miss: MissV4) -> Result<(), DropReason> {
    let info = &info_v4(frame.data()).ok_or(DropReason::Malformed)?;
    // Trim Ethernet padding as the general path does before anything else sees the frame.
    frame
        .set_len(info.l3_end())
        .map_err(|_| DropReason::Malformed)?;
    let key = info.flow_key();
    #[allow(clippy::cast_possible_truncation)] // INVARIANT: l3_len <= 65535.
    let len = info.l3_len as u32;
    let new = match schedule(ctx, &key, info, len) {
        Ok(n) => n,
        Err(DropReason::NoDest) => return leave(ctx, frame, info),
        Err(r) => return Err(r),
    };
    // A FULLNAT conn of an IPv4 client with an IPv6 local address is refused by `create_v4`
    // as by `create` (mixed families).
    let r = ctx
        .shared
        .conns
        .create_v4(new, ctx.now_ms, ctx.index, &ctx.snap.timeouts, Some(miss));
    let hit = created(ctx, r)?;
    forward_v4(ctx, frame, &hit, info.l3_len)
}

/// The summary `parse_frame` makes of a frame of [`classify`]'s shape (already validated), built
/// directly.
#[inline]
fn info_v4(d: &[u8]) -> Option<PacketInfo> {
    let (h, after) = d.split_first_chunk::<L4>()?;
    let ports = after.first_chunk::<4>()?;
    let be32 = |i: usize| Ipv4Addr::from([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let p = h[ETH + 9];
    Some(PacketInfo {
        vlan: None,
        l3_off: ETH,
        family: Family::V4,
        src: IpAddr::V4(be32(IP_SRC)),
        dst: IpAddr::V4(be32(IP_DST)),
        proto: p,
        l4_off: L4,
        l3_len: usize::from(u16::from_be_bytes([h[ETH + 2], h[ETH + 3]])),
        ttl: h[IP_TTL],
        frag: Frag::None,
        df: h[ETH + 6] & 0x40 != 0,
        sport: u16::from_be_bytes([ports[0], ports[1]]),
        dport: u16::from_be_bytes([ports[2], ports[3]]),
        tcp_flags: if p == proto::TCP { *after.get(13)? } else { 0 },
        icmp_type: 0,
        icmp_code: 0,
    })
}

/// The one's complement sum of the 20-byte IPv4 header in `h`, folded: `0xffff` when its
/// checksum is right, never `0` (the version byte is not zero). Summed as two 64-bit words and
/// one 32-bit word in native byte order: the sum of byte-swapped words is the byte-swapped sum
/// (RFC 1071 2(B)), and `0xffff` reads the same either way.
#[inline(always)]
fn header_sum(h: &[u8; L4]) -> u16 {
    let Some((_, ip)) = h.split_first_chunk::<ETH>() else {
        return 0;
    };
    let (Some((a, rest)), Some(c)) = (ip.split_first_chunk::<8>(), ip.last_chunk::<4>()) else {
        return 0;
    };
    let Some(b) = rest.first_chunk::<8>() else {
        return 0;
    };
    let s = u128::from(u64::from_ne_bytes(*a))
        + u128::from(u64::from_ne_bytes(*b))
        + u128::from(u32::from_ne_bytes(*c));
    // Below 2^66: two end-around carries bring it under 2^64.
    let s = (s & u128::from(u64::MAX)) + (s >> 64);
    let s = (s & u128::from(u64::MAX)) + (s >> 64);
    #[allow(clippy::cast_possible_truncation)] // INVARIANT: below 2^64 after the carries.
    let s = s as u64;
    checksum::fold64(s)
}

/// Rewrite and address a packet of the conn `hit` (the frame is of [`classify`]'s shape, `tl`
/// bytes of IP).
#[inline(always)]
fn forward_v4(
    ctx: &mut Ctx,
    frame: &mut Frame<'_>,
    hit: &HitV4,
    tl: usize,
) -> Result<(), DropReason> {
    // The kernel silently drops client packets of conns whose dest was deleted (ip_vs_in);
    // the dest's own late replies still pass (ip_vs_out has no such check).
    if !hit.dest_available && hit.dir == Dir::Input {
        return Err(DropReason::NoDest);
    }
    let [caddr, vaddr, daddr, laddr] = hit.addrs;
    let [cport, vport, dport, lport] = hit.ports;
    // (route towards, new source, new destination)
    let (to, src, dst) = match (hit.fwd(), hit.dir) {
        (FwdMode::Masq, Dir::Input) => (daddr, None, Some((daddr, dport))),
        (FwdMode::Masq, Dir::Output) => (caddr, Some((vaddr, vport)), None),
        (FwdMode::FullNat, Dir::Input) => (daddr, Some((laddr, lport)), Some((daddr, dport))),
        (FwdMode::FullNat, Dir::Output) => (caddr, Some((vaddr, vport)), Some((caddr, cport))),
        (FwdMode::Route, Dir::Input) => (daddr, None, None),
        _ => return general(ctx, frame, hit),
    };
    let Some(hop) = ctx.hops.get(to, &ctx.shared, &ctx.neigh) else {
        return general(ctx, frame, hit);
    };
    // Too big: the general rewrite answers (fragmentation needed) or drops.
    if hop.mtu != 0 && tl > hop.mtu as usize {
        return general(ctx, frame, hit);
    }
    frame.set_len(ETH + tl).map_err(|_| DropReason::Malformed)?;
    let b = frame.data_mut();
    // `classify` checked the IP header and a UDP header at least are there.
    let (h, rest) = b
        .split_first_chunk_mut::<{ L4 + 8 }>()
        .ok_or(DropReason::Malformed)?;
    // RFC 1624 eqn. 3 over all changed words at once: ~HC + sum(~m + m'), folded once per
    // checksum.
    let ttl_old = u64::from(u16::from_be_bytes([h[IP_TTL], h[IP_TTL + 1]]));
    h[IP_TTL] -= 1;
    let mut ip_acc = (!ttl_old & 0xffff) + (ttl_old - 0x0100);
    let mut l4_acc = 0u64;
    if let Some((addr, port)) = src {
        let d = swap_endpoint(h, IP_SRC, L4, addr, port, &mut l4_acc);
        ip_acc += d;
    }
    if let Some((addr, port)) = dst {
        let d = swap_endpoint(h, IP_DST, L4 + 2, addr, port, &mut l4_acc);
        ip_acc += d;
    }
    // Folded once: applied here and cached for the flow's next packets.
    let (ip_delta, l4_delta) = (checksum::fold64(ip_acc), checksum::fold64(l4_acc));
    update_ip_csum(h, ip_delta);
    let nat = match (src, dst) {
        (None, None) => Nat::None,
        (None, Some(_)) => Nat::Dst,
        _ => Nat::Both,
    };
    if nat != Nat::None {
        update_l4_csum(h, rest, hit.proto, l4_delta)?;
    }
    h[0..6].copy_from_slice(&hop.dst);
    h[6..12].copy_from_slice(&hop.src);
    frame.set_port(hop.port);
    // A client -> VIP flow's next packets can skip the lookup (`cached`): its rewrite is the
    // same every time, and the differences just applied are the ones to cache. (FULLNAT's
    // replies are `Nat::Both` too but are never cached: only `Dir::Input` is.)
    if hit.dir == Dir::Input
        && let Some(conn) = hit.conn_ref()
    {
        let mut macs = [0; 12];
        macs[..6].copy_from_slice(&hop.dst);
        macs[6..].copy_from_slice(&hop.src);
        ctx.flows
            .insert(conn, (hop.port, hop.mtu, macs), nat, ip_delta, l4_delta);
    }
    Ok(())
}

/// Apply the one's complement difference `delta` (RFC 1624 eqn. 3: the sum of `~m + m'` over
/// the changed words, folded) to the IPv4 header checksum of `h`.
#[inline(always)]
fn update_ip_csum(h: &mut [u8; L4 + 8], delta: u16) {
    let c = !u16::from_be_bytes([h[IP_CSUM], h[IP_CSUM + 1]]);
    h[IP_CSUM..IP_CSUM + 2].copy_from_slice(&(!checksum::add(c, delta)).to_be_bytes());
}

/// Apply `delta` to the TCP or UDP checksum of the packet whose first `L4 + 8` bytes are `h`
/// and the rest `rest` (a zero UDP checksum stays zero; a computed zero is sent as `0xffff`).
#[inline(always)]
fn update_l4_csum(
    h: &mut [u8; L4 + 8],
    rest: &mut [u8],
    proto_num: u8,
    delta: u16,
) -> Result<(), DropReason> {
    if proto_num == proto::TCP {
        // TCP checksum at L4 + 16: `classify` checked a whole TCP header is there.
        const AT: usize = wire::tcp::CHECKSUM_OFFSET - 8;
        let t = rest.get_mut(AT..AT + 2).ok_or(DropReason::Malformed)?;
        let c = !u16::from_be_bytes([t[0], t[1]]);
        t.copy_from_slice(&(!checksum::add(c, delta)).to_be_bytes());
    } else {
        const AT: usize = L4 + wire::udp::CHECKSUM_OFFSET;
        let c = u16::from_be_bytes([h[AT], h[AT + 1]]);
        // Zero: no checksum; it stays that way.
        if c != 0 {
            let n = !checksum::add(!c, delta);
            let n = if n == 0 { 0xffff } else { n };
            h[AT..AT + 2].copy_from_slice(&n.to_be_bytes());
        }
    }
    Ok(())
}

/// Replace the address at `addr_at` and the port at `port_at` of `h`; add the one's complement
/// difference of the port and address words to `l4_acc` (the pseudo-header and the port are
/// covered by the L4 checksum) and return the address words' difference (for the IP header).
#[inline(always)]
fn swap_endpoint(
    h: &mut [u8; L4 + 8],
    addr_at: usize,
    port_at: usize,
    addr: u32,
    port: u16,
    l4_acc: &mut u64,
) -> u64 {
    let old = u32::from_be_bytes([h[addr_at], h[addr_at + 1], h[addr_at + 2], h[addr_at + 3]]);
    h[addr_at..addr_at + 4].copy_from_slice(&addr.to_be_bytes());
    let d = u64::from(!old >> 16)
        + u64::from(!old & 0xffff)
        + u64::from(addr >> 16)
        + u64::from(addr & 0xffff);
    let old_port = u16::from_be_bytes([h[port_at], h[port_at + 1]]);
    h[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    *l4_acc += d + u64::from(!old_port) + u64::from(port);
    d
}
/// Hand a found conn's packet to the general rewrite.
#[cold]
#[inline(never)]
fn general(ctx: &mut Ctx, frame: &mut Frame<'_>, hit: &HitV4) -> Result<(), DropReason> {
    let Ok(Parsed::Ip(info)) = wire::parse_frame(frame.data()) else {
        return Err(DropReason::Malformed);
    };
    frame
        .set_len(info.l3_off + info.l3_len)
        .map_err(|_| DropReason::Malformed)?;
    forward(ctx, frame, &info, &hit.to_hit())
}

/// log2 of the next-hop cache's entries.
const HOP_BITS: u32 = 6;

/// A resolved IPv4 next hop: egress port, its MTU and MAC, the neighbour's MAC.
#[derive(Copy, Clone, Debug, Default)]
pub(super) struct Hop {
    addr: u32,
    valid: bool,
    port: u16,
    mtu: u32,
    dst: [u8; 6],
    src: [u8; 6],
}

/// A worker's direct-mapped cache of IPv4 destination -> resolved next hop, so the fast path
/// does not walk the routes and hash into the neighbour map per packet. Routes and ports are
/// fixed for a worker's life; the cache is emptied whenever the worker adopts a new neighbour
/// map ([`Self::clear`]), and only resolved hops are cached (an unresolved one goes to the
/// general path, which holds the frame and asks).
#[derive(Debug)]
pub(super) struct HopCache {
    e: [Hop; 1 << HOP_BITS],
}

impl HopCache {
    pub(super) fn new() -> Self {
        Self {
            e: [Hop::default(); 1 << HOP_BITS],
        }
    }

    /// Forget everything (the neighbour map changed).
    pub(super) fn clear(&mut self) {
        for e in &mut self.e {
            e.valid = false;
        }
    }

    #[inline(always)]
    fn get(&mut self, addr: u32, shared: &super::Shared, neigh: &NeighMap) -> Option<Hop> {
        let i = (addr.wrapping_mul(0x9e37_79b1) >> (32 - HOP_BITS)) as usize;
        let e = self.e[i];
        if e.valid && e.addr == addr {
            return Some(e);
        }
        self.fill(i, addr, shared, neigh)
    }

    #[cold]
    fn fill(
        &mut self,
        i: usize,
        addr: u32,
        shared: &super::Shared,
        neigh: &NeighMap,
    ) -> Option<Hop> {
        let hop = shared
            .routes
            .lookup(std::net::IpAddr::V4(std::net::Ipv4Addr::from_bits(addr)))?;
        let dst = *neigh.get(&hop.via)?;
        let port = shared.net.ports.get(usize::from(hop.port))?;
        let h = Hop {
            addr,
            valid: true,
            port: hop.port,
            mtu: u32::try_from(port.mtu).unwrap_or(u32::MAX),
            dst,
            src: port.mac,
        };
        self.e[i] = h;
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The native-order header sum says "valid" exactly when the big-endian checksum does.
    #[test]
    fn header_sum_agrees_with_the_checksum() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000 {
            let mut h = [0u8; L4];
            for b in &mut h[ETH..] {
                #[allow(clippy::cast_possible_truncation)]
                let v = next() as u8;
                *b = v;
            }
            h[ETH] = 0x45;
            h[IP_CSUM..IP_CSUM + 2].fill(0);
            let c = checksum::checksum(&h[ETH..]);
            h[IP_CSUM..IP_CSUM + 2].copy_from_slice(&c.to_be_bytes());
            if i % 2 == 1 {
                // Corrupt one byte (never to the same value).
                let at = ETH + 1 + (next() % 19) as usize;
                h[at] ^= 1 + (next() % 255) as u8;
            }
            let valid = checksum::data(&h[ETH..]) == 0xffff;
            assert_eq!(header_sum(&h) == 0xffff, valid, "{h:02x?}");
        }
    }
}
