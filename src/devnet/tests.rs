use std::{collections::BTreeMap, path::Path};

use alloy::primitives::{Address, address};

use super::*;
use crate::config::{Asset, Config};

#[test]
fn dev_accounts_are_anvils_default_accounts_in_role_order() {
    let accounts = dev_accounts();
    let names: Vec<&str> = accounts.iter().map(|a| a.name).collect();
    assert_eq!(
        names,
        [
            "deployer",
            "guardian",
            "user",
            "attacker",
            "whale",
            "lp",
            "lender",
            "borrower",
            "relay-auth",
            "spare"
        ]
    );
    assert_eq!(accounts[0].address, address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"));
    assert_eq!(accounts[3].address, address!("90F79bf6EB2c4f870365E785982E1f101E93b906"));
    assert_eq!(accounts[9].address, address!("a0Ee7A142d267C1f36714E4a8F75612F20a79720"));
    for a in &accounts {
        assert_eq!(a.signer.address(), a.address, "{}", a.name);
    }
}

#[test]
fn scenario_names_round_trip_and_only_vulnerable_attacks_expect_findings() {
    assert_eq!(Scenario::all().len(), 21);
    for &s in Scenario::all() {
        assert_eq!(Scenario::from_name(s.name()), Some(s));
        assert_eq!(s.is_attack(), !s.expected_findings().is_empty(), "{s}");
        assert!(
            !(s.is_attack() && s.reverts()),
            "{s}: an attack on a vulnerable contract must succeed"
        );
    }
    assert_eq!(Scenario::from_name("no-such-scenario"), None);
    assert_eq!(
        Scenario::VaultReentrancyAttack.expected_findings(),
        &[("EthVault", "reentrancy"), ("EthVault", "drain")]
    );
}

#[test]
fn every_fixture_artifact_has_creation_code() {
    use artifacts::Artifact::*;
    for a in [
        DemoToken,
        EthVault,
        EthVaultFixed,
        FixedPriceOracle,
        FlashBorrowerSafe,
        LendingPool,
        LendingPoolFixed,
        PriceManipulationAttack,
        ReadOnlyReentrancyAttack,
        ShareLender,
        StakePool,
        StakePoolFixed,
        Treasury,
        TreasuryFixed,
        TreasuryTakeoverAttack,
        VaultReentrancyAttack,
        UniswapV2Factory,
        UniswapV2Router02,
        Weth9,
    ] {
        let code = a.creation_code().map_err(|e| e.to_string());
        assert!(code.is_ok_and(|c| c.len() > 100), "{}", a.file_name());
    }
}

fn fake_deployment() -> Deployment {
    let names = [
        "DUSD",
        "COL",
        "EthVault",
        "EthVaultFixed",
        "StakePool",
        "StakePoolFixed",
        "ShareLender",
        "ShareLenderFixed",
        "LendingPool",
        "LendingPoolFixed",
        "Treasury",
        "TreasuryFixed",
    ];
    let contracts: BTreeMap<String, Address> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), Address::with_last_byte(i as u8 + 1)))
        .collect();
    Deployment { chain_id: 31337, block: 9, contracts, accounts: BTreeMap::new() }
}

#[test]
fn config_toml_is_accepted_by_the_config_loader() {
    let d = fake_deployment();
    let text = config_toml(&d, "ws://127.0.0.1:8546", "PREEMPT_GUARDIAN_KEY");
    let config = Config::parse(&text, Path::new("devnet.toml")).map_err(|e| e.to_string());
    let config = match config {
        Ok(c) => c,
        Err(e) => panic!("{e}\n{text}"),
    };
    assert_eq!(config.nodes.len(), 1);
    assert_eq!(config.nodes[0].url, "ws://127.0.0.1:8546");
    assert_eq!(config.protected.len(), 10);

    let dusd = d.contracts["DUSD"];
    let vault = config.protected.iter().find(|p| p.name == "EthVault").cloned();
    let vault = vault.unwrap_or_else(|| panic!("EthVault not protected:\n{text}"));
    assert_eq!(vault.address, d.contracts["EthVault"]);
    assert_eq!(vault.drain_threshold_bps, 1_000);
    assert_eq!(vault.claims[0].asset, Asset::Eth);
    assert_eq!(vault.invariants.len(), 1);

    let pool = config.protected.iter().find(|p| p.name == "LendingPoolFixed").cloned();
    let pool = pool.unwrap_or_else(|| panic!("LendingPoolFixed not protected:\n{text}"));
    assert_eq!(pool.tokens, vec![dusd, d.contracts["COL"]]);
    assert_eq!(pool.claims[0].asset, Asset::Token(dusd));
    assert_eq!(pool.drain_threshold_bps, 2_000);
    assert_eq!(pool.invariants.len(), 2);
}

#[test]
fn config_toml_leaves_out_contracts_missing_from_the_deployment() {
    let mut d = fake_deployment();
    d.contracts.remove("COL");
    let text = config_toml(&d, "ws://127.0.0.1:8546", "KEY");
    assert!(text.contains("# LendingPool left out: the deployment has no COL"), "{text}");
    let config = Config::parse(&text, Path::new("devnet.toml")).map_err(|e| e.to_string());
    assert!(config.is_ok_and(|c| c.protected.len() == 8));
}
