//! `wrr`: weighted round robin (`net/netfilter/ipvs/ip_vs_wrr.c`).
//!
//! Derivation (the kernel's own): let `di` be the gcd of the positive weights and `mw` the
//! maximum weight. Passes over the list select dests with `weight >= cw`, where the current
//! weight `cw` starts at `mw` and drops by `di` after each full pass; a pass at `cw` lets through
//! exactly the dests whose weight reaches it, so over the `mw/di` passes of a cycle a dest of
//! weight `w` is picked `w/di` times. To still catch a dest whose weight fell below `di` while
//! running, the kernel lowers `mw` by `di - 1` so the last pass is at `cw = 1`:
//! passes at `mw-(di-1)`, `mw-di-(di-1)`, ..., `1`. `mw == 0` means no dest has a positive weight.
//!
//! State `{cl, cw, mw, di}`: `cl` is the dest last picked (or the head). A pick continues after
//! `cl`; at the end of the list `cw -= di`, and when `cw <= 0` it restarts at `mw`. It gives up
//! ("all destinations are overloaded") after a full pass at `cw <= di` has seen every dest:
//! `last_pass`/`restarted`/`stop` reproduce the kernel's exact stopping rule, including where
//! `cl` is left on failure.
//!
//! Edits: `add_dest`, `del_dest` and `upd_dest` all run `ip_vs_wrr_dest_changed`: `cl` back to
//! the head, `di`/`mw` recomputed, and `cw` kept unless it exceeds the new `mw` or is 0 (then
//! `mw`), rounded to `k*di + 1` when `di > 1`. [`Wrr::build`] replays that for each dest in the
//! order it was added (list order reversed), starting from `init_service` on an empty list, so a
//! service created by `-A` then `-a` lines has exactly the kernel's state. A scheduler change
//! (`-E -s wrr`) is `init_service` with the dests present: `cw = mw` (see `reinit`).
//!
//! Per-worker state: `cl` and `cw`. Never allocates; a pick does at most `mw/di + 2` passes.

use crate::service::Dest;

use super::gcd;

/// Weighted round robin position.
#[derive(Clone, Debug)]
pub struct Wrr {
    /// Index of the dest last picked; `None` = the list head.
    cl: Option<usize>,
    /// Current weight.
    cw: i32,
    /// Maximum weight less `di - 1`.
    mw: i32,
    /// gcd of the positive weights (1 if none).
    di: i32,
}

/// `ip_vs_wrr_gcd_weight` and `ip_vs_wrr_max_weight` folded over dests.
fn di_mw<'a>(dests: impl Iterator<Item = &'a Dest>) -> (i32, i32) {
    let (mut g, mut max) = (0, 0);
    for d in dests {
        let w = d.weight();
        if w > 0 {
            g = if g > 0 { gcd(w, g) } else { w };
        }
        if w > max {
            max = w;
        }
    }
    let di = if g > 0 { g } else { 1 };
    (di, max - (di - 1))
}

/// The `cw` rule of `ip_vs_wrr_dest_changed`.
const fn changed_cw(cw: i32, mw: i32, di: i32) -> i32 {
    if cw > mw || cw == 0 {
        mw
    } else if di > 1 {
        (cw / di) * di + 1
    } else {
        cw
    }
}

/// Same dests, same order, same settings: no kernel hook would have run.
pub(crate) fn same_dests(a: &[Dest], b: &[Dest]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.id == y.id && x.conf == y.conf)
}

impl Wrr {
    /// The state after `init_service` on an empty service and one `dest_changed` per dest added
    /// in list order reversed.
    #[must_use]
    pub(crate) fn build(dests: &[Dest]) -> Self {
        let mut cw = 0; // init on an empty list: di 1, mw 0, cw 0
        for k in 1..=dests.len() {
            let tail = &dests[dests.len() - k..];
            let (di, mw) = di_mw(tail.iter());
            cw = changed_cw(cw, mw, di);
        }
        let (di, mw) = di_mw(dests.iter());
        Self {
            cl: None,
            cw,
            mw,
            di,
        }
    }

    /// `init_service` with these dests already present (scheduler change).
    pub(crate) fn reinit(&mut self, dests: &[Dest]) {
        let (di, mw) = di_mw(dests.iter());
        *self = Self {
            cl: None,
            cw: mw,
            mw,
            di,
        };
    }

    /// Carry `old` across a snapshot change: an exact copy when the dests did not change, else
    /// `ip_vs_wrr_dest_changed` applied to the old `cw`.
    pub(crate) fn inherit(&mut self, old: &Self, old_dests: &[Dest], new_dests: &[Dest]) {
        if same_dests(old_dests, new_dests) {
            self.cl = old.cl;
            self.cw = old.cw;
        } else {
            self.cl = None;
            self.cw = changed_cw(old.cw, self.mw, self.di);
        }
    }

    /// Current weight (for tests and diagnostics).
    #[must_use]
    pub fn current_weight(&self) -> i32 {
        self.cw
    }

    /// `ip_vs_wrr_schedule`.
    pub(crate) fn pick(&mut self, dests: &[Dest]) -> Option<usize> {
        let n = dests.len();
        if self.mw == 0 {
            return None;
        }
        let last = self.cl.filter(|&c| c < n);
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        let mut start = last.map_or(0, |c| c + 1);
        // The kernel's loop ends by itself within mw/di + 2 passes; the bound only guards
        // against a broken invariant turning into a hang.
        let max_passes = i64::from(self.mw / self.di.max(1)) + 3;
        for _ in 0..max_passes {
            for (i, d) in dests.iter().enumerate().skip(start) {
                if !d.is_overloaded() && d.weight() >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
            }
            start = 0;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
        self.cl = None;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dest, dests, set_overloaded, with_weight};
    use proptest::prelude::*;

    fn ids(w: &mut Wrr, ds: &[Dest], n: usize) -> Vec<Option<u32>> {
        (0..n).map(|_| w.pick(ds).map(|i| ds[i].id.0)).collect()
    }

    /// Weights added as 4 (A, id 0), 3 (B, id 1), 2 (C, id 2): the kernel's list is C, B, A.
    /// Hand-derived from ip_vs_wrr.c: init on the empty service gives cw 0; adding A alone
    /// gives di 4, mw 4-3 = 1 and cw = mw = 1; adding B then C gives di 1, mw 4, and cw stays 1
    /// (it is neither 0 nor above mw). So the first cycle starts at cw = 1:
    /// cw=1: C B A | cw=4: A | cw=3: B A | cw=2: C B A | cw=1: C B A | cw=4: A ...
    #[test]
    fn weights_added_as_4_3_2() {
        let list = vec![dest(2, 2), dest(1, 3), dest(0, 4)];
        let mut w = Wrr::build(&list);
        assert_eq!((w.di, w.mw, w.cw), (1, 4, 1));
        let got = ids(&mut w, &list, 16);
        let want: Vec<Option<u32>> = [2, 1, 0, 0, 1, 0, 2, 1, 0, 2, 1, 0, 0, 1, 0, 2]
            .iter()
            .map(|&i| Some(i))
            .collect();
        assert_eq!(got, want);
        // After a scheduler change (init_service with the dests present) cw starts at mw:
        // cw=4: A | cw=3: B A | cw=2: C B A | cw=1: C B A
        let mut r = Wrr::build(&list);
        r.reinit(&list);
        let want: Vec<Option<u32>> = [0, 1, 0, 2, 1, 0, 2, 1, 0, 0]
            .iter()
            .map(|&i| Some(i))
            .collect();
        assert_eq!(ids(&mut r, &list, 10), want);
    }

    /// Adding 2 then 4 leaves cw at 1 (dest_changed rounds to k*di+1), unlike a fresh init.
    #[test]
    fn add_order_matters_through_dest_changed() {
        // Added A(w2) then B(w4): list B, A. After A: di 2, mw 1, cw 1. After B: di 2, mw 3,
        // cw = (1/2)*2+1 = 1.
        let list = vec![dest(1, 4), dest(0, 2)];
        let mut w = Wrr::build(&list);
        assert_eq!((w.di, w.mw, w.cw), (2, 3, 1));
        // cw=1: B A | cw=-1 -> 3: B | cw=1: B A | ...
        assert_eq!(
            ids(&mut w, &list, 5),
            [Some(1), Some(0), Some(1), Some(1), Some(0)]
        );
        // A scheduler change re-inits with cw = mw = 3: B | B A | B ...
        let mut r = Wrr::build(&list);
        r.reinit(&list);
        assert_eq!(ids(&mut r, &list, 4), [Some(1), Some(1), Some(0), Some(1)]);
    }

    #[test]
    fn dest_changed_keeps_cw_and_resets_cursor() {
        let list = vec![dest(2, 2), dest(1, 3), dest(0, 4)];
        let mut w = Wrr::build(&list);
        // C B A | A | B: now cw = 3 and cl = B (index 1).
        assert_eq!(
            ids(&mut w, &list, 5),
            [Some(2), Some(1), Some(0), Some(0), Some(1)]
        );
        assert_eq!((w.cl, w.cw), (Some(1), 3));
        // Unrelated snapshot: exact copy.
        let mut same = Wrr::build(&list);
        same.inherit(&w, &list, &list);
        assert_eq!((same.cl, same.cw), (Some(1), 3));
        // Edit C's weight to 1: cw stays 3 (di 1), cursor back to the head:
        // cw=3: B A | cw=2: B A (C has weight 1 now).
        let edited = vec![with_weight(&list[0], 1), list[1].clone(), list[2].clone()];
        let mut e = Wrr::build(&edited);
        e.inherit(&w, &list, &edited);
        assert_eq!((e.cl, e.cw), (None, 3));
        assert_eq!(
            ids(&mut e, &edited, 4),
            [Some(1), Some(0), Some(1), Some(0)]
        );
    }

    #[test]
    fn cw_rounds_when_gcd_above_one() {
        // Weights 4 and 6 (di 2, mw 5). An old cw of 4 becomes (4/2)*2+1 = 5.
        let list = dests(&[4, 6]);
        let mut w = Wrr::build(&list);
        let old = Wrr {
            cl: Some(1),
            cw: 4,
            mw: 99,
            di: 1,
        };
        w.inherit(&old, &dests(&[4, 6, 1]), &list);
        assert_eq!((w.cl, w.cw), (None, 5));
    }

    #[test]
    fn none_when_all_quiesced_or_overloaded() {
        let list = dests(&[0, 0]);
        let mut w = Wrr::build(&list);
        assert_eq!(w.pick(&list), None);
        let list = dests(&[2, 1]);
        let mut w = Wrr::build(&list);
        assert_eq!(w.pick(&list), Some(0));
        set_overloaded(&list[0], true);
        set_overloaded(&list[1], true);
        assert_eq!(w.pick(&list), None);
        set_overloaded(&list[1], false);
        assert_eq!(w.pick(&list), Some(1));
    }

    proptest! {
        /// Over whole cycles each dest gets exactly weight/gcd picks per mw/gcd passes; in
        /// particular the ratios equal the weights.
        #[test]
        fn ratios_equal_weights(ws in prop::collection::vec(0i32..8, 1..7)) {
            let list = dests(&ws);
            let mut w = Wrr::build(&list);
            let total: i32 = ws.iter().sum();
            if total == 0 {
                prop_assert_eq!(w.pick(&list), None);
                return Ok(());
            }
            let g = ws.iter().filter(|&&x| x > 0).fold(0, |g, &x| if g == 0 { x } else { gcd(x, g) });
            let cycle = usize::try_from(total / g).unwrap();
            // Skip to a cycle boundary (cw back at mw and cursor at the head) by picking a
            // full cycle first, then count the next few cycles.
            let mut counts = vec![0i32; ws.len()];
            for _ in 0..cycle { w.pick(&list); }
            for _ in 0..cycle * 3 {
                let i = w.pick(&list).unwrap();
                counts[i] += 1;
            }
            for (c, &x) in counts.iter().zip(&ws) {
                prop_assert_eq!(*c, 3 * x / g);
            }
        }

        #[test]
        fn never_picks_quiesced_or_overloaded(
            spec in prop::collection::vec((0i32..5, any::<bool>()), 1..8)
        ) {
            let list = dests(&spec.iter().map(|s| s.0).collect::<Vec<_>>());
            for (d, s) in list.iter().zip(&spec) { set_overloaded(d, s.1); }
            let mut w = Wrr::build(&list);
            let any_ok = list.iter().any(|d| d.weight() > 0 && !d.is_overloaded());
            for _ in 0..40 {
                match w.pick(&list) {
                    Some(i) => prop_assert!(list[i].weight() > 0 && !list[i].is_overloaded()),
                    None => prop_assert!(!any_ok),
                }
            }
        }
    }
}
