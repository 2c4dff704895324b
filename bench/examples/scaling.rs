//! The MemIo scaling run alone: `cargo run --release -p xvs-bench --example scaling [SECS]`
//! prints the packet rate of 1 and 2 threads over one shared conn table and their ratio (the
//! same `scaling::run` that `xvs-bench` reports in RESULTS.md).
#![allow(clippy::unwrap_used)]

fn main() -> anyhow::Result<()> {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let one = xvs_bench::scaling::run(1, 100_000, secs)?;
    let two = xvs_bench::scaling::run(2, 100_000, secs)?;
    println!(
        "1 thread: {:.2} Mpps; 2 threads: {:.2} Mpps; ratio {:.2}",
        one.pps / 1e6,
        two.pps / 1e6,
        two.pps / one.pps
    );
    Ok(())
}
