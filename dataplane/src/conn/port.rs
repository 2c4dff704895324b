//! FULLNAT local ports: which `lport` a new FULLNAT conn gets on its local address (LIP).
//!
//! A conn's two index entries must live in one shard, so the reply key's endpoint
//! `(LIP, lport)` must select the same shard as the client's `(CIP, cport)`. The shard function
//! is `(mix(addr) ^ port) & mask` (see `table.rs`), so for a given LIP and target shard the low
//! `shard_bits` bits of `lport` are fixed: `lo = (mix(LIP) ^ shard) & mask`. The remaining high
//! bits (`hi`) are split into one contiguous range per worker, as DPVS's `sa_pool` gives each
//! core its own ports, so a NIC could steer replies to the owning worker by port range. Ports
//! below 1024 are never handed out.
//!
//! State: one [`LipPorts`] per (shard, LIP), kept inside the shard under its lock, with a bitmap
//! over `hi` and a next-fit cursor per worker. A port is unique per LIP (whatever the dest), which
//! is conservative: it caps FULLNAT conns at about 64k per LIP.
//! Never: hand out a port that is in use, or a port outside the caller's range.

use std::net::IpAddr;

/// How ports split into shard bits and per-worker ranges.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PortLayout {
    /// Low bits fixed by the shard.
    pub shard_bits: u32,
    /// First usable `hi` value (so that ports are >= 1024).
    pub hi_min: u32,
    /// `hi` values per worker.
    pub per_worker: u32,
    /// Number of workers.
    pub workers: u32,
}

impl PortLayout {
    /// The layout for `2^shard_bits` shards and `workers` workers.
    #[must_use]
    pub fn new(shard_bits: u32, workers: usize) -> Self {
        let hi_total = 1u32 << (16 - shard_bits);
        let hi_min = (1024u32 >> shard_bits).max(1);
        let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
        let per_worker = (hi_total - hi_min) / workers;
        Self {
            shard_bits,
            hi_min,
            per_worker,
            workers,
        }
    }

    /// The `hi` range `[start, end)` of worker `w`.
    #[must_use]
    pub fn worker_range(&self, w: usize) -> (u32, u32) {
        let w = u32::try_from(w).unwrap_or(u32::MAX) % self.workers;
        let start = self.hi_min + w * self.per_worker;
        (start, start + self.per_worker)
    }

    /// The worker whose range holds `lport` (`None` below the first range or past the last).
    #[must_use]
    pub fn owner(&self, lport: u16) -> Option<usize> {
        let hi = u32::from(lport) >> self.shard_bits;
        if hi < self.hi_min || self.per_worker == 0 {
            return None;
        }
        let w = (hi - self.hi_min) / self.per_worker;
        (w < self.workers).then_some(w as usize)
    }

    #[inline]
    fn hi_count(&self) -> usize {
        1usize << (16 - self.shard_bits)
    }
}

/// The ports of one LIP inside one shard.
#[derive(Debug)]
pub(crate) struct LipPorts {
    /// The local address.
    pub(crate) addr: IpAddr,
    /// The fixed low bits of every port of this LIP in this shard.
    lo: u16,
    /// One bit per `hi` value: in use.
    used: Box<[u64]>,
    /// Next-fit cursor per worker (absolute `hi`).
    cursor: Box<[u32]>,
    /// Ports in use.
    pub(crate) in_use: u32,
}

impl LipPorts {
    /// Empty state for `addr` whose ports in this shard all end in `lo`.
    pub(crate) fn new(addr: IpAddr, lo: u16, layout: &PortLayout) -> Self {
        let words = layout.hi_count().div_ceil(64);
        let cursor = (0..layout.workers as usize)
            .map(|w| layout.worker_range(w).0)
            .collect();
        Self {
            addr,
            lo,
            used: vec![0u64; words].into_boxed_slice(),
            cursor,
            in_use: 0,
        }
    }

    /// Take a free port from worker `w`'s range (next fit from its cursor).
    pub(crate) fn alloc(&mut self, layout: &PortLayout, w: usize) -> Option<u16> {
        let (start, end) = layout.worker_range(w);
        let n = end - start;
        if n == 0 {
            return None;
        }
        let slot = w % self.cursor.len();
        let mut hi = self.cursor[slot].clamp(start, end - 1);
        for _ in 0..n {
            let (word, bit) = ((hi / 64) as usize, hi % 64);
            let mask = 1u64 << bit;
            if self.used[word] & mask == 0 {
                self.used[word] |= mask;
                self.in_use += 1;
                self.cursor[slot] = if hi + 1 >= end { start } else { hi + 1 };
                let port = (hi << layout.shard_bits) | u32::from(self.lo);
                return u16::try_from(port).ok();
            }
            hi = if hi + 1 >= end { start } else { hi + 1 };
        }
        None
    }

    /// Give `port` back.
    pub(crate) fn free(&mut self, layout: &PortLayout, port: u16) {
        let hi = u32::from(port) >> layout.shard_bits;
        let (word, bit) = ((hi / 64) as usize, hi % 64);
        if let Some(w) = self.used.get_mut(word)
            && *w & (1u64 << bit) != 0
        {
            *w &= !(1u64 << bit);
            self.in_use -= 1;
        }
    }

    /// Whether `port` is in use.
    #[cfg(test)]
    pub(crate) fn is_used(&self, layout: &PortLayout, port: u16) -> bool {
        let hi = u32::from(port) >> layout.shard_bits;
        self.used[(hi / 64) as usize] & (1u64 << (hi % 64)) != 0
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.used.len() * 8 + self.cursor.len() * 4
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, clippy::type_complexity)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn ranges_partition_and_skip_low_ports() {
        let l = PortLayout::new(6, 3);
        let mut prev_end = l.hi_min;
        for w in 0..3 {
            let (s, e) = l.worker_range(w);
            assert_eq!(s, prev_end);
            assert!(e > s);
            prev_end = e;
            assert_eq!(l.owner(((s << 6) | 5) as u16), Some(w));
            assert_eq!(l.owner((((e - 1) << 6) | 63) as u16), Some(w));
        }
        assert!(prev_end <= 1 << 10);
        assert_eq!(l.owner(80), None);
    }

    #[test]
    fn alloc_until_exhausted_then_free() {
        let l = PortLayout::new(6, 2);
        let mut p = LipPorts::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 17, &l);
        let (s, e) = l.worker_range(1);
        let mut got = Vec::new();
        while let Some(port) = p.alloc(&l, 1) {
            assert_eq!(port & 63, 17);
            assert!(port >= 1024);
            assert_eq!(l.owner(port), Some(1));
            got.push(port);
        }
        assert_eq!(got.len() as u32, e - s);
        let mut sorted = got.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), got.len());
        p.free(&l, got[3]);
        assert!(!p.is_used(&l, got[3]));
        assert_eq!(p.alloc(&l, 1), Some(got[3]));
        // Worker 0 still has its whole range.
        assert!(p.alloc(&l, 0).is_some());
    }
}
