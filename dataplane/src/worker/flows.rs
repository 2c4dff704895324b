//! A worker's flow cache: the client -> VIP flows it forwarded lately, each with its conn's
//! reference ([`ConnRefV4`]) and the rewrite worked out once (next hop MACs, egress port and
//! MTU, the checksum differences of the address and port changes), so the next packet of the
//! flow skips the conn lookup (hashes, index probe, hit building) and the rewrite's arithmetic.
//! Like Open vSwitch's exact-match cache in front of its classifier, or the kernel's nftables
//! flowtable in front of conntrack.
//!
//! It is a cache, never a source of truth: a hit is used only after
//! [`crate::conn::ConnTable::touch_v4`] has found the referenced slot still holding a conn of
//! exactly the cached identity, live and not due, and has run the packet through it as a
//! lookup would (state, timer, counters). Anything else (the conn gone, expired, its slot
//! reused; a packet too big for the cached MTU) falls through to the lookup, which then sees the
//! table as if the cache did not exist. Entries are direct-mapped by a hash of the 5-tuple and
//! simply overwritten; [`FlowCache::clear`] forgets them all in O(1) (an epoch) when the
//! worker's neighbour map or config snapshot changes, since the cached next hop depends on it.
//!
//! Invariants: an entry is used only if its epoch is the cache's and its conn's client -> VIP
//! key is the packet's. Never: allocate after construction, or decide anything a conn lookup
//! would decide differently.

use crate::conn::{ConnRefV4, FlowKeyV4};

/// log2 of the entries: 8192 entries of one cache line, 512 KiB per worker.
pub(super) const FLOW_BITS: u32 = 13;

/// What a cached flow's packets get rewritten with besides TTL and MACs.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum Nat {
    /// DR: addresses and ports stay.
    #[default]
    None,
    /// NAT: the destination becomes the dest's address and port.
    Dst,
    /// FULLNAT: the source becomes the local address and port, the destination the dest's.
    Both,
}

/// One cached flow (one cache line).
#[derive(Copy, Clone, Debug, Default)]
#[repr(C, align(64))]
pub(super) struct Flow {
    /// The conn, and through it the flow's client -> VIP key.
    pub(super) conn: ConnRefV4,
    /// The cache's epoch when stored (0: never stored).
    epoch: u32,
    /// Egress MTU (0: unlimited).
    pub(super) mtu: u32,
    /// Next hop's MAC then the egress port's (the new Ethernet destination and source).
    pub(super) macs: [u8; 12],
    /// Egress port.
    pub(super) port: u16,
    /// One's complement sum of the IPv4 header's changed words (TTL and addresses), folded.
    pub(super) ip_delta: u16,
    /// The same for the TCP/UDP checksum (pseudo-header addresses and ports), folded.
    pub(super) l4_delta: u16,
    pub(super) nat: Nat,
}

/// The cache (see the module documentation).
#[derive(Debug)]
pub(super) struct FlowCache {
    e: Box<[Flow]>,
    epoch: u32,
}

impl FlowCache {
    pub(super) fn new() -> Self {
        Self {
            e: vec![Flow::default(); 1 << FLOW_BITS].into_boxed_slice(),
            epoch: 1,
        }
    }

    /// Forget every entry.
    pub(super) fn clear(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: entries stored 2^32 clears ago would look current; wipe them.
            self.e.fill(Flow::default());
            self.epoch = 1;
        }
    }

    /// The entry client -> VIP key `k` maps to.
    #[inline(always)]
    pub(super) fn slot(k: &FlowKeyV4) -> usize {
        // The addresses and the ports+protocol as two 64-bit words, multiplied into 128 bits
        // and the halves folded (wyhash's "mum"): every input bit reaches the top bits, and no
        // two fields share bits to cancel each other out.
        let a = (u64::from(k.src) << 32 | u64::from(k.dst)) ^ 0x9e37_79b9_7f4a_7c15;
        let b = (u64::from(k.sport) << 24 | u64::from(k.dport) << 8 | u64::from(k.proto))
            ^ 0xbf58_476d_1ce4_e5b9;
        let m = u128::from(a) * u128::from(b);
        #[allow(clippy::cast_possible_truncation)] // INVARIANT: the halves of a u128.
        let h = (m >> 64) as u64 ^ m as u64;
        #[allow(clippy::cast_possible_truncation)] // INVARIANT: FLOW_BITS bits after the shift.
        let i = (h >> (64 - FLOW_BITS)) as usize;
        i
    }

    /// The cached flow of client -> VIP key `k`, if any.
    #[cfg(test)]
    pub(super) fn get(&self, k: &FlowKeyV4) -> Option<&Flow> {
        self.get_at(Self::slot(k), k)
    }

    /// [`Self::get`] with the key's entry `i` (`Self::slot(k)`) already worked out.
    #[inline(always)]
    pub(super) fn get_at(&self, i: usize, k: &FlowKeyV4) -> Option<&Flow> {
        let f = self.e.get(i)?;
        (f.epoch == self.epoch && f.conn.is_in_key(k)).then_some(f)
    }

    /// Cache the flow of `conn`'s client -> VIP key (replacing what shared its entry): its
    /// packets leave by `port` (MTU `mtu`) to `macs`, rewritten as `nat` says with the
    /// one's complement differences `ip_delta` and `l4_delta` (folded).
    #[inline(always)]
    pub(super) fn insert(
        &mut self,
        conn: ConnRefV4,
        (port, mtu, macs): (u16, u32, [u8; 12]),
        nat: Nat,
        ip_delta: u16,
        l4_delta: u16,
    ) {
        let k = FlowKeyV4 {
            proto: conn.proto,
            src: conn.addrs[0],
            dst: conn.addrs[1],
            sport: conn.ports[0],
            dport: conn.ports[1],
        };
        self.e[Self::slot(&k)] = Flow {
            conn,
            epoch: self.epoch,
            mtu,
            macs,
            port,
            ip_delta,
            l4_delta,
            nat,
        };
    }

    /// Start fetching entry `i`.
    #[inline(always)]
    pub(super) fn prefetch_at(&self, i: usize) {
        prefetch_index::prefetch_index(&self.e, i);
    }

    /// Forget the flow in entry `i` (its conn reference was refused).
    #[inline]
    pub(super) fn forget_at(&mut self, i: usize) {
        if let Some(f) = self.e.get_mut(i) {
            f.epoch = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(c: &mut FlowCache, src: u32, sport: u16) {
        let conn = ConnRefV4 {
            addrs: [src, 0xc612_0001, 0x0a00_0001, src],
            ports: [sport, 80, 8080, sport],
            proto: 6,
            ..ConnRefV4::default()
        };
        c.insert(conn, (0, 0, [0; 12]), Nat::Dst, 0, 0);
    }

    fn key(src: u32, sport: u16) -> FlowKeyV4 {
        FlowKeyV4 {
            proto: 6,
            src,
            dst: 0xc612_0001,
            sport,
            dport: 80,
        }
    }

    #[test]
    fn an_entry_is_one_cache_line() {
        assert_eq!(size_of::<Flow>(), 64);
    }

    #[test]
    fn get_finds_only_the_stored_key_and_clear_forgets() {
        let mut c = FlowCache::new();
        insert(&mut c, 0xc612_0102, 40000);
        assert!(c.get(&key(0xc612_0102, 40000)).is_some());
        assert!(c.get(&key(0xc612_0102, 40001)).is_none());
        let mut udp = key(0xc612_0102, 40000);
        udp.proto = 17;
        assert!(c.get(&udp).is_none());
        c.clear();
        assert!(c.get(&key(0xc612_0102, 40000)).is_none());
        insert(&mut c, 0xc612_0102, 40000);
        c.forget_at(FlowCache::slot(&key(0xc612_0102, 40000)));
        assert!(c.get(&key(0xc612_0102, 40000)).is_none());
    }

    #[test]
    fn a_wrapped_epoch_wipes_old_entries() {
        let mut c = FlowCache::new();
        insert(&mut c, 1, 1);
        c.epoch = u32::MAX;
        c.clear();
        assert_eq!(c.epoch, 1);
        assert!(c.get(&key(1, 1)).is_none());
    }

    #[test]
    fn a_thousand_flows_mostly_keep_their_own_entry() {
        let mut c = FlowCache::new();
        for i in 0..1000u32 {
            insert(&mut c, 0xc612_0000 | i, 1024 + (i % 50) as u16);
        }
        let kept = (0..1000u32)
            .filter(|&i| {
                c.get(&key(0xc612_0000 | i, 1024 + (i % 50) as u16))
                    .is_some()
            })
            .count();
        // Direct-mapped, 8192 entries: about 6% of 1000 random keys share an entry.
        assert!(kept > 900, "{kept}");
    }
}
