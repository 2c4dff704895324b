//! `rr`: round robin (`net/netfilter/ipvs/ip_vs_rr.c`).
//!
//! Derivation: the kernel keeps one cursor, `svc->sched_data`, pointing at the list entry of the
//! last dest picked (initially the list head itself). A pick walks the circular list from the
//! entry after the cursor, wrapping past the head, and stops at the first dest that has a
//! positive weight and is not overloaded; the cursor moves there. If it comes back to the cursor's own dest
//! (checked last) without a hit there is no dest and the cursor stays put.
//!
//! Edits: rr has no `add_dest`/`upd_dest` hook, so adding (at the head) or editing a dest leaves
//! the cursor on its dest. `ip_vs_rr_del_dest` moves a cursor that sits on the deleted dest to
//! the entry *before* it (`p->next->prev` after unlinking), so the dest that would have come
//! next still comes next. [`Rr::inherit`] does the same by identity: the cursor's dest if it
//! survived, else the nearest surviving dest before it in the old list, else the head.
//!
//! Per-worker state: the cursor. Never allocates.

use crate::service::Dest;

/// Round robin: the cursor, an index into the snapshot's dests (`None` = the list head).
#[derive(Clone, Debug, Default)]
pub struct Rr {
    cursor: Option<usize>,
}

impl Rr {
    /// `ip_vs_rr_init_svc`: the cursor at the head.
    #[must_use]
    pub(crate) fn build(_dests: &[Dest]) -> Self {
        Self { cursor: None }
    }

    /// Index of the last dest picked (`None`: the head).
    #[must_use]
    pub fn cursor(&self) -> Option<usize> {
        self.cursor
    }

    /// Move the cursor across a snapshot change as `ip_vs_rr_del_dest` would.
    pub(crate) fn inherit(&mut self, old: &Self, old_dests: &[Dest], new_dests: &[Dest]) {
        self.cursor = None;
        let Some(c) = old.cursor else { return };
        let Some(back) = old_dests.get(..=c) else {
            return;
        };
        for od in back.iter().rev() {
            if let Some(k) = new_dests.iter().position(|nd| nd.id == od.id) {
                self.cursor = Some(k);
                return;
            }
        }
    }

    /// `ip_vs_rr_schedule`.
    #[inline]
    pub(crate) fn pick(&mut self, dests: &[Dest]) -> Option<usize> {
        let n = dests.len();
        let ok = |d: &Dest| !d.is_overloaded() && d.weight() > 0;
        // From the head: one pass. From a dest: the rest of the list, then from the head up to
        // and including the cursor's dest.
        let (start, len) = match self.cursor {
            Some(c) if c < n => (c + 1, n),
            _ => (0, n),
        };
        for k in 0..len {
            let i = (start + k) % n;
            if dests.get(i).is_some_and(ok) {
                self.cursor = Some(i);
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, set_overloaded, with_weight};

    fn seq(rr: &mut Rr, ds: &[Dest], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| rr.pick(ds)).collect()
    }

    #[test]
    fn cycles_in_list_order_from_the_head() {
        let ds = dests(&[1, 1, 1]);
        let mut rr = Rr::build(&ds);
        assert_eq!(
            seq(&mut rr, &ds, 5),
            [Some(0), Some(1), Some(2), Some(0), Some(1)]
        );
    }

    #[test]
    fn weights_above_zero_are_all_equal() {
        let ds = dests(&[5, 1]);
        let mut rr = Rr::build(&ds);
        assert_eq!(seq(&mut rr, &ds, 4), [Some(0), Some(1), Some(0), Some(1)]);
    }

    #[test]
    fn skips_quiesced_and_overloaded_and_keeps_cursor_on_failure() {
        let ds = dests(&[1, 0, 1]);
        let mut rr = Rr::build(&ds);
        assert_eq!(seq(&mut rr, &ds, 3), [Some(0), Some(2), Some(0)]);
        set_overloaded(&ds[0], true);
        set_overloaded(&ds[2], true);
        assert_eq!(rr.pick(&ds), None);
        assert_eq!(rr.cursor(), Some(0));
        set_overloaded(&ds[2], false);
        assert_eq!(rr.pick(&ds), Some(2));
    }

    #[test]
    fn only_the_cursor_dest_left_is_found_last() {
        let ds = dests(&[1, 1, 1]);
        let mut rr = Rr::build(&ds);
        assert_eq!(rr.pick(&ds), Some(0));
        set_overloaded(&ds[1], true);
        set_overloaded(&ds[2], true);
        assert_eq!(rr.pick(&ds), Some(0));
    }

    #[test]
    fn delete_of_cursor_dest_moves_cursor_back() {
        // list A B C D, picked A then B (cursor on B); delete B: next is C as before.
        let old = dests(&[1, 1, 1, 1]);
        let mut rr = Rr::build(&old);
        assert_eq!(seq(&mut rr, &old, 2), [Some(0), Some(1)]);
        let new: Vec<Dest> = [0, 2, 3].iter().map(|&i| old[i].clone()).collect();
        let mut next = Rr::build(&new);
        next.inherit(&rr, &old, &new);
        assert_eq!(next.cursor(), Some(0)); // on A
        assert_eq!(next.pick(&new).map(|i| new[i].id), Some(old[2].id)); // C
    }

    #[test]
    fn delete_of_first_dest_under_cursor_moves_cursor_to_head() {
        let old = dests(&[1, 1, 1]);
        let mut rr = Rr::build(&old);
        assert_eq!(rr.pick(&old), Some(0));
        let new: Vec<Dest> = old[1..].to_vec();
        let mut next = Rr::build(&new);
        next.inherit(&rr, &old, &new);
        assert_eq!(next.cursor(), None);
        assert_eq!(next.pick(&new).map(|i| new[i].id), Some(old[1].id));
    }

    #[test]
    fn delete_elsewhere_and_add_at_head_keep_cursor_dest() {
        let old = dests(&[1, 1, 1]);
        let mut rr = Rr::build(&old);
        assert_eq!(seq(&mut rr, &old, 2), [Some(0), Some(1)]);
        // Delete C, add X at the head: cursor stays on B; next is... the end, then X (head).
        let x = crate::sched::testutil::dest(9, 1);
        let new = vec![x.clone(), old[0].clone(), old[1].clone()];
        let mut next = Rr::build(&new);
        next.inherit(&rr, &old, &new);
        assert_eq!(next.cursor(), Some(2));
        assert_eq!(next.pick(&new).map(|i| new[i].id), Some(x.id));
        // An edit (weight change) does not move it either.
        let edited = vec![with_weight(&new[0], 3), new[1].clone(), new[2].clone()];
        let mut again = Rr::build(&edited);
        again.inherit(&next, &new, &edited);
        assert_eq!(again.cursor(), Some(0));
    }
}
