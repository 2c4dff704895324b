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
    /// Frames forwarded through the worker's flow cache (their conn touched by reference,
    /// not looked up; counted in `rx_packets` too).
    pub flow_hits: u64,
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
        self.flow_hits += o.flow_hits;
    }

    /// Total drops.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }
}

use crate::service::CounterValues;

/// The IPVS rate estimator (`ip_vs_est.c`), ticked every 2 seconds by the control plane.
///
/// Each tick takes the counter deltas over the 2 s period, scales them (x512 for conns and
/// packets, i.e. per second in units of 1/1024; x16 for bytes, per second in units of 1/32), and
/// moves a running average a quarter of the way toward them: `avg += (rate - avg) >> 2`. The
/// read-out rounds: `(avg + 0x1FF) >> 10` for CPS and PPS, `(avg + 0xF) >> 5` for bytes/s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateEstimator {
    last: CounterValues,
    // conns, inpkts, outpkts, inbytes, outbytes (scaled averages)
    avg: [i64; 5],
}

/// The estimator period.
pub const RATE_TICK_MS: u64 = 2000;

impl RateEstimator {
    /// One 2-second tick with the current totals.
    #[allow(clippy::cast_possible_wrap)] // deltas over 2 s are far below i64::MAX
    pub fn update(&mut self, cur: CounterValues) {
        let d = |now: u64, last: u64| now.wrapping_sub(last) as i64;
        let rates = [
            d(cur.conns, self.last.conns) << 9,
            d(cur.inpkts, self.last.inpkts) << 9,
            d(cur.outpkts, self.last.outpkts) << 9,
            d(cur.inbytes, self.last.inbytes) << 4,
            d(cur.outbytes, self.last.outbytes) << 4,
        ];
        for (avg, rate) in self.avg.iter_mut().zip(rates) {
            *avg += (rate - *avg) >> 2;
        }
        self.last = cur;
    }

    /// The rates as `--rate` shows them: conns/s, packets/s, bytes/s.
    #[must_use]
    #[allow(clippy::cast_sign_loss)] // clamped to >= 0 first
    pub fn read(&self) -> CounterValues {
        let pps = |a: i64| ((a.max(0) + 0x1FF) >> 10) as u64;
        let bps = |a: i64| ((a.max(0) + 0xF) >> 5) as u64;
        CounterValues {
            conns: pps(self.avg[0]),
            inpkts: pps(self.avg[1]),
            outpkts: pps(self.avg[2]),
            inbytes: bps(self.avg[3]),
            outbytes: bps(self.avg[4]),
        }
    }

    /// Forget everything (`-Z`): averages to zero, the next delta counted from `cur`.
    pub fn zero(&mut self, cur: CounterValues) {
        self.avg = [0; 5];
        self.last = cur;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_rate_converges_to_itself() {
        let mut e = RateEstimator::default();
        let mut cur = CounterValues::default();
        for _ in 0..100 {
            // 100 conns/s, 1000 pkts/s, 1_000_000 bytes/s in, over 2 s
            cur.conns += 200;
            cur.inpkts += 2000;
            cur.inbytes += 2_000_000;
            e.update(cur);
        }
        let r = e.read();
        assert_eq!(
            (r.conns, r.inpkts, r.inbytes, r.outpkts),
            (100, 1000, 1_000_000, 0)
        );
    }

    #[test]
    fn first_tick_moves_a_quarter_of_the_way() {
        let mut e = RateEstimator::default();
        e.update(CounterValues {
            inpkts: 2000,
            ..Default::default()
        });
        // avg = (2000 << 9) >> 2 = 256000; (256000 + 511) >> 10 = 250
        assert_eq!(e.read().inpkts, 250);
        e.zero(CounterValues {
            inpkts: 2000,
            ..Default::default()
        });
        assert_eq!(e.read(), CounterValues::default());
    }
}
