//! ipvsadm 1.31's output formats, byte for byte: `-L` (header, titles, service and dest lines
//! with their widths and trailing blanks, `--stats/--rate` with the K/M/G/T scaling and
//! `--exact`, `--thresholds`, `--persistent-conn`, `--tun-info`), `-c`, `--timeout`, `-S`, the
//! usage and version texts; plus the xvs additions: `--json`, `--get-laddr` and `--counters`.
//!
//! Sorting reproduces libipvs's `ipvs_cmp_services`/`ipvs_cmp_dests` exactly, including their
//! wrapping `int` subtraction of addresses (not a total order for addresses 2^31 apart), run
//! through the same algorithm as glibc's `qsort` (a top-down merge sort splitting n/2), so even
//! those orders match. `--nosort` shows services in configuration order (the kernel's order is
//! its hash table's, which depends on a kernel pointer) and dests in the kernel's list order.
//! Never: panic on any data.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use super::names::Names;
use super::parse::fmt;
use crate::proto::{
    ConnRow, Counters, DestEntry, Fwd, ServiceEntry, ServiceSpec, Stats64, SvcKey, tun_type,
};
use xvs_dataplane::service::svc_flags;

/// A service with its dests, as listed.
pub type ServiceList = Vec<(ServiceEntry, Vec<DestEntry>)>;

/// The `-h` text.
#[must_use]
pub fn usage(p: &str) -> String {
    let mut s = version_line();
    let _ = write!(
        s,
        "Usage:\n  {p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]\n  {p} -D virtual-service\n  {p} -C\n  {p} -R\n  {p} -S [-n]\n  {p} -a|e virtual-service -r server-address [options]\n  {p} -d virtual-service -r server-address\n  {p} -L|l [virtual-service] [options]\n  {p} -Z [virtual-service]\n  {p} --set tcp tcpfin udp\n  {p} --start-daemon {{master|backup}} [daemon-options]\n  {p} --stop-daemon {{master|backup}}\n  {p} -h\n\n"
    );
    s.push_str(concat!(
        "Commands:\n",
        "Either long or short options are allowed.\n",
        "  --add-service     -A        add virtual service with options\n",
        "  --edit-service    -E        edit virtual service with options\n",
        "  --delete-service  -D        delete virtual service\n",
        "  --clear           -C        clear the whole table\n",
        "  --restore         -R        restore rules from stdin\n",
        "  --save            -S        save rules to stdout\n",
        "  --add-server      -a        add real server with options\n",
        "  --edit-server     -e        edit real server with options\n",
        "  --delete-server   -d        delete real server\n",
        "  --list            -L|-l     list the table\n",
        "  --zero            -Z        zero counters in a service or all services\n",
        "  --set tcp tcpfin udp        set connection timeout values\n",
        "  --start-daemon              start connection sync daemon\n",
        "  --stop-daemon               stop connection sync daemon\n",
        "  --help            -h        display this help message\n\n",
        "virtual-service:\n",
        "  --tcp-service|-t  service-address   service-address is host[:port]\n",
        "  --udp-service|-u  service-address   service-address is host[:port]\n",
        "  --sctp-service    service-address   service-address is host[:port]\n",
        "  --fwmark-service|-f fwmark          fwmark is an integer greater than zero\n",
        "\n",
        "Options:\n",
        "  --ipv6         -6                   fwmark entry uses IPv6\n",
        "  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh,\n",
        "                                      the default scheduler is wlc.\n",
        "  --pe            engine              alternate persistence engine may be sip,\n",
        "                                      not set by default.\n",
        "  --persistent   -p [timeout]         persistent service\n",
        "  --netmask      -M netmask           persistent granularity mask\n",
        "  --real-server  -r server-address    server-address is host (and port)\n",
        "  --gatewaying   -g                   gatewaying (direct routing) (default)\n",
        "  --ipip         -i                   ipip encapsulation (tunneling)\n",
        "  --masquerading -m                   masquerading (NAT)\n",
        "  --tun-type      type                one of ipip|gue|gre,\n",
        "                                      the default tunnel type is ipip.\n",
        "  --tun-port      port                tunnel destination port\n",
        "  --tun-nocsum                        tunnel encapsulation without checksum\n",
        "  --tun-csum                          tunnel encapsulation with checksum\n",
        "  --tun-remcsum                       tunnel encapsulation with remote checksum\n",
        "  --weight       -w weight            capacity of real server\n",
        "  --u-threshold  -x uthreshold        upper threshold of connections\n",
        "  --l-threshold  -y lthreshold        lower threshold of connections\n",
        "  --connection   -c                   output of current IPVS connections\n",
        "  --timeout                           output of timeout (tcp tcpfin udp)\n",
        "  --daemon                            output of daemon information\n",
        "  --stats                             output of statistics information\n",
        "  --rate                              output of rate information\n",
        "  --exact                             expand numbers (display exact values)\n",
        "  --thresholds                        output of thresholds information\n",
        "  --persistent-conn                   output of persistent connection info\n",
        "  --tun-info                          output of tunnel information\n",
        "  --nosort                            disable sorting output of service/server entries\n",
        "  --sort                              does nothing, for backwards compatibility\n",
        "  --ops          -o                   one-packet scheduling\n",
        "  --numeric      -n                   numeric output of addresses and ports\n",
        "  --sched-flags  -b flags             scheduler flags (comma-separated)\n",
        "Daemon Options:\n",
        "  --syncid sid                        syncid for connection sync (default=255)\n",
        "  --sync-maxlen length                Max sync message length (default=1472)\n",
        "  --mcast-interface interface         multicast interface for connection sync\n",
        "  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n",
        "  --mcast-port port                   UDP port (default=8848)\n",
        "  --mcast-ttl ttl                     Multicast TTL (default=1)\n",
    ));
    s
}

/// The `-v` line (ipvsadm's, so scripts that parse it keep working).
#[must_use]
pub fn version_line() -> String {
    "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n".into()
}

/// The `-L` header line.
#[must_use]
pub fn header(version_code: u32, size: u32) -> String {
    format!(
        "IP Virtual Server version {}.{}.{} (size={})\n",
        (version_code >> 16) & 0xff,
        (version_code >> 8) & 0xff,
        version_code & 0xff,
        size
    )
}

/// `--timeout` output.
#[must_use]
pub fn timeouts(tcp: u32, tcp_fin: u32, udp: u32) -> String {
    format!("Timeout (tcp tcpfin udp): {tcp} {tcp_fin} {udp}\n")
}

fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "TCP",
        17 => "UDP",
        132 => "SCTP",
        _ => "?",
    }
}

fn truncate(s: &mut String, n: usize) {
    if s.len() > n {
        let mut i = n;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
}

/// ipvsadm's `addrport_to_anyname` (59 characters at most, as its 60-byte buffer).
#[must_use]
pub fn addrport(addr: &IpAddr, port: u16, proto: u8, format: u32, names: &Names) -> String {
    let (l, r) = if addr.is_ipv4() { ("", "") } else { ("[", "]") };
    let mut s = if format & fmt::NUMERIC != 0 {
        format!("{l}{addr}{r}:{port}")
    } else {
        let host = names
            .addr_to_host(addr)
            .map_or_else(|| addr.to_string(), str::to_owned);
        let mut p = names
            .port_to_service(port, proto)
            .map_or_else(|| port.to_string(), str::to_owned);
        if names.port_to_service(port, proto).is_none() {
            truncate(&mut p, 9);
        }
        format!("{l}{host}{r}:{p}")
    };
    truncate(&mut s, 59);
    s
}

/// ipvsadm's `print_largenum`.
fn largenum(out: &mut String, i: u64, format: u32) {
    if format & fmt::EXACT != 0 {
        let len = i.to_string().len();
        let w = if len <= 8 { 9 } else { len + 1 };
        let _ = write!(out, "{i:>w$}");
        return;
    }
    let _ = if i < 100_000_000 {
        write!(out, "{i:>9}")
    } else if i < 1_000_000_000 {
        write!(out, "{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        write!(out, "{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        write!(out, "{:>8}G", i / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", i / 1_000_000_000_000)
    };
}

fn sched_flags(spec: &ServiceSpec) -> String {
    let f = spec.flags;
    let mut v: Vec<&str> = Vec::new();
    match spec.sched_name.as_str() {
        "sh" => {
            if f & svc_flags::SCHED1 != 0 {
                v.push("sh-fallback");
            }
            if f & svc_flags::SCHED2 != 0 {
                v.push("sh-port");
            }
        }
        "mh" => {
            if f & svc_flags::SCHED1 != 0 {
                v.push("mh-fallback");
            }
            if f & svc_flags::SCHED2 != 0 {
                v.push("mh-port");
            }
        }
        _ => {
            if f & svc_flags::SCHED1 != 0 {
                v.push("flag-1");
            }
            if f & svc_flags::SCHED2 != 0 {
                v.push("flag-2");
            }
            if f & svc_flags::SCHED3 != 0 {
                v.push("flag-3");
            }
        }
    }
    v.join(",")
}

/// The column titles for `format`.
#[must_use]
pub fn title(format: u32) -> String {
    if format & fmt::STATS != 0 {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if format & fmt::RATE != 0 {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if format & fmt::THRESHOLDS != 0 {
        format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if format & fmt::PERSISTENTCONN != 0 {
        format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if format & fmt::TUN_INFO != 0 {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".into()
    } else if format & fmt::RULE == 0 {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".into()
    } else {
        String::new()
    }
}

fn fwd_name(f: Fwd) -> &'static str {
    match f {
        Fwd::Masq => "Masq",
        Fwd::Local => "Local",
        Fwd::Tunnel => "Tunnel",
        Fwd::Route => "Route",
        Fwd::FullNat => "FullNat",
    }
}

fn fwd_switch(f: Fwd) -> &'static str {
    match f {
        Fwd::Masq => "-m",
        Fwd::Tunnel => "-i",
        Fwd::Local | Fwd::Route => "-g",
        Fwd::FullNat => "--fullnat",
    }
}

const TUNNAMES: [&str; 3] = ["ipip", "gue", "gre"];
const TUNFLAGS: [&str; 3] = ["-c", "+c", "r+c"];
const TUN_FLAGS_OPTS: [&str; 3] = ["--tun-nocsum", "--tun-csum", "--tun-remcsum"];

fn tun_flag_idx(flags: u16) -> usize {
    usize::from(flags).min(2)
}

fn tun_info(d: &DestEntry) -> Option<String> {
    if d.spec.fwd != Fwd::Tunnel {
        return None;
    }
    let f = TUNFLAGS[tun_flag_idx(d.spec.tun_flags)];
    let mut s = match d.spec.tun_type {
        tun_type::IPIP => "ipip".to_owned(),
        tun_type::GUE => format!("gue:{}:{f}", d.spec.tun_port),
        tun_type::GRE => format!("gre:{f}"),
        _ => return None,
    };
    truncate(&mut s, 15);
    Some(s)
}

/// The service's name as a list line or a rule starts with it.
fn svc_name(spec: &ServiceSpec, format: u32, names: &Names) -> String {
    match spec.key {
        SvcKey::Fwmark { v6, mark } => match (format & fmt::RULE != 0, v6) {
            (true, true) => format!("-f {mark} -6"),
            (true, false) => format!("-f {mark}"),
            (false, true) => format!("FWM  {mark} IPv6"),
            (false, false) => format!("FWM  {mark}"),
        },
        SvcKey::Inet { proto, addr, port } => {
            let vname = addrport(&addr, port, proto, format, names);
            if format & fmt::RULE != 0 {
                let stype = match proto {
                    6 => "-t",
                    17 => "-u",
                    132 => "--sctp-service",
                    _ => "--xxx-service",
                };
                let mut s = format!("{stype} {vname}");
                truncate(&mut s, 1023);
                s
            } else {
                let mut s = format!("{:<4} {vname}", proto_name(proto));
                truncate(&mut s, 1023);
                if addr.is_ipv4() {
                    truncate(&mut s, 33);
                }
                s
            }
        }
    }
}

fn svc_proto(spec: &ServiceSpec) -> u8 {
    match spec.key {
        SvcKey::Inet { proto, .. } => proto,
        SvcKey::Fwmark { .. } => 6,
    }
}

/// ipvsadm's `print_service_entry`: the service line and its dests (sorted unless NOSORT).
pub fn service_entry(
    out: &mut String,
    se: &ServiceEntry,
    dests: &[DestEntry],
    format: u32,
    names: &Names,
) {
    let spec = &se.spec;
    let name = svc_name(spec, format, names);
    let v6 = spec.key.is_v6();
    if format & fmt::RULE != 0 {
        let _ = write!(out, "-A {name} -s {}", spec.sched_name);
        if spec.flags & svc_flags::PERSISTENT != 0 {
            let _ = write!(out, " -p {}", spec.timeout_s);
            if !v6 && spec.netmask != 0xffff_ffff {
                let _ = write!(out, " -M {}", std::net::Ipv4Addr::from(spec.netmask));
            }
            if v6 && spec.netmask != 128 {
                let _ = write!(out, " -M {}", spec.netmask);
            }
        }
        if let Some(pe) = &spec.pe_name {
            let _ = write!(out, " --pe {pe}");
        }
        if spec.flags & svc_flags::ONEPACKET != 0 {
            out.push_str(" -o");
        }
        if spec.flags & (svc_flags::SCHED1 | svc_flags::SCHED2 | svc_flags::SCHED3) != 0 {
            let _ = write!(out, " -b {}", sched_flags(spec));
        }
    } else if format & (fmt::STATS | fmt::RATE) != 0 {
        let _ = write!(out, "{name:<33}");
        let s = &se.stats;
        let v = if format & fmt::STATS != 0 {
            [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes]
        } else {
            [s.cps, s.inpps, s.outpps, s.inbps, s.outbps]
        };
        for x in v {
            largenum(out, x, format);
        }
    } else {
        let _ = write!(out, "{name} {}", spec.sched_name);
        if spec.flags & (svc_flags::SCHED1 | svc_flags::SCHED2 | svc_flags::SCHED3) != 0 {
            let _ = write!(out, " ({})", sched_flags(spec));
        }
        if spec.flags & svc_flags::PERSISTENT != 0 {
            let _ = write!(out, " persistent {}", spec.timeout_s);
            if !v6 && spec.netmask != 0xffff_ffff {
                let _ = write!(out, " mask {}", std::net::Ipv4Addr::from(spec.netmask));
            }
            if v6 && spec.netmask != 128 {
                let _ = write!(out, " mask {}", spec.netmask);
            }
            if let Some(pe) = &spec.pe_name {
                let _ = write!(out, " pe {pe}");
            }
        }
        if spec.flags & svc_flags::ONEPACKET != 0 {
            out.push_str(" ops");
        }
    }
    out.push('\n');

    let mut order: Vec<&DestEntry> = dests.iter().collect();
    if format & fmt::NOSORT == 0 {
        glibc_msort(&mut order, |a, b| cmp_dests(a, b));
    }
    let proto = svc_proto(spec);
    for d in order {
        let e = &d.spec;
        let mut dname = addrport(&e.addr, e.port, proto, format, names);
        if format & fmt::RULE == 0 && e.addr.is_ipv4() {
            truncate(&mut dname, 28);
        }
        if format & fmt::RULE != 0 {
            let sw = fwd_switch(e.fwd);
            if e.fwd == Fwd::Tunnel {
                let tn = TUNNAMES[usize::from(e.tun_type).min(2)];
                let fl = TUN_FLAGS_OPTS[tun_flag_idx(e.tun_flags)];
                let _ = match e.tun_type {
                    tun_type::GRE => writeln!(
                        out,
                        "-a {name} -r {dname} {sw} -w {} --tun-type {tn} {fl}",
                        e.weight
                    ),
                    tun_type::GUE => writeln!(
                        out,
                        "-a {name} -r {dname} {sw} -w {} --tun-type {tn} --tun-port {} {fl}",
                        e.weight, e.tun_port
                    ),
                    _ => writeln!(
                        out,
                        "-a {name} -r {dname} {sw} -w {} --tun-type {tn}",
                        e.weight
                    ),
                };
            } else {
                let _ = writeln!(out, "-a {name} -r {dname} {sw} -w {}", e.weight);
            }
        } else if format & fmt::STATS != 0 {
            let _ = write!(out, "  -> {dname:<28}");
            let s = &d.stats;
            for x in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
                largenum(out, x, format);
            }
            out.push('\n');
        } else if format & fmt::RATE != 0 {
            let s = &d.stats;
            let _ = write!(
                out,
                "  -> {dname:<28} {:>8} {:>8} {:>8}",
                s.cps, s.inpps, s.outpps
            );
            largenum(out, s.inbps, format);
            largenum(out, s.outbps, format);
            out.push('\n');
        } else if format & fmt::THRESHOLDS != 0 {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                e.u_threshold, e.l_threshold, d.activeconns, d.inactconns
            );
        } else if format & fmt::PERSISTENTCONN != 0 {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                e.weight, d.persistconns, d.activeconns, d.inactconns
            );
        } else if format & fmt::TUN_INFO != 0 {
            let ti = tun_info(d).unwrap_or_else(|| "n/a".into());
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {ti:<13} {:<6} {:<10} {:<10}",
                fwd_name(e.fwd),
                e.weight,
                d.activeconns,
                d.inactconns
            );
        } else {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                fwd_name(e.fwd),
                e.weight,
                d.activeconns,
                d.inactconns
            );
        }
    }
    if format & fmt::RULE != 0 {
        for l in &se.laddrs {
            let _ = writeln!(out, "--add-laddr {name} -z {l}");
        }
    }
}

/// `-L` of everything (`with_header`) or `-S` (`format` has RULE: no header, no title).
#[must_use]
pub fn list_all(
    services: &ServiceList,
    format: u32,
    header_line: Option<&str>,
    names: &Names,
) -> String {
    let mut out = String::new();
    if let Some(h) = header_line.filter(|_| format & fmt::RULE == 0) {
        out.push_str(h);
    }
    let mut order: Vec<&(ServiceEntry, Vec<DestEntry>)> = services.iter().collect();
    if format & fmt::NOSORT == 0 {
        glibc_msort(&mut order, |a, b| cmp_services(&a.0.spec, &b.0.spec));
    }
    out.push_str(&title(format));
    for (se, ds) in order {
        service_entry(&mut out, se, ds, format, names);
    }
    out
}

/// `-Lnc` output.
#[must_use]
pub fn conns(rows: &[ConnRow], format: u32, names: &Names) -> String {
    let mut out = String::from("IPVS connection entries\n");
    let pc = format & fmt::PERSISTENTCONN != 0;
    if pc {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for r in rows {
        let proto = match r.proto {
            0 => "IP".to_owned(),
            6 => "TCP".to_owned(),
            17 => "UDP".to_owned(),
            132 => "SCTP".to_owned(),
            1 => "ICMP".to_owned(),
            58 => "ICMPv6".to_owned(),
            n => format!("IP_{n}"),
        };
        // ipvsadm maps the printed name back to a number for service-name lookups.
        let pnum = match proto.as_str() {
            "TCP" => 6,
            "UDP" => 17,
            "SCTP" => 132,
            _ => 0,
        };
        let c = addrport(&r.caddr, r.cport, pnum, format, names);
        let v = addrport(&r.vaddr, r.vport, pnum, format, names);
        let d = addrport(&r.daddr, r.dport, pnum, format, names);
        let exp = format!("{:02}:{:02}", r.expires_s / 60, r.expires_s % 60);
        match (&r.pe, pc) {
            (Some((pn, pd)), true) => {
                let _ = writeln!(
                    out,
                    "{proto:<3} {exp:<6} {:<11} {c:<18} {v:<18} {d:<16} {pn:<18} {pd}",
                    r.state
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "{proto:<3} {exp:<6} {:<11} {c:<18} {v:<18} {d}",
                    r.state
                );
            }
        }
    }
    out
}

/// `--get-laddr` output (an xvs addition): each FULLNAT service and its local addresses.
#[must_use]
pub fn laddrs(services: &ServiceList, format: u32, names: &Names) -> String {
    let mut out = String::from("Prot LocalAddress:Port\n  -> LocalIP (FULLNAT)\n");
    let mut order: Vec<&(ServiceEntry, Vec<DestEntry>)> = services.iter().collect();
    glibc_msort(&mut order, |a, b| cmp_services(&a.0.spec, &b.0.spec));
    for (se, _) in order {
        if se.laddrs.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{}", svc_name(&se.spec, format & fmt::NUMERIC, names));
        for l in &se.laddrs {
            let _ = writeln!(out, "  -> {l}");
        }
    }
    out
}

fn addr_words(a: &IpAddr) -> [u32; 4] {
    match a {
        IpAddr::V4(v) => [u32::from(*v), 0, 0, 0],
        IpAddr::V6(v) => {
            let o = v.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            [w(0), w(4), w(8), w(12)]
        }
    }
}

#[allow(clippy::cast_possible_wrap)]
fn wrap_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

fn cmp_addr(v6: bool, a: &IpAddr, b: &IpAddr) -> i32 {
    let (wa, wb) = (addr_words(a), addr_words(b));
    if v6 {
        let mut r = 0;
        for i in 0..4 {
            if r != 0 {
                break;
            }
            r = wrap_diff(wa[i], wb[i]);
        }
        r
    } else {
        wrap_diff(wa[0], wb[0])
    }
}

/// libipvs `ipvs_cmp_services` (returns C's int).
#[must_use]
pub fn cmp_services(s1: &ServiceSpec, s2: &ServiceSpec) -> i32 {
    let parts = |s: &ServiceSpec| -> (u32, i32, i32, IpAddr, i32) {
        let af = if s.key.is_v6() { 10 } else { 2 };
        match s.key {
            SvcKey::Fwmark { mark, .. } => {
                (mark, af, 6, IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0)
            }
            SvcKey::Inet { proto, addr, port } => (0, af, i32::from(proto), addr, i32::from(port)),
        }
    };
    let (f1, af1, p1, a1, port1) = parts(s1);
    let (f2, af2, p2, a2, port2) = parts(s2);
    let r = wrap_diff(f1, f2);
    if r != 0 {
        return r;
    }
    let r = af1 - af2;
    if r != 0 {
        return r;
    }
    let r = p1 - p2;
    if r != 0 {
        return r;
    }
    let r = cmp_addr(af1 == 10, &a1, &a2);
    if r != 0 {
        return r;
    }
    port1 - port2
}

/// libipvs `ipvs_cmp_dests`.
#[must_use]
pub fn cmp_dests(d1: &DestEntry, d2: &DestEntry) -> i32 {
    let r = cmp_addr(d1.spec.addr.is_ipv6(), &d1.spec.addr, &d2.spec.addr);
    if r != 0 {
        return r;
    }
    i32::from(d1.spec.port) - i32::from(d2.spec.port)
}

/// glibc `qsort` (its `msort_with_tmp`): top-down merge sort, first half n/2, ties and
/// `cmp <= 0` take the left element. Reproduces glibc's order even for inconsistent comparators.
pub fn glibc_msort<T: Copy>(v: &mut [T], cmp: impl Fn(&T, &T) -> i32 + Copy) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    glibc_msort(&mut v[..n1], cmp);
    glibc_msort(&mut v[n1..], cmp);
    let mut tmp = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            tmp.push(v[i]);
            i += 1;
        } else {
            tmp.push(v[j]);
            j += 1;
        }
    }
    tmp.extend_from_slice(&v[i..n1]);
    let k = tmp.len();
    v[..k].copy_from_slice(&tmp);
}

/// Rust ordering helper for tests and callers that need a total order view.
#[must_use]
pub fn ord(i: i32) -> Ordering {
    i.cmp(&0)
}

#[derive(Serialize)]
struct JsonDest<'a> {
    address: IpAddr,
    port: u16,
    forward: &'static str,
    weight: i32,
    u_threshold: u32,
    l_threshold: u32,
    activeconns: u32,
    inactconns: u32,
    persistconns: u32,
    tunnel: Option<String>,
    stats: &'a Stats64,
}

#[derive(Serialize)]
struct JsonService<'a> {
    protocol: Option<&'static str>,
    address: Option<IpAddr>,
    port: Option<u16>,
    fwmark: Option<u32>,
    ipv6: bool,
    scheduler: &'a str,
    sched_flags: String,
    persistent: Option<u32>,
    netmask: Option<String>,
    pe: Option<&'a str>,
    ops: bool,
    laddrs: &'a [IpAddr],
    stats: &'a Stats64,
    dests: Vec<JsonDest<'a>>,
}

/// `-L --json`: the listing as one JSON document (sorted as the text listing).
#[must_use]
pub fn json_list(services: &ServiceList, format: u32, header: Option<(u32, u32)>) -> String {
    let mut order: Vec<&(ServiceEntry, Vec<DestEntry>)> = services.iter().collect();
    if format & fmt::NOSORT == 0 {
        glibc_msort(&mut order, |a, b| cmp_services(&a.0.spec, &b.0.spec));
    }
    let svcs: Vec<JsonService<'_>> = order
        .iter()
        .map(|(se, ds)| {
            let s = &se.spec;
            let mut dorder: Vec<&DestEntry> = ds.iter().collect();
            if format & fmt::NOSORT == 0 {
                glibc_msort(&mut dorder, |a, b| cmp_dests(a, b));
            }
            let (protocol, address, port, fwmark) = match s.key {
                SvcKey::Inet { proto, addr, port } => {
                    (Some(proto_name(proto)), Some(addr), Some(port), None)
                }
                SvcKey::Fwmark { mark, .. } => (None, None, None, Some(mark)),
            };
            let persistent = (s.flags & svc_flags::PERSISTENT != 0).then_some(s.timeout_s);
            let netmask = persistent.map(|_| {
                if s.key.is_v6() {
                    s.netmask.to_string()
                } else {
                    std::net::Ipv4Addr::from(s.netmask).to_string()
                }
            });
            JsonService {
                protocol,
                address,
                port,
                fwmark,
                ipv6: s.key.is_v6(),
                scheduler: &s.sched_name,
                sched_flags: sched_flags(s),
                persistent,
                netmask,
                pe: s.pe_name.as_deref(),
                ops: s.flags & svc_flags::ONEPACKET != 0,
                laddrs: &se.laddrs,
                stats: &se.stats,
                dests: dorder
                    .iter()
                    .map(|d| JsonDest {
                        address: d.spec.addr,
                        port: d.spec.port,
                        forward: fwd_name(d.spec.fwd),
                        weight: d.spec.weight,
                        u_threshold: d.spec.u_threshold,
                        l_threshold: d.spec.l_threshold,
                        activeconns: d.activeconns,
                        inactconns: d.inactconns,
                        persistconns: d.persistconns,
                        tunnel: tun_info(d),
                        stats: &d.stats,
                    })
                    .collect(),
            }
        })
        .collect();
    let v = match header {
        Some((code, size)) => serde_json::json!({
            "version": format!("{}.{}.{}", (code >> 16) & 0xff, (code >> 8) & 0xff, code & 0xff),
            "conn_tab_size": size,
            "services": svcs,
        }),
        None => serde_json::json!({ "services": svcs }),
    };
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

/// `--counters` (an xvs addition): the conn table, the SYN-flood defence, the daemon's file
/// descriptors and memory, each worker's traffic and UMEM frames, and every drop reason with
/// its total and per-worker count. Numbers are exact (no K/M scaling), columns right-aligned.
#[must_use]
pub fn counters(c: &Counters) -> String {
    let mut out = String::new();
    let d = &c.defence;
    let _ = writeln!(out, "Conns {} (max {})", c.conns, c.max_conns);
    let _ = writeln!(
        out,
        "Defence drop_entry {}, drop_packet {}, secure_tcp {}, amemthresh {}: {}, {} entries dropped, {} new conns refused",
        d.drop_entry,
        d.drop_packet,
        d.secure_tcp,
        d.amemthresh,
        if d.active { "active" } else { "inactive" },
        d.dropped_entries,
        drop_total(c, "defence"),
    );
    let _ = writeln!(out, "Process fds {}, rss {} KiB", c.fds, c.rss_kib);
    let _ = writeln!(
        out,
        "Worker {:>12} {:>14} {:>12} {:>14} {:>10} {:>10} {:>10} {:>12}",
        "RxPackets",
        "RxBytes",
        "TxPackets",
        "TxBytes",
        "NewConns",
        "NeighRepl",
        "NeighReq",
        "FlowHits"
    );
    for (i, w) in c.workers.iter().enumerate() {
        let _ = writeln!(
            out,
            "{i:<6} {:>12} {:>14} {:>12} {:>14} {:>10} {:>10} {:>10} {:>12}",
            w.rx_packets,
            w.rx_bytes,
            w.tx_packets,
            w.tx_bytes,
            w.conns_created,
            w.neigh_replies,
            w.neigh_requests,
            w.flow_hits
        );
    }
    let _ = writeln!(
        out,
        "Worker {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "Frames", "Free", "InFlight", "Fill", "Held", "Tx", "BadDescs"
    );
    for (i, w) in c.workers.iter().enumerate() {
        match &w.frames {
            Some(f) => {
                let _ = writeln!(
                    out,
                    "{i:<6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                    f.total, f.free, f.in_flight, f.fill, f.held, f.tx, f.bad_descs
                );
            }
            None => {
                let _ = writeln!(out, "{i:<6} {:>10}", "-");
            }
        }
    }
    let _ = write!(out, "{:<20}{:>12}", "Drop reason", "Total");
    for i in 0..c.workers.len() {
        let _ = write!(out, " {:>12}", format!("Worker{i}"));
    }
    out.push('\n');
    for (r, (name, total)) in c.drop_reasons.iter().zip(c.drop_totals()).enumerate() {
        let _ = write!(out, "  {name:<18}{total:>12}");
        for w in &c.workers {
            let _ = write!(out, " {:>12}", w.drops.get(r).copied().unwrap_or(0));
        }
        out.push('\n');
    }
    out
}

fn drop_total(c: &Counters, reason: &str) -> u64 {
    c.drop_reasons
        .iter()
        .position(|r| r == reason)
        .and_then(|i| c.drop_totals().get(i).copied())
        .unwrap_or(0)
}

/// `--counters --json`: the same figures as one JSON document; drops as objects keyed by
/// reason name (totals, and per worker).
#[must_use]
pub fn json_counters(c: &Counters) -> String {
    let by_name = |v: &[u64]| -> serde_json::Map<String, serde_json::Value> {
        c.drop_reasons
            .iter()
            .zip(v.iter().copied().chain(std::iter::repeat(0)))
            .map(|(n, x)| (n.clone(), x.into()))
            .collect()
    };
    let workers: Vec<serde_json::Value> = c
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            serde_json::json!({
                "worker": i,
                "rx_packets": w.rx_packets,
                "rx_bytes": w.rx_bytes,
                "tx_packets": w.tx_packets,
                "tx_bytes": w.tx_bytes,
                "conns_created": w.conns_created,
                "neigh_replies": w.neigh_replies,
                "neigh_requests": w.neigh_requests,
                "flow_hits": w.flow_hits,
                "drops": by_name(&w.drops),
                "frames": w.frames,
            })
        })
        .collect();
    let v = serde_json::json!({
        "conns": c.conns,
        "max_conns": c.max_conns,
        "defence": {
            "drop_entry": c.defence.drop_entry,
            "drop_packet": c.defence.drop_packet,
            "secure_tcp": c.defence.secure_tcp,
            "amemthresh": c.defence.amemthresh,
            "active": c.defence.active,
            "dropped_entries": c.defence.dropped_entries,
            "refused_conns": drop_total(c, "defence"),
        },
        "process": { "fds": c.fds, "rss_kib": c.rss_kib },
        "drops": by_name(&c.drop_totals()),
        "workers": workers,
    });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_name_every_reason_per_worker() {
        use crate::proto::{DefenceInfo, FrameInfo, WorkerCounters};
        let w = |rx: u64, d: Vec<u64>, frames| WorkerCounters {
            rx_packets: rx,
            rx_bytes: rx * 100,
            tx_packets: rx - 1,
            tx_bytes: (rx - 1) * 100,
            conns_created: 3,
            neigh_replies: 1,
            neigh_requests: 2,
            flow_hits: rx - 2,
            drops: d,
            frames,
        };
        let c = Counters {
            drop_reasons: vec!["malformed".into(), "defence".into()],
            workers: vec![
                w(
                    10,
                    vec![1, 4],
                    Some(FrameInfo {
                        total: 8192,
                        free: 6144,
                        in_flight: 2048,
                        fill: 2047,
                        held: 1,
                        tx: 0,
                        bad_descs: 0,
                    }),
                ),
                w(20, vec![0, 5], None),
            ],
            conns: 7,
            max_conns: 100,
            defence: DefenceInfo {
                drop_entry: "auto".into(),
                drop_packet: "off".into(),
                secure_tcp: "always".into(),
                amemthresh: 50,
                active: true,
                dropped_entries: 12,
            },
            fds: 9,
            rss_kib: 1234,
        };
        let expect = "\
Conns 7 (max 100)
Defence drop_entry auto, drop_packet off, secure_tcp always, amemthresh 50: active, 12 entries dropped, 9 new conns refused
Process fds 9, rss 1234 KiB
Worker    RxPackets        RxBytes    TxPackets        TxBytes   NewConns  NeighRepl   NeighReq     FlowHits
0                10           1000            9            900          3          1          2            8
1                20           2000           19           1900          3          1          2           18
Worker     Frames       Free   InFlight       Fill       Held         Tx   BadDescs
0            8192       6144       2048       2047          1          0          0
1               -
Drop reason                Total      Worker0      Worker1
  malformed                    1            1            0
  defence                      9            4            5
";
        assert_eq!(counters(&c), expect);
        let j: serde_json::Value = serde_json::from_str(&json_counters(&c)).unwrap();
        assert_eq!(j["drops"]["defence"], 9);
        assert_eq!(j["defence"]["refused_conns"], 9);
        assert_eq!(j["workers"][1]["drops"]["defence"], 5);
        assert_eq!(j["workers"][0]["frames"]["in_flight"], 2048);
        assert_eq!(j["workers"][1]["flow_hits"], 18);
        assert!(j["workers"][1]["frames"].is_null());
        assert_eq!(j["process"]["fds"], 9);
    }

    #[test]
    fn largenum_scaling() {
        let f = |i, fm| {
            let mut s = String::new();
            largenum(&mut s, i, fm);
            s
        };
        assert_eq!(f(0, 0), "        0");
        assert_eq!(f(99_999_999, 0), " 99999999");
        assert_eq!(f(100_000_000, 0), "  100000K");
        assert_eq!(f(1_000_000_000, 0), "    1000M");
        assert_eq!(f(100_000_000_000, 0), "     100G");
        assert_eq!(f(100_000_000_000_000, 0), "     100T");
        assert_eq!(f(123_456_789_012, fmt::EXACT), " 123456789012");
        assert_eq!(f(5, fmt::EXACT), "        5");
    }

    #[test]
    fn msort_is_stable_merge() {
        let mut v = [5, 3, 9, 1, 3, 7];
        glibc_msort(&mut v, |a, b| a - b);
        assert_eq!(v, [1, 3, 3, 5, 7, 9]);
    }

    #[test]
    fn conn_rows() {
        let row = |state: &str, exp: u32, pe: Option<(String, String)>| ConnRow {
            proto: 6,
            caddr: "10.0.0.5".parse().unwrap(),
            cport: 40000,
            vaddr: "10.0.0.1".parse().unwrap(),
            vport: 80,
            daddr: "10.0.1.1".parse().unwrap(),
            dport: 8080,
            state: state.into(),
            expires_s: exp,
            pe,
        };
        let rows = [
            row("ESTABLISHED", 899, None),
            row("SYN_RECV", 6005, Some(("sip".into(), "abc".into()))),
        ];
        let out = conns(&rows, fmt::NUMERIC, &Names::default());
        // ipvsadm: "%-3s %-6s %-11s %-18s %-18s %s\n", expire "%02d:%02d".
        assert_eq!(
            out,
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination\n\
             TCP 14:59  ESTABLISHED 10.0.0.5:40000     10.0.0.1:80        10.0.1.1:8080\n\
             TCP 100:05 SYN_RECV    10.0.0.5:40000     10.0.0.1:80        10.0.1.1:8080\n"
        );
        let out = conns(
            &rows[1..],
            fmt::NUMERIC | fmt::PERSISTENTCONN,
            &Names::default(),
        );
        assert_eq!(
            out.lines().nth(1).unwrap(),
            "pro expire state       source             virtual            destination        pe name          pe_data"
        );
        assert_eq!(
            out.lines().nth(2).unwrap(),
            // The row pads destination to 16 and pe name to 18 (the header the other way round).
            "TCP 100:05 SYN_RECV    10.0.0.5:40000     10.0.0.1:80        10.0.1.1:8080    sip                abc"
        );
    }

    #[test]
    fn wrapping_address_compare() {
        // 1.0.0.0 vs 200.0.0.0: the C int subtraction is positive, so 1.0.0.0 sorts after.
        let a: IpAddr = "1.0.0.0".parse().unwrap();
        let b: IpAddr = "200.0.0.0".parse().unwrap();
        assert!(cmp_addr(false, &a, &b) > 0);
        let c: IpAddr = "10.0.0.1".parse().unwrap();
        let d: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(cmp_addr(false, &c, &d) < 0);
    }
}
