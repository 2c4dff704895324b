//! UDP headers (RFC 768).
//!
//! `check_len` validates 8 <= length field <= buffer length; [`UdpPacket::payload`] stops at
//! the length field. Over IPv4 a checksum of 0 means "none" and verifies; a computed checksum
//! of 0 is sent as `0xffff`.

use std::net::IpAddr;

use super::checksum;
use super::{Error, Result, be16, put16};
use crate::flow::proto;

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const LENGTH: usize = 4;
    pub(super) const CHECKSUM: usize = 6;
}

/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;
/// Header length.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
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

    /// Check 8 <= length field <= buffer length.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let l = usize::from(self.len());
        if l < HEADER_LEN || l > len {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }
    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// Length field (header + payload).
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Whether the length field says there is no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }
    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
    /// Whether the checksum verifies (a zero checksum over IPv4 does: it means none).
    #[inline]
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if src.is_ipv4() && self.checksum() == 0 {
            return true;
        }
        let b = &self.buffer.as_ref()[..usize::from(self.len())];
        checksum::pseudo(src, dst, proto::UDP, u32::from(self.len()))
            .is_some_and(|p| checksum::add(p, checksum::data(b)) == 0xffff)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Set the source port (checksum untouched).
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    /// Set the destination port (checksum untouched).
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    /// Set the length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }
    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Compute the checksum over the datagram (to the length field) with the pseudo-header.
    /// May panic on an unchecked buffer shorter than the length field.
    #[inline]
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let l = self.len();
        let p = checksum::pseudo(src, dst, proto::UDP, u32::from(l)).unwrap_or(0);
        let c = !checksum::add(p, checksum::data(&self.buffer.as_ref()[..usize::from(l)]));
        // A computed zero is sent as all ones: zero means "no checksum" (RFC 768).
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
    /// Payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }
}

/// The fields of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parse a checked datagram, verifying its checksum.
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>, src: &IpAddr, dst: &IpAddr) -> Result<Self> {
        p.check_len()?;
        if !p.verify_checksum(src, dst) {
            return Err(Error);
        }
        Ok(Self {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }

    /// Header length.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header of a datagram of `payload_len` bytes (payload already in place) and
    /// fill the checksum (`csum` false leaves 0, allowed only over IPv4).
    #[allow(clippy::cast_possible_truncation)] // datagrams here are below 64 KiB
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut UdpPacket<T>,
        payload_len: usize,
        src: &IpAddr,
        dst: &IpAddr,
        csum: bool,
    ) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len((HEADER_LEN + payload_len) as u16);
        if csum {
            p.fill_checksum(src, dst);
        } else {
            p.set_checksum(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    static DGRAM: [u8; 12] = [0x30, 0x39, 0x00, 0x35, 0x00, 0x0b, 0x00, 0x00, 1, 2, 3, 0];

    #[test]
    fn deconstruct() {
        let p = UdpPacket::new_checked(&DGRAM[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (12345, 53, 11));
        assert_eq!(p.payload(), &[1, 2, 3]);
        let (s, d) = (
            IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)),
            IpAddr::V4(Ipv4Addr::new(2, 2, 2, 2)),
        );
        assert!(p.verify_checksum(&s, &d)); // zero: none
        let mut b = DGRAM;
        let mut m = UdpPacket::new_unchecked(&mut b[..]);
        m.fill_checksum(&s, &d);
        assert!(m.verify_checksum(&s, &d));
        let e = etherparse::UdpHeaderSlice::from_slice(&b)
            .unwrap()
            .to_header();
        assert_eq!(
            e.calc_checksum_ipv4_raw([1, 1, 1, 1], [2, 2, 2, 2], &[1, 2, 3])
                .unwrap(),
            e.checksum
        );
    }

    #[test]
    fn bad_length() {
        let mut b = DGRAM;
        b[5] = 7;
        assert!(UdpPacket::new_checked(&b[..]).is_err());
        b[5] = 13;
        assert!(UdpPacket::new_checked(&b[..]).is_err());
        assert!(UdpPacket::new_checked(&DGRAM[..7]).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(sp in any::<u16>(), dp in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..64),
                     s in any::<[u8; 4]>(), d in any::<[u8; 4]>()) {
            let r = UdpRepr { src_port: sp, dst_port: dp };
            let (si, di) = (IpAddr::from(s), IpAddr::from(d));
            let mut b = vec![0u8; 8 + payload.len()];
            b[8..].copy_from_slice(&payload);
            r.emit(&mut UdpPacket::new_unchecked(&mut b[..]), payload.len(), &si, &di, true);
            prop_assert!(UdpPacket::new_unchecked(&b[..]).checksum() != 0);
            prop_assert_eq!(UdpRepr::parse(&UdpPacket::new_checked(&b[..]).unwrap(), &si, &di).unwrap(), r);
        }
    }
}
