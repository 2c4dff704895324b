//! The churn soak: real TCP traffic through xvsd in NAT mode while a control loop adds, edits
//! and removes dests every 100 ms through `xvsadm`, for `XVS_SOAK_SECS` seconds (default 20;
//! the 10-minute run is `XVS_SOAK_SECS=600`, see the README).
//!
//! Traffic (one Python client process, [`SOAK_PY`]): `LONG` long-lived connections doing
//! request/response continuously (one exchange every 10 ms each), opened while only the two
//! stable dests exist, plus two threads opening short connections (connect, one exchange,
//! close) all the time. Every failure counts: a reset, a timeout, a wrong answer, or a
//! long-lived connection answered by another server than its first (a conn must keep its dest).
//!
//! Churn, one `xvsadm` command per 100 ms tick: weight edits of the stable dests r0 (1..5) and
//! r1 (0..5: weight 0 quiesces, its conns keep flowing), scheduler edits of the service, and
//! the churn dests r2 and r3 going through add -> weight edits -> drain (weight 0) -> delete ->
//! add again. Why drain before deleting: in IPVS a deleted dest becomes unavailable and the
//! packets of its remaining conns are dropped (`ip_vs_in`: "the destination server is not
//! available", with `expire_nodest_conn` 0 silently; the dest waits in the trash list and comes
//! back if re-added), and xvs does the same. So removing a dest that still carries an exchange
//! breaks that exchange by design, in IPVS as in xvs; an operator drains first. The churn dests
//! carry only short connections, and each is deleted only after `DRAIN_MS` at weight 0, far
//! longer than a short exchange takes. The long-lived connections sit on r0 and r1, which are
//! edited but never removed.
//!
//! Source ports of the short connections are the kernel's choice, and it brings a port back
//! well within the director's TIME_WAIT (120 s): in a 5-minute run 1,634 of 11,874 SYNs found
//! the previous conn of their port still in the table. IPVS's `conn_reuse_mode` (default 1)
//! expires such a conn (TIME_WAIT or CLOSE) and schedules the SYN afresh (`ip_vs_in`,
//! `is_new_conn_expected`); without it the new connection stays on the old conn's dest, and if
//! that dest was deleted meanwhile every SYN is dropped (`no_dest`) until the client gives up,
//! which a 10-minute run caught once in about 25,000 short connections. The soak checks that
//! xvsd created exactly one conn per client connection (none revived), which only holds with
//! `conn_reuse_mode`. (`no_dest` drops are printed, not asserted: on a loaded machine a
//! client's last ACK can come later than the 2 s drain, and a deleted dest's conns drop the
//! client's packets, as `ip_vs_in` does.)
//!
//! Asserts: zero failed exchanges (long and short), no server-side connection error, every
//! `xvsadm` command accepted; flat RSS (growth after the warm-up below `RSS_GROWTH_KIB`); the
//! same number of open fds at the start and the end; the same UMEM frame accounting (free and
//! in flight, per worker, from `xvsadm --counters`) idle at the start and idle at the end, with
//! no bad descriptor; one conn created per client connection. The
//! figures are printed.

// Helpers outside #[test] fns unwrap too: in an integration test a failed unwrap is a
// failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use xvs_tests::{Lab, PYTHON, TempDir, Xvsd, can_run, script, wait_for};

const VIP: &str = "198.18.1.100:7000";
/// Long-lived connections.
const LONG: usize = 4;
/// A churn dest stays at weight 0 this long before it is deleted.
const DRAIN_MS: u128 = 2000;
/// The control loop's period.
const TICK: Duration = Duration::from_millis(100);
/// Largest RSS growth accepted after the warm-up.
const RSS_GROWTH_KIB: u64 = 8 * 1024;

/// The soak client: `soak.py HOST PORT LONG STOPFILE`. Opens LONG connections and checks that
/// each answers (prints `long ready IDS`), then runs them (one exchange every 10 ms each) and
/// two short-connection threads (one connection every 40 ms at most each, source ports chosen
/// by the kernel) until STOPFILE exists. Prints
/// `error ...` per failure (with the source port, the phase and the time taken) and finally
/// `done long_ok N long_fail N short_ok N short_fail N`; exits 1 if anything failed.
const SOAK_PY: &str = r"
import os, socket, sys, threading, time
host, port, nlong, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
count = {'long_ok': 0, 'long_fail': 0, 'short_ok': 0, 'short_fail': 0}
def bump(k, msg=None):
    with lock:
        count[k] += 1
        if msg:
            print('error', msg, flush=True)
def exchange(c, f, word):
    c.sendall(word.encode() + b'\n')
    w = f.readline().split()
    if len(w) != 2 or w[1] != word.encode():
        raise OSError('bad answer %r to %s' % (w, word))
    return w[0].decode()
conns = []
for i in range(nlong):
    c = socket.create_connection((host, port), timeout=10)
    f = c.makefile('rb')
    conns.append((c, f, exchange(c, f, 'l%d-0' % i)))
print('long ready', ' '.join(x[2] for x in conns), flush=True)
def long_loop(i, c, f, ident):
    n = 0
    while not os.path.exists(stop):
        n += 1
        try:
            got = exchange(c, f, 'l%d-%d' % (i, n))
        except OSError as e:
            bump('long_fail', 'long %d exchange %d: %r' % (i, n, e))
            return
        if got != ident:
            bump('long_fail', 'long %d exchange %d answered by %s, not %s' % (i, n, got, ident))
            return
        bump('long_ok')
        time.sleep(0.01)
    c.close()
def short_loop(t):
    n = 0
    while not os.path.exists(stop):
        n += 1
        c = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
        c.settimeout(10)
        phase, t0 = 'connect', time.time()
        try:
            c.connect((host, port))
            phase = 'exchange'
            f = c.makefile('rb')
            exchange(c, f, 's%d-%d' % (t, n))
            bump('short_ok')
        except OSError as e:
            try:
                lport = c.getsockname()[1]
            except OSError:
                lport = 0
            bump('short_fail', 'short %d-%d port %d in %s after %.1f s: %r' % (t, n, lport, phase, time.time() - t0, e))
        c.close()
        time.sleep(0.04)
threads = [threading.Thread(target=long_loop, args=(i,) + conns[i]) for i in range(nlong)]
threads += [threading.Thread(target=short_loop, args=(t,)) for t in range(2)]
for t in threads:
    t.start()
last = time.time()
while not os.path.exists(stop):
    time.sleep(0.2)
    if time.time() - last >= 10:
        last = time.time()
        with lock:
            print('progress', ' '.join('%s %d' % kv for kv in sorted(count.items())), flush=True)
for t in threads:
    t.join()
print('done', ' '.join('%s %d' % (k, count[k]) for k in ('long_ok', 'long_fail', 'short_ok', 'short_fail')), flush=True)
sys.exit(1 if count['long_fail'] or count['short_fail'] else 0)
";

/// `VmRSS` of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Open file descriptors of a process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Open file descriptors of an idle daemon: the same count twice 300 ms apart (a control
/// connection that `xvsadm` just closed is closed by the daemon a moment later).
fn settled_fds(pid: u32) -> usize {
    let mut last = fds(pid);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(300));
        let now = fds(pid);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// Per worker: (total, free, in flight, bad descriptors) from `xvsadm --counters --json`.
fn frames(xvsd: &Xvsd) -> Vec<(u64, u64, u64, u64)> {
    let c = xvsd.counters().unwrap();
    c["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let f = &w["frames"];
            let n = |k: &str| {
                f[k].as_u64()
                    .unwrap_or_else(|| panic!("no frames.{k}: {c}"))
            };
            (n("total"), n("free"), n("in_flight"), n("bad_descs"))
        })
        .collect()
}

/// A small deterministic generator for the churn's choices (xorshift64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn pick(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }
}

/// Where a churn dest is in its cycle.
#[derive(Clone, Copy, Debug)]
enum Churn {
    Absent(Instant),
    Present(Instant),
    Draining(Instant),
}

/// What the control loop did.
#[derive(Debug, Default)]
struct Ops {
    adds: u32,
    edits: u32,
    deletes: u32,
    sched_edits: u32,
    /// Every command with its time since the start of the churn (for failure reports).
    log: Vec<(Duration, String)>,
}

#[test]
fn traffic_survives_dest_churn_every_100ms() {
    if !can_run("traffic_survives_dest_churn_every_100ms") {
        return;
    }
    let secs: u64 = std::env::var("XVS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let workers: u32 = std::env::var("XVS_SOAK_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let lab = Lab::two_segments(4, workers).unwrap();
    let dir = TempDir::new("soak").unwrap();
    let _srv = lab.start_tcp_id(&dir, 7000).unwrap();
    let w = workers.to_string();
    let xvsd = Xvsd::start(&lab, &dir, &["--workers", &w]).unwrap();
    let pid = xvsd.proc.pid();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "xvsd", "pid {pid} is not xvsd itself");
    let rip = |i: usize| format!("{}:7000", lab.server_ips[i].0);
    let adm = |args: &[&str]| {
        xvsd.adm_ok(args)
            .unwrap_or_else(|e| panic!("{e}\n{}", xvsd.log()));
    };
    // A churn command, logged with its time.
    let churn_cmd = |ops: &mut Ops, t0: Instant, args: &[&str]| {
        adm(args);
        ops.log.push((t0.elapsed(), args.join(" ")));
    };
    // `-e` of one dest's weight, counted as an edit.
    let set_weight = |ops: &mut Ops, t0: Instant, dest: &str, wt: &str| {
        churn_cmd(ops, t0, &["-e", "-t", VIP, "-r", dest, "-m", "-w", wt]);
        ops.edits += 1;
    };
    adm(&["-A", "-t", VIP, "-s", "rr"]);
    adm(&["-a", "-t", VIP, "-r", &rip(0), "-m", "-w", "2"]);
    adm(&["-a", "-t", VIP, "-r", &rip(1), "-m", "-w", "2"]);

    // Idle figures before any traffic: the workers have published their frames.
    assert!(wait_for(Duration::from_secs(5), || !frames(&xvsd).is_empty()));
    std::thread::sleep(Duration::from_millis(500));
    let frames0 = frames(&xvsd);
    let fds0 = settled_fds(pid);
    let rss0 = rss_kib(pid);

    let stop = dir.join("stop");
    let log = dir.join("soak.log");
    let py = script(&dir, "soak.py", SOAK_PY).unwrap();
    let stop_s = stop.display().to_string();
    let long = LONG.to_string();
    let mut client = lab
        .client
        .spawn(
            &[PYTHON, "-u", &py, "198.18.1.100", "7000", &long, &stop_s],
            Some(&log),
        )
        .unwrap();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(30), || read_log()
            .contains("long ready")),
        "long-lived connections did not open: {}\n{}",
        read_log(),
        xvsd.log()
    );
    let ready = read_log();
    assert!(
        ready
            .lines()
            .find(|l| l.starts_with("long ready"))
            .unwrap()
            .split_whitespace()
            .skip(2)
            .all(|id| id == "r0" || id == "r1"),
        "long-lived conns must sit on the stable dests: {ready}"
    );

    // The churn.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t0 = Instant::now();
    let warmup = Duration::from_secs((secs / 4).max(5));
    let mut churn = [Churn::Absent(t0), Churn::Absent(t0)];
    let mut ops = Ops::default();
    let mut rss_samples: Vec<(Duration, u64)> = vec![(Duration::ZERO, rss_kib(pid))];
    let mut next = t0 + TICK;
    let mut tick = 0u64;
    let (mut seen_errors, mut diag) = (0usize, Vec::<String>::new());
    // sh and mh only with their fallback flag: without it a client hashed to a dest at weight
    // 0 is refused (ip_vs_leave answers port unreachable), as in IPVS, and this client's one
    // address always hashes to the same dest.
    let scheds: [&[&str]; 6] = [
        &["rr"],
        &["wrr"],
        &["wlc"],
        &["lc"],
        &["sh", "-b", "sh-fallback"],
        &["mh", "-b", "mh-fallback"],
    ];
    while t0.elapsed() < Duration::from_secs(secs) {
        tick += 1;
        let now = Instant::now();
        // A churn dest due for deletion goes first; otherwise one random action.
        let due = (0..2).find(|&i| {
            matches!(churn[i], Churn::Draining(t) if now.duration_since(t).as_millis() >= DRAIN_MS)
        });
        if let Some(i) = due {
            churn_cmd(&mut ops, t0, &["-d", "-t", VIP, "-r", &rip(2 + i)]);
            churn[i] = Churn::Absent(now);
            ops.deletes += 1;
        } else {
            match rng.below(6) {
                0 => {
                    let wt = (1 + rng.below(5)).to_string();
                    set_weight(&mut ops, t0, &rip(0), &wt);
                }
                1 => {
                    let wt = rng.below(6).to_string();
                    set_weight(&mut ops, t0, &rip(1), &wt);
                }
                2 if tick.is_multiple_of(5) => {
                    let s = scheds[rng.pick(scheds.len())];
                    let mut args = vec!["-E", "-t", VIP, "-s"];
                    args.extend_from_slice(s);
                    churn_cmd(&mut ops, t0, &args);
                    ops.sched_edits += 1;
                }
                _ => {
                    let i = rng.pick(2);
                    let d = rip(2 + i);
                    match churn[i] {
                        Churn::Absent(t) if now.duration_since(t).as_millis() >= 300 => {
                            let wt = (1 + rng.below(5)).to_string();
                            churn_cmd(&mut ops, t0, &["-a", "-t", VIP, "-r", &d, "-m", "-w", &wt]);
                            churn[i] = Churn::Present(now);
                            ops.adds += 1;
                        }
                        Churn::Present(t) if now.duration_since(t).as_millis() >= 500 => {
                            set_weight(&mut ops, t0, &d, "0");
                            churn[i] = Churn::Draining(now);
                        }
                        Churn::Present(_) => {
                            let wt = (1 + rng.below(5)).to_string();
                            set_weight(&mut ops, t0, &d, &wt);
                        }
                        Churn::Absent(_) | Churn::Draining(_) => {
                            // Waiting out a drain or a pause: edit a stable dest instead.
                            let wt = (1 + rng.below(5)).to_string();
                            set_weight(&mut ops, t0, &rip(0), &wt);
                        }
                    }
                }
            }
        }
        // A failed exchange: note where its conn is in the table while it is still there.
        let errors = read_log()
            .lines()
            .filter(|l| l.starts_with("error"))
            .count();
        if errors > seen_errors {
            let conns = xvsd.adm_ok(&["-Lnc"]).unwrap_or_default();
            let log = read_log();
            let new = log
                .lines()
                .filter(|l| l.starts_with("error"))
                .skip(seen_errors);
            seen_errors = errors;
            for l in new {
                let port = l
                    .split_whitespace()
                    .skip_while(|w| *w != "port")
                    .nth(1)
                    .unwrap_or("?");
                let needle = format!("198.18.1.2:{port} ");
                let rows: Vec<&str> = conns.lines().filter(|r| r.contains(&needle)).collect();
                diag.push(format!("at {:?}: {l}\n  conn: {rows:?}", t0.elapsed()));
            }
        }
        if tick.is_multiple_of(10) {
            rss_samples.push((t0.elapsed(), rss_kib(pid)));
            assert!(client.alive(), "the client stopped: {}", read_log());
        }
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += TICK;
    }
    let churn_time = t0.elapsed();

    // Stop the traffic, then let the director go idle.
    std::fs::write(&stop, b"").unwrap();
    let code = client.wait_exit(Duration::from_secs(60));
    let out = read_log();
    let listing = xvsd.adm_ok(&["-Ln", "--stats"]).unwrap();
    let done = out
        .lines()
        .find(|l| l.starts_with("done"))
        .unwrap_or_else(|| panic!("client did not finish: {out}\n{}", xvsd.log()))
        .to_string();
    let count = |k: &str| -> u64 {
        let w: Vec<&str> = done.split_whitespace().collect();
        let i = w.iter().position(|x| *x == k).unwrap();
        w[i + 1].parse().unwrap()
    };
    let (long_ok, long_fail) = (count("long_ok"), count("long_fail"));
    let (short_ok, short_fail) = (count("short_ok"), count("short_fail"));

    // Idle again: frames back where they were, no fd left over.
    let frames_idle = wait_for(Duration::from_secs(10), || frames(&xvsd) == frames0);
    let frames1 = frames(&xvsd);
    let fds_idle = wait_for(Duration::from_secs(10), || settled_fds(pid) <= fds0);
    let fds1 = settled_fds(pid);
    let rss1 = rss_kib(pid);
    rss_samples.push((t0.elapsed(), rss1));
    let after_warmup: Vec<u64> = rss_samples
        .iter()
        .filter(|(t, _)| *t >= warmup)
        .map(|&(_, r)| r)
        .collect();
    let rss_warm = after_warmup.first().copied().unwrap_or(rss1);
    let rss_max = rss_samples.iter().map(|&(_, r)| r).max().unwrap_or(rss1);
    let rss_max_after = after_warmup.iter().copied().max().unwrap_or(rss1);
    let counters = xvsd.adm_ok(&["--counters"]).unwrap();
    let json = xvsd.counters().unwrap();
    let created: u64 = json["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["conns_created"].as_u64().unwrap())
        .sum();
    let no_dest = json["drops"]["no_dest"].as_u64().unwrap();
    let conns = xvsd
        .adm_ok(&["-Lnc"])
        .unwrap()
        .lines()
        .count()
        .saturating_sub(2);

    eprintln!(
        "soak: {:.1} s of churn ({} ticks: {} adds, {} edits, {} deletes, {} scheduler edits)\n\
         soak: exchanges on {LONG} long-lived conns {long_ok} ok / {long_fail} failed; \
         short conns {short_ok} ok / {short_fail} failed\n\
         soak: RSS KiB before traffic {rss0}, after warm-up ({} s) {rss_warm}, max {rss_max}, \
         end {rss1}\n\
         soak: fds start {fds0} end {fds1}; UMEM frames (total, free, in flight, bad) start \
         {frames0:?} end {frames1:?}; conns created {created}, in the table at the end \
         {conns}; no_dest drops {no_dest}\n{counters}",
        churn_time.as_secs_f64(),
        tick,
        ops.adds,
        ops.edits,
        ops.deletes,
        ops.sched_edits,
        warmup.as_secs(),
    );

    if !diag.is_empty() {
        let first = diag.first().cloned().unwrap_or_default();
        eprintln!("soak: failed exchanges, with their conns as -Lnc showed them:");
        for d in &diag {
            eprintln!("{d}");
        }
        // The churn commands around the first failure.
        let at: f64 = first
            .strip_prefix("at ")
            .and_then(|r| r.split('s').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        for (t, cmd) in &ops.log {
            if (at - 15.0..=at + 1.0).contains(&t.as_secs_f64()) {
                eprintln!("  {:8.1} s  xvsadm {cmd}", t.as_secs_f64());
            }
        }
    }
    assert_eq!(code, Some(0), "client failures:\n{out}\n{listing}");
    assert_eq!((long_fail, short_fail), (0, 0), "{out}");
    // Every long-lived conn kept exchanging for the whole run (one exchange per 10 ms at
    // most; a tenth of that rate is plenty on a loaded machine).
    let long_min = LONG as u64 * churn_time.as_secs() * 10;
    assert!(
        long_ok >= long_min,
        "only {long_ok} long exchanges ({long_min} expected)"
    );
    assert!(
        short_ok >= churn_time.as_secs() * 5,
        "only {short_ok} short conns"
    );
    // One conn per client connection: no SYN revived an old conn (see the module docs).
    assert_eq!(created, LONG as u64 + short_ok, "{counters}");
    for i in 0..4 {
        let l = std::fs::read_to_string(dir.join(&format!("tcpid{i}.log"))).unwrap();
        assert!(!l.contains("error"), "server r{i}: {l}");
    }
    assert!(
        ops.adds >= 2 && ops.deletes >= 2 && ops.edits >= 10,
        "the churn did not churn: {ops:?}"
    );
    assert!(
        rss_max_after <= rss_warm + RSS_GROWTH_KIB,
        "RSS grew after the warm-up: {rss_warm} -> max {rss_max_after} KiB ({rss_samples:?})"
    );
    assert!(fds_idle, "fd leak: {fds0} at the start, {fds1} at the end");
    assert!(
        frames_idle,
        "UMEM frames idle at the start {frames0:?}, idle at the end {frames1:?}"
    );
    assert!(
        frames1.iter().all(|f| f.1 + f.2 == f.0 && f.3 == 0),
        "{frames1:?}"
    );
}
