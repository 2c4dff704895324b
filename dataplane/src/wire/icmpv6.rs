//! ICMPv6 (RFC 4443) and the neighbour discovery messages xvs answers and sends (RFC 4861):
//! neighbour solicitation and advertisement with the link-layer address option.
//!
//! The checksum covers an IPv6 pseudo-header plus the whole message. Errors quote the offending
//! packet after an 8-byte header; "packet too big" carries the MTU in bytes 4..8.

use std::net::Ipv6Addr;

use super::checksum;
use super::{Error, Result, arr6, arr16, be16, be32, put16, put32};
use crate::flow::proto;

mod field {
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: usize = 2;
    pub(super) const REST: usize = 4;
    pub(super) const TARGET: usize = 8;
    pub(super) const OPTIONS: usize = 24;
}

/// Header length (type, code, checksum, 4 message bytes).
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// ICMPv6 types.
pub mod msg {
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 1;
    /// Packet too big.
    pub const PKT_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Neighbour solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbour advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// Neighbour advertisement flags (first byte of the message body).
pub mod na_flags {
    /// Router.
    pub const ROUTER: u8 = 0x80;
    /// Solicited.
    pub const SOLICITED: u8 = 0x40;
    /// Override.
    pub const OVERRIDE: u8 = 0x20;
}

/// Whether a type is an error message (types below 128) that quotes a packet.
#[inline]
#[must_use]
pub const fn is_error(t: u8) -> bool {
    t < 128
}

/// A view of an ICMPv6 message.
#[derive(Debug, Clone, Copy)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
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

    /// Check the 8-byte header fits, and for NS/NA the 16-byte target too.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        if matches!(
            self.msg_type(),
            msg::NEIGHBOR_SOLICIT | msg::NEIGHBOR_ADVERT
        ) && len < field::OPTIONS
        {
            return Err(Error);
        }
        Ok(())
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
    /// Bytes 4..8 (MTU of packet-too-big, pointer of parameter-problem, NA flags, ...).
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        be32(self.buffer.as_ref(), field::REST)
    }
    /// The quoted packet of an error / the body after 8 bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// Target address of NS/NA (checked by `check_len` for those types only).
    #[inline]
    pub fn target(&self) -> Ipv6Addr {
        Ipv6Addr::from(arr16(self.buffer.as_ref(), field::TARGET))
    }
    /// Whether the checksum verifies with the pseudo-header of `src`/`dst`.
    #[inline]
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u32::try_from(b.len()) else {
            return false;
        };
        checksum::add(
            checksum::pseudo_v6(src, dst, proto::ICMPV6, len),
            checksum::data(b),
        ) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
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
    /// Set the NS/NA target.
    #[inline]
    pub fn set_target(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET..field::TARGET + 16].copy_from_slice(&a.octets());
    }
    /// Compute the checksum over the whole buffer with the pseudo-header.
    #[inline]
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let len = u32::try_from(b.len()).unwrap_or(0);
        let c = !checksum::add(
            checksum::pseudo_v6(src, dst, proto::ICMPV6, len),
            checksum::data(b),
        );
        self.set_checksum(c);
    }
    /// Body after the header, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// Option type: source link-layer address.
pub const OPT_SOURCE_LL: u8 = 1;
/// Option type: target link-layer address.
pub const OPT_TARGET_LL: u8 = 2;

/// A neighbour discovery message xvs handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdiscRepr {
    /// Neighbour solicitation, with the sender's link-layer address option if present.
    Solicit {
        /// Address being resolved.
        target: Ipv6Addr,
        /// Source link-layer address option.
        lladdr: Option<[u8; 6]>,
    },
    /// Neighbour advertisement, with the target link-layer address option if present.
    Advert {
        /// [`na_flags`] bits.
        flags: u8,
        /// Address being advertised.
        target: Ipv6Addr,
        /// Target link-layer address option.
        lladdr: Option<[u8; 6]>,
    },
}

impl NdiscRepr {
    /// Parse an NS or NA (code 0). Options are walked; a zero-length option is an error (RFC
    /// 4861 7.1.1). The checksum is not verified here (the caller has the addresses).
    pub fn parse<T: AsRef<[u8]>>(p: &Icmpv6Packet<T>) -> Result<Self> {
        p.check_len()?;
        let t = p.msg_type();
        if !matches!(t, msg::NEIGHBOR_SOLICIT | msg::NEIGHBOR_ADVERT) || p.msg_code() != 0 {
            return Err(Error);
        }
        let b = p.buffer.as_ref();
        let want = if t == msg::NEIGHBOR_SOLICIT {
            OPT_SOURCE_LL
        } else {
            OPT_TARGET_LL
        };
        let mut lladdr = None;
        let mut off = field::OPTIONS;
        while off + 2 <= b.len() {
            let len = usize::from(b[off + 1]) * 8;
            if len == 0 || off + len > b.len() {
                return Err(Error);
            }
            if b[off] == want && len >= 8 {
                lladdr = Some(arr6(b, off + 2));
            }
            off += len;
        }
        Ok(if t == msg::NEIGHBOR_SOLICIT {
            Self::Solicit {
                target: p.target(),
                lladdr,
            }
        } else {
            Self::Advert {
                flags: b[field::REST],
                target: p.target(),
                lladdr,
            }
        })
    }

    /// Length of the message this emits.
    pub const fn buffer_len(&self) -> usize {
        let opt = match self {
            Self::Solicit { lladdr, .. } | Self::Advert { lladdr, .. } => lladdr.is_some(),
        };
        field::OPTIONS + if opt { 8 } else { 0 }
    }

    /// Write the message into a buffer of exactly [`Self::buffer_len`] bytes and fill the
    /// checksum for `src`/`dst`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut Icmpv6Packet<T>,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) {
        let (t, flags, target, lladdr, opt) = match *self {
            Self::Solicit { target, lladdr } => {
                (msg::NEIGHBOR_SOLICIT, 0, target, lladdr, OPT_SOURCE_LL)
            }
            Self::Advert {
                flags,
                target,
                lladdr,
            } => (msg::NEIGHBOR_ADVERT, flags, target, lladdr, OPT_TARGET_LL),
        };
        p.set_msg_type(t);
        p.set_msg_code(0);
        p.set_rest_of_header(u32::from(flags) << 24);
        p.set_target(target);
        if let Some(mac) = lladdr {
            let b = &mut p.buffer.as_mut()[field::OPTIONS..field::OPTIONS + 8];
            b[0] = opt;
            b[1] = 1;
            b[2..8].copy_from_slice(&mac);
        }
        p.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // NS for 2001:db8::1 with source LL 02:00:00:00:00:01 (checksum zero here).
    fn ns() -> Vec<u8> {
        let mut b = vec![135, 0, 0, 0, 0, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8];
        b.extend_from_slice(&[0; 11]);
        b.push(1);
        b.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]);
        b
    }

    #[test]
    fn deconstruct_ns() {
        let b = ns();
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), msg::NEIGHBOR_SOLICIT);
        assert_eq!(
            NdiscRepr::parse(&p).unwrap(),
            NdiscRepr::Solicit {
                target: "2001:db8::1".parse().unwrap(),
                lladdr: Some([2, 0, 0, 0, 0, 1])
            }
        );
        let mut bad = ns();
        bad[25] = 0; // zero-length option
        assert!(NdiscRepr::parse(&Icmpv6Packet::new_unchecked(&bad[..])).is_err());
        assert!(Icmpv6Packet::new_checked(&b[..20]).is_err());
    }

    #[test]
    fn emit_na_checksum_matches_etherparse() {
        let (s, d): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        let r = NdiscRepr::Advert {
            flags: na_flags::SOLICITED | na_flags::OVERRIDE,
            target: s,
            lladdr: Some([2, 0, 0, 0, 0, 9]),
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut Icmpv6Packet::new_unchecked(&mut b[..]), &s, &d);
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(&s, &d));
        let e = etherparse::Icmpv6Slice::from_slice(&b).unwrap();
        assert_eq!(
            e.icmp_type()
                .calc_checksum(s.octets(), d.octets(), e.payload())
                .unwrap(),
            p.checksum()
        );
        assert_eq!(NdiscRepr::parse(&p).unwrap(), r);
    }

    proptest! {
        #[test]
        fn roundtrip(t in any::<[u8; 16]>(), ll in proptest::option::of(any::<[u8; 6]>()), f in any::<u8>(), sol in any::<bool>()) {
            let target = Ipv6Addr::from(t);
            let r = if sol { NdiscRepr::Solicit { target, lladdr: ll } } else { NdiscRepr::Advert { flags: f & 0xe0, target, lladdr: ll } };
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut Icmpv6Packet::new_unchecked(&mut b[..]), &Ipv6Addr::LOCALHOST, &target);
            let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
            prop_assert!(p.verify_checksum(&Ipv6Addr::LOCALHOST, &target));
            prop_assert_eq!(NdiscRepr::parse(&p).unwrap(), r);
        }
    }
}
