//! Per-worker counters and the IPVS rate estimator.
//!
//! Each worker owns a [`WorkerStats`] and writes it without atomics read-modify-write; the
//! control plane reads published copies and sums them. Drop reasons index a fixed array.
//! Never: share a counter cache line between workers, or count with a locked instruction.

/// Why a packet was dropped. Every drop on the hot path names one; the value indexes
/// [`WorkerStats::drops`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Frame shorter than its headers claim, or a header field out of range.
    Malformed = 0,
    /// Ethertype we do not handle.
    UnknownEthertype,
    /// IP protocol we do not handle.
    UnknownProtocol,
    /// IPv4 header checksum wrong.
    BadIpChecksum,
    /// A fragment (IPVS schedules only whole datagrams / first fragments).
    Fragment,
    /// Not for an address this director owns, no service and no conn.
    NotOurs,
    /// A non-SYN TCP packet (or non-first packet) with no conn.
    NoConn,
    /// A new conn for a service with no available dest.
    NoDest,
    /// The conn table is at its maximum.
    ConnTableFull,
    /// FULLNAT local port pool exhausted.
    NoLocalPort,
    /// No route to the next hop.
    NoRoute,
    /// Next hop's MAC not resolved yet (a request was sent).
    NeighUnresolved,
    /// TTL / hop limit expired.
    TtlExceeded,
    /// Packet too big for the egress MTU and may not be fragmented.
    TooBig,
    /// Not enough headroom to encapsulate.
    NoHeadroom,
    /// An ICMP error that refers to no tracked conn.
    IcmpNoConn,
    /// An ARP/ND packet we do not answer.
    ArpIgnored,
    /// The TX ring was full.
    TxFull,
    /// Dropped by the SYN-flood defence.
    Defence,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 19;

    /// All reasons, in index order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::Malformed,
        Self::UnknownEthertype,
        Self::UnknownProtocol,
        Self::BadIpChecksum,
        Self::Fragment,
        Self::NotOurs,
        Self::NoConn,
        Self::NoDest,
        Self::ConnTableFull,
        Self::NoLocalPort,
        Self::NoRoute,
        Self::NeighUnresolved,
        Self::TtlExceeded,
        Self::TooBig,
        Self::NoHeadroom,
        Self::IcmpNoConn,
        Self::ArpIgnored,
        Self::TxFull,
        Self::Defence,
    ];

    /// A short stable name (for logs and `--json`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownEthertype => "unknown_ethertype",
            Self::UnknownProtocol => "unknown_protocol",
            Self::BadIpChecksum => "bad_ip_checksum",
            Self::Fragment => "fragment",
            Self::NotOurs => "not_ours",
            Self::NoConn => "no_conn",
            Self::NoDest => "no_dest",
            Self::ConnTableFull => "conn_table_full",
            Self::NoLocalPort => "no_local_port",
            Self::NoRoute => "no_route",
            Self::NeighUnresolved => "neigh_unresolved",
            Self::TtlExceeded => "ttl_exceeded",
            Self::TooBig => "too_big",
            Self::NoHeadroom => "no_headroom",
            Self::IcmpNoConn => "icmp_no_conn",
            Self::ArpIgnored => "arp_ignored",
            Self::TxFull => "tx_full",
            Self::Defence => "defence",
        }
    }
}

/// Counters one worker owns.
#[derive(Clone, Debug, Default)]
pub struct WorkerStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Drops by reason.
    pub drops: [u64; DropReason::COUNT],
    /// ARP/ND answers sent.
    pub neigh_replies: u64,
    /// ARP/ND requests sent.
    pub neigh_requests: u64,
    /// Conns created.
    pub conns_created: u64,
}

impl WorkerStats {
    /// Count a drop.
    #[inline]
    pub fn drop(&mut self, r: DropReason) {
        self.drops[r as usize] += 1;
    }

    /// Add another worker's counters (control-plane totals).
    pub fn add(&mut self, o: &Self) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
            *a += b;
        }
        self.neigh_replies += o.neigh_replies;
        self.neigh_requests += o.neigh_requests;
        self.conns_created += o.conns_created;
    }

    /// Total drops.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }
}
