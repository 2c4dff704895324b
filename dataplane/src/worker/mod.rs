//! The run-to-completion worker: one per core, generic over [`PacketIo`].
//!
//! One loop turn ([`Worker::poll`]): adopt a newer config snapshot if one was published (only
//! here, between bursts), receive a burst of up to [`BATCH`] frames, run each to completion
//! (parse, ARP/ND, conn lookup, schedule a new conn, rewrite for the forwarding mode, route,
//! resolve the next hop's MAC, write L2), transmit the survivors in one `tx_burst`, recycle the
//! rest, expire a bounded number of conns, and let the backend do its housekeeping.
//!
//! Two paths run a frame: the IPv4 fast path (`fast.rs`: untagged IPv4 TCP/UDP of NAT, FULLNAT
//! and DR conns, and the first packet of such a conn; a client -> VIP frame whose flow is in
//! the worker's flow cache (`flows.rs`) touches its conn by reference and is rewritten from
//! the cached next hop and checksum differences; two other such frames to a VIP in a row have
//! their conn lookups done together, then each is finished in order, with the conn table
//! seeing what one frame at a time would show it) and the general path here (everything:
//! IPv6, VLANs, ICMP, ARP/ND, TUN, MTU and TTL answers, held frames). The fast path declines a
//! frame before changing anything, or hands a found conn's packet to the general rewrite, so
//! both give the same bytes; `tests/fastpath.rs` checks that.
//!
//! Invariants: every received descriptor ends in exactly one of the tx or drop arrays or the
//! hold queue (frames waiting up to `HOLD_MS` for a next hop's MAC, as the kernel's neighbour
//! queue does); every
//! drop names a [`DropReason`]. Per-worker scheduler state (rr cursor, wrr weight, lblc table)
//! is kept per service and carried across snapshots with `AnyScheduler::inherit`.
//! Never, per packet: allocate, lock across the burst, log, or make a syscall.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::conn::{ConnError, ConnTable, Hit, NewConn, TemplateKey};
use crate::director::Director;
use crate::flow::{ConnTuple, Dir, FlowKey, proto};
use crate::fwd::{self, FwdConn, FwdCtx, Verdict};
use crate::io::{BATCH, Desc, Frame, PacketIo};
use crate::neigh::{NeighMap, NeighTable, NetConf, Routes};
use crate::sched::AnyScheduler;
use crate::service::{Family, FwdMode, Protocol, ServiceKey, Snapshot, svc_flags};
use crate::stats::{DropReason, WorkerStats};
use crate::wire::tcp::flags as tcp_flags;
use crate::wire::{self, PacketInfo, Parsed};

mod fast;
mod flows;
use fast::{Fast, HopCache};
use flows::FlowCache;

/// State shared by every worker of a director.
#[derive(Debug)]
pub struct Shared {
    /// Config snapshots and dest identities.
    pub director: Arc<Director>,
    /// The conn table (both directions, all workers).
    pub conns: Arc<ConnTable>,
    /// The neighbour cache.
    pub neigh: Arc<NeighTable>,
    /// Static network configuration.
    pub net: NetConf,
    /// Routes built from `net`.
    pub routes: Routes,
    /// Published per-worker counters (each worker writes its own slot now and then).
    pub worker_stats: Vec<Mutex<WorkerStats>>,
    /// Complete CHECKSUM_PARTIAL TCP/UDP checksums from local senders (see `fwd`).
    pub complete_partial: bool,
}

impl Shared {
    /// Everything the workers of a director share.
    pub fn new(
        director: Arc<Director>,
        conns: Arc<ConnTable>,
        net: NetConf,
        workers: usize,
    ) -> Result<Self, crate::neigh::NetError> {
        let routes = Routes::new(&net)?;
        let neigh = Arc::new(NeighTable::new(&net.neigh));
        let worker_stats = (0..workers.max(1))
            .map(|_| Mutex::new(WorkerStats::default()))
            .collect();
        Ok(Self {
            director,
            conns,
            neigh,
            net,
            routes,
            worker_stats,
            complete_partial: false,
        })
    }

    /// Sum of the published worker counters.
    #[must_use]
    pub fn stats(&self) -> WorkerStats {
        let mut t = WorkerStats::default();
        for s in &self.worker_stats {
            let s = s.lock().unwrap_or_else(PoisonError::into_inner);
            t.add(&s);
        }
        t
    }
}

/// Conns expired per loop turn at most (bounded work, never a stop-the-world sweep).
///
/// Expiry runs at most once per millisecond of the worker's clock, so its cost per packet
/// falls as the packet rate rises (at most 256k slot visits per second per worker: a table of
/// 1M conns is swept every 4 s; a lookup also removes a conn it finds past its time).
/// PERF: running it every turn with budget 64 cost ~117 instructions per packet in the
/// callgrind profile of examples/pipeline_cost (32-packet bursts).
pub const EXPIRE_BUDGET: usize = 256;

/// Publish counters every this many loop turns.
const PUBLISH_EVERY: u32 = 256;

/// A worker: one I/O backend, run to completion.
#[derive(Debug)]
pub struct Worker<I: PacketIo> {
    io: I,
    ctx: Ctx,
    rx: [Desc; BATCH],
    /// The fast path's classification of each received frame (`None`: the general path's).
    cls: [Option<fast::V4>; BATCH],
    /// The flow-cache entry of each classified frame's key.
    fslot: [usize; BATCH],
    tx: [Desc; BATCH],
    drop: [Desc; BATCH],
    turns: u32,
    last_expire_ms: u64,
    /// Frames waiting for a neighbour's MAC: (frame, next hop, since when).
    held: [(Desc, IpAddr, u64); HOLD],
    nheld: usize,
}

/// Conns in the table from which a worker prefetches ([`Worker::prefetch`]): below it the
/// table and the flow cache's used entries stay in the core's caches, and the prefetch passes
/// would only add work (measured with the pipeline bench: 1k conns, +150 instructions and no
/// faster; 1M conns, 147 -> 101 ns per established packet).
const PREFETCH_MIN_CONNS: usize = 1 << 14;

/// Frames a worker holds while their next hop is being resolved (as the kernel's neighbour
/// queue does); beyond it, or after [`HOLD_MS`], they are dropped as `NeighUnresolved`.
pub const HOLD: usize = 32;

/// How long a frame waits for its next hop's MAC.
pub const HOLD_MS: u64 = 1000;

// Released frames and a burst must fit the tx and drop arrays together.
const _: () = assert!(HOLD < BATCH);

/// Everything but the I/O backend, so a frame (which borrows the backend) and the context can
/// be borrowed at once.
#[derive(Debug)]
struct Ctx {
    index: usize,
    shared: Arc<Shared>,
    snap: Arc<Snapshot>,
    scheds: Vec<AnyScheduler>,
    neigh: Arc<NeighMap>,
    stats: WorkerStats,
    now_ms: u64,
    /// Last time we asked for each unresolved neighbour (bounded: cleared when large).
    asked: hashbrown::HashMap<IpAddr, u64>,
    /// Neighbour requests to send after the burst (address, port).
    want: [(IpAddr, u16); 8],
    wants: usize,
    /// Set by `l2_out` when the frame it just finished waits for `via`'s MAC.
    hold_for: Option<IpAddr>,
    /// ICMP error token bucket (see `leave`).
    icmp_tokens: u32,
    icmp_at: u64,
    /// Resolved IPv4 next hops of the fast path (emptied when `neigh` changes).
    hops: HopCache,
    /// Client -> VIP flows the fast path forwarded lately (emptied when `neigh` or `snap`
    /// changes).
    flows: FlowCache,
    /// Whether the IPv4 fast path runs (see [`Worker::set_fast_path`]); never with
    /// `Shared::complete_partial`.
    fast: bool,
    /// The last IPv4 destination `snap` answered `vip_only_v4` for, so a run of packets to
    /// one VIP asks its set once (forgotten with the snapshot).
    vip_hint: Option<u32>,
}

impl<I: PacketIo> Worker<I> {
    /// Worker number `index` over `io`.
    pub fn new(index: usize, io: I, shared: Arc<Shared>) -> Self {
        let snap = shared.director.snapshot();
        let scheds = snap
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| seeded(&s.sched, i, index))
            .collect();
        let neigh = shared.neigh.load();
        // The fast path never completes CHECKSUM_PARTIAL checksums: with that on, never run it.
        let fast = !shared.complete_partial;
        Self {
            io,
            ctx: Ctx {
                index,
                shared,
                snap,
                scheds,
                neigh,
                stats: WorkerStats::default(),
                now_ms: 0,
                asked: hashbrown::HashMap::with_capacity(64),
                want: [(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0); 8],
                wants: 0,
                hold_for: None,
                icmp_tokens: ICMP_BURST,
                icmp_at: 0,
                hops: HopCache::new(),
                flows: FlowCache::new(),
                vip_hint: None,
                fast,
            },
            rx: [Desc::default(); BATCH],
            cls: [None; BATCH],
            fslot: [0; BATCH],
            tx: [Desc::default(); BATCH],
            drop: [Desc::default(); BATCH],
            turns: 0,
            last_expire_ms: u64::MAX,
            held: [(
                Desc::default(),
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                0,
            ); HOLD],
            nheld: 0,
        }
    }

    /// The I/O backend.
    pub fn io(&self) -> &I {
        &self.io
    }

    /// The I/O backend, mutable (tests inject frames through it).
    pub fn io_mut(&mut self) -> &mut I {
        &mut self.io
    }

    /// Turn the IPv4 fast path (`fast.rs`) on (the default) or off. Off, every frame takes the
    /// general path; the output is the same byte for byte, which `tests/fastpath.rs` checks.
    pub fn set_fast_path(&mut self, on: bool) {
        self.ctx.fast = on && !self.ctx.shared.complete_partial;
    }

    /// This worker's counters (unpublished, exact).
    #[must_use]
    pub fn stats(&self) -> &WorkerStats {
        &self.ctx.stats
    }

    /// Adopt the newest snapshot if it changed, carrying scheduler positions over.
    fn adopt(&mut self) {
        // PERF: `snapshot()`/`load()` clone an `Arc` (two atomic RMWs on a cache line every
        // worker shares) per turn; the `_if_changed` forms only read when nothing changed.
        if let Some(snap) = self.ctx.shared.director.snapshot_if_changed(&self.ctx.snap) {
            let old = std::mem::replace(&mut self.ctx.snap, snap);
            let mut scheds = Vec::with_capacity(self.ctx.snap.services.len());
            for (si, s) in self.ctx.snap.services.iter().enumerate() {
                let mut sched = seeded(&s.sched, si, self.ctx.index);
                if let Some(i) = old.service_index(&s.conf.key) {
                    sched.inherit(&self.ctx.scheds[i], &old.services[i].dests, &s.dests);
                }
                scheds.push(sched);
            }
            self.ctx.scheds = scheds;
            self.ctx.vip_hint = None;
            self.ctx.flows.clear();
        }
        if let Some(n) = self.ctx.shared.neigh.load_if_changed(&self.ctx.neigh) {
            self.ctx.neigh = n;
            self.ctx.hops.clear();
            self.ctx.flows.clear();
        }
    }

    /// One loop turn at time `now_ms`. Returns the number of frames received.
    pub fn poll(&mut self, now_ms: u64) -> usize {
        self.ctx.now_ms = now_ms;
        self.adopt();
        let (mut ntx, mut ndrop) = (0, 0);
        if self.nheld > 0 {
            self.release_held(now_ms, &mut ntx, &mut ndrop);
        }
        // Every received frame ends in the tx or the drop array: leave room in both.
        let room = BATCH - ntx.max(ndrop);
        let n = self.io.rx_burst(&mut self.rx[..room]);
        // A table larger than the caches: fetch the burst's entries and conns ahead.
        let ahead = self.ctx.fast && self.ctx.shared.conns.len() >= PREFETCH_MIN_CONNS;
        if ahead {
            self.prefetch(n);
            (ntx, ndrop) = self.burst::<true>(n, now_ms, ntx, ndrop);
        } else {
            (ntx, ndrop) = self.burst::<false>(n, now_ms, ntx, ndrop);
        }
        if ntx > 0 {
            let sent = self.io.tx_burst(&self.tx[..ntx]);
            for d in &self.tx[..sent] {
                self.ctx.stats.tx_packets += 1;
                self.ctx.stats.tx_bytes += u64::from(d.len);
            }
            if sent < ntx {
                for _ in sent..ntx {
                    self.ctx.stats.drop(DropReason::TxFull);
                }
                self.io.recycle(&self.tx[sent..ntx]);
            }
        }
        if ndrop > 0 {
            self.io.recycle(&self.drop[..ndrop]);
        }
        self.send_neigh_requests();
        if now_ms != self.last_expire_ms {
            self.last_expire_ms = now_ms;
            self.ctx.shared.conns.expire(now_ms, EXPIRE_BUDGET);
        }
        self.io.service();
        self.turns = self.turns.wrapping_add(1);
        if self.turns.is_multiple_of(PUBLISH_EVERY) {
            self.publish();
        }
        n
    }

    /// The fast path's classification of received frame `i`: the one [`Self::prefetch`] stored
    /// (`ahead`), or worked out now.
    #[inline(always)]
    fn classified(&mut self, i: usize, ahead: bool) -> Option<fast::V4> {
        if ahead {
            self.cls[i]
        } else if self.ctx.fast {
            let mut d = self.rx[i];
            fast::classify(self.io.frame(&mut d).data())
        } else {
            None
        }
    }

    /// Classify the burst's `n` frames for the fast path and start fetching, for all of them at
    /// once, what their processing will read: each flow's cache entry, then for a cached flow
    /// its conn's shard and slot, for any other its shard and home bucket. The loop then finds
    /// them in cache instead of waiting for each in turn: with a table larger than the caches
    /// each would be a trip to memory. Reads only; decides nothing.
    #[inline(never)]
    fn prefetch(&mut self, n: usize) {
        for i in 0..n {
            let mut d = self.rx[i];
            self.cls[i] = fast::classify(self.io.frame(&mut d).data());
            if let Some(a) = &self.cls[i] {
                let slot = FlowCache::slot(&a.key);
                self.fslot[i] = slot;
                self.ctx.flows.prefetch_at(slot);
            }
        }
        let conns = &self.ctx.shared.conns;
        for (a, &slot) in self.cls[..n].iter().zip(&self.fslot[..n]) {
            if let Some(a) = a {
                match self.ctx.flows.get_at(slot, &a.key) {
                    Some(f) => conns.prefetch_ref_v4(&f.conn),
                    None => conns.prefetch_key_v4(&a.key),
                }
            }
        }
    }

    /// The frames of a received burst of `n`, one by one (two at a time where [`Self::pair`]
    /// applies), each into the tx, hold or drop array. `AHEAD`: [`Self::prefetch`] ran and
    /// left the classifications and flow-cache entries (two loops, so neither tests per frame).
    #[inline(never)]
    fn burst<const AHEAD: bool>(
        &mut self,
        n: usize,
        now_ms: u64,
        mut ntx: usize,
        mut ndrop: usize,
    ) -> (usize, usize) {
        let mut i = 0;
        while i < n {
            let mut d = self.rx[i];
            self.ctx.stats.rx_packets += 1;
            self.ctx.stats.rx_bytes += u64::from(d.len);
            let cls = self.classified(i, AHEAD);
            let cached = match &cls {
                Some(a) => {
                    let slot = if AHEAD {
                        self.fslot[i]
                    } else {
                        FlowCache::slot(&a.key)
                    };
                    fast::cached(&mut self.ctx, &mut self.io.frame(&mut d), a, slot)
                }
                None => None,
            };
            let verdict = match cls {
                Some(_) if let Some(v) = cached => v,
                // Two client -> VIP frames in a row: their lookups overlap (see `pair`).
                Some(a) if i + 1 < n && fast::pairable(&mut self.ctx, &a) => {
                    let db = self.rx[i + 1];
                    match self
                        .classified(i + 1, AHEAD)
                        .filter(|b| fast::pairable(&mut self.ctx, b))
                    {
                        Some(b) => {
                            self.pair(now_ms, (d, &a), (db, &b), &mut ntx, &mut ndrop);
                            i += 2;
                            continue;
                        }
                        None => self.fast_one(&mut d, &a),
                    }
                }
                Some(a) => self.fast_one(&mut d, &a),
                None => {
                    let mut frame = self.io.frame(&mut d);
                    general(&mut self.ctx, &mut frame)
                }
            };
            self.settle(d, verdict, now_ms, &mut ntx, &mut ndrop);
            i += 1;
        }
        (ntx, ndrop)
    }

    /// One classified fast-path frame: look it up and forward it, or schedule its new conn.
    #[inline(always)]
    fn fast_one(&mut self, d: &mut Desc, p: &fast::V4) -> Result<(), DropReason> {
        let mut frame = self.io.frame(d);
        match fast::lookup(&mut self.ctx, &mut frame, p) {
            Fast::Done(r) => r,
            Fast::Miss(miss) => fast::new_v4(&mut self.ctx, &mut frame, miss),
        }
    }

    /// Two [`fast::pairable`] frames (`rx` order): both looked up at once, then each finished
    /// and settled in order. When the first misses, the second is looked up only after the
    /// first's new conn exists, as one at a time would.
    #[inline(always)]
    fn pair(
        &mut self,
        now_ms: u64,
        (mut da, a): (Desc, &fast::V4),
        (mut db, b): (Desc, &fast::V4),
        ntx: &mut usize,
        ndrop: &mut usize,
    ) {
        self.ctx.stats.rx_packets += 1;
        self.ctx.stats.rx_bytes += u64::from(db.len);
        let (ha, hb) = fast::pair(&self.ctx, a, b);
        let va = {
            let mut frame = self.io.frame(&mut da);
            fast::finish(&mut self.ctx, &mut frame, a, ha.as_ref().map_err(|m| *m))
        };
        self.settle(da, va, now_ms, ntx, ndrop);
        let vb = match hb {
            Some(hit) => {
                let mut frame = self.io.frame(&mut db);
                fast::finish(&mut self.ctx, &mut frame, b, hit.as_ref().map_err(|m| *m))
            }
            None => self.fast_one(&mut db, b),
        };
        self.settle(db, vb, now_ms, ntx, ndrop);
    }

    /// Put a processed frame where its verdict sends it: the tx array, the hold queue (its next
    /// hop's MAC is being asked for) or the drop array, counted by reason.
    #[inline(always)]
    fn settle(
        &mut self,
        d: Desc,
        verdict: Result<(), DropReason>,
        now_ms: u64,
        ntx: &mut usize,
        ndrop: &mut usize,
    ) {
        match verdict {
            Ok(()) => {
                self.tx[*ntx] = d;
                *ntx += 1;
            }
            Err(DropReason::NeighUnresolved)
                if self.ctx.hold_for.is_some() && self.nheld < HOLD =>
            {
                let via = self
                    .ctx
                    .hold_for
                    .take()
                    .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
                self.held[self.nheld] = (d, via, now_ms);
                self.nheld += 1;
            }
            Err(r) => {
                self.ctx.hold_for = None;
                self.ctx.stats.drop(r);
                self.drop[*ndrop] = d;
                *ndrop += 1;
            }
        }
    }

    /// Send held frames whose next hop is now known; drop those that waited too long.
    #[cold]
    fn release_held(&mut self, now_ms: u64, ntx: &mut usize, ndrop: &mut usize) {
        let mut keep = 0;
        for i in 0..self.nheld {
            let (mut d, via, since) = self.held[i];
            if let Some(&mac) = self.ctx.neigh.get(&via) {
                let mut f = self.io.frame(&mut d);
                if let Some(dst) = f.data_mut().get_mut(..6) {
                    dst.copy_from_slice(&mac);
                }
                self.tx[*ntx] = d;
                *ntx += 1;
            } else if now_ms.saturating_sub(since) >= HOLD_MS {
                self.ctx.stats.drop(DropReason::NeighUnresolved);
                self.drop[*ndrop] = d;
                *ndrop += 1;
            } else {
                self.held[keep] = self.held[i];
                keep += 1;
            }
        }
        self.nheld = keep;
    }

    /// Frames held for an unresolved neighbour.
    #[must_use]
    pub fn held(&self) -> usize {
        self.nheld
    }

    /// Publish this worker's counters for the control plane (never blocks: skips if busy).
    pub fn publish(&mut self) {
        if let Some(slot) = self.ctx.shared.worker_stats.get(self.ctx.index)
            && let Ok(mut s) = slot.try_lock()
        {
            s.clone_from(&self.ctx.stats);
        }
    }

    #[cold]
    fn send_neigh_requests(&mut self) {
        for i in 0..self.ctx.wants {
            let (addr, port) = self.ctx.want[i];
            let Some(mut d) = self.io.alloc(port) else {
                break;
            };
            let mac = self.io.mac(port);
            let built = {
                let mut f = self.io.frame(&mut d);
                crate::neigh::build_request(&mut f, mac, &self.ctx.shared.routes, port, addr)
            };
            if built && self.io.tx_burst(std::slice::from_ref(&d)) == 1 {
                self.ctx.stats.neigh_requests += 1;
            } else {
                self.io.recycle(std::slice::from_ref(&d));
            }
        }
        self.ctx.wants = 0;
    }
}

/// A worker's own copy of a service's scheduler; randomised ones (twos) get a per-worker,
/// per-service seed so workers do not draw the same sequence.
fn seeded(sched: &AnyScheduler, service: usize, worker: usize) -> AnyScheduler {
    let mut s = sched.clone();
    s.seed(((service as u64) << 32) | worker as u64);
    s
}

/// The general path: run one frame the fast path declined to completion. `Ok` means transmit
/// it (its descriptor's port is set).
#[inline]
fn general(ctx: &mut Ctx, frame: &mut Frame<'_>) -> Result<(), DropReason> {
    let parsed = wire::parse_frame(frame.data())?;
    let info = match parsed {
        Parsed::Ip(info) => info,
        Parsed::Arp { l3_off } => return arp(ctx, frame, l3_off),
        Parsed::Other(_) => return Err(DropReason::UnknownEthertype),
    };
    // Trim Ethernet padding so lengths below are the IP packet's.
    frame
        .set_len(info.l3_off + info.l3_len)
        .map_err(|_| DropReason::Malformed)?;
    match info.proto {
        proto::TCP | proto::UDP | proto::SCTP => l4(ctx, frame, &info),
        // ICMP belongs to IPv4 and ICMPv6 to IPv6 (IPVS handles them in the matching family's
        // hook only); the other pairing is an unknown protocol.
        proto::ICMP if info.family == Family::V4 => icmp(ctx, frame, &info),
        proto::ICMPV6 if info.family == Family::V6 => {
            if matches!(info.icmp_type, 135 | 136) {
                nd(ctx, frame, &info)
            } else {
                icmp(ctx, frame, &info)
            }
        }
        _ => Err(DropReason::UnknownProtocol),
    }
}

/// TCP/UDP/SCTP: the conn path.
#[inline]
fn l4(ctx: &mut Ctx, frame: &mut Frame<'_>, info: &PacketInfo) -> Result<(), DropReason> {
    if info.frag == wire::Frag::NotFirst {
        return Err(DropReason::Fragment);
    }
    let key = info.flow_key();
    let len = u32::try_from(info.l3_len).unwrap_or(u32::MAX);
    let conns = &ctx.shared.conns;
    let hit = match conns.lookup(
        &key,
        info.tcp_flags,
        len,
        ctx.now_ms,
        ctx.index,
        &ctx.snap.timeouts,
    ) {
        // The dest was deleted: the kernel silently drops the client's packets of its conns
        // (ip_vs_in); replies from the dest still pass (ip_vs_out does not check).
        Some(h) if !h.dest_available && h.dir == Dir::Input => return Err(DropReason::NoDest),
        Some(h) => h,
        None => match new_conn(ctx, &key, info, len) {
            Ok(h) => h,
            Err(DropReason::NoDest) => return leave(ctx, frame, info),
            Err(r) => return Err(r),
        },
    };
    forward(ctx, frame, info, &hit)
}

/// A service with no dest available for a new connection: as `ip_vs_leave`, answer with an
/// ICMP port unreachable (TCP and UDP alike), rate-limited like the kernel's ICMP (a token
/// bucket of `ICMP_BURST`, refilled one per millisecond). The packet itself counts as `NoDest`.
#[cold]
fn leave(ctx: &mut Ctx, frame: &mut Frame<'_>, info: &PacketInfo) -> Result<(), DropReason> {
    let refill = ctx.now_ms.saturating_sub(ctx.icmp_at);
    ctx.icmp_at = ctx.now_ms;
    ctx.icmp_tokens = ctx
        .icmp_tokens
        .saturating_add(u32::try_from(refill).unwrap_or(u32::MAX))
        .min(ICMP_BURST);
    if ctx.icmp_tokens == 0 {
        return Err(DropReason::NoDest);
    }
    ctx.icmp_tokens -= 1;
    match fwd::port_unreachable(frame, info) {
        Verdict::Tx { route_to } => {
            ctx.stats.drop(DropReason::NoDest);
            l2_out(ctx, frame, info.l3_off, route_to)
        }
        Verdict::Drop(r) => Err(r),
    }
}

/// Burst of ICMP errors a worker may send at once (`leave`); refilled one per millisecond.
const ICMP_BURST: u32 = 50;

/// Rewrite for the conn's mode, then route and write L2.
#[inline]
fn forward(
    ctx: &mut Ctx,
    frame: &mut Frame<'_>,
    info: &PacketInfo,
    hit: &Hit,
) -> Result<(), DropReason> {
    let fconn = FwdConn {
        tuple: hit.tuple,
        mode: hit.fwd,
        tun: hit.tun,
    };
    let fctx = fwd_ctx(ctx, &hit.tuple, hit.dir);
    match fwd::rewrite(&fconn, hit.dir, frame, info, &fctx) {
        Verdict::Tx { route_to } => l2_out(ctx, frame, info.l3_off, route_to),
        Verdict::Drop(r) => Err(r),
    }
}

/// The egress facts the rewrite needs: the port the packet will leave by (towards the dest on
/// the way in, towards the client on the way out), its MTU and our address on it.
#[inline]
fn fwd_ctx(ctx: &Ctx, t: &ConnTuple, dir: Dir) -> FwdCtx {
    let routes = &ctx.shared.routes;
    let to = if dir == Dir::Input { t.daddr } else { t.caddr };
    let port = routes.lookup(to).map_or(0, |h| h.port);
    let mtu = ctx
        .shared
        .net
        .ports
        .get(usize::from(port))
        .map_or(1500, |p| p.mtu);
    FwdCtx {
        src_v4: routes.src_v4(port),
        src_v6: routes.src_v6(port),
        mtu,
        complete_partial: ctx.shared.complete_partial,
    }
}

/// Schedule and create a new conn for the first packet of a flow.
fn new_conn(ctx: &mut Ctx, key: &FlowKey, info: &PacketInfo, len: u32) -> Result<Hit, DropReason> {
    let new = schedule(ctx, key, info, len)?;
    let r = ctx
        .shared
        .conns
        .create(new, ctx.now_ms, ctx.index, &ctx.snap.timeouts);
    created(ctx, r)
}

/// Count a conn the table created, or turn its refusal into the drop reason.
#[inline]
fn created<H>(ctx: &mut Ctx, r: Result<H, ConnError>) -> Result<H, DropReason> {
    let hit = r.map_err(|e| e.drop_reason())?;
    ctx.stats.conns_created += 1;
    Ok(hit)
}

/// Schedule a new conn for the first packet of a flow (`ip_vs_schedule` and
/// `ip_vs_sched_persist` of ip_vs_core.c): the conn to create.
fn schedule(
    ctx: &mut Ctx,
    key: &FlowKey,
    info: &PacketInfo,
    len: u32,
) -> Result<NewConn, DropReason> {
    let proto = Protocol::from_number(key.proto).ok_or(DropReason::UnknownProtocol)?;
    let Some(si) = ctx.snap.find(proto, key.dst, key.dport) else {
        return Err(if ctx.snap.owns(&key.dst) {
            DropReason::NoConn
        } else {
            DropReason::NotOurs
        });
    };
    // TCP: only a SYN without RST opens a conn (tcp_conn_schedule, sloppy_tcp off).
    if key.proto == proto::TCP
        && (info.tcp_flags & tcp_flags::SYN == 0 || info.tcp_flags & tcp_flags::RST != 0)
    {
        return Err(DropReason::NoConn);
    }
    let svc = &ctx.snap.services[si];
    let sched = &mut ctx.scheds[si];
    let conns = &ctx.shared.conns;
    let svc_port = match svc.conf.key {
        ServiceKey::Inet { port, .. } => port,
        ServiceKey::Fwmark { .. } => 0,
    };
    let (di, control) = if svc.conf.flags & svc_flags::PERSISTENT != 0 {
        let tk = TemplateKey::new(&svc.conf, key.proto, key.src, key.dst, key.dport);
        match conns.template_lookup(&tk, ctx.now_ms) {
            Some(th) => match svc
                .dests
                .iter()
                .position(|d| Arc::ptr_eq(&d.state, &th.dest))
            {
                Some(di) => (di, Some(th.tref)),
                None => {
                    conns.template_put(th.tref);
                    return Err(DropReason::NoDest);
                }
            },
            None => {
                let di = sched
                    .pick(&svc.dests, key, ctx.now_ms)
                    .ok_or(DropReason::NoDest)?;
                let d = &svc.dests[di];
                let tdport = TemplateKey::template_dport(&svc.conf, key.dport, d.conf.port);
                let timeout_ms = svc.conf.timeout_s.saturating_mul(1000);
                let tref = conns
                    .template_create(
                        &tk,
                        d.conf.addr,
                        tdport,
                        Arc::clone(&d.state),
                        timeout_ms,
                        ctx.now_ms,
                    )
                    .map_err(|e| e.drop_reason())?;
                (di, Some(tref))
            }
        }
    } else {
        // Port-zero services are for persistent services only (the kernel logs and drops).
        if svc_port != key.dport {
            return Err(DropReason::NoDest);
        }
        (
            sched
                .pick(&svc.dests, key, ctx.now_ms)
                .ok_or(DropReason::NoDest)?,
            None,
        )
    };
    let dest = &svc.dests[di];
    let dport = if key.dport == svc_port && dest.conf.port != 0 {
        dest.conf.port
    } else {
        key.dport
    };
    let laddr = if dest.conf.fwd == FwdMode::FullNat {
        pick_laddr(&svc.conf.laddrs, key).ok_or(DropReason::NoLocalPort)?
    } else {
        key.src
    };
    let tuple = ConnTuple {
        proto: key.proto,
        caddr: key.src,
        cport: key.sport,
        vaddr: key.dst,
        vport: key.dport,
        daddr: dest.conf.addr,
        dport,
        laddr,
        lport: key.sport,
    };
    Ok(NewConn {
        tuple,
        fwd: dest.conf.fwd,
        tun: dest.conf.tun,
        dest: Arc::clone(&dest.state),
        svc: Arc::clone(&svc.state),
        control,
        one_packet: svc.conf.flags & svc_flags::ONEPACKET != 0,
        tcp_flags: info.tcp_flags,
        len,
    })
}

/// A FULLNAT local address of the client's family, spread over the pool by client address.
#[inline]
fn pick_laddr(laddrs: &[IpAddr], key: &FlowKey) -> Option<IpAddr> {
    let n = laddrs
        .iter()
        .filter(|a| a.is_ipv4() == key.src.is_ipv4())
        .count();
    if n == 0 {
        return None;
    }
    let h = match key.src {
        IpAddr::V4(a) => a.to_bits(),
        IpAddr::V6(a) => a.octets().chunks_exact(4).fold(0u32, |h, c| {
            h ^ u32::from_be_bytes([c[0], c[1], c[2], c[3]])
        }),
    };
    let i = (h.wrapping_mul(0x9e37_79b9) >> 16) as usize % n;
    laddrs
        .iter()
        .filter(|a| a.is_ipv4() == key.src.is_ipv4())
        .nth(i)
        .copied()
}

/// ICMP/ICMPv6 errors about a tracked conn are translated; everything else is dropped.
fn icmp(ctx: &mut Ctx, frame: &mut Frame<'_>, info: &PacketInfo) -> Result<(), DropReason> {
    let Some(inner) = fwd::icmp_inner_key(frame.data(), info) else {
        return Err(DropReason::IcmpNoConn);
    };
    // The quoted packet travelled the other way: the error's conn is found by the inner key
    // reversed (an error from the client's side quotes a packet we sent to the client).
    // ICMP never moves the conn's state or timer (ip_vs_in_icmp / ip_vs_out_icmp); it is
    // only counted.
    let conns = &ctx.shared.conns;
    let len = u32::try_from(info.l3_len).unwrap_or(u32::MAX);
    let (now, w) = (ctx.now_ms, ctx.index);
    let hit = conns
        .lookup_icmp(&inner.reversed(), None, len, now, w)
        .or_else(|| conns.lookup_icmp(&inner, None, len, now, w))
        .ok_or(DropReason::IcmpNoConn)?;
    let fconn = FwdConn {
        tuple: hit.tuple,
        mode: hit.fwd,
        tun: hit.tun,
    };
    let fctx = fwd_ctx(ctx, &hit.tuple, hit.dir);
    match fwd::rewrite_icmp(&fconn, hit.dir, frame, info, &fctx) {
        Verdict::Tx { route_to } => l2_out(ctx, frame, info.l3_off, route_to),
        Verdict::Drop(r) => Err(r),
    }
}

/// Route `route_to`, resolve its next hop and write a fresh Ethernet header in front of the IP
/// packet at `l3_off`.
#[inline]
fn l2_out(
    ctx: &mut Ctx,
    frame: &mut Frame<'_>,
    l3_off: usize,
    route_to: IpAddr,
) -> Result<(), DropReason> {
    let hop = ctx
        .shared
        .routes
        .lookup(route_to)
        .ok_or(DropReason::NoRoute)?;
    let dst_mac = ctx.neigh.get(&hop.via).copied();
    let eth_len = wire::ethernet::HEADER_LEN;
    if l3_off > eth_len {
        frame
            .pull_front(l3_off - eth_len)
            .map_err(|_| DropReason::Malformed)?;
    } else if l3_off < eth_len {
        frame
            .push_front(eth_len - l3_off)
            .map_err(|_| DropReason::NoHeadroom)?;
    }
    let src_mac = ctx
        .shared
        .net
        .ports
        .get(usize::from(hop.port))
        .map_or([0; 6], |p| p.mac);
    let data = frame.data_mut();
    let ethertype = match data.get(eth_len).map(|b| b >> 4) {
        Some(4) => wire::ethertype::IPV4,
        Some(6) => wire::ethertype::IPV6,
        _ => return Err(DropReason::Malformed),
    };
    let mut eth = wire::EthernetFrame::new_unchecked(&mut data[..eth_len]);
    eth.set_dst_addr(dst_mac.unwrap_or_default());
    eth.set_src_addr(src_mac);
    eth.set_ethertype(ethertype);
    frame.set_port(hop.port);
    if dst_mac.is_none() {
        // Complete but for the destination MAC: the loop holds it until the neighbour answers.
        want_neigh(ctx, hop.via, hop.port);
        ctx.hold_for = Some(hop.via);
        return Err(DropReason::NeighUnresolved);
    }
    Ok(())
}

/// Remember to ask for `addr`'s MAC after the burst, at most once a second per address.
#[cold]
fn want_neigh(ctx: &mut Ctx, addr: IpAddr, port: u16) {
    if ctx.asked.get(&addr).is_some_and(|&t| ctx.now_ms < t + 1000) || ctx.wants == ctx.want.len() {
        return;
    }
    if ctx.asked.len() >= 4096 {
        ctx.asked.clear();
    }
    ctx.asked.insert(addr, ctx.now_ms);
    ctx.want[ctx.wants] = (addr, port);
    ctx.wants += 1;
}

/// ARP: learn the sender; answer requests for our addresses, VIPs and local addresses.
#[cold]
fn arp(ctx: &mut Ctx, frame: &mut Frame<'_>, l3_off: usize) -> Result<(), DropReason> {
    let port = frame.port();
    let Some(p) = ctx.shared.net.ports.get(usize::from(port)) else {
        return Err(DropReason::ArpIgnored);
    };
    let snap = &ctx.snap;
    let owns = |a: IpAddr| snap.owns(&a) || p.addrs.iter().any(|pa| pa.addr == a);
    match crate::neigh::handle_arp(frame, l3_off, p.mac, &ctx.shared.neigh, owns) {
        Some(()) => {
            ctx.stats.neigh_replies += 1;
            Ok(())
        }
        None => Err(DropReason::ArpIgnored),
    }
}

/// ICMPv6 neighbour discovery: learn; answer solicitations for our addresses.
#[cold]
fn nd(ctx: &mut Ctx, frame: &mut Frame<'_>, info: &PacketInfo) -> Result<(), DropReason> {
    let port = frame.port();
    let Some(p) = ctx.shared.net.ports.get(usize::from(port)) else {
        return Err(DropReason::ArpIgnored);
    };
    let snap = &ctx.snap;
    let owns = |a: IpAddr| snap.owns(&a) || p.addrs.iter().any(|pa| pa.addr == a);
    match crate::neigh::handle_nd(frame, info, p.mac, &ctx.shared.neigh, owns) {
        Some(()) => {
            ctx.stats.neigh_replies += 1;
            Ok(())
        }
        None => Err(DropReason::ArpIgnored),
    }
}
