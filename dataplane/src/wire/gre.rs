//! GRE headers (RFC 2784, with the RFC 2890 key and sequence fields) as IPVS's tunnel mode
//! builds them: version 0, optional checksum, protocol type 0x0800 or 0x86dd.
//!
//! The checksum, when present, covers the GRE header and the whole payload (no
//! pseudo-header).

use super::checksum;
use super::{Error, Result, be16, be32, put16, put32};

mod field {
    pub(super) const FLAGS: usize = 0;
    pub(super) const PROTOCOL: usize = 2;
    pub(super) const CHECKSUM: usize = 4;
}

/// Checksum-present bit.
pub const FLAG_CSUM: u16 = 0x8000;
/// Key-present bit.
pub const FLAG_KEY: u16 = 0x2000;
/// Sequence-present bit.
pub const FLAG_SEQ: u16 = 0x1000;
/// Length of the base header.
pub const BASE_LEN: usize = 4;

/// A view of a GRE packet.
#[derive(Debug, Clone, Copy)]
pub struct GrePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GrePacket<T> {
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

    /// Check the base header and the optional fields its flags announce fit.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < BASE_LEN || self.header_len() > len {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// The flags-and-version word.
    #[inline]
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS)
    }
    /// Version (low 3 bits; 0 for GRE).
    #[inline]
    pub fn version(&self) -> u8 {
        (self.flags() & 0x7) as u8
    }
    /// Checksum present.
    #[inline]
    pub fn has_checksum(&self) -> bool {
        self.flags() & FLAG_CSUM != 0
    }
    /// Key present.
    #[inline]
    pub fn has_key(&self) -> bool {
        self.flags() & FLAG_KEY != 0
    }
    /// Sequence number present.
    #[inline]
    pub fn has_seq(&self) -> bool {
        self.flags() & FLAG_SEQ != 0
    }
    /// Protocol type of the payload (an ethertype).
    #[inline]
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PROTOCOL)
    }
    /// Header length implied by the flags.
    #[inline]
    pub fn header_len(&self) -> usize {
        BASE_LEN
            + 4 * (usize::from(self.has_checksum())
                + usize::from(self.has_key())
                + usize::from(self.has_seq()))
    }
    /// Checksum field, if present.
    #[inline]
    pub fn checksum(&self) -> Option<u16> {
        self.has_checksum()
            .then(|| be16(self.buffer.as_ref(), field::CHECKSUM))
    }
    /// Key, if present.
    #[inline]
    pub fn key(&self) -> Option<u32> {
        let at = BASE_LEN + 4 * usize::from(self.has_checksum());
        self.has_key().then(|| be32(self.buffer.as_ref(), at))
    }
    /// Sequence number, if present.
    #[inline]
    pub fn seq(&self) -> Option<u32> {
        let at = BASE_LEN + 4 * (usize::from(self.has_checksum()) + usize::from(self.has_key()));
        self.has_seq().then(|| be32(self.buffer.as_ref(), at))
    }
    /// Payload.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// Whether the checksum verifies (true when absent).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        !self.has_checksum() || checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GrePacket<T> {
    /// Fill the checksum field (the checksum bit must be set and the header in place).
    #[inline]
    pub fn fill_checksum(&mut self) {
        if self.has_checksum() {
            let b = self.buffer.as_mut();
            put16(b, field::CHECKSUM, 0);
            put16(b, field::CHECKSUM + 2, 0);
            let c = checksum::checksum(b);
            put16(b, field::CHECKSUM, c);
        }
    }
}

/// The fields of a GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreRepr {
    /// Payload protocol type (ethertype).
    pub protocol: u16,
    /// Whether a checksum is present.
    pub csum: bool,
    /// Key.
    pub key: Option<u32>,
    /// Sequence number.
    pub seq: Option<u32>,
}

impl GreRepr {
    /// Parse a checked packet (version 0, checksum verified when present).
    pub fn parse<T: AsRef<[u8]>>(p: &GrePacket<T>) -> Result<Self> {
        p.check_len()?;
        if p.version() != 0 || !p.verify_checksum() {
            return Err(Error);
        }
        Ok(Self {
            protocol: p.protocol(),
            csum: p.has_checksum(),
            key: p.key(),
            seq: p.seq(),
        })
    }

    /// Header length this emits.
    pub const fn header_len(&self) -> usize {
        BASE_LEN
            + 4 * (self.csum as usize + self.key.is_some() as usize + self.seq.is_some() as usize)
    }

    /// Write the header into a buffer holding header + payload (payload in place) and fill
    /// the checksum when enabled.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut GrePacket<T>) {
        let flags = if self.csum { FLAG_CSUM } else { 0 }
            | if self.key.is_some() { FLAG_KEY } else { 0 }
            | if self.seq.is_some() { FLAG_SEQ } else { 0 };
        let b = p.buffer.as_mut();
        put16(b, field::FLAGS, flags);
        put16(b, field::PROTOCOL, self.protocol);
        let mut at = BASE_LEN;
        if self.csum {
            put32(b, at, 0);
            at += 4;
        }
        if let Some(k) = self.key {
            put32(b, at, k);
            at += 4;
        }
        if let Some(s) = self.seq {
            put32(b, at, s);
        }
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    static WITH_CSUM: [u8; 12] = [0x80, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0x45, 0, 0, 20];

    #[test]
    fn deconstruct_construct() {
        let mut b = WITH_CSUM;
        let mut p = GrePacket::new_checked(&mut b[..]).unwrap();
        assert!(p.has_checksum());
        assert_eq!(p.header_len(), 8);
        assert_eq!(p.protocol(), 0x0800);
        assert_eq!(p.payload(), &[0x45, 0, 0, 20]);
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(
            p.checksum(),
            Some(crate::wire::checksum::checksum(&WITH_CSUM))
        );
        assert!(GrePacket::new_checked(&WITH_CSUM[..7]).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(protocol in any::<u16>(), csum in any::<bool>(), key in proptest::option::of(any::<u32>()),
                     seq in proptest::option::of(any::<u32>()), payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            let r = GreRepr { protocol, csum, key, seq };
            let mut b = vec![0u8; r.header_len() + payload.len()];
            b[r.header_len()..].copy_from_slice(&payload);
            r.emit(&mut GrePacket::new_unchecked(&mut b[..]));
            let p = GrePacket::new_checked(&b[..]).unwrap();
            prop_assert_eq!(GreRepr::parse(&p).unwrap(), r);
            prop_assert_eq!(p.payload(), &payload[..]);
        }
    }
}
