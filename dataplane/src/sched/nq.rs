//! `nq`: never queue (`net/netfilter/ipvs/ip_vs_nq.c`).
//!
//! Derivation (Weinrib and Shenker, INFOCOM'88, as cited by the kernel): a two-speed model.
//! If an idle server exists the job goes there at once instead of waiting for a faster one;
//! otherwise it goes where the expected delay `(activeconns + 1) / weight` is shortest (sed).
//! Walk from the head skipping overloaded and weight-0 dests: the **first** dest with
//! `activeconns == 0` is returned immediately (inactive conns do not make a dest busy);
//! otherwise the sed minimum with strict `>` on the cross products (ties nearer the head).
//!
//! Stateless. Never allocates.

use crate::service::Dest;

use super::active_i32;

/// The nq scheduler (no state).
#[derive(Clone, Copy, Debug, Default)]
pub struct Nq;

/// Pick as `ip_vs_nq_schedule`.
#[inline]
pub(crate) fn pick(dests: &[Dest]) -> Option<usize> {
    let mut least: Option<(usize, i64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.is_overloaded() || d.weight() == 0 {
            continue;
        }
        let active = active_i32(d);
        if active == 0 {
            return Some(i);
        }
        let doh = i64::from(active.wrapping_add(1));
        match least {
            Some((l, loh)) if loh * i64::from(d.weight()) <= doh * i64::from(dests[l].weight()) => {
            }
            _ => least = Some((i, doh)),
        }
    }
    least.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, set_conns, set_overloaded};

    #[test]
    fn first_idle_dest_wins_even_if_slow() {
        let ds = dests(&[10, 1, 1]);
        set_conns(&ds[0], 1, 0);
        set_conns(&ds[1], 0, 99); // idle: only inactive conns
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn no_idle_dest_uses_expected_delay() {
        // active 3, 1, 2 with weights 4, 1, 2: 4/4 = 1, 2/1 = 2, 3/2 = 1.5.
        let ds = dests(&[4, 1, 2]);
        set_conns(&ds[0], 3, 0);
        set_conns(&ds[1], 1, 0);
        set_conns(&ds[2], 2, 0);
        assert_eq!(pick(&ds), Some(0));
        set_conns(&ds[0], 5, 0); // 6/4 = 1.5 ties with ds[2]: head wins
        assert_eq!(pick(&ds), Some(0));
        set_conns(&ds[0], 6, 0); // 7/4 > 1.5
        assert_eq!(pick(&ds), Some(2));
    }

    #[test]
    fn quiesced_idle_and_overloaded_idle_are_skipped() {
        let ds = dests(&[0, 1, 1]);
        set_overloaded(&ds[1], true);
        set_conns(&ds[2], 3, 0);
        assert_eq!(pick(&ds), Some(2));
    }
}
