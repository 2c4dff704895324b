//! `sed`: shortest expected delay (`net/netfilter/ipvs/ip_vs_sed.c`).
//!
//! Derivation (Weinrib and Shenker, "Greed is not enough", INFOCOM'88, as cited by the
//! kernel): a new job sent to server *i* expects a delay of `(C_i + 1) / U_i`, with `C_i` the
//! jobs already there (here only `activeconns`) and `U_i` its rate (the weight). Pick the
//! minimum. As in wlc, the comparison is `loh * w(dest) > doh * w(least)` in 64-bit with
//! `oh = activeconns + 1`; the first non-overloaded dest with weight > 0 seeds `least`, the
//! rest are scanned skipping only overloaded dests, strict `>` so ties stay nearer the head.
//!
//! Stateless. Never allocates.

use crate::service::Dest;

use super::active_i32;

/// The sed scheduler (no state).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sed;

/// `ip_vs_sed_dest_overhead`: active conns + 1 (int arithmetic).
#[inline]
fn overhead(d: &Dest) -> i64 {
    i64::from(active_i32(d).wrapping_add(1))
}

/// Pick as `ip_vs_sed_schedule`.
#[inline]
pub(crate) fn pick(dests: &[Dest]) -> Option<usize> {
    let first = dests
        .iter()
        .position(|d| !d.is_overloaded() && d.weight() > 0)?;
    let mut least = first;
    let mut loh = overhead(&dests[first]);
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
        if d.is_overloaded() {
            continue;
        }
        let doh = overhead(d);
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

    #[test]
    fn expected_delay_with_given_counts() {
        // weights 1, 2, 4; active 0, 1, 4 -> (1)/1 = 1, (2)/2 = 1, (5)/4 = 1.25. Tie 0/1: head.
        let ds = dests(&[1, 2, 4]);
        set_conns(&ds[0], 0, 1000); // inactive conns do not count
        set_conns(&ds[1], 1, 0);
        set_conns(&ds[2], 4, 0);
        assert_eq!(pick(&ds), Some(0));
        set_conns(&ds[2], 2, 0); // 3/4 < 1
        assert_eq!(pick(&ds), Some(2));
    }

    #[test]
    fn sed_differs_from_wlc_on_idle_heavy_weight() {
        // Both idle: wlc's 0/w ties and keeps the head; sed's 1/w prefers the heavier dest.
        let ds = dests(&[1, 3]);
        assert_eq!(pick(&ds), Some(1));
        assert_eq!(crate::sched::wlc::pick(&ds), Some(0));
    }

    #[test]
    fn quiesced_and_overloaded_never_picked() {
        let ds = dests(&[0, 5, 1]);
        set_overloaded(&ds[1], true);
        set_conns(&ds[2], 50, 0);
        assert_eq!(pick(&ds), Some(2));
        set_overloaded(&ds[2], true);
        assert_eq!(pick(&ds), None);
    }
}
