//! Schedulers: pick a dest for a new connection, exactly as the kernel's `ip_vs_<name>.c` do.
//!
//! Interface split (IPVS's `add_dest`/`del_dest`/`upd_dest` collapse into one rebuild): the
//! control side calls [`AnyScheduler::build`] for every snapshot (may allocate: Maglev and hash
//! tables, the lblc/lblcr per-worker tables); each worker keeps its own clone per service and
//! calls [`AnyScheduler::pick`] per new connection (no allocation, no lock, no panic). Scheduler
//! *position* (rr cursor, wrr current weight, lblc/lblcr tables, twos generator) is per worker;
//! with one worker every decision equals the kernel's. When a worker adopts a new snapshot it
//! calls [`AnyScheduler::inherit`] so the position survives the edit the way the kernel's dest
//! hooks keep it.
//!
//! # The dest list order (what the control plane must keep)
//! The kernel links a new dest at the **head** of `svc->destinations`:
//! `__ip_vs_update_dest(svc, dest, udest, add=1)` does
//! `list_add_rcu(&dest->n_list, &svc->destinations)` (`ip_vs_ctl.c`), both for a brand new dest
//! (`ip_vs_new_dest`) and for one brought back from the dest trash. An edit (`-e`) calls the
//! same function with `add=0` and does not move the dest; a delete unlinks it in place. So the
//! list is in **reverse order of addition**: after `-a` of A, then B, then C the list (and the
//! `dests` slice every function here receives, and `ServiceConf.dests`) is `[C, B, A]`. Every
//! scheduler walks it from the head, so this order decides rr/wrr sequences, lc/wlc ties, the
//! sh/dh/mh tables. (`ipvsadm -L` shows dests sorted by libipvs, not in this order.)
//!
//! # Lifecycle contract for the worker
//! - A service new to the worker (new `ServiceId`): clone `Service::sched` and use it.
//! - A service the worker already ran: clone the new snapshot's scheduler, then call
//!   `new.inherit(&old, old_dests, new_dests)`. When nothing about the dests changed this is an
//!   exact copy of the old position; when the dests changed it applies what the kernel's hooks
//!   do; when the scheduler kind changed (`-E -s`) it re-initialises as `init_service` would.
//!   Exactness holds when each snapshot carries one ipvsadm edit (the kernel runs one hook per
//!   edit); several edits folded into one snapshot are applied as one.
//! - [`AnyScheduler::seed`] sets the twos generator per worker (other kinds ignore it).
//!
//! Dests are read through the snapshot's [`Dest`]: `conf.weight` is the kernel's
//! `atomic_read(&dest->weight)`; conn counters and the overload flag are live atomics.
//!
//! Never: allocate, lock, log or panic in `pick`; index a slice without a bound check.

use std::net::IpAddr;

use crate::flow::{FlowKey, proto};
use crate::service::Dest;

pub mod dh;
pub mod fo;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod locality;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod twos;
pub mod wlc;
pub mod wrr;

#[cfg(test)]
pub(crate) mod testutil;

/// Errors building a scheduler.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchedError {
    /// No scheduler of that name (ipvsadm: "Scheduler not found").
    #[error("unknown scheduler {0:?}")]
    Unknown(String),
    /// More dests than the Maglev table has slots (the kernel's `ip_vs_mh_reassign` returns
    /// -EINVAL and keeps its old table; we refuse the configuration instead).
    #[error("too many dests for the mh table: {dests} > {max}")]
    TooManyDests {
        /// Dests in the service.
        dests: usize,
        /// Table size.
        max: usize,
    },
}

/// The scheduler names ipvsadm `-s` accepts, in the kernel's order.
pub const NAMES: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

/// One of the schedulers, dispatched by `match`.
#[derive(Clone, Debug)]
pub enum AnyScheduler {
    /// Round robin (`ip_vs_rr.c`).
    Rr(rr::Rr),
    /// Weighted round robin (`ip_vs_wrr.c`).
    Wrr(wrr::Wrr),
    /// Least connection (`ip_vs_lc.c`).
    Lc(lc::Lc),
    /// Weighted least connection (`ip_vs_wlc.c`), the default.
    Wlc(wlc::Wlc),
    /// Locality-based least connection (`ip_vs_lblc.c`).
    Lblc(lblc::Lblc),
    /// Locality-based least connection with replication (`ip_vs_lblcr.c`).
    Lblcr(lblcr::Lblcr),
    /// Destination hashing (`ip_vs_dh.c`).
    Dh(dh::Dh),
    /// Source hashing (`ip_vs_sh.c`).
    Sh(sh::Sh),
    /// Shortest expected delay (`ip_vs_sed.c`).
    Sed(sed::Sed),
    /// Never queue (`ip_vs_nq.c`).
    Nq(nq::Nq),
    /// Weighted fail over (`ip_vs_fo.c`).
    Fo(fo::Fo),
    /// Overflow connection (`ip_vs_ovf.c`).
    Ovf(ovf::Ovf),
    /// Maglev hashing (`ip_vs_mh.c`).
    Mh(mh::Mh),
    /// Power of two choices (`ip_vs_twos.c`).
    Twos(twos::Twos),
}

impl AnyScheduler {
    /// Build the scheduler `name` for a service with flags `svc_flags` (see
    /// `service::svc_flags`) and dests in the kernel's list order (head first).
    ///
    /// The result is the state a kernel service has after `-A` and one `-a` per dest in list
    /// order reversed (the order they were added), which is what a restore file produces.
    pub fn build(name: &str, svc_flags: u32, dests: &[Dest]) -> Result<Self, SchedError> {
        Ok(match name {
            "rr" => Self::Rr(rr::Rr::build(dests)),
            "wrr" => Self::Wrr(wrr::Wrr::build(dests)),
            "lc" => Self::Lc(lc::Lc),
            "wlc" => Self::Wlc(wlc::Wlc),
            "lblc" => Self::Lblc(lblc::Lblc::build()),
            "lblcr" => Self::Lblcr(lblcr::Lblcr::build()),
            "dh" => Self::Dh(dh::Dh::build(dests)),
            "sh" => Self::Sh(sh::Sh::build(svc_flags, dests)),
            "sed" => Self::Sed(sed::Sed),
            "nq" => Self::Nq(nq::Nq),
            "fo" => Self::Fo(fo::Fo),
            "ovf" => Self::Ovf(ovf::Ovf),
            "mh" => Self::Mh(mh::Mh::build(svc_flags, dests)?),
            "twos" => Self::Twos(twos::Twos::build(dests)),
            _ => return Err(SchedError::Unknown(name.into())),
        })
    }

    /// The ipvsadm `-s` name.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Rr(_) => "rr",
            Self::Wrr(_) => "wrr",
            Self::Lc(_) => "lc",
            Self::Wlc(_) => "wlc",
            Self::Lblc(_) => "lblc",
            Self::Lblcr(_) => "lblcr",
            Self::Dh(_) => "dh",
            Self::Sh(_) => "sh",
            Self::Sed(_) => "sed",
            Self::Nq(_) => "nq",
            Self::Fo(_) => "fo",
            Self::Ovf(_) => "ovf",
            Self::Mh(_) => "mh",
            Self::Twos(_) => "twos",
        }
    }

    /// Carry the per-worker position of `old` (built for `old_dests`) into `self` (built for
    /// `new_dests`), as the kernel's add/del/upd_dest hooks would. If `old` is another kind of
    /// scheduler (`-E -s`), `self` is re-initialised as the kernel's `init_service` would with
    /// the dests already in place. Does not allocate.
    pub fn inherit(&mut self, old: &Self, old_dests: &[Dest], new_dests: &[Dest]) {
        match (self, old) {
            (Self::Rr(new), Self::Rr(old)) => new.inherit(old, old_dests, new_dests),
            (Self::Wrr(new), Self::Wrr(old)) => new.inherit(old, old_dests, new_dests),
            (Self::Lblc(new), Self::Lblc(old)) => new.inherit(old),
            (Self::Lblcr(new), Self::Lblcr(old)) => new.inherit(old),
            (Self::Twos(new), Self::Twos(old)) => new.inherit(old),
            // A scheduler change: init_service with all dests present.
            (Self::Wrr(new), _) => new.reinit(new_dests),
            // Stateless per worker (hash tables are rebuilt at build; lc & co keep nothing),
            // or a kind change where the built state already is the initial one.
            _ => {}
        }
    }

    /// Seed the per-worker random generator (twos only; the others ignore it). Give each
    /// worker and service its own seed, e.g. `(service id << 32) | worker index`.
    pub fn seed(&mut self, seed: u64) {
        if let Self::Twos(t) = self {
            t.seed(seed);
        }
    }

    /// Pick a dest (index into `dests`, the slice this scheduler was built for) for the new
    /// connection `key` at time `now_ms` (monotonic milliseconds); `None` when no dest is
    /// available.
    #[inline]
    pub fn pick(&mut self, dests: &[Dest], key: &FlowKey, now_ms: u64) -> Option<usize> {
        match self {
            Self::Rr(s) => s.pick(dests),
            Self::Wrr(s) => s.pick(dests),
            Self::Lc(_) => lc::pick(dests),
            Self::Wlc(_) => wlc::pick(dests),
            Self::Lblc(s) => s.pick(dests, key, now_ms),
            Self::Lblcr(s) => s.pick(dests, key, now_ms),
            Self::Dh(s) => s.pick(dests, key),
            Self::Sh(s) => s.pick(dests, key),
            Self::Sed(_) => sed::pick(dests),
            Self::Nq(_) => nq::pick(dests),
            Self::Fo(_) => fo::pick(dests),
            Self::Ovf(_) => ovf::pick(dests),
            Self::Mh(s) => s.pick(dests, key),
            Self::Twos(s) => s.pick(dests),
        }
    }
}

// ---- helpers shared by the schedulers (the kernel's include/net/ip_vs.h and linux/hash.h) ----

/// `ip_vs_dest_conn_overhead`: `(activeconns << 8) + inactconns`, in the kernel's 32-bit
/// arithmetic (wrapping, as the C does on overflow).
#[inline]
pub(crate) fn conn_overhead(d: &Dest) -> u32 {
    (d.activeconns() << 8).wrapping_add(d.inactconns())
}

/// The overhead as the `int loh, doh` of wlc/lblc/lblcr hold it, widened for the `(__s64)`
/// products.
#[inline]
pub(crate) fn conn_overhead_s64(d: &Dest) -> i64 {
    // The C stores the unsigned overhead in an int: reinterpret the bits.
    #[allow(clippy::cast_possible_wrap)]
    let oh = conn_overhead(d) as i32;
    i64::from(oh)
}

/// `activeconns` as the kernel's `atomic_read` (an int) sees it.
#[inline]
pub(crate) fn active_i32(d: &Dest) -> i32 {
    #[allow(clippy::cast_possible_wrap)]
    let a = d.activeconns() as i32;
    a
}

/// `hash_32(val, bits)` of `linux/hash.h`: multiply by `GOLDEN_RATIO_32`, keep the top bits.
#[inline]
pub(crate) const fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// The kernel's address fold for hashing (`addr_fold` in ip_vs_sh/dh/mh/lblc): the IPv4
/// address in host order, or the XOR of an IPv6 address's four 32-bit words (XOR commutes with
/// `ntohl`, so folding host-order words is the same).
#[inline]
pub(crate) fn addr_fold(addr: &IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(*a),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            w(0) ^ w(4) ^ w(8) ^ w(12)
        }
    }
}

/// The source port sh-port / mh-port hash: TCP, UDP and SCTP only, else 0
/// (`ip_vs_sh_get_port`).
#[inline]
pub(crate) fn hash_port(key: &FlowKey) -> u16 {
    match key.proto {
        proto::TCP | proto::UDP | proto::SCTP => key.sport,
        _ => 0,
    }
}

/// Greatest common divisor (the kernel's `gcd()` on positive ints).
pub(crate) const fn gcd(mut a: i32, mut b: i32) -> i32 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// Marker for "no dest" in index tables.
pub(crate) const NO_DEST: u32 = u32::MAX;

/// Index of a dest as stored in tables (dest counts are far below `u32::MAX`).
#[inline]
pub(crate) fn idx_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(NO_DEST)
}

#[cfg(test)]
mod tests {
    use super::testutil::{dests, key_v4};
    use super::*;

    #[test]
    fn every_name_builds_and_reports_its_name() {
        let ds = dests(&[1, 2, 3]);
        for n in NAMES {
            let mut s = AnyScheduler::build(n, 0, &ds).unwrap();
            assert_eq!(s.name(), *n);
            assert!(
                s.pick(&ds, &key_v4([10, 0, 0, 1], 1000), 0).is_some(),
                "{n}"
            );
        }
        assert_eq!(
            AnyScheduler::build("bogus", 0, &ds).unwrap_err(),
            SchedError::Unknown("bogus".into())
        );
    }

    #[test]
    fn every_scheduler_returns_none_without_dests() {
        for n in NAMES {
            let mut s = AnyScheduler::build(n, 0, &[]).unwrap();
            assert_eq!(s.pick(&[], &key_v4([10, 0, 0, 1], 1000), 0), None, "{n}");
        }
    }

    proptest::proptest! {
        /// With flags fixed, no scheduler ever hands a new conn to a quiesced (weight 0) or
        /// overloaded dest, with or without the scheduler flags.
        #[test]
        fn quiesced_and_overloaded_never_picked(
            spec in proptest::collection::vec((0i32..4, proptest::bool::weighted(0.3), 0u32..5, 0u32..9), 1..10),
            flags in 0u32..4,
            clients in proptest::collection::vec(proptest::prelude::any::<[u8; 4]>(), 1..24),
        ) {
            let ds = dests(&spec.iter().map(|s| s.0).collect::<Vec<_>>());
            for (d, s) in ds.iter().zip(&spec) {
                super::testutil::set_overloaded(d, s.1);
                super::testutil::set_conns(d, s.2, s.3);
            }
            let any_ok = ds.iter().any(|d| d.weight() > 0 && !d.is_overloaded());
            for n in NAMES {
                let mut s = AnyScheduler::build(n, flags << 3, &ds).unwrap();
                for (t, c) in clients.iter().enumerate() {
                    let mut k = key_v4(*c, 1000);
                    k.dst = k.src;
                    match s.pick(&ds, &k, t as u64) {
                        Some(i) => proptest::prop_assert!(
                            ds[i].weight() > 0 && !ds[i].is_overloaded(), "{} picked {}", n, i
                        ),
                        // Only the hashing schedulers and ovf (active > weight) may fail while a dest is
                        // usable.
                        None => proptest::prop_assert!(
                            !any_ok || ["sh", "dh", "mh", "ovf"].contains(n), "{} found none", n
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn scheduler_change_reinitialises_wrr() {
        // Added as 2 then 4 (list B4, A2): built cw 1; after "-E -s wrr" from rr, cw = mw = 3.
        let ds = vec![super::testutil::dest(1, 4), super::testutil::dest(0, 2)];
        let old = AnyScheduler::build("rr", 0, &ds).unwrap();
        let mut fresh = AnyScheduler::build("wrr", 0, &ds).unwrap();
        let mut changed = fresh.clone();
        changed.inherit(&old, &ds, &ds);
        let k = key_v4([1, 1, 1, 1], 1);
        let a: Vec<_> = (0..4).map(|_| fresh.pick(&ds, &k, 0)).collect();
        let b: Vec<_> = (0..4).map(|_| changed.pick(&ds, &k, 0)).collect();
        assert_eq!(a, [Some(0), Some(1), Some(0), Some(0)]);
        assert_eq!(b, [Some(0), Some(0), Some(1), Some(0)]);
    }

    #[test]
    fn hash_32_matches_the_golden_ratio_definition() {
        // hash_32(1, 8) = top 8 bits of 0x61C88647.
        assert_eq!(hash_32(1, 8), 0x61);
        // 2 * 0x61C88647 = 0xC3910C8E, top 10 bits 0b1100001110.
        assert_eq!(hash_32(2, 10), 0x30E);
        assert_eq!(hash_32(0, 8), 0);
    }

    #[test]
    fn ipv6_fold_is_xor_of_words() {
        let a: IpAddr = "2001:db8::1:2".parse().unwrap();
        assert_eq!(addr_fold(&a), 0x2001_0db8 ^ 0x0001_0002);
        let b: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(addr_fold(&b), 0x0a01_0203);
    }

    #[test]
    fn overhead_is_active_times_256_plus_inactive() {
        let ds = dests(&[1]);
        ds[0]
            .state
            .activeconns
            .store(3, std::sync::atomic::Ordering::Relaxed);
        ds[0]
            .state
            .inactconns
            .store(7, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(conn_overhead(&ds[0]), 3 * 256 + 7);
    }
}
