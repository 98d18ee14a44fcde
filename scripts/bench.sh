#!/usr/bin/env bash
# The latency benchmark: installs the tools, builds release, runs `preempt bench` (its own anvil
# with the fixtures), and leaves out/bench/{bench.json,bench.svg,bench.txt}. Extra arguments go
# to `preempt bench` (e.g. --races 20 --samples 500 for a quicker run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh >/dev/null
cargo build --release --locked --quiet
RUST_LOG="${RUST_LOG:-warn}" exec target/release/preempt bench --anvil "$ROOT/.tools/bin/anvil" --out "$ROOT/out/bench" "$@"
