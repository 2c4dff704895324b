//! The worker's flow cache (`worker/flows.rs`) against the lookup it stands in for: whole
//! conn lives (handshake, data, close, reset, expiry, a new conn on the same ports) sent
//! through a worker with the fast path and its cache, and through one without, must transmit
//! the same frames, drop the same, and leave the same conns with the same counters; the cache
//! must really be used. Then the cases where a cached reference must be refused: its conn
//! removed and its slot taken by another conn, its conn expired and rescheduled, its next
//! hop's MAC changed.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{C_MAC, D0, D1, R_MAC, R2_MAC, config, dest, ip, net, service};
use xvs_dataplane::conn::ConnTable;
use xvs_dataplane::director::Director;
use xvs_dataplane::flow::FlowKey;
use xvs_dataplane::io::mem::MemIo;
use xvs_dataplane::service::{Config, FwdMode, Protocol};
use xvs_dataplane::stats::DropReason;
use xvs_dataplane::testutil;
use xvs_dataplane::wire::tcp::flags;
use xvs_dataplane::worker::{Shared, Worker};

/// NAT .100:80 and .100:53 (one dest each), DR .101:80, and .107:80, NAT rr over two dests.
fn cfg() -> Config {
    let mut c = config();
    c.services.push(service(
        Protocol::Tcp,
        "198.18.1.107",
        80,
        "rr",
        vec![
            dest("198.18.2.10", 8080, FwdMode::Masq),
            dest("198.18.2.11", 8080, FwdMode::Masq),
        ],
    ));
    c
}

struct Rig {
    w: Worker<MemIo>,
    conns: Arc<ConnTable>,
    shared: Arc<Shared>,
}

/// A worker over `cfg()`, the fast path on or off; `static_neigh: false` leaves the real
/// servers' MACs to be learned.
fn rig(fast: bool, static_neigh: bool) -> Rig {
    let director = Arc::new(Director::new(1));
    director.apply(&cfg()).unwrap();
    let conns = Arc::new(ConnTable::with_bits(12, 1 << 16, 1).unwrap());
    let mut n = net();
    if !static_neigh {
        n.neigh
            .retain(|(a, _)| !a.to_string().starts_with("198.18.2."));
    }
    let shared = Arc::new(Shared::new(director, Arc::clone(&conns), n, 1).unwrap());
    let mut w = Worker::new(0, MemIo::new(512, vec![D0, D1]), Arc::clone(&shared));
    w.set_fast_path(fast);
    Rig { w, conns, shared }
}

impl Rig {
    /// One turn at `now` over `frames` (all from clients, port 0): what was transmitted.
    fn turn(&mut self, now: u64, frames: &[Vec<u8>]) -> Vec<(u16, Vec<u8>)> {
        for f in frames {
            assert!(self.w.io_mut().inject(0, f));
        }
        self.w.poll(now);
        self.w.io_mut().take_tx()
    }

    /// Every conn with its dest's and service's counters, sorted (to compare two rigs).
    fn table(&self) -> Vec<String> {
        let mut t = Vec::new();
        self.conns.for_each(1000, |c| t.push(format!("{c:?}")));
        t.sort();
        t
    }

    fn counters(&self) -> Vec<String> {
        let snap = self.shared.director.snapshot();
        snap.services
            .iter()
            .flat_map(|s| {
                std::iter::once(format!("{:?}", s.state.stats.sum()))
                    .chain(s.dests.iter().map(|d| format!("{:?}", d.state.stats.sum())))
            })
            .collect()
    }
}

fn tcp(vip: &str, cport: u16, fl: u8, data: &[u8]) -> Vec<u8> {
    testutil::tcp(C_MAC, D0, ip("198.18.1.2"), cport, ip(vip), 80, fl, data)
}

fn udp(cport: u16) -> Vec<u8> {
    testutil::udp(
        C_MAC,
        D0,
        ip("198.18.1.2"),
        cport,
        ip("198.18.1.100"),
        53,
        b"q",
    )
}

/// The Ethernet destination and IPv4 destination of a transmitted frame.
fn to(frame: &[u8]) -> ([u8; 6], std::net::Ipv4Addr) {
    let mac = frame[..6].try_into().unwrap();
    let l3 = testutil::l3(frame);
    (mac, std::net::Ipv4Addr::new(l3[16], l3[17], l3[18], l3[19]))
}

#[test]
fn cached_packets_equal_lookups_through_a_conns_life() {
    const ACK: u8 = flags::ACK;
    let turns: Vec<(u64, Vec<Vec<u8>>)> = vec![
        (
            10,
            vec![
                tcp("198.18.1.100", 41000, flags::SYN, b""),
                tcp("198.18.1.101", 42000, flags::SYN, b""),
                udp(43000),
                tcp("198.18.1.107", 44000, flags::SYN, b""),
            ],
        ),
        (
            11,
            vec![
                tcp("198.18.1.100", 41000, ACK, b""),
                tcp("198.18.1.101", 42000, ACK, b""),
                udp(43000),
                tcp("198.18.1.107", 44000, ACK, b""),
            ],
        ),
        (
            12,
            vec![
                tcp("198.18.1.100", 41000, ACK | flags::PSH, b"get /"),
                tcp("198.18.1.100", 41000, ACK, b"more"),
                tcp("198.18.1.101", 42000, ACK, b"x"),
                udp(43000),
                tcp("198.18.1.107", 44000, ACK, b"y"),
            ],
        ),
        // Client close and reset: the cached conns change state.
        (
            13,
            vec![
                tcp("198.18.1.100", 41000, flags::FIN | ACK, b""),
                tcp("198.18.1.100", 41000, ACK, b""),
                tcp("198.18.1.101", 42000, flags::RST, b""),
                tcp("198.18.1.101", 42000, ACK, b"after rst"),
            ],
        ),
        // The reset conn is past its CLOSE timeout (10 s): dropped, no conn.
        (10_020, vec![tcp("198.18.1.101", 42000, ACK, b"late")]),
        // The UDP conn is past 300 s and the rr conn past nothing: the UDP datagram opens a
        // new conn; the rr conn's packets still pass.
        (
            400_000,
            vec![
                udp(43000),
                udp(43000),
                tcp("198.18.1.107", 44000, ACK, b"z"),
            ],
        ),
        // The same ports again after the reset conn is gone: a new conn.
        (
            400_001,
            vec![
                tcp("198.18.1.101", 42000, flags::SYN, b""),
                tcp("198.18.1.101", 42000, ACK, b""),
            ],
        ),
    ];
    let run = |fast: bool| {
        let mut r = rig(fast, true);
        let out: Vec<_> = turns.iter().map(|(now, f)| r.turn(*now, f)).collect();
        let st = r.w.stats().clone();
        (out, st.drops, r.table(), r.counters(), st.flow_hits)
    };
    let (slow, fast) = (run(false), run(true));
    assert_eq!(fast.0, slow.0, "transmitted frames differ");
    assert_eq!(fast.1, slow.1, "drop reasons differ");
    assert_eq!(fast.2, slow.2, "conn tables differ");
    assert_eq!(fast.3, slow.3, "dest and service counters differ");
    assert_eq!(slow.4, 0, "no cache without the fast path");
    // Cached: turn 11 (4), turn 12 (5), turn 13 (4), the rr conn's packet at 400000 (1).
    // Refused: the late packet of the reset conn (expired) and the first UDP datagram at
    // 400000 (expired). Not asked: SYNs, and the packet after each of those two, which is
    // looked up paired with it.
    assert_eq!(fast.4, 14, "packets through the cache");
    // The expired conn's late packet is dropped, the new one's pass.
    assert!(slow.0[4].is_empty());
    assert_eq!(slow.0[5].len(), 3);
    assert_eq!(slow.0[6].len(), 2);
    assert_eq!(slow.1[DropReason::NoConn as usize], 1);
}

/// A cached conn removed, and its slot taken by another conn of the same client endpoint (same
/// home shard, and the freed slot is the next one handed out): the cached reference must be
/// refused, and the old flow's packet treated as a packet of no conn, not forwarded on the
/// conn now in that slot.
#[test]
fn a_slot_taken_by_another_conn_is_refused() {
    let run = |fast: bool| {
        let mut r = rig(fast, true);
        let mut out = Vec::new();
        out.push(r.turn(10, &[tcp("198.18.1.100", 41000, flags::SYN, b"")]));
        out.push(r.turn(11, &[tcp("198.18.1.100", 41000, flags::ACK, b"a")]));
        let key = FlowKey {
            proto: 6,
            src: ip("198.18.1.2"),
            sport: 41000,
            dst: ip("198.18.1.100"),
            dport: 80,
        };
        assert!(r.conns.remove(&key));
        out.push(r.turn(12, &[tcp("198.18.1.107", 41000, flags::SYN, b"")]));
        out.push(r.turn(13, &[tcp("198.18.1.100", 41000, flags::ACK, b"b")]));
        let st = r.w.stats().clone();
        (out, st.drops, r.table(), r.counters(), st.flow_hits)
    };
    let (slow, fast) = (run(false), run(true));
    assert_eq!(fast.0, slow.0, "transmitted frames differ");
    assert_eq!(fast.1, slow.1, "drop reasons differ");
    assert_eq!(fast.2, slow.2, "conn tables differ");
    assert_eq!(fast.3, slow.3, "dest and service counters differ");
    assert_eq!(
        fast.4, 1,
        "only the ACK before the removal went through the cache"
    );
    assert!(
        fast.0[3].is_empty(),
        "the old flow's packet is not forwarded"
    );
    assert_eq!(fast.1[DropReason::NoConn as usize], 1);
    assert_eq!(fast.2.len(), 1, "only the new conn is left");
}

/// A cached conn expired and its flow scheduled again, onto the other dest (rr): the packets
/// after it go to the new dest, not the cached one.
#[test]
fn an_expired_conn_rescheduled_elsewhere_is_followed() {
    let mut r = rig(true, true);
    let vip = "198.18.1.107";
    let first = r.turn(10, &[tcp(vip, 45000, flags::SYN, b"")]);
    let cached = r.turn(11, &[tcp(vip, 45000, flags::ACK, b"a")]);
    assert_eq!(r.w.stats().flow_hits, 1);
    assert_eq!(to(&first[0].1), to(&cached[0].1));
    // Two other clients' conns move rr on (to the other dest, then back); then the first
    // conn resets and expires.
    for (c, same) in [("198.18.1.3", false), ("198.18.1.4", true)] {
        let other = testutil::tcp(C_MAC, D0, ip(c), 45000, ip(vip), 80, flags::SYN, b"");
        let o = r.turn(12, &[other]);
        assert_eq!(to(&o[0].1) == to(&first[0].1), same, "rr alternates dests");
    }
    r.turn(13, &[tcp(vip, 45000, flags::RST, b"")]);
    let again = r.turn(20_000, &[tcp(vip, 45000, flags::SYN, b"")]);
    let next = r.turn(20_001, &[tcp(vip, 45000, flags::ACK, b"b")]);
    assert_eq!(
        r.w.stats().flow_hits,
        3,
        "the RST and the new conn's ACK were cached"
    );
    assert_ne!(
        to(&again[0].1),
        to(&first[0].1),
        "rescheduled onto the other dest"
    );
    assert_eq!(to(&next[0].1), to(&again[0].1), "and its packets follow it");
}

/// The next hop's MAC changes (learned again): cached flows use the new MAC from the next
/// turn on.
#[test]
fn a_learned_mac_change_reaches_cached_flows() {
    let mut r = rig(true, false);
    let rip = ip("198.18.2.10");
    assert!(r.shared.neigh.learn(rip, R_MAC));
    r.turn(10, &[tcp("198.18.1.100", 46000, flags::SYN, b"")]);
    let a = r.turn(11, &[tcp("198.18.1.100", 46000, flags::ACK, b"a")]);
    assert_eq!(to(&a[0].1).0, R_MAC);
    let hits = r.w.stats().flow_hits;
    assert!(hits >= 1, "cached");
    assert!(r.shared.neigh.learn(rip, R2_MAC));
    let b = r.turn(12, &[tcp("198.18.1.100", 46000, flags::ACK, b"b")]);
    assert_eq!(to(&b[0].1).0, R2_MAC, "the new MAC");
    let c = r.turn(13, &[tcp("198.18.1.100", 46000, flags::ACK, b"c")]);
    assert_eq!(to(&c[0].1).0, R2_MAC);
    assert!(
        r.w.stats().flow_hits > hits,
        "cached again after the change"
    );
}

/// One random packet of a random test: flow `flow` (a client port on one of four services, or
/// the NAT dest's reply to it), TCP flags, payload length.
#[derive(Clone, Debug)]
struct Pkt {
    flow: usize,
    reply: bool,
    flags: u8,
    payload: usize,
}

/// Services the random test drives (FULLNAT left out: its local port depends on the table's
/// random seed, so two rigs differ): NAT TCP, DR TCP, NAT rr over two dests, NAT UDP.
const VIPS: [(&str, bool); 4] = [
    ("198.18.1.100", false),
    ("198.18.1.101", false),
    ("198.18.1.107", false),
    ("198.18.1.100", true),
];

fn frame(p: &Pkt) -> (u16, Vec<u8>) {
    let (vip, udp) = VIPS[p.flow % VIPS.len()];
    // One client port per flow: no two conns share a reply key (see README: that case is
    // ambiguous for the lookup itself, and the two rigs hash with different seeds).
    let cport = 41_000 + u16::try_from(p.flow).unwrap_or(0);
    let data = vec![0x61; p.payload];
    let client = ip("198.18.1.2");
    if p.reply {
        // From the first NAT dest (the rr service alternates with .11, whose replies are then
        // packets of no conn: dropped alike).
        let rip = ip("198.18.2.10");
        let f = if udp {
            testutil::udp(R_MAC, D1, rip, 5353, client, cport, &data)
        } else {
            testutil::tcp(R_MAC, D1, rip, 8080, client, cport, p.flags, &data)
        };
        (1, f)
    } else if udp {
        (
            0,
            testutil::udp(C_MAC, D0, client, cport, ip(vip), 53, &data),
        )
    } else {
        (
            0,
            testutil::tcp(C_MAC, D0, client, cport, ip(vip), 80, p.flags, &data),
        )
    }
}

fn pkt() -> impl Strategy<Value = Pkt> {
    (
        0usize..12,
        prop::bool::weighted(0.2),
        prop::sample::select(vec![
            flags::SYN,
            flags::ACK,
            flags::ACK,
            flags::ACK | flags::PSH,
            flags::FIN | flags::ACK,
            flags::RST,
            flags::SYN | flags::ACK,
        ]),
        prop::sample::select(vec![0usize, 10, 1400]),
    )
        .prop_map(|(flow, reply, flags, payload)| Pkt {
            flow,
            reply,
            flags,
            payload,
        })
}

/// Turns of (clock advance in ms, a burst of packets, whether the control path removes flow
/// 0's conn first).
fn turns() -> impl Strategy<Value = Vec<(u64, Vec<Pkt>, bool)>> {
    prop::collection::vec(
        (
            prop::sample::select(vec![0u64, 1, 900, 10_001, 60_001, 300_001, 900_001]),
            prop::collection::vec(pkt(), 1..12),
            prop::bool::weighted(0.05),
        ),
        1..12,
    )
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Random conn lives on four services, with replies, clock jumps past every timeout and
    /// conns removed by the control path: the worker with the flow cache transmits, drops and
    /// keeps exactly what the worker without it does, turn by turn.
    #[test]
    fn random_lives_equal_with_and_without_the_cache(t in turns()) {
        let mut rigs = [rig(false, true), rig(true, true)];
        let mut now = 10;
        for (advance, burst, remove) in &t {
            now += advance;
            let mut outs = Vec::new();
            for r in &mut rigs {
                if *remove {
                    let (vip, _) = VIPS[0];
                    r.conns.remove(&FlowKey {
                        proto: 6,
                        src: ip("198.18.1.2"),
                        sport: 41_000,
                        dst: ip(vip),
                        dport: 80,
                    });
                }
                for p in burst {
                    let (port, f) = frame(p);
                    assert!(r.w.io_mut().inject(port, &f));
                }
                r.w.poll(now);
                outs.push((
                    r.w.io_mut().take_tx(),
                    r.w.stats().drops,
                    r.table(),
                    r.counters(),
                ));
            }
            prop_assert_eq!(&outs[1].0, &outs[0].0, "frames at {}", now);
            prop_assert_eq!(&outs[1].1, &outs[0].1, "drops at {}", now);
            prop_assert_eq!(&outs[1].2, &outs[0].2, "conns at {}", now);
            prop_assert_eq!(&outs[1].3, &outs[0].3, "counters at {}", now);
        }
    }
}

/// The random test does reach the cache: one fixed sequence of it counts hits.
#[test]
fn the_random_shape_hits_the_cache() {
    let mut r = rig(true, true);
    let p = |flags| Pkt {
        flow: 0,
        reply: false,
        flags,
        payload: 10,
    };
    for (now, fl) in [(10, flags::SYN), (11, flags::ACK), (12, flags::ACK)] {
        let (port, f) = frame(&p(fl));
        assert!(r.w.io_mut().inject(port, &f));
        r.w.poll(now);
        assert_eq!(r.w.io_mut().take_tx().len(), 1);
    }
    assert_eq!(r.w.stats().flow_hits, 2);
}
