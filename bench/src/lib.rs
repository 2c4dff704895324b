//! xvs-bench: the packet generator and the harness that runs xvs against its peers.
//!
//! Modules: [`pkt`] builds and parses the generated frames, [`hist`] is the sink's latency
//! histogram, [`report`] the JSON both sides write. The binaries are `xvs-pktgen` (generator,
//! sink and the bare AF_XDP forwarder, the I/O floor) and `xvs-bench` (the harness).
#![forbid(unsafe_code)]

pub mod hist;
pub mod pkt;
pub mod report;
pub mod scaling;
