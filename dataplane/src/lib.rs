//! xvs-dataplane: everything a worker runs.
//!
//! The Linux IP Virtual Server rebuilt as a userspace, run-to-completion pipeline. Layers only call
//! downward: `wire` (typed zero-copy views, checksums) <- `conn`, `sched`, `fwd`, `neigh`
//! <- `worker` (the per-core loop, generic over [`io::PacketIo`]). The control plane lives in the
//! `xvs-control` crate and talks to workers only through immutable [`service::Snapshot`]s.
//!
//! Invariants: nothing on the per-packet path allocates, locks across a burst, logs or makes a
//! syscall other than the AF_XDP wakeup kick; untrusted bytes are only read through
//! `new_checked` views; every drop is a counted [`stats::DropReason`].
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod conn;
pub mod director;
pub mod flow;
pub mod fwd;
pub mod io;
pub mod neigh;
pub mod sched;
pub mod service;
pub mod stats;
pub mod wire;
pub mod worker;

#[cfg(any(test, feature = "testutil"))]
pub mod testutil;
