//! IPv4 headers (RFC 791), options included (they are skipped, never interpreted).
//!
//! `check_len` validates the version-independent lengths: the buffer holds 20 bytes, IHL >= 5,
//! the header fits in the total length and the total length fits in the buffer. A buffer may be
//! longer than the total length (Ethernet padding): [`Ipv4Packet::payload`] stops at the total
//! length.

use std::net::Ipv4Addr;

use super::checksum;
use super::{Error, Result, arr4, be16, put16};

mod field {
    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: usize = 2;
    pub(super) const IDENT: usize = 4;
    pub(super) const FLG_OFF: usize = 6;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: usize = 10;
    pub(super) const SRC: usize = 12;
    pub(super) const DST: usize = 16;
}

/// Offset of the checksum field (for incremental updates by callers).
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;
/// Offset of the source address.
pub const SRC_OFFSET: usize = field::SRC;
/// Offset of the destination address.
pub const DST_OFFSET: usize = field::DST;
/// Offset of the TTL.
pub const TTL_OFFSET: usize = field::TTL;
/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap a buffer without checks.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap a buffer and check it with [`Self::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Check 20 <= IHL*4 <= total length <= buffer length.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        if hl < HEADER_LEN || tl < hl || tl > len {
            return Err(Error);
        }
        Ok(())
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (4 for IPv4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }
    /// DSCP and ECN (the former TOS byte).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }
    /// Total length.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }
    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.buffer.as_ref()[field::FLG_OFF] & 0x40 != 0
    }
    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.buffer.as_ref()[field::FLG_OFF] & 0x20 != 0
    }
    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF) & 0x1fff) << 3
    }
    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }
    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(arr4(self.buffer.as_ref(), field::SRC))
    }
    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(arr4(self.buffer.as_ref(), field::DST))
    }
    /// The options bytes (empty without options).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// Whether the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(&self.buffer.as_ref()[..self.header_len()]) == 0xffff
    }
    /// The payload: from the end of the header to the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Set version 4 and the header length in bytes (a multiple of 4, 20..=60).
    #[inline]
    #[allow(clippy::cast_possible_truncation)] // header_len <= 60 by contract
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }
    /// Set DSCP/ECN.
    #[inline]
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }
    /// Set the total length.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }
    /// Set the identification.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::IDENT, v);
    }
    /// Set flags and fragment offset: DF, MF, offset in bytes (a multiple of 8).
    #[inline]
    pub fn set_frag(&mut self, df: bool, mf: bool, offset: u16) {
        let v = (u16::from(df) << 14) | (u16::from(mf) << 13) | ((offset >> 3) & 0x1fff);
        put16(self.buffer.as_mut(), field::FLG_OFF, v);
    }
    /// Set the TTL.
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }
    /// Set the protocol.
    #[inline]
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }
    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Set the source address (checksums untouched).
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 4].copy_from_slice(&a.octets());
    }
    /// Set the destination address (checksums untouched).
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 4].copy_from_slice(&a.octets());
    }
    /// Recompute the header checksum from scratch.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(c);
    }
    /// Set the source address and update the header checksum incrementally.
    #[inline]
    pub fn rewrite_src(&mut self, a: Ipv4Addr) {
        let c = checksum::update32(self.checksum(), self.src_addr().to_bits(), a.to_bits());
        self.set_src_addr(a);
        self.set_checksum(c);
    }
    /// Set the destination address and update the header checksum incrementally.
    #[inline]
    pub fn rewrite_dst(&mut self, a: Ipv4Addr) {
        let c = checksum::update32(self.checksum(), self.dst_addr().to_bits(), a.to_bits());
        self.set_dst_addr(a);
        self.set_checksum(c);
    }
    /// Decrement the TTL and update the checksum incrementally; returns the new TTL. Call only
    /// with a TTL above zero.
    #[inline]
    pub fn decrement_ttl(&mut self) -> u8 {
        let b = self.buffer.as_ref();
        let old = be16(b, field::TTL);
        let ttl = b[field::TTL].saturating_sub(1);
        let new = (u16::from(ttl) << 8) | (old & 0x00ff);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_ttl(ttl);
        self.set_checksum(c);
        ttl
    }
    /// The payload, writable (to the total length).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[h..t]
    }
}

/// The fields of an option-less IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length (total length - header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP/ECN.
    pub dscp_ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub df: bool,
}

impl Ipv4Repr {
    /// Parse a checked packet: version 4, valid header checksum, not a fragment. Options are
    /// skipped.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Self> {
        p.check_len()?;
        if p.version() != 4 || !p.verify_checksum() || p.more_frags() || p.frag_offset() != 0 {
            return Err(Error);
        }
        Ok(Self {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: usize::from(p.total_len()) - p.header_len(),
            ttl: p.ttl(),
            dscp_ecn: p.dscp_ecn(),
            ident: p.ident(),
            df: p.dont_frag(),
        })
    }

    /// Length of the header this emits.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write a 20-byte header with a correct checksum. `payload_len + 20` must fit in a u16.
    #[allow(clippy::cast_possible_truncation)] // documented precondition
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv4Packet<T>) {
        p.set_version_and_header_len(HEADER_LEN);
        p.set_dscp_ecn(self.dscp_ecn);
        p.set_total_len((HEADER_LEN + self.payload_len) as u16);
        p.set_ident(self.ident);
        p.set_frag(self.df, false, 0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // 192.168.0.1 -> 192.168.0.199, UDP, 24-byte header with a NOP/EOL option word, 4 payload bytes.
    static WITH_OPT: [u8; 28] = [
        0x46, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7, 0x01, 0x01, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef,
    ];

    fn with_csum() -> [u8; 30] {
        let mut b = [0u8; 30]; // 2 bytes of trailing padding
        b[..28].copy_from_slice(&WITH_OPT);
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn deconstruct() {
        let b = with_csum();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(p.verify_checksum());
        let e = etherparse::Ipv4HeaderSlice::from_slice(&b).unwrap();
        assert_eq!(e.header_checksum(), p.checksum());
    }

    #[test]
    fn bad_lengths() {
        let mut b = with_csum();
        assert!(Ipv4Packet::new_checked(&b[..27]).is_err()); // total length > buffer
        b[0] = 0x44; // IHL 4
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
        b[0] = 0x4f; // IHL 15 = 60 > total 28
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
        assert!(Ipv4Packet::new_checked(&b[..19]).is_err());
    }

    #[test]
    fn incremental_rewrite_and_ttl() {
        let mut b = with_csum();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.rewrite_dst(Ipv4Addr::new(10, 1, 2, 3));
        p.rewrite_src(Ipv4Addr::new(172, 16, 9, 9));
        assert_eq!(p.decrement_ttl(), 63);
        assert!(p.verify_checksum());
    }

    proptest! {
        #[test]
        fn roundtrip(src in any::<u32>(), dst in any::<u32>(), protocol in any::<u8>(), payload_len in 0usize..100,
                     ttl in any::<u8>(), dscp_ecn in any::<u8>(), ident in any::<u16>(), df in any::<bool>()) {
            let r = Ipv4Repr { src: src.into(), dst: dst.into(), protocol, payload_len, ttl, dscp_ecn, ident, df };
            let mut b = vec![0u8; 20 + payload_len];
            r.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]));
            prop_assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
            let e = etherparse::Ipv4HeaderSlice::from_slice(&b).unwrap();
            prop_assert_eq!(e.to_header().calc_header_checksum(), e.header_checksum());
        }
    }
}
