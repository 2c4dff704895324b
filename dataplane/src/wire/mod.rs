//! Wire formats: typed, zero-copy views of the headers xvs reads and rewrites, their checksums,
//! and the one-pass summary parser the worker runs on every frame.
//!
//! Each protocol has a `XxxPacket<T: AsRef<[u8]>>` view (smoltcp's design): it wraps any buffer
//! without copying, getters live in `impl<T: AsRef<[u8]>>` and setters in
//! `impl<T: AsRef<[u8]> + AsMut<[u8]>>`, so mutability is decided by the buffer type. Field
//! offsets are `Range` constants in a private `mod field` per file. Where a small `Copy`
//! `XxxRepr` of validated fields exists it has `parse(&Packet) -> Result<Repr>` and
//! `emit(&mut Packet)`.
//!
//! # The panic contract
//! - `XxxPacket::new_unchecked` never fails and checks nothing.
//! - `XxxPacket::check_len` verifies that the buffer is long enough for every fixed field *and*
//!   for every length the header itself claims (IHL, data offset, UDP length, ...).
//! - `XxxPacket::new_checked` is `new_unchecked` followed by `check_len`.
//! - **If `check_len` returned `Ok(())`, no getter, setter, `payload()` or checksum method of
//!   that view panics**, whatever the bytes say. Untrusted input (every received frame) must
//!   therefore go through `new_checked` (or through [`parse_frame`], which does the same
//!   checks). Methods documented as "may panic on an unchecked buffer" are the exception.
//! - Emission into a buffer being filled should use `new_unchecked`: a reused buffer holds stale
//!   bytes that can make `new_checked` fail at random. The caller sizes the buffer with
//!   `Repr::buffer_len()`-style helpers.
//!
//! Network byte order never leaves this module: every accessor returns host-order integers,
//! `Ipv4Addr`/`Ipv6Addr` or byte arrays of addresses. Nothing here allocates, logs or locks:
//! it runs on the per-packet path.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod gre;
pub mod gue;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
mod parse;
pub mod tcp;
pub mod udp;

pub use arp::{ArpPacket, ArpRepr};
pub use ethernet::{EthernetFrame, EthernetRepr, ethertype};
pub use gre::{GrePacket, GreRepr};
pub use gue::{GuePacket, GueRepr};
pub use icmp::Icmpv4Packet;
pub use icmpv6::{Icmpv6Packet, NdiscRepr};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use parse::{Frag, PacketInfo, ParseError, Parsed, parse_frame, parse_ip};
pub use tcp::{TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};

/// A malformed or truncated buffer. A unit struct: `Copy`, no allocation (smoltcp's choice).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Error;

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("malformed packet")
    }
}

impl std::error::Error for Error {}

/// Result of a wire operation.
pub type Result<T> = core::result::Result<T, Error>;

/// Field ranges shared by every protocol's private `mod field`.
pub(crate) mod field {
    /// A fixed field: a byte range.
    pub(crate) type Field = core::ops::Range<usize>;
}

/// Read a big-endian u16 at `at` (panics if out of range: callers index checked buffers).
#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Read a big-endian u32 at `at`.
#[inline(always)]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Write a big-endian u16 at `at`.
#[inline(always)]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Write a big-endian u32 at `at`.
#[inline(always)]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Copy 4 bytes at `at` into an array.
#[inline(always)]
pub(crate) fn arr4(b: &[u8], at: usize) -> [u8; 4] {
    [b[at], b[at + 1], b[at + 2], b[at + 3]]
}

/// Copy 6 bytes at `at` into an array (a MAC address).
#[inline(always)]
pub(crate) fn arr6(b: &[u8], at: usize) -> [u8; 6] {
    let mut a = [0u8; 6];
    a.copy_from_slice(&b[at..at + 6]);
    a
}

/// Copy 16 bytes at `at` into an array (an IPv6 address).
#[inline(always)]
pub(crate) fn arr16(b: &[u8], at: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    a
}
