#!/usr/bin/env bash
# Before/after figures for a hot-path change: build the pipeline benchmark of BASE (a commit,
# default HEAD~1) in a throwaway worktree and of the working tree, then run the two binaries
# alternately ROUNDS times (default 3) so that both see the same machine conditions; print
# each round's criterion estimate per packet and, when valgrind is installed, the instructions
# per packet of both (callgrind over examples/pipeline_cost, deterministic for a given build).
#
# Usage: scripts/ab-bench.sh [BASE] [ROUNDS] [FILTER]
#   FILTER: a criterion filter (default "established/1000$|new_conn").
# Timings on a shared VM move by 10-20% over minutes; read the rounds side by side, not one
# number. Removes its worktree on exit, also when interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(git rev-parse --verify "${1:-HEAD~1}^{commit}")
rounds=${2:-3}
filter=${3:-'established/1000$|new_conn'}
wt=$(mktemp -d /tmp/xvs-ab.XXXXXX)
cleanup() {
    git worktree remove --force "$wt" 2>/dev/null || rm -rf "$wt"
    git worktree prune
}
trap cleanup EXIT INT TERM
git worktree add -q --detach "$wt" "$base"

bench_bin() { # DIR: build the pipeline bench there, print its path
    (cd "$1" && cargo bench -q -p xvs-dataplane --bench pipeline --no-run --message-format=json 2>/dev/null) |
        python3 -c 'import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "pipeline" and m.get("executable"):
        print(m["executable"])'
}
echo "building base $(git rev-parse --short "$base") and the working tree ..." >&2
a=$(bench_bin "$wt")
b=$(bench_bin .)
[ -x "$a" ] && [ -x "$b" ] || { echo "ab-bench: a build failed" >&2; exit 1; }

per_packet() { # criterion output -> "name: low mid high ns/packet" (32 packets per iteration)
    python3 -c 'import re, sys
name = None
unit = {"ps": 1e-3, "ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6}
for l in sys.stdin:
    m = re.match(r"^(pipeline/\S+)", l)
    if m:
        name = m.group(1)
    m = re.search(r"time:\s+\[([\d.]+) (\S+) ([\d.]+) (\S+) ([\d.]+) (\S+)\]", l)
    if m and name and "%" not in l:
        v = [float(m.group(i)) * unit[m.group(i + 1)] / 32 for i in (1, 3, 5)]
        print(f"  {name}: {v[0]:.1f} {v[1]:.1f} {v[2]:.1f} ns/packet")
        name = None'
}
for r in $(seq "$rounds"); do
    for side in base new; do
        bin=$a; [ "$side" = new ] && bin=$b
        echo "round $r, $side:"
        "$bin" --bench --warm-up-time 1 --measurement-time 3 --noplot "$filter" 2>&1 | per_packet
    done
done

if command -v valgrind >/dev/null; then
    for side in base new; do
        dir=$wt; [ "$side" = new ] && dir=.
        (cd "$dir" && cargo build -q --release -p xvs-dataplane --example pipeline_cost 2>/dev/null) || continue
        exe=$dir/target/release/examples/pipeline_cost
        for path in established new floor; do
            n1=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$exe" "$path" 10000 2>&1 | awk '/Collected/{print $4}')
            n2=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$exe" "$path" 20000 2>&1 | awk '/Collected/{print $4}')
            [ -n "$n1" ] && [ -n "$n2" ] && echo "$side $path: $(((n2 - n1) / 10000)) instructions/packet"
        done
    done
fi
