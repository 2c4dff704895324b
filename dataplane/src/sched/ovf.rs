//! `ovf`: overflow connection (`net/netfilter/ipvs/ip_vs_ovf.c`).
//!
//! Derivation: keep all connections on the highest-weight dest until its active connections
//! exceed its weight, then overflow to the next highest. A dest is eligible when it is not
//! overloaded, has weight > 0 and `activeconns <= weight`; among eligible dests the first with
//! the strictly highest weight (walking from the head) wins. Only active connections count, so
//! the kernel notes it may not suit UDP.
//!
//! Stateless. Never allocates.

use crate::service::Dest;

use super::active_i32;

/// The ovf scheduler (no state).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ovf;

/// Pick as `ip_vs_ovf_schedule`.
#[inline]
pub(crate) fn pick(dests: &[Dest]) -> Option<usize> {
    let mut best: Option<(usize, i32)> = None;
    for (i, d) in dests.iter().enumerate() {
        let w = d.weight();
        if d.is_overloaded() || active_i32(d) > w || w == 0 {
            continue;
        }
        match best {
            Some((_, hw)) if w <= hw => {}
            _ => best = Some((i, w)),
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, set_conns, set_overloaded};

    #[test]
    fn overflows_when_active_exceeds_weight() {
        let ds = dests(&[2, 3, 3]);
        set_conns(&ds[1], 3, 50); // active == weight: still eligible
        assert_eq!(pick(&ds), Some(1));
        set_conns(&ds[1], 4, 0);
        assert_eq!(pick(&ds), Some(2));
        set_conns(&ds[2], 4, 0);
        assert_eq!(pick(&ds), Some(0));
        set_conns(&ds[0], 3, 0);
        assert_eq!(pick(&ds), None);
    }

    #[test]
    fn quiesced_and_overloaded_never_picked() {
        let ds = dests(&[0, 4]);
        set_overloaded(&ds[1], true);
        assert_eq!(pick(&ds), None);
    }
}
