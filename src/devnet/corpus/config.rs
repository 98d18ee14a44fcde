//! The plain preempt config a new operator writes on day one: per protected contract only its
//! name, address, the tokens it holds and its pause call. No claims, no invariants, no trusted list.

use std::{fmt::Write as _, path::Path};

use super::{Book, CorpusError};

/// One protected contract of the corpus: the tokens it holds (contract names in the book) and,
/// when it has no `pause()` of its own, the contract whose `pause()` contains it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProtectSpec {
    pub(crate) name: &'static str,
    pub(crate) tokens: &'static [&'static str],
    pub(crate) pause_via: Option<&'static str>,
}

const fn spec(name: &'static str, tokens: &'static [&'static str]) -> ProtectSpec {
    ProtectSpec { name, tokens, pause_via: None }
}

/// Every contract the corpus protects. The real Uniswap V2 pair has no pause: it is protected
/// (its reserves are what a drain would take) with its containment aimed at `PairBreaker`, the
/// route the protocol's users swap through. A TimelockController has none either: its one
/// executor is `ExecutorGate`, whose pause closes it.
pub(crate) const PROTECT: &[ProtectSpec] = &[
    spec("EtherBank", &[]),
    spec("HookShareVault", &["HOOK"]),
    spec("Vault4626", &["USDX"]),
    spec("SpotMarket", &["USDX", "WETH"]),
    spec("OracleMarket", &["USDX", "WETH"]),
    spec("RateMarket", &["USDX", "RateVault"]),
    spec("RateVault", &[]),
    ProtectSpec { name: "Pair", tokens: &["WETH", "USDX"], pause_via: Some("PairBreaker") },
    spec("RoleTreasury", &["USDX"]),
    spec("InitTreasury", &["USDX"]),
    spec("UpgradeTreasury", &["USDX"]),
    spec("FlashGovernor", &["USDX"]),
    ProtectSpec { name: "Timelock", tokens: &["USDX"], pause_via: Some("ExecutorGate") },
    spec("SwapAggregator", &[]),
    spec("LDG", &[]),
    spec("VestingRewards", &["USDX"]),
];

pub(crate) fn protect_spec(name: &str) -> Option<&'static ProtectSpec> {
    PROTECT.iter().find(|p| p.name == name)
}

/// `pause()`.
const PAUSE_CALLDATA: &str = "0x8456cb59";

/// The plain config for `protected` (names in `PROTECT`), watching `ws_url`, writing incidents to
/// `incidents`; the guardian key comes from `PREEMPT_GUARDIAN_KEY`.
pub(crate) fn plain_config(
    book: &Book,
    protected: &[&str],
    ws_url: &str,
    incidents: &Path,
) -> Result<String, CorpusError> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# preempt corpus: a plain config (no claims, no invariants, no trusted list)."
    );
    let _ = writeln!(out, "\n[[node]]\nname = \"anvil\"\nurl = {}", quoted(ws_url));
    let _ = writeln!(out, "\n[guardian]\nkey = \"env:PREEMPT_GUARDIAN_KEY\"");
    let _ = writeln!(out, "\n[incidents]\npath = {}", quoted(&incidents.display().to_string()));
    for name in protected {
        let spec =
            protect_spec(name).ok_or_else(|| CorpusError::UnknownContract(name.to_string()))?;
        let _ = writeln!(out, "\n[[protect]]\nname = {}", quoted(spec.name));
        let _ = writeln!(out, "address = \"{}\"", book.get(spec.name)?);
        if !spec.tokens.is_empty() {
            let tokens = spec
                .tokens
                .iter()
                .map(|t| book.get(t).map(|a| format!("\"{a}\"")))
                .collect::<Result<Vec<_>, _>>()?;
            let _ = writeln!(out, "tokens = [{}]  # {}", tokens.join(", "), spec.tokens.join(", "));
        }
        if let Some(via) = spec.pause_via {
            let _ = writeln!(out, "[protect.pause]  # pause() on {via}");
            let _ =
                writeln!(out, "target = \"{}\"\ncalldata = \"{PAUSE_CALLDATA}\"", book.get(via)?);
        }
    }
    Ok(out)
}

/// A TOML basic string (paths and URLs here hold no control characters).
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
