#!/usr/bin/env bash
# The demo: a local anvil devnet (no automine, a real mempool), the demo protocol deployed,
# benign traffic and then a reentrancy attack sent to the mempool, each checked by preempt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

scripts/setup.sh >/dev/null
echo "== building preempt (release)"
cargo build --release --locked --quiet
BIN="$ROOT/target/release/preempt"
ANVIL="$ROOT/.tools/bin/anvil"
CAST="$ROOT/.tools/bin/cast"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
RPC="http://127.0.0.1:$PORT"
OUT="$ROOT/out/demo"
mkdir -p "$OUT"

"$ANVIL" --port "$PORT" --host 127.0.0.1 --no-mining --silent &
ANVIL_PID=$!
trap 'kill $ANVIL_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  "$CAST" block-number --rpc-url "$RPC" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== anvil on $RPC (--no-mining); deploying the demo protocol"
"$BIN" devnet deploy --rpc "$RPC" --node-url "ws://127.0.0.1:$PORT" --out "$OUT"
CONFIG="$OUT/preempt.toml"

check() {
  set +e
  "$BIN" check --config "$CONFIG" --rpc "$RPC" --pending
  local rc=$?
  set -e
  echo "(preempt check exit code $rc: 0 clean, 1 findings, 2 error)"
  return 0
}

echo
echo "== benign traffic in the mempool: a deposit, a whale withdrawing 90% of the vault (its own funds), a 20% swap"
for s in vault-deposit vault-whale-withdraw-90pct swap-20pct; do
  "$BIN" devnet send --rpc "$RPC" --deployment "$OUT/deployment.json" "$s"
done
check
"$CAST" rpc evm_mine --rpc-url "$RPC" >/dev/null

echo
echo "== an attacker sends a reentrancy attack on EthVault to the mempool"
"$BIN" devnet send --rpc "$RPC" --deployment "$OUT/deployment.json" vault-reentrancy-attack
check
