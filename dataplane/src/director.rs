//! The director: the runtime state shared by the control thread and the workers.
//!
//! It owns the published [`Snapshot`] (swapped atomically; workers load it between bursts), the
//! dest registry that keeps each dest's identity and counters across edits, and the rate
//! estimators. The control plane validates ipvsadm commands against its [`Config`] and then calls
//! [`Director::apply`] with the complete new configuration; nothing here knows ipvsadm syntax.
//!
//! Invariants: `apply` either publishes a complete snapshot or changes nothing. A dest keeps its
//! `DestId` and `Arc<DestState>` while it is configured; a deleted dest's state stays alive while
//! conns hold it (the kernel's dest trash) and comes back if the same dest is re-added.
//! Never: block a worker. Workers only ever `load` the snapshot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;

use crate::sched::{AnyScheduler, SchedError};
use crate::service::{
    Config, CounterValues, Dest, DestId, DestState, Service, ServiceId, ServiceKey, ServiceState,
    Snapshot, dest_flags,
};

/// Errors applying a configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApplyError {
    /// A service names a scheduler that does not exist.
    #[error(transparent)]
    Sched(#[from] SchedError),
}

/// Counters of one dest or service as `-L --stats/--rate` shows them.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ListCounters {
    /// Totals since start or `-Z`.
    pub stats: CounterValues,
    /// Rates from the 2-second estimator (conns/s, pkts/s, bytes/s).
    pub rate: CounterValues,
}

/// A dest's live numbers.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct DestCounters {
    /// ActiveConn.
    pub activeconns: u32,
    /// InActConn.
    pub inactconns: u32,
    /// PersistConn.
    pub persistconns: u32,
    /// Packet and byte counters.
    pub counters: ListCounters,
}

type DestKey = (ServiceKey, IpAddr, u16);

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct Registry {
    services: HashMap<ServiceKey, (ServiceId, Arc<ServiceState>)>,
    dests: HashMap<DestKey, (DestId, Arc<DestState>)>,
    next_service: u32,
    next_dest: u32,
}

/// Runtime state shared by the control thread and the workers.
#[derive(Debug)]
pub struct Director {
    snapshot: ArcSwap<Snapshot>,
    registry: std::sync::Mutex<Registry>,
    workers: usize,
}

impl Director {
    /// A director for `workers` workers with an empty configuration.
    #[must_use]
    pub fn new(workers: usize) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(Snapshot::empty()),
            registry: std::sync::Mutex::new(Registry::default()),
            workers: workers.max(1),
        }
    }

    /// Number of worker counter slots.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The current snapshot (workers call this between bursts).
    #[inline]
    #[must_use]
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The current snapshot if it is not `current`, else `None`. Workers call this every turn:
    /// unlike [`Self::snapshot`] it touches no shared reference count when nothing changed.
    #[inline]
    #[must_use]
    pub fn snapshot_if_changed(&self, current: &Arc<Snapshot>) -> Option<Arc<Snapshot>> {
        let g = self.snapshot.load();
        if Arc::ptr_eq(&g, current) {
            None
        } else {
            Some(arc_swap::Guard::into_inner(g))
        }
    }

    /// Build and publish a snapshot for `config`. On error nothing changes.
    pub fn apply(&self, config: &Config) -> Result<(), ApplyError> {
        let mut reg = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let generation = self.snapshot.load().generation + 1;
        // Build schedulers first so a bad name changes nothing.
        let mut built = Vec::with_capacity(config.services.len());
        for sc in &config.services {
            let mut dests = Vec::with_capacity(sc.dests.len());
            for dc in &sc.dests {
                let key = (sc.key, dc.addr, dc.port);
                let (id, state) = match reg.dests.get(&key) {
                    Some((id, st)) => (*id, Arc::clone(st)),
                    None => {
                        let id = DestId(reg.next_dest);
                        (id, Arc::new(DestState::new(dc, self.workers)))
                    }
                };
                if id.0 == reg.next_dest {
                    reg.next_dest += 1;
                }
                dests.push(Dest {
                    id,
                    conf: dc.clone(),
                    state,
                });
            }
            let sched = AnyScheduler::build(&sc.sched_name, sc.flags, &dests)?;
            built.push((sc, dests, sched));
        }
        let mut services = Vec::with_capacity(built.len());
        let mut live_dests: HashMap<DestKey, (DestId, Arc<DestState>)> = HashMap::new();
        let mut live_services = HashMap::new();
        for (sc, dests, sched) in built {
            let (id, state) = match reg.services.get(&sc.key) {
                Some((id, st)) => (*id, Arc::clone(st)),
                None => {
                    let id = ServiceId(reg.next_service);
                    reg.next_service += 1;
                    (id, Arc::new(ServiceState::new(self.workers)))
                }
            };
            for d in &dests {
                let st = &d.state;
                st.set_weight(d.conf.weight);
                // __ip_vs_update_dest: an upper threshold removed or raised clears OVERLOAD.
                let old_u = st.u_threshold.load(Ordering::Relaxed);
                if d.conf.u_threshold == 0 || d.conf.u_threshold > old_u {
                    st.flags.fetch_and(!dest_flags::OVERLOAD, Ordering::Relaxed);
                }
                st.u_threshold.store(d.conf.u_threshold, Ordering::Relaxed);
                st.l_threshold.store(d.conf.l_threshold, Ordering::Relaxed);
                st.flags.fetch_or(dest_flags::AVAILABLE, Ordering::Relaxed);
                live_dests.insert((sc.key, d.conf.addr, d.conf.port), (d.id, Arc::clone(st)));
            }
            live_services.insert(sc.key, (id, Arc::clone(&state)));
            services.push(Service {
                id,
                conf: sc.clone(),
                dests,
                sched,
                state,
            });
        }
        // Dests that left the configuration: unavailable; kept while conns hold them.
        for (key, (_, st)) in &reg.dests {
            if !live_dests.contains_key(key) {
                st.flags
                    .fetch_and(!dest_flags::AVAILABLE, Ordering::Relaxed);
                if Arc::strong_count(st) > 1 {
                    live_dests
                        .entry(*key)
                        .or_insert_with(|| (reg.dests[key].0, Arc::clone(st)));
                }
            }
        }
        reg.dests = live_dests;
        reg.services = live_services;
        let snap = Snapshot::new(generation, services, config.timeouts);
        self.snapshot.store(Arc::new(snap));
        Ok(())
    }

    /// Live numbers of a configured dest (`None` if it is not configured).
    #[must_use]
    pub fn dest_counters(&self, svc: &ServiceKey, addr: IpAddr, port: u16) -> Option<DestCounters> {
        let snap = self.snapshot();
        let s = snap.service(svc)?;
        let d = s
            .dests
            .iter()
            .find(|d| d.conf.addr == addr && d.conf.port == port)?;
        Some(DestCounters {
            activeconns: d.activeconns(),
            inactconns: d.inactconns(),
            persistconns: d.state.persistconns.load(Ordering::Relaxed),
            counters: ListCounters {
                stats: d.state.stats.sum(),
                rate: lock(&d.state.est).read(),
            },
        })
    }

    /// Counters of a configured service.
    #[must_use]
    pub fn service_counters(&self, svc: &ServiceKey) -> Option<ListCounters> {
        let snap = self.snapshot();
        let s = snap.service(svc)?;
        Some(ListCounters {
            stats: s.state.stats.sum(),
            rate: lock(&s.state.est).read(),
        })
    }

    /// Zero the counters and rate estimators of one service (and its dests) or of everything
    /// (`-Z`).
    pub fn zero(&self, svc: Option<&ServiceKey>) {
        let snap = self.snapshot();
        for s in snap
            .services
            .iter()
            .filter(|s| svc.is_none_or(|k| *k == s.conf.key))
        {
            s.state.stats.zero();
            lock(&s.state.est).zero(s.state.stats.sum());
            for d in &s.dests {
                d.state.stats.zero();
                lock(&d.state.est).zero(d.state.stats.sum());
            }
        }
    }

    /// One tick of every rate estimator (call every [`crate::stats::RATE_TICK_MS`]).
    pub fn estimate(&self) {
        let snap = self.snapshot();
        for s in &snap.services {
            lock(&s.state.est).update(s.state.stats.sum());
            for d in &s.dests {
                lock(&d.state.est).update(d.state.stats.sum());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{DestConf, FwdMode, Protocol, ServiceConf, TunConf};

    fn config(u: u32) -> Config {
        Config {
            services: vec![ServiceConf {
                key: ServiceKey::Inet {
                    proto: Protocol::Tcp,
                    addr: "10.0.0.1".parse().unwrap(),
                    port: 80,
                },
                sched_name: "wlc".into(),
                flags: 0,
                timeout_s: 0,
                netmask: u32::MAX,
                pe_name: None,
                dests: vec![DestConf {
                    addr: "10.0.0.2".parse().unwrap(),
                    port: 80,
                    fwd: FwdMode::Masq,
                    weight: 1,
                    u_threshold: u,
                    l_threshold: 0,
                    tun: TunConf::default(),
                }],
                laddrs: vec![],
            }],
            ..Config::default()
        }
    }

    #[test]
    fn snapshot_v4_index_finds_services_and_tells_vips_from_local_addresses() {
        let mut cfg = config(0);
        let mut fnat = cfg.services[0].clone();
        fnat.key = ServiceKey::Inet {
            proto: Protocol::Udp,
            addr: "10.0.0.9".parse().unwrap(),
            port: 0,
        };
        // A FULLNAT local address that is also the first service's VIP.
        fnat.laddrs = vec!["10.0.0.1".parse().unwrap()];
        cfg.services.push(fnat);
        let d = Director::new(1);
        d.apply(&cfg).unwrap();
        let snap = d.snapshot();
        let a = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(snap.find(Protocol::Tcp, a("10.0.0.1"), 80), Some(0));
        assert_eq!(snap.find(Protocol::Tcp, a("10.0.0.1"), 81), None);
        assert_eq!(snap.find(Protocol::Udp, a("10.0.0.1"), 80), None);
        // Port 0: any port of the VIP.
        assert_eq!(snap.find(Protocol::Udp, a("10.0.0.9"), 53), Some(1));
        let bits = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap().to_bits();
        // 10.0.0.1 is also a LIP: replies may be addressed to it.
        assert!(!snap.vip_only_v4(bits("10.0.0.1")));
        assert!(snap.vip_only_v4(bits("10.0.0.9")));
        assert!(!snap.vip_only_v4(bits("10.0.0.2")));
    }

    #[test]
    fn dest_identity_survives_edits_and_raising_the_upper_threshold_clears_overload() {
        let d = Director::new(1);
        d.apply(&config(2)).unwrap();
        let st = Arc::clone(&d.snapshot().services[0].dests[0].state);
        st.bind(false, true);
        st.bind(false, true);
        assert!(st.is_overloaded(), "2 conns reach -x 2");
        d.apply(&config(2)).unwrap();
        assert!(
            Arc::ptr_eq(&st, &d.snapshot().services[0].dests[0].state),
            "same dest state"
        );
        assert!(st.is_overloaded(), "unchanged threshold keeps the flag");
        d.apply(&config(5)).unwrap();
        assert!(!st.is_overloaded(), "raised threshold clears it");
        st.bind(false, true);
        st.bind(false, true);
        st.bind(false, true);
        assert!(st.is_overloaded());
        d.apply(&config(0)).unwrap();
        assert!(!st.is_overloaded(), "removed threshold clears it");
    }

    #[test]
    fn an_unknown_scheduler_changes_nothing() {
        let d = Director::new(1);
        d.apply(&config(0)).unwrap();
        let g = d.snapshot().generation;
        let mut bad = config(0);
        bad.services[0].sched_name = "nope".into();
        assert!(d.apply(&bad).is_err());
        assert_eq!(d.snapshot().generation, g);
    }
}
