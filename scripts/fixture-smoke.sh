#!/usr/bin/env bash
# Manual end-to-end check of the Solidity fixtures on a real anvil node (automine):
# deploys Uniswap V2 (factory, WETH9, Router02, a pair with liquidity) and every protocol
# contract, runs each attack against the vulnerable variant (must succeed and profit) and the
# fixed variant (must revert or not profit), plus benign traffic. Exits non-zero on any surprise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ -x .tools/bin/anvil ] || bash scripts/setup.sh
[ -f fixtures/artifacts/EthVault.json ] || bash scripts/build-fixtures.sh

ANVIL="$ROOT/.tools/bin/anvil"
CAST="$ROOT/.tools/bin/cast"
ART="$ROOT/fixtures/artifacts"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT="${PORT:-18545}"
while ! port_free "$PORT"; do PORT=$((PORT + 1)); done
export ETH_RPC_URL="http://127.0.0.1:$PORT"

LOG="$(mktemp -t fixture-smoke-anvil.XXXXXX)"
"$ANVIL" --host 127.0.0.1 --port "$PORT" >"$LOG" 2>&1 &
ANVIL_PID=$!
cleanup() { kill "$ANVIL_PID" 2>/dev/null || true; wait "$ANVIL_PID" 2>/dev/null || true; rm -f "$LOG"; }
trap cleanup EXIT
for _ in $(seq 100); do "$CAST" chain-id >/dev/null 2>&1 && break; sleep 0.1; done
"$CAST" chain-id >/dev/null

FAILED=0
fail() { echo "FAIL: $*"; FAILED=1; }
ok() { echo "ok:   $*"; }

# anvil's default dev keys
K_DEPLOYER=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
K_GUARDIAN=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
K_USER=0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a
K_ATTACKER=0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6
addr() { "$CAST" wallet address --private-key "$1"; }
DEPLOYER=$(addr $K_DEPLOYER); GUARDIAN=$(addr $K_GUARDIAN); USER=$(addr $K_USER); ATTACKER=$(addr $K_ATTACKER)

json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s)[process.argv[1]];process.stdout.write(v==null?"":String(v))})' "$1"; }
code() { node -e 'process.stdout.write(require(process.argv[1]).bytecode)' "$1"; }
# big-integer helpers (wei amounts overflow bash arithmetic)
sub() { A="$1" B="$2" node -e 'console.log((BigInt(process.env.A)-BigInt(process.env.B)).toString())'; }
fmt() { A="$1" node -e 'const v=BigInt(process.env.A);const a=v<0n?-v:v;console.log((v<0n?"-":"+")+(a/10n**18n).toString()+"."+(a%10n**18n).toString().padStart(18,"0").slice(0,4))'; }
gt() { A="$1" B="$2" node -e 'process.exit(BigInt(process.env.A)>BigInt(process.env.B)?0:1)'; }
num() { "$CAST" call "$@" | awk '{print $1}'; }
bal() { "$CAST" balance "$1"; }
tok() { num "$1" "balanceOf(address)(uint256)" "$2"; }
E18=000000000000000000

# deploy KEY ARTIFACT [SIG ARGS...] -> address
deploy() {
  local key=$1 artifact=$2 out; shift 2
  out=$("$CAST" send --private-key "$key" --json --create "$(code "$artifact")" "$@")
  [ "$(json status <<<"$out")" = "0x1" ] || { echo "deploy of $artifact failed" >&2; exit 1; }
  json contractAddress <<<"$out"
}
# tx KEY [cast send args...]: must succeed
tx() {
  local key=$1 out; shift
  out=$("$CAST" send --private-key "$key" --json "$@") || { echo "tx failed: $*" >&2; exit 1; }
  [ "$(json status <<<"$out")" = "0x1" ] || { echo "tx reverted: $*" >&2; exit 1; }
}
# reverts KEY [cast send args...]: mines the tx with a fixed gas limit, true if it reverted;
# REASON holds the revert reason from an eth_call of the same tx.
REASON=""
reverts() {
  local key=$1 out status; shift
  REASON=$("$CAST" call --from "$(addr "$key")" "$@" 2>&1 | grep -o 'execution reverted[^,]*' | head -1 | sed 's/0xd93c0665/0xd93c0665 = EnforcedPause()/' || true)
  out=$("$CAST" send --private-key "$key" --json --gas-limit 10000000 "$@" 2>&1) || true
  status=$(json status <<<"$out" 2>/dev/null || echo "?")
  [ "$status" = "0x0" ]
}

echo "== anvil on $ETH_RPC_URL; deployer $DEPLOYER guardian $GUARDIAN user $USER attacker $ATTACKER"

echo "== Uniswap V2 + tokens"
FACTORY=$(deploy $K_DEPLOYER "$ART/uniswap/UniswapV2Factory.json" "constructor(address)" "$DEPLOYER")
WETH=$(deploy $K_DEPLOYER "$ART/uniswap/WETH9.json")
ROUTER=$(deploy $K_DEPLOYER "$ART/uniswap/UniswapV2Router02.json" "constructor(address,address)" "$FACTORY" "$WETH")
COL=$(deploy $K_DEPLOYER "$ART/DemoToken.json" "constructor(string,string)" "Collateral" "COL")
DEBT=$(deploy $K_DEPLOYER "$ART/DemoToken.json" "constructor(string,string)" "Demo Dollar" "DUSD")
tx $K_DEPLOYER "$COL" "mint(address,uint256)" "$USER" 10000$E18
tx $K_DEPLOYER "$DEBT" "mint(address,uint256)" "$USER" 10000000$E18
tx $K_USER "$COL" "approve(address,uint256)" "$ROUTER" 1000$E18
tx $K_USER "$DEBT" "approve(address,uint256)" "$ROUTER" 1000000$E18
tx $K_USER "$ROUTER" "addLiquidity(address,address,uint256,uint256,uint256,uint256,address,uint256)" \
  "$COL" "$DEBT" 1000$E18 1000000$E18 0 0 "$USER" 99999999999
PAIR=$("$CAST" call "$FACTORY" "getPair(address,address)(address)" "$COL" "$DEBT")
echo "factory $FACTORY weth $WETH router $ROUTER pair $PAIR"
echo "pair reserves: $("$CAST" call "$PAIR" "getReserves()(uint112,uint112,uint32)" | awk '{print $1}' | head -2 | tr '\n' ' ')"

echo "== guardian / pause"
VAULT=$(deploy $K_DEPLOYER "$ART/EthVault.json" "constructor(address)" "$GUARDIAN")
if reverts $K_ATTACKER "$VAULT" "pause()"; then ok "pause() by non-guardian reverts ($REASON)"; else fail "pause() by non-guardian succeeded"; fi
tx $K_GUARDIAN "$VAULT" "pause()"
[ "$("$CAST" call "$VAULT" "paused()(bool)")" = "true" ] && ok "guardian paused EthVault" || fail "paused() not true"
if reverts $K_USER --value 1ether "$VAULT" "deposit()"; then ok "deposit while paused reverts ($REASON)"; else fail "deposit while paused succeeded"; fi
tx $K_GUARDIAN "$VAULT" "unpause()"
[ "$("$CAST" call "$VAULT" "guardian()(address)")" = "$GUARDIAN" ] && ok "guardian() = $GUARDIAN" || fail "guardian() mismatch"

echo "== EthVault reentrancy (user deposits 100 ETH; attacker attack{value: 10 ETH})"
for variant in EthVault EthVaultFixed; do
  if [ $variant = EthVaultFixed ]; then VAULT=$(deploy $K_DEPLOYER "$ART/$variant.json" "constructor(address)" "$GUARDIAN"); fi
  tx $K_USER --value 100ether "$VAULT" "deposit()"
  ATK=$(deploy $K_ATTACKER "$ART/VaultReentrancyAttack.json" "constructor(address)" "$VAULT")
  before=$(bal "$ATTACKER")
  if [ $variant = EthVault ]; then
    tx $K_ATTACKER --value 10ether "$ATK" "attack()"
    profit=$(sub "$(bal "$ATTACKER")" "$before")
    gt "$profit" 0 && ok "$variant: attack succeeded, attacker profit $(fmt "$profit") ETH, vault left $(fmt "$(bal "$VAULT")") ETH, re-entries $(num "$ATK" "reentries()(uint256)")" \
      || fail "$variant: attack did not profit ($(fmt "$profit"))"
  else
    if reverts $K_ATTACKER --value 10ether "$ATK" "attack()"; then ok "$variant: attack reverted ($REASON), vault still $(fmt "$(bal "$VAULT")") ETH"; else fail "$variant: attack did not revert"; fi
  fi
done

echo "== StakePool read-only reentrancy (user stakes 100 ETH, lender funded 1000 ETH; attacker attack{value: 1000 ETH})"
for variant in StakePool StakePoolFixed; do
  POOL=$(deploy $K_DEPLOYER "$ART/$variant.json" "constructor(address)" "$GUARDIAN")
  LENDER=$(deploy $K_DEPLOYER "$ART/ShareLender.json" "constructor(address,address)" "$GUARDIAN" "$POOL")
  tx $K_USER --value 100ether "$POOL" "stake()"
  tx $K_USER --value 1000ether "$LENDER" "fund()"
  ATK=$(deploy $K_ATTACKER "$ART/ReadOnlyReentrancyAttack.json" "constructor(address,address)" "$POOL" "$LENDER")
  before=$(bal "$ATTACKER")
  if tx $K_ATTACKER --value 1000ether "$ATK" "attack()"; then
    profit=$(sub "$(bal "$ATTACKER")" "$before")
    borrowed=$(num "$ATK" "borrowed()(uint256)")
    if [ $variant = StakePool ]; then
      gt "$profit" 0 && ok "$variant: attack succeeded, borrowed $(fmt "$borrowed") ETH against 200 shares, attacker profit $(fmt "$profit") ETH" \
        || fail "$variant: attack did not profit ($(fmt "$profit"))"
    else
      gt "$profit" 0 && fail "$variant: attack profited ($(fmt "$profit"))" \
        || ok "$variant: attack tx succeeded but borrowed only the fair $(fmt "$borrowed") ETH, attacker profit $(fmt "$profit") ETH"
    fi
  fi
  echo "      lender left $(fmt "$(bal "$LENDER")") ETH, sharePrice $(fmt "$(num "$POOL" "sharePrice()(uint256)")")"
done

echo "== LendingPool spot-price manipulation (pair 1,000 COL / 1,000,000 DUSD; 500,000 DUSD lent to each pool)"
POOL=$(deploy $K_DEPLOYER "$ART/LendingPool.json" "constructor(address,address,address,address)" "$GUARDIAN" "$COL" "$DEBT" "$PAIR")
ORACLE=$(deploy $K_DEPLOYER "$ART/FixedPriceOracle.json" "constructor(uint256)" 1000$E18)
POOLF=$(deploy $K_DEPLOYER "$ART/LendingPoolFixed.json" "constructor(address,address,address,address)" "$GUARDIAN" "$COL" "$DEBT" "$ORACLE")
for p in "$POOL" "$POOLF"; do
  tx $K_USER "$DEBT" "approve(address,uint256)" "$p" 500000$E18
  tx $K_USER "$p" "deposit(uint256)" 500000$E18
done
echo "price(): LendingPool $(fmt "$(num "$POOL" "price()(uint256)")") LendingPoolFixed $(fmt "$(num "$POOLF" "price()(uint256)")") DUSD/COL"

echo "== benign FlashBorrowerSafe.run(100,000 DUSD, 10 COL) (pre-funded 10 COL + 1,000 DUSD)"
for p in "$POOL" "$POOLF"; do
  FB=$(deploy $K_USER "$ART/FlashBorrowerSafe.json" "constructor(address)" "$p")
  tx $K_USER "$COL" "transfer(address,uint256)" "$FB" 10$E18
  tx $K_USER "$DEBT" "transfer(address,uint256)" "$FB" 1000$E18
  if tx $K_USER "$FB" "run(uint256,uint256)" 100000$E18 10$E18; then
    ok "flash loan on $p succeeded: flashFees $(fmt "$(num "$p" "flashFees()(uint256)")"), collateral(FB) $(fmt "$(num "$p" "collateral(address)(uint256)" "$FB")"), solvent $("$CAST" call "$p" "solvent()(bool)")"
  fi
done

for variant in LendingPoolFixed LendingPool; do
  if [ $variant = LendingPool ]; then P=$POOL; else P=$POOLF; fi
  ATK=$(deploy $K_ATTACKER "$ART/PriceManipulationAttack.json" "constructor(address,address,address,address)" "$P" "$PAIR" "$COL" "$DEBT")
  tx $K_DEPLOYER "$DEBT" "mint(address,uint256)" "$ATK" 1000000$E18
  before=$(tok "$DEBT" "$ATTACKER")
  if [ $variant = LendingPool ]; then
    tx $K_ATTACKER "$ATK" "attack(uint256,uint256,uint256)" 1000000$E18 100$E18 0
    profit=$(sub "$(sub "$(tok "$DEBT" "$ATTACKER")" "$before")" 1000000$E18)
    gt "$profit" 0 && ok "$variant: attack(1e6 DUSD pump, 100 COL, max borrow) succeeded, attacker profit $(fmt "$profit") DUSD, pool debt $(fmt "$(num "$P" "totalDebt()(uint256)")"), solvent() now $("$CAST" call "$P" "solvent()(bool)")" \
      || fail "$variant: no profit ($(fmt "$profit"))"
  else
    if reverts $K_ATTACKER "$ATK" "attack(uint256,uint256,uint256)" 1000000$E18 100$E18 299550$E18; then ok "$variant: attack with explicit borrow 299,550 DUSD reverted ($REASON)"; else fail "$variant: explicit-borrow attack did not revert"; fi
    if reverts $K_ATTACKER "$ATK" "attack(uint256,uint256,uint256)" 1000000$E18 100$E18 0; then ok "$variant: attack with max borrow reverted ($REASON)"; else fail "$variant: max-borrow attack did not revert"; fi
  fi
done

echo "== Treasury takeover (treasury holds 50 ETH + 100,000 DUSD)"
for variant in TreasuryFixed Treasury; do
  T=$(deploy $K_DEPLOYER "$ART/$variant.json" "constructor(address)" "$GUARDIAN")
  tx $K_USER --value 50ether "$T"
  tx $K_DEPLOYER "$DEBT" "mint(address,uint256)" "$T" 100000$E18
  ATK=$(deploy $K_ATTACKER "$ART/TreasuryTakeoverAttack.json" "constructor(address)" "$T")
  eth0=$(bal "$ATTACKER"); tok0=$(tok "$DEBT" "$ATTACKER")
  if [ $variant = Treasury ]; then
    tx $K_ATTACKER "$ATK" "attack(address)" "$DEBT"
    pe=$(sub "$(bal "$ATTACKER")" "$eth0"); pt=$(sub "$(tok "$DEBT" "$ATTACKER")" "$tok0")
    gt "$pe" 0 && gt "$pt" 0 && ok "$variant: attack succeeded, attacker profit $(fmt "$pe") ETH and $(fmt "$pt") DUSD, owner() now $("$CAST" call "$T" "owner()(address)")" \
      || fail "$variant: no profit"
  else
    if reverts $K_ATTACKER "$ATK" "attack(address)" "$DEBT"; then ok "$variant: attack reverted ($REASON), owner() still $("$CAST" call "$T" "owner()(address)")"; else fail "$variant: attack did not revert"; fi
  fi
done

if [ $FAILED -ne 0 ]; then echo "SMOKE FAILED"; exit 1; fi
echo "SMOKE OK"
