//! Test helpers: dests with given weights and counters, flow keys.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::flow::{FlowKey, proto};
use crate::service::{Dest, DestConf, DestId, DestState, FwdMode, TunConf, dest_flags};

/// A dest `10.0.0.(i+1):80` with weight `w` and id `i`.
pub(crate) fn dest(i: u32, w: i32) -> Dest {
    let o = u8::try_from(i + 1).unwrap();
    dest_at(i, IpAddr::V4(Ipv4Addr::new(10, 0, 0, o)), 80, w)
}

/// A dest at `addr:port` with weight `w` and id `i`.
pub(crate) fn dest_at(i: u32, addr: IpAddr, port: u16, w: i32) -> Dest {
    let conf = DestConf {
        addr,
        port,
        fwd: FwdMode::Route,
        weight: w,
        u_threshold: 0,
        l_threshold: 0,
        tun: TunConf::default(),
    };
    let state = Arc::new(DestState::new(&conf, 1));
    Dest {
        id: DestId(i),
        conf,
        state,
    }
}

/// Dests with these weights, ids 0.., in list order.
pub(crate) fn dests(ws: &[i32]) -> Vec<Dest> {
    ws.iter()
        .enumerate()
        .map(|(i, &w)| dest(u32::try_from(i).unwrap(), w))
        .collect()
}

/// Set a dest's active and inactive counts.
pub(crate) fn set_conns(d: &Dest, active: u32, inactive: u32) {
    d.state.activeconns.store(active, Ordering::Relaxed);
    d.state.inactconns.store(inactive, Ordering::Relaxed);
}

/// Set or clear the overload flag.
pub(crate) fn set_overloaded(d: &Dest, on: bool) {
    if on {
        d.state
            .flags
            .fetch_or(dest_flags::OVERLOAD, Ordering::Relaxed);
    } else {
        d.state
            .flags
            .fetch_and(!dest_flags::OVERLOAD, Ordering::Relaxed);
    }
}

/// A TCP key from `src:sport` to 192.168.0.1:80.
pub(crate) fn key_v4(src: [u8; 4], sport: u16) -> FlowKey {
    FlowKey {
        proto: proto::TCP,
        src: IpAddr::V4(Ipv4Addr::from(src)),
        dst: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
        sport,
        dport: 80,
    }
}

/// A TCP key from 172.16.0.1:1234 to `dst:80` (for dh, lblc, lblcr).
pub(crate) fn key_to(dst: [u8; 4]) -> FlowKey {
    FlowKey {
        proto: proto::TCP,
        src: IpAddr::V4(Ipv4Addr::new(172, 16, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::from(dst)),
        sport: 1234,
        dport: 80,
    }
}

/// Replace a dest's weight (a new `Dest` sharing the same state, as an edit does).
pub(crate) fn with_weight(d: &Dest, w: i32) -> Dest {
    let mut n = d.clone();
    n.conf.weight = w;
    n.state.set_weight(w);
    n
}
