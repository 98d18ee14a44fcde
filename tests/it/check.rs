//! `check` on every fixture scenario: attacks yield their findings, everything else none.

use std::collections::BTreeSet;

use alloy::primitives::{B256, Bytes};
use preempt::{
    check::{CheckTarget, TxVerdict, run_check},
    devnet::Scenario,
};

use crate::support::Devnet;

fn rules_of(v: &TxVerdict) -> BTreeSet<(String, String)> {
    v.findings.iter().map(|f| (f.contract_name.clone(), f.rule.to_string())).collect()
}

async fn check_pending(devnet: &Devnet, scenario: Scenario) -> TxVerdict {
    let hash = devnet.send(scenario).await;
    let report = run_check(&devnet.config, Some(&devnet.anvil.http_url()), CheckTarget::Pending)
        .await
        .unwrap_or_else(|e| panic!("{}: check failed: {e}", scenario.name()));
    devnet.drop_pending().await;
    assert_eq!(report.verdicts.len(), 1, "{}: one pending tx expected", scenario.name());
    let verdict = report.verdicts.into_iter().next().expect("one verdict");
    assert_eq!(verdict.tx, hash);
    assert!(verdict.error.is_none(), "{}: {:?}", scenario.name(), verdict.error);
    verdict
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_attack_in_the_mempool_yields_its_findings_with_evidence() {
    let devnet = Devnet::start().await;
    for &scenario in Scenario::all().iter().filter(|s| s.is_attack()) {
        let verdict = check_pending(&devnet, scenario).await;
        let found = rules_of(&verdict);
        for (contract, rule) in scenario.expected_findings() {
            assert!(
                found.contains(&(contract.to_string(), rule.to_string())),
                "{}: expected {rule} on {contract}, found {found:?}",
                scenario.name()
            );
        }
        assert_eq!(verdict.verdict, "exploit");
        let outcome = verdict.outcome.as_ref().expect("simulated");
        assert!(outcome.success, "{}: the attack succeeds in simulation", scenario.name());
        for f in &verdict.findings {
            assert!(!f.summary.is_empty());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benign_traffic_and_attacks_on_fixed_contracts_yield_no_finding() {
    let devnet = Devnet::start().await;
    for &scenario in Scenario::all().iter().filter(|s| !s.is_attack()) {
        let verdict = check_pending(&devnet, scenario).await;
        assert!(
            verdict.findings.is_empty(),
            "{}: false positive: {:#?}",
            scenario.name(),
            verdict.findings
        );
        assert_eq!(verdict.verdict, "clean", "{}", scenario.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mined_attack_checked_by_hash_runs_on_the_state_before_it_and_raw_matches_pending() {
    let devnet = Devnet::start().await;
    let hash = devnet.send(Scenario::VaultReentrancyAttack).await;
    let raw: Bytes = devnet.rpc("eth_getRawTransactionByHash", serde_json::json!([hash])).await;
    let url = devnet.anvil.http_url();

    let by_raw =
        run_check(&devnet.config, Some(&url), CheckTarget::Raw(raw)).await.expect("check raw");
    assert_eq!(by_raw.verdicts[0].tx, hash);
    assert!(rules_of(&by_raw.verdicts[0]).contains(&("EthVault".into(), "reentrancy".into())));

    devnet.mine().await;
    let receipt: serde_json::Value =
        devnet.rpc("eth_getTransactionReceipt", serde_json::json!([hash])).await;
    assert_eq!(receipt["status"], "0x1", "the attack really drains the vulnerable vault");
    let mined = run_check(&devnet.config, Some(&url), CheckTarget::Hash(hash))
        .await
        .expect("check mined tx");
    let verdict = &mined.verdicts[0];
    assert!(
        rules_of(verdict).contains(&("EthVault".into(), "drain".into())),
        "{:?}",
        verdict.findings
    );
    let block: u64 = u64::from_str_radix(
        receipt["blockNumber"].as_str().expect("number").trim_start_matches("0x"),
        16,
    )
    .expect("hex");
    assert_eq!(mined.fork_block, block - 1, "a mined tx is checked on the state before its block");
    assert_eq!(mined.sim_block.number, block);
    let gas: u64 =
        u64::from_str_radix(receipt["gasUsed"].as_str().expect("gas").trim_start_matches("0x"), 16)
            .expect("hex");
    assert_eq!(
        verdict.outcome.as_ref().expect("simulated").gas_used,
        gas,
        "simulated gas equals the receipt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_hash_is_a_clear_error() {
    let devnet = Devnet::start().await;
    let err = run_check(
        &devnet.config,
        Some(&devnet.anvil.http_url()),
        CheckTarget::Hash(B256::repeat_byte(7)),
    )
    .await
    .expect_err("no such tx");
    assert!(err.to_string().contains("not found"), "{err}");
}

/// A mined attack that a pause stopped: checked as mined it reverts on the paused vault;
/// `--without-pause` leaves the pause (same block, earlier) out and shows the drain it would
/// have been, with a note naming the tx left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pause_shows_the_exploit_a_paused_attack_would_have_been() {
    use std::time::Duration;

    use crate::support::guard::{RunningGuard, wait_pending_from};

    let devnet = Devnet::start().await;
    let url = devnet.anvil.http_url();
    let guard = RunningGuard::start(&devnet, &devnet.anvil.ws_url(), "");
    let attack = devnet.send(Scenario::VaultReentrancyAttack).await;
    let guardian = preempt::devnet::dev_accounts()[1].address;
    let pauses = wait_pending_from(&devnet, guardian, 1, Duration::from_secs(20)).await;
    assert_eq!(pauses.len(), 1, "{}", guard.log().join("\n"));
    devnet.mine().await;
    assert_eq!(guard.stop(), Some(0));
    let receipt: serde_json::Value =
        devnet.rpc("eth_getTransactionReceipt", serde_json::json!([attack])).await;
    assert_eq!(receipt["status"], "0x0", "the pause made the attack revert");

    let as_mined = run_check(&devnet.config, Some(&url), CheckTarget::Hash(attack))
        .await
        .expect("check as mined");
    let v = &as_mined.verdicts[0];
    assert!(v.findings.is_empty(), "on the paused vault: {:?}", v.findings);
    assert!(v.outcome.as_ref().is_some_and(|o| !o.success), "it reverts as it did");
    assert!(as_mined.notes.is_empty());

    let without = run_check(&devnet.config, Some(&url), CheckTarget::HashWithoutPause(attack))
        .await
        .expect("check without the pause");
    let v = &without.verdicts[0];
    assert!(v.outcome.as_ref().is_some_and(|o| o.success), "it succeeds unpaused");
    let rules = rules_of(v);
    assert!(rules.contains(&("EthVault".into(), "drain".into())), "{rules:?}");
    assert!(rules.contains(&("EthVault".into(), "reentrancy".into())), "{rules:?}");
    assert_eq!(
        without.notes,
        [format!("left out tx {} (index 0 of the block): it paused EthVault", pauses[0])]
    );
    let text = preempt::check::print_human(&without);
    assert!(
        text.contains("EthVault lost 100 of 100 ETH"),
        "the amount it would have taken: {text}"
    );
}
