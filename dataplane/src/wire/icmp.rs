//! ICMP for IPv4 (RFC 792): the header, and the errors that quote an IP packet.
//!
//! The checksum covers the whole ICMP message (no pseudo-header). Error messages carry the
//! quoted packet (its IP header and at least 8 bytes of its payload) after an 8-byte header;
//! for "fragmentation needed" the next-hop MTU sits in bytes 6..8 (RFC 1191).

use super::checksum;
use super::{Error, Result, be16, be32, put16, put32};

mod field {
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: usize = 2;
    pub(super) const REST: usize = 4;
    pub(super) const MTU: usize = 6;
}

/// Header length (type, code, checksum, rest-of-header).
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// ICMP types.
pub mod msg {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 3;
    /// Source quench (deprecated, still an error).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;
}

/// Destination-unreachable codes.
pub mod unreach {
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set.
    pub const FRAG_NEEDED: u8 = 4;
}

/// Whether an ICMP type is an error that quotes a packet (the kernel's `icmp_is_err` set,
/// which is the set IPVS translates).
#[inline]
#[must_use]
pub const fn is_error(t: u8) -> bool {
    matches!(
        t,
        msg::DEST_UNREACH
            | msg::SOURCE_QUENCH
            | msg::REDIRECT
            | msg::TIME_EXCEEDED
            | msg::PARAM_PROBLEM
    )
}

/// A view of an ICMPv4 message.
#[derive(Debug, Clone, Copy)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
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

    /// Check the 8-byte header fits.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
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

    /// Type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// Code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Bytes 4..8 as a u32 (identifier+sequence, unused, gateway, pointer, ...).
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        be32(self.buffer.as_ref(), field::REST)
    }
    /// Echo identifier (bytes 4..6).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::REST)
    }
    /// Next-hop MTU of a fragmentation-needed message (bytes 6..8).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::MTU)
    }
    /// Everything after the 8-byte header (the quoted packet of an error).
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// Whether the checksum over the whole buffer verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Set the type.
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    /// Set the code.
    #[inline]
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Set bytes 4..8.
    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::REST, v);
    }
    /// Set the next-hop MTU (and zero the unused bytes 4..6).
    #[inline]
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        self.set_rest_of_header(u32::from(v));
    }
    /// Compute the checksum over the whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
    /// Data after the header, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Port unreachable quoting a 28-byte UDP/IPv4 packet (checksum filled by the test).
    static UNREACH: [u8; 16] = [3, 3, 0, 0, 0, 0, 0, 0, 0x45, 0, 0, 28, 0, 0, 0, 0];

    #[test]
    fn deconstruct_construct() {
        let mut b = UNREACH;
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.msg_code()),
            (msg::DEST_UNREACH, unreach::PORT)
        );
        assert!(is_error(p.msg_type()));
        assert!(!is_error(msg::ECHO_REQUEST));
        assert_eq!(p.data()[0], 0x45);
        p.set_msg_code(unreach::FRAG_NEEDED);
        p.set_next_hop_mtu(1400);
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.next_hop_mtu(), 1400);
        let e = etherparse::Icmpv4Slice::from_slice(&b).unwrap();
        assert_eq!(e.checksum(), Icmpv4Packet::new_unchecked(&b[..]).checksum());
        assert_eq!(
            e.icmp_type(),
            etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1400
                }
            )
        );
        assert_eq!(e.icmp_type().calc_checksum(e.payload()), e.checksum());
        assert!(Icmpv4Packet::new_checked(&b[..7]).is_err());
    }
}
