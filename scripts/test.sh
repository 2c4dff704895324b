#!/usr/bin/env bash
# Run every test: formatting, lints, unit/property/fixture tests, golden CLI tests and the
# end-to-end tests in network namespaces (these need root; with CI=true they fail instead of
# skipping). Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo test --workspace --exclude xvs-tests
# Fuzz targets' bodies over the committed seeds plus a seeded mutator (and a few seconds of
# libFuzzer per target when cargo-fuzz is installed).
fuzz/ci.sh
# End-to-end tests (real kernels in namespaces, AF_XDP): one at a time, they load XDP programs.
cargo test -p xvs-tests -- --test-threads=1
