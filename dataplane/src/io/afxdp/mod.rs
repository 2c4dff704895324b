//! The AF_XDP backend: one worker's [`PacketIo`] over one AF_XDP socket per (interface, queue),
//! all sharing one UMEM, so a frame received on port 0 is transmitted on port 1 without a copy.
//!
//! # Frame accounting
//! The UMEM holds `frames × ports` chunks of [`CHUNK_SIZE`] bytes. Every chunk is always in
//! exactly one place, and each place has its own counter:
//! - the **free list** (`free`, a `Vec` with capacity = total, never reallocated);
//! - a port's **fill ring** or the kernel's RX cache behind it (`Port::fill_outstanding`);
//! - the **worker's hands** after `rx_burst`/`alloc` (`held`);
//! - a port's **TX ring** or its **completion ring** (`Port::tx_outstanding`).
//!
//! `rx_burst` moves fill → held, `tx_burst` held → tx (a prefix), `recycle` held → free,
//! `alloc` free → held, and [`PacketIo::service`] completion → free and free → fill. Hence
//! `free_frames() + frames_in_flight() == frames_total()` at every point between calls, which
//! the leak test checks. A descriptor that does not name one of our chunks is refused by
//! `tx_burst` (it stops the accepted prefix there) and ignored by `recycle` (counted in
//! `bad_descs`), so a worker bug cannot smuggle a foreign address onto the free list or make
//! the kernel drop a TX descriptor without completing it (which would leak the frame).
//!
//! # Headroom (measured on this machine, veth copy mode, native and SKB attach)
//! The UMEM is registered with no user `frame_headroom`; the kernel puts every received packet
//! `XDP_PACKET_HEADROOM` (256) bytes into its chunk (the fill ring takes chunk starts; RX
//! descriptors come back as `chunk + 256`). Measured in copy mode with native and SKB attach
//! (`afxdp_veth` asserts min = max = 256 over every received frame); zero-copy drivers use the
//! same `xp_alloc` layout (`data = data_hard_start + XDP_PACKET_HEADROOM`) but were not measured
//! (veth has none). So `Desc::headroom()` of a received frame is exactly [`HEADROOM`], and
//! `alloc` hands out the same layout. Were `HEADROOM` ever raised above 256, the difference
//! would go into the UMEM's `frame_headroom`. TX descriptors may start anywhere in their chunk
//! (aligned mode only checks that the packet does not cross the chunk end), so encapsulation
//! can push into the headroom and transmit in place.
//!
//! # Kernel wake-ups (`XDP_USE_NEED_WAKEUP`)
//! `tx_burst` queues all of a burst's frames, then kicks each port that got some with `sendto`
//! if the kernel asks (in copy mode it always asks, and one call sends at most 32 frames, so it
//! kicks until the kernel stops answering EAGAIN, at most 8 times). `service` kicks again while
//! a TX ring still holds unsent frames, and wakes the RX side with `recvfrom` if a fill ring's
//! need_wakeup flag is set. No other syscall happens on the hot path; `wait_rx` (idle only)
//! sleeps in `poll`.
//!
//! # Setup facts (DESIGN.md "This machine")
//! Sockets are created one at a time; `EBUSY` (a socket on the same queue closed an instant
//! ago, or libxdp racing itself) is retried after a pause. The UMEM needs `RLIMIT_MEMLOCK` or
//! CAP_IPC_LOCK; we try to raise the limit and explain a failure. libxdp attaches its default
//! program (`xsk_def_prog`) with the first socket of an interface and detaches it when the last
//! one closes (a refcount in the program's `.data`), so a clean exit leaves nothing behind.
//!
//! # Stale programs after a crash
//! A killed process never decrements libxdp's refcount, so its `xsk_def_prog` would stay
//! attached for ever (and a later user would inherit a refcount that never reaches zero). Every
//! `AfXdp` therefore holds an exclusive `flock` on `/run/xvs/xsk-<netns inode>-<ifindex>.lock`
//! for each interface it uses (shared by all `AfXdp`s of one process through a registry; the
//! file is removed when the last of them closes, and a crash leaves only an unlocked file). The
//! first user of an interface in a process takes the lock; if another process holds it, open
//! fails with [`IoError::Busy`]. Having the lock means no live xvs uses the interface, so a
//! `xsk_def_prog` still attached is stale: it is detached before the first socket is created
//! (`AfXdp::reclaimed` lists what was removed). Programs of other names are never touched;
//! socket creation then fails with `Busy` naming them. `AfXdpOpts::reclaim_stale = false`
//! turns this off (when another AF_XDP application shares the interface without our lock).
//!
//! # Why not xsk-rs' queues
//! xsk-rs 0.11 (the card's crate; it builds the libxdp we link) exposes frames as `FrameDesc`s
//! whose address can only come from the kernel or `Umem::new`, and its `Umem` does not expose
//! the region base. The [`Desc`]/[`Frame`] model needs a descriptor at any offset of a chunk
//! (encapsulation headroom) and a view of the whole chunk, so `sys.rs` drives the same libxdp
//! calls xsk-rs wraps, directly.
//!
//! Never: allocate, lock or log in `rx_burst`/`tx_burst`/`recycle`/`alloc`/`frame`/`service`;
//! touch a chunk the kernel holds; let a chunk be in two places.

mod sys;

use std::fs::File;
use std::io::{Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use crate::io::{BATCH, CHUNK_SIZE, Desc, Frame, HEADROOM, PacketIo};

/// How libxdp attaches its redirect program.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// Driver (native) mode: `XDP_FLAGS_DRV_MODE`. On veth it spreads traffic over all queues.
    #[default]
    Native,
    /// Generic (SKB) mode: `XDP_FLAGS_SKB_MODE`. Works everywhere, slower.
    Skb,
}

/// Zero-copy policy for the socket bind.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Let the kernel try zero-copy and fall back to copy mode (veth: always copy).
    #[default]
    Auto,
    /// Force copy mode (`XDP_COPY`).
    Off,
    /// Require zero-copy (`XDP_ZEROCOPY`); fails with [`IoError::ZeroCopyUnsupported`].
    On,
}

/// One socket to open: an interface and one of its RX/TX queues. Its index in the slice given
/// to [`AfXdp::open`] is the `Desc::port` of its frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConf {
    /// Interface name in the calling thread's network namespace.
    pub ifname: String,
    /// Queue id.
    pub queue: u32,
}

/// Options of [`AfXdp::open`].
#[derive(Clone, Debug)]
pub struct AfXdpOpts {
    /// Attach mode of libxdp's default program.
    pub xdp_mode: XdpMode,
    /// UMEM frames per port (the UMEM holds `frames × ports` chunks of 4096 bytes).
    pub frames: u32,
    /// Entries of each RX, TX, fill and completion ring (power of two, <= `frames`).
    pub ring_size: u32,
    /// Zero-copy policy.
    pub zero_copy: ZeroCopy,
    /// How many times to retry a socket creation that failed with EBUSY.
    pub busy_retries: u32,
    /// Pause between EBUSY retries.
    pub busy_pause: Duration,
    /// Detach a stale `xsk_def_prog` left by a crashed xvs (see the module docs).
    pub reclaim_stale: bool,
}

impl Default for AfXdpOpts {
    fn default() -> Self {
        Self {
            xdp_mode: XdpMode::Native,
            frames: 4096,
            ring_size: 2048,
            zero_copy: ZeroCopy::Auto,
            busy_retries: 20,
            busy_pause: Duration::from_millis(100),
            reclaim_stale: true,
        }
    }
}

/// Why the AF_XDP backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// No interface of that name in this network namespace.
    #[error("no such interface: {0}")]
    NoSuchInterface(String),
    /// The name cannot be an interface name (empty, too long, NUL).
    #[error("invalid interface name: {0:?}")]
    BadInterfaceName(String),
    /// The interface has no such queue (or refuses the bind for another EINVAL reason).
    #[error(
        "cannot bind {ifname} queue {queue}: no such queue or invalid ring configuration ({source})"
    )]
    NoSuchQueue {
        /// Interface.
        ifname: String,
        /// Queue id.
        queue: u32,
        /// The kernel's error.
        source: std::io::Error,
    },
    /// Missing privileges.
    #[error(
        "permission denied while {op} on {ifname}: AF_XDP needs root or CAP_NET_ADMIN, CAP_NET_RAW \
         and CAP_BPF (plus CAP_IPC_LOCK or a large RLIMIT_MEMLOCK for the UMEM)"
    )]
    Permission {
        /// What was being done.
        op: &'static str,
        /// Interface.
        ifname: String,
    },
    /// The UMEM exceeds the locked-memory limit.
    #[error(
        "cannot register {bytes} bytes of UMEM: locked-memory limit is {}; run as root (CAP_IPC_LOCK), \
         raise it (`ulimit -l unlimited`, LimitMEMLOCK=infinity in a systemd unit) or use fewer frames",
        .limit.map_or_else(|| "unlimited".to_string(), |l| format!("{l} bytes"))
    )]
    Memlock {
        /// UMEM size requested.
        bytes: u64,
        /// Soft `RLIMIT_MEMLOCK` at the time (`None`: unlimited).
        limit: Option<u64>,
    },
    /// Someone else is using the interface or queue.
    #[error("{ifname} queue {queue} is busy: {detail}")]
    Busy {
        /// Interface.
        ifname: String,
        /// Queue id.
        queue: u32,
        /// Who, as far as we can tell, and what to do.
        detail: String,
    },
    /// Zero-copy was required and the driver cannot do it.
    #[error("{0}: the driver does not support AF_XDP zero-copy (veth never does); use copy mode")]
    ZeroCopyUnsupported(String),
    /// Native XDP is not available on the interface.
    #[error(
        "{0}: native (driver) XDP attach refused ({1}); try --xdp-mode skb, or on veth keep the \
         peer MTU <= 3506 and give this end at least as many RX queues as the peer has TX queues"
    )]
    NativeUnsupported(String, std::io::Error),
    /// Inconsistent options.
    #[error("invalid AF_XDP options: {0}")]
    Config(&'static str),
    /// Any other system error.
    #[error("{op} on {ifname}: {source}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// Interface ("" when not interface specific).
        ifname: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Where the UMEM's frames are (see the module docs). `free + fill + held + tx == total` when
/// nothing leaked.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameCounts {
    /// Chunks in the UMEM.
    pub total: usize,
    /// On the free list.
    pub free: usize,
    /// Given to the kernel through fill rings and not received yet.
    pub fill: usize,
    /// In the worker's hands (received or allocated, not yet transmitted or recycled).
    pub held: usize,
    /// On TX rings or completion rings.
    pub tx: usize,
}

/// The kernel's per-socket drop counters (`XDP_STATISTICS`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Dropped for reasons other than ring space.
    pub rx_dropped: u64,
    /// Dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was found empty.
    pub rx_fill_ring_empty: u64,
    /// Invalid RX descriptors.
    pub rx_invalid_descs: u64,
    /// Invalid TX descriptors (frames the kernel dropped without completing).
    pub tx_invalid_descs: u64,
    /// Times the TX ring was found empty on a kick.
    pub tx_ring_empty: u64,
}

/// Per-port state.
#[derive(Debug)]
struct Port {
    xsk: sys::Xsk,
    ifname: String,
    queue: u32,
    mac: [u8; 6],
    mtu: usize,
    zero_copy: bool,
    fill_outstanding: usize,
    tx_outstanding: usize,
    tx_kicks: u64,
}

/// An AF_XDP [`PacketIo`]: one socket per port, one UMEM for all of them. Owned by one worker
/// (it is `Send`, not `Sync`). The worker must call [`PacketIo::service`] every loop turn: it
/// returns completed TX frames to the free list, keeps the fill rings topped up and kicks the
/// kernel; without it reception stops once the fill rings run dry.
#[derive(Debug)]
pub struct AfXdp {
    // Field order is drop order and matters: sockets, then the UMEM, then its memory, then the
    // interface locks (released only once the programs are detached).
    ports: Vec<Port>,
    _umem: sys::Umem,
    area: sys::Area,
    _locks: Vec<Arc<IfaceLock>>,
    free: Vec<u64>,
    held: usize,
    total: usize,
    fill_target: usize,
    rx_next: usize,
    bad_descs: u64,
    reclaimed: Vec<String>,
    scratch: [u64; BATCH],
    pollset: Vec<libc::pollfd>,
}

fn sys_err(op: &'static str, ifname: &str, source: std::io::Error) -> IoError {
    if source.raw_os_error() == Some(libc::EPERM) || source.raw_os_error() == Some(libc::EACCES) {
        return IoError::Permission {
            op,
            ifname: ifname.to_string(),
        };
    }
    IoError::Sys {
        op,
        ifname: ifname.to_string(),
        source,
    }
}

impl AfXdp {
    /// Open one socket per `ports` entry, in order, one at a time, sharing one UMEM of
    /// `opts.frames × ports.len()` frames, and fill every fill ring. See [`IoError`] for the
    /// failures and what each one tells the operator.
    ///
    /// Opens from several threads are serialised (libxdp races itself when two sockets of one
    /// interface are created at once), so workers may call this concurrently.
    pub fn open(ports: &[PortConf], opts: &AfXdpOpts) -> Result<Self, IoError> {
        let _one_at_a_time = SETUP.lock().unwrap_or_else(PoisonError::into_inner);
        if ports.is_empty() || ports.len() > usize::from(u16::MAX) {
            return Err(IoError::Config("need 1..=65535 ports"));
        }
        if !opts.ring_size.is_power_of_two() || opts.ring_size < 64 {
            return Err(IoError::Config("ring_size must be a power of two >= 64"));
        }
        if opts.frames < opts.ring_size {
            return Err(IoError::Config("frames (per port) must be >= ring_size"));
        }
        let total = (opts.frames as usize)
            .checked_mul(ports.len())
            .filter(|&t| t.checked_mul(CHUNK_SIZE).is_some() && t <= (u32::MAX as usize))
            .ok_or(IoError::Config("too many frames"))?;
        let bytes = (total * CHUNK_SIZE) as u64;

        // Resolve every interface first: a typo fails before anything is attached.
        let mut named = Vec::with_capacity(ports.len());
        for pc in ports {
            let c = sys::c_ifname(&pc.ifname)
                .ok_or_else(|| IoError::BadInterfaceName(pc.ifname.clone()))?;
            let idx =
                sys::ifindex(&c).ok_or_else(|| IoError::NoSuchInterface(pc.ifname.clone()))?;
            let mac = sys::if_mac(&c).map_err(|e| sys_err("reading the MAC", &pc.ifname, e))?;
            let mtu = sys::if_mtu(&c).map_err(|e| sys_err("reading the MTU", &pc.ifname, e))?;
            named.push((c, idx, mac, mtu));
        }

        // Interface locks and stale-program clean-up, once per distinct interface.
        let mut locks: Vec<Arc<IfaceLock>> = Vec::new();
        let mut reclaimed = Vec::new();
        for (pc, (_, idx, _, _)) in ports.iter().zip(&named) {
            if locks.iter().any(|l| l.key.1 == *idx) {
                continue;
            }
            let (lock, fresh) = IfaceLock::acquire(&pc.ifname, *idx, pc.queue)?;
            if fresh && opts.reclaim_stale {
                let att = sys::attached(*idx)
                    .map_err(|e| sys_err("inspecting XDP programs", &pc.ifname, e))?;
                if !att.names.is_empty() && att.names.iter().all(|n| n == sys::XSK_DEFAULT_PROG) {
                    sys::detach_all(*idx)
                        .map_err(|e| sys_err("detaching a stale XDP program", &pc.ifname, e))?;
                    reclaimed.push(pc.ifname.clone());
                }
            }
            locks.push(lock);
        }

        sys::raise_memlock(bytes);
        let area = sys::Area::new(total * CHUNK_SIZE)
            .map_err(|e| sys_err("mapping the UMEM", &ports[0].ifname, e))?;
        let mut umem =
            sys::Umem::new(&area, opts.ring_size).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOBUFS | libc::ENOMEM) => IoError::Memlock {
                    bytes,
                    limit: sys::memlock_limit(),
                },
                _ => sys_err("registering the UMEM", &ports[0].ifname, e),
            })?;

        let params = sys::XskParams {
            ring_size: opts.ring_size,
            xdp_flags: match opts.xdp_mode {
                XdpMode::Native => sys::XDP_FLAGS_DRV_MODE,
                XdpMode::Skb => sys::XDP_FLAGS_SKB_MODE,
            },
            bind_flags: libc::XDP_USE_NEED_WAKEUP
                | match opts.zero_copy {
                    ZeroCopy::Auto => 0,
                    ZeroCopy::Off => libc::XDP_COPY,
                    ZeroCopy::On => libc::XDP_ZEROCOPY,
                },
        };

        let mut out = Vec::with_capacity(ports.len());
        for (pc, (c, idx, mac, mtu)) in ports.iter().zip(named) {
            let xsk = create_with_retry(&mut umem, &c, pc, idx, params, opts, bytes)?;
            out.push(Port {
                zero_copy: xsk.zero_copy(),
                xsk,
                ifname: pc.ifname.clone(),
                queue: pc.queue,
                mac,
                mtu,
                fill_outstanding: 0,
                tx_outstanding: 0,
                tx_kicks: 0,
            });
        }

        let mut free = Vec::with_capacity(total);
        // Highest chunk first so the first frames handed out are the lowest addresses.
        free.extend((0..total as u64).rev().map(|i| i * CHUNK_SIZE as u64));
        let fds: Vec<i32> = out.iter().map(|p| p.xsk.fd()).collect();
        let mut me = Self {
            pollset: sys::pollfds(&fds),
            ports: out,
            _umem: umem,
            area,
            _locks: locks,
            free,
            held: 0,
            total,
            // Leave at least half the frames for TX and the worker's hands.
            fill_target: (opts.ring_size as usize)
                .min(opts.frames as usize / 2)
                .max(1),
            rx_next: 0,
            bad_descs: 0,
            reclaimed,
            scratch: [0; BATCH],
        };
        me.service();
        Ok(me)
    }

    /// Chunks in the UMEM.
    #[must_use]
    pub fn frames_total(&self) -> usize {
        self.total
    }

    /// Chunks on the free list.
    #[must_use]
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Chunks not on the free list, counted from the fill, held and TX counters (independently
    /// of the free list): `free_frames() + frames_in_flight() == frames_total()` unless a frame
    /// leaked or was returned twice.
    #[must_use]
    pub fn frames_in_flight(&self) -> usize {
        let c = self.frame_counts();
        c.fill + c.held + c.tx
    }

    /// Where every frame is.
    #[must_use]
    pub fn frame_counts(&self) -> FrameCounts {
        FrameCounts {
            total: self.total,
            free: self.free.len(),
            fill: self.ports.iter().map(|p| p.fill_outstanding).sum(),
            held: self.held,
            tx: self.ports.iter().map(|p| p.tx_outstanding).sum(),
        }
    }

    /// Descriptors refused by `tx_burst` or ignored by `recycle` because they named no chunk
    /// of this UMEM (a worker bug if non-zero).
    #[must_use]
    pub fn bad_descs(&self) -> u64 {
        self.bad_descs
    }

    /// Interfaces from which a stale `xsk_def_prog` was detached by `open`.
    #[must_use]
    pub fn reclaimed(&self) -> &[String] {
        &self.reclaimed
    }

    /// Whether the socket of `port` runs in zero-copy mode (false: copy mode).
    #[must_use]
    pub fn zero_copy(&self, port: u16) -> bool {
        self.ports
            .get(usize::from(port))
            .is_some_and(|p| p.zero_copy)
    }

    /// Interface name and queue of `port`.
    #[must_use]
    pub fn port_conf(&self, port: u16) -> Option<PortConf> {
        self.ports.get(usize::from(port)).map(|p| PortConf {
            ifname: p.ifname.clone(),
            queue: p.queue,
        })
    }

    /// TX kicks (`sendto` calls) made for `port` so far.
    #[must_use]
    pub fn tx_kicks(&self, port: u16) -> u64 {
        self.ports.get(usize::from(port)).map_or(0, |p| p.tx_kicks)
    }

    /// The kernel's drop counters for `port`'s socket (a syscall: not for the hot path).
    pub fn xsk_stats(&self, port: u16) -> Result<XskStats, IoError> {
        let p = self
            .ports
            .get(usize::from(port))
            .ok_or(IoError::Config("no such port"))?;
        let s = p
            .xsk
            .statistics()
            .map_err(|e| sys_err("reading XDP_STATISTICS", &p.ifname, e))?;
        Ok(XskStats {
            rx_dropped: s.rx_dropped,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            tx_ring_empty: s.tx_ring_empty_descs,
        })
    }

    /// The sockets' file descriptors, for a worker that wants to `poll` them with other fds.
    #[must_use]
    pub fn fds(&self) -> Vec<i32> {
        self.ports.iter().map(|p| p.xsk.fd()).collect()
    }

    /// Idle wait for an adaptive worker: sleep in `poll(POLLIN)` on every socket until a frame
    /// arrives or `timeout_ms` passes (one syscall, no allocation). Returns true if a socket is
    /// readable. Call `service()` first so the fill rings are full while sleeping; the kernel
    /// keeps delivering into them and wakes the poller.
    pub fn wait_rx(&mut self, timeout_ms: i32) -> bool {
        sys::poll_in(&mut self.pollset, timeout_ms)
    }

    /// Whether `d` is a non-empty packet lying entirely inside one of our chunks: exactly what
    /// the kernel accepts on a TX ring (an empty or chunk-crossing descriptor would be counted
    /// invalid and never completed, leaking its frame).
    #[inline]
    fn valid(&self, d: &Desc) -> bool {
        let end = d.headroom() as u64 + u64::from(d.len);
        d.len > 0 && d.chunk() < (self.total * CHUNK_SIZE) as u64 && end <= CHUNK_SIZE as u64
    }

    /// Kick `port`'s TX ring until the kernel has taken everything or stops (bounded).
    #[inline]
    fn kick(p: &mut Port) {
        if !p.xsk.tx_needs_wakeup() {
            return;
        }
        for _ in 0..8 {
            p.tx_kicks += 1;
            if !p.xsk.kick_tx() {
                break;
            }
        }
    }
}

/// Serialises socket creation and deletion within the process (setup path only).
static SETUP: Mutex<()> = Mutex::new(());

impl Drop for AfXdp {
    fn drop(&mut self) {
        // Delete the sockets (and let libxdp drop its program refcount) one process-wide step
        // at a time, like creation; the UMEM, memory and locks then drop in field order.
        let _one_at_a_time = SETUP.lock().unwrap_or_else(PoisonError::into_inner);
        self.ports.clear();
    }
}

/// Create one socket, retrying EBUSY, and map the errors to operator messages.
fn create_with_retry(
    umem: &mut sys::Umem,
    c: &std::ffi::CStr,
    pc: &PortConf,
    ifindex: u32,
    params: sys::XskParams,
    opts: &AfXdpOpts,
    umem_bytes: u64,
) -> Result<sys::Xsk, IoError> {
    let mut tries = 0;
    loop {
        match sys::Xsk::create(umem, c, pc.queue, params) {
            Ok(x) => return Ok(x),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < opts.busy_retries => {
                tries += 1;
                std::thread::sleep(opts.busy_pause);
            }
            Err(e) => return Err(map_create_err(e, pc, ifindex, opts, umem_bytes)),
        }
    }
}

fn map_create_err(
    e: std::io::Error,
    pc: &PortConf,
    ifindex: u32,
    opts: &AfXdpOpts,
    umem_bytes: u64,
) -> IoError {
    let ifname = pc.ifname.clone();
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => IoError::Permission {
            op: "creating the AF_XDP socket",
            ifname,
        },
        Some(libc::EBUSY | libc::EEXIST) => {
            let progs = sys::attached(ifindex).map(|a| a.names).unwrap_or_default();
            IoError::Busy {
                ifname,
                queue: pc.queue,
                detail: format!(
                    "another AF_XDP socket is bound to this queue or another XDP program is \
                     attached (programs now: {progs:?}); stop the other xvsd, or remove a \
                     leftover program with `ip link set dev {} xdp off` / `xdp-loader unload {} --all`",
                    pc.ifname, pc.ifname
                ),
            }
        }
        Some(libc::EOPNOTSUPP) if opts.zero_copy == ZeroCopy::On => {
            IoError::ZeroCopyUnsupported(ifname)
        }
        Some(libc::EOPNOTSUPP | libc::ERANGE | libc::ENOSPC)
            if opts.xdp_mode == XdpMode::Native =>
        {
            IoError::NativeUnsupported(ifname, e)
        }
        Some(libc::EINVAL) => IoError::NoSuchQueue {
            ifname,
            queue: pc.queue,
            source: e,
        },
        Some(libc::ENOBUFS | libc::ENOMEM) => IoError::Memlock {
            bytes: umem_bytes,
            limit: sys::memlock_limit(),
        },
        _ => IoError::Sys {
            op: "creating the AF_XDP socket",
            ifname,
            source: e,
        },
    }
}

impl PacketIo for AfXdp {
    fn wait_rx(&mut self, timeout_ms: i32) {
        // poll(POLLIN) on every socket, as the inherent `wait_rx` does.
        let _ = sys::poll_in(&mut self.pollset, timeout_ms);
    }

    #[inline]
    fn ports(&self) -> usize {
        self.ports.len()
    }

    #[inline]
    fn rx_burst(&mut self, descs: &mut [Desc]) -> usize {
        let n_ports = self.ports.len();
        let mut got = 0;
        let mut i = self.rx_next;
        for _ in 0..n_ports {
            if got == descs.len() {
                break;
            }
            let p = &mut self.ports[i];
            // INVARIANT: `i < n_ports <= u16::MAX` (checked in `open`).
            #[allow(clippy::cast_possible_truncation)]
            let n = p.xsk.receive(i as u16, &mut descs[got..]);
            p.fill_outstanding -= n;
            got += n;
            i += 1;
            if i == n_ports {
                i = 0;
            }
        }
        // Start with the next port next time, so one busy port cannot starve the others.
        self.rx_next = if self.rx_next + 1 >= n_ports {
            0
        } else {
            self.rx_next + 1
        };
        self.held += got;
        got
    }

    #[inline]
    fn frame<'a>(&'a mut self, desc: &'a mut Desc) -> Frame<'a> {
        match self.area.chunk_mut(desc.chunk()) {
            Some(chunk) => Frame::new(chunk, desc),
            // Not one of our chunks: an empty view the wire layer rejects as too short.
            None => Frame::new(&mut [], desc),
        }
    }

    #[inline]
    fn tx_burst(&mut self, descs: &[Desc]) -> usize {
        let mut done = 0;
        // Ports (below 64) that got frames in this burst and need a kick.
        let mut touched = 0u64;
        while done < descs.len() {
            let port = descs[done].port;
            let mut end = done;
            while end < descs.len() && descs[end].port == port && self.valid(&descs[end]) {
                end += 1;
            }
            if end == done {
                // An invalid descriptor: accept nothing from here on.
                self.bad_descs += 1;
                break;
            }
            let Some(p) = self.ports.get_mut(usize::from(port)) else {
                self.bad_descs += 1;
                break;
            };
            let n = p.xsk.transmit(&descs[done..end]);
            if n > 0 {
                p.tx_outstanding += n;
                // One kick per port per burst, after all its runs are queued: a burst that
                // alternates ports (NAT both ways) must not cost a syscall per run.
                match 1u64.checked_shl(u32::from(port)) {
                    Some(bit) => touched |= bit,
                    None => Self::kick(p),
                }
            }
            done += n;
            if done < end {
                break; // TX ring full: the caller recycles the rest.
            }
        }
        while touched != 0 {
            let i = touched.trailing_zeros() as usize;
            touched &= touched - 1;
            if let Some(p) = self.ports.get_mut(i) {
                Self::kick(p);
            }
        }
        self.held -= done;
        done
    }

    #[inline]
    fn recycle(&mut self, descs: &[Desc]) {
        for d in descs {
            if d.chunk() >= (self.total * CHUNK_SIZE) as u64 || self.free.len() == self.total {
                self.bad_descs += 1;
                continue;
            }
            self.free.push(d.chunk());
            self.held -= 1;
        }
    }

    #[inline]
    fn alloc(&mut self, port: u16) -> Option<Desc> {
        let chunk = self.free.pop()?;
        self.held += 1;
        Some(Desc {
            addr: chunk + HEADROOM as u64,
            len: 0,
            port,
        })
    }

    fn service(&mut self) {
        for p in &mut self.ports {
            // Completions back to the free list.
            loop {
                let n = p.xsk.complete(&mut self.scratch);
                for &a in &self.scratch[..n] {
                    self.free.push(a - a % CHUNK_SIZE as u64);
                }
                p.tx_outstanding -= n;
                if n < BATCH {
                    break;
                }
            }
            // Copy mode sends at most 32 frames per kick: keep kicking while frames wait.
            if p.tx_outstanding > 0 && p.xsk.tx_pending() {
                Self::kick(p);
            }
            // Top up the fill ring from the free list.
            let want = self
                .fill_target
                .saturating_sub(p.fill_outstanding)
                .min(self.free.len());
            if want > 0 {
                let start = self.free.len() - want;
                let n = p.xsk.fill(&self.free[start..]);
                self.free.drain(start..start + n);
                p.fill_outstanding += n;
            }
            if p.xsk.fill_needs_wakeup() {
                p.xsk.kick_rx();
            }
        }
    }

    #[inline]
    fn mac(&self, port: u16) -> [u8; 6] {
        self.ports.get(usize::from(port)).map_or([0; 6], |p| p.mac)
    }

    #[inline]
    fn mtu(&self, port: u16) -> usize {
        self.ports.get(usize::from(port)).map_or(0, |p| p.mtu)
    }
}

/// The names of the XDP programs attached to `ifname` (empty: none). For tests and diagnostics.
pub fn xdp_programs(ifname: &str) -> Result<Vec<String>, IoError> {
    let c = sys::c_ifname(ifname).ok_or_else(|| IoError::BadInterfaceName(ifname.to_string()))?;
    let idx = sys::ifindex(&c).ok_or_else(|| IoError::NoSuchInterface(ifname.to_string()))?;
    sys::attached(idx)
        .map(|a| a.names)
        .map_err(|e| sys_err("inspecting XDP programs", ifname, e))
}

// ---------------------------------------------------------------------------------------------
// Interface locks
// ---------------------------------------------------------------------------------------------

/// An exclusive `flock` on one interface (network namespace + ifindex), shared by every
/// `AfXdp` of this process that uses the interface; released when the last one drops (or the
/// process dies).
#[derive(Debug)]
struct IfaceLock {
    key: (u64, u32),
    path: PathBuf,
    file: File,
}

/// This process's interface locks (weak: the `AfXdp`s own them). Setup path only.
static LOCKS: Mutex<Vec<LockEntry>> = Mutex::new(Vec::new());

/// (network namespace inode, ifindex) and the shared lock.
type LockEntry = ((u64, u32), Weak<IfaceLock>);

impl IfaceLock {
    /// Share this process's lock on the interface, or take it. `fresh` is true when this
    /// process did not hold it before (no live xvs uses the interface).
    fn acquire(ifname: &str, ifindex: u32, queue: u32) -> Result<(Arc<Self>, bool), IoError> {
        let netns = std::fs::metadata("/proc/thread-self/ns/net")
            .or_else(|_| std::fs::metadata("/proc/self/ns/net"))
            .map(|m| m.ino())
            .map_err(|e| sys_err("reading the network namespace", ifname, e))?;
        let key = (netns, ifindex);
        let mut reg = LOCKS.lock().unwrap_or_else(PoisonError::into_inner);
        reg.retain(|(_, w)| w.strong_count() > 0);
        if let Some(l) = reg
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok((l, false));
        }
        let path = lock_dir(ifname)?.join(format!("xsk-{netns}-{ifindex}.lock"));
        // The owner unlinks the file before unlocking it (so /run/xvs does not fill up), so a
        // lock taken on a file that was unlinked meanwhile is worthless: check that the path
        // still names the locked inode, and start over if not.
        for _ in 0..8 {
            let mut file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| sys_err("opening the interface lock file", ifname, e))?;
            if file.try_lock().is_err() {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(IoError::Busy {
                    ifname: ifname.to_string(),
                    queue,
                    detail: format!(
                        "another xvs process (pid {}) uses this interface (lock {})",
                        owner.trim(),
                        path.display()
                    ),
                });
            }
            let same = match (file.metadata(), std::fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if !same {
                continue;
            }
            // Best effort: the pid is only for the message above.
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = write!(file, "{}", std::process::id());
            let lock = Arc::new(Self { key, path, file });
            reg.push((key, Arc::downgrade(&lock)));
            return Ok((lock, true));
        }
        Err(IoError::Busy {
            ifname: ifname.to_string(),
            queue,
            detail: format!("the lock file {} keeps changing under us", path.display()),
        })
    }
}

impl Drop for IfaceLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock (see `acquire`); the lock goes with the fd.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

fn lock_dir(ifname: &str) -> Result<PathBuf, IoError> {
    let run = PathBuf::from("/run/xvs");
    if std::fs::create_dir_all(&run).is_ok() {
        return Ok(run);
    }
    let tmp = std::env::temp_dir().join("xvs");
    std::fs::create_dir_all(&tmp).map_err(|e| sys_err("creating the lock directory", ifname, e))?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_and_options_fail_before_touching_anything() {
        let o = AfXdpOpts::default();
        let bad = [PortConf {
            ifname: "x".repeat(20),
            queue: 0,
        }];
        assert!(matches!(
            AfXdp::open(&bad, &o),
            Err(IoError::BadInterfaceName(_))
        ));
        let missing = [PortConf {
            ifname: "xvsnosuch0".into(),
            queue: 0,
        }];
        assert!(matches!(
            AfXdp::open(&missing, &o),
            Err(IoError::NoSuchInterface(_))
        ));
        assert!(matches!(AfXdp::open(&[], &o), Err(IoError::Config(_))));
        let odd = AfXdpOpts {
            ring_size: 1000,
            ..AfXdpOpts::default()
        };
        assert!(matches!(
            AfXdp::open(&missing, &odd),
            Err(IoError::Config(_))
        ));
        let few = AfXdpOpts {
            frames: 64,
            ring_size: 128,
            ..AfXdpOpts::default()
        };
        assert!(matches!(
            AfXdp::open(&missing, &few),
            Err(IoError::Config(_))
        ));
    }

    #[test]
    fn the_backend_can_move_to_its_worker_thread() {
        fn is_send<T: Send>() {}
        is_send::<AfXdp>();
    }

    #[test]
    fn error_messages_tell_the_operator_what_to_do() {
        let m = IoError::Memlock {
            bytes: 1 << 25,
            limit: Some(8 << 20),
        }
        .to_string();
        assert!(
            m.contains("8388608 bytes") && m.contains("ulimit -l"),
            "{m}"
        );
        let p = IoError::Permission {
            op: "x",
            ifname: "eth9".into(),
        }
        .to_string();
        assert!(p.contains("CAP_NET_ADMIN") && p.contains("eth9"), "{p}");
    }
}
