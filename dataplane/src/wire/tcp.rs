//! TCP headers (RFC 9293). Options are skipped, never interpreted.
//!
//! `check_len` validates 20 <= data offset * 4 <= buffer length. The buffer is taken to be the
//! whole segment (the IP layer cuts it at the IP payload length), which is what the checksum
//! covers.

use std::net::IpAddr;

use super::checksum;
use super::{Error, Result, be16, be32, put16, put32};
use crate::flow::proto;

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const SEQ: usize = 4;
    pub(super) const ACK: usize = 8;
    pub(super) const OFF: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WINDOW: usize = 14;
    pub(super) const CHECKSUM: usize = 16;
    pub(super) const URGENT: usize = 18;
}

/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;
/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// TCP flag bits (byte 13).
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;
}

/// A view of a TCP segment.
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
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

    /// Check 20 <= header length <= buffer length.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN || hl > len {
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
    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }
    /// Acknowledgement number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }
    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFF] >> 4) * 4
    }
    /// The flag byte ([`flags`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    /// Window.
    #[inline]
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }
    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Urgent pointer.
    #[inline]
    pub fn urgent(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }
    /// Options bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// Payload.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// Whether the checksum verifies with the pseudo-header of `src`/`dst` (false for mixed
    /// families).
    #[inline]
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u32::try_from(b.len()) else {
            return false;
        };
        checksum::pseudo(src, dst, proto::TCP, len)
            .is_some_and(|p| checksum::add(p, checksum::data(b)) == 0xffff)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
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
    /// Set the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::SEQ, v);
    }
    /// Set the acknowledgement number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::ACK, v);
    }
    /// Set the header length in bytes (a multiple of 4, 20..=60).
    #[inline]
    #[allow(clippy::cast_possible_truncation)] // header_len <= 60 by contract
    pub fn set_header_len(&mut self, v: usize) {
        let b = self.buffer.as_mut();
        b[field::OFF] = ((v / 4) as u8) << 4 | (b[field::OFF] & 0x0f);
    }
    /// Set the flag byte.
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }
    /// Set the window.
    #[inline]
    pub fn set_window(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::WINDOW, v);
    }
    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Set the urgent pointer.
    #[inline]
    pub fn set_urgent(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::URGENT, v);
    }
    /// Compute the checksum over the whole buffer with the pseudo-header of `src`/`dst`.
    #[inline]
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let len = u32::try_from(b.len()).unwrap_or(0);
        let p = checksum::pseudo(src, dst, proto::TCP, len).unwrap_or(0);
        let c = !checksum::add(p, checksum::data(b));
        self.set_checksum(c);
    }
    /// Payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

/// The fields of an option-less TCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flag byte.
    pub flags: u8,
    /// Window.
    pub window: u16,
}

impl TcpRepr {
    /// Parse a checked segment, verifying its checksum against `src`/`dst`.
    pub fn parse<T: AsRef<[u8]>>(p: &TcpPacket<T>, src: &IpAddr, dst: &IpAddr) -> Result<Self> {
        p.check_len()?;
        if !p.verify_checksum(src, dst) {
            return Err(Error);
        }
        Ok(Self {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq_number(),
            ack: p.ack_number(),
            flags: p.flags(),
            window: p.window(),
        })
    }

    /// Header length this emits.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header into a buffer holding header + payload (payload already in place) and
    /// fill the checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut TcpPacket<T>,
        src: &IpAddr,
        dst: &IpAddr,
    ) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq);
        p.set_ack_number(self.ack);
        p.buffer.as_mut()[field::OFF] = 0;
        p.set_header_len(HEADER_LEN);
        p.set_flags(self.flags);
        p.set_window(self.window);
        p.set_urgent(0);
        p.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    // 10.0.0.1:49152 -> 10.0.0.2:80 SYN, seq 1, window 64240, with a 4-byte MSS option.
    static SYN: [u8; 24] = [
        0xc0, 0x00, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xfa, 0xf0, 0, 0, 0, 0, 2, 4,
        5, 0xb4,
    ];

    #[test]
    fn deconstruct_and_checksum() {
        let (s, d) = (
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        );
        let mut b = SYN;
        let mut p = TcpPacket::new_checked(&mut b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (49152, 80));
        assert_eq!(p.seq_number(), 1);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), flags::SYN);
        assert_eq!(p.window(), 64240);
        assert_eq!(p.options(), &[2, 4, 5, 0xb4]);
        assert!(p.payload().is_empty());
        p.fill_checksum(&s, &d);
        assert!(p.verify_checksum(&s, &d));
        let e = etherparse::TcpHeaderSlice::from_slice(&b).unwrap();
        let want = e
            .calc_checksum_ipv4_raw([10, 0, 0, 1], [10, 0, 0, 2], &[])
            .unwrap();
        assert_eq!(TcpPacket::new_unchecked(&b[..]).checksum(), want);
    }

    #[test]
    fn bad_offset() {
        let mut b = SYN;
        b[12] = 0x40; // 16 bytes
        assert!(TcpPacket::new_checked(&b[..]).is_err());
        b[12] = 0x70; // 28 > 24
        assert!(TcpPacket::new_checked(&b[..]).is_err());
        assert!(TcpPacket::new_checked(&SYN[..19]).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(), ack in any::<u32>(), fl in any::<u8>(),
                     window in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..64),
                     s6 in any::<[u8; 16]>(), d6 in any::<[u8; 16]>()) {
            let r = TcpRepr { src_port: sp, dst_port: dp, seq, ack, flags: fl, window };
            let (s, d) = (IpAddr::V6(Ipv6Addr::from(s6)), IpAddr::V6(Ipv6Addr::from(d6)));
            let mut b = vec![0u8; 20 + payload.len()];
            b[20..].copy_from_slice(&payload);
            r.emit(&mut TcpPacket::new_unchecked(&mut b[..]), &s, &d);
            prop_assert_eq!(TcpRepr::parse(&TcpPacket::new_checked(&b[..]).unwrap(), &s, &d).unwrap(), r);
            let e = etherparse::TcpHeaderSlice::from_slice(&b).unwrap();
            prop_assert_eq!(e.calc_checksum_ipv6_raw(s6, d6, &payload).unwrap(), e.checksum());
        }
    }
}
