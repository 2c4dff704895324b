//! `sh`: source hashing (`net/netfilter/ipvs/ip_vs_sh.c`).
//!
//! Derivation: a static 256-bucket table (`IP_VS_SH_TAB_BITS` = 8, the Kconfig default) maps a
//! hash of the client (source) address, and with `sh-port` its source port, to a dest, so a
//! client sticks to one dest without any per-connection state. `ip_vs_sh_reassign` fills the
//! buckets in order, walking the dest list cyclically and giving each dest `weight` consecutive
//! buckets before moving on (a weight-0 dest still takes one bucket per round: `++count >= 0`
//! moves on after one), so shares are weight-proportional.
//!
//! The bucket is `(offset + hash_32(port + ntohl(addr_fold), 8)) & 255` with offset 0, port the
//! TCP/UDP/SCTP source port when `sh-port` (`IP_VS_SVC_F_SCHED2`) is set, else 0. A dest is
//! unusable when its weight is <= 0 or it is overloaded. Without `sh-fallback` an unusable dest
//! means no dest. With it (`IP_VS_SVC_F_SCHED1`), `ip_vs_sh_get_fallback` tries offsets
//! `roffset = (k + ihash) % 256` for k = 0..255, each rehashed as above, and takes the first
//! usable dest (an empty bucket ends the search).
//!
//! The table is rebuilt at every build (the kernel's add/del/upd hooks) and shared by `Arc`.
//! No per-worker state. Never allocates in `pick`; the fallback costs at most 256 probes.

use std::net::IpAddr;
use std::sync::Arc;

use crate::flow::FlowKey;
use crate::service::{Dest, svc_flags};

use super::{NO_DEST, addr_fold, hash_32, hash_port, idx_u32};

/// `IP_VS_SH_TAB_BITS`.
pub const TAB_BITS: u32 = 8;
/// `IP_VS_SH_TAB_SIZE`.
pub const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: u32 = (1 << TAB_BITS) - 1;

/// Source hashing: bucket table plus the service's sh flags.
#[derive(Clone, Debug)]
pub struct Sh {
    buckets: Arc<[u32; TAB_SIZE]>,
    fallback: bool,
    port: bool,
}

/// `ip_vs_sh_hashkey`.
#[inline]
#[must_use]
pub fn hashkey(addr: &IpAddr, port: u16, offset: u32) -> usize {
    let h = hash_32(u32::from(port).wrapping_add(addr_fold(addr)), TAB_BITS);
    (offset.wrapping_add(h) & TAB_MASK) as usize
}

impl Sh {
    /// `ip_vs_sh_reassign` over `dests`; flags from the service.
    #[must_use]
    pub(crate) fn build(flags: u32, dests: &[Dest]) -> Self {
        let mut b = [NO_DEST; TAB_SIZE];
        if !dests.is_empty() {
            let (mut p, mut count) = (0usize, 0i32);
            for slot in &mut b {
                *slot = idx_u32(p);
                count += 1;
                if count >= dests[p].weight() {
                    p = (p + 1) % dests.len();
                    count = 0;
                }
            }
        }
        Self {
            buckets: Arc::new(b),
            fallback: flags & svc_flags::SCHED1 != 0,
            port: flags & svc_flags::SCHED2 != 0,
        }
    }

    /// The dest index in bucket `h`, if any.
    #[inline]
    fn at(&self, h: usize) -> Option<usize> {
        self.buckets
            .get(h)
            .filter(|&&i| i != NO_DEST)
            .map(|&i| i as usize)
    }

    /// `ip_vs_sh_schedule`.
    #[inline]
    pub(crate) fn pick(&self, dests: &[Dest], key: &FlowKey) -> Option<usize> {
        let usable = |i: usize| {
            dests
                .get(i)
                .is_some_and(|d| d.weight() > 0 && !d.is_overloaded())
        };
        let port = if self.port { hash_port(key) } else { 0 };
        let ihash = hashkey(&key.src, port, 0);
        let first = self.at(ihash)?;
        if usable(first) {
            return Some(first);
        }
        if !self.fallback {
            return None;
        }
        for k in 0..TAB_SIZE {
            let roffset = idx_u32((k + ihash) % TAB_SIZE);
            let i = self.at(hashkey(&key.src, port, roffset))?;
            if usable(i) {
                return Some(i);
            }
        }
        None
    }

    /// The bucket table (dest indices; `u32::MAX` = empty), for tests and diagnostics.
    #[must_use]
    pub fn buckets(&self) -> &[u32; TAB_SIZE] {
        &self.buckets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, key_v4, set_overloaded};
    use proptest::prelude::*;

    /// Independent restatement: hash_32 as u64 arithmetic on the host-order address + port.
    fn kernel_bucket(a: [u8; 4], port: u16) -> usize {
        let v = (u64::from(u32::from_be_bytes(a)) + u64::from(port)) & 0xffff_ffff;
        usize::try_from(((v * 0x61C8_8647) & 0xffff_ffff) >> 24).unwrap()
    }

    #[test]
    fn table_is_weight_proportional_in_list_order() {
        // Weights 3, 1, 0, 2: buckets A A A B C D D A A A B C D D ...
        let ds = dests(&[3, 1, 0, 2]);
        let sh = Sh::build(0, &ds);
        let pattern = [0, 0, 0, 1, 2, 3, 3];
        for (i, &d) in sh.buckets().iter().enumerate() {
            assert_eq!(d, pattern[i % 7], "bucket {i}");
        }
    }

    #[test]
    fn picks_for_given_clients() {
        let ds = dests(&[1, 2, 1]);
        let sh = Sh::build(0, &ds);
        let pattern = [0usize, 1, 1, 2];
        for a in [
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            [192, 168, 7, 9],
            [203, 0, 113, 5],
        ] {
            let want = pattern[kernel_bucket(a, 0) % 4];
            // Ports are ignored without sh-port.
            assert_eq!(sh.pick(&ds, &key_v4(a, 1)), Some(want));
            assert_eq!(sh.pick(&ds, &key_v4(a, 60000)), Some(want));
        }
    }

    #[test]
    fn sh_port_hashes_the_source_port() {
        let ds = dests(&[1, 1, 1, 1, 1]);
        let sh = Sh::build(svc_flags::SCHED2, &ds);
        for port in [1u16, 80, 4242, 65535] {
            let a = [198, 51, 100, 7];
            assert_eq!(
                sh.pick(&ds, &key_v4(a, port)),
                Some(kernel_bucket(a, port) % 5)
            );
        }
        // ICMP has no ports: port 0.
        let mut k = key_v4([198, 51, 100, 7], 999);
        k.proto = crate::flow::proto::ICMP;
        assert_eq!(
            sh.pick(&ds, &k),
            Some(kernel_bucket([198, 51, 100, 7], 0) % 5)
        );
    }

    #[test]
    fn fallback_walks_rehashed_offsets() {
        let ds = dests(&[1, 1, 1]);
        let a = [10, 1, 1, 1];
        let ihash = kernel_bucket(a, 0);
        let home = ihash % 3;
        set_overloaded(&ds[home], true);
        let plain = Sh::build(0, &ds);
        assert_eq!(plain.pick(&ds, &key_v4(a, 5)), None);
        let fb = Sh::build(svc_flags::SCHED1, &ds);
        // Expected: first k with dest (roffset + hash) & 255 usable, roffset = (k + ihash) % 256.
        let base = kernel_bucket(a, 0);
        let want = (0..256)
            .map(|k| ((k + ihash) % 256 + base) % 256 % 3)
            .find(|&d| d != home)
            .unwrap();
        assert_eq!(fb.pick(&ds, &key_v4(a, 5)), Some(want));
        for d in &ds {
            set_overloaded(d, true);
        }
        assert_eq!(fb.pick(&ds, &key_v4(a, 5)), None);
    }

    proptest! {
        #[test]
        fn bucket_shares_follow_weights(ws in prop::collection::vec(1i32..6, 1..8)) {
            let ds = dests(&ws);
            let sh = Sh::build(0, &ds);
            let total: i32 = ws.iter().sum();
            let rounds = 256 / total;
            let mut counts = vec![0i32; ws.len()];
            for &b in sh.buckets().iter() { counts[b as usize] += 1; }
            for (c, &w) in counts.iter().zip(&ws) {
                prop_assert!(*c >= rounds * w && *c <= (rounds + 1) * w);
            }
        }

        #[test]
        fn never_picks_quiesced_or_overloaded(
            spec in prop::collection::vec((0i32..3, any::<bool>()), 1..6),
            fallback in any::<bool>(),
            clients in prop::collection::vec(any::<[u8; 4]>(), 1..20),
        ) {
            let ds = dests(&spec.iter().map(|s| s.0).collect::<Vec<_>>());
            for (d, s) in ds.iter().zip(&spec) { set_overloaded(d, s.1); }
            let sh = Sh::build(if fallback { svc_flags::SCHED1 } else { 0 }, &ds);
            for c in clients {
                if let Some(i) = sh.pick(&ds, &key_v4(c, 1)) {
                    prop_assert!(ds[i].weight() > 0 && !ds[i].is_overloaded());
                }
            }
        }
    }
}
