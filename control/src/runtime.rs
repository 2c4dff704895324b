//! The data-plane side of `xvsd`: its interface flags, the network configuration they build,
//! and the loops that run workers (offline over a pcap file, or live over AF_XDP queues).
//!
//! Invariants: flags are validated whole before anything is opened; a bad flag names itself.
//! Workers are created here and only ever talk to the control thread through the `Director`
//! snapshot and their published counters. Never: run a worker loop on the control thread.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use xvs_dataplane::conn::ConnTable;
use xvs_dataplane::director::Director;
use xvs_dataplane::io::pcap::PcapIo;
use xvs_dataplane::neigh::{NetConf, PortAddr, PortConf, RouteConf};
use xvs_dataplane::worker::{Shared, Worker};

use crate::proto::{Counters, DefenceInfo, FrameInfo, WorkerCounters};

/// Errors in the data-plane flags or while starting workers.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A flag value that does not parse.
    #[error("invalid {flag} value {value:?}: {why}")]
    BadFlag {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
        /// Why it is wrong.
        why: String,
    },
    /// `--addr` names an interface not given with `--iface`.
    #[error("--addr {0}: interface {1} is not one of the --iface interfaces")]
    UnknownIface(String, String),
    /// An interface that does not exist.
    #[error("interface {0} does not exist")]
    NoSuchIface(String),
    /// Network configuration error.
    #[error(transparent)]
    Net(#[from] xvs_dataplane::neigh::NetError),
    /// pcap error.
    #[error(transparent)]
    Pcap(#[from] xvs_dataplane::io::pcap::PcapError),
}

/// How the XDP program is attached.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum XdpMode {
    /// Driver (native) mode.
    #[default]
    Native,
    /// Generic (SKB) mode.
    Skb,
}

/// How idle workers wait.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum PollMode {
    /// Spin.
    Busy,
    /// Sleep in poll() after a run of empty turns.
    #[default]
    Adaptive,
}

/// Data-plane flags of `xvsd` (keep them stable: scripts and tests use them).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DataplaneOpts {
    /// Interface to serve through AF_XDP (repeatable; port numbers follow the order given).
    #[arg(long = "iface", value_name = "IF")]
    pub ifaces: Vec<String>,
    /// One of the director's own addresses (repeatable, IPv4 or IPv6): IF=IP/PREFIX. Its prefix
    /// is on-link on IF. In offline mode the interface is called `pcap0`.
    #[arg(long = "addr", value_name = "IF=IP/PREFIX")]
    pub addrs: Vec<String>,
    /// A static route (repeatable): PREFIX/LEN=GATEWAY, e.g. 0.0.0.0/0=198.18.1.254.
    #[arg(long = "route", value_name = "PREFIX=GATEWAY")]
    pub routes: Vec<String>,
    /// A static neighbour entry (repeatable): IP=MAC.
    #[arg(long = "neigh", value_name = "IP=MAC")]
    pub neigh: Vec<String>,
    /// Worker threads (default: one per queue, at most one per core; 1 offline).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Cores to pin workers to, e.g. 0,1 (default: 0..workers).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpMode::Native)]
    pub xdp_mode: XdpMode,
    /// Idle policy of workers.
    #[arg(long, value_enum, default_value_t = PollMode::Adaptive)]
    pub poll: PollMode,
    /// Maximum number of conns (new ones beyond it are dropped and counted).
    #[arg(long, default_value_t = 4_000_000)]
    pub max_conns: usize,
    /// SYN-flood defence, as IPVS's `drop_entry` sysctl: 0 never, 1 (or 2) while fewer than
    /// `--amemthresh` conn entries are free, 3 always. While on, half-open TCP conns older
    /// than `--drop-entry-min-age-ms` are dropped to make room.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub drop_entry: u8,
    /// Free conn entries below which `--drop-entry 1` turns the defence on (IPVS `amemthresh`).
    #[arg(long, default_value_t = 1024)]
    pub amemthresh: usize,
    /// Half-open conns younger than this are spared by the defence (ms).
    #[arg(long, default_value_t = 1000)]
    pub drop_entry_min_age_ms: u32,
    /// IPVS's `drop_packet`: 0 never, 1 (or 2) while fewer than `--amemthresh` entries are
    /// free (refusing one new conn in amemthresh / (amemthresh - free)), 3 always (one in
    /// `--am-droprate`).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub drop_packet: u8,
    /// IPVS's `secure_tcp`: TCP conns use the secure state table (a client's ACK does not
    /// establish a conn before the server's SYN+ACK was seen): 0 never, 1 (or 2) while fewer
    /// than `--amemthresh` entries are free, 3 always.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub secure_tcp: u8,
    /// `--drop-packet 3` refuses one new conn in this many (IPVS `am_droprate`).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub am_droprate: u32,
    /// IPVS's expire_quiescent_template sysctl: a persistence template whose dest has weight 0
    /// is invalid, so its clients are scheduled afresh.
    #[arg(long)]
    pub expire_quiescent_template: bool,
    /// IPVS's conn_reuse_mode sysctl: 1 (default) lets a client's SYN that finds its previous
    /// TCP conn in TIME_WAIT or CLOSE expire it and be scheduled afresh; 3 also reuses a DR/TUN
    /// conn in FIN_WAIT; 0 keeps such a SYN on the old conn.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub conn_reuse_mode: u8,
    /// Complete TCP/UDP checksums that a local sender left partial (veth TX offload); costs a
    /// pass over each payload. Real NICs never need it.
    #[arg(long)]
    pub complete_partial_csum: bool,
    /// Offline mode: replay frames from this pcap file through the pipeline, then exit.
    #[arg(long, value_name = "IN.pcap", requires = "pcap_out")]
    pub pcap_in: Option<PathBuf>,
    /// Offline mode: write every transmitted frame to this pcap file, in transmit order.
    #[arg(long, value_name = "OUT.pcap", requires = "pcap_in")]
    pub pcap_out: Option<PathBuf>,
    /// Offline mode: the MAC address of the pcap port.
    #[arg(long, value_name = "MAC", default_value = "02:00:00:00:00:01")]
    pub mac: String,
}

fn bad(flag: &'static str, value: &str, why: impl ToString) -> RuntimeError {
    RuntimeError::BadFlag {
        flag,
        value: value.to_string(),
        why: why.to_string(),
    }
}

/// Parse a MAC address `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn parse_prefix(flag: &'static str, s: &str) -> Result<(IpAddr, u8), RuntimeError> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| bad(flag, s, "expected ADDRESS/PREFIXLEN"))?;
    let addr = IpAddr::from_str(a).map_err(|e| bad(flag, s, e))?;
    let len = u8::from_str(l).map_err(|e| bad(flag, s, e))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad(flag, s, format!("prefix length above {max}")));
    }
    Ok((addr, len))
}

impl DataplaneOpts {
    /// The SYN-flood defence these options ask for.
    #[must_use]
    pub fn defence(&self) -> xvs_dataplane::conn::Defence {
        use xvs_dataplane::conn::DefenceMode;
        let mode = |v: u8| match v {
            1 | 2 => DefenceMode::Auto,
            3 => DefenceMode::Always,
            _ => DefenceMode::Off,
        };
        xvs_dataplane::conn::Defence {
            mode: mode(self.drop_entry),
            amemthresh: self.amemthresh,
            min_age_ms: self.drop_entry_min_age_ms,
            drop_packet: mode(self.drop_packet),
            am_droprate: self.am_droprate,
            secure_tcp: mode(self.secure_tcp),
        }
    }

    /// Whether offline (pcap) mode was asked for.
    #[must_use]
    pub fn offline(&self) -> bool {
        self.pcap_in.is_some()
    }

    /// Build the network configuration; `port_names` and `macs` are the ports in order.
    pub fn net_conf(
        &self,
        port_names: &[String],
        macs: &[[u8; 6]],
    ) -> Result<NetConf, RuntimeError> {
        let mut ports: Vec<PortConf> = port_names
            .iter()
            .zip(macs)
            .map(|(n, m)| PortConf {
                name: n.clone(),
                mac: *m,
                addrs: Vec::new(),
                mtu: iface_mtu(n),
            })
            .collect();
        for a in &self.addrs {
            let (ifname, pfx) = a
                .split_once('=')
                .ok_or_else(|| bad("--addr", a, "expected IF=IP/PREFIX"))?;
            let (addr, prefix) = parse_prefix("--addr", pfx)?;
            let port = ports
                .iter_mut()
                .find(|p| p.name == ifname)
                .ok_or_else(|| RuntimeError::UnknownIface(a.clone(), ifname.to_string()))?;
            port.addrs.push(PortAddr { addr, prefix });
        }
        let mut routes = Vec::new();
        for r in &self.routes {
            let (p, gw) = r
                .split_once('=')
                .ok_or_else(|| bad("--route", r, "expected PREFIX/LEN=GATEWAY"))?;
            let (prefix, len) = parse_prefix("--route", p)?;
            let gateway = IpAddr::from_str(gw).map_err(|e| bad("--route", r, e))?;
            if gateway.is_ipv4() != prefix.is_ipv4() {
                return Err(bad(
                    "--route",
                    r,
                    "gateway and prefix are of different families",
                ));
            }
            routes.push(RouteConf {
                prefix,
                len,
                gateway,
            });
        }
        let mut neigh = Vec::new();
        for n in &self.neigh {
            let (ip, mac) = n
                .split_once('=')
                .ok_or_else(|| bad("--neigh", n, "expected IP=MAC"))?;
            let ip = IpAddr::from_str(ip).map_err(|e| bad("--neigh", n, e))?;
            let mac = parse_mac(mac).ok_or_else(|| bad("--neigh", n, "bad MAC address"))?;
            neigh.push((ip, mac));
        }
        Ok(NetConf {
            ports,
            routes,
            neigh,
        })
    }
}

/// What an offline run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineSummary {
    /// Frames read.
    pub rx: u64,
    /// Frames written.
    pub tx: u64,
    /// Frames dropped.
    pub dropped: u64,
}

/// Replay `--pcap-in` through one worker and write `--pcap-out`; returns when the input is
/// exhausted.
pub fn run_offline(
    opts: &DataplaneOpts,
    director: Arc<Director>,
    conns: Arc<ConnTable>,
) -> Result<OfflineSummary, RuntimeError> {
    let (Some(input), Some(output)) = (&opts.pcap_in, &opts.pcap_out) else {
        return Ok(OfflineSummary::default());
    };
    let mac = parse_mac(&opts.mac).ok_or_else(|| bad("--mac", &opts.mac, "bad MAC address"))?;
    let net = opts.net_conf(&["pcap0".to_string()], &[mac])?;
    let io = PcapIo::open(input, output, mac, 1500)?;
    let mut shared = Shared::new(director, conns, net, 1)?;
    shared.complete_partial = opts.complete_partial_csum;
    let shared = Arc::new(shared);
    let mut worker = Worker::new(0, io, shared);
    while worker.io_mut().prepare() {
        let now = worker.io().now_ms();
        worker.poll(now);
    }
    worker.io_mut().flush()?;
    if let Some(e) = worker.io_mut().error.take() {
        return Err(e.into());
    }
    let st = worker.stats();
    Ok(OfflineSummary {
        rx: st.rx_packets,
        tx: st.tx_packets,
        dropped: st.drops.iter().sum(),
    })
}

/// The workers' clock: milliseconds since the daemon started (monotonic). The conn table's
/// expiry times are on this clock, so listings must read it too.
#[derive(Debug, Clone, Copy)]
pub struct Clock(std::time::Instant);

impl Default for Clock {
    fn default() -> Self {
        Self(std::time::Instant::now())
    }
}

impl Clock {
    /// Milliseconds since start.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// How many workers live mode runs: `--workers`, else one per queue of the interfaces, at most
/// one per core.
#[must_use]
pub fn worker_count(opts: &DataplaneOpts) -> usize {
    if opts.offline() || opts.ifaces.is_empty() {
        return 1;
    }
    let queues = opts.ifaces.iter().map(|i| rx_queues(i)).min().unwrap_or(1);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    opts.workers.unwrap_or_else(|| queues.min(cores)).max(1)
}

/// A stop flag shared with worker threads.
#[derive(Debug, Default, Clone)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Ask every worker to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    #[must_use]
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Number of RX queues of an interface (from sysfs; 1 if unknown).
#[must_use]
pub fn rx_queues(ifname: &str) -> usize {
    std::fs::read_dir(format!("/sys/class/net/{ifname}/queues"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(1)
        .max(1)
}

/// The MTU of an interface (from sysfs; 1500 if unknown, e.g. the offline `pcap0`).
#[must_use]
pub fn iface_mtu(ifname: &str) -> usize {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1500)
}

/// The MAC address of an interface (from sysfs).
pub fn iface_mac(ifname: &str) -> Result<[u8; 6], RuntimeError> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{ifname}/address"))
        .map_err(|_| RuntimeError::NoSuchIface(ifname.to_string()))?;
    parse_mac(s.trim()).ok_or_else(|| RuntimeError::NoSuchIface(ifname.to_string()))
}

/// Each worker's UMEM frame accounting as its loop last published it (`None` until then),
/// indexed by worker.
pub type FrameSlots = Vec<std::sync::Mutex<Option<FrameInfo>>>;

/// How often a worker loop publishes its backend's frame accounting.
pub const FRAMES_PUBLISH_MS: u64 = 100;

/// Running live workers: join handles and their stop flag.
#[derive(Debug)]
pub struct LiveWorkers {
    /// Ask them to stop.
    pub stop: Stop,
    /// Shared state (published counters).
    pub shared: Arc<Shared>,
    /// Published UMEM frame accounting, per worker.
    pub frames: Arc<FrameSlots>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl LiveWorkers {
    /// Stop every worker and wait for it (sockets close, XDP programs detach).
    pub fn shutdown(self) {
        self.stop.stop();
        for h in self.handles {
            let _ = h.join();
        }
    }
}

/// Open AF_XDP sockets (one per interface for each worker's queue, created one after another)
/// and start one pinned worker thread each.
#[cfg(feature = "afxdp")]
pub fn spawn_live(
    opts: &DataplaneOpts,
    director: Arc<Director>,
    conns: Arc<ConnTable>,
    clock: Clock,
) -> Result<LiveWorkers, anyhow::Error> {
    use anyhow::Context as _;
    use xvs_dataplane::io::afxdp::{AfXdp, AfXdpOpts, PortConf as XskPort, XdpMode as XskMode};

    let mut macs = Vec::new();
    for i in &opts.ifaces {
        macs.push(iface_mac(i)?);
    }
    let net = opts.net_conf(&opts.ifaces, &macs)?;
    let queues = opts.ifaces.iter().map(|i| rx_queues(i)).min().unwrap_or(1);
    let workers = worker_count(opts);
    if workers > queues {
        anyhow::bail!("--workers {workers}: the interfaces have only {queues} queue(s)");
    }
    let mut shared = Shared::new(director, conns, net, workers)?;
    shared.complete_partial = opts.complete_partial_csum;
    let shared = Arc::new(shared);
    let xopts = AfXdpOpts {
        xdp_mode: match opts.xdp_mode {
            XdpMode::Native => XskMode::Native,
            XdpMode::Skb => XskMode::Skb,
        },
        ..AfXdpOpts::default()
    };
    // Sockets are created one at a time (libxdp races itself otherwise), on this thread.
    let mut ios = Vec::with_capacity(workers);
    for w in 0..workers {
        let ports: Vec<XskPort> = opts
            .ifaces
            .iter()
            .map(|i| XskPort {
                ifname: i.clone(),
                queue: u32::try_from(w).unwrap_or(0),
            })
            .collect();
        let io = AfXdp::open(&ports, &xopts).with_context(|| {
            format!(
                "opening AF_XDP sockets for worker {w} on {}",
                opts.ifaces.join(",")
            )
        })?;
        for i in io.reclaimed() {
            eprintln!(
                "xvsd: {i}: detached a stale XDP program (left by a crashed or unprivileged xvs)"
            );
        }
        ios.push(io);
    }
    let core_ids = core_affinity::get_core_ids().unwrap_or_default();
    let stop = Stop::default();
    let frames: Arc<FrameSlots> =
        Arc::new((0..workers).map(|_| std::sync::Mutex::new(None)).collect());
    let mut handles = Vec::with_capacity(workers);
    for (w, io) in ios.into_iter().enumerate() {
        let core = opts
            .cores
            .get(w)
            .copied()
            .or_else(|| core_ids.get(w % core_ids.len().max(1)).map(|c| c.id));
        let (stop, shared, poll) = (stop.clone(), Arc::clone(&shared), opts.poll);
        let slots = Arc::clone(&frames);
        let h = std::thread::Builder::new()
            .name(format!("xvs-worker-{w}"))
            .spawn(move || {
                if let Some(id) = core {
                    core_affinity::set_for_current(core_affinity::CoreId { id });
                }
                let publish = |io: &AfXdp| {
                    if let Some(slot) = slots.get(w) {
                        *slot
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) =
                            Some(afxdp_frames(io));
                    }
                };
                run_loop(Worker::new(w, io, shared), &stop, poll, clock, publish);
            })
            .context("spawning a worker thread")?;
        handles.push(h);
    }
    Ok(LiveWorkers {
        stop,
        shared,
        frames,
        handles,
    })
}

/// The AF_XDP backend's frame accounting as the control protocol carries it.
#[cfg(feature = "afxdp")]
fn afxdp_frames(io: &xvs_dataplane::io::afxdp::AfXdp) -> FrameInfo {
    let c = io.frame_counts();
    FrameInfo {
        total: c.total as u64,
        free: c.free as u64,
        in_flight: (c.fill + c.held + c.tx) as u64,
        fill: c.fill as u64,
        held: c.held as u64,
        tx: c.tx as u64,
        bad_descs: io.bad_descs(),
    }
}

/// Everything `xvsadm --counters` shows from the data plane: the conn table and its defence,
/// and, when workers run, their published counters and frame accounting.
#[must_use]
pub fn counters(conns: &ConnTable, live: Option<(&Shared, &FrameSlots)>) -> Counters {
    use xvs_dataplane::conn::DefenceMode;
    use xvs_dataplane::stats::DropReason;
    let mode = |m: DefenceMode| {
        match m {
            DefenceMode::Off => "off",
            DefenceMode::Auto => "auto",
            DefenceMode::Always => "always",
        }
        .to_owned()
    };
    let d = conns.defence();
    let mut workers = Vec::new();
    if let Some((shared, frames)) = live {
        for (i, slot) in shared.worker_stats.iter().enumerate() {
            let st = slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let frames = frames
                .get(i)
                .and_then(|f| *f.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            workers.push(WorkerCounters {
                rx_packets: st.rx_packets,
                rx_bytes: st.rx_bytes,
                tx_packets: st.tx_packets,
                tx_bytes: st.tx_bytes,
                conns_created: st.conns_created,
                neigh_replies: st.neigh_replies,
                neigh_requests: st.neigh_requests,
                flow_hits: st.flow_hits,
                drops: st.drops.to_vec(),
                frames,
            });
        }
    }
    Counters {
        drop_reasons: DropReason::ALL
            .iter()
            .map(|r| r.name().to_owned())
            .collect(),
        workers,
        conns: conns.len() as u64,
        max_conns: conns.max_conns() as u64,
        defence: DefenceInfo {
            drop_entry: mode(d.mode),
            drop_packet: mode(d.drop_packet),
            secure_tcp: mode(d.secure_tcp),
            amemthresh: d.amemthresh as u64,
            active: conns.defence_active(),
            dropped_entries: conns.defence_dropped(),
        },
        fds: 0,
        rss_kib: 0,
    }
}

/// The worker loop: poll until stopped; in adaptive mode, after a run of empty turns, wait in
/// the backend for traffic (the AF_XDP backend keeps its fill rings topped up in `service`).
/// `observe` sees the backend between turns every [`FRAMES_PUBLISH_MS`] and once at the end
/// (spawn_live publishes the UMEM frame accounting through it).
pub fn run_loop<I: xvs_dataplane::io::PacketIo>(
    mut worker: Worker<I>,
    stop: &Stop,
    poll: PollMode,
    clock: Clock,
    mut observe: impl FnMut(&I),
) {
    let mut idle = 0u32;
    let mut observed_ms = 0;
    observe(worker.io());
    while !stop.stopped() {
        let now_ms = clock.now_ms();
        if now_ms.saturating_sub(observed_ms) >= FRAMES_PUBLISH_MS {
            observed_ms = now_ms;
            observe(worker.io());
        }
        if worker.poll(now_ms) == 0 {
            idle = idle.saturating_add(1);
            if poll == PollMode::Adaptive && idle > 256 {
                // Sleep in the backend (poll() on the AF_XDP sockets) for at most 1 ms, so
                // expiry and snapshot adoption still run while idle.
                worker.io_mut().wait_rx(1);
            }
        } else {
            idle = 0;
        }
    }
    worker.publish();
    observe(worker.io());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_flags_parse_and_bad_ones_name_themselves() {
        let o = DataplaneOpts {
            addrs: vec!["d0=198.18.1.1/24".into(), "d0=fd01::1/64".into()],
            routes: vec!["0.0.0.0/0=198.18.1.254".into()],
            neigh: vec!["198.18.1.2=02:00:00:00:00:02".into()],
            ..Default::default()
        };
        let n = o.net_conf(&["d0".into()], &[[2, 0, 0, 0, 0, 1]]).unwrap();
        assert_eq!(n.ports[0].addrs.len(), 2);
        assert_eq!(n.routes[0].len, 0);
        assert_eq!(n.neigh[0].1, [2, 0, 0, 0, 0, 2]);
        let o = DataplaneOpts {
            addrs: vec!["d9=198.18.1.1/24".into()],
            ..Default::default()
        };
        let e = o
            .net_conf(&["d0".into()], &[[0; 6]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("d9"), "{e}");
        let o = DataplaneOpts {
            neigh: vec!["198.18.1.2=zz".into()],
            ..Default::default()
        };
        let e = o.net_conf(&[], &[]).unwrap_err().to_string();
        assert!(e.contains("--neigh") && e.contains("bad MAC"), "{e}");
        let o = DataplaneOpts {
            addrs: vec!["d0=198.18.1.1/40".into()],
            ..Default::default()
        };
        assert!(o.net_conf(&["d0".into()], &[[0; 6]]).is_err());
    }
}
