#!/usr/bin/env bash
# The test command: installs what is missing, checks format and lints, runs every test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

scripts/setup.sh
# Rust toolchain components (present on a rustup install; added if missing).
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== fixture artifacts match their sources"
scripts/build-fixtures.sh --check
echo "== cargo test"
# Integration tests start their own anvil (from .tools) on free loopback ports.
PREEMPT_TOOLS="$ROOT/.tools" cargo test --lib --bins --tests --locked -- --test-threads 2
echo "== precision corpus (a missed attack or a false pause fails the run)"
scripts/corpus.sh --strict
