//! Packet I/O: the batch, zero-copy [`PacketIo`] trait every worker is generic over, and its
//! backends (`mem` for tests and benchmarks, `pcap` for offline replay, `afxdp` for NIC queues).
//!
//! A frame lives in a fixed-size *chunk* of backend memory (`CHUNK_SIZE` bytes, like an AF_XDP
//! UMEM frame). A [`Desc`] names the packet inside its chunk: `addr` is the absolute offset of
//! the first packet byte in the backend's memory, so `addr - chunk start` is the headroom that
//! encapsulation may grow into. Descriptors are plain `Copy` values moved between rx, tx and
//! recycle; a frame is owned by exactly one of: the backend's free pool, the kernel, or the
//! worker holding its `Desc`.
//!
//! Invariants: every `Desc` handed out by `rx_burst` or `alloc` goes back exactly once, through
//! `tx_burst` (which consumes what it accepted) or `recycle`; no path leaks a frame. Never:
//! allocate, lock or log in `rx_burst`/`tx_burst`/`recycle`/`frame`.

#[cfg(feature = "afxdp")]
pub mod afxdp;
pub mod mem;
pub mod pcap;

/// Frames per burst.
pub const BATCH: usize = 64;

/// Bytes per frame chunk (the AF_XDP frame size we configure).
pub const CHUNK_SIZE: usize = 4096;

/// Headroom reserved in front of every received frame, so TUN can encapsulate in place
/// (outer IPv6 40 + UDP 8 + GUE 4 + slack).
pub const HEADROOM: usize = 256;

/// A packet descriptor: where a frame's bytes are, how long, and on which port.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// Absolute offset of the first packet byte in backend memory.
    pub addr: u64,
    /// Packet length in bytes.
    pub len: u32,
    /// Port (interface index within the worker) it came in on / goes out of.
    pub port: u16,
}

// Lengths and offsets are bounded by CHUNK_SIZE (4096), so the narrowing casts cannot truncate.
#[allow(clippy::cast_possible_truncation)]
impl Desc {
    /// Offset of the chunk that holds this frame.
    #[inline]
    #[must_use]
    pub const fn chunk(&self) -> u64 {
        self.addr - (self.addr % CHUNK_SIZE as u64)
    }

    /// Bytes between the chunk start and the first packet byte.
    #[inline]
    #[must_use]
    pub const fn headroom(&self) -> usize {
        (self.addr % CHUNK_SIZE as u64) as usize
    }
}

/// A mutable view of one frame: the whole chunk plus where the packet sits in it. Growing or
/// shrinking at either end updates the descriptor it was made from.
#[derive(Debug)]
pub struct Frame<'a> {
    chunk: &'a mut [u8],
    desc: &'a mut Desc,
}

/// Not enough room in the chunk for the requested growth.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NoRoom;

// Lengths are bounded by the chunk size, so the narrowing casts cannot truncate.
#[allow(clippy::cast_possible_truncation)]
impl<'a> Frame<'a> {
    /// A view over `chunk` (exactly the chunk `desc` lives in).
    #[inline]
    pub fn new(chunk: &'a mut [u8], desc: &'a mut Desc) -> Self {
        Self { chunk, desc }
    }

    #[inline]
    fn start(&self) -> usize {
        self.desc.headroom()
    }

    /// The packet bytes.
    #[inline]
    #[must_use]
    pub fn data(&self) -> &[u8] {
        let s = self.start();
        let e = (s + self.desc.len as usize).min(self.chunk.len());
        &self.chunk[s.min(e)..e]
    }

    /// The packet bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let s = self.start();
        let e = (s + self.desc.len as usize).min(self.chunk.len());
        &mut self.chunk[s.min(e)..e]
    }

    /// Packet length.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.desc.len as usize
    }

    /// Whether the packet is empty.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.desc.len == 0
    }

    /// Free bytes in front of the packet.
    #[inline]
    #[must_use]
    pub fn headroom(&self) -> usize {
        self.start()
    }

    /// Free bytes after the packet.
    #[inline]
    #[must_use]
    pub fn tailroom(&self) -> usize {
        self.chunk
            .len()
            .saturating_sub(self.start() + self.desc.len as usize)
    }

    /// Grow the packet by `n` bytes at the front (encapsulation); the new bytes are
    /// uninitialised garbage the caller overwrites.
    #[inline]
    pub fn push_front(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.headroom() {
            return Err(NoRoom);
        }
        self.desc.addr -= n as u64;
        self.desc.len += n as u32;
        Ok(())
    }

    /// Drop `n` bytes from the front (decapsulation).
    #[inline]
    pub fn pull_front(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.len() {
            return Err(NoRoom);
        }
        self.desc.addr += n as u64;
        self.desc.len -= n as u32;
        Ok(())
    }

    /// Set the packet length (grow into the tailroom or truncate).
    #[inline]
    pub fn set_len(&mut self, len: usize) -> Result<(), NoRoom> {
        if self.start() + len > self.chunk.len() {
            return Err(NoRoom);
        }
        self.desc.len = len as u32;
        Ok(())
    }

    /// Move the packet to start `to` bytes into the chunk (keeps the length). Used to get
    /// headroom back when a reply is built in place.
    pub fn move_to(&mut self, to: usize) -> Result<(), NoRoom> {
        let (s, len) = (self.start(), self.len());
        if to + len > self.chunk.len() {
            return Err(NoRoom);
        }
        self.chunk.copy_within(s..s + len, to);
        self.desc.addr = self.desc.chunk() + to as u64;
        Ok(())
    }

    /// Egress/ingress port of the frame.
    #[inline]
    #[must_use]
    pub fn port(&self) -> u16 {
        self.desc.port
    }

    /// Set the egress port.
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        self.desc.port = port;
    }
}

/// Batch packet I/O. Workers are generic over it; no `dyn` on the hot path.
pub trait PacketIo {
    /// Number of ports (interfaces) this backend serves for the worker.
    fn ports(&self) -> usize;

    /// Receive up to `descs.len()` frames from any port; returns how many were written.
    fn rx_burst(&mut self, descs: &mut [Desc]) -> usize;

    /// A mutable view of a frame this worker holds.
    fn frame<'a>(&'a mut self, desc: &'a mut Desc) -> Frame<'a>;

    /// Queue frames for transmission on their `port`. Returns how many were accepted (a prefix
    /// of `descs`); the caller recycles the rest.
    fn tx_burst(&mut self, descs: &[Desc]) -> usize;

    /// Give frames back to the free pool (dropped packets).
    fn recycle(&mut self, descs: &[Desc]);

    /// A fresh frame for a packet the worker originates (ARP/ND requests), with `HEADROOM` in
    /// front and length 0, or `None` when the pool is empty.
    fn alloc(&mut self, port: u16) -> Option<Desc>;

    /// Housekeeping between bursts: reap completions, refill, wake the kernel if it asks.
    fn service(&mut self);

    /// Hardware address of a port.
    fn mac(&self, port: u16) -> [u8; 6];

    /// MTU of a port (L3 bytes).
    fn mtu(&self, port: u16) -> usize;

    /// Idle wait of an adaptive worker: block until a frame may be ready or `timeout_ms`
    /// passes. Never called on the hot path. Backends that cannot wait for traffic sleep
    /// briefly instead.
    fn wait_rx(&mut self, timeout_ms: i32) {
        let _ = timeout_ms;
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}
