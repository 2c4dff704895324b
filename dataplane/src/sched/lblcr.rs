//! `lblcr`: locality-based least connection with replication (`net/netfilter/ipvs/ip_vs_lblcr.c`).
//!
//! Derivation (the kernel's pseudo code): like lblc, but a destination address maps to a *set*
//! of dests, so a hot destination can be served by several caches:
//!
//! ```text
//! if serverSet[dest_ip] is null then
//!     n, serverSet[dest_ip] <- {weighted least-conn node};
//! else
//!     n <- {least-conn (alive) node in serverSet[dest_ip]};
//!     if (n is null) OR (n.conns > n.weight AND there is a node m with m.conns < m.weight/2)
//!         then n <- {weighted least-conn node}; add n to serverSet[dest_ip];
//!     if |serverSet[dest_ip]| > 1 AND now - serverSet[dest_ip].lastMod > T then
//!         m <- {most conn node in serverSet[dest_ip]}; remove m from serverSet[dest_ip];
//! if serverSet[dest_ip] changed then serverSet[dest_ip].lastMod <- now;
//! return n;
//! ```
//!
//! Exactly as `ip_vs_lblcr_schedule`: on a hit the entry's last use is refreshed; `n` is
//! `ip_vs_dest_set_min` (set order = most recently added first; first non-overloaded dest with
//! weight > 0, then strict `loh * w(d) > doh * w(least)` over the non-overloaded rest); then,
//! if the set has more than one dest and `now > lastmod + T` (T = `lblcr_expiration`, 24 h),
//! `ip_vs_dest_set_max` (first dest with weight > 0, then strict `moh * w(d) < doh * w(most)`
//! among dests with weight > 0) is erased, even if it is `n`. If `n` exists and is not
//! overloaded in lblc's sense it is returned; otherwise the wlc scan picks a dest, which is
//! added at the head of the set unless already in it (`lastmod` changes only on a real
//! insert or erase).
//!
//! Deviations, all from keeping memory fixed: a set holds at most [`SET_CAP`] dests (a full
//! set drops its oldest member, the tail, to make room); dests no longer in the service are
//! purged from a set when it is looked up (the kernel keeps them, unusable, until erased); the
//! table is the lblc one ([`super::locality`]).
//!
//! Per-worker state: the table. Cloning copies it (about 640 KiB); `inherit` copies without
//! allocating. Never allocates in `pick`.

use crate::flow::FlowKey;
use crate::service::{Dest, DestId};

use super::lblc::{find, lb_overloaded};
use super::locality::{EXPIRATION_MS, Table};
use super::{conn_overhead_s64, wlc};

/// Dests per destination-address set.
pub const SET_CAP: usize = 8;

/// A dest set (`struct ip_vs_dest_set`): members head first, and the last modification time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DestSet {
    len: u8,
    lastmod_ms: u64,
    ids: [DestId; SET_CAP],
}

impl DestSet {
    const EMPTY: Self = Self {
        len: 0,
        lastmod_ms: 0,
        ids: [DestId(u32::MAX); SET_CAP],
    };

    fn members(&self) -> &[DestId] {
        self.ids.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Drop members that left the service (keeps order).
    fn purge(&mut self, dests: &[Dest]) {
        let mut k = 0;
        for j in 0..usize::from(self.len).min(SET_CAP) {
            let id = self.ids[j];
            if dests.iter().any(|d| d.id == id) {
                self.ids[k] = id;
                k += 1;
            }
        }
        self.len = u8::try_from(k).unwrap_or(0);
    }

    /// `ip_vs_dest_set_insert`: at the head, `lastmod` = now; with `check`, not twice.
    fn insert(&mut self, id: DestId, check: bool, now_ms: u64) {
        if check && self.members().contains(&id) {
            return;
        }
        let n = usize::from(self.len).min(SET_CAP - 1);
        self.ids.copy_within(0..n, 1);
        self.ids[0] = id;
        self.len = u8::try_from(n + 1).unwrap_or(0);
        self.lastmod_ms = now_ms;
    }

    /// `ip_vs_dest_set_erase`.
    fn erase(&mut self, id: DestId, now_ms: u64) {
        let n = usize::from(self.len).min(SET_CAP);
        if let Some(j) = self.ids[..n].iter().position(|&x| x == id) {
            self.ids.copy_within(j + 1..n, j);
            self.len -= 1;
            self.lastmod_ms = now_ms;
        }
    }

    /// `ip_vs_dest_set_min`: index into `dests` of the weighted least-loaded member.
    fn min(&self, dests: &[Dest]) -> Option<usize> {
        let mut it = self
            .members()
            .iter()
            .filter_map(|&id| find(dests, id, u32::MAX));
        let mut least = it.find(|&i| !dests[i].is_overloaded() && dests[i].weight() > 0)?;
        let mut loh = conn_overhead_s64(&dests[least]);
        for i in it {
            let d = &dests[i];
            if d.is_overloaded() {
                continue;
            }
            let doh = conn_overhead_s64(d);
            if loh * i64::from(d.weight()) > doh * i64::from(dests[least].weight()) {
                least = i;
                loh = doh;
            }
        }
        Some(least)
    }

    /// `ip_vs_dest_set_max`: the weighted most-loaded member.
    fn max(&self, dests: &[Dest]) -> Option<usize> {
        let mut it = self
            .members()
            .iter()
            .filter_map(|&id| find(dests, id, u32::MAX));
        let mut most = it.find(|&i| dests[i].weight() > 0)?;
        let mut moh = conn_overhead_s64(&dests[most]);
        for i in it {
            let d = &dests[i];
            let doh = conn_overhead_s64(d);
            if moh * i64::from(d.weight()) < doh * i64::from(dests[most].weight()) && d.weight() > 0
            {
                most = i;
                moh = doh;
            }
        }
        Some(most)
    }
}

/// Locality-based least connection with replication: the per-worker table of dest sets.
#[derive(Clone, Debug)]
pub struct Lblcr {
    table: Table<DestSet>,
}

impl Lblcr {
    /// `ip_vs_lblcr_init_svc`: an empty table.
    #[must_use]
    pub(crate) fn build() -> Self {
        Self {
            table: Table::new(DestSet::EMPTY),
        }
    }

    /// Keep the old table (no dest hooks in the kernel's lblcr).
    pub(crate) fn inherit(&mut self, old: &Self) {
        self.table.copy_from(&old.table);
    }

    /// The set cached for a destination address, as dest ids head first (tests, diagnostics).
    pub fn set_of(&mut self, dst: &std::net::IpAddr, now_ms: u64) -> Option<Vec<DestId>> {
        self.table
            .get(dst, now_ms)
            .map(|s| s.payload.members().to_vec())
    }

    /// `ip_vs_lblcr_schedule`.
    pub(crate) fn pick(&mut self, dests: &[Dest], key: &FlowKey, now_ms: u64) -> Option<usize> {
        if let Some(en) = self.table.get(&key.dst, now_ms) {
            en.lastuse_ms = now_ms;
            let set = &mut en.payload;
            set.purge(dests);
            let n = set.min(dests);
            // More than one dest and nothing changed for T: shed the most loaded.
            if set.len > 1
                && now_ms > set.lastmod_ms.saturating_add(EXPIRATION_MS)
                && let Some(m) = set.max(dests)
            {
                set.erase(dests[m].id, now_ms);
            }
            if let Some(i) = n
                && !lb_overloaded(&dests[i], dests)
            {
                return Some(i);
            }
            let i = wlc::pick(dests)?;
            set.insert(dests[i].id, true, now_ms);
            return Some(i);
        }
        let i = wlc::pick(dests)?;
        let mut set = DestSet::EMPTY;
        set.insert(dests[i].id, false, now_ms);
        let _ = self.table.insert(&key.dst, now_ms, set);
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, key_to, set_conns, set_overloaded};

    #[test]
    fn grows_the_set_when_overloaded_and_uses_its_least_loaded() {
        let ds = dests(&[2, 2, 2]);
        let mut s = Lblcr::build();
        let k = key_to([10, 9, 9, 9]);
        assert_eq!(s.pick(&ds, &k, 0), Some(0));
        assert_eq!(s.set_of(&k.dst, 0).unwrap(), [ds[0].id]);
        // Dest 0 overloaded in lblc's sense (3 > 2, and dest 2 idle): wlc picks dest 1 (the
        // least loaded, head first), added at the head of the set.
        set_conns(&ds[0], 3, 0);
        set_conns(&ds[1], 0, 1);
        set_conns(&ds[2], 0, 2);
        assert_eq!(s.pick(&ds, &k, 5), Some(1));
        assert_eq!(s.set_of(&k.dst, 5).unwrap(), [ds[1].id, ds[0].id]);
        // Now the set's least loaded (dest 1) is used, even if dest 2 is equally idle.
        set_conns(&ds[1], 1, 0);
        set_conns(&ds[2], 0, 0);
        assert_eq!(s.pick(&ds, &k, 6), Some(1));
    }

    #[test]
    fn sheds_the_most_loaded_after_expiration_without_change() {
        let ds = dests(&[2, 2, 2]);
        let mut s = Lblcr::build();
        let k = key_to([10, 9, 9, 8]);
        assert_eq!(s.pick(&ds, &k, 0), Some(0));
        set_conns(&ds[0], 3, 0);
        assert_eq!(s.pick(&ds, &k, 10), Some(1)); // set {1, 0}, lastmod 10
        set_conns(&ds[0], 1, 0);
        set_conns(&ds[1], 2, 0);
        // A lookup half way keeps the entry in use (lastuse) without changing the set.
        assert_eq!(s.pick(&ds, &k, 10 + EXPIRATION_MS / 2), Some(0));
        // Not yet: T has not passed since the last change.
        assert_eq!(s.pick(&ds, &k, 10 + EXPIRATION_MS), Some(0));
        assert_eq!(s.set_of(&k.dst, 10 + EXPIRATION_MS).unwrap().len(), 2);
        // Now: the most loaded (dest 1, 2 active) is erased; the least loaded (dest 0) used.
        assert_eq!(s.pick(&ds, &k, 11 + EXPIRATION_MS), Some(0));
        assert_eq!(s.set_of(&k.dst, 11 + EXPIRATION_MS).unwrap(), [ds[0].id]);
    }

    #[test]
    fn overloaded_members_are_skipped_and_none_without_dests() {
        let ds = dests(&[1, 1]);
        let mut s = Lblcr::build();
        let k = key_to([10, 9, 9, 7]);
        assert_eq!(s.pick(&ds, &k, 0), Some(0));
        set_overloaded(&ds[0], true);
        assert_eq!(s.pick(&ds, &k, 1), Some(1));
        set_overloaded(&ds[1], true);
        assert_eq!(s.pick(&ds, &k, 2), None);
    }

    #[test]
    fn set_capacity_drops_the_oldest() {
        let mut set = DestSet::EMPTY;
        for i in 0..=u32::try_from(SET_CAP).unwrap() {
            set.insert(DestId(i), true, 0);
        }
        assert_eq!(set.members().len(), SET_CAP);
        assert_eq!(set.members()[0], DestId(u32::try_from(SET_CAP).unwrap()));
        assert!(!set.members().contains(&DestId(0)));
    }
}
