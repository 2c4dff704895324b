//! Flow keys: the 5-tuple a packet is looked up by, and the direction of a packet relative to
//! its connection.
//!
//! Addresses are host-order `IpAddr`s: network byte order never leaves `wire`. A `FlowKey` is
//! always written as the packet carries it (source first), never normalised.

use std::net::IpAddr;

/// IP protocol numbers used by the data plane.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IPv4-in-IPv4 (IPIP).
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulation (6in4 / 6in6).
    pub const IPV6: u8 = 41;
    /// GRE.
    pub const GRE: u8 = 47;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// A packet's 5-tuple as it appears on the wire (source first).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// IP protocol number ([`proto`]).
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 for protocols without ports).
    pub sport: u16,
    /// Destination port (0 for protocols without ports).
    pub dport: u16,
}

impl FlowKey {
    /// The key of the reply direction.
    #[inline]
    #[must_use]
    pub fn reversed(&self) -> Self {
        Self {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }
}

/// Direction of a packet relative to its connection (IPVS's `IP_VS_DIR_*`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Dir {
    /// Client to real server (the first packet's direction).
    Input = 0,
    /// Real server to client (the reply direction, seen only in NAT and FULLNAT).
    Output = 1,
}

/// The addresses of one connection in IPVS's terms, written once when the conn is created.
///
/// Client `caddr:cport` talks to the service at `vaddr:vport`; the conn is forwarded to the
/// dest `daddr:dport`. FULLNAT conns also carry the local `laddr:lport` the client is translated
/// to; other modes leave `laddr:lport` equal to `caddr:cport`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnTuple {
    /// IP protocol number.
    pub proto: u8,
    /// Client address (CIP).
    pub caddr: IpAddr,
    /// Virtual address (VIP).
    pub vaddr: IpAddr,
    /// Dest address (RIP).
    pub daddr: IpAddr,
    /// Local address (LIP, FULLNAT only).
    pub laddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual port.
    pub vport: u16,
    /// Dest port.
    pub dport: u16,
    /// Local port (FULLNAT only).
    pub lport: u16,
}

impl ConnTuple {
    /// The key of packets client -> director.
    #[inline]
    #[must_use]
    pub fn in_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: self.caddr,
            dst: self.vaddr,
            sport: self.cport,
            dport: self.vport,
        }
    }

    /// The key of reply packets dest -> director (NAT: to the client; FULLNAT: to the LIP).
    #[inline]
    #[must_use]
    pub fn out_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: self.daddr,
            dst: self.laddr,
            sport: self.dport,
            dport: self.lport,
        }
    }
}
