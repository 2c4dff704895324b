//! SYN-flood defence (IPVS's `drop_entry` style, see `xvs_dataplane::conn::Defence`).
//!
//! Through the pipeline on `MemIo` (no root): a flood of SYNs from spoofed sources fills the
//! conn table; without the defence a genuine client is refused until the half-open conns time
//! out (60 s); with it, half-open conns older than the minimum age are dropped, the client gets
//! through, and its established conn is never dropped however long the flood lasts.
//!
//! End to end (root, namespaces, AF_XDP): a raw-socket SYN flood from random sources runs
//! against the VIP of a small conn table while a client keeps completing HTTP requests
//! through it.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

#[path = "../../dataplane/tests/common/mod.rs"]
mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::*;
use xvs_dataplane::conn::{Defence, DefenceMode};
use xvs_dataplane::stats::DropReason;
use xvs_dataplane::testutil as tu;
use xvs_dataplane::wire::tcp::flags::{ACK, PSH, SYN};
use xvs_tests::{Lab, TempDir, Xvsd, can_run, script, wait_for};

const MAX: usize = 256;
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 100);
const RIP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 10);
const CIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

/// A spoofed source: anywhere in 198.18.1.0/24 but the client.
fn spoofed(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 1, 0)) + 10 + (i * 7919) % 240)
}

/// Run `flood` spoofed SYNs at `now` (ms); returns how many were forwarded.
fn flood(
    w: &mut xvs_dataplane::worker::Worker<xvs_dataplane::io::mem::MemIo>,
    from: u32,
    n: u32,
    now: u64,
) -> usize {
    let mut fwd = 0;
    for i in from..from + n {
        let syn = tu::tcp4(
            C_MAC,
            D0,
            spoofed(i),
            1024 + (i % 60000) as u16,
            VIP,
            80,
            SYN,
            b"",
        );
        fwd += step(w, 0, &syn, now).len();
    }
    fwd
}

/// A genuine client's handshake and one request on `port` at `now`; whether it got through.
fn handshake(
    w: &mut xvs_dataplane::worker::Worker<xvs_dataplane::io::mem::MemIo>,
    port: u16,
    now: u64,
) -> bool {
    let syn = tu::tcp4(C_MAC, D0, CIP, port, VIP, 80, SYN, b"");
    if step(w, 0, &syn, now).is_empty() {
        return false;
    }
    let synack = tu::tcp4(R_MAC, D1, RIP, 8080, CIP, port, SYN | ACK, b"");
    assert_eq!(step(w, 1, &synack, now).len(), 1);
    let ack = tu::tcp4(C_MAC, D0, CIP, port, VIP, 80, ACK | PSH, b"GET /");
    assert_eq!(step(w, 0, &ack, now).len(), 1);
    true
}

fn expire_all(w: &mut xvs_dataplane::worker::Worker<xvs_dataplane::io::mem::MemIo>, now: u64) {
    // The worker expires once per clock tick: tick through the next 64 ms.
    for k in 0..64 {
        w.poll(now + k);
    }
}

#[test]
fn without_defence_a_syn_flood_locks_clients_out() {
    let (mut w, _, conns) = worker_with(&config(), MAX);
    flood(&mut w, 0, MAX as u32 + 100, 1000);
    assert_eq!(conns.len(), MAX);
    expire_all(&mut w, 5000);
    assert!(
        !handshake(&mut w, 40000, 5000),
        "a full table let a new conn in"
    );
    assert!(w.stats().drops[DropReason::ConnTableFull as usize] > 100);
    assert_eq!(conns.defence_dropped(), 0);
}

#[test]
fn drop_entry_reclaims_half_open_conns_and_spares_established_ones() {
    let (mut w, _, conns) = worker_with(&config(), MAX);
    conns.set_defence(Defence {
        mode: DefenceMode::Auto,
        amemthresh: 32,
        min_age_ms: 1000,
        ..Defence::default()
    });
    // The genuine client first: established before the flood.
    assert!(handshake(&mut w, 40000, 500));
    let mut now = 1000;
    flood(&mut w, 0, MAX as u32 + 100, now);
    assert_eq!(conns.len(), MAX);
    // Young half-open conns are spared: still full.
    expire_all(&mut w, now + 500);
    assert_eq!(conns.len(), MAX);
    assert!(!handshake(&mut w, 40001, now + 500));
    // Older than the minimum age: dropped until amemthresh entries are free (Auto).
    now += 1500;
    expire_all(&mut w, now);
    let free = MAX - conns.len();
    assert!(free >= 32, "only {free} entries freed");
    assert!(conns.defence_dropped() >= 32);
    assert!(
        handshake(&mut w, 40002, now),
        "no room after the defence ran"
    );

    // A long flood: every round refills the table, the defence makes room again; the
    // established conns keep flowing and new clients keep getting in.
    let mut from = 10_000;
    for round in 0..20u16 {
        from += flood(&mut w, from, 200, now) as u32 + 200;
        now += 1200;
        expire_all(&mut w, now);
        assert!(
            handshake(&mut w, 41000 + round, now),
            "round {round}: client locked out"
        );
        for port in [40000u16, 40002] {
            let data = tu::tcp4(C_MAC, D0, CIP, port, VIP, 80, ACK | PSH, b"more");
            assert_eq!(
                step(&mut w, 0, &data, now).len(),
                1,
                "round {round}: conn {port} lost"
            );
        }
    }
    assert!(conns.len() <= MAX);
}

#[test]
fn always_mode_drops_half_open_conns_even_with_room() {
    let (mut w, _, conns) = worker_with(&config(), MAX);
    conns.set_defence(Defence {
        mode: DefenceMode::Always,
        amemthresh: 0,
        min_age_ms: 100,
        ..Defence::default()
    });
    flood(&mut w, 0, 50, 1000);
    assert_eq!(conns.len(), 50);
    assert!(handshake(&mut w, 40000, 1000));
    expire_all(&mut w, 1200);
    // The 50 half-open conns are gone; the established one stays.
    assert_eq!(conns.len(), 1);
    assert_eq!(conns.defence_dropped(), 50);
    let data = tu::tcp4(C_MAC, D0, CIP, 40000, VIP, 80, ACK | PSH, b"more");
    assert_eq!(step(&mut w, 0, &data, 1200).len(), 1);
}

#[test]
fn secure_tcp_keeps_spoofed_handshakes_half_open_for_drop_entry() {
    // A flood of SYN + ACK pairs (the ACK blind, no SYN+ACK seen): the normal table
    // establishes them and drop_entry can never reclaim them; the secure table keeps them
    // half-open and drop_entry does.
    for secure in [false, true] {
        let (mut w, _, conns) = worker_with(&config(), MAX);
        conns.set_defence(Defence {
            mode: DefenceMode::Always,
            min_age_ms: 100,
            secure_tcp: if secure {
                DefenceMode::Always
            } else {
                DefenceMode::Off
            },
            ..Defence::default()
        });
        for i in 0..100u32 {
            let (src, sp) = (spoofed(i), 1024 + i as u16);
            step(
                &mut w,
                0,
                &tu::tcp4(C_MAC, D0, src, sp, VIP, 80, SYN, b""),
                1000,
            );
            step(
                &mut w,
                0,
                &tu::tcp4(C_MAC, D0, src, sp, VIP, 80, ACK, b""),
                1000,
            );
        }
        // A genuine client completes its handshake meanwhile.
        assert!(handshake(&mut w, 40000, 1000));
        let reply = tu::tcp4(R_MAC, D1, RIP, 8080, CIP, 40000, ACK | PSH, b"200 OK");
        assert_eq!(step(&mut w, 1, &reply, 1000).len(), 1);
        expire_all(&mut w, 2000);
        if secure {
            assert_eq!(conns.len(), 1, "spoofed handshakes survived secure_tcp");
            assert_eq!(conns.defence_dropped(), 100);
        } else {
            assert_eq!(conns.len(), 101, "blind ACKs established the spoofed conns");
            assert_eq!(conns.defence_dropped(), 0);
        }
        // The genuine conn is established either way and keeps flowing.
        let data = tu::tcp4(C_MAC, D0, CIP, 40000, VIP, 80, ACK | PSH, b"more");
        assert_eq!(step(&mut w, 0, &data, 2000).len(), 1);
    }
}

#[test]
fn drop_packet_refuses_a_share_of_new_conns() {
    // Always: one new conn in am_droprate.
    let (mut w, _, conns) = worker_with(&config(), MAX);
    conns.set_defence(Defence {
        drop_packet: DefenceMode::Always,
        am_droprate: 4,
        ..Defence::default()
    });
    let fwd = flood(&mut w, 0, 100, 1000);
    assert_eq!(fwd, 75);
    assert_eq!(w.stats().drops[DropReason::Defence as usize], 25);
    assert_eq!(conns.len(), 75);

    // Auto: nothing refused while amemthresh entries are free; then one in
    // amemthresh / (amemthresh - free).
    let (mut w, _, conns) = worker_with(&config(), MAX);
    conns.set_defence(Defence {
        drop_packet: DefenceMode::Auto,
        amemthresh: 64,
        ..Defence::default()
    });
    assert_eq!(flood(&mut w, 0, (MAX - 64) as u32, 1000), MAX - 64);
    assert_eq!(w.stats().drops[DropReason::Defence as usize], 0);
    let before = conns.len();
    let fwd = flood(&mut w, 10_000, 200, 1000);
    let refused = w.stats().drops[DropReason::Defence as usize];
    assert_eq!(conns.len(), before + fwd);
    assert!(refused > 0 && fwd > 0, "refused {refused}, forwarded {fwd}");
    // (Like the kernel's counter, a rate is reloaded only at a drop, so a conn that passed at a
    // low fill level may be followed by more before the next drop: the limit still holds.)
    assert!(conns.len() <= MAX);
}

/// A SYN flood from random sources in 198.18.1.0/24 to the VIP through a raw socket
/// (`IP_HDRINCL`) at a given rate, until killed.
const SYNFLOOD_PY: &str = r#"
import random, socket, struct, sys
vip, port, pps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
def csum(b):
    if len(b) % 2: b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
dst = socket.inet_aton(vip)
n = 0
import time
t0 = time.time()
while True:
    if n % 100 == 0 and n:
        # Paced: the flood must not just starve xvsd of CPU on a small shared machine.
        ahead = n / pps - (time.time() - t0)
        if ahead > 0:
            time.sleep(ahead)
    if n % 10000 == 0 and n:
        print("%d SYNs, %.0f/s" % (n, n / (time.time() - t0)), flush=True)
    src = bytes([198, 18, 1, random.randint(20, 250)])
    sport = random.randint(1024, 65535)
    tcp = struct.pack('!HHIIBBHHH', sport, port, random.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
    c = csum(src + dst + struct.pack('!BBH', 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack('!H', c) + tcp[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40, n & 0xffff, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    try:
        s.sendto(ip + tcp, (vip, 0))
    except OSError:
        pass
    n += 1
"#;

/// The end-to-end conn table: the young half-open conns (flood rate x minimum age) must fit
/// in it with room to spare, or no defence can make room (see the module docs).
const MAX_E2E: usize = 8192;

/// SYNs per second of the end-to-end flood: fills the table in under 2 s; its young half-open
/// conns (x 300 ms) take a fifth of it.
const FLOOD_PPS: u32 = 5000;

/// What one flood run measured.
#[derive(Debug)]
struct FloodRun {
    ok: u32,
    failed: u32,
    conns: usize,
    rate: String,
    /// `xvsadm --counters --json` at the end of the flood.
    counters: serde_json::Value,
    /// `xvsadm --counters` at the end of the flood.
    counters_text: String,
}

/// Start xvsd (NAT over two servers, `MAX_E2E` conns, `--drop-entry drop_entry`), flood the
/// VIP with spoofed SYNs until the table is full, then request HTTP through the VIP for `secs`
/// seconds.
fn flood_run(drop_entry: &str, secs: u64) -> FloodRun {
    let lab = Lab::two_segments(2, 1).unwrap();
    let dir = TempDir::new("flood").unwrap();
    let _http = lab.start_http(&dir, 8080).unwrap();
    let max = MAX_E2E.to_string();
    let thresh = (MAX_E2E / 4).to_string();
    let xvsd = Xvsd::start(
        &lab,
        &dir,
        &[
            "--workers",
            "1",
            "--max-conns",
            &max,
            "--drop-entry",
            drop_entry,
            "--amemthresh",
            &thresh,
            "--drop-entry-min-age-ms",
            "300",
        ],
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(20), || xvsd
        .adm(&["-Ln"])
        .map(|(c, _, _)| c == 0)
        .unwrap_or(false)));
    xvsd.nat_service_over_all(&lab).unwrap();
    lab.curl("198.18.1.100", 80, 5)
        .unwrap_or_else(|e| panic!("before the flood: {e}\n{}", xvsd.log()));

    let py = script(&dir, "synflood.py", SYNFLOOD_PY).unwrap();
    let mut flood = lab
        .client
        .spawn(
            &[
                "/usr/bin/python3",
                &py,
                "198.18.1.100",
                "80",
                &FLOOD_PPS.to_string(),
            ],
            Some(&dir.join("flood.log")),
        )
        .unwrap();
    // Until the table is as full as it gets: all of it without the defence; with it, up to
    // where `--drop-entry 1` turns on (fewer than amemthresh entries free).
    let fill = if drop_entry == "0" {
        MAX_E2E - 16
    } else {
        MAX_E2E - MAX_E2E / 4 - 256
    };
    let full = wait_for(Duration::from_secs(60), || conn_count(&xvsd) >= fill);
    assert!(
        full,
        "the flood did not fill the conn table: {} conns",
        conn_count(&xvsd)
    );

    let t0 = Instant::now();
    let (mut ok, mut failed) = (0, 0);
    while t0.elapsed() < Duration::from_secs(secs) {
        match lab.curl("198.18.1.100", 80, 3) {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
    }
    let conns = conn_count(&xvsd);
    // Workers publish every few hundred loop turns: the figures may lag by a moment.
    std::thread::sleep(Duration::from_millis(500));
    let counters = xvsd.counters().unwrap();
    let counters_text = xvsd.adm_ok(&["--counters"]).unwrap();
    flood.terminate(Duration::from_secs(2));
    let log = std::fs::read_to_string(dir.join("flood.log")).unwrap_or_default();
    let rate = log.lines().last().unwrap_or("").to_string();
    let r = FloodRun {
        ok,
        failed,
        conns,
        rate,
        counters,
        counters_text,
    };
    eprintln!(
        "--drop-entry {drop_entry}: {} requests completed, {} failed, {} conns ({})\n{}",
        r.ok, r.failed, r.conns, r.rate, r.counters_text
    );
    r
}

#[test]
fn http_keeps_working_through_a_syn_flood() {
    if !can_run("http_keeps_working_through_a_syn_flood") {
        return;
    }
    // For comparison (XVS_FLOOD_COMPARE=1; off by default to keep CI short): without the
    // defence the table stays full and clients are locked out (the MemIo test above proves
    // that part deterministically too).
    if std::env::var_os("XVS_FLOOD_COMPARE").is_some() {
        let off = flood_run("0", 7);
        assert!(off.conns >= MAX_E2E - 16, "{off:?}");
        assert_eq!(off.ok, 0, "clients got through a full table: {off:?}");
    }
    // With it, requests keep completing while the flood runs.
    let on = flood_run("1", 12);
    assert!(on.ok >= 5, "{on:?}");
    // Some requests may time out on a shared 2-core machine (the flood, xvsd and the servers
    // compete for the CPU); most must complete.
    assert!(on.failed * 4 <= on.ok, "{on:?}");
    assert!(on.conns <= MAX_E2E, "{on:?}");

    // The defence and the drops it caused are visible through `xvsadm --counters`.
    let c = &on.counters;
    assert_eq!(c["defence"]["drop_entry"], "auto", "{}", on.counters_text);
    assert_eq!(c["max_conns"], MAX_E2E as u64, "{}", on.counters_text);
    let dropped = c["defence"]["dropped_entries"].as_u64().unwrap();
    assert!(
        dropped > 0,
        "no half-open conn dropped:\n{}",
        on.counters_text
    );
    // The text was read a moment after the JSON, while the flood still ran: at least as many.
    let text_dropped: u64 = on
        .counters_text
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "Defence drop_entry auto, drop_packet off, secure_tcp off, amemthresh {}: ",
                MAX_E2E / 4
            ))
        })
        .and_then(|r| {
            r.split(", ")
                .nth(1)?
                .strip_suffix(" entries dropped")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no defence line:\n{}", on.counters_text));
    assert!(text_dropped >= dropped, "{}", on.counters_text);
    let drops: u64 = c["drops"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(drops > 0, "no drop counted:\n{}", on.counters_text);
    let w = &c["workers"][0];
    assert!(
        w["rx_packets"].as_u64().unwrap() > 0,
        "{}",
        on.counters_text
    );
    assert!(
        w["conns_created"].as_u64().unwrap() > 0,
        "{}",
        on.counters_text
    );
    let f = &w["frames"];
    assert_eq!(
        f["free"].as_u64().unwrap() + f["in_flight"].as_u64().unwrap(),
        f["total"].as_u64().unwrap(),
        "{}",
        on.counters_text
    );
    assert!(
        c["process"]["fds"].as_u64().unwrap() > 0,
        "{}",
        on.counters_text
    );
}

fn conn_count(xvsd: &Xvsd) -> usize {
    xvsd.adm(&["-Lnc"])
        .map(|(_, out, _)| out.lines().filter(|l| l.starts_with("TCP")).count())
        .unwrap_or(0)
}
