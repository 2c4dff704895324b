//! AF_XDP backend against real kernels: a client namespace and a server namespace joined by an
//! L2 forwarder that runs `AfXdp` on the two root-namespace veth ends.
//!
//! ```text
//! ns <p>c: <p>c0 198.18.77.1/24 ── <p>f0 ═ AfXdp port 0 ┐ forwarder (this process,
//! ns <p>s: <p>s0 198.18.77.2/24 ── <p>f1 ═ AfXdp port 1 ┘ root namespace, native XDP)
//! ```
//!
//! Checks: UDP and a 1 MiB TCP echo pass in both directions (ARP too: libxdp's program takes it and the
//! forwarder passes it on), every received frame starts `HEADROOM` bytes into its chunk, no
//! frame leaks (`free + in_flight == total`, nothing held, TX drained), a second socket on the
//! same queue is refused as busy, the XDP program is detached on drop, a program left by a
//! killed process is reclaimed by the next open, and a locked-memory shortage is explained.
//!
//! Needs root (CAP_NET_ADMIN, CAP_BPF). Without it the tests print a loud SKIP and pass, except
//! under CI (`CI=true`), where they fail. Every namespace, veth and process is removed on
//! success, failure and panic (`Topo`'s `Drop`).
#![cfg(feature = "afxdp")]
// Helpers shared by the tests panic on failure like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xvs_dataplane::io::afxdp::{AfXdp, AfXdpOpts, IoError, PortConf, XdpMode, xdp_programs};
use xvs_dataplane::io::{BATCH, Desc, HEADROOM, PacketIo};

/// Socket creation must be sequential (libxdp races itself); tests of this binary share it.
static SERIAL: Mutex<()> = Mutex::new(());

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// True when the test may run; prints a loud SKIP otherwise; panics under CI without root.
fn privileged(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: needs root (CAP_NET_ADMIN, CAP_BPF) and CI=true: refusing to skip"
    );
    // Straight to the process's stderr: libtest's capture would hide an `eprintln!`.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "\n!!!!!!!! SKIP {test}: not root; AF_XDP needs CAP_NET_ADMIN and CAP_BPF !!!!!!!!\n"
        )
        .as_bytes(),
    );
    false
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The two namespaces, two veth pairs and any background processes of one test.
struct Topo {
    p: String,
    children: Vec<Child>,
}

impl Topo {
    fn new(tag: &str) -> Self {
        Self::with_queues(tag, 1)
    }

    /// Like `new`, with `queues` RX/TX queues on every veth.
    fn with_queues(tag: &str, queues: u32) -> Self {
        let q = queues.to_string();
        let p = format!("x{tag}{:05}", std::process::id() % 100_000);
        let t = Self {
            p,
            children: Vec::new(),
        };
        t.teardown(); // leftovers of an earlier run with the same pid
        let (c, s) = (t.ns("c"), t.ns("s"));
        sh(&["ip", "netns", "add", &c]);
        sh(&["ip", "netns", "add", &s]);
        for (ns, side, addr) in [(&c, "c", "198.18.77.1/24"), (&s, "s", "198.18.77.2/24")] {
            let inner = t.ifname(&format!("{side}0"));
            let outer = t.ifname(if side == "c" { "f0" } else { "f1" });
            sh(&[
                "ip",
                "link",
                "add",
                &inner,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                &outer,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
            ]);
            sh(&["ip", "link", "set", &inner, "netns", ns]);
            sh(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{outer}.disable_ipv6=1"),
            ]);
            sh(&["ip", "link", "set", &outer, "up"]);
            t.exec(ns, &["ip", "link", "set", "lo", "up"]);
            t.exec(ns, &["ip", "addr", "add", addr, "dev", &inner]);
            t.exec(ns, &["ip", "link", "set", &inner, "up"]);
            // A local kernel leaves checksums partial on veth (TX offload); an L2 forwarder
            // passes frames as they are, so make the senders complete them.
            t.exec(ns, &["ethtool", "-K", &inner, "tx", "off"]);
        }
        t
    }

    fn ns(&self, side: &str) -> String {
        format!("{}{side}", self.p)
    }

    fn ifname(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.p)
    }

    fn exec(&self, ns: &str, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", ns];
        v.extend_from_slice(args);
        sh(&v)
    }

    fn teardown(&self) {
        for side in ["c", "s"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(side)])
                .output();
        }
        for end in ["f0", "f1"] {
            let _ = Command::new("ip")
                .args(["link", "del", &self.ifname(end)])
                .output();
        }
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.teardown();
    }
}

/// What the forwarder saw.
#[derive(Debug, Default)]
struct Seen {
    frames: u64,
    min_headroom: usize,
    max_headroom: usize,
    per_port: Vec<u64>,
}

/// L2 forwarder: every frame received on port p leaves on port `p ^ xor` unchanged.
fn forward(io: &mut AfXdp, stop: &AtomicBool, xor: u16) -> Seen {
    let mut seen = Seen {
        min_headroom: usize::MAX,
        per_port: vec![0; io.ports()],
        ..Seen::default()
    };
    let mut descs = [Desc::default(); BATCH];
    while !stop.load(Ordering::Relaxed) {
        let n = io.rx_burst(&mut descs);
        for d in &mut descs[..n] {
            seen.min_headroom = seen.min_headroom.min(d.headroom());
            seen.max_headroom = seen.max_headroom.max(d.headroom());
            seen.per_port[usize::from(d.port)] += 1;
            d.port ^= xor;
        }
        seen.frames += n as u64;
        let sent = io.tx_burst(&descs[..n]);
        io.recycle(&descs[sent..n]);
        io.service();
        if n == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    // Drain: let the kernel complete everything still on the TX rings.
    let deadline = Instant::now() + Duration::from_secs(2);
    while io.frame_counts().tx > 0 && Instant::now() < deadline {
        io.service();
        std::thread::sleep(Duration::from_millis(1));
    }
    seen
}

fn opts() -> AfXdpOpts {
    AfXdpOpts {
        xdp_mode: XdpMode::Native,
        frames: 4096,
        ring_size: 2048,
        ..AfXdpOpts::default()
    }
}

const UDP_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.77.2", 9000))
print("ready", flush=True)
s.settimeout(3.0)
n = 0
try:
    while n < int(sys.argv[1]):
        d, a = s.recvfrom(2048)
        n += 1
        s.sendto(d, a)
except socket.timeout:
    pass
print(n, flush=True)
"#;

const UDP_CLIENT: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2.0)
n = int(sys.argv[1]); got = 0
for i in range(n):
    s.sendto(b"xvs-%d" % i, ("198.18.77.2", 9000))
    if i % 20 == 19:
        time.sleep(0.01)
try:
    while got < n:
        s.recvfrom(2048); got += 1
except socket.timeout:
    pass
print(got, flush=True)
"#;

const TCP_SERVER: &str = r#"
import socket
s = socket.create_server(("198.18.77.2", 9001))
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(5.0)
while True:
    d = c.recv(65536)
    if not d:
        break
    c.sendall(d)
c.close()
"#;

const TCP_CLIENT: &str = r#"
import socket, threading
c = socket.create_connection(("198.18.77.2", 9001), timeout=5.0)
data = bytes(range(256)) * 4096
def send():
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send); t.start()
got = bytearray()
try:
    while True:
        d = c.recv(65536)
        if not d:
            break
        got += d
except socket.timeout:
    pass
t.join()
print(len(got) if bytes(got) == data else "corrupt %d" % len(got), flush=True)
"#;

#[test]
fn afxdp_veth_forwards_without_leaks() {
    if !privileged("afxdp_veth_forwards_without_leaks") {
        return;
    }
    forwards_without_leaks(XdpMode::Native, "a");
}

#[test]
fn afxdp_veth_forwards_without_leaks_skb_mode() {
    if !privileged("afxdp_veth_forwards_without_leaks_skb_mode") {
        return;
    }
    forwards_without_leaks(XdpMode::Skb, "k");
}

fn forwards_without_leaks(mode: XdpMode, tag: &str) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let opts = || AfXdpOpts {
        xdp_mode: mode,
        ..opts()
    };
    let mut topo = Topo::new(tag);
    let ports = [
        PortConf {
            ifname: topo.ifname("f0"),
            queue: 0,
        },
        PortConf {
            ifname: topo.ifname("f1"),
            queue: 0,
        },
    ];
    let mut io = AfXdp::open(&ports, &opts()).expect("open AfXdp on the forwarder veths");
    assert_eq!(io.ports(), 2);
    assert!(!io.zero_copy(0), "veth has no zero-copy");
    let c = io.frame_counts();
    assert_eq!(c.free + io.frames_in_flight(), c.total);
    assert!(c.fill > 0, "fill rings primed");
    assert_eq!(xdp_programs(&ports[0].ifname).unwrap(), ["xsk_def_prog"]);

    // A second socket on the same queue: refused as busy, with a clear message.
    let quick = AfXdpOpts {
        busy_retries: 1,
        busy_pause: Duration::from_millis(10),
        ..opts()
    };
    match AfXdp::open(&ports[..1], &quick) {
        Err(e @ IoError::Busy { .. }) => eprintln!("second open refused as expected: {e}"),
        other => panic!("second socket on the same queue: expected Busy, got {other:?}"),
    }

    let stop = AtomicBool::new(false);
    let (tcp, udp, seen) = std::thread::scope(|s| {
        let fwd = s.spawn(|| forward(&mut io, &stop, 1));
        let (cns, sns) = (topo.ns("c"), topo.ns("s"));
        let mut server = Command::new("ip")
            .args([
                "netns",
                "exec",
                &sns,
                "/usr/bin/python3",
                "-c",
                UDP_SERVER,
                "200",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("udp server");
        let mut out = server.stdout.take().expect("server stdout");
        let mut ready = [0u8; 6];
        std::io::Read::read_exact(&mut out, &mut ready).expect("server ready");
        topo.children.push(server);
        let client = Command::new("ip")
            .args([
                "netns",
                "exec",
                &cns,
                "/usr/bin/python3",
                "-c",
                UDP_CLIENT,
                "200",
            ])
            .output()
            .expect("udp client");
        let mut tcp_server = Command::new("ip")
            .args(["netns", "exec", &sns, "/usr/bin/python3", "-c", TCP_SERVER])
            .stdout(Stdio::piped())
            .spawn()
            .expect("tcp server");
        let mut out = tcp_server.stdout.take().expect("tcp server stdout");
        std::io::Read::read_exact(&mut out, &mut ready).expect("tcp server ready");
        topo.children.push(tcp_server);
        let tcp = Command::new("ip")
            .args(["netns", "exec", &cns, "/usr/bin/python3", "-c", TCP_CLIENT])
            .output()
            .expect("tcp client");
        stop.store(true, Ordering::Relaxed);
        let seen = fwd.join().expect("forwarder thread");
        let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).trim().to_string();
        (text(&tcp), text(&client), seen)
    });

    assert_eq!(
        tcp, "1048576",
        "TCP echo of 1 MiB through the forwarder (client got {tcp})"
    );
    assert_eq!(
        udp, "200",
        "UDP echoes through the forwarder (client got {udp})"
    );
    // 200 datagrams + 200 echoes + 2 × 1 MiB of TCP segments (>= 1448 bytes each) + ARP.
    assert!(
        seen.frames >= 400 + 2 * 724,
        "forwarder saw {} frames",
        seen.frames
    );
    eprintln!(
        "{mode:?}: forwarded {} frames; headroom min {} max {}",
        seen.frames, seen.min_headroom, seen.max_headroom
    );
    assert_eq!((seen.min_headroom, seen.max_headroom), (HEADROOM, HEADROOM));

    // No leak: every frame accounted for, nothing held, TX drained.
    let c = io.frame_counts();
    eprintln!(
        "frame counts after the run: {c:?}, tx kicks {}",
        io.tx_kicks(0) + io.tx_kicks(1)
    );
    assert_eq!(c.free + io.frames_in_flight(), c.total, "{c:?}");
    assert_eq!(c.held, 0);
    assert_eq!(c.tx, 0, "TX completions all reaped");
    assert_eq!(io.bad_descs(), 0);
    for p in 0..2 {
        let st = io.xsk_stats(p).expect("stats");
        assert_eq!(st.tx_invalid_descs, 0, "port {p}: {st:?}");
    }

    // Detached on drop.
    drop(io);
    for pc in &ports {
        assert!(
            xdp_programs(&pc.ifname).unwrap().is_empty(),
            "{} still has an XDP program after drop",
            pc.ifname
        );
    }
}

/// Helper for `afxdp_stale_program_is_reclaimed`: when started by it (env var set), open a
/// socket, say so, and wait to be killed.
#[test]
fn afxdp_child_helper() {
    let Ok(ifname) = std::env::var("XVS_AFXDP_CHILD_IF") else {
        return;
    };
    let io = match AfXdp::open(&[PortConf { ifname, queue: 0 }], &opts()) {
        Ok(io) => io,
        Err(e) => {
            println!("XVS-CHILD-ERROR: {e}");
            return;
        }
    };
    println!("XVS-CHILD-READY");
    std::thread::sleep(Duration::from_secs(60));
    drop(io);
}

#[test]
fn afxdp_stale_program_is_reclaimed() {
    if !privileged("afxdp_stale_program_is_reclaimed") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut topo = Topo::new("b");
    let f0 = topo.ifname("f0");

    // A process opens the interface and is killed -9: its program stays behind.
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "afxdp_child_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("XVS_AFXDP_CHILD_IF", &f0)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let mut out = child.stdout.take().expect("child stdout");
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&buf).contains("XVS-CHILD-READY") {
        let n = std::io::Read::read(&mut out, &mut byte).expect("child output");
        assert!(
            n > 0,
            "child exited early: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    // While the child lives, its lock makes us Busy.
    match AfXdp::open(
        &[PortConf {
            ifname: f0.clone(),
            queue: 0,
        }],
        &opts(),
    ) {
        Err(e @ IoError::Busy { .. }) => eprintln!("refused while the child lives: {e}"),
        other => panic!("expected Busy while another process holds {f0}, got {other:?}"),
    }
    child.kill().expect("kill -9 child");
    child.wait().expect("reap child");
    topo.children.clear();
    assert_eq!(
        xdp_programs(&f0).unwrap(),
        ["xsk_def_prog"],
        "stale program left by the crash"
    );

    // The next open detaches it, attaches a fresh one, and detaches that on drop.
    let io = AfXdp::open(
        &[PortConf {
            ifname: f0.clone(),
            queue: 0,
        }],
        &opts(),
    )
    .expect("open after the crash");
    assert_eq!(io.reclaimed(), std::slice::from_ref(&f0));
    assert_eq!(xdp_programs(&f0).unwrap(), ["xsk_def_prog"]);
    drop(io);
    assert!(
        xdp_programs(&f0).unwrap().is_empty(),
        "fresh program detached on drop"
    );
}

#[test]
fn afxdp_memlock_error_is_explained() {
    if !privileged("afxdp_memlock_error_is_explained") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let topo = Topo::new("m");
    // Without CAP_IPC_LOCK and CAP_SYS_RESOURCE, with a 1 MiB locked-memory limit, a 16 MiB
    // UMEM cannot be registered.
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("setpriv")
        .args([
            "--inh-caps=-ipc_lock,-sys_resource",
            "--bounding-set=-ipc_lock,-sys_resource",
        ])
        .args(["prlimit", "--memlock=1048576:1048576", "--"])
        .arg(exe)
        .args([
            "--exact",
            "afxdp_child_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("XVS_AFXDP_CHILD_IF", topo.ifname("f0"))
        .output()
        .expect("run the child under setpriv");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("XVS-CHILD-"))
        .unwrap_or("");
    assert!(
        line.contains("locked-memory limit is 1048576 bytes") && line.contains("CAP_IPC_LOCK"),
        "expected the memlock explanation, child said: {text}"
    );
    eprintln!("{line}");
    assert!(
        xdp_programs(&topo.ifname("f0")).unwrap().is_empty(),
        "nothing left attached"
    );
}

#[test]
fn afxdp_missing_privileges_are_explained() {
    if !privileged("afxdp_missing_privileges_are_explained") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let topo = Topo::new("p");
    let drop = "-net_admin,-net_raw,-bpf,-sys_admin,-perfmon";
    let out = Command::new("setpriv")
        .args([
            format!("--inh-caps={drop}"),
            format!("--bounding-set={drop}"),
        ])
        .arg(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "afxdp_child_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("XVS_AFXDP_CHILD_IF", topo.ifname("f0"))
        .output()
        .expect("run the child under setpriv");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("XVS-CHILD-"))
        .unwrap_or("");
    assert!(
        line.contains("permission denied") && line.contains("CAP_NET_ADMIN"),
        "expected the permission explanation, child said: {text}"
    );
    eprintln!("{line}");
}

const UDP_MANY: &str = r#"
import socket, sys
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(int(sys.argv[1]))]
for s in socks:
    s.settimeout(2.0)
    s.sendto(b"xvs", ("198.18.77.2", 9000))
got = 0
for s in socks:
    try:
        s.recvfrom(2048); got += 1
    except socket.timeout:
        pass
print(got, flush=True)
"#;

/// One worker owning both queues of two 2-queue veths: four sockets on one UMEM, two of them
/// per interface (separate fill/completion rings per queue), frames crossing interfaces.
#[test]
fn afxdp_two_queue_veth_one_umem() {
    if !privileged("afxdp_two_queue_veth_one_umem") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut topo = Topo::with_queues("q", 2);
    let (f0, f1) = (topo.ifname("f0"), topo.ifname("f1"));
    let ports: Vec<PortConf> = [(&f0, 0), (&f0, 1), (&f1, 0), (&f1, 1)]
        .iter()
        .map(|(i, q)| PortConf {
            ifname: (*i).clone(),
            queue: *q,
        })
        .collect();
    let mut io = AfXdp::open(&ports, &opts()).expect("open four sockets on one UMEM");
    let stop = AtomicBool::new(false);
    let (udp, seen) = std::thread::scope(|s| {
        let fwd = s.spawn(|| forward(&mut io, &stop, 2));
        let mut server = Command::new("ip")
            .args([
                "netns",
                "exec",
                &topo.ns("s"),
                "/usr/bin/python3",
                "-c",
                UDP_SERVER,
                "64",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("udp server");
        let mut out = server.stdout.take().expect("server stdout");
        let mut ready = [0u8; 6];
        std::io::Read::read_exact(&mut out, &mut ready).expect("server ready");
        topo.children.push(server);
        let client = Command::new("ip")
            .args([
                "netns",
                "exec",
                &topo.ns("c"),
                "/usr/bin/python3",
                "-c",
                UDP_MANY,
                "64",
            ])
            .output()
            .expect("udp client");
        stop.store(true, Ordering::Relaxed);
        let seen = fwd.join().expect("forwarder thread");
        (
            String::from_utf8_lossy(&client.stdout).trim().to_string(),
            seen,
        )
    });
    eprintln!("frames per port (f0q0 f0q1 f1q0 f1q1): {:?}", seen.per_port);
    assert_eq!(
        udp, "64",
        "64 flows echoed through four sockets (client got {udp})"
    );
    assert!(
        seen.per_port[0] > 0 && seen.per_port[1] > 0,
        "native XDP spreads 64 flows over both queues of {f0}: {:?}",
        seen.per_port
    );
    let c = io.frame_counts();
    assert_eq!(c.free + io.frames_in_flight(), c.total, "{c:?}");
    assert_eq!((c.held, c.tx, io.bad_descs()), (0, 0, 0), "{c:?}");
}

/// Without `service()` the completion ring fills, the kernel stops taking TX descriptors, and
/// `tx_burst` must accept a prefix (down to nothing); `service()` then brings every frame back.
#[test]
fn afxdp_tx_ring_full_accepts_a_prefix_and_nothing_leaks() {
    if !privileged("afxdp_tx_ring_full_accepts_a_prefix_and_nothing_leaks") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let topo = Topo::new("t");
    let small = AfXdpOpts {
        frames: 256,
        ring_size: 64,
        ..opts()
    };
    let mut io = AfXdp::open(
        &[PortConf {
            ifname: topo.ifname("f0"),
            queue: 0,
        }],
        &small,
    )
    .expect("open a small AfXdp");
    let check = |io: &AfXdp| {
        let c = io.frame_counts();
        assert_eq!(c.free + io.frames_in_flight(), c.total, "{c:?}");
    };
    // A broadcast frame of the local experimental ethertype: the peer kernel ignores it.
    let mut pkt = [0u8; 60];
    pkt[..6].copy_from_slice(&[0xff; 6]);
    pkt[6..12].copy_from_slice(&io.mac(0));
    pkt[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    let mut partial = 0;
    let mut descs = [Desc::default(); BATCH];
    for _ in 0..8 {
        let mut n = 0;
        while n < BATCH {
            let Some(mut d) = io.alloc(0) else { break };
            let mut f = io.frame(&mut d);
            f.set_len(pkt.len()).expect("room for 60 bytes");
            f.data_mut().copy_from_slice(&pkt);
            descs[n] = d;
            n += 1;
        }
        let sent = io.tx_burst(&descs[..n]);
        io.recycle(&descs[sent..n]);
        if sent < n {
            partial += 1;
        }
        check(&io);
    }
    assert!(
        partial > 0,
        "the TX path never filled up: {:?}",
        io.frame_counts()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while io.frame_counts().tx > 0 && Instant::now() < deadline {
        io.service();
        check(&io);
        std::thread::sleep(Duration::from_millis(1));
    }
    let c = io.frame_counts();
    assert_eq!((c.tx, c.held, io.bad_descs()), (0, 0, 0), "{c:?}");
    assert_eq!(c.free + c.fill, c.total, "{c:?}");
    assert_eq!(io.xsk_stats(0).expect("stats").tx_invalid_descs, 0);
}

/// Closing and reopening at once (a restart) works: EBUSY right after a close is retried.
#[test]
fn afxdp_reopen_right_after_close() {
    if !privileged("afxdp_reopen_right_after_close") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let topo = Topo::new("r");
    let ports = [
        PortConf {
            ifname: topo.ifname("f0"),
            queue: 0,
        },
        PortConf {
            ifname: topo.ifname("f1"),
            queue: 0,
        },
    ];
    for round in 0..5 {
        let io =
            AfXdp::open(&ports, &opts()).unwrap_or_else(|e| panic!("reopen round {round}: {e}"));
        assert!(
            io.reclaimed().is_empty(),
            "round {round}: nothing stale after a clean close"
        );
        drop(io);
    }
    for pc in &ports {
        assert!(xdp_programs(&pc.ifname).unwrap().is_empty());
    }
}

/// `wait_rx` sleeps in poll() and wakes when a frame arrives.
#[test]
fn afxdp_wait_rx_wakes_on_arrival() {
    if !privileged("afxdp_wait_rx_wakes_on_arrival") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let topo = Topo::new("w");
    let mut io = AfXdp::open(
        &[PortConf {
            ifname: topo.ifname("f0"),
            queue: 0,
        }],
        &opts(),
    )
    .expect("open");
    // Anything the client kernel sends (here: the ARP request for a datagram) wakes us.
    let cns = topo.ns("c");
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("ip")
            .args(["netns", "exec", &cns, "/usr/bin/python3", "-c"])
            .arg("import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('198.18.77.2', 9))")
            .output();
    });
    io.service();
    let mut woke = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !woke && Instant::now() < deadline {
        woke = io.wait_rx(1000);
    }
    sender.join().expect("sender");
    assert!(woke, "poll() never reported the arriving frame");
    let mut descs = [Desc::default(); BATCH];
    let n = io.rx_burst(&mut descs);
    assert!(n >= 1, "readable but nothing received");
    io.recycle(&descs[..n]);
    let c = io.frame_counts();
    assert_eq!(c.free + io.frames_in_flight(), c.total, "{c:?}");
}

/// Native XDP on a veth whose peer MTU is too large is refused with advice, not a bare errno.
#[test]
fn afxdp_native_attach_refusal_is_explained() {
    if !privileged("afxdp_native_attach_refusal_is_explained") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let topo = Topo::new("n");
    topo.exec(
        &topo.ns("c"),
        &["ip", "link", "set", &topo.ifname("c0"), "mtu", "9000"],
    );
    let port = [PortConf {
        ifname: topo.ifname("f0"),
        queue: 0,
    }];
    match AfXdp::open(&port, &opts()) {
        Err(e @ IoError::NativeUnsupported(..)) => {
            let m = e.to_string();
            assert!(m.contains("--xdp-mode skb") && m.contains("3506"), "{m}");
            eprintln!("{m}");
        }
        other => panic!("expected NativeUnsupported, got {other:?}"),
    }
    assert!(xdp_programs(&topo.ifname("f0")).unwrap().is_empty());
    // SKB mode has no such limit.
    let skb = AfXdpOpts {
        xdp_mode: XdpMode::Skb,
        ..opts()
    };
    drop(AfXdp::open(&port, &skb).expect("SKB mode works with a 9000-byte peer MTU"));
}
