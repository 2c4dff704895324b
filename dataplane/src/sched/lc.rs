//! `lc`: least connection (`net/netfilter/ipvs/ip_vs_lc.c`).
//!
//! Derivation: every dest's load is the kernel's `ip_vs_dest_conn_overhead`,
//! `activeconns * 256 + inactconns` (an active conn is deemed 256 times the work of an
//! inactive one). Walk the list from the head, skip overloaded dests and dests with weight 0
//! (quiesced; weights are otherwise ignored), and keep the first dest whose load is strictly
//! below the best so far (`doh < loh`): on a tie the dest nearer the head wins. The load is the
//! kernel's unsigned 32-bit value.
//!
//! Stateless: nothing to carry across snapshots. Never allocates.

use crate::service::Dest;

use super::conn_overhead;

/// The lc scheduler (no state).
#[derive(Clone, Copy, Debug, Default)]
pub struct Lc;

/// Pick the least-loaded dest as `ip_vs_lc_schedule` does.
#[inline]
pub(crate) fn pick(dests: &[Dest]) -> Option<usize> {
    let mut least: Option<(usize, u32)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.is_overloaded() || d.weight() == 0 {
            continue;
        }
        let doh = conn_overhead(d);
        match least {
            Some((_, loh)) if doh >= loh => {}
            _ => least = Some((i, doh)),
        }
    }
    least.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, set_conns, set_overloaded};
    use proptest::prelude::*;

    #[test]
    fn picks_least_overhead_head_first_on_ties() {
        let ds = dests(&[1, 5, 1, 1]);
        // overheads: 2*256+0=512, 1*256+300=556, 0*256+512=512, 2*256+1=513
        set_conns(&ds[0], 2, 0);
        set_conns(&ds[1], 1, 300);
        set_conns(&ds[2], 0, 512);
        set_conns(&ds[3], 2, 1);
        // ds[0] and ds[2] tie at 512: the head-most wins (strict <).
        assert_eq!(pick(&ds), Some(0));
        set_conns(&ds[2], 0, 511);
        assert_eq!(pick(&ds), Some(2));
    }

    #[test]
    fn weights_other_than_zero_do_not_matter() {
        let ds = dests(&[100, 1]);
        set_conns(&ds[0], 1, 0);
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn skips_quiesced_and_overloaded() {
        let ds = dests(&[0, 1, 1]);
        set_overloaded(&ds[1], true);
        set_conns(&ds[2], 9, 9);
        assert_eq!(pick(&ds), Some(2));
        set_overloaded(&ds[2], true);
        assert_eq!(pick(&ds), None);
    }

    proptest! {
        #[test]
        fn result_is_a_minimum_among_eligible(
            spec in prop::collection::vec((0i32..4, 0u32..50, 0u32..600, any::<bool>()), 1..12)
        ) {
            let ds = dests(&spec.iter().map(|s| s.0).collect::<Vec<_>>());
            for (d, s) in ds.iter().zip(&spec) {
                set_conns(d, s.1, s.2);
                set_overloaded(d, s.3);
            }
            let ok = |d: &Dest| d.weight() != 0 && !d.is_overloaded();
            match pick(&ds) {
                None => prop_assert!(!ds.iter().any(ok)),
                Some(i) => {
                    prop_assert!(ok(&ds[i]));
                    let oh = |d: &Dest| u64::from(d.activeconns()) * 256 + u64::from(d.inactconns());
                    for (j, d) in ds.iter().enumerate().filter(|(_, d)| ok(d)) {
                        prop_assert!(oh(d) > oh(&ds[i]) || (oh(d) == oh(&ds[i]) && j >= i));
                    }
                }
            }
        }
    }
}
