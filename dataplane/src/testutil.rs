//! Test helpers shared by unit tests, benches and the tests crate (feature `testutil`):
//! frame builders with correct checksums (built with etherparse, an implementation independent
//! of `wire`) and [`verify_checksums`], which checks every checksum of a frame, one level of
//! IPIP / GUE / GRE encapsulation and ICMP-quoted packets included.
//!
//! Builders produce untagged Ethernet II frames, TTL/hop limit 64, IPv4 with DF set and
//! identification 0, TCP seq 1000 (ack 2000 when ACK is set) and window 64240. They allocate
//! and panic freely: never use them on the data path.
#![allow(clippy::missing_panics_doc, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{IpHeaders, Ipv4Header, Ipv6Header, PacketBuilder, TcpHeader};

use crate::flow::proto;
use crate::wire::{self, checksum, ethertype};

fn v4_header(src: Ipv4Addr, dst: Ipv4Addr) -> IpHeaders {
    IpHeaders::Ipv4(
        Ipv4Header {
            source: src.octets(),
            destination: dst.octets(),
            time_to_live: 64,
            dont_fragment: true,
            ..Default::default()
        },
        Default::default(),
    )
}

fn v6_header(src: Ipv6Addr, dst: Ipv6Addr) -> IpHeaders {
    IpHeaders::Ipv6(
        Ipv6Header {
            source: src.octets(),
            destination: dst.octets(),
            hop_limit: 64,
            ..Default::default()
        },
        Default::default(),
    )
}

fn ip_header(src: IpAddr, dst: IpAddr) -> IpHeaders {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => v4_header(s, d),
        (IpAddr::V6(s), IpAddr::V6(d)) => v6_header(s, d),
        _ => panic!("mixed address families"),
    }
}

fn tcp_header(sport: u16, dport: u16, flags: u8) -> TcpHeader {
    use wire::tcp::flags as f;
    let mut h = TcpHeader::new(sport, dport, 1000, 64240);
    h.fin = flags & f::FIN != 0;
    h.syn = flags & f::SYN != 0;
    h.rst = flags & f::RST != 0;
    h.psh = flags & f::PSH != 0;
    h.ack = flags & f::ACK != 0;
    h.urg = flags & f::URG != 0;
    h.ece = flags & f::ECE != 0;
    h.cwr = flags & f::CWR != 0;
    if h.ack {
        h.acknowledgment_number = 2000;
    }
    h
}

/// A TCP segment over IPv4 or IPv6 (both addresses of one family).
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ip(ip_header(src, dst))
        .tcp_header(tcp_header(sport, dport, flags));
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// A TCP segment over IPv4.
#[allow(clippy::too_many_arguments)]
pub fn tcp4(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    tcp(
        src_mac,
        dst_mac,
        src.into(),
        sport,
        dst.into(),
        dport,
        flags,
        payload,
    )
}

/// A TCP segment over IPv6.
#[allow(clippy::too_many_arguments)]
pub fn tcp6(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    sport: u16,
    dst: Ipv6Addr,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    tcp(
        src_mac,
        dst_mac,
        src.into(),
        sport,
        dst.into(),
        dport,
        flags,
        payload,
    )
}

/// A UDP datagram over IPv4 or IPv6.
pub fn udp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ip(ip_header(src, dst))
        .udp(sport, dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// A UDP datagram over IPv4.
pub fn udp4(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    udp(
        src_mac,
        dst_mac,
        src.into(),
        sport,
        dst.into(),
        dport,
        payload,
    )
}

/// A UDP datagram over IPv6.
pub fn udp6(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    sport: u16,
    dst: Ipv6Addr,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    udp(
        src_mac,
        dst_mac,
        src.into(),
        sport,
        dst.into(),
        dport,
        payload,
    )
}

/// An ICMP (v4) or ICMPv6 error of `typ`/`code` with bytes 4..8 = `rest`, quoting `quoted`
/// (an IP packet, e.g. `l3(&frame)` of an earlier frame, possibly cut short).
#[allow(clippy::too_many_arguments)]
pub fn icmp_error(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    typ: u8,
    code: u8,
    rest: u32,
    quoted: &[u8],
) -> Vec<u8> {
    let r = rest.to_be_bytes();
    let mut out = Vec::new();
    match (src, dst) {
        (IpAddr::V4(..), IpAddr::V4(..)) => PacketBuilder::ethernet2(src_mac, dst_mac)
            .ip(ip_header(src, dst))
            .icmpv4_raw(typ, code, r)
            .write(&mut out, quoted)
            .unwrap(),
        _ => PacketBuilder::ethernet2(src_mac, dst_mac)
            .ip(ip_header(src, dst))
            .icmpv6_raw(typ, code, r)
            .write(&mut out, quoted)
            .unwrap(),
    }
    out
}

/// An ICMP echo request (v4 or v6 by the addresses), identifier `id`, sequence 1.
pub fn echo_request(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    match (src, dst) {
        (IpAddr::V4(..), IpAddr::V4(..)) => PacketBuilder::ethernet2(src_mac, dst_mac)
            .ip(ip_header(src, dst))
            .icmpv4_echo_request(id, 1)
            .write(&mut out, payload)
            .unwrap(),
        _ => PacketBuilder::ethernet2(src_mac, dst_mac)
            .ip(ip_header(src, dst))
            .icmpv6_echo_request(id, 1)
            .write(&mut out, payload)
            .unwrap(),
    }
    out
}

/// A broadcast ARP request: who has `target`? tell `sender` (at `src_mac`).
pub fn arp_request(src_mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp(
        src_mac,
        [0xff; 6],
        wire::arp::OP_REQUEST,
        src_mac,
        sender,
        [0; 6],
        target,
    )
}

/// An ARP reply: `sender` is at `src_mac`, sent to `target` at `dst_mac`.
pub fn arp_reply(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    sender: Ipv4Addr,
    target: Ipv4Addr,
) -> Vec<u8> {
    arp(
        src_mac,
        dst_mac,
        wire::arp::OP_REPLY,
        src_mac,
        sender,
        dst_mac,
        target,
    )
}

fn arp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    op: u16,
    sha: [u8; 6],
    spa: Ipv4Addr,
    tha: [u8; 6],
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + wire::arp::PACKET_LEN];
    wire::EthernetRepr {
        src: src_mac,
        dst: dst_mac,
        tci: None,
        ethertype: ethertype::ARP,
    }
    .emit(&mut wire::EthernetFrame::new_unchecked(&mut f[..]));
    wire::ArpRepr {
        op,
        sender_hw: sha,
        sender_ip: spa,
        target_hw: tha,
        target_ip: tpa,
    }
    .emit(&mut wire::ArpPacket::new_unchecked(&mut f[14..]));
    f
}

/// A neighbour solicitation for `target` from `src` (at `src_mac`), sent to the target's
/// solicited-node multicast address, with the source link-layer address option.
pub fn neighbor_solicit(src_mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let dst = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let dst_mac = [0x33, 0x33, 0xff, t[13], t[14], t[15]];
    ndisc(
        src_mac,
        dst_mac,
        src,
        dst,
        wire::NdiscRepr::Solicit {
            target,
            lladdr: Some(src_mac),
        },
    )
}

/// A neighbour advertisement (solicited, override) for `target` at `src_mac`.
pub fn neighbor_advert(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
) -> Vec<u8> {
    use wire::icmpv6::na_flags;
    let r = wire::NdiscRepr::Advert {
        flags: na_flags::SOLICITED | na_flags::OVERRIDE,
        target,
        lladdr: Some(src_mac),
    };
    ndisc(src_mac, dst_mac, src, dst, r)
}

fn ndisc(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    r: wire::NdiscRepr,
) -> Vec<u8> {
    let n = r.buffer_len();
    let mut f = vec![0u8; 14 + 40 + n];
    wire::EthernetRepr {
        src: src_mac,
        dst: dst_mac,
        tci: None,
        ethertype: ethertype::IPV6,
    }
    .emit(&mut wire::EthernetFrame::new_unchecked(&mut f[..]));
    wire::Ipv6Repr {
        src,
        dst,
        next_header: proto::ICMPV6,
        payload_len: n,
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut wire::Ipv6Packet::new_unchecked(&mut f[14..]));
    r.emit(
        &mut wire::Icmpv6Packet::new_unchecked(&mut f[54..]),
        &src,
        &dst,
    );
    f
}

/// The frame with an 802.1Q tag (VLAN `vid`, priority 0) inserted after the MACs.
pub fn with_vlan(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&ethertype::VLAN.to_be_bytes());
    f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// Set or clear the IPv4 DF bit of an untagged frame (header checksum fixed).
pub fn set_df(frame: &mut [u8], df: bool) {
    let mut p = wire::Ipv4Packet::new_checked(&mut frame[14..]).unwrap();
    p.set_frag(df, false, 0);
    p.fill_checksum();
}

/// Set the TTL / hop limit of an untagged frame (IPv4 header checksum fixed).
pub fn set_ttl(frame: &mut [u8], ttl: u8) {
    if frame[14] >> 4 == 4 {
        let mut p = wire::Ipv4Packet::new_checked(&mut frame[14..]).unwrap();
        p.set_ttl(ttl);
        p.fill_checksum();
    } else {
        frame[14 + 7] = ttl;
    }
}

/// The IP packet of a frame (after the Ethernet header and tag), padding included.
pub fn l3(frame: &[u8]) -> &[u8] {
    let e = wire::EthernetFrame::new_checked(frame).unwrap();
    &frame[e.header_len()..]
}

/// Check every checksum in a frame: the IPv4 header, TCP/UDP/ICMP/ICMPv6, GRE when present,
/// and recursively one level of IPIP / IPv6-in-IP / GRE / GUE (UDP whose payload is a GUE
/// variant-0 header carrying IPv4 or IPv6) encapsulation, and the IP header (plus the L4
/// checksum when quoted whole) of a packet quoted by an ICMP error. Errors name the first bad
/// checksum.
pub fn verify_checksums(frame: &[u8]) -> Result<(), String> {
    let e =
        wire::EthernetFrame::new_checked(frame).map_err(|_| "short ethernet header".to_string())?;
    match e.ethertype() {
        ethertype::IPV4 | ethertype::IPV6 => verify_ip(&frame[e.header_len()..], 0, false),
        ethertype::ARP => Ok(()),
        t => Err(format!("ethertype {t:#06x} is not IP")),
    }
}

fn verify_ip(ip: &[u8], depth: u8, quoted: bool) -> Result<(), String> {
    let tag = if quoted {
        "quoted "
    } else if depth > 0 {
        "inner "
    } else {
        ""
    };
    let (src, dst, proto, payload, whole) = match ip.first().map(|b| b >> 4) {
        Some(4) => {
            if ip.len() < 20 {
                return Err(format!("{tag}IPv4 header truncated"));
            }
            let hl = usize::from(ip[0] & 0xf) * 4;
            if hl < 20 || hl > ip.len() {
                return Err(format!("{tag}IPv4 IHL bad"));
            }
            if checksum::data(&ip[..hl]) != 0xffff {
                return Err(format!("{tag}IPv4 header checksum bad"));
            }
            let tl = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            if tl < hl || (!quoted && tl > ip.len()) {
                return Err(format!(
                    "{tag}IPv4 total length {tl} bad (buffer {})",
                    ip.len()
                ));
            }
            let whole = tl <= ip.len();
            let end = tl.min(ip.len());
            let p = wire::Ipv4Packet::new_unchecked(ip);
            (
                IpAddr::V4(p.src_addr()),
                IpAddr::V4(p.dst_addr()),
                p.protocol(),
                &ip[hl..end],
                whole,
            )
        }
        Some(6) => {
            if ip.len() < 40 {
                return Err(format!("{tag}IPv6 header truncated"));
            }
            let tl = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            if !quoted && tl > ip.len() {
                return Err(format!("{tag}IPv6 payload length bad"));
            }
            let whole = tl <= ip.len();
            let end = tl.min(ip.len());
            let w = wire::ipv6::walk_ext(ip, ip[6], end)
                .map_err(|_| format!("{tag}IPv6 ext headers bad"))?;
            let p = wire::Ipv6Packet::new_unchecked(ip);
            (
                IpAddr::V6(p.src_addr()),
                IpAddr::V6(p.dst_addr()),
                w.protocol,
                &ip[w.l4_off..end],
                whole,
            )
        }
        _ => return Err(format!("{tag}not an IP packet")),
    };
    if !whole {
        return Ok(()); // a cut quote: only the IP header can be checked
    }
    let l4_sum = |p: u8| {
        let len = u32::try_from(payload.len()).unwrap();
        checksum::add(
            checksum::pseudo(&src, &dst, p, len).unwrap(),
            checksum::data(payload),
        )
    };
    match proto {
        proto::TCP => {
            if payload.len() < 20 {
                return Err(format!("{tag}TCP truncated"));
            }
            if l4_sum(proto::TCP) != 0xffff {
                return Err(format!("{tag}TCP checksum bad"));
            }
        }
        proto::UDP => {
            let u = wire::UdpPacket::new_checked(payload)
                .map_err(|_| format!("{tag}UDP length bad"))?;
            // Zero means "no checksum": allowed over IPv4, and over IPv6 only for tunnels
            // (RFC 6935), which is how IPVS sends GUE without --tun-csum.
            let gue = u.dst_port() == GUE_PORT && is_gue(u.payload());
            let zero_ok = u.checksum() == 0 && (src.is_ipv4() || gue);
            if !zero_ok && !u.verify_checksum(&src, &dst) {
                return Err(format!("{tag}UDP checksum bad"));
            }
            if depth == 0 && !quoted && gue {
                let g = wire::GuePacket::new_unchecked(u.payload());
                return verify_ip(g.payload(), depth + 1, false);
            }
        }
        proto::ICMP | proto::ICMPV6 => {
            let ok = if proto == proto::ICMP {
                checksum::data(payload) == 0xffff
            } else {
                l4_sum(proto::ICMPV6) == 0xffff
            };
            if !ok {
                return Err(format!("{tag}ICMP checksum bad"));
            }
            let is_err = if proto == proto::ICMP {
                wire::icmp::is_error(payload[0])
            } else {
                wire::icmpv6::is_error(payload[0])
            };
            if is_err && !quoted && payload.len() > 8 {
                return verify_ip(&payload[8..], depth, true);
            }
        }
        proto::IPIP | proto::IPV6 if depth == 0 && !quoted => return verify_ip(payload, 1, false),
        proto::GRE if depth == 0 && !quoted => {
            let g =
                wire::GrePacket::new_checked(payload).map_err(|_| "GRE truncated".to_string())?;
            if !g.verify_checksum() {
                return Err("GRE checksum bad".into());
            }
            return verify_ip(g.payload(), 1, false);
        }
        _ => {}
    }
    Ok(())
}

/// The UDP port `verify_checksums` expects GUE on (every test uses it). Looking for GUE in any
/// UDP payload made random payloads that happen to look like a GUE header fail verification.
pub const GUE_PORT: u16 = 6080;

/// Whether a UDP payload looks like a GUE variant-0 data packet carrying IPv4 or IPv6.
fn is_gue(p: &[u8]) -> bool {
    let Ok(g) = wire::GuePacket::new_checked(p) else {
        return false;
    };
    let inner = g.payload().first().map(|b| b >> 4);
    g.version() == 0
        && !g.is_control()
        && matches!(
            (g.proto_ctype(), inner),
            (proto::IPIP, Some(4)) | (proto::IPV6, Some(6))
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const M1: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const M2: [u8; 6] = [2, 0, 0, 0, 0, 2];

    #[test]
    fn builders_verify() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let (a6, b6): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        let t = tcp4(M1, M2, a, 1, b, 2, wire::tcp::flags::SYN, b"x");
        verify_checksums(&t).unwrap();
        assert!(wire::Ipv4Packet::new_checked(l3(&t)).unwrap().dont_frag());
        verify_checksums(&tcp6(M1, M2, a6, 1, b6, 2, 0, b"xyz")).unwrap();
        verify_checksums(&udp4(M1, M2, a, 1, b, 2, b"x")).unwrap();
        verify_checksums(&udp6(M1, M2, a6, 1, b6, 2, b"x")).unwrap();
        verify_checksums(&with_vlan(&udp6(M1, M2, a6, 1, b6, 2, b"x"), 5)).unwrap();
        verify_checksums(&arp_request(M1, a, b)).unwrap();
        verify_checksums(&neighbor_solicit(M1, a6, b6)).unwrap();
        verify_checksums(&echo_request(M1, M2, a6.into(), b6.into(), 7, b"ping")).unwrap();
        let e = icmp_error(M2, M1, b.into(), a.into(), 3, 3, 0, l3(&t));
        verify_checksums(&e).unwrap();
        let mut bad = t.clone();
        *bad.last_mut().unwrap() ^= 0xff;
        assert!(verify_checksums(&bad).unwrap_err().contains("TCP"));
        let bad_quote = icmp_error(M2, M1, b.into(), a.into(), 3, 3, 0, l3(&bad));
        assert!(
            verify_checksums(&bad_quote)
                .unwrap_err()
                .contains("quoted TCP")
        );
        let mut bad_ip = t.clone();
        bad_ip[22] ^= 1;
        assert!(
            verify_checksums(&bad_ip)
                .unwrap_err()
                .contains("IPv4 header")
        );
    }
}

/// The NAT rig the pipeline benchmarks and the callgrind probe share: one TCP service
/// 198.18.1.100:80 (`wlc`) over four NAT dests 198.18.2.10-13:8080 with static neighbours,
/// clients on port 0 (198.18.0.0/16), dests on port 1, a conn table of `2^conn_tab_bits`
/// buckets holding at most `max_conns`, and `workers` counter slots.
pub mod rig {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use crate::conn::ConnTable;
    use crate::director::Director;
    use crate::io::mem::MemIo;
    use crate::neigh::{NetConf, PortAddr, PortConf};
    use crate::service::{Config, DestConf, FwdMode, Protocol, ServiceConf, ServiceKey, TunConf};
    use crate::wire::tcp::flags::SYN;
    use crate::worker::{Shared, Worker};

    /// Director MAC on the client port.
    pub const D0: [u8; 6] = [2, 0, 0, 0, 0, 1];
    /// Director MAC on the dest port.
    pub const D1: [u8; 6] = [2, 0, 0, 0, 0, 2];
    /// Client MAC.
    pub const C: [u8; 6] = [2, 0, 0, 0, 0, 0xc1];
    /// The VIP.
    pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 100);

    /// State shared by the rig's workers.
    pub fn shared(
        conn_tab_bits: u8,
        max_conns: usize,
        workers: usize,
    ) -> (Arc<Shared>, Arc<ConnTable>) {
        let ip = |a: [u8; 4]| IpAddr::V4(Ipv4Addr::from(a));
        let dests = (0..4u8)
            .map(|i| DestConf {
                addr: ip([198, 18, 2, 10 + i]),
                port: 8080,
                fwd: FwdMode::Masq,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
                tun: TunConf::default(),
            })
            .collect();
        let cfg = Config {
            services: vec![ServiceConf {
                key: ServiceKey::Inet {
                    proto: Protocol::Tcp,
                    addr: IpAddr::V4(VIP),
                    port: 80,
                },
                sched_name: "wlc".into(),
                flags: 0,
                timeout_s: 0,
                netmask: u32::MAX,
                pe_name: None,
                dests,
                laddrs: vec![],
            }],
            ..Config::default()
        };
        let director = Arc::new(Director::new(workers));
        director.apply(&cfg).unwrap();
        let conns = Arc::new(ConnTable::with_bits(conn_tab_bits, max_conns, workers).unwrap());
        let neigh = (0..4u8)
            .map(|i| (ip([198, 18, 2, 10 + i]), [2, 0, 0, 0, 0, 0xa0 + i]))
            .collect();
        let port = |name: &str, mac, addr, prefix| PortConf {
            name: name.into(),
            mac,
            addrs: vec![PortAddr { addr, prefix }],
            mtu: 1500,
        };
        let net = NetConf {
            ports: vec![
                port("p0", D0, ip([198, 18, 1, 1]), 16),
                port("p1", D1, ip([198, 18, 2, 1]), 24),
            ],
            routes: vec![],
            neigh,
        };
        let shared = Arc::new(Shared::new(director, Arc::clone(&conns), net, workers).unwrap());
        (shared, conns)
    }

    /// One worker (index 0) over a MemIo of `chunks` frames.
    pub fn worker(
        conn_tab_bits: u8,
        max_conns: usize,
        chunks: usize,
    ) -> (Worker<MemIo>, Arc<ConnTable>) {
        let (shared, conns) = shared(conn_tab_bits, max_conns, 1);
        (
            Worker::new(0, MemIo::new(chunks, vec![D0, D1]), shared),
            conns,
        )
    }

    /// Client `i`: a distinct (address, port) pair in 198.18.0.0/16 x 10000..60000.
    #[allow(clippy::cast_possible_truncation)] // i % 50_000 < 2^16
    #[must_use]
    pub fn client(i: u32) -> (IpAddr, u16) {
        (
            IpAddr::V4(Ipv4Addr::from(0xc612_0000 | ((i / 50_000) & 0xffff))),
            10_000 + (i % 50_000) as u16,
        )
    }

    /// A SYN from client `i` to the VIP.
    #[must_use]
    pub fn syn(i: u32) -> Vec<u8> {
        let (a, p) = client(i);
        super::tcp(C, D0, a, p, IpAddr::V4(VIP), 80, SYN, b"")
    }

    /// A data segment (40 bytes) from client `i` to the VIP.
    #[must_use]
    pub fn data(i: u32) -> Vec<u8> {
        use crate::wire::tcp::flags::{ACK, PSH};
        let (a, p) = client(i);
        super::tcp(C, D0, a, p, IpAddr::V4(VIP), 80, ACK | PSH, &[0u8; 40])
    }
}
