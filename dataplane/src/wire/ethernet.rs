//! Ethernet II frames with at most one 802.1Q tag.
//!
//! The view answers for the tag transparently: [`EthernetFrame::ethertype`] is the payload's
//! type (after the tag), [`EthernetFrame::header_len`] is 14 or 18. A QinQ frame (a second tag)
//! is reported with ethertype `0x8100`, which nothing above handles.

use super::field::Field;
use super::{Error, Result, arr6, be16, put16};

mod field {
    use super::Field;
    pub(super) const DST: Field = 0..6;
    pub(super) const SRC: Field = 6..12;
    pub(super) const TYPE: usize = 12;
    pub(super) const TCI: usize = 14;
    pub(super) const INNER_TYPE: usize = 16;
}

/// Ethertype values.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

/// Length of an untagged header.
pub const HEADER_LEN: usize = 14;
/// Length of a header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = 18;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wrap a buffer without checks.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap a buffer and check it with [`Self::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Check that the header (including a tag, if the outer type says there is one) fits.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN
            || (be16(b, field::TYPE) == ethertype::VLAN && b.len() < VLAN_HEADER_LEN)
        {
            return Err(Error);
        }
        Ok(())
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        arr6(self.buffer.as_ref(), field::DST.start)
    }

    /// Source MAC.
    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        arr6(self.buffer.as_ref(), field::SRC.start)
    }

    /// The type field right after the source MAC (`0x8100` for a tagged frame).
    #[inline]
    pub fn outer_ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TYPE)
    }

    /// Whether the frame carries an 802.1Q tag.
    #[inline]
    pub fn is_tagged(&self) -> bool {
        self.outer_ethertype() == ethertype::VLAN
    }

    /// The VLAN id (low 12 bits of the TCI) of a tagged frame.
    #[inline]
    pub fn vlan(&self) -> Option<u16> {
        self.is_tagged()
            .then(|| be16(self.buffer.as_ref(), field::TCI) & 0x0fff)
    }

    /// The full tag control information (PCP, DEI, VID) of a tagged frame.
    #[inline]
    pub fn tci(&self) -> Option<u16> {
        self.is_tagged()
            .then(|| be16(self.buffer.as_ref(), field::TCI))
    }

    /// The payload's ethertype (after the tag, if any).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        if self.is_tagged() {
            be16(self.buffer.as_ref(), field::INNER_TYPE)
        } else {
            self.outer_ethertype()
        }
    }

    /// Header length: 14, or 18 with a tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The payload.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Set the destination MAC.
    #[inline]
    pub fn set_dst_addr(&mut self, a: [u8; 6]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a);
    }

    /// Set the source MAC.
    #[inline]
    pub fn set_src_addr(&mut self, a: [u8; 6]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a);
    }

    /// Set the payload's ethertype (after the tag, if the frame is tagged).
    #[inline]
    pub fn set_ethertype(&mut self, t: u16) {
        let at = if self.is_tagged() {
            field::INNER_TYPE
        } else {
            field::TYPE
        };
        put16(self.buffer.as_mut(), at, t);
    }

    /// Write the header fields after the MACs: a tag (`Some(tci)`) or none, and the payload
    /// type. May panic on a buffer shorter than the resulting header.
    #[inline]
    pub fn set_tag_and_type(&mut self, tci: Option<u16>, t: u16) {
        let b = self.buffer.as_mut();
        match tci {
            Some(tci) => {
                put16(b, field::TYPE, ethertype::VLAN);
                put16(b, field::TCI, tci);
                put16(b, field::INNER_TYPE, t);
            }
            None => put16(b, field::TYPE, t),
        }
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

/// The validated fields of an Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source MAC.
    pub src: [u8; 6],
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Tag control information of the 802.1Q tag, if any.
    pub tci: Option<u16>,
    /// Payload ethertype.
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Read the header of a checked frame.
    pub fn parse<T: AsRef<[u8]>>(f: &EthernetFrame<T>) -> Result<Self> {
        f.check_len()?;
        Ok(Self {
            src: f.src_addr(),
            dst: f.dst_addr(),
            tci: f.tci(),
            ethertype: f.ethertype(),
        })
    }

    /// Header length this repr emits.
    pub const fn header_len(&self) -> usize {
        if self.tci.is_some() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Write the header. The buffer must hold at least [`Self::header_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, f: &mut EthernetFrame<T>) {
        f.set_dst_addr(self.dst);
        f.set_src_addr(self.src);
        f.set_tag_and_type(self.tci, self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    static UNTAGGED: [u8; 18] = [
        0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00, 0xaa, 0xbb, 0xcc, 0xdd,
    ];
    static TAGGED: [u8; 20] = [
        0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x81, 0x00, 0x20, 0x64, 0x86, 0xdd, 0xaa,
        0xbb,
    ];

    #[test]
    fn deconstruct() {
        let f = EthernetFrame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(f.src_addr(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.ethertype(), ethertype::IPV4);
        assert_eq!(f.vlan(), None);
        assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        let t = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(t.vlan(), Some(100));
        assert_eq!(t.tci(), Some(0x2064));
        assert_eq!(t.ethertype(), ethertype::IPV6);
        assert_eq!(t.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn construct() {
        let mut b = [0u8; 20];
        let mut f = EthernetFrame::new_unchecked(&mut b[..]);
        EthernetRepr {
            src: [2, 0, 0, 0, 0, 1],
            dst: [2, 0, 0, 0, 0, 2],
            tci: Some(0x2064),
            ethertype: ethertype::IPV6,
        }
        .emit(&mut f);
        f.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(b, TAGGED);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            EthernetFrame::new_checked(&UNTAGGED[..13]).err(),
            Some(Error)
        );
        assert_eq!(EthernetFrame::new_checked(&TAGGED[..17]).err(), Some(Error));
        assert!(EthernetFrame::new_checked(&TAGGED[..18]).is_ok());
    }

    #[test]
    fn etherparse_agrees() {
        let f = EthernetFrame::new_unchecked(&TAGGED[..]);
        let e = etherparse::Ethernet2HeaderSlice::from_slice(&TAGGED).unwrap();
        assert_eq!((e.source(), e.destination()), (f.src_addr(), f.dst_addr()));
        assert_eq!(e.ether_type().0, f.outer_ethertype());
        let v = etherparse::SingleVlanHeaderSlice::from_slice(&TAGGED[14..]).unwrap();
        assert_eq!(Some(v.vlan_identifier().value()), f.vlan());
        assert_eq!(v.ether_type().0, f.ethertype());
    }

    proptest! {
        #[test]
        fn roundtrip(src in any::<[u8; 6]>(), dst in any::<[u8; 6]>(), tci in proptest::option::of(any::<u16>()), et in 0x0600u16..) {
            prop_assume!(et != ethertype::VLAN);
            let r = EthernetRepr { src, dst, tci, ethertype: et };
            let mut b = vec![0u8; r.header_len()];
            r.emit(&mut EthernetFrame::new_unchecked(&mut b[..]));
            prop_assert_eq!(EthernetRepr::parse(&EthernetFrame::new_checked(&b[..]).unwrap()).unwrap(), r);
        }
    }
}
