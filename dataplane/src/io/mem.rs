//! `MemIo`: the in-memory [`PacketIo`] backend for unit tests, fixtures and micro-benchmarks.
//!
//! Frames live in one plain `Vec<u8>` cut into `CHUNK_SIZE` chunks, exactly the layout of an
//! AF_XDP UMEM, so the pipeline sees the same headroom and descriptor arithmetic as on a NIC.
//! Tests `inject` frames (a copy standing in for the NIC's DMA) and `take_tx` what the worker
//! transmitted; benchmarks `inject` and `discard_tx`. The rx and tx queues are fixed rings of
//! descriptors, as a NIC's are, so the harness costs what a ring costs.
//!
//! Invariants: a chunk is in exactly one of the free list, the rx queue, the tx queue or the
//! worker's hands; `free + rx + tx + held == chunks`, so a ring of `chunks` slots never
//! overflows. Never: allocate in inject/rx/tx/recycle/frame.

// Offsets and lengths are bounded by the pool size and CHUNK_SIZE; the backend is for tests and
// benchmarks on 64-bit hosts, so the narrowing casts cannot truncate.
#![allow(clippy::cast_possible_truncation)]

use super::{CHUNK_SIZE, Desc, Frame, HEADROOM, PacketIo};

/// In-memory packet I/O with `ports` ports.
#[derive(Debug)]
pub struct MemIo {
    mem: Vec<u8>,
    free: Vec<u64>,
    rx: Ring,
    tx: Ring,
    macs: Vec<[u8; 6]>,
    mtu: usize,
    tx_limit: usize,
}

impl MemIo {
    /// A backend with `chunks` frames and one MAC per port.
    #[must_use]
    pub fn new(chunks: usize, macs: Vec<[u8; 6]>) -> Self {
        let free = (0..chunks as u64)
            .rev()
            .map(|i| i * CHUNK_SIZE as u64)
            .collect();
        Self {
            mem: vec![0; chunks * CHUNK_SIZE],
            free,
            rx: Ring::new(chunks),
            tx: Ring::new(chunks),
            macs,
            mtu: 1500,
            tx_limit: usize::MAX,
        }
    }

    /// Set the MTU every port reports.
    pub fn set_mtu(&mut self, mtu: usize) {
        self.mtu = mtu;
    }

    /// Accept at most `n` frames per `tx_burst` (to exercise the TX-full path).
    pub fn set_tx_limit(&mut self, n: usize) {
        self.tx_limit = n;
    }

    /// Copy `bytes` into a free chunk and queue it for reception on `port`. Returns false if
    /// no chunk is free or the frame does not fit.
    pub fn inject(&mut self, port: u16, bytes: &[u8]) -> bool {
        if bytes.len() > CHUNK_SIZE - HEADROOM {
            return false;
        }
        let Some(chunk) = self.free.pop() else {
            return false;
        };
        let start = chunk as usize + HEADROOM;
        self.mem[start..start + bytes.len()].copy_from_slice(bytes);
        self.rx.push(Desc {
            addr: start as u64,
            len: bytes.len() as u32,
            port,
        });
        true
    }

    /// Take every transmitted frame as (port, bytes), returning their chunks to the pool.
    pub fn take_tx(&mut self) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::with_capacity(self.tx.len());
        while let Some(d) = self.tx.pop() {
            let s = d.addr as usize;
            out.push((d.port, self.mem[s..s + d.len as usize].to_vec()));
            self.free.push(d.chunk());
        }
        out
    }

    /// Drop every transmitted frame without copying (benchmarks).
    pub fn discard_tx(&mut self) -> usize {
        let n = self.tx.len();
        while let Some(d) = self.tx.pop() {
            self.free.push(d.chunk());
        }
        n
    }

    /// Move transmitted frames back to the rx queue unchanged (benchmarks that loop one set of
    /// frames); returns how many.
    pub fn loop_tx_to_rx(&mut self) -> usize {
        let n = self.tx.len();
        while let Some(d) = self.tx.pop() {
            self.rx.push(d);
        }
        n
    }

    /// Frames currently in the free pool.
    #[must_use]
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Frames queued for reception.
    #[must_use]
    pub fn rx_pending(&self) -> usize {
        self.rx.len()
    }

    /// Frames transmitted and not yet taken.
    #[must_use]
    pub fn tx_pending(&self) -> usize {
        self.tx.len()
    }

    /// Total chunks.
    #[must_use]
    pub fn chunks(&self) -> usize {
        self.mem.len() / CHUNK_SIZE
    }
}

/// A fixed ring of descriptors (power-of-two slots, free-running head and tail).
#[derive(Debug)]
struct Ring {
    slots: Vec<Desc>,
    mask: usize,
    head: usize,
    tail: usize,
}

impl Ring {
    /// A ring of at least `n` slots.
    fn new(n: usize) -> Self {
        let size = n.max(1).next_power_of_two();
        Self {
            slots: vec![Desc::default(); size],
            mask: size - 1,
            head: 0,
            tail: 0,
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.tail.wrapping_sub(self.head)
    }

    /// Append `d`. The pool invariant (no more descriptors than chunks) keeps it from
    /// overflowing; an overflow would overwrite the oldest entry, so it is checked in debug.
    #[inline]
    fn push(&mut self, d: Desc) {
        debug_assert!(self.len() < self.slots.len(), "MemIo ring overflow");
        self.slots[self.tail & self.mask] = d;
        self.tail = self.tail.wrapping_add(1);
    }

    #[inline]
    fn pop(&mut self) -> Option<Desc> {
        if self.head == self.tail {
            return None;
        }
        let d = self.slots[self.head & self.mask];
        self.head = self.head.wrapping_add(1);
        Some(d)
    }
}

// Lengths are bounded by CHUNK_SIZE, so the narrowing casts cannot truncate.
#[allow(clippy::cast_possible_truncation)]
impl PacketIo for MemIo {
    fn ports(&self) -> usize {
        self.macs.len()
    }

    #[inline]
    fn rx_burst(&mut self, descs: &mut [Desc]) -> usize {
        let mut n = 0;
        while n < descs.len() {
            let Some(d) = self.rx.pop() else { break };
            descs[n] = d;
            n += 1;
        }
        n
    }

    #[inline]
    fn frame<'a>(&'a mut self, desc: &'a mut Desc) -> Frame<'a> {
        let c = desc.chunk() as usize;
        Frame::new(&mut self.mem[c..c + CHUNK_SIZE], desc)
    }

    #[inline]
    fn tx_burst(&mut self, descs: &[Desc]) -> usize {
        let n = descs.len().min(self.tx_limit);
        for d in &descs[..n] {
            self.tx.push(*d);
        }
        n
    }

    #[inline]
    fn recycle(&mut self, descs: &[Desc]) {
        self.free.extend(descs.iter().map(Desc::chunk));
    }

    fn alloc(&mut self, port: u16) -> Option<Desc> {
        let chunk = self.free.pop()?;
        Some(Desc {
            addr: chunk + HEADROOM as u64,
            len: 0,
            port,
        })
    }

    fn service(&mut self) {}

    fn mac(&self, port: u16) -> [u8; 6] {
        self.macs
            .get(usize::from(port))
            .copied()
            .unwrap_or_default()
    }

    fn mtu(&self, _port: u16) -> usize {
        self.mtu
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inject_rx_tx_take_roundtrip_keeps_every_chunk() {
        let mut io = MemIo::new(8, vec![[2, 0, 0, 0, 0, 1]]);
        assert!(io.inject(0, &[1, 2, 3]));
        let mut d = [Desc::default(); 4];
        assert_eq!(io.rx_burst(&mut d), 1);
        {
            let mut f = io.frame(&mut d[0]);
            assert_eq!(f.data(), &[1, 2, 3]);
            assert_eq!(f.headroom(), HEADROOM);
            f.push_front(2).unwrap();
            f.data_mut()[..2].copy_from_slice(&[9, 9]);
        }
        assert_eq!(io.tx_burst(&d[..1]), 1);
        assert_eq!(io.take_tx(), vec![(0, vec![9, 9, 1, 2, 3])]);
        assert_eq!(io.free_frames(), 8);
    }

    #[test]
    fn frame_growth_is_bounded_by_the_chunk() {
        let mut io = MemIo::new(1, vec![[0; 6]]);
        let mut d = io.alloc(0).unwrap();
        let mut f = io.frame(&mut d);
        assert_eq!(f.push_front(HEADROOM + 1), Err(crate::io::NoRoom));
        assert_eq!(f.set_len(CHUNK_SIZE - HEADROOM + 1), Err(crate::io::NoRoom));
        assert!(f.set_len(CHUNK_SIZE - HEADROOM).is_ok());
        assert_eq!(f.tailroom(), 0);
    }
}
