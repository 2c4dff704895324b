//! xvsd: the xvs daemon. Builds the director and the conn table, starts the data plane (live
//! AF_XDP workers, or an offline pcap replay), and runs the control plane until SIGTERM/SIGINT.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use xvs_control::daemon::{DaemonOpts, block_signals, run_control};
use xvs_control::proto::ConnRow;
use xvs_control::runtime::{self, Clock, DataplaneOpts, Stop};
use xvs_control::server::{Hooks, Server};
use xvs_dataplane::conn::ConnTable;
use xvs_dataplane::director::Director;
use xvs_dataplane::worker::Shared;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// xvs: the Linux IP Virtual Server as a userspace AF_XDP data plane.
///
/// Without --iface and --pcap-in it runs the control plane alone (to validate configurations).
/// With --iface it serves those interfaces through AF_XDP. With --pcap-in/--pcap-out it
/// replays a capture through the pipeline (one worker) and exits.
#[derive(Parser, Debug)]
#[command(name = "xvsd", version)]
struct Cli {
    #[command(flatten)]
    control: DaemonOpts,
    #[command(flatten)]
    dataplane: DataplaneOpts,
}

fn main() -> ExitCode {
    if let Err(e) = block_signals() {
        eprintln!("xvsd: {e:#}");
        return ExitCode::from(1);
    }
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xvsd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let dp = &cli.dataplane;
    let workers = runtime::worker_count(dp);
    let director = Arc::new(Director::new(workers));
    let conns = Arc::new(
        ConnTable::with_bits(cli.control.conn_tab_bits, dp.max_conns, workers)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    conns.set_defence(dp.defence());
    conns.set_expire_quiescent_template(dp.expire_quiescent_template);
    conns.set_conn_reuse_mode(dp.conn_reuse_mode);
    if dp.offline() {
        return offline(cli, director, conns);
    }
    let clock = Clock::default();
    let live = if dp.ifaces.is_empty() {
        None
    } else {
        Some(start_live(dp, &director, &conns, clock, workers)?)
    };
    let stop = Stop::default();
    let est = {
        let (director, stop) = (Arc::clone(&director), stop.clone());
        std::thread::Builder::new()
            .name("xvsd-estimator".into())
            .spawn(move || {
                let tick = std::time::Duration::from_millis(xvs_dataplane::stats::RATE_TICK_MS);
                let mut next = std::time::Instant::now() + tick;
                while !stop.stopped() {
                    let now = std::time::Instant::now();
                    if now >= next {
                        director.estimate();
                        next += tick;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            })
            .context("spawning the estimator thread")?
    };
    let hooks = Hooks {
        conns: conns_hook(Arc::clone(&conns), clock),
        counters: counters_hook(
            Arc::clone(&conns),
            live.as_ref()
                .map(|l| (Arc::clone(&l.shared), Arc::clone(&l.frames))),
        ),
    };
    let r = run_control(&cli.control, director, hooks);
    stop.stop();
    let _ = est.join();
    if let Some(l) = live {
        l.shutdown();
    }
    r
}

#[cfg(feature = "afxdp")]
fn start_live(
    dp: &DataplaneOpts,
    director: &Arc<Director>,
    conns: &Arc<ConnTable>,
    clock: Clock,
    workers: usize,
) -> anyhow::Result<runtime::LiveWorkers> {
    let l = runtime::spawn_live(dp, Arc::clone(director), Arc::clone(conns), clock)?;
    eprintln!("xvsd: {} worker(s) on {}", workers, dp.ifaces.join(", "));
    Ok(l)
}

#[cfg(not(feature = "afxdp"))]
fn start_live(
    _: &DataplaneOpts,
    _: &Arc<Director>,
    _: &Arc<ConnTable>,
    _: Clock,
    _: usize,
) -> anyhow::Result<runtime::LiveWorkers> {
    anyhow::bail!("--iface needs the AF_XDP backend: this xvsd was built without the afxdp feature")
}

/// `-Lnc` rows from the conn table, on the workers' clock.
fn conns_hook(conns: Arc<ConnTable>, clock: Clock) -> xvs_control::server::ConnsHook {
    Box::new(move || {
        let mut rows = Vec::new();
        conns.for_each(clock.now_ms(), |c| {
            rows.push(ConnRow {
                proto: c.proto,
                caddr: c.caddr,
                cport: c.cport,
                vaddr: c.vaddr,
                vport: c.vport,
                daddr: c.daddr,
                dport: c.dport,
                state: c.state_name.to_string(),
                expires_s: u32::try_from(c.expires_in_ms.div_ceil(1000)).unwrap_or(u32::MAX),
                pe: None,
            });
        });
        rows
    })
}

/// `--counters` from the conn table and, when workers run, their published counters.
fn counters_hook(
    conns: Arc<ConnTable>,
    live: Option<(Arc<Shared>, Arc<runtime::FrameSlots>)>,
) -> xvs_control::server::CountersHook {
    Box::new(move || {
        runtime::counters(&conns, live.as_ref().map(|(s, f)| (s.as_ref(), f.as_ref())))
    })
}

/// Offline mode: apply --restore, replay --pcap-in through one worker into --pcap-out, exit.
fn offline(cli: &Cli, director: Arc<Director>, conns: Arc<ConnTable>) -> anyhow::Result<()> {
    let mut server = Server::new(
        Arc::clone(&director),
        Hooks::default(),
        cli.control.conn_tab_bits,
    );
    if let Some(file) = &cli.control.restore {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let r = server.restore("xvsd", &text, true);
        if !r.messages.is_empty() || r.exit_code != 0 {
            for (m, l) in r.messages.iter().zip(&r.error_lines) {
                eprint!("xvsd: {}:{}: {}", file.display(), l, m);
            }
            anyhow::bail!("{}: not applied", file.display());
        }
    }
    let s = runtime::run_offline(&cli.dataplane, director, conns)?;
    eprintln!(
        "xvsd: offline: {} frames in, {} out, {} dropped",
        s.rx, s.tx, s.dropped
    );
    Ok(())
}
