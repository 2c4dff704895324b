//! Schedulers: pick a dest for a new connection, exactly as the kernel's `ip_vs_<name>.c` do.
//!
//! Interface split (IPVS's `add_dest`/`del_dest`/`upd_dest` collapse into one rebuild): the
//! control side calls [`AnyScheduler::build`] for every snapshot (may allocate: Maglev and hash
//! tables); each worker keeps its own clone per service and calls [`AnyScheduler::pick`] per new
//! connection (no allocation, no lock). Scheduler *position* (rr cursor, wrr current weight, lblc
//! table) is per worker; with one worker every decision equals the kernel's. When a worker adopts
//! a new snapshot it calls [`AnyScheduler::inherit`] so the position survives the edit the way the
//! kernel's dest hooks keep it.
//!
//! Never: allocate, lock, log or panic in `pick`.

use crate::flow::FlowKey;
use crate::service::Dest;

/// Errors building a scheduler.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchedError {
    /// No scheduler of that name (ipvsadm: "Scheduler not found").
    #[error("unknown scheduler {0:?}")]
    Unknown(String),
}

/// The scheduler names ipvsadm `-s` accepts, in the kernel's order.
pub const NAMES: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

/// One of the schedulers, dispatched by `match`.
#[derive(Clone, Debug)]
pub enum AnyScheduler {
    /// Placeholder until the schedulers land.
    None,
}

impl AnyScheduler {
    /// Build the scheduler `name` for a service with flags `svc_flags` and dests in list order.
    pub fn build(name: &str, svc_flags: u32, dests: &[Dest]) -> Result<Self, SchedError> {
        let _ = (svc_flags, dests);
        if NAMES.contains(&name) {
            Ok(Self::None)
        } else {
            Err(SchedError::Unknown(name.into()))
        }
    }

    /// Carry the per-worker position of `old` (built for `old_dests`) into `self` (built for
    /// `new_dests`), as the kernel's add/del/upd_dest hooks would.
    pub fn inherit(&mut self, old: &Self, old_dests: &[Dest], new_dests: &[Dest]) {
        let _ = (old, old_dests, new_dests);
    }

    /// Pick a dest (index into `dests`) for the new connection `key` at time `now_ms`;
    /// `None` when no dest is available.
    pub fn pick(&mut self, dests: &[Dest], key: &FlowKey, now_ms: u64) -> Option<usize> {
        let _ = (key, now_ms);
        if dests.is_empty() { None } else { Some(0) }
    }
}
