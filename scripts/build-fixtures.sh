#!/usr/bin/env bash
# Compile the Solidity fixtures into fixtures/artifacts/ (deterministic; unchanged sources give no diff).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ ! -d .tools/node_modules/solc ] || [ ! -x .tools/bin/anvil ]; then
  bash scripts/setup.sh
fi
exec node scripts/build-fixtures.js "$@"
