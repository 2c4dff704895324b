//! Packet building and parsing for the generator and the sink: Ethernet + IPv4 + UDP/TCP frames
//! written in place into a frame buffer, the payload *stamp* (flow id, sequence number, send
//! time) the sink reads back to count per flow and measure latency, and the in-place rewrite of
//! a received SYN into its SYN-ACK.
//!
//! Invariants: every frame written here carries a correct IPv4 header checksum and a correct
//! TCP checksum (UDP checksum 0, "none", which IPv4 allows), so no forwarder has to complete
//! anything; nothing here allocates. It must never panic on a short or foreign frame: parsing
//! returns `None` instead.

use std::net::Ipv4Addr;

/// Ethernet + IPv4 header bytes.
pub const L3_END: usize = 14 + 20;
/// Bytes of the payload stamp.
pub const STAMP_LEN: usize = 22;
/// First two bytes of every stamp.
pub const STAMP_MAGIC: [u8; 2] = *b"XB";
/// The SYN-ACK's initial sequence number (the sink's), so clients can ACK it blindly.
pub const SERVER_ISN: u32 = 0x1000_0000;
/// The clients' initial sequence number.
pub const CLIENT_ISN: u32 = 1000;

/// TCP flag bits.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// Transport of a generated frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum L4 {
    /// UDP, checksum 0.
    Udp,
    /// TCP with these flags.
    Tcp(u8),
}

/// Addresses of one generated frame.
#[derive(Copy, Clone, Debug)]
pub struct Hdr {
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// Ethernet destination.
    pub dst_mac: [u8; 6],
    /// IPv4 source.
    pub src: Ipv4Addr,
    /// IPv4 destination.
    pub dst: Ipv4Addr,
    /// L4 source port.
    pub sport: u16,
    /// L4 destination port.
    pub dport: u16,
}

/// The stamp a generated frame carries at the start of its payload.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Flow index at the generator.
    pub flow: u32,
    /// Per-generator sequence number.
    pub seq: u64,
    /// Send time, nanoseconds since the Unix epoch (the realtime clock is shared by every
    /// namespace of the machine).
    pub ts_ns: u64,
}

/// L4 header length of `l4`.
#[must_use]
pub const fn l4_len(l4: L4) -> usize {
    match l4 {
        L4::Udp => 8,
        L4::Tcp(_) => 20,
    }
}

/// The smallest frame (without FCS) of this transport that carries a stamp (`stamp`), or no
/// payload at all.
#[must_use]
pub const fn min_frame(l4: L4, stamp: bool) -> usize {
    L3_END + l4_len(l4) + if stamp { STAMP_LEN } else { 0 }
}

/// One's-complement sum of `b` (big-endian 16-bit words, odd tail padded), not folded.
fn sum16(b: &[u8], mut acc: u32) -> u32 {
    let mut it = b.chunks_exact(2);
    for w in &mut it {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [x] = it.remainder() {
        acc += u32::from(*x) << 8;
    }
    acc
}

// Folded to 16 bits, so the narrowing cannot truncate.
#[allow(clippy::cast_possible_truncation)]
fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Write a frame of `len` bytes (at least [`min_frame`]) into `buf[..len]`: headers from `h`,
/// transport `l4` (TCP with sequence `seq` and acknowledgement `ack`), the stamp if given and
/// there is room, zero padding. Returns false (writing nothing useful) if `buf` is too short.
// Frame lengths are at most a few KiB, so the u16 casts cannot truncate.
#[allow(clippy::cast_possible_truncation)]
pub fn write_frame(
    buf: &mut [u8],
    len: usize,
    h: &Hdr,
    l4: L4,
    seq: u32,
    ack: u32,
    stamp: Option<&Stamp>,
) -> bool {
    let l4l = l4_len(l4);
    if len < L3_END + l4l || buf.len() < len || len > 0xffff {
        return false;
    }
    let f = &mut buf[..len];
    f[0..6].copy_from_slice(&h.dst_mac);
    f[6..12].copy_from_slice(&h.src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&[0, 0]);
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    ip[8] = 64;
    ip[9] = match l4 {
        L4::Udp => 17,
        L4::Tcp(_) => 6,
    };
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&h.src.octets());
    ip[16..20].copy_from_slice(&h.dst.octets());
    let c = fold(sum16(ip, 0));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let seg_len = len - L3_END;
    {
        let l = &mut f[L3_END..];
        l[0..2].copy_from_slice(&h.sport.to_be_bytes());
        l[2..4].copy_from_slice(&h.dport.to_be_bytes());
        match l4 {
            L4::Udp => {
                l[4..6].copy_from_slice(&(seg_len as u16).to_be_bytes());
                l[6..8].copy_from_slice(&[0, 0]);
            }
            L4::Tcp(fl) => {
                l[4..8].copy_from_slice(&seq.to_be_bytes());
                l[8..12].copy_from_slice(&ack.to_be_bytes());
                l[12] = 5 << 4;
                l[13] = fl;
                l[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
                l[16..20].copy_from_slice(&[0, 0, 0, 0]);
            }
        }
        let pay = &mut l[l4l..];
        pay.fill(0);
        if let Some(s) = stamp
            && pay.len() >= STAMP_LEN
        {
            pay[0..2].copy_from_slice(&STAMP_MAGIC);
            pay[2..6].copy_from_slice(&s.flow.to_be_bytes());
            pay[6..14].copy_from_slice(&s.seq.to_be_bytes());
            pay[14..22].copy_from_slice(&s.ts_ns.to_be_bytes());
        }
    }
    if let L4::Tcp(_) = l4 {
        tcp_checksum(f);
    }
    true
}

/// Recompute the TCP checksum of an Ethernet/IPv4(no options)/TCP frame in place.
// Segment lengths are bounded by the frame length (<= 0xffff), so the cast cannot truncate.
#[allow(clippy::cast_possible_truncation)]
fn tcp_checksum(f: &mut [u8]) {
    let seg_len = f.len() - L3_END;
    let mut acc = sum16(&f[26..34], 0); // source + destination
    acc += 6 + seg_len as u32;
    f[L3_END + 16..L3_END + 18].copy_from_slice(&[0, 0]);
    let c = fold(sum16(&f[L3_END..], acc));
    f[L3_END + 16..L3_END + 18].copy_from_slice(&c.to_be_bytes());
}

/// What the sink sees in one received frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// IPv4 destination (which real server it went to).
    pub dst: Ipv4Addr,
    /// TCP flags (0 for UDP).
    pub tcp_flags: u8,
    /// The stamp, if the payload starts with one.
    pub stamp: Option<Stamp>,
}

/// Parse an Ethernet/IPv4/UDP-or-TCP frame, looking through one IPv4-in-IPv4 (ipip)
/// encapsulation (what xvs's TUN mode sends); `None` for anything else.
#[must_use]
pub fn parse(f: &[u8]) -> Option<Seen> {
    if f.len() < L3_END || f[12..14] != [0x08, 0x00] {
        return None;
    }
    let outer_ihl = usize::from(f[14] & 0x0f) * 4;
    let ip = if f[23] == 4 { 14 + outer_ihl } else { 14 };
    let h = f.get(ip..ip + 20)?;
    if h[0] >> 4 != 4 {
        return None;
    }
    let l4 = ip + usize::from(h[0] & 0x0f) * 4;
    let ip_end = (ip + usize::from(u16::from_be_bytes([h[2], h[3]]))).min(f.len());
    let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
    let (pay, tcp_flags) = match h[9] {
        17 => (l4 + 8, 0),
        6 => {
            let doff = usize::from(*f.get(l4 + 12)? >> 4) * 4;
            (l4 + doff, *f.get(l4 + 13)?)
        }
        _ => return None,
    };
    let stamp = f.get(pay..ip_end).and_then(|p| {
        if p.len() < STAMP_LEN || p[0..2] != STAMP_MAGIC {
            return None;
        }
        let u32_at = |o: usize| u32::from_be_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
        let u64_at = |o: usize| (u64::from(u32_at(o)) << 32) | u64::from(u32_at(o + 4));
        Some(Stamp {
            flow: u32_at(2),
            seq: u64_at(6),
            ts_ns: u64_at(14),
        })
    });
    Some(Seen {
        dst,
        tcp_flags,
        stamp,
    })
}

/// Turn a received TCP SYN (Ethernet/IPv4 without options/TCP) into its SYN-ACK in place:
/// swap MACs, addresses and ports, acknowledge the SYN with [`SERVER_ISN`], drop any payload
/// or options, fix both checksums. Returns the new frame length, or `None` if `f` is not a
/// bare SYN this can answer.
pub fn syn_to_synack(f: &mut [u8]) -> Option<usize> {
    let s = parse(f)?;
    if s.tcp_flags & (flags::SYN | flags::ACK) != flags::SYN || f[14] != 0x45 || f[23] != 6 {
        return None;
    }
    let l = L3_END;
    let h = Hdr {
        src_mac: f[0..6].try_into().ok()?,
        dst_mac: f[6..12].try_into().ok()?,
        src: Ipv4Addr::new(f[30], f[31], f[32], f[33]),
        dst: Ipv4Addr::new(f[26], f[27], f[28], f[29]),
        sport: u16::from_be_bytes([f[l + 2], f[l + 3]]),
        dport: u16::from_be_bytes([f[l], f[l + 1]]),
    };
    let seq = u32::from_be_bytes(f[l + 4..l + 8].try_into().ok()?);
    let len = min_frame(L4::Tcp(0), false); // 54: veth needs no padding
    write_frame(
        f,
        len,
        &h,
        L4::Tcp(flags::SYN | flags::ACK),
        SERVER_ISN,
        seq.wrapping_add(1),
        None,
    )
    .then_some(len)
}

/// Frame sizes of the simple IMIX (7 x 64, 4 x 590, 1 x 1514 bytes without FCS), cycled.
pub const IMIX: [usize; 12] = [64, 590, 64, 64, 590, 64, 1514, 64, 590, 64, 64, 590];

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> Hdr {
        Hdr {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: Ipv4Addr::new(198, 18, 64, 1),
            dst: Ipv4Addr::new(198, 18, 1, 100),
            sport: 1234,
            dport: 80,
        }
    }

    #[test]
    fn udp_frame_round_trips_its_stamp_and_checks_out() {
        let mut buf = [0u8; 128];
        let st = Stamp {
            flow: 77,
            seq: 1 << 40,
            ts_ns: 123_456_789_012,
        };
        assert!(write_frame(&mut buf, 64, &hdr(), L4::Udp, 0, 0, Some(&st)));
        let p = etherparse::SlicedPacket::from_ethernet(&buf[..64]).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!("not ipv4")
        };
        assert_eq!(ip.header().destination_addr(), hdr().dst);
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let s = parse(&buf[..64]).unwrap();
        assert_eq!(s.stamp, Some(st));
        assert_eq!(s.tcp_flags, 0);
    }

    #[test]
    fn tcp_checksum_matches_etherparse() {
        let mut buf = [0u8; 200];
        let st = Stamp {
            flow: 1,
            seq: 2,
            ts_ns: 3,
        };
        let len = 97; // odd length exercises the padding
        assert!(write_frame(
            &mut buf,
            len,
            &hdr(),
            L4::Tcp(flags::ACK | flags::PSH),
            5,
            6,
            Some(&st)
        ));
        let p = etherparse::SlicedPacket::from_ethernet(&buf[..len]).unwrap();
        let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(t))) =
            (p.net, p.transport)
        else {
            panic!("not tcp/ipv4")
        };
        let want = t
            .to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), t.payload())
            .unwrap();
        assert_eq!(t.checksum(), want);
        assert_eq!(parse(&buf[..len]).unwrap().stamp, Some(st));
    }

    #[test]
    fn synack_answers_a_syn_only() {
        let mut buf = [0u8; 128];
        assert!(write_frame(
            &mut buf,
            54,
            &hdr(),
            L4::Tcp(flags::SYN),
            CLIENT_ISN,
            0,
            None
        ));
        let n = syn_to_synack(&mut buf).unwrap();
        let p = etherparse::SlicedPacket::from_ethernet(&buf[..n]).unwrap();
        let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
            panic!("not tcp")
        };
        assert!(t.syn() && t.ack());
        assert_eq!(t.acknowledgment_number(), CLIENT_ISN + 1);
        assert_eq!(t.source_port(), 80);
        assert_eq!(&buf[0..6], &hdr().src_mac);
        // A SYN-ACK is not a SYN to answer.
        assert!(syn_to_synack(&mut buf).is_none());
        assert!(parse(&buf[..10]).is_none());
    }

    #[test]
    fn parse_looks_through_ipip() {
        let mut inner = [0u8; 128];
        let st = Stamp {
            flow: 9,
            seq: 8,
            ts_ns: 7,
        };
        assert!(write_frame(
            &mut inner,
            64,
            &hdr(),
            L4::Udp,
            0,
            0,
            Some(&st)
        ));
        // Outer Ethernet + IPv4 (protocol 4) in front of the inner IPv4 packet.
        let mut f = inner[..14].to_vec();
        let mut outer = [0u8; 20];
        outer[0] = 0x45;
        outer[2..4].copy_from_slice(&(20u16 + 50).to_be_bytes());
        outer[9] = 4;
        outer[16..20].copy_from_slice(&[198, 18, 2, 10]);
        f.extend_from_slice(&outer);
        f.extend_from_slice(&inner[14..64]);
        let s = parse(&f).unwrap();
        assert_eq!(s.stamp, Some(st));
        assert_eq!(s.dst, hdr().dst, "the inner destination counts");
        // Encapsulated SYNs are not answered.
        assert!(syn_to_synack(&mut f).is_none());
    }
}
