//! The internet checksum (RFC 1071), pseudo-header sums, and RFC 1624 incremental updates.
//!
//! Sums here are one's complement sums folded to 16 bits and *not* complemented; a checksum
//! field holds the complement of a sum ([`checksum`]). A buffer verifies when its sum
//! (checksum field included) is `0xffff`.
//!
//! Incremental updates follow RFC 1624 equation 3, `HC' = ~(~HC + ~m + m')`, which keeps the
//! result equal to a full recompute (eqn. 2 of RFC 1141 could produce the `0x0000` form where
//! a recompute gives `0xffff`). A NAT rewrite changes an address or a port that is covered both
//! by the IP header checksum and by the TCP/UDP pseudo-header: the caller updates each
//! checksum it covers.
//!
//! Never: reinterpret `[u8]` as `[u16]` (alignment is not guaranteed and there is no safety
//! argument for it); every word is read with `from_be_bytes`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Fold a wide one's complement accumulator to 16 bits (end-around carries).
///
/// Branchless: 64 -> 33 bits, then three 16-bit folds (< 2^18, then <= 0x1_0001, then
/// <= 0xffff), whatever the input. PERF: the former `while acc >> 16 != 0` loop showed as ~39
/// instructions per packet, with data-dependent branches, in the callgrind profile of
/// examples/pipeline_cost.
#[inline(always)]
#[allow(clippy::cast_possible_truncation)] // the last fold leaves at most 16 significant bits
const fn fold(acc: u64) -> u16 {
    let a = (acc & 0xffff_ffff) + (acc >> 32);
    let a = (a & 0xffff) + (a >> 16);
    let a = (a & 0xffff) + (a >> 16);
    let a = (a & 0xffff) + (a >> 16);
    a as u16
}

/// [`fold`] for callers that sum 32-bit words themselves (the fast path's header check).
#[inline(always)]
#[must_use]
pub const fn fold64(acc: u64) -> u16 {
    fold(acc)
}

/// One's complement sum of `data` as big-endian 16-bit words (an odd last byte is padded with
/// zero), folded to 16 bits, not complemented.
///
/// Why this loop is fast and still right: because 2^16 = 1 (mod 2^16 - 1), the one's complement
/// sum of 16-bit words equals the folded sum of the same bytes read as big-endian 32-bit words.
/// We add 32-bit words into a 64-bit accumulator, which cannot overflow for any buffer below
/// 16 GiB, so the loop body has no carry handling and no data-dependent branch; reading four
/// words per iteration from `chunks_exact` lets the compiler drop the bounds checks and
/// vectorise. The carries are folded once at the end.
#[inline]
#[must_use]
pub fn data(data: &[u8]) -> u16 {
    let mut a0: u64 = 0;
    let mut a1: u64 = 0;
    let mut blocks = data.chunks_exact(16);
    for b in &mut blocks {
        a0 += u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        a1 += u64::from(u32::from_be_bytes([b[4], b[5], b[6], b[7]]));
        a0 += u64::from(u32::from_be_bytes([b[8], b[9], b[10], b[11]]));
        a1 += u64::from(u32::from_be_bytes([b[12], b[13], b[14], b[15]]));
    }
    let mut acc = a0 + a1;
    let mut words = blocks.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold(acc)
}

/// One's complement addition of two folded sums: `fold(a + b)` in one step (`a + b` is below
/// 2^17, so one end-around carry leaves at most 16 bits).
#[inline(always)]
#[must_use]
#[allow(clippy::cast_possible_truncation)] // INVARIANT: at most 0xffff after the fold
pub const fn add(a: u16, b: u16) -> u16 {
    let s = a as u32 + b as u32;
    ((s & 0xffff) + (s >> 16)) as u16
}

/// One's complement sum of several folded sums.
#[inline]
#[must_use]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The checksum field value for `data` (the complement of its sum).
#[inline]
#[must_use]
pub fn checksum(data_: &[u8]) -> u16 {
    !data(data_)
}

/// Sum of the IPv4 pseudo-header (RFC 793/768): source, destination, zero+protocol, length.
#[inline]
#[must_use]
pub fn pseudo_v4(src: &Ipv4Addr, dst: &Ipv4Addr, proto: u8, len: u16) -> u16 {
    let acc =
        u64::from(src.to_bits()) + u64::from(dst.to_bits()) + u64::from(proto) + u64::from(len);
    fold(acc)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 section 8.1): source, destination, upper-layer length
/// (32 bits), three zero bytes and the next header.
#[inline]
#[must_use]
pub fn pseudo_v6(src: &Ipv6Addr, dst: &Ipv6Addr, proto: u8, len: u32) -> u16 {
    let acc = u64::from(data(&src.octets()))
        + u64::from(data(&dst.octets()))
        + u64::from(proto)
        + u64::from(len >> 16)
        + u64::from(len & 0xffff);
    fold(acc)
}

/// Pseudo-header sum for either family; `None` when the two addresses differ in family.
#[inline]
#[must_use]
pub fn pseudo(src: &IpAddr, dst: &IpAddr, proto: u8, len: u32) -> Option<u16> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(pseudo_v4(s, d, proto, u16::try_from(len).ok()?)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(pseudo_v6(s, d, proto, len)),
        _ => None,
    }
}

/// RFC 1624 eqn. 3: the checksum field `csum` after a covered 16-bit word changed from `old`
/// to `new`.
#[inline]
#[must_use]
pub const fn update16(csum: u16, old: u16, new: u16) -> u16 {
    !fold(!csum as u64 + !old as u64 + new as u64)
}

/// The checksum field after a covered, 16-bit aligned 32-bit value (an IPv4 address, a sequence
/// number) changed from `old` to `new`.
#[inline]
#[must_use]
pub const fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let acc = !csum as u64
        + (!(old >> 16) & 0xffff) as u64
        + (!old & 0xffff) as u64
        + (new >> 16) as u64
        + (new & 0xffff) as u64;
    !fold(acc)
}

/// The checksum field after covered, 16-bit aligned bytes changed from `old` to `new` (same
/// length, even; an odd last byte is treated as the high byte of a zero-padded word).
#[inline]
#[must_use]
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    // ~m + m' summed over the words: the sum of new minus the sum of old, in one's complement.
    let acc = u64::from(!csum) + u64::from(!data(old)) + u64::from(data(new));
    !fold(acc)
}

/// The checksum field after a covered IPv6 address changed from `old` to `new`.
#[inline]
#[must_use]
pub fn update_v6(csum: u16, old: &Ipv6Addr, new: &Ipv6Addr) -> u16 {
    update_bytes(csum, &old.octets(), &new.octets())
}

/// The one's complement difference `new - old` of a covered 32-bit value, folded: feed it to
/// [`apply`]. Computing the difference once lets one rewrite update several checksums (the
/// IPv4 header and the TCP/UDP pseudo-header both cover the addresses).
#[inline(always)]
#[must_use]
pub const fn diff32(old: u32, new: u32) -> u16 {
    fold(
        (!(old >> 16) & 0xffff) as u64
            + (!old & 0xffff) as u64
            + (new >> 16) as u64
            + (new & 0xffff) as u64,
    )
}

/// The one's complement difference `new - old` of a covered 16-bit value.
#[inline(always)]
#[must_use]
pub const fn diff16(old: u16, new: u16) -> u16 {
    fold(!old as u64 + new as u64)
}

/// The one's complement difference `new - old` of covered, 16-bit aligned bytes of equal
/// (even) length.
#[inline]
#[must_use]
pub fn diff_bytes(old: &[u8], new: &[u8]) -> u16 {
    add(!data(old), data(new))
}

/// Apply a difference from [`diff16`]/[`diff32`]/[`diff_bytes`] (or several, combined with
/// [`add`]) to a checksum field: RFC 1624 eqn. 3, `HC' = ~(~HC + (m' - m))`.
#[inline(always)]
#[must_use]
pub const fn apply(csum: u16, diff: u16) -> u16 {
    !fold(!csum as u64 + diff as u64)
}

/// The checksum field after a covered address changed (both addresses of one family; mixed
/// families leave `csum` unchanged, which cannot happen for one rewritten field).
#[inline]
#[must_use]
pub fn update_addr(csum: u16, old: &IpAddr, new: &IpAddr) -> u16 {
    match (old, new) {
        (IpAddr::V4(o), IpAddr::V4(n)) => update32(csum, o.to_bits(), n.to_bits()),
        (IpAddr::V6(o), IpAddr::V6(n)) => update_v6(csum, o, n),
        _ => csum,
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: RFC 1071 word-by-word sum.
    fn naive(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for w in data.chunks(2) {
            let v = if w.len() == 2 {
                u16::from_be_bytes([w[0], w[1]])
            } else {
                u16::from(w[0]) << 8
            };
            acc += u32::from(v);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn add_is_fold_of_the_sum() {
        for a in (0..=0xffffu32).step_by(97).chain([0xfffe, 0xffff]) {
            for b in (0..=0xffffu32).step_by(89).chain([0, 1, 0xffff]) {
                assert_eq!(
                    u32::from(add(a as u16, b as u16)),
                    u32::from(fold(u64::from(a + b))),
                    "{a:#x} + {b:#x}"
                );
            }
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn ipv4_header_checksum() {
        // A real IPv4 header (checksum 0xb861 at bytes 10..12).
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(data(&h), 0xffff);
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(checksum(&z), 0xb861);
    }

    fn put_word(b: &mut [u8], at: usize, v: &[u8]) {
        b[at..at + v.len()].copy_from_slice(v);
    }

    proptest! {
        #[test]
        fn fast_sum_equals_naive(d in proptest::collection::vec(any::<u8>(), 0..1600)) {
            prop_assert_eq!(data(&d), naive(&d));
        }

        #[test]
        fn update16_equals_recompute(mut d in proptest::collection::vec(any::<u8>(), 4..200),
                                     idx in any::<prop::sample::Index>(), new in any::<u16>()) {
            let at = idx.index(d.len() / 2) * 2;
            let old = u16::from_be_bytes([d[at], d[at + 1]]);
            let csum = checksum(&d);
            put_word(&mut d, at, &new.to_be_bytes());
            prop_assert_eq!(update16(csum, old, new), checksum(&d));
        }

        #[test]
        fn update32_equals_recompute(mut d in proptest::collection::vec(any::<u8>(), 8..200),
                                     idx in any::<prop::sample::Index>(), new in any::<u32>()) {
            let at = idx.index(d.len() / 2 - 1) * 2;
            let old = u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]);
            let csum = checksum(&d);
            put_word(&mut d, at, &new.to_be_bytes());
            prop_assert_eq!(update32(csum, old, new), checksum(&d));
        }

        #[test]
        fn update_v6_equals_recompute(mut d in proptest::collection::vec(any::<u8>(), 40..200),
                                      idx in any::<prop::sample::Index>(), new in any::<[u8; 16]>()) {
            let at = idx.index(d.len() / 2 - 7) * 2;
            let mut o = [0u8; 16];
            o.copy_from_slice(&d[at..at + 16]);
            let csum = checksum(&d);
            put_word(&mut d, at, &new);
            let want = checksum(&d);
            prop_assert_eq!(update_v6(csum, &Ipv6Addr::from(o), &Ipv6Addr::from(new)), want);
            prop_assert_eq!(update_bytes(csum, &o, &new), want);
        }

        #[test]
        fn diff_apply_equals_recompute(mut d in proptest::collection::vec(any::<u8>(), 24..200),
                                       idx in any::<prop::sample::Index>(), a in any::<u32>(), p in any::<u16>()) {
            // Change a 32-bit value and the 16-bit value after it, as a NAT rewrite of an
            // address and a port does, through one combined difference.
            let at = idx.index(d.len() / 2 - 3) * 2;
            let old_a = u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]);
            let old_p = u16::from_be_bytes([d[at + 4], d[at + 5]]);
            let csum = checksum(&d);
            put_word(&mut d, at, &a.to_be_bytes());
            put_word(&mut d, at + 4, &p.to_be_bytes());
            let got = apply(csum, add(diff32(old_a, a), diff16(old_p, p)));
            let want = checksum(&d);
            // Equal, up to the two encodings of zero.
            prop_assert!(got == want || (got | want == 0xffff && got & want == 0), "{got:#x} {want:#x}");
        }

        #[test]
        fn pseudo_matches_bytes(s in any::<[u8; 16]>(), t in any::<[u8; 16]>(), p in any::<u8>(), l in any::<u32>()) {
            let mut b = Vec::new();
            b.extend_from_slice(&s);
            b.extend_from_slice(&t);
            b.extend_from_slice(&l.to_be_bytes());
            b.extend_from_slice(&[0, 0, 0, p]);
            prop_assert_eq!(pseudo_v6(&Ipv6Addr::from(s), &Ipv6Addr::from(t), p, l), data(&b));
            let (s4, t4) = ([s[0], s[1], s[2], s[3]], [t[0], t[1], t[2], t[3]]);
            let l16 = (l & 0xffff) as u16;
            let mut b4 = Vec::new();
            b4.extend_from_slice(&s4);
            b4.extend_from_slice(&t4);
            b4.extend_from_slice(&[0, p]);
            b4.extend_from_slice(&l16.to_be_bytes());
            prop_assert_eq!(pseudo_v4(&Ipv4Addr::from(s4), &Ipv4Addr::from(t4), p, l16), data(&b4));
        }
    }
}
