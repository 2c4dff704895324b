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
                },
                PortConf {
                    name: "b".into(),
                    mac: [2, 0, 0, 0, 0, 2],
                    addrs: vec![PortAddr {
                        addr: "198.18.1.1".parse().unwrap(),
                        prefix: 24,
                    }],
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
