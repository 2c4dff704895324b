//! The connection table: every tracked conn and persistence template, shared by all workers.
//!
//! IPVS semantics: one table keyed the kernel's way (by protocol and client endpoint), with
//! conns found from both directions (client -> VIP and, for NAT/FULLNAT, dest -> client/LIP),
//! the kernel's TCP state table and timeouts ([`state`]), ActiveConn/InActConn/PersistConn
//! accounting on the dest ([`crate::service::DestState`]), persistence templates that live while
//! they control conns ([`template`]), and one-packet (`-o`) UDP conns that are never inserted.
//! `conn_tab_bits` keeps its IPVS meaning (2^bits hash buckets, shown as `(size=N)`); the
//! maximum number of entries is a separate limit with a counted drop when reached.
//!
//! Layout ([`table`]): 64 shards, each a spin lock held for one lookup or insert (never across a
//! burst) over a slab of conns and an index of slab slots ([`index`]). A conn is
//! indexed by its client-side endpoint in its *home shard*; FULLNAT local ports are chosen
//! ([`port`]) so the reply endpoint `(LIP, lport)` maps to the same shard, and each worker takes
//! ports from its own range.
//!
//! Invariants: an entry is in the index iff its slot is live (templates invalidated by
//! `expire_quiescent_template` or a gone dest are unindexed but kept until they expire); the
//! global count equals the number of live slots; a dest's counters reflect exactly the live
//! conns bound to it. Never: hold two shard locks at once (but the two of a pair lookup, taken
//! in shard order), hold a lock across a burst, allocate on lookup, or sweep the whole table
//! in one call.

pub(crate) mod index;
pub mod port;
pub mod state;
pub mod table;
pub mod template;

use std::net::IpAddr;
use std::sync::Arc;

use crate::flow::{ConnTuple, Dir};
use crate::service::{DestState, FwdMode, ServiceState, TunConf};
use crate::stats::DropReason;

pub use table::{ConnTable, Defence, DefenceMode};
pub use template::TemplateKey;

/// Errors creating conns or building the table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnError {
    /// `conn_tab_bits` outside 8..=20.
    #[error("conn_tab_bits {0} not in [8, 20]")]
    BadBits(u8),
    /// The table holds `max_conns` entries.
    #[error("connection table full")]
    Full,
    /// No FULLNAT local port left in the worker's range for that local address.
    #[error("no local port left")]
    NoLocalPort,
    /// The addresses of one conn are not all of one family.
    #[error("mixed address families in one conn")]
    Family,
    /// Refused by the SYN-flood defence (`drop_packet`).
    #[error("new connection dropped by the flood defence")]
    Defence,
}

impl ConnError {
    /// The drop reason a worker counts for this error.
    #[must_use]
    pub const fn drop_reason(&self) -> DropReason {
        match self {
            Self::NoLocalPort => DropReason::NoLocalPort,
            Self::Family => DropReason::Malformed,
            Self::Defence => DropReason::Defence,
            Self::BadBits(_) | Self::Full => DropReason::ConnTableFull,
        }
    }
}

/// Conn flags as stored and reported (a subset of the kernel's `IP_VS_CONN_F_*`, own values).
pub mod conn_flags {
    /// The slot holds a conn (internal).
    pub const LIVE: u8 = 0x01;
    /// A persistence template.
    pub const TEMPLATE: u8 = 0x02;
    /// Counted in InActConn (not ActiveConn).
    pub const INACTIVE: u8 = 0x04;
    /// No reply seen yet; set for every non-NAT conn (the kernel's NO_OUTPUT).
    pub const NOOUTPUT: u8 = 0x08;
    /// One-packet conn (`-o`, UDP): never inserted.
    pub const ONE_PACKET: u8 = 0x10;
    /// An invalidated template, no longer indexed, kept until it expires.
    pub const UNHASHED: u8 = 0x20;
    /// FULLNAT: a separate reply index entry and an allocated local port.
    pub const FNAT: u8 = 0x40;
}

/// What the rewrite of a packet of a found (or just created) conn needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Direction of the packet.
    pub dir: Dir,
    /// The conn's addresses.
    pub tuple: ConnTuple,
    /// Forwarding mode.
    pub fwd: FwdMode,
    /// Tunnel settings (meaningful for [`FwdMode::Tunnel`]).
    pub tun: TunConf,
    /// Protocol state after this packet ([`state`] values).
    pub state: u8,
    /// [`conn_flags`] after this packet.
    pub flags: u8,
    /// Whether the conn's dest is still configured (the kernel drops packets of conns whose
    /// dest is gone: `ip_vs_in` checks `IP_VS_DEST_F_AVAILABLE`).
    pub dest_available: bool,
}

/// An IPv4 packet's 5-tuple for the fast path ([`ConnTable::lookup_v4`]): host-order
/// addresses, as the packet carries them (source first).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FlowKeyV4 {
    /// IP protocol number.
    pub proto: u8,
    /// Source address.
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// [`Hit`] of an IPv4 conn, without `IpAddr`s: what the worker's IPv4 fast path rewrites from
/// (a `Copy` of 40 bytes instead of a `Hit` of about 90).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HitV4 {
    /// Direction of the packet.
    pub dir: Dir,
    /// Forwarding mode and tunnel settings in the conn's packed form: [`Self::fwd`] decodes the
    /// mode, [`Self::tun`] the tunnel kind and flags (only when a tunnel is built).
    fwd_bits: u8,
    tun_port: u16,
    /// Protocol state after this packet.
    pub state: u8,
    /// [`conn_flags`] after this packet.
    pub flags: u8,
    /// Whether the conn's dest is still configured (see [`Hit::dest_available`]).
    pub dest_available: bool,
    /// Client, virtual, dest and local addresses (host order).
    pub addrs: [u32; 4],
    /// Client, virtual, dest and local ports.
    pub ports: [u16; 4],
    /// IP protocol number.
    pub proto: u8,
    /// Where the conn is stored (shard and slot), [`NOT_STORED`] for a one-packet conn.
    pub(crate) at: u32,
}

/// [`HitV4::at`] of a conn that is not in the table (one-packet UDP).
pub(crate) const NOT_STORED: u32 = u32::MAX;

/// A found IPv4 conn as a worker's flow cache keeps it, to run later packets of the flow
/// through that conn without looking it up ([`ConnTable::touch_v4`]): where the conn is stored
/// and everything that identifies it (all four endpoints, protocol, forwarding mode). The
/// table checks the slot still holds a conn with exactly this identity before using it, so a
/// reference that outlived its conn (removed, or its slot reused) is refused, never misapplied.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnRefV4 {
    pub(crate) at: u32,
    /// Client, virtual, dest and local addresses (host order).
    pub addrs: [u32; 4],
    /// Client, virtual, dest and local ports.
    pub ports: [u16; 4],
    /// IP protocol number.
    pub proto: u8,
    pub(crate) fwd_bits: u8,
}

/// An IPv4 lookup that found no conn: where the packet's conn would be indexed (shard, bucket
/// hash) and what the index held then (its generation). Handed back to
/// [`ConnTable::create_v4`] for the same packet, it spares creation the second probe that would
/// otherwise check no other worker created the conn meanwhile: when the shard's index is
/// unchanged, nobody did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MissV4 {
    pub(crate) shard: usize,
    pub(crate) hash: u64,
    pub(crate) version: u64,
}

impl ConnRefV4 {
    /// The forwarding mode.
    #[inline]
    #[must_use]
    pub fn fwd(&self) -> FwdMode {
        table::fwd_of(self.fwd_bits)
    }

    /// Whether `k` is this conn's client -> VIP key.
    #[inline(always)]
    #[must_use]
    pub fn is_in_key(&self, k: &FlowKeyV4) -> bool {
        self.addrs[0] == k.src
            && self.addrs[1] == k.dst
            && self.ports[0] == k.sport
            && self.ports[1] == k.dport
            && self.proto == k.proto
    }
}

impl HitV4 {
    /// A reference to the conn for [`ConnTable::touch_v4`]; `None` for a conn that is not
    /// stored.
    #[inline]
    #[must_use]
    pub fn conn_ref(&self) -> Option<ConnRefV4> {
        (self.at != NOT_STORED).then_some(ConnRefV4 {
            at: self.at,
            addrs: self.addrs,
            ports: self.ports,
            proto: self.proto,
            fwd_bits: self.fwd_bits,
        })
    }

    /// The forwarding mode.
    #[inline]
    #[must_use]
    pub fn fwd(&self) -> FwdMode {
        table::fwd_of(self.fwd_bits)
    }

    /// The tunnel settings (meaningful for [`FwdMode::Tunnel`]).
    #[must_use]
    pub fn tun(&self) -> TunConf {
        table::unpack_tun(self.fwd_bits, self.tun_port)
    }

    /// The general form, for the paths the fast path hands over to.
    #[must_use]
    pub fn to_hit(&self) -> Hit {
        let ip = |i: usize| IpAddr::V4(std::net::Ipv4Addr::from_bits(self.addrs[i]));
        Hit {
            dir: self.dir,
            tuple: ConnTuple {
                proto: self.proto,
                caddr: ip(0),
                vaddr: ip(1),
                daddr: ip(2),
                laddr: ip(3),
                cport: self.ports[0],
                vport: self.ports[1],
                dport: self.ports[2],
                lport: self.ports[3],
            },
            fwd: self.fwd(),
            tun: self.tun(),
            state: self.state,
            flags: self.flags,
            dest_available: self.dest_available,
        }
    }
}

/// A reservation on a persistence template: the template cannot expire while one is held.
///
/// Returned by [`ConnTable::template_lookup`] and [`ConnTable::template_create`]; hand it to
/// [`ConnTable::create`] in [`NewConn::control`] (the new conn becomes controlled by the
/// template) or give it back with [`ConnTable::template_put`]. Not `Clone`: exactly one use.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct TemplateRef(pub(crate) u32);

/// A valid template found for a new conn.
#[derive(Debug)]
pub struct TemplateHit {
    /// The reservation (see [`TemplateRef`]).
    pub tref: TemplateRef,
    /// The dest the template sends the client to.
    pub dest: Arc<DestState>,
    /// That dest's address.
    pub daddr: IpAddr,
    /// The template's dest port (0 for port-0, FTP and fwmark services: use the dest's).
    pub dport: u16,
}

/// A conn to create.
#[derive(Debug)]
pub struct NewConn {
    /// Addresses. Non-FULLNAT conns get `laddr:lport = caddr:cport`; FULLNAT conns keep
    /// `laddr` and get `lport` allocated from the creating worker's range (the given value is
    /// ignored).
    pub tuple: ConnTuple,
    /// Forwarding mode of the dest.
    pub fwd: FwdMode,
    /// Tunnel settings of the dest.
    pub tun: TunConf,
    /// The dest (ActiveConn/InActConn counted on it).
    pub dest: Arc<DestState>,
    /// The service (per-worker packet counters).
    pub svc: Arc<ServiceState>,
    /// The controlling template, if the service is persistent.
    pub control: Option<TemplateRef>,
    /// One-packet scheduling (`-o`); honoured for UDP only, as the kernel does.
    pub one_packet: bool,
    /// TCP flags of the packet creating the conn (runs the first state transition).
    pub tcp_flags: u8,
    /// Length of that packet (counted in the in-bytes).
    pub len: u32,
}

/// One entry as `ipvsadm -Lnc` lists it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// IP protocol (0 for fwmark templates: ipvsadm prints "IP").
    pub proto: u8,
    /// A persistence template.
    pub template: bool,
    /// Forwarding mode.
    pub fwd: FwdMode,
    /// State value.
    pub state: u8,
    /// State name as ipvsadm prints it.
    pub state_name: &'static str,
    /// Milliseconds until expiry (0 if already due).
    pub expires_in_ms: u64,
    /// Client address (masked for templates).
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address (the fwmark as an address for fwmark templates).
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Dest address.
    pub daddr: IpAddr,
    /// Dest port.
    pub dport: u16,
    /// Local address (FULLNAT; else the client's).
    pub laddr: IpAddr,
    /// Local port (FULLNAT; else the client's).
    pub lport: u16,
    /// For templates: conns it controls; for conns: 1 if controlled by a template.
    pub control: u32,
}
