#!/usr/bin/env bash
# Short fuzz run for CI: the six targets' bodies as stable tests over the committed seed corpus
# plus a seeded mutator (always), then each cargo-fuzz target for FUZZ_SECONDS (default 5) when
# cargo-fuzz is installed (on stable with `-s none`: no sanitizer, libFuzzer's coverage only).
# Usage: fuzz/ci.sh            (from anywhere)   FUZZ_SECONDS=600 fuzz/ci.sh   for a long run.
set -euo pipefail
cd "$(dirname "$0")"
: "${FUZZ_SECONDS:=5}"
: "${XVS_FUZZ_ITERS:=2000}"
export XVS_FUZZ_ITERS
cargo test --lib
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/ci.sh: cargo-fuzz not installed (cargo install cargo-fuzz); libFuzzer runs skipped"
    exit 0
fi
for t in wire_parse pipeline pipeline_bursts proto ipvsadm_args restore; do
    mkdir -p "corpus/$t"
    # corpus/<t> (git-ignored) gathers what libFuzzer finds; seeds/<t> is read only
    # (pipeline_bursts reads pipeline's records).
    s=$t
    [ "$t" = pipeline_bursts ] && s=pipeline
    cargo fuzz run -s none "$t" "corpus/$t" "seeds/$s" -- \
        -max_total_time="$FUZZ_SECONDS" -max_len=4096 -timeout=10 -print_final_stats=1 2>&1 |
        grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::new_units_added|==|SUMMARY|Done)' || true
    # A crash leaves artifacts/<t>/crash-*; fail on any.
    if compgen -G "artifacts/$t/*" >/dev/null; then
        echo "fuzz/ci.sh: $t found a failing input: $(ls artifacts/$t)"
        exit 1
    fi
done
