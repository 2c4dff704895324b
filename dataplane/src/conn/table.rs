//! The sharded conn table: slabs of conns indexed by a [`ConnIndex`] of `u32` entries.
//!
//! Hashing, the kernel's way: an entry is hashed by (protocol, client-side address, client-side
//! port) only (`ip_vs_conn_hashkey`); a lookup compares the full key against the slot. For a
//! packet key, the client-side endpoint is `(src, sport)` when probing the *in* direction and
//! `(dst, dport)` when probing the *out* direction. A NAT conn's reply goes to `caddr:cport`, so
//! one entry (flagged IN|OUT) serves both directions; DR/TUN conns get one IN entry (their
//! replies never pass, and the kernel only matches NAT conns on the way out); FULLNAT conns get
//! an IN entry for `caddr:cport` and an OUT entry for `laddr:lport`; templates get one TPL entry
//! for `(caddr masked, 0)`. An index entry is a `u32`: slot number, family bit and role bits, so
//! the index costs 6.4 bytes per entry divided by its load factor (see `index.rs`).
//!
//! Sharding: `shard = (mix(addr) ^ port) & 63` of the client-side endpoint, so both entries of
//! a conn are in its home shard (FULLNAT ports are solved for that, see `port.rs`). Each shard
//! is a spin lock padded to its own cache line, held for one probe/insert/remove and released
//! before any other shard is locked (template links are updated after the conn's shard is
//! unlocked). The one exception is [`ConnTable::lookup_v4_pair`], which holds the two shards of
//! a pair of lookups, always taken lowest first: as nothing else ever waits for a shard while
//! holding one, no cycle of waits can form. Conns of each family live in their own slab so an
//! IPv4 conn takes 64 bytes.
//!
//! By reference: a hit carries where its conn is stored ([`HitV4::conn_ref`]), and
//! [`ConnTable::touch_v4`] runs a later packet through that slot without hashing or probing,
//! after checking under the shard's lock that the slot still holds a live conn of exactly the
//! same identity (all four endpoints, protocol, mode) and that it is not due: the workers'
//! flow caches rely on this and never on the reference alone. A miss carries where its conn
//! would go and the shard index's version ([`MissV4`]); creation skips its duplicate check
//! when the version is unchanged (nothing was inserted or removed in that shard meanwhile).
//!
//! Timers: a conn's `expires_ms` is refreshed on every packet to now + the state's timeout
//! (the kernel re-arms its timer in `ip_vs_conn_put`). [`ConnTable::expire`] walks a bounded
//! number of slots per call, round robin over shards, and removes what is due; a lookup that
//! meets a due conn removes it and misses. A template due while it still controls conns is
//! kept for another 60 s and its timeout becomes 60 s (the kernel's `expire_later`).
//!
//! Never: hold two shard locks (but a pair lookup's, in shard order), allocate on lookup (an
//! insert may grow a slab or index past what `with_bits` reserved), or take an unbounded amount
//! of work in `expire`.

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crossbeam::utils::CachePadded;
use prefetch_index::prefetch_index;

use super::index::ConnIndex;
use super::port::{LipPorts, PortLayout};
use super::state::{self, StateDir, ctpl};
use super::{
    ConnError, ConnInfo, ConnRefV4, FlowKeyV4, Hit, HitV4, MissV4, NOT_STORED, NewConn,
    TemplateHit, TemplateKey, TemplateRef, conn_flags as cf,
};
use crate::flow::{ConnTuple, Dir, FlowKey, proto};
use crate::service::{Counters, DestState, FwdMode, ServiceState, Timeouts, TunConf, TunType};

/// log2 of the number of shards.
pub const SHARD_BITS: u32 = 6;
/// Number of shards.
pub const NSHARDS: usize = 1 << SHARD_BITS;
const SHARD_MASK: u32 = (1 << SHARD_BITS) - 1;

// Index entry layout.
const E_SLOT: u32 = (1 << 28) - 1;
const E_V6: u32 = 1 << 28;
const E_IN: u32 = 1 << 29;
const E_OUT: u32 = 1 << 30;
const E_TPL: u32 = 1 << 31;

// Template reference layout: shard << 26 | v6 << 25 | slot.
const R_SLOT_BITS: u32 = 25;
const R_SLOT: u32 = (1 << R_SLOT_BITS) - 1;
/// Slots per slab (so that slot numbers fit a template reference).
const MAX_SLOTS: usize = R_SLOT as usize;
/// Slots a slab appends at once when it has no free one (the new conn's and free ones).
const SLAB_BATCH: usize = 8;
/// `link` value meaning "no controlling template" / end of the free list.
const NO_LINK: u32 = u32::MAX;

/// A template due while it controls conns is checked again this much later (`expire_later`).
const EXPIRE_LATER_MS: u32 = 60_000;
/// Timeout of a brand-new conn before its first transition (`ip_vs_conn_new`: 3 s).
const NEW_CONN_TIMEOUT_MS: u32 = 3_000;
/// Deferred template releases per shard visit in `expire`.
const DEFER: usize = 64;

/// An address type a slab is specialised for.
trait Addr: Copy + Eq + std::fmt::Debug + Send + 'static {
    const V6: bool;
    /// A zero-sized type whose alignment the slot takes (a cache line for IPv4 slots, which
    /// are exactly 64 bytes, so a lookup touches one line).
    type Align: Copy + std::fmt::Debug + Send + 'static;
    fn ip(self) -> IpAddr;
    fn hash(self, seed: u64) -> u64;
    fn slab_mut_of<'a>(
        v4: &'a mut Slab<Ipv4Addr>,
        v6: &'a mut Slab<Ipv6Addr>,
    ) -> &'a mut Slab<Self>;
    fn parts(sh: &mut Shard) -> (&mut ConnIndex, &mut Slab<Self>, &mut Vec<LipPorts>);
}

/// Cache-line alignment marker.
#[derive(Copy, Clone, Debug)]
#[repr(align(64))]
struct Line;

impl Addr for Ipv4Addr {
    const V6: bool = false;
    type Align = Line;
    #[inline]
    fn ip(self) -> IpAddr {
        IpAddr::V4(self)
    }
    #[inline]
    fn hash(self, seed: u64) -> u64 {
        mix64(seed ^ u64::from(self.to_bits()))
    }
    #[inline]
    fn slab_mut_of<'a>(
        v4: &'a mut Slab<Ipv4Addr>,
        _: &'a mut Slab<Ipv6Addr>,
    ) -> &'a mut Slab<Self> {
        v4
    }
    #[inline]
    fn parts(sh: &mut Shard) -> (&mut ConnIndex, &mut Slab<Self>, &mut Vec<LipPorts>) {
        (&mut sh.index, &mut sh.v4, &mut sh.lips)
    }
}

impl Addr for Ipv6Addr {
    const V6: bool = true;
    type Align = u64;
    #[inline]
    fn ip(self) -> IpAddr {
        IpAddr::V6(self)
    }
    #[inline]
    fn hash(self, seed: u64) -> u64 {
        let b = self.to_bits();
        #[allow(clippy::cast_possible_truncation)] // INVARIANT: halves of a u128.
        let (hi, lo) = ((b >> 64) as u64, b as u64);
        mix64(mix64(seed ^ hi) ^ lo)
    }
    #[inline]
    fn slab_mut_of<'a>(
        _: &'a mut Slab<Ipv4Addr>,
        v6: &'a mut Slab<Ipv6Addr>,
    ) -> &'a mut Slab<Self> {
        v6
    }
    #[inline]
    fn parts(sh: &mut Shard) -> (&mut ConnIndex, &mut Slab<Self>, &mut Vec<LipPorts>) {
        (&mut sh.index, &mut sh.v6, &mut sh.lips)
    }
}

/// splitmix64's finaliser.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The shard of a client-side endpoint, from its address hash. XOR-linear in the port, so
/// FULLNAT can solve for a port's low bits.
#[inline]
fn shard_of(addr_hash: u64, port: u16) -> usize {
    #[allow(clippy::cast_possible_truncation)] // INVARIANT: deliberate truncation of a hash.
    let a = addr_hash as u32;
    ((a ^ u32::from(port)) & SHARD_MASK) as usize
}

/// The home shard of the endpoint `ep:port` and its bucket hash there (for protocol
/// `proto_num`): where its entries are indexed.
#[inline]
fn home<A: Addr>(ep: A, port: u16, proto_num: u8, seed: u64) -> (usize, u64) {
    let h = ep.hash(seed);
    (shard_of(h, port), bucket_hash(h, port, proto_num))
}

/// The index hash of an endpoint inside its shard (independent of the shard bits).
#[inline]
fn bucket_hash(addr_hash: u64, port: u16, proto_num: u8) -> u64 {
    mix64(addr_hash.rotate_left(29) ^ (u64::from(port) << 8 | u64::from(proto_num)))
}

/// One slot: a conn or template (or a free slot when `flags` lacks LIVE).
///
/// `addrs`/`ports` are client, virtual, dest, local. `link` is the controlling template's
/// reference for a conn, the number of controlled conns for a template, and the next free slot
/// for a free slot.
#[derive(Debug)]
struct Conn<A: Addr> {
    addrs: [A; 4],
    ports: [u16; 4],
    proto: u8,
    state: u8,
    flags: u8,
    /// Forwarding mode (3 bits), tunnel kind (2 bits) and tunnel flags (2 bits).
    fwd: u8,
    tun_port: u16,
    link: u32,
    timeout_ms: u32,
    expires_ms: u64,
    dest: Option<Arc<DestState>>,
    svc: Option<Arc<ServiceState>>,
    _align: [A::Align; 0],
}

impl<A: Addr> Conn<A> {
    /// The forwarding mode and tunnel settings packed in `fwd` and `tun_port`.
    #[inline]
    fn fwd_tun(&self) -> (FwdMode, TunConf) {
        let (fwd, kind, flags) = unpack_fwd(self.fwd);
        (
            fwd,
            TunConf {
                kind,
                port: self.tun_port,
                flags,
            },
        )
    }

    fn tuple(&self) -> ConnTuple {
        ConnTuple {
            proto: self.proto,
            caddr: self.addrs[0].ip(),
            vaddr: self.addrs[1].ip(),
            daddr: self.addrs[2].ip(),
            laddr: self.addrs[3].ip(),
            cport: self.ports[0],
            vport: self.ports[1],
            dport: self.ports[2],
            lport: self.ports[3],
        }
    }

    fn info(&self, now_ms: u64) -> ConnInfo {
        let template = self.flags & cf::TEMPLATE != 0;
        ConnInfo {
            proto: self.proto,
            template,
            fwd: unpack_fwd(self.fwd).0,
            state: self.state,
            state_name: state::state_name(self.proto, self.state, template),
            expires_in_ms: self.expires_ms.saturating_sub(now_ms),
            caddr: self.addrs[0].ip(),
            cport: self.ports[0],
            vaddr: self.addrs[1].ip(),
            vport: self.ports[1],
            daddr: self.addrs[2].ip(),
            dport: self.ports[2],
            laddr: self.addrs[3].ip(),
            lport: self.ports[3],
            control: if template {
                self.link
            } else {
                u32::from(self.link != NO_LINK)
            },
        }
    }
}

fn pack_fwd(fwd: FwdMode, tun: &TunConf) -> u8 {
    let m = match fwd {
        FwdMode::Masq => 0,
        FwdMode::Local => 1,
        FwdMode::Tunnel => 2,
        FwdMode::Route => 3,
        FwdMode::FullNat => 4,
    };
    let k = match tun.kind {
        TunType::Ipip => 0,
        TunType::Gue => 1,
        TunType::Gre => 2,
    };
    #[allow(clippy::cast_possible_truncation)] // INVARIANT: masked to 2 bits.
    let f = (tun.flags & 3) as u8;
    m | (k << 3) | (f << 5)
}

/// The tunnel settings of a packed `fwd` byte and tunnel port.
pub(super) fn unpack_tun(b: u8, port: u16) -> TunConf {
    let (_, kind, flags) = unpack_fwd(b);
    TunConf { kind, port, flags }
}

/// The forwarding mode of a packed `fwd` byte.
#[inline]
pub(super) fn fwd_of(b: u8) -> FwdMode {
    unpack_fwd(b).0
}

fn unpack_fwd(b: u8) -> (FwdMode, TunType, u16) {
    let m = match b & 7 {
        0 => FwdMode::Masq,
        1 => FwdMode::Local,
        2 => FwdMode::Tunnel,
        4 => FwdMode::FullNat,
        _ => FwdMode::Route,
    };
    let k = match (b >> 3) & 3 {
        1 => TunType::Gue,
        2 => TunType::Gre,
        _ => TunType::Ipip,
    };
    (m, k, u16::from((b >> 5) & 3))
}

/// A slab of slots with an intrusive free list.
#[derive(Debug)]
struct Slab<A: Addr> {
    slots: Vec<Conn<A>>,
    free_head: u32,
    live: usize,
}

impl<A: Addr> Slab<A> {
    fn with_capacity(n: usize) -> Self {
        Self {
            slots: Vec::with_capacity(n),
            free_head: NO_LINK,
            live: 0,
        }
    }

    /// Store `c`, returning its slot. The caller checked [`Self::is_full`].
    fn alloc(&mut self, c: Conn<A>) -> u32 {
        self.live += 1;
        if self.free_head != NO_LINK {
            let slot = self.free_head;
            let s = &mut self.slots[slot as usize];
            self.free_head = s.link;
            *s = c;
            return slot;
        }
        // No free slot: append this conn and a batch of free slots after it. Their cache lines
        // are written now, together, so the shard's next conns store into lines already
        // fetched instead of each waiting for its own (the slab grows in a different place
        // for every shard, which no hardware prefetcher follows).
        let start = self.slots.len();
        let n = SLAB_BATCH.min(MAX_SLOTS - start);
        let (addrs, ports, proto) = (c.addrs, c.ports, c.proto);
        self.slots.push(c);
        for i in start + 1..start + n {
            #[allow(clippy::cast_possible_truncation)] // INVARIANT: i < MAX_SLOTS < 2^32.
            let link = if i + 1 < start + n {
                (i + 1) as u32
            } else {
                NO_LINK
            };
            self.slots.push(Conn {
                addrs,
                ports,
                proto,
                state: 0,
                flags: 0,
                fwd: 0,
                tun_port: 0,
                link,
                timeout_ms: 0,
                expires_ms: 0,
                dest: None,
                svc: None,
                _align: [],
            });
        }
        if n > 1 {
            #[allow(clippy::cast_possible_truncation)] // INVARIANT: start + 1 < MAX_SLOTS.
            let next = (start + 1) as u32;
            self.free_head = next;
        }
        #[allow(clippy::cast_possible_truncation)] // INVARIANT: start < MAX_SLOTS < 2^32.
        let slot = start as u32;
        slot
    }

    /// Read the slot the next conn will be stored in (when one is free), to bring its line
    /// into the cache before the store.
    #[inline]
    fn peek_free(&self) -> u32 {
        self.slots
            .get(self.free_head as usize)
            .map_or(0, |s| s.link)
    }

    /// Whether no slot can be stored.
    fn is_full(&self) -> bool {
        self.free_head == NO_LINK && self.slots.len() >= MAX_SLOTS
    }

    /// Free `slot`, returning what it held.
    fn free(&mut self, slot: u32) -> (Option<Arc<DestState>>, Option<Arc<ServiceState>>) {
        let s = &mut self.slots[slot as usize];
        s.flags = 0;
        s.link = self.free_head;
        self.free_head = slot;
        self.live -= 1;
        (s.dest.take(), s.svc.take())
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.free_head = NO_LINK;
        self.live = 0;
    }
}

/// Where a shard's IPv4 slab and index buckets are (addresses) and the bucket mask, written
/// under the shard's lock whenever they may have moved, read without it to prefetch. A stale
/// value makes a useless prefetch, nothing else: nothing is ever read through it.
#[derive(Debug, Default)]
struct ShardHint {
    slots4: AtomicUsize,
    buckets: AtomicUsize,
    mask: AtomicUsize,
}

/// Prefetch the cache line at `addr` (any address: `prefetch_index` forms the pointer with
/// `wrapping_add` and issues a prefetch instruction, which reads nothing the program can see
/// and never faults).
#[inline(always)]
fn prefetch_addr(addr: usize) {
    static ANCHOR: [u8; 1] = [0];
    prefetch_index(&ANCHOR[..], addr.wrapping_sub(ANCHOR.as_ptr().addr()));
}

/// One shard: its index, its two slabs, FULLNAT port state and its expiry cursor.
#[derive(Debug)]
struct Shard {
    index: ConnIndex,
    v4: Slab<Ipv4Addr>,
    v6: Slab<Ipv6Addr>,
    lips: Vec<LipPorts>,
    /// Next slot to examine in `expire` (v4 slots first, then v6).
    cursor: usize,
    /// This shard's number.
    id: usize,
}

/// The hash an index entry was inserted with (needed to remove or rehash it).
fn entry_hash(e: u32, v4: &Slab<Ipv4Addr>, v6: &Slab<Ipv6Addr>, seed: u64) -> u64 {
    let slot = (e & E_SLOT) as usize;
    if e & E_V6 != 0 {
        endpoint_hash(&v6.slots[slot], e, seed)
    } else {
        endpoint_hash(&v4.slots[slot], e, seed)
    }
}

fn endpoint_hash<A: Addr>(c: &Conn<A>, e: u32, seed: u64) -> u64 {
    // A FULLNAT OUT entry is keyed by the local endpoint, everything else by the client's.
    let i = if e & (E_IN | E_TPL) == 0 { 3 } else { 0 };
    bucket_hash(c.addrs[i].hash(seed), c.ports[i], c.proto)
}

/// What must happen after a slot is removed, outside the shard lock.
struct Removed {
    /// A template whose controlled-conn count must drop.
    release: Option<u32>,
}

/// When the SYN-flood defence (IPVS's `drop_entry` sysctl) runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum DefenceMode {
    /// Never (IPVS 0, the default).
    #[default]
    Off = 0,
    /// While fewer than `amemthresh` entries are free (IPVS 1: "automatic", on when memory is
    /// short; here the conn table's `max_conns` is the memory).
    Auto = 1,
    /// Always (IPVS 3).
    Always = 3,
}

/// The SYN-flood defence settings: IPVS's `drop_entry` and `amemthresh` sysctls, plus the age
/// below which a half-open conn is spared.
///
/// While active, the expiry scan removes half-open TCP conns (SYN_RECV, SYNACK: the client's
/// SYN seen, its handshake not completed) that are at least `min_age_ms` old, as the kernel's
/// `ip_vs_random_dropentry` drops SYN_RECV and SYNACK entries when memory runs low. The kernel
/// visits 1/32 of its table a second; our scan visits far more, so the minimum age keeps a
/// genuine handshake (one round trip) from being cut while spoofed SYNs, which never complete,
/// are reclaimed and leave room for new conns. Conns that finished their handshake and
/// templates are never dropped by the defence.
///
/// `drop_packet` (IPVS's sysctl of that name) refuses one new conn in every `rate`: with
/// `Auto`, while fewer than `amemthresh` entries are free, `rate = amemthresh / (amemthresh -
/// free)` (every other new conn when half of `amemthresh` is left, all of them when the table is
/// full), as the kernel's `update_defense_level` computes it; with `Always`, `rate =
/// am_droprate`. Refused conns are counted as `DropReason::Defence`. Unlike the kernel, which
/// checks before scheduling, the check runs when the conn is created, so a refused conn may
/// have advanced a scheduler's position.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Defence {
    /// When `drop_entry` runs.
    pub mode: DefenceMode,
    /// `Auto` runs while `max_conns - len < amemthresh`.
    pub amemthresh: usize,
    /// Half-open conns younger than this are spared.
    pub min_age_ms: u32,
    /// When `drop_packet` runs.
    pub drop_packet: DefenceMode,
    /// `drop_packet` rate with `Always` (IPVS `am_droprate`, default 10).
    pub am_droprate: u32,
    /// When TCP conns use the `secure_tcp` state table (`tcp_states_dos`: a client's ACK does
    /// not establish a conn before the server's SYN+ACK was seen, so spoofed handshakes stay
    /// half-open, where `drop_entry` reclaims them).
    pub secure_tcp: DefenceMode,
}

impl Default for Defence {
    fn default() -> Self {
        Self {
            mode: DefenceMode::Off,
            amemthresh: 1024,
            min_age_ms: 1000,
            drop_packet: DefenceMode::Off,
            am_droprate: 10,
            secure_tcp: DefenceMode::Off,
        }
    }
}

fn mode_of(v: u8) -> DefenceMode {
    match v {
        1 => DefenceMode::Auto,
        3 => DefenceMode::Always,
        _ => DefenceMode::Off,
    }
}

/// The connection table shared by all workers.
#[derive(Debug)]
pub struct ConnTable {
    shards: Box<[CachePadded<ShardLock>]>,
    /// Where each shard's IPv4 slots and index buckets are, for prefetching without its lock.
    hints: Box<[ShardHint]>,
    bits: u8,
    max_conns: usize,
    count: CachePadded<AtomicUsize>,
    expire_next: CachePadded<AtomicUsize>,
    seed: u64,
    layout: PortLayout,
    expire_quiescent_template: AtomicBool,
    conn_reuse_mode: AtomicU8,
    defence_mode: AtomicU8,
    amemthresh: AtomicUsize,
    defence_min_age_ms: AtomicU32,
    defence_dropped: AtomicU64,
    drop_packet_mode: AtomicU8,
    am_droprate: AtomicU32,
    drop_counter: AtomicU32,
    secure_tcp_mode: AtomicU8,
}

impl ConnTable {
    /// A table of `2^conn_tab_bits` buckets (IPVS's `conn_tab_bits`, 8..=20, default 12) for at
    /// most `max_conns` entries (conns plus templates), shared by `workers` workers.
    ///
    /// Index and IPv4 slab space for `2^conn_tab_bits` entries is reserved now, so inserts do
    /// not reallocate below that; past it a shard's slab or index doubles (an amortised copy
    /// under that shard's lock, the only allocation an insert can make).
    pub fn with_bits(
        conn_tab_bits: u8,
        max_conns: usize,
        workers: usize,
    ) -> Result<Self, ConnError> {
        if !(8..=20).contains(&conn_tab_bits) {
            return Err(ConnError::BadBits(conn_tab_bits));
        }
        // conn_tab_bits sizes what is reserved up front (2^bits entries, a little above the
        // mean per shard since shards fill unevenly); beyond that slabs and indexes grow by
        // doubling. Reserving for max_conns instead would spread a small table over a large,
        // cache-cold index (measured with benches/conn.rs raw mode: 1k conns in a table
        // reserved for 1M took 102 ns on-CPU per lookup hit, 53 ns sized by conn_tab_bits).
        let reserve = (1usize << conn_tab_bits).min(max_conns.max(NSHARDS));
        let per_shard = reserve / NSHARDS + reserve / NSHARDS / 8 + 8;
        let index_per_shard = per_shard;
        let shards = (0..NSHARDS)
            .map(|id| {
                CachePadded::new(ShardLock::new(Shard {
                    index: ConnIndex::with_capacity(index_per_shard),
                    v4: Slab::with_capacity(per_shard),
                    v6: Slab::with_capacity(0),
                    lips: Vec::new(),
                    cursor: 0,
                    id,
                }))
            })
            .collect();
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x0078_7673_u64);
        let hints = (0..NSHARDS).map(|_| ShardHint::default()).collect();
        let t = Self {
            shards,
            hints,
            bits: conn_tab_bits,
            max_conns,
            count: CachePadded::new(AtomicUsize::new(0)),
            expire_next: CachePadded::new(AtomicUsize::new(0)),
            seed,
            layout: PortLayout::new(SHARD_BITS, workers),
            expire_quiescent_template: AtomicBool::new(false),
            conn_reuse_mode: AtomicU8::new(1),
            defence_mode: AtomicU8::new(DefenceMode::Off as u8),
            amemthresh: AtomicUsize::new(Defence::default().amemthresh),
            defence_min_age_ms: AtomicU32::new(Defence::default().min_age_ms),
            defence_dropped: AtomicU64::new(0),
            drop_packet_mode: AtomicU8::new(DefenceMode::Off as u8),
            am_droprate: AtomicU32::new(Defence::default().am_droprate),
            drop_counter: AtomicU32::new(0),
            secure_tcp_mode: AtomicU8::new(DefenceMode::Off as u8),
        };
        for (i, s) in t.shards.iter().enumerate() {
            t.rehint(i, &lock(s));
        }
        Ok(t)
    }

    /// Record where shard `i`'s IPv4 slots and index buckets now are (after anything that may
    /// have moved them: a slab append, an index doubling, a clear). Writes only what changed,
    /// so the line all workers read stays shared.
    #[inline]
    fn rehint(&self, i: usize, g: &Shard) {
        let Some(h) = self.hints.get(i) else { return };
        let (slots, (buckets, mask)) = (g.v4.slots.as_ptr().addr(), g.index.bucket_area());
        for (a, v) in [(&h.slots4, slots), (&h.buckets, buckets), (&h.mask, mask)] {
            if a.load(Ordering::Relaxed) != v {
                a.store(v, Ordering::Relaxed);
            }
        }
    }

    /// Start fetching what [`Self::touch_v4`] of `c` will read: its shard's lock line and its
    /// slot. A hint only: whatever it fetches, nothing is read or decided from it.
    #[inline(always)]
    pub fn prefetch_ref_v4(&self, c: &ConnRefV4) {
        let (shard, _, slot) = untref(c.at);
        prefetch_index(&self.shards, shard);
        if let Some(h) = self.hints.get(shard) {
            let base = h.slots4.load(Ordering::Relaxed);
            prefetch_addr(base.wrapping_add(slot.wrapping_mul(size_of::<Conn<Ipv4Addr>>())));
        }
    }

    /// Start fetching what a client -> VIP probe of `key` will read first: its shard's lock
    /// line and its home bucket. A hint only, like [`Self::prefetch_ref_v4`].
    #[inline(always)]
    pub fn prefetch_key_v4(&self, key: &FlowKeyV4) {
        let (shard, hash) = home(
            Ipv4Addr::from_bits(key.src),
            key.sport,
            key.proto,
            self.seed,
        );
        prefetch_index(&self.shards, shard);
        if let Some(h) = self.hints.get(shard) {
            #[allow(clippy::cast_possible_truncation)] // INVARIANT: masked to the bucket count.
            let b = hash as usize & h.mask.load(Ordering::Relaxed);
            prefetch_addr(
                h.buckets
                    .load(Ordering::Relaxed)
                    .wrapping_add(b.wrapping_mul(ConnIndex::BUCKET_BYTES)),
            );
        }
    }

    /// The IPVS table size `2^conn_tab_bits` (what `-L` shows as `(size=N)`).
    #[must_use]
    pub fn size(&self) -> usize {
        1 << self.bits
    }

    /// `conn_tab_bits`.
    #[must_use]
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Maximum number of entries.
    #[must_use]
    pub fn max_conns(&self) -> usize {
        self.max_conns
    }

    /// Entries now (conns plus templates, like the kernel's `conn_count`).
    #[must_use]
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether the table is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Set the SYN-flood defence (see [`Defence`]); takes effect at the next expiry scan.
    pub fn set_defence(&self, d: Defence) {
        self.amemthresh.store(d.amemthresh, Ordering::Relaxed);
        self.defence_min_age_ms
            .store(d.min_age_ms, Ordering::Relaxed);
        self.defence_mode.store(d.mode as u8, Ordering::Relaxed);
        self.am_droprate
            .store(d.am_droprate.max(1), Ordering::Relaxed);
        self.drop_packet_mode
            .store(d.drop_packet as u8, Ordering::Relaxed);
        self.secure_tcp_mode
            .store(d.secure_tcp as u8, Ordering::Relaxed);
    }

    /// Whether TCP conns use the `secure_tcp` table now (one relaxed load when off).
    #[inline]
    fn secure_tcp(&self) -> bool {
        match mode_of(self.secure_tcp_mode.load(Ordering::Relaxed)) {
            DefenceMode::Off => false,
            DefenceMode::Auto => {
                self.max_conns.saturating_sub(self.len()) < self.amemthresh.load(Ordering::Relaxed)
            }
            DefenceMode::Always => true,
        }
    }

    /// `drop_packet`: whether to refuse this new conn (see [`Defence`]). One relaxed atomic
    /// read when off.
    fn todrop(&self) -> bool {
        let rate = match mode_of(self.drop_packet_mode.load(Ordering::Relaxed)) {
            DefenceMode::Off => return false,
            DefenceMode::Auto => {
                let thresh = self.amemthresh.load(Ordering::Relaxed);
                let free = self.max_conns.saturating_sub(self.len());
                if free >= thresh {
                    return false;
                }
                // INVARIANT: free < thresh, so the divisor is >= 1.
                u32::try_from(thresh / (thresh - free)).unwrap_or(u32::MAX)
            }
            DefenceMode::Always => self.am_droprate.load(Ordering::Relaxed),
        };
        // The kernel's counter: count down, drop and reload at zero.
        let c = self.drop_counter.load(Ordering::Relaxed);
        if c > 1 {
            self.drop_counter.store(c - 1, Ordering::Relaxed);
            return false;
        }
        self.drop_counter.store(rate, Ordering::Relaxed);
        true
    }

    /// The SYN-flood defence settings.
    #[must_use]
    pub fn defence(&self) -> Defence {
        Defence {
            mode: mode_of(self.defence_mode.load(Ordering::Relaxed)),
            amemthresh: self.amemthresh.load(Ordering::Relaxed),
            min_age_ms: self.defence_min_age_ms.load(Ordering::Relaxed),
            drop_packet: mode_of(self.drop_packet_mode.load(Ordering::Relaxed)),
            am_droprate: self.am_droprate.load(Ordering::Relaxed),
            secure_tcp: mode_of(self.secure_tcp_mode.load(Ordering::Relaxed)),
        }
    }

    /// Whether the defence runs now (`Auto`: fewer than `amemthresh` entries free).
    #[must_use]
    pub fn defence_active(&self) -> bool {
        match self.defence_mode.load(Ordering::Relaxed) {
            0 => false,
            1 => {
                self.max_conns.saturating_sub(self.len()) < self.amemthresh.load(Ordering::Relaxed)
            }
            _ => true,
        }
    }

    /// Half-open conns the defence has dropped since the table was made.
    #[must_use]
    pub fn defence_dropped(&self) -> u64 {
        self.defence_dropped.load(Ordering::Relaxed)
    }

    /// The sysctl `conn_reuse_mode` (default 1): with bit 0 set, a SYN that finds its client's
    /// previous TCP conn in TIME_WAIT or CLOSE (and not controlled by a template) expires that
    /// conn and is scheduled afresh, as `ip_vs_in` does with `is_new_conn_expected`; bit 1 also
    /// reuses a FIN_WAIT conn that never saw a reply (DR/TUN). 0: such a SYN stays on the old
    /// conn (and its dest).
    pub fn set_conn_reuse_mode(&self, mode: u8) {
        self.conn_reuse_mode.store(mode & 3, Ordering::Relaxed);
    }

    /// Whether a SYN arriving on `c` in the Input direction expires it so that the SYN is
    /// scheduled anew (see [`Self::set_conn_reuse_mode`]).
    // PERF: always inlined: since the worker loop was split in two (`Worker::burst`) the
    // compiler called it out of line from `touch_v4`, where its first test (no SYN) always
    // ends it (callgrind, examples/pipeline_cost: 579 -> 566 instructions per established
    // packet).
    #[inline(always)]
    fn reuse<A: Addr>(&self, c: &Conn<A>, dir: Dir, pkt: &Packet) -> bool {
        if dir != Dir::Input
            || pkt.flags & state::tcp_flags::SYN == 0
            || c.proto != proto::TCP
            || !pkt.update
            || c.link != NO_LINK
            || c.flags & cf::TEMPLATE != 0
        {
            return false;
        }
        let mode = self.conn_reuse_mode.load(Ordering::Relaxed);
        mode & 1 != 0
            && (c.state == state::tcp::TIME_WAIT
                || c.state == state::tcp::CLOSE
                || (mode & 2 != 0
                    && c.state == state::tcp::FIN_WAIT
                    && c.flags & cf::NOOUTPUT != 0))
    }

    /// The sysctl `expire_quiescent_template`: templates whose dest has weight 0 are invalid.
    pub fn set_expire_quiescent_template(&self, on: bool) {
        self.expire_quiescent_template.store(on, Ordering::Relaxed);
    }

    /// The FULLNAT port layout (per-worker ranges).
    #[must_use]
    pub fn port_layout(&self) -> PortLayout {
        self.layout
    }

    /// The shard of the endpoint `addr:port` (tests and steering).
    #[must_use]
    pub fn shard_of(&self, addr: IpAddr, port: u16) -> usize {
        let h = match addr {
            IpAddr::V4(a) => a.hash(self.seed),
            IpAddr::V6(a) => a.hash(self.seed),
        };
        shard_of(h, port)
    }

    /// Size of one slab slot: the fixed per-conn cost before the index.
    #[must_use]
    pub const fn slot_size(v6: bool) -> usize {
        if v6 {
            size_of::<Conn<Ipv6Addr>>()
        } else {
            size_of::<Conn<Ipv4Addr>>()
        }
    }

    /// Bytes per IPv4 NAT/DR/TUN conn with a full index: the slot plus one index entry (a
    /// 64-byte bucket holds 10, at most 7/8 of them used), rounded up. FULLNAT conns add one
    /// more index entry; IPv6 conns use [`Self::slot_size`]`(true)`.
    #[must_use]
    pub const fn bytes_per_conn() -> usize {
        Self::slot_size(false) + (64usize * 8).div_ceil(70)
    }

    /// Heap bytes held now: slab capacity, index allocations and port maps.
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        let mut total = size_of::<Self>() + NSHARDS * size_of::<CachePadded<ShardLock>>();
        for s in self.shards.iter() {
            let sh = lock(s);
            total += sh.index.allocation_size()
                + sh.v4.slots.capacity() * Self::slot_size(false)
                + sh.v6.slots.capacity() * Self::slot_size(true)
                + sh.lips.iter().map(LipPorts::heap_bytes).sum::<usize>();
        }
        total
    }

    #[inline]
    fn shard(&self, i: usize) -> ShardGuard<'_> {
        lock(&self.shards[i])
    }

    /// What a state-updating lookup carries about its packet.
    #[inline]
    fn packet(&self, tcp_flags: u8, len: u32, now_ms: u64, worker: usize) -> Packet {
        Packet {
            flags: tcp_flags,
            len,
            now_ms,
            worker,
            update: true,
            secure: self.secure_tcp(),
            fresh: false,
        }
    }

    /// Find the conn of a packet. On a hit: run the state machine for (direction, `tcp_flags`),
    /// move the dest between ActiveConn and InActConn if the state crossed the boundary,
    /// refresh the expiry to now + the state's timeout, count the packet and `len` bytes in the
    /// dest's and service's counters of `worker`, and return what the rewrite needs. A conn
    /// that is already due is removed and missed. Probes the client -> VIP direction first,
    /// then the reply direction (two shard visits on a miss; see [`Self::lookup_in`] and
    /// [`Self::lookup_out`] when the caller knows the direction).
    #[inline]
    pub fn lookup(
        &self,
        key: &FlowKey,
        tcp_flags: u8,
        len: u32,
        now_ms: u64,
        worker: usize,
        t: &Timeouts,
    ) -> Option<Hit> {
        let pkt = self.packet(tcp_flags, len, now_ms, worker);
        self.probe(key, Dir::Input, &pkt, t)
            .or_else(|| self.probe(key, Dir::Output, &pkt, t))
    }

    /// [`Self::lookup`] for the client -> VIP direction only (e.g. the packet's destination is
    /// a service address).
    #[inline]
    pub fn lookup_in(
        &self,
        key: &FlowKey,
        tcp_flags: u8,
        len: u32,
        now_ms: u64,
        worker: usize,
        t: &Timeouts,
    ) -> Option<Hit> {
        let pkt = self.packet(tcp_flags, len, now_ms, worker);
        self.probe(key, Dir::Input, &pkt, t)
    }

    /// [`Self::lookup`] for the reply direction only (dest -> client for NAT, dest -> LIP for
    /// FULLNAT).
    #[inline]
    pub fn lookup_out(
        &self,
        key: &FlowKey,
        tcp_flags: u8,
        len: u32,
        now_ms: u64,
        worker: usize,
        t: &Timeouts,
    ) -> Option<Hit> {
        let pkt = self.packet(tcp_flags, len, now_ms, worker);
        self.probe(key, Dir::Output, &pkt, t)
    }

    /// [`Self::lookup`] for an IPv4 TCP/UDP packet, without `IpAddr`s: the worker's fast path.
    /// Same semantics (client -> VIP probe first, then the reply direction; a due conn is
    /// removed and missed), except that the reply direction is probed only when
    /// `maybe_reply()` says the packet could be one (the caller knows its VIPs). A miss tells
    /// where the packet's conn would go, for [`Self::create_v4`].
    ///
    /// # Errors
    /// [`MissV4`] when no conn was found (not an error: a packet of no conn yet).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn lookup_v4(
        &self,
        key: &FlowKeyV4,
        tcp_flags: u8,
        len: u32,
        now_ms: u64,
        worker: usize,
        t: &Timeouts,
        maybe_reply: impl FnOnce() -> bool,
    ) -> Result<HitV4, MissV4> {
        let pkt = self.packet(tcp_flags, len, now_ms, worker);
        self.probe_v4_in(key, &pkt, t).or_else(|miss| {
            if maybe_reply() {
                self.probe_v4(key, Dir::Output, &pkt, t).ok_or(miss)
            } else {
                Err(miss)
            }
        })
    }

    /// The client -> VIP probe of [`Self::lookup_v4`], with the miss's [`MissV4`].
    #[inline(never)]
    fn probe_v4_in(&self, key: &FlowKeyV4, pkt: &Packet, t: &Timeouts) -> Result<HitV4, MissV4> {
        let (shard, hash) = home(
            Ipv4Addr::from_bits(key.src),
            key.sport,
            key.proto,
            self.seed,
        );
        let (hit, release, assure, version) = {
            let mut g = self.shard(shard);
            let (hit, release, assure) = self.probe_in_v4(&mut g, hash, key, pkt, t);
            (hit, release, assure, g.index.version())
        };
        self.after_unlock(release, assure);
        hit.ok_or(MissV4 {
            shard,
            hash,
            version,
        })
    }

    /// [`Self::probe_a`] for IPv4 keys, building a [`HitV4`].
    // PERF: out of line (called twice by `lookup_v4`): 811 instructions per established packet
    // in callgrind (examples/pipeline_cost) against 815 inlined and 867 with `probe_a` forced
    // inline.
    #[inline(never)]
    fn probe_v4(&self, key: &FlowKeyV4, dir: Dir, pkt: &Packet, t: &Timeouts) -> Option<HitV4> {
        let (src, dst) = (Ipv4Addr::from_bits(key.src), Ipv4Addr::from_bits(key.dst));
        let ports = (key.sport, key.dport);
        self.probe_a::<_, HitV4>(key.proto, src, dst, ports, dir, pkt, t)
    }

    /// Find the conn an ICMP error refers to (`key` is the flow of the quoted packet as the
    /// conn sees it; `dir` the probe to use, `None` for both). Counts the ICMP packet of `len`
    /// bytes in that direction, but neither changes the state nor re-arms the timer, as
    /// `ip_vs_in_icmp`/`ip_vs_out_icmp` do.
    pub fn lookup_icmp(
        &self,
        key: &FlowKey,
        dir: Option<Dir>,
        len: u32,
        now_ms: u64,
        worker: usize,
    ) -> Option<Hit> {
        let pkt = Packet {
            flags: 0,
            len,
            now_ms,
            worker,
            update: false,
            secure: self.secure_tcp(),
            fresh: false,
        };
        let t = Timeouts::default();
        match dir {
            Some(d) => self.probe(key, d, &pkt, &t),
            None => self
                .probe(key, Dir::Input, &pkt, &t)
                .or_else(|| self.probe(key, Dir::Output, &pkt, &t)),
        }
    }

    #[inline]
    fn probe(&self, key: &FlowKey, dir: Dir, pkt: &Packet, t: &Timeouts) -> Option<Hit> {
        let ports = (key.sport, key.dport);
        match (key.src, key.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                self.probe_a::<_, Hit>(key.proto, s, d, ports, dir, pkt, t)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                self.probe_a::<_, Hit>(key.proto, s, d, ports, dir, pkt, t)
            }
            _ => None,
        }
    }

    /// One probe of a packet `src:sport -> dst:dport` (`ports`): for `Dir::Input` the
    /// packet's source is the client; for `Dir::Output` its destination is the client (NAT) or
    /// the LIP (FULLNAT). A found conn that is due (or reused, see
    /// [`Self::set_conn_reuse_mode`]) is removed and missed; otherwise the hit type's
    /// [`MakeHit::make`] runs the packet through it and describes the conn.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn probe_a<A: Addr, H: MakeHit<A>>(
        &self,
        proto_num: u8,
        src: A,
        dst: A,
        (sport, dport): (u16, u16),
        dir: Dir,
        pkt: &Packet,
        t: &Timeouts,
    ) -> Option<H> {
        let (ep, ep_port) = match dir {
            Dir::Input => (src, sport),
            Dir::Output => (dst, dport),
        };
        let (shard, h) = home(ep, ep_port, proto_num, self.seed);
        let (hit, release, assure) = {
            let mut g = self.shard(shard);
            self.probe_locked::<A, H>(&mut g, h, proto_num, src, dst, (sport, dport), dir, pkt, t)
        };
        self.after_unlock(release, assure);
        hit
    }

    /// The part of [`Self::probe_a`] under the shard's lock: `sh` is the locked shard of the
    /// probed endpoint and `h` its bucket hash. Returns the hit and the template bookkeeping
    /// for [`Self::after_unlock`] (a reference to release, a template to mark ASSURED).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn probe_locked<A: Addr, H: MakeHit<A>>(
        &self,
        sh: &mut Shard,
        h: u64,
        proto_num: u8,
        src: A,
        dst: A,
        (sport, dport): (u16, u16),
        dir: Dir,
        pkt: &Packet,
        t: &Timeouts,
    ) -> (Option<H>, Option<u32>, Option<u32>) {
        let fam = if A::V6 { E_V6 } else { 0 };
        // Slot indexes: client-side endpoint `ci`, far endpoint `fi`.
        let (role, ep, ep_port, far, far_port, ci, fi) = match dir {
            Dir::Input => (E_IN, src, sport, dst, dport, 0, 1),
            Dir::Output => (E_OUT, dst, dport, src, sport, 3, 2),
        };
        {
            let id = sh.id;
            let (index, slab, lips) = A::parts(sh);
            let found = index.find(h, |e| {
                e & (role | E_V6) == (role | fam) && {
                    let c = &slab.slots[(e & E_SLOT) as usize];
                    c.addrs[ci] == ep
                        && c.ports[ci] == ep_port
                        && c.addrs[fi] == far
                        && c.ports[fi] == far_port
                        && c.proto == proto_num
                }
            });
            match found {
                Some(e) => {
                    let slot = e & E_SLOT;
                    let c = &slab.slots[slot as usize];
                    if c.expires_ms <= pkt.now_ms || self.reuse(c, dir, pkt) {
                        let r = self.remove_slot(index, slab, lips, slot);
                        (None, r.release, None)
                    } else {
                        let (mut hit, assure) =
                            H::make(&mut slab.slots[slot as usize], dir, pkt, t);
                        hit.placed(tref(id, A::V6, slot));
                        (Some(hit), None, assure)
                    }
                }
                None => (None, None, None),
            }
        }
    }

    /// The client -> VIP probe of `k` in its locked shard `sh` (bucket hash `h`).
    #[inline(always)]
    fn probe_in_v4(
        &self,
        sh: &mut Shard,
        h: u64,
        k: &FlowKeyV4,
        pkt: &Packet,
        t: &Timeouts,
    ) -> (Option<HitV4>, Option<u32>, Option<u32>) {
        let (src, dst) = (Ipv4Addr::from_bits(k.src), Ipv4Addr::from_bits(k.dst));
        let ports = (k.sport, k.dport);
        self.probe_locked::<_, HitV4>(sh, h, k.proto, src, dst, ports, Dir::Input, pkt, t)
    }

    /// [`Self::lookup_v4`] of two packets at once, both to service addresses (so each takes
    /// the client -> VIP probe only, as `lookup_v4` does when `maybe_reply()` is false): the
    /// two shards are locked together (in shard order, so two workers pairing the same
    /// shards cannot deadlock; no path holds one shard lock while taking another), the first
    /// packet is probed, and the second only if the first hit. Returns the first's hit, and
    /// for the second `Some(hit or miss)` or `None` when it was not probed (the first missed:
    /// the caller must then handle the first before looking the second up, as one at a
    /// time would). The table sees exactly what two `lookup_v4` calls in a row show it; the
    /// gain is that the second probe's loads no longer wait for the first packet's rewrite
    /// and the next lock, so the two lookups' dependent loads overlap. When the first misses,
    /// the lines its new conn and the second's probe will need (the free slots, the second's
    /// bucket) are read without changing anything, so they are cached by the time they are
    /// used. A miss carries its [`MissV4`], as `lookup_v4`'s does.
    #[allow(clippy::too_many_arguments)]
    pub fn lookup_v4_pair(
        &self,
        keys: [&FlowKeyV4; 2],
        tcp_flags: [u8; 2],
        lens: [u32; 2],
        now_ms: u64,
        worker: usize,
        t: &Timeouts,
    ) -> (Result<HitV4, MissV4>, Option<Result<HitV4, MissV4>>) {
        let [ka, kb] = keys;
        let pa = self.packet(tcp_flags[0], lens[0], now_ms, worker);
        let pb = Packet {
            flags: tcp_flags[1],
            len: lens[1],
            ..pa
        };
        let in_home = |k: &FlowKeyV4| home(Ipv4Addr::from_bits(k.src), k.sport, k.proto, self.seed);
        let ((sa, ha), (sb, hb)) = (in_home(ka), in_home(kb));
        let (a, b) = {
            let (lo, hi) = (sa.min(sb), sa.max(sb));
            let mut g_lo = self.shard(lo);
            let mut g_hi = (hi != lo).then(|| self.shard(hi));
            let a = {
                let sh = match g_hi.as_deref_mut() {
                    Some(h) if sa == hi => h,
                    _ => &mut *g_lo,
                };
                let a = self.probe_in_v4(sh, ha, ka, &pa, t);
                if a.0.is_none() {
                    // A miss (most likely a new conn): the line its conn will be stored in.
                    std::hint::black_box(sh.v4.peek_free());
                }
                (a, sh.index.version())
            };
            let sh = match g_hi.as_deref_mut() {
                Some(h) if sb == hi => h,
                _ => &mut *g_lo,
            };
            let b = if a.0.0.is_some() {
                Some((self.probe_in_v4(sh, hb, kb, &pb, t), sh.index.version()))
            } else {
                // The second is looked up after the first's miss is handled; meanwhile its
                // bucket and the line its conn would take are read in (no state changes).
                std::hint::black_box(sh.index.peek(hb) ^ u64::from(sh.v4.peek_free()));
                None
            };
            (a, b)
        };
        let ((a, release, assure), version) = a;
        self.after_unlock(release, assure);
        let a = a.ok_or(MissV4 {
            shard: sa,
            hash: ha,
            version,
        });
        let b = b.map(|((hit, release, assure), version)| {
            self.after_unlock(release, assure);
            hit.ok_or(MissV4 {
                shard: sb,
                hash: hb,
                version,
            })
        });
        (a, b)
    }

    /// Run a client -> VIP packet through the IPv4 conn `c` refers to (from an earlier hit's
    /// [`HitV4::conn_ref`]) without looking it up: when its slot still holds a live conn of
    /// exactly `c`'s identity that is neither due nor to be reused for this packet, do what a
    /// [`Self::lookup_v4`] hit on it does (state step, timer, counters, template ASSURED) and
    /// return whether its dest is available. Otherwise change nothing and return `None`: the
    /// caller looks the packet up, and that lookup sees the table as if this call had not been
    /// made (it removes a due conn, reuses one, or misses).
    ///
    /// A conn's client -> VIP key is unique in the table (creation checks under the shard
    /// lock), so a live conn with `c`'s identity is the one a lookup of its key finds.
    #[inline(always)]
    pub fn touch_v4(
        &self,
        c: &ConnRefV4,
        tcp_flags: u8,
        len: u32,
        now_ms: u64,
        worker: usize,
        t: &Timeouts,
    ) -> Option<bool> {
        let (shard, v6, slot) = untref(c.at);
        if v6 {
            // Not an IPv4 slot (or `NOT_STORED`).
            return None;
        }
        let pkt = self.packet(tcp_flags, len, now_ms, worker);
        let (available, assure) = {
            let mut g = self.shard(shard);
            let s = g.v4.slots.get_mut(slot)?;
            if s.flags & (cf::LIVE | cf::TEMPLATE | cf::UNHASHED) != cf::LIVE
                || s.addrs.map(Ipv4Addr::to_bits) != c.addrs
                || s.ports != c.ports
                || s.proto != c.proto
                || s.fwd != c.fwd_bits
                || s.expires_ms <= now_ms
                || self.reuse(s, Dir::Input, &pkt)
            {
                return None;
            }
            let assure = step(s, Dir::Input, &pkt, t);
            (s.dest.as_ref().is_some_and(|d| d.is_available()), assure)
        };
        self.after_unlock(None, assure);
        Some(available)
    }

    /// Template bookkeeping that needs another shard's lock: release a controlling reference,
    /// mark a template ASSURED.
    #[inline]
    fn after_unlock(&self, release: Option<u32>, assure: Option<u32>) {
        if let Some(r) = release {
            self.template_link(r, |link, _| *link = link.saturating_sub(1));
        }
        if let Some(r) = assure {
            self.template_link(r, |_, st| *st |= ctpl::ASSURED);
        }
    }

    /// Run `f` on the (link, state) of the live template `r` refers to.
    fn template_link(&self, r: u32, f: impl FnOnce(&mut u32, &mut u8)) {
        let (shard, v6, slot) = untref(r);
        let mut g = self.shard(shard);
        let both = cf::LIVE | cf::TEMPLATE;
        if v6 {
            if let Some(c) = g.v6.slots.get_mut(slot)
                && c.flags & both == both
            {
                f(&mut c.link, &mut c.state);
            }
        } else if let Some(c) = g.v4.slots.get_mut(slot)
            && c.flags & both == both
        {
            f(&mut c.link, &mut c.state);
        }
    }

    /// Remove a live slot: its index entries, its FULLNAT port, its dest binding. Returns the
    /// controlling template to release (outside the lock).
    fn remove_slot<A: Addr>(
        &self,
        index: &mut ConnIndex,
        slab: &mut Slab<A>,
        lips: &mut [LipPorts],
        slot: u32,
    ) -> Removed {
        let fam = if A::V6 { E_V6 } else { 0 };
        let c = &slab.slots[slot as usize];
        let flags = c.flags;
        let template = flags & cf::TEMPLATE != 0;
        if flags & cf::UNHASHED == 0 {
            let role = if template {
                E_TPL
            } else if unpack_fwd(c.fwd).0 == FwdMode::Masq {
                E_IN | E_OUT
            } else {
                E_IN
            };
            let first = slot | fam | role;
            index.remove(endpoint_hash(c, first, self.seed), first);
            if flags & cf::FNAT != 0 {
                let out = slot | fam | E_OUT;
                index.remove(endpoint_hash(c, out, self.seed), out);
            }
        }
        if flags & cf::FNAT != 0 {
            let laddr = c.addrs[3].ip();
            if let Some(p) = lips.iter_mut().find(|p| p.addr == laddr) {
                p.free(&self.layout, c.ports[3]);
            }
        }
        let release = (!template && c.link != NO_LINK).then_some(c.link);
        let inactive = flags & cf::INACTIVE != 0;
        let (dest, _svc) = slab.free(slot);
        if let Some(d) = dest {
            d.unbind(template, inactive);
        }
        self.count.fetch_sub(1, Ordering::Relaxed);
        Removed { release }
    }

    /// Create a conn for the first packet of a flow (after a lookup miss and scheduling),
    /// binding it to its dest (InActConn first, as every new conn starts INACTIVE), counting
    /// it in the dest's and service's `conns`, and running the packet through it.
    ///
    /// One-packet UDP conns (`-o`) are counted and answered but never inserted. If a conn with
    /// the same in-key exists (another worker won a race), that conn is used instead.
    pub fn create(
        &self,
        mut new: NewConn,
        now_ms: u64,
        worker: usize,
        t: &Timeouts,
    ) -> Result<Hit, ConnError> {
        self.defend(&mut new)?;
        let tu = new.tuple;
        match (tu.caddr, tu.vaddr, tu.daddr, tu.laddr) {
            (IpAddr::V4(c), IpAddr::V4(v), IpAddr::V4(d), IpAddr::V4(l)) => {
                self.create_a::<_, Hit>([c, v, d, l], new, now_ms, worker, t, None)
            }
            (IpAddr::V6(c), IpAddr::V6(v), IpAddr::V6(d), IpAddr::V6(l)) => {
                self.create_a::<_, Hit>([c, v, d, l], new, now_ms, worker, t, None)
            }
            _ => self.wrong_family(new),
        }
    }

    /// [`Self::create`] for an all-IPv4 conn, returning a [`HitV4`] (the worker's IPv4 fast
    /// path). A conn with an IPv6 address is refused with [`ConnError::Family`]. `miss` is the
    /// [`MissV4`] of this packet's lookup, if it had one (never another packet's): when its
    /// shard's index has not changed since, no other worker created the conn meanwhile and
    /// the check for one is skipped.
    pub fn create_v4(
        &self,
        mut new: NewConn,
        now_ms: u64,
        worker: usize,
        t: &Timeouts,
        miss: Option<MissV4>,
    ) -> Result<HitV4, ConnError> {
        self.defend(&mut new)?;
        let tu = new.tuple;
        match (tu.caddr, tu.vaddr, tu.daddr, tu.laddr) {
            (IpAddr::V4(c), IpAddr::V4(v), IpAddr::V4(d), IpAddr::V4(l)) => {
                self.create_a::<_, HitV4>([c, v, d, l], new, now_ms, worker, t, miss)
            }
            _ => self.wrong_family(new),
        }
    }

    /// The `drop_packet` defence's word on a new conn: refused ([`ConnError::Defence`], its
    /// template reservation released) or let through.
    #[inline]
    fn defend(&self, new: &mut NewConn) -> Result<(), ConnError> {
        if self.todrop() {
            if let Some(r) = new.control.take() {
                self.template_put(r);
            }
            return Err(ConnError::Defence);
        }
        Ok(())
    }

    /// Refuse a conn whose addresses mix families, releasing its template reservation.
    #[cold]
    fn wrong_family<H>(&self, new: NewConn) -> Result<H, ConnError> {
        if let Some(r) = new.control {
            self.template_put(r);
        }
        Err(ConnError::Family)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_a<A: Addr, H: MakeHit<A>>(
        &self,
        mut addrs: [A; 4],
        new: NewConn,
        now_ms: u64,
        worker: usize,
        t: &Timeouts,
        miss: Option<MissV4>,
    ) -> Result<H, ConnError> {
        let tu = new.tuple;
        let fnat = new.fwd == FwdMode::FullNat;
        let masq = new.fwd == FwdMode::Masq;
        let mut ports = [tu.cport, tu.vport, tu.dport, tu.lport];
        if !fnat {
            addrs[3] = addrs[0];
            ports[3] = ports[0];
        }
        // The kernel: NO_OUTPUT for every non-NAT dest; FULLNAT sees replies like NAT.
        let mut flags = cf::LIVE | cf::INACTIVE;
        if !masq && !fnat {
            flags |= cf::NOOUTPUT;
        }
        let control = new.control.map(|r| r.0).unwrap_or(NO_LINK);
        let pkt = Packet {
            flags: new.tcp_flags,
            len: new.len,
            now_ms,
            worker,
            update: true,
            secure: self.secure_tcp(),
            fresh: false,
        };
        // The new conn's own first packet: bound after it, in one atomic add (the kernel binds
        // inactive and moves the conn on its first state change: three for a SYN, same counts).
        let first = Packet { fresh: true, ..pkt };
        let mut conn = Conn {
            addrs,
            ports,
            proto: tu.proto,
            state: 0,
            flags,
            fwd: pack_fwd(new.fwd, &new.tun),
            tun_port: new.tun.port,
            link: control,
            timeout_ms: NEW_CONN_TIMEOUT_MS,
            expires_ms: now_ms + u64::from(NEW_CONN_TIMEOUT_MS),
            dest: Some(new.dest),
            svc: Some(new.svc),
            _align: [],
        };
        if new.one_packet && tu.proto == proto::UDP {
            // Bound, counted, used for this packet and expired at once (ip_vs_conn_put).
            conn.flags |= cf::ONE_PACKET;
            let (hit, _) = H::make(&mut conn, Dir::Input, &first, t);
            bind_new(&conn, worker);
            if let Some(d) = &conn.dest {
                d.unbind(false, conn.flags & cf::INACTIVE != 0);
            }
            if control != NO_LINK {
                self.after_unlock(Some(control), None);
            }
            return Ok(hit);
        }
        let fam = if A::V6 { E_V6 } else { 0 };
        // The lookup's miss knows the home shard and bucket hash of this very key.
        let (shard, in_hash) = match miss {
            Some(m) => (m.shard, m.hash),
            None => home(addrs[0], ports[0], tu.proto, self.seed),
        };
        debug_assert_eq!(
            (shard, in_hash),
            home(addrs[0], ports[0], tu.proto, self.seed),
            "a MissV4 of another key"
        );
        let mut release = None;
        let mut assure = None;
        let result = {
            let mut g = self.shard(shard);
            let Shard {
                index,
                v4,
                v6,
                lips,
                ..
            } = &mut *g;
            let seed = self.seed;
            // Unchanged since the miss: nobody created the conn meanwhile.
            let existing = if miss.is_some_and(|m| m.version == index.version()) {
                None
            } else {
                let slab = A::slab_mut_of(v4, v6);
                index.find(in_hash, |e| {
                    e & (E_IN | E_V6) == (E_IN | fam) && {
                        let c = &slab.slots[(e & E_SLOT) as usize];
                        c.addrs[0] == addrs[0]
                            && c.ports[0] == ports[0]
                            && c.addrs[1] == addrs[1]
                            && c.ports[1] == ports[1]
                            && c.proto == tu.proto
                    }
                })
            };
            if let Some(e) = existing {
                // Lost a race: use the existing conn; give back what this one reserved.
                release = (control != NO_LINK).then_some(control);
                let slab = A::slab_mut_of(v4, v6);
                let (mut hit, a) =
                    H::make(&mut slab.slots[(e & E_SLOT) as usize], Dir::Input, &pkt, t);
                hit.placed(tref(shard, A::V6, e & E_SLOT));
                assure = a;
                Ok(hit)
            } else if self.count.fetch_add(1, Ordering::Relaxed) >= self.max_conns {
                Err(ConnError::Full)
            } else {
                let mut ok = true;
                if fnat {
                    let lh = addrs[3].hash(seed);
                    #[allow(clippy::cast_possible_truncation)] // INVARIANT: shard < 64.
                    let lo = ((lh as u32 ^ shard as u32) & SHARD_MASK) as u16;
                    let laddr = addrs[3].ip();
                    let i = match lips.iter().position(|p| p.addr == laddr) {
                        Some(i) => i,
                        None => {
                            lips.push(LipPorts::new(laddr, lo, &self.layout));
                            lips.len() - 1
                        }
                    };
                    match lips[i].alloc(&self.layout, worker) {
                        Some(p) => {
                            conn.ports[3] = p;
                            conn.flags |= cf::FNAT;
                        }
                        None => ok = false,
                    }
                }
                let slab_full = A::slab_mut_of(v4, v6).is_full();
                if !ok {
                    Err(ConnError::NoLocalPort)
                } else if slab_full {
                    if conn.flags & cf::FNAT != 0
                        && let Some(p) = lips.iter_mut().find(|p| p.addr == addrs[3].ip())
                    {
                        p.free(&self.layout, conn.ports[3]);
                    }
                    Err(ConnError::Full)
                } else {
                    let (mut hit, a) = H::make(&mut conn, Dir::Input, &first, t);
                    bind_new(&conn, worker);
                    assure = a;
                    let out_hash = fnat
                        .then(|| bucket_hash(conn.addrs[3].hash(seed), conn.ports[3], tu.proto));
                    let slot = A::slab_mut_of(v4, v6).alloc(conn);
                    hit.placed(tref(shard, A::V6, slot));
                    let role = if masq { E_IN | E_OUT } else { E_IN };
                    insert_entry(index, in_hash, slot | fam | role, v4, v6, seed);
                    if let Some(oh) = out_hash {
                        insert_entry(index, oh, slot | fam | E_OUT, v4, v6, seed);
                    }
                    self.rehint(shard, &g);
                    Ok(hit)
                }
            }
        };
        if result.is_err() {
            // Nothing was inserted: undo the count and the reservation.
            self.count.fetch_sub(1, Ordering::Relaxed);
            if control != NO_LINK {
                release = Some(control);
            }
        }
        self.after_unlock(release, assure);
        result
    }

    /// Remove the conn whose client -> VIP key is `in_key` (control path and tests).
    /// Returns whether one was removed.
    pub fn remove(&self, in_key: &FlowKey) -> bool {
        match (in_key.src, in_key.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.remove_a(in_key, s, d),
            (IpAddr::V6(s), IpAddr::V6(d)) => self.remove_a(in_key, s, d),
            _ => false,
        }
    }

    fn remove_a<A: Addr>(&self, key: &FlowKey, src: A, dst: A) -> bool {
        let fam = if A::V6 { E_V6 } else { 0 };
        let (shard, h) = home(src, key.sport, key.proto, self.seed);
        let release = {
            let mut g = self.shard(shard);
            let (index, slab, lips) = A::parts(&mut g);
            let found = index.find(h, |e| {
                e & (E_IN | E_V6) == (E_IN | fam) && {
                    let c = &slab.slots[(e & E_SLOT) as usize];
                    c.addrs[0] == src
                        && c.ports[0] == key.sport
                        && c.addrs[1] == dst
                        && c.ports[1] == key.dport
                        && c.proto == key.proto
                }
            });
            found.map(|e| self.remove_slot(index, slab, lips, e & E_SLOT).release)
        };
        match release {
            Some(r) => {
                self.after_unlock(r, None);
                true
            }
            None => false,
        }
    }

    /// Look up the persistence template for `key` (`ip_vs_ct_in_get` + `ip_vs_check_template`).
    /// A template whose dest is gone, or has weight 0 while `expire_quiescent_template` is on, is
    /// invalidated (unindexed; it expires on its own timer) and missed. On a hit the template's
    /// timer is refreshed to now + its timeout and a reservation is taken (see
    /// [`TemplateRef`]).
    pub fn template_lookup(&self, key: &TemplateKey, now_ms: u64) -> Option<TemplateHit> {
        match (key.caddr, key.vaddr) {
            (IpAddr::V4(c), IpAddr::V4(v)) => self.template_lookup_a(key, c, v, now_ms),
            (IpAddr::V6(c), IpAddr::V6(v)) => self.template_lookup_a(key, c, v, now_ms),
            _ => None,
        }
    }

    fn template_lookup_a<A: Addr>(
        &self,
        key: &TemplateKey,
        caddr: A,
        vaddr: A,
        now_ms: u64,
    ) -> Option<TemplateHit> {
        let fam = if A::V6 { E_V6 } else { 0 };
        let (shard, h) = home(caddr, 0, key.proto, self.seed);
        let mut release = None;
        let out = {
            let mut g = self.shard(shard);
            let (index, slab, lips) = A::parts(&mut g);
            let found = index.find(h, |e| {
                e & (E_TPL | E_V6) == (E_TPL | fam) && {
                    let c = &slab.slots[(e & E_SLOT) as usize];
                    c.addrs[0] == caddr
                        && c.ports[0] == 0
                        && c.addrs[1] == vaddr
                        && c.ports[1] == key.vport
                        && c.proto == key.proto
                }
            });
            let quiescent = self.expire_quiescent_template.load(Ordering::Relaxed);
            match found {
                None => None,
                Some(e) => {
                    let slot = e & E_SLOT;
                    let c = &slab.slots[slot as usize];
                    let valid = c.dest.as_ref().is_some_and(|d| {
                        d.is_available() && !(quiescent && d.weight.load(Ordering::Relaxed) == 0)
                    });
                    if c.expires_ms <= now_ms && c.link == 0 {
                        release = self.remove_slot(index, slab, lips, slot).release;
                        None
                    } else if !valid {
                        // Invalidate: unhash, keep until its own timer (not restarted).
                        index.remove(h, e);
                        slab.slots[slot as usize].flags |= cf::UNHASHED;
                        None
                    } else {
                        let c = &mut slab.slots[slot as usize];
                        if c.expires_ms <= now_ms {
                            // Its timer would have fired while it controlled conns.
                            c.timeout_ms = EXPIRE_LATER_MS;
                        }
                        c.expires_ms = now_ms + u64::from(c.timeout_ms);
                        c.link += 1;
                        c.dest.clone().map(|dest| TemplateHit {
                            tref: TemplateRef(tref(shard, A::V6, slot)),
                            dest,
                            daddr: c.addrs[2].ip(),
                            dport: c.ports[2],
                        })
                    }
                }
            }
        };
        self.after_unlock(release, None);
        out
    }

    /// Create a template for `key` pointing at the dest `dest` (`daddr:dport`, with `dport`
    /// from [`TemplateKey::template_dport`]), with the service's persistence timeout, counted in
    /// the dest's PersistConn. Returns a reservation for the conn about to be created.
    pub fn template_create(
        &self,
        key: &TemplateKey,
        daddr: IpAddr,
        dport: u16,
        dest: Arc<DestState>,
        timeout_ms: u32,
        now_ms: u64,
    ) -> Result<TemplateRef, ConnError> {
        match (key.caddr, key.vaddr, daddr) {
            (IpAddr::V4(c), IpAddr::V4(v), IpAddr::V4(d)) => {
                self.template_create_a(key, [c, v, d, c], dport, dest, timeout_ms, now_ms)
            }
            (IpAddr::V6(c), IpAddr::V6(v), IpAddr::V6(d)) => {
                self.template_create_a(key, [c, v, d, c], dport, dest, timeout_ms, now_ms)
            }
            _ => Err(ConnError::Family),
        }
    }

    fn template_create_a<A: Addr>(
        &self,
        key: &TemplateKey,
        addrs: [A; 4],
        dport: u16,
        dest: Arc<DestState>,
        timeout_ms: u32,
        now_ms: u64,
    ) -> Result<TemplateRef, ConnError> {
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.max_conns {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(ConnError::Full);
        }
        let fam = if A::V6 { E_V6 } else { 0 };
        let (shard, h) = home(addrs[0], 0, key.proto, self.seed);
        let conn = Conn {
            addrs,
            ports: [0, key.vport, dport, 0],
            proto: key.proto,
            state: ctpl::NONE,
            flags: cf::LIVE | cf::TEMPLATE,
            fwd: 0,
            tun_port: 0,
            link: 1,
            timeout_ms,
            expires_ms: now_ms + u64::from(timeout_ms),
            dest: Some(dest),
            svc: None,
            _align: [],
        };
        let mut g = self.shard(shard);
        let Shard { index, v4, v6, .. } = &mut *g;
        if A::slab_mut_of(v4, v6).is_full() {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(ConnError::Full);
        }
        if let Some(d) = &conn.dest {
            d.bind(true, true);
        }
        let slot = A::slab_mut_of(v4, v6).alloc(conn);
        insert_entry(index, h, slot | fam | E_TPL, v4, v6, self.seed);
        self.rehint(shard, &g);
        Ok(TemplateRef(tref(shard, A::V6, slot)))
    }

    /// Give back a reservation without creating a conn.
    pub fn template_put(&self, r: TemplateRef) {
        self.after_unlock(Some(r.0), None);
    }

    /// Remove due entries, examining at most about `budget` slots (round robin over shards, a
    /// cursor per shard). Returns how many entries were removed. Never sweeps the whole table.
    pub fn expire(&self, now_ms: u64, budget: usize) -> usize {
        let mut left = budget.max(1);
        let mut removed = 0;
        // SYN-flood defence: half-open conns at least this old are due too (u64::MAX: off).
        let drop_age = if self.defence_active() {
            u64::from(self.defence_min_age_ms.load(Ordering::Relaxed))
        } else {
            u64::MAX
        };
        for _ in 0..NSHARDS {
            if left == 0 {
                break;
            }
            let i = self.expire_next.fetch_add(1, Ordering::Relaxed) % NSHARDS;
            let mut deferred = [0u32; DEFER];
            let mut nd = 0;
            {
                let mut g = self.shard(i);
                let n4 = g.v4.slots.len();
                let total = n4 + g.v6.slots.len();
                let mut visits = 0;
                while visits < left && nd < DEFER && total > 0 {
                    if g.cursor >= total {
                        g.cursor = 0;
                    }
                    let pos = g.cursor;
                    g.cursor += 1;
                    visits += 1;
                    let r = if pos < n4 {
                        let (index, slab, lips) = Ipv4Addr::parts(&mut g);
                        self.expire_slot(index, slab, lips, pos, now_ms, drop_age)
                    } else {
                        let (index, slab, lips) = Ipv6Addr::parts(&mut g);
                        self.expire_slot(index, slab, lips, pos - n4, now_ms, drop_age)
                    };
                    if let Some(rel) = r {
                        removed += 1;
                        if let Some(t) = rel {
                            deferred[nd] = t;
                            nd += 1;
                        }
                    }
                    if g.cursor >= total {
                        break;
                    }
                }
                left = left.saturating_sub(visits.max(1));
            }
            for &t in &deferred[..nd] {
                self.after_unlock(Some(t), None);
            }
        }
        removed
    }

    /// Expire one slot if due, or if it is a half-open TCP conn at least `drop_age` ms old
    /// (the SYN-flood defence; `u64::MAX` when it is off). `Some(release)` when removed.
    fn expire_slot<A: Addr>(
        &self,
        index: &mut ConnIndex,
        slab: &mut Slab<A>,
        lips: &mut [LipPorts],
        pos: usize,
        now_ms: u64,
        drop_age: u64,
    ) -> Option<Option<u32>> {
        let c = &mut slab.slots[pos];
        if c.flags & cf::LIVE == 0 {
            return None;
        }
        if c.expires_ms > now_ms {
            let half_open = c.proto == proto::TCP
                && c.flags & cf::TEMPLATE == 0
                && (c.state == state::tcp::SYN_RECV || c.state == state::tcp::SYNACK);
            // Age: the state's timeout minus what is left of it.
            let age = (now_ms + u64::from(c.timeout_ms)).saturating_sub(c.expires_ms);
            if !half_open || age < drop_age {
                return None;
            }
            self.defence_dropped.fetch_add(1, Ordering::Relaxed);
        }
        if c.flags & cf::TEMPLATE != 0 && c.link > 0 {
            // ip_vs_conn_expire: "do I control anybody?" -> expire_later.
            c.timeout_ms = EXPIRE_LATER_MS;
            c.expires_ms = now_ms + u64::from(EXPIRE_LATER_MS);
            return None;
        }
        #[allow(clippy::cast_possible_truncation)] // INVARIANT: slots < MAX_SLOTS.
        let r = self.remove_slot(index, slab, lips, pos as u32);
        Some(r.release)
    }

    /// Visit every entry (conns and templates), for `ipvsadm -Lnc`. Copies a chunk at a time
    /// so no shard lock is held while `f` runs.
    pub fn for_each(&self, now_ms: u64, mut f: impl FnMut(&ConnInfo)) {
        const CHUNK: usize = 256;
        let mut buf = Vec::with_capacity(CHUNK);
        for s in self.shards.iter() {
            let mut pos = 0usize;
            loop {
                buf.clear();
                let done = {
                    let g = lock(s);
                    let n4 = g.v4.slots.len();
                    let total = n4 + g.v6.slots.len();
                    while pos < total && buf.len() < CHUNK {
                        if pos < n4 {
                            let c = &g.v4.slots[pos];
                            if c.flags & cf::LIVE != 0 {
                                buf.push(c.info(now_ms));
                            }
                        } else {
                            let c = &g.v6.slots[pos - n4];
                            if c.flags & cf::LIVE != 0 {
                                buf.push(c.info(now_ms));
                            }
                        }
                        pos += 1;
                    }
                    pos >= total
                };
                for info in &buf {
                    f(info);
                }
                if done {
                    break;
                }
            }
        }
    }

    /// Drop every entry, unbinding dests (ActiveConn, InActConn and PersistConn go to zero
    /// for what this table held) and freeing FULLNAT ports. Reserved capacity is kept.
    pub fn flush(&self) {
        for (i, s) in self.shards.iter().enumerate() {
            let mut g = lock(s);
            let mut n = 0;
            for c in g.v4.slots.iter_mut() {
                n += unbind_slot(c);
            }
            for c in g.v6.slots.iter_mut() {
                n += unbind_slot(c);
            }
            g.index.clear();
            g.v4.clear();
            g.v6.clear();
            g.lips.clear();
            g.cursor = 0;
            self.rehint(i, &g);
            self.count.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

/// What a lookup or create hands back about a conn it ran a packet through: [`Hit`] for any
/// family, [`HitV4`] for the IPv4 fast path.
trait MakeHit<A: Addr>: Sized {
    /// Run the packet through `c` ([`step`]) and describe the conn; also the template to mark
    /// ASSURED.
    fn make(c: &mut Conn<A>, dir: Dir, pkt: &Packet, t: &Timeouts) -> (Self, Option<u32>);

    /// Where the conn is stored ([`tref`] form), for hits that carry it.
    #[inline(always)]
    fn placed(&mut self, _at: u32) {}
}

impl<A: Addr> MakeHit<A> for Hit {
    #[inline(always)]
    fn make(c: &mut Conn<A>, dir: Dir, pkt: &Packet, t: &Timeouts) -> (Self, Option<u32>) {
        touch(c, dir, pkt, t)
    }
}

impl MakeHit<Ipv4Addr> for HitV4 {
    #[inline(always)]
    fn make(c: &mut Conn<Ipv4Addr>, dir: Dir, pkt: &Packet, t: &Timeouts) -> (Self, Option<u32>) {
        touch_v4(c, dir, pkt, t)
    }

    #[inline(always)]
    fn placed(&mut self, at: u32) {
        self.at = at;
    }
}

/// Packet facts a hit needs.
struct Packet {
    flags: u8,
    len: u32,
    now_ms: u64,
    worker: usize,
    /// Run the state machine and re-arm the timer (false for ICMP errors about the conn).
    update: bool,
    /// Use the `secure_tcp` state table.
    secure: bool,
    /// The conn is being created and not yet bound to its dest: a state change flips only the
    /// conn's INACTIVE flag, and [`bind_new`] then counts it once in the class it ended in.
    fresh: bool,
}

/// Run one packet through a conn (`ip_vs_set_state` + stats + `ip_vs_conn_put`'s timer).
/// Returns the hit and the template to mark ASSURED (when a controlled conn got ESTABLISHED).
#[inline]
fn touch<A: Addr>(c: &mut Conn<A>, dir: Dir, pkt: &Packet, t: &Timeouts) -> (Hit, Option<u32>) {
    let assure = step(c, dir, pkt, t);
    let (fwd, tun) = c.fwd_tun();
    let hit = Hit {
        dir,
        tuple: c.tuple(),
        fwd,
        tun,
        state: c.state,
        flags: c.flags,
        dest_available: c.dest.as_ref().is_some_and(|d| d.is_available()),
    };
    (hit, assure)
}

/// A packet through a conn: the state step and timer (unless an ICMP error) and the dest's and
/// service's counters of the packet's worker. Returns the template to mark ASSURED.
#[inline(always)]
fn step<A: Addr>(c: &mut Conn<A>, dir: Dir, pkt: &Packet, t: &Timeouts) -> Option<u32> {
    let mut assure = None;
    if pkt.update {
        assure = transition(c, dir, pkt, t);
    }
    let len = u64::from(pkt.len);
    if let Some(d) = &c.dest {
        count(d.stats.slot(pkt.worker), dir, len);
    }
    if let Some(s) = &c.svc {
        count(s.stats.slot(pkt.worker), dir, len);
    }
    assure
}

/// [`touch`] for the IPv4 fast path: the same step, a [`HitV4`]. Always inlined: with two
/// callers (`probe_v4` and `create_v4`) the compiler would otherwise call it out of line from
/// the established packets' lookup (+25 instructions per packet, measured).
#[inline(always)]
fn touch_v4(c: &mut Conn<Ipv4Addr>, dir: Dir, pkt: &Packet, t: &Timeouts) -> (HitV4, Option<u32>) {
    let assure = step(c, dir, pkt, t);
    let hit = HitV4 {
        dir,
        fwd_bits: c.fwd,
        tun_port: c.tun_port,
        state: c.state,
        flags: c.flags,
        dest_available: c.dest.as_ref().is_some_and(|d| d.is_available()),
        addrs: c.addrs.map(Ipv4Addr::to_bits),
        ports: c.ports,
        proto: c.proto,
        at: NOT_STORED,
    };
    (hit, assure)
}

/// The state machine step and timer re-arm of one packet; returns the template to mark
/// ASSURED.
#[inline(always)]
fn transition<A: Addr>(c: &mut Conn<A>, dir: Dir, pkt: &Packet, t: &Timeouts) -> Option<u32> {
    let sdir = match dir {
        Dir::Output => {
            c.flags &= !cf::NOOUTPUT;
            StateDir::Output
        }
        Dir::Input if c.flags & cf::NOOUTPUT != 0 => StateDir::InputOnly,
        Dir::Input => StateDir::Input,
    };
    let new = state::next_state_with(pkt.secure, c.proto, sdir, pkt.flags, c.state);
    let mut assure = None;
    if new != c.state {
        if let Some(d) = &c.dest {
            let active = state::is_active(c.proto, new);
            let inactive = c.flags & cf::INACTIVE != 0;
            if !inactive && !active {
                if !pkt.fresh {
                    d.set_inactive(true);
                }
                c.flags |= cf::INACTIVE;
            } else if inactive && active {
                if !pkt.fresh {
                    d.set_inactive(false);
                }
                c.flags &= !cf::INACTIVE;
            }
        }
        if c.proto == proto::TCP && new == state::tcp::ESTABLISHED && c.link != NO_LINK {
            assure = Some(c.link);
        }
        c.state = new;
    }
    c.timeout_ms = state::timeout_ms(c.proto, new, t);
    c.expires_ms = pkt.now_ms + u64::from(c.timeout_ms);
    assure
}

#[inline(always)]
fn count(k: &Counters, dir: Dir, len: u64) {
    match dir {
        Dir::Input => {
            Counters::bump(&k.inpkts, 1);
            Counters::bump(&k.inbytes, len);
        }
        Dir::Output => {
            Counters::bump(&k.outpkts, 1);
            Counters::bump(&k.outbytes, len);
        }
    }
}

/// Bind a new conn to its dest, in ActiveConn or InActConn as its first packet left it (see
/// [`Packet::fresh`]), and count it (`ip_vs_conn_stats`).
fn bind_new<A: Addr>(c: &Conn<A>, worker: usize) {
    if let Some(d) = &c.dest {
        d.bind(false, c.flags & cf::INACTIVE != 0);
        Counters::bump(&d.stats.slot(worker).conns, 1);
    }
    if let Some(s) = &c.svc {
        Counters::bump(&s.stats.slot(worker).conns, 1);
    }
}

/// Unbind a slot during flush; 1 if it was live.
fn unbind_slot<A: Addr>(c: &mut Conn<A>) -> usize {
    if c.flags & cf::LIVE == 0 {
        return 0;
    }
    if let Some(d) = c.dest.take() {
        d.unbind(c.flags & cf::TEMPLATE != 0, c.flags & cf::INACTIVE != 0);
    }
    c.svc = None;
    c.flags = 0;
    1
}

fn tref(shard: usize, v6: bool, slot: u32) -> u32 {
    #[allow(clippy::cast_possible_truncation)] // INVARIANT: shard < 64.
    let s = shard as u32;
    (s << (R_SLOT_BITS + 1)) | (u32::from(v6) << R_SLOT_BITS) | (slot & R_SLOT)
}

/// The (shard, IPv6 slab, slot) a [`tref`] names. `NOT_STORED` reads as an IPv6 slot.
#[inline(always)]
fn untref(r: u32) -> (usize, bool, usize) {
    (
        (r >> (R_SLOT_BITS + 1)) as usize % NSHARDS,
        r & (1 << R_SLOT_BITS) != 0,
        (r & R_SLOT) as usize,
    )
}

fn insert_entry(
    index: &mut ConnIndex,
    hash: u64,
    e: u32,
    v4: &Slab<Ipv4Addr>,
    v6: &Slab<Ipv6Addr>,
    seed: u64,
) {
    index.insert(hash, e, |x| entry_hash(x, v4, v6, seed));
}

/// A shard's lock: a spin lock (DPDK's `rte_spinlock`, as DPVS guards its tables) whose
/// release is a plain store, where `std::sync::Mutex` pays a second atomic read-modify-write
/// and two poison checks per lookup. A shard is held for one probe, insert or remove (tens of
/// nanoseconds); a waiter spins briefly, then yields its core so that a holder that was
/// preempted (the control thread walking a shard, a worker on an oversubscribed machine) can
/// run.
type ShardLock = spin::mutex::SpinMutex<Shard, Backoff>;
type ShardGuard<'a> = spin::mutex::SpinMutexGuard<'a, Shard, Backoff>;

/// The waiting strategy of [`ShardLock`]: `spin_loop` hints, and every 64th wait a yield.
struct Backoff;

impl spin::RelaxStrategy for Backoff {
    #[inline]
    fn relax() {
        thread_local!(static SPINS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
        let n = SPINS.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n
        });
        if n.is_multiple_of(64) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

#[inline]
fn lock(m: &ShardLock) -> ShardGuard<'_> {
    m.lock()
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::conn::TemplateKey;
    use crate::conn::state::{tcp, tcp_flags as tf};
    use crate::service::{DestConf, ServiceConf, ServiceKey, svc_flags};
    use proptest::prelude::*;
    use std::collections::HashMap;

    const T: Timeouts = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn dest(weight: i32) -> Arc<DestState> {
        let conf = DestConf {
            addr: ip("10.0.0.2"),
            port: 8080,
            fwd: FwdMode::Masq,
            weight,
            u_threshold: 0,
            l_threshold: 0,
            tun: TunConf::default(),
        };
        Arc::new(DestState::new(&conf, 4))
    }

    fn svc() -> Arc<ServiceState> {
        Arc::new(ServiceState::new(4))
    }

    fn tuple(proto_num: u8, c: &str, cport: u16) -> ConnTuple {
        let c = ip(c);
        let (v, d, l) = if c.is_ipv4() {
            (ip("198.18.0.1"), ip("10.0.0.2"), ip("10.0.0.1"))
        } else {
            (ip("2001:db8::1"), ip("2001:db8::2"), ip("2001:db8::100"))
        };
        ConnTuple {
            proto: proto_num,
            caddr: c,
            vaddr: v,
            daddr: d,
            laddr: l,
            cport,
            vport: 80,
            dport: 8080,
            lport: 0,
        }
    }

    fn new_conn(tu: ConnTuple, fwd: FwdMode, d: &Arc<DestState>, s: &Arc<ServiceState>) -> NewConn {
        NewConn {
            tuple: tu,
            fwd,
            tun: TunConf::default(),
            dest: Arc::clone(d),
            svc: Arc::clone(s),
            control: None,
            one_packet: false,
            tcp_flags: tf::SYN,
            len: 60,
        }
    }

    fn counts(d: &DestState) -> (u32, u32, u32) {
        (
            d.activeconns.load(Ordering::Relaxed),
            d.inactconns.load(Ordering::Relaxed),
            d.persistconns.load(Ordering::Relaxed),
        )
    }

    fn expires_in(t: &ConnTable, now: u64) -> Vec<u64> {
        let mut v = Vec::new();
        t.for_each(now, |i| v.push(i.expires_in_ms));
        v
    }

    fn slot(port: u16) -> Conn<Ipv4Addr> {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        Conn {
            addrs: [a; 4],
            ports: [port; 4],
            proto: proto::TCP,
            state: 0,
            flags: cf::LIVE,
            fwd: 0,
            tun_port: 0,
            link: NO_LINK,
            timeout_ms: 0,
            expires_ms: 0,
            dest: None,
            svc: None,
            _align: [],
        }
    }

    #[test]
    fn slab_grows_by_batches_of_free_slots() {
        let mut s = Slab::<Ipv4Addr>::with_capacity(0);
        assert_eq!(s.alloc(slot(1)), 0);
        // The conn and SLAB_BATCH - 1 free slots behind it, linked in order.
        assert_eq!(s.slots.len(), SLAB_BATCH);
        assert_eq!(s.live, 1);
        assert!(s.slots[1..].iter().all(|c| c.flags & cf::LIVE == 0));
        for i in 1..SLAB_BATCH {
            assert_eq!(s.alloc(slot(1 + i as u16)) as usize, i);
        }
        assert_eq!(s.free_head, NO_LINK);
        assert_eq!(s.slots.len(), SLAB_BATCH);
        assert_eq!(s.alloc(slot(99)) as usize, SLAB_BATCH);
        assert_eq!(s.slots.len(), 2 * SLAB_BATCH);
        assert_eq!(s.live, SLAB_BATCH + 1);
        // A freed slot is the next one handed out, ahead of the batch's.
        s.free(3);
        assert_eq!(s.alloc(slot(7)), 3);
        assert_eq!(s.slots[3].ports[0], 7);
        assert_eq!(s.alloc(slot(8)) as usize, SLAB_BATCH + 1);
        assert_eq!(s.live, SLAB_BATCH + 2);
    }

    #[test]
    fn bad_bits_and_size() {
        assert_eq!(
            ConnTable::with_bits(7, 10, 1).unwrap_err(),
            ConnError::BadBits(7)
        );
        assert_eq!(
            ConnTable::with_bits(21, 10, 1).unwrap_err(),
            ConnError::BadBits(21)
        );
        assert_eq!(ConnTable::with_bits(12, 10, 1).unwrap().size(), 4096);
        assert_eq!(ConnTable::with_bits(20, 10, 1).unwrap().size(), 1 << 20);
    }

    #[test]
    fn bytes_per_conn_from_sizes() {
        let v4 = ConnTable::slot_size(false);
        let v6 = ConnTable::slot_size(true);
        // A 64-byte bucket of 10 entries, at most 7/8 of them used.
        let index_entry = 64.0 * 8.0 / 70.0;
        let nat4 = v4 as f64 + index_entry;
        let fnat6 = v6 as f64 + 2.0 * index_entry;
        println!(
            "slot v4 {v4} B, slot v6 {v6} B; per conn: v4 NAT/DR/TUN {nat4:.1} B, v4 FULLNAT {:.1} B, v6 NAT {:.1} B, v6 FULLNAT {fnat6:.1} B",
            v4 as f64 + 2.0 * index_entry,
            v6 as f64 + index_entry
        );
        assert!(nat4 <= 128.0);
        assert!(fnat6 <= 128.0);
        assert!(ConnTable::bytes_per_conn() as f64 >= nat4);
        // Measured: a filled table's heap divided by its conns.
        let t = ConnTable::with_bits(12, 20_000, 1).unwrap();
        let (d, s) = (dest(1), svc());
        for i in 0..20_000u32 {
            let c = Ipv4Addr::from(0x0a00_0000 + i / 1000);
            let mut tu = tuple(proto::TCP, "10.0.0.9", 1024 + (i % 1000) as u16);
            tu.caddr = IpAddr::V4(c);
            t.create(new_conn(tu, FwdMode::Route, &d, &s), 0, 0, &T)
                .unwrap();
        }
        let per = t.memory_bytes() as f64 / t.len() as f64;
        println!("measured heap per conn at 20k conns (conn_tab_bits 12, grown): {per:.1} B");
        assert!(per <= 128.0 * 1.5);
    }

    /// NAT: INPUT/OUTPUT rows, ActiveConn/InActConn moving, timeout per state.
    #[test]
    fn nat_walk_counts_and_timeouts() {
        let t = ConnTable::with_bits(12, 100, 2).unwrap();
        // The state table itself: a SYN in TIME_WAIT follows it (conn_reuse_mode 0).
        t.set_conn_reuse_mode(0);
        let (d, s) = (dest(1), svc());
        let tu = tuple(proto::TCP, "203.0.113.7", 40000);
        let hit = t
            .create(new_conn(tu, FwdMode::Masq, &d, &s), 1000, 0, &T)
            .unwrap();
        assert_eq!((hit.dir, hit.state), (Dir::Input, tcp::SYN_RECV));
        assert_eq!(hit.flags & cf::NOOUTPUT, 0);
        assert_eq!(counts(&d), (1, 0, 0));
        assert_eq!(expires_in(&t, 1000), vec![60_000]);
        // NAT replies come from the dest to the client.
        assert_eq!((hit.tuple.laddr, hit.tuple.lport), (tu.caddr, tu.cport));
        let out = hit.tuple.out_key();
        let inn = tu.in_key();
        let steps: &[(FlowKey, u8, Dir, u8, (u32, u32))] = &[
            (out, tf::SYN | tf::ACK, Dir::Output, tcp::SYN_RECV, (1, 0)),
            (inn, tf::ACK, Dir::Input, tcp::ESTABLISHED, (1, 0)),
            (inn, tf::FIN | tf::ACK, Dir::Input, tcp::CLOSE_WAIT, (0, 1)),
            (out, tf::FIN | tf::ACK, Dir::Output, tcp::TIME_WAIT, (0, 1)),
            (inn, tf::SYN, Dir::Input, tcp::SYN_RECV, (1, 0)),
            (inn, tf::RST, Dir::Input, tcp::SYN_RECV, (1, 0)),
            (out, tf::RST, Dir::Output, tcp::CLOSE, (0, 1)),
        ];
        let mut now = 1000;
        for &(k, f, dir, st, c) in steps {
            now += 10;
            let h = t.lookup(&k, f, 100, now, 1, &T).expect("hit");
            assert_eq!((h.dir, h.state), (dir, st), "{f:#x}");
            assert_eq!(h.tuple.daddr, tu.daddr);
            assert_eq!(counts(&d), (c.0, c.1, 0), "{f:#x}");
            let want = u64::from(state::timeout_ms(proto::TCP, st, &T));
            assert_eq!(expires_in(&t, now), vec![want]);
        }
        // Counters: worker 0 saw the SYN; worker 1 the rest.
        let w0 = d.stats.slot(0).read();
        let w1 = d.stats.slot(1).read();
        assert_eq!((w0.conns, w0.inpkts, w0.inbytes), (1, 1, 60));
        assert_eq!((w1.inpkts, w1.outpkts, w1.outbytes), (4, 3, 300));
        assert_eq!(s.stats.sum().inpkts, 5);
    }

    /// DR: INPUT_ONLY row always; the reply direction never matches.
    #[test]
    fn conn_reuse_mode_reschedules_a_syn_on_a_closed_conn() {
        let (d, s) = (dest(1), svc());
        let tu = tuple(proto::TCP, "203.0.113.7", 40000);
        let inn = tu.in_key();
        // NAT replies: from the dest to the client (a non-FULLNAT conn's laddr is the client).
        let mut nat = tu;
        (nat.laddr, nat.lport) = (tu.caddr, tu.cport);
        let out = nat.out_key();
        // (reuse mode, FwdMode, walk to the state, whether a new SYN then misses)
        let cases: &[(u8, FwdMode, &[(FlowKey, u8)], bool)] = &[
            // NAT conn closed by FIN both ways: TIME_WAIT.
            (
                1,
                FwdMode::Masq,
                &[(inn, tf::FIN | tf::ACK), (out, tf::FIN | tf::ACK)],
                true,
            ),
            // Reset: CLOSE.
            (1, FwdMode::Masq, &[(out, tf::RST)], true),
            // Mode 0: the SYN stays on the old conn.
            (0, FwdMode::Masq, &[(out, tf::RST)], false),
            // ESTABLISHED: never reused.
            (
                1,
                FwdMode::Masq,
                &[(out, tf::SYN | tf::ACK), (inn, tf::ACK)],
                false,
            ),
            // DR: FIN_WAIT without a reply seen is reused only with bit 1.
            (
                1,
                FwdMode::Route,
                &[(inn, tf::ACK), (inn, tf::FIN | tf::ACK)],
                false,
            ),
            (
                3,
                FwdMode::Route,
                &[(inn, tf::ACK), (inn, tf::FIN | tf::ACK)],
                true,
            ),
        ];
        for (i, &(mode, fwd, walk, misses)) in cases.iter().enumerate() {
            let t = ConnTable::with_bits(12, 100, 1).unwrap();
            t.set_conn_reuse_mode(mode);
            t.create(new_conn(tu, fwd, &d, &s), 1000, 0, &T).unwrap();
            let mut now = 1000;
            for &(k, f) in walk {
                now += 10;
                assert!(
                    t.lookup(&k, f, 60, now, 0, &T).is_some(),
                    "walk of case {i}"
                );
            }
            now += 10;
            let again = t.lookup(&inn, tf::SYN, 60, now, 0, &T);
            assert_eq!(again.is_none(), misses, "case {i}");
            assert_eq!(t.len(), usize::from(!misses), "case {i}");
            if misses {
                // The old conn is gone from its dest's counters too.
                assert_eq!(counts(&d), (0, 0, 0), "case {i}");
            }
            t.flush();
        }
        // A controlled conn (persistence) is never reused.
        let t = ConnTable::with_bits(12, 100, 1).unwrap();
        let tk = TemplateKey::new(
            &crate::service::ServiceConf {
                key: crate::service::ServiceKey::Inet {
                    proto: crate::service::Protocol::Tcp,
                    addr: tu.vaddr,
                    port: tu.vport,
                },
                sched_name: "rr".into(),
                flags: crate::service::svc_flags::PERSISTENT,
                timeout_s: 300,
                netmask: u32::MAX,
                pe_name: None,
                dests: vec![],
                laddrs: vec![],
            },
            proto::TCP,
            tu.caddr,
            tu.vaddr,
            tu.vport,
        );
        let tref = t
            .template_create(&tk, tu.daddr, tu.dport, Arc::clone(&d), 300_000, 1000)
            .unwrap();
        let mut nc = new_conn(tu, FwdMode::Masq, &d, &s);
        nc.control = Some(tref);
        t.create(nc, 1000, 0, &T).unwrap();
        t.lookup(&out, tf::RST, 60, 1010, 0, &T).expect("reset");
        let again = t
            .lookup(&inn, tf::SYN, 60, 1020, 0, &T)
            .expect("controlled: kept");
        assert_eq!(again.state, tcp::SYN_RECV);
    }

    #[test]
    fn dr_walk_input_only() {
        let t = ConnTable::with_bits(12, 100, 1).unwrap();
        let (d, s) = (dest(1), svc());
        let tu = tuple(proto::TCP, "203.0.113.7", 40001);
        let h = t
            .create(new_conn(tu, FwdMode::Route, &d, &s), 0, 0, &T)
            .unwrap();
        assert_ne!(h.flags & cf::NOOUTPUT, 0);
        assert_eq!(h.tuple.laddr, tu.caddr);
        assert!(t.lookup(&h.tuple.out_key(), tf::ACK, 1, 1, 0, &T).is_none());
        let k = tu.in_key();
        for (f, st, c) in [
            (tf::ACK, tcp::ESTABLISHED, (1, 0)),
            (tf::FIN | tf::ACK, tcp::FIN_WAIT, (0, 1)),
            (tf::ACK, tcp::FIN_WAIT, (0, 1)),
        ] {
            let h = t.lookup(&k, f, 1, 2, 0, &T).unwrap();
            assert_eq!(h.state, st);
            assert_eq!(counts(&d), (c.0, c.1, 0));
        }
        assert_eq!(expires_in(&t, 2), vec![120_000]);
        t.flush();
        assert_eq!((t.len(), counts(&d)), (0, (0, 0, 0)));
    }

    #[test]
    fn icmp_lookup_counts_without_state_or_timer() {
        let t = ConnTable::with_bits(12, 100, 1).unwrap();
        let (d, s) = (dest(1), svc());
        let tu = tuple(proto::TCP, "203.0.113.7", 40002);
        let h = t
            .create(new_conn(tu, FwdMode::Masq, &d, &s), 0, 0, &T)
            .unwrap();
        let h2 = t
            .lookup_icmp(&h.tuple.out_key(), Some(Dir::Output), 56, 5000, 0)
            .unwrap();
        assert_eq!((h2.dir, h2.state), (Dir::Output, tcp::SYN_RECV));
        assert!(
            t.lookup_icmp(&h.tuple.out_key(), Some(Dir::Input), 56, 5000, 0)
                .is_none()
        );
        assert_eq!(
            t.lookup_icmp(&tu.in_key(), None, 56, 5000, 0).unwrap().dir,
            Dir::Input
        );
        // Timer not re-armed: still due 60 s after creation.
        assert_eq!(expires_in(&t, 5000), vec![55_000]);
        assert_eq!(d.stats.slot(0).read().outpkts, 1);
        assert_eq!(d.stats.slot(0).read().inpkts, 2);
    }

    #[test]
    fn udp_stays_inactive_and_one_packet_is_not_inserted() {
        let t = ConnTable::with_bits(12, 100, 1).unwrap();
        let (d, s) = (dest(1), svc());
        let tu = tuple(proto::UDP, "203.0.113.7", 5353);
        let mut n = new_conn(tu, FwdMode::Masq, &d, &s);
        n.tcp_flags = 0;
        let h = t.create(n, 0, 0, &T).unwrap();
        assert_eq!(h.state, state::UDP_NORMAL);
        assert_eq!(counts(&d), (0, 1, 0));
        assert_eq!(expires_in(&t, 0), vec![300_000]);
        let mut info = Vec::new();
        t.for_each(0, |i| info.push(i.state_name));
        assert_eq!(info, vec!["UDP"]);

        let mut n = new_conn(
            tuple(proto::UDP, "203.0.113.8", 5353),
            FwdMode::Masq,
            &d,
            &s,
        );
        n.one_packet = true;
        let h = t.create(n, 0, 0, &T).unwrap();
        assert_ne!(h.flags & cf::ONE_PACKET, 0);
        assert_eq!(t.len(), 1);
        assert_eq!(counts(&d), (0, 1, 0));
        assert_eq!(d.stats.sum().conns, 2);
    }

    #[test]
    fn due_conns_miss_and_expire_is_bounded() {
        let t = ConnTable::with_bits(8, 10_000, 1).unwrap();
        let (d, s) = (dest(1), svc());
        let n = 1000;
        for i in 0..n {
            let mut c = new_conn(
                tuple(proto::UDP, "203.0.113.9", 1000 + i),
                FwdMode::Masq,
                &d,
                &s,
            );
            c.tcp_flags = 0;
            t.create(c, 0, 0, &T).unwrap();
        }
        assert_eq!(t.len(), 1000);
        assert_eq!(t.expire(299_999, 100_000), 0);
        // A due conn is missed (and removed) by lookup.
        let k = tuple(proto::UDP, "203.0.113.9", 1000).in_key();
        assert!(t.lookup(&k, 0, 1, 300_000, 0, &T).is_none());
        assert_eq!(t.len(), 999);
        let mut total = 1;
        let mut calls = 0;
        while !t.is_empty() {
            let r = t.expire(300_000, 16);
            assert!(r <= 16);
            total += r;
            calls += 1;
            assert!(calls < 10_000);
        }
        assert_eq!(total, 1000);
        assert!(calls >= 1000 / 16);
        assert_eq!(counts(&d), (0, 0, 0));
    }

    /// `lookup_v4_pair` shows the table exactly two `lookup_v4` calls in a row (for packets to
    /// a VIP), except that the second packet is not probed when the first misses.
    #[test]
    fn pair_lookup_is_two_lookups_in_a_row() {
        let v4 = |k: &FlowKey| {
            let (IpAddr::V4(src), IpAddr::V4(dst)) = (k.src, k.dst) else {
                unreachable!("IPv4 test keys")
            };
            FlowKeyV4 {
                proto: k.proto,
                src: src.to_bits(),
                dst: dst.to_bits(),
                sport: k.sport,
                dport: k.dport,
            }
        };
        let t = ConnTable::with_bits(12, 10_000, 1).unwrap();
        let (d, s) = (dest(1), svc());
        let tus: Vec<ConnTuple> = (0..200)
            .map(|i| tuple(proto::TCP, &format!("198.51.100.{}", i % 100), 30_000 + i))
            .collect();
        for tu in &tus {
            t.create(new_conn(*tu, FwdMode::Masq, &d, &s), 0, 0, &T)
                .unwrap();
        }
        let shard = |tu: &ConnTuple| t.shard_of(tu.caddr, tu.cport);
        let a = tus[0];
        let same = *tus[1..].iter().find(|tu| shard(tu) == shard(&a)).unwrap();
        let other = *tus[1..].iter().find(|tu| shard(tu) != shard(&a)).unwrap();
        let absent = tuple(proto::TCP, "198.51.100.250", 999);
        let pair = |x: &ConnTuple, y: &ConnTuple, now: u64| {
            let (kx, ky) = (v4(&x.in_key()), v4(&y.in_key()));
            t.lookup_v4_pair([&kx, &ky], [tf::ACK; 2], [40, 50], now, 0, &T)
        };
        let inpkts = || d.stats.slot(0).read().inpkts;
        // Both found, in two shards, in one, and one conn twice: both counted, in order.
        for (y, n) in [(other, 2), (same, 2), (a, 2)] {
            let before = inpkts();
            let (ha, hb) = pair(&a, &y, 1);
            let (ha, hb) = (
                ha.expect("first found"),
                hb.expect("probed").expect("found"),
            );
            assert_eq!(
                (ha.dir, ha.ports[0], hb.ports[0]),
                (Dir::Input, a.cport, y.cport)
            );
            assert_eq!(inpkts() - before, n);
        }
        // The first found, the second absent: probed and missed.
        let (ha, hb) = pair(&a, &absent, 1);
        assert!(ha.is_ok() && matches!(hb, Some(Err(_))));
        // The first absent: the second is not probed (not counted).
        let before = inpkts();
        let (ha, hb) = pair(&absent, &other, 1);
        assert!(ha.is_err() && hb.is_none());
        assert_eq!(inpkts(), before);
        // The first due: removed and missed as `lookup_v4` does, the second not probed.
        let len = t.len();
        let late = 1_000_000_000;
        let (ha, hb) = pair(&a, &other, late);
        assert!(ha.is_err() && hb.is_none());
        assert_eq!(t.len(), len - 1);
        let k = v4(&other.in_key());
        assert!(t.lookup_v4(&k, tf::ACK, 40, 1, 0, &T, || false).is_ok());
    }

    fn key_v4(tu: &ConnTuple) -> FlowKeyV4 {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (tu.caddr, tu.vaddr) else {
            unreachable!("IPv4 test tuples")
        };
        FlowKeyV4 {
            proto: tu.proto,
            src: src.to_bits(),
            dst: dst.to_bits(),
            sport: tu.cport,
            dport: tu.vport,
        }
    }

    /// A miss handed to `create_v4` creates the conn where a lookup will find it; when the
    /// shard changed meanwhile (here: another worker created the same conn), creation still
    /// finds that conn and uses it instead of indexing a second one.
    #[test]
    fn a_miss_creates_once_even_when_the_shard_changed() {
        let t = ConnTable::with_bits(12, 10_000, 2).unwrap();
        let (d1, d2, s) = (dest(1), dest(1), svc());
        let tu = tuple(proto::TCP, "198.51.100.7", 40_000);
        let k = key_v4(&tu);
        let miss = t
            .lookup_v4(&k, tf::SYN, 40, 1, 0, &T, || false)
            .unwrap_err();
        let hit = t
            .create_v4(new_conn(tu, FwdMode::Masq, &d1, &s), 1, 0, &T, Some(miss))
            .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.lookup_v4(&k, tf::ACK, 40, 2, 0, &T, || false).unwrap().at,
            hit.at
        );
        // Worker 1 misses the next flow, worker 0 creates it meanwhile, then worker 1 creates
        // with its (now stale) miss: the conn worker 0 made is used, bound to its dest.
        let tu2 = tuple(proto::TCP, "198.51.100.7", 40_001);
        let k2 = key_v4(&tu2);
        let stale = t
            .lookup_v4(&k2, tf::SYN, 40, 3, 1, &T, || false)
            .unwrap_err();
        let first = t
            .create_v4(new_conn(tu2, FwdMode::Masq, &d1, &s), 3, 0, &T, None)
            .unwrap();
        let second = t
            .create_v4(new_conn(tu2, FwdMode::Masq, &d2, &s), 3, 1, &T, Some(stale))
            .unwrap();
        assert_eq!(t.len(), 2, "no second conn for one key");
        assert_eq!(second.at, first.at);
        assert_eq!(counts(&d2), (0, 0, 0), "the losing dest is not bound");
        // A due conn the lookup removed on its way changes the shard too.
        let late = t.lookup_v4(&k2, tf::SYN, 40, 10_000_000, 0, &T, || false);
        assert!(late.is_err());
        assert_eq!(t.len(), 1);
        t.create_v4(
            new_conn(tu2, FwdMode::Masq, &d2, &s),
            10_000_000,
            0,
            &T,
            late.err(),
        )
        .unwrap();
        assert_eq!(t.len(), 2);
    }

    /// Two threads pairing the same shards in opposite orders (the deadlock a pair would risk
    /// without its lowest-first locking) all finish, and every lookup is counted once.
    #[test]
    fn pair_lookups_from_two_threads_finish() {
        let t = Arc::new(ConnTable::with_bits(12, 10_000, 2).unwrap());
        let (d, s) = (dest(1), svc());
        let keys: Vec<FlowKeyV4> = (0..64)
            .map(|i| {
                let tu = tuple(proto::TCP, &format!("198.51.100.{i}"), 30_000 + i);
                t.create(new_conn(tu, FwdMode::Masq, &d, &s), 0, 0, &T)
                    .unwrap();
                key_v4(&tu)
            })
            .collect();
        const ROUNDS: usize = 200_000;
        let inpkts = || (0..2).map(|w| d.stats.slot(w).read().inpkts).sum::<u64>();
        let before = inpkts();
        let (tx, rx) = std::sync::mpsc::channel();
        for worker in 0..2 {
            let (t, keys, tx) = (Arc::clone(&t), keys.clone(), tx.clone());
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    let (a, b) = (&keys[r % 64], &keys[(r * 7 + 1) % 64]);
                    let (a, b) = if worker == 0 { (a, b) } else { (b, a) };
                    let (ha, hb) = t.lookup_v4_pair([a, b], [tf::ACK; 2], [40; 2], 1, worker, &T);
                    assert!(ha.is_ok() && hb.is_some_and(|h| h.is_ok()));
                }
                tx.send(()).unwrap();
            });
        }
        for _ in 0..2 {
            rx.recv_timeout(std::time::Duration::from_secs(120))
                .expect("both threads finish (no deadlock)");
        }
        assert_eq!(inpkts() - before, 2 * 2 * ROUNDS as u64);
    }

    #[test]
    fn full_table_drops() {
        let t = ConnTable::with_bits(8, 3, 1).unwrap();
        let (d, s) = (dest(1), svc());
        for i in 0..3 {
            t.create(
                new_conn(
                    tuple(proto::TCP, "192.0.2.1", 100 + i),
                    FwdMode::Masq,
                    &d,
                    &s,
                ),
                0,
                0,
                &T,
            )
            .unwrap();
        }
        let e = t
            .create(
                new_conn(tuple(proto::TCP, "192.0.2.1", 200), FwdMode::Masq, &d, &s),
                0,
                0,
                &T,
            )
            .unwrap_err();
        assert_eq!(e, ConnError::Full);
        assert_eq!(e.drop_reason(), crate::stats::DropReason::ConnTableFull);
        assert_eq!((t.len(), counts(&d)), (3, (3, 0, 0)));
        assert!(t.remove(&tuple(proto::TCP, "192.0.2.1", 100).in_key()));
        assert!(!t.remove(&tuple(proto::TCP, "192.0.2.1", 100).in_key()));
        assert_eq!((t.len(), counts(&d)), (2, (2, 0, 0)));
    }

    #[test]
    fn cross_worker_lookup() {
        let t = Arc::new(ConnTable::with_bits(12, 1000, 2).unwrap());
        let (d, s) = (dest(1), svc());
        let tu = tuple(proto::TCP, "2001:db8:ffff::7", 40000);
        let tu = ConnTuple {
            laddr: tu.caddr,
            lport: tu.cport,
            ..tu
        };
        t.create(new_conn(tu, FwdMode::Masq, &d, &s), 0, 0, &T)
            .unwrap();
        let t2 = Arc::clone(&t);
        let h =
            std::thread::spawn(move || t2.lookup(&tu.out_key(), tf::SYN | tf::ACK, 80, 1, 1, &T))
                .join()
                .unwrap()
                .expect("found from another thread");
        assert_eq!((h.dir, h.tuple), (Dir::Output, tu));
        assert_eq!(d.stats.slot(1).read().outpkts, 1);
        assert_eq!(d.stats.slot(0).read().outpkts, 0);
        // Directed probes.
        assert!(t.lookup_in(&tu.out_key(), tf::ACK, 1, 2, 0, &T).is_none());
        assert!(t.lookup_out(&tu.in_key(), tf::ACK, 1, 2, 0, &T).is_none());
        assert_eq!(
            t.lookup_out(&tu.out_key(), tf::ACK, 1, 2, 0, &T)
                .unwrap()
                .dir,
            Dir::Output
        );
        assert_eq!(
            t.lookup_in(&tu.in_key(), tf::ACK, 1, 2, 0, &T).unwrap().dir,
            Dir::Input
        );
    }

    #[test]
    fn fullnat_ports_land_in_home_shard_and_worker_range() {
        let t = ConnTable::with_bits(12, 100_000, 2).unwrap();
        let (d, s) = (dest(1), svc());
        let layout = t.port_layout();
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000u16 {
            let w = usize::from(i % 2);
            let tu = tuple(
                proto::TCP,
                if i % 3 == 0 {
                    "192.0.2.77"
                } else {
                    "192.0.2.78"
                },
                1024 + i,
            );
            let h = t
                .create(new_conn(tu, FwdMode::FullNat, &d, &s), 0, w, &T)
                .unwrap();
            let lport = h.tuple.lport;
            assert_eq!(h.tuple.laddr, tu.laddr);
            assert!(lport >= 1024);
            assert_eq!(layout.owner(lport), Some(w));
            assert_eq!(t.shard_of(tu.laddr, lport), t.shard_of(tu.caddr, tu.cport));
            assert!(seen.insert(lport), "lport reused while in use");
            let r = t
                .lookup(&h.tuple.out_key(), tf::ACK, 1, 1, 1 - w, &T)
                .unwrap();
            assert_eq!((r.dir, r.tuple), (Dir::Output, h.tuple));
            // The in direction still finds it too.
            assert_eq!(
                t.lookup(&tu.in_key(), tf::ACK, 1, 1, w, &T).unwrap().dir,
                Dir::Input
            );
        }
        // Expiry frees the ports: the same flows get ports again.
        t.flush();
        assert_eq!(t.len(), 0);
        let tu = tuple(proto::TCP, "192.0.2.77", 5000);
        t.create(new_conn(tu, FwdMode::FullNat, &d, &s), 0, 0, &T)
            .unwrap();
        assert!(t.remove(&tu.in_key()));
        assert_eq!(t.len(), 0);
    }

    fn psvc(netmask: u32) -> ServiceConf {
        ServiceConf {
            key: ServiceKey::Inet {
                proto: crate::service::Protocol::Tcp,
                addr: ip("198.18.0.1"),
                port: 80,
            },
            sched_name: "rr".into(),
            flags: svc_flags::PERSISTENT,
            timeout_s: 300,
            netmask,
            pe_name: None,
            dests: Vec::new(),
            laddrs: Vec::new(),
        }
    }

    /// Persistence: -M keying, control links, PersistConn, expire_later, invalidation.
    #[test]
    fn templates_control_and_expire() {
        let t = ConnTable::with_bits(12, 100, 1).unwrap();
        let (d, s) = (dest(1), svc());
        let sc = psvc(0xffff_ff00);
        let c1 = tuple(proto::TCP, "203.0.113.10", 1111);
        let key = TemplateKey::new(&sc, proto::TCP, c1.caddr, c1.vaddr, c1.vport);
        assert!(t.template_lookup(&key, 0).is_none());
        let r = t
            .template_create(&key, c1.daddr, 8080, Arc::clone(&d), 300_000, 0)
            .unwrap();
        let mut n = new_conn(c1, FwdMode::Masq, &d, &s);
        n.control = Some(r);
        t.create(n, 0, 0, &T).unwrap();
        assert_eq!(counts(&d), (1, 0, 1));
        assert_eq!(t.len(), 2);
        // Another client of the same /24 finds the template.
        let c2 = tuple(proto::TCP, "203.0.113.200", 2222);
        let k2 = TemplateKey::new(&sc, proto::TCP, c2.caddr, c2.vaddr, c2.vport);
        let hit = t.template_lookup(&k2, 1000).expect("same /24");
        assert_eq!((hit.daddr, hit.dport), (c1.daddr, 8080));
        assert!(Arc::ptr_eq(&hit.dest, &d));
        let mut n = new_conn(c2, FwdMode::Masq, &d, &s);
        n.control = Some(hit.tref);
        t.create(n, 1000, 0, &T).unwrap();
        let mut infos = Vec::new();
        t.for_each(1000, |i| infos.push(*i));
        let tpl = infos.iter().find(|i| i.template).unwrap();
        assert_eq!((tpl.control, tpl.expires_in_ms, tpl.cport), (2, 300_000, 0));
        assert_eq!(tpl.caddr, ip("203.0.113.0"));
        assert_eq!(tpl.state_name, "NONE");
        // A client of another /24 does not.
        let k3 = TemplateKey::new(&sc, proto::TCP, ip("203.0.114.1"), c1.vaddr, 80);
        assert!(t.template_lookup(&k3, 1000).is_none());
        // ESTABLISHED on a controlled conn marks the template ASSURED.
        t.lookup(&c1.in_key(), tf::ACK, 1, 1000, 0, &T).unwrap();
        let mut names = Vec::new();
        t.for_each(1000, |i| {
            if i.template {
                names.push(i.state_name);
            }
        });
        assert_eq!(names, vec!["ASSURED"]);
        // At 301 s c2 (SYN_RECV, 60 s) is long gone; the template is due but still controls
        // c1: kept another 60 s and its timeout becomes 60 s (expire_later).
        assert_eq!(t.expire(301_000, 1000), 1);
        assert_eq!(t.len(), 2);
        let mut tpl = Vec::new();
        t.for_each(301_000, |i| {
            if i.template {
                tpl.push((i.control, i.expires_in_ms));
            }
        });
        assert_eq!(tpl, vec![(1, 60_000)]);
        assert_eq!(counts(&d), (1, 0, 1));
        // c1 (ESTABLISHED, 900 s from 1 s) goes at 901 s; the template at most 60 s later.
        t.expire(902_000, 1000);
        let mut conns = 0;
        t.for_each(902_000, |i| conns += usize::from(!i.template));
        assert_eq!(conns, 0);
        assert_eq!(counts(&d).0, 0);
        t.expire(962_001, 1000);
        assert_eq!((t.len(), counts(&d)), (0, (0, 0, 0)));
    }

    #[test]
    fn quiescent_and_unavailable_templates_are_invalid() {
        let t = ConnTable::with_bits(12, 100, 1).unwrap();
        let d = dest(1);
        let sc = psvc(u32::MAX);
        let key = TemplateKey::new(&sc, proto::TCP, ip("203.0.113.10"), ip("198.18.0.1"), 80);
        let r = t
            .template_create(&key, ip("10.0.0.2"), 8080, Arc::clone(&d), 60_000, 0)
            .unwrap();
        t.template_put(r);
        d.weight.store(0, Ordering::Relaxed);
        // The option is off: weight 0 still sticks.
        let h = t.template_lookup(&key, 10).expect("valid");
        t.template_put(h.tref);
        t.set_expire_quiescent_template(true);
        assert!(t.template_lookup(&key, 20).is_none());
        // Invalidated: unhashed but still counted until its timer (not restarted) fires.
        assert_eq!((t.len(), counts(&d).2), (1, 1));
        assert!(t.template_lookup(&key, 30).is_none());
        assert_eq!(t.expire(60_009, 100), 0);
        assert_eq!(t.expire(60_010, 100), 1);
        assert_eq!(counts(&d).2, 0);
        // A gone dest invalidates too.
        d.weight.store(1, Ordering::Relaxed);
        let r = t
            .template_create(&key, ip("10.0.0.2"), 8080, Arc::clone(&d), 60_000, 0)
            .unwrap();
        t.template_put(r);
        d.flags
            .fetch_and(!crate::service::dest_flags::AVAILABLE, Ordering::Relaxed);
        assert!(t.template_lookup(&key, 1).is_none());
    }

    #[test]
    fn v6_template_and_fullnat() {
        let t = ConnTable::with_bits(12, 100, 2).unwrap();
        let (d, s) = (dest(1), svc());
        let mut sc = psvc(64);
        sc.key = ServiceKey::Inet {
            proto: crate::service::Protocol::Tcp,
            addr: ip("2001:db8::1"),
            port: 80,
        };
        let tu = tuple(proto::TCP, "2001:db8:5:6:7:8:9:a", 3333);
        let key = TemplateKey::new(&sc, proto::TCP, tu.caddr, tu.vaddr, 80);
        let r = t
            .template_create(&key, tu.daddr, 8080, Arc::clone(&d), 10_000, 0)
            .unwrap();
        let mut n = new_conn(tu, FwdMode::FullNat, &d, &s);
        n.control = Some(r);
        let h = t.create(n, 0, 1, &T).unwrap();
        assert_eq!(t.port_layout().owner(h.tuple.lport), Some(1));
        assert!(
            t.lookup(&h.tuple.out_key(), tf::SYN | tf::ACK, 1, 1, 0, &T)
                .is_some()
        );
        let other = ip("2001:db8:5:6:ffff::1");
        let hit = t.template_lookup(&TemplateKey::new(&sc, proto::TCP, other, tu.vaddr, 80), 2);
        let hit = hit.expect("same /64");
        assert_eq!(hit.daddr, tu.daddr);
        t.template_put(hit.tref);
        let mixed = ConnTuple {
            daddr: ip("10.0.0.2"),
            ..tu
        };
        assert_eq!(
            t.create(new_conn(mixed, FwdMode::Masq, &d, &s), 0, 0, &T)
                .unwrap_err(),
            ConnError::Family
        );
        assert_eq!(counts(&d), (1, 0, 1));
    }

    /// Two threads create, look up, remove and expire at once; no deadlock, and the dest's
    /// counters end equal to what the table holds.
    #[test]
    fn concurrent_workers_keep_counts_consistent() {
        let t = Arc::new(ConnTable::with_bits(8, 100_000, 2).unwrap());
        let (d, s) = (dest(1), svc());
        let sc = psvc(0xffff_0000);
        let threads: Vec<_> = (0..2usize)
            .map(|w| {
                let (t, d, s, sc) = (Arc::clone(&t), Arc::clone(&d), Arc::clone(&s), sc.clone());
                std::thread::spawn(move || {
                    for i in 0..5000u32 {
                        let now = u64::from(i) * 10;
                        let c = format!("10.{}.{}.{}", w, (i / 250) % 256, i % 250);
                        let mut tu = tuple(proto::TCP, &c, 2000 + (i % 7) as u16);
                        tu.laddr = ip("10.255.0.1");
                        let key = TemplateKey::new(&sc, proto::TCP, tu.caddr, tu.vaddr, 80);
                        let tref = match t.template_lookup(&key, now) {
                            Some(h) => h.tref,
                            None => t
                                .template_create(&key, tu.daddr, 8080, Arc::clone(&d), 5_000, now)
                                .unwrap(),
                        };
                        let fwd = if i % 2 == 0 {
                            FwdMode::FullNat
                        } else {
                            FwdMode::Masq
                        };
                        let mut n = new_conn(tu, fwd, &d, &s);
                        n.control = Some(tref);
                        let h = t.create(n, now, w, &T).unwrap();
                        t.lookup(&h.tuple.out_key(), tf::SYN | tf::ACK, 1, now, 1 - w, &T);
                        if i % 3 == 0 {
                            t.remove(&tu.in_key());
                        }
                        t.expire(now, 8);
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        let (mut conns, mut tpls) = (0u32, 0u32);
        t.for_each(0, |i| {
            if i.template {
                tpls += 1;
            } else {
                conns += 1;
            }
        });
        let (a, ia, p) = counts(&d);
        assert_eq!((a + ia, p), (conns, tpls));
        assert_eq!(t.len(), (conns + tpls) as usize);
        // Everything goes eventually, templates after the conns they control.
        for k in 0..200 {
            t.expire(10_000_000 + k * 100_000, 100_000);
        }
        assert_eq!((t.len(), counts(&d)), (0, (0, 0, 0)));
    }

    #[test]
    fn lost_race_uses_existing_conn() {
        let t = ConnTable::with_bits(12, 100, 2).unwrap();
        let (d, s) = (dest(1), svc());
        let tu = tuple(proto::TCP, "192.0.2.5", 777);
        t.create(new_conn(tu, FwdMode::Masq, &d, &s), 0, 0, &T)
            .unwrap();
        let h = t
            .create(new_conn(tu, FwdMode::Masq, &d, &s), 1, 1, &T)
            .unwrap();
        assert_eq!(h.state, tcp::SYN_RECV);
        assert_eq!((t.len(), counts(&d)), (1, (1, 0, 0)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u16, bool),
        Lookup(u8, u16, bool),
        Remove(u8, u16, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        let k = (0u8..8, 0u16..16, any::<bool>());
        prop_oneof![
            k.clone().prop_map(|(a, p, v6)| Op::Insert(a, p, v6)),
            k.clone().prop_map(|(a, p, v6)| Op::Lookup(a, p, v6)),
            k.prop_map(|(a, p, v6)| Op::Remove(a, p, v6)),
        ]
    }

    fn model_tuple(a: u8, p: u16, v6: bool) -> ConnTuple {
        let c = if v6 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, u16::from(a)))
        } else {
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, a))
        };
        let mut tu = tuple(
            proto::TCP,
            if v6 { "2001:db8::9" } else { "192.0.2.9" },
            1000 + p,
        );
        tu.caddr = c;
        tu
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn model_check(ops in proptest::collection::vec(op(), 1..200)) {
            let t = ConnTable::with_bits(8, 64, 2).unwrap();
            let (d, s) = (dest(1), svc());
            let mut model: HashMap<FlowKey, FwdMode> = HashMap::new();
            for o in ops {
                match o {
                    Op::Insert(a, p, v6) => {
                        let tu = model_tuple(a, p, v6);
                        let fwd = match p % 3 { 0 => FwdMode::Masq, 1 => FwdMode::Route, _ => FwdMode::FullNat };
                        let r = t.create(new_conn(tu, fwd, &d, &s), 0, usize::from(a % 2), &T);
                        let k = tu.in_key();
                        if model.contains_key(&k) {
                            prop_assert!(r.is_ok());
                        } else if model.len() >= 64 {
                            prop_assert_eq!(r.unwrap_err(), ConnError::Full);
                        } else {
                            prop_assert!(r.is_ok(), "{:?}", r);
                            model.insert(k, fwd);
                        }
                    }
                    Op::Lookup(a, p, v6) => {
                        let tu = model_tuple(a, p, v6);
                        let h = t.lookup(&tu.in_key(), tf::ACK, 1, 1, 0, &T);
                        prop_assert_eq!(h.is_some(), model.contains_key(&tu.in_key()));
                        if let Some(h) = h {
                            prop_assert_eq!(h.fwd, model[&tu.in_key()]);
                            let out = t.lookup(&h.tuple.out_key(), tf::ACK, 1, 1, 1, &T);
                            prop_assert_eq!(out.is_some(), h.fwd != FwdMode::Route);
                        }
                    }
                    Op::Remove(a, p, v6) => {
                        let k = model_tuple(a, p, v6).in_key();
                        prop_assert_eq!(t.remove(&k), model.remove(&k).is_some());
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                let (act, inact, _) = counts(&d);
                prop_assert_eq!((act + inact) as usize, model.len());
            }
        }
    }
}
