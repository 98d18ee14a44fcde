#!/usr/bin/env bash
# Install the pinned tool chain (anvil/cast/forge 1.7.1, solcjs, OpenZeppelin, Uniswap V2
# and Safe 1.4.1 artifacts) from npm into ./.tools. Idempotent: a second run with the same pins is instant.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS="$ROOT/.tools"

PACKAGES=(
  "@foundry-rs/anvil-linux-amd64@1.7.1"
  "@foundry-rs/cast-linux-amd64@1.7.1"
  "@foundry-rs/forge-linux-amd64@1.7.1"
  "solc@0.8.37"
  "@openzeppelin/contracts@5.4.0"
  "@uniswap/v2-core@1.0.1"
  "@uniswap/v2-periphery@1.1.0-beta.0"
  "@safe-global/safe-contracts@1.4.1"
)
WANT="$(printf '%s\n' "${PACKAGES[@]}")"

if ! command -v npm >/dev/null 2>&1; then
  echo "setup: npm not found, installing nodejs + npm with apt-get" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y nodejs npm
fi

mkdir -p "$TOOLS"
if [ -f "$TOOLS/.stamp" ] && [ "$(cat "$TOOLS/.stamp")" = "$WANT" ] && [ -d "$TOOLS/node_modules" ]; then
  echo "setup: .tools up to date"
else
  echo "setup: npm install into .tools"
  rm -f "$TOOLS/.stamp"
  npm install --prefix "$TOOLS" --no-audit --no-fund --save-exact "${PACKAGES[@]}"
  printf '%s\n' "$WANT" > "$TOOLS/.stamp"
fi

mkdir -p "$TOOLS/bin"
for tool in anvil cast forge; do
  bin="$TOOLS/node_modules/@foundry-rs/$tool-linux-amd64/bin/$tool"
  if [ ! -f "$bin" ]; then
    echo "setup: missing $bin" >&2
    exit 1
  fi
  chmod +x "$bin"
  ln -sfn "../node_modules/@foundry-rs/$tool-linux-amd64/bin/$tool" "$TOOLS/bin/$tool"
done

"$TOOLS/bin/anvil" --version
"$TOOLS/bin/cast" --version
"$TOOLS/bin/forge" --version
( cd "$TOOLS" && node -e 'console.log("solc " + require("solc").version())' )
