//! xvsd: the xvs daemon. This file wires the control plane; the data-plane flags and worker
//! startup are added around `run_control` (build the director, start workers, run control,
//! stop workers).

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use xvs_control::daemon::{DaemonOpts, block_signals, run_control};
use xvs_control::server::Hooks;
use xvs_dataplane::director::Director;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// xvs: the Linux IP Virtual Server as a userspace AF_XDP data plane.
#[derive(Parser, Debug)]
#[command(name = "xvsd", version)]
struct Cli {
    #[command(flatten)]
    control: DaemonOpts,
}

fn main() -> ExitCode {
    if let Err(e) = block_signals() {
        eprintln!("xvsd: {e:#}");
        return ExitCode::from(1);
    }
    let cli = Cli::parse();
    let director = Arc::new(Director::new(1));
    match run_control(&cli.control, director, Hooks::default()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xvsd: {e:#}");
            ExitCode::from(1)
        }
    }
}
