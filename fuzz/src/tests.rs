//! The fuzz targets as plain tests (stable Rust, no libFuzzer instrumentation): every file of
//! the committed seed corpus `seeds/<target>/`, then a seeded random mutator over those seeds
//! for `XVS_FUZZ_ITERS` inputs per target (default 2000; the pipeline a quarter of that).
//! `XVS_FUZZ_SEED` picks the random seed (default fixed, so a failure reproduces); the failing
//! input is written to `artifacts/<target>/` so `cargo fuzz run <target> <file>` replays it.
//! `XVS_WRITE_SEEDS=1 cargo test --lib write_seeds` regenerates the seed corpus.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use xvs_dataplane::testutil as tu;

use crate::common::{C_MAC, D0, D1, R_MAC};

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 6] = [
    ("wire_parse", crate::wire_parse),
    ("pipeline", crate::pipeline),
    ("pipeline_bursts", crate::pipeline_bursts),
    ("proto", crate::proto),
    ("ipvsadm_args", crate::ipvsadm_args),
    ("restore", crate::restore),
];

fn dir(sub: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(sub).join(target)
}

/// The seed corpus of `target`: its own, but `pipeline_bursts` reads `pipeline`'s records.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let from = if target == "pipeline_bursts" {
        "pipeline"
    } else {
        target
    };
    let mut v: Vec<_> = std::fs::read_dir(dir("seeds", from))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// xorshift64*: a tiny deterministic generator (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A libFuzzer-like mutation: a few random edits (flip, set, insert, delete, truncate,
/// interesting value, splice with another seed).
fn mutate(rng: &mut Rng, input: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        let n = v.len();
        match rng.below(8) {
            0 if n > 0 => {
                let i = rng.below(n);
                v[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                v[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(n + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if n > 0 => {
                let i = rng.below(n);
                v.remove(i);
            }
            4 => v.truncate(rng.below(n + 1)),
            5 if n > 0 => {
                let i = rng.below(n);
                v[i] = [0, 1, 0x7f, 0x80, 0xff, 0x40, 0x45, 0x0f][rng.below(8)];
            }
            6 if n >= 2 => {
                let i = rng.below(n - 1);
                let x = [
                    0u16, 1, 0xffff, 0x8000, 20, 40, 1500, 0x0800, 0x86dd, 0x8100,
                ][rng.below(10)];
                v[i..i + 2].copy_from_slice(&x.to_be_bytes());
            }
            7 if !pool.is_empty() => {
                let other = &pool[rng.below(pool.len())];
                let a = rng.below(other.len() + 1);
                let b = a + rng.below(other.len() - a + 1);
                let at = rng.below(n + 1);
                v.splice(at..at, other[a..b].iter().copied());
            }
            _ => {}
        }
    }
    v
}

fn run_one(target: &str, f: Target, input: &[u8]) {
    let r = std::panic::catch_unwind(|| f(input));
    if let Err(e) = r {
        let d = dir("artifacts", target);
        let _ = std::fs::create_dir_all(&d);
        let p = d.join(format!("crash-{:016x}", fxhash(input)));
        let _ = std::fs::write(&p, input);
        eprintln!("{target}: failing input written to {}", p.display());
        std::panic::resume_unwind(e);
    }
}

fn fxhash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn random(target: &str, f: Target, scale: u64) {
    let pool = seeds(target);
    assert!(!pool.is_empty(), "no seeds for {target}");
    let iters = env_u64("XVS_FUZZ_ITERS", 2000) / scale;
    let mut rng = Rng(env_u64("XVS_FUZZ_SEED", 0x5eed_0fc0_ffee) | 1);
    for _ in 0..iters {
        let base = &pool[rng.below(pool.len())];
        let input = mutate(&mut rng, base, &pool);
        run_one(target, f, &input);
    }
}

#[test]
fn seeds_all_targets() {
    for (name, f) in TARGETS {
        let s = seeds(name);
        assert!(!s.is_empty(), "no seeds for {name}");
        for input in &s {
            run_one(name, f, input);
        }
    }
}

#[test]
fn random_wire_parse() {
    random("wire_parse", crate::wire_parse, 1);
}

#[test]
fn random_pipeline() {
    random("pipeline", crate::pipeline, 4);
}

#[test]
fn random_pipeline_bursts() {
    random("pipeline_bursts", crate::pipeline_bursts, 4);
}

#[test]
fn random_proto() {
    random("proto", crate::proto, 1);
}

#[test]
fn random_ipvsadm_args() {
    random("ipvsadm_args", crate::ipvsadm_args, 1);
}

#[test]
fn random_restore() {
    random("restore", crate::restore, 2);
}

/// Replay every crash artifact left by a run (empty when there are none).
#[test]
fn artifacts_replay() {
    for (name, f) in TARGETS {
        if let Ok(d) = std::fs::read_dir(dir("artifacts", name)) {
            for e in d.flatten() {
                let input = std::fs::read(e.path()).unwrap();
                eprintln!("replaying {}", e.path().display());
                f(&input);
            }
        }
    }
}

#[test]
fn fix_checksums_makes_frames_verify() {
    for (_, mut f) in frames() {
        let good = f.clone();
        // Spoil the last byte (payload or a checksum), then fix.
        let n = f.len();
        f[n - 1] ^= 0x55;
        crate::fix_checksums(&mut f);
        tu::verify_checksums(&f).unwrap();
        let mut g = good.clone();
        crate::fix_checksums(&mut g);
        assert_eq!(g, good, "fixing a correct frame changed it");
    }
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// One short conversation per service of the fixture director (port, frame).
fn frames() -> Vec<(u8, Vec<u8>)> {
    let cip = v4("198.18.1.2");
    let cip6 = v6("fd01::2");
    let rip = v4("198.18.2.10");
    let rip6 = v6("fd02::10");
    let mut v = Vec::new();
    for (vip, port) in [
        ("198.18.1.100", 80),
        ("198.18.1.101", 80),
        ("198.18.1.102", 80),
        ("198.18.1.103", 80),
        ("198.18.1.104", 80),
        ("198.18.1.105", 80),
        ("198.18.1.106", 443),
    ] {
        let vip = v4(vip);
        v.push((0, tu::tcp4(C_MAC, D0, cip, 40000, vip, port, SYN, b"")));
        v.push((
            0,
            tu::tcp4(
                C_MAC,
                D0,
                cip,
                40000,
                vip,
                port,
                ACK | PSH,
                b"GET / HTTP/1.0\r\n\r\n",
            ),
        ));
    }
    // NAT replies from the real server.
    v.push((
        1,
        tu::tcp4(R_MAC, D1, rip, 8080, cip, 40000, SYN | ACK, b""),
    ));
    v.push((
        1,
        tu::tcp4(
            R_MAC,
            D1,
            rip,
            8080,
            cip,
            40000,
            ACK | FIN,
            b"HTTP/1.0 200 OK\r\n",
        ),
    ));
    for vip in ["fd01::100", "fd01::101", "fd01::102", "fd01::105"] {
        let vip = v6(vip);
        v.push((0, tu::tcp6(C_MAC, D0, cip6, 40001, vip, 80, SYN, b"")));
        v.push((0, tu::tcp6(C_MAC, D0, cip6, 40001, vip, 80, ACK, b"x")));
    }
    v.push((
        1,
        tu::tcp6(R_MAC, D1, rip6, 8080, cip6, 40001, SYN | ACK, b""),
    ));
    v.push((
        0,
        tu::udp4(C_MAC, D0, cip, 5000, v4("198.18.1.100"), 53, b"query"),
    ));
    v.push((1, tu::udp4(R_MAC, D1, rip, 5353, cip, 5000, b"answer")));
    v.push((
        0,
        tu::echo_request(
            C_MAC,
            D0,
            IpAddr::V4(cip),
            IpAddr::V4(v4("198.18.1.1")),
            7,
            b"ping",
        ),
    ));
    v.push((
        0,
        tu::echo_request(
            C_MAC,
            D0,
            IpAddr::V6(cip6),
            IpAddr::V6(v6("fd01::1")),
            7,
            b"ping",
        ),
    ));
    v.push((0, tu::arp_request(C_MAC, cip, v4("198.18.1.100"))));
    v.push((0, tu::neighbor_solicit(C_MAC, cip6, v6("fd01::100"))));
    // An ICMP error from the real server about a NAT reply.
    let quoted = tu::tcp4(R_MAC, D1, rip, 8080, cip, 40000, ACK, b"");
    v.push((
        1,
        tu::icmp_error(
            R_MAC,
            D1,
            IpAddr::V4(rip),
            IpAddr::V4(cip),
            3,
            4,
            1400,
            &tu::l3(&quoted)[..28],
        ),
    ));
    v.push((
        0,
        tu::with_vlan(
            &tu::tcp4(C_MAC, D0, cip, 40002, v4("198.18.1.100"), 80, SYN, b""),
            7,
        ),
    ));
    v
}

fn record(port: u8, fix: bool, secs: u8, f: &[u8]) -> Vec<u8> {
    let mut r = vec![port | if fix { 2 } else { 0 } | (secs << 2)];
    r.extend_from_slice(&u16::try_from(f.len()).unwrap().to_be_bytes());
    r.extend_from_slice(f);
    r
}

/// Regenerate `seeds/` (run with `XVS_WRITE_SEEDS=1`; otherwise a no-op).
#[test]
fn write_seeds() {
    if std::env::var_os("XVS_WRITE_SEEDS").is_none() {
        return;
    }
    let put = |target: &str, name: &str, data: &[u8]| {
        let d = dir("seeds", target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), data).unwrap();
    };
    let fr = frames();
    for (i, (_, f)) in fr.iter().enumerate() {
        put("wire_parse", &format!("frame-{i:02}"), f);
    }
    // Pipeline: each frame alone, then whole conversations in one input.
    for (i, (p, f)) in fr.iter().enumerate() {
        put(
            "pipeline",
            &format!("frame-{i:02}"),
            &record(*p, true, 0, f),
        );
    }
    let mut all = Vec::new();
    for (p, f) in &fr {
        all.extend(record(*p, true, 0, f));
    }
    all.extend(record(0, true, 63, &fr[0].1));
    put("pipeline", "conversation", &all);

    // Control protocol: framed and bare requests.
    let reqs = [
        r#"{"version":1,"body":"GetInfo"}"#.to_owned(),
        r#"{"version":1,"body":"GetTimeouts"}"#.to_owned(),
        r#"{"version":1,"body":{"List":{"service":null,"stats":true}}}"#.to_owned(),
        r#"{"version":2,"body":"GetInfo"}"#.to_owned(),
        r#"{"version":1,"body":{"Restore":{"prog":"ipvsadm","chunk":"-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m\n","last":true}}}"#.to_owned(),
    ];
    let mut stream = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        put("proto", &format!("bare-{i}"), r.as_bytes());
        stream.extend_from_slice(&u32::try_from(r.len()).unwrap().to_be_bytes());
        stream.extend_from_slice(r.as_bytes());
    }
    put("proto", "stream", &stream);
    // An Exec request as the client encodes it.
    let cmd = xvs_control::proto::Request {
        version: xvs_control::proto::VERSION,
        body: xvs_control::proto::RequestBody::GetConns,
    };
    put("proto", "getconns", serde_json_bytes(&cmd).as_slice());

    // ipvsadm arguments and restore text from the golden CLI cases.
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../control/tests/golden");
    let mut cases: Vec<_> = std::fs::read_dir(golden)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    cases.sort();
    let (mut na, mut nr) = (0, 0);
    for c in cases {
        let text = std::fs::read_to_string(c).unwrap();
        let mut block = String::new();
        for line in text.lines() {
            if let Some(args) = line.strip_prefix("$ ipvsadm") {
                let argv: Vec<&str> = args.split_whitespace().collect();
                let mut s = vec![0u8];
                s.extend_from_slice(argv.join("\0").as_bytes());
                put("ipvsadm_args", &format!("golden-{na:03}"), &s);
                na += 1;
            }
            if let Some(l) = line.strip_prefix("< ").or(line.strip_prefix("<")) {
                block.push_str(l);
                block.push('\n');
            } else if !block.is_empty() {
                let mut s = vec![u8::from(nr % 2 == 1)];
                s.extend_from_slice(block.as_bytes());
                put("restore", &format!("golden-{nr:03}"), &s);
                nr += 1;
                block.clear();
            }
        }
    }
    let save = "-A -t 198.18.1.100:80 -s wlc -p 300 -M 255.255.255.0\n\
        -a -t 198.18.1.100:80 -r 198.18.2.10:8080 -m -w 2 -x 100 -y 50\n\
        -A -u 198.18.1.100:53 -s rr -o\n\
        -a -u 198.18.1.100:53 -r 198.18.2.10:5353 -m -w 1\n\
        -A -f 7 -s mh -b mh-port,mh-fallback\n\
        -a -f 7 -r 198.18.2.11:0 -i -w 1\n\
        -A -t [fd01::100]:80 -s sh -b sh-port\n\
        -a -t [fd01::100]:80 -r [fd02::10]:80 -g -w 0\n\
        -E -t 198.18.1.100:80 -s lblcr\n\
        -e -t 198.18.1.100:80 -r 198.18.2.10:8080 -m -w 5\n\
        -d -u 198.18.1.100:53 -r 198.18.2.10:5353\n\
        -D -f 7\n\
        --set 900 120 300\n\
        -C\n";
    put("restore", "save-0", &[&[0u8][..], save.as_bytes()].concat());
    put("restore", "save-1", &[&[1u8][..], save.as_bytes()].concat());
}

fn serde_json_bytes(r: &xvs_control::proto::Request) -> Vec<u8> {
    let mut out = Vec::new();
    xvs_control::proto::write_frame(&mut out, r).unwrap();
    out
}
