#!/usr/bin/env bash
# yanzhen and its peers (tokio-cron-scheduler, apalis-sqlite) on the same timer workload in
# one run, with ratios peer / yanzhen. See docs/benchmarks.md ("Peers").
#
#   bash benches/compare.sh [N] [DATABASE_URL]
#
# N timers (default 10000) due in the same second ("burst"), then N spread over 10 s
# ("spread"). Each yanzhen measurement runs in its own process, as each peer variant does,
# so the peak RSS figures belong to that measurement alone. Results go to stdout and to
# target/bench-compare/.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"
db=()
if [ -n "${2:-}" ]; then db=(--database "$2"); fi
out=target/bench-compare
mkdir -p "$out"

cargo build --release --quiet
cargo build --release --quiet --manifest-path benches/peers/Cargo.toml

./target/release/yanzhen-bench "${db[@]}" --only burst --burst "$n" 2>/dev/null | tee "$out/yanzhen-burst.jsonl"
./target/release/yanzhen-bench "${db[@]}" --only spread --spread "$n" 2>/dev/null | tee "$out/yanzhen-spread.jsonl"

peers=benches/peers/target/release/yanzhen-peers-bench
"$peers" --n "$n" --baseline "$out/yanzhen-burst.jsonl" | tee "$out/peers-burst.txt"
"$peers" --n "$n" --spread --baseline "$out/yanzhen-spread.jsonl" | tee "$out/peers-spread.txt"
