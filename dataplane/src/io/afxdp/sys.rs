//! The only unsafe code of xvs: the UMEM memory, the libxdp socket and UMEM objects, their four
//! rings, and the few raw syscalls the backend needs (wakeup kicks, interface queries, memlock).
//!
//! Everything here is a thin safe wrapper whose soundness rests on two invariants, upheld by the
//! owner in `afxdp/mod.rs`:
//! - a chunk of the UMEM is touched by user space only while user space owns the frame (it is on
//!   the free list or in the worker's hands, never while it sits in a fill, RX, TX or completion
//!   ring), and `Area::chunk_mut` borrows `&mut self`, so at most one slice exists at a time;
//! - libxdp keeps raw pointers to the ring structs it was handed (`xsk_ctx::fill/comp`), so every
//!   ring struct lives in a `Box` that outlives the libxdp object pointing at it, and sockets are
//!   deleted before the UMEM, and the UMEM before the memory area (field order in `AfXdp`).
//!
//! Never: hand out a slice of a chunk the kernel may be writing, move a ring struct after libxdp
//! saw its address, or delete a UMEM that still has sockets.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};

use libxdp_sys as xdp;

use crate::io::{CHUNK_SIZE, Desc};

/// `XDP_FLAGS_SKB_MODE` from `linux/if_link.h`.
pub(super) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE` from `linux/if_link.h`.
pub(super) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// The name of libxdp's default AF_XDP redirect program (`xsk_def_xdp_prog.c`).
pub(super) const XSK_DEFAULT_PROG: &str = "xsk_def_prog";

/// `CHUNK_SIZE` as the kernel's u32 (4096 fits).
#[allow(clippy::cast_possible_truncation)]
const CHUNK_U32: u32 = CHUNK_SIZE as u32;

/// Size of a small option struct as a `socklen_t`.
#[allow(clippy::cast_possible_truncation)] // option structs are a few dozen bytes
const fn socklen_of<T>() -> libc::socklen_t {
    std::mem::size_of::<T>() as libc::socklen_t
}

/// Turn a libxdp/libbpf negative errno return into an `io::Error`.
fn neg_errno(ret: i32) -> io::Error {
    io::Error::from_raw_os_error(-ret)
}

// ---------------------------------------------------------------------------------------------
// The memory area
// ---------------------------------------------------------------------------------------------

/// The UMEM memory: an anonymous, page-aligned, pre-faulted mapping of `len` bytes.
#[derive(Debug)]
pub(super) struct Area {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: `Area` owns its mapping exclusively; moving it to another thread moves that ownership.
unsafe impl Send for Area {}

impl Area {
    /// Map `len` bytes (a multiple of the page size).
    pub(super) fn new(len: usize) -> io::Result<Self> {
        // SAFETY: an anonymous private mapping with a null hint has no precondition; the result
        // is checked against MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Self { base, len })
    }

    /// Start of the mapping, for `xsk_umem__create`.
    pub(super) fn as_ptr(&self) -> *mut libc::c_void {
        self.base.as_ptr().cast()
    }

    /// Length in bytes.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The whole chunk at offset `chunk` (a multiple of `CHUNK_SIZE`), or `None` if it is not
    /// one of ours. The caller must own the frame (see the module invariants).
    #[inline]
    pub(super) fn chunk_mut(&mut self, chunk: u64) -> Option<&mut [u8]> {
        let off = usize::try_from(chunk).ok()?;
        if off % CHUNK_SIZE != 0 || off.checked_add(CHUNK_SIZE)? > self.len {
            return None;
        }
        // SAFETY: `off + CHUNK_SIZE <= len`, so the range lies inside our live mapping; the
        // `&mut self` borrow makes this the only slice into the area, and the owner only asks
        // for chunks the kernel does not hold (module invariant).
        let p = unsafe { self.base.as_ptr().add(off) };
        // SAFETY: `p` points to CHUNK_SIZE initialised (zero-filled by mmap) bytes in our
        // mapping, valid and unaliased for the lifetime of the `&mut self` borrow.
        Some(unsafe { std::slice::from_raw_parts_mut(p, CHUNK_SIZE) })
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned; the UMEM that registered this memory
        // was deleted before (field order in `AfXdp`), so the kernel no longer references it.
        unsafe { libc::munmap(self.as_ptr(), self.len) };
    }
}

// ---------------------------------------------------------------------------------------------
// UMEM
// ---------------------------------------------------------------------------------------------

fn empty_prod() -> Box<xdp::xsk_ring_prod> {
    Box::new(xdp::xsk_ring_prod {
        cached_prod: 0,
        cached_cons: 0,
        mask: 0,
        size: 0,
        producer: ptr::null_mut(),
        consumer: ptr::null_mut(),
        ring: ptr::null_mut(),
        flags: ptr::null_mut(),
    })
}

fn empty_cons() -> Box<xdp::xsk_ring_cons> {
    Box::new(xdp::xsk_ring_cons {
        cached_prod: 0,
        cached_cons: 0,
        mask: 0,
        size: 0,
        producer: ptr::null_mut(),
        consumer: ptr::null_mut(),
        ring: ptr::null_mut(),
        flags: ptr::null_mut(),
    })
}

/// A registered UMEM (libxdp `xsk_umem`).
#[derive(Debug)]
pub(super) struct Umem {
    raw: NonNull<xdp::xsk_umem>,
    /// The fill/completion pair created with the UMEM; libxdp hands it to the first socket
    /// (`umem->fill_save`). Boxed: libxdp keeps its address.
    saved: Option<(Box<xdp::xsk_ring_prod>, Box<xdp::xsk_ring_cons>)>,
}

// SAFETY: the libxdp UMEM is plain heap state plus a file descriptor; it is used from one thread
// at a time (the owning worker), which `&mut` access enforces.
unsafe impl Send for Umem {}

impl Umem {
    /// Register `area` as a UMEM of CHUNK_SIZE frames with no user headroom; fill and completion
    /// rings of `ring_size` entries. Returns the negative errno of `xsk_umem__create` on failure.
    pub(super) fn new(area: &Area, ring_size: u32) -> Result<Self, io::Error> {
        let mut fill = empty_prod();
        let mut comp = empty_cons();
        let cfg = xdp::xsk_umem_config {
            fill_size: ring_size,
            comp_size: ring_size,
            frame_size: CHUNK_U32,
            frame_headroom: 0,
            flags: 0,
        };
        let mut raw: *mut xdp::xsk_umem = ptr::null_mut();
        // SAFETY: `area` is a live page-aligned mapping of `area.len()` bytes that outlives the
        // UMEM (field order in `AfXdp`); `fill`/`comp` are boxed so the addresses libxdp saves
        // stay valid until we drop them after the UMEM is deleted; `cfg` lives across the call.
        let ret = unsafe {
            xdp::xsk_umem__create(
                &raw mut raw,
                area.as_ptr(),
                area.len() as u64,
                &raw mut *fill,
                &raw mut *comp,
                &raw const cfg,
            )
        };
        if ret != 0 {
            return Err(neg_errno(ret));
        }
        let raw =
            NonNull::new(raw).ok_or_else(|| io::Error::other("xsk_umem__create gave null"))?;
        Ok(Self {
            raw,
            saved: Some((fill, comp)),
        })
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: `raw` came from xsk_umem__create and is deleted only here; every socket using
        // it was deleted first (field order in `AfXdp`); the saved rings it may unmap are still
        // alive (fields drop after this body).
        unsafe { xdp::xsk_umem__delete(self.raw.as_ptr()) };
    }
}

// ---------------------------------------------------------------------------------------------
// Socket
// ---------------------------------------------------------------------------------------------

/// Socket creation parameters.
#[derive(Copy, Clone, Debug)]
pub(super) struct XskParams {
    /// RX and TX ring entries (power of two).
    pub(super) ring_size: u32,
    /// `XDP_FLAGS_*` attach mode for libxdp's default program.
    pub(super) xdp_flags: u32,
    /// `XDP_COPY` / `XDP_ZEROCOPY` / 0 (kernel chooses), always with `XDP_USE_NEED_WAKEUP`.
    pub(super) bind_flags: u16,
}

/// One AF_XDP socket bound to (interface, queue), sharing a UMEM, with its own fill and
/// completion rings (one pair per (interface, queue) in a shared UMEM).
#[derive(Debug)]
pub(super) struct Xsk {
    raw: NonNull<xdp::xsk_socket>,
    fd: i32,
    rx: Box<xdp::xsk_ring_cons>,
    tx: Box<xdp::xsk_ring_prod>,
    fill: Box<xdp::xsk_ring_prod>,
    comp: Box<xdp::xsk_ring_cons>,
}

// SAFETY: see `Umem`; the socket and its rings are used by the owning worker only.
unsafe impl Send for Xsk {}

impl Xsk {
    /// Create a socket on `ifname` queue `queue` sharing `umem`. On failure the error is the
    /// errno libxdp returned (EBUSY, EPERM, ENOBUFS, EINVAL, EOPNOTSUPP, ...).
    pub(super) fn create(
        umem: &mut Umem,
        ifname: &CStr,
        queue: u32,
        p: XskParams,
    ) -> Result<Self, io::Error> {
        let from_saved = umem.saved.is_some();
        let (mut fill, mut comp) = match umem.saved.take() {
            Some(pair) => pair,
            None => (empty_prod(), empty_cons()),
        };
        let mut rx = empty_cons();
        let mut tx = empty_prod();
        let cfg = xdp::xsk_socket_config {
            rx_size: p.ring_size,
            tx_size: p.ring_size,
            __bindgen_anon_1: xdp::xsk_socket_config__bindgen_ty_1 { libxdp_flags: 0 },
            xdp_flags: p.xdp_flags,
            bind_flags: p.bind_flags,
        };
        let mut raw: *mut xdp::xsk_socket = ptr::null_mut();
        // SAFETY: `umem.raw` is a live UMEM; all four ring structs are boxed (stable addresses)
        // and move into the returned `Xsk`, which is deleted before they drop; when they are the
        // UMEM's saved pair, libxdp keeps them saved on failure and we put them back below.
        let ret = unsafe {
            xdp::xsk_socket__create_shared(
                &raw mut raw,
                ifname.as_ptr(),
                queue,
                umem.raw.as_ptr(),
                &raw mut *rx,
                &raw mut *tx,
                &raw mut *fill,
                &raw mut *comp,
                &raw const cfg,
            )
        };
        if ret != 0 {
            if from_saved {
                // libxdp clears `umem->fill_save` only on success: it still points at this pair,
                // which the retry and `xsk_umem__delete` need alive. A fresh pair was already
                // unmapped and forgotten by libxdp, so it may simply drop.
                umem.saved = Some((fill, comp));
            }
            return Err(neg_errno(ret));
        }
        let raw =
            NonNull::new(raw).ok_or_else(|| io::Error::other("xsk_socket__create gave null"))?;
        // SAFETY: `raw` is the live socket just created.
        let fd = unsafe { xdp::xsk_socket__fd(raw.as_ptr()) };
        Ok(Self {
            raw,
            fd,
            rx,
            tx,
            fill,
            comp,
        })
    }

    /// The socket's file descriptor (for `poll`).
    pub(super) fn fd(&self) -> i32 {
        self.fd
    }

    /// Hand up to `addrs.len()` chunk offsets to the kernel's fill ring; returns how many.
    #[inline]
    pub(super) fn fill(&mut self, addrs: &[u64]) -> usize {
        let mut idx = 0u32;
        let want = u32::try_from(addrs.len()).unwrap_or(u32::MAX);
        // SAFETY: `fill` is a ring libxdp mapped for this socket's (interface, queue) context.
        let n = unsafe { xdp::xsk_ring_prod__reserve(&raw mut *self.fill, want, &raw mut idx) };
        for (i, &a) in (0..n).zip(addrs) {
            // SAFETY: slots idx..idx+n were reserved above; the ring masks the index.
            let slot =
                unsafe { xdp::xsk_ring_prod__fill_addr(&raw mut *self.fill, idx.wrapping_add(i)) };
            // SAFETY: `slot` points into the reserved, user-owned part of the mapped fill ring.
            unsafe { slot.write(a) };
        }
        if n > 0 {
            // SAFETY: exactly the `n` reserved slots were written.
            unsafe { xdp::xsk_ring_prod__submit(&raw mut *self.fill, n) };
        }
        n as usize
    }

    /// Take up to `out.len()` completed TX addresses; returns how many.
    #[inline]
    pub(super) fn complete(&mut self, out: &mut [u64]) -> usize {
        let mut idx = 0u32;
        let want = u32::try_from(out.len()).unwrap_or(u32::MAX);
        // SAFETY: `comp` is a ring libxdp mapped for this socket's context.
        let n = unsafe { xdp::xsk_ring_cons__peek(&raw mut *self.comp, want, &raw mut idx) };
        for (i, o) in (0..n).zip(out.iter_mut()) {
            // SAFETY: slots idx..idx+n were peeked above and hold kernel-written entries.
            let slot = unsafe {
                xdp::xsk_ring_cons__comp_addr(&raw const *self.comp, idx.wrapping_add(i))
            };
            // SAFETY: `slot` points into the peeked part of the mapped completion ring.
            *o = unsafe { slot.read() };
        }
        if n > 0 {
            // SAFETY: releasing exactly the `n` entries peeked and read.
            unsafe { xdp::xsk_ring_cons__release(&raw mut *self.comp, n) };
        }
        n as usize
    }

    /// Take up to `out.len()` received frames, tagging them with `port`; returns how many.
    #[inline]
    pub(super) fn receive(&mut self, port: u16, out: &mut [Desc]) -> usize {
        let mut idx = 0u32;
        let want = u32::try_from(out.len()).unwrap_or(u32::MAX);
        // SAFETY: `rx` is the RX ring libxdp mapped for this socket.
        let n = unsafe { xdp::xsk_ring_cons__peek(&raw mut *self.rx, want, &raw mut idx) };
        for (i, o) in (0..n).zip(out.iter_mut()) {
            // SAFETY: slots idx..idx+n were peeked above.
            let d =
                unsafe { xdp::xsk_ring_cons__rx_desc(&raw const *self.rx, idx.wrapping_add(i)) };
            // SAFETY: `d` points into the peeked part of the mapped RX ring.
            let d = unsafe { d.read() };
            *o = Desc {
                addr: d.addr,
                len: d.len,
                port,
            };
        }
        if n > 0 {
            // SAFETY: releasing exactly the `n` entries peeked and read.
            unsafe { xdp::xsk_ring_cons__release(&raw mut *self.rx, n) };
        }
        n as usize
    }

    /// Queue up to `descs.len()` frames on the TX ring; returns how many (a prefix).
    #[inline]
    pub(super) fn transmit(&mut self, descs: &[Desc]) -> usize {
        let mut idx = 0u32;
        let want = u32::try_from(descs.len()).unwrap_or(u32::MAX);
        // SAFETY: `tx` is the TX ring libxdp mapped for this socket.
        let n = unsafe { xdp::xsk_ring_prod__reserve(&raw mut *self.tx, want, &raw mut idx) };
        for (i, d) in (0..n).zip(descs) {
            // SAFETY: slots idx..idx+n were reserved above.
            let slot =
                unsafe { xdp::xsk_ring_prod__tx_desc(&raw mut *self.tx, idx.wrapping_add(i)) };
            let v = xdp::xdp_desc {
                addr: d.addr,
                len: d.len,
                options: 0,
            };
            // SAFETY: `slot` points into the reserved, user-owned part of the mapped TX ring.
            unsafe { slot.write(v) };
        }
        if n > 0 {
            // SAFETY: exactly the `n` reserved slots were written.
            unsafe { xdp::xsk_ring_prod__submit(&raw mut *self.tx, n) };
        }
        n as usize
    }

    /// Whether the kernel asked for a kick to process the TX ring.
    #[inline]
    pub(super) fn tx_needs_wakeup(&self) -> bool {
        // SAFETY: reads the flags word of the live mapped TX ring.
        unsafe { xdp::xsk_ring_prod__needs_wakeup(&raw const *self.tx) != 0 }
    }

    /// Whether the kernel asked for a kick after the fill ring ran dry.
    #[inline]
    pub(super) fn fill_needs_wakeup(&self) -> bool {
        // SAFETY: reads the flags word of the live mapped fill ring.
        unsafe { xdp::xsk_ring_prod__needs_wakeup(&raw const *self.fill) != 0 }
    }

    /// Whether the TX ring still holds entries the kernel has not consumed.
    #[inline]
    pub(super) fn tx_pending(&self) -> bool {
        // SAFETY: `consumer` points at the aligned u32 consumer index of the live mapped TX
        // ring, which the kernel only ever updates atomically (it is shared memory, as libxdp's
        // own `__atomic_load_n(r->consumer, __ATOMIC_ACQUIRE)` assumes).
        let cons = unsafe { AtomicU32::from_ptr(self.tx.consumer) };
        cons.load(Ordering::Acquire) != self.tx.cached_prod
    }

    /// Ask the kernel to transmit (copy mode sends at most 32 frames per call). Returns true
    /// when it stopped early (EAGAIN: more queued, or the completion ring is full).
    #[inline]
    pub(super) fn kick_tx(&self) -> bool {
        // SAFETY: a zero-length sendto on our own socket fd with null buffers is the documented
        // AF_XDP TX wakeup; no memory is read or written.
        let r =
            unsafe { libc::sendto(self.fd, ptr::null(), 0, libc::MSG_DONTWAIT, ptr::null(), 0) };
        r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN)
    }

    /// Wake the kernel's RX path after the fill ring was refilled.
    #[inline]
    pub(super) fn kick_rx(&self) {
        // SAFETY: a zero-length recvfrom with null buffers on our socket fd is the documented
        // AF_XDP fill-ring wakeup; no memory is written.
        unsafe {
            libc::recvfrom(
                self.fd,
                ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
    }

    /// Whether the kernel bound this socket in zero-copy mode (`XDP_OPTIONS`).
    pub(super) fn zero_copy(&self) -> bool {
        let mut opts = xdp::xdp_options { flags: 0 };
        let mut len = socklen_of::<xdp::xdp_options>();
        // SAFETY: getsockopt writes at most `len` bytes into `opts`, which is that large.
        let r = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_XDP,
                libc::XDP_OPTIONS,
                (&raw mut opts).cast(),
                &raw mut len,
            )
        };
        r == 0 && opts.flags & xdp::XDP_OPTIONS_ZEROCOPY != 0
    }

    /// The kernel's drop counters for this socket (`XDP_STATISTICS`).
    pub(super) fn statistics(&self) -> io::Result<xdp::xdp_statistics> {
        let mut st = xdp::xdp_statistics {
            rx_dropped: 0,
            rx_invalid_descs: 0,
            tx_invalid_descs: 0,
            rx_ring_full: 0,
            rx_fill_ring_empty_descs: 0,
            tx_ring_empty_descs: 0,
        };
        let mut len = socklen_of::<xdp::xdp_statistics>();
        // SAFETY: getsockopt writes at most `len` bytes into `st`, which is that large.
        let r = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&raw mut st).cast(),
                &raw mut len,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }
}

impl Drop for Xsk {
    fn drop(&mut self) {
        // SAFETY: `raw` is live and deleted only here, before the UMEM (field order in
        // `AfXdp`); the ring structs libxdp dereferences while deleting are still alive (fields
        // drop after this body). libxdp detaches its default program when its refcount drops to
        // zero.
        unsafe { xdp::xsk_socket__delete(self.raw.as_ptr()) };
    }
}

// ---------------------------------------------------------------------------------------------
// Interfaces, XDP programs, limits
// ---------------------------------------------------------------------------------------------

/// Build the `poll` set for `fds` (POLLIN on each).
pub(super) fn pollfds(fds: &[i32]) -> Vec<libc::pollfd> {
    fds.iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect()
}

/// Sleep until one of `set` is readable or `timeout_ms` passes; true if something is readable.
pub(super) fn poll_in(set: &mut [libc::pollfd], timeout_ms: i32) -> bool {
    let n = libc::nfds_t::try_from(set.len()).unwrap_or(0);
    // SAFETY: `set` is a valid, exclusively borrowed array of `n` pollfd structs that poll may
    // write `revents` into.
    let r = unsafe { libc::poll(set.as_mut_ptr(), n, timeout_ms) };
    r > 0
}

/// `if_nametoindex`, or `None` if there is no such interface in this network namespace.
pub(super) fn ifindex(name: &CStr) -> Option<u32> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (i != 0).then_some(i)
}

/// A zeroed `ifreq` naming `name`.
fn ifreq(name: &CStr) -> libc::ifreq {
    // SAFETY: `ifreq` is plain old data (integers, arrays and a union of those); all-zero is a
    // valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, &s) in r
        .ifr_name
        .iter_mut()
        .zip(name.to_bytes().iter().take(libc::IFNAMSIZ - 1))
    {
        *d = s as libc::c_char;
    }
    r
}

/// Run one interface ioctl on a throwaway datagram socket.
fn if_ioctl(name: &CStr, req: libc::Ioctl) -> io::Result<libc::ifreq> {
    // SAFETY: creating a socket has no memory preconditions; the fd is checked and closed.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut r = ifreq(name);
    // SAFETY: SIOCGIFHWADDR / SIOCGIFMTU read the name from and write the answer into `r`, a
    // full `ifreq` that outlives the call.
    let ret = unsafe { libc::ioctl(fd, req, &raw mut r) };
    let err = io::Error::last_os_error();
    // SAFETY: `fd` is the socket opened above and not used after this.
    unsafe { libc::close(fd) };
    if ret < 0 {
        return Err(err);
    }
    Ok(r)
}

/// Hardware address of an interface.
pub(super) fn if_mac(name: &CStr) -> io::Result<[u8; 6]> {
    let r = if_ioctl(name, libc::SIOCGIFHWADDR)?;
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member of the union.
    let sa = unsafe { r.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, &b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = b as u8;
    }
    Ok(mac)
}

/// MTU of an interface.
pub(super) fn if_mtu(name: &CStr) -> io::Result<usize> {
    let r = if_ioctl(name, libc::SIOCGIFMTU)?;
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member of the union.
    let mtu = unsafe { r.ifr_ifru.ifru_mtu };
    usize::try_from(mtu).map_err(|_| io::Error::other("negative MTU"))
}

/// The current `RLIMIT_MEMLOCK` soft limit in bytes (`None`: unlimited).
pub(super) fn memlock_limit() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into `r`.
    let ret = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &raw mut r) };
    if ret != 0 || r.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(r.rlim_cur)
}

/// Try to raise `RLIMIT_MEMLOCK` to at least `bytes` (works with CAP_SYS_RESOURCE); silently
/// keeps the old limit otherwise (UMEM registration then reports the problem).
pub(super) fn raise_memlock(bytes: u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into `r`.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &raw mut r) } != 0 {
        return;
    }
    if r.rlim_cur == libc::RLIM_INFINITY || r.rlim_cur >= bytes {
        return;
    }
    let want = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads one `rlimit`; failure (no privilege) leaves the limit unchanged.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raw const want) } == 0 {
        return;
    }
    let soft = libc::rlimit {
        rlim_cur: r.rlim_max.max(bytes).min(r.rlim_max),
        rlim_max: r.rlim_max,
    };
    // SAFETY: as above; raising the soft limit up to the hard one needs no privilege.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raw const soft) };
}

/// What is attached at the XDP hook of an interface.
#[derive(Clone, Debug, Default)]
pub(super) struct Attached {
    /// Names of the programs (component programs when libxdp's dispatcher is in use).
    pub(super) names: Vec<String>,
}

/// Open libxdp's view of the programs on `ifindex` (`None`: nothing attached).
struct Multiprog(NonNull<xdp::xdp_multiprog>);

impl Multiprog {
    fn get(ifindex: u32) -> io::Result<Option<Self>> {
        let idx = i32::try_from(ifindex).map_err(|_| io::Error::other("ifindex out of range"))?;
        // SAFETY: no memory preconditions; the result is an object, NULL or an ERR_PTR, checked
        // with libxdp_get_error before any use.
        let mp = unsafe { xdp::xdp_multiprog__get_from_ifindex(idx) };
        // SAFETY: libxdp_get_error only inspects the pointer value.
        let err = unsafe { xdp::libxdp_get_error(mp.cast_const().cast()) };
        if err != 0 {
            let e = i32::try_from(err).unwrap_or(-libc::EINVAL);
            return if e == -libc::ENOENT {
                Ok(None)
            } else {
                Err(neg_errno(e))
            };
        }
        Ok(NonNull::new(mp).map(Self))
    }

    fn names(&self) -> Vec<String> {
        let mp = self.0.as_ptr();
        let mut out = Vec::new();
        // SAFETY: `mp` is a live multiprog object.
        let legacy = unsafe { xdp::xdp_multiprog__is_legacy(mp) };
        if legacy {
            // SAFETY: as above; the main program of a legacy attachment may be NULL.
            let p = unsafe { xdp::xdp_multiprog__main_prog(mp) };
            push_name(&mut out, p);
            return out;
        }
        let mut p: *mut xdp::xdp_program = ptr::null_mut();
        loop {
            // SAFETY: iterating the component programs of a live multiprog; NULL ends the walk.
            p = unsafe { xdp::xdp_multiprog__next_prog(p, mp) };
            if p.is_null() {
                break;
            }
            push_name(&mut out, p);
        }
        out
    }

    fn detach(&self) -> io::Result<()> {
        // SAFETY: `self.0` is a live multiprog object.
        let r = unsafe { xdp::xdp_multiprog__detach(self.0.as_ptr()) };
        if r != 0 { Err(neg_errno(r)) } else { Ok(()) }
    }
}

fn push_name(out: &mut Vec<String>, p: *mut xdp::xdp_program) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` is a live program owned by the multiprog; its name is a NUL-terminated string
    // owned by the program.
    let n = unsafe { xdp::xdp_program__name(p) };
    if n.is_null() {
        return;
    }
    // SAFETY: `n` is non-null and NUL-terminated (libbpf program name), valid while `p` lives.
    out.push(unsafe { CStr::from_ptr(n) }.to_string_lossy().into_owned());
}

impl Drop for Multiprog {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from xdp_multiprog__get_from_ifindex and is closed only here.
        unsafe { xdp::xdp_multiprog__close(self.0.as_ptr()) };
    }
}

/// The programs attached to `ifindex` (empty: none).
pub(super) fn attached(ifindex: u32) -> io::Result<Attached> {
    Ok(match Multiprog::get(ifindex)? {
        Some(mp) => Attached { names: mp.names() },
        None => Attached::default(),
    })
}

/// Detach whatever libxdp finds at the XDP hook of `ifindex` (program or dispatcher).
pub(super) fn detach_all(ifindex: u32) -> io::Result<()> {
    match Multiprog::get(ifindex)? {
        Some(mp) => mp.detach(),
        None => Ok(()),
    }
}

/// A NUL-terminated copy of an interface name (`None`: interior NUL or too long).
pub(super) fn c_ifname(name: &str) -> Option<CString> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return None;
    }
    CString::new(name).ok()
}
