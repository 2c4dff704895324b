//! xvsadm: ipvsadm 1.31's command line against xvsd (symlink or alias it as `ipvsadm`).

use std::io::Write;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let out = xvs_control::cli::run(argv, &mut std::io::stdin().lock());
    // Output errors (a closed pipe) are ignored as ipvsadm's printf ignores them.
    let _ = std::io::stdout().lock().write_all(out.stdout.as_bytes());
    let _ = std::io::stderr().lock().write_all(out.stderr.as_bytes());
    let _ = std::io::stdout().flush();
    std::process::exit(out.code);
}
