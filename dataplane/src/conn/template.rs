//! Persistence templates: how the kernel keys them (`ip_vs_sched_persist` in `ip_vs_core.c`).
//!
//! A template is a conn entry with the TEMPLATE flag, client port 0 and the client address
//! masked by the service's `-M` netmask (IPv4 mask, or an IPv6 prefix length). Its virtual part:
//! - a packet to the service's own port (`dst_port == svc port`): protocol, VIP and that port,
//!   except for FTP (port 21) whose templates use port 0 so the data conns share it;
//! - otherwise (port-0 services, fwmark services): port 0; a fwmark service also replaces the
//!   protocol with `IPPROTO_IP` (0) and the VIP with the mark written into the address's first
//!   four bytes (the kernel's `union nf_inet_addr fwmark = { .ip = htonl(svc->fwmark) }`).
//!
//! The template's dest port is the dest's port when the packet went to the service port (and
//! not FTP), else 0. Lookups compare protocol, masked client address, client port 0, virtual
//! address and virtual port, never the dest. Liveness and refresh rules live in `table.rs`.
//! Never: key a template by anything the kernel does not.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::service::{ServiceConf, ServiceKey};

/// The FTP control port, special-cased by the kernel's persistence code.
pub const FTPPORT: u16 = 21;

/// What a persistence template is looked up by.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    /// IP protocol (0 for fwmark services).
    pub proto: u8,
    /// Client address masked by `-M`.
    pub caddr: IpAddr,
    /// Virtual address (or the fwmark as an address).
    pub vaddr: IpAddr,
    /// Virtual port (0 for port-0, FTP and fwmark services).
    pub vport: u16,
}

impl TemplateKey {
    /// The key of the template for a packet `caddr -> vaddr:dst_port` of protocol `proto` to the
    /// persistent service `svc`.
    #[must_use]
    pub fn new(svc: &ServiceConf, proto: u8, caddr: IpAddr, vaddr: IpAddr, dst_port: u16) -> Self {
        let caddr = mask_addr(caddr, svc.netmask);
        let svc_port = svc_port(svc);
        if dst_port == svc_port {
            let vport = if svc_port == FTPPORT { 0 } else { dst_port };
            return Self {
                proto,
                caddr,
                vaddr,
                vport,
            };
        }
        match svc.key {
            ServiceKey::Fwmark { mark, .. } => Self {
                proto: 0,
                caddr,
                vaddr: fwmark_addr(&caddr, mark),
                vport: 0,
            },
            ServiceKey::Inet { .. } => Self {
                proto,
                caddr,
                vaddr,
                vport: 0,
            },
        }
    }

    /// The dest port a new template stores (`dport` in `ip_vs_sched_persist`).
    #[must_use]
    pub fn template_dport(svc: &ServiceConf, dst_port: u16, dest_port: u16) -> u16 {
        let p = svc_port(svc);
        if dst_port == p && p != FTPPORT {
            dest_port
        } else {
            0
        }
    }
}

/// The service's port (0 for fwmark services).
fn svc_port(svc: &ServiceConf) -> u16 {
    match svc.key {
        ServiceKey::Inet { port, .. } => port,
        ServiceKey::Fwmark { .. } => 0,
    }
}

/// The fwmark written as an address of `like`'s family (first four bytes, big endian).
#[must_use]
pub fn fwmark_addr(like: &IpAddr, mark: u32) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(mark)),
        IpAddr::V6(_) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&mark.to_be_bytes());
            IpAddr::V6(Ipv6Addr::from(b))
        }
    }
}

/// `addr` masked by a service netmask: an IPv4 mask (host order) for IPv4, a prefix length
/// for IPv6 (values above 128 keep the whole address).
#[must_use]
pub fn mask_addr(addr: IpAddr, netmask: u32) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(a.to_bits() & netmask)),
        IpAddr::V6(a) => {
            let plen = netmask.min(128);
            let mask = if plen == 0 {
                0
            } else {
                u128::MAX << (128 - plen)
            };
            IpAddr::V6(Ipv6Addr::from(a.to_bits() & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::proto;
    use crate::service::{Family, Protocol, svc_flags};

    fn svc(key: ServiceKey, netmask: u32) -> ServiceConf {
        ServiceConf {
            key,
            sched_name: "wlc".into(),
            flags: svc_flags::PERSISTENT,
            timeout_s: 300,
            netmask,
            pe_name: None,
            dests: Vec::new(),
            laddrs: Vec::new(),
        }
    }

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn inet_service_keys() {
        let vip = v4("198.18.0.1");
        let s = svc(
            ServiceKey::Inet {
                proto: Protocol::Tcp,
                addr: vip,
                port: 80,
            },
            0xffff_ff00,
        );
        let k = TemplateKey::new(&s, proto::TCP, v4("10.1.2.3"), vip, 80);
        assert_eq!(k.caddr, v4("10.1.2.0"));
        assert_eq!((k.proto, k.vaddr, k.vport), (proto::TCP, vip, 80));
        // Two clients in the same /24 share the key; one outside does not.
        assert_eq!(
            k,
            TemplateKey::new(&s, proto::TCP, v4("10.1.2.200"), vip, 80)
        );
        assert_ne!(k, TemplateKey::new(&s, proto::TCP, v4("10.1.3.3"), vip, 80));
        assert_eq!(TemplateKey::template_dport(&s, 80, 8080), 8080);

        let ftp = svc(
            ServiceKey::Inet {
                proto: Protocol::Tcp,
                addr: vip,
                port: FTPPORT,
            },
            u32::MAX,
        );
        let k = TemplateKey::new(&ftp, proto::TCP, v4("10.1.2.3"), vip, FTPPORT);
        assert_eq!((k.vport, k.caddr), (0, v4("10.1.2.3")));
        assert_eq!(TemplateKey::template_dport(&ftp, FTPPORT, 21), 0);

        let p0 = svc(
            ServiceKey::Inet {
                proto: Protocol::Udp,
                addr: vip,
                port: 0,
            },
            u32::MAX,
        );
        let k = TemplateKey::new(&p0, proto::UDP, v4("10.1.2.3"), vip, 53);
        assert_eq!((k.proto, k.vport), (proto::UDP, 0));
        assert_eq!(TemplateKey::template_dport(&p0, 53, 0), 0);
    }

    #[test]
    fn fwmark_and_v6_keys() {
        let s = svc(
            ServiceKey::Fwmark {
                family: Family::V4,
                mark: 7,
            },
            u32::MAX,
        );
        let k = TemplateKey::new(&s, proto::TCP, v4("10.0.0.9"), v4("198.18.0.1"), 443);
        assert_eq!((k.proto, k.vaddr, k.vport), (0, v4("0.0.0.7"), 0));

        let c6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let s6 = svc(
            ServiceKey::Fwmark {
                family: Family::V6,
                mark: 0x0102_0304,
            },
            64,
        );
        let k = TemplateKey::new(&s6, proto::UDP, c6, "2001:db8::1".parse().unwrap(), 53);
        assert_eq!(k.caddr, "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!(k.vaddr, "102:304::".parse::<IpAddr>().unwrap());
        assert_eq!(mask_addr(c6, 128), c6);
        assert_eq!(mask_addr(c6, 0), "::".parse::<IpAddr>().unwrap());
    }
}
