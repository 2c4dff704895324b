//! `fo`: weighted fail over (`net/netfilter/ipvs/ip_vs_fo.c`).
//!
//! Derivation: send everything to the available dest with the highest weight; when it fails
//! (quiesced to weight 0 or overloaded) traffic moves to the next highest. Walk from the head
//! skipping overloaded dests, keep a dest when its weight is strictly above the best so far
//! (starting at 0, so weight-0 dests never qualify): on equal weights the dest nearer the head
//! wins. Connection counts play no part.
//!
//! Stateless. Never allocates.

use crate::service::Dest;

/// The fo scheduler (no state).
#[derive(Clone, Copy, Debug, Default)]
pub struct Fo;

/// Pick as `ip_vs_fo_schedule`.
#[inline]
pub(crate) fn pick(dests: &[Dest]) -> Option<usize> {
    let mut best = None;
    let mut hw = 0;
    for (i, d) in dests.iter().enumerate() {
        if !d.is_overloaded() && d.weight() > hw {
            best = Some(i);
            hw = d.weight();
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, set_conns, set_overloaded};

    #[test]
    fn highest_weight_head_first_on_ties() {
        let ds = dests(&[2, 5, 5, 1]);
        set_conns(&ds[1], 1000, 0); // load does not matter
        assert_eq!(pick(&ds), Some(1));
        set_overloaded(&ds[1], true);
        assert_eq!(pick(&ds), Some(2));
        set_overloaded(&ds[2], true);
        assert_eq!(pick(&ds), Some(0));
    }

    #[test]
    fn all_quiesced_is_none() {
        assert_eq!(pick(&dests(&[0, 0])), None);
    }
}
