//! The fixed director the fixture, allocation and churn tests run: two ports (clients on port 0,
//! real servers on port 1), static neighbours, and one service per forwarding mode and family.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::Arc;

use xvs_dataplane::conn::ConnTable;
use xvs_dataplane::director::Director;
use xvs_dataplane::io::mem::MemIo;
use xvs_dataplane::neigh::{NetConf, PortAddr, PortConf};
use xvs_dataplane::service::{
    Config, DestConf, FwdMode, Protocol, ServiceConf, ServiceKey, TunConf, TunType, svc_flags,
};
use xvs_dataplane::worker::{Shared, Worker};

pub const D0: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const D1: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const C_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
pub const R_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa1];
pub const R2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa2];

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn net() -> NetConf {
    let pa = |a: &str, p: u8| PortAddr {
        addr: ip(a),
        prefix: p,
    };
    NetConf {
        ports: vec![
            PortConf {
                name: "p0".into(),
                mac: D0,
                addrs: vec![pa("198.18.1.1", 24), pa("fd01::1", 64)],
                mtu: 1500,
            },
            PortConf {
                name: "p1".into(),
                mac: D1,
                addrs: vec![pa("198.18.2.1", 24), pa("fd02::1", 64)],
                mtu: 1500,
            },
        ],
        routes: vec![],
        neigh: vec![
            (ip("198.18.1.2"), C_MAC),
            (ip("fd01::2"), C_MAC),
            (ip("198.18.2.10"), R_MAC),
            (ip("fd02::10"), R_MAC),
            (ip("198.18.2.11"), R2_MAC),
            (ip("fd02::11"), R2_MAC),
        ],
    }
}

pub fn dest(addr: &str, port: u16, fwd: FwdMode) -> DestConf {
    DestConf {
        addr: ip(addr),
        port,
        fwd,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
        tun: TunConf::default(),
    }
}

pub fn service(
    proto: Protocol,
    vip: &str,
    port: u16,
    sched: &str,
    dests: Vec<DestConf>,
) -> ServiceConf {
    ServiceConf {
        key: ServiceKey::Inet {
            proto,
            addr: ip(vip),
            port,
        },
        sched_name: sched.into(),
        flags: 0,
        timeout_s: 0,
        netmask: 0xffff_ffff,
        pe_name: None,
        dests,
        laddrs: vec![],
    }
}

fn tun(kind: TunType, port: u16) -> DestConf {
    let mut d = dest("198.18.2.10", 80, FwdMode::Tunnel);
    d.tun = TunConf {
        kind,
        port,
        flags: 0,
    };
    d
}

/// One service per mode and family:
/// NAT 198.18.1.100:80 / [fd01::100]:80 -> RIP:8080; UDP NAT 198.18.1.100:53 -> RIP:5353;
/// DR .101; TUN ipip .102, gue .103 (port 6080), gre .104; FULLNAT .105 (LIP 198.18.2.200 /
/// fd02::200); persistent rr over two dests .106:443 (-p 300).
pub fn config() -> Config {
    use FwdMode::*;
    use Protocol::*;
    let mut fnat4 = service(
        Tcp,
        "198.18.1.105",
        80,
        "rr",
        vec![dest("198.18.2.10", 8080, FullNat)],
    );
    fnat4.laddrs = vec![ip("198.18.2.200")];
    let mut fnat6 = service(
        Tcp,
        "fd01::105",
        80,
        "rr",
        vec![dest("fd02::10", 8080, FullNat)],
    );
    fnat6.laddrs = vec![ip("fd02::200")];
    let mut persist = service(
        Tcp,
        "198.18.1.106",
        443,
        "rr",
        vec![
            dest("198.18.2.11", 443, Masq),
            dest("198.18.2.10", 443, Masq),
        ],
    );
    persist.flags = svc_flags::PERSISTENT;
    persist.timeout_s = 300;
    let mut tun6 = service(
        Tcp,
        "fd01::102",
        80,
        "rr",
        vec![dest("fd02::10", 80, Tunnel)],
    );
    tun6.dests[0].tun = TunConf::default();
    Config {
        services: vec![
            service(
                Tcp,
                "198.18.1.100",
                80,
                "rr",
                vec![dest("198.18.2.10", 8080, Masq)],
            ),
            service(
                Udp,
                "198.18.1.100",
                53,
                "rr",
                vec![dest("198.18.2.10", 5353, Masq)],
            ),
            service(
                Tcp,
                "fd01::100",
                80,
                "rr",
                vec![dest("fd02::10", 8080, Masq)],
            ),
            service(
                Tcp,
                "198.18.1.101",
                80,
                "rr",
                vec![dest("198.18.2.10", 80, Route)],
            ),
            service(
                Tcp,
                "fd01::101",
                80,
                "rr",
                vec![dest("fd02::10", 80, Route)],
            ),
            service(Tcp, "198.18.1.102", 80, "rr", vec![tun(TunType::Ipip, 0)]),
            service(Tcp, "198.18.1.103", 80, "rr", vec![tun(TunType::Gue, 6080)]),
            service(Tcp, "198.18.1.104", 80, "rr", vec![tun(TunType::Gre, 0)]),
            tun6,
            fnat4,
            fnat6,
            persist,
        ],
        ..Config::default()
    }
}

/// A worker over MemIo running `config()`.
pub fn worker() -> (Worker<MemIo>, Arc<Director>, Arc<ConnTable>) {
    worker_with(&config(), 1 << 16)
}

pub fn worker_with(
    cfg: &Config,
    max_conns: usize,
) -> (Worker<MemIo>, Arc<Director>, Arc<ConnTable>) {
    let director = Arc::new(Director::new(1));
    director.apply(cfg).unwrap();
    let conns = Arc::new(ConnTable::with_bits(12, max_conns, 1).unwrap());
    let shared =
        Arc::new(Shared::new(Arc::clone(&director), Arc::clone(&conns), net(), 1).unwrap());
    let io = MemIo::new(512, vec![D0, D1]);
    (Worker::new(0, io, shared), director, conns)
}

/// Inject one frame on `port`, run one turn at `now_ms`, return what was transmitted.
pub fn step(w: &mut Worker<MemIo>, port: u16, frame: &[u8], now_ms: u64) -> Vec<(u16, Vec<u8>)> {
    assert!(w.io_mut().inject(port, frame));
    w.poll(now_ms);
    w.io_mut().take_tx()
}
