//! GUE, Generic UDP Encapsulation (draft-ietf-intarea-gue), variant 0 with its 4-byte base
//! header, as IPVS's `--tun-type gue` sends it: `ver=0 C=0 hlen proto/ctype flags`, followed by
//! `hlen * 4` bytes of optional fields (IPVS only adds the private remote-checksum field).
//!
//! ```text
//!  0                   1                   2                   3
//! |Ver|C|  Hlen   |  Proto/ctype  |             Flags             |
//! ```

use super::{Error, Result, be16, put16};

mod field {
    pub(super) const VER_C_HLEN: usize = 0;
    pub(super) const PROTO: usize = 1;
    pub(super) const FLAGS: usize = 2;
}

/// Length of the base header.
pub const BASE_LEN: usize = 4;

/// A view of a GUE packet (the UDP payload).
#[derive(Debug, Clone, Copy)]
pub struct GuePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GuePacket<T> {
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

    /// Check the base header and its optional fields fit.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < BASE_LEN || self.header_len() > len {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Variant (top two bits; 0 for the header format handled here).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_C_HLEN] >> 6
    }
    /// Control bit (a control message, not data).
    #[inline]
    pub fn is_control(&self) -> bool {
        self.buffer.as_ref()[field::VER_C_HLEN] & 0x20 != 0
    }
    /// Length of the optional fields in 32-bit words.
    #[inline]
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::VER_C_HLEN] & 0x1f
    }
    /// Header length in bytes (base + optional fields).
    #[inline]
    pub fn header_len(&self) -> usize {
        BASE_LEN + usize::from(self.hlen()) * 4
    }
    /// IP protocol of the payload (or control type).
    #[inline]
    pub fn proto_ctype(&self) -> u8 {
        self.buffer.as_ref()[field::PROTO]
    }
    /// Flags.
    #[inline]
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS)
    }
    /// Payload after the header and optional fields.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// The fields of a GUE variant-0 data header without optional fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GueRepr {
    /// IP protocol of the payload (4 = IPv4, 41 = IPv6).
    pub proto: u8,
    /// Flags.
    pub flags: u16,
}

impl GueRepr {
    /// Parse a checked data packet of variant 0 (optional fields are skipped).
    pub fn parse<T: AsRef<[u8]>>(p: &GuePacket<T>) -> Result<Self> {
        p.check_len()?;
        if p.version() != 0 || p.is_control() {
            return Err(Error);
        }
        Ok(Self {
            proto: p.proto_ctype(),
            flags: p.flags(),
        })
    }

    /// Header length this emits.
    pub const fn header_len(&self) -> usize {
        BASE_LEN
    }

    /// Write the 4-byte base header (hlen 0).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut GuePacket<T>) {
        let b = p.buffer.as_mut();
        b[field::VER_C_HLEN] = 0;
        b[field::PROTO] = self.proto;
        put16(b, field::FLAGS, self.flags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn deconstruct() {
        let b = [0x01, 4, 0x00, 0x00, 9, 9, 9, 9, 0x45];
        let p = GuePacket::new_checked(&b[..]).unwrap();
        assert_eq!((p.version(), p.is_control(), p.hlen()), (0, false, 1));
        assert_eq!(p.header_len(), 8);
        assert_eq!(p.proto_ctype(), 4);
        assert_eq!(p.payload(), &[0x45]);
        assert!(GuePacket::new_checked(&b[..7]).is_err());
        assert!(GueRepr::parse(&GuePacket::new_unchecked(&[0x20u8, 4, 0, 0][..])).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(proto in any::<u8>(), flags in any::<u16>()) {
            let r = GueRepr { proto, flags };
            let mut b = [0xffu8; 4];
            r.emit(&mut GuePacket::new_unchecked(&mut b[..]));
            prop_assert_eq!(GueRepr::parse(&GuePacket::new_checked(&b[..]).unwrap()).unwrap(), r);
        }
    }
}
