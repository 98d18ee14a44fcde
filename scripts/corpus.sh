#!/usr/bin/env bash
# The precision corpus (issues 10 and 11): installs the tools, builds preempt, and runs every
# corpus scenario — honest traffic and attacks of many protocol shapes — each on its own anvil
# through a real `preempt run` with a plain config. Writes out/corpus/corpus.json (and each
# scenario's config, log and incidents under out/corpus/scenarios/) and prints a table.
# Arguments go to `preempt devnet corpus`: --only NAME (repeatable), --strict (exit 1 when a
# target is missed), --bare (no preempt: check each scenario does what it claims), --list.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

scripts/setup.sh >/dev/null
# A debug build is fast enough: the corpus takes about a minute on 2 cores.
cargo build --locked --bin preempt
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/preempt"
PREEMPT_TOOLS="${PREEMPT_TOOLS:-$ROOT/.tools}" exec "$BIN" devnet corpus "$@"
