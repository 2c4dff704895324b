//! End to end: TUN (`-i`, IP tunnelling) with the three encapsulations, IPIP, GUE and GRE,
//! over IPv4 and over IPv6.
//!
//! This kernel has no ipip, ip6_tunnel, gre or fou drivers, so a real server cannot
//! decapsulate by itself. Two checks instead:
//! 1. A capture at the real server (`tcpdump -w` on its interface) must hold the encapsulated
//!    frames as IPVS builds them: outer source = the director's address, outer destination =
//!    the real server, the client's packet inside, addressed to the VIP.
//! 2. A complete TCP exchange (HTTP through curl) through a small decapsulating helper on the
//!    real server ([`DECAP_PY`]): it receives the tunnel packets on raw IP sockets (IPv4
//!    protocols 4 and 47, IPv6 next headers 41 and 47) and a UDP socket (GUE), strips the
//!    outer headers and writes the inner packet into a tun device (`/dev/net/tun`), so the
//!    server's own kernel receives it as if its tunnel driver had. The server holds the VIPs
//!    on lo (arp_ignore/arp_announce as for DR) and answers the client directly, never
//!    through xvsd.

// Helpers outside #[test] fns unwrap too: in an integration test a failed unwrap is a
// failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use xvs_dataplane::io::pcap::PcapReader;
use xvs_tests::{Lab, PYTHON, TempDir, Xvsd, can_run, row, script, wait_for};

/// Tunnel receiver for the real server: `decap.py GUE_PORT`. Creates the tun device `tn0`,
/// brings it up, turns reverse-path filtering off, then decapsulates IPIP, GRE and GUE over
/// IPv4 and IPv6 forever, logging one line per packet kind the first time it sees it. (Raw
/// IPv4 sockets receive the outer header, raw IPv6 sockets do not.)
const DECAP_PY: &str = r"
import fcntl, os, select, socket, struct, subprocess, sys
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454ca, 0x0001, 0x1000
tun = os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(tun, TUNSETIFF, struct.pack('16sH', b'tn0', IFF_TUN | IFF_NO_PI))
subprocess.run(['ip', 'link', 'set', 'tn0', 'up'], check=True)
subprocess.run(['sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0',
                'net.ipv4.conf.default.rp_filter=0', 'net.ipv4.conf.tn0.rp_filter=0'], check=True)
socks = {
    socket.socket(socket.AF_INET, socket.SOCK_RAW, 4): ('ipip', 4),
    socket.socket(socket.AF_INET, socket.SOCK_RAW, 47): ('gre', 4),
    socket.socket(socket.AF_INET6, socket.SOCK_RAW, 41): ('ipip', 6),
    socket.socket(socket.AF_INET6, socket.SOCK_RAW, 47): ('gre', 6),
}
gue = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
# Like the kernel's fou receiver: accept GUE over IPv6 with a zero UDP checksum, which IPVS
# (and xvs) send unless --tun-csum (UDP_NO_CHECK6_RX).
gue.setsockopt(socket.IPPROTO_UDP, 102, 1)
gue.bind(('::', int(sys.argv[1])))
socks[gue] = ('gue', 0)
seen = set()
print('ready', flush=True)
while True:
    r, _, _ = select.select(list(socks), [], [])
    for s in r:
        d, a = s.recvfrom(65535)
        kind, fam = socks[s]
        o = (d[0] & 15) * 4 if fam == 4 else 0
        if kind == 'ipip':
            inner = d[o:]
        elif kind == 'gre':
            inner = d[o + 4 + (4 if d[o] & 0x80 else 0):]
        else:
            inner = d[4 + 4 * (d[0] & 0x1f):]
        os.write(tun, inner)
        v = 6 if ':' in a[0] and not a[0].startswith('::ffff:') else 4
        if (kind, v) not in seen:
            seen.add((kind, v))
            print('decap', kind, 'ipv%d' % v, flush=True)
";

const GUE_PORT: u16 = 6080;

/// The encapsulations: xvsadm tunnel flags and name; service `i` uses VIP number `100 + i`.
const TUNNELS: [(&[&str], &str); 3] = [
    (&["--tun-type", "ipip"], "ipip"),
    (&["--tun-type", "gue", "--tun-port", "6080"], "gue"),
    (&["--tun-type", "gre"], "gre"),
];

/// What the capture shows about one frame: (outer src, outer dst, encapsulation, inner dst).
fn tunnel_frame(frame: &[u8]) -> Option<(IpAddr, IpAddr, &'static str, IpAddr)> {
    let ip = frame.get(14..)?;
    let v4 = |at: usize| -> Option<IpAddr> {
        let a: [u8; 4] = ip.get(at..at + 4)?.try_into().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(a)))
    };
    let v6 = |at: usize| -> Option<IpAddr> {
        let a: [u8; 16] = ip.get(at..at + 16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(a)))
    };
    let (hlen, proto, src, dst) = match (frame.get(12..14)?, ip.first()? >> 4) {
        ([0x08, 0x00], 4) => (usize::from(ip[0] & 15) * 4, *ip.get(9)?, v4(12)?, v4(16)?),
        ([0x86, 0xdd], 6) => (40, *ip.get(6)?, v6(8)?, v6(24)?),
        _ => return None,
    };
    let (kind, inner) = match proto {
        4 | 41 => ("ipip", hlen),
        47 => {
            let csum = ip.get(hlen)? & 0x80 != 0;
            ("gre", hlen + 4 + if csum { 4 } else { 0 })
        }
        17 => {
            let dport = u16::from_be_bytes(ip.get(hlen + 2..hlen + 4)?.try_into().ok()?);
            if dport != GUE_PORT {
                return None;
            }
            let ext = usize::from(ip.get(hlen + 8)? & 0x1f) * 4;
            ("gue", hlen + 8 + 4 + ext)
        }
        _ => return None,
    };
    let inner_dst = match ip.get(inner)? >> 4 {
        4 => v4(inner + 16)?,
        6 => v6(inner + 24)?,
        _ => return None,
    };
    Some((src, dst, kind, inner_dst))
}

/// Tunnel TCP exchanges to the lab's one real server through every encapsulation, in the
/// family of `v6`, then check the capture.
fn tun_family(v6: bool) {
    let lab = Lab::one_lan(1).unwrap();
    let dir = TempDir::new("tun").unwrap();
    let server = &lab.servers[0];
    let (rip, dir_ip, vips): (String, &str, Vec<String>) = if v6 {
        let r = lab.server_ips[0].1.clone();
        (
            r,
            "fd01::1",
            (0..3).map(|i| format!("fd01::{}", 100 + i)).collect(),
        )
    } else {
        let r = lab.server_ips[0].0.clone();
        (
            r,
            "198.18.1.1",
            (0..3).map(|i| format!("198.18.1.{}", 100 + i)).collect(),
        )
    };
    let svc = |vip: &str| {
        if v6 {
            format!("[{vip}]:80")
        } else {
            format!("{vip}:80")
        }
    };
    for vip in &vips {
        if v6 {
            server
                .run(&[
                    "ip",
                    "-6",
                    "addr",
                    "add",
                    &format!("{vip}/128"),
                    "dev",
                    "lo",
                    "nodad",
                ])
                .unwrap();
        } else {
            lab.servers_hold_vip(vip).unwrap();
        }
    }
    let _http = lab.start_http(&dir, 80).unwrap();
    let decap = script(&dir, "decap.py", DECAP_PY).unwrap();
    let decap_log = dir.join("decap.log");
    let read_decap = || std::fs::read_to_string(&decap_log).unwrap_or_default();
    let port = GUE_PORT.to_string();
    let _decap = server
        .spawn(&[PYTHON, "-u", &decap, &port], Some(&decap_log))
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || read_decap().contains("ready")),
        "decap helper: {}",
        read_decap()
    );
    let pcap = dir.join("server.pcap");
    let pcap_s = pcap.display().to_string();
    let tcpdump_log = dir.join("tcpdump.log");
    let mut tcpdump = server
        .spawn(
            &[
                "tcpdump",
                "--immediate-mode",
                "-i",
                "r0",
                "-n",
                "-U",
                "-w",
                &pcap_s,
                "ip proto 4 or ip proto 47 or udp port 6080 or ip6 proto 41 or ip6 proto 47",
            ],
            Some(&tcpdump_log),
        )
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || std::fs::read_to_string(
            &tcpdump_log
        )
        .unwrap_or_default()
        .contains("listening")),
        "tcpdump did not start"
    );

    let xvsd = Xvsd::start(&lab, &dir, &["--workers", "1"]).unwrap();
    let rip_svc = svc(&rip);
    for (vip, (flags, _)) in vips.iter().zip(TUNNELS) {
        let s = svc(vip);
        xvsd.adm_ok(&["-A", "-t", &s, "-s", "rr"]).unwrap();
        let mut a = vec!["-a", "-t", &s, "-r", &rip_svc, "-i"];
        a.extend_from_slice(flags);
        xvsd.adm_ok(&a).unwrap();
    }
    let info = xvsd.adm_ok(&["-Ln", "--tun-info"]).unwrap();
    assert!(info.contains("gue") && info.contains("gre"), "{info}");

    // Full TCP exchanges through each tunnel.
    for (vip, (_, kind)) in vips.iter().zip(TUNNELS) {
        for _ in 0..2 {
            let body = lab
                .curl(vip, 80, 5)
                .unwrap_or_else(|e| panic!("curl through {kind}: {e}\n{}", xvsd.log()));
            assert_eq!(body, "r0", "{kind}");
        }
    }
    let fam = if v6 { "ipv6" } else { "ipv4" };
    for (_, kind) in TUNNELS {
        assert!(
            read_decap().contains(&format!("decap {kind} {fam}")),
            "{}",
            read_decap()
        );
    }
    // Replies go straight to the client: nothing outbound crosses xvsd.
    let stats = xvsd.adm_ok(&["-Ln", "--stats"]).unwrap();
    for vip in &vips {
        let s = row(&stats, &format!("TCP  {}", svc(vip))).unwrap();
        assert_eq!(s[2], "2", "{stats}");
        assert_eq!(s[4], "0", "{stats}");
    }

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

    // The capture: every encapsulated frame is director -> RIP with the VIP inside.
    let mut r = PcapReader::open(&pcap).unwrap();
    let dir_ip: IpAddr = dir_ip.parse().unwrap();
    let rip_ip: IpAddr = rip.parse().unwrap();
    let mut per_kind = BTreeMap::new();
    while let Some(rec) = r.next_record().unwrap() {
        let Some((src, dst, kind, inner_dst)) = tunnel_frame(&rec.data) else {
            continue;
        };
        assert_eq!(src, dir_ip, "{kind}: outer source");
        assert_eq!(dst, rip_ip, "{kind}: outer destination");
        let i = TUNNELS.iter().position(|t| t.1 == kind).unwrap();
        let vip: IpAddr = vips[i].parse().unwrap();
        assert_eq!(inner_dst, vip, "{kind}: inner destination");
        *per_kind.entry(kind).or_insert(0) += 1;
    }
    // Two connections per tunnel: at least SYN, ACK, request, FIN/ACK each.
    for (_, kind) in TUNNELS {
        assert!(
            per_kind.get(kind).copied().unwrap_or(0) >= 2 * 4,
            "{kind}: {per_kind:?}"
        );
    }
}

#[test]
fn tun_ipv4_ipip_gue_gre_reach_the_real_server_and_complete_tcp() {
    if !can_run("tun_ipv4_ipip_gue_gre_reach_the_real_server_and_complete_tcp") {
        return;
    }
    tun_family(false);
}

#[test]
fn tun_ipv6_ipip_gue_gre_reach_the_real_server_and_complete_tcp() {
    if !can_run("tun_ipv6_ipip_gue_gre_reach_the_real_server_and_complete_tcp") {
        return;
    }
    tun_family(true);
}
