//! The per-worker locality table of lblc and lblcr: destination address -> payload, with the
//! kernel's expiry rules, in fixed memory.
//!
//! The kernel keeps an `hlist` hash table of `IP_VS_LBLC_TAB_SIZE` = 1024 buckets
//! (`hash_32(ntohl(addr_fold), 10)`) and allocates entries without bound until
//! `max_size` = 16 * 1024; a timer collects entries idle for `sysctl_lblc_expiration`
//! (default 24 h) every 30 minutes, and, when over `max_size`, entries idle 6 minutes.
//!
//! Here the same 1024 buckets each have [`WAYS`] fixed slots ([`CAPACITY`] entries per worker
//! and service; with two or more workers the total reaches the kernel's `max_size`), allocated
//! once when the scheduler is built. Expiry is applied lazily: an entry idle for the expiration
//! time is treated as gone when looked up (the kernel removes it at its next full check, up to
//! 30 min later). Eviction: a new entry takes a free slot of its bucket, else an entry of that
//! bucket idle for at least the kernel's `ENTRY_TIMEOUT` (6 min), the longest idle first; if
//! none qualifies the entry is not cached, which is the kernel's own behaviour when the table
//! is full ("If we fail to create a cache entry, we'll just use the valid dest").
//!
//! Never: allocate after construction, or panic on any index.

use std::net::{IpAddr, Ipv4Addr};

use super::{addr_fold, hash_32};

/// `IP_VS_LBLC_TAB_BITS` (and `IP_VS_LBLCR_TAB_BITS`).
pub(crate) const TAB_BITS: u32 = 10;
/// Buckets.
pub(crate) const BUCKETS: usize = 1 << TAB_BITS;
/// Slots per bucket.
pub const WAYS: usize = 8;
/// Entries per table.
pub const CAPACITY: usize = BUCKETS * WAYS;
/// `DEFAULT_EXPIRATION` of `lblc_expiration` / `lblcr_expiration`: 24 hours.
pub const EXPIRATION_MS: u64 = 24 * 60 * 60 * 1000;
/// `ENTRY_TIMEOUT`: entries idle this long may be collected when the table is full.
pub const ENTRY_TIMEOUT_MS: u64 = 6 * 60 * 1000;

/// One cached destination address.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot<P> {
    pub(crate) used: bool,
    pub(crate) addr: IpAddr,
    pub(crate) lastuse_ms: u64,
    pub(crate) payload: P,
}

/// A fixed-size set-associative table.
#[derive(Clone, Debug)]
pub(crate) struct Table<P> {
    slots: Box<[Slot<P>]>,
}

impl<P: Copy> Table<P> {
    /// An empty table (allocates `CAPACITY` slots).
    pub(crate) fn new(empty: P) -> Self {
        let blank = Slot {
            used: false,
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            lastuse_ms: 0,
            payload: empty,
        };
        Self {
            slots: vec![blank; CAPACITY].into_boxed_slice(),
        }
    }

    /// `ip_vs_lblc_hashkey`.
    #[inline]
    pub(crate) fn bucket(addr: &IpAddr) -> usize {
        hash_32(addr_fold(addr), TAB_BITS) as usize
    }

    #[inline]
    fn ways(&mut self, addr: &IpAddr) -> &mut [Slot<P>] {
        let b = Self::bucket(addr) * WAYS;
        self.slots.get_mut(b..b + WAYS).unwrap_or_default()
    }

    /// The live entry for `addr`; an entry past its expiration is dropped instead.
    #[inline]
    pub(crate) fn get(&mut self, addr: &IpAddr, now_ms: u64) -> Option<&mut Slot<P>> {
        let ways = self.ways(addr);
        let s = ways.iter_mut().find(|s| s.used && s.addr == *addr)?;
        if now_ms.saturating_sub(s.lastuse_ms) >= EXPIRATION_MS {
            s.used = false;
            return None;
        }
        Some(s)
    }

    /// Insert a new entry (the caller checked there is none); `false` if not cached.
    pub(crate) fn insert(&mut self, addr: &IpAddr, now_ms: u64, payload: P) -> bool {
        let ways = self.ways(addr);
        let idle = |s: &Slot<P>| now_ms.saturating_sub(s.lastuse_ms);
        let victim = match ways.iter().position(|s| !s.used) {
            Some(i) => Some(i),
            None => ways
                .iter()
                .enumerate()
                .filter(|(_, s)| idle(s) >= ENTRY_TIMEOUT_MS)
                .max_by_key(|(_, s)| idle(s))
                .map(|(i, _)| i),
        };
        let Some(slot) = victim.and_then(|i| ways.get_mut(i)) else {
            return false;
        };
        *slot = Slot {
            used: true,
            addr: *addr,
            lastuse_ms: now_ms,
            payload,
        };
        true
    }

    /// Copy another table's contents (same size; no allocation).
    pub(crate) fn copy_from(&mut self, other: &Self) {
        if self.slots.len() == other.slots.len() {
            self.slots.copy_from_slice(&other.slots);
        }
    }

    /// Live entries (tests and diagnostics).
    pub(crate) fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.used).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_expire_and_evict() {
        let mut t = Table::new(0u32);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(t.get(&a, 0).is_none());
        assert!(t.insert(&a, 1000, 7));
        assert_eq!(t.get(&a, 2000).map(|s| s.payload), Some(7));
        assert!(t.get(&a, 1000 + EXPIRATION_MS).is_none());
        assert_eq!(t.len(), 0);
        // Fill one bucket: same bucket addresses.
        let b0 = Table::<u32>::bucket(&a);
        let same: Vec<IpAddr> = (0..u32::MAX)
            .map(|x| IpAddr::from(x.to_be_bytes()))
            .filter(|x| Table::<u32>::bucket(x) == b0)
            .take(WAYS + 1)
            .collect();
        for (i, x) in same.iter().take(WAYS).enumerate() {
            assert!(t.insert(x, 10 + i as u64, 1));
        }
        // Full and nobody idle for 6 minutes: not cached.
        assert!(!t.insert(&same[WAYS], 100, 2));
        // Later the longest idle entry is reclaimed.
        assert!(t.insert(&same[WAYS], 10 + ENTRY_TIMEOUT_MS, 2));
        assert!(t.get(&same[0], 10 + ENTRY_TIMEOUT_MS).is_none());
        assert!(t.get(&same[1], 10 + ENTRY_TIMEOUT_MS).is_some());
    }
}
