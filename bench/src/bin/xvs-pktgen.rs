//! xvs-pktgen: an AF_XDP packet generator, sink and bare forwarder on xvs's own AF_XDP backend.
//!
//! - `gen`: sends UDP flows (N flows, one size or IMIX), TCP SYNs from M clients (each SYN a new
//!   connection: client address x source port never repeats within M x 64000 SYNs), or
//!   established TCP (opens N connections with SYNs first, then sends ACK/PSH data on them;
//!   `--no-open` when an earlier syn run opened them); flat out or at `--rate` pps, for
//!   `--secs` or `--count` frames. Every UDP and TCP data frame carries a stamp (flow, sequence,
//!   send time) at the start of its payload.
//! - `sink`: counts what arrives (per flow, per destination address), measures latency from the
//!   stamps (p50/p99/p99.9 and the CDF) and answers SYNs with SYN-ACKs (`--reply-syn`), so
//!   stateful middle boxes see complete handshakes.
//! - `fwd`: the I/O floor: moves frames between two interfaces (all their queues) rewriting
//!   only the Ethernet addresses, on one busy-polling thread.
//!
//! Reports go to stdout as text and, with `--json FILE`, as JSON (see `xvs_bench::report`).
//! Needs root. Time stamps use the realtime clock, which every namespace shares, so generator
//! and sink may run in different namespaces of one machine (not on two machines).
//!
//! Never: allocate or print per packet; run without `--secs` bounding it (the harness relies on
//! every mode exiting by itself, detaching its XDP program).

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use xvs_bench::hist::Hist;
use xvs_bench::pkt::{self, CLIENT_ISN, Hdr, L4, SERVER_ISN, Stamp, flags};
use xvs_bench::report::{GenReport, SinkReport};
use xvs_dataplane::io::afxdp::{AfXdp, AfXdpOpts, PortConf, XdpMode};
use xvs_dataplane::io::{BATCH, Desc, PacketIo};

#[derive(Parser, Debug)]
#[command(
    name = "xvs-pktgen",
    version,
    about = "AF_XDP generator, sink and floor forwarder"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// UDP datagrams over N flows.
    Udp,
    /// TCP SYNs, each from a new (client, port): new connections per second.
    Syn,
    /// Established TCP: N connections opened first, then ACK/PSH data on them.
    Tcp,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Send traffic.
    Gen(GenArgs),
    /// Count, time and answer traffic.
    Sink(SinkArgs),
    /// The bare AF_XDP forwarder (the I/O floor).
    Fwd(FwdArgs),
}

#[derive(clap::Args, Debug)]
struct Common {
    /// Queues of each interface to bind (0..Q).
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// SKB (generic) XDP mode instead of native.
    #[arg(long)]
    skb: bool,
    /// Run for this many seconds at most.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Create this file once the sockets are bound (for scripts to wait on).
    #[arg(long)]
    ready: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct GenArgs {
    /// Interface to send on.
    #[arg(long)]
    iface: String,
    /// Destination MAC (the next hop: the director).
    #[arg(long)]
    dst_mac: String,
    /// Destination address (repeatable: flows are spread over them round robin).
    #[arg(long = "dst", default_value = "198.18.1.100")]
    dsts: Vec<Ipv4Addr>,
    /// Destination port.
    #[arg(long, default_value_t = 80)]
    dport: u16,
    /// First client address; clients are consecutive addresses from here.
    #[arg(long, default_value = "198.18.64.1")]
    client: Ipv4Addr,
    /// Traffic kind.
    #[arg(long, value_enum, default_value_t = Kind::Udp)]
    kind: Kind,
    /// Flows (udp), connections (tcp).
    #[arg(long, default_value_t = 4096)]
    flows: u32,
    /// Distinct client addresses.
    #[arg(long, default_value_t = 16)]
    clients: u32,
    /// Frame size in bytes without FCS (raised to the smallest frame that holds a stamp).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Cycle the simple IMIX (7 x 64, 4 x 590, 1 x 1514) instead of one size.
    #[arg(long)]
    imix: bool,
    /// Packets per second (0: flat out).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Rate of the SYNs that open the tcp kind's connections.
    #[arg(long, default_value_t = 50_000)]
    open_rate: u64,
    /// tcp kind: do not open the connections (an earlier `syn` run over the same `--clients`
    /// opened them: its SYN k and this run's flow k share one address and port).
    #[arg(long)]
    no_open: bool,
    /// Stop after this many frames of the measured phase (0: only `--secs` bounds it). With
    /// the syn kind, N SYNs from N distinct (client, port) pairs: N new connections.
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Leave out the flows (udp, tcp) or SYNs (syn) whose bit is set in any of these bitmaps
    /// (as the sink's `--seen` writes them); the others among `0..--flows` (syn: `0..--count`)
    /// go once each, in order.
    #[arg(long)]
    skip: Vec<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args, Debug)]
struct SinkArgs {
    /// Interface to receive on.
    #[arg(long)]
    iface: String,
    /// Answer SYNs with SYN-ACKs.
    #[arg(long)]
    reply_syn: bool,
    /// Exit after this many seconds without a frame, once frames have arrived.
    #[arg(long, default_value_t = 1.0)]
    idle_exit: f64,
    /// Spin instead of sleeping while the rings are empty.
    #[arg(long)]
    busy: bool,
    /// RX ring entries (the UMEM gets twice as many frames): a deep ring rides out the
    /// scheduling gaps of a sink that shares its core with the generator.
    #[arg(long, default_value_t = 16384)]
    ring: u32,
    /// Flow ids counted individually (higher ones only in the totals).
    #[arg(long, default_value_t = 1 << 20)]
    max_flows: u32,
    /// Write the flow ids seen (below `--max-flows`) as a bitmap to this file: bit i of byte
    /// i / 8, least significant first.
    #[arg(long)]
    seen: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args, Debug)]
struct FwdArgs {
    /// Interface A (traffic from here goes to B).
    #[arg(long)]
    a: String,
    /// Interface B.
    #[arg(long)]
    b: String,
    /// Destination MAC of frames sent out of B.
    #[arg(long)]
    dst_mac_b: String,
    /// Destination MAC of frames sent out of A (B -> A is dropped without it).
    #[arg(long)]
    dst_mac_a: Option<String>,
    #[command(flatten)]
    common: Common,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Gen(a) => generate(&a),
        Cmd::Sink(a) => sink(&a),
        Cmd::Fwd(a) => forward(&a),
    }
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut it = s.split(':');
    for b in &mut m {
        let h = it.next().with_context(|| format!("bad MAC {s}"))?;
        *b = u8::from_str_radix(h, 16).with_context(|| format!("bad MAC {s}"))?;
    }
    if it.next().is_some() {
        bail!("bad MAC {s}");
    }
    Ok(m)
}

fn open(ifaces: &[&str], c: &Common, ring: u32) -> Result<AfXdp> {
    let mut ports = Vec::new();
    for i in ifaces {
        for q in 0..c.queues.max(1) {
            ports.push(PortConf {
                ifname: (*i).to_string(),
                queue: q,
            });
        }
    }
    let opts = AfXdpOpts {
        xdp_mode: if c.skb { XdpMode::Skb } else { XdpMode::Native },
        frames: ring * 2,
        ring_size: ring,
        ..AfXdpOpts::default()
    };
    let io = AfXdp::open(&ports, &opts).with_context(|| format!("AF_XDP on {ifaces:?}"))?;
    if let Some(r) = &c.ready {
        std::fs::write(r, b"ready\n").with_context(|| format!("writing {}", r.display()))?;
    }
    Ok(io)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn write_json<T: serde::Serialize>(path: Option<&PathBuf>, v: &T) -> Result<()> {
    if let Some(p) = path {
        let s = serde_json::to_string_pretty(v)?;
        std::fs::write(p, s).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// Paces bursts to `rate` packets per second (0: no limit).
struct Pacer {
    rate: u64,
    start: Instant,
    sent: u64,
}

impl Pacer {
    fn new(rate: u64) -> Self {
        Self {
            rate,
            start: Instant::now(),
            sent: 0,
        }
    }

    /// How many packets may go now (at most `BATCH`).
    // The allowance is bounded by BATCH before the cast.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    fn allow(&self) -> usize {
        if self.rate == 0 {
            return BATCH;
        }
        let due = (self.start.elapsed().as_secs_f64() * self.rate as f64) as u64;
        due.saturating_sub(self.sent).min(BATCH as u64) as usize
    }
}

/// The (client address, source port) of connection or flow `i` over `clients` clients.
// Ports cycle below 65536 by construction.
#[allow(clippy::cast_possible_truncation)]
fn client_of(base: Ipv4Addr, clients: u32, i: u64) -> (Ipv4Addr, u16) {
    let m = u64::from(clients.max(1));
    let c = (i % m) as u32;
    let port = 1024 + ((i / m) % 64_000) as u16;
    (Ipv4Addr::from(u32::from(base).wrapping_add(c)), port)
}

/// One generation phase: send frames built by `fill(k, buf) -> len` (k counts frames of this
/// phase) round robin over the sockets until `secs` or `limit` frames; returns (sent, bytes,
/// seconds).
fn pump(
    io: &mut AfXdp,
    rate: u64,
    secs: f64,
    limit: u64,
    mut fill: impl FnMut(u64, &mut [u8], u64) -> usize,
) -> (u64, u64, f64) {
    let ports = io.ports();
    let mut pacer = Pacer::new(rate);
    let mut descs = [Desc::default(); BATCH];
    let mut rx = [Desc::default(); BATCH];
    let mut bytes = 0u64;
    let mut turn = 0usize;
    let deadline = Duration::from_secs_f64(secs);
    loop {
        if pacer.sent >= limit || pacer.start.elapsed() >= deadline {
            break;
        }
        // Replies (SYN-ACKs) come back here: give their frames back.
        let n = io.rx_burst(&mut rx);
        io.recycle(&rx[..n]);
        let port = u16::try_from(turn % ports).unwrap_or(0);
        turn = turn.wrapping_add(1);
        let want = pacer
            .allow()
            .min(usize::try_from(limit - pacer.sent).unwrap_or(BATCH));
        if want == 0 {
            io.service();
            // Rate limited and nothing due: leave the core to the sink and softirqs.
            std::thread::sleep(Duration::from_micros(20));
            continue;
        }
        let ts = now_ns();
        let mut n = 0;
        while n < want {
            let Some(mut d) = io.alloc(port) else { break };
            let mut f = io.frame(&mut d);
            let k = pacer.sent + n as u64;
            // Size first (the frame must be long enough), then fill.
            let _ = f.set_len(2048);
            let len = fill(k, f.data_mut(), ts);
            if len == 0 || f.set_len(len).is_err() {
                io.recycle(&[d]);
                break;
            }
            bytes += len as u64;
            descs[n] = d;
            n += 1;
        }
        let sent = io.tx_burst(&descs[..n]);
        io.recycle(&descs[sent..n]);
        io.service();
        pacer.sent += sent as u64;
    }
    // Let the last frames leave.
    for _ in 0..100 {
        io.service();
    }
    (pacer.sent, bytes, pacer.start.elapsed().as_secs_f64())
}

// Rates and averages are f64 reports of u64 counters below 2^53.
#[allow(clippy::cast_precision_loss)]
fn generate(a: &GenArgs) -> Result<()> {
    let dst_mac = parse_mac(&a.dst_mac)?;
    if a.dsts.is_empty() {
        bail!("--dst: at least one destination");
    }
    let mut io = open(&[&a.iface], &a.common, 2048)?;
    let src_mac = io.mac(0);
    let flows = u64::from(a.flows.max(1));
    let sizes: Vec<usize> = if a.imix {
        pkt::IMIX.to_vec()
    } else {
        vec![a.size]
    };
    let hdr = |i: u64, sport_for: u64| {
        let (src, sport) = client_of(a.client, a.clients, sport_for);
        let d = usize::try_from(i % a.dsts.len() as u64).unwrap_or(0);
        Hdr {
            src_mac,
            dst_mac,
            src,
            dst: a.dsts[d],
            sport,
            dport: a.dport,
        }
    };
    let mut open_sent = 0;
    let limit = if a.count == 0 { u64::MAX } else { a.count };
    if a.kind == Kind::Syn && a.count > u64::from(a.clients.max(1)) * 64_000 {
        bail!(
            "--count {}: {} clients give only {} distinct (address, port) pairs",
            a.count,
            a.clients,
            u64::from(a.clients.max(1)) * 64_000
        );
    }
    // The flows (or SYNs) still to send when bitmaps of those already seen are given.
    let todo: Option<Vec<u32>> = if a.skip.is_empty() {
        None
    } else {
        let span = if a.kind == Kind::Syn {
            if a.count == 0 {
                bail!("--skip with the syn kind needs --count");
            }
            a.count
        } else {
            flows
        };
        Some(unseen(&a.skip, span)?)
    };
    let (limit, flows) = match &todo {
        Some(t) => (limit.min(t.len() as u64), (t.len() as u64).max(1)),
        None => (limit, flows),
    };
    // Flow or SYN number `i` of this run, through `todo` when given.
    let pick = |i: u64| -> u64 {
        match &todo {
            Some(t) => t
                .get(usize::try_from(i).unwrap_or(usize::MAX))
                .map_or(i, |&f| u64::from(f)),
            None => i,
        }
    };
    let (sent, bytes, secs) = match a.kind {
        Kind::Udp | Kind::Tcp => {
            let l4 = if a.kind == Kind::Udp {
                L4::Udp
            } else {
                L4::Tcp(flags::ACK | flags::PSH)
            };
            if a.kind == Kind::Tcp && !a.no_open {
                let syn = L4::Tcp(flags::SYN);
                let (s, _, _) = pump(&mut io, a.open_rate, 60.0, flows, |k, buf, _| {
                    let k = pick(k);
                    let h = hdr(k, k);
                    let len = pkt::min_frame(syn, false);
                    if pkt::write_frame(buf, len, &h, syn, CLIENT_ISN, 0, None) {
                        len
                    } else {
                        0
                    }
                });
                open_sent = s;
                // Let the handshakes finish (SYN-ACKs back through the director).
                std::thread::sleep(Duration::from_millis(500));
            }
            let min = pkt::min_frame(l4, true);
            pump(&mut io, a.rate, a.common.secs, limit, |k, buf, ts| {
                let flow = pick(k % flows);
                let h = hdr(flow, flow);
                let len = sizes[usize::try_from(k % sizes.len() as u64).unwrap_or(0)].max(min);
                let st = Stamp {
                    flow: u32::try_from(flow).unwrap_or(u32::MAX),
                    seq: k,
                    ts_ns: ts,
                };
                let ok =
                    pkt::write_frame(buf, len, &h, l4, CLIENT_ISN + 1, SERVER_ISN + 1, Some(&st));
                if ok { len } else { 0 }
            })
        }
        Kind::Syn => {
            let syn = L4::Tcp(flags::SYN);
            let len = pkt::min_frame(syn, false);
            pump(&mut io, a.rate, a.common.secs, limit, |k, buf, _| {
                let k = pick(k);
                let h = hdr(k, k);
                if pkt::write_frame(buf, len, &h, syn, CLIENT_ISN, 0, None) {
                    len
                } else {
                    0
                }
            })
        }
    };
    let r = GenReport {
        kind: format!("{:?}", a.kind).to_lowercase(),
        flows: if a.kind == Kind::Syn {
            a.clients
        } else {
            a.flows
        },
        rate: a.rate,
        open_sent,
        sent,
        secs,
        pps: sent as f64 / secs.max(1e-9),
        avg_frame: bytes as f64 / (sent.max(1)) as f64,
    };
    println!(
        "gen {}: sent {} in {:.2} s = {:.0} pps (avg frame {:.0} B, {} opening SYNs)",
        r.kind, r.sent, r.secs, r.pps, r.avg_frame, r.open_sent
    );
    write_json(a.common.json.as_ref(), &r)
}

/// The numbers in `0..span` whose bit is clear in every bitmap of `files`.
fn unseen(files: &[PathBuf], span: u64) -> Result<Vec<u32>> {
    let len = usize::try_from(span.div_ceil(8))?;
    let mut seen = vec![0u8; len];
    for f in files {
        let b = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        for (s, x) in seen.iter_mut().zip(b) {
            *s |= x;
        }
    }
    let span = u32::try_from(span).context("--skip: more than 2^32 flows")?;
    Ok((0..span)
        .filter(|&i| seen[(i / 8) as usize] & (1 << (i % 8)) == 0)
        .collect())
}

// Rates are f64 reports of u64 counters below 2^53.
#[allow(clippy::cast_precision_loss)]
fn sink(a: &SinkArgs) -> Result<()> {
    let mut io = open(&[&a.iface], &a.common, a.ring)?;
    let mut hist = Hist::new();
    let mut per_flow = vec![0u32; usize::try_from(a.max_flows).unwrap_or(1 << 20)];
    let mut per_dst: Vec<(Ipv4Addr, u64)> = Vec::with_capacity(16);
    let mut other_dst = 0u64;
    let (mut unparsed, mut first_unparsed) = (0u64, String::new());
    let (mut rx_n, mut syns, mut synacks, mut stamped) = (0u64, 0u64, 0u64, 0u64);
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let start = Instant::now();
    let (limit, idle) = (
        Duration::from_secs_f64(a.common.secs),
        Duration::from_secs_f64(a.idle_exit),
    );
    let mut descs = [Desc::default(); BATCH];
    let mut replies = [Desc::default(); BATCH];
    loop {
        let n = io.rx_burst(&mut descs);
        let mut nr = 0;
        if n > 0 {
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
            let ts = now_ns();
            for d in &mut descs[..n] {
                let mut f = io.frame(d);
                let Some(s) = pkt::parse(f.data()) else {
                    unparsed += 1;
                    if first_unparsed.is_empty() {
                        first_unparsed = f
                            .data()
                            .iter()
                            .take(80)
                            .map(|b| format!("{b:02x}"))
                            .collect();
                    }
                    continue;
                };
                rx_n += 1;
                if let Some((_, c)) = per_dst.iter_mut().find(|(ip, _)| *ip == s.dst) {
                    *c += 1;
                } else if per_dst.len() < 16 {
                    per_dst.push((s.dst, 1));
                } else {
                    other_dst += 1;
                }
                if s.tcp_flags & (flags::SYN | flags::ACK) == flags::SYN {
                    syns += 1;
                    if a.reply_syn
                        && let Some(len) = pkt::syn_to_synack(f.data_mut())
                        && f.set_len(len).is_ok()
                    {
                        replies[nr] = *d;
                        nr += 1;
                        // Marked as taken: not recycled below.
                        d.len = 0;
                    }
                }
                if let Some(st) = s.stamp {
                    stamped += 1;
                    hist.record(ts.saturating_sub(st.ts_ns));
                    if let Some(c) =
                        per_flow.get_mut(usize::try_from(st.flow).unwrap_or(usize::MAX))
                    {
                        *c = c.saturating_add(1);
                    }
                }
            }
        }
        // Frames turned into replies go out; the rest go back.
        let mut keep = 0;
        for i in 0..n {
            if descs[i].len != 0 {
                descs[keep] = descs[i];
                keep += 1;
            }
        }
        io.recycle(&descs[..keep]);
        if nr > 0 {
            let sent = io.tx_burst(&replies[..nr]);
            io.recycle(&replies[sent..nr]);
            synacks += sent as u64;
        }
        io.service();
        if n < BATCH / 2 {
            let now = Instant::now();
            if now.duration_since(start) >= limit
                || (first.is_some() && now.duration_since(last) >= idle)
            {
                break;
            }
            if !a.busy {
                // Sharing a core with the generator: let the ring fill (2048 frames).
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
    let active = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    // Frames that reached the sink's sockets but found the ring full (or no free frame): the
    // system under test delivered them; this sink could not keep up.
    let mut xsk_dropped = 0;
    for p in 0..io.ports() {
        let st = io.xsk_stats(u16::try_from(p).unwrap_or(0))?;
        xsk_dropped += st.rx_dropped + st.rx_ring_full;
    }
    if let Some(p) = &a.seen {
        let mut bits = vec![0u8; per_flow.len().div_ceil(8)];
        for (i, _) in per_flow.iter().enumerate().filter(|(_, c)| **c > 0) {
            bits[i / 8] |= 1 << (i % 8);
        }
        std::fs::write(p, bits).with_context(|| format!("writing {}", p.display()))?;
    }
    let seen: Vec<u64> = per_flow
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| u64::from(c))
        .collect();
    let mut dsts: Vec<(String, u64)> = per_dst.iter().map(|(i, c)| (i.to_string(), *c)).collect();
    if other_dst > 0 {
        dsts.push(("other".into(), other_dst));
    }
    let r = SinkReport {
        rx: rx_n,
        active_secs: active,
        pps: rx_n as f64 / active.max(1e-9),
        xsk_dropped,
        unparsed,
        first_unparsed,
        delivered_pps: (rx_n + xsk_dropped + unparsed) as f64 / active.max(1e-9),
        syns,
        syn_rate: syns as f64 / active.max(1e-9),
        synacks,
        stamped,
        flows_seen: seen.len() as u64,
        flow_min: seen.iter().copied().min().unwrap_or(0),
        flow_max: seen.iter().copied().max().unwrap_or(0),
        per_dst: dsts,
        lat_p50_ns: hist.quantile(0.5),
        lat_p99_ns: hist.quantile(0.99),
        lat_p999_ns: hist.quantile(0.999),
        lat_max_ns: hist.max(),
        lat_cdf: hist.cdf(),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "sink: rx {} in {:.2} s = {:.0} pps ({} more dropped by full rings: {:.0} pps delivered); SYNs {} ({:.0}/s), SYN-ACKs {}; flows {} (min {} max {})",
        r.rx,
        r.active_secs,
        r.pps,
        r.xsk_dropped,
        r.delivered_pps,
        r.syns,
        r.syn_rate,
        r.synacks,
        r.flows_seen,
        r.flow_min,
        r.flow_max
    );
    let _ = writeln!(
        out,
        "sink: latency p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us over {} stamped",
        r.lat_p50_ns as f64 / 1e3,
        r.lat_p99_ns as f64 / 1e3,
        r.lat_p999_ns as f64 / 1e3,
        r.lat_max_ns as f64 / 1e3,
        r.stamped
    );
    let _ = writeln!(out, "sink: per destination {:?}", r.per_dst);
    write_json(a.common.json.as_ref(), &r)
}

fn forward(a: &FwdArgs) -> Result<()> {
    let dst_b = parse_mac(&a.dst_mac_b)?;
    let dst_a = a.dst_mac_a.as_deref().map(parse_mac).transpose()?;
    let mut io = open(&[&a.a, &a.b], &a.common, 2048)?;
    let q = u16::try_from(a.common.queues.max(1)).unwrap_or(1);
    let (mac_a, mac_b) = (io.mac(0), io.mac(q));
    let mut descs = [Desc::default(); BATCH];
    let start = Instant::now();
    let limit = Duration::from_secs_f64(a.common.secs);
    let mut fwd = 0u64;
    let mut turn = 0u32;
    loop {
        let n = io.rx_burst(&mut descs);
        let mut keep = 0;
        for i in 0..n {
            let mut d = descs[i];
            // Ports 0..q are A's queues, q..2q B's: A -> B always, B -> A when asked.
            let (src, dst, out) = match (d.port < q, dst_a) {
                (true, _) => (mac_b, dst_b, d.port + q),
                (false, Some(da)) => (mac_a, da, d.port - q),
                (false, None) => {
                    io.recycle(&[d]);
                    continue;
                }
            };
            let mut f = io.frame(&mut d);
            if let Some(eth) = f.data_mut().get_mut(..12) {
                eth[..6].copy_from_slice(&dst);
                eth[6..].copy_from_slice(&src);
            }
            f.set_port(out);
            descs[keep] = d;
            keep += 1;
        }
        let sent = io.tx_burst(&descs[..keep]);
        io.recycle(&descs[sent..keep]);
        io.service();
        fwd += sent as u64;
        turn = turn.wrapping_add(1);
        if turn.is_multiple_of(1024) && start.elapsed() >= limit {
            break;
        }
    }
    println!(
        "fwd: forwarded {fwd} in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    for p in 0..io.ports() {
        let p = u16::try_from(p).unwrap_or(0);
        println!("fwd: port {p}: {:?}", io.xsk_stats(p)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_ors_the_bitmaps() {
        let dir = std::env::temp_dir().join(format!("xvs-pktgen-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        // a: 0, 2, 9 seen; b: 1 and 2 seen, and nothing past its one byte.
        std::fs::write(&a, [0b0000_0101, 0b0000_0010]).unwrap();
        std::fs::write(&b, [0b0000_0110]).unwrap();
        let left = unseen(&[a, b], 12).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(left, vec![3, 4, 5, 6, 7, 8, 10, 11]);
    }
}
