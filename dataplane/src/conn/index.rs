//! The index of one conn table shard: a bucketised open-addressing hash table of `u32` entries
//! (slab slot, family and role bits; see `table.rs`), laid out so that a lookup reads one cache
//! line in the common case.
//!
//! A bucket is one 64-byte line: ten 16-bit tags (the top bits of the entry's hash, never 0;
//! 0 marks a free lane), the ten entries, and an overflow count. An entry lives in its home
//! bucket (`hash & mask`) or, when that is full, in the first bucket after it with a free lane;
//! every full bucket it passed counts it in `over`. A lookup scans the home bucket's tags (three
//! 64-bit words compared four lanes at a time), checks candidates with the caller's predicate,
//! and moves on only while `over` says entries spilled past. hashbrown (the design card's
//! choice, which this replaces) keeps its tag bytes and its entries in two separate arrays: a
//! hit reads two lines of a large table where this reads one, and an insert after a miss
//! writes the line the miss just read. Measured with `scripts/ab-bench.sh` (three interleaved
//! rounds against hashbrown): an established packet with 1M conns in the table 208-219 ->
//! 177-183 ns; with 1k conns the same within noise (92-99 ns); new conns 0-4% slower
//! (266-302 -> 278-306 ns: a miss probe reads a whole bucket line where hashbrown reads its
//! denser control bytes).
//!
//! Invariants: `len` is the number of used lanes; `version` changes whenever an entry is added or
//! removed; a used lane's tag is the tag of the hash its
//! entry was inserted with; `over` of a bucket is the number of entries whose probe passed it
//! (home at or before it, stored after it); the load stays at most 7/8 of the lanes, so an
//! insert always finds a free lane. Never: allocate on `find` or `remove`; `insert` allocates
//! only to double a full index (an amortised rehash under the shard's lock).

/// Lanes per bucket: 10 tags of 16 bits and the overflow count fill three words, 10 entries of
/// 32 bits the rest of the line.
const WAYS: usize = 10;
/// The lanes of the third tag word (8 and 9); its upper half is the overflow count.
const WORD2_LANES: u64 = 0x0000_0000_8000_8000;
/// One in each 16-bit lane.
const LANES: u64 = 0x0001_0001_0001_0001;
/// The top bit of each 16-bit lane.
const HIGH: u64 = 0x8000_8000_8000_8000;

#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Bucket {
    /// Lane `i`'s tag is bits `16 * (i % 4)..` of `tags[i / 4]`; bits 32.. of `tags[2]` are the
    /// overflow count.
    tags: [u64; 3],
    ents: [u32; WAYS],
}

impl Bucket {
    #[inline]
    fn tag(&self, lane: usize) -> u16 {
        #[allow(clippy::cast_possible_truncation)] // INVARIANT: one 16-bit lane.
        let t = (self.tags[lane / 4] >> (16 * (lane % 4))) as u16;
        t
    }

    #[inline]
    fn set_tag(&mut self, lane: usize, tag: u16) {
        let shift = 16 * (lane % 4);
        let w = &mut self.tags[lane / 4];
        *w = (*w & !(0xffff << shift)) | (u64::from(tag) << shift);
    }

    /// Entries stored after this bucket whose probe passed it.
    #[inline]
    fn over(&self) -> u32 {
        #[allow(clippy::cast_possible_truncation)] // INVARIANT: the upper half of a word.
        let o = (self.tags[2] >> 32) as u32;
        o
    }

    #[inline]
    fn set_over(&mut self, o: u32) {
        self.tags[2] = (self.tags[2] & 0xffff_ffff) | (u64::from(o) << 32);
    }

    /// The lanes of tag word `w` whose tag is `tag`: bit 15 + 16 * j set for lane 4 * w + j
    /// (tag 0 finds the free lanes).
    #[inline]
    fn lanes_of(&self, w: usize, tag: u16) -> u64 {
        let m = zero_lanes(self.tags[w] ^ (u64::from(tag) * LANES));
        if w == 2 { m & WORD2_LANES } else { m }
    }

    /// A free lane, if any.
    #[inline]
    fn free_lane(&self) -> Option<usize> {
        (0..3).find_map(|w| {
            let m = self.lanes_of(w, 0);
            (m != 0).then(|| w * 4 + (m.trailing_zeros() / 16) as usize)
        })
    }
}

/// The lanes of `w` that are zero: bit 15 of each such lane set. Exact: adding 0x7fff to a
/// lane's low 15 bits cannot carry into the next lane.
#[inline]
fn zero_lanes(w: u64) -> u64 {
    const LOW: u64 = !HIGH;
    !(((w & LOW).wrapping_add(LOW)) | w) & HIGH
}

/// The tag of `hash`: its top 16 bits, never 0.
#[inline]
fn tag_of(hash: u64) -> u16 {
    #[allow(clippy::cast_possible_truncation)] // INVARIANT: 16 bits after the shift.
    let t = (hash >> 48) as u16;
    t | 1
}

/// A shard's index (see the module documentation).
#[derive(Debug)]
pub(super) struct ConnIndex {
    buckets: Vec<Bucket>,
    mask: usize,
    len: usize,
    /// Changes with every insert, remove and clear: equal readings under the shard's lock mean
    /// the entries are the same.
    version: u64,
}

impl ConnIndex {
    /// Bytes per bucket (one cache line).
    pub(super) const BUCKET_BYTES: usize = size_of::<Bucket>();

    /// Where the buckets are (address) and the bucket mask, for prefetching a bucket.
    pub(super) fn bucket_area(&self) -> (usize, usize) {
        (self.buckets.as_ptr().addr(), self.mask)
    }

    /// An index sized for about `n` entries (it grows when 7/8 of its lanes are used).
    pub(super) fn with_capacity(n: usize) -> Self {
        let buckets = (n * 8 / 7 / WAYS + 1).next_power_of_two().max(2);
        Self {
            buckets: vec![Bucket::default(); buckets],
            mask: buckets - 1,
            len: 0,
            version: 0,
        }
    }

    /// Entries stored.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The generation: see the field.
    #[inline(always)]
    pub(super) fn version(&self) -> u64 {
        self.version
    }

    /// Bytes of the bucket array.
    pub(super) fn allocation_size(&self) -> usize {
        self.buckets.capacity() * size_of::<Bucket>()
    }

    /// Remove every entry, keeping the allocation.
    pub(super) fn clear(&mut self) {
        self.buckets.fill(Bucket::default());
        self.len = 0;
        self.version = self.version.wrapping_add(1);
    }

    /// The first entry inserted with `hash` for which `eq` holds.
    #[inline(always)]
    pub(super) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag_of(hash);
        #[allow(clippy::cast_possible_truncation)] // INVARIANT: masked to the bucket count.
        let mut b = hash as usize & self.mask;
        loop {
            let bk = &self.buckets[b];
            for w in 0..3 {
                let mut m = bk.lanes_of(w, tag);
                while m != 0 {
                    let lane = w * 4 + (m.trailing_zeros() / 16) as usize;
                    let e = bk.ents[lane];
                    if eq(e) {
                        return Some(e);
                    }
                    m &= m - 1;
                }
            }
            if bk.over() == 0 {
                return None;
            }
            b = (b + 1) & self.mask;
        }
    }

    /// Read the home bucket of `hash` (a word of its tags), for no other purpose than to bring
    /// its line into the cache before a probe that will need it.
    #[inline]
    pub(super) fn peek(&self, hash: u64) -> u64 {
        #[allow(clippy::cast_possible_truncation)] // INVARIANT: masked to the bucket count.
        let b = hash as usize & self.mask;
        self.buckets.get(b).map_or(0, |bk| bk.tags[0])
    }

    /// Remove the entry `e` inserted with `hash`; whether it was there.
    pub(super) fn remove(&mut self, hash: u64, e: u32) -> bool {
        let tag = tag_of(hash);
        #[allow(clippy::cast_possible_truncation)] // INVARIANT: masked to the bucket count.
        let home = hash as usize & self.mask;
        let mut b = home;
        loop {
            let bk = &mut self.buckets[b];
            if let Some(lane) = (0..WAYS).find(|&l| bk.ents[l] == e && bk.tag(l) == tag) {
                bk.set_tag(lane, 0);
                self.len -= 1;
                self.version = self.version.wrapping_add(1);
                let mut x = home;
                while x != b {
                    let o = self.buckets[x].over();
                    self.buckets[x].set_over(o - 1);
                    x = (x + 1) & self.mask;
                }
                return true;
            }
            if bk.over() == 0 {
                return false;
            }
            b = (b + 1) & self.mask;
        }
    }

    /// Insert `e` (not already present) with `hash`. `rehash` gives the hash of any stored
    /// entry, for growing.
    pub(super) fn insert(&mut self, hash: u64, e: u32, rehash: impl Fn(u32) -> u64) {
        if (self.len + 1) * 8 > self.buckets.len() * WAYS * 7 {
            self.grow(&rehash);
        }
        Self::place(&mut self.buckets, self.mask, hash, e);
        self.len += 1;
        self.version = self.version.wrapping_add(1);
    }

    fn place(buckets: &mut [Bucket], mask: usize, hash: u64, e: u32) {
        #[allow(clippy::cast_possible_truncation)] // INVARIANT: masked to the bucket count.
        let mut b = hash as usize & mask;
        loop {
            let bk = &mut buckets[b];
            if let Some(lane) = bk.free_lane() {
                bk.set_tag(lane, tag_of(hash));
                bk.ents[lane] = e;
                return;
            }
            bk.set_over(bk.over() + 1);
            b = (b + 1) & mask;
        }
    }

    /// Double the bucket array and re-place every entry.
    #[cold]
    fn grow(&mut self, rehash: &impl Fn(u32) -> u64) {
        let n = self.buckets.len() * 2;
        let mut next = vec![Bucket::default(); n];
        for bk in &self.buckets {
            for lane in 0..WAYS {
                if bk.tag(lane) != 0 {
                    let e = bk.ents[lane];
                    Self::place(&mut next, n - 1, rehash(e), e);
                }
            }
        }
        self.buckets = next;
        self.mask = n - 1;
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn bucket_is_one_line() {
        assert_eq!(size_of::<Bucket>(), 64);
        assert_eq!(align_of::<Bucket>(), 64);
    }

    #[test]
    fn zero_lanes_are_exact() {
        // Lane 0 zero, lane 1 = 1 (a borrow would flag it), lane 2 = 0x8000, lane 3 = 0.
        assert_eq!(zero_lanes(0x0000_8000_0001_0000), 0x8000_0000_0000_8000);
        assert_eq!(zero_lanes(0), HIGH);
        assert_eq!(zero_lanes(u64::MAX), 0);
        for v in [1u64, 0x7fff, 0x8000, 0xffff, 0x0100] {
            for lane in 0..4 {
                let w = v << (16 * lane);
                assert_eq!(zero_lanes(w), HIGH & !(0x8000 << (16 * lane)), "{w:#x}");
            }
        }
        let mut b = Bucket::default();
        b.set_tag(1, 1);
        assert_eq!(b.free_lane(), Some(0));
        b.set_tag(0, 7);
        assert_eq!(b.free_lane(), Some(2));
        assert_eq!(b.tag(0), 7);
        assert_eq!(b.tag(1), 1);
        // The overflow count shares the third tag word: its halves never look like lanes.
        for l in 2..WAYS {
            b.set_tag(l, 0x0101);
        }
        b.set_over(0x0101_0000);
        assert_eq!(b.free_lane(), None);
        assert_eq!(b.lanes_of(2, 0x0101), 0x8000_8000);
        b.set_tag(9, 0);
        assert_eq!(b.free_lane(), Some(9));
        assert_eq!(b.over(), 0x0101_0000);
        assert_eq!(b.tag(8), 0x0101);
    }

    /// The hash of test entry `e` in a tiny hash space, so buckets overflow and chains cross
    /// the end of the array.
    fn h(e: u32, spread: u32) -> u64 {
        let x = u64::from(e % spread);
        // Home bucket from the low bits, tags from the top: few distinct tags too.
        (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) & 0xffff_0000_0000_0000) | (x % 5)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Any sequence of inserts and removes: `find` and `len` agree with a map, and every
        /// remove of a present entry succeeds exactly once.
        #[test]
        fn matches_a_map(ops in prop::collection::vec((any::<bool>(), 0u32..300), 1..600),
                         spread in 1u32..40, cap in 0usize..40) {
            let mut ix = ConnIndex::with_capacity(cap);
            let mut model: HashMap<u32, u64> = HashMap::new();
            for (ins, e) in ops {
                let hash = h(e, spread);
                if ins {
                    if let std::collections::hash_map::Entry::Vacant(v) = model.entry(e) {
                        ix.insert(hash, e, |x| h(x, spread));
                        v.insert(hash);
                    }
                } else {
                    prop_assert_eq!(ix.remove(hash, e), model.remove(&e).is_some());
                }
                prop_assert_eq!(ix.len(), model.len());
            }
            for e in 0..300 {
                let found = ix.find(h(e, spread), |x| x == e);
                prop_assert_eq!(found, model.contains_key(&e).then_some(e));
            }
            // Every overflow count returns to zero once everything is removed.
            for (e, hash) in model.drain() {
                prop_assert!(ix.remove(hash, e));
            }
            prop_assert_eq!(ix.len(), 0);
            prop_assert!(ix.buckets.iter().all(|b| b.tags == [0, 0, 0]));
        }
    }

    #[test]
    fn grows_past_capacity_and_clears() {
        let mut ix = ConnIndex::with_capacity(4);
        let before = ix.allocation_size();
        for e in 0..10_000u32 {
            ix.insert(u64::from(e).wrapping_mul(0x9e37_79b9_7f4a_7c15), e, |x| {
                u64::from(x).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            });
        }
        assert!(ix.allocation_size() > before);
        for e in 0..10_000u32 {
            let hash = u64::from(e).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            assert_eq!(ix.find(hash, |x| x == e), Some(e));
        }
        ix.clear();
        assert_eq!(ix.len(), 0);
        assert_eq!(ix.find(0, |_| true), None);
    }
}
