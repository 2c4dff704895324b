//! IPv6 headers (RFC 8200) and the walk over the extension headers xvs skips: hop-by-hop
//! options, routing, fragment and destination options.
//!
//! `check_len` validates that the fixed header fits and that the payload length it claims fits
//! in the buffer (jumbograms, payload length 0 with a hop-by-hop jumbo option, are not
//! supported: the packet is treated as having an empty payload).

use std::net::Ipv6Addr;

use super::{Error, Result, arr16, be16, put16};

mod field {
    pub(super) const VER_TC_FL: usize = 0;
    pub(super) const LENGTH: usize = 4;
    pub(super) const NXT_HDR: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC: usize = 8;
    pub(super) const DST: usize = 24;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Offset of the source address.
pub const SRC_OFFSET: usize = field::SRC;
/// Offset of the destination address.
pub const DST_OFFSET: usize = field::DST;

/// Extension header numbers.
pub mod ext {
    /// Hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing.
    pub const ROUTING: u8 = 43;
    /// Fragment.
    pub const FRAGMENT: u8 = 44;
    /// Destination options.
    pub const DEST_OPTS: u8 = 60;
    /// No next header.
    pub const NO_NEXT: u8 = 59;
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
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

    /// Check 40 + payload length <= buffer length.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(Error);
        }
        Ok(())
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FL] >> 4
    }
    /// Traffic class.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }
    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        (u32::from(b[1] & 0x0f) << 16) | u32::from(be16(b, 2))
    }
    /// Payload length (everything after the fixed header, extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Next header of the fixed header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }
    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(arr16(self.buffer.as_ref(), field::SRC))
    }
    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(arr16(self.buffer.as_ref(), field::DST))
    }
    /// The payload (extension headers included), up to the payload length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Set version 6, traffic class and flow label.
    #[inline]
    pub fn set_version_tc_flow(&mut self, tc: u8, flow: u32) {
        let v = (6u32 << 28) | (u32::from(tc) << 20) | (flow & 0x000f_ffff);
        self.buffer.as_mut()[0..4].copy_from_slice(&v.to_be_bytes());
    }
    /// Set the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }
    /// Set the next header.
    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v;
    }
    /// Set the hop limit (IPv6 has no header checksum).
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }
    /// Set the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&a.octets());
    }
    /// Set the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&a.octets());
    }
    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..HEADER_LEN + l]
    }
}

/// Where the upper-layer header starts after the extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtWalk {
    /// Upper-layer protocol (the last next-header value).
    pub protocol: u8,
    /// Offset of the upper-layer header, relative to the start of the IPv6 header.
    pub l4_off: usize,
    /// A fragment header was present.
    pub fragment: bool,
    /// Fragment offset in bytes (0 without a fragment header).
    pub frag_offset: u16,
    /// More-fragments flag.
    pub more_frags: bool,
}

/// Walk the extension headers of an IPv6 packet `pkt` (starting at the fixed header, already
/// length-checked, at most `end` bytes long) skipping hop-by-hop, routing, fragment and
/// destination options headers. Stops at the first other next-header value, or after a
/// fragment header whose offset is not zero (what follows is not a header). Errors when an
/// extension header runs past `end`, or when more than 8 are chained.
#[inline]
pub fn walk_ext(pkt: &[u8], first: u8, end: usize) -> Result<ExtWalk> {
    let end = end.min(pkt.len());
    let mut w = ExtWalk {
        protocol: first,
        l4_off: HEADER_LEN,
        fragment: false,
        frag_offset: 0,
        more_frags: false,
    };
    for _ in 0..8 {
        let off = w.l4_off;
        match w.protocol {
            ext::HOP_BY_HOP | ext::ROUTING | ext::DEST_OPTS => {
                if off + 8 > end {
                    return Err(Error);
                }
                let len = (usize::from(pkt[off + 1]) + 1) * 8;
                if off + len > end {
                    return Err(Error);
                }
                w.protocol = pkt[off];
                w.l4_off = off + len;
            }
            ext::FRAGMENT => {
                if off + 8 > end {
                    return Err(Error);
                }
                let fo = be16(pkt, off + 2);
                w.fragment = true;
                w.frag_offset = fo & 0xfff8;
                w.more_frags = fo & 1 != 0;
                w.protocol = pkt[off];
                w.l4_off = off + 8;
                if w.frag_offset != 0 {
                    return Ok(w);
                }
            }
            _ => return Ok(w),
        }
    }
    Err(Error)
}

/// The fields of an IPv6 header without extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Payload length.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Parse a checked packet (version 6).
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Self> {
        p.check_len()?;
        if p.version() != 6 {
            return Err(Error);
        }
        Ok(Self {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        })
    }

    /// Length of the header this emits.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the fixed header. `payload_len` must fit in a u16.
    #[allow(clippy::cast_possible_truncation)] // documented precondition
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv6Packet<T>) {
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(self.payload_len as u16);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// fe80::1 -> ff02::1, hop-by-hop (8 bytes) -> fragment (offset 0, M) -> UDP, 8 UDP bytes.
    fn sample() -> Vec<u8> {
        let mut b = vec![0x60, 0x00, 0x00, 0x00, 0x00, 24, 0, 64];
        let mut s = [0u8; 16];
        s[0] = 0xfe;
        s[1] = 0x80;
        s[15] = 1;
        let mut d = [0u8; 16];
        d[0] = 0xff;
        d[1] = 0x02;
        d[15] = 1;
        b.extend_from_slice(&s);
        b.extend_from_slice(&d);
        b.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop: next fragment, PadN
        b.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 7]); // fragment: next UDP, offset 0, M
        b.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        b
    }

    #[test]
    fn deconstruct_and_walk() {
        let b = sample();
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.payload_len(), 24);
        assert_eq!(p.next_header(), 0);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "fe80::1".parse::<Ipv6Addr>().unwrap());
        let w = walk_ext(&b, p.next_header(), b.len()).unwrap();
        assert_eq!(
            w,
            ExtWalk {
                protocol: 17,
                l4_off: 56,
                fragment: true,
                frag_offset: 0,
                more_frags: true
            }
        );
        // Truncated extension header.
        assert!(walk_ext(&b, 0, 47).is_err());
        // Non-first fragment: stop right after the fragment header.
        let mut nf = b.clone();
        nf[50] = 0x01; // offset 256 bytes
        let w = walk_ext(&nf, 0, nf.len()).unwrap();
        assert_eq!((w.frag_offset, w.l4_off), (256, 56));
        assert!(Ipv6Packet::new_checked(&b[..b.len() - 1]).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), nh in any::<u8>(), payload_len in 0usize..64,
                     hop_limit in any::<u8>(), traffic_class in any::<u8>(), flow_label in 0u32..(1 << 20)) {
            let r = Ipv6Repr { src: src.into(), dst: dst.into(), next_header: nh, payload_len, hop_limit, traffic_class, flow_label };
            let mut b = vec![0u8; 40 + payload_len];
            r.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
            prop_assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
            let e = etherparse::Ipv6HeaderSlice::from_slice(&b).unwrap();
            prop_assert_eq!(e.flow_label().value(), flow_label);
            prop_assert_eq!(e.traffic_class(), traffic_class);
        }
    }
}
