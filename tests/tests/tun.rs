//! End to end: TUN (`-i`, IP tunnelling) with the three encapsulations, IPIP, GUE and GRE.
//!
//! This kernel has no ipip, gre or fou drivers, so a real server cannot decapsulate by
//! itself. Two checks instead:
//! 1. A capture at the real server (`tcpdump -w` on its interface) must hold the encapsulated
//!    frames as IPVS builds them: outer source = the director's address, outer destination =
//!    the real server, the client's packet inside, addressed to the VIP.
//! 2. A complete TCP exchange (HTTP through curl) through a small decapsulating helper on the
//!    real server ([`DECAP_PY`]): it receives the tunnel packets on raw IP sockets (protocol 4
//!    and 47) and a UDP socket (GUE), strips the outer headers and writes the inner packet
//!    into a tun device (`/dev/net/tun`), so the server's own kernel receives it as if its
//!    tunnel driver had. The server holds the VIPs on lo (arp_ignore/arp_announce as for DR)
//!    and answers the client directly, never through xvsd.

// Helpers outside #[test] fns unwrap too: in an integration test a failed unwrap is a
// failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use xvs_dataplane::io::pcap::PcapReader;
use xvs_tests::{Lab, PYTHON, TempDir, Xvsd, can_run, row, script, wait_for};

/// Tunnel receiver for the real server: `decap.py GUE_PORT`. Creates the tun device `tn0`,
/// brings it up, turns reverse-path filtering off, then decapsulates IPIP, GRE and GUE
/// forever, logging one line per packet kind the first time it sees it.
const DECAP_PY: &str = r"
import fcntl, os, select, socket, struct, subprocess, sys
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454ca, 0x0001, 0x1000
tun = os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(tun, TUNSETIFF, struct.pack('16sH', b'tn0', IFF_TUN | IFF_NO_PI))
subprocess.run(['ip', 'link', 'set', 'tn0', 'up'], check=True)
subprocess.run(['sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0',
                'net.ipv4.conf.default.rp_filter=0', 'net.ipv4.conf.tn0.rp_filter=0'], check=True)
ipip = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
gre = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
gue = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
gue.bind(('0.0.0.0', int(sys.argv[1])))
seen = set()
print('ready', flush=True)
while True:
    r, _, _ = select.select([ipip, gre, gue], [], [])
    for s in r:
        d = s.recv(65535)
        if s is ipip:
            kind, inner = 'ipip', d[(d[0] & 15) * 4:]
        elif s is gre:
            o = (d[0] & 15) * 4
            kind, inner = 'gre', d[o + 4 + (4 if d[o] & 0x80 else 0):]
        else:
            kind, inner = 'gue', d[4 + 4 * (d[0] & 0x1f):]
        os.write(tun, inner)
        if kind not in seen:
            seen.add(kind)
            print('decap', kind, flush=True)
";

const GUE_PORT: u16 = 6080;

/// One service per encapsulation: (VIP, xvsadm tunnel flags, name).
const TUNNELS: [(&str, &[&str], &str); 3] = [
    ("198.18.1.100", &["--tun-type", "ipip"], "ipip"),
    (
        "198.18.1.101",
        &["--tun-type", "gue", "--tun-port", "6080"],
        "gue",
    ),
    ("198.18.1.102", &["--tun-type", "gre"], "gre"),
];

/// What the capture shows about one frame: (outer src, outer dst, encapsulation, inner dst).
fn tunnel_frame(frame: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, &'static str, Ipv4Addr)> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || ip.first()? >> 4 != 4 {
        return None;
    }
    let v4 = |b: &[u8], at: usize| -> Option<Ipv4Addr> {
        let a: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(a))
    };
    let ihl = usize::from(ip[0] & 15) * 4;
    let (src, dst) = (v4(ip, 12)?, v4(ip, 16)?);
    let (kind, inner) = match ip.get(9)? {
        4 => ("ipip", ihl),
        47 => {
            let csum = ip.get(ihl)? & 0x80 != 0;
            ("gre", ihl + 4 + if csum { 4 } else { 0 })
        }
        17 => {
            let dport = u16::from_be_bytes(ip.get(ihl + 2..ihl + 4)?.try_into().ok()?);
            if dport != GUE_PORT {
                return None;
            }
            let hlen = usize::from(ip.get(ihl + 8)? & 0x1f) * 4;
            ("gue", ihl + 8 + 4 + hlen)
        }
        _ => return None,
    };
    if ip.get(inner)? >> 4 != 4 {
        return None;
    }
    Some((src, dst, kind, v4(ip, inner + 16)?))
}

#[test]
fn tun_ipip_gue_gre_encapsulate_to_the_real_server_and_complete_tcp() {
    if !can_run("tun_ipip_gue_gre_encapsulate_to_the_real_server_and_complete_tcp") {
        return;
    }
    let lab = Lab::one_lan(1).unwrap();
    let dir = TempDir::new("tun").unwrap();
    let server = &lab.servers[0];
    let rip = lab.server_ips[0].0.clone();
    for (vip, _, _) in TUNNELS {
        lab.servers_hold_vip(vip).unwrap();
    }
    let _http = lab.start_http(&dir, 80).unwrap();
    let decap = script(&dir, "decap.py", DECAP_PY).unwrap();
    let decap_log = dir.join("decap.log");
    let port = GUE_PORT.to_string();
    let _decap = server
        .spawn(&[PYTHON, "-u", &decap, &port], Some(&decap_log))
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || std::fs::read_to_string(
            &decap_log
        )
        .unwrap_or_default()
        .contains("ready")),
        "decap helper: {}",
        std::fs::read_to_string(&decap_log).unwrap_or_default()
    );
    let pcap = dir.join("server.pcap");
    let pcap_s = pcap.display().to_string();
    let mut tcpdump = server
        .spawn(
            &[
                "tcpdump",
                "-i",
                "r0",
                "-n",
                "-U",
                "-w",
                &pcap_s,
                "ip proto 4 or ip proto 47 or udp port 6080",
            ],
            Some(&dir.join("tcpdump.log")),
        )
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || std::fs::read_to_string(
            dir.join("tcpdump.log")
        )
        .unwrap_or_default()
        .contains("listening")),
        "tcpdump did not start"
    );

    let xvsd = Xvsd::start(&lab, &dir, &["--workers", "1"]).unwrap();
    for (vip, flags, _) in TUNNELS {
        let svc = format!("{vip}:80");
        xvsd.adm_ok(&["-A", "-t", &svc, "-s", "rr"]).unwrap();
        let mut a = vec!["-a", "-t", &svc, "-r", &rip, "-i"];
        a.extend_from_slice(flags);
        xvsd.adm_ok(&a).unwrap();
    }
    let info = xvsd.adm_ok(&["-Ln", "--tun-info"]).unwrap();
    assert!(info.contains("gue") && info.contains("gre"), "{info}");

    // Full TCP exchanges through each tunnel.
    for (vip, _, kind) in TUNNELS {
        for _ in 0..2 {
            let body = lab
                .curl(vip, 80, 5)
                .unwrap_or_else(|e| panic!("curl through {kind}: {e}\n{}", xvsd.log()));
            assert_eq!(body, "r0", "{kind}");
        }
    }
    let log = std::fs::read_to_string(&decap_log).unwrap();
    for (_, _, kind) in TUNNELS {
        assert!(log.contains(&format!("decap {kind}")), "{log}");
    }
    // Replies go straight to the client: nothing outbound crosses xvsd.
    let stats = xvsd.adm_ok(&["-Ln", "--stats"]).unwrap();
    for (vip, _, _) in TUNNELS {
        let s = row(&stats, &format!("TCP  {vip}:80")).unwrap();
        assert_eq!(s[2], "2", "{stats}");
        assert_eq!(s[4], "0", "{stats}");
    }

    // The capture: every encapsulated frame is director -> RIP with the VIP inside.
    // tcpdump writes packet by packet (-U) but may lag behind the kernel: wait until it has
    // written what the exchanges need (or time out and let the checks below report).
    let frames = || {
        let mut n = 0;
        if let Ok(mut r) = PcapReader::open(&pcap) {
            while let Ok(Some(rec)) = r.next_record() {
                n += usize::from(tunnel_frame(&rec.data).is_some());
            }
        }
        n
    };
    wait_for(Duration::from_secs(10), || frames() >= 3 * 2 * 4);
    assert!(tcpdump.terminate(Duration::from_secs(5)).is_some());
    let mut r = PcapReader::open(&pcap).unwrap();
    let (dir_ip, rip_ip): (Ipv4Addr, Ipv4Addr) =
        ("198.18.1.1".parse().unwrap(), rip.parse().unwrap());
    let mut per_kind = std::collections::BTreeMap::new();
    while let Some(rec) = r.next_record().unwrap() {
        let Some((src, dst, kind, inner_dst)) = tunnel_frame(&rec.data) else {
            continue;
        };
        assert_eq!(src, dir_ip, "{kind}: outer source");
        assert_eq!(dst, rip_ip, "{kind}: outer destination");
        let vip: Ipv4Addr = TUNNELS
            .iter()
            .find(|t| t.2 == kind)
            .map(|t| t.0.parse().unwrap())
            .unwrap();
        assert_eq!(inner_dst, vip, "{kind}: inner destination");
        *per_kind.entry(kind).or_insert(0) += 1;
    }
    // Two connections per tunnel: at least SYN, ACK, request, FIN/ACK each.
    for (_, _, kind) in TUNNELS {
        assert!(
            per_kind.get(kind).copied().unwrap_or(0) >= 2 * 4,
            "{kind}: {per_kind:?}"
        );
    }
}
