//! Writes the preempt TOML config that protects the demo contracts of a deployment.

use std::fmt::Write as _;

use super::deploy::Deployment;

/// One `[[protect]]` table; token and asset entries are contract names in the deployment.
struct ProtectSpec {
    name: &'static str,
    drain_threshold_bps: u32,
    tokens: &'static [&'static str],
    /// (view `f(address)`, asset: `"eth"` or a token's contract name)
    claims: &'static [(&'static str, &'static str)],
    invariants: &'static [&'static str],
}

const VAULT_CLAIMS: &[(&str, &str)] = &[("balances(address)", "eth")];
const VAULT_INVARIANTS: &[&str] = &["totalAssets() >= totalDeposits()"];
const POOL_TOKENS: &[&str] = &["DUSD", "COL"];
const POOL_CLAIMS: &[(&str, &str)] = &[("deposits(address)", "DUSD")];
const POOL_INVARIANTS: &[&str] = &["solvent()", "totalAssets() >= totalDeposits()"];

/// StakePool has no view giving an account's claim in ETH (`sharesOf` counts shares), and
/// ShareLender none at all, so neither declares claims.
const PROTECTED: &[ProtectSpec] = &[
    ProtectSpec {
        name: "EthVault",
        drain_threshold_bps: 1_000,
        tokens: &[],
        claims: VAULT_CLAIMS,
        invariants: VAULT_INVARIANTS,
    },
    ProtectSpec {
        name: "EthVaultFixed",
        drain_threshold_bps: 1_000,
        tokens: &[],
        claims: VAULT_CLAIMS,
        invariants: VAULT_INVARIANTS,
    },
    ProtectSpec {
        name: "StakePool",
        drain_threshold_bps: 2_000,
        tokens: &[],
        claims: &[],
        invariants: &[],
    },
    ProtectSpec {
        name: "StakePoolFixed",
        drain_threshold_bps: 2_000,
        tokens: &[],
        claims: &[],
        invariants: &[],
    },
    ProtectSpec {
        name: "ShareLender",
        drain_threshold_bps: 2_000,
        tokens: &[],
        claims: &[],
        invariants: &[],
    },
    ProtectSpec {
        name: "ShareLenderFixed",
        drain_threshold_bps: 2_000,
        tokens: &[],
        claims: &[],
        invariants: &[],
    },
    ProtectSpec {
        name: "LendingPool",
        drain_threshold_bps: 2_000,
        tokens: POOL_TOKENS,
        claims: POOL_CLAIMS,
        invariants: POOL_INVARIANTS,
    },
    ProtectSpec {
        name: "LendingPoolFixed",
        drain_threshold_bps: 2_000,
        tokens: POOL_TOKENS,
        claims: POOL_CLAIMS,
        invariants: POOL_INVARIANTS,
    },
    ProtectSpec {
        name: "Treasury",
        drain_threshold_bps: 1_000,
        tokens: &["DUSD"],
        claims: &[],
        invariants: &[],
    },
    ProtectSpec {
        name: "TreasuryFixed",
        drain_threshold_bps: 1_000,
        tokens: &["DUSD"],
        claims: &[],
        invariants: &[],
    },
];

/// A TOML basic string.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn string_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(quoted).collect();
    format!("[{}]", items.join(", "))
}

/// A preempt config protecting the demo contracts of `d`, watching the node at `node_url`,
/// with the guardian key read from the environment variable `guardian_key_env`.
/// A contract missing from `d` (a hand-edited deployment) is left out, with a comment saying so.
pub fn config_toml(d: &Deployment, node_url: &str, guardian_key_env: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# preempt config for the demo dev net (chain {}, deployed at block {}).",
        d.chain_id, d.block
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "[[node]]");
    let _ = writeln!(out, "name = \"anvil\"");
    let _ = writeln!(out, "url = {}", quoted(node_url));
    let _ = writeln!(out);
    let _ = writeln!(out, "[guardian]");
    let _ = writeln!(out, "key = {}", quoted(&format!("env:{guardian_key_env}")));

    for spec in PROTECTED {
        let needed = std::iter::once(spec.name).chain(spec.tokens.iter().copied()).chain(
            spec.claims.iter().map(|&(_, asset)| asset).filter(|a| !a.eq_ignore_ascii_case("eth")),
        );
        let missing: Vec<&str> = needed.filter(|n| !d.contracts.contains_key(*n)).collect();
        let _ = writeln!(out);
        if !missing.is_empty() {
            let _ = writeln!(
                out,
                "# {} left out: the deployment has no {}",
                spec.name,
                missing.join(", ")
            );
            continue;
        }
        let address = |name: &str| d.contracts.get(name).map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(out, "[[protect]]");
        let _ = writeln!(out, "name = {}", quoted(spec.name));
        let _ = writeln!(out, "address = {}", quoted(&address(spec.name)));
        if !spec.tokens.is_empty() {
            let tokens: Vec<String> = spec.tokens.iter().map(|t| address(t)).collect();
            let _ = writeln!(
                out,
                "tokens = {}  # {}",
                string_array(tokens.iter().map(String::as_str)),
                spec.tokens.join(", ")
            );
        }
        let _ = writeln!(out, "drain_threshold_bps = {}", spec.drain_threshold_bps);
        if !spec.claims.is_empty() {
            let claims: Vec<String> = spec
                .claims
                .iter()
                .map(|&(view, asset)| {
                    let asset = if asset.eq_ignore_ascii_case("eth") {
                        "eth".to_string()
                    } else {
                        address(asset)
                    };
                    format!("{{ view = {}, asset = {} }}", quoted(view), quoted(&asset))
                })
                .collect();
            let _ = writeln!(out, "claims = [{}]", claims.join(", "));
        }
        if !spec.invariants.is_empty() {
            let _ = writeln!(out, "invariants = {}", string_array(spec.invariants.iter().copied()));
        }
    }
    out
}
