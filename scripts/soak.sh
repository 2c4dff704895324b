#!/usr/bin/env bash
# The churn soak (tests/tests/soak.rs) on a release build, for a set time: long-lived and short
# TCP connections through xvsd (NAT) while xvsadm adds, edits and removes dests every 100 ms;
# fails on any failed exchange, RSS growth after the warm-up, or an fd or UMEM-frame leak, and
# prints the figures. Needs root (namespaces, AF_XDP).
# Usage: scripts/soak.sh [SECONDS]    default 600 (the 10-minute run); CI runs 20 s in test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
scripts/setup.sh
cargo build --release --workspace --bins
XVS_SOAK_SECS=$secs cargo test --release -p xvs-tests --test soak -- --nocapture
