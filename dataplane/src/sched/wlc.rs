//! `wlc`: weighted least connection, the default scheduler (`net/netfilter/ipvs/ip_vs_wlc.c`).
//!
//! Derivation: a dest's load is `overhead / weight` with `overhead = activeconns * 256 +
//! inactconns`. Without floats, `h1/w1 > h2/w2` is tested as `h1*w2 > h2*w1` in 64-bit. The
//! first dest from the head that is not overloaded and has weight > 0 is the initial `least`;
//! the rest of the list is then scanned skipping only overloaded dests, and a dest replaces
//! `least` when `loh * w(dest) > doh * w(least)` (strictly): ties keep the dest nearer the
//! head. A later weight-0 dest can never win (its side of the product is 0), exactly as in the
//! kernel, which does not re-check the weight in the second stage.
//!
//! Stateless. Never allocates.

use crate::service::Dest;

use super::conn_overhead_s64;

/// The wlc scheduler (no state).
#[derive(Clone, Copy, Debug, Default)]
pub struct Wlc;

/// The weighted least-connection scan shared with lblc/lblcr (`__ip_vs_lblc_schedule` is the
/// same loop): first non-overloaded dest with weight > 0, then strict `>` on the cross
/// products over the non-overloaded rest.
#[inline]
pub(crate) fn pick(dests: &[Dest]) -> Option<usize> {
    let first = dests
        .iter()
        .position(|d| !d.is_overloaded() && d.weight() > 0)?;
    let mut least = first;
    let mut loh = conn_overhead_s64(&dests[first]);
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, set_conns, set_overloaded};
    use proptest::prelude::*;

    #[test]
    fn picks_by_overhead_over_weight() {
        // weights 1, 3, 2; overheads 256, 3*256=768 -> 256 per weight unit, 2*256+100.
        let ds = dests(&[1, 3, 2]);
        set_conns(&ds[0], 1, 0);
        set_conns(&ds[1], 3, 0);
        set_conns(&ds[2], 2, 100);
        // 256/1 vs 768/3: equal, head wins; 612/2 = 306 > 256.
        assert_eq!(pick(&ds), Some(0));
        set_conns(&ds[1], 2, 255); // 767/3 < 256
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn all_idle_picks_first_eligible() {
        let ds = dests(&[0, 1, 9]);
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn quiesced_later_dest_never_wins_even_idle() {
        let ds = dests(&[1, 0]);
        set_conns(&ds[0], 100, 100);
        assert_eq!(pick(&ds), Some(0));
    }

    #[test]
    fn overloaded_skipped() {
        let ds = dests(&[1, 1]);
        set_overloaded(&ds[0], true);
        set_conns(&ds[1], 5, 0);
        assert_eq!(pick(&ds), Some(1));
        set_overloaded(&ds[1], true);
        assert_eq!(pick(&ds), None);
    }

    proptest! {
        #[test]
        fn result_minimises_overhead_per_weight(
            spec in prop::collection::vec((0i32..5, 0u32..20, 0u32..300, any::<bool>()), 1..12)
        ) {
            let ds = dests(&spec.iter().map(|s| s.0).collect::<Vec<_>>());
            for (d, s) in ds.iter().zip(&spec) {
                set_conns(d, s.1, s.2);
                set_overloaded(d, s.3);
            }
            let ok = |d: &Dest| d.weight() > 0 && !d.is_overloaded();
            match pick(&ds) {
                None => prop_assert!(!ds.iter().any(ok)),
                Some(i) => {
                    prop_assert!(ok(&ds[i]));
                    let oh = |d: &Dest| i64::from(d.activeconns()) * 256 + i64::from(d.inactconns());
                    for (j, d) in ds.iter().enumerate().filter(|(_, d)| ok(d)) {
                        let (a, b) = (oh(d) * i64::from(ds[i].weight()), oh(&ds[i]) * i64::from(d.weight()));
                        prop_assert!(a > b || (a == b && j >= i), "dest {} beats {}", j, i);
                    }
                }
            }
        }
    }
}
