//! Neighbours and routes: the director owns its interfaces, DPDK-style.
//!
//! [`NetConf`] is the static network configuration of the director (ports with their MAC and
//! addresses, gateways, static neighbours), fixed at start. [`Routes`] answers "which port and
//! which next hop for this destination" by longest prefix over the on-link prefixes of the
//! director's addresses plus the configured routes. [`NeighTable`] is the neighbour cache shared
//! by all workers: reads are a lock-free snapshot per burst (`ArcSwap`), learning from ARP/ND
//! copies the map (rare, slow path). The ARP/ND responder and resolver that feed it live in the
//! worker's slow path.
//!
//! Invariants: a static entry is never overwritten by learning. Never: block a worker; the only
//! lock is taken when learning a new or changed entry.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::io::Frame;
use crate::wire::icmpv6::na_flags;
use crate::wire::{
    ArpPacket, EthernetFrame, Icmpv6Packet, Ipv6Packet, Ipv6Repr, NdiscRepr, PacketInfo, arp,
    ethernet, ethertype,
};

/// Errors in the network configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetError {
    /// A prefix length beyond the address size.
    #[error("bad prefix length {1} for {0}")]
    BadPrefix(IpAddr, u8),
    /// A route whose gateway is not on any port's prefix.
    #[error("gateway {0} is not on-link on any interface")]
    GatewayNotOnLink(IpAddr),
    /// A port index beyond the configured ports.
    #[error("no such port {0}")]
    NoSuchPort(u16),
}

/// One of the director's addresses on a port.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PortAddr {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length of its on-link subnet.
    pub prefix: u8,
}

/// A port (interface) of the director.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConf {
    /// Interface name (for messages).
    pub name: String,
    /// Hardware address.
    pub mac: [u8; 6],
    /// Addresses owned on this port.
    pub addrs: Vec<PortAddr>,
    /// L3 MTU of the port.
    pub mtu: usize,
}

/// A static route: `prefix/len` via `gateway`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RouteConf {
    /// Destination prefix.
    pub prefix: IpAddr,
    /// Prefix length.
    pub len: u8,
    /// Next hop (must be on-link on some port).
    pub gateway: IpAddr,
}

/// The director's static network configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetConf {
    /// Ports, indexed as the I/O backend indexes them.
    pub ports: Vec<PortConf>,
    /// Static routes.
    pub routes: Vec<RouteConf>,
    /// Static neighbour entries.
    pub neigh: Vec<(IpAddr, [u8; 6])>,
}

/// Where to send a packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// Egress port.
    pub port: u16,
    /// The address whose MAC is needed (the destination itself when on-link, else a gateway).
    pub via: IpAddr,
}

#[derive(Copy, Clone, Debug)]
struct Entry {
    net: u128,
    mask: u128,
    v6: bool,
    len: u8,
    port: u16,
    gateway: Option<IpAddr>,
}

fn bits(addr: IpAddr) -> (u128, bool) {
    match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)), false),
        IpAddr::V6(a) => (u128::from(a), true),
    }
}

fn mask(len: u8, v6: bool) -> u128 {
    let width = if v6 { 128 } else { 32 };
    if len == 0 {
        0
    } else {
        (u128::MAX << (128 - u32::from(len))) >> (128 - width)
    }
}

/// Longest-prefix routing over on-link prefixes and static routes.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    // Sorted by prefix length, longest first; a handful of entries, so a linear scan is the
    // fastest structure (no pointer chasing).
    entries: Vec<Entry>,
    src_v4: Vec<Option<Ipv4Addr>>,
    src_v6: Vec<Option<Ipv6Addr>>,
}

impl Routes {
    /// Build the table from a network configuration.
    pub fn new(conf: &NetConf) -> Result<Self, NetError> {
        let mut entries = Vec::new();
        let (mut src_v4, mut src_v6) = (Vec::new(), Vec::new());
        for (i, p) in conf.ports.iter().enumerate() {
            let port = u16::try_from(i).map_err(|_| NetError::NoSuchPort(u16::MAX))?;
            src_v4.push(p.addrs.iter().find_map(|a| match a.addr {
                IpAddr::V4(v) => Some(v),
                IpAddr::V6(_) => None,
            }));
            src_v6.push(p.addrs.iter().find_map(|a| match a.addr {
                IpAddr::V6(v) if !v.is_unicast_link_local() => Some(v),
                _ => None,
            }));
            for a in &p.addrs {
                let (b, v6) = bits(a.addr);
                if a.prefix > if v6 { 128 } else { 32 } {
                    return Err(NetError::BadPrefix(a.addr, a.prefix));
                }
                let m = mask(a.prefix, v6);
                entries.push(Entry {
                    net: b & m,
                    mask: m,
                    v6,
                    len: a.prefix,
                    port,
                    gateway: None,
                });
            }
        }
        let on_link = Self {
            entries: entries.clone(),
            src_v4: Vec::new(),
            src_v6: Vec::new(),
        };
        for r in &conf.routes {
            let (b, v6) = bits(r.prefix);
            if r.len > if v6 { 128 } else { 32 } {
                return Err(NetError::BadPrefix(r.prefix, r.len));
            }
            let hop = on_link
                .lookup(r.gateway)
                .ok_or(NetError::GatewayNotOnLink(r.gateway))?;
            let m = mask(r.len, v6);
            entries.push(Entry {
                net: b & m,
                mask: m,
                v6,
                len: r.len,
                port: hop.port,
                gateway: Some(r.gateway),
            });
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.len));
        Ok(Self {
            entries,
            src_v4,
            src_v6,
        })
    }

    /// The next hop for `dst`, or `None` when nothing routes it.
    #[inline]
    #[must_use]
    pub fn lookup(&self, dst: IpAddr) -> Option<NextHop> {
        let (b, v6) = bits(dst);
        self.entries
            .iter()
            .find(|e| e.v6 == v6 && b & e.mask == e.net)
            .map(|e| NextHop {
                port: e.port,
                via: e.gateway.unwrap_or(dst),
            })
    }

    /// The director's IPv4 address on `port` (outer source of tunnels, ARP requests).
    #[inline]
    #[must_use]
    pub fn src_v4(&self, port: u16) -> Option<Ipv4Addr> {
        self.src_v4.get(usize::from(port)).copied().flatten()
    }

    /// The director's IPv6 address on `port`.
    #[inline]
    #[must_use]
    pub fn src_v6(&self, port: u16) -> Option<Ipv6Addr> {
        self.src_v6.get(usize::from(port)).copied().flatten()
    }
}

/// Neighbour map: address to MAC.
pub type NeighMap = hashbrown::HashMap<IpAddr, [u8; 6]>;

/// The neighbour cache shared by all workers.
#[derive(Debug)]
pub struct NeighTable {
    map: ArcSwap<NeighMap>,
    statics: hashbrown::HashSet<IpAddr>,
    write: Mutex<()>,
}

impl NeighTable {
    /// A table holding the static entries.
    #[must_use]
    pub fn new(statics: &[(IpAddr, [u8; 6])]) -> Self {
        let map: NeighMap = statics.iter().copied().collect();
        Self {
            statics: map.keys().copied().collect(),
            map: ArcSwap::from_pointee(map),
            write: Mutex::new(()),
        }
    }

    /// The current map (workers load it once per burst).
    #[inline]
    #[must_use]
    pub fn load(&self) -> Arc<NeighMap> {
        self.map.load_full()
    }

    /// The current map if it is not `current`, else `None` (no shared reference count is
    /// touched when nothing was learned).
    #[inline]
    #[must_use]
    pub fn load_if_changed(&self, current: &Arc<NeighMap>) -> Option<Arc<NeighMap>> {
        let g = self.map.load();
        if Arc::ptr_eq(&g, current) {
            None
        } else {
            Some(arc_swap::Guard::into_inner(g))
        }
    }

    /// Learn or refresh `addr -> mac`. Returns true when the map changed. Slow path: copies the
    /// map when something changed.
    #[cold]
    pub fn learn(&self, addr: IpAddr, mac: [u8; 6]) -> bool {
        if self.statics.contains(&addr) || mac == [0; 6] || mac[0] & 1 != 0 {
            return false;
        }
        if self.map.load().get(&addr) == Some(&mac) {
            return false;
        }
        let _guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = NeighMap::clone(&self.map.load());
        next.insert(addr, mac);
        self.map.store(Arc::new(next));
        true
    }

    /// Every entry (for listings).
    #[must_use]
    pub fn entries(&self) -> HashMap<IpAddr, [u8; 6]> {
        self.map.load().iter().map(|(a, m)| (*a, *m)).collect()
    }
}

/// Answer an ARP request in place when its target is an address `owns` accepts, learning the
/// sender on the way. Returns `Some(())` when the frame became a reply to transmit on the same
/// port, `None` when it is to be dropped (after learning, if it taught us something).
#[cold]
pub fn handle_arp(
    frame: &mut Frame<'_>,
    l3_off: usize,
    our_mac: [u8; 6],
    table: &NeighTable,
    owns: impl Fn(IpAddr) -> bool,
) -> Option<()> {
    let data = frame.data_mut();
    let (eth, rest) = data.split_at_mut(l3_off);
    let mut pkt = ArpPacket::new_checked(rest).ok()?;
    if pkt.hardware_type() != 1 || pkt.protocol_type() != ethertype::IPV4 {
        return None;
    }
    let (sha, spa, tpa) = (pkt.sender_hw(), pkt.sender_ip(), pkt.target_ip());
    if !spa.is_unspecified() {
        table.learn(IpAddr::V4(spa), sha);
    }
    if pkt.operation() != arp::OP_REQUEST || !owns(IpAddr::V4(tpa)) {
        return None;
    }
    pkt.set_operation(arp::OP_REPLY);
    pkt.set_sender_hw(our_mac);
    pkt.set_sender_ip(tpa);
    pkt.set_target_hw(sha);
    pkt.set_target_ip(spa);
    let mut e = EthernetFrame::new_unchecked(eth);
    e.set_dst_addr(sha);
    e.set_src_addr(our_mac);
    Some(())
}

/// Handle an ICMPv6 neighbour solicitation or advertisement: learn the link-layer address it
/// carries; answer a solicitation for an address `owns` accepts with an advertisement built in
/// place. Same return convention as [`handle_arp`].
#[cold]
pub fn handle_nd(
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    our_mac: [u8; 6],
    table: &NeighTable,
    owns: impl Fn(IpAddr) -> bool,
) -> Option<()> {
    let (IpAddr::V6(src), IpAddr::V6(_)) = (info.src, info.dst) else {
        return None;
    };
    if info.ttl != 255 {
        return None; // RFC 4861 7.1: on-link messages only
    }
    let nd = {
        let icmp = Icmpv6Packet::new_checked(frame.data().get(info.l4_off..info.l3_end())?).ok()?;
        NdiscRepr::parse(&icmp).ok()?
    };
    let (target, reply_to) = match nd {
        NdiscRepr::Advert {
            target,
            lladdr: Some(mac),
            ..
        } => {
            table.learn(IpAddr::V6(target), mac);
            return None;
        }
        NdiscRepr::Advert { .. } => return None,
        NdiscRepr::Solicit { target, lladdr } => {
            let dad = src.is_unspecified();
            if let (Some(mac), false) = (lladdr, dad) {
                table.learn(IpAddr::V6(src), mac);
            }
            if !owns(IpAddr::V6(target)) {
                return None;
            }
            let eth_src = EthernetFrame::new_checked(frame.data()).ok()?.src_addr();
            let to = if dad {
                Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)
            } else {
                src
            };
            let to_mac = if dad {
                [0x33, 0x33, 0, 0, 0, 1]
            } else {
                lladdr.unwrap_or(eth_src)
            };
            (target, (to, to_mac))
        }
    };
    let flags = na_flags::OVERRIDE
        | if reply_to.0.is_multicast() {
            0
        } else {
            na_flags::SOLICITED
        };
    let na = NdiscRepr::Advert {
        flags,
        target,
        lladdr: Some(our_mac),
    };
    let l3 = info.l3_off;
    frame
        .set_len(l3 + crate::wire::ipv6::HEADER_LEN + na.buffer_len())
        .ok()?;
    emit_nd(
        frame.data_mut(),
        l3,
        our_mac,
        reply_to.1,
        target,
        reply_to.0,
        &na,
    )
}

/// Write Ethernet (keeping a VLAN tag in place), IPv6 and an ND message from `l3` on.
fn emit_nd(
    data: &mut [u8],
    l3: usize,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    nd: &NdiscRepr,
) -> Option<()> {
    let (eth, ip) = data.split_at_mut(l3);
    let mut e = EthernetFrame::new_unchecked(eth);
    e.set_dst_addr(dst_mac);
    e.set_src_addr(src_mac);
    e.set_ethertype(ethertype::IPV6);
    let (hdr, body) = ip.split_at_mut(crate::wire::ipv6::HEADER_LEN);
    let repr = Ipv6Repr {
        src,
        dst,
        next_header: crate::flow::proto::ICMPV6,
        payload_len: nd.buffer_len(),
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
    };
    repr.emit(&mut Ipv6Packet::new_unchecked(hdr));
    let mut icmp = Icmpv6Packet::new_unchecked(body.get_mut(..nd.buffer_len())?);
    nd.emit(&mut icmp, &src, &dst);
    Some(())
}

/// Build an ARP request (IPv4) or neighbour solicitation (IPv6) for `addr` from `port` into
/// an empty frame. Returns false when the port has no address of that family.
#[cold]
pub fn build_request(
    frame: &mut Frame<'_>,
    our_mac: [u8; 6],
    routes: &Routes,
    port: u16,
    addr: IpAddr,
) -> bool {
    match addr {
        IpAddr::V4(target) => {
            let Some(src) = routes.src_v4(port) else {
                return false;
            };
            if frame
                .set_len(ethernet::HEADER_LEN + arp::PACKET_LEN)
                .is_err()
            {
                return false;
            }
            let (eth, body) = frame.data_mut().split_at_mut(ethernet::HEADER_LEN);
            let mut e = EthernetFrame::new_unchecked(eth);
            e.set_dst_addr([0xff; 6]);
            e.set_src_addr(our_mac);
            e.set_ethertype(ethertype::ARP);
            let mut a = ArpPacket::new_unchecked(body);
            a.set_ethernet_ipv4();
            a.set_operation(arp::OP_REQUEST);
            a.set_sender_hw(our_mac);
            a.set_sender_ip(src);
            a.set_target_hw([0; 6]);
            a.set_target_ip(target);
            true
        }
        IpAddr::V6(target) => {
            let Some(src) = routes.src_v6(port) else {
                return false;
            };
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
            let ns = NdiscRepr::Solicit {
                target,
                lladdr: Some(our_mac),
            };
            let len = ethernet::HEADER_LEN + crate::wire::ipv6::HEADER_LEN + ns.buffer_len();
            frame.set_len(len).is_ok()
                && emit_nd(
                    frame.data_mut(),
                    ethernet::HEADER_LEN,
                    our_mac,
                    dst_mac,
                    src,
                    dst,
                    &ns,
                )
                .is_some()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf() -> NetConf {
        NetConf {
            ports: vec![
                PortConf {
                    name: "a".into(),
                    mac: [2, 0, 0, 0, 0, 1],
                    addrs: vec![
                        PortAddr {
                            addr: "198.18.0.1".parse().unwrap(),
                            prefix: 24,
                        },
                        PortAddr {
                            addr: "fd00::1".parse().unwrap(),
                            prefix: 64,
                        },
                    ],
                    mtu: 1500,
                },
                PortConf {
                    name: "b".into(),
                    mac: [2, 0, 0, 0, 0, 2],
                    addrs: vec![PortAddr {
                        addr: "198.18.1.1".parse().unwrap(),
                        prefix: 24,
                    }],
                    mtu: 1500,
                },
            ],
            routes: vec![RouteConf {
                prefix: "10.0.0.0".parse().unwrap(),
                len: 8,
                gateway: "198.18.1.254".parse().unwrap(),
            }],
            neigh: vec![],
        }
    }

    #[test]
    fn longest_prefix_wins_and_gateways_resolve_to_their_port() {
        let r = Routes::new(&conf()).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            r.lookup(ip("198.18.0.7")),
            Some(NextHop {
                port: 0,
                via: ip("198.18.0.7")
            })
        );
        assert_eq!(
            r.lookup(ip("198.18.1.7")),
            Some(NextHop {
                port: 1,
                via: ip("198.18.1.7")
            })
        );
        assert_eq!(
            r.lookup(ip("10.1.2.3")),
            Some(NextHop {
                port: 1,
                via: ip("198.18.1.254")
            })
        );
        assert_eq!(
            r.lookup(ip("fd00::9")),
            Some(NextHop {
                port: 0,
                via: ip("fd00::9")
            })
        );
        assert_eq!(r.lookup(ip("192.0.2.1")), None);
        assert_eq!(r.src_v4(1), Some("198.18.1.1".parse().unwrap()));
    }

    #[test]
    fn a_gateway_off_link_is_refused() {
        let mut c = conf();
        c.routes[0].gateway = "192.0.2.1".parse().unwrap();
        assert_eq!(
            Routes::new(&c).unwrap_err(),
            NetError::GatewayNotOnLink("192.0.2.1".parse().unwrap())
        );
    }

    fn frame_of<'a>(chunk: &'a mut [u8], desc: &'a mut crate::io::Desc, bytes: &[u8]) -> Frame<'a> {
        let h = crate::io::HEADROOM;
        chunk[h..h + bytes.len()].copy_from_slice(bytes);
        *desc = crate::io::Desc {
            addr: h as u64,
            len: u32::try_from(bytes.len()).unwrap(),
            port: 0,
        };
        Frame::new(chunk, desc)
    }

    const OUR: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER: [u8; 6] = [2, 0, 0, 0, 0, 2];

    #[test]
    fn arp_request_for_an_owned_address_is_answered_in_place_and_the_sender_learned() {
        let req = crate::testutil::arp_request(
            PEER,
            "198.18.0.2".parse().unwrap(),
            "198.18.0.1".parse().unwrap(),
        );
        let (mut chunk, mut desc) = (vec![0u8; crate::io::CHUNK_SIZE], crate::io::Desc::default());
        let mut f = frame_of(&mut chunk, &mut desc, &req);
        let t = NeighTable::new(&[]);
        let owns = |a: IpAddr| a == "198.18.0.1".parse::<IpAddr>().unwrap();
        assert_eq!(handle_arp(&mut f, 14, OUR, &t, owns), Some(()));
        let out = f.data().to_vec();
        let e = EthernetFrame::new_checked(&out[..]).unwrap();
        assert_eq!((e.dst_addr(), e.src_addr()), (PEER, OUR));
        let a = ArpPacket::new_checked(&out[14..]).unwrap();
        assert_eq!(a.operation(), arp::OP_REPLY);
        assert_eq!(a.sender_hw(), OUR);
        assert_eq!(a.sender_ip(), "198.18.0.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(a.target_ip(), "198.18.0.2".parse::<Ipv4Addr>().unwrap());
        assert_eq!(
            t.load().get(&"198.18.0.2".parse::<IpAddr>().unwrap()),
            Some(&PEER)
        );
        // Not ours: learned, not answered.
        let req = crate::testutil::arp_request(
            PEER,
            "198.18.0.3".parse().unwrap(),
            "198.18.0.99".parse().unwrap(),
        );
        let mut f = frame_of(&mut chunk, &mut desc, &req);
        assert_eq!(handle_arp(&mut f, 14, OUR, &t, owns), None);
        assert!(
            t.load()
                .contains_key(&"198.18.0.3".parse::<IpAddr>().unwrap())
        );
    }

    #[test]
    fn neighbour_solicitation_gets_a_valid_advertisement() {
        let ns = crate::testutil::neighbor_solicit(
            PEER,
            "fd00::2".parse().unwrap(),
            "fd00::1".parse().unwrap(),
        );
        let (mut chunk, mut desc) = (vec![0u8; crate::io::CHUNK_SIZE], crate::io::Desc::default());
        let mut f = frame_of(&mut chunk, &mut desc, &ns);
        let crate::wire::Parsed::Ip(info) = crate::wire::parse_frame(f.data()).unwrap() else {
            panic!()
        };
        let t = NeighTable::new(&[]);
        let owns = |a: IpAddr| a == "fd00::1".parse::<IpAddr>().unwrap();
        assert_eq!(handle_nd(&mut f, &info, OUR, &t, owns), Some(()));
        let out = f.data().to_vec();
        crate::testutil::verify_checksums(&out).unwrap();
        let crate::wire::Parsed::Ip(o) = crate::wire::parse_frame(&out).unwrap() else {
            panic!()
        };
        assert_eq!(o.src, "fd00::1".parse::<IpAddr>().unwrap());
        assert_eq!(o.dst, "fd00::2".parse::<IpAddr>().unwrap());
        let icmp = Icmpv6Packet::new_checked(&out[o.l4_off..o.l3_end()]).unwrap();
        assert_eq!(
            NdiscRepr::parse(&icmp).unwrap(),
            NdiscRepr::Advert {
                flags: na_flags::SOLICITED | na_flags::OVERRIDE,
                target: "fd00::1".parse().unwrap(),
                lladdr: Some(OUR)
            }
        );
        assert_eq!(
            t.load().get(&"fd00::2".parse::<IpAddr>().unwrap()),
            Some(&PEER)
        );
    }

    #[test]
    fn requests_are_built_for_both_families() {
        let r = Routes::new(&conf()).unwrap();
        let (mut chunk, mut desc) = (vec![0u8; crate::io::CHUNK_SIZE], crate::io::Desc::default());
        let mut f = frame_of(&mut chunk, &mut desc, &[]);
        assert!(build_request(
            &mut f,
            OUR,
            &r,
            0,
            "198.18.0.7".parse().unwrap()
        ));
        let a = ArpPacket::new_checked(&f.data()[14..]).unwrap();
        assert_eq!(a.target_ip(), "198.18.0.7".parse::<Ipv4Addr>().unwrap());
        assert_eq!(a.sender_ip(), "198.18.0.1".parse::<Ipv4Addr>().unwrap());
        let mut f = frame_of(&mut chunk, &mut desc, &[]);
        assert!(build_request(
            &mut f,
            OUR,
            &r,
            0,
            "fd00::7".parse().unwrap()
        ));
        crate::testutil::verify_checksums(f.data()).unwrap();
        assert_eq!(&f.data()[..3], &[0x33, 0x33, 0xff]);
        // Port 1 has no IPv6 address: nothing to send from.
        let mut f = frame_of(&mut chunk, &mut desc, &[]);
        assert!(!build_request(
            &mut f,
            OUR,
            &r,
            1,
            "fd00::7".parse().unwrap()
        ));
    }

    #[test]
    fn statics_are_never_overwritten() {
        let a: IpAddr = "198.18.0.9".parse().unwrap();
        let t = NeighTable::new(&[(a, [2, 0, 0, 0, 0, 9])]);
        assert!(!t.learn(a, [2, 0, 0, 0, 0, 8]));
        let b: IpAddr = "198.18.0.10".parse().unwrap();
        assert!(t.learn(b, [2, 0, 0, 0, 0, 10]));
        assert!(!t.learn(b, [2, 0, 0, 0, 0, 10]));
        assert_eq!(t.load().get(&a), Some(&[2, 0, 0, 0, 0, 9]));
        assert_eq!(t.load().get(&b), Some(&[2, 0, 0, 0, 0, 10]));
    }
}
