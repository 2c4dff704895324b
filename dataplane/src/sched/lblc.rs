//! `lblc`: locality-based least connection (`net/netfilter/ipvs/ip_vs_lblc.c`).
//!
//! Derivation (the kernel's pseudo code): requests for one *destination* address (e.g. one
//! origin site behind a cache farm) should go to the same dest, so that dest's cache stays
//! warm, unless it is overloaded while another is half idle:
//!
//! ```text
//! if cachenode[dest_ip] is null then
//!     n, cachenode[dest_ip] <- {weighted least-conn node};
//! else
//!     n <- cachenode[dest_ip];
//!     if (n is dead) OR (n.conns > n.weight AND there is a node m with m.conns < m.weight/2)
//!         then n, cachenode[dest_ip] <- {weighted least-conn node};
//! return n;
//! ```
//!
//! Exactly as `ip_vs_lblc_schedule`: the entry's last use is refreshed on every lookup; the
//! cached dest is kept when it is still in the service, has weight > 0 and is not "overloaded"
//! in lblc's own sense (`activeconns > weight` and some dest of the service has
//! `activeconns * 2 < weight`; the `IP_VS_DEST_F_OVERLOAD` threshold flag is *not* consulted
//! here). Otherwise the weighted least-connection scan (`__ip_vs_lblc_schedule`, the wlc loop)
//! picks a dest and the entry is replaced. "conns" are active conns only.
//!
//! Per-worker state: the table ([`super::locality`]: 1024 buckets of 8 slots, expiry 24 h,
//! 6 min idle reclaim on a full bucket) keyed by destination address, holding a [`DestId`]
//! (with the index it had, as a hint). Cloning the scheduler copies the table (about 320 KiB);
//! [`AnyScheduler::inherit`](super::AnyScheduler::inherit) copies it without allocating, so the
//! entries survive dest edits as the kernel's do (it has no dest hooks).
//! Never allocates in `pick`.

use crate::flow::FlowKey;
use crate::service::{Dest, DestId};

use super::locality::Table;
use super::{active_i32, wlc};

/// The cached dest of a destination address.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cached {
    id: DestId,
    hint: u32,
}

/// Locality-based least connection: the per-worker table.
#[derive(Clone, Debug)]
pub struct Lblc {
    table: Table<Cached>,
}

/// Find a dest by identity, trying the index it had first.
#[inline]
pub(crate) fn find(dests: &[Dest], id: DestId, hint: u32) -> Option<usize> {
    let h = hint as usize;
    if dests.get(h).is_some_and(|d| d.id == id) {
        return Some(h);
    }
    dests.iter().position(|d| d.id == id)
}

/// lblc/lblcr's `is_overloaded`: more active conns than weight while some dest of the service
/// has fewer than half its weight.
#[inline]
pub(crate) fn lb_overloaded(d: &Dest, dests: &[Dest]) -> bool {
    i64::from(active_i32(d)) > i64::from(d.weight())
        && dests
            .iter()
            .any(|m| i64::from(active_i32(m)) * 2 < i64::from(m.weight()))
}

impl Lblc {
    /// `ip_vs_lblc_init_svc`: an empty table.
    #[must_use]
    pub(crate) fn build() -> Self {
        Self {
            table: Table::new(Cached {
                id: DestId(u32::MAX),
                hint: u32::MAX,
            }),
        }
    }

    /// Keep the old table (the kernel's lblc has no dest hooks).
    pub(crate) fn inherit(&mut self, old: &Self) {
        self.table.copy_from(&old.table);
    }

    /// Cached destination addresses (tests and diagnostics).
    #[must_use]
    pub fn entries(&self) -> usize {
        self.table.len()
    }

    /// `ip_vs_lblc_schedule`.
    pub(crate) fn pick(&mut self, dests: &[Dest], key: &FlowKey, now_ms: u64) -> Option<usize> {
        if let Some(en) = self.table.get(&key.dst, now_ms) {
            en.lastuse_ms = now_ms;
            if let Some(i) = find(dests, en.payload.id, en.payload.hint) {
                let d = &dests[i];
                if d.weight() > 0 && !lb_overloaded(d, dests) {
                    return Some(i);
                }
            }
            let i = wlc::pick(dests)?;
            // ip_vs_lblc_new on an existing entry for another dest: replace it.
            en.payload = Cached {
                id: dests[i].id,
                hint: super::idx_u32(i),
            };
            en.lastuse_ms = now_ms;
            return Some(i);
        }
        let i = wlc::pick(dests)?;
        let cached = Cached {
            id: dests[i].id,
            hint: super::idx_u32(i),
        };
        // Not cached when the bucket is full: the kernel's "just use the valid dest".
        let _ = self.table.insert(&key.dst, now_ms, cached);
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::locality::EXPIRATION_MS;
    use crate::sched::testutil::{dests, key_to, set_conns, set_overloaded, with_weight};

    #[test]
    fn sticks_to_the_cached_dest_while_not_overloaded() {
        let ds = dests(&[1, 1]);
        let mut s = Lblc::build();
        let k = key_to([93, 184, 216, 34]);
        assert_eq!(s.pick(&ds, &k, 0), Some(0));
        // Dest 0 now busier: wlc would pick 1, but the cache keeps 0 (1 active <= weight 1).
        set_conns(&ds[0], 1, 50);
        assert_eq!(s.pick(&ds, &k, 10), Some(0));
        // Another destination address is scheduled by wlc.
        assert_eq!(s.pick(&ds, &key_to([1, 1, 1, 1]), 10), Some(1));
        assert_eq!(s.entries(), 2);
    }

    #[test]
    fn reschedules_when_overloaded_and_another_is_half_idle() {
        let ds = dests(&[2, 4]);
        let mut s = Lblc::build();
        let k = key_to([10, 10, 10, 10]);
        assert_eq!(s.pick(&ds, &k, 0), Some(0));
        set_conns(&ds[0], 3, 0); // 3 > 2
        set_conns(&ds[1], 2, 0); // 2*2 < 4? no: not half idle
        assert_eq!(s.pick(&ds, &k, 1), Some(0));
        set_conns(&ds[1], 1, 0); // 1*2 < 4: half idle
        assert_eq!(s.pick(&ds, &k, 2), Some(1));
        // The entry now names dest 1.
        set_conns(&ds[0], 0, 0);
        assert_eq!(s.pick(&ds, &k, 3), Some(1));
    }

    #[test]
    fn threshold_overload_flag_is_not_consulted_for_a_cached_dest() {
        let ds = dests(&[1, 1]);
        let mut s = Lblc::build();
        let k = key_to([10, 0, 0, 99]);
        assert_eq!(s.pick(&ds, &k, 0), Some(0));
        set_overloaded(&ds[0], true);
        assert_eq!(s.pick(&ds, &k, 1), Some(0)); // as ip_vs_lblc_schedule
        // But a fresh destination never gets an overloaded dest.
        assert_eq!(s.pick(&ds, &key_to([10, 0, 0, 98]), 1), Some(1));
    }

    #[test]
    fn quiesced_or_deleted_cached_dest_is_replaced() {
        let ds = dests(&[1, 1]);
        let mut s = Lblc::build();
        let k = key_to([10, 0, 0, 7]);
        assert_eq!(s.pick(&ds, &k, 0), Some(0));
        let q = vec![with_weight(&ds[0], 0), ds[1].clone()];
        let mut s2 = Lblc::build();
        s2.inherit(&s);
        assert_eq!(s2.pick(&q, &k, 1), Some(1));
        // Deleted: the cached dest 1 is gone, wlc picks among the rest.
        let only0 = vec![ds[0].clone()];
        let mut s3 = Lblc::build();
        s3.inherit(&s2);
        assert_eq!(s3.pick(&only0, &k, 2), Some(0));
    }

    #[test]
    fn entries_expire_after_a_day_idle() {
        let ds = dests(&[1, 1]);
        let mut s = Lblc::build();
        let k = key_to([10, 0, 0, 5]);
        assert_eq!(s.pick(&ds, &k, 0), Some(0));
        set_conns(&ds[0], 1, 0);
        assert_eq!(s.pick(&ds, &k, EXPIRATION_MS - 1), Some(0)); // refreshed
        assert_eq!(s.pick(&ds, &k, 2 * EXPIRATION_MS - 2), Some(0));
        // Idle a full day: gone, rescheduled by wlc.
        assert_eq!(s.pick(&ds, &k, 3 * EXPIRATION_MS), Some(1));
    }

    #[test]
    fn none_when_no_dest() {
        let ds = dests(&[0, 1]);
        set_overloaded(&ds[1], true);
        let mut s = Lblc::build();
        assert_eq!(s.pick(&ds, &key_to([1, 2, 3, 4]), 0), None);
        assert_eq!(s.entries(), 0);
    }
}
