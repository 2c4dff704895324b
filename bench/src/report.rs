//! The JSON reports `xvs-pktgen` writes (generator and sink) and the harness reads back.
//!
//! Invariants: field names are stable (the harness and any script parse them); every rate is
//! computed by the side that measured it, over its own active window.

use serde::{Deserialize, Serialize};

/// What the generator did.
#[derive(Serialize, Deserialize, Debug, Default, Clone)]
pub struct GenReport {
    /// Traffic kind: `udp`, `syn` or `tcp`.
    pub kind: String,
    /// Flows (udp, tcp) or client addresses (syn).
    pub flows: u32,
    /// Rate limit in packets per second, 0 for flat out.
    pub rate: u64,
    /// SYNs sent while opening connections (tcp kind).
    pub open_sent: u64,
    /// Frames handed to the NIC in the measured phase.
    pub sent: u64,
    /// Length of the measured phase, seconds.
    pub secs: f64,
    /// `sent / secs`.
    pub pps: f64,
    /// Bytes per frame on average (without FCS).
    pub avg_frame: f64,
}

/// What the sink saw.
#[derive(Serialize, Deserialize, Debug, Default, Clone)]
pub struct SinkReport {
    /// Frames received (SYNs included, answered or not).
    pub rx: u64,
    /// Seconds from the first to the last frame received.
    pub active_secs: f64,
    /// `rx / active_secs`.
    pub pps: f64,
    /// Frames that reached the sink's sockets but were dropped there (ring full, no frame):
    /// delivered by the system under test, not counted in `rx`.
    pub xsk_dropped: u64,
    /// Frames that were not Ethernet/IPv4(/ipip)/UDP-or-TCP (not in `rx`).
    pub unparsed: u64,
    /// The first such frame, hex, up to 80 bytes (diagnosis).
    pub first_unparsed: String,
    /// `(rx + xsk_dropped + unparsed) / active_secs`: what the system under test delivered.
    pub delivered_pps: f64,
    /// SYNs received (new connections that made it through).
    pub syns: u64,
    /// `syns / active_secs`.
    pub syn_rate: f64,
    /// SYN-ACKs sent back.
    pub synacks: u64,
    /// Frames that carried a generator stamp.
    pub stamped: u64,
    /// Distinct flows seen (by stamp).
    pub flows_seen: u64,
    /// Fewest frames of a flow seen at least once.
    pub flow_min: u64,
    /// Most frames of one flow.
    pub flow_max: u64,
    /// Frames per destination address (which real server got what).
    pub per_dst: Vec<(String, u64)>,
    /// Latency percentiles in nanoseconds (generator stamp to sink receive).
    pub lat_p50_ns: u64,
    /// 99th percentile.
    pub lat_p99_ns: u64,
    /// 99.9th percentile.
    pub lat_p999_ns: u64,
    /// Largest latency seen.
    pub lat_max_ns: u64,
    /// The latency CDF: (nanoseconds, fraction at or below).
    pub lat_cdf: Vec<(u64, f64)>,
}
