//! Services, dests and the immutable configuration snapshot workers run on.
//!
//! Two layers live here. The *configuration model* ([`Config`], [`ServiceConf`], [`DestConf`]) is
//! plain data in ipvsadm's terms; the control plane edits it (with the kernel's validation rules,
//! see `xvs-control`) and keeps dests in the kernel's list order. The *runtime* side
//! ([`Snapshot`], [`Service`], [`Dest`]) is built from a `Config` by [`Snapshot::build`]: schedulers
//! rebuilt, lookups indexed, and each dest bound to its [`DestState`].
//!
//! Invariants: a `Snapshot` is immutable once published; workers adopt a new one between
//! bursts. A dest's identity ([`DestId`] and its `Arc<DestState>`) survives every edit of the
//! dest, so its counters and the conns bound to it are kept. `DestState` is the only shared mutable
//! dest data: conn counters and the overload flag change on conn bind/unbind/state change (never
//! per packet); packet counters are per worker slots written only by their owner.
//! Never: allocate or lock in anything a worker calls per packet.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use crate::flow::proto;
use crate::sched::AnyScheduler;

/// Service flags as the kernel defines them (`IP_VS_SVC_F_*`).
pub mod svc_flags {
    /// Persistent service (`-p`).
    pub const PERSISTENT: u32 = 0x0001;
    /// Hashed entry (kernel-internal, shown by nothing but kept for fidelity).
    pub const HASHED: u32 = 0x0002;
    /// One-packet scheduling (`-o`).
    pub const ONEPACKET: u32 = 0x0004;
    /// Scheduler flag 1 (sh-fallback, mh-fallback).
    pub const SCHED1: u32 = 0x0008;
    /// Scheduler flag 2 (sh-port, mh-port).
    pub const SCHED2: u32 = 0x0010;
    /// Scheduler flag 3.
    pub const SCHED3: u32 = 0x0020;
}

/// Transport protocol of a virtual service.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (`-t`).
    Tcp,
    /// UDP (`-u`).
    Udp,
    /// SCTP (`--sctp-service`).
    Sctp,
}

impl Protocol {
    /// IP protocol number.
    #[must_use]
    pub const fn number(self) -> u8 {
        match self {
            Self::Tcp => proto::TCP,
            Self::Udp => proto::UDP,
            Self::Sctp => proto::SCTP,
        }
    }

    /// From an IP protocol number.
    #[must_use]
    pub const fn from_number(n: u8) -> Option<Self> {
        match n {
            proto::TCP => Some(Self::Tcp),
            proto::UDP => Some(Self::Udp),
            proto::SCTP => Some(Self::Sctp),
            _ => None,
        }
    }
}

/// Address family.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 (`AF_INET`).
    V4,
    /// IPv6 (`AF_INET6`).
    V6,
}

impl Family {
    /// The family of an address.
    #[must_use]
    pub const fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }
}

/// What identifies a virtual service.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    /// proto + VIP + port (`-t/-u/--sctp-service addr:port`).
    Inet {
        /// Transport protocol.
        proto: Protocol,
        /// Virtual IP.
        addr: IpAddr,
        /// Virtual port (0 = all ports, persistent services only).
        port: u16,
    },
    /// A firewall-mark service (`-f mark`, with `-6` for IPv6).
    Fwmark {
        /// Address family of the service.
        family: Family,
        /// The mark.
        mark: u32,
    },
}

impl ServiceKey {
    /// Address family of the service.
    #[must_use]
    pub const fn family(&self) -> Family {
        match self {
            Self::Inet { addr, .. } => Family::of(addr),
            Self::Fwmark { family, .. } => *family,
        }
    }
}

/// Forwarding mode of a dest (`IP_VS_CONN_F_FWD_MASK` values plus FULLNAT).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum FwdMode {
    /// NAT (`-m`), shown as "Masq".
    Masq,
    /// Local node, shown as "Local" (the kernel picks it for a dest address owned by the
    /// director; xvs delivers nothing locally and treats it like DR).
    Local,
    /// IP tunnelling (`-i`), shown as "Tunnel".
    Tunnel,
    /// Direct routing (`-g`, the default), shown as "Route".
    #[default]
    Route,
    /// Full NAT (`--fullnat`), shown as "FullNat".
    FullNat,
}

/// Tunnel encapsulation type (`--tun-type`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum TunType {
    /// IP in IP (the default).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation (needs `--tun-port`).
    Gue,
    /// GRE.
    Gre,
}

/// Tunnel checksum flags (`IP_VS_TUNNEL_ENCAP_FLAG_*`).
pub mod tun_flags {
    /// No checksum (`--tun-nocsum`, the default).
    pub const NOCSUM: u16 = 0;
    /// Checksum (`--tun-csum`).
    pub const CSUM: u16 = 1 << 0;
    /// Remote checksum offload (`--tun-remcsum`).
    pub const REMCSUM: u16 = 1 << 1;
}

/// Tunnel settings of a `-i` dest.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct TunConf {
    /// Encapsulation.
    pub kind: TunType,
    /// Destination UDP port for GUE (`--tun-port`), 0 otherwise.
    pub port: u16,
    /// [`tun_flags`] bits.
    pub flags: u16,
}

/// A real server as configured (`-a/-e -r addr:port ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestConf {
    /// Real server address (RIP).
    pub addr: IpAddr,
    /// Real server port.
    pub port: u16,
    /// Forwarding mode.
    pub fwd: FwdMode,
    /// Weight (`-w`, default 1; 0 quiesces).
    pub weight: i32,
    /// Upper connection threshold (`-x`, 0 = none).
    pub u_threshold: u32,
    /// Lower connection threshold (`-y`, 0 = none).
    pub l_threshold: u32,
    /// Tunnel settings (used with [`FwdMode::Tunnel`]).
    pub tun: TunConf,
}

/// A virtual service as configured (`-A/-E ...`), with its dests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConf {
    /// What identifies the service.
    pub key: ServiceKey,
    /// Scheduler name as given to `-s` (e.g. "wlc").
    pub sched_name: String,
    /// [`svc_flags`] bits.
    pub flags: u32,
    /// Persistence timeout in seconds (`-p`), meaningful with [`svc_flags::PERSISTENT`].
    pub timeout_s: u32,
    /// Persistence netmask (`-M`): an IPv4 mask in host order for IPv4 services, a prefix length
    /// (1..=128) for IPv6 ones.
    pub netmask: u32,
    /// Persistence engine name (`--pe`), if any.
    pub pe_name: Option<String>,
    /// Dests in the kernel's list order (the order schedulers walk).
    pub dests: Vec<DestConf>,
    /// FULLNAT local addresses (`--add-laddr`), in the order they were added.
    pub laddrs: Vec<IpAddr>,
}

/// The protocol timeouts `--set tcp tcpfin udp` changes, in seconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP ESTABLISHED timeout (default 900).
    pub tcp: u32,
    /// TCP FIN_WAIT timeout (default 120).
    pub tcp_fin: u32,
    /// UDP timeout (default 300).
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }
    }
}

/// The whole configuration the control plane edits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Services in the order they were added.
    pub services: Vec<ServiceConf>,
    /// Protocol timeouts.
    pub timeouts: Timeouts,
}

/// Stable identity of a dest across snapshots (an index into the dest registry).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestId(pub u32);

/// Stable identity of a service across snapshots.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub u32);

/// Dest flags (`IP_VS_DEST_F_*`).
pub mod dest_flags {
    /// The dest is in its service (cleared when deleted; conns may still point at it).
    pub const AVAILABLE: u32 = 0x0001;
    /// The dest is overloaded (thresholds).
    pub const OVERLOAD: u32 = 0x0002;
}

/// Packet and connection counters, one set per worker (the kernel's per-cpu `ip_vs_counters`).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Counters {
    /// Connections scheduled.
    pub conns: AtomicU64,
    /// Packets client -> server.
    pub inpkts: AtomicU64,
    /// Packets server -> client.
    pub outpkts: AtomicU64,
    /// Bytes client -> server.
    pub inbytes: AtomicU64,
    /// Bytes server -> client.
    pub outbytes: AtomicU64,
}

impl Counters {
    /// Add to a counter owned by the calling worker: a plain load and store, no atomic
    /// read-modify-write, because exactly one worker writes each slot.
    #[inline]
    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(by),
            Ordering::Relaxed,
        );
    }

    /// A plain-value copy.
    #[must_use]
    pub fn read(&self) -> CounterValues {
        CounterValues {
            conns: self.conns.load(Ordering::Relaxed),
            inpkts: self.inpkts.load(Ordering::Relaxed),
            outpkts: self.outpkts.load(Ordering::Relaxed),
            inbytes: self.inbytes.load(Ordering::Relaxed),
            outbytes: self.outbytes.load(Ordering::Relaxed),
        }
    }
}

/// A plain copy of [`Counters`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterValues {
    /// Connections.
    pub conns: u64,
    /// Incoming packets.
    pub inpkts: u64,
    /// Outgoing packets.
    pub outpkts: u64,
    /// Incoming bytes.
    pub inbytes: u64,
    /// Outgoing bytes.
    pub outbytes: u64,
}

impl std::ops::AddAssign for CounterValues {
    fn add_assign(&mut self, o: Self) {
        self.conns = self.conns.wrapping_add(o.conns);
        self.inpkts = self.inpkts.wrapping_add(o.inpkts);
        self.outpkts = self.outpkts.wrapping_add(o.outpkts);
        self.inbytes = self.inbytes.wrapping_add(o.inbytes);
        self.outbytes = self.outbytes.wrapping_add(o.outbytes);
    }
}

/// Per-worker counter slots; worker `i` writes only `slot(i)`, the control plane sums them.
#[derive(Debug)]
pub struct PerWorkerCounters(Box<[Counters]>);

impl PerWorkerCounters {
    /// Slots for `workers` workers (at least one).
    #[must_use]
    pub fn new(workers: usize) -> Self {
        Self((0..workers.max(1)).map(|_| Counters::default()).collect())
    }

    /// The slot of worker `w` (a worker beyond the count, which the runtime never creates, uses slot 0).
    #[inline]
    #[must_use]
    pub fn slot(&self, w: usize) -> &Counters {
        // PERF: `get` + fallback instead of `w % len` (a division per packet showed as ~29
        // instructions in the callgrind profile of examples/pipeline_cost).
        self.0.get(w).unwrap_or(&self.0[0])
    }

    /// Sum over all workers.
    #[must_use]
    pub fn sum(&self) -> CounterValues {
        let mut total = CounterValues::default();
        for c in self.0.iter() {
            total += c.read();
        }
        total
    }

    /// Zero every slot (`-Z`). Racy against concurrent bumps by design, as in the kernel.
    pub fn zero(&self) {
        for c in self.0.iter() {
            for a in [&c.conns, &c.inpkts, &c.outpkts, &c.inbytes, &c.outbytes] {
                a.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// The shared, mutable part of a dest (the kernel's `struct ip_vs_dest` counters and flags).
///
/// Conn counts change when a conn binds, unbinds or crosses the active/inactive boundary; that
/// is per connection, not per packet, so atomics are fine here.
#[derive(Debug)]
pub struct DestState {
    /// Active connections (ActiveConn).
    pub activeconns: AtomicU32,
    /// Inactive connections (InActConn).
    pub inactconns: AtomicU32,
    /// Persistence templates (PersistConn).
    pub persistconns: AtomicU32,
    /// [`dest_flags`] bits.
    pub flags: AtomicU32,
    /// Current weight (mirrors the snapshot; read by conn code after the dest left the snapshot).
    pub weight: AtomicI32,
    /// The kernel's `last_weight`: the latest non-zero weight (or the weight the dest was added
    /// with). The mh scheduler sizes a quiesced dest's table share by it. Set through
    /// [`DestState::set_weight`].
    pub last_weight: AtomicI32,
    /// Upper threshold (`-x`).
    pub u_threshold: AtomicU32,
    /// Lower threshold (`-y`).
    pub l_threshold: AtomicU32,
    /// Packet counters per worker.
    pub stats: PerWorkerCounters,
    /// Rate estimator (control plane only; workers never touch it).
    pub est: std::sync::Mutex<crate::stats::RateEstimator>,
}

impl DestState {
    /// A fresh, available dest with the given settings.
    #[must_use]
    pub fn new(conf: &DestConf, workers: usize) -> Self {
        Self {
            activeconns: AtomicU32::new(0),
            inactconns: AtomicU32::new(0),
            persistconns: AtomicU32::new(0),
            flags: AtomicU32::new(dest_flags::AVAILABLE),
            weight: AtomicI32::new(conf.weight),
            last_weight: AtomicI32::new(conf.weight),
            u_threshold: AtomicU32::new(conf.u_threshold),
            l_threshold: AtomicU32::new(conf.l_threshold),
            stats: PerWorkerCounters::new(workers),
            est: std::sync::Mutex::default(),
        }
    }

    /// Record an edited weight (`__ip_vs_update_dest`): `weight` always, `last_weight` only when
    /// the new weight is non-zero ("keep the last_weight with latest non-0 weight").
    pub fn set_weight(&self, w: i32) {
        if w != 0 {
            self.last_weight.store(w, Ordering::Relaxed);
        }
        self.weight.store(w, Ordering::Relaxed);
    }

    /// Active + inactive conns (`ip_vs_dest_totalconns`; templates do not count).
    #[inline]
    #[must_use]
    pub fn totalconns(&self) -> u32 {
        self.activeconns
            .load(Ordering::Relaxed)
            .wrapping_add(self.inactconns.load(Ordering::Relaxed))
    }

    /// Whether the overload flag is set.
    #[inline]
    #[must_use]
    pub fn is_overloaded(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & dest_flags::OVERLOAD != 0
    }

    /// Whether the dest is still part of its service.
    #[inline]
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & dest_flags::AVAILABLE != 0
    }

    /// Count a conn bound to this dest (`ip_vs_bind_dest`): templates in persistconns, others
    /// in inactconns or activeconns; then set OVERLOAD when u_threshold is reached.
    pub fn bind(&self, template: bool, inactive: bool) {
        if template {
            self.persistconns.fetch_add(1, Ordering::Relaxed);
        } else if inactive {
            self.inactconns.fetch_add(1, Ordering::Relaxed);
        } else {
            self.activeconns.fetch_add(1, Ordering::Relaxed);
        }
        let u = self.u_threshold.load(Ordering::Relaxed);
        if u != 0 && self.totalconns() >= u {
            self.flags.fetch_or(dest_flags::OVERLOAD, Ordering::Relaxed);
        }
    }

    /// Uncount a conn (`ip_vs_unbind_dest`) and clear OVERLOAD on the kernel's rule: below
    /// l_threshold if set, else below 3/4 of u_threshold if set, else unconditionally.
    pub fn unbind(&self, template: bool, inactive: bool) {
        if template {
            self.persistconns.fetch_sub(1, Ordering::Relaxed);
        } else if inactive {
            self.inactconns.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.activeconns.fetch_sub(1, Ordering::Relaxed);
        }
        let l = self.l_threshold.load(Ordering::Relaxed);
        let u = self.u_threshold.load(Ordering::Relaxed);
        let total = u64::from(self.totalconns());
        let clear = if l != 0 {
            total < u64::from(l)
        } else if u != 0 {
            total * 4 < u64::from(u) * 3
        } else {
            true
        };
        if clear {
            self.flags
                .fetch_and(!dest_flags::OVERLOAD, Ordering::Relaxed);
        }
    }

    /// Move one conn across the active/inactive boundary (TCP/SCTP state change).
    pub fn set_inactive(&self, inactive: bool) {
        if inactive {
            self.activeconns.fetch_sub(1, Ordering::Relaxed);
            self.inactconns.fetch_add(1, Ordering::Relaxed);
        } else {
            self.inactconns.fetch_sub(1, Ordering::Relaxed);
            self.activeconns.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A dest as the worker sees it in a snapshot.
#[derive(Clone, Debug)]
pub struct Dest {
    /// Stable identity.
    pub id: DestId,
    /// The configuration it was built from.
    pub conf: DestConf,
    /// Shared counters and flags (same `Arc` across snapshots).
    pub state: Arc<DestState>,
}

impl Dest {
    /// Configured weight.
    #[inline]
    #[must_use]
    pub fn weight(&self) -> i32 {
        self.conf.weight
    }

    /// Active conns now.
    #[inline]
    #[must_use]
    pub fn activeconns(&self) -> u32 {
        self.state.activeconns.load(Ordering::Relaxed)
    }

    /// Inactive conns now.
    #[inline]
    #[must_use]
    pub fn inactconns(&self) -> u32 {
        self.state.inactconns.load(Ordering::Relaxed)
    }

    /// Overloaded now.
    #[inline]
    #[must_use]
    pub fn is_overloaded(&self) -> bool {
        self.state.is_overloaded()
    }
}

/// The shared, mutable part of a service: its per-worker counters.
#[derive(Debug)]
pub struct ServiceState {
    /// Packet counters per worker.
    pub stats: PerWorkerCounters,
    /// Rate estimator (control plane only).
    pub est: std::sync::Mutex<crate::stats::RateEstimator>,
}

impl ServiceState {
    /// Fresh counters for `workers` workers.
    #[must_use]
    pub fn new(workers: usize) -> Self {
        Self {
            stats: PerWorkerCounters::new(workers),
            est: std::sync::Mutex::default(),
        }
    }
}

/// A service as the worker sees it in a snapshot.
#[derive(Debug)]
pub struct Service {
    /// Stable identity.
    pub id: ServiceId,
    /// The configuration it was built from (its `dests` field is also in `dests` below).
    pub conf: ServiceConf,
    /// Dests in the kernel's list order.
    pub dests: Vec<Dest>,
    /// The scheduler, rebuilt for this snapshot; workers clone it (cheap: tables are shared).
    pub sched: AnyScheduler,
    /// Shared counters (same `Arc` across snapshots).
    pub state: Arc<ServiceState>,
}

/// An immutable configuration as workers run it.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every publication.
    pub generation: u64,
    /// Services in configuration order.
    pub services: Vec<Service>,
    /// Protocol timeouts.
    pub timeouts: Timeouts,
    by_key: hashbrown::HashMap<ServiceKey, usize>,
    /// The IPv4 services again, keyed by [`v4_key`]: a `u64` hashes in a few instructions where
    /// the derived hash of a `ServiceKey` took ~140 per new conn (callgrind,
    /// examples/pipeline_cost new).
    by_v4: hashbrown::HashMap<u64, usize>,
    owned: hashbrown::HashSet<IpAddr>,
    /// IPv4 VIPs that are not also a FULLNAT local address (see [`Self::vip_only_v4`]).
    vips_v4: hashbrown::HashSet<u32>,
}

/// The [`Snapshot`] IPv4 index key of (protocol number, address, port).
#[inline]
fn v4_key(proto_num: u8, addr: std::net::Ipv4Addr, port: u16) -> u64 {
    (u64::from(proto_num) << 48) | (u64::from(port) << 32) | u64::from(addr.to_bits())
}

impl Snapshot {
    /// The empty configuration.
    #[must_use]
    pub fn empty() -> Self {
        Self::new(0, Vec::new(), Timeouts::default())
    }

    /// Index `services` for lookup.
    #[must_use]
    pub fn new(generation: u64, services: Vec<Service>, timeouts: Timeouts) -> Self {
        let by_key = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.conf.key, i))
            .collect();
        let by_v4 = services
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.conf.key {
                ServiceKey::Inet {
                    proto,
                    addr: IpAddr::V4(a),
                    port,
                } => Some((v4_key(proto.number(), a, port), i)),
                _ => None,
            })
            .collect();
        let mut owned = hashbrown::HashSet::new();
        for s in &services {
            if let ServiceKey::Inet { addr, .. } = s.conf.key {
                owned.insert(addr);
            }
            owned.extend(s.conf.laddrs.iter().copied());
        }
        let lips: hashbrown::HashSet<IpAddr> = services
            .iter()
            .flat_map(|s| s.conf.laddrs.iter().copied())
            .collect();
        let vips_v4 = services
            .iter()
            .filter_map(|s| match s.conf.key {
                ServiceKey::Inet {
                    addr: a @ IpAddr::V4(v4),
                    ..
                } if !lips.contains(&a) => Some(v4.to_bits()),
                _ => None,
            })
            .collect();
        Self {
            generation,
            services,
            timeouts,
            by_key,
            by_v4,
            owned,
            vips_v4,
        }
    }

    /// The service with this key.
    #[inline]
    #[must_use]
    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.by_key.get(key).map(|&i| &self.services[i])
    }

    /// Whether `addr` is a VIP or a FULLNAT local address of some service (the director answers
    /// ARP/ND for these).
    #[inline]
    #[must_use]
    pub fn owns(&self, addr: &IpAddr) -> bool {
        self.owned.contains(addr)
    }

    /// Whether the IPv4 address `a` (host order) is a VIP and not a FULLNAT local address: a
    /// packet to it is never a reply (NAT replies go to clients, FULLNAT replies to LIPs), so
    /// the conn lookup need not probe the reply direction.
    #[inline]
    #[must_use]
    pub fn vip_only_v4(&self, a: u32) -> bool {
        self.vips_v4.contains(&a)
    }

    /// The service a new connection to `dst:dport` belongs to: the exact service first, then
    /// the port-0 (all ports) service of the VIP, as `ip_vs_service_find` does.
    #[inline]
    #[must_use]
    pub fn find(&self, proto: Protocol, dst: IpAddr, dport: u16) -> Option<usize> {
        if let IpAddr::V4(a) = dst {
            let p = proto.number();
            return self
                .by_v4
                .get(&v4_key(p, a, dport))
                .or_else(|| self.by_v4.get(&v4_key(p, a, 0)))
                .copied();
        }
        self.by_key
            .get(&ServiceKey::Inet {
                proto,
                addr: dst,
                port: dport,
            })
            .or_else(|| {
                self.by_key.get(&ServiceKey::Inet {
                    proto,
                    addr: dst,
                    port: 0,
                })
            })
            .copied()
    }

    /// Index of the service with this key.
    #[inline]
    #[must_use]
    pub fn service_index(&self, key: &ServiceKey) -> Option<usize> {
        self.by_key.get(key).copied()
    }
}
