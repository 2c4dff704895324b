//! xvs-bench: the harness. In one invocation it builds a namespace topology
//! `generator | director | sink` for every run and pushes the same traffic (from `xvs-pktgen`)
//! through each system under test: the bare AF_XDP forwarder (the I/O floor), kernel
//! forwarding, an nftables DNAT load balancer (`numgen inc` round robin, kube-proxy nftables
//! style) and xvs (NAT with 1 and 2 workers, DR, TUN, FULLNAT). Several repetitions each;
//! medians, spreads, ratios to the floor and to nftables; then the table phase (one xvsd whose
//! conn table is filled to 1k ... 10M conns: its RSS per conn and established-flow pps at each
//! size), the deterministic per-packet cost (callgrind over `pipeline_cost`) and the MemIo
//! scaling run. Writes `RESULTS.md`, the raw `results.json` and PNG plots into `--out`.
//!
//! Topology of one run (prefix unique per process and run, 198.18.0.0/15 only):
//! ```text
//! ns G: g0 (generator, AF_XDP) --veth-- ns D: d0 [director] d1 --veth-- ns S: s0 (sink, AF_XDP)
//! clients 198.18.64.0/18 (behind gateway 198.18.1.2 = g0), d0 198.18.1.1/24,
//! VIP 198.18.1.100:80, d1 198.18.2.1/24, real servers 198.18.2.10-13:80 (all answered by s0)
//! ```
//! Cores: generator and sink on core 0, the director on core 1 (xvs with 2 workers: 1 and 0).
//!
//! Invariants: every namespace and process it creates is removed when a run ends, when the
//! harness fails and on SIGINT/SIGTERM (a signal thread cleans up, then exits). Never touches
//! eth0 or any namespace it did not create. Timings are reported, never asserted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Parser;
use xvs_bench::report::{GenReport, SinkReport};
use xvs_bench::scaling::{self, Scaling};

/// Namespaces and child processes alive right now (for the signal thread's cleanup).
static LIVE: Mutex<(Vec<String>, Vec<u32>)> = Mutex::new((Vec::new(), Vec::new()));

const VIP: &str = "198.18.1.100";
const RIPS: [&str; 4] = ["198.18.2.10", "198.18.2.11", "198.18.2.12", "198.18.2.13"];
const LIP: &str = "198.18.2.100";

#[derive(Parser, Debug)]
#[command(name = "xvs-bench", version, about = "xvs against its peers, one run")]
struct Cli {
    /// CI-friendly: 1 repetition, 2 s per run, fewer systems and scenarios.
    #[arg(long)]
    quick: bool,
    /// Repetitions per (scenario, system).
    #[arg(long)]
    reps: Option<usize>,
    /// Seconds of traffic per run (default 3; --quick 2).
    #[arg(long)]
    secs: Option<f64>,
    /// Systems (comma separated): floor, kernel, nft, xvs-nat-1, xvs-nat-2, xvs-dr-1,
    /// xvs-tun-1, xvs-fullnat-1.
    #[arg(long, value_delimiter = ',')]
    systems: Vec<String>,
    /// Scenarios (comma separated): udp, syn, tcp, lat.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Where RESULTS.md, results.json and the plots go.
    #[arg(long, default_value = "bench")]
    out: PathBuf,
    /// Directory of xvs-pktgen, xvsd and xvsadm (default: this binary's directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The `pipeline_cost` example for the callgrind figures (default: BIN_DIR/examples/).
    #[arg(long)]
    cost_bin: Option<PathBuf>,
    /// Skip the callgrind per-packet cost.
    #[arg(long)]
    no_cost: bool,
    /// Skip the MemIo scaling run.
    #[arg(long)]
    no_scaling: bool,
    /// Skip the plots.
    #[arg(long)]
    no_plots: bool,
    /// Conn-table sizes of the table phase, ascending (comma separated; default 1000,10000,
    /// 100000,1000000,10000000, with --quick up to 1000000).
    #[arg(long, value_delimiter = ',')]
    table_levels: Vec<u64>,
    /// Skip the table phase (xvsd's RSS and pps against conns in the table).
    #[arg(long)]
    no_table: bool,
    /// Only the table phase: no scenarios, callgrind or scaling run.
    #[arg(long, conflicts_with = "no_table")]
    table_only: bool,
    /// What fills the table in the table phase (and what traffic is measured over it).
    #[arg(long, value_enum, default_value_t = TableKind::Udp)]
    table_kind: TableKind,
    /// Packets per second of the table phase's traffic over the filled table (0: flat out).
    #[arg(long, default_value_t = 0)]
    table_rate: u64,
    /// Packets per second of the table phase's first fill pass (later passes slow down when
    /// a pass lost much).
    #[arg(long, default_value_t = 250_000)]
    fill_rate: u64,
    /// Niceness of the generator, sink and director processes (negative: ahead of the other
    /// builds sharing the machine; 0 to run unprivileged in priority).
    #[arg(long, default_value_t = -10, allow_hyphen_values = true)]
    nice: i32,
    /// Extra xvsd argument (repeatable), e.g. `--xvsd-arg=--poll --xvsd-arg=busy`.
    #[arg(long, allow_hyphen_values = true)]
    xvsd_arg: Vec<String>,
    /// Keep the per-run logs and JSON (in $TMPDIR/xvs-bench-PID) instead of deleting them.
    #[arg(long)]
    keep: bool,
}

/// One system under test.
#[derive(Clone, Debug, PartialEq, Eq)]
enum System {
    Floor,
    Kernel,
    Nft,
    Xvs { mode: &'static str, workers: u32 },
}

impl System {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "floor" => Self::Floor,
            "kernel" => Self::Kernel,
            "nft" => Self::Nft,
            _ => {
                let p: Vec<&str> = s.split('-').collect();
                let ["xvs", m, w] = p.as_slice() else {
                    bail!("unknown system {s}");
                };
                let mode = match *m {
                    "nat" => "nat",
                    "dr" => "dr",
                    "tun" => "tun",
                    "fullnat" => "fullnat",
                    _ => bail!("unknown xvs mode in {s}"),
                };
                Self::Xvs {
                    mode,
                    workers: w.parse().with_context(|| format!("workers in {s}"))?,
                }
            }
        })
    }

    fn name(&self) -> String {
        match self {
            Self::Floor => "floor".into(),
            Self::Kernel => "kernel".into(),
            Self::Nft => "nft".into(),
            Self::Xvs { mode, workers } => format!("xvs-{mode}-{workers}"),
        }
    }

    fn queues(&self) -> u32 {
        match self {
            Self::Xvs { workers, .. } => *workers,
            _ => 1,
        }
    }
}

/// One traffic scenario.
#[derive(Clone, Debug)]
struct Scenario {
    name: &'static str,
    what: &'static str,
    gen_args: Vec<String>,
    reply_syn: bool,
    busy_sink: bool,
}

fn scenario(name: &str) -> Result<Scenario> {
    let v = |s: &[&str]| s.iter().map(|x| (*x).to_string()).collect::<Vec<_>>();
    Ok(match name {
        "udp" => Scenario {
            name: "udp",
            what: "UDP 64 B, 4096 flows from 16 clients, flat out",
            gen_args: v(&[
                "--kind",
                "udp",
                "--flows",
                "4096",
                "--clients",
                "16",
                "--size",
                "64",
            ]),
            reply_syn: false,
            busy_sink: false,
        },
        "syn" => Scenario {
            name: "syn",
            what: "TCP SYNs, each a new connection, from 256 clients, flat out",
            gen_args: v(&["--kind", "syn", "--clients", "256"]),
            reply_syn: false,
            busy_sink: false,
        },
        "tcp" => Scenario {
            name: "tcp",
            what: "established TCP: 4096 connections opened (SYN, SYN-ACK), then ACK+PSH 76 B, flat out",
            gen_args: v(&[
                "--kind",
                "tcp",
                "--flows",
                "4096",
                "--clients",
                "16",
                "--size",
                "76",
            ]),
            reply_syn: true,
            busy_sink: false,
        },
        "lat" => Scenario {
            name: "lat",
            what: "UDP 64 B, 4096 flows at 50 kpps (latency)",
            gen_args: v(&[
                "--kind",
                "udp",
                "--flows",
                "4096",
                "--clients",
                "16",
                "--size",
                "64",
                "--rate",
                "50000",
            ]),
            reply_syn: false,
            busy_sink: true,
        },
        _ => bail!("unknown scenario {name}"),
    })
}

/// A child process, killed (TERM, then KILL) and reaped on drop.
struct Proc {
    child: Child,
    what: String,
}

impl Proc {
    fn spawn(what: &str, argv: &[String], log: &Path) -> Result<Self> {
        let f = std::fs::File::create(log)?;
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .spawn()
            .with_context(|| format!("spawning {what}: {}", argv.join(" ")))?;
        if let Ok(mut l) = LIVE.lock() {
            l.1.push(child.id());
        }
        Ok(Self {
            child,
            what: what.into(),
        })
    }

    /// Wait for it to exit by itself (up to `t`); false if it had to be killed.
    fn wait(&mut self, t: Duration) -> Result<bool> {
        let end = Instant::now() + t;
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait()? {
                if !st.success() {
                    bail!("{} exited with {st}", self.what);
                }
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(false)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.child.id();
        if self.alive() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let end = Instant::now() + Duration::from_secs(3);
            while self.alive() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Ok(mut l) = LIVE.lock() {
            l.1.retain(|&p| p != pid);
        }
    }
}

fn sh(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("spawning {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "{}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The three namespaces of one run; deleted on drop.
struct Topo {
    g: String,
    d: String,
    s: String,
    g0_mac: String,
    d0_mac: String,
    s0_mac: String,
    nice: i32,
}

impl Topo {
    fn build(prefix: &str, queues: u32, nice: i32) -> Result<Self> {
        let (g, d, s) = (
            format!("{prefix}g"),
            format!("{prefix}d"),
            format!("{prefix}s"),
        );
        for ns in [&g, &d, &s] {
            sh(&["ip", "netns", "add", ns])?;
            if let Ok(mut l) = LIVE.lock() {
                l.0.push(ns.clone());
            }
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        let q = queues.to_string();
        for (a, na, b) in [("g0", &g, "d0"), ("s0", &s, "d1")] {
            sh(&[
                "ip",
                "link",
                "add",
                a,
                "netns",
                na,
                "numrxqueues",
                &q,
                "numtxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                b,
                "netns",
                &d,
                "numrxqueues",
                &q,
                "numtxqueues",
                &q,
            ])?;
            sh(&["ip", "-n", na, "link", "set", a, "up"])?;
            sh(&["ip", "-n", &d, "link", "set", b, "up"])?;
        }
        let mac = |ns: &str, i: &str| -> Result<String> {
            Ok(sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "cat",
                &format!("/sys/class/net/{i}/address"),
            ])?
            .trim()
            .to_string())
        };
        Ok(Self {
            g0_mac: mac(&g, "g0")?,
            d0_mac: mac(&d, "d0")?,
            s0_mac: mac(&s, "s0")?,
            nice,
            g,
            d,
            s,
        })
    }

    fn exec(&self, ns: &str, core: &str, argv: &[String]) -> Vec<String> {
        let nice = self.nice.to_string();
        let mut v: Vec<String> = [
            "ip", "netns", "exec", ns, "nice", "-n", &nice, "taskset", "-c", core,
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        v.extend_from_slice(argv);
        v
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for ns in [&self.g, &self.d, &self.s] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            if let Ok(mut l) = LIVE.lock() {
                l.0.retain(|n| n != ns);
            }
        }
    }
}

/// The signal thread: on SIGINT/SIGTERM kill the children, delete the namespaces, exit.
fn install_cleanup() -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    set.thread_block()?;
    std::thread::spawn(move || {
        let sig = set.wait();
        eprintln!("xvs-bench: {sig:?}: cleaning up");
        let (nss, pids) = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
        for p in pids {
            let _ = Command::new("kill")
                .args(["-KILL", &p.to_string()])
                .status();
        }
        for ns in nss {
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
        std::process::exit(130);
    });
    Ok(())
}

#[derive(Clone)]
struct Bins {
    pktgen: String,
    xvsd: String,
    xvsadm: String,
    /// Extra xvsd arguments.
    xvsd_extra: Vec<String>,
}

/// The result of one run.
#[derive(Clone, Debug, serde::Serialize)]
struct Run {
    scenario: String,
    system: String,
    rep: usize,
    generator: GenReport,
    sink: SinkReport,
    /// xvsd's resident memory (bytes) once configured and once the traffic ended.
    rss: Option<(u64, u64)>,
}

/// Resident set size of process `pid` in bytes.
fn rss_of(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn s(x: &str) -> String {
    x.to_string()
}

/// Start the system under test in the director namespace; returns its process (if any).
fn start_director(
    sys: &System,
    t: &Topo,
    bins: &Bins,
    dir: &Path,
    secs: f64,
) -> Result<Option<Proc>> {
    let d = &t.d;
    match sys {
        System::Floor => {
            let ready = dir.join("fwd.ready");
            let argv = t.exec(
                d,
                "1",
                &[
                    bins.pktgen.clone(),
                    s("fwd"),
                    s("--a"),
                    s("d0"),
                    s("--b"),
                    s("d1"),
                    s("--dst-mac-b"),
                    t.s0_mac.clone(),
                    s("--dst-mac-a"),
                    t.g0_mac.clone(),
                    s("--secs"),
                    format!("{secs}"),
                    s("--ready"),
                    ready.display().to_string(),
                ],
            );
            let mut p = Proc::spawn("floor forwarder", &argv, &dir.join("fwd.log"))?;
            wait_file(&ready, &mut p)?;
            Ok(Some(p))
        }
        System::Kernel | System::Nft => {
            let ip = |a: &[&str]| -> Result<String> {
                let mut v = vec!["ip", "-n", d];
                v.extend_from_slice(a);
                sh(&v)
            };
            ip(&["addr", "add", "198.18.1.1/24", "dev", "d0"])?;
            ip(&["addr", "add", "198.18.2.1/24", "dev", "d1"])?;
            ip(&[
                "neigh",
                "replace",
                "198.18.1.2",
                "lladdr",
                &t.g0_mac,
                "dev",
                "d0",
                "nud",
                "permanent",
            ])?;
            for r in RIPS {
                ip(&[
                    "neigh",
                    "replace",
                    r,
                    "lladdr",
                    &t.s0_mac,
                    "dev",
                    "d1",
                    "nud",
                    "permanent",
                ])?;
            }
            ip(&[
                "route",
                "add",
                "198.18.64.0/18",
                "via",
                "198.18.1.2",
                "dev",
                "d0",
            ])?;
            sh(&[
                "ip",
                "netns",
                "exec",
                d,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            ])?;
            if *sys == System::Nft {
                let map: Vec<String> = RIPS
                    .iter()
                    .enumerate()
                    .map(|(i, r)| format!("{i} : {r}"))
                    .collect();
                let map = map.join(", ");
                let rules = format!(
                    "table ip xvsbench {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n    ip daddr {VIP} udp dport 80 dnat to numgen inc mod 4 map {{ {map} }}\n    ip daddr {VIP} tcp dport 80 dnat to numgen inc mod 4 map {{ {map} }}\n  }}\n}}\n"
                );
                let f = dir.join("nft.rules");
                std::fs::write(&f, rules)?;
                sh(&[
                    "ip",
                    "netns",
                    "exec",
                    d,
                    "nft",
                    "-f",
                    &f.display().to_string(),
                ])?;
            }
            Ok(None)
        }
        System::Xvs { mode, workers } => {
            let sock = dir.join("xvs.sock");
            let mut args = vec![
                bins.xvsd.clone(),
                s("--socket"),
                sock.display().to_string(),
                s("--iface"),
                s("d0"),
                s("--iface"),
                s("d1"),
                s("--addr"),
                s("d0=198.18.1.1/24"),
                s("--addr"),
                s("d1=198.18.2.1/24"),
                s("--route"),
                s("198.18.64.0/18=198.18.1.2"),
                s("--neigh"),
                format!("198.18.1.2={}", t.g0_mac),
                s("--workers"),
                workers.to_string(),
                s("--cores"),
                if *workers >= 2 { s("1,0") } else { s("1") },
            ];
            if *mode == "fullnat" {
                args.extend([s("--addr"), format!("d1={LIP}/24")]);
            }
            for r in RIPS {
                args.extend([s("--neigh"), format!("{r}={}", t.s0_mac)]);
            }
            args.extend(bins.xvsd_extra.iter().cloned());
            let argv = t.exec(d, "0-1", &args);
            let mut p = Proc::spawn("xvsd", &argv, &dir.join("xvsd.log"))?;
            let end = Instant::now() + Duration::from_secs(20);
            while !sock.exists() {
                if !p.alive() || Instant::now() > end {
                    let log = std::fs::read_to_string(dir.join("xvsd.log")).unwrap_or_default();
                    bail!("xvsd did not start: {log}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let adm = |a: &[String]| -> Result<()> {
                let out = Command::new(&bins.xvsadm)
                    .args(a)
                    .env("XVS_SOCKET", &sock)
                    .output()?;
                if !out.status.success() {
                    bail!(
                        "xvsadm {}: {}",
                        a.join(" "),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                Ok(())
            };
            let flag = match *mode {
                "nat" => "-m",
                "dr" => "-g",
                "tun" => "-i",
                _ => "--fullnat",
            };
            for proto in ["-u", "-t"] {
                let svc = format!("{VIP}:80");
                adm(&[s("-A"), s(proto), svc.clone(), s("-s"), s("rr")])?;
                if *mode == "fullnat" {
                    adm(&[s("--add-laddr"), s(proto), svc.clone(), s("-z"), s(LIP)])?;
                }
                for r in RIPS {
                    adm(&[
                        s("-a"),
                        s(proto),
                        svc.clone(),
                        s("-r"),
                        format!("{r}:80"),
                        s(flag),
                    ])?;
                }
            }
            std::thread::sleep(Duration::from_millis(300));
            Ok(Some(p))
        }
    }
}

fn wait_file(f: &Path, p: &mut Proc) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(20);
    while !f.exists() {
        if !p.alive() || Instant::now() > end {
            bail!("{} did not get ready", p.what);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&s).with_context(|| format!("parsing {}", p.display()))
}

/// One (scenario, system, repetition) run in a fresh topology.
/// What every run shares.
struct Ctx<'a> {
    secs: f64,
    bins: &'a Bins,
    work: &'a Path,
    nice: i32,
}

fn run_one(sc: &Scenario, sys: &System, rep: usize, seq: usize, cx: &Ctx<'_>) -> Result<Run> {
    let (secs, bins, work, nice) = (cx.secs, cx.bins, cx.work, cx.nice);
    let prefix = format!("xb{}{}", std::process::id() % 10_000, seq);
    let dir = work.join(format!("{}-{}-{rep}", sc.name, sys.name()));
    std::fs::create_dir_all(&dir)?;
    let q = sys.queues();
    let t = Topo::build(&prefix, q, nice)?;
    let guard = secs + 30.0;
    // Sink first (ready when bound), then the director, then the generator.
    let sink_ready = dir.join("sink.ready");
    let mut sink_args = vec![
        bins.pktgen.clone(),
        s("sink"),
        s("--iface"),
        s("s0"),
        s("--queues"),
        q.to_string(),
        s("--secs"),
        format!("{guard}"),
        s("--idle-exit"),
        s("1.5"),
        s("--json"),
        dir.join("sink.json").display().to_string(),
        s("--ready"),
        sink_ready.display().to_string(),
    ];
    if sc.reply_syn {
        sink_args.push(s("--reply-syn"));
    }
    if sc.busy_sink {
        sink_args.push(s("--busy"));
    }
    let mut sink = Proc::spawn(
        "sink",
        &t.exec(&t.s, "0", &sink_args),
        &dir.join("sink.log"),
    )?;
    wait_file(&sink_ready, &mut sink)?;
    let director = start_director(sys, &t, bins, &dir, secs + 3.0)?;
    // `ip netns exec`, `nice` and `taskset` exec in place: the child's pid is xvsd's.
    let xvsd_pid = match sys {
        System::Xvs { .. } => director.as_ref().map(|d| d.child.id()),
        _ => None,
    };
    let rss_start = xvsd_pid.and_then(rss_of);
    let mut gen_args = vec![
        bins.pktgen.clone(),
        s("gen"),
        s("--iface"),
        s("g0"),
        s("--queues"),
        q.to_string(),
        s("--dst-mac"),
        t.d0_mac.clone(),
        s("--secs"),
        format!("{secs}"),
        s("--json"),
        dir.join("gen.json").display().to_string(),
    ];
    if *sys == System::Kernel {
        for r in RIPS {
            gen_args.extend([s("--dst"), s(r)]);
        }
    } else {
        gen_args.extend([s("--dst"), s(VIP)]);
    }
    gen_args.extend(sc.gen_args.iter().cloned());
    let mut generator = Proc::spawn(
        "generator",
        &t.exec(&t.g, "0", &gen_args),
        &dir.join("gen.log"),
    )?;
    if !generator.wait(Duration::from_secs_f64(secs + 90.0))? {
        bail!("the generator did not finish");
    }
    if !sink.wait(Duration::from_secs_f64(guard + 5.0))? {
        bail!("the sink did not finish");
    }
    let rss = rss_start.zip(xvsd_pid.and_then(rss_of));
    if let Some(mut d) = director
        && *sys == System::Floor
    {
        // The floor stops by itself shortly after the generator; its log has its count.
        let _ = d.wait(Duration::from_secs(10));
    }
    let generator: GenReport = read_json(&dir.join("gen.json"))?;
    let sink: SinkReport = read_json(&dir.join("sink.json"))?;
    if generator.sent > 0 && sink.rx + sink.xsk_dropped == 0 {
        // A system that forwarded nothing is broken, not slow: keep it out of the medians.
        let log = ["xvsd.log", "fwd.log"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
            .flat_map(|l| {
                l.lines()
                    .filter(|x| !x.starts_with("lib"))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
            .join(" | ");
        bail!(
            "nothing delivered ({} sent); director log: {log}",
            generator.sent
        );
    }
    drop(t);
    Ok(Run {
        scenario: sc.name.into(),
        system: sys.name(),
        rep,
        generator,
        sink,
        rss,
    })
}

/// Client addresses of the table phase: 256 x 64000 source ports = 16.4M distinct (address,
/// port) pairs, enough for the largest level.
const TABLE_CLIENTS: u32 = 256;
/// Fill passes over `[0, level)` before a level counts as not reached.
const TABLE_PASSES: u32 = 5;
/// A pass that leaves more than 1/this of a level missing makes the next pass slower by 1/3.
const TABLE_SLOWDOWN_AT: u64 = 50;

/// What fills the table in the table phase, and what is measured over it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum TableKind {
    /// One UDP datagram per flow creates the conn (UDP timeout 300 s); then UDP 64 B over
    /// every flow.
    Udp,
    /// One SYN per conn (SYN_RECV, 60 s); then TCP ACK+PSH 76 B over every conn (which
    /// establishes it). A level whose fill takes near 60 s loses its first conns again.
    Syn,
}

impl TableKind {
    /// Generator arguments that create conns `0..n` (once each), at `rate`.
    fn fill_args(self, n: u64, rate: u64) -> Vec<String> {
        let mut v = match self {
            Self::Udp => vec![
                s("--kind"),
                s("udp"),
                s("--flows"),
                n.to_string(),
                s("--size"),
                s("64"),
            ],
            Self::Syn => vec![s("--kind"), s("syn")],
        };
        v.extend([
            s("--clients"),
            TABLE_CLIENTS.to_string(),
            s("--count"),
            n.to_string(),
            s("--rate"),
            rate.to_string(),
        ]);
        v
    }

    /// Generator arguments for flat-out traffic over conns `0..n` (all created by the fill).
    fn traffic_args(self, n: u64, rate: u64) -> Vec<String> {
        let mut v = match self {
            Self::Udp => vec![s("--kind"), s("udp"), s("--size"), s("64")],
            Self::Syn => vec![s("--kind"), s("tcp"), s("--no-open"), s("--size"), s("76")],
        };
        v.extend([
            s("--flows"),
            n.to_string(),
            s("--clients"),
            TABLE_CLIENTS.to_string(),
            s("--rate"),
            rate.to_string(),
        ]);
        v
    }

    fn what(self) -> &'static str {
        match self {
            Self::Udp => {
                "one UDP datagram per conn (the UDP timeout, 300 s, keeps them); the traffic: \
                 UDP 64 B"
            }
            Self::Syn => {
                "one SYN per conn (the SYN_RECV timeout, 60 s, keeps them); the traffic: TCP \
                 ACK+PSH 76 B, which establishes them"
            }
        }
    }
}

/// One level of the table phase: the conn table filled to `target` conns, xvsd's RSS, then
/// pps over those conns.
#[derive(Clone, Debug, Default, serde::Serialize)]
struct Level {
    /// Conns asked for: conns 0..target from distinct (client, port) pairs.
    target: u64,
    /// Conns in the table once filled (xvsd's ActiveConn + InActConn over all dests).
    conns: u64,
    /// Conns in the table after the pps measurements.
    conns_after: u64,
    /// Fill passes over `[0, target)`, and the rate of each (packets lost on the way are sent
    /// again; a packet of a conn already in the table only refreshes its timer).
    pass_rates: Vec<u64>,
    /// Conns in the table after each fill pass.
    pass_conns: Vec<u64>,
    /// Packets the generator sent to fill this level, all passes.
    fill_sent: u64,
    /// Seconds the fill took, all passes.
    fill_secs: f64,
    /// xvsd's VmRSS (bytes) once filled.
    rss: u64,
    /// Delivered pps of each repetition (flat out over all `target` conns).
    pps: Vec<f64>,
    /// Generator pps of each repetition.
    sent_pps: Vec<f64>,
}

/// The table phase: xvsd (NAT, 1 worker) with its table at increasing sizes.
#[derive(Clone, Debug, serde::Serialize)]
struct TablePhase {
    /// What fills the table and what is measured.
    kind: TableKind,
    /// xvsd's VmRSS (bytes) configured, before the first conn.
    rss_idle: u64,
    /// The conn table's own figure for one IPv4 NAT conn (slot + index entry), bytes.
    table_bytes_per_conn: usize,
    /// Rate of the first fill pass (pps).
    fill_rate: u64,
    /// Levels filled and measured, ascending.
    levels: Vec<Level>,
    /// Why the phase stopped early, if it did.
    stopped: Option<String>,
}

impl Level {
    /// (RSS now - RSS idle) / conns.
    // Byte counts are below 2^53.
    #[allow(clippy::cast_precision_loss)]
    fn rss_per_conn(&self, idle: u64) -> f64 {
        self.rss.saturating_sub(idle) as f64 / self.conns.max(1) as f64
    }
}

/// Sum of ActiveConn and InActConn over every dest of `xvsadm -Ln`: the conns in the table
/// (the table phase creates no templates). A listing of services and dests, so it costs the
/// same at 10M conns as at 10 (`-Lnc` would list every conn).
fn table_conns(xvsadm: &str, sock: &Path) -> Result<u64> {
    let out = Command::new(xvsadm)
        .arg("-Ln")
        .env("XVS_SOCKET", sock)
        .output()
        .context("running xvsadm -Ln")?;
    if !out.status.success() {
        bail!("xvsadm -Ln: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut n = 0u64;
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        // "  -> RIP:PORT  Masq  1  ActiveConn  InActConn" (the header row has no numbers).
        let Some(row) = l.strip_prefix("  ->") else {
            continue;
        };
        let f: Vec<&str> = row.split_whitespace().collect();
        if let [.., a, i] = f.as_slice()
            && let (Ok(a), Ok(i)) = (a.parse::<u64>(), i.parse::<u64>())
        {
            n += a + i;
        }
    }
    Ok(n)
}

/// Run a sink on `s0` and a generator on `g0` (1 queue each) until both are done.
fn traffic(
    t: &Topo,
    bins: &Bins,
    dir: &Path,
    tag: &str,
    (gen_extra, sink_extra): (&[String], &[String]),
    gen_secs: f64,
) -> Result<(GenReport, SinkReport)> {
    let sink_ready = dir.join(format!("{tag}.sink.ready"));
    let sink_json = dir.join(format!("{tag}.sink.json"));
    let gen_json = dir.join(format!("{tag}.gen.json"));
    let guard = gen_secs + 30.0;
    let mut sink_args = vec![
        bins.pktgen.clone(),
        s("sink"),
        s("--iface"),
        s("s0"),
        s("--secs"),
        format!("{guard}"),
        s("--idle-exit"),
        s("1"),
        s("--json"),
        sink_json.display().to_string(),
        s("--ready"),
        sink_ready.display().to_string(),
    ];
    sink_args.extend_from_slice(sink_extra);
    let mut sink = Proc::spawn(
        "sink",
        &t.exec(&t.s, "0", &sink_args),
        &dir.join(format!("{tag}.sink.log")),
    )?;
    wait_file(&sink_ready, &mut sink)?;
    let mut gen_args = vec![
        bins.pktgen.clone(),
        s("gen"),
        s("--iface"),
        s("g0"),
        s("--dst-mac"),
        t.d0_mac.clone(),
        s("--dst"),
        s(VIP),
        s("--secs"),
        format!("{gen_secs}"),
        s("--json"),
        gen_json.display().to_string(),
    ];
    gen_args.extend_from_slice(gen_extra);
    let mut generator = Proc::spawn(
        "generator",
        &t.exec(&t.g, "0", &gen_args),
        &dir.join(format!("{tag}.gen.log")),
    )?;
    if !generator.wait(Duration::from_secs_f64(gen_secs + 90.0))? {
        bail!("the generator did not finish");
    }
    if !sink.wait(Duration::from_secs_f64(guard + 5.0))? {
        bail!("the sink did not finish");
    }
    Ok((read_json(&gen_json)?, read_json(&sink_json)?))
}

/// What the table phase needs besides the shared context.
struct TablePlan<'a> {
    kind: TableKind,
    /// Rate of the measured traffic (0: flat out).
    rate: u64,
    levels: &'a [u64],
    reps: usize,
    fill_rate: u64,
}

/// Fill xvsd's table (NAT, 1 worker) to each level in turn with conns from distinct (client,
/// port) pairs, check that the table really holds that many conns, read xvsd's RSS, then
/// measure flat-out pps over exactly those conns. One topology and one xvsd throughout, so
/// the levels build on each other; each level's fill covers its whole range again, which
/// re-creates what was lost on the way and refreshes the older conns' timers.
fn table_phase(cx: &Ctx<'_>, plan: &TablePlan<'_>, seq: usize) -> Result<TablePhase> {
    let top = plan.levels.iter().copied().max().unwrap_or(0);
    let dir = cx.work.join("table");
    std::fs::create_dir_all(&dir)?;
    let prefix = format!("xb{}t{seq}", std::process::id() % 10_000);
    let t = Topo::build(&prefix, 1, cx.nice)?;
    let mut bins = cx.bins.clone();
    // Room for every level. conn_tab_bits stays at its default (12): the table reserves
    // 2^bits entries up front and grows from there, so RSS growth over the idle daemon is
    // what the conns cost (with --conn-tab-bits 20 the idle daemon already holds the slabs
    // and index of 1M conns resident, about 94 MiB more, and the growth up to 1M is zero).
    bins.xvsd_extra
        .extend([s("--max-conns"), (top + top / 4 + 65_536).to_string()]);
    let sys = System::Xvs {
        mode: "nat",
        workers: 1,
    };
    let director =
        start_director(&sys, &t, &bins, &dir, 0.0)?.ok_or_else(|| anyhow!("xvsd did not start"))?;
    // `ip netns exec`, `nice` and `taskset` exec in place: the child's pid is xvsd's.
    let pid = director.child.id();
    let sock = dir.join("xvs.sock");
    let conns = || table_conns(&bins.xvsadm, &sock);
    let rss = || rss_of(pid).ok_or_else(|| anyhow!("no VmRSS for xvsd ({pid})"));
    let mut out = TablePhase {
        kind: plan.kind,
        rss_idle: rss()?,
        table_bytes_per_conn: xvs_dataplane::conn::ConnTable::bytes_per_conn(),
        fill_rate: plan.fill_rate,
        levels: Vec::new(),
        stopped: None,
    };
    for &n in plan.levels {
        // Every level starts at the planned rate: a slowdown was for a moment of this shared
        // machine, not for good.
        let mut rate = plan.fill_rate.max(1);
        let mut lv = Level {
            target: n,
            ..Level::default()
        };
        eprint!("xvs-bench: table {n} conns: fill ... ");
        let started = Instant::now();
        // UDP: the flow ids the sink saw, one bitmap per pass; a later pass sends only the
        // others (a conn whose packet reached the sink is in the table; one whose packet did
        // not may be too, and sending it again only refreshes it).
        let mut seen: Vec<PathBuf> = Vec::new();
        while lv.pass_rates.len() < TABLE_PASSES as usize {
            lv.pass_rates.push(rate);
            let tag = format!("fill-{n}-{}", lv.pass_rates.len());
            let mut gen_args = plan.kind.fill_args(n, rate);
            let mut sink_args = Vec::new();
            if plan.kind == TableKind::Udp {
                for f in &seen {
                    gen_args.extend([s("--skip"), f.display().to_string()]);
                }
                let f = dir.join(format!("{tag}.seen"));
                sink_args.extend([
                    s("--max-flows"),
                    n.to_string(),
                    s("--seen"),
                    f.display().to_string(),
                ]);
                seen.push(f);
            }
            // Counts are below 2^53.
            #[allow(clippy::cast_precision_loss)]
            let secs =
                n.saturating_sub(lv.pass_conns.last().copied().unwrap_or(0)) as f64 / rate as f64;
            let (g, _) = traffic(
                &t,
                &bins,
                &dir,
                &tag,
                (&gen_args, &sink_args),
                secs * 2.0 + 10.0,
            )?;
            lv.fill_sent += g.sent;
            lv.conns = conns()?;
            lv.pass_conns.push(lv.conns);
            if lv.conns >= n {
                break;
            }
            // Much lost: the director (or this shared machine) cannot take this rate now.
            if n - lv.conns > n / TABLE_SLOWDOWN_AT {
                rate = (rate * 2 / 3).max(10_000);
            }
        }
        lv.fill_secs = started.elapsed().as_secs_f64();
        lv.rss = rss()?;
        eprint!(
            "{:?} conns after {} pass(es) at {:?} pps, {:.0} s, RSS {:.1} MiB; pps",
            lv.pass_conns,
            lv.pass_rates.len(),
            lv.pass_rates,
            lv.fill_secs,
            mib(lv.rss)
        );
        if lv.conns != n {
            eprintln!();
            out.stopped = Some(format!(
                "level {n}: the table holds {} conns after {} fill passes",
                lv.conns,
                lv.pass_rates.len()
            ));
            out.levels.push(lv);
            break;
        }
        for rep in 0..plan.reps {
            let (g, sk) = traffic(
                &t,
                &bins,
                &dir,
                &format!("pps-{n}-{rep}"),
                (&plan.kind.traffic_args(n, plan.rate), &[]),
                cx.secs,
            )?;
            eprint!(" {:.0}", sk.delivered_pps);
            lv.pps.push(sk.delivered_pps);
            lv.sent_pps.push(g.pps);
        }
        lv.conns_after = conns()?;
        eprintln!(" (table after: {})", lv.conns_after);
        out.levels.push(lv);
    }
    drop(director);
    drop(t);
    Ok(out)
}

/// Median, min, max of a non-empty sample.
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut x = v.to_vec();
    x.sort_by(f64::total_cmp);
    if x.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let n = x.len();
    let med = if n % 2 == 1 {
        x[n / 2]
    } else {
        f64::midpoint(x[n / 2 - 1], x[n / 2])
    };
    (med, x[0], x[n - 1])
}

/// The metric of a scenario: delivered packets (or new connections) per second.
/// Flat out: over the sink's active window (the system under test is the bottleneck all
/// along). Paced (`lat`): over the generator's sending time, so a sink that lags behind does
/// not make a system look slower than the offered rate.
// Counters are below 2^53.
#[allow(clippy::cast_precision_loss)]
fn metric(r: &Run) -> f64 {
    if r.generator.rate > 0 {
        (r.sink.rx + r.sink.xsk_dropped) as f64 / r.generator.secs.max(1e-9)
    } else {
        r.sink.delivered_pps
    }
}

/// Instructions per packet of `pipeline_cost PATH` from two callgrind runs (N and 2N).
fn callgrind_cost(bin: &Path, path: &str, n: u32, work: &Path) -> Result<f64> {
    let mut totals = Vec::new();
    for k in [n, 2 * n] {
        let out = work.join(format!("callgrind.{path}.{k}"));
        let o = Command::new("valgrind")
            .args([
                "--tool=callgrind",
                &format!("--callgrind-out-file={}", out.display()),
            ])
            .arg(bin)
            .args([path, &k.to_string()])
            .output()
            .context("running valgrind")?;
        let err = String::from_utf8_lossy(&o.stderr);
        let total = err
            .lines()
            .find_map(|l| l.split("Collected :").nth(1))
            .and_then(|x| x.trim().parse::<u64>().ok())
            .ok_or_else(|| anyhow!("no callgrind total in: {err}"))?;
        totals.push(total);
    }
    // Totals are below 2^53.
    #[allow(clippy::cast_precision_loss)]
    Ok((totals[1].saturating_sub(totals[0])) as f64 / f64::from(n))
}

fn machine() -> Vec<(String, String)> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let kernel = sh(&["uname", "-r"]).unwrap_or_default().trim().to_string();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    vec![
        ("CPU".into(), format!("{cpu} ({cores} cores)")),
        ("kernel".into(), kernel),
        (
            "memory".into(),
            mem.split_whitespace().skip(1).collect::<Vec<_>>().join(" "),
        ),
    ]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    install_cleanup()?;
    let started = Instant::now();
    let load_before = loadavg();
    let bin_dir = match &cli.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| anyhow!("no directory for this binary"))?,
    };
    let find = |n: &str| -> Result<String> {
        let p = bin_dir.join(n);
        if !p.exists() {
            bail!(
                "{} missing: build it first (see bench/RESULTS.md)",
                p.display()
            );
        }
        Ok(p.display().to_string())
    };
    let bins = Bins {
        pktgen: find("xvs-pktgen")?,
        xvsd: find("xvsd")?,
        xvsadm: find("xvsadm")?,
        xvsd_extra: cli.xvsd_arg.clone(),
    };
    let reps = cli.reps.unwrap_or(if cli.quick { 1 } else { 3 });
    // 3 s per run keeps the whole default invocation (96 runs plus the table phase's fill
    // of 10M conns) under 15 minutes on the 2-core machine.
    let secs = cli.secs.unwrap_or(if cli.quick { 2.0 } else { 3.0 });
    let systems: Vec<String> = if cli.systems.is_empty() {
        let v: &[&str] = if cli.quick {
            &["floor", "kernel", "nft", "xvs-nat-1"]
        } else {
            &[
                "floor",
                "kernel",
                "nft",
                "xvs-nat-1",
                "xvs-nat-2",
                "xvs-dr-1",
                "xvs-tun-1",
                "xvs-fullnat-1",
            ]
        };
        v.iter().map(|x| s(x)).collect()
    } else {
        cli.systems.clone()
    };
    let systems: Vec<System> = systems
        .iter()
        .map(|x| System::parse(x))
        .collect::<Result<_>>()?;
    let scen_names: Vec<String> = if cli.table_only {
        Vec::new()
    } else if cli.scenarios.is_empty() {
        let v: &[&str] = if cli.quick {
            &["udp", "syn"]
        } else {
            &["udp", "syn", "tcp", "lat"]
        };
        v.iter().map(|x| s(x)).collect()
    } else {
        cli.scenarios.clone()
    };
    let scenarios: Vec<Scenario> = scen_names
        .iter()
        .map(|x| scenario(x))
        .collect::<Result<_>>()?;
    let work = std::env::temp_dir().join(format!("xvs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&cli.out)?;

    let cx = Ctx {
        secs,
        bins: &bins,
        work: &work,
        nice: cli.nice,
    };
    let mut runs: Vec<Run> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut seq = 0;
    for sc in &scenarios {
        for rep in 0..reps {
            // Interleave systems within a repetition so slow drifts of the machine's load
            // hit every system alike.
            for sys in &systems {
                seq += 1;
                eprint!("xvs-bench: {} {} rep {} ... ", sc.name, sys.name(), rep + 1);
                match run_one(sc, sys, rep, seq, &cx) {
                    Ok(r) => {
                        eprintln!(
                            "{:.0} /s (sent {:.0} pps, p50 {:.1} us)",
                            metric(&r),
                            r.generator.pps,
                            r.sink.lat_p50_ns as f64 / 1e3
                        );
                        runs.push(r);
                    }
                    Err(e) => {
                        eprintln!("failed: {e:#}");
                        failures.push(format!("{} {} rep {}: {e:#}", sc.name, sys.name(), rep + 1));
                    }
                }
            }
        }
    }

    let mut table: Option<TablePhase> = None;
    if !cli.no_table {
        let levels: Vec<u64> = if cli.table_levels.is_empty() {
            // --quick stops at 1M conns (a few seconds of fill); 10M take about a minute.
            let top = if cli.quick { 1_000_000 } else { 10_000_000 };
            [1_000, 10_000, 100_000, 1_000_000, 10_000_000]
                .into_iter()
                .filter(|&n| n <= top)
                .collect()
        } else {
            cli.table_levels.clone()
        };
        let plan = TablePlan {
            kind: cli.table_kind,
            rate: cli.table_rate,
            levels: &levels,
            reps,
            fill_rate: cli.fill_rate,
        };
        seq += 1;
        match table_phase(&cx, &plan, seq) {
            Ok(t) => {
                if let Some(why) = &t.stopped {
                    failures.push(format!("table phase stopped: {why}"));
                }
                table = Some(t);
            }
            Err(e) => {
                eprintln!("xvs-bench: table phase failed: {e:#}");
                failures.push(format!("table phase: {e:#}"));
            }
        }
    }

    let mut cost: Vec<(String, f64)> = Vec::new();
    if !cli.no_cost && !cli.table_only {
        let bin = cli
            .cost_bin
            .clone()
            .unwrap_or_else(|| bin_dir.join("examples").join("pipeline_cost"));
        let n = if cli.quick { 2000 } else { 10_000 };
        for path in ["established", "new"] {
            eprint!("xvs-bench: callgrind {path} ... ");
            match callgrind_cost(&bin, path, n, &work) {
                Ok(c) => {
                    eprintln!("{c:.0} instructions/packet");
                    cost.push((path.into(), c));
                }
                Err(e) => {
                    eprintln!("failed: {e:#}");
                    failures.push(format!("callgrind {path}: {e:#}"));
                }
            }
        }
    }

    let mut scal: Vec<Scaling> = Vec::new();
    if !cli.no_scaling && !cli.table_only {
        let t = if cli.quick { 0.5 } else { 3.0 };
        for threads in [1, 2] {
            eprint!("xvs-bench: scaling {threads} thread(s) ... ");
            match scaling::run(threads, 100_000, t) {
                Ok(r) => {
                    eprintln!("{:.0} pps", r.pps);
                    scal.push(r);
                }
                Err(e) => {
                    eprintln!("failed: {e:#}");
                    failures.push(format!("scaling {threads}: {e:#}"));
                }
            }
        }
    }

    let load_after = loadavg();
    // The latency CDFs of flat-out runs (queueing at saturation) are long and say little:
    // results.json keeps only the paced runs' CDFs.
    let slim: Vec<Run> = runs
        .iter()
        .cloned()
        .map(|mut r| {
            if r.generator.rate == 0 {
                r.sink.lat_cdf.clear();
            }
            r
        })
        .collect();
    let raw = serde_json::json!({
        "runs": slim,
        "cost": cost,
        "scaling": scal,
        "table": table,
        "failures": failures,
    });
    std::fs::write(
        cli.out.join("results.json"),
        serde_json::to_string_pretty(&raw)?,
    )?;
    let summary = summarize(&runs, &scenarios, &systems);
    let mut plots = Vec::new();
    if !cli.no_plots {
        match plot::all(&cli.out, &summary, &runs, &scenarios, table.as_ref()) {
            Ok(p) => plots = p,
            Err(e) => failures.push(format!("plots: {e:#}")),
        }
    }
    let md = results_md(&Report {
        cli: &cli,
        reps,
        secs,
        table: &summary,
        conn_table: table.as_ref(),
        runs: &runs,
        scenarios: &scenarios,
        cost: &cost,
        scaling: &scal,
        failures: &failures,
        load: (load_before, load_after),
        plots: &plots,
        took: started.elapsed(),
    });
    std::fs::write(cli.out.join("RESULTS.md"), md)?;
    if cli.keep {
        eprintln!("xvs-bench: per-run logs in {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    eprintln!(
        "xvs-bench: wrote {} in {:.0} s",
        cli.out.join("RESULTS.md").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Per (scenario, system): (median, min, max) of the scenario's metric, and the runs' count.
type Table = BTreeMap<(String, String), Cell>;

/// (median, min, max, runs) of one table cell.
type Cell = (f64, f64, f64, usize);

fn summarize(runs: &[Run], scenarios: &[Scenario], systems: &[System]) -> Table {
    let mut t = Table::new();
    for sc in scenarios {
        for sys in systems {
            let v: Vec<f64> = runs
                .iter()
                .filter(|r| r.scenario == sc.name && r.system == sys.name())
                .map(metric)
                .collect();
            if !v.is_empty() {
                let (m, lo, hi) = stats(&v);
                t.insert((sc.name.into(), sys.name()), (m, lo, hi, v.len()));
            }
        }
    }
    t
}

struct Report<'a> {
    cli: &'a Cli,
    reps: usize,
    secs: f64,
    table: &'a Table,
    conn_table: Option<&'a TablePhase>,
    runs: &'a [Run],
    scenarios: &'a [Scenario],
    cost: &'a [(String, f64)],
    scaling: &'a [Scaling],
    failures: &'a [String],
    load: (String, String),
    plots: &'a [String],
    took: Duration,
}

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

fn kfmt(x: f64) -> String {
    format!("{:.0} k", x / 1e3)
}

fn results_md(r: &Report<'_>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# xvs benchmark results\n");
    let _ = writeln!(
        o,
        "Written by `xvs-bench` (bench/src/bin/xvs-bench.rs); every figure below comes from one \
         invocation on one machine, so the ratios are comparable; absolute numbers are not \
         portable. Timings are never asserted anywhere.\n"
    );
    let _ = writeln!(o, "## Machine\n");
    for (k, v) in machine() {
        let _ = writeln!(o, "- {k}: {v}");
    }
    let _ = writeln!(
        o,
        "- load average (1/5/15 min) before: {}, after: {} (the machine is shared with other \
         builds: expect 4-25% spread)",
        r.load.0, r.load.1
    );
    let _ = writeln!(o, "- took {:.0} s\n", r.took.as_secs_f64());
    let _ = writeln!(o, "## Reproduce\n");
    let _ = writeln!(o, "```sh\n{}\n```\n", reproduce(r.cli));
    let _ = writeln!(
        o,
        "Topology per run (fresh namespaces each time): generator `g0` | director `d0`,`d1` | \
         sink `s0`, veth pairs, AF_XDP in native (copy) mode at both ends; generator and sink \
         on core 0, the director on core 1 (xvs with 2 workers: cores 1 and 0, 2-queue veths). \
         Repetitions: {}, {} s of traffic each, systems interleaved within a repetition. On \
         veth the receiving side's XDP and copy run in the sender's softirq, so part of every \
         director's receive cost lands on the generator's core.\n",
        r.reps, r.secs
    );
    let _ = writeln!(
        o,
        "How to read the tables. The kernel paths (kernel forwarding, nftables) run inside the \
         generator's own `sendto` (veth delivers in the sender's softirq), so they slow the \
         generator down to their own speed and lose nothing: a closed loop. The AF_XDP paths \
         (floor, xvs) are an open loop: the generator keeps sending at its full rate and what \
         the director's user-space process cannot take is dropped at its RX socket (`lost`, \
         counted as `rx_fill_ring_empty`: every frame is still waiting for its TX completion). \
         In AF_XDP copy mode on veth a TX completion only comes when the peer's softirq has \
         consumed the frame, and on this loaded machine that softirq often waits for \
         `ksoftirqd` on the director's core, which competes with the busy-polling director and \
         with other engineers' builds. This bounds the floor and xvs alike (latencies of \
         milliseconds even at 50 kpps) and favours the kernel paths; the ratio xvs / floor is \
         the figure this setup measures fairly.\n"
    );
    let floor_of = |sc: &str| r.table.get(&(sc.into(), "floor".into())).map(|x| x.0);
    let nft_of = |sc: &str| r.table.get(&(sc.into(), "nft".into())).map(|x| x.0);
    for sc in r.scenarios {
        let unit = if sc.name == "syn" {
            "new conns/s"
        } else {
            "pps delivered"
        };
        let _ = writeln!(o, "## {}: {}\n", sc.name, sc.what);
        let _ = writeln!(
            o,
            "| system | {unit} (median) | min - max | spread | vs floor | vs nft | sent pps | lost | p50 us | p99 us | p99.9 us |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for ((scn, sys), (m, lo, hi, _)) in r.table {
            if scn != sc.name {
                continue;
            }
            let rs: Vec<&Run> = r
                .runs
                .iter()
                .filter(|x| &x.scenario == scn && &x.system == sys)
                .collect();
            let med =
                |f: &dyn Fn(&Run) -> f64| stats(&rs.iter().map(|x| f(x)).collect::<Vec<_>>()).0;
            let sent = med(&|x| x.generator.pps);
            // Lost: what the generator sent and the sink never saw (whatever dropped it).
            #[allow(clippy::cast_precision_loss)]
            let lost = med(&|x| {
                let expect: f64 = (x.generator.sent + x.generator.open_sent) as f64;
                (1.0 - (x.sink.rx + x.sink.xsk_dropped) as f64 / expect.max(1.0)).max(0.0) * 100.0
            });
            #[allow(clippy::cast_precision_loss)]
            let lat = |f: &dyn Fn(&Run) -> u64| med(&|x| f(x) as f64) / 1e3;
            let has_lat = rs.iter().any(|x| x.sink.stamped > 0);
            let (p50, p99, p999) = if has_lat {
                (
                    format!("{:.1}", lat(&|x| x.sink.lat_p50_ns)),
                    format!("{:.1}", lat(&|x| x.sink.lat_p99_ns)),
                    format!("{:.1}", lat(&|x| x.sink.lat_p999_ns)),
                )
            } else {
                ("-".into(), "-".into(), "-".into())
            };
            let _ = writeln!(
                o,
                "| {sys} | {} | {} - {} | {:.0}% | {} | {} | {} | {lost:.1}% | {p50} | {p99} | {p999} |",
                kfmt(*m),
                kfmt(*lo),
                kfmt(*hi),
                if *m > 0.0 { (hi - lo) / m * 100.0 } else { 0.0 },
                ratio(*m, floor_of(sc.name)),
                ratio(*m, nft_of(sc.name)),
                kfmt(sent),
            );
        }
        let _ = writeln!(o);
        if let Some(p) = r
            .plots
            .iter()
            .find(|p| p.contains(&format!("throughput-{}", sc.name)))
        {
            let _ = writeln!(o, "![{}]({p})\n", sc.name);
        }
    }
    if let Some(p) = r.plots.iter().find(|p| p.contains("latency")) {
        let _ = writeln!(o, "### Latency CDF (lat scenario)\n\n![latency]({p})\n");
    }
    let mem: Vec<&Run> = r
        .runs
        .iter()
        .filter(|x| x.scenario == "syn" && x.rss.is_some())
        .collect();
    if !mem.is_empty() {
        let _ = writeln!(
            o,
            "### Memory of xvsd after the SYN scenario
"
        );
        let _ = writeln!(
            o,
            "Resident memory of xvsd once configured and after the SYN flood; each SYN the sink \
             received is one conn xvs created (none expire within a run). The growth per conn \
             is an estimate (RSS grows by pages; the conn table may preallocate).\n"
        );
        let _ = writeln!(
            o,
            "FULLNAT runs with one LIP: its 64512 source ports cap the conns a SYN flood can \
             create (further SYNs are dropped and show as lost above).\n"
        );
        let _ = writeln!(
            o,
            "| system | rep | conns created | RSS before MiB | RSS after MiB | bytes/conn |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
        for x in mem {
            if let Some((a, b)) = x.rss {
                let conns = x.sink.rx + x.sink.xsk_dropped;
                #[allow(clippy::cast_precision_loss)]
                let per = b.saturating_sub(a) as f64 / conns.max(1) as f64;
                #[allow(clippy::cast_precision_loss)]
                let mib = |v: u64| v as f64 / (1024.0 * 1024.0);
                let _ = writeln!(
                    o,
                    "| {} | {} | {conns} | {:.1} | {:.1} | {per:.0} |",
                    x.system,
                    x.rep + 1,
                    mib(a),
                    mib(b)
                );
            }
        }
        let _ = writeln!(o);
    }
    if let Some(t) = r.conn_table {
        table_md(&mut o, t, r);
    }
    // Targets (issue 6), reported, not asserted.
    let _ = writeln!(o, "## Targets (reported, not asserted)\n");
    if let Some(t) = r.conn_table {
        let at: Vec<String> = t
            .levels
            .iter()
            .filter(|l| l.target >= 1_000_000 && l.conns == l.target)
            .map(|l| {
                format!(
                    "{:.0} B at {} conns",
                    l.rss_per_conn(t.rss_idle),
                    conns_fmt(l.target)
                )
            })
            .collect();
        if !at.is_empty() {
            let worst = t
                .levels
                .iter()
                .filter(|l| l.target >= 1_000_000 && l.conns == l.target)
                .map(|l| l.rss_per_conn(t.rss_idle))
                .fold(0.0, f64::max);
            let verdict = if worst <= 128.0 {
                "met".to_string()
            } else {
                format!("missed by {:.0} B", worst - 128.0)
            };
            let _ = writeln!(
                o,
                "- Memory per conn, xvsd's RSS growth over its conns: {} (target <= 128 B: {verdict}; \
                 the table's own figure: {} B).",
                at.join(", "),
                t.table_bytes_per_conn
            );
        }
    }
    let get = |sc: &str, sys: &str| r.table.get(&(sc.into(), sys.into())).map(|x| x.0);
    if let (Some(x), Some(f), Some(n)) = (
        get("udp", "xvs-nat-1"),
        get("udp", "floor"),
        get("udp", "nft"),
    ) {
        let _ = writeln!(
            o,
            "- xvs NAT (1 worker) vs the AF_XDP floor, UDP: {:.2}x (target >= 0.9x); vs nftables: {:.2}x (target >= 1.5x).",
            x / f,
            x / n
        );
    }
    if let (Some(a), Some(b)) = (get("udp", "xvs-nat-1"), get("udp", "xvs-nat-2")) {
        let _ = writeln!(
            o,
            "- xvs NAT 2 workers / 1 worker on veth: {:.2}x (2 cores in total, shared with the generator, the sink and the veth softirqs: not a scaling measurement; see the MemIo scaling below).",
            b / a
        );
    }
    if let Some(one) = r.scaling.first() {
        let ns = 1e9 / one.pps.max(1.0);
        let _ = writeln!(
            o,
            "- Established-conn packet through the whole MemIo pipeline, 1 thread: {ns:.0} ns \
             (target <= 50 ns: {:.1}x over; measured under the load above).",
            ns / 50.0
        );
    }
    if let (Some(a), Some(b)) = (r.scaling.first(), r.scaling.get(1)) {
        let _ = writeln!(
            o,
            "- MemIo pipeline, 2 threads / 1 thread on one shared conn table: {:.2}x (target >= 1.8x).",
            b.pps / a.pps.max(1.0)
        );
    }
    if !r.cost.is_empty() {
        let _ = writeln!(o, "\n## Deterministic per-packet cost (callgrind)\n");
        let _ = writeln!(
            o,
            "Instructions per packet of the whole MemIo pipeline (NAT, 4 dests, wlc), from \
             `valgrind --tool=callgrind target/release/examples/pipeline_cost PATH N` with N \
             and 2N packets: (total(2N) - total(N)) / N. Independent of machine load.\n"
        );
        let _ = writeln!(o, "| path | instructions/packet | target |");
        let _ = writeln!(o, "|---|---:|---|");
        for (p, c) in r.cost {
            let target = if p == "new" {
                "<= 200 ns/packet"
            } else {
                "<= 50 ns/packet"
            };
            let _ = writeln!(
                o,
                "| {p} | {c:.0} | {target} (time: see the criterion `pipeline` bench) |"
            );
        }
    }
    if !r.scaling.is_empty() {
        let _ = writeln!(
            o,
            "\n## Scaling: MemIo pipeline, threads sharing one conn table\n"
        );
        let _ = writeln!(
            o,
            "Each thread runs a `Worker<MemIo>` over its own 100k established NAT conns in the one \
             shared `ConnTable` (bursts of 32 data packets, pseudo-random conns). CPU only, no NIC.\n"
        );
        let _ = writeln!(
            o,
            "| threads | conns | Mpps | ns/packet/thread | vs 1 thread |"
        );
        let _ = writeln!(o, "|---:|---:|---:|---:|---:|");
        let one = r.scaling.first().map_or(0.0, |x| x.pps);
        for x in r.scaling {
            #[allow(clippy::cast_precision_loss)]
            let ns = 1e9 / (x.pps / x.threads as f64).max(1.0);
            let _ = writeln!(
                o,
                "| {} | {} | {:.2} | {:.0} | {} |",
                x.threads,
                x.conns,
                x.pps / 1e6,
                ns,
                ratio(x.pps, Some(one))
            );
        }
        let _ = writeln!(
            o,
            "\nTarget: 2 threads >= 1.8x 1 thread. With 2 cores shared by other builds the second \
             thread competes for CPU; the load average above says how much."
        );
    }
    if !r.failures.is_empty() {
        let _ = writeln!(o, "\n## Failed runs\n");
        for f in r.failures {
            let _ = writeln!(o, "- {}", f.replace('\n', " "));
        }
    }
    let _ = writeln!(o, "\n## Not measured here\n");
    let _ = writeln!(
        o,
        "- xvs with 2 workers on more than the 2 shared cores of this machine.\n- Raw per-run \
         data: `results.json` next to this file."
    );
    o
}

/// `1000000` as `1M`, `10000` as `10k`.
fn conns_fmt(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n.is_multiple_of(1_000) => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Bytes as MiB.
// Byte counts are below 2^53.
#[allow(clippy::cast_precision_loss)]
fn mib(v: u64) -> f64 {
    v as f64 / (1024.0 * 1024.0)
}

/// The table phase's section of RESULTS.md.
fn table_md(o: &mut String, t: &TablePhase, r: &Report<'_>) {
    let _ = writeln!(o, "## Conns in the table: memory and pps\n");
    let _ = writeln!(
        o,
        "One xvsd (NAT, 1 worker, default `--conn-tab-bits` 12, `--max-conns` above the \
         largest level) in one topology; its conn table is filled level by level with {} \
         (`--table-kind {}`), from distinct (client address, source port) pairs \
         ({TABLE_CLIENTS} clients; first pass at {} pps). Each level's fill covers its whole \
         range again, which re-creates conns whose packet was lost on the way and refreshes \
         the older conns' timers; up to {TABLE_PASSES} passes, each slower by a third after \
         one that left more than 1/{TABLE_SLOWDOWN_AT} of the level missing. Before its memory \
         is read, each level is checked against xvsd's own count: the sum of ActiveConn and \
         InActConn over the dests of `xvsadm -Ln`. Memory is VmRSS from /proc/PID/status; per \
         conn it is (RSS at the level - RSS configured with no conns) / conns, which includes \
         everything the daemon grew for them (slabs, indexes, the allocator's slack). Then the \
         traffic, flat out, {} x {} s, goes over exactly the conns in the table, one after the \
         other, so from 1M conns on nearly every packet looks up a conn that no cache holds.\n",
        t.kind.what(),
        match t.kind {
            TableKind::Udp => "udp",
            TableKind::Syn => "syn",
        },
        t.fill_rate,
        r.reps,
        r.secs
    );
    let _ = writeln!(
        o,
        "xvsd configured, no conns: RSS {:.1} MiB. The conn table's own figure for an IPv4 NAT \
         conn (slab slot plus one index entry at hashbrown's 7/8 load): {} B.\n",
        mib(t.rss_idle),
        t.table_bytes_per_conn
    );
    let _ = writeln!(
        o,
        "| conns in table | fill passes (pps) | fill s | RSS MiB | bytes/conn (RSS) | pps (median) | min - max | vs {} | conns after |",
        t.levels
            .first()
            .map_or_else(String::new, |l| conns_fmt(l.target))
    );
    let _ = writeln!(o, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let base = t
        .levels
        .first()
        .map(|l| stats(&l.pps).0)
        .filter(|&b| b > 0.0);
    for l in &t.levels {
        let (m, lo, hi) = stats(&l.pps);
        let conns = if l.conns == l.target {
            l.conns.to_string()
        } else {
            format!("{} of {}", l.conns, l.target)
        };
        let rates: Vec<String> = l.pass_rates.iter().map(|&r| kfmt(r as f64)).collect();
        let (pps, range, vs) = if l.pps.is_empty() {
            ("-".into(), "-".into(), "-".into())
        } else {
            (
                kfmt(m),
                format!("{} - {}", kfmt(lo), kfmt(hi)),
                ratio(m, base),
            )
        };
        let _ = writeln!(
            o,
            "| {conns} | {} ({}) | {:.0} | {:.1} | {:.0} | {pps} | {range} | {vs} | {} |",
            rates.len(),
            rates.join(", "),
            l.fill_secs,
            mib(l.rss),
            l.rss_per_conn(t.rss_idle),
            l.conns_after
        );
    }
    let _ = writeln!(
        o,
        "\nBelow about 100k conns the growth is smaller than what the first packets make \
         resident anyway (UMEM frames, allocator arenas), so bytes/conn there says little; the \
         figures at 1M and 10M are the ones to read. Throughput is flat out on 2 cores shared \
         with the generator, the sink and other work: compare levels only within one run.\n"
    );
    if let Some(why) = &t.stopped {
        let _ = writeln!(o, "Stopped early: {why}.\n");
    }
    if let Some(p) = r.plots.iter().find(|p| p.contains("pps-conns")) {
        let _ = writeln!(o, "![pps against conns in the table]({p})\n");
    }
}

fn reproduce(cli: &Cli) -> String {
    let mut s = String::from(
        "cargo build --release -p xvs-bench -p xvs-control --bins\n\
         cargo build --release -p xvs-dataplane --example pipeline_cost --features testutil,afxdp\n\
         sudo target/release/xvs-bench",
    );
    if cli.quick {
        s.push_str(" --quick");
    }
    s.push_str(" --out bench");
    s
}

mod plot {
    //! PNG plots with plotters (bitmap backend, text through ab_glyph and a system TTF).
    use std::path::Path;

    use anyhow::{Result, anyhow};
    use plotters::prelude::*;

    use super::{Cell, Run, Scenario, Table, TableKind, TablePhase, stats};

    const FONTS: [&str; 2] = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
    ];

    fn font() -> Result<()> {
        for f in FONTS {
            if let Ok(b) = std::fs::read(f) {
                let b: &'static [u8] = Box::leak(b.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, b)
                    .map_err(|_| anyhow!("bad font {f}"))?;
                return Ok(());
            }
        }
        Err(anyhow!("no TTF font found for the plots ({FONTS:?})"))
    }

    /// Draw every plot into `out`; returns their file names.
    pub(super) fn all(
        out: &Path,
        t: &Table,
        runs: &[Run],
        scenarios: &[Scenario],
        table: Option<&TablePhase>,
    ) -> Result<Vec<String>> {
        font()?;
        let mut files = Vec::new();
        for sc in scenarios {
            let rows: Vec<(&String, &Cell)> = t
                .iter()
                .filter(|((s, _), _)| s == sc.name)
                .map(|((_, sys), v)| (sys, v))
                .collect();
            if rows.is_empty() {
                continue;
            }
            let name = format!("throughput-{}.png", sc.name);
            bars(&out.join(&name), sc, &rows)?;
            files.push(name);
        }
        let lat: Vec<&Run> = runs.iter().filter(|r| r.scenario == "lat").collect();
        if !lat.is_empty() {
            let name = "latency-cdf.png".to_string();
            cdf(&out.join(&name), &lat)?;
            files.push(name);
        }
        if let Some(t) = table
            && t.levels.iter().any(|l| !l.pps.is_empty())
        {
            let name = "pps-conns.png".to_string();
            pps_conns(&out.join(&name), t)?;
            files.push(name);
        }
        Ok(files)
    }

    /// Established-flow kpps (median, min-max whiskers) against conns in the table, log x.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    fn pps_conns(path: &Path, t: &TablePhase) -> Result<()> {
        let pts: Vec<(f64, (f64, f64, f64))> = t
            .levels
            .iter()
            .filter(|l| !l.pps.is_empty())
            .map(|l| (l.conns as f64, stats(&l.pps)))
            .map(|(n, (m, lo, hi))| (n, (m / 1e3, lo / 1e3, hi / 1e3)))
            .collect();
        let xmax = pts.iter().map(|p| p.0).fold(10.0, f64::max) * 2.0;
        let xmin = pts.iter().map(|p| p.0).fold(xmax, f64::min) / 2.0;
        let ymax = pts.iter().map(|p| p.1.2).fold(0.0, f64::max) * 1.15;
        let root = BitMapBackend::new(path, (900, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut ch = ChartBuilder::on(&root)
            .caption(
                format!(
                    "xvs NAT, 1 worker: {} over every conn in the table, flat out",
                    match t.kind {
                        TableKind::Udp => "UDP 64 B",
                        TableKind::Syn => "TCP ACK+PSH 76 B",
                    }
                ),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((xmin.max(1.0)..xmax).log_scale(), 0f64..ymax.max(1.0))
            .map_err(err)?;
        ch.configure_mesh()
            .x_desc("conns in the table (log scale)")
            .y_desc("kpps delivered")
            .x_label_formatter(&|x| super::conns_fmt(x.round() as u64))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        ch.draw_series(LineSeries::new(
            pts.iter().map(|p| (p.0, p.1.0)),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?;
        ch.draw_series(
            pts.iter()
                .map(|p| Circle::new((p.0, p.1.0), 4, BLUE.filled())),
        )
        .map_err(err)?;
        ch.draw_series(
            pts.iter()
                .map(|p| PathElement::new(vec![(p.0, p.1.1), (p.0, p.1.2)], RED.stroke_width(2))),
        )
        .map_err(err)?;
        root.present().map_err(err)?;
        Ok(())
    }

    fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
        anyhow!("plot: {e:?}")
    }

    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    fn bars(path: &Path, sc: &Scenario, rows: &[(&String, &Cell)]) -> Result<()> {
        let root = BitMapBackend::new(path, (900, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let top = rows.iter().map(|r| r.1.2).fold(0.0, f64::max) * 1.15 / 1e3;
        let n = rows.len();
        let unit = if sc.name == "syn" {
            "k new conns/s"
        } else {
            "kpps"
        };
        let mut ch = ChartBuilder::on(&root)
            .caption(format!("{}: {}", sc.name, sc.what), ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n as f64, 0f64..top.max(1.0))
            .map_err(err)?;
        let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        ch.configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor();
                if (x - i - 0.5).abs() < 0.01 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc(unit)
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        ch.draw_series(rows.iter().enumerate().map(|(i, r)| {
            let x = i as f64;
            let color = if r.0.starts_with("xvs") {
                BLUE.mix(0.7)
            } else {
                BLACK.mix(0.35)
            };
            Rectangle::new([(x + 0.15, 0.0), (x + 0.85, r.1.0 / 1e3)], color.filled())
        }))
        .map_err(err)?;
        // min-max whiskers
        ch.draw_series(rows.iter().enumerate().map(|(i, r)| {
            let x = i as f64 + 0.5;
            PathElement::new(
                vec![(x, r.1.1 / 1e3), (x, r.1.2 / 1e3)],
                RED.stroke_width(2),
            )
        }))
        .map_err(err)?;
        root.present().map_err(err)?;
        Ok(())
    }

    #[allow(clippy::cast_precision_loss)]
    fn cdf(path: &Path, runs: &[&Run]) -> Result<()> {
        let root = BitMapBackend::new(path, (900, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        // One curve per system: its first repetition.
        let mut seen: Vec<&str> = Vec::new();
        let mut curves = Vec::new();
        for r in runs {
            if seen.contains(&r.system.as_str()) || r.sink.lat_cdf.is_empty() {
                continue;
            }
            seen.push(&r.system);
            curves.push((r.system.clone(), r.sink.lat_cdf.clone()));
        }
        let xmax = curves
            .iter()
            .flat_map(|c| c.1.iter().filter(|p| p.1 <= 0.999).map(|p| p.0))
            .max()
            .unwrap_or(1000) as f64
            / 1e3
            * 1.2;
        let mut ch = ChartBuilder::on(&root)
            .caption(
                "latency CDF, UDP 64 B at 50 kpps (generator stamp to sink)",
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((1f64..xmax.max(10.0)).log_scale(), 0f64..1.0)
            .map_err(err)?;
        ch.configure_mesh()
            .x_desc("microseconds (log scale)")
            .y_desc("fraction")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        for (i, (name, pts)) in curves.iter().enumerate() {
            let c = Palette99::pick(i).stroke_width(2);
            ch.draw_series(LineSeries::new(
                pts.iter().map(|p| ((p.0 as f64 / 1e3).max(1.0), p.1)),
                c,
            ))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], Palette99::pick(i)));
        }
        ch.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
        Ok(())
    }
}
