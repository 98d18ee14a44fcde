#!/usr/bin/env bash
# The demo: a local anvil devnet (no automine: a real mempool), the demo protocol deployed,
# `preempt run` guarding it; benign traffic, then a reentrancy attack sent with the attacker's
# own fees; one block mined; the timeline of what preempt saw, simulated, sent and achieved;
# then the forensics: the attack's receipt (reverted, in the block the pause landed in) beside
# what the same tx would have done on the state without the pause; last, the guard's metrics
# for findings and pauses, scraped from its `/metrics` endpoint before it stops.
# PREEMPT_DEMO_PROFILE=debug builds the (faster to build, slower to run) debug binary instead.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

scripts/setup.sh >/dev/null
PROFILE="${PREEMPT_DEMO_PROFILE:-release}"
echo "== building preempt ($PROFILE)"
if [ "$PROFILE" = debug ]; then
  cargo build --locked --quiet
else
  cargo build --release --locked --quiet
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/preempt"
CAST="$ROOT/.tools/bin/cast"
OUT="$ROOT/out/demo"
rm -rf "$OUT"
mkdir -p "$OUT"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
RPC="http://127.0.0.1:$PORT"
"$ROOT/.tools/bin/anvil" --port "$PORT" --host 127.0.0.1 --no-mining --silent &
ANVIL_PID=$!
PREEMPT_PID=""
cleanup() {
  [ -n "$PREEMPT_PID" ] && kill -TERM "$PREEMPT_PID" 2>/dev/null && wait "$PREEMPT_PID" 2>/dev/null
  kill "$ANVIL_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  "$CAST" block-number --rpc-url "$RPC" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== anvil on $RPC (--no-mining); deploying the demo protocol"
"$BIN" devnet deploy --rpc "$RPC" --node-url "ws://127.0.0.1:$PORT" --out "$OUT"
CONFIG="$OUT/preempt.toml"
printf '\n[incidents]\npath = "%s"\nstore = "%s"\n' "$OUT/incidents.jsonl" "$OUT/incidents.sqlite" >> "$CONFIG"
METRICS_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
METRICS="http://127.0.0.1:$METRICS_PORT"
printf '\n[metrics]\nlisten = "127.0.0.1:%s"\n' "$METRICS_PORT" >> "$CONFIG"

# anvil's dev account 1 is the demo guardian (a public test key).
export PREEMPT_GUARDIAN_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
"$BIN" run --config "$CONFIG" 2> "$OUT/preempt.log" &
PREEMPT_PID=$!
for _ in $(seq 1 300); do
  grep -q " ready" "$OUT/preempt.log" && break
  sleep 0.1
done
grep " ready" "$OUT/preempt.log" | sed 's/^/preempt: /'

send() { "$BIN" devnet send --rpc "$RPC" --deployment "$OUT/deployment.json" "$1"; }
guardian_pending() {
  "$CAST" rpc txpool_content --rpc-url "$RPC" | python3 -c '
import json, sys
pool = json.load(sys.stdin)["pending"]
print(sum(len(v) for k, v in pool.items() if k.lower() == "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"))'
}

echo
echo "== benign traffic: a deposit, a whale withdrawing 90% of the vault (its own funds), a 20% swap, a safe flash loan"
for s in vault-deposit vault-whale-withdraw-90pct swap-20pct flash-loan-safe; do send "$s"; done
sleep 1
"$CAST" rpc evm_mine --rpc-url "$RPC" >/dev/null
echo "mined block $("$CAST" block-number --rpc-url "$RPC"); guardian txs pending: $(guardian_pending)"

echo
echo "== an attacker sends a reentrancy attack on EthVault, with its own fees"
send vault-reentrancy-attack
for _ in $(seq 1 200); do
  [ "$(guardian_pending)" -gt 0 ] && break
  sleep 0.05
done
"$CAST" rpc evm_mine --rpc-url "$RPC" >/dev/null
BLOCK="$("$CAST" block-number --rpc-url "$RPC")"
sleep 1

echo
echo "== timeline (from $OUT/incidents.jsonl)"
"$BIN" incidents "$OUT/incidents.jsonl"

echo
echo "== block $BLOCK as the node has it"
"$CAST" block "$BLOCK" --full --rpc-url "$RPC" --json | python3 -c '
import json, sys
for i, tx in enumerate(json.load(sys.stdin)["transactions"]):
    fee = int(tx["maxFeePerGas"], 16) / 1e9
    tip = int(tx["maxPriorityFeePerGas"], 16) / 1e9
    print("  [%d] %s from %s  maxFee %.3f gwei  tip %.3f gwei" % (i, tx["hash"], tx["from"], fee, tip))'
echo
ATTACK="$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["kind"] == "detection":
        print(r["attack_tx"]); break' "$OUT/incidents.jsonl")"

echo "== forensics 1/2: the attack as mined (its receipt)"
"$CAST" receipt "$ATTACK" --rpc-url "$RPC" --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
status = "succeeded" if int(r["status"], 16) == 1 else "REVERTED"
print("  tx %s: %s in block %d at index %d, %d gas, %d log(s)" % (
    r["transactionHash"], status, int(r["blockNumber"], 16), int(r["transactionIndex"], 16),
    int(r["gasUsed"], 16), len(r["logs"])))'

echo
echo "== forensics 2/2: the exploit it would have been (same tx, state before block $BLOCK, the pause left out)"
set +e
"$BIN" check --config "$CONFIG" --rpc "$RPC" --tx "$ATTACK" --without-pause > "$OUT/without-pause.txt"
CHECK=$?
set -e
# Header, notes, the verdict with each finding's amounts; the per-frame evidence is in the file.
grep -v -E '^\s+(frame|call|#)' "$OUT/without-pause.txt" | sed -n '1,24p'
echo "(check exit $CHECK: 1 = findings; the full report is in $OUT/without-pause.txt)"

echo
echo "== the guard's metrics for findings and pauses (scraped from $METRICS/metrics)"
python3 - "$METRICS/metrics" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
wanted = ("preempt_findings_total", "preempt_pauses_", "preempt_contract_paused",
          "preempt_guardian_nonce", "preempt_guardian_balance_wei")
# Per-destination pause counts always; per-contract series only where they are not 0.
always = ("preempt_pauses_sent_total", "preempt_pauses_failed_total")
lines = [l for l in text.splitlines() if l.startswith(wanted)
         and (l.startswith(always) or l.rsplit(" ", 1)[-1] not in ("0", "0.0"))]
for line in sorted(lines):
    print("  " + line)
print("  (per-contract series at 0 left out)")
PY
echo
echo "== preempt status --metrics $METRICS"
"$BIN" status --metrics "$METRICS" | sed 's/^/  /'
