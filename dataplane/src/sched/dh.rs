//! `dh`: destination hashing (`net/netfilter/ipvs/ip_vs_dh.c`).
//!
//! Derivation: a static 256-bucket table (`IP_VS_DH_TAB_BITS` = 8, the Kconfig default) maps a
//! hash of the packet's *destination* address to a dest, so one destination (e.g. one origin
//! server behind a cache cluster, typically with a fwmark service) always lands on the same
//! dest. The table is filled by `ip_vs_dh_reassign`: bucket `i` gets the dest at list position
//! `i mod n` (weights are ignored). The bucket of an address is `hash_32(ntohl(addr_fold), 8)`
//! (golden-ratio multiply, top 8 bits; IPv6 folds its four words by XOR). The pick fails when
//! that dest has weight <= 0 or is overloaded; there is no fallback.
//!
//! The table is rebuilt with the dests at every build (the kernel's add/del hooks); it lives in
//! an `Arc`, so worker clones share it. No per-worker state. Never allocates in `pick`.

use std::sync::Arc;

use crate::flow::FlowKey;
use crate::service::Dest;

use super::{NO_DEST, addr_fold, hash_32, idx_u32};

/// `IP_VS_DH_TAB_BITS`.
pub const TAB_BITS: u32 = 8;
/// `IP_VS_DH_TAB_SIZE`.
pub const TAB_SIZE: usize = 1 << TAB_BITS;

/// Destination hashing: the bucket table (dest indices).
#[derive(Clone, Debug)]
pub struct Dh {
    buckets: Arc<[u32; TAB_SIZE]>,
}

impl Dh {
    /// `ip_vs_dh_reassign`: bucket i -> dest i mod n.
    #[must_use]
    pub(crate) fn build(dests: &[Dest]) -> Self {
        let mut b = [NO_DEST; TAB_SIZE];
        if !dests.is_empty() {
            for (i, slot) in b.iter_mut().enumerate() {
                *slot = idx_u32(i % dests.len());
            }
        }
        Self {
            buckets: Arc::new(b),
        }
    }

    /// The bucket of a destination address.
    #[inline]
    #[must_use]
    pub fn bucket(addr: &std::net::IpAddr) -> usize {
        hash_32(addr_fold(addr), TAB_BITS) as usize
    }

    /// `ip_vs_dh_schedule`: the dest of the destination address's bucket, if usable.
    #[inline]
    pub(crate) fn pick(&self, dests: &[Dest], key: &FlowKey) -> Option<usize> {
        let i = *self.buckets.get(Self::bucket(&key.dst))? as usize;
        let d = dests.get(i)?;
        (d.weight() > 0 && !d.is_overloaded()).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, key_to, set_overloaded};

    /// Independent statement of the kernel's bucket: (fold * 0x61C88647) >> 24, as u64 math.
    fn kernel_bucket(a: [u8; 4]) -> usize {
        let v = u64::from(u32::from_be_bytes(a));
        usize::try_from(((v * 0x61C8_8647) & 0xffff_ffff) >> 24).unwrap()
    }

    #[test]
    fn picks_dest_by_destination_address() {
        let ds = dests(&[1, 1, 1]);
        let mut dh = Dh::build(&ds);
        for a in [[192, 168, 1, 1], [10, 9, 8, 7], [8, 8, 8, 8], [1, 2, 3, 4]] {
            let want = kernel_bucket(a) % 3;
            assert_eq!(dh.pick(&ds, &key_to(a)), Some(want), "{a:?}");
        }
        // Source address and ports do not matter.
        let mut k = key_to([1, 2, 3, 4]);
        let first = dh.pick(&ds, &k);
        k.src = "9.9.9.9".parse().unwrap();
        k.sport = 1;
        assert_eq!(dh.pick(&ds, &k), first);
        let _ = &mut dh;
    }

    #[test]
    fn unusable_dest_means_none_without_fallback() {
        let ds = dests(&[1, 0]);
        let dh = Dh::build(&ds);
        // Find a destination hashing to the weight-0 dest (odd bucket).
        let a = (0u8..=255)
            .map(|x| [10, 0, 1, x])
            .find(|a| kernel_bucket(*a) % 2 == 1)
            .unwrap();
        assert_eq!(dh.pick(&ds, &key_to(a)), None);
        let b = (0u8..=255)
            .map(|x| [10, 0, 1, x])
            .find(|a| kernel_bucket(*a).is_multiple_of(2))
            .unwrap();
        assert_eq!(dh.pick(&ds, &key_to(b)), Some(0));
        set_overloaded(&ds[0], true);
        assert_eq!(dh.pick(&ds, &key_to(b)), None);
    }
}
